//! The PostgreSQL canary: numbered rows in a table drover owns, inserted through the
//! database's service name (the DSN's host, resolved as the canary resolves names).
//!
//! Connections: one, kept while the name resolves to the same address and the
//! connection works — as an application's pool keeps them — and made anew after an
//! error or when the name points elsewhere, so a switch is followed once the cached
//! answer's TTL runs out. A write is acknowledged when its INSERT returned, that is
//! when the server committed it (with the server's own `synchronous_commit`); a fenced
//! (read-only) server refuses it, and it counts as failed.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::plan::PostgresCanarySpec;
use drover_core::secret::SecretSource;
use tokio_postgres::config::Host;

use super::{CanaryError, FrontDoor};
use crate::pg_connect::PgConnector;

pub(super) struct PostgresDoor {
    connector: PgConnector,
    host: String,
    table: String,
    connection: tokio::sync::Mutex<Option<(IpAddr, Arc<tokio_postgres::Client>)>>,
}

impl PostgresDoor {
    pub(super) fn new(
        spec: &PostgresCanarySpec,
        timeout: Duration,
        secrets: &dyn SecretSource,
    ) -> Result<PostgresDoor, CanaryError> {
        let reference = &spec.dsn;
        let dsn =
            secrets.resolve(reference).map_err(|e| CanaryError::Setup(format!("postgres.dsn ({reference}): {e}")))?;
        // The DSN's text is never shown: it holds the password.
        let mut connector = PgConnector::parse(dsn.expose())
            .map_err(|e| CanaryError::Setup(format!("the DSN in {reference} cannot be used: {e}")))?;
        let host = match connector.config().get_hosts() {
            [Host::Tcp(name)] => name.clone(),
            [] => {
                return Err(CanaryError::Setup(format!(
                    "the DSN in {reference} names no host; the canary connects through the service's name (host=db.shop.example.com)"
                )));
            }
            [Host::Tcp(_), ..] => {
                return Err(CanaryError::Setup(format!(
                    "the DSN in {reference} names several hosts; the canary connects through one: the service's name"
                )));
            }
            _ => {
                return Err(CanaryError::Setup(format!(
                    "the DSN in {reference} names a Unix socket; the canary connects through the service's name over TCP"
                )));
            }
        };
        if !connector.config().get_hostaddrs().is_empty() {
            return Err(CanaryError::Setup(format!(
                "the DSN in {reference} sets hostaddr, which bypasses the name; remove it (the canary resolves {host} itself)"
            )));
        }
        connector.config_mut().connect_timeout(timeout).application_name("drover-canary");
        Ok(PostgresDoor { connector, host, table: spec.table.clone(), connection: tokio::sync::Mutex::new(None) })
    }

    fn at(&self, address: IpAddr) -> String {
        format!("postgres {} at {address}", self.host)
    }

    /// The kept connection when it still goes to `address`, else a new one.
    async fn client(&self, address: IpAddr) -> Result<Arc<tokio_postgres::Client>, String> {
        let mut kept = self.connection.lock().await;
        if let Some((at, client)) = kept.as_ref()
            && *at == address
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        *kept = None;
        let mut connector = self.connector.clone();
        // TLS still checks the certificate against the name (sslmode=verify-full).
        connector.config_mut().hostaddr(address);
        let client = connector.connect().await.map_err(|e| {
            let why = connector.describe_tls(&e).unwrap_or_else(|| crate::postgres::describe_error(&e));
            format!("{}: {why}", self.at(address))
        })?;
        let client = Arc::new(client);
        *kept = Some((address, client.clone()));
        Ok(client)
    }

    /// After an error the next write connects anew (through the name).
    async fn forget(&self, address: IpAddr) {
        let mut kept = self.connection.lock().await;
        if kept.as_ref().is_some_and(|(at, _)| *at == address) {
            *kept = None;
        }
    }

    async fn run<T>(
        &self,
        address: IpAddr,
        call: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, String> {
        let client = self.client(address).await?;
        match call(&client).await {
            Ok(value) => Ok(value),
            Err(e) => {
                self.forget(address).await;
                Err(format!("{}: {}", self.at(address), crate::postgres::describe_error(&e)))
            }
        }
    }
}

#[async_trait]
impl FrontDoor for PostgresDoor {
    fn name(&self) -> &str {
        &self.host
    }

    fn describe(&self) -> String {
        format!("postgres {} table {}", self.host, self.table)
    }

    async fn prepare(&self, address: IpAddr) -> Result<(), String> {
        // The table name was checked by the plan reader: a plain identifier.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (drill text NOT NULL, seq bigint NOT NULL, \
             written_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (drill, seq))",
            self.table
        );
        self.run(address, async |c| c.batch_execute(&sql).await).await
    }

    async fn write(&self, address: IpAddr, drill: &str, seq: u64) -> Result<(), String> {
        let seq = i64::try_from(seq).map_err(|_| format!("seq {seq} does not fit in a bigint"))?;
        let sql = format!("INSERT INTO {} (drill, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING", self.table);
        self.run(address, async |c| c.execute(&sql, &[&drill, &seq]).await).await.map(|_| ())
    }

    async fn read_back(&self, address: IpAddr, drill: &str) -> Result<BTreeSet<u64>, String> {
        let sql = format!("SELECT seq FROM {} WHERE drill = $1", self.table);
        let rows = self.run(address, async |c| c.query(&sql, &[&drill]).await).await?;
        Ok(rows.iter().filter_map(|r| u64::try_from(r.get::<_, i64>(0)).ok()).collect())
    }
}
