//! The drill log: a drill's life, journaled like a run's, so a drill that crashed with
//! its fault in place is found again (`Journal::active_drill`) and its fault undone, and
//! so every drill is remembered (`drover drills`).
//!
//! A drill's records, in their legal order ([`DrillSummary::refuses`]): `Started`; the
//! fault's state captured (what undoing it needs) *before* it is injected; the fault
//! injected; phases (failover, reprotect, failback, compute set back), each naming its
//! run; the measurement (the report); the fault undone; `Ended`. At most one drill is
//! unfinished at a time: a second is refused while one is (`StoreError::ActiveDrill`).
//!
//! Drill ids share the shape and the type of run ids (`d<ms>-<hex>`), so the history's
//! pages and retention (`crate::history`, `RunStart::of_drill`) serve runs and drills
//! alike; the stores keep drills in a key space of their own.

use serde::{Deserialize, Serialize};

use crate::drill::DrillReport;
use crate::error::StoreError;
use crate::run::{RunId, RunKind};

/// A drill's id: `d<ms>-<hex>`, sortable by start time (`clock::Ids::drill_id`).
pub type DrillId = RunId;

/// The fault kind of a drill that injects none: a planned failback measured as it runs.
pub const NO_FAULT_FAILBACK: &str = "failback";

/// What a drill is: fixed when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillHeader {
    pub id: DrillId,
    pub plan: String,
    /// The fault's kind as its injector names it (`blackout`, `kill`, `stop-instance`, …),
    /// or `failback` for a drill that injects none.
    pub fault: String,
    /// Where the fault is put (a failback drill: the region it moves to).
    pub region: String,
    /// The region losing the primary, and the one taking it.
    pub from: String,
    pub to: String,
    /// Who asked: an API token's name, `cli`, or a schedule's name.
    pub requested_by: String,
}

impl DrillHeader {
    /// The fault as a person writes it: `KIND:REGION`.
    pub fn fault_spec(&self) -> String {
        format!("{}:{}", self.fault, self.region)
    }
}

/// A stage of a drill that runs as a journaled run (or, for compute set back, as the
/// engine's undo of a scale), in the order a full drill takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillPhase {
    Failover,
    Reprotect,
    Failback,
    ComputeSetBack,
}

impl DrillPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillPhase::Failover => "failover",
            DrillPhase::Reprotect => "reprotect",
            DrillPhase::Failback => "failback",
            DrillPhase::ComputeSetBack => "compute set back",
        }
    }

    /// The phase a run of `kind` is, in a drill.
    pub fn of_run(kind: RunKind) -> DrillPhase {
        match kind {
            RunKind::Failover | RunKind::Switchover => DrillPhase::Failover,
            RunKind::Reprotect => DrillPhase::Reprotect,
            RunKind::Failback => DrillPhase::Failback,
        }
    }
}

/// How a drill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillOutcome {
    /// Measured to the end.
    Completed,
    /// A person (or a stop condition) ended it early.
    Aborted,
    /// Something it needed failed: the run did not complete, nothing could be measured.
    Failed,
}

/// One line of a drill's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum DrillRecord {
    Started {
        header: DrillHeader,
    },
    /// What undoing the fault needs, produced by its injector (opaque here), written
    /// before the fault is injected: a crash after it may have left the fault in place.
    FaultCaptured {
        state: serde_json::Value,
    },
    FaultInjected,
    /// A phase began; `run` is its run's id when known before it starts (a run started
    /// here), else None (a daemon's run, found once it runs).
    PhaseStarted {
        phase: DrillPhase,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
    },
    /// The phase's run ended in `state` (a run's state, e.g. `completed`, `paused`).
    PhaseEnded {
        phase: DrillPhase,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
        state: String,
    },
    /// What clients saw: the report.
    Measured {
        report: Box<DrillReport>,
    },
    /// The fault was taken away again; `detail` says how.
    FaultUndone {
        detail: String,
    },
    Ended {
        outcome: DrillOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A drill record with its position and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillEntry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub record: DrillRecord,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    Running,
    Completed,
    Aborted,
    Failed,
}

impl DrillState {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillState::Running => "running",
            DrillState::Completed => "completed",
            DrillState::Aborted => "aborted",
            DrillState::Failed => "failed",
        }
    }

    /// An unfinished drill: it holds the one drill slot and is what `drill resume|abort` finds.
    pub fn is_active(self) -> bool {
        self == DrillState::Running
    }
}

/// Where the drill's fault stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultState {
    /// Nothing injected (yet, or ever: a failback drill).
    None,
    /// Its state captured; the injection may or may not have happened (a crash in between).
    Captured,
    Injected,
    Undone,
}

/// One phase as folded: when it began and ended, its run, and how the run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseView {
    pub phase: DrillPhase,
    pub run: Option<RunId>,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// The run's state when the phase ended; None while it runs.
    pub state: Option<String>,
}

/// Everything `drover drills show` needs, folded from a drill's records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub header: DrillHeader,
    pub state: DrillState,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub fault: FaultState,
    /// What undoing the fault needs, as its injector captured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_state: Option<serde_json::Value>,
    pub injected_ms: Option<u64>,
    pub undone_ms: Option<u64>,
    /// How the fault was undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone: Option<String>,
    pub phases: Vec<PhaseView>,
    pub report: Option<DrillReport>,
    /// Why it was aborted or failed.
    pub reason: Option<String>,
}

impl DrillSummary {
    /// Folds a drill's entries. Returns None if the first entry is not `Started`.
    pub fn fold(entries: &[DrillEntry]) -> Option<DrillSummary> {
        let (first, rest) = entries.split_first()?;
        let DrillRecord::Started { header } = &first.record else { return None };
        let mut summary = DrillSummary {
            header: header.clone(),
            state: DrillState::Running,
            started_ms: first.at_ms,
            finished_ms: None,
            fault: FaultState::None,
            fault_state: None,
            injected_ms: None,
            undone_ms: None,
            undone: None,
            phases: Vec::new(),
            report: None,
            reason: None,
        };
        for entry in rest {
            summary.apply(entry);
        }
        Some(summary)
    }

    pub fn apply(&mut self, entry: &DrillEntry) {
        let at = entry.at_ms;
        match &entry.record {
            DrillRecord::Started { .. } => {}
            DrillRecord::FaultCaptured { state } => {
                self.fault = FaultState::Captured;
                self.fault_state = Some(state.clone());
            }
            DrillRecord::FaultInjected => {
                self.fault = FaultState::Injected;
                self.injected_ms = Some(at);
            }
            DrillRecord::PhaseStarted { phase, run } => self.phases.push(PhaseView {
                phase: *phase,
                run: run.clone(),
                started_ms: at,
                finished_ms: None,
                state: None,
            }),
            DrillRecord::PhaseEnded { phase, run, state } => {
                if let Some(view) = self.phases.iter_mut().rev().find(|p| p.phase == *phase) {
                    view.finished_ms = Some(at);
                    view.state = Some(state.clone());
                    if run.is_some() {
                        view.run = run.clone();
                    }
                }
            }
            DrillRecord::Measured { report } => self.report = Some((**report).clone()),
            DrillRecord::FaultUndone { detail } => {
                self.fault = FaultState::Undone;
                self.undone_ms = Some(at);
                self.undone = Some(detail.clone());
            }
            DrillRecord::Ended { outcome, reason } => {
                self.state = match outcome {
                    DrillOutcome::Completed => DrillState::Completed,
                    DrillOutcome::Aborted => DrillState::Aborted,
                    DrillOutcome::Failed => DrillState::Failed,
                };
                self.finished_ms = Some(at);
                self.reason = reason.clone();
            }
        }
    }

    /// The fault may still be in place: captured (a crash may have come after the
    /// injection) or injected, and not undone. `drill resume|abort` undoes it.
    pub fn needs_undo(&self) -> bool {
        matches!(self.fault, FaultState::Captured | FaultState::Injected)
    }

    /// The phase that began and has not ended, if any.
    pub fn open_phase(&self) -> Option<&PhaseView> {
        self.phases.iter().find(|p| p.finished_ms.is_none())
    }

    /// The run of the drill's failover (or its one moving run), if any.
    pub fn run_id(&self) -> Option<&RunId> {
        self.phases.iter().find_map(|p| p.run.as_ref())
    }

    /// Why `record` cannot be the next record of this (running) drill, or None when it
    /// may: the drill log's legal orders. A fault is captured before it is injected, once;
    /// it is undone only while it may be in place; one phase runs at a time, each once;
    /// the measurement comes once, with no phase running; a drill completes only measured
    /// and with no phase running. Aborting or failing is always allowed.
    pub fn refuses(&self, record: &DrillRecord) -> Option<String> {
        let phase_open = || self.open_phase().map(|p| format!("phase {} is still running", p.phase.as_str()));
        match record {
            DrillRecord::Started { .. } => Some("a drill starts once".into()),
            DrillRecord::FaultCaptured { .. } => (self.fault != FaultState::None)
                .then(|| "the fault's state is captured once, before it is injected".into()),
            DrillRecord::FaultInjected => match self.fault {
                FaultState::None => {
                    Some("a fault is injected only once its state is captured (its undo needs it)".into())
                }
                FaultState::Captured => None,
                FaultState::Injected => Some("the fault is already injected".into()),
                FaultState::Undone => Some("the fault was undone; a drill injects one fault".into()),
            },
            DrillRecord::PhaseStarted { phase, .. } => phase_open().or_else(|| {
                self.phases
                    .iter()
                    .any(|p| p.phase == *phase)
                    .then(|| format!("phase {} runs once per drill", phase.as_str()))
            }),
            DrillRecord::PhaseEnded { phase, .. } => match self.open_phase() {
                Some(open) if open.phase == *phase => None,
                Some(open) => {
                    Some(format!("phase {} ends, but the running phase is {}", phase.as_str(), open.phase.as_str()))
                }
                None => Some(format!("phase {} ends, but it never started", phase.as_str())),
            },
            DrillRecord::Measured { .. } => phase_open()
                .map(|why| format!("the drill is measured while {why}"))
                .or_else(|| self.report.is_some().then(|| "a drill is measured once".into())),
            DrillRecord::FaultUndone { .. } => {
                (!self.needs_undo()).then(|| format!("no fault to undo (the fault is {})", self.fault_word()))
            }
            DrillRecord::Ended { outcome: DrillOutcome::Completed, .. } => phase_open()
                .map(|why| format!("the drill completes while {why}"))
                .or_else(|| self.report.is_none().then(|| "the drill completes without a measurement".into())),
            DrillRecord::Ended { .. } => None,
        }
    }

    /// The fault's state in a word, for people.
    pub fn fault_word(&self) -> &'static str {
        match self.fault {
            FaultState::None => "none",
            FaultState::Captured => "maybe in place",
            FaultState::Injected => "in place",
            FaultState::Undone => "undone",
        }
    }
}

/// What every journal checks before appending `record` to a drill: the drill exists,
/// has not ended, and `record` may follow its entries ([`DrillSummary::refuses`]).
pub fn check_drill_appendable(drill: &DrillId, entries: &[DrillEntry], record: &DrillRecord) -> Result<(), StoreError> {
    match DrillSummary::fold(entries) {
        None => Err(StoreError::UnknownDrill(drill.0.clone())),
        Some(summary) if !summary.state.is_active() => {
            Err(StoreError::DrillEnded { drill: drill.0.clone(), state: summary.state.as_str().into() })
        }
        Some(summary) => match summary.refuses(record) {
            Some(why) => Err(StoreError::IllegalDrillOrder { drill: drill.0.clone(), why }),
            None => Ok(()),
        },
    }
}

/// One page of drills, newest first; `next` is the cursor for the following page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillsPage {
    pub drills: Vec<DrillSummary>,
    pub next: Option<DrillId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, record: DrillRecord) -> DrillEntry {
        DrillEntry { seq, at_ms: 1_000 + seq, record }
    }

    fn header() -> DrillHeader {
        DrillHeader {
            id: RunId("d1-x".into()),
            plan: "shop".into(),
            fault: "blackout".into(),
            region: "east".into(),
            from: "east".into(),
            to: "west".into(),
            requested_by: "cli".into(),
        }
    }

    fn fold(records: Vec<DrillRecord>) -> DrillSummary {
        let entries: Vec<DrillEntry> = records.into_iter().enumerate().map(|(i, r)| entry(i as u64, r)).collect();
        DrillSummary::fold(&entries).unwrap()
    }

    #[test]
    fn a_fault_is_captured_before_it_is_injected_and_undone_once() {
        let started = fold(vec![DrillRecord::Started { header: header() }]);
        assert!(started.refuses(&DrillRecord::FaultInjected).unwrap().contains("captured"));
        assert!(started.refuses(&DrillRecord::FaultUndone { detail: "x".into() }).is_some());
        let captured = fold(vec![
            DrillRecord::Started { header: header() },
            DrillRecord::FaultCaptured { state: serde_json::json!({"rule": 7}) },
        ]);
        // A crash right after capturing may have left the fault in place.
        assert!(captured.needs_undo());
        assert_eq!(captured.refuses(&DrillRecord::FaultInjected), None);
        let undone = fold(vec![
            DrillRecord::Started { header: header() },
            DrillRecord::FaultCaptured { state: serde_json::json!({"rule": 7}) },
            DrillRecord::FaultInjected,
            DrillRecord::FaultUndone { detail: "rule 7 deleted".into() },
        ]);
        assert!(!undone.needs_undo());
        assert_eq!(undone.fault_state, Some(serde_json::json!({"rule": 7})));
        assert!(undone.refuses(&DrillRecord::FaultUndone { detail: "again".into() }).is_some());
        assert!(undone.refuses(&DrillRecord::FaultInjected).is_some());
    }

    #[test]
    fn phases_run_one_at_a_time_and_completion_needs_a_measurement() {
        let run = Some(RunId("r5-a".into()));
        let open = fold(vec![
            DrillRecord::Started { header: header() },
            DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: run.clone() },
        ]);
        assert_eq!(open.run_id(), run.as_ref());
        let second = DrillRecord::PhaseStarted { phase: DrillPhase::Failback, run: None };
        assert!(open.refuses(&second).unwrap().contains("failover is still running"));
        let wrong_end = DrillRecord::PhaseEnded { phase: DrillPhase::Failback, run: None, state: "completed".into() };
        assert!(open.refuses(&wrong_end).is_some());
        let done = DrillRecord::Ended { outcome: DrillOutcome::Completed, reason: None };
        assert!(open.refuses(&done).is_some());
        // Aborting is always possible: a person can always stop a drill.
        let abort = DrillRecord::Ended { outcome: DrillOutcome::Aborted, reason: Some("stop".into()) };
        assert_eq!(open.refuses(&abort), None);
        let ended = fold(vec![
            DrillRecord::Started { header: header() },
            DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: None },
            DrillRecord::PhaseEnded { phase: DrillPhase::Failover, run: run.clone(), state: "completed".into() },
        ]);
        assert_eq!(ended.run_id(), run.as_ref(), "a daemon's run is named when its phase ends");
        assert!(ended.refuses(&DrillRecord::PhaseStarted { phase: DrillPhase::Failover, run: None }).is_some());
        assert!(ended.refuses(&done).unwrap().contains("without a measurement"));
    }

    #[test]
    fn old_and_new_records_read_back() {
        let json = r#"{"seq":3,"at_ms":9,"record":"phase_started","phase":"compute_set_back"}"#;
        let e: DrillEntry = serde_json::from_str(json).unwrap();
        assert_eq!(e.record, DrillRecord::PhaseStarted { phase: DrillPhase::ComputeSetBack, run: None });
        assert_eq!(serde_json::to_string(&e).unwrap(), json);
    }
}
