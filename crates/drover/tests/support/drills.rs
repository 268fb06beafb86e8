//! Drills journaled for the tests that read them back (`drills`, `serve`).

use drover_core::drill::{DrillObjectives, DrillReport, Objective, SampleTime, StepTime, Timeline, Writes};
use drover_core::drill_log::{DrillOutcome, DrillPhase, DrillRecord};
use drover_core::journal::Journal;
use drover_core::run::RunId;
use drover_core::testing::scenarios::drill_header;

/// A measured blackout drill's report: fenced skipped, two failed writes.
pub fn report() -> DrillReport {
    let step = |step: &str, started: u64, finished: u64| StepTime {
        run: "failover".into(),
        step: step.into(),
        state: "applied".into(),
        started_ms: Some(started),
        finished_ms: Some(finished),
    };
    let sample =
        |sent_ms: i64, latency_ms: Option<u64>| SampleTime { sent_ms, latency_ms, acknowledged: latency_ms.is_some() };
    DrillReport {
        plan: "shop".into(),
        fault: "blackout:east".into(),
        replication: "synchronous".into(),
        run_id: Some("r1700000000000-0a1b".into()),
        from: "east".into(),
        to: "west".into(),
        fault_at_ms: 1_700_000_000_000,
        rto_ms: Some(4_120),
        rpo_ms: 0,
        lost_acknowledged_writes: 0,
        lost_sequences: vec![],
        writes: Writes { attempted: 5, acknowledged: 3, failed: 2, acknowledged_before_fault: 1 },
        timeline: Timeline {
            fault: 0,
            detected: Some(2_900),
            fenced: None,
            promoted: Some(3_400),
            switched: Some(3_600),
            verified: Some(3_900),
            first_success: Some(4_120),
        },
        objectives: DrillObjectives {
            rto: Objective { target_ms: 30_000, measured_ms: Some(4_120), met: true },
            rpo: Objective { target_ms: 0, measured_ms: Some(0), met: true },
        },
        run_state: "completed".into(),
        scale_restored: vec![],
        steps: vec![
            StepTime { state: "skipped".into(), ..step("fence", 2_950, 3_100) },
            step("promote", 3_100, 3_400),
            step("switch", 3_400, 3_600),
            step("verify", 3_600, 3_900),
        ],
        samples: vec![
            sample(-50, Some(9)),
            sample(0, None),
            sample(2_000, None),
            sample(4_100, Some(20)),
            sample(4_150, Some(8)),
        ],
        canary: None,
    }
}

/// Three drills, oldest first: measured and completed with its lab fault left for a
/// person; failed with its fault undone; and one that crashed after its failover began.
pub async fn seed(journal: &dyn Journal) {
    let run = Some(RunId("r1700000000000-0a1b".into()));
    let done = drill_header("d1700000000000-0001");
    journal.begin_drill(&done).await.unwrap();
    let undo = serde_json::json!({"injector": "lab", "undo": "drover lab heal east"});
    for record in [
        DrillRecord::FaultCaptured { state: undo.clone() },
        DrillRecord::FaultInjected,
        DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: run.clone() },
        DrillRecord::PhaseEnded { phase: DrillPhase::Failover, run: run.clone(), state: "completed".into() },
        DrillRecord::Measured { report: Box::new(report()) },
        DrillRecord::Ended { outcome: DrillOutcome::Completed, reason: None },
    ] {
        journal.append_drill(&done.id, record).await.unwrap();
    }
    let failed = drill_header("d1700000100000-0002");
    journal.begin_drill(&failed).await.unwrap();
    for record in [
        DrillRecord::FaultCaptured { state: undo.clone() },
        DrillRecord::FaultInjected,
        DrillRecord::FaultUndone { detail: "healed east".into() },
        DrillRecord::Ended { outcome: DrillOutcome::Failed, reason: Some("east was not detected as down".into()) },
    ] {
        journal.append_drill(&failed.id, record).await.unwrap();
    }
    let crashed = drill_header("d1700000200000-0003");
    journal.begin_drill(&crashed).await.unwrap();
    for record in [
        DrillRecord::FaultCaptured { state: undo },
        DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: None },
    ] {
        journal.append_drill(&crashed.id, record).await.unwrap();
    }
}
