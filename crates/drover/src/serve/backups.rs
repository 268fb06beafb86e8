//! The plan's backup schedule in `drover serve`: every `backup.schedule`, the daemon that
//! acts (the etcd leader, or the acting vantage) backs up the current primary region's
//! cluster to every region's store, then applies the plan's retention.

use std::sync::Arc;
use std::time::Duration;

use drover_backup::backup::backup_time;
use drover_core::engine::now_ms;

use super::daemon::Daemon;
use crate::commands::backup::Backups;

/// What the schedule has done since the daemon started, for /metrics.
#[derive(Clone, Debug, Default)]
pub struct BackupRecord {
    pub succeeded: u64,
    pub failed: u64,
    /// Unix ms of the newest backup in the stores, this daemon's or another's.
    pub last_success_ms: Option<u64>,
    pub last_objects: Option<usize>,
    pub last_error: Option<String>,
}

/// After a failed backup, the next try comes this soon (or at the schedule, if sooner).
const RETRY: Duration = Duration::from_secs(60);
/// How often a daemon that does not act looks again.
const IDLE: Duration = Duration::from_secs(1);

impl Daemon {
    /// Runs forever; spawned only when the plan has `backup.schedule`.
    pub async fn backup_loop(self: Arc<Self>, backups: Backups, every: Duration) {
        // A restart does not mean a backup: the next one is due a period after the newest.
        let newest = newest_backup_ms(&backups).await;
        self.shared.lock().unwrap().backups.last_success_ms = newest;
        let mut due = newest.map_or(now_ms(), |ms| ms + every.as_millis() as u64);
        loop {
            let now = now_ms();
            if now < due {
                tokio::time::sleep(Duration::from_millis(due - now).min(IDLE)).await;
                continue;
            }
            if !self.acts() {
                tokio::time::sleep(IDLE).await;
                continue;
            }
            let region = self.primary_region();
            let vantage = self.vantage.clone();
            let progress: drover_backup::OnProgress =
                Arc::new(move |line: &str| tracing::info!(vantage = %vantage, "scheduled backup: {line}"));
            match backups.create(&region, Vec::new(), None, Some(progress)).await {
                Ok(report) => {
                    tracing::info!(vantage = %self.vantage, backup = %report.id, %region, objects = report.objects, "scheduled backup written to every store");
                    let mut shared = self.shared.lock().unwrap();
                    let record = &mut shared.backups;
                    record.succeeded += 1;
                    record.last_success_ms = Some(now_ms());
                    record.last_objects = Some(report.objects);
                    record.last_error = None;
                    due = now_ms() + every.as_millis() as u64;
                }
                Err(failure) => {
                    tracing::warn!(vantage = %self.vantage, %region, error = %failure.message, "scheduled backup failed; trying again");
                    let mut shared = self.shared.lock().unwrap();
                    shared.backups.failed += 1;
                    shared.backups.last_error = Some(failure.message);
                    due = now_ms() + every.min(RETRY).as_millis() as u64;
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
                let ms =
                    ids.iter().filter_map(|id| backup_time(id)).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as u64);
                newest = newest.max(ms.max());
            }
            Err(e) => tracing::warn!(store = %store.name, error = %e, "cannot list the backup store"),
        }
    }
    newest
}
