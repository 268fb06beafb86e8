//! The `scale` step: the new primary region gets the plan's share of what the old
//! primary region runs — read live, or as last noted when the old region is lost.

use drover_core::engine::plan_run;
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
