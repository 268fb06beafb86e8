//! `drover restore`: a backup applied to a region's cluster in dependency order,
//! resumable, under a namespace map (docs/backup.md#restore).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use drover_backup::{Existing, Outcome, RestoreRequest, restore, restore_progress_name};
use drover_core::duration::parse_duration;
use serde::Serialize;

use crate::app::backups::Backups;
use crate::app::error::Failure;
use crate::app::runtime;
use crate::commands::backup::{PlanFile, to_stderr};
use crate::commands::{Output, finish, print_json};

#[derive(clap::Args)]
#[command(after_help = "Example: drover restore --plan shop.yaml --from 20261205-201507-123-east --to-region west \\
                        --namespace-map shop=shop-dr\n\n\
                        Before applying anything, every object to apply is read and checked against its hash, \
                        its size limits and (a Secret) its key: a damaged backup is refused whole.\n\n\
                        Exit codes: 0 every object restored (or already there); 1 some were not (each is named: \
                        fix the cause and run the same command again, it resumes), or the backup is damaged \
                        (each object named; nothing applied: restore another store's copy with --store); 2 bad \
                        input (unknown region or backup, a wrong or missing key), nothing applied.")]
pub struct RestoreArgs {
    #[command(flatten)]
    plan: PlanFile,
    /// The backup to restore ('drover backup list').
    #[arg(long = "from", value_name = "ID")]
    from: String,
    /// The region whose cluster receives it (backup.clusters.REGION); the backup is read from this
    /// region's own store.
    #[arg(long, value_name = "REGION")]
    to_region: String,
    /// Restore namespace FROM as TO (repeat, or comma-separate): objects, the Namespace itself,
    /// and ServiceAccount subjects of bindings.
    #[arg(long, value_name = "FROM=TO", value_delimiter = ',')]
    namespace_map: Vec<String>,
    /// What to do with an object that already exists: leave it (skip), or make it match the backup (update).
    #[arg(long, value_enum, default_value_t = ExistingArg::Skip)]
    existing: ExistingArg,
    /// How long a CustomResourceDefinition may take to become Established before its custom
    /// resources are reported failed.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    crd_timeout: Duration,
    /// Read the backup from this region's store instead of --to-region's (when that copy is
    /// missing or damaged: 'drover backup verify').
    #[arg(long, value_name = "REGION")]
    store: Option<String>,
    /// Forget what an earlier run of this restore applied, and apply every object again (as
    /// after the target cluster was rebuilt; existing objects are then skipped or updated).
    #[arg(long)]
    restart: bool,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExistingArg {
    Skip,
    Update,
}

pub fn run(args: RestoreArgs) -> ExitCode {
    finish(runtime().block_on(restore_cmd(args)))
}

/// `a=b` pairs, each source namespace once.
fn namespace_map(pairs: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        let Some((from, to)) = pair.split_once('=').filter(|(f, t)| !f.is_empty() && !t.is_empty()) else {
            return Err(Failure::input(format!("--namespace-map {pair}: write FROM=TO, e.g. shop=shop-restored")));
        };
        if map.insert(from.to_owned(), to.to_owned()).is_some() {
            return Err(Failure::input(format!("--namespace-map: namespace {from} is mapped twice")));
        }
    }
    Ok(map)
}

#[derive(Serialize)]
struct Restored {
    backup: String,
    to_region: String,
    created: usize,
    updated: usize,
    unchanged: usize,
    done_before: usize,
    failed: usize,
    objects: Vec<RestoredObject>,
}

#[derive(Serialize)]
struct RestoredObject {
    object: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn outcome_name(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Created => ("created", None),
        Outcome::Updated => ("updated", None),
        Outcome::Unchanged => ("unchanged", None),
        Outcome::DoneBefore => ("done-before", None),
        Outcome::Failed(why) => ("failed", Some(why.clone())),
    }
}

async fn restore_cmd(args: RestoreArgs) -> Result<(), Failure> {
    let backups = Backups::open(&args.plan.plan)?;
    let region = args.to_region.as_str();
    backups.known(region, "--to-region")?;
    let request = RestoreRequest {
        backup: args.from.clone(),
        target: region.to_owned(),
        namespace_map: namespace_map(&args.namespace_map)?,
        existing: match args.existing {
            ExistingArg::Skip => Existing::Skip,
            ExistingArg::Update => Existing::Update,
        },
        key: backups.key()?,
        crd_timeout: args.crd_timeout,
        progress: Some(to_stderr()),
    };
    let from_store = args.store.as_deref().unwrap_or(region);
    backups.known(from_store, "--store")?;
    let store = backups.store(from_store)?;
    if args.restart {
        store
            .delete_restore_progress(&args.from, &restore_progress_name(&request))
            .await
            .map_err(|e| Failure::failed(format!("the {from_store} store: {e}")))?;
    }
    let report = restore(backups.cluster(region)?, &store, &request).await.map_err(|e| match e {
        drover_backup::Error::Key(why) => Failure::input(format!("backup.key: {why}; nothing was restored")),
        // Read before anything is applied.
        drover_backup::Error::NoBackup(why) => Failure::input(format!(
            "{why}; 'drover backup list --plan {} --region {from_store}' shows the ones it holds",
            args.plan.plan.display()
        )),
        // Not the request's fault but the store's, as `backup verify` classes the same damage:
        // a failure (exit 1), whose message names each object and another copy to restore.
        drover_backup::Error::Damaged(why) => Failure::failed(why),
        other => Failure::failed(format!("restore of {} to {region}: {other}", args.from)),
    })?;
    let objects: Vec<RestoredObject> = report
        .objects
        .iter()
        .map(|(object, outcome)| {
            let (outcome, error) = outcome_name(outcome);
            RestoredObject { object: object.clone(), outcome, error }
        })
        .collect();
    let restored = Restored {
        backup: args.from.clone(),
        to_region: region.to_owned(),
        created: report.count(&Outcome::Created),
        updated: report.count(&Outcome::Updated),
        unchanged: report.count(&Outcome::Unchanged),
        done_before: report.count(&Outcome::DoneBefore),
        failed: report.failed().len(),
        objects,
    };
    match args.output {
        Output::Json => print_json(&restored),
        Output::Text => {
            for o in &restored.objects {
                match &o.error {
                    Some(why) => println!("{:11}  {}: {why}", o.outcome, o.object),
                    None => println!("{:11}  {}", o.outcome, o.object),
                }
            }
            println!(
                "restore of {} to {region}: {} created, {} updated, {} unchanged, {} done before (by an earlier run; --restart applies them again), {} failed",
                restored.backup,
                restored.created,
                restored.updated,
                restored.unchanged,
                restored.done_before,
                restored.failed
            );
        }
    }
    if restored.failed > 0 {
        return Err(Failure::failed(format!(
            "{} objects were not restored (above); fix the cause and run the same command again: \
             objects already restored are not applied twice",
            restored.failed
        )));
    }
    Ok(())
}
