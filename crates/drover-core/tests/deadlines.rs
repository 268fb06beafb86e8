//! A provider call that never returns (a server that accepted the connection and went
//! silent) cannot hold a run: the engine cuts the step's call at its timeout, on the
//! providers' clock, and the run pauses saying what did not answer. The clock here moves
//! only when something waits on it, so the run's five minutes pass without waiting.

use std::time::Duration;

use async_trait::async_trait;
use drover_core::clock::Clock;
use drover_core::engine::{Engine, RetryPolicy, plan_run};
use drover_core::error::ProviderError;
use drover_core::journal::Journal;
use drover_core::plan::StepKind;
use drover_core::run::{Epoch, RunId, RunKind, RunState, StepState};
use drover_core::steps::{CALL_MARGIN, step, step_timeout};
use drover_core::testing::scenarios::{observe, plan_with_compute, two_region_plan};
use drover_core::testing::{FakeWorld, ManualClock, MemoryJournal};
use drover_core::world::{Database, MemberStatus, Providers, RejoinMethod, Traffic, TrafficState};

/// The fake world's traffic, except that a switch is sent and never answered.
struct SilentSwitch<'a>(&'a FakeWorld);

#[async_trait]
impl Traffic for SilentSwitch<'_> {
    async fn current(&self) -> Result<TrafficState, ProviderError> {
        self.0.current().await
    }

    async fn switch(&self, _region: &str, _observed: Epoch, _new: Epoch) -> Result<(), ProviderError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_switch_that_never_answers_pauses_the_run_at_the_steps_timeout() {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let observed = observe(&plan, &journal, &world).await;
    let header = plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    let clock = ManualClock::starting_at(1_000_000);
    let silent = SilentSwitch(&world);
    let providers = Providers { traffic: &silent, clock: &clock, ..Providers::all(&world) };
    let engine = Engine::new(&plan, &journal, providers).with_retries(RetryPolicy::IMMEDIATE, RetryPolicy::IMMEDIATE);

    // A hang guard only: on this clock the run waits for nothing real.
    let run = tokio::time::timeout(Duration::from_secs(60), engine.start(&header))
        .await
        .expect("the run ended instead of hanging on the silent switch")
        .unwrap();

    assert_eq!(run.state, RunState::Paused);
    let switch = run.steps.iter().find(|s| s.kind == StepKind::Switch).unwrap();
    assert_eq!(switch.state, StepState::Failed);
    let reason = run.reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "west switch: its apply got no answer after 5m (the step's timeout, 5m) — check that the traffic provider (rfc2136) answers"
        ),
        "{reason}"
    );
    assert!(reason.contains(&format!("'drover resume {}'", header.id)), "{reason}");
    assert!(clock.now_ms() >= 1_000_000 + 5 * 60_000, "the run gave up before the step's timeout had passed");
    assert_eq!(world.snapshot().traffic_region, "east", "traffic was not moved by a switch that never answered");
}

#[test]
fn a_steps_timeout_is_what_the_plan_lets_it_wait_plus_a_margin() {
    let plan = plan_with_compute(100);
    let timeout = |kind: StepKind| step_timeout(step(&kind, &plan).as_ref(), &plan);
    let ready = plan.compute.values().map(|c| c.ready_timeout).max().unwrap();
    assert_eq!(timeout(StepKind::Scale), ready + CALL_MARGIN);
    let drover_core::plan::DatabaseSpec::Postgres(pg) = &plan.database else { panic!("a postgres plan") };
    assert_eq!(timeout(StepKind::Promote), pg.promote_timeout + CALL_MARGIN);
    assert_eq!(timeout(StepKind::Verify), CALL_MARGIN);
}

/// The fake world's database, except that lifting a fence is sent and never answered.
struct SilentUnfence<'a>(&'a FakeWorld);

#[async_trait]
impl Database for SilentUnfence<'_> {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError> {
        self.0.member(region).await
    }
    async fn fence(&self, region: &str) -> Result<(), ProviderError> {
        self.0.fence(region).await
    }
    async fn promote(&self, region: &str, kind: RunKind) -> Result<(), ProviderError> {
        self.0.promote(region, kind).await
    }
    async fn record_epoch(&self, region: &str, epoch: Epoch, run: &RunId) -> Result<(), ProviderError> {
        self.0.record_epoch(region, epoch, run).await
    }
    async fn rejoin(&self, region: &str, primary: &str) -> Result<RejoinMethod, ProviderError> {
        self.0.rejoin(region, primary).await
    }
    async fn unfence(&self, _region: &str) -> Result<(), ProviderError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_undo_that_never_answers_leaves_the_run_paused_at_the_steps_timeout() {
    // A switchover that fenced east and paused at catch_up, west being out of reach.
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observe(&plan, &journal, &world).await, "t").unwrap();
    world.set_reachable("west", false);
    let clock = ManualClock::starting_at(1_000_000);
    let silent = SilentUnfence(&world);
    let providers = Providers { database: &silent, clock: &clock, ..Providers::all(&world) };
    let engine = Engine::new(&plan, &journal, providers).with_retries(RetryPolicy::IMMEDIATE, RetryPolicy::IMMEDIATE);
    assert_eq!(engine.start(&header).await.unwrap().state, RunState::Paused);
    world.set_reachable("west", true);

    let refused = tokio::time::timeout(Duration::from_secs(60), engine.abort(&header.id, "operator", true))
        .await
        .expect("the undo ended instead of hanging on the silent database")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "its undo got no answer after 6m (the step's timeout, 6m) — check that the database member in east answers"
        ),
        "{refused}"
    );
    assert!(refused.contains("stays paused"), "{refused}");
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Paused);
}
