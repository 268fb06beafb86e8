//! `member()`: what a member is doing right now, from one fresh session.

use std::sync::Arc;
use std::time::Duration;

use drover_core::error::ProviderError;
use drover_core::world::MemberStatus;
use tokio::task::JoinSet;

use super::{Member, PgFailure, PostgresDatabase};

/// A member that accepted the connection but does not answer within this is unreachable.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a standby's lag may wait on its primary's WAL position: lag is a nicety
/// next to the standby's own state, and a failover observes a standby whose primary
/// is gone — it must not stall there.
const LAG_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// WAL positions as bytes, from `pg_lsn` (bigint covers 8 EiB of WAL). The synchronous
/// standbys are counted only when commits wait for them (pg_stat_replication shows
/// `sync_state` to superusers and pg_monitor members).
const PRIMARY_SQL: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, \
     current_setting('default_transaction_read_only')::bool, \
     to_regclass('drover.epoch') IS NOT NULL, \
     CASE WHEN current_setting('synchronous_standby_names') = '' THEN NULL ELSE \
       (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))::int END";
const STANDBY_SQL: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, \
     (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint, \
     extract(epoch from now() - pg_last_xact_replay_timestamp())::float8, \
     (SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming' LIMIT 1), \
     to_regclass('drover.epoch') IS NOT NULL";

impl PostgresDatabase {
    /// Unreachable for anything retrying could fix; an error only when it cannot (e.g. a bad password).
    pub(super) async fn status(&self, member: &Member) -> Result<MemberStatus, ProviderError> {
        let failure = match tokio::time::timeout(OBSERVE_TIMEOUT, self.observe(member)).await {
            Ok(Ok(status)) => return Ok(status),
            Ok(Err(f)) => f,
            Err(_) => PgFailure::timeout(OBSERVE_TIMEOUT, "observing"),
        };
        if failure.retryable {
            Ok(MemberStatus::Unreachable { reason: failure.cause })
        } else {
            Err(failure.into_error(&member.region, "status", "check the member's DSN and the role's privileges"))
        }
    }

    async fn observe(&self, member: &Member) -> Result<MemberStatus, PgFailure> {
        let client = member.connect().await?;
        let in_recovery: bool = member.timed(client.query_one("SELECT pg_is_in_recovery()", &[])).await?.get(0);
        if !in_recovery {
            let row = member.timed(client.query_one(PRIMARY_SQL, &[])).await?;
            let (wal_lsn, read_only, has_epochs): (i64, bool, bool) = (row.get(0), row.get(1), row.get(2));
            let sync_standbys: Option<i32> = row.get(3);
            let epoch = if has_epochs { recorded_epoch(member, &client).await? } else { None };
            return Ok(MemberStatus::Primary {
                writable: !read_only,
                epoch,
                wal_lsn: Some(wal_lsn.max(0) as u64),
                sync_standbys: sync_standbys.map(|n| n.max(0) as u32),
            });
        }
        let row = member.timed(client.query_one(STANDBY_SQL, &[])).await?;
        let replay: Option<i64> = row.get(0);
        let receive: Option<i64> = row.get(1);
        let behind: Option<f64> = row.get(2);
        let upstream: Option<String> = row.get(3);
        let has_epochs: bool = row.get(4);
        // The epoch table is replicated: a standby holds the epoch of the primary it replays.
        let epoch = if has_epochs { recorded_epoch(member, &client).await? } else { None };
        let replay_lsn = replay.unwrap_or(0).max(0) as u64;
        let upstream_lsn = match self.primary_lsn_elsewhere(member, upstream.as_deref()).await {
            Some(lsn) => Some(lsn),
            None => receive.map(|r| r.max(0) as u64),
        };
        let lag_bytes = upstream_lsn.map_or(0, |u| u.saturating_sub(replay_lsn));
        let lag_seconds = if receive == replay { 0.0 } else { behind.unwrap_or(0.0).max(0.0) };
        Ok(MemberStatus::Standby {
            lag_bytes: Some(lag_bytes),
            lag_seconds: Some(lag_seconds),
            replay_lsn: Some(replay_lsn),
            epoch,
            upstream,
        })
    }

    /// The current WAL position of a reachable primary among the other members:
    /// the one this standby streams from if several claim the role, else the furthest.
    async fn primary_lsn_elsewhere(&self, standby: &Member, upstream: Option<&str>) -> Option<u64> {
        let mut probes = JoinSet::new();
        for other in self.members.values().filter(|m| m.region != standby.region) {
            let other = Arc::clone(other);
            probes.spawn(async move {
                let lsn = tokio::time::timeout(LAG_PROBE_TIMEOUT, primary_lsn(&other)).await.ok().flatten();
                lsn.map(|lsn| (other.host_name(), lsn))
            });
        }
        let mut found: Vec<(Option<String>, u64)> = Vec::new();
        while let Some(done) = probes.join_next().await {
            if let Ok(Some(primary)) = done {
                found.push(primary);
            }
        }
        if let Some((_, lsn)) = found.iter().find(|(host, _)| host.is_some() && host.as_deref() == upstream) {
            return Some(*lsn);
        }
        found.into_iter().map(|(_, lsn)| lsn).max()
    }
}

/// The highest epoch in the member's `drover.epoch` table (which exists), None when empty.
async fn recorded_epoch(member: &Member, client: &tokio_postgres::Client) -> Result<Option<u64>, PgFailure> {
    let max: Option<i64> = member.timed(client.query_one("SELECT max(epoch) FROM drover.epoch", &[])).await?.get(0);
    Ok(max.map(|e| e.max(0) as u64))
}

/// The member's current WAL position if it is a primary; None if a standby or unreachable.
async fn primary_lsn(member: &Member) -> Option<u64> {
    let client = member.connect().await.ok()?;
    let sql = "SELECT CASE WHEN pg_is_in_recovery() THEN NULL \
               ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint END";
    let lsn: Option<i64> = member.timed(client.query_one(sql, &[])).await.ok()?.get(0);
    lsn.map(|l| l.max(0) as u64)
}
