//! The readiness rules' judgements, each with a passing and a failing case, over facts
//! built by hand (the adapters' side is proven against moto and PostgreSQL in
//! crates/drover/tests/readiness*.rs).

use std::collections::BTreeMap;
use std::time::Duration;

use drover_core::engine::Observed;
use drover_core::plan::{BackupSpec, BackupStoreSpec, Plan};
use drover_core::readiness::{
    BackupFact, DRILL_MAX_AGE, Facts, Finding, Level, Permissions, Rule, changes, evaluate, levels,
};
use drover_core::run::RunId;
use drover_core::testing::scenarios::two_region_plan;
use drover_core::world::{MemberStatus, ProbeResult, TrafficState};

const NOW: u64 = 100 * 24 * 3600 * 1000;

fn standby(lag: Option<f64>, upstream: Option<&str>) -> MemberStatus {
    MemberStatus::Standby {
        lag_bytes: None,
        lag_seconds: lag,
        replay_lsn: None,
        epoch: None,
        upstream: upstream.map(Into::into),
    }
}

fn primary() -> MemberStatus {
    MemberStatus::Primary { writable: true, epoch: Some(1), wal_lsn: None, sync_standbys: None }
}

fn probe(ok: bool) -> ProbeResult {
    ProbeResult { ok, latency: Duration::from_millis(1), detail: if ok { "200 OK".into() } else { "refused".into() } }
}

fn facts(west: MemberStatus, checks_ok: bool) -> Facts {
    Facts {
        observed: Observed {
            members: [("east".to_string(), primary()), ("west".to_string(), west)].into(),
            traffic: Ok(TrafficState { region: Some("east".into()), addresses: vec!["10.0.0.1".into()], epoch: 1 }),
            checks: [
                ("east".to_string(), vec![("api".to_string(), probe(true))]),
                ("west".to_string(), vec![("api".to_string(), probe(checks_ok))]),
            ]
            .into(),
            compute: BTreeMap::new(),
            epoch: 1,
            active_run: None,
            next_run: RunId("r1".into()),
        },
        problems: Default::default(),
        settings: BTreeMap::new(),
        health_checks: BTreeMap::new(),
        launch: BTreeMap::new(),
        backups: BTreeMap::new(),
        permissions: Permissions::NotNeeded,
        last_successful_drill_ms: Some(NOW - 24 * 3600 * 1000),
        drill_max_age: DRILL_MAX_AGE,
    }
}

fn plan() -> Plan {
    let mut plan = two_region_plan();
    plan.objectives.rto = Duration::from_secs(120);
    plan.objectives.rpo = Duration::from_secs(10);
    plan
}

fn of(findings: &[Finding], rule: Rule, region: Option<&str>) -> Vec<(Level, String)> {
    findings
        .iter()
        .filter(|f| f.rule == rule && f.region.as_deref() == region)
        .map(|f| (f.level, f.reason.clone()))
        .collect()
}

#[test]
fn a_caught_up_standby_passes_and_one_behind_the_rpo_or_not_streaming_fails() {
    let plan = plan();
    let ok = evaluate(&plan, &facts(standby(Some(2.0), Some("east")), true), NOW);
    assert_eq!(
        of(&ok, Rule::Database, Some("west")),
        [(Level::Pass, "the standby replicates from east, 2s behind (RPO objective 10s)".into())]
    );
    assert_eq!(of(&ok, Rule::Database, Some("east")), [(Level::Pass, "the primary takes writes".into())]);

    let behind = evaluate(&plan, &facts(standby(Some(45.0), Some("east")), true), NOW);
    assert_eq!(
        of(&behind, Rule::Database, Some("west")),
        [(Level::Fail, "the standby replicates from east 45s behind, more than the RPO objective 10s".into())]
    );
    let alone = evaluate(&plan, &facts(standby(Some(0.0), None), true), NOW);
    assert_eq!(of(&alone, Rule::Database, Some("west"))[0].0, Level::Fail);
    let unknown = evaluate(&plan, &facts(standby(None, Some("east")), true), NOW);
    assert_eq!(of(&unknown, Rule::Database, Some("west"))[0].0, Level::Warn, "unknown lag is never a pass");
    let gone = evaluate(&plan, &facts(MemberStatus::Unreachable { reason: "refused".into() }, true), NOW);
    assert_eq!(
        of(&gone, Rule::Database, Some("west")),
        [(Level::Fail, "the standby cannot be reached: refused".into())]
    );
}

#[test]
fn the_budget_adds_detection_promotion_switch_and_ttl_against_the_rto() {
    let mut plan = plan();
    // 1s × 3 + 60s + 0s + 1s = 64s.
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    assert_eq!(of(&f, Rule::Budget, None)[0].0, Level::Pass, "{f:?}");
    assert!(of(&f, Rule::Budget, None)[0].1.contains("= 64s, within the RTO objective 2m"), "{f:?}");
    plan.objectives.rto = Duration::from_secs(60);
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    assert_eq!(of(&f, Rule::Budget, None)[0].0, Level::Fail);
    assert!(of(&f, Rule::Budget, None)[0].1.contains("= 64s, more than the RTO objective 1m"), "{f:?}");
}

#[test]
fn an_rpo_of_zero_fails_with_asynchronous_replication_only() {
    let mut plan = plan();
    plan.objectives.rpo = Duration::ZERO;
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    assert!(of(&f, Rule::Budget, None).iter().all(|(l, _)| *l == Level::Pass), "synchronous: {f:?}");
    if let drover_core::plan::DatabaseSpec::Postgres(p) = &mut plan.database {
        p.replication = drover_core::plan::Replication::Asynchronous;
    }
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    assert!(
        of(&f, Rule::Budget, None).contains(&(
            Level::Fail,
            "objectives.rpo is 0s but postgres replication is asynchronous: a failover can lose acknowledged writes"
                .into()
        )),
        "{f:?}"
    );
}

#[test]
fn traffic_goes_by_the_regions_critical_checks_without_a_health_check() {
    let plan = plan();
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    assert_eq!(of(&f, Rule::Traffic, Some("west")), [(Level::Pass, "its critical checks pass".into())]);
    let f = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), false), NOW);
    assert_eq!(of(&f, Rule::Traffic, Some("west")), [(Level::Fail, "critical checks fail: api: refused".into())]);
    let mut unread = facts(standby(Some(0.0), Some("east")), true);
    unread.observed.traffic = Err("no answer".into());
    let f = evaluate(&plan, &unread, NOW);
    assert_eq!(of(&f, Rule::Traffic, None), [(Level::Fail, "the traffic record cannot be read: no answer".into())]);
}

#[test]
fn drills_pass_when_recent_warn_when_none_and_fail_when_too_old() {
    let plan = plan();
    let mut facts = facts(standby(Some(0.0), Some("east")), true);
    assert_eq!(of(&evaluate(&plan, &facts, NOW), Rule::Drills, None)[0].0, Level::Pass);
    facts.last_successful_drill_ms = None;
    assert_eq!(
        of(&evaluate(&plan, &facts, NOW), Rule::Drills, None)[0],
        (Level::Warn, "no drill recorded: the failover path is unproven".into())
    );
    facts.last_successful_drill_ms = Some(NOW - 36 * 24 * 3600 * 1000);
    assert_eq!(
        of(&evaluate(&plan, &facts, NOW), Rule::Drills, None)[0],
        (Level::Fail, "the last successful drill is 36 days old, older than 35 days".into())
    );
}

#[test]
fn backups_pass_when_young_and_whole_and_fail_when_late_broken_or_missing() {
    let mut plan = plan();
    plan.backup = Some(BackupSpec {
        secrets: false,
        key: None,
        keep_last: 0,
        keep_daily: 0,
        schedule: Some(Duration::from_secs(3600)),
        stores: [
            ("east".to_string(), BackupStoreSpec::Dir("/b/east".into())),
            ("west".to_string(), BackupStoreSpec::Dir("/b/west".into())),
        ]
        .into(),
        clusters: BTreeMap::new(),
    });
    let mut facts = facts(standby(Some(0.0), Some("east")), true);
    let hour = 3600 * 1000;
    facts.backups.insert("east".into(), BackupFact::Newest { id: "b1".into(), taken_ms: NOW - hour, whole: Ok(12) });
    facts
        .backups
        .insert("west".into(), BackupFact::Newest { id: "b2".into(), taken_ms: NOW - 2 * hour, whole: Ok(12) });
    let f = evaluate(&plan, &facts, NOW);
    assert_eq!(
        of(&f, Rule::Backups, Some("east")),
        [(Level::Pass, "the newest backup b1 is 1h old (schedule 1h), whole (12 objects checked)".into())]
    );
    // 2h > 1h + 30m.
    assert_eq!(
        of(&f, Rule::Backups, Some("west")),
        [(Level::Fail, "the newest backup b2 is 2h old, more than its schedule 1h plus 30m".into())]
    );
    facts.backups.insert(
        "east".into(),
        BackupFact::Newest { id: "b1".into(), taken_ms: NOW, whole: Err("object x: corrupt".into()) },
    );
    facts.backups.insert("west".into(), BackupFact::Empty);
    let f = evaluate(&plan, &facts, NOW);
    assert_eq!(
        of(&f, Rule::Backups, Some("east")),
        [(Level::Fail, "the newest backup b1 is not whole: object x: corrupt".into())]
    );
    assert_eq!(of(&f, Rule::Backups, Some("west")), [(Level::Fail, "the store holds no backup".into())]);
}

#[test]
fn permissions_pass_when_allowed_fail_when_denied_and_warn_when_not_asked() {
    let plan = plan();
    let mut facts = facts(standby(Some(0.0), Some("east")), true);
    facts.permissions = Permissions::Allowed { actions: 9, by: "iam:SimulatePrincipalPolicy".into() };
    assert_eq!(of(&evaluate(&plan, &facts, NOW), Rule::Permissions, None)[0].0, Level::Pass);
    facts.permissions = Permissions::Denied(vec!["rds:PromoteReadReplica on arn:aws:rds:us-west-1:1:db:x".into()]);
    assert_eq!(of(&evaluate(&plan, &facts, NOW), Rule::Permissions, None)[0].0, Level::Fail);
    facts.permissions = Permissions::CannotTell("not asked".into());
    assert_eq!(of(&evaluate(&plan, &facts, NOW), Rule::Permissions, None)[0].0, Level::Warn);
}

/// The daemon notifies a change of level once: the first round names what does not pass,
/// a later round only what moved.
#[test]
fn changes_name_each_rule_and_region_whose_level_moved() {
    let plan = plan();
    let first = evaluate(&plan, &facts(standby(Some(0.0), Some("east")), true), NOW);
    let first_changes = changes(None, &first);
    assert!(first_changes.iter().all(|c| c.to != Some(Level::Pass)), "{first_changes:?}");
    let before = levels(&first);
    assert!(changes(Some(&before), &first).is_empty(), "nothing moved");
    let second = evaluate(&plan, &facts(standby(Some(45.0), Some("east")), true), NOW);
    let moved = changes(Some(&before), &second);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (moved[0].rule, moved[0].region.as_str(), moved[0].from, moved[0].to),
        (Rule::Database, "west", Some(Level::Pass), Some(Level::Fail))
    );
    assert!(
        moved[0]
            .line()
            .starts_with("readiness database (west): pass -> fail: the standby replicates from east 45s behind"),
        "{}",
        moved[0].line()
    );
}
