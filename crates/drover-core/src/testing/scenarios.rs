//! The engine's generic proofs, runnable against any journal: every step is
//! idempotent, and a crash after any journal record resumes to the same world
//! with exactly one promotion.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{CrashingJournal, FakeWorld, WorldSnapshot};
use crate::engine::{Engine, Observed, Providers, Refusal, RetryPolicy, plan_failback, plan_reprotect, plan_run};
use crate::error::StoreError;
use crate::journal::Journal;
use crate::plan::*;
use crate::run::{Record, RunHeader, RunId, RunKind, RunState, StepOutcome};
use crate::secret::SecretRef;
use crate::world::Database;

/// A plan over the fake world: east primary, west standby, a witness.
pub fn two_region_plan() -> Plan {
    let member = |r: &str| PostgresMember { dsn: SecretRef::Env(format!("{}_DSN", r.to_uppercase())), host: None };
    Plan {
        name: "shop".into(),
        source: PathBuf::from("plan.yaml"),
        objectives: Objectives { rto: Duration::from_secs(30), rpo: Duration::ZERO },
        regions: [
            ("east".into(), Region { role: Role::Primary, aws_region: None }),
            ("west".into(), Region { role: Role::Standby, aws_region: None }),
            ("witness".into(), Region { role: Role::Witness, aws_region: None }),
        ]
        .into(),
        database: DatabaseSpec::Postgres(PostgresSpec {
            replication: Replication::Synchronous,
            members: [("east".into(), member("east")), ("west".into(), member("west"))].into(),
            promote_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
        }),
        traffic: TrafficSpec::Rfc2136(Rfc2136Spec {
            server: SocketAddr::from(([127, 0, 0, 1], 53)),
            zone: "app.test.".into(),
            record: "api.app.test.".into(),
            ttl: Duration::from_secs(1),
            tsig: Tsig {
                name: "drover".into(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: SecretRef::Env("TSIG".into()),
            },
            targets: [("east".into(), [10, 0, 0, 1].into()), ("west".into(), [10, 0, 0, 2].into())].into(),
        }),
        checks: [(
            "api".to_string(),
            Check {
                name: "api".into(),
                probe: Probe::Http { url: "http://{target}/healthz".into(), status: 200, body_contains: None },
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                failure_threshold: 3,
                success_threshold: 2,
                per_region: true,
                critical: true,
            },
        )]
        .into(),
        policy: Policy {
            auto_failover: false,
            require_approval: false,
            quorum: 1,
            max_lag_on_failover: 1 << 20,
            max_lag_time_on_failover: None,
            cooldown: Duration::from_secs(600),
        },
        runbooks: Runbooks::default(),
        steps: BTreeMap::new(),
        notify: NotifySpec::default(),
        backup: None,
        compute: BTreeMap::new(),
        aws: AwsSettings::default(),
        vantages: Default::default(),
        journal: Default::default(),
        drill: Default::default(),
    }
}

/// `plan()` with compute: an Auto Scaling group `web` at `percent`% of the primary's,
/// scaled by both runbooks.
pub fn plan_with_compute(percent: u32) -> Plan {
    let mut plan = two_region_plan();
    let target = |name: &str| ComputeTarget::AutoScalingGroup { name: name.into() };
    plan.compute.insert(
        "web".into(),
        ComputeSpec {
            name: "web".into(),
            kind: ComputeKind::AutoScalingGroup,
            capacity_percent: percent,
            ready_timeout: Duration::from_secs(60),
            targets: [("east".into(), target("web-east")), ("west".into(), target("web-west"))].into(),
        },
    );
    plan.runbooks = DatabaseKind::Postgres.default_runbooks(true);
    plan
}

/// `plan_with_compute(100)` with the plan's own steps in both runbooks: an observed HTTP
/// call after promote, an observed command before it, and an HTTP call without observe
/// (at least once) at the end. Their fake effects: see `FakeWorld`'s `Hooks`.
pub fn plan_with_hooks() -> Plan {
    let mut plan = plan_with_compute(100);
    let plain = |url: &str| crate::secret::SecretText::Plain(url.into());
    let http = |url: &str, observe: bool| {
        StepAction::Http(HttpAction {
            url: plain(url),
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: Vec::new(),
            timeout: Duration::from_secs(1),
            observe: observe.then(|| HttpObserve { url: plain(&format!("{url}/done")), expect_status: vec![200] }),
        })
    };
    plan.steps.insert("warm-cache".into(), http("http://hooks.test/warm-cache", true));
    plan.steps.insert("page-owner".into(), http("http://hooks.test/page-owner", false));
    plan.steps.insert(
        "drain-queue".into(),
        StepAction::Exec(ExecAction {
            argv: vec!["act".into(), "drain-queue".into()],
            on: RunSide::From,
            host: BTreeMap::new(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            observe: Some(vec!["done".into(), "drain-queue".into()]),
        }),
    );
    for steps in [&mut plan.runbooks.failover, &mut plan.runbooks.switchover] {
        let promote = steps.iter().position(|s| *s == StepKind::Promote).expect("every runbook promotes");
        steps.insert(promote + 1, StepKind::custom("warm-cache"));
        steps.insert(promote, StepKind::custom("drain-queue"));
        steps.push(StepKind::custom("page-owner"));
    }
    plan
}

/// The hook actions an observed step makes exactly once per run, whatever crashes.
pub const OBSERVED_HOOKS: [&str; 2] = ["http://hooks.test/warm-cache", "drain-queue"];

pub fn engine<'a>(plan: &'a Plan, journal: &'a dyn Journal, world: &'a FakeWorld) -> Engine<'a> {
    Engine::new(plan, journal, Providers::all(world)).with_retries(RetryPolicy::IMMEDIATE, RetryPolicy::IMMEDIATE)
}

/// Observes the fake world exactly as the CLI observes the real one.
pub async fn observe(plan: &Plan, journal: &dyn Journal, world: &FakeWorld) -> Observed {
    crate::engine::observe(plan, journal, Providers::all(world)).await.unwrap()
}

/// Every kind of run, each from the world it starts in (`world_for`).
pub const KINDS: [RunKind; 4] = [RunKind::Failover, RunKind::Switchover, RunKind::Reprotect, RunKind::Failback];

/// The world a run of `kind` starts from: as planned (east primary) for a failover or a
/// switchover to west; after a failover to west, east back but unfenced, for a reprotect
/// of east; with east reprotected, for a failback to east.
/// Each has `plan_with_compute`'s `web`: 3 in east, 1 in west.
pub fn world_for(kind: RunKind) -> FakeWorld {
    let world = match kind {
        RunKind::Failover | RunKind::Switchover => FakeWorld::two_regions(),
        RunKind::Reprotect => FakeWorld::after_failover(),
        RunKind::Failback => FakeWorld::reprotected(),
    };
    world.set_compute("web", "east", 3);
    world.set_compute("web", "west", 1);
    world
}

/// Gives a fresh journal the epoch its world implies (1 once a failover has happened).
pub async fn prepare_journal(kind: RunKind, journal: &dyn Journal) {
    if matches!(kind, RunKind::Reprotect | RunKind::Failback) {
        journal.compare_and_swap_epoch(0, 1).await.unwrap().expect("a fresh journal is at epoch 0");
    }
}

/// Plans a run of `kind` as the CLI does: failover and switchover to west, a reprotect
/// of east, a failback to the plan's home (east).
pub async fn plan_kind(
    kind: RunKind,
    plan: &Plan,
    journal: &dyn Journal,
    world: &FakeWorld,
) -> Result<RunHeader, Refusal> {
    let observed = observe(plan, journal, world).await;
    match kind {
        RunKind::Failover | RunKind::Switchover => plan_run(plan, kind, "west", &observed, "test"),
        RunKind::Reprotect => plan_reprotect(plan, "east", &observed, &world.host_access("east").await, "test"),
        RunKind::Failback => plan_failback(plan, None, &observed, "test"),
    }
}

/// What a completed run of `kind` leaves: (promotions, the store's epoch).
fn expected_end(kind: RunKind) -> (u32, u64) {
    match kind {
        RunKind::Failover | RunKind::Switchover => (1, 1),
        RunKind::Reprotect => (0, 1),
        RunKind::Failback => (1, 2),
    }
}

/// For each step of each kind of run: applying it twice leaves the world as applying it once.
pub async fn every_step_twice_is_once(new_journal: impl Fn() -> Arc<dyn Journal>) {
    let plan = plan_with_hooks();
    for kind in KINDS {
        let steps = crate::engine::runbook(&plan, kind);
        for upto in 0..steps.len() {
            let mut worlds: Vec<(WorldSnapshot, u64)> = Vec::new();
            for times in [1, 2] {
                let world = world_for(kind);
                let journal = new_journal();
                prepare_journal(kind, journal.as_ref()).await;
                let header = plan_kind(kind, &plan, journal.as_ref(), &world).await.unwrap();
                journal.begin(&header).await.unwrap();
                let e = engine(&plan, journal.as_ref(), &world);
                for (i, step) in steps.iter().enumerate().take(upto + 1) {
                    let n = if i == upto { times } else { 1 };
                    for _ in 0..n {
                        e.apply_step(step, &header)
                            .await
                            .unwrap_or_else(|err| panic!("{} {} apply #{n}: {err}", kind.as_str(), step.as_str()));
                    }
                }
                worlds.push((world.snapshot(), journal.epoch().await.unwrap()));
            }
            assert_eq!(
                worlds[0],
                worlds[1],
                "{}: applying '{}' twice changed the world",
                kind.as_str(),
                steps[upto].as_str()
            );
        }
    }
}

/// Runs a run of `kind` to completion, crashing after journal record 1, 2, … N in turn;
/// each time a fresh process resumes from the journal. The world must end the same as
/// an uninterrupted run, with exactly one promotion (none for a reprotect).
///
/// `open(case)` must return the same journal (reopened) when called again with the same case.
pub async fn crash_after_every_record(kind: RunKind, open: impl Fn(u64) -> Arc<dyn Journal>) {
    let plan = plan_with_hooks();
    let (promotions, epoch) = expected_end(kind);
    // The reference: no crash.
    let (reference, records) = {
        let world = world_for(kind);
        let journal = open(0);
        prepare_journal(kind, journal.as_ref()).await;
        let header = plan_kind(kind, &plan, journal.as_ref(), &world).await.unwrap();
        let summary = engine(&plan, journal.as_ref(), &world).start(&header).await.unwrap();
        assert_eq!(summary.state, RunState::Completed);
        (world.snapshot(), journal.entries(&header.id).await.unwrap().len() as u64)
    };
    assert_eq!(reference.promotions, promotions);
    let steps = crate::engine::runbook(&plan, kind).len() as u64;
    assert!(records > 2 * steps, "a run journals its start, intent+outcome per step, and its end");

    // A crash right after each record, then a crash that loses each record (from the
    // second: without its start there is no run): the world acted, the journal never heard.
    let cases = (1..=records).map(|n| (n, false)).chain((2..=records).map(|n| (n, true)));
    for (case, (crash_after, loses)) in cases.enumerate() {
        let case = case as u64 + 1;
        let world = world_for(kind);
        let id = {
            let journal = open(case);
            prepare_journal(kind, journal.as_ref()).await;
            let header = plan_kind(kind, &plan, journal.as_ref(), &world).await.unwrap();
            let crashing = if loses {
                CrashingJournal::losing(journal.as_ref(), crash_after)
            } else {
                CrashingJournal::new(journal.as_ref(), crash_after)
            };
            let result = engine(&plan, &crashing, &world).start(&header).await;
            assert!(result.is_err(), "crash at record {crash_after} must stop the run");
            header.id
        };
        let crash_after = if loses { format!("{crash_after}, lost") } else { crash_after.to_string() };
        // A new process: reopen the journal and resume.
        let journal = open(case);
        let summary = journal.summary(&id).await.unwrap();
        let resumed = if summary.state == RunState::Completed {
            summary
        } else {
            engine(&plan, journal.as_ref(), &world).resume(&id).await.unwrap()
        };
        let k = kind.as_str();
        assert_eq!(resumed.state, RunState::Completed, "{k}: crash after record {crash_after}: run did not complete");
        let now = world.snapshot();
        assert_eq!(now, reference, "{k}: crash after record {crash_after}: world differs from an uninterrupted run");
        assert_eq!(
            now.promotions, promotions,
            "{k}: crash after record {crash_after}: promoted {} times",
            now.promotions
        );
        assert_eq!(
            world.promote_calls(),
            promotions as u64,
            "{k}: crash after record {crash_after}: promote was called again on resume"
        );
        if kind.moves_primary() {
            for hook in OBSERVED_HOOKS {
                assert_eq!(
                    world.hook_calls(hook),
                    1,
                    "{k}: crash after record {crash_after}: {hook} was not made exactly once"
                );
            }
        }
        assert_eq!(
            journal.epoch().await.unwrap(),
            epoch,
            "{k}: crash after record {crash_after}: epoch raised wrongly"
        );
    }
}

/// The journal contract every store keeps: once a run has ended, nothing more is
/// appended to it, and a run that was never begun takes no records.
pub async fn an_ended_run_takes_no_more_records(journal: &dyn Journal) {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, journal, &world).await;
    let header = plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    journal.begin(&header).await.unwrap();
    journal.append(&header.id, Record::Aborted { reason: "by a person".into(), by: None }).await.unwrap();
    let late = journal.append(&header.id, Record::Resumed { by: None }).await;
    assert!(matches!(late, Err(StoreError::RunEnded { .. })), "appended to an aborted run: {late:?}");
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Aborted);
    let ghost = crate::run::RunId("no-such-run".into());
    let unknown = journal.append(&ghost, Record::Resumed { by: None }).await;
    assert!(matches!(unknown, Err(StoreError::UnknownRun(_))), "appended to a run never begun: {unknown:?}");
}

/// The journal contract on order: a record that cannot follow the run's entries is refused
/// (`IllegalOrder`, naming why) and leaves the run as it was; the legal order goes on.
pub async fn an_illegal_record_order_is_refused(journal: &dyn Journal) {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, journal, &world).await;
    let header = plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    let (first, second) = (header.steps[0].clone(), header.steps[1].clone());
    let done = |step, kind| Record::StepDone { step, kind, outcome: StepOutcome::Applied, detail: "done".into() };
    journal.begin(&header).await.unwrap();
    let refused = |what: &'static str, why: &'static str| (what, why);
    let cases = [
        (done(0, first.clone()), refused("a step finishing that never started", "never started")),
        (
            Record::StepIntent { step: 1, kind: second.clone() },
            refused("a step starting out of order", "first step not done is 0"),
        ),
        (Record::StepIntent { step: 0, kind: second.clone() }, refused("a step under another kind", "not")),
        (Record::StepIntent { step: 99, kind: first.clone() }, refused("a step the run does not have", "no step 99")),
        (Record::Resumed { by: None }, refused("a resume of a run that is not paused", "cannot resume")),
        (Record::Approved { by: "test".into() }, refused("an approval nobody asked for", "not waiting for approval")),
        (Record::Completed, refused("completing with steps not done", "not done")),
        (Record::Started { header: header.clone() }, refused("a second start", "starts once")),
    ];
    for (record, (what, why)) in cases {
        match journal.append(&header.id, record).await {
            Err(StoreError::IllegalOrder { why: said, .. }) => assert!(said.contains(why), "{what}: {said}"),
            other => panic!("{what} was not refused: {other:?}"),
        }
    }
    let before = journal.entries(&header.id).await.unwrap().len();
    assert_eq!(before, 1, "refused records leave only the start");
    journal.append(&header.id, Record::StepIntent { step: 0, kind: first.clone() }).await.unwrap();
    journal.append(&header.id, done(0, first.clone())).await.unwrap();
    let again = journal.append(&header.id, done(0, first)).await;
    assert!(matches!(again, Err(StoreError::IllegalOrder { .. })), "a step finished twice: {again:?}");
    assert_eq!(journal.summary(&header.id).await.unwrap().next_step(), Some(1));
}

/// One driver per run: while one driver holds a run, a second driver's resume or approval
/// is refused naming the holder, and nothing is done twice. `first` and `second` are two
/// handles on one store (two processes' views, or the same one twice).
pub async fn one_driver_per_run(first: &dyn Journal, second: &dyn Journal) {
    let plan = plan_with_hooks();
    let world = world_for(RunKind::Failover);
    let header = plan_kind(RunKind::Failover, &plan, first, &world).await.unwrap();
    // Started and not driven: what a driver that crashed right after `begin` leaves.
    first.begin(&header).await.unwrap();
    let a = engine(&plan, first, &world).with_driver("driver A");
    let b = engine(&plan, second, &world).with_driver("driver B");
    let held = a.hold(&header.id).await.unwrap();
    for refused in [b.resume(&header.id).await, b.approve(&header.id, "someone").await] {
        match refused {
            Err(crate::engine::EngineError::Store(StoreError::Driven { run, holder })) => {
                assert_eq!(run, header.id.0);
                assert!(holder.contains("driver A"), "the refusal names the holder: {holder}");
            }
            other => panic!("a second driver was not refused: {other:?}"),
        }
    }
    let done = a.resume_held(held, None).await.unwrap();
    assert_eq!(done.state, RunState::Completed);
    // Let go at the end: the next driver is told the run has ended, and does nothing.
    let late = b.resume(&header.id).await;
    assert!(matches!(late, Err(crate::engine::EngineError::Ended(..))), "{late:?}");
    assert_eq!(world.promote_calls(), 1, "promoted once");
    for hook in OBSERVED_HOOKS {
        assert_eq!(world.hook_calls(hook), 1, "{hook} made once");
    }
}

/// Begins `count` runs and ends each (aborted), oldest first: the first a switchover, the
/// rest failovers. Returns their ids, oldest first.
pub async fn ended_runs(journal: &dyn Journal, count: usize) -> Vec<RunId> {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, journal, &world).await;
    let header = plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let mut h = header.clone();
        h.id = RunId(format!("{}-{i:04}", header.id.0));
        if i == 0 {
            h.kind = RunKind::Switchover;
        }
        journal.begin(&h).await.unwrap();
        journal.append(&h.id, Record::Aborted { reason: "a drill".into(), by: None }).await.unwrap();
        ids.push(h.id);
    }
    ids
}

/// The journal contract on history: pages list every run once, newest first, and say
/// where the next begins; the active run is found and a second begin refused while it runs.
pub async fn pages_list_every_run_once_newest_first(journal: &dyn Journal) {
    use crate::history::PageRequest;
    let ids = ended_runs(journal, 7).await;
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let page = journal.page(&request).await.unwrap();
        pages += 1;
        assert!(page.runs.len() <= 3, "a page of 3 held {}", page.runs.len());
        seen.extend(page.runs.iter().map(|r| r.header.id.clone()));
        match page.next {
            Some(next) => request = PageRequest::after(3, Some(next)),
            None => break,
        }
    }
    let newest_first: Vec<RunId> = ids.iter().rev().cloned().collect();
    assert_eq!((seen, pages), (newest_first, 3));
    let unknown = journal.page(&PageRequest::after(3, Some(RunId("no-such-run".into())))).await;
    assert!(matches!(unknown, Err(StoreError::UnknownRun(_))), "a page before an unknown run: {unknown:?}");

    assert_eq!(journal.active().await.unwrap(), None);
    let mut header = journal.summary(&ids[1]).await.unwrap().header;
    header.id = RunId("r-active".into());
    journal.begin(&header).await.unwrap();
    assert_eq!(journal.active().await.unwrap().map(|r| r.header.id), Some(header.id.clone()));
    let mut second = header.clone();
    second.id = RunId("r-second".into());
    assert!(matches!(journal.begin(&second).await, Err(StoreError::ActiveRun { .. })));
    journal.append(&header.id, Record::Aborted { reason: "done".into(), by: None }).await.unwrap();
    assert_eq!(journal.active().await.unwrap(), None);
    journal.begin(&second).await.unwrap();
    let first = journal.page(&PageRequest::first(1)).await.unwrap();
    assert_eq!(first.runs[0].header.id, second.id, "the newest run heads the first page");
}

/// The journal contract on retention: `journal.keep` trims ended runs to what it keeps,
/// keeping the newest run of each kind and never the active run.
pub async fn retention_trims_to_keep(journal: &dyn Journal) {
    use crate::history::{Keep, every_run};
    const DAY_MS: u64 = 24 * 3_600_000;
    let ids = ended_runs(journal, 12).await;
    let now = crate::clock::now_ms();
    let pruned = journal.prune(&Keep { last: Some(5), days: None }, now).await.unwrap();
    assert_eq!((pruned.removed.len(), pruned.more), (6, false));
    let left: Vec<RunId> = every_run(journal).await.unwrap().into_iter().map(|r| r.header.id).collect();
    // The newest five, and the switchover: the only run of its kind.
    let mut kept: Vec<RunId> = ids[7..].iter().rev().cloned().collect();
    kept.push(ids[0].clone());
    assert_eq!(left, kept);
    for gone in &ids[1..7] {
        assert!(matches!(journal.summary(gone).await, Err(StoreError::UnknownRun(_))), "{gone} is still there");
    }
    // Everything began today: days: 1 keeps it all, whatever last says.
    let both = Keep { last: Some(1), days: Some(1) };
    assert!(journal.prune(&both, now).await.unwrap().removed.is_empty());
    // Two days on: the active run (also the newest failover) and the switchover stay.
    let mut header = journal.summary(&ids[11]).await.unwrap().header;
    header.id = RunId("r-active".into());
    journal.begin(&header).await.unwrap();
    let pruned = journal.prune(&both, now + 2 * DAY_MS).await.unwrap();
    assert_eq!(pruned.removed.len(), 5, "removed {:?}", pruned.removed);
    let left: Vec<RunId> = every_run(journal).await.unwrap().into_iter().map(|r| r.header.id).collect();
    assert_eq!(left, vec![header.id.clone(), ids[0].clone()]);
    assert_eq!(journal.active().await.unwrap().map(|r| r.header.id), Some(header.id));
}

/// A drill header for the drill scenarios.
pub fn drill_header(id: &str) -> crate::drill_log::DrillHeader {
    crate::drill_log::DrillHeader {
        id: RunId(id.into()),
        plan: "shop".into(),
        fault: "blackout".into(),
        region: "east".into(),
        from: "east".into(),
        to: "west".into(),
        requested_by: "cli".into(),
    }
}

/// The journal contract on drills: a drill's life is journaled and folded as written,
/// read back from the store; one drill is unfinished at a time and is found by its own
/// key; an impossible order and a record after the end are refused; pages list every
/// drill once, newest first; `journal.keep` trims ended drills, never the unfinished one.
pub async fn drills_are_journaled(journal: &dyn Journal) {
    use crate::drill_log::{DrillOutcome, DrillPhase, DrillRecord, DrillState, FaultState};
    use crate::history::{Keep, PageRequest};
    let first = drill_header("d1-a");
    journal.begin_drill(&first).await.unwrap();
    let id = &first.id;
    // Injected before its undo is captured: refused, and nothing is written.
    let refused = journal.append_drill(id, DrillRecord::FaultInjected).await;
    assert!(matches!(refused, Err(StoreError::IllegalDrillOrder { .. })), "{refused:?}");
    let captured = serde_json::json!({"rule": "drop-east", "table": 7});
    journal.append_drill(id, DrillRecord::FaultCaptured { state: captured.clone() }).await.unwrap();
    journal.append_drill(id, DrillRecord::FaultInjected).await.unwrap();
    let run = Some(RunId("r9-f".into()));
    journal
        .append_drill(id, DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: run.clone() })
        .await
        .unwrap();

    // A crash here: the next process finds the drill, its fault in place and what undoes it.
    let crashed = journal.active_drill().await.unwrap().expect("the unfinished drill is found");
    assert_eq!(
        (crashed.header.id.clone(), crashed.fault, crashed.needs_undo()),
        (id.clone(), FaultState::Injected, true)
    );
    assert_eq!(crashed.fault_state, Some(captured));
    assert_eq!(crashed.run_id(), run.as_ref());
    let second = journal.begin_drill(&drill_header("d2-b")).await;
    assert!(matches!(&second, Err(StoreError::ActiveDrill { active }) if active == "d1-a"), "{second:?}");

    journal
        .append_drill(id, DrillRecord::PhaseEnded { phase: DrillPhase::Failover, run: None, state: "paused".into() })
        .await
        .unwrap();
    journal.append_drill(id, DrillRecord::FaultUndone { detail: "rule drop-east deleted".into() }).await.unwrap();
    let abort = DrillRecord::Ended { outcome: DrillOutcome::Aborted, reason: Some("the run paused".into()) };
    journal.append_drill(id, abort).await.unwrap();
    assert_eq!(journal.active_drill().await.unwrap(), None, "an ended drill frees the slot");
    let ended = journal.drill(id).await.unwrap();
    assert_eq!((ended.state, ended.fault, ended.needs_undo()), (DrillState::Aborted, FaultState::Undone, false));
    assert_eq!(ended.phases[0].state.as_deref(), Some("paused"));
    let late = journal.append_drill(id, DrillRecord::FaultInjected).await;
    assert!(matches!(late, Err(StoreError::DrillEnded { .. })), "{late:?}");
    let unknown = journal.drill(&RunId("d-none".into())).await;
    assert!(matches!(unknown, Err(StoreError::UnknownDrill(_))), "{unknown:?}");

    // Six more drills, each ended; pages of 3 list all seven once, newest first.
    let mut ids = vec![id.clone()];
    for n in 2..=7 {
        let header = drill_header(&format!("d{n}-x"));
        journal.begin_drill(&header).await.unwrap();
        journal
            .append_drill(&header.id, DrillRecord::Ended { outcome: DrillOutcome::Failed, reason: Some("x".into()) })
            .await
            .unwrap();
        ids.push(header.id);
    }
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    loop {
        let page = journal.drill_page(&request).await.unwrap();
        assert!(page.drills.len() <= 3);
        seen.extend(page.drills.iter().map(|d| d.header.id.clone()));
        match page.next {
            Some(next) => request = PageRequest::after(3, Some(next)),
            None => break,
        }
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>());

    // Retention: keep the newest two; an unfinished drill stays however old.
    let unfinished = drill_header("d8-u");
    journal.begin_drill(&unfinished).await.unwrap();
    let pruned = journal.prune_drills(&Keep { last: Some(2), days: None }, crate::clock::now_ms()).await.unwrap();
    let mut removed = pruned.removed.clone();
    removed.sort();
    let mut expected: Vec<RunId> = ids[..6].to_vec();
    expected.sort();
    assert_eq!(removed, expected, "the newest two (the unfinished drill and d7) stay");
    let left: Vec<RunId> =
        journal.drill_page(&PageRequest::first(50)).await.unwrap().drills.into_iter().map(|d| d.header.id).collect();
    assert_eq!(left, vec![unfinished.id.clone(), ids[6].clone()]);
    assert!(matches!(journal.drill(&ids[0]).await, Err(StoreError::UnknownDrill(_))));
    assert_eq!(journal.active_drill().await.unwrap().map(|d| d.header.id), Some(unfinished.id));
    // Runs are untouched by drills: their history is its own.
    assert_eq!(journal.active().await.unwrap(), None);
}
