//! The engine's generic proofs, runnable against any journal: every step is
//! idempotent, and a crash after any journal record resumes to the same world
//! with exactly one promotion.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{CrashingJournal, FakeWorld, WorldSnapshot};
use crate::engine::{Engine, Observed, Providers, RetryPolicy, plan_run};
use crate::error::StoreError;
use crate::journal::Journal;
use crate::plan::*;
use crate::run::{Entry, Record, RunKind, RunState};
use crate::secret::SecretRef;

/// A plan over the fake world: east primary, west standby, a witness.
pub fn two_region_plan() -> Plan {
    let member = |r: &str| PostgresMember { dsn: SecretRef::Env(format!("{}_DSN", r.to_uppercase())), host: None };
    Plan {
        name: "shop".into(),
        source: PathBuf::from("plan.yaml"),
        objectives: Objectives { rto: Duration::from_secs(30), rpo: Duration::ZERO },
        regions: [
            ("east".into(), Region { role: Role::Primary }),
            ("west".into(), Region { role: Role::Standby }),
            ("witness".into(), Region { role: Role::Witness }),
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
            cooldown: Duration::from_secs(600),
        },
        runbooks: Runbooks::default(),
        notify: NotifySpec::default(),
    }
}

fn quiet(_: &Entry) {}

pub fn engine<'a>(plan: &'a Plan, journal: &'a dyn Journal, world: &'a FakeWorld) -> Engine<'a> {
    Engine {
        plan,
        journal,
        world: Providers { database: world, traffic: world, prober: world, notifier: world },
        act: RetryPolicy::IMMEDIATE,
        wait: RetryPolicy::IMMEDIATE,
        on_entry: &quiet,
    }
}

/// Observes the fake world exactly as the CLI observes the real one.
pub async fn observe(plan: &Plan, journal: &dyn Journal, world: &FakeWorld) -> Observed {
    crate::engine::observe(plan, journal, Providers { database: world, traffic: world, prober: world, notifier: world })
        .await
        .unwrap()
}

/// For each step of each runbook: applying it twice leaves the world as applying it once.
pub async fn every_step_twice_is_once(new_journal: impl Fn() -> Arc<dyn Journal>) {
    let plan = two_region_plan();
    for kind in [RunKind::Failover, RunKind::Switchover] {
        let steps = match kind {
            RunKind::Failover => plan.runbooks.failover.clone(),
            RunKind::Switchover => plan.runbooks.switchover.clone(),
        };
        for upto in 0..steps.len() {
            let mut worlds: Vec<(WorldSnapshot, u64)> = Vec::new();
            for times in [1, 2] {
                let world = FakeWorld::two_regions();
                let journal = new_journal();
                let observed = observe(&plan, journal.as_ref(), &world).await;
                let header = plan_run(&plan, kind, "west", &observed, "test").unwrap();
                journal.begin(&header).await.unwrap();
                let e = engine(&plan, journal.as_ref(), &world);
                for (i, &step) in steps.iter().enumerate().take(upto + 1) {
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

/// Runs a failover to completion, crashing after journal record 1, 2, … N in turn;
/// each time a fresh process resumes from the journal. The world must end the
/// same as an uninterrupted run, with exactly one promotion.
///
/// `open(case)` must return the same journal (reopened) when called again with the same case.
pub async fn crash_after_every_record(kind: RunKind, open: impl Fn(u64) -> Arc<dyn Journal>) {
    let plan = two_region_plan();
    // The reference: no crash.
    let (reference, records) = {
        let world = FakeWorld::two_regions();
        let journal = open(0);
        let header = plan_run(&plan, kind, "west", &observe(&plan, journal.as_ref(), &world).await, "test").unwrap();
        let summary = engine(&plan, journal.as_ref(), &world).start(&header).await.unwrap();
        assert_eq!(summary.state, RunState::Completed);
        (world.snapshot(), journal.entries(&header.id).await.unwrap().len() as u64)
    };
    assert_eq!(reference.promotions, 1);
    assert!(records >= 6, "a run journals at least intent+outcome per step");

    for crash_after in 1..=records {
        let world = FakeWorld::two_regions();
        let id = {
            let journal = open(crash_after);
            let header =
                plan_run(&plan, kind, "west", &observe(&plan, journal.as_ref(), &world).await, "test").unwrap();
            let crashing = CrashingJournal::new(journal.as_ref(), crash_after);
            let result = engine(&plan, &crashing, &world).start(&header).await;
            assert!(result.is_err(), "crash after record {crash_after} must stop the run");
            header.id
        };
        // A new process: reopen the journal and resume.
        let journal = open(crash_after);
        let summary = journal.summary(&id).await.unwrap();
        let resumed = if summary.state == RunState::Completed {
            summary
        } else {
            engine(&plan, journal.as_ref(), &world).resume(&id).await.unwrap()
        };
        assert_eq!(resumed.state, RunState::Completed, "crash after record {crash_after}: run did not complete");
        let now = world.snapshot();
        assert_eq!(now, reference, "crash after record {crash_after}: world differs from an uninterrupted run");
        assert_eq!(now.promotions, 1, "crash after record {crash_after}: promoted {} times", now.promotions);
        assert_eq!(world.promote_calls(), 1, "crash after record {crash_after}: promote was called again on resume");
        assert_eq!(journal.epoch().await.unwrap(), 1, "crash after record {crash_after}: epoch raised wrongly");
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
    journal.append(&header.id, Record::Aborted { reason: "by a person".into() }).await.unwrap();
    let late = journal.append(&header.id, Record::Resumed).await;
    assert!(matches!(late, Err(StoreError::RunEnded { .. })), "appended to an aborted run: {late:?}");
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Aborted);
    let ghost = crate::run::RunId("no-such-run".into());
    let unknown = journal.append(&ghost, Record::Resumed).await;
    assert!(matches!(unknown, Err(StoreError::UnknownRun(_))), "appended to a run never begun: {unknown:?}");
}
