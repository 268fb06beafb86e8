//! failover, switchover, runs, resume, abort: everything that starts, continues
//! or reads a run. Progress is printed from the journal as it is written.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use drover_core::engine::{self, Engine, EngineError, Observed, Refusal};
use drover_core::journal::Journal;
use drover_core::plan::StepKind;
use drover_core::run::{Entry, Record, RunHeader, RunId, RunKind, RunState, RunSummary, StepOutcome};
use drover_core::undo;
use drover_core::world::RejoinMethod;
use drover_core::{StoreError, duration::format_duration};

use crate::cli::{Output, PlanArgs};
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::{Failure, finish, print_json, runtime};
use crate::wiring::{self, Context};

#[derive(clap::Args)]
pub struct MoveArgs {
    /// The region that becomes primary.
    #[arg(long, value_name = "REGION")]
    pub to: String,
    /// Move even though the target holds older data than the primary (it does not follow
    /// it) or lags more than the plan's policy allows: every write it lacks is lost. The
    /// loss is journaled with the run and told to the plan's notifiers. Without it such a
    /// move is refused (exit 2) with what would be lost.
    #[arg(long)]
    pub accept_data_loss: bool,
    #[command(flatten)]
    pub run: StartArgs,
}

#[derive(clap::Args)]
pub struct ReprotectArgs {
    /// The region to make a standby: the old primary that came back, or a member whose
    /// server or data is gone.
    #[arg(long, value_name = "REGION")]
    pub region: String,
    #[command(flatten)]
    pub run: StartArgs,
}

#[derive(clap::Args)]
pub struct FailbackArgs {
    /// The region to move the primary to [default: the plan's home region, whose role is primary].
    #[arg(long, value_name = "REGION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub run: StartArgs,
}

/// What every command that starts a run takes.
#[derive(clap::Args)]
pub struct StartArgs {
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Why, recorded in the journal.
    #[arg(long, default_value = "requested by operator")]
    pub reason: String,
    /// json: progress goes to stderr, and stdout holds the run with its `rejoin_method` (runs
    /// started here; with --server the daemon's progress is printed as it comes).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
}

#[derive(clap::Subcommand)]
enum RunsCommand {
    /// Show one run: each step with its times and outcome.
    Show {
        /// The run id ('drover runs' lists them).
        run: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
}

pub fn start(kind: RunKind, args: MoveArgs) -> ExitCode {
    start_run(Request::Move { kind, to: &args.to, accept_data_loss: args.accept_data_loss }, &args.run)
}

pub fn reprotect(args: ReprotectArgs) -> ExitCode {
    start_run(Request::Reprotect { region: &args.region }, &args.run)
}

pub fn failback(args: FailbackArgs) -> ExitCode {
    start_run(Request::Failback { to: args.to.as_deref() }, &args.run)
}

/// Starts a run here, or asks the daemon at --server to start and drive it.
fn start_run(request: Request<'_>, args: &StartArgs) -> ExitCode {
    finish(runtime().block_on(async {
        match args.target.target()? {
            Target::Remote(remote) => remote.start(request, &args.reason, args.yes).await,
            Target::Local(local) => start_local(&local, request, &args.reason, args.yes, args.output).await,
        }
    }))
}

/// What a person asks for: one run, planned against the world as it is when it starts.
/// The CLI and a daemon's API plan it the same way.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    /// A failover or switchover to a region; `accept_data_loss` as `--accept-data-loss`.
    Move {
        kind: RunKind,
        to: &'a str,
        accept_data_loss: bool,
    },
    Reprotect {
        region: &'a str,
    },
    /// To the plan's home region unless `to` says otherwise.
    Failback {
        to: Option<&'a str>,
    },
}

impl Request<'_> {
    pub fn kind(self) -> RunKind {
        match self {
            Request::Move { kind, .. } => kind,
            Request::Reprotect { .. } => RunKind::Reprotect,
            Request::Failback { .. } => RunKind::Failback,
        }
    }

    /// The confirmation question when the daemon at `daemon` is to run it.
    pub fn question(self, daemon: &str) -> String {
        let via = format!(" through the daemon at {daemon}");
        match self {
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

    /// The body of `POST /api/v1/runs` that asks a daemon for this run.
    pub fn body(self, reason: &str) -> serde_json::Value {
        let mut body = serde_json::json!({"kind": self.kind().as_str(), "reason": reason});
        match self {
            Request::Move { to, accept_data_loss, .. } => {
                body["to"] = to.into();
                if accept_data_loss {
                    body["accept_data_loss"] = true.into();
                }
            }
            Request::Failback { to: Some(to) } => body["to"] = to.into(),
            Request::Reprotect { region } => body["region"] = region.into(),
            Request::Failback { to: None } => {}
        }
        body
    }

    /// Looks at the world and plans the run, with the preflight when `preflight` (the
    /// re-plan after a person's confirmation only looks for a world that moved: the resources
    /// were read a moment ago). A refusal is bad input (exit 2, nothing changed).
    async fn plan(self, cx: &Context, reason: &str, preflight: bool) -> Result<RunHeader, Failure> {
        let observed = cx.observe().await?;
        let planned = match preflight {
            true => self.plan_with(cx, &observed, reason).await,
            false => self.decide(cx, &observed, reason).await,
        };
        planned.map_err(|refusal| Failure::input(format!("{} refused: {refusal}", self.kind().as_str())))
    }

    /// Plans the run against what `observed` shows of the world, then reads every resource
    /// it would touch (preflight): nothing is journaled unless all of them are as it needs.
    pub async fn plan_with(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
        let header = self.decide(cx, observed, reason).await?;
        let scope = match self {
            Request::Move { kind, accept_data_loss, .. } => {
                drover_core::preflight::Scope::for_person(kind, accept_data_loss)
            }
            _ => drover_core::preflight::Scope::Both,
        };
        let problems = drover_core::preflight::for_run(&cx.plan, cx.world.providers(), &header, scope).await;
        if problems.is_empty() { Ok(header) } else { Err(Refusal::Preflight(problems)) }
    }

    /// The planners' decision alone, from what `observed` shows.
    async fn decide(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
        match self {
            Request::Move { kind, to, accept_data_loss } => {
                engine::plan_move(&cx.plan, kind, to, observed, reason, accept_data_loss)
            }
            Request::Reprotect { region } => {
                let host = cx.world.providers().database.host_access(region).await;
                engine::plan_reprotect(&cx.plan, region, observed, &host, reason)
            }
            Request::Failback { to } => engine::plan_failback(&cx.plan, to, observed, reason),
        }
    }
}

/// Plans, confirms (then plans again: the world may have moved while a person read the
/// question), and drives a run here, printing each step as the journal records it.
async fn start_local(
    local: &PlanArgs,
    request: Request<'_>,
    reason: &str,
    yes: bool,
    output: Output,
) -> Result<(), Failure> {
    let cx = Context::open(local).await?;
    // While daemons lead, every run goes through the leader (--server): its journal
    // writes are fenced on its leadership, and a shell's would not be.
    cx.refuse_if_daemons_lead().await?;
    let header = request.plan(&cx, reason, true).await?;
    let progress = Progress { to_stderr: output == Output::Json, ..Progress::default() };
    progress.say(&intro(&header));
    if !yes {
        confirm(&question(&header))?;
        let again = request.plan(&cx, reason, false).await?;
        if (again.from.as_str(), again.to.as_str(), again.epoch)
            != (header.from.as_str(), header.to.as_str(), header.epoch)
        {
            return Err(Failure::input(format!(
                "the world changed while waiting for confirmation (now {} -> {} at epoch {}); nothing changed — run the command again",
                again.from, again.to, again.epoch
            )));
        }
    }
    let on_entry = |e: &Entry| progress.show(e);
    let engine = cx.engine(&on_entry);
    let summary = engine.start(&header).await.map_err(engine_failure);
    cx.flush_notifications().await;
    let summary = summary?;
    if output == Output::Json {
        print_json(&RunOutput { rejoin_method: rejoin_method(&summary), run: &summary });
    }
    progress.say(&outcome_line(&summary)?);
    Ok(())
}

/// The line that says what a run is about to do.
fn intro(h: &RunHeader) -> String {
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

fn question(h: &RunHeader) -> String {
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

/// A run as `--output json` prints it: the run, and how its rejoin step made the standby.
#[derive(serde::Serialize)]
struct RunOutput<'a> {
    #[serde(flatten)]
    run: &'a RunSummary,
    /// `pg_rewind`, `base_backup` or `already_following`; null when the run has no rejoin
    /// step, it did not finish, or a resumed run found the standby already made.
    rejoin_method: Option<&'static str>,
}

/// How the run's rejoin step made its standby, from the step's journaled detail.
pub fn rejoin_method(summary: &RunSummary) -> Option<&'static str> {
    let step = summary.steps.iter().find(|s| s.kind == StepKind::Rejoin && s.state.is_done())?;
    RejoinMethod::name_in(step.detail.as_deref()?)
}

pub fn resume(run: &str, target: &TargetArgs) -> ExitCode {
    drive(run, target, false)
}

pub fn approve(run: &str, target: &TargetArgs) -> ExitCode {
    drive(run, target, true)
}

/// Resumes a run, or approves one that waits for a person, and drives it.
fn drive(run: &str, target: &TargetArgs, approve: bool) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) if approve => {
                return remote.drive(run, "approve", serde_json::json!({"by": "cli"})).await;
            }
            Target::Remote(remote) => return remote.drive(run, "resume", serde_json::json!({})).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        cx.refuse_if_daemons_lead().await?;
        let id = RunId(run.into());
        // Progress lines count the run's steps, as when it started.
        let steps = cx.journal.summary(&id).await.map_or(0, |s| s.steps.len());
        let progress = Progress { total: Mutex::new(steps), ..Progress::default() };
        let on_entry = |e: &Entry| progress.show(e);
        let engine = cx.engine(&on_entry);
        let summary = if approve { engine.approve(&id, "cli").await } else { engine.resume(&id).await };
        cx.flush_notifications().await;
        outcome(&summary.map_err(engine_failure)?)
    }))
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

pub fn abort(run: &str, target: &TargetArgs, reason: &str, choice: UndoChoice) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) => return remote.abort(run, reason, choice).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        let id = RunId(run.into());
        let undo = choice.decide(&cx.journal.summary(&id).await.map_err(store_failure)?)?;
        let on_entry = |_: &Entry| {};
        let summary = cx.engine(&on_entry).abort(&id, reason, undo).await.map_err(engine_failure);
        cx.flush_notifications().await;
        println!("{}", aborted_line(&summary?, reason));
        Ok(())
    }))
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

pub fn runs(args: RunsArgs) -> ExitCode {
    finish(runtime().block_on(async {
        match args.command {
            None => {
                let ListArgs { target, output } = args.list;
                let local = match target.target()? {
                    Target::Remote(remote) => return remote.runs(output).await,
                    Target::Local(local) => local,
                };
                let journal = wiring::open_journal(&local).await?;
                let runs = journal.runs().await.map_err(store_failure)?;
                match output {
                    Output::Json => print_json(&runs),
                    Output::Text => print!("{}", render_runs(&runs)),
                }
            }
            Some(RunsCommand::Show { run, target, output }) => {
                let local = match target.target()? {
                    Target::Remote(remote) => return remote.show(&run, output).await,
                    Target::Local(local) => local,
                };
                let journal = wiring::open_journal(&local).await?;
                let summary = journal.summary(&RunId(run)).await.map_err(store_failure)?;
                match output {
                    Output::Json => print_json(&summary),
                    Output::Text => print!("{}", render_run(&summary)),
                }
            }
        }
        Ok(())
    }))
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

pub fn engine_failure(e: EngineError) -> Failure {
    match e {
        EngineError::Store(s) => store_failure(s),
        refused @ (EngineError::Ended(..)
        | EngineError::NeedsApproval(_)
        | EngineError::NotAwaitingApproval(..)
        | EngineError::UndoNotPaused(..)) => Failure::input(refused.to_string()),
        failed @ EngineError::Undo(..) => Failure::failed(failed.to_string()),
    }
}

pub fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::ActiveRun { .. } | StoreError::UnknownRun(_) | StoreError::RunEnded { .. } => {
            Failure::input(e.to_string())
        }
        _ => Failure::failed(e.to_string()),
    }
}

/// Prints one line per step as the journal records it.
#[derive(Default)]
pub struct Progress {
    started: Mutex<HashMap<usize, u64>>,
    total: Mutex<usize>,
    /// Print to stderr (stdout holds JSON).
    pub to_stderr: bool,
}

impl Progress {
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
            Record::Resumed => Some("resuming".into()),
            Record::AwaitingApproval { reason } => Some(format!("waiting for approval: {reason}")),
            Record::Approved { by } => Some(format!("approved by {by}")),
            Record::Undone { step, kind, detail } => {
                Some(format!("[{}/{total}] {} undone: {detail}", step + 1, kind.as_str()))
            }
            Record::Completed | Record::Aborted { .. } => None,
        }
    }
}

fn time_of_day(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(f).unwrap_or_default()
}

pub fn render_runs(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".into();
    }
    use crate::commands::table::{Align, Table};
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
    use crate::commands::table::{Align, Table};
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

/// The engine as commands use it: real retry budgets.
pub fn engine_for<'a>(cx: &'a Context, on_entry: &'a (dyn Fn(&Entry) + Send + Sync)) -> Engine<'a> {
    engine_with(cx, cx.journal.as_ref(), on_entry)
}

/// An engine that journals through `journal` (a daemon's leader writes through its fenced one).
pub fn engine_with<'a>(
    cx: &'a Context,
    journal: &'a dyn Journal,
    on_entry: &'a (dyn Fn(&Entry) + Send + Sync),
) -> Engine<'a> {
    Engine::new(&cx.plan, journal, cx.world.providers()).with_progress(on_entry)
}
