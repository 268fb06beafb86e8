//! `drover backup create|list|verify`: a region's Kubernetes resources to object storage in
//! every region of the plan (docs/backup.md). `restore` brings them back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use drover_backup::{OnProgress, VerifyReport};
use serde::Serialize;

use crate::app::backups::{Backups, CreateReport, stored_bytes};
use crate::app::error::Failure;
use crate::app::runtime;
use crate::commands::{Output, finish, print_json};

#[derive(clap::Subcommand)]
pub enum BackupCommand {
    /// Back up REGION's cluster to every region's store, then apply the plan's retention.
    #[command(after_help = "Only kinds that describe what was deployed are taken (not Events, Nodes, Pods a \
                            controller owns); Secrets only with backup.secrets, encrypted. Unchanged objects are \
                            not written again. See docs/backup.md.")]
    Create {
        #[command(flatten)]
        plan: PlanFile,
        /// The region whose cluster is backed up (backup.clusters.REGION in the plan).
        #[arg(long, value_name = "REGION")]
        region: String,
        /// Only these namespaces (comma-separated) [default: all but kube-system, kube-public, kube-node-lease].
        #[arg(long, value_name = "NS,...", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Only namespaced objects with these labels (a label selector, e.g. app=shop,tier!=batch).
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// List the backups in each region's store, newest last.
    List {
        #[command(flatten)]
        plan: PlanFile,
        /// Only this region's store [default: every store].
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
    /// Check that every object of backup ID is present in the store, its bytes match its checksum,
    /// and a restore could read it (within the size limits; each sealed Secret opening as its entry).
    #[command(after_help = "Sealed Secrets are opened with the plan's backup key when it can be read; without it \
                            they are checked by hash only (a Secret moved to another entry is then not seen), and \
                            verify says so. Exit codes: 0 every store holding the backup is whole, 1 an object is \
                            missing, corrupt or unreadable (each is named), 2 no store holds the backup or bad input.")]
    Verify {
        /// The backup's id ('drover backup list').
        id: String,
        #[command(flatten)]
        plan: PlanFile,
        /// Only this region's store [default: every store that holds the backup].
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(clap::Args)]
pub struct PlanFile {
    /// The plan file (YAML); its backup section names the stores and clusters (docs/plan.md#backup).
    #[arg(long, short = 'p', value_name = "PLAN")]
    pub plan: PathBuf,
}

pub fn run(command: BackupCommand) -> ExitCode {
    finish(runtime().block_on(async {
        match command {
            BackupCommand::Create { plan, region, namespaces, selector, output } => {
                create(&plan.plan, &region, namespaces, selector, output).await
            }
            BackupCommand::List { plan, region, output } => list(&plan.plan, region.as_deref(), output).await,
            BackupCommand::Verify { id, plan, region, output } => {
                verify(&plan.plan, &id, region.as_deref(), output).await
            }
        }
    }))
}

/// Progress lines go to stderr, so stdout holds only the result (and stays JSON with -o json).
pub(super) fn to_stderr() -> OnProgress {
    Arc::new(|line: &str| eprintln!("{line}"))
}

/// A backup as the CLI tells it, store by store.
impl std::fmt::Display for CreateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "backup {} of {}: {} objects, {} bytes stored{}",
            self.id,
            self.region,
            self.objects,
            self.bytes,
            match self.secrets_encrypted {
                0 => String::new(),
                n => format!(" ({n} of them Secrets, encrypted)"),
            }
        )?;
        for s in &self.stores {
            match s.new_objects {
                Some(new) => write!(f, "  {} store: {new} new content objects", s.store)?,
                None => write!(f, "  {} store: NOT WRITTEN", s.store)?,
            }
            if !s.deleted.is_empty() {
                write!(f, "; retention deleted {}", s.deleted.join(", "))?;
            }
            if let Some(error) = &s.error {
                write!(f, " ({error})")?;
            }
            writeln!(f)?;
        }
        for group in &self.skipped_groups {
            writeln!(f, "  not backed up: API group {group}")?;
        }
        if !self.retention_applied {
            writeln!(f, "  retention not applied: this backup covers only some namespaces or labels")?;
        }
        Ok(())
    }
}

async fn create(
    plan: &Path,
    region: &str,
    namespaces: Vec<String>,
    selector: Option<String>,
    output: Output,
) -> Result<(), Failure> {
    let backups = Backups::open(plan)?;
    let report = backups.create(region, namespaces, selector, Some(to_stderr())).await?;
    match output {
        Output::Text => print!("{report}"),
        Output::Json => print_json(&report),
    }
    match report.problems() {
        None => Ok(()),
        Some(problems) => Err(Failure::failed(format!(
            "backup {} is incomplete: {problems}; the other stores hold it — fix the cause and take another",
            report.id
        ))),
    }
}

/// One backup as `backup list` shows it.
#[derive(Serialize)]
struct Listed {
    id: String,
    region: String,
    created: String,
    objects: usize,
    bytes: u64,
    /// The stores holding it.
    stores: Vec<String>,
}

async fn list(plan: &Path, region: Option<&str>, output: Output) -> Result<(), Failure> {
    let backups = Backups::open(plan)?;
    let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
    // A store that cannot be read is named at the end; the others are still listed.
    let mut unreadable = Vec::new();
    for store in backups.chosen_stores(region)? {
        let ids = match store.backup_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                unreadable.push(format!("the {} store: {e}", store.name));
                continue;
            }
        };
        for id in ids {
            if let Some(known) = listed.get_mut(&id) {
                known.stores.push(store.name.clone());
                continue;
            }
            let index = match store.index(&id).await {
                Ok(index) => index,
                Err(e) => {
                    unreadable.push(format!("the {} store: backup {id}: {e}", store.name));
                    continue;
                }
            };
            listed.insert(
                id.clone(),
                Listed {
                    id,
                    bytes: stored_bytes(&index),
                    objects: index.objects.len(),
                    region: index.region,
                    created: index.created,
                    stores: vec![store.name.clone()],
                },
            );
        }
    }
    let listed: Vec<Listed> = listed.into_values().collect();
    match output {
        Output::Json => print_json(&listed),
        Output::Text if listed.is_empty() => {
            println!("no backups yet; take one with 'drover backup create --plan {} --region REGION'", plan.display())
        }
        Output::Text => {
            let width = listed.iter().map(|b| b.id.len()).max().unwrap_or(2).max(2);
            println!("{:width$}  {:8}  {:20}  {:>7}  {:>10}  STORES", "ID", "REGION", "CREATED", "OBJECTS", "BYTES");
            for b in &listed {
                println!(
                    "{:width$}  {:8}  {:20}  {:>7}  {:>10}  {}",
                    b.id,
                    b.region,
                    b.created,
                    b.objects,
                    b.bytes,
                    b.stores.join(", ")
                );
            }
        }
    }
    if unreadable.is_empty() {
        Ok(())
    } else {
        Err(Failure::failed(format!("could not read {}", unreadable.join("; "))))
    }
}

#[derive(Serialize)]
struct Verified {
    store: String,
    /// ok, damaged (an object missing or corrupt), absent (the store lacks the backup other
    /// stores hold), or unreadable (the store could not be read: `error` says why).
    state: &'static str,
    checked: usize,
    missing: Vec<Problem>,
    corrupt: Vec<Problem>,
    /// Whole, but a restore could not use it: a sealed Secret moved from another entry,
    /// an object over the size limits (a gzip bomb), not gzip or JSON.
    unreadable: Vec<Problem>,
    /// Sealed Secrets checked by hash only, for want of the key.
    sealed_unopened: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Problem {
    object: String,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

impl Verified {
    fn new(store: &str, state: &'static str) -> Verified {
        Verified {
            store: store.to_owned(),
            state,
            checked: 0,
            missing: vec![],
            corrupt: vec![],
            unreadable: vec![],
            sealed_unopened: 0,
            error: None,
        }
    }

    fn checked(store: &str, report: VerifyReport) -> Verified {
        let problems = |list: Vec<(String, String, String)>| {
            list.into_iter().map(|(object, hash, why)| Problem { object, hash, why: Some(why) }).collect()
        };
        Verified {
            state: if report.ok() { "ok" } else { "damaged" },
            checked: report.checked,
            missing: report.missing.into_iter().map(|(object, hash)| Problem { object, hash, why: None }).collect(),
            corrupt: problems(report.corrupt),
            unreadable: problems(report.unreadable),
            sealed_unopened: report.sealed_unopened,
            ..Verified::new(store, "ok")
        }
    }
}

/// Verifies backup `id` in each chosen store; a store that cannot be read is reported and
/// the others are still checked.
async fn verify(plan: &Path, id: &str, region: Option<&str>, output: Output) -> Result<(), Failure> {
    let backups = Backups::open(plan)?;
    // The key opens sealed Secrets when it can be read; verify still checks the rest without it.
    let (key, no_key) = match backups.key() {
        Ok(key) => (key, None),
        Err(why) => (None, Some(why.message)),
    };
    let mut results = Vec::new();
    for store in backups.chosen_stores(region)? {
        let result = match store.backup_ids().await {
            Ok(ids) if !ids.iter().any(|b| b == id) => Verified::new(&store.name, "absent"),
            Ok(_) => match store.verify(id, key.clone()).await {
                Ok(report) => Verified::checked(&store.name, report),
                Err(e) => Verified { error: Some(e.to_string()), ..Verified::new(&store.name, "unreadable") },
            },
            Err(e) => Verified { error: Some(e.to_string()), ..Verified::new(&store.name, "unreadable") },
        };
        results.push(result);
    }
    if results.iter().all(|r| r.state == "absent") {
        let where_ = region.map_or("any store".to_owned(), |r| format!("the {r} store"));
        return Err(Failure::input(format!(
            "no backup {id} in {where_}; 'drover backup list --plan {}' shows the backups",
            plan.display()
        )));
    }
    match output {
        Output::Json => print_json(&results),
        Output::Text => {
            for r in &results {
                match r.state {
                    "absent" => println!("{} store: backup {id}: ABSENT (other stores hold it)", r.store),
                    "unreadable" => {
                        println!("{} store: UNREADABLE: {}", r.store, r.error.as_deref().unwrap_or_default())
                    }
                    state => {
                        let verdict = if state == "ok" { "ok" } else { "DAMAGED" };
                        println!("{} store: backup {id}: {} objects checked, {verdict}", r.store, r.checked);
                    }
                }
                for p in &r.missing {
                    println!("  missing  {} ({})", p.object, p.hash);
                }
                for (what, problems) in [("corrupt", &r.corrupt), ("unreadable", &r.unreadable)] {
                    for p in problems {
                        println!("  {what:10} {} ({}): {}", p.object, p.hash, p.why.as_deref().unwrap_or_default());
                    }
                }
                if r.sealed_unopened > 0 {
                    let why = no_key.as_deref().unwrap_or("the plan names no backup key");
                    println!(
                        "  {} sealed Secrets checked by hash only, not opened (a Secret moved to another entry \
                         is not seen): {why}",
                        r.sealed_unopened
                    );
                }
            }
        }
    }
    let bad: Vec<String> =
        results.iter().filter(|r| r.state != "ok").map(|r| format!("{} in the {} store", r.state, r.store)).collect();
    let good: Vec<&str> = results.iter().filter(|r| r.state == "ok").map(|r| r.store.as_str()).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let advice = match good.first() {
        Some(store) => format!("restore from a whole copy with --store {store}, and take a new backup"),
        None => "no store holds a whole copy; take a new backup".to_owned(),
    };
    Err(Failure::failed(format!("backup {id} is {}; {advice}", bad.join(", "))))
}
