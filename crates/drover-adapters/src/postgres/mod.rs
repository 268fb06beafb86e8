//! PostgreSQL members behind `drover_core::world::Database`, through tokio-postgres.
//!
//! Each call opens a short-lived connection to the region's member: drover
//! acts rarely, and a fresh session sees the server's current configuration
//! (which is how fencing is observed).

mod fence;
mod promote;
mod rejoin;
mod status;

use crate::errors::{describe_io, io_cause};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::plan::MemberHost;
use drover_core::run::{Epoch, RunId};
use drover_core::secret::Secret;
use drover_core::world::{Database, HostAccess, MemberStatus, RejoinMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use crate::pg_connect::PgConnector;

/// How long a connection attempt may take before the member counts as unreachable (the plan's default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one observation or one SQL action may take once connected.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One region's database member, as the provider needs it.
#[derive(Clone, Debug)]
pub struct PostgresMemberConfig {
    /// libpq-style connection string (`host=.. port=.. user=.. password=..` or a URL), with
    /// libpq's `sslmode` and `sslrootcert` (see `crate::pg_connect`).
    pub dsn: Secret,
    /// How to reach the member's host for `rejoin` (pg_rewind or a base backup); absent, rejoin is refused.
    pub host: Option<MemberHost>,
}

/// The provider's configuration: members by region.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub members: BTreeMap<String, PostgresMemberConfig>,
    /// How long `promote` waits for the standby to accept writes (and `rejoin` for it to follow).
    pub promote_timeout: Duration,
    /// The plan asks for synchronous replication: a rejoined standby becomes synchronous again.
    pub synchronous: bool,
    /// How long a connection attempt may take before the member counts as unreachable.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    pub fn new(members: BTreeMap<String, PostgresMemberConfig>) -> Self {
        PostgresConfig {
            members,
            promote_timeout: Duration::from_secs(60),
            synchronous: false,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// The PostgreSQL provider: one value for all of a plan's members.
pub struct PostgresDatabase {
    members: BTreeMap<String, Arc<Member>>,
    promote_timeout: Duration,
    synchronous: bool,
}

struct Member {
    region: String,
    dsn: Secret,
    /// The parsed DSN and its TLS: every connection to the member goes through it.
    connector: PgConnector,
    host: Option<MemberHost>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase").field("regions", &self.members.keys().collect::<Vec<_>>()).finish()
    }
}

impl PostgresDatabase {
    /// Checks every DSN parses and its `sslrootcert` can be read; the error names the
    /// region and the parameter, never the DSN.
    pub fn new(config: PostgresConfig) -> Result<Self, ProviderError> {
        let mut members = BTreeMap::new();
        for (region, m) in config.members {
            let mut connector = PgConnector::parse(m.dsn.expose())
                .map_err(|e| ProviderError::permanent(format!("{region} database: {e}")))?;
            let pg = connector.config_mut();
            pg.connect_timeout(config.connect_timeout);
            if pg.get_application_name().is_none() {
                pg.application_name("drover");
            }
            let connect_timeout = config.connect_timeout;
            members.insert(
                region.clone(),
                Arc::new(Member { region, dsn: m.dsn, connector, host: m.host, connect_timeout }),
            );
        }
        Ok(PostgresDatabase { members, promote_timeout: config.promote_timeout, synchronous: config.synchronous })
    }

    fn member_of(&self, region: &str) -> Result<&Member, ProviderError> {
        self.members.get(region).map(|m| &**m).ok_or_else(|| {
            let known: Vec<_> = self.members.keys().map(String::as_str).collect();
            ProviderError::permanent(format!(
                "{region} database: no member configured for this region (members: {})",
                known.join(", ")
            ))
        })
    }
}

impl Member {
    /// Opens a session; the connection task lives until the client is dropped.
    async fn connect(&self) -> Result<Client, PgFailure> {
        match tokio::time::timeout(self.connect_timeout, self.connector.connect()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(PgFailure::from_error(e, self)),
            Err(_) => Err(PgFailure::timeout(self.connect_timeout, "connecting")),
        }
    }

    fn config(&self) -> &Config {
        self.connector.config()
    }

    /// Awaits one SQL call within `QUERY_TIMEOUT`, mapping its error.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, PgFailure> {
        match tokio::time::timeout(QUERY_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PgFailure::from_error(e, self)),
            Err(_) => Err(PgFailure::timeout(QUERY_TIMEOUT, "waiting for an answer")),
        }
    }

    /// Removes the DSN's password from text that may have echoed it (belt and braces).
    fn redact(&self, text: &str) -> String {
        redact(text, &self.dsn)
    }

    /// The host part of the DSN, as a standby's `sender_host` would show it.
    fn host_name(&self) -> Option<String> {
        self.config().get_hosts().first().map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
    }
}

/// Replaces the password of `dsn` (and the DSN itself) wherever it occurs in `text`.
pub(crate) fn redact(text: &str, dsn: &Secret) -> String {
    let mut out = text.replace(dsn.expose(), "<dsn redacted>");
    if let Ok(config) = crate::pg_connect::parse_config(dsn.expose())
        && let Some(password) = config.get_password().and_then(|p| std::str::from_utf8(p).ok())
        && !password.is_empty()
    {
        out = out.replace(password, "<redacted>");
    }
    out
}

/// A failed talk with a member: what happened, and whether trying again can help.
#[derive(Debug)]
pub(crate) struct PgFailure {
    pub cause: String,
    pub retryable: bool,
    /// The SQL state, when the server answered with an error.
    pub state: Option<String>,
    /// tokio-postgres's error, for the provider error's source.
    pub source: Option<tokio_postgres::Error>,
}

impl PgFailure {
    fn timeout(after: Duration, doing: &str) -> Self {
        PgFailure {
            cause: format!("no answer after {} while {doing}", drover_core::duration::format_duration(after)),
            retryable: true,
            state: None,
            source: None,
        }
    }

    fn from_error(e: tokio_postgres::Error, member: &Member) -> Self {
        let retryable = match e.code() {
            Some(code) => is_transient_state(code),
            // A refused certificate is the DSN's or the server's to fix, not the network's.
            None if crate::pg_connect::certificate_refused(&e) => false,
            // No SQL state: the network, the connection or a timeout.
            None => true,
        };
        let state = e.code().map(|c| c.code().to_string());
        let described = member.connector.describe_tls(&e).unwrap_or_else(|| describe_error(&e));
        let cause = member.redact(&described);
        // Redaction cannot reach inside the error itself: it is kept only when neither its
        // text nor its debug form shows the DSN or its password.
        let debug = format!("{e:?}");
        let source = (cause == described && member.redact(&debug) == debug).then_some(e);
        PgFailure { cause, retryable, state, source }
    }

    /// The provider error a user sees: `<region> database: <action> failed: <cause> — <next>`.
    pub(crate) fn transient(cause: String) -> Self {
        PgFailure { cause, retryable: true, state: None, source: None }
    }

    /// tokio-postgres's error, when there is one, is kept as the source.
    fn into_error(self, region: &str, action: &str, next: &str) -> ProviderError {
        let message = format!("{region} database: {action} failed: {} — {next}", self.cause);
        let error = if self.retryable { ProviderError::transient(message) } else { ProviderError::permanent(message) };
        match self.source {
            Some(source) => error.with_source(source),
            None => error,
        }
    }
}

/// SQL states worth retrying: the server is starting, stopping, overloaded, or lost the connection.
fn is_transient_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources (too many connections)
        || c.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        || c == "40001" // serialization failure
        || c == "40P01" // deadlock
}

/// A short human description of a tokio-postgres error, with its SQL state or OS cause.
pub(crate) fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    if let Some(io) = io_cause(e) {
        return describe_io(io);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl Database for PostgresDatabase {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError> {
        self.status(self.member_of(region)?).await
    }

    async fn fence(&self, region: &str) -> Result<(), ProviderError> {
        self.fence_member(self.member_of(region)?).await
    }

    async fn unfence(&self, region: &str) -> Result<(), ProviderError> {
        self.unfence_member(self.member_of(region)?).await
    }

    /// PostgreSQL promotes the same way whatever the run: a planned run's catch_up step
    /// has already made sure the standby holds every write.
    async fn promote(&self, region: &str, _kind: drover_core::run::RunKind) -> Result<(), ProviderError> {
        self.promote_member(self.member_of(region)?).await
    }

    async fn record_epoch(&self, region: &str, epoch: Epoch, run: &RunId) -> Result<(), ProviderError> {
        self.record_epoch_in(self.member_of(region)?, epoch, run).await
    }

    async fn rejoin(&self, region: &str, primary: &str) -> Result<RejoinMethod, ProviderError> {
        let old = self.member_of(region)?;
        let new = self.member_of(primary)?;
        self.rejoin_member(old, new).await
    }

    async fn host_access(&self, region: &str) -> HostAccess {
        match self.member_of(region) {
            Ok(m) => self.host_access_of(m).await,
            Err(_) => HostAccess::NotConfigured,
        }
    }
}
