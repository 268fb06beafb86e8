//! The engine: a pure planner decides a run's steps from the plan and the observed world
//! (`planning`, after `observe`); a thin executor (`execute`) drives them, journaling
//! intent before and outcome after each, so a crash at any point can be resumed. What
//! each step does lives in `crate::steps`, one module per step.

mod execute;
mod observe;
mod planning;
mod retry;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::StoreError;
use crate::journal::{DriverClaim, Journal};
use crate::notify::EventKind;
use crate::plan::Plan;
use crate::run::{Entry, Record, RunHeader, RunId, RunKind, RunState, RunSummary};
use crate::steps::RunLog;

pub use crate::clock::now_ms;
pub use crate::join::join_all;
pub use crate::steps::Observation;
pub use crate::world::Providers;
pub use observe::{Observed, observe, observe_regions};
pub use planning::{Refusal, lag_gate, plan_failback, plan_move, plan_reprotect, plan_run, runbook, stale_target};
pub use retry::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} has ended ({1}); nothing to resume")]
    Ended(RunId, &'static str),
    #[error("run {0} waits for approval; approve it with 'drover approve {0}' or end it with 'drover abort {0}'")]
    NeedsApproval(RunId),
    #[error("run {0} is {1}, not waiting for approval")]
    NotAwaitingApproval(RunId, &'static str),
    #[error(
        "could not {0}: {1}; the run was not aborted and stays paused — fix the cause and abort again, or resume it (which first does the step again)"
    )]
    Undo(String, String),
    #[error("run {0} is {1}: only a paused run can be set back; wait for it to pause, or abort it with --keep")]
    UndoNotPaused(RunId, &'static str),
}

/// Drives runs of one plan against one journal and one world.
pub struct Engine<'a> {
    pub plan: &'a Plan,
    pub journal: &'a dyn Journal,
    pub world: Providers<'a>,
    /// For steps that act.
    pub act: RetryPolicy,
    /// For steps that wait for the world.
    pub wait: RetryPolicy,
    /// Sees every journal entry as it is written: progress output, drill timelines.
    pub on_entry: &'a (dyn Fn(&Entry) + Send + Sync),
    /// Who drives, in words for a person: named to a second driver that is refused.
    pub driver: &'a str,
}

/// A run this engine's driver holds (`Engine::hold`): only its holder drives it, and
/// `resume_held`/`approve_held` let it go when they end.
#[derive(Debug)]
pub struct Held {
    pub run: RunId,
    claim: DriverClaim,
}

/// A held run dropped without its release (its drive panicked, or was dropped mid-way): the
/// claim is let go here too, so this process's next driver can take the run.
impl Drop for Held {
    fn drop(&mut self) {
        if let Some(forget) = self.claim.forget {
            forget(&self.claim.token);
        }
    }
}

impl<'a> Engine<'a> {
    /// An engine with the production retry policies and no progress hook.
    pub fn new(plan: &'a Plan, journal: &'a dyn Journal, world: Providers<'a>) -> Engine<'a> {
        Engine {
            plan,
            journal,
            world,
            act: RetryPolicy::ACT,
            wait: RetryPolicy::WAIT,
            on_entry: &|_| {},
            driver: "drover",
        }
    }

    /// The same engine with other retry policies (tests: `RetryPolicy::IMMEDIATE`).
    pub fn with_retries(self, act: RetryPolicy, wait: RetryPolicy) -> Engine<'a> {
        Engine { act, wait, ..self }
    }

    /// The same engine, showing every journal entry to `on_entry` as it is written.
    pub fn with_progress(self, on_entry: &'a (dyn Fn(&Entry) + Send + Sync)) -> Engine<'a> {
        Engine { on_entry, ..self }
    }

    /// The same engine, driving as `driver` (a second driver is told who holds the run).
    pub fn with_driver(self, driver: &'a str) -> Engine<'a> {
        Engine { driver, ..self }
    }

    /// The same engine on another clock.
    pub fn with_clock(self, clock: &'a dyn Clock) -> Engine<'a> {
        Engine { world: Providers { clock, ..self.world }, ..self }
    }

    /// Starts a planned run and drives it until it completes or pauses.
    pub async fn start(&self, header: &RunHeader) -> Result<RunSummary, EngineError> {
        self.begin(header).await?;
        let held = self.hold(&header.id).await?;
        self.driving(held, async || self.drive(&header.id).await).await
    }

    /// Records the run's start (refused when another run is active) without driving it;
    /// `resume` drives it.
    pub async fn begin(&self, header: &RunHeader) -> Result<(), EngineError> {
        let started = self.journal.begin(header).await?;
        (self.on_entry)(&started);
        self.announce(&header.id, &started).await;
        Ok(())
    }

    /// Opens a planned run that waits for a person: it holds the active-run slot,
    /// so nothing else starts meanwhile, and does nothing until approved.
    pub async fn open_for_approval(&self, header: &RunHeader, reason: &str) -> Result<RunSummary, EngineError> {
        self.begin(header).await?;
        self.record(&header.id, Record::AwaitingApproval { reason: reason.into() }).await?;
        Ok(self.journal.summary(&header.id).await?)
    }

    /// Takes run `id` for this engine's driver: refused (`StoreError::Driven`, naming the
    /// holder) while another live driver holds it. A caller that must answer before it
    /// drives (the API's 202) holds first, then drives with `resume_held`/`approve_held`.
    pub async fn hold(&self, id: &RunId) -> Result<Held, EngineError> {
        let claim = self.journal.claim_run(id, self.driver).await?;
        Ok(Held { run: id.clone(), claim })
    }

    /// Approves a run that waits for it, and drives it.
    pub async fn approve(&self, id: &RunId, by: &str) -> Result<RunSummary, EngineError> {
        self.approve_held(self.hold(id).await?, by).await
    }

    /// `approve` of a run already held.
    pub async fn approve_held(&self, held: Held, by: &str) -> Result<RunSummary, EngineError> {
        let id = held.run.clone();
        self.driving(held, async || {
            let summary = self.journal.summary(&id).await?;
            if summary.state != RunState::AwaitingApproval {
                return Err(EngineError::NotAwaitingApproval(id.clone(), summary.state.as_str()));
            }
            self.record(&id, Record::Approved { by: by.into() }).await?;
            self.drive(&id).await
        })
        .await
    }

    /// Continues a paused or interrupted run from the first step not done.
    pub async fn resume(&self, id: &RunId) -> Result<RunSummary, EngineError> {
        self.resume_as(id, None).await
    }

    /// `resume`, recording who asked (`by`: an API token's name) when the run was paused.
    pub async fn resume_as(&self, id: &RunId, by: Option<&str>) -> Result<RunSummary, EngineError> {
        self.resume_held(self.hold(id).await?, by).await
    }

    /// `resume_as` of a run already held.
    pub async fn resume_held(&self, held: Held, by: Option<&str>) -> Result<RunSummary, EngineError> {
        let id = held.run.clone();
        self.driving(held, async || {
            // Read once held: a driver that finished meanwhile is seen as the run's end.
            let summary = self.journal.summary(&id).await?;
            match summary.state {
                RunState::Completed | RunState::Aborted => {
                    return Err(EngineError::Ended(id.clone(), summary.state.as_str()));
                }
                RunState::AwaitingApproval => return Err(EngineError::NeedsApproval(id.clone())),
                RunState::Paused => self.record(&id, Record::Resumed { by: by.map(str::to_owned) }).await?,
                RunState::Running => {}
            }
            self.drive(&id).await
        })
        .await
    }

    /// Does `work` while `held`, then lets the run go whatever the outcome. A release that
    /// fails leaves a claim behind that dies with this process or its lease.
    pub(crate) async fn driving(
        &self,
        held: Held,
        work: impl AsyncFnOnce() -> Result<RunSummary, EngineError>,
    ) -> Result<RunSummary, EngineError> {
        let done = work().await;
        let _ = self.journal.release_run(&held.run, &held.claim).await;
        done
    }

    /// Sets back the scale-up of run `run` (a drill's undo). One line per unit set back.
    pub async fn undo_scale(&self, run: &RunId) -> Result<Vec<String>, crate::ProviderError> {
        crate::steps::undo_scale(self.journal, self.world.compute, run).await
    }

    /// Sets back the scale-up of the newest move into `region` (a failback drill's undo).
    pub async fn undo_scale_into(&self, region: &str) -> Result<Vec<String>, crate::ProviderError> {
        crate::steps::undo_scale_into(self.journal, self.world.compute, region).await
    }

    pub(crate) async fn record(&self, id: &RunId, record: Record) -> Result<(), StoreError> {
        let ends = matches!(record, Record::Completed | Record::Aborted { .. });
        let entry = self.journal.append(id, record).await?;
        (self.on_entry)(&entry);
        self.announce(id, &entry).await;
        if ends {
            self.trim_history().await;
        }
        Ok(())
    }

    /// After a run ends: one batch of the ended runs `journal.keep` no longer keeps is
    /// removed. The run has ended whatever happens here; a failure waits for the next
    /// run's end or the daemon's round, which prune too.
    async fn trim_history(&self) {
        if let Some(keep) = &self.plan.journal.keep {
            let _ = self.journal.prune(keep, self.world.clock.now_ms()).await;
        }
    }

    /// The event hooks: a run's milestones go to the notifier (which never blocks).
    async fn announce(&self, id: &RunId, entry: &Entry) {
        let (kind, reason) = match &entry.record {
            Record::Started { header } => match &header.accepted_loss {
                Some(loss) => (EventKind::RunStarted, format!("{} — DATA LOSS ACCEPTED: {loss}", header.reason)),
                None => (EventKind::RunStarted, header.reason.clone()),
            },
            Record::Paused { reason, .. } => (EventKind::RunPaused, reason.clone()),
            Record::AwaitingApproval { reason } => (EventKind::ApprovalNeeded, reason.clone()),
            Record::Completed => (EventKind::RunCompleted, String::new()),
            Record::Aborted { reason, .. } => (EventKind::RunAborted, reason.clone()),
            _ => return,
        };
        let Ok(summary) = self.journal.summary(id).await else { return };
        let h = &summary.header;
        let reason = match (kind, h.kind) {
            (EventKind::RunCompleted, RunKind::Reprotect) => format!("{} is a streaming standby of {}", h.from, h.to),
            (EventKind::RunCompleted, _) => "the target is primary and serves traffic".into(),
            _ => reason,
        };
        self.world.notifier.notify(h.event(self.plan, kind, reason, entry.at_ms));
    }
}

/// Steps journal what they find before they act (`ScaledFrom`, `EpochRaised`) through
/// the engine, so progress output and notifications see those records too.
#[async_trait]
impl RunLog for Engine<'_> {
    async fn record(&self, id: &RunId, record: Record) -> Result<(), StoreError> {
        Engine::record(self, id, record).await
    }
}
