//! Runs as a person reads them on a terminal, whether run here or by a daemon: the line
//! before a run and its outcome after, the tables of `drover runs`, and the questions asked
//! before anything changes.

use std::io::{IsTerminal, Write};

use drover_core::duration::format_duration;
use drover_core::history::RunsPage;
use drover_core::plan::StepKind;
use drover_core::run::{RunHeader, RunKind, RunState, RunSummary};
use drover_core::undo;
use drover_core::world::RejoinMethod;

use crate::app::error::Failure;
use crate::app::runs::Request;
use crate::commands::table::{Align, Table};

/// The line that says what a run is about to do.
pub fn intro(h: &RunHeader) -> String {
    let steps: Vec<&str> = h.steps.iter().map(|s| s.as_str()).collect();
    let line = intro_line(h.kind, &h.from, &h.to, h.epoch, &steps.join(", "));
    match &h.accepted_loss {
        Some(loss) => format!("{line}\nDATA LOSS ACCEPTED (--accept-data-loss): {loss}"),
        None => line,
    }
}

/// What a run does, with `more` (its steps, or where it is driven) in the brackets.
pub fn intro_line(kind: RunKind, from: &str, to: &str, epoch: impl std::fmt::Display, more: &str) -> String {
    match kind {
        RunKind::Reprotect => {
            format!("reprotect {from}: make it a streaming standby of {to} (epoch {epoch} stays; {more})")
        }
        kind => format!("{} {from} -> {to} at epoch {epoch} ({more})", kind.as_str()),
    }
}

/// The confirmation question before a run planned here.
pub fn question(h: &RunHeader) -> String {
    match h.kind {
        RunKind::Reprotect => reprotect_question(&h.from, &h.to, ""),
        kind if h.accepted_loss.is_some() => {
            format!("{} the primary from {} to {}, losing every write {} lacks?", kind.as_str(), h.from, h.to, h.to)
        }
        kind => format!("{} the primary from {} to {}?", kind.as_str(), h.from, h.to),
    }
}

/// A reprotect stops a database and may move its data aside: the question says so.
fn reprotect_question(region: &str, primary: &str, via: &str) -> String {
    format!(
        "stop {region}'s database and make it a standby of {primary}{via}? (pg_rewind, or a fresh base backup with \
         {region}'s data directory moved aside)"
    )
}

/// The confirmation question when the daemon at `daemon` is to run `request`.
pub fn question_through(request: Request<'_>, daemon: &str) -> String {
    let via = format!(" through the daemon at {daemon}");
    match request {
        Request::Move { kind, to, accept_data_loss: false } => {
            format!("{} the primary to {to}{via}?", kind.as_str())
        }
        Request::Move { kind, to, accept_data_loss: true } => {
            format!("{} the primary to {to}{via}, ACCEPTING THE LOSS of every write {to} lacks?", kind.as_str())
        }
        Request::Reprotect { region } => reprotect_question(region, "the current primary", &via),
        Request::Failback { to } => {
            format!("fail the primary back to {}{via}?", to.unwrap_or("the plan's home region"))
        }
    }
}

/// How the run's rejoin step made its standby, from the step's journaled detail.
pub fn rejoin_method(summary: &RunSummary) -> Option<&'static str> {
    let step = summary.steps.iter().find(|s| s.kind == StepKind::Rejoin && s.state.is_done())?;
    RejoinMethod::name_in(step.detail.as_deref()?)
}

/// `--undo`, `--keep`, or neither (ask on a terminal when there is something to undo).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum UndoChoice {
    Undo,
    Keep,
    Ask,
}

impl UndoChoice {
    pub fn from_flags(undo: bool, keep: bool) -> UndoChoice {
        match (undo, keep) {
            (true, _) => UndoChoice::Undo,
            (false, true) => UndoChoice::Keep,
            (false, false) => UndoChoice::Ask,
        }
    }

    /// Whether to undo `summary`'s steps: the choice given, or the person's answer. With
    /// something to undo and no choice off a terminal, the abort is refused: a fence left
    /// on by a script that did not look is an outage.
    pub fn decide(self, summary: &RunSummary) -> Result<bool, Failure> {
        let (undos, _) = undo::undoable(summary);
        match self {
            UndoChoice::Undo => Ok(true),
            UndoChoice::Keep => Ok(false),
            UndoChoice::Ask if undos.is_empty() => Ok(false),
            UndoChoice::Ask => {
                let what: Vec<&str> = undos.iter().map(|u| u.what.as_str()).collect();
                let id = &summary.header.id;
                if !std::io::stdin().is_terminal() {
                    return Err(Failure::input(format!(
                        "run {id} can be set back as it ends: {}; say --undo to do that, or --keep to leave everything as it is; nothing changed",
                        what.join("; ")
                    )));
                }
                for line in undo::paused_advice(summary) {
                    println!("  {line}");
                }
                print!(
                    "abort run {id}: [u]ndo ({}) then end it, [k]eep everything and end it, or anything else to leave it paused? ",
                    what.join("; ")
                );
                std::io::stdout().flush().ok();
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).ok();
                match answer.trim() {
                    "u" | "U" | "undo" => Ok(true),
                    "k" | "K" | "keep" => Ok(false),
                    _ => Err(Failure::input(format!("not aborted; run {id} stays paused and nothing changed"))),
                }
            }
        }
    }
}

/// What an abort did: each step it set back, or that it left the world as it was.
pub fn aborted_line(summary: &RunSummary, reason: &str) -> String {
    let undone = undo::undone(summary);
    if undone.is_empty() {
        format!("run {} aborted: {reason}; the world was left as it is ('drover status' shows it)", summary.header.id)
    } else {
        format!("run {} aborted: {reason}; {}", summary.header.id, undone.join("; "))
    }
}

/// Asks on a terminal; refuses without `--yes` elsewhere, so scripts never hang.
pub fn confirm(question: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input("not on a terminal: add --yes to confirm"));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok();
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::input("not confirmed; nothing changed"))
    }
}

pub fn outcome(summary: &RunSummary) -> Result<(), Failure> {
    println!("{}", outcome_line(summary)?);
    Ok(())
}

/// What a completed run achieved; a run that did not complete is a failure that says how to go on.
pub fn outcome_line(summary: &RunSummary) -> Result<String, Failure> {
    let h = &summary.header;
    match summary.state {
        RunState::Completed => {
            let took = format_duration(std::time::Duration::from_millis(
                summary.finished_ms.unwrap_or(summary.started_ms).saturating_sub(summary.started_ms),
            ));
            Ok(match h.kind {
                RunKind::Reprotect => format!(
                    "run {} completed in {took}: {} is a streaming standby of {}{}",
                    h.id,
                    h.from,
                    h.to,
                    rejoin_method(summary).map(|m| format!(" ({m})")).unwrap_or_default()
                ),
                _ => format!("run {} completed in {took}: {} is primary at epoch {}", h.id, h.to, h.epoch),
            })
        }
        RunState::Paused => Err(Failure::failed(format!(
            "run {} {}: {}\n{}",
            h.id,
            summary.state.as_str(),
            summary.reason.as_deref().unwrap_or("no reason recorded"),
            undo::paused_advice(summary).iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
        ))),
        _ => Err(Failure::failed(format!(
            "run {} {}: {}",
            h.id,
            summary.state.as_str(),
            summary.reason.as_deref().unwrap_or("no reason recorded")
        ))),
    }
}

pub fn time_of_day(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(f).unwrap_or_default()
}

pub fn render_runs(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".into();
    }
    let mut table = Table::new(&[
        ("RUN", Align::Left),
        ("KIND", Align::Left),
        ("STATE", Align::Left),
        ("MOVE", Align::Left),
        ("EPOCH", Align::Right),
        ("STARTED", Align::Left),
    ]);
    for r in runs {
        table.row(vec![
            r.header.id.to_string(),
            r.header.kind.as_str().into(),
            r.state.as_str().into(),
            movement(&r.header),
            r.header.epoch.to_string(),
            time_of_day(r.started_ms),
        ]);
    }
    table.render()
}

/// One page of runs, and how to see the next.
pub fn render_page(page: &RunsPage) -> String {
    let mut text = render_runs(&page.runs);
    if let Some(next) = &page.next {
        text.push_str(&format!("older runs: drover runs --before {next}\n"));
    }
    text
}

/// What a run moves: the primary (`east -> west`), or in a reprotect, who follows whom.
fn movement(h: &RunHeader) -> String {
    match h.kind {
        RunKind::Reprotect => format!("{} follows {}", h.from, h.to),
        _ => format!("{} -> {}", h.from, h.to),
    }
}

pub fn render_run(r: &RunSummary) -> String {
    let h = &r.header;
    let mut out = format!(
        "run {}: {} {} at epoch {}, {}\nreason: {}\nstarted: {}\n",
        h.id,
        h.kind.as_str(),
        movement(h),
        h.epoch,
        r.state.as_str(),
        h.reason,
        time_of_day(r.started_ms)
    );
    if let Some(f) = r.finished_ms {
        out.push_str(&format!("finished: {} ({} ms)\n", time_of_day(f), f.saturating_sub(r.started_ms)));
    }
    if let Some(loss) = &h.accepted_loss {
        out.push_str(&format!("data loss accepted: {loss}\n"));
    }
    if !r.asked.is_empty() {
        let asked: Vec<String> = r.asked.iter().map(|a| format!("{} by {}", a.action, a.by)).collect();
        out.push_str(&format!("asked: {}\n", asked.join(", ")));
    }
    let mut table = Table::new(&[
        ("#", Align::Left),
        ("STEP", Align::Left),
        ("STATE", Align::Left),
        ("AT (ms)", Align::Right),
        ("TOOK", Align::Right),
        ("DETAIL", Align::Left),
    ]);
    for (i, s) in r.steps.iter().enumerate() {
        let at = s.started_ms.map(|t| t.saturating_sub(r.started_ms).to_string()).unwrap_or_else(|| "-".into());
        let took = match (s.started_ms, s.finished_ms) {
            (Some(a), Some(b)) => format!("{} ms", b.saturating_sub(a)),
            _ => "-".into(),
        };
        let attempts = if s.attempts > 1 { format!(" ({} attempts)", s.attempts) } else { String::new() };
        table.row(vec![
            (i + 1).to_string(),
            s.kind.as_str().into(),
            s.state.as_str().into(),
            at,
            took,
            format!("{}{attempts}", s.detail.as_deref().unwrap_or("")),
        ]);
    }
    out.push_str(&table.render());
    if let Some(reason) = &r.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    if r.state == RunState::Paused {
        for line in undo::paused_advice(r) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
