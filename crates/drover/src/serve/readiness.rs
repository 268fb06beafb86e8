//! Readiness in `drover serve`: every `--readiness-every` (default 5 minutes) the daemon
//! evaluates the readiness rules (`crate::app::readiness`), keeps the report for
//! `GET /api/v1/readiness` and the `drover_readiness{rule,region}` gauge, and notifies
//! `readiness_changed` when a rule's level in a region moves. Every daemon evaluates, not
//! only the one that acts: each vantage's view of the world is worth a gauge.
//!
//! Why 5 minutes: each round reads every resource of the plan (AWS describe calls cost and
//! count against API rate limits); AWS Application Recovery Controller's readiness checks
//! re-evaluate every 30 minutes. Drift that matters (a standby falling behind, a deleted
//! launch configuration) is seen within minutes, not within a failover.

use std::sync::Arc;
use std::time::Duration;

use drover_core::engine::now_ms;
use drover_core::event::EventKind;
use drover_core::notify::{Notifier, NotifyEvent};
use drover_core::readiness::{Level, Rule, changes, levels};

use super::daemon::Daemon;
use super::supervisor::{Heartbeat, Restart};
use crate::app::readiness::assess;

/// Starts the readiness loop beside the daemon's other loops; `every` zero: never.
pub fn spawn(daemon: &Arc<Daemon>, every: Duration) {
    if every.is_zero() {
        return;
    }
    let d = Arc::clone(daemon);
    // A round reads the whole world, which may take up to its deadlines: its heartbeat is
    // the interval plus a minute, so a slow round is not taken for a stuck loop.
    daemon.loops.spawn("readiness", Some(every + Duration::from_secs(60)), Restart::WithBackoff, move |beat| {
        Arc::clone(&d).readiness_loop(every, beat)
    });
}

impl Daemon {
    async fn readiness_loop(self: Arc<Self>, every: Duration, beat: Heartbeat) {
        // The levels of the round before: the first round only sets them (a daemon that
        // starts does not re-announce what was already known), later rounds notify moves.
        let mut before: Option<std::collections::BTreeMap<(Rule, String), Level>> =
            self.state().readiness.as_ref().map(|r| levels(&r.findings));
        loop {
            beat.beat();
            match assess(&self.cx).await {
                Ok(report) => {
                    if let Some(old) = &before {
                        for change in changes(Some(old), &report.findings) {
                            tracing::info!(vantage = %self.vantage, "{}", change.line());
                            let event =
                                NotifyEvent::new(&self.cx.plan, EventKind::ReadinessChanged, change.line(), now_ms());
                            self.cx.adapters.notifier.notify(event);
                        }
                    }
                    before = Some(levels(&report.findings));
                    self.state().readiness = Some(report);
                }
                Err(failure) => {
                    tracing::warn!(vantage = %self.vantage, error = %failure.message, "readiness not evaluated this round")
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
