//! Errors a provider or store returns. Each knows whether retrying can help.

/// A failure in the world outside drover (database, DNS, an HTTP endpoint).
/// The message names the thing, the cause and what to check; it never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
    pub retryable: bool,
}

impl ProviderError {
    /// Transient: the engine retries with backoff before pausing the run.
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError { message: message.into(), retryable: true }
    }
    /// Permanent: retrying cannot help; the run pauses at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        ProviderError { message: message.into(), retryable: false }
    }
    pub fn retryable(&self) -> bool {
        self.retryable
    }
}

/// A failure of the journal store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "run {active} is still active; resume it with 'drover resume {active}' or end it with 'drover abort {active}'"
    )]
    ActiveRun { active: String },
    #[error("no run with id {0}; 'drover runs' lists them")]
    UnknownRun(String),
    #[error("run {run} has already {state}; nothing more is recorded for it — start a new run")]
    RunEnded { run: String, state: String },
    /// A record that cannot follow the run's entries: a bug, refused so the journal never
    /// holds a history that did not happen.
    #[error("run {run}: refused to journal an impossible order: {why}")]
    IllegalOrder { run: String, why: String },
    #[error("journal: {0}")]
    Io(String),
    /// Only from test journals that simulate a crash right after a write.
    #[error("simulated crash after journal record {0}")]
    Crashed(u64),
}
