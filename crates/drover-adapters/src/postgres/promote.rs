//! `promote()` and `record_epoch()`: make a member the writable primary of an epoch.

use std::time::Duration;

use drover_core::error::ProviderError;
use drover_core::run::{Epoch, RunId};
use tokio_postgres::Client;

use super::{Member, PgFailure, PostgresDatabase};
use drover_core::duration::format_duration;

const NEXT: &str = "is the standby replaying WAL? run 'drover status'";

/// The `drover.epoch` table; also the write that proves a member accepts writes.
/// `synchronous_commit = local`: a promoted member whose synchronous standby is
/// gone (it was the old primary) would otherwise hang here; the epoch only needs
/// to be durable on this member.
const EPOCH_TABLE_SQL: &str = "SET LOCAL synchronous_commit = local; \
     CREATE SCHEMA IF NOT EXISTS drover; \
     CREATE TABLE IF NOT EXISTS drover.epoch (epoch bigint PRIMARY KEY, run text NOT NULL, \
     recorded_at timestamptz NOT NULL DEFAULT now())";

impl PostgresDatabase {
    /// A no-op on a writable primary; on a standby, `pg_promote()` then wait for writes;
    /// on a fenced primary, lift the fence.
    pub(super) async fn promote_member(&self, m: &Member) -> Result<(), ProviderError> {
        let region = &m.region;
        let fail = |f: PgFailure| f.into_error(region, "promote", NEXT);
        let client = m.connect().await.map_err(fail)?;
        let (in_recovery, read_only) = role(m, &client).await.map_err(fail)?;
        if !in_recovery && !read_only {
            return Ok(());
        }
        if in_recovery {
            let secs = self.promote_timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&secs];
            let call = client.query_one("SELECT pg_promote(true, $1)", &params);
            let promoted = match tokio::time::timeout(self.promote_timeout + Duration::from_secs(10), call).await {
                Ok(Ok(row)) => row.get::<_, bool>(0),
                // Promoted between our look and the call (55000: recovery is not in progress).
                Ok(Err(e)) if e.code().is_some_and(|c| c.code() == "55000") => true,
                Ok(Err(e)) => return Err(fail(PgFailure::from_error(e, m))),
                Err(_) => false,
            };
            if !promoted {
                return Err(ProviderError::transient(format!(
                    "{region} database: promote failed: pg_promote() returned false after {secs}s — {NEXT}"
                )));
            }
            tracing::info!(region = %region, "database promoted");
            // Its synchronous standby (if any) was the old primary, which is gone or about to
            // rejoin: waiting for it would hang every write. `rejoin` restores synchronous mode.
            m.timed(client.batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")).await.map_err(fail)?;
            m.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
        }
        let (_, read_only) = role(m, &client).await.map_err(fail)?;
        if read_only {
            // Left by a fence (or copied from a fenced primary by pg_rewind).
            m.timed(client.batch_execute("ALTER SYSTEM RESET default_transaction_read_only")).await.map_err(fail)?;
            m.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
        }
        drop(client);
        if !in_recovery {
            self.drop_synchronous_standbys(m).await?;
        }
        self.wait_writable(m).await
    }

    /// A fenced primary made primary again (a move with --accept-data-loss, or back after an
    /// aborted switchover) still waits, on every commit, for the synchronous standby it had.
    /// That standby now follows another member or is gone, and its old connection can look
    /// alive in `pg_stat_replication` until `wal_sender_timeout`, so drover does not guess:
    /// commits stop waiting, as after any promotion, and `rejoin` (reprotect) restores
    /// synchronous mode with a standby that really follows. `status` shows the gap meanwhile.
    async fn drop_synchronous_standbys(&self, m: &Member) -> Result<(), ProviderError> {
        let fail = |f: PgFailure| f.into_error(&m.region, "promote", NEXT);
        let client = m.connect().await.map_err(fail)?;
        let names: String = m
            .timed(client.query_one("SELECT current_setting('synchronous_standby_names')", &[]))
            .await
            .map_err(fail)?
            .get(0);
        if !names.is_empty() {
            m.timed(client.batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")).await.map_err(fail)?;
            m.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
            tracing::warn!(region = %m.region, "commits no longer wait for a synchronous standby ({names}) until a reprotect");
        }
        Ok(())
    }

    /// Waits until a fresh session on `m` can write.
    async fn wait_writable(&self, m: &Member) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + self.promote_timeout;
        loop {
            let attempt = async {
                let client = m.connect().await?;
                m.timed(client.batch_execute(&format!("BEGIN; {EPOCH_TABLE_SQL}; COMMIT"))).await
            };
            let failure = match attempt.await {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            // 25006: read-only transaction — the reload or the promotion has not landed yet.
            let waiting = failure.retryable || failure.state.as_deref() == Some("25006");
            if !waiting || tokio::time::Instant::now() >= deadline {
                let cause = format!(
                    "still not accepting writes after {}: {}",
                    format_duration(self.promote_timeout),
                    failure.cause
                );
                return Err(PgFailure { cause, retryable: waiting, state: failure.state, source: failure.source }
                    .into_error(&m.region, "promote", NEXT));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Inserts `epoch` into `drover.epoch`, creating the table if needed. Idempotent.
    pub(super) async fn record_epoch_in(&self, m: &Member, epoch: Epoch, run: &RunId) -> Result<(), ProviderError> {
        let next = "promote the member first; run 'drover status'";
        let fail = |f: PgFailure| f.into_error(&m.region, "record epoch", next);
        let value = i64::try_from(epoch).map_err(|_| {
            ProviderError::permanent(format!(
                "{} database: record epoch failed: epoch {epoch} exceeds bigint",
                m.region
            ))
        })?;
        let mut client = m.connect().await.map_err(fail)?;
        let tx = m.timed(client.transaction()).await.map_err(fail)?;
        m.timed(tx.batch_execute(EPOCH_TABLE_SQL)).await.map_err(fail)?;
        let insert = "INSERT INTO drover.epoch (epoch, run) VALUES ($1, $2) ON CONFLICT (epoch) DO NOTHING";
        m.timed(tx.execute(insert, &[&value, &run.0])).await.map_err(fail)?;
        m.timed(tx.commit()).await.map_err(fail)
    }
}

/// `(pg_is_in_recovery(), default_transaction_read_only)` as a fresh session sees them.
async fn role(m: &Member, client: &Client) -> Result<(bool, bool), PgFailure> {
    let sql = "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')::bool";
    let row = m.timed(client.query_one(sql, &[])).await?;
    Ok((row.get(0), row.get(1)))
}
