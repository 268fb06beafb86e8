//! `fence()`: make a primary refuse writes.
//!
//! Why this fence is weaker than stopping the server: `default_transaction_read_only`
//! is only a default. A client that runs `SET default_transaction_read_only = off`
//! or `BEGIN READ WRITE` can still write, and a superuser can `ALTER SYSTEM` it
//! back. It stops ordinary application writes (and we end every session that
//! was open before it), which keeps the old primary readable for catch-up and
//! `rejoin`; a hostile or misconfigured client needs the server stopped (or
//! its network cut) instead.

use std::time::Duration;

use drover_core::error::ProviderError;

use super::{Member, PgFailure, PostgresDatabase};

/// How long to wait for a fresh session to see the reloaded setting.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

const NEXT: &str = "is the primary up and is drover's role a superuser? run 'drover status'";

impl PostgresDatabase {
    /// Idempotent: fencing a fenced primary re-applies the setting and ends sessions again.
    pub(super) async fn fence_member(&self, m: &Member) -> Result<(), ProviderError> {
        let fail = |f: PgFailure| f.into_error(&m.region, "fence", NEXT);
        let client = m.connect().await.map_err(fail)?;
        let in_recovery: bool =
            m.timed(client.query_one("SELECT pg_is_in_recovery()", &[])).await.map_err(fail)?.get(0);
        if in_recovery {
            // A standby refuses writes already.
            return Ok(());
        }
        // ALTER SYSTEM cannot share a (implicit) transaction with other statements.
        m.timed(client.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")).await.map_err(fail)?;
        m.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
        wait_for_setting(m, "on").await.map_err(fail)?;

        let version: i32 = m
            .timed(client.query_one("SELECT current_setting('server_version_num')::int", &[]))
            .await
            .map_err(fail)?
            .get(0);
        // From 14 on, wait (up to 5 s each) until the sessions are gone, not only signalled.
        let terminate = if version >= 140000 { "pg_terminate_backend(pid, 5000)" } else { "pg_terminate_backend(pid)" };
        // A pid whose terminate returned false may be a session that was already ending
        // (drover's own setting checks above close their connections just before): only
        // one still listed afterwards, in a fresh snapshot, survived the fence. (The terminate
        // sits in the aggregate's FILTER so that it runs only on rows WHERE has kept: never
        // on drover's own session.)
        let sql = format!(
            "SELECT coalesce(array_agg(pid) FILTER (WHERE NOT {terminate}), '{{}}') FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        );
        let refused: Vec<i32> = m.timed(client.query_one(&sql, &[])).await.map_err(fail)?.get(0);
        let survivors: i64 = if refused.is_empty() {
            0
        } else {
            m.timed(client.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", &[&refused]))
                .await
                .map_err(fail)?
                .get(0)
        };
        if survivors > 0 {
            return Err(ProviderError::transient(format!(
                "{} database: fence incomplete: {survivors} session(s) did not end within 5s — \
                 they may still write; retrying",
                m.region
            )));
        }
        tracing::info!(region = %m.region, "database fenced: read-only by default, sessions ended");
        Ok(())
    }

    /// Lifts the fence the symmetric way: the `ALTER SYSTEM` setting the fence wrote is
    /// removed (RESET, not `= off`, so the server's own configuration rules again) and the
    /// configuration reloaded, then drover waits until a fresh session starts writable.
    /// Idempotent: an unfenced member only has the (absent) setting removed again.
    pub(super) async fn unfence_member(&self, m: &Member) -> Result<(), ProviderError> {
        let fail = |f: PgFailure| f.into_error(&m.region, "unfence", NEXT);
        let client = m.connect().await.map_err(fail)?;
        m.timed(client.batch_execute("ALTER SYSTEM RESET default_transaction_read_only")).await.map_err(fail)?;
        m.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
        wait_for_setting(m, "off").await.map_err(fail)?;
        tracing::info!(region = %m.region, "database fence lifted: new sessions start writable");
        Ok(())
    }
}

/// Waits until a new session sees `default_transaction_read_only` as `want`: the reload
/// has reached the postmaster.
async fn wait_for_setting(m: &Member, want: &str) -> Result<(), PgFailure> {
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        let client = m.connect().await?;
        let setting: String =
            m.timed(client.query_one("SELECT current_setting('default_transaction_read_only')", &[])).await?.get(0);
        if setting == want {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let after = drover_core::duration::format_duration(RELOAD_WAIT);
            return Err(PgFailure::transient(if want == "on" {
                format!("new sessions still start writable {after} after pg_reload_conf()")
            } else {
                // Still on once drover's own setting is gone: postgresql.conf, or a role or
                // database setting, makes it read-only; that is not drover's fence to overrule.
                format!(
                    "new sessions still start read-only {after} after pg_reload_conf(); if postgresql.conf or ALTER ROLE/DATABASE sets default_transaction_read_only = on, lift it there"
                )
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
