//! A run's progress as people read it: one line per journal entry, printed by the CLI as
//! the journal is written and logged by the daemon in the same words.

use std::collections::HashMap;
use std::sync::Mutex;

use drover_core::run::{Entry, Record, StepOutcome};

/// Prints one line per step as the journal records it.
#[derive(Default)]
pub struct Progress {
    started: Mutex<HashMap<usize, u64>>,
    total: Mutex<usize>,
    /// Print to stderr (stdout holds JSON).
    pub to_stderr: bool,
}

impl Progress {
    /// Lines to stderr when `to_stderr` (stdout then holds JSON), to stdout otherwise.
    pub fn on_stderr(to_stderr: bool) -> Progress {
        Progress { to_stderr, ..Progress::default() }
    }

    /// For a run `steps` long that is going on (resumed, approved): its lines count its
    /// steps as when it started.
    pub fn of_steps(steps: usize) -> Progress {
        Progress { total: Mutex::new(steps), ..Progress::default() }
    }

    pub fn show(&self, entry: &Entry) {
        if let Some(line) = self.line(entry) {
            self.say(&line);
        }
    }

    pub fn say(&self, line: &str) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// The line a person reads for this entry (None for records that speak for themselves).
    pub fn line(&self, entry: &Entry) -> Option<String> {
        let total = *self.total.lock().unwrap();
        match &entry.record {
            Record::Started { header } => {
                *self.total.lock().unwrap() = header.steps.len();
                Some(format!("run {} started", header.id))
            }
            Record::StepIntent { step, kind } => {
                self.started.lock().unwrap().insert(*step, entry.at_ms);
                Some(format!("[{}/{total}] {} ...", step + 1, kind.as_str()))
            }
            Record::StepDone { step, kind, outcome, detail } => {
                let took = self.started.lock().unwrap().get(step).map(|t| entry.at_ms.saturating_sub(*t)).unwrap_or(0);
                let how = match outcome {
                    StepOutcome::Applied => "done",
                    StepOutcome::AlreadyDone => "already done",
                    StepOutcome::Skipped => "skipped",
                };
                Some(format!("[{}/{total}] {} {how} in {took} ms: {detail}", step + 1, kind.as_str()))
            }
            Record::Paused { step, kind, reason } => {
                Some(format!("[{}/{total}] {} FAILED: {reason}", step + 1, kind.as_str()))
            }
            Record::EpochRaised { from, to } => Some(format!("      epoch {from} -> {to}")),
            Record::ScaledFrom { resource, region, units } => Some(format!(
                "      {region} {resource} ran {} before scaling (kept for a drill's undo)",
                units.values().map(|c| u64::from(c.desired)).sum::<u64>()
            )),
            Record::Resumed { .. } => Some("resuming".into()),
            Record::AwaitingApproval { reason } => Some(format!("waiting for approval: {reason}")),
            Record::Approved { by } => Some(format!("approved by {by}")),
            Record::Undone { step, kind, detail } => {
                Some(format!("[{}/{total}] {} undone: {detail}", step + 1, kind.as_str()))
            }
            Record::Completed | Record::Aborted { .. } => None,
        }
    }
}
