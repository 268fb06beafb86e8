//! Vantages and their quorum: each drover daemon judges every region from where
//! it stands, shares that view with an expiry, and a region is *down* only when
//! `policy.quorum` fresh views agree. A vantage cut off from the rest (a
//! partition, its own region lost) sees others go quiet, never enough to decide.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::{CheckState, Health};
use crate::plan::Plan;

/// One vantage's view of one region: the health of each of its checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionView {
    /// Check name -> health after its thresholds.
    pub checks: BTreeMap<String, Health>,
    /// Any deciding check (`policy.detect_with`) is unhealthy.
    pub down: bool,
    /// Every deciding check is healthy.
    pub up: bool,
}

/// Everything one vantage says, valid until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VantageReport {
    pub vantage: String,
    pub at_ms: u64,
    pub expires_ms: u64,
    /// Service region -> view. Witnesses are not judged.
    pub regions: BTreeMap<String, RegionView>,
}

impl VantageReport {
    /// Builds a report from this vantage's check states, keyed (region, check).
    pub fn from_states(
        plan: &Plan,
        vantage: &str,
        states: &BTreeMap<(String, String), CheckState>,
        at_ms: u64,
        ttl_ms: u64,
    ) -> VantageReport {
        let regions = plan
            .service_regions()
            .map(|region| {
                let checks: BTreeMap<String, Health> = plan
                    .checks_for(region)
                    .map(|c| {
                        let health = states
                            .get(&(region.to_string(), c.name.clone()))
                            .map_or(Health::Unknown, CheckState::health);
                        (c.name.clone(), health)
                    })
                    .collect();
                let deciding: Vec<Health> =
                    plan.checks_for(region).filter(|c| c.critical).map(|c| checks[&c.name]).collect();
                let view = RegionView {
                    down: deciding.contains(&Health::Unhealthy),
                    up: !deciding.is_empty() && deciding.iter().all(|h| *h == Health::Healthy),
                    checks,
                };
                (region.to_string(), view)
            })
            .collect();
        VantageReport { vantage: vantage.into(), at_ms, expires_ms: at_ms + ttl_ms, regions }
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

/// How long a vantage's report stays valid: three rounds of its slowest check,
/// so one late exchange does not drop a vantage, and a dead one is gone in seconds.
pub fn report_ttl_ms(plan: &Plan) -> u64 {
    let slowest = plan.checks.values().map(|c| c.interval.as_millis() as u64).max().unwrap_or(1000);
    3 * slowest.max(1000)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A quorum of fresh vantages sees all deciding checks healthy.
    Up,
    /// A quorum of fresh vantages sees a deciding check unhealthy.
    Down,
    /// Some vantage sees it down, but fewer than the quorum: not enough to act on.
    Suspect,
    /// Too few fresh views either way (starting up, or vantages unreachable).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Down => "down",
            Verdict::Suspect => "suspect",
            Verdict::Unknown => "unknown",
        }
    }
}

/// A region's verdict, and who voted for what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionVerdict {
    pub verdict: Verdict,
    pub quorum: u32,
    pub down_votes: Vec<String>,
    pub up_votes: Vec<String>,
}

/// Each service region's verdict from the fresh reports (expired ones do not vote).
/// Down wins over up when both reach the quorum: losing writes to a region that
/// some vantages cannot reach is the failure drover exists to end.
pub fn verdicts(plan: &Plan, reports: &[VantageReport], now_ms: u64) -> BTreeMap<String, RegionVerdict> {
    let quorum = plan.policy.quorum.max(1);
    let fresh: Vec<&VantageReport> = reports.iter().filter(|r| r.is_fresh(now_ms)).collect();
    plan.service_regions()
        .map(|region| {
            let votes = |pick: fn(&RegionView) -> bool| -> Vec<String> {
                fresh.iter().filter(|r| r.regions.get(region).is_some_and(pick)).map(|r| r.vantage.clone()).collect()
            };
            let down_votes = votes(|v| v.down);
            let up_votes = votes(|v| v.up);
            let verdict = if down_votes.len() as u32 >= quorum {
                Verdict::Down
            } else if up_votes.len() as u32 >= quorum {
                Verdict::Up
            } else if !down_votes.is_empty() {
                Verdict::Suspect
            } else {
                Verdict::Unknown
            };
            (region.to_string(), RegionVerdict { verdict, quorum, down_votes, up_votes })
        })
        .collect()
}

/// Which vantage may start runs: the first by name among those with a fresh
/// report that are not located in a region judged down. Every vantage that
/// sees the same reports picks the same one; a vantage cut off from the others
/// sees no quorum, so its own pick never acts on a minority view.
pub fn acting_vantage<'a>(
    reports: &'a [VantageReport],
    verdicts: &BTreeMap<String, RegionVerdict>,
    now_ms: u64,
) -> Option<&'a str> {
    reports
        .iter()
        .filter(|r| r.is_fresh(now_ms))
        .filter(|r| verdicts.get(&r.vantage).is_none_or(|v| v.verdict != Verdict::Down))
        .map(|r| r.vantage.as_str())
        .min()
}

/// How vantages share their reports. Over HTTP, peers fetch each other's report
/// (`publish` has nothing to do); a consensus store (etcd) would put each report
/// under a key with a lease, so a dead vantage's view expires with it.
#[async_trait::async_trait]
pub trait VantageExchange: Send + Sync {
    /// Makes this vantage's latest report visible to the others.
    async fn publish(&self, report: &VantageReport);
    /// The latest report known from every other vantage (expired ones included:
    /// `verdicts` ignores them, the API shows them as stale).
    async fn others(&self) -> Vec<VantageReport>;
    /// Why some vantages could not be heard from, for people: vantage or URL -> cause.
    fn problems(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// Writable primaries that carry an older epoch than another writable primary:
/// an old primary that came back after a failover. Fencing them keeps "never
/// two primaries" true once the lost region returns. A member that recorded no
/// epoch counts as epoch 0.
pub fn stale_primaries(members: &BTreeMap<String, crate::world::MemberStatus>) -> Vec<(String, u64, u64)> {
    let writable: Vec<(&str, u64)> =
        crate::world::writable_primaries(members).into_iter().map(|(r, e)| (r, e.unwrap_or(0))).collect();
    let Some(newest) = writable.iter().map(|(_, e)| *e).max() else { return Vec::new() };
    writable.into_iter().filter(|(_, e)| *e < newest).map(|(r, e)| (r.to_string(), e, newest)).collect()
}
