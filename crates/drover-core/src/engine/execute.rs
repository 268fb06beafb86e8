//! The executor: drives a run's steps in order — intent journaled before a step touches
//! the world, outcome after — and retries each within its pace's policy. It knows no step
//! in particular: each is looked up by its journal tag (`crate::steps::step`).
//!
//! Every observe and apply is cut at the step's timeout (`crate::steps::step_timeout`),
//! timed on the providers' clock: a call that never returns (a server that accepted the
//! connection and went silent) pauses the run, saying what did not answer, instead of
//! holding it — and the active-run slot — forever.

use std::future::Future;
use std::time::Duration;

use crate::duration::format_duration;
use crate::error::ProviderError;
use crate::plan::StepKind;
use crate::run::{Record, RunHeader, RunId, RunSummary, StepOutcome};
use crate::steps::{Observation, Pace, Step, StepCx, step, step_timeout};

use super::{Engine, EngineError};

impl Engine<'_> {
    pub(super) async fn drive(&self, id: &RunId) -> Result<RunSummary, EngineError> {
        let summary = self.journal.summary(id).await?;
        let header = summary.header.clone();
        for (index, kind) in header.steps.iter().enumerate() {
            // Done steps are not run again: after an abort's undo failed part way, a step
            // set back (and redone first) can sit before steps that stayed done.
            if summary.steps[index].state.is_done() {
                continue;
            }
            self.record(id, Record::StepIntent { step: index, kind: kind.clone() }).await?;
            let unit = step(kind, self.plan);
            match self.run_step(unit.as_ref(), &header).await {
                Ok((outcome, detail)) => {
                    self.record(id, Record::StepDone { step: index, kind: kind.clone(), outcome, detail }).await?
                }
                Err(e) => {
                    // Named after the region the step acts on: the old primary for fence and rejoin.
                    let reason = format!(
                        "{region} {kind_name}: {e} — fix the cause, then 'drover resume {id}' (or 'drover abort {id}')",
                        region = unit.acts_on(&header),
                        kind_name = kind.as_str()
                    );
                    self.record(id, Record::Paused { step: index, kind: kind.clone(), reason }).await?;
                    return Ok(self.journal.summary(id).await?);
                }
            }
        }
        self.record(id, Record::Completed).await?;
        Ok(self.journal.summary(id).await?)
    }

    /// What a step sees of this engine while it runs for `header`.
    pub(crate) fn step_cx<'h>(&'h self, header: &'h RunHeader) -> StepCx<'h> {
        StepCx { plan: self.plan, header, world: self.world, journal: self.journal, log: self }
    }

    /// Looks at the world: is step `kind` already done for this run?
    pub async fn observe_step(&self, kind: &StepKind, header: &RunHeader) -> Result<Observation, ProviderError> {
        step(kind, self.plan).observe(&self.step_cx(header)).await
    }

    /// Changes the world so step `kind` is done (idempotent); returns how it acted when
    /// that is worth journaling.
    pub async fn apply_step(&self, kind: &StepKind, header: &RunHeader) -> Result<Option<String>, ProviderError> {
        step(kind, self.plan).apply(&self.step_cx(header)).await
    }

    /// Observe, apply only if needed, observe again; retrying transient errors.
    /// Returns how the step came to be done, and what the final observation said.
    async fn run_step(&self, unit: &dyn Step, header: &RunHeader) -> Result<(StepOutcome, String), ProviderError> {
        let cx = self.step_cx(header);
        let policy = match unit.pace() {
            Pace::Once => return self.apply_once(unit, &cx).await,
            Pace::Wait => self.wait,
            Pace::Act => self.act,
        };
        let mut applied = false;
        let mut just_applied = false;
        // An apply that succeeded in this drive: a step that must not act twice only looks
        // again after it, and acts again on a later drive (after a pause, a person's resume).
        let mut acted = false;
        // What applying said about how it acted (a rejoin's method), journaled with the outcome.
        let mut note: Option<String> = None;
        let mut attempt = 0;
        loop {
            let result: Result<(), ProviderError> = match self.within(unit, &cx, "observe", unit.observe(&cx)).await {
                Ok(Observation::Done(detail)) => {
                    let outcome = if applied { StepOutcome::Applied } else { StepOutcome::AlreadyDone };
                    let detail = match note {
                        Some(note) => format!("{detail}; {note}"),
                        None => detail,
                    };
                    return Ok((outcome, detail));
                }
                Ok(Observation::Skipped(why)) => return Ok((StepOutcome::Skipped, why)),
                // Applied, yet the world does not show it: wait and look again, within the bound.
                Ok(Observation::Needed(why)) if just_applied || (acted && !unit.acts_again()) => {
                    Err(ProviderError::transient(format!("applied, but the world does not show it yet: {why}")))
                }
                Ok(Observation::Needed(_)) => {
                    // An attempt that reported an error may still have acted (a fence whose
                    // confirmation timed out): once an acting step has tried, "done" is its doing.
                    applied |= unit.pace() == Pace::Act;
                    match self.within(unit, &cx, "apply", unit.apply(&cx)).await {
                        Ok(said) => {
                            note = said.or(note);
                            applied = true;
                            just_applied = true;
                            acted = true;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            just_applied = false;
            if let Err(e) = result {
                attempt += 1;
                if !e.retryable() || attempt >= policy.attempts {
                    return Err(if e.retryable() {
                        ProviderError::permanent(format!("{e} (gave up after {attempt} attempts)"))
                    } else {
                        e
                    });
                }
                self.world.clock.sleep(policy.delay(attempt)).await;
            }
        }
    }

    /// A step nothing in the world shows: applied once. It is not tried again in this drive
    /// when it fails, since a failure may come after it acted (a timeout, a reset answer);
    /// the run pauses and a person's resume applies it again. Its own word is its outcome.
    async fn apply_once(&self, unit: &dyn Step, cx: &StepCx<'_>) -> Result<(StepOutcome, String), ProviderError> {
        let said = self.within(unit, cx, "apply", unit.apply(cx)).await?;
        Ok((StepOutcome::Applied, said.unwrap_or_default()))
    }

    /// `call` (one observe, apply or undo of `unit`), or an error once the step's timeout has
    /// passed on the clock without an answer. Not retried: a call that hung may hang again
    /// (and may have acted), so the run pauses and a person looks.
    pub(crate) async fn within<T>(
        &self,
        unit: &dyn Step,
        cx: &StepCx<'_>,
        doing: &str,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let (clock, limit) = (self.world.clock, step_timeout(unit, self.plan));
        let started = clock.now_ms();
        tokio::select! {
            // An answer that came with the deadline counts.
            biased;
            answer = call => answer,
            () = clock.sleep(limit) => {
                // In whole seconds past the first (the timer's milliseconds of lateness are noise).
                let ms = clock.now_ms().saturating_sub(started);
                let elapsed = Duration::from_millis(if ms >= 1000 { ms - ms % 1000 } else { ms });
                Err(ProviderError::permanent(format!(
                    "its {doing} got no answer after {} (the step's timeout, {}) — check that {} answers, and that the journal's store does",
                    format_duration(elapsed),
                    format_duration(limit),
                    unit.answers_from(cx),
                )))
            }
        }
    }
}
