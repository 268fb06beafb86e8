//! Steps: each step a runbook can name is one unit in one module here — what it acts on,
//! how it observes whether it is done, how it applies, its undo where it has one, how
//! it retries, and which resources it needs. The executor (`engine::execute`) looks a
//! step up by its journal tag with [`step`] and knows nothing of any step in particular.
//!
//! Every step is idempotent: observe, apply only if needed, observe again. A crash after
//! a step's intent is journaled and before its outcome means the step runs again on
//! resume; observation makes that second run a no-op when the first one acted.

mod catch_up;
mod exec;
mod fence;
mod http;
mod notify;
mod promote;
mod rejoin;
mod scale;
mod switch;
mod verify;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{ProviderError, StoreError};
use crate::journal::Journal;
use crate::plan::{Plan, StepAction, StepKind};
use crate::run::{Epoch, Record, RunHeader, RunId};
use crate::world::Providers;

pub(crate) use scale::read_capacity;
pub use scale::{undo_scale, undo_scale_into};

/// The outcome of observing a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The world already matches; the detail says how.
    Done(String),
    /// The step cannot act, and the run may go on without it; the detail says why.
    Skipped(String),
    /// Apply is needed; the detail says why.
    Needed(String),
}

/// How a step retries: the executor turns this into the engine's retry policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// It acts: a few quick tries, and once it has tried, "done" is its doing.
    Act,
    /// It waits for the world (catch-up, verify): many short looks; it never counts as applied.
    Wait,
    /// Nothing in the world shows it happened (a notification, a call without observe):
    /// applied once per drive without observing, not retried — at least once across
    /// crashes and resumes.
    Once,
}

/// A resource a step touches, so the preflight reads exactly those before a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The database member of the region losing the role; `fences` when the step makes it
    /// read-only (its preflight checks drover may change its settings).
    SourceMember { fences: bool },
    /// The traffic records the run switches.
    Traffic,
    /// The plan's compute, in both regions (read in the source, sized in the target).
    Compute,
}

/// Writes a record to the run's journal the way the engine does (progress output and
/// notifications included): how a step journals what it found before it acts.
#[async_trait]
pub trait RunLog: Send + Sync {
    async fn record(&self, id: &RunId, record: Record) -> Result<(), StoreError>;
}

/// What a step sees: the plan, the run, the providers (the time among them), the journal.
pub struct StepCx<'a> {
    pub plan: &'a Plan,
    pub header: &'a RunHeader,
    pub world: Providers<'a>,
    pub journal: &'a dyn Journal,
    pub log: &'a dyn RunLog,
}

impl StepCx<'_> {
    /// The region losing the role (in a reprotect: the one made a standby).
    pub fn from(&self) -> &str {
        &self.header.from
    }

    /// The region taking it (in a reprotect: the primary it follows).
    pub fn to(&self) -> &str {
        &self.header.to
    }

    pub fn epoch(&self) -> Epoch {
        self.header.epoch
    }

    /// The store's epoch: the fencing token every promotion raises.
    async fn stored_epoch(&self) -> Result<Epoch, ProviderError> {
        self.journal.epoch().await.map_err(|e| ProviderError::transient(e.to_string()))
    }

    /// Refuses to go on once the store's epoch is newer than the run's: another run took over.
    async fn not_stale(&self) -> Result<(), ProviderError> {
        let stored = self.stored_epoch().await?;
        if stored > self.epoch() { Err(stale(stored, self.epoch())) } else { Ok(()) }
    }
}

#[async_trait]
pub trait Step: Send + Sync {
    /// The runbook name and journal tag.
    fn kind(&self) -> StepKind;

    /// The region the step acts on, named when the run pauses on it.
    fn acts_on<'h>(&self, header: &'h RunHeader) -> &'h str {
        &header.to
    }

    fn pace(&self) -> Pace {
        Pace::Act
    }

    /// Whether, in one drive, the step may be applied again when observation does not yet
    /// show its first apply. Built-in steps may (applying is idempotent); the plan's own
    /// steps may not: a second call or command is a second effect.
    fn acts_again(&self) -> bool {
        true
    }

    /// The resources the preflight must find usable before a run with this step starts.
    fn needs(&self) -> &'static [Need] {
        &[]
    }

    /// The longest one look or one action of this step may rightly wait for the world, by
    /// the plan's own bounds (a promotion's `promote_timeout`, a resize's `ready_timeout`,
    /// an `http` step's `timeout`); the engine adds [`CALL_MARGIN`] and cuts a call that
    /// has not returned by then (see [`step_timeout`]). Most steps only ask and act.
    fn waits(&self, _plan: &Plan) -> Duration {
        Duration::ZERO
    }

    /// What the step talks to, named when one of its calls gets no answer in time: what a
    /// person checks (the journal's store is named by the engine).
    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the providers in {}", self.acts_on(cx.header))
    }

    /// Is this step already done for this run?
    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError>;

    /// Changes the world so the step is done. Safe to call again (idempotent). Returns how
    /// it acted when that is worth journaling (a rejoin's method).
    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError>;

    /// Sets a completed step back for `abort --undo` (which decides when that is safe, see
    /// `crate::undo`); returns what it did. Most steps have no undo.
    async fn undo(&self, _cx: &StepCx<'_>) -> Result<String, ProviderError> {
        Err(ProviderError::permanent(format!("{} has no undo", self.kind().as_str())))
    }
}

/// Added to what a step's calls may rightly wait for ([`Step::waits`]): time for the calls
/// around the wait (connect, read, write the journal) and their own retries. Every one of
/// them has a deadline of its own well inside this (AWS 30 s, PostgreSQL 10 s, Kubernetes
/// 30 s, etcd 5 s, webhooks 5 s), so this bound is the backstop that holds when a call
/// has none or ignores it — five minutes is long enough never to cut a call that would
/// have come back, and short enough that a person still has a run to act on.
pub const CALL_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long one observe or apply of `unit` may take before the engine gives up on it.
pub fn step_timeout(unit: &dyn Step, plan: &Plan) -> Duration {
    unit.waits(plan).saturating_add(CALL_MARGIN)
}

/// How long the database's slowest operation (a promotion, a fence's restart) may take
/// by the plan.
fn database_waits(plan: &Plan) -> Duration {
    match &plan.database {
        crate::plan::DatabaseSpec::Postgres(pg) => pg.promote_timeout,
        crate::plan::DatabaseSpec::Rds(rds) => rds.promote_timeout,
        crate::plan::DatabaseSpec::AuroraGlobal(aurora) => aurora.timeout,
    }
}

/// The step a journal tag or runbook name stands for: the one registry of steps. The
/// plan's own steps are built from their section in `plan`.
pub fn step<'p>(kind: &'p StepKind, plan: &'p Plan) -> Box<dyn Step + 'p> {
    match kind {
        StepKind::Fence => Box::new(fence::Fence),
        StepKind::CatchUp => Box::new(catch_up::CatchUp),
        StepKind::Promote => Box::new(promote::Promote),
        StepKind::Scale => Box::new(scale::Scale),
        StepKind::Switch => Box::new(switch::Switch),
        StepKind::Verify => Box::new(verify::Verify),
        StepKind::Rejoin => Box::new(rejoin::Rejoin),
        StepKind::Notify => Box::new(notify::Notify),
        StepKind::Custom(name) => match plan.steps.get(name) {
            Some(StepAction::Http(action)) => Box::new(http::Http { name, action }),
            Some(StepAction::Exec(action)) => Box::new(exec::Exec { name, action }),
            None => Box::new(Gone { name }),
        },
    }
}

/// A step of a run that the plan no longer defines (it was edited since the run began):
/// it cannot be observed or applied, and says so rather than skip anything.
struct Gone<'p> {
    name: &'p str,
}

impl Gone<'_> {
    fn error(&self) -> ProviderError {
        ProviderError::permanent(format!(
            "the plan has no step '{}' any more (it was removed since this run began): put it back in the plan's steps section and resume, or abort the run",
            self.name
        ))
    }
}

#[async_trait]
impl Step for Gone<'_> {
    fn kind(&self) -> StepKind {
        StepKind::custom(self.name)
    }

    async fn observe(&self, _cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        Err(self.error())
    }

    async fn apply(&self, _cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        Err(self.error())
    }
}

/// The error of a run whose epoch another run has overtaken.
fn stale(found: Epoch, ours: Epoch) -> ProviderError {
    ProviderError::stale(format!(
        "epoch is {found}, newer than this run's {ours}: another run has taken over; abort this one"
    ))
}
