//! Vantages and their quorum: each drover daemon judges every region from where
//! it stands, shares that view with an expiry, and a region is *down* only when
//! `policy.quorum` fresh views agree. A vantage cut off from the rest (a
//! partition, its own region lost) sees others go quiet, never enough to decide.

use std::collections::BTreeMap;
use std::time::Duration;

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
    /// HMAC-SHA256 (hex) over the rest with the plan's peer key (`ReportRules::seal`);
    /// absent when the plan sets no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
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
        VantageReport {
            vantage: vantage.into(),
            at_ms,
            expires_ms: at_ms.saturating_add(ttl_ms),
            regions,
            signature: None,
        }
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

/// How long a vantage's report stays valid: three rounds of its slowest check,
/// so one late exchange does not drop a vantage, and a dead one is gone in seconds.
/// Saturating, so no interval can wrap it to a TTL that makes every report stale at
/// birth (the plan reader already caps intervals at `duration::MAX_DURATION`).
pub fn report_ttl_ms(plan: &Plan) -> u64 {
    let slowest = plan.checks.values().map(|c| c.interval).max().unwrap_or(Duration::from_secs(1));
    let slowest_ms = u64::try_from(slowest.as_millis()).unwrap_or(u64::MAX);
    slowest_ms.max(1000).saturating_mul(3)
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
    /// Reports from others not counted since start, by why (`ReportRules::admit`).
    fn dropped(&self) -> BTreeMap<Dropped, u64> {
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

// ---------------------------------------------------------------------------------------
// Which reports count: named as the peer they came from, listed in the plan, and, when
// the plan sets a peer key, signed with it recently.

/// The shared peer key (and, during a rotation, the one before it), as bytes.
/// Debug never prints them.
#[derive(Clone)]
pub struct PeerKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl PeerKeys {
    pub fn new(current: impl Into<Vec<u8>>, previous: Option<Vec<u8>>) -> PeerKeys {
        PeerKeys { current: current.into(), previous }
    }
}

impl std::fmt::Debug for PeerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKeys(<redacted>)")
    }
}

/// Why a report was not counted. Each is a label of `drover_vantage_reports_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dropped {
    /// It names another vantage than the one it came from (the peer's given name, the etcd key).
    WrongName,
    /// Its vantage is not in the plan's `vantages.names`.
    UnknownName,
    /// The plan sets a peer key and the report carries no signature.
    Unsigned,
    /// The signature is not the peer key's over this report.
    BadSignature,
    /// Signed longer ago than a report's time to live, on this clock: a replay (or a clock far behind).
    Stale,
    /// Signed later than a report's time to live from now, on this clock: a clock far ahead.
    Future,
    /// Not a report at all (etcd only: the value is not one).
    Unreadable,
}

impl Dropped {
    pub const ALL: [Dropped; 7] = [
        Dropped::WrongName,
        Dropped::UnknownName,
        Dropped::Unsigned,
        Dropped::BadSignature,
        Dropped::Stale,
        Dropped::Future,
        Dropped::Unreadable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Dropped::WrongName => "wrong_name",
            Dropped::UnknownName => "unknown_name",
            Dropped::Unsigned => "unsigned",
            Dropped::BadSignature => "bad_signature",
            Dropped::Stale => "stale",
            Dropped::Future => "future",
            Dropped::Unreadable => "unreadable",
        }
    }

    /// For people: what was wrong with the report of the vantage expected as `name`, and
    /// what to check. `said`: the name the report gave itself.
    pub fn explain(self, name: &str, said: &str) -> String {
        let said: String = said.chars().take(64).collect();
        match self {
            Dropped::WrongName => format!("answered as vantage '{said}', not '{name}': its report is not counted"),
            Dropped::UnknownName => {
                format!("vantage '{name}' is not in the plan's vantages.names: its report is not counted")
            }
            Dropped::Unsigned => format!(
                "the report of '{name}' is not signed, and the plan sets vantages.key: not counted (give that daemon the plan with the key)"
            ),
            Dropped::BadSignature => format!(
                "the report of '{name}' is not signed with the plan's peer key: not counted (check that every daemon has the same vantages.key)"
            ),
            Dropped::Stale => format!(
                "the report of '{name}' was signed more than a report's time to live ago on this clock: a replay, or clocks apart; not counted"
            ),
            Dropped::Future => format!(
                "the report of '{name}' was signed more than a report's time to live from now on this clock: clocks apart; not counted"
            ),
            Dropped::Unreadable => format!("the value under '{name}' is not a vantage report: not counted"),
        }
    }
}

/// What a receiver checks on every report from another vantage, and how this vantage signs its own.
#[derive(Clone, Debug)]
pub struct ReportRules {
    /// The plan's name, part of what is signed: a report for one plan never counts for another.
    pub plan: String,
    /// The plan's `vantages.names`; empty: any name.
    pub names: Vec<String>,
    /// None: reports are neither signed nor checked for a signature.
    pub keys: Option<PeerKeys>,
    /// How long a report is trusted after it was signed, or received when unsigned.
    pub ttl_ms: u64,
}

impl ReportRules {
    /// The rules of `plan`, with its key bytes (read by the caller from `vantages.key`).
    pub fn new(plan: &Plan, keys: Option<PeerKeys>) -> ReportRules {
        ReportRules { plan: plan.name.clone(), names: plan.vantages.names.clone(), keys, ttl_ms: report_ttl_ms(plan) }
    }

    /// Whether the plan lets vantage `name` vote.
    pub fn listed(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| n == name)
    }

    /// Signs `report` with the current key (nothing without one).
    pub fn seal(&self, report: &mut VantageReport) {
        report.signature = None;
        if let Some(keys) = &self.keys {
            let tag = ring::hmac::sign(&hmac_key(&keys.current), &self.signed_bytes(report));
            report.signature = Some(hex(tag.as_ref()));
        }
    }

    /// `report`, received from the vantage known as `name` at `now_ms` on this clock, if it
    /// counts; its expiry is cut to at most one time to live after it was signed (or
    /// received, unsigned), whatever it claims.
    pub fn admit(&self, mut report: VantageReport, name: &str, now_ms: u64) -> Result<VantageReport, Dropped> {
        if report.vantage != name {
            return Err(Dropped::WrongName);
        }
        if !self.listed(name) {
            return Err(Dropped::UnknownName);
        }
        let mut trusted_until = now_ms.saturating_add(self.ttl_ms);
        if let Some(keys) = &self.keys {
            let Some(signature) = report.signature.as_deref().and_then(unhex) else {
                return Err(if report.signature.is_none() { Dropped::Unsigned } else { Dropped::BadSignature });
            };
            let message = self.signed_bytes(&report);
            let verifies = |key: &[u8]| ring::hmac::verify(&hmac_key(key), &message, &signature).is_ok();
            if !(verifies(&keys.current) || keys.previous.as_deref().is_some_and(verifies)) {
                return Err(Dropped::BadSignature);
            }
            // The signed time is the one a replay cannot change.
            if report.at_ms.saturating_add(self.ttl_ms) <= now_ms {
                return Err(Dropped::Stale);
            }
            if report.at_ms > now_ms.saturating_add(self.ttl_ms) {
                return Err(Dropped::Future);
            }
            trusted_until = trusted_until.min(report.at_ms.saturating_add(self.ttl_ms));
        }
        report.expires_ms = report.expires_ms.min(trusted_until);
        Ok(report)
    }

    /// What is signed: a fixed label, the plan's name, and the report's JSON without its
    /// signature (fields in declared order, maps sorted by key: the same bytes on every side).
    fn signed_bytes(&self, report: &VantageReport) -> Vec<u8> {
        let unsigned = VantageReport { signature: None, ..report.clone() };
        let mut bytes = format!("drover vantage report v1\n{}\n", self.plan).into_bytes();
        bytes.extend(serde_json::to_vec(&unsigned).expect("a report is always JSON"));
        bytes
    }
}

fn hmac_key(bytes: &[u8]) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const TTL: u64 = 3_000;

    fn rules(keys: Option<PeerKeys>, names: &[&str]) -> ReportRules {
        ReportRules { plan: "shop".into(), names: names.iter().map(|n| n.to_string()).collect(), keys, ttl_ms: TTL }
    }

    fn report(vantage: &str, at_ms: u64) -> VantageReport {
        let view = RegionView { checks: BTreeMap::new(), down: true, up: false };
        VantageReport {
            vantage: vantage.into(),
            at_ms,
            expires_ms: u64::MAX,
            regions: [("east".to_string(), view)].into(),
            signature: None,
        }
    }

    fn signed(rules: &ReportRules, vantage: &str, at_ms: u64) -> VantageReport {
        let mut r = report(vantage, at_ms);
        rules.seal(&mut r);
        r
    }

    /// A plan's slowest interval times three once wrapped past u64::MAX: the TTL became
    /// tiny and every report, this vantage's own included, was stale when made.
    #[test]
    fn a_long_interval_gives_a_long_ttl_never_a_wrapped_one() {
        let mut plan = crate::testing::scenarios::two_region_plan();
        for (interval, ttl) in [
            (Duration::MAX, u64::MAX),
            (crate::duration::MAX_DURATION, 3 * crate::duration::MAX_DURATION.as_millis() as u64),
        ] {
            plan.checks.get_mut("api").unwrap().interval = interval;
            assert_eq!(report_ttl_ms(&plan), ttl);
            let made = VantageReport::from_states(&plan, "east", &BTreeMap::new(), 1_000, report_ttl_ms(&plan));
            assert!(made.is_fresh(1_000 + 3_600_000), "{interval:?}: {made:?}");
        }
    }

    #[test]
    fn a_report_signed_with_the_key_counts_for_one_ttl_after_it_was_signed() {
        let rules = rules(Some(PeerKeys::new(KEY, None)), &[]);
        let admitted = rules.admit(signed(&rules, "west", 10_000), "west", 10_500).unwrap();
        // Trusted until signed + TTL, not the u64::MAX it claims.
        assert_eq!(admitted.expires_ms, 13_000);
        assert!(admitted.is_fresh(12_999) && !admitted.is_fresh(13_000));
    }

    #[test]
    fn a_report_without_the_right_signature_does_not_count() {
        let rules = rules(Some(PeerKeys::new(KEY, None)), &[]);
        assert_eq!(rules.admit(report("west", 10_000), "west", 10_000), Err(Dropped::Unsigned));
        let other = self::rules(Some(PeerKeys::new(b"another key, just as long, but not ours".to_vec(), None)), &[]);
        assert_eq!(rules.admit(signed(&other, "west", 10_000), "west", 10_000), Err(Dropped::BadSignature));
        // Any change to what was signed breaks it: the name, the time, a view.
        let mut renamed = signed(&rules, "west", 10_000);
        renamed.vantage = "aaa".into();
        assert_eq!(rules.admit(renamed, "aaa", 10_000), Err(Dropped::BadSignature));
        let mut later = signed(&rules, "west", 10_000);
        later.at_ms = 20_000;
        assert_eq!(rules.admit(later, "west", 20_000), Err(Dropped::BadSignature));
        let mut flipped = signed(&rules, "west", 10_000);
        flipped.regions.get_mut("east").unwrap().down = false;
        assert_eq!(rules.admit(flipped, "west", 10_000), Err(Dropped::BadSignature));
        let mut garbage = signed(&rules, "west", 10_000);
        garbage.signature = Some("zz".into());
        assert_eq!(rules.admit(garbage, "west", 10_000), Err(Dropped::BadSignature));
        // Signed for another plan with the same key.
        let other_plan = ReportRules { plan: "other".into(), ..rules.clone() };
        assert_eq!(rules.admit(signed(&other_plan, "west", 10_000), "west", 10_000), Err(Dropped::BadSignature));
    }

    #[test]
    fn an_old_signed_report_replayed_does_not_count_nor_one_from_far_ahead() {
        let rules = rules(Some(PeerKeys::new(KEY, None)), &[]);
        let old = signed(&rules, "west", 10_000);
        assert!(rules.admit(old.clone(), "west", 12_999).is_ok());
        assert_eq!(rules.admit(old, "west", 13_000), Err(Dropped::Stale));
        assert_eq!(rules.admit(signed(&rules, "west", 20_000), "west", 16_999), Err(Dropped::Future));
    }

    #[test]
    fn a_report_counts_only_under_the_name_it_came_from_and_one_the_plan_lists() {
        let rules = rules(Some(PeerKeys::new(KEY, None)), &["east", "west"]);
        assert_eq!(rules.admit(signed(&rules, "west", 10_000), "east", 10_000), Err(Dropped::WrongName));
        assert_eq!(rules.admit(signed(&rules, "witness", 10_000), "witness", 10_000), Err(Dropped::UnknownName));
        assert!(rules.admit(signed(&rules, "west", 10_000), "west", 10_000).is_ok());
    }

    #[test]
    fn during_a_rotation_the_previous_key_is_accepted_and_the_new_one_signs() {
        let old = rules(Some(PeerKeys::new(b"the old key, thirty-two bytes long!".to_vec(), None)), &[]);
        let rotating = rules(Some(PeerKeys::new(KEY, Some(b"the old key, thirty-two bytes long!".to_vec()))), &[]);
        let new = rules(Some(PeerKeys::new(KEY, None)), &[]);
        // A daemon still on the old key is heard by one rotating; one rotating is heard by both.
        assert!(rotating.admit(signed(&old, "west", 10_000), "west", 10_000).is_ok());
        assert!(new.admit(signed(&rotating, "west", 10_000), "west", 10_000).is_ok());
        assert_eq!(new.admit(signed(&old, "west", 10_000), "west", 10_000), Err(Dropped::BadSignature));
    }

    #[test]
    fn without_a_key_a_report_is_unsigned_and_trusted_one_ttl_after_it_arrived() {
        let rules = rules(None, &[]);
        let r = signed(&rules, "west", 0);
        assert_eq!(r.signature, None);
        assert_eq!(rules.admit(r, "west", 50_000).unwrap().expires_ms, 53_000);
        assert_eq!(format!("{:?}", PeerKeys::new(KEY, None)), "PeerKeys(<redacted>)");
    }
}
