//! The engine's proofs against the in-memory journal (the redb store runs them too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_core::engine::{Refusal, plan_failback, plan_reprotect, plan_run};
use drover_core::journal::Journal;
use drover_core::plan::Plan;
use drover_core::run::{RunHeader, RunKind, RunState, StepState};
use drover_core::testing::scenarios::{
    an_ended_run_takes_no_more_records, an_illegal_record_order_is_refused, crash_after_every_record, engine,
    every_step_twice_is_once, observe, one_driver_per_run, plan_kind, two_region_plan,
};
use drover_core::testing::{FakeData, FakeWorld, MemoryJournal};
use drover_core::world::{Database, HostAccess, MemberStatus, RejoinMethod};

fn memory_journals() -> impl Fn(u64) -> Arc<dyn Journal> {
    let journals: Mutex<HashMap<u64, Arc<dyn Journal>>> = Mutex::default();
    move |case| journals.lock().unwrap().entry(case).or_insert_with(|| Arc::new(MemoryJournal::default())).clone()
}

#[tokio::test]
async fn every_step_applied_twice_leaves_the_same_world() {
    every_step_twice_is_once(|| Arc::new(MemoryJournal::default())).await;
}

#[tokio::test]
async fn a_second_driver_of_a_run_is_refused_and_nothing_happens_twice() {
    let journal = MemoryJournal::default();
    one_driver_per_run(&journal, &journal).await;
}

#[tokio::test]
async fn failover_crash_after_every_journal_record_resumes_to_one_promotion() {
    crash_after_every_record(RunKind::Failover, memory_journals()).await;
}

#[tokio::test]
async fn switchover_crash_after_every_journal_record_resumes_to_one_promotion() {
    crash_after_every_record(RunKind::Switchover, memory_journals()).await;
}

#[tokio::test]
async fn reprotect_and_failback_crash_after_every_journal_record_resume_to_the_same_world() {
    for kind in [RunKind::Reprotect, RunKind::Failback] {
        crash_after_every_record(kind, memory_journals()).await;
    }
}

/// The epoch a fresh journal holds once a failover has happened elsewhere.
async fn journal_at_epoch_1() -> MemoryJournal {
    let journal = MemoryJournal::default();
    journal.compare_and_swap_epoch(0, 1).await.unwrap().unwrap();
    journal
}

#[tokio::test]
async fn reprotect_makes_the_returned_old_primary_a_standby_and_says_how() {
    let plan = two_region_plan();
    let world = FakeWorld::after_failover();
    let journal = journal_at_epoch_1().await;
    let header = plan_kind(RunKind::Reprotect, &plan, &journal, &world).await.unwrap();
    assert_eq!((header.kind, header.from.as_str(), header.to.as_str()), (RunKind::Reprotect, "east", "west"));
    assert_eq!(header.epoch, 1, "a reprotect keeps the current epoch");
    assert_eq!(header.steps, [drover_core::plan::StepKind::Rejoin]);
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    let detail = run.steps[0].detail.as_deref().unwrap();
    assert_eq!(detail, "east is a standby streaming from west; rejoined with pg_rewind");
    assert_eq!(RejoinMethod::name_in(detail), Some("pg_rewind"));
    let w = world.snapshot();
    assert_eq!((w.promotions, w.traffic_region.as_str(), w.traffic_epoch), (0, "west", 1), "nothing else moved");
    assert_eq!(journal.epoch().await.unwrap(), 1, "the epoch is not raised");
    let completed = world.notified().into_iter().last().unwrap();
    assert_eq!(completed.reason, "east is a streaming standby of west");
}

#[tokio::test]
async fn reprotect_rebuilds_from_a_base_backup_when_pg_rewind_cannot_or_the_data_is_gone() {
    let plan = two_region_plan();
    for (data, says) in [
        (FakeData::Unrewindable, "pg_rewind impossible: could not find common ancestor"),
        (FakeData::Lost, "there was no old data directory to keep"),
    ] {
        let world = FakeWorld::after_failover();
        world.set_data("east", data);
        let journal = journal_at_epoch_1().await;
        let observed = observe(&plan, &journal, &world).await;
        if data == FakeData::Lost {
            assert!(matches!(observed.members["east"], MemberStatus::Unreachable { .. }), "its server is down");
        }
        let host = world.host_access("east").await;
        let header = plan_reprotect(&plan, "east", &observed, &host, "t").unwrap();
        let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
        assert_eq!(run.state, RunState::Completed, "{data:?}: {:?}", run.reason);
        let detail = run.steps[0].detail.as_deref().unwrap();
        assert!(detail.contains("rejoined from a fresh base backup") && detail.contains(says), "{detail}");
        assert_eq!(RejoinMethod::name_in(detail), Some("base_backup"));
        if data == FakeData::Unrewindable {
            assert!(detail.contains("the old data directory was moved to /data/east.drover-1"), "{detail}");
        }
    }
}

#[tokio::test]
async fn reprotect_refusals_name_the_reason_and_change_nothing() {
    let plan = two_region_plan();
    let reachable = HostAccess::Reachable("server running".into());
    async fn refuse(world: &FakeWorld, journal: &MemoryJournal, region: &str, host: HostAccess) -> Refusal {
        let plan = two_region_plan();
        let before = world.snapshot();
        let refusal = plan_reprotect(&plan, region, &observe(&plan, journal, world).await, &host, "t").unwrap_err();
        assert_eq!(world.snapshot(), before);
        refusal
    }
    let world = FakeWorld::after_failover();
    let journal = journal_at_epoch_1().await;
    assert!(matches!(refuse(&world, &journal, "mars", reachable.clone()).await, Refusal::UnknownRegion(..)));
    assert!(matches!(refuse(&world, &journal, "witness", reachable.clone()).await, Refusal::Witness(_)));
    let r = refuse(&world, &journal, "west", reachable.clone()).await;
    assert!(matches!(r, Refusal::IsPrimary(_)), "{r}");
    assert!(r.to_string().contains("'drover switchover' or 'drover failover'"), "{r}");
    let r = refuse(&world, &journal, "east", HostAccess::NotConfigured).await;
    assert!(r.to_string().contains("no host (database.members.east.host)"), "{r}");
    let r = refuse(&world, &journal, "east", HostAccess::Unreachable("ssh: timed out".into())).await;
    assert!(matches!(r, Refusal::RegionUnreachable { .. }), "{r}");
    assert!(r.to_string().contains("host: ssh: timed out"), "{r}");

    // Once east follows west there is nothing to do.
    let world = FakeWorld::reprotected();
    let r = refuse(&world, &journal, "east", reachable.clone()).await;
    assert_eq!(r, Refusal::AlreadyStandby { region: "east".into(), upstream: "west".into() });

    // Nobody accepts writes: nothing to follow.
    let world = FakeWorld::after_failover();
    world.state.lock().unwrap().members.get_mut("west").unwrap().writable = false;
    world.state.lock().unwrap().members.get_mut("east").unwrap().writable = false;
    assert!(matches!(refuse(&world, &journal, "east", reachable.clone()).await, Refusal::NoPrimary(_)));

    // East writable at the same epoch as west: which one is stale is not drover's guess.
    let world = FakeWorld::after_failover();
    world.state.lock().unwrap().members.get_mut("east").unwrap().epoch = Some(1);
    assert!(matches!(refuse(&world, &journal, "east", reachable.clone()).await, Refusal::SplitBrain(_)));

    // Traffic still on east (a failover aborted between promote and switch).
    let world = FakeWorld::after_failover();
    world.state.lock().unwrap().traffic_region = "east".into();
    let r = refuse(&world, &journal, "east", reachable.clone()).await;
    assert!(r.to_string().contains("finish the move first ('drover failover --to west')"), "{r}");

    // Another run active.
    let world = FakeWorld::after_failover();
    let header = plan_reprotect(&plan, "east", &observe(&plan, &journal, &world).await, &reachable, "t").unwrap();
    journal.begin(&header).await.unwrap();
    assert_eq!(refuse(&world, &journal, "east", reachable.clone()).await, Refusal::ActiveRun(header.id.clone()));
}

#[tokio::test]
async fn a_paused_reprotect_resumes_once_its_host_is_back() {
    let plan = two_region_plan();
    let world = FakeWorld::after_failover();
    let journal = journal_at_epoch_1().await;
    let header = plan_kind(RunKind::Reprotect, &plan, &journal, &world).await.unwrap();
    world.set_reachable("east", false);
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused);
    assert!(run.reason.as_deref().unwrap().contains(&format!("drover resume {}", header.id)), "{:?}", run.reason);
    world.set_reachable("east", true);
    let run = engine(&plan, &journal, &world).resume(&header.id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert!(run.steps[0].detail.as_deref().unwrap().ends_with("rejoined with pg_rewind"));
}

#[tokio::test]
async fn failback_moves_the_primary_home_with_the_switchover_runbook() {
    let plan = two_region_plan();
    let world = FakeWorld::reprotected();
    let journal = journal_at_epoch_1().await;
    let header = plan_failback(&plan, None, &observe(&plan, &journal, &world).await, "t").unwrap();
    assert_eq!((header.kind, header.from.as_str(), header.to.as_str()), (RunKind::Failback, "west", "east"));
    assert_eq!(header.epoch, 2);
    assert_eq!(header.steps, plan.runbooks.switchover, "a failback is a switchover: catch_up, so nothing is lost");
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    let w = world.snapshot();
    assert_eq!((w.traffic_region.as_str(), w.traffic_epoch, w.promotions), ("east", 2, 1));
    assert_eq!(w.members["west"].upstream.as_deref(), Some("east"), "west rejoined as a standby of east");
    let rejoin = run.steps.last().unwrap().detail.as_deref().unwrap();
    assert_eq!(rejoin, "west is a standby streaming from east; rejoined with pg_rewind");
}

#[tokio::test]
async fn failback_is_refused_until_home_is_a_streaming_standby() {
    let plan = two_region_plan();
    let journal = journal_at_epoch_1().await;
    // Right after a failover: east came back but still thinks it is primary.
    let world = FakeWorld::after_failover();
    let r = plan_failback(&plan, None, &observe(&plan, &journal, &world).await, "t").unwrap_err();
    assert!(matches!(r, Refusal::NotProtected { .. }), "{r}");
    assert!(
        r.to_string().contains("reprotect it first: drover reprotect --plan plan.yaml --region east (while drover serve daemons lead, send it to the leader with --server URL"),
        "the refusal says what to run: {r}"
    );
    assert!(r.to_string().contains("it still accepts writes, at epoch none"), "{r}");
    // East still down.
    world.set_reachable("east", false);
    let r = plan_failback(&plan, None, &observe(&plan, &journal, &world).await, "t").unwrap_err();
    assert!(r.to_string().contains("database unreachable"), "{r}");
    // Home is already the primary.
    let world = FakeWorld::two_regions();
    let r = plan_failback(&plan, None, &observe(&plan, &journal, &world).await, "t").unwrap_err();
    assert_eq!(r, Refusal::AlreadyPrimary("east".into()));
    // --to names a region: west is a streaming standby of east here, so failing "back" to it works.
    let header = plan_failback(&plan, Some("west"), &observe(&plan, &journal, &world).await, "t").unwrap();
    assert_eq!((header.from.as_str(), header.to.as_str()), ("east", "west"));
    assert!(matches!(
        plan_failback(&plan, Some("witness"), &observe(&plan, &journal, &world).await, "t"),
        Err(Refusal::Witness(_))
    ));
    // plan_run moves primaries; it does not plan a reprotect.
    let observed = observe(&plan, &journal, &world).await;
    assert_eq!(plan_run(&plan, RunKind::Reprotect, "west", &observed, "t"), Err(Refusal::NotAMove("reprotect")));
}

#[tokio::test]
async fn failover_with_the_old_primary_gone_skips_fencing_and_completes() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    world.set_reachable("east", false);
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "drill").unwrap();
    assert_eq!(header.from, "east");
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert!(run.steps[0].detail.as_deref().unwrap().contains("best effort"));
    assert_eq!(run.steps[0].state, StepState::Skipped, "a fence that did not happen is not shown as done");
    let w = world.snapshot();
    assert_eq!((w.traffic_region.as_str(), w.traffic_epoch, w.promotions), ("west", 1, 1));
}

#[tokio::test]
async fn a_second_run_is_refused_while_one_is_paused() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    world.set_reachable("west", true);
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    // East disappears mid-switchover: the fence step cannot confirm, so the run pauses.
    world.set_reachable("east", false);
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused);
    let reason = run.reason.unwrap();
    assert!(reason.contains("drover resume"), "{reason}");
    let again = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t");
    assert_eq!(again, Err(Refusal::ActiveRun(header.id.clone())));
    // Once east is back, resume finishes the run.
    world.set_reachable("east", true);
    let run = engine(&plan, &journal, &world).resume(&header.id).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(world.snapshot().promotions, 1);
}

#[tokio::test]
async fn refuses_an_unreachable_target_and_a_witness() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let observed = observe(&plan, &journal, &world).await;
    assert!(matches!(plan_run(&plan, RunKind::Failover, "witness", &observed, "t"), Err(Refusal::Witness(_))));
    assert!(matches!(plan_run(&plan, RunKind::Failover, "mars", &observed, "t"), Err(Refusal::UnknownRegion(..))));
    assert!(matches!(plan_run(&plan, RunKind::Failover, "east", &observed, "t"), Err(Refusal::AlreadyPrimary(_))));
    world.set_reachable("west", false);
    let observed = observe(&plan, &journal, &world).await;
    let refusal = plan_run(&plan, RunKind::Failover, "west", &observed, "t").unwrap_err();
    assert!(matches!(refusal, Refusal::TargetUnhealthy { .. }), "{refusal}");
}

#[tokio::test]
async fn two_writable_primaries_refuse_every_move() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    {
        let mut s = world.state.lock().unwrap();
        let west = s.members.get_mut("west").unwrap();
        west.primary = true;
        west.writable = true;
        west.epoch = Some(1);
    }
    let journal = MemoryJournal::default();
    let observed = observe(&plan, &journal, &world).await;
    assert_eq!(observed.current_primary(&plan), "west", "the higher epoch is the current primary");
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let refusal = plan_run(&plan, kind, "east", &observed, "t").unwrap_err();
        assert!(matches!(refusal, Refusal::SplitBrain(_)), "{refusal}");
        assert!(refusal.to_string().contains("east at epoch none, west at epoch 1"), "{refusal}");
    }
}

#[tokio::test]
async fn unreadable_traffic_refuses_before_anything_changes() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    world.state.lock().unwrap().traffic_unreachable = true;
    let journal = MemoryJournal::default();
    let before = world.snapshot();
    let refusal = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &world).await, "t");
    assert!(matches!(refusal, Err(Refusal::TrafficUnknown(_))), "{refusal:?}");
    assert_eq!(world.snapshot(), before);
}

/// A failover to west begun, its fence and promote applied, nothing switched.
async fn fenced_and_promoted(plan: &Plan, journal: &MemoryJournal, world: &FakeWorld) -> RunHeader {
    let header = plan_run(plan, RunKind::Failover, "west", &observe(plan, journal, world).await, "t").unwrap();
    let e = engine(plan, journal, world);
    journal.begin(&header).await.unwrap();
    e.apply_step(&drover_core::plan::StepKind::Fence, &header).await.unwrap();
    e.apply_step(&drover_core::plan::StepKind::Promote, &header).await.unwrap();
    header
}

#[tokio::test]
async fn a_run_aborted_between_promote_and_switch_is_finished_by_the_next_one() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = fenced_and_promoted(&plan, &journal, &world).await;
    let e = engine(&plan, &journal, &world);
    e.abort(&header.id, "operator", false).await.unwrap();
    // West is the primary database at epoch 1, traffic still points at east.
    let observed = observe(&plan, &journal, &world).await;
    let next = plan_run(&plan, RunKind::Failover, "west", &observed, "finish").unwrap();
    assert_eq!((next.from.as_str(), next.to.as_str(), next.epoch), ("east", "west", 2));
    let run = engine(&plan, &journal, &world).start(&next).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    let w = world.snapshot();
    assert_eq!((w.traffic_region.as_str(), w.traffic_epoch, w.promotions), ("west", 2, 1));
}

#[tokio::test]
async fn a_switch_stopped_part_way_at_the_runs_epoch_is_continued_not_refused() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = fenced_and_promoted(&plan, &journal, &world).await;
    let e = engine(&plan, &journal, &world);
    // A staged shift (Route 53 weights, Global Accelerator dials) stopped by a failing check:
    // traffic is split, and the world holds this run's epoch.
    {
        let mut s = world.state.lock().unwrap();
        s.traffic_region = String::new();
        s.traffic_epoch = header.epoch;
    }
    let seen = e.observe_step(&drover_core::plan::StepKind::Switch, &header).await.unwrap();
    assert!(matches!(seen, drover_core::engine::Observation::Needed(_)), "{seen:?}");
    e.apply_step(&drover_core::plan::StepKind::Switch, &header).await.unwrap();
    let w = world.snapshot();
    assert_eq!((w.traffic_region.as_str(), w.traffic_epoch), ("west", header.epoch));
}

#[tokio::test]
async fn a_new_run_takes_an_epoch_above_any_the_world_holds() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    // Traffic carries epoch 7 from runs whose journal is elsewhere (a fresh state dir).
    world.state.lock().unwrap().traffic_epoch = 7;
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    assert_eq!(header.epoch, 8);
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    assert_eq!(world.snapshot().traffic_epoch, 8);
    assert_eq!(journal.epoch().await.unwrap(), 8);
}

#[tokio::test]
async fn verify_fails_when_the_target_is_not_the_writable_primary() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    let e = engine(&plan, &journal, &world);
    // Checks pass (west answers), but nothing was promoted or switched.
    let seen = e.observe_step(&drover_core::plan::StepKind::Verify, &header).await.unwrap();
    match seen {
        drover_core::engine::Observation::Needed(why) => {
            assert!(why.contains("west database is standby") && why.contains("traffic points at east"), "{why}")
        }
        other => panic!("verify passed without a promotion: {other:?}"),
    }
}

#[tokio::test]
async fn the_lag_gate_refuses_a_standby_too_far_behind() {
    let mut plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let mut observed = observe(&plan, &journal, &world).await;
    assert_eq!(drover_core::engine::lag_gate(&plan, &observed, "west"), Ok(()));
    if let Some(drover_core::world::MemberStatus::Standby { lag_bytes, .. }) = observed.members.get_mut("west") {
        *lag_bytes = Some(2 << 20);
    }
    plan.policy.max_lag_on_failover = 1 << 20;
    let refusal = drover_core::engine::lag_gate(&plan, &observed, "west").unwrap_err();
    assert!(refusal.to_string().contains("2097152 bytes behind"), "{refusal}");
}

#[tokio::test]
async fn an_illegal_record_order_is_refused_in_memory() {
    an_illegal_record_order_is_refused(&MemoryJournal::default()).await;
}

#[tokio::test]
async fn an_ended_run_takes_no_more_records_in_memory() {
    an_ended_run_takes_no_more_records(&MemoryJournal::default()).await;
}

#[tokio::test]
async fn a_run_tells_the_notifier_each_milestone_and_a_notify_step_where_it_stands() {
    use drover_core::notify::EventKind;
    use drover_core::plan::StepKind;
    let mut plan = two_region_plan();
    plan.runbooks.failover.push(StepKind::Notify);
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "drill").unwrap();
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed);
    let events = world.notified();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RunStarted, EventKind::RunProgress, EventKind::RunCompleted]);
    for e in &events {
        assert_eq!(e.run_id.as_deref(), Some(header.id.0.as_str()));
        assert_eq!((e.from.as_deref(), e.to.as_deref()), (Some("east"), Some("west")));
    }
    assert!(events[1].reason.contains("done: fence, promote, switch, verify"), "{}", events[1].reason);

    // Waiting for approval, then aborted: each is told.
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "auto").unwrap();
    let e = engine(&plan, &journal, &world);
    e.open_for_approval(&header, "east is down to 2 of 2 vantages").await.unwrap();
    let resumed = e.resume(&header.id).await;
    assert!(resumed.is_err_and(|err| err.to_string().contains("drover approve")), "resume must not skip approval");
    e.abort(&header.id, "not today", false).await.unwrap();
    let kinds: Vec<EventKind> = world.notified().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RunStarted, EventKind::ApprovalNeeded, EventKind::RunAborted]);
    assert_eq!(world.snapshot().promotions, 0, "nothing moved without approval");
}

#[tokio::test]
async fn an_approved_run_goes_on_to_completion() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "auto").unwrap();
    let e = engine(&plan, &journal, &world);
    let waiting = e.open_for_approval(&header, "east is down").await.unwrap();
    assert_eq!(waiting.state, RunState::AwaitingApproval);
    let other = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "x");
    assert!(other.is_err(), "a run awaiting approval holds the active slot");
    let done = e.approve(&header.id, "alice").await.unwrap();
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(world.snapshot().promotions, 1);
    assert!(e.approve(&header.id, "bob").await.is_err(), "approving twice is refused");
}

/// A world whose first fence takes effect but reports a timeout, as a slow confirmation does.
struct FenceThatTimesOut {
    world: FakeWorld,
    failed_once: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Database for FenceThatTimesOut {
    async fn member(&self, region: &str) -> Result<MemberStatus, drover_core::ProviderError> {
        self.world.member(region).await
    }
    async fn fence(&self, region: &str) -> Result<(), drover_core::ProviderError> {
        self.world.fence(region).await?;
        if self.failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(drover_core::ProviderError::transient(
                "east database: fence failed: no answer after 1s while connecting",
            ))
        }
    }
    async fn promote(&self, region: &str, kind: RunKind) -> Result<(), drover_core::ProviderError> {
        self.world.promote(region, kind).await
    }
    async fn record_epoch(
        &self,
        region: &str,
        epoch: u64,
        run: &drover_core::RunId,
    ) -> Result<(), drover_core::ProviderError> {
        self.world.record_epoch(region, epoch, run).await
    }
    async fn rejoin(&self, region: &str, primary: &str) -> Result<RejoinMethod, drover_core::ProviderError> {
        self.world.rejoin(region, primary).await
    }
}

#[tokio::test]
async fn a_step_whose_attempt_errs_but_takes_effect_is_shown_as_applied_not_already_done() {
    let plan = two_region_plan();
    let db = FenceThatTimesOut { world: FakeWorld::two_regions(), failed_once: Default::default() };
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &db.world).await, "t").unwrap();
    let mut e = engine(&plan, &journal, &db.world);
    e.world.database = &db;
    let run = e.start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    assert_eq!(run.steps[0].state, StepState::Applied, "drover fenced east, even though its first try timed out");
    assert_eq!(run.steps[0].attempts, 1);
    assert_eq!(run.steps[1].state, StepState::AlreadyDone, "west had everything: catch_up did nothing");
}

/// Issue 13, item 1: a move to a member holding older data than the primary loses every
/// write since — refused unless a person accepts the loss, which the run then carries.
#[tokio::test]
async fn a_move_to_a_member_with_older_data_is_refused_unless_the_loss_is_accepted() {
    use drover_core::engine::plan_move;
    let plan = two_region_plan();
    let journal = journal_at_epoch_1().await;

    // East returned after the failover to west and was fenced (read-only), as the daemons
    // fence a returning old primary: it is still at no epoch, west at epoch 1.
    let world = FakeWorld::after_failover();
    world.fence("east").await.unwrap();
    let observed = observe(&plan, &journal, &world).await;
    assert!(matches!(observed.members["east"], MemberStatus::Primary { writable: false, epoch: None, .. }));
    let before = world.snapshot();
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let refusal = plan_run(&plan, kind, "east", &observed, "t").unwrap_err();
        let Refusal::StaleTarget { region, why, .. } = &refusal else { panic!("{kind:?}: {refusal}") };
        assert_eq!(region, "east");
        assert_eq!(
            why,
            "east is a fenced (read-only) former primary, not a standby of the primary; its data is at no epoch \
             (data from before drover's first move), while west was promoted at epoch 1"
        );
        let text = refusal.to_string();
        assert!(text.contains("region 'east' holds older data than the primary"), "{text}");
        assert!(text.contains("drover reprotect --region east") && text.contains("--accept-data-loss"), "{text}");
    }
    assert_eq!(world.snapshot(), before, "a refusal changes nothing");

    // With the loss accepted the move is planned, carries the loss, and runs: east becomes
    // the writable primary at a new epoch with traffic, and the start is notified as a loss.
    let header = plan_move(&plan, RunKind::Failover, "east", &observed, "by hand", true).unwrap();
    assert_eq!((header.from.as_str(), header.to.as_str(), header.epoch), ("west", "east", 2));
    let loss = header.accepted_loss.clone().expect("the accepted loss is in the header");
    assert_eq!(
        loss,
        "region 'east' holds older data than the primary: east is a fenced (read-only) former primary, not a \
         standby of the primary; its data is at no epoch (data from before drover's first move), while west was \
         promoted at epoch 1"
    );
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    let entries = journal.entries(&header.id).await.unwrap();
    let journaled = entries.iter().find_map(|e| match &e.record {
        drover_core::run::Record::Started { header } => Some(header.accepted_loss.clone()),
        _ => None,
    });
    assert_eq!(journaled, Some(Some(loss.clone())), "the journal's run header holds the accepted loss");
    let w = world.snapshot();
    let east = &w.members["east"];
    assert_eq!((east.primary, east.writable, east.epoch), (true, true, Some(2)), "{w:?}");
    assert!(!w.members["west"].writable, "west, the primary it replaced, was fenced: {w:?}");
    assert_eq!((w.traffic_region.as_str(), w.traffic_epoch), ("east", 2));
    let started = &world.notified()[0];
    assert_eq!(started.reason, format!("by hand — DATA LOSS ACCEPTED: {loss}"));

    // Accepting a loss where there is none changes nothing about the plan: no loss recorded.
    let world = FakeWorld::two_regions();
    let fresh = MemoryJournal::default();
    let header = plan_move(&plan, RunKind::Failover, "west", &observe(&plan, &fresh, &world).await, "t", true).unwrap();
    assert_eq!(header.accepted_loss, None);

    // East unfenced is refused too, earlier: two databases accept writes.
    let world = FakeWorld::after_failover();
    let refusal = plan_move(&plan, RunKind::Failover, "east", &observe(&plan, &journal, &world).await, "t", true);
    assert!(matches!(refusal, Err(Refusal::SplitBrain(_))), "{refusal:?}");
}

#[tokio::test]
async fn a_standby_that_does_not_follow_the_newest_primary_is_stale() {
    let plan = two_region_plan();
    let journal = journal_at_epoch_1().await;

    // East was reprotected from a copy that follows nobody and never replayed an epoch.
    let world = FakeWorld::after_failover();
    {
        let mut s = world.state.lock().unwrap();
        let east = s.members.get_mut("east").unwrap();
        (east.primary, east.writable, east.upstream, east.epoch) = (false, false, None, None);
    }
    let observed = observe(&plan, &journal, &world).await;
    let refusal = plan_run(&plan, RunKind::Failover, "east", &observed, "t").unwrap_err();
    let Refusal::StaleTarget { why, .. } = &refusal else { panic!("{refusal}") };
    assert!(
        why.starts_with("east is a standby that does not follow the newest primary; its data is at no epoch"),
        "{why}"
    );

    // A standby stuck at epoch 1 (it stopped replaying) while east was promoted at epoch 2,
    // and east is now lost: only the traffic record shows the newer epoch.
    let world = FakeWorld::two_regions();
    {
        let mut s = world.state.lock().unwrap();
        s.members.get_mut("east").unwrap().epoch = Some(2);
        let west = s.members.get_mut("west").unwrap();
        (west.upstream, west.epoch) = (None, Some(1));
        s.traffic_epoch = 2;
    }
    let observed = observe(&plan, &MemoryJournal::default(), &world).await;
    let refusal = plan_run(&plan, RunKind::Failover, "west", &observed, "t").unwrap_err();
    let Refusal::StaleTarget { why, .. } = &refusal else { panic!("{refusal}") };
    assert!(why.ends_with("its data is at epoch 1, while east was promoted at epoch 2"), "{why}");
    world.set_reachable("east", false);
    let observed = observe(&plan, &MemoryJournal::default(), &world).await;
    let refusal = plan_run(&plan, RunKind::Failover, "west", &observed, "t").unwrap_err();
    let Refusal::StaleTarget { why, .. } = &refusal else { panic!("{refusal}") };
    assert!(why.ends_with("its data is at epoch 1, while traffic was switched at epoch 2"), "{why}");

    // The traffic record ahead of the writable primary it points at (its epoch table lost,
    // the journal elsewhere): a standby of that primary loses nothing. With that primary
    // unreachable, the record is the only evidence left, and drover refuses.
    let world = FakeWorld::two_regions();
    world.state.lock().unwrap().traffic_epoch = 7;
    let observed = observe(&plan, &MemoryJournal::default(), &world).await;
    assert_eq!(plan_run(&plan, RunKind::Switchover, "west", &observed, "t").unwrap().accepted_loss, None);
    world.set_reachable("east", false);
    let observed = observe(&plan, &MemoryJournal::default(), &world).await;
    let refusal = plan_run(&plan, RunKind::Failover, "west", &observed, "t");
    assert!(matches!(refusal, Err(Refusal::StaleTarget { .. })), "{refusal:?}");

    // A proper standby of the current primary replays its epoch: allowed, no loss.
    let world = FakeWorld::reprotected();
    let observed = observe(&plan, &journal, &world).await;
    assert!(matches!(observed.members["east"], MemberStatus::Standby { epoch: Some(1), .. }));
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let header = plan_run(&plan, kind, "east", &observed, "t").unwrap();
        assert_eq!((header.to.as_str(), header.epoch, header.accepted_loss), ("east", 2, None));
    }
    // The planned world's standby, before drover ever moved anything: allowed.
    let world = FakeWorld::two_regions();
    let header =
        plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &MemoryJournal::default(), &world).await, "t");
    assert_eq!(header.unwrap().accepted_loss, None);
}

#[tokio::test]
async fn a_fenced_primary_at_the_newest_epoch_is_not_stale() {
    use drover_core::engine::stale_target;
    let plan = two_region_plan();
    let journal = journal_at_epoch_1().await;
    // West is the current primary at epoch 1, east its standby; a switchover home fenced
    // west and stopped. West still holds the newest data.
    let world = FakeWorld::reprotected();
    world.fence("west").await.unwrap();
    let observed = observe(&plan, &journal, &world).await;
    assert!(matches!(observed.members["west"], MemberStatus::Primary { writable: false, epoch: Some(1), .. }));
    assert_eq!(stale_target(&plan, &observed, "west"), None);
    assert_eq!(stale_target(&plan, &observed, "east"), None, "east replays west's epoch");
    let refusal = plan_run(&plan, RunKind::Failover, "west", &observed, "t").unwrap_err();
    assert_eq!(refusal, Refusal::AlreadyPrimary("west".into()), "not refused as stale");

    // A failover to west fenced east and promoted west at epoch 1, was aborted, and west was
    // fenced since; traffic still points at east. Moving to west again loses nothing.
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = fenced_and_promoted(&plan, &journal, &world).await;
    engine(&plan, &journal, &world).abort(&header.id, "operator", false).await.unwrap();
    world.fence("west").await.unwrap();
    let observed = observe(&plan, &journal, &world).await;
    assert!(matches!(observed.members["west"], MemberStatus::Primary { writable: false, epoch: Some(1), .. }));
    assert_eq!(stale_target(&plan, &observed, "west"), None);
    let next = plan_run(&plan, RunKind::Failover, "west", &observed, "again").unwrap();
    assert_eq!((next.from.as_str(), next.to.as_str(), next.epoch, next.accepted_loss), ("east", "west", 2, None));
}

#[tokio::test]
async fn pages_list_every_run_once_newest_first_in_memory() {
    drover_core::testing::scenarios::pages_list_every_run_once_newest_first(&MemoryJournal::default()).await;
}

#[tokio::test]
async fn drills_are_journaled_in_memory() {
    drover_core::testing::scenarios::drills_are_journaled(&MemoryJournal::default()).await;
}

#[tokio::test]
async fn retention_trims_to_keep_in_memory() {
    drover_core::testing::scenarios::retention_trims_to_keep(&MemoryJournal::default()).await;
}

/// A long history past `journal.keep` goes a batch at a time, and says when more is due.
#[tokio::test]
async fn retention_removes_a_bounded_batch_and_says_more_is_due() {
    use drover_core::history::{Keep, PRUNE_BATCH, every_run};
    let journal = MemoryJournal::default();
    let total = PRUNE_BATCH + 40;
    drover_core::testing::scenarios::ended_runs(&journal, total).await;
    let keep = Keep { last: Some(10), days: None };
    let now = drover_core::engine::now_ms();
    let first = journal.prune(&keep, now).await.unwrap();
    assert_eq!((first.removed.len(), first.more), (PRUNE_BATCH, true));
    let second = journal.prune(&keep, now).await.unwrap();
    // Ten newest, and the oldest (the only switchover) stay.
    assert_eq!((second.removed.len(), second.more), (total - PRUNE_BATCH - 11, false));
    assert_eq!(every_run(&journal).await.unwrap().len(), 11);
}

/// A run that ends trims the journal to the plan's `journal.keep`, through the clock.
#[tokio::test]
async fn a_run_that_ends_trims_the_journal_to_keep() {
    use drover_core::history::{Keep, every_run};
    let mut plan = two_region_plan();
    plan.journal.keep = Some(Keep { last: Some(3), days: None });
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    drover_core::testing::scenarios::ended_runs(&journal, 6).await;
    let observed = observe(&plan, &journal, &world).await;
    let header = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    let summary = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(summary.state, RunState::Completed);
    let left: Vec<String> = every_run(&journal).await.unwrap().into_iter().map(|r| r.header.id.0).collect();
    // The run just ended, the two before it, and the switchover (the last of its kind).
    assert_eq!(left.len(), 4, "{left:?}");
    assert_eq!(left[0], header.id.0);
}

/// An epoch record holding u64::MAX (drover never writes one; a hand edit or another tool
/// can) once made the next run's epoch wrap to 0 in release builds, below the old primary's,
/// so fencing by epoch would have let the old primary win; in debug builds planning panicked.
#[tokio::test]
async fn an_epoch_record_at_the_largest_number_refuses_every_move() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    world.state.lock().unwrap().traffic_epoch = u64::MAX;
    let journal = MemoryJournal::default();
    let before = world.snapshot();
    let observed = observe(&plan, &journal, &world).await;
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let refusal = plan_run(&plan, kind, "west", &observed, "t").unwrap_err();
        assert_eq!(refusal, Refusal::EpochExhausted(u64::MAX), "{kind:?}");
        assert!(refusal.to_string().contains("correct the epoch record"), "{refusal}");
    }
    assert_eq!(world.snapshot(), before);
}
