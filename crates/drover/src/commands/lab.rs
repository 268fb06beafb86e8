//! `drover lab`: real regions on this machine. All the work is in the drover-lab crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use drover_lab::{Fault, LabError, Replication};

use crate::app::error::Failure;
use crate::app::runtime;
use crate::commands::{Output, finish, print_json};

#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Create the lab: namespaces drover-east, drover-west and drover-witness on bridge drover0,
    /// a PostgreSQL primary (east) and streaming standby (west), Knot DNS for api.app.test. and the
    /// lab app in each region; write DIR/plan.yaml. Returns once everything answers.
    #[command(
        after_help = "Needs root. Only one lab can exist on a machine at a time (the namespace names are fixed)."
    )]
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// sync: a commit on east waits until west has it (no acknowledged write is lost on failover).
        /// async: it does not (lower write latency; the last writes may be lost).
        #[arg(long, value_enum, default_value_t = ReplicationArg::Sync)]
        replication: ReplicationArg,
        /// Also run 'drover serve' in each region (east, west, witness) on port 7070, with the plan set
        /// to fail over by itself when 2 of the 3 see the primary down; the bearer token is in
        /// DIR/secrets/api-token. 'drover drill --daemons' then measures their failover.
        #[arg(long)]
        daemons: bool,
        /// Daemons that survive their own region: as --daemons, plus a 3-member etcd cluster (one
        /// member per region, client port 2379) holding their journal, reports and leader
        /// election (store etcds://10.200.0.11:2379,10.200.0.12:2379,10.200.0.13:2379/drover/lab),
        /// with TLS from the lab CA and auth on: user drover, password in
        /// DIR/secrets/etcd-drover.password ('lab up' prints the --store flags to use).
        /// East starts leading both etcd and the election. Needs etcd (Debian etcd-server).
        #[arg(long)]
        ha: bool,
    },
    /// Stop everything the lab started and remove its namespaces, bridge and directory. Safe to run twice.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show each region: namespace, database role (asked over SQL), app health, faults in force; and the DNS answer.
    Status {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// Inject a real fault into a region; 'drover lab heal REGION' lifts it.
    Fault {
        /// blackout: drop all traffic in and out of the region. partition: drop traffic between the region
        /// and one other (--from). kill: SIGKILL its PostgreSQL postmaster. pause: SIGSTOP its PostgreSQL.
        /// loss: drop --percent of the packets in and out of the region at random.
        #[arg(value_enum)]
        kind: FaultKindArg,
        /// east, west or witness.
        region: String,
        /// For partition: the region to cut it from [default: the other of east and west].
        #[arg(long, value_name = "REGION")]
        from: Option<String>,
        /// For loss: the share of packets dropped, 1 to 100 [default: 5].
        #[arg(long, value_name = "PERCENT")]
        percent: Option<u8>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Lift every fault from a region: network rules, a pause; restart its PostgreSQL if it was killed
    /// (from its data dir as it is: an old primary comes back believing it is primary).
    Heal {
        /// east, west or witness.
        region: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Run the lab's processes (started by 'lab up'; not for direct use).
    #[command(hide = true)]
    Supervise {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Serve the lab app for one region (started by the supervisor; not for direct use).
    #[command(hide = true)]
    App {
        #[arg(long)]
        region: String,
        #[arg(long)]
        listen: SocketAddr,
        /// File holding the libpq URL of the region's database.
        #[arg(long)]
        dsn_file: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct DirArg {
    /// The lab directory: data dirs, logs, secrets, plan.yaml, lab.json.
    #[arg(long, value_name = "DIR", default_value = drover_lab::DEFAULT_DIR)]
    dir: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReplicationArg {
    Sync,
    Async,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FaultKindArg {
    Blackout,
    Partition,
    Kill,
    Pause,
    Loss,
}

impl FaultKindArg {
    fn as_str(self) -> &'static str {
        match self {
            FaultKindArg::Blackout => "blackout",
            FaultKindArg::Partition => "partition",
            FaultKindArg::Kill => "kill",
            FaultKindArg::Pause => "pause",
            FaultKindArg::Loss => "loss",
        }
    }
}

pub fn run(cmd: LabCommand) -> ExitCode {
    // Before any thread exists: the supervisor makes itself the reaper of its descendants.
    if let LabCommand::Supervise { dir } = &cmd {
        return finish(drover_lab::supervise(&dir.dir).map_err(failure));
    }
    finish(match cmd {
        LabCommand::Up { dir, replication, daemons, ha } => {
            let replication = match replication {
                ReplicationArg::Sync => Replication::Synchronous,
                ReplicationArg::Async => Replication::Asynchronous,
            };
            runtime()
                .block_on(drover_lab::up(&dir.dir, replication, daemons, ha))
                .map(|up| print!("{}", up.summary()))
                .map_err(failure)
        }
        LabCommand::Down { dir } => {
            drover_lab::down(&dir.dir).map(|d| print!("{}", d.summary(&dir.dir))).map_err(failure)
        }
        LabCommand::Status { dir, output } => runtime()
            .block_on(drover_lab::status(&dir.dir))
            .map(|s| match output {
                Output::Json => print_json(&s),
                Output::Text => print!("{}", s.to_text()),
            })
            .map_err(failure),
        LabCommand::Fault { kind, region, from, percent, dir } => {
            let fault = Fault::parse(kind.as_str(), &region, from.as_deref()).and_then(|f| match percent {
                Some(p) => f.with_percent(p),
                None => Ok(f),
            });
            fault.map_err(Failure::input).and_then(|fault| {
                drover_lab::fault(&dir.dir, &fault).map_err(failure)?;
                println!("fault {fault} injected; lift it with 'drover lab heal {region}'");
                Ok(())
            })
        }
        LabCommand::Heal { region, dir } => {
            drover_lab::heal(&dir.dir, &region).map(|done| println!("{done}")).map_err(failure)
        }
        LabCommand::App { region, listen, dsn_file } => drover_adapters::secret_file::read(&dsn_file)
            .map_err(|e| Failure::input(e.describe(|e| format!("{}: {e}", dsn_file.display()), "")))
            .and_then(|dsn| {
                runtime().block_on(drover_lab::app::serve(region, listen, dsn.trim().to_string())).map_err(failure)
            }),
        LabCommand::Supervise { .. } => unreachable!("handled above"),
    })
}

/// A lab refusal changed nothing (bad input); a lab failure stopped partway.
fn failure(e: LabError) -> Failure {
    match e {
        LabError::Refused(message) => Failure::input(message),
        LabError::Failed(message) => Failure::failed(message),
    }
}
