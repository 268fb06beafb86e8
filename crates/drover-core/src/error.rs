//! Errors a provider or store returns. Each knows whether retrying can help, and keeps
//! the error it came from (its `source`) for logs, while its message stays what a
//! person reads.

use std::error::Error;
use std::fmt;

/// The error a failure came from, kept for logs and for code that looks beneath the message.
pub type Source = Box<dyn Error + Send + Sync + 'static>;

/// What kind of failure a provider met, which decides what the engine does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderErrorKind {
    /// Retrying can help (a timeout, throttling, a lost connection): the engine retries
    /// with backoff before pausing the run.
    Transient,
    /// Retrying cannot help (a refused call, a missing resource, bad credentials): the
    /// run pauses at once.
    Permanent,
    /// The world holds a newer epoch than the run's (in the store, the traffic record or
    /// the accelerator's tag): another run has taken over. Never retried; the run is to
    /// be aborted, not resumed.
    Stale,
}

/// A failure in the world outside drover (database, DNS, an HTTP endpoint).
/// The message names the thing, the cause and what to check; it never holds a secret.
#[derive(Debug)]
pub struct ProviderError {
    pub message: String,
    kind: ProviderErrorKind,
    source: Option<Source>,
}

impl ProviderError {
    fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError { message: message.into(), kind, source: None }
    }

    /// Transient: the engine retries with backoff before pausing the run.
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::new(ProviderErrorKind::Transient, message)
    }

    /// Permanent: retrying cannot help; the run pauses at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        ProviderError::new(ProviderErrorKind::Permanent, message)
    }

    /// Stale: a newer epoch than the run's was found; another run has taken over.
    pub fn stale(message: impl Into<String>) -> Self {
        ProviderError::new(ProviderErrorKind::Stale, message)
    }

    /// Keeps the error this one came from; the message is unchanged.
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ProviderErrorKind {
        self.kind
    }

    pub fn retryable(&self) -> bool {
        self.kind == ProviderErrorKind::Transient
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for ProviderError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Two errors are equal when they say the same thing about the same kind of failure;
/// the source is detail for logs.
impl PartialEq for ProviderError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for ProviderError {}

/// A failure of the journal store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "run {active} is still active; resume it with 'drover resume {active}' or end it with 'drover abort {active}'"
    )]
    ActiveRun { active: String },
    /// Another live driver holds the run (`Journal::claim_run`).
    #[error(
        "run {run} is being driven by {holder}; two drivers would do each step twice — wait until it ends or pauses ('drover runs show {run}'), or stop that driver first (a driver that is gone lets go by itself)"
    )]
    Driven { run: String, holder: String },
    #[error("no run with id {0}; 'drover runs' lists them")]
    UnknownRun(String),
    #[error("run {run} has already {state}; nothing more is recorded for it — start a new run")]
    RunEnded { run: String, state: String },
    /// A record that cannot follow the run's entries: a bug, refused so the journal never
    /// holds a history that did not happen.
    #[error("run {run}: refused to journal an impossible order: {why}")]
    IllegalOrder { run: String, why: String },
    /// The store could not be read or written. The message says where and why (the
    /// cause's text is in it); `source` keeps the store's own error.
    #[error("journal: {message}")]
    Io {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// A drill is unfinished (`Journal::begin_drill`): one drill at a time.
    #[error(
        "drill {active} is unfinished; resume it with 'drover drill resume {active}' or end it with 'drover drill abort {active}' (which undoes its fault)"
    )]
    ActiveDrill { active: String },
    #[error("no drill with id {0}; 'drover drills' lists them")]
    UnknownDrill(String),
    #[error("drill {drill} has already {state}; nothing more is recorded for it — start a new drill")]
    DrillEnded { drill: String, state: String },
    /// A record that cannot follow the drill's entries (`DrillSummary::refuses`): a bug.
    #[error("drill {drill}: refused to journal an impossible order: {why}")]
    IllegalDrillOrder { drill: String, why: String },
    /// Only from test journals that simulate a crash right after a write.
    #[error("simulated crash after journal record {0}")]
    Crashed(u64),
}

impl StoreError {
    /// The store could not be read or written, for a reason with no error of its own.
    pub fn io(message: impl Into<String>) -> Self {
        StoreError::Io { message: message.into(), source: None }
    }

    /// The store could not be read or written because of `source` (an etcd or redb error).
    pub fn io_from(message: impl Into<String>, source: impl Error + Send + Sync + 'static) -> Self {
        StoreError::Io { message: message.into(), source: Some(Box::new(source)) }
    }
}

/// The source is detail for logs: errors that say the same thing are equal.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        use StoreError::*;
        match (self, other) {
            (ActiveRun { active: a }, ActiveRun { active: b }) => a == b,
            (UnknownRun(a), UnknownRun(b)) => a == b,
            (ActiveDrill { active: a }, ActiveDrill { active: b }) => a == b,
            (UnknownDrill(a), UnknownDrill(b)) => a == b,
            (DrillEnded { drill: a, state: s }, DrillEnded { drill: b, state: t }) => a == b && s == t,
            (RunEnded { run: a, state: s }, RunEnded { run: b, state: t }) => a == b && s == t,
            (Io { message: a, .. }, Io { message: b, .. }) => a == b,
            (Crashed(a), Crashed(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection reset by peer")]
    struct Reset;

    #[test]
    fn kinds_decide_retrying_and_the_message_is_what_is_shown() {
        let transient = ProviderError::transient("dns 10.0.0.1:53: timed out");
        assert_eq!((transient.kind(), transient.retryable()), (ProviderErrorKind::Transient, true));
        let permanent = ProviderError::permanent("bad key");
        assert_eq!((permanent.kind(), permanent.retryable()), (ProviderErrorKind::Permanent, false));
        let stale = ProviderError::stale("epoch is 7, newer than this run's 6");
        assert_eq!((stale.kind(), stale.retryable()), (ProviderErrorKind::Stale, false));
        assert_eq!(transient.to_string(), "dns 10.0.0.1:53: timed out");
    }

    #[test]
    fn the_source_is_kept_and_does_not_change_the_message() {
        let e = ProviderError::transient("rds us-east-2: DescribeDBInstances failed").with_source(Reset);
        assert_eq!(e.to_string(), "rds us-east-2: DescribeDBInstances failed");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("connection reset by peer"));
        assert!(ProviderError::transient("x").source().is_none());
        assert_eq!(e, ProviderError::transient("rds us-east-2: DescribeDBInstances failed"));

        let s = StoreError::io_from("etcd a:2379: get: connection reset by peer", Reset);
        assert_eq!(s.to_string(), "journal: etcd a:2379: get: connection reset by peer");
        assert_eq!(s.source().map(|s| s.to_string()).as_deref(), Some("connection reset by peer"));
        assert!(StoreError::io("x").source().is_none());
    }
}
