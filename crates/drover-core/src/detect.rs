//! Detection from one vantage: probe a region's deciding checks on their
//! intervals, feed each result to its threshold state machine, and report the
//! moment the region is lost.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::check::{CheckState, Health};
use crate::plan::{Check, Plan};
use crate::world::{ProbeResult, Prober};

/// A change of one check's health, for progress output and metrics.
#[derive(Clone, Debug)]
pub struct Transition<'a> {
    pub check: &'a str,
    pub health: Health,
    pub last: ProbeResult,
}

/// The checks that decide whether a region is lost (`policy.detect_with`).
pub fn deciding_checks<'a>(plan: &'a Plan, region: &'a str) -> Vec<&'a Check> {
    plan.checks_for(region).filter(|c| c.critical).collect()
}

/// A region is down once any deciding check has gone unhealthy.
pub fn region_down(states: &BTreeMap<&str, CheckState>) -> bool {
    states.values().any(|s| s.health() == Health::Unhealthy)
}

/// Probes until the region is down (returns true) or `give_up` passes (false).
/// Each check runs on its own interval; probes of one round run concurrently.
pub async fn until_down(
    plan: &Plan,
    prober: &dyn Prober,
    region: &str,
    give_up: Duration,
    on_transition: &(dyn Fn(&Transition<'_>) + Send + Sync),
) -> bool {
    let checks = deciding_checks(plan, region);
    if checks.is_empty() {
        return false;
    }
    let start = tokio::time::Instant::now();
    let mut states: BTreeMap<&str, CheckState> =
        checks.iter().map(|c| (c.name.as_str(), CheckState::new(c.failure_threshold, c.success_threshold))).collect();
    let mut due: BTreeMap<&str, tokio::time::Instant> = checks.iter().map(|c| (c.name.as_str(), start)).collect();
    while start.elapsed() < give_up {
        let now = tokio::time::Instant::now();
        let ready: Vec<&Check> = checks.iter().copied().filter(|c| due[c.name.as_str()] <= now).collect();
        let results = join_probes(prober, &ready, region).await;
        for (check, result) in ready.iter().zip(results) {
            due.insert(check.name.as_str(), now + check.interval);
            let state = states.get_mut(check.name.as_str()).expect("state per check");
            if let Some(health) = state.record(result.ok) {
                on_transition(&Transition { check: &check.name, health, last: result });
            }
        }
        if region_down(&states) {
            return true;
        }
        let next = due.values().min().copied().unwrap_or(now);
        tokio::time::sleep_until(next.max(tokio::time::Instant::now())).await;
    }
    false
}

async fn join_probes(prober: &dyn Prober, checks: &[&Check], region: &str) -> Vec<ProbeResult> {
    let futures: Vec<_> = checks.iter().map(|c| prober.probe(c, region)).collect();
    crate::join::join_all(futures).await
}
