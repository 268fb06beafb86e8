//! The `scale` step: the new primary region gets the plan's share of what the old
//! primary region runs — read live, or as last noted when the old region is lost.

use drover_core::engine::plan_run;
use drover_core::journal::Journal;
use drover_core::plan::StepKind;
use drover_core::run::{RunKind, RunState, RunSummary, StepState};
use drover_core::testing::scenarios::{engine, observe, plan_with_compute};
use drover_core::testing::{FakeWorld, MemoryJournal};
use drover_core::world::Capacity;

/// Runs a failover or switchover of `plan` to west in `world` and returns its summary.
async fn run_to_west(percent: u32, world: &FakeWorld, journal: &MemoryJournal, kind: RunKind) -> RunSummary {
    let plan = plan_with_compute(percent);
    let observed = observe(&plan, journal, world).await;
    let header = plan_run(&plan, kind, "west", &observed, "test").unwrap();
    engine(&plan, journal, world).start(&header).await.unwrap()
}

fn scale_step(run: &RunSummary) -> (StepState, String) {
    let step = run.steps.iter().find(|s| s.kind == StepKind::Scale).expect("the runbook scales");
    (step.state, step.detail.clone().unwrap_or_default())
}

#[tokio::test]
async fn a_switchover_raises_the_standby_to_its_share_of_the_primary_before_the_switch() {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 3);
    world.set_compute("web", "west", 1);
    let journal = MemoryJournal::default();
    let run = run_to_west(50, &world, &journal, RunKind::Switchover).await;
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    // 50% of 3 is 1.5: rounded up, since a share too small to serve is the worse mistake.
    assert_eq!(world.compute("web", "west"), Capacity { desired: 2, min: 1, max: 2, ready: 2 });
    let (state, detail) = scale_step(&run);
    assert_eq!(state, StepState::Applied);
    assert_eq!(detail, "west runs web 2/2 ready (50% of east's 3)");
    // The primary region is left as it was.
    assert_eq!(world.compute("web", "east").desired, 3);
}

#[tokio::test]
async fn a_standby_already_larger_than_its_share_is_never_shrunk() {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 3);
    world.set_compute("web", "west", 5);
    let journal = MemoryJournal::default();
    let run = run_to_west(100, &world, &journal, RunKind::Switchover).await;
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(scale_step(&run).0, StepState::AlreadyDone);
    assert_eq!(world.compute("web", "west").desired, 5);
}

#[tokio::test]
async fn a_lost_primary_region_is_sized_from_the_capacity_last_noted() {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 4);
    world.set_compute("web", "west", 1);
    let journal = MemoryJournal::default();
    // A status or daemon round while east was up noted what it ran.
    observe(&plan_with_compute(100), &journal, &world).await;
    world.set_reachable("east", false);
    let run = run_to_west(100, &world, &journal, RunKind::Failover).await;
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    assert_eq!(world.compute("web", "west").desired, 4);
    let (_, detail) = scale_step(&run);
    assert!(detail.starts_with("west runs web 4/4 ready (100% of east's 4 last seen "), "{detail}");
    assert!(detail.ends_with("east cannot be read now)"), "{detail}");
}

#[tokio::test]
async fn a_lost_primary_region_never_seen_pauses_the_run_with_what_to_do() {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 4);
    world.set_compute("web", "west", 1);
    world.set_reachable("east", false);
    let journal = MemoryJournal::default();
    let run = run_to_west(100, &world, &journal, RunKind::Failover).await;
    assert_eq!(run.state, RunState::Paused);
    let reason = run.reason.unwrap();
    assert!(
        reason.starts_with("west scale: cannot read web in east (east: compute API unreachable) and drover never saw it before: size west's web by hand, then resume"),
        "{reason}"
    );
    // Paused before the switch: traffic still points at east, west's web is untouched.
    assert_eq!(world.snapshot().traffic_region, "east");
    assert_eq!(world.compute("web", "west").desired, 1);
}

/// East runs two workloads of `web` (and west one more of its own); west runs each at 1.
fn world_with_workloads() -> FakeWorld {
    let world = FakeWorld::two_regions();
    world.set_unit("web", "east", "deployment/api", 4);
    world.set_unit("web", "east", "statefulset/queue", 3);
    world.set_unit("web", "west", "deployment/api", 1);
    world.set_unit("web", "west", "statefulset/queue", 1);
    world.set_unit("web", "west", "deployment/west-only", 2);
    world
}

#[tokio::test]
async fn each_workload_gets_its_share_of_its_twin_in_the_primary_region() {
    let world = world_with_workloads();
    let journal = MemoryJournal::default();
    let run = run_to_west(50, &world, &journal, RunKind::Switchover).await;
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 2);
    assert_eq!(world.unit("web", "west", "statefulset/queue").desired, 2);
    // A workload only the standby runs has no twin to follow: left as it was.
    assert_eq!(world.unit("web", "west", "deployment/west-only").desired, 2);
    assert_eq!(
        scale_step(&run).1,
        "west runs web deployment/api 2/2 ready (50% of east's 4), web statefulset/queue 2/2 ready (50% of east's 3)"
    );
}

#[tokio::test]
async fn a_workload_the_standby_lacks_pauses_the_run_naming_it() {
    let world = world_with_workloads();
    world.set_unit("web", "east", "deployment/checkout", 2);
    let journal = MemoryJournal::default();
    let run = run_to_west(100, &world, &journal, RunKind::Switchover).await;
    assert_eq!(run.state, RunState::Paused);
    let reason = run.reason.unwrap();
    assert!(
        reason.starts_with(
            "west scale: west has no deployment/checkout that east runs in web: deploy or restore it in west, then resume"
        ),
        "{reason}"
    );
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 1, "nothing is resized until every twin exists");
}

#[tokio::test]
async fn undoing_the_scale_step_sets_the_standby_back_to_what_it_ran() {
    let world = world_with_workloads();
    let journal = MemoryJournal::default();
    let run = run_to_west(100, &world, &journal, RunKind::Switchover).await;
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 4);
    let plan = plan_with_compute(100);
    let restored = engine(&plan, &journal, &world).undo_scale(&run.header.id).await.unwrap();
    assert_eq!(restored, ["west web deployment/api back to 1", "west web statefulset/queue back to 1"]);
    let api = world.unit("web", "west", "deployment/api");
    assert_eq!((api.desired, api.min, api.max), (1, 1, 2));
    assert_eq!(world.unit("web", "west", "statefulset/queue").desired, 1);
    // Undoing again finds the same sizes: nothing changes.
    engine(&plan, &journal, &world).undo_scale(&run.header.id).await.unwrap();
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 1);
}

#[tokio::test]
async fn a_scale_step_applied_twice_keeps_the_sizes_from_before_the_first() {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 3);
    world.set_compute("web", "west", 1);
    let journal = MemoryJournal::default();
    let plan = plan_with_compute(100);
    let observed = observe(&plan, &journal, &world).await;
    let header = plan_run(&plan, RunKind::Switchover, "west", &observed, "test").unwrap();
    let engine = engine(&plan, &journal, &world);
    journal.begin(&header).await.unwrap();
    engine.apply_step(&StepKind::Scale, &header).await.unwrap();
    // As after a crash between the resize and its journal record: the step runs again.
    world.set_compute("web", "west", 2);
    engine.apply_step(&StepKind::Scale, &header).await.unwrap();
    assert_eq!(world.compute("web", "west").desired, 3);
    assert_eq!(engine.undo_scale(&header.id).await.unwrap(), ["west web back to 1"]);
    assert_eq!(world.compute("web", "west").desired, 1);
}

#[tokio::test]
async fn a_failback_drill_sets_back_the_region_it_leaves_to_its_size_before_the_move_into_it() {
    let world = FakeWorld::two_regions();
    for region in ["east", "west"] {
        let size = if region == "east" { 4 } else { 1 };
        world.set_unit("web", region, "deployment/api", size);
        world.set_unit("web", region, "statefulset/queue", size);
    }
    let journal = MemoryJournal::default();
    let plan = plan_with_compute(100);
    assert!(engine(&plan, &journal, &world).undo_scale_into("west").await.unwrap().is_empty(), "no move into west yet");
    let into_west = run_to_west(100, &world, &journal, RunKind::Switchover).await;
    assert_eq!(into_west.state, RunState::Completed, "{:?}", into_west.reason);
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 4);
    // And back home: east is not shrunk, and west keeps its size until the drill undoes it.
    let observed = observe(&plan, &journal, &world).await;
    let header = plan_run(&plan, RunKind::Switchover, "east", &observed, "test").unwrap();
    let home = engine(&plan, &journal, &world).start(&header).await.unwrap();
    assert_eq!(home.state, RunState::Completed, "{:?}", home.reason);
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 4);
    let restored = engine(&plan, &journal, &world).undo_scale_into("west").await.unwrap();
    assert_eq!(restored, ["west web deployment/api back to 1", "west web statefulset/queue back to 1"]);
    assert_eq!(world.unit("web", "west", "deployment/api").desired, 1);
    assert_eq!(world.unit("web", "east", "deployment/api").desired, 4, "the region now primary is untouched");
}
