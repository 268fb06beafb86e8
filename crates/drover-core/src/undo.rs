//! What an abort can set back, and what a paused run leaves in the world.
//!
//! A run that fenced the primary and then stopped before any promotion leaves no
//! database accepting writes: an outage made by drover. `abort --undo` lifts that fence
//! (and sets back any compute the run raised); `--keep` leaves the world as it is.
//! Lifting a fence is safe only while no other member can become primary: never once the
//! promote step was attempted — a promotion that timed out may still finish (RDS keeps
//! promoting, `pg_promote` was signalled), and two databases would accept writes.
//!
//! Each undo is journaled before it acts (`Undone`, which makes the step not done again):
//! if the undo fails or drover dies half way, the run stays paused and a resume does the
//! step again (fences again) before anything else; nothing is lost or done twice.

use crate::engine::{Engine, EngineError};
use crate::plan::StepKind;
use crate::run::{Record, RunId, RunState, RunSummary, StepState};
use crate::steps::step;

/// One completed step an abort can set back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Undo {
    pub step: usize,
    pub kind: StepKind,
    /// For people: `lift the fence on east (this run made it read-only)`.
    pub what: String,
}

/// What aborting `summary` can set back, and the steps it cannot, with why. Pure: from
/// the run's summary (a daemon's client has no more); [`Engine::abort`] looks at the
/// world again before it acts.
pub fn undoable(summary: &RunSummary) -> (Vec<Undo>, Vec<String>) {
    let h = &summary.header;
    let mut undos = Vec::new();
    let mut kept = Vec::new();
    for (step, view) in summary.steps.iter().enumerate() {
        match view.kind {
            // A fence this run put on, or may have (it failed or crashed part way); an
            // AlreadyDone fence was someone else's, a Skipped one never reached the member.
            StepKind::Fence
                if view.attempts > 0
                    && matches!(
                        view.state,
                        StepState::Applied | StepState::Failed | StepState::InFlight | StepState::Undone
                    ) =>
            {
                let promote = summary.steps.iter().find(|s| s.kind == StepKind::Promote);
                if promote.is_some_and(|p| p.state.is_done()) {
                    kept.push(format!(
                        "the fence on {}: {} was promoted, so it would make two primaries",
                        h.from, h.to
                    ));
                } else if promote.is_some_and(|p| p.attempts > 0) {
                    kept.push(format!(
                        "the fence on {}: the promotion of {} was attempted and may still finish (a promotion that timed out goes on), so lifting the fence could make two primaries — resume to finish the move, or, once {} is certainly not primary, lift the fence by hand",
                        h.from, h.to, h.to
                    ));
                } else {
                    undos.push(Undo {
                        step,
                        kind: StepKind::Fence,
                        what: format!("lift the fence on {} (this run made it read-only)", h.from),
                    });
                }
            }
            // The scale step journals the sizes it found before it first resizes anything.
            StepKind::Scale if view.attempts > 0 && view.state != StepState::Undone => undos.push(Undo {
                step,
                kind: StepKind::Scale,
                what: format!("set {}'s compute back to the sizes it ran before this run", h.to),
            }),
            StepKind::Promote | StepKind::Switch | StepKind::Rejoin if view.state.is_done() => {
                kept.push(format!("{} ({}): it has no undo", view.kind.as_str(), view.state.as_str()))
            }
            _ => {}
        }
    }
    (undos, kept)
}

/// What a run that stopped part way left in the world, and what each way on does: the
/// lines `drover` prints under a paused run.
pub fn paused_advice(summary: &RunSummary) -> Vec<String> {
    let h = &summary.header;
    let done = |kind: StepKind| summary.steps.iter().any(|s| s.kind == kind && s.state.is_done());
    let state = |kind: StepKind| summary.steps.iter().find(|s| s.kind == kind).map(|s| s.state);
    let mut lines = Vec::new();
    if h.kind.moves_primary() {
        let fenced = state(StepKind::Fence) == Some(StepState::Applied)
            || state(StepKind::Fence) == Some(StepState::AlreadyDone);
        let promoted = done(StepKind::Promote);
        let switched = done(StepKind::Switch);
        let fence = summary.steps.iter().find(|s| s.kind == StepKind::Fence);
        let fence_tried = fence.is_some_and(|s| s.attempts > 0);
        lines.push(match (fenced, promoted, switched) {
            (false, false, _) if state(StepKind::Fence) == Some(StepState::Skipped) => {
                format!("now: {} could not be fenced (unreachable) and {} is not promoted", h.from, h.to)
            }
            (false, false, _) if fence_tried => format!(
                "now: the fence of {} stopped part way ({}), so it may refuse writes; {} is not promoted",
                h.from,
                state(StepKind::Fence).map_or("?", StepState::as_str),
                h.to
            ),
            (true, false, _) => format!(
                "now: {} is fenced (read-only) and {} is not promoted — no database accepts writes",
                h.from, h.to
            ),
            (_, true, false) => {
                format!("now: {} is primary at epoch {} but traffic still goes to {}", h.to, h.epoch, h.from)
            }
            (_, true, true) => format!("now: {} is primary at epoch {} and traffic points at it", h.to, h.epoch),
            (false, false, _) => format!("now: nothing was changed yet: {} is still primary", h.from),
        });
    }
    let next = summary.next_step().and_then(|i| summary.steps.get(i)).map(|s| s.kind.as_str()).unwrap_or("the end");
    lines.push(format!("resume: tries {next} again and goes on ('drover resume {}')", h.id));
    let (undos, kept) = undoable(summary);
    if undos.is_empty() {
        lines.push(format!("abort: ends the run and leaves the world as it is ('drover abort {}')", h.id));
    } else {
        let what: Vec<&str> = undos.iter().map(|u| u.what.as_str()).collect();
        lines.push(format!("abort --undo: {}, then ends the run ('drover abort {} --undo')", what.join("; "), h.id));
        lines
            .push(format!("abort --keep: ends the run and leaves the world as it is ('drover abort {} --keep')", h.id));
    }
    lines.extend(kept.into_iter().map(|k| format!("kept by any abort: {k}")));
    lines
}

impl Engine<'_> {
    /// Ends an active run. With `undo`, first sets back what [`undoable`] allows —
    /// newest step first, each journaled as `Undone` — after looking at the world again:
    /// a fence is lifted only while the target is not a writable primary. An undo that
    /// fails leaves the run as it was (still active), so it can be tried again.
    pub async fn abort(&self, id: &RunId, reason: &str, undo: bool) -> Result<RunSummary, EngineError> {
        self.abort_as(id, reason, undo, None).await
    }

    /// `abort`, recording who asked (`by`: an API token's name).
    pub async fn abort_as(
        &self,
        id: &RunId,
        reason: &str,
        undo: bool,
        by: Option<&str>,
    ) -> Result<RunSummary, EngineError> {
        if undo {
            // An undo acts on the world: like a resume it needs the run to itself, or a
            // driver resuming it meanwhile would fence and promote while the undo lifts
            // the fence. A plain abort only ends the log, which refuses the driver's next record.
            let held = self.hold(id).await?;
            return self.driving(held, async || self.end_run(id, reason, true, by).await).await;
        }
        self.end_run(id, reason, false, by).await
    }

    async fn end_run(&self, id: &RunId, reason: &str, undo: bool, by: Option<&str>) -> Result<RunSummary, EngineError> {
        // Read once held: a driver that acted meanwhile is seen.
        let summary = self.journal.summary(id).await?;
        if !summary.state.is_active() {
            return Err(EngineError::Ended(id.clone(), summary.state.as_str()));
        }
        if undo {
            // A running run has a driver (a daemon, another shell) that would go on acting on
            // the world the undo sets back: only a paused run holds still.
            if summary.state != RunState::Paused {
                return Err(EngineError::UndoNotPaused(id.clone(), summary.state.as_str()));
            }
            let (undos, _) = undoable(&summary);
            for u in undos.iter().rev() {
                // Journaled first: from here on the step counts as not done, so a resume after
                // a failed or interrupted undo does it again before going on.
                let intent = format!("being set back: {}", u.what);
                self.record(id, Record::Undone { step: u.step, kind: u.kind.clone(), detail: intent }).await?;
                let (unit, cx) = (step(&u.kind, self.plan), self.step_cx(&summary.header));
                let detail = (self.within(unit.as_ref(), &cx, "undo", unit.undo(&cx)).await)
                    .map_err(|e| EngineError::Undo(u.what.clone(), e.message))?;
                self.record(id, Record::Undone { step: u.step, kind: u.kind.clone(), detail }).await?;
            }
        }
        self.record(id, Record::Aborted { reason: reason.into(), by: by.map(str::to_owned) }).await?;
        Ok(self.journal.summary(id).await?)
    }
}

/// How an abort went: what it set back.
pub fn undone(summary: &RunSummary) -> Vec<String> {
    summary
        .steps
        .iter()
        .filter(|s| s.state == StepState::Undone)
        .map(|s| format!("{} undone: {}", s.kind.as_str(), s.detail.as_deref().unwrap_or("")))
        .collect()
}
