//! The command line: what each command is for, and how they map to code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, Output};

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Disaster recovery for services running in two or more regions",
    long_about = "drover protects one service per plan file: it watches every region, fails over as one \
                  journaled, fenced, resumable run (fence the old primary, promote the database, switch \
                  traffic, verify), and proves it with drills that measure RTO and lost writes.\n\n\
                  Start with 'drover plan check PLAN', then 'drover status --plan PLAN'. \
                  To see it all on this machine: 'drover lab up' then 'drover drill --plan /tmp/drover-lab/plan.yaml --fault blackout:east'.",
    after_help = "Exit codes: 0 success, 1 the operation failed or paused (the message says how to continue), \
                  2 bad input or a refusal (nothing was changed)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a plan file and summarize it.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Show each region: role, database state and lag, where traffic points, check results.
    #[command(long_about = STATUS_ABOUT, after_help = STATUS_EXIT_CODES)]
    Status {
        #[command(flatten)]
        target: commands::remote::TargetArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// Judge whether a failover would work now and meet the plan's objectives: each rule
    /// passes, warns or fails, with the reason and what to do.
    #[command(long_about = READINESS_ABOUT, after_help = READINESS_EXIT_CODES)]
    Readiness {
        #[command(flatten)]
        plan: crate::app::store::PlanArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// Unplanned move of the primary to REGION: fence the old primary (best effort), promote, switch traffic, verify.
    Failover(commands::run::MoveArgs),
    /// Planned move with zero data loss: stop writes, wait for the standby to catch up, promote, switch,
    /// verify, and make the old primary a standby of the new one.
    Switchover(commands::run::MoveArgs),
    /// Make a returned old primary a streaming standby of the current primary again: pg_rewind
    /// when possible, a fresh base backup otherwise (its old data directory kept aside).
    #[command(long_about = REPROTECT_ABOUT, after_help = RUN_EXIT_CODES)]
    Reprotect(commands::run::ReprotectArgs),
    /// Planned move of the primary back to the plan's home region, with zero data loss, once it
    /// is a streaming standby again ('drover reprotect').
    #[command(long_about = FAILBACK_ABOUT, after_help = RUN_EXIT_CODES)]
    Failback(commands::run::FailbackArgs),
    /// List runs ('drover runs --plan PLAN'), or show one run's steps ('drover runs show RUN --plan PLAN').
    Runs(commands::run::RunsArgs),
    /// Continue a paused or interrupted run from its first unfinished step.
    Resume {
        /// The run id ('drover runs' lists them).
        run: String,
        #[command(flatten)]
        target: commands::remote::TargetArgs,
    },
    /// Approve a run that waits for a person (the daemon opens one when policy.auto_failover is off
    /// or policy.require_approval is on), and drive it.
    Approve {
        /// The run id ('drover runs' lists it as awaiting approval).
        run: String,
        #[command(flatten)]
        target: commands::remote::TargetArgs,
    },
    /// End a paused or interrupted run; --undo first sets back a fence that left no primary
    ///
    /// A run that fenced the primary and never promoted leaves no database taking writes:
    /// --undo lifts that fence (and sets back compute the run raised) before it ends the run,
    /// each undo journaled; --keep leaves the world as it is. When there is something to undo,
    /// one of them is required off a terminal, and asked for on one. A paused run's message
    /// and 'drover runs show RUN' say what each choice would do.
    Abort {
        run: String,
        #[command(flatten)]
        target: commands::remote::TargetArgs,
        /// Recorded in the journal.
        #[arg(long, default_value = "aborted by operator")]
        reason: String,
        /// Set back what the run did that has an undo (a fence with no promotion after it,
        /// compute it raised), each journaled, then end the run.
        #[arg(long, conflicts_with = "keep")]
        undo: bool,
        /// End the run and leave everything it did in place.
        #[arg(long)]
        keep: bool,
    },
    /// Inject a real fault, detect it with the plan's checks, fail over, and measure RTO and lost writes.
    Drill(commands::drill::DrillArgs),
    /// List drills ('drover drills --plan PLAN': when, fault, RTO, RPO, lost writes, objectives met),
    /// or show one with its report ('drover drills show DRILL --plan PLAN -o text|json|markdown|html').
    Drills(commands::drills::DrillsArgs),
    /// Protect the plan around the clock: probe every check from this vantage, share the view with
    /// peers, fail over by itself when a quorum sees the primary region down (policy.auto_failover),
    /// and serve the REST API (/api/v1) and Prometheus /metrics.
    Serve(crate::serve::ServeArgs),
    /// Back up a region's Kubernetes resources to object storage in every region; list and verify backups.
    #[command(subcommand)]
    Backup(commands::backup::BackupCommand),
    /// Restore a backup into a region's cluster in dependency order (CRDs, then namespaces, config and
    /// RBAC, storage, workloads last); resumable, and each object's outcome is reported.
    Restore(commands::restore::RestoreArgs),
    /// Real regions on this machine (network namespaces, PostgreSQL, Knot DNS) for drills and demos.
    #[command(subcommand)]
    Lab(commands::lab::LabCommand),
}

const REPROTECT_ABOUT: &str = "Make a region's database a streaming standby of the current primary again.

When to use it: after a failover, the old primary's region comes back with a database that still \
believes it is primary (or with its server stopped, or its data gone). Until it follows the new \
primary nothing protects the service, and 'drover failback' refuses.

How: through the member's host (database.members.REGION.host in the plan) drover checks that the \
host reaches the primary, stops the region's PostgreSQL and runs pg_rewind. When pg_rewind cannot \
work (no usable data directory, no common ancestor of the two histories, WAL it needs is gone, or \
the old primary ran without data checksums or wal_log_hints) it takes a fresh pg_basebackup from \
the primary instead, choosing by itself. The old data directory is never deleted: it is moved to \
DATA_DIR.drover-<ms>, kept until you remove it, and the run says where. Then it starts the standby \
and waits until it streams; in a synchronous plan the primary waits for it again.

What it prints: each step as the journal records it, ending with the method used (pg_rewind or \
base_backup); with --output json, stdout holds the run and its \"rejoin_method\". The primary does \
not move and the epoch is not raised. Journaled and resumable like every run ('drover runs show \
RUN', 'drover resume RUN').

Runs here, with the plan and its journal (--plan, --state or --store), or through a daemon \
(--server URL --token-file FILE). While 'drover serve' daemons lead the plan on an etcd store, only \
the leader runs it: send it there, since a run started here on that store is refused.";

const FAILBACK_ABOUT: &str = "Move the primary back to the plan's home region, with zero data loss.

When to use it: after a failover and 'drover reprotect', the home region (the region whose role is \
primary in the plan; --to names another) is a streaming standby again and the service should go \
back there.

How: a planned switchover with the plan's switchover runbook: fence the current primary, wait \
until home has replayed all of its WAL, promote home at the next epoch, switch traffic, verify, and \
rejoin the old primary as a standby. Refused, with nothing changed, while home is not a healthy \
streaming standby: the message says to run 'drover reprotect --plan PLAN --region HOME' first.

What it prints: each step as the journal records it, then the new primary and its epoch; \
--output json prints the run. Journaled and resumable like every run.

Runs here, with the plan and its journal (--plan, --state or --store), or through a daemon \
(--server URL --token-file FILE). While 'drover serve' daemons lead the plan on an etcd store, only \
the leader runs it: send it there, since a run started here on that store is refused.";

const STATUS_ABOUT: &str = "Show each region: role, database state and lag, where traffic points, check results.

ROLE is what the region's database does now (primary, standby, fenced old primary, unreachable, ...), \
with the plan's role beside it when they differ, e.g. 'primary (plan: standby)' after a failover. \
HEALTH is decided by the region's database member (unreachable: unhealthy), its critical checks (one \
failing: unhealthy; none: unknown) and its compute (unreadable: unknown), with the reason beside it. \
A lag or position the database does not expose is shown as unknown (JSON: null); RDS and Aurora have \
a lag in time only.";

const STATUS_EXIT_CODES: &str = "Exit codes: 0 the world was read, even in part (what could not be read is \
shown); 1 nothing could be read: no database member, no traffic record and no check answered; 2 bad input.";

const READINESS_ABOUT: &str = "Judge whether a failover would work now and meet the plan's objectives.

Each rule looks at the world as a run would (the same observation and preflight) and says pass, \
warn or fail for each region (or the whole plan), with the reason and what to do. A pass needs \
evidence: what drover cannot tell is a warn that says why. The rules:

- database: the primary takes writes; each standby replicates, its lag within objectives.rpo; \
RDS and Aurora standbys have the primary's engine version and parameter group family (else fail), \
instance class, Multi-AZ and backup retention (else warn).

- budget: detection (the slowest critical check's interval x failure_threshold) + promote timeout \
+ switch + TTL within objectives.rto; rpo 0s with asynchronous replication fails.

- traffic: the record sets exist as the plan names them; each region's health check (or its \
critical checks) is healthy.

- compute: the primary's capacity is read; each standby's max size allows its share; what it \
launches (launch configuration, node group) exists.

- backups: the newest backup in each region's store is younger than backup.schedule plus a margin, \
and whole.

- permissions: every action 'drover plan iam' lists is allowed (not asked yet: a warn).

- drills: the last successful drill is younger than 35 days (no drill history yet: a warn).

'drover serve' evaluates the same rules every --readiness-every (gauge drover_readiness, \
GET /api/v1/readiness). docs/readiness.md describes every rule.";

const READINESS_EXIT_CODES: &str = "Exit codes: 0 no rule fails (warnings allowed); 1 at least one rule fails; \
2 bad input (the plan, its secrets).";

const RUN_EXIT_CODES: &str = "Exit codes: 0 the run completed; 1 it failed or paused (the message says how to \
continue: 'drover resume RUN' or 'drover abort RUN'); 2 bad input or a refusal (nothing was changed).";

#[derive(Subcommand)]
enum PlanCommand {
    /// Parse and validate PLAN: errors name file:line:column and the field (exit 2); a valid plan is summarized.
    Check {
        /// The plan file.
        plan: PathBuf,
        /// Also read every resource the plan names (database members, record sets, health
        /// checks, compute) and report each one that is missing or unusable: the same
        /// preflight every run passes before it changes anything. Exit 2 when any is.
        #[arg(long)]
        live: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// Print the least-privilege IAM policy (JSON) drover needs for PLAN's AWS resources, and nothing more.
    #[command(long_about = IAM_ABOUT)]
    Iam {
        /// The plan file.
        plan: PathBuf,
    },
}

const IAM_ABOUT: &str =
    "Print the least-privilege IAM policy (JSON) drover needs for PLAN's AWS resources, and nothing more.

Every action drover calls for this plan (Route 53 record sets and health checks, node groups, Auto \
Scaling groups, ...) is listed, scoped to the plan's own resources wherever AWS allows a resource-level \
scope; the few calls AWS only grants on \"*\" have that Resource. The account id in ARNs is \"*\": \
narrow it to yours if you like. Attach it to the role drover runs as, e.g.

  drover plan iam plan.yaml > drover-policy.json
  aws iam put-role-policy --role-name drover --policy-name drover --policy-document file://drover-policy.json

A plan with no AWS resources needs no policy: nothing is printed on stdout and a note goes to stderr.";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A daemon's log is how people learn what it decided: info by default there.
    init_tracing(if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" });
    match cli.command {
        Command::Plan(PlanCommand::Check { plan, live: false, output }) => commands::plan::check(&plan, output),
        Command::Plan(PlanCommand::Check { plan, live: true, output }) => commands::plan::check_live(&plan, output),
        Command::Plan(PlanCommand::Iam { plan }) => commands::plan::iam(&plan),
        Command::Status { target, output } => commands::status::run(&target, output),
        Command::Readiness { plan, output } => commands::readiness::run(&plan, output),
        Command::Failover(args) => commands::run::start(drover_core::run::RunKind::Failover, args),
        Command::Switchover(args) => commands::run::start(drover_core::run::RunKind::Switchover, args),
        Command::Reprotect(args) => commands::run::reprotect(args),
        Command::Failback(args) => commands::run::failback(args),
        Command::Runs(args) => commands::run::runs(args),
        Command::Resume { run, target } => commands::run::resume(&run, &target),
        Command::Approve { run, target } => commands::run::approve(&run, &target),
        Command::Abort { run, target, reason, undo, keep } => {
            commands::run::abort(&run, &target, &reason, commands::terminal::UndoChoice::from_flags(undo, keep))
        }
        Command::Serve(args) => commands::finish(crate::serve::run(args)),
        Command::Drill(args) => commands::drill::run(args),
        Command::Drills(args) => commands::drills::run(args),
        Command::Backup(cmd) => commands::backup::run(cmd),
        Command::Restore(args) => commands::restore::run(args),
        Command::Lab(cmd) => commands::lab::run(cmd),
    }
}

/// Whether an event of `target` at `level` may reach drover's log. The AWS SDK's debug logs
/// print the resolved identity (the access key id, with the secret redacted) and its HTTP
/// stack's print requests: credentials never reach drover's logs, at any DROVER_LOG level.
/// Every crate of the SDK (`aws_*`, `aws_smithy_*`, new service crates included) and the
/// HTTP and TLS crates under it are capped at info; a cap by crate name prefix, not a list
/// of crates, so one added later cannot slip past it (as `aws_sdk_sts` and
/// `aws_smithy_http_client` once did).
pub(crate) fn log_allowed(target: &str, level: &tracing::Level) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    let capped =
        krate.starts_with("aws_") || matches!(krate, "hyper" | "hyper_util" | "h2" | "rustls" | "tokio_rustls");
    !capped || *level <= tracing::Level::INFO
}

fn init_tracing(default: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The cap is a filter of its own beside DROVER_LOG's: no directive written there, however
    // specific (`aws_smithy_runtime::client=trace`), can lift it.
    let cap = tracing_subscriber::filter::filter_fn(|meta| log_allowed(meta.target(), meta.level()));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter.and(cap));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_allowed;

    #[test]
    fn the_sdk_and_its_http_stack_are_capped_at_info_and_drover_is_not() {
        for target in [
            "aws_sdk_sts::endpoint_lib",
            "aws_smithy_http_client::hyper_client",
            "aws_smithy_runtime::client::orchestrator",
            "aws_config::meta::credentials::chain",
            "aws_sigv4::http_request::sign",
            "aws_sdk_someservice_added_later",
            "hyper_util::client::legacy::pool",
            "h2::codec",
            "rustls::client::hs",
        ] {
            assert!(!log_allowed(target, &Level::DEBUG), "{target} debug");
            assert!(!log_allowed(target, &Level::TRACE), "{target} trace");
            assert!(log_allowed(target, &Level::INFO), "{target} info");
            assert!(log_allowed(target, &Level::WARN), "{target} warn");
        }
        for target in ["drover", "drover_adapters::aws::rds", "drover_core::engine", "awsome"] {
            assert!(log_allowed(target, &Level::TRACE), "{target} trace");
        }
    }
}
