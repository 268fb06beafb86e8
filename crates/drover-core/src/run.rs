//! Runs, their journal records, and the summary folded from those records.
//! The journal is the only source of truth: a run's state is always derived.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::notify::{EventKind, NotifyEvent};
use crate::plan::{Plan, StepKind};

/// The fencing token: the term of the current primary.
pub type Epoch = u64;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Unplanned: the primary region is lost.
    Failover,
    /// Planned, with no data loss: both regions are up.
    Switchover,
    /// Makes a returned old primary (`from`) a streaming standby of the primary (`to`);
    /// the primary does not move and the epoch is not raised.
    Reprotect,
    /// A switchover back to the plan's home region once it is a streaming standby again.
    Failback,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Failover => "failover",
            RunKind::Switchover => "switchover",
            RunKind::Reprotect => "reprotect",
            RunKind::Failback => "failback",
        }
    }

    /// A planned move of the primary: both regions must be up, and nothing may be lost.
    pub fn is_planned(self) -> bool {
        matches!(self, RunKind::Switchover | RunKind::Failback)
    }

    /// Whether the run moves the primary (and so raises the epoch).
    pub fn moves_primary(self) -> bool {
        self != RunKind::Reprotect
    }
}

/// What a run is: fixed when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    pub id: RunId,
    pub kind: RunKind,
    pub plan: String,
    /// The region losing the primary role (in a reprotect: the region made a standby).
    pub from: String,
    /// The region taking it (in a reprotect: the primary it follows).
    pub to: String,
    /// The epoch this run promotes to: the store's epoch when it began, plus one
    /// (in a reprotect: the current epoch, which it does not change).
    pub epoch: Epoch,
    pub steps: Vec<StepKind>,
    /// Why it started (a person's command, or a detection).
    pub reason: String,
    /// The data a person accepted to lose (`--accept-data-loss`): why the target holds
    /// older data than the primary, or lags beyond policy. None for every other run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_loss: Option<String>,
    /// Who asked for it through the API: the name of the caller's token. None for the
    /// command line and the autopilot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl RunHeader {
    /// A notification about this run, carrying its id and regions.
    pub fn event(&self, plan: &Plan, kind: EventKind, reason: impl Into<String>, at_ms: u64) -> NotifyEvent {
        let mut event = NotifyEvent::new(plan, kind, reason, at_ms);
        event.run_id = Some(self.id.0.clone());
        event.from = Some(self.from.clone());
        event.to = Some(self.to.clone());
        event
    }
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Started {
        header: RunHeader,
    },
    /// Written before a step touches the world.
    StepIntent {
        step: usize,
        kind: StepKind,
    },
    /// Written after the step, with what it took.
    StepDone {
        step: usize,
        kind: StepKind,
        outcome: StepOutcome,
        detail: String,
    },
    /// A step failed; the run waits for a person.
    Paused {
        step: usize,
        kind: StepKind,
        reason: String,
    },
    /// `by`: the name of the API token that asked (None: the command line, a new leader).
    Resumed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The run waits for a person before its first step (policy.require_approval,
    /// or auto_failover off when the autopilot found the primary down).
    AwaitingApproval {
        reason: String,
    },
    /// A person approved it; `by` says who or through what (cli, api).
    Approved {
        by: String,
    },
    EpochRaised {
        from: Epoch,
        to: Epoch,
    },
    /// Written by the scale step before it first resizes `resource` in `region`: what the
    /// region ran until then, so a drill can set it back (`Engine::undo_scale`).
    ScaledFrom {
        resource: String,
        region: String,
        units: crate::capacity::Units,
    },
    Completed,
    /// An abort set a completed step back (`abort --undo`): a lifted fence, compute sized back.
    Undone {
        step: usize,
        kind: StepKind,
        detail: String,
    },
    Aborted {
        reason: String,
        /// The name of the API token that asked (None: the command line).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// What every journal checks before appending `record` to a run: the run exists, has
/// not ended, and `record` may follow its entries (see [`RunSummary::refuses`]), so a late
/// writer (a stale process, an abort racing a step) cannot add steps to a run a person
/// already closed, and no bug can journal a history that never happened.
pub fn check_appendable(run: &RunId, entries: &[Entry], record: &Record) -> Result<(), StoreError> {
    match RunSummary::fold(entries) {
        None => Err(StoreError::UnknownRun(run.0.clone())),
        Some(summary) if !summary.state.is_active() => {
            Err(StoreError::RunEnded { run: run.0.clone(), state: summary.state.as_str().into() })
        }
        Some(summary) => match summary.refuses(record) {
            Some(why) => Err(StoreError::IllegalOrder { run: run.0.clone(), why }),
            None => Ok(()),
        },
    }
}

/// How a step that is behind the run came to be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step acted on the world.
    Applied,
    /// Observation found the world already as the step wants it.
    AlreadyDone,
    /// The step could not act and the run may go on without it (fencing an
    /// unreachable old primary in a failover): it is done, but nothing was achieved.
    Skipped,
}

impl StepOutcome {
    pub fn state(self) -> StepState {
        match self {
            StepOutcome::Applied => StepState::Applied,
            StepOutcome::AlreadyDone => StepState::AlreadyDone,
            StepOutcome::Skipped => StepState::Skipped,
        }
    }
}

/// A journal record with its position and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub record: Record,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Paused,
    AwaitingApproval,
    Completed,
    Aborted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::AwaitingApproval => "awaiting approval",
            RunState::Paused => "paused",
            RunState::Completed => "completed",
            RunState::Aborted => "aborted",
        }
    }
    /// Active runs block new ones: one writer of the world at a time.
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Running | RunState::Paused | RunState::AwaitingApproval)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    pub kind: StepKind,
    pub state: StepState,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    pub detail: Option<String>,
    /// How many times an intent was recorded (more than one after a resume).
    pub attempts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    InFlight,
    Applied,
    AlreadyDone,
    Skipped,
    Failed,
    /// Done, then set back by an abort.
    Undone,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::InFlight => "in-flight",
            StepState::Applied => "applied",
            StepState::AlreadyDone => "already done",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
            StepState::Undone => "undone",
        }
    }
    pub fn is_done(self) -> bool {
        matches!(self, StepState::Applied | StepState::AlreadyDone | StepState::Skipped)
    }
}

/// Everything `drover runs show` needs, folded from the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub header: RunHeader,
    pub state: RunState,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub steps: Vec<StepView>,
    /// Why the run is paused or was aborted.
    pub reason: Option<String>,
    /// Who asked for what, oldest first: the API token's name for a start, resume or abort
    /// through the daemon, and every approval (`cli` from the command line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<Asked>,
}

/// One request by someone: `action` is start, approve, resume or abort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Asked {
    pub action: String,
    pub by: String,
    pub at_ms: u64,
}

impl RunSummary {
    /// Folds a run's entries. Returns None if the first entry is not `Started`.
    pub fn fold(entries: &[Entry]) -> Option<RunSummary> {
        let (first, rest) = entries.split_first()?;
        let Record::Started { header } = &first.record else { return None };
        let mut summary = RunSummary {
            steps: header
                .steps
                .iter()
                .map(|kind| StepView {
                    kind: kind.clone(),
                    state: StepState::Pending,
                    started_ms: None,
                    finished_ms: None,
                    detail: None,
                    attempts: 0,
                })
                .collect(),
            header: header.clone(),
            state: RunState::Running,
            started_ms: first.at_ms,
            finished_ms: None,
            reason: None,
            asked: header
                .requested_by
                .iter()
                .map(|by| Asked { action: "start".into(), by: by.clone(), at_ms: first.at_ms })
                .collect(),
        };
        for entry in rest {
            summary.apply(entry);
        }
        Some(summary)
    }

    pub fn apply(&mut self, entry: &Entry) {
        let at = entry.at_ms;
        match &entry.record {
            Record::Started { .. } | Record::EpochRaised { .. } | Record::ScaledFrom { .. } => {}
            Record::StepIntent { step, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.state = StepState::InFlight;
                    s.started_ms.get_or_insert(at);
                    s.attempts += 1;
                }
            }
            Record::StepDone { step, outcome, detail, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.state = outcome.state();
                    s.finished_ms = Some(at);
                    s.detail = Some(detail.clone());
                }
            }
            Record::Paused { step, reason, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.state = StepState::Failed;
                    s.detail = Some(reason.clone());
                }
                self.state = RunState::Paused;
                self.reason = Some(reason.clone());
            }
            Record::Resumed { by } => {
                if let Some(by) = by {
                    self.asked.push(Asked { action: "resume".into(), by: by.clone(), at_ms: at });
                }
                self.state = RunState::Running;
                self.reason = None;
            }
            Record::Approved { by } => {
                self.asked.push(Asked { action: "approve".into(), by: by.clone(), at_ms: at });
                self.state = RunState::Running;
                self.reason = None;
            }
            Record::AwaitingApproval { reason } => {
                self.state = RunState::AwaitingApproval;
                self.reason = Some(reason.clone());
            }
            Record::Undone { step, detail, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.state = StepState::Undone;
                    s.detail = Some(detail.clone());
                }
            }
            Record::Completed => {
                self.state = RunState::Completed;
                self.finished_ms = Some(at);
            }
            Record::Aborted { reason, by } => {
                if let Some(by) = by {
                    self.asked.push(Asked { action: "abort".into(), by: by.clone(), at_ms: at });
                }
                self.state = RunState::Aborted;
                self.finished_ms = Some(at);
                self.reason = Some(reason.clone());
            }
        }
    }

    /// Why `record` cannot be the next record of this (active) run, or None when it may:
    /// the run log's legal orders. A step starts only as the first step not done, and
    /// finishes or pauses only while in flight, under its own kind; a run resumes only
    /// from a pause, is approved only while it waits, and completes only once every step
    /// is done; only a paused run has steps set back.
    pub fn refuses(&self, record: &Record) -> Option<String> {
        let state = self.state;
        let step_at = |step: usize, kind: &StepKind| match self.steps.get(step) {
            None => Some(format!("the run has no step {step} ({} steps)", self.steps.len())),
            Some(view) if view.kind != *kind => {
                Some(format!("step {step} is {}, not {}", view.kind.as_str(), kind.as_str()))
            }
            Some(_) => None,
        };
        let running =
            |what: &str| (state != RunState::Running).then(|| format!("{what} while the run is {}", state.as_str()));
        match record {
            Record::Started { .. } => Some("a run starts once".into()),
            Record::StepIntent { step, kind } => {
                running("a step starts").or_else(|| step_at(*step, kind)).or_else(|| {
                    (self.next_step() != Some(*step)).then(|| {
                        format!(
                            "step {step} ({}) starts, but the first step not done is {}",
                            kind.as_str(),
                            self.next_step().map_or("none".into(), |n| n.to_string())
                        )
                    })
                })
            }
            Record::StepDone { step, kind, .. } | Record::Paused { step, kind, .. } => {
                running("a step ends").or_else(|| step_at(*step, kind)).or_else(|| {
                    (self.steps[*step].state != StepState::InFlight)
                        .then(|| format!("step {step} ({}) ends, but it never started", kind.as_str()))
                })
            }
            Record::EpochRaised { .. } | Record::ScaledFrom { .. } => running("a step records what it found"),
            Record::Resumed { .. } => {
                (state != RunState::Paused).then(|| format!("a {} run cannot resume", state.as_str()))
            }
            Record::AwaitingApproval { .. } => running("an approval is asked for").or_else(|| {
                self.steps
                    .iter()
                    .any(|s| s.attempts > 0)
                    .then(|| "an approval is asked for after a step started".into())
            }),
            Record::Approved { .. } => (state != RunState::AwaitingApproval)
                .then(|| format!("a {} run is not waiting for approval", state.as_str())),
            Record::Undone { step, kind, .. } => (state != RunState::Paused)
                .then(|| format!("a step is set back while the run is {}", state.as_str()))
                .or_else(|| step_at(*step, kind)),
            Record::Completed => running("the run completes").or_else(|| {
                self.next_step()
                    .map(|n| format!("the run completes with step {n} ({}) not done", self.steps[n].kind.as_str()))
            }),
            Record::Aborted { .. } => None,
        }
    }

    /// The first step not yet done, where a resume continues.
    pub fn next_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| !s.state.is_done())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, record: Record) -> Entry {
        Entry { seq, at_ms: 1_000 + seq, record }
    }

    #[test]
    fn a_summary_says_who_asked_for_what_and_old_journals_still_read() {
        let header = RunHeader {
            id: RunId("r1-x".into()),
            kind: RunKind::Failover,
            plan: "shop".into(),
            from: "east".into(),
            to: "west".into(),
            epoch: 1,
            steps: vec![StepKind::Fence],
            reason: "test".into(),
            accepted_loss: None,
            requested_by: Some("alice".into()),
        };
        let entries = [
            entry(0, Record::Started { header }),
            entry(1, Record::StepIntent { step: 0, kind: StepKind::Fence }),
            entry(2, Record::Paused { step: 0, kind: StepKind::Fence, reason: "x".into() }),
            entry(3, Record::Resumed { by: Some("bob".into()) }),
            entry(4, Record::Paused { step: 0, kind: StepKind::Fence, reason: "x".into() }),
            // A resume from the command line (or a new leader) names nobody.
            entry(5, Record::Resumed { by: None }),
            entry(6, Record::Aborted { reason: "done".into(), by: Some("carol".into()) }),
        ];
        let summary = RunSummary::fold(&entries).unwrap();
        let asked: Vec<(&str, &str, u64)> =
            summary.asked.iter().map(|a| (a.action.as_str(), a.by.as_str(), a.at_ms)).collect();
        assert_eq!(asked, [("start", "alice", 1_000), ("resume", "bob", 1_003), ("abort", "carol", 1_006)]);
        // Records written before names were recorded read as naming nobody.
        let old: Record = serde_json::from_str(r#"{"record": "resumed"}"#).unwrap();
        assert_eq!(old, Record::Resumed { by: None });
        let old: Record = serde_json::from_str(r#"{"record": "aborted", "reason": "r"}"#).unwrap();
        assert_eq!(old, Record::Aborted { reason: "r".into(), by: None });
        assert_eq!(serde_json::to_string(&Record::Resumed { by: None }).unwrap(), r#"{"record":"resumed"}"#);
    }
}
