//! failover, switchover, runs, resume, abort: everything that starts, continues
//! or reads a run. Progress is printed from the journal as it is written.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use drover_core::engine::{self, Engine, EngineError, RetryPolicy};
use drover_core::journal::Journal;
use drover_core::run::{Entry, Record, RunId, RunKind, RunState, RunSummary, StepOutcome};
use drover_core::{StoreError, duration::format_duration};

use crate::cli::Output;
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::{Failure, finish, print_json, runtime};
use crate::wiring::{self, Context};

#[derive(clap::Args)]
pub struct MoveArgs {
    /// The region that becomes primary.
    #[arg(long, value_name = "REGION")]
    pub to: String,
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Why, recorded in the journal.
    #[arg(long, default_value = "requested by operator")]
    pub reason: String,
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
    finish(runtime().block_on(async {
        let local = match args.target.target()? {
            Target::Remote(remote) => return remote.start(kind, &args.to, &args.reason, args.yes).await,
            Target::Local(local) => local,
        };
        let cx = Context::open(&local).await?;
        let observed = cx.observe().await?;
        let header = engine::plan_run(&cx.plan, kind, &args.to, &observed, &args.reason)
            .map_err(|refusal| Failure::input(format!("{} refused: {refusal}", kind.as_str())))?;
        let steps: Vec<&str> = header.steps.iter().map(|s| s.as_str()).collect();
        println!("{} {} -> {} at epoch {} ({})", kind.as_str(), header.from, header.to, header.epoch, steps.join(", "));
        if !args.yes {
            confirm(&format!("{} the primary from {} to {}?", kind.as_str(), header.from, header.to))?;
            // The world may have moved while a person read the question: look again.
            let again = engine::plan_run(&cx.plan, kind, &args.to, &cx.observe().await?, &args.reason)
                .map_err(|refusal| Failure::input(format!("{} refused: {refusal}", kind.as_str())))?;
            if (again.from.as_str(), again.epoch) != (header.from.as_str(), header.epoch) {
                return Err(Failure::input(format!(
                    "the world changed while waiting for confirmation (now {} -> {} at epoch {}); nothing changed — run the command again",
                    again.from, again.to, again.epoch
                )));
            }
        }
        let progress = Progress::default();
        let on_entry = |e: &Entry| progress.show(e);
        let engine = cx.engine(&on_entry);
        let summary = engine.start(&header).await.map_err(engine_failure);
        cx.flush_notifications().await;
        outcome(&summary?)
    }))
}

pub fn resume(run: &str, target: &TargetArgs) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) => return remote.drive(run, "resume", serde_json::json!({})).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        let progress = Progress::default();
        let on_entry = |e: &Entry| progress.show(e);
        let summary = cx.engine(&on_entry).resume(&RunId(run.into())).await.map_err(engine_failure);
        cx.flush_notifications().await;
        outcome(&summary?)
    }))
}

pub fn approve(run: &str, target: &TargetArgs) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) => return remote.drive(run, "approve", serde_json::json!({"by": "cli"})).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        let progress = Progress::default();
        let on_entry = |e: &Entry| progress.show(e);
        let summary = cx.engine(&on_entry).approve(&RunId(run.into()), "cli").await.map_err(engine_failure);
        cx.flush_notifications().await;
        outcome(&summary?)
    }))
}

pub fn abort(run: &str, target: &TargetArgs, reason: &str) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) => return remote.abort(run, reason).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        let on_entry = |_: &Entry| {};
        let summary = cx.engine(&on_entry).abort(&RunId(run.into()), reason).await.map_err(engine_failure);
        cx.flush_notifications().await;
        let summary = summary?;
        println!("run {} aborted: {reason}; the world was left as it is ('drover status' shows it)", summary.header.id);
        Ok(())
    }))
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
    let h = &summary.header;
    match summary.state {
        RunState::Completed => {
            println!(
                "run {} completed in {}: {} is primary at epoch {}",
                h.id,
                format_duration(std::time::Duration::from_millis(
                    summary.finished_ms.unwrap_or(summary.started_ms).saturating_sub(summary.started_ms)
                )),
                h.to,
                h.epoch
            );
            Ok(())
        }
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
        refused @ (EngineError::Ended(..) | EngineError::NeedsApproval(_) | EngineError::NotAwaitingApproval(..)) => {
            Failure::input(refused.to_string())
        }
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
}

impl Progress {
    pub fn show(&self, entry: &Entry) {
        if let Some(line) = self.line(entry) {
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
            Record::Resumed => Some("resuming".into()),
            Record::AwaitingApproval { reason } => Some(format!("waiting for approval: {reason}")),
            Record::Approved { by } => Some(format!("approved by {by}")),
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
    let mut out =
        format!("{:<20} {:<10} {:<11} {:<16} {:>5}  {}\n", "RUN", "KIND", "STATE", "MOVE", "EPOCH", "STARTED");
    for r in runs {
        out.push_str(&format!(
            "{:<20} {:<10} {:<11} {:<16} {:>5}  {}\n",
            r.header.id,
            r.header.kind.as_str(),
            r.state.as_str(),
            format!("{} -> {}", r.header.from, r.header.to),
            r.header.epoch,
            time_of_day(r.started_ms)
        ));
    }
    out
}

pub fn render_run(r: &RunSummary) -> String {
    let h = &r.header;
    let mut out = format!(
        "run {}: {} {} -> {} at epoch {}, {}\nreason: {}\nstarted: {}\n",
        h.id,
        h.kind.as_str(),
        h.from,
        h.to,
        h.epoch,
        r.state.as_str(),
        h.reason,
        time_of_day(r.started_ms)
    );
    if let Some(f) = r.finished_ms {
        out.push_str(&format!("finished: {} ({} ms)\n", time_of_day(f), f.saturating_sub(r.started_ms)));
    }
    out.push_str(&format!("{:<3} {:<9} {:<13} {:>9} {:>8}  {}\n", "#", "STEP", "STATE", "AT (ms)", "TOOK", "DETAIL"));
    for (i, s) in r.steps.iter().enumerate() {
        let at = s.started_ms.map(|t| t.saturating_sub(r.started_ms).to_string()).unwrap_or_else(|| "-".into());
        let took = match (s.started_ms, s.finished_ms) {
            (Some(a), Some(b)) => format!("{} ms", b.saturating_sub(a)),
            _ => "-".into(),
        };
        let attempts = if s.attempts > 1 { format!(" ({} attempts)", s.attempts) } else { String::new() };
        out.push_str(&format!(
            "{:<3} {:<9} {:<13} {:>9} {:>8}  {}{attempts}\n",
            i + 1,
            s.kind.as_str(),
            s.state.as_str(),
            at,
            took,
            s.detail.as_deref().unwrap_or("")
        ));
    }
    if let Some(reason) = &r.reason {
        out.push_str(&format!("reason: {reason}\n"));
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
    Engine {
        plan: &cx.plan,
        journal,
        world: cx.world.providers(),
        act: RetryPolicy::ACT,
        wait: RetryPolicy::WAIT,
        on_entry,
    }
}
