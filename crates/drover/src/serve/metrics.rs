//! /metrics in the Prometheus text format, rendered from the daemon's state and
//! the journal on each scrape (nothing to keep in sync).

use std::fmt::Write;

use drover_core::StoreError;
use drover_core::autopilot::GateRefusal;
use drover_core::check::Health;
use drover_core::history;
use drover_core::journal::Journal;
use drover_core::run::{RunKind, RunState, RunSummary};
use drover_core::vantage::{Dropped, VantageReport, Verdict};
use drover_core::world::MemberStatus;

use super::daemon::Daemon;

/// Accumulates families: each metric's HELP and TYPE once, then its samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The runs /metrics shows, read without reading every run: the active one, the newest
/// failover and switchover, and the newest completed failover.
pub async fn runs_shown(journal: &dyn Journal) -> Result<Vec<RunSummary>, StoreError> {
    let failover = |r: &RunSummary| r.header.kind == RunKind::Failover;
    let switchover = |r: &RunSummary| r.header.kind == RunKind::Switchover;
    let completed_failover = |r: &RunSummary| failover(r) && r.state == RunState::Completed;
    let mut runs: Vec<RunSummary> = journal.active().await?.into_iter().collect();
    runs.extend(
        history::newest_of(journal, &[&failover, &switchover, &completed_failover]).await?.into_iter().flatten(),
    );
    Ok(runs)
}

/// `runs`: None when the journal could not be read; its metrics are then left out and
/// `drover_journal_readable` is 0.
pub fn render(daemon: &Daemon, reports: &[VantageReport], runs: Option<&[RunSummary]>, now_ms: u64) -> String {
    let readable = runs.is_some();
    let runs = runs.unwrap_or_default();
    let mut m = Exposition(String::new());
    let shared = daemon.state();
    let vantage = daemon.vantage.as_str();

    m.family(
        "drover_check_healthy",
        "gauge",
        "1 when the check is healthy after its thresholds, 0 unhealthy, -1 unknown; per vantage",
    );
    for report in reports {
        for (region, view) in &report.regions {
            for (check, health) in &view.checks {
                let value = match health {
                    Health::Healthy => 1.0,
                    Health::Unhealthy => 0.0,
                    Health::Unknown => -1.0,
                };
                m.sample(
                    "drover_check_healthy",
                    &[("vantage", &report.vantage), ("region", region), ("check", check)],
                    value,
                );
            }
        }
    }
    m.family(
        "drover_readiness",
        "gauge",
        "Readiness rule level per region (region \"plan\": the whole plan): 0 pass, 1 warn, 2 fail; from the last round",
    );
    if let Some(report) = &shared.readiness {
        for ((rule, region), level) in drover_core::readiness::levels(&report.findings) {
            m.sample("drover_readiness", &[("rule", rule.as_str()), ("region", &region)], f64::from(level.gauge()));
        }
    }
    m.family("drover_check_latency_seconds", "gauge", "Duration of the last probe of the check from this vantage");
    m.family("drover_check_up", "gauge", "1 when the last probe of the check from this vantage succeeded");
    for ((region, check), entry) in &shared.checks {
        if let Some(last) = &entry.last {
            let labels = [("vantage", vantage), ("region", region.as_str()), ("check", check.as_str())];
            m.sample("drover_check_latency_seconds", &labels, last.latency.as_secs_f64());
            m.sample("drover_check_up", &labels, if last.ok { 1.0 } else { 0.0 });
        }
    }

    m.family(
        "drover_leader",
        "gauge",
        "1 when this daemon may start and drive runs: it leads the etcd election (or there is none)",
    );
    m.sample("drover_leader", &[("vantage", vantage)], if daemon.leads() { 1.0 } else { 0.0 });

    m.family(
        "drover_region_verdict",
        "gauge",
        "1 for the region's current verdict (up, down, suspect, unknown) by quorum of vantages",
    );
    for (region, verdict) in &shared.verdicts {
        for v in [Verdict::Up, Verdict::Down, Verdict::Suspect, Verdict::Unknown] {
            let value = if verdict.verdict == v { 1.0 } else { 0.0 };
            m.sample("drover_region_verdict", &[("region", region), ("verdict", v.as_str())], value);
        }
    }
    m.family("drover_vantage_fresh", "gauge", "1 when the vantage's latest report has not expired");
    for report in reports {
        m.sample(
            "drover_vantage_fresh",
            &[("vantage", &report.vantage)],
            if report.is_fresh(now_ms) { 1.0 } else { 0.0 },
        );
    }

    m.family(
        "drover_vantage_reports_dropped_total",
        "counter",
        "Reports from other vantages not counted, by why: wrong_name, unknown_name (not in vantages.names), unsigned, bad_signature, stale (replayed or old), future, unreadable",
    );
    let dropped = daemon.exchange.dropped();
    for why in Dropped::ALL {
        m.sample(
            "drover_vantage_reports_dropped_total",
            &[("reason", why.label())],
            *dropped.get(&why).unwrap_or(&0) as f64,
        );
    }

    m.family("drover_database_role", "gauge", "1 for the member's role (primary, standby, unreachable)");
    m.family("drover_database_replication_lag_bytes", "gauge", "WAL bytes the standby has not replayed");
    m.family(
        "drover_database_replication_lag_seconds",
        "gauge",
        "Seconds since the standby's last replayed commit on the primary",
    );
    for (region, member) in &shared.members {
        for role in ["primary", "standby", "unreachable"] {
            let value = if member.role_str() == role { 1.0 } else { 0.0 };
            m.sample("drover_database_role", &[("region", region), ("role", role)], value);
        }
        if let MemberStatus::Standby { lag_bytes, lag_seconds, .. } = member {
            // An unknown lag (RDS, Aurora: no bytes; no recent CloudWatch datapoint) has no sample.
            if let Some(bytes) = lag_bytes {
                m.sample("drover_database_replication_lag_bytes", &[("region", region)], *bytes as f64);
            }
            if let Some(seconds) = lag_seconds {
                m.sample("drover_database_replication_lag_seconds", &[("region", region)], *seconds);
            }
        }
    }

    m.family("drover_autopilot_refusals_total", "counter", "Automatic failovers refused, by the gate that refused");
    for label in GateRefusal::LABELS {
        m.sample(
            "drover_autopilot_refusals_total",
            &[("gate", label)],
            *shared.refusals.get(label).unwrap_or(&0) as f64,
        );
    }

    let last_failover = runs
        .iter()
        .filter(|r| r.header.kind == RunKind::Failover && r.state == RunState::Completed)
        .max_by_key(|r| r.finished_ms);
    m.family("drover_last_failover_timestamp_seconds", "gauge", "When the last completed failover ended (Unix time)");
    m.family(
        "drover_last_failover_duration_seconds",
        "gauge",
        "How long the last completed failover took, start to end",
    );
    if let Some(run) = last_failover {
        let finished = run.finished_ms.unwrap_or(run.started_ms);
        m.sample("drover_last_failover_timestamp_seconds", &[], finished as f64 / 1000.0);
        m.sample("drover_last_failover_duration_seconds", &[], finished.saturating_sub(run.started_ms) as f64 / 1000.0);
    }

    m.family("drover_run_step_duration_seconds", "gauge", "Duration of each step of the latest run of each kind");
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let Some(run) = runs.iter().filter(|r| r.header.kind == kind).max_by_key(|r| r.started_ms) else { continue };
        for step in &run.steps {
            if let (Some(start), Some(end)) = (step.started_ms, step.finished_ms) {
                let labels = [("kind", kind.as_str()), ("run", run.header.id.0.as_str()), ("step", step.kind.as_str())];
                m.sample("drover_run_step_duration_seconds", &labels, end.saturating_sub(start) as f64 / 1000.0);
            }
        }
    }
    if daemon.cx.plan.backup.as_ref().is_some_and(|b| b.schedule.is_some()) {
        let record = &shared.backups;
        m.family(
            "drover_backups_total",
            "counter",
            "Scheduled backups this daemon took since it started, by result (incomplete: some store not written)",
        );
        m.sample("drover_backups_total", &[("result", "ok")], record.succeeded as f64);
        m.sample("drover_backups_total", &[("result", "incomplete")], record.incomplete as f64);
        m.sample("drover_backups_total", &[("result", "failed")], record.failed as f64);
        m.family(
            "drover_backup_last_success_timestamp_seconds",
            "gauge",
            "When the newest backup in the plan's stores was taken (Unix time); alert when it grows old",
        );
        if let Some(ms) = record.last_success_ms {
            m.sample("drover_backup_last_success_timestamp_seconds", &[], ms as f64 / 1000.0);
        }
        m.family("drover_backup_last_objects", "gauge", "Objects in the last scheduled backup this daemon took");
        if let Some(objects) = record.last_objects {
            m.sample("drover_backup_last_objects", &[], objects as f64);
        }
    }
    m.family("drover_runs_active", "gauge", "1 while a run is running, paused or waiting for approval");
    if readable {
        m.sample("drover_runs_active", &[], if runs.iter().any(|r| r.state.is_active()) { 1.0 } else { 0.0 });
    }
    m.family(
        "drover_journal_readable",
        "gauge",
        "1 when this scrape could read the journal; 0: it could not (see the daemon's log), and the run metrics are missing",
    );
    m.sample("drover_journal_readable", &[], if readable { 1.0 } else { 0.0 });
    loops(&mut m, daemon);
    listener(&mut m);
    m.0
}

/// The daemon's loops under its supervisor (serve/supervisor.rs): restarts, and how long
/// since each last beat (a loop with no rounds, the leadership campaign, has no age).
fn loops(m: &mut Exposition, daemon: &Daemon) {
    let figures = daemon.loops.figures();
    m.family(
        "drover_loop_restarts_total",
        "counter",
        "Times the daemon's loop was restarted after it panicked or returned (probe REGION/CHECK, world, autopilot, peer NAME, backups, leadership)",
    );
    for f in &figures {
        m.sample("drover_loop_restarts_total", &[("loop", &f.name)], f.restarts as f64);
    }
    m.family(
        "drover_loop_heartbeat_age_seconds",
        "gauge",
        "Seconds since the loop last started a round; /readyz fails once it passes three rounds and 15 s",
    );
    for f in &figures {
        if let Some(age) = f.heartbeat_age {
            m.sample("drover_loop_heartbeat_age_seconds", &[("loop", &f.name)], age);
        }
    }
}

/// The API listener's own guard (serve/listener.rs): open connections, and the ones it closed.
fn listener(m: &mut Exposition) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &super::listener::STATS;
    m.family("drover_api_connections_open", "gauge", "Connections open to this daemon's API now");
    m.sample("drover_api_connections_open", &[], stats.open.load(Relaxed) as f64);
    m.family(
        "drover_api_connections_closed_total",
        "counter",
        "API connections the daemon closed to protect itself: evicted (idle, at --max-connections), refused (at the cap with none idle), tls (handshake failed or too slow), host (a Host name not served)",
    );
    for (reason, value) in [
        ("evicted", &stats.evicted),
        ("refused", &stats.refused),
        ("tls", &stats.tls_failed),
        ("host", &stats.wrong_host),
    ] {
        m.sample("drover_api_connections_closed_total", &[("reason", reason)], value.load(Relaxed) as f64);
    }
}
