//! Abort with undo (a fence lifted when nothing was promoted) and preflight (a run
//! refused before anything is journaled when a resource it touches is missing).

use drover_core::engine::{Refusal, plan_run};
use drover_core::journal::Journal;
use drover_core::plan::StepKind;
use drover_core::run::{RunKind, RunState, StepState};
use drover_core::testing::scenarios::{engine, observe, plan_with_compute, two_region_plan};
use drover_core::testing::{FakeWorld, MemoryJournal};
use drover_core::undo::{paused_advice, undoable};

/// A failover that fenced east, then paused at promote because west could not be reached.
async fn paused_after_fence(
    kind: RunKind,
) -> (drover_core::plan::Plan, MemoryJournal, FakeWorld, drover_core::run::RunHeader) {
    let plan = two_region_plan();
    let journal = MemoryJournal::default();
    let world = FakeWorld::two_regions();
    let header = plan_run(&plan, kind, "west", &observe(&plan, &journal, &world).await, "test").unwrap();
    world.set_reachable("west", false);
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused);
    assert_eq!(run.steps[0].state, StepState::Applied, "east was fenced");
    assert!(!world.snapshot().members["east"].writable);
    world.set_reachable("west", true);
    (plan, journal, world, header)
}

#[tokio::test]
async fn abort_with_undo_lifts_the_fence_of_a_run_that_never_promoted() {
    // A switchover pauses at catch_up: promote was never attempted.
    let (plan, journal, world, header) = paused_after_fence(RunKind::Switchover).await;
    let summary = journal.summary(&header.id).await.unwrap();
    let (undos, kept) = undoable(&summary);
    assert_eq!(undos.len(), 1, "{undos:?}");
    assert_eq!(undos[0].kind, StepKind::Fence);
    assert!(kept.is_empty(), "{kept:?}");
    let advice = paused_advice(&summary).join("\n");
    assert!(advice.contains("east is fenced (read-only) and west is not promoted"), "{advice}");
    assert!(advice.contains("--undo") && advice.contains("--keep"), "{advice}");

    let aborted = engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap();
    assert_eq!(aborted.state, RunState::Aborted);
    assert_eq!(aborted.steps[0].state, StepState::Undone);
    let s = world.snapshot();
    assert!(s.members["east"].writable, "east takes writes again");
    assert!(!s.members["west"].primary, "west was not promoted");
    assert_eq!(s.traffic_region, "east");
}

#[tokio::test]
async fn abort_with_undo_keeps_the_fence_once_a_promotion_was_attempted() {
    // A promotion that timed out may still finish (RDS goes on promoting; pg_promote was
    // signalled): lifting the fence then could make two primaries.
    let (plan, journal, world, header) = paused_after_fence(RunKind::Failover).await;
    let summary = journal.summary(&header.id).await.unwrap();
    assert_eq!(summary.steps[1].kind, StepKind::Promote);
    assert!(summary.steps[1].attempts > 0, "promote was attempted");
    let (undos, kept) = undoable(&summary);
    assert!(undos.is_empty(), "{undos:?}");
    assert!(kept[0].contains("may still finish"), "{kept:?}");
    let advice = paused_advice(&summary).join("\n");
    assert!(advice.contains("kept by any abort: the fence on east"), "{advice}");
    engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap();
    assert!(!world.snapshot().members["east"].writable, "east stays fenced");
}

#[tokio::test]
async fn undo_is_refused_for_a_run_that_is_not_paused() {
    let plan = two_region_plan();
    let journal = MemoryJournal::default();
    let world = FakeWorld::two_regions();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    let e = engine(&plan, &journal, &world);
    e.begin(&header).await.unwrap();
    // Started and not driven: a driver somewhere may be acting on it now.
    let refused = e.abort(&header.id, "operator", true).await.unwrap_err();
    assert!(refused.to_string().contains("only a paused run can be set back"), "{refused}");
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Running);
}

#[tokio::test]
async fn an_undo_that_fails_leaves_the_run_paused_and_a_resume_fences_again() {
    let (plan, journal, world, header) = paused_after_fence(RunKind::Switchover).await;
    // West was promoted by hand meanwhile: lifting east's fence now would make two primaries.
    world.state.lock().unwrap().members.get_mut("west").unwrap().primary = true;
    world.state.lock().unwrap().members.get_mut("west").unwrap().writable = true;
    let e = engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap_err();
    assert!(e.to_string().contains("would make two primaries") && e.to_string().contains("stays paused"), "{e}");
    let summary = journal.summary(&header.id).await.unwrap();
    assert_eq!(summary.state, RunState::Paused);
    assert_eq!(summary.steps[0].state, StepState::Undone, "journaled before it acted");
    assert!(!world.snapshot().members["east"].writable, "the fence stayed");
    // The step counts as not done: a resume fences again before anything else.
    world.state.lock().unwrap().members.get_mut("west").unwrap().primary = false;
    world.state.lock().unwrap().members.get_mut("west").unwrap().writable = false;
    world.state.lock().unwrap().members.get_mut("east").unwrap().writable = true;
    let resumed = engine(&plan, &journal, &world).resume(&header.id).await.unwrap();
    assert_eq!(resumed.state, RunState::Completed, "{:?}", resumed.reason);
    assert!(!world.snapshot().members["east"].writable, "east fenced again by the resume");
}

#[tokio::test]
async fn abort_with_undo_never_lifts_a_fence_once_the_target_was_promoted() {
    let plan = two_region_plan();
    let journal = MemoryJournal::default();
    let world = FakeWorld::two_regions();
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    world.state.lock().unwrap().traffic_unreachable = true;
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused, "paused at switch");
    let (undos, kept) = undoable(&run);
    assert!(undos.iter().all(|u| u.kind != StepKind::Fence), "{undos:?}");
    assert!(kept.iter().any(|k| k.contains("the fence on east")), "{kept:?}");
    engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap();
    let s = world.snapshot();
    assert!(!s.members["east"].writable, "east stays fenced: west is primary");
    assert!(s.members["west"].writable);
}

#[tokio::test]
async fn abort_with_undo_sets_raised_compute_back() {
    let plan = plan_with_compute(100);
    let journal = MemoryJournal::default();
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 3);
    world.set_compute("web", "west", 1);
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    assert!(header.steps.contains(&StepKind::Scale));
    // Scale, then stop at the switch: the scale-up has an undo, the promotion has none.
    world.state.lock().unwrap().traffic_unreachable = true;
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused);
    assert_eq!(world.compute("web", "west").desired, 3);
    engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap();
    assert_eq!(world.compute("web", "west").desired, 1, "west runs what it ran before the run");
}

#[tokio::test]
async fn a_plain_abort_leaves_the_fence() {
    let (plan, journal, world, header) = paused_after_fence(RunKind::Switchover).await;
    let aborted = engine(&plan, &journal, &world).abort(&header.id, "operator", false).await.unwrap();
    assert_eq!(aborted.steps[0].state, StepState::Applied);
    assert!(!world.snapshot().members["east"].writable);
}

#[tokio::test]
async fn preflight_names_every_missing_resource_of_a_run_and_nothing_else() {
    let plan = plan_with_compute(100);
    let journal = MemoryJournal::default();
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 3);
    let header = plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    world.state.lock().unwrap().missing.extend(["database:east".to_string(), "traffic".to_string()]);
    let providers = drover_core::engine::Providers::all(&world);
    let problems =
        drover_core::preflight::for_run(&plan, providers, &header, drover_core::preflight::Scope::Both).await;
    assert_eq!(
        problems,
        [
            "database member east: no such instance",
            "traffic record: no record set with the plan's identifier",
            "compute web in west: no such resource",
        ],
        "each problem once, the database first"
    );
    let refusal = Refusal::Preflight(problems).to_string();
    assert!(refusal.contains("before anything was changed"), "{refusal}");
    assert!(refusal.contains("\n  - compute web in west: no such resource"), "{refusal}");
    assert!(
        drover_core::history::every_run(&journal).await.unwrap().is_empty(),
        "planning and preflight journal nothing"
    );
}

/// A switchover paused at a step after catch_up; an undo of its fence fails part way. The
/// resume fences again, passes over catch_up (still done) and goes on from the step that
/// paused: done steps after a set-back one are not started again (the run log would
/// refuse it, and an unobserved step would act twice).
#[tokio::test]
async fn a_resume_after_a_failed_undo_redoes_the_fence_and_skips_the_steps_still_done() {
    use drover_core::plan::{ExecAction, RunSide, StepAction};
    let mut plan = two_region_plan();
    let command = |argv: &[&str]| ExecAction {
        argv: argv.iter().map(|w| w.to_string()).collect(),
        on: RunSide::To,
        host: Default::default(),
        env: Default::default(),
        timeout: std::time::Duration::from_secs(1),
        observe: None,
    };
    plan.steps.insert("drain-queue".into(), StepAction::Exec(command(&["fail"])));
    let switchover = &mut plan.runbooks.switchover;
    let catch_up = switchover.iter().position(|s| *s == StepKind::CatchUp).unwrap();
    switchover.insert(catch_up + 1, StepKind::custom("drain-queue"));
    let (journal, world) = (MemoryJournal::default(), FakeWorld::two_regions());
    let header = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    let run = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Paused);
    assert!(run.reason.as_deref().unwrap().contains("drain-queue exited 3"), "{:?}", run.reason);

    // East cannot be reached: the fence's undo is journaled, then fails.
    world.set_reachable("east", false);
    engine(&plan, &journal, &world).abort(&header.id, "operator", true).await.unwrap_err();
    let summary = journal.summary(&header.id).await.unwrap();
    let states: Vec<StepState> = summary.steps.iter().take(3).map(|s| s.state).collect();
    assert_eq!(states, [StepState::Undone, StepState::AlreadyDone, StepState::Failed]);

    // Back, and the command fixed: the resume fences again and finishes the switchover.
    world.set_reachable("east", true);
    plan.steps.insert("drain-queue".into(), StepAction::Exec(command(&["act", "drain-queue"])));
    let resumed = engine(&plan, &journal, &world).resume(&header.id).await.unwrap();
    assert_eq!(resumed.state, RunState::Completed, "{:?}", resumed.reason);
    assert_eq!(resumed.steps[1].attempts, 1, "catch_up was not started again");
    assert!(!world.snapshot().members["east"].writable, "east stays fenced or a standby");
}

#[tokio::test]
async fn abort_with_undo_is_refused_while_another_driver_holds_the_run() {
    // A shell's resume holds the paused run; a second person's `abort --undo` must not lift
    // the fence under it.
    let (plan, journal, world, header) = paused_after_fence(RunKind::Switchover).await;
    let resuming = engine(&plan, &journal, &world).with_driver("a resume in another shell");
    let held = resuming.hold(&header.id).await.unwrap();
    let refused = engine(&plan, &journal, &world).with_driver("an abort").abort(&header.id, "operator", true).await;
    match refused {
        Err(drover_core::engine::EngineError::Store(drover_core::error::StoreError::Driven { holder, .. })) => {
            assert!(holder.contains("a resume in another shell"), "the refusal names the holder: {holder}")
        }
        other => panic!("the undo was not refused: {other:?}"),
    }
    assert!(!world.snapshot().members["east"].writable, "the fence stays while the run is held");
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Paused);
    // The holder goes on: its resume completes the switchover it held.
    let done = resuming.resume_held(held, None).await.unwrap();
    assert_eq!(done.state, RunState::Completed);
}
