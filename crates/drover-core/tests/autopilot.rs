//! Detection across vantages and the autopilot's gates: a minority never fails
//! over, and each gate refuses with its own reason.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_core::autopilot::{Context, Decision, GateRefusal, decide};
use drover_core::check::{CheckState, Health};
use drover_core::engine::Observed;
use drover_core::plan::Plan;
use drover_core::run::RunId;
use drover_core::testing::scenarios::two_region_plan;
use drover_core::vantage::{RegionVerdict, VantageReport, Verdict, acting_vantage, verdicts};
use drover_core::world::{MemberStatus, TrafficState};
use proptest::prelude::*;

const NOW: u64 = 1_000_000;

fn plan(quorum: u32) -> Plan {
    let mut plan = two_region_plan();
    plan.policy.quorum = quorum;
    plan.policy.auto_failover = true;
    plan.policy.require_approval = false;
    plan.policy.cooldown = Duration::from_secs(600);
    plan.policy.max_lag_on_failover = 1000;
    plan
}

/// A vantage's report after it saw each region's checks all fail (`down`) or all pass.
fn report(plan: &Plan, vantage: &str, east_down: bool, west_down: bool) -> VantageReport {
    let mut states = BTreeMap::new();
    for (region, down) in [("east", east_down), ("west", west_down)] {
        for check in plan.checks_for(region) {
            let mut s = CheckState::new(check.failure_threshold, check.success_threshold);
            for _ in 0..check.failure_threshold.max(check.success_threshold) {
                s.record(!down);
            }
            states.insert((region.to_string(), check.name.clone()), s);
        }
    }
    VantageReport::from_states(plan, vantage, &states, NOW - 500, 3000)
}

fn observed(west: MemberStatus, active_run: Option<&str>) -> Observed {
    Observed {
        members: BTreeMap::from([
            ("east".to_string(), MemberStatus::Unreachable { reason: "blackout".into() }),
            ("west".to_string(), west),
        ]),
        traffic: Ok(TrafficState { region: Some("east".into()), epoch: 1, addresses: vec![] }),
        checks: BTreeMap::new(),
        compute: BTreeMap::new(),
        epoch: 1,
        active_run: active_run.map(|r| RunId(r.into())),
        next_run: RunId("r-next".into()),
    }
}

fn standby(lag_bytes: u64) -> MemberStatus {
    MemberStatus::Standby {
        lag_bytes: Some(lag_bytes),
        lag_seconds: Some(0.0),
        replay_lsn: Some(100),
        epoch: None,
        upstream: None,
    }
}

fn decide_with(
    plan: &Plan,
    v: &BTreeMap<String, RegionVerdict>,
    o: &Observed,
    last_run_ended_ms: Option<u64>,
) -> Decision {
    decide(&Context { plan, verdicts: v, observed: o, primary: "east", last_run_ended_ms, now_ms: NOW })
}

#[test]
fn a_quorum_of_vantages_that_see_the_primary_down_fails_over() {
    let plan = plan(2);
    let reports = [
        report(&plan, "east", false, false),
        report(&plan, "west", true, false),
        report(&plan, "witness", true, false),
    ];
    let v = verdicts(&plan, &reports, NOW);
    assert_eq!(v["east"].verdict, Verdict::Down);
    assert_eq!(v["east"].down_votes, ["west", "witness"]);
    assert_eq!(v["west"].verdict, Verdict::Up);
    match decide_with(&plan, &v, &observed(standby(0), None), None) {
        Decision::Failover { from, to, reason } => {
            assert_eq!((from.as_str(), to.as_str()), ("east", "west"));
            assert!(reason.contains("west, witness"), "{reason}");
        }
        other => panic!("expected a failover, got {other:?}"),
    }
}

/// Three vantages, one partitioned from east: its view alone is a minority.
#[test]
fn one_partitioned_vantage_of_three_never_causes_a_failover() {
    let plan = plan(2);
    let reports = [
        report(&plan, "east", false, false),
        report(&plan, "west", true, false),
        report(&plan, "witness", false, false),
    ];
    let v = verdicts(&plan, &reports, NOW);
    assert_eq!((v["east"].verdict, v["east"].down_votes.as_slice()), (Verdict::Up, &["west".to_string()][..]));
    assert_eq!(decide_with(&plan, &v, &observed(standby(0), None), None), Decision::Hold);

    // The same when the other two are not heard from at all: suspect, and a refusal that says why.
    let v = verdicts(&plan, &reports[1..2], NOW);
    assert_eq!(v["east"].verdict, Verdict::Suspect);
    let decision = decide_with(&plan, &v, &observed(standby(0), None), None);
    let Decision::Refuse(refusal) = decision else { panic!("a minority failed over: {decision:?}") };
    assert_eq!(refusal.label(), "no_quorum");
    assert!(refusal.to_string().contains("1 of 2 vantages needed (west)"), "{refusal}");
}

#[test]
fn expired_reports_do_not_vote() {
    let plan = plan(2);
    let mut stale = report(&plan, "witness", true, false);
    stale.expires_ms = NOW - 1;
    let reports = [report(&plan, "west", true, false), stale];
    let v = verdicts(&plan, &reports, NOW);
    assert_eq!(v["east"].verdict, Verdict::Suspect, "the witness's old view must not make a quorum");
    assert_eq!(v["east"].down_votes, ["west"]);
}

#[test]
fn with_nobody_reporting_nothing_is_decided() {
    let plan = plan(2);
    let v = verdicts(&plan, &[], NOW);
    assert_eq!(v["east"].verdict, Verdict::Unknown);
    assert_eq!(decide_with(&plan, &v, &observed(standby(0), None), None), Decision::Hold);
}

#[test]
fn the_acting_vantage_is_the_first_fresh_one_outside_a_down_region() {
    let plan = plan(2);
    let reports = [
        report(&plan, "east", false, false),
        report(&plan, "west", true, false),
        report(&plan, "witness", true, false),
    ];
    let v = verdicts(&plan, &reports, NOW);
    assert_eq!(acting_vantage(&reports, &v, NOW), Some("west"), "east is down, so its vantage does not act");
    let healthy = [report(&plan, "east", false, false), report(&plan, "west", false, false)];
    let v = verdicts(&plan, &healthy, NOW);
    assert_eq!(acting_vantage(&healthy, &v, NOW), Some("east"));
}

#[test]
fn each_gate_refuses_with_its_own_reason() {
    let plan = plan(2);
    let down = [report(&plan, "west", true, false), report(&plan, "witness", true, false)];
    let v = verdicts(&plan, &down, NOW);

    // Standby unhealthy: the vantages also see west down.
    let both_down = [report(&plan, "west", true, true), report(&plan, "witness", true, true)];
    let vb = verdicts(&plan, &both_down, NOW);
    let refused = |d: Decision| match d {
        Decision::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let r = refused(decide_with(&plan, &vb, &observed(standby(0), None), None));
    assert_eq!(r.label(), "standby_unhealthy");
    assert!(r.to_string().contains("west is down to the vantages"), "{r}");

    // Standby unhealthy: its database is not a standby.
    let r = refused(decide_with(&plan, &v, &observed(MemberStatus::Unreachable { reason: "x".into() }, None), None));
    assert_eq!(r.label(), "standby_unhealthy");
    assert!(r.to_string().contains("west database is unreachable"), "{r}");

    let r = refused(decide_with(&plan, &v, &observed(standby(5000), None), None));
    assert_eq!(r, GateRefusal::LagTooHigh { region: "west".into(), lag_bytes: 5000, limit: 1000 });
    assert!(r.to_string().contains("5000 bytes behind"));

    let r = refused(decide_with(&plan, &v, &observed(standby(0), Some("r1-busy")), None));
    assert_eq!(r.label(), "active_run");
    assert!(r.to_string().contains("r1-busy"));

    let r = refused(decide_with(&plan, &v, &observed(standby(0), None), Some(NOW - 60_000)));
    assert_eq!(r, GateRefusal::Cooldown { since_s: 60, cooldown_s: 600 });

    // Once the cooldown has passed, it goes.
    let d = decide_with(&plan, &v, &observed(standby(0), None), Some(NOW - 601_000));
    assert!(matches!(d, Decision::Failover { .. }), "{d:?}");

    let labels: Vec<&str> = GateRefusal::LABELS.to_vec();
    assert_eq!(labels.len(), 6, "one label per gate, and one for the planner behind them");
}

#[test]
fn without_auto_failover_or_with_approval_required_a_person_is_asked() {
    let down_plan = plan(2);
    let down = [report(&down_plan, "west", true, false), report(&down_plan, "witness", true, false)];
    for (auto, approval) in [(false, false), (true, true)] {
        let mut plan = plan(2);
        plan.policy.auto_failover = auto;
        plan.policy.require_approval = approval;
        let v = verdicts(&plan, &down, NOW);
        let d = decide_with(&plan, &v, &observed(standby(0), None), None);
        assert!(
            matches!(&d, Decision::AskApproval { to, .. } if to == "west"),
            "auto {auto}, approval {approval}: {d:?}"
        );
    }
}

proptest! {
    /// Route 53 semantics for any sequence of results: the health is unhealthy
    /// exactly when the last `failure_threshold` results failed and healthy
    /// exactly when the last `success_threshold` passed; otherwise it keeps the
    /// health it had (unknown until the first run of either).
    #[test]
    fn thresholds_flip_only_on_consecutive_runs(
        failure_threshold in 1u32..6,
        success_threshold in 1u32..6,
        results in proptest::collection::vec(any::<bool>(), 0..60),
    ) {
        let mut state = CheckState::new(failure_threshold, success_threshold);
        let mut expected = Health::Unknown;
        for (i, &ok) in results.iter().enumerate() {
            let before = state.health();
            let changed = state.record(ok);
            let run: usize = results[..=i].iter().rev().take_while(|&&r| r == ok).count();
            let threshold = if ok { success_threshold } else { failure_threshold } as usize;
            if run >= threshold {
                expected = if ok { Health::Healthy } else { Health::Unhealthy };
            }
            prop_assert_eq!(state.health(), expected);
            prop_assert_eq!(changed, (state.health() != before).then_some(state.health()));
        }
    }

    /// However many vantages and whatever they see, a region is down only when
    /// at least `quorum` fresh vantages say so.
    #[test]
    fn down_needs_a_quorum_of_fresh_votes(
        quorum in 1u32..4,
        views in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..6),
    ) {
        let plan = plan(quorum);
        let reports: Vec<VantageReport> = views
            .iter()
            .enumerate()
            .map(|(i, &(down, fresh))| {
                let mut r = report(&plan, &format!("v{i}"), down, false);
                if !fresh { r.expires_ms = NOW; }
                r
            })
            .collect();
        let fresh_down = views.iter().filter(|&&(down, fresh)| down && fresh).count() as u32;
        let v = verdicts(&plan, &reports, NOW);
        prop_assert_eq!(v["east"].verdict == Verdict::Down, fresh_down >= quorum);
        let failover = matches!(
            decide_with(&plan, &v, &observed(standby(0), None), None),
            Decision::Failover { .. }
        );
        prop_assert!(!failover || fresh_down >= quorum);
    }
}

#[test]
fn a_returning_old_primary_with_an_older_epoch_is_stale() {
    use drover_core::vantage::stale_primaries;
    let primary = |writable: bool, epoch: Option<u64>| MemberStatus::Primary {
        writable,
        epoch,
        wal_lsn: Some(1),
        sync_standbys: None,
    };
    let members =
        BTreeMap::from([("east".to_string(), primary(true, Some(1))), ("west".to_string(), primary(true, Some(2)))]);
    assert_eq!(stale_primaries(&members), [("east".to_string(), 1, 2)]);
    let never_recorded =
        BTreeMap::from([("east".to_string(), primary(true, None)), ("west".to_string(), primary(true, Some(1)))]);
    assert_eq!(stale_primaries(&never_recorded), [("east".to_string(), 0, 1)]);
    let fenced =
        BTreeMap::from([("east".to_string(), primary(false, Some(1))), ("west".to_string(), primary(true, Some(2)))]);
    assert!(stale_primaries(&fenced).is_empty(), "a fenced old primary is not stale any more");
    let one = BTreeMap::from([("east".to_string(), primary(true, Some(1))), ("west".to_string(), standby(0))]);
    assert!(stale_primaries(&one).is_empty());
}
