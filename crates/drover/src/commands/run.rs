//! failover, switchover, reprotect, failback, runs, resume, approve, abort: the commands
//! that start, continue or read a run, here or through a daemon (`remote`). Progress is
//! printed from the journal as it is written.

use std::process::ExitCode;

use drover_core::history::{self, DEFAULT_PAGE, PageRequest};
use drover_core::run::{Entry, RunId, RunKind, RunSummary};

use crate::app::context::Context;
use crate::app::error::{Failure, engine_failure, store_failure};
use crate::app::progress::Progress;
use crate::app::runs::{PlanRequest, Request};
use crate::app::runtime;
use crate::app::store::{PlanArgs, open_journal};
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::terminal::{
    UndoChoice, aborted_line, confirm, intro, outcome, outcome_line, question, rejoin_method, render_page, render_run,
};
use crate::commands::{Output, finish, print_json};

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
    /// How many runs to list, newest first (1 to 500).
    #[arg(long, default_value_t = DEFAULT_PAGE, value_parser = history::page_limit)]
    limit: usize,
    /// List the runs that began before this one (the "next" of the previous page).
    #[arg(long, value_name = "RUN")]
    before: Option<String>,
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

/// Before a person confirms a run: the readiness rules that fail now (`drover readiness`),
/// so the question is answered knowing what may not work. Nothing is refused for them.
async fn say_failing_readiness(cx: &Context, progress: &Progress) {
    match crate::app::readiness::assess(cx).await {
        Ok(report) => {
            let failing: Vec<String> = report.failing().map(|f| format!("  {}", f.line())).collect();
            if !failing.is_empty() {
                progress.say(&format!(
                    "readiness rules that fail now ('drover readiness' for all):\n{}",
                    failing.join("\n")
                ));
            }
        }
        Err(e) => progress.say(&format!("readiness not evaluated: {}", e.message)),
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
    let progress = Progress::on_stderr(output == Output::Json);
    progress.say(&intro(&header));
    if !yes {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            say_failing_readiness(&cx, &progress).await;
        }
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

/// A run as `--output json` prints it: the run, and how its rejoin step made the standby.
#[derive(serde::Serialize)]
struct RunOutput<'a> {
    #[serde(flatten)]
    run: &'a RunSummary,
    /// `pg_rewind`, `base_backup` or `already_following`; null when the run has no rejoin
    /// step, it did not finish, or a resumed run found the standby already made.
    rejoin_method: Option<&'static str>,
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
            // The daemon records the approval under the name of the token sent.
            Target::Remote(remote) if approve => return remote.drive(run, "approve", serde_json::json!({})).await,
            Target::Remote(remote) => return remote.drive(run, "resume", serde_json::json!({})).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        cx.refuse_if_daemons_lead().await?;
        let id = RunId(run.into());
        // Progress lines count the run's steps, as when it started.
        let steps = cx.journal.summary(&id).await.map_or(0, |s| s.steps.len());
        let progress = Progress::of_steps(steps);
        let on_entry = |e: &Entry| progress.show(e);
        let engine = cx.engine(&on_entry);
        let summary = if approve { engine.approve(&id, "cli").await } else { engine.resume(&id).await };
        cx.flush_notifications().await;
        outcome(&summary.map_err(engine_failure)?)
    }))
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

pub fn runs(args: RunsArgs) -> ExitCode {
    finish(runtime().block_on(async {
        match args.command {
            None => {
                let ListArgs { target, output, limit, before } = args.list;
                let request = PageRequest::after(limit, before.map(RunId));
                let page = match target.target()? {
                    Target::Remote(remote) => remote.runs(&request).await?,
                    Target::Local(local) => open_journal(&local).await?.page(&request).await.map_err(store_failure)?,
                };
                match output {
                    Output::Json => print_json(&page),
                    Output::Text => print!("{}", render_page(&page)),
                }
            }
            Some(RunsCommand::Show { run, target, output }) => {
                let local = match target.target()? {
                    Target::Remote(remote) => return remote.show(&run, output).await,
                    Target::Local(local) => local,
                };
                let journal = open_journal(&local).await?;
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
