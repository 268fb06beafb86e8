//! The engine's proofs against the in-memory journal (the redb store runs them too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_core::engine::{Refusal, plan_run};
use drover_core::journal::Journal;
use drover_core::run::{RunKind, RunState, StepState};
use drover_core::testing::scenarios::{
    crash_after_every_record, engine, every_step_twice_is_once, observe, two_region_plan,
};
use drover_core::testing::{FakeWorld, MemoryJournal};

fn memory_journals() -> impl Fn(u64) -> Arc<dyn Journal> {
    let journals: Mutex<HashMap<u64, Arc<dyn Journal>>> = Mutex::default();
    move |case| journals.lock().unwrap().entry(case).or_insert_with(|| Arc::new(MemoryJournal::default())).clone()
}

#[tokio::test]
async fn every_step_applied_twice_leaves_the_same_world() {
    every_step_twice_is_once(|| Arc::new(MemoryJournal::default())).await;
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
    assert_eq!(run.steps[0].state, StepState::AlreadyDone);
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
