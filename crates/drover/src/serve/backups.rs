//! The plan's backup schedule in `drover serve`: every `backup.schedule`, the daemon that
//! acts (the etcd leader, or the acting vantage) backs up the current primary region's
//! cluster to every region's store, then applies the plan's retention.

use std::sync::Arc;
use std::time::Duration;

use drover_backup::backup::backup_time_ms;
use drover_core::engine::now_ms;

use super::daemon::Daemon;
use super::supervisor::{Heartbeat, Restart};
use crate::app::backups::Backups;

/// After a failed backup, the next try comes this soon (or at the schedule, if sooner).
const RETRY: Duration = Duration::from_secs(60);
/// How often a daemon looks at the clock and whether it acts.
const IDLE: Duration = Duration::from_secs(1);
/// How often the newest backup is read from the stores: another daemon may have taken one.
const LOOK: Duration = Duration::from_secs(60);

/// Starts the plan's backup schedule beside the daemon's other loops, when the plan has
/// `backup.schedule`. A loop of its own over the daemon's state: the daemon holds the
/// record (`BackupRecord`, for /metrics) and knows nothing of how backups are taken.
pub fn spawn_schedule(daemon: &Arc<Daemon>) {
    if let Some(backups) = Backups::of(&daemon.cx.plan)
        && let Some(every) = backups.schedule()
    {
        let (d, backups) = (Arc::clone(daemon), Arc::new(backups));
        daemon.loops.spawn("backups", Some(IDLE), Restart::WithBackoff, move |beat| {
            Arc::clone(&d).backup_loop(Arc::clone(&backups), every, beat)
        });
    }
}

impl Daemon {
    /// Runs forever; spawned only when the plan has `backup.schedule`. The next backup is
    /// due a period after the newest in the stores, whoever took it: a restart, or another
    /// daemon taking over, does not mean an extra backup.
    pub async fn backup_loop(self: Arc<Self>, backups: Arc<Backups>, every: Duration, beat: Heartbeat) {
        let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let mut looked_at = 0;
        let mut retry_at = 0;
        loop {
            beat.beat();
            let now = now_ms();
            if now >= looked_at + LOOK.as_millis() as u64 {
                if let Some(newest) = newest_backup_ms(&backups).await {
                    self.state().backups.last_success_ms = Some(newest);
                }
                looked_at = now;
            }
            let newest = self.state().backups.last_success_ms;
            let due = newest.map_or(0, |ms| ms.saturating_add(every_ms)).max(retry_at);
            if now < due || !self.acts() {
                tokio::time::sleep(IDLE).await;
                continue;
            }
            // Just before acting, read the stores again: the daemon that acted before may
            // have backed up since this one last looked.
            if let Some(newest) = newest_backup_ms(&backups).await
                && newest.saturating_add(every_ms) > now
            {
                self.state().backups.last_success_ms = Some(newest);
                continue;
            }
            let region = self.primary_region();
            let vantage = self.vantage.clone();
            let progress: drover_backup::OnProgress =
                Arc::new(move |line: &str| tracing::info!(vantage = %vantage, "scheduled backup: {line}"));
            // A backup takes far longer than a round.
            match beat.through(backups.create(&region, Vec::new(), None, Some(progress))).await {
                Ok(report) => {
                    let mut shared = self.state();
                    let record = &mut shared.backups;
                    match report.problems() {
                        None => {
                            tracing::info!(vantage = %self.vantage, backup = %report.id, %region, objects = report.objects, "scheduled backup written to every store");
                            record.succeeded += 1;
                        }
                        Some(problems) => {
                            tracing::warn!(vantage = %self.vantage, backup = %report.id, %region, "scheduled backup incomplete: {problems}");
                            // The stores that have it keep it; the next period tries every store again.
                            record.incomplete += 1;
                        }
                    }
                    record.last_success_ms = Some(now_ms());
                    record.last_objects = Some(report.objects);
                }
                Err(failure) => {
                    tracing::warn!(vantage = %self.vantage, %region, error = %failure.message, "scheduled backup failed; trying again");
                    self.state().backups.failed += 1;
                    retry_at = now_ms() + every.min(RETRY).as_millis() as u64;
                }
            }
        }
    }
}

/// The time of the newest backup in any store, if a store can be read and holds one.
async fn newest_backup_ms(backups: &Backups) -> Option<u64> {
    let mut newest = None;
    for store in backups.stores().ok()? {
        match store.backup_ids().await {
            Ok(ids) => {
                newest = newest.max(ids.iter().filter_map(|id| backup_time_ms(id)).max());
            }
            Err(e) => tracing::warn!(store = %store.name, error = %e, "cannot list the backup store"),
        }
    }
    newest
}
