//! `drover backup create|list|verify`: a region's Kubernetes resources to object storage in
//! every region of the plan (docs/backup.md). `restore` brings them back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use drover_backup::backup::apply_retention;
use drover_backup::{BackupRequest, BackupStore, ClusterApi, Keep, OnProgress, SecretKey, VerifyReport, create_backup};
use drover_core::plan::{BackupSpec, BackupStoreSpec, Plan};
use drover_core::secret::{SecretRef, SecretSource};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::Output;
use crate::commands::{Failure, finish, print_json, runtime};
use crate::wiring::{EnvSecrets, load_plan_with};

/// Resolves no secret: the backup commands read only the backup key, through `EnvSecrets`.
struct Unresolved;

impl SecretSource for Unresolved {
    fn resolve(&self, _: &SecretRef) -> Result<drover_core::secret::Secret, String> {
        Ok(drover_core::secret::Secret::new(""))
    }
}

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
    /// Check that every object of backup ID is present in the store and its bytes match its checksum.
    #[command(after_help = "Exit codes: 0 every store holding the backup is whole, 1 an object is missing or \
                            corrupt (each is named), 2 no store holds the backup or bad input.")]
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

/// A plan's backup section made real: its stores, its clusters and the Secrets key.
/// Only made for a plan that has the section.
pub struct Backups {
    pub plan: Plan,
}

impl Backups {
    /// The plan's backups, or None when it has no backup section.
    pub fn of(plan: &Plan) -> Option<Backups> {
        plan.backup.is_some().then(|| Backups { plan: plan.clone() })
    }

    fn spec(&self) -> &BackupSpec {
        self.plan.backup.as_ref().expect("Backups are made only for a plan with a backup section")
    }

    /// Reads the plan without resolving its secrets: whoever lists, verifies or restores
    /// backups in a disaster needs neither the database's nor the DNS's credentials. The
    /// backup key is read when it is used (`key`).
    pub fn open(path: &Path) -> Result<Backups, Failure> {
        let plan = load_plan_with(path, &Unresolved)?;
        if plan.backup.is_none() {
            return Err(Failure::input(format!(
                "{}: the plan has no backup section; add one naming a store per region, e.g. \
                 backup: {{ stores: {{ east: {{ url: s3://shop-backups-east/drover }}, ... }} }} (docs/plan.md#backup)",
                path.display()
            )));
        }
        Ok(Backups { plan })
    }

    pub(super) fn known(&self, region: &str, flag: &str) -> Result<(), Failure> {
        if self.spec().stores.contains_key(region) {
            return Ok(());
        }
        let names: Vec<&str> = self.spec().stores.keys().map(String::as_str).collect();
        Err(Failure::input(format!(
            "{flag} {region}: the plan's backup section has no store for {region}; its regions are {}",
            names.join(", ")
        )))
    }

    /// The store in `region`: a local directory, or an S3 bucket in the region's AWS region.
    pub fn store(&self, region: &str) -> Result<BackupStore, Failure> {
        let bad = |e: drover_backup::Error| Failure::input(format!("backup.stores.{region}: {e}"));
        match &self.spec().stores[region] {
            BackupStoreSpec::Dir(dir) => BackupStore::local(region, dir).map_err(bad),
            BackupStoreSpec::S3 { bucket, prefix, endpoint, aws_region } => {
                let aws_region = aws_region.as_deref().unwrap_or_else(|| self.plan.aws_region(region));
                BackupStore::s3(region, bucket, Some(prefix), aws_region, endpoint.as_deref()).map_err(bad)
            }
        }
    }

    /// Every region's store, in region order.
    pub fn stores(&self) -> Result<Vec<BackupStore>, Failure> {
        self.spec().stores.keys().map(|region| self.store(region)).collect()
    }

    /// The stores `--region` names (one), or all of them.
    fn chosen_stores(&self, region: Option<&str>) -> Result<Vec<BackupStore>, Failure> {
        match region {
            Some(region) => {
                self.known(region, "--region")?;
                Ok(vec![self.store(region)?])
            }
            None => self.stores(),
        }
    }

    /// The cluster backed up in, and restored to, `region`.
    pub fn cluster(&self, region: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
        let access = &self.spec().clusters[region];
        cluster_api(access, &format!("{region}'s cluster"))
    }

    /// The Secrets key, when the plan backs Secrets up; read from its reference now.
    pub fn key(&self) -> Result<Option<Arc<SecretKey>>, Failure> {
        let Some(reference) = &self.spec().key else { return Ok(None) };
        let field = match reference {
            SecretRef::Env(_) => "backup.key_env",
            SecretRef::File(_) => "backup.key_file",
        };
        let secret = EnvSecrets.resolve(reference).map_err(|e| Failure::input(format!("{field}: {e}")))?;
        SecretKey::from_material(secret.expose().as_bytes())
            .map(|key| Some(Arc::new(key)))
            .map_err(|e| Failure::input(format!("{field}: {e}")))
    }

    pub fn keep(&self) -> Keep {
        Keep { last: self.spec().keep_last as usize, daily: self.spec().keep_daily as usize }
    }

    pub fn schedule(&self) -> Option<Duration> {
        self.spec().schedule
    }

    /// Backs up `region`'s cluster to every store, then applies retention to each.
    pub async fn create(
        &self,
        region: &str,
        namespaces: Vec<String>,
        selector: Option<String>,
        progress: Option<OnProgress>,
    ) -> Result<CreateReport, Failure> {
        self.known(region, "--region")?;
        let (stores, cluster, key) = (self.stores()?, self.cluster(region)?, self.key()?);
        let request = BackupRequest {
            plan: self.plan.name.clone(),
            region: region.to_owned(),
            namespaces,
            selector,
            secrets: key,
            progress,
        };
        let report = create_backup(cluster.as_ref(), &stores, &request, OffsetDateTime::now_utc())
            .await
            .map_err(|e| Failure::failed(format!("backup of {region}: {e}")))?;
        // Retention runs in each store written, and only after a backup of the whole scope:
        // a backup of a few namespaces must not push full backups out of `keep`.
        let scoped = !request.namespaces.is_empty() || request.selector.is_some();
        let mut results = Vec::new();
        for store in &stores {
            let mut result = StoreWrite { store: store.name.clone(), ..StoreWrite::default() };
            if let Some((_, new)) = report.written.iter().find(|(name, _)| *name == store.name) {
                result.new_objects = Some(*new);
                if !scoped {
                    match apply_retention(store, self.keep()).await {
                        Ok(deleted) => result.deleted = deleted,
                        Err(e) => result.error = Some(format!("retention: {e}")),
                    }
                }
            } else if let Some((_, why)) = report.failed.iter().find(|(name, _)| *name == store.name) {
                result.error = Some(why.clone());
            }
            results.push(result);
        }
        let index = report.index;
        Ok(CreateReport {
            id: index.id.clone(),
            region: region.to_owned(),
            objects: index.objects.len(),
            bytes: stored_bytes(&index),
            secrets_encrypted: index.objects.iter().filter(|e| e.encrypted).count(),
            retention_applied: !scoped,
            skipped_groups: index.skipped_groups.clone(),
            stores: results,
        })
    }
}

/// Stored bytes of all of a backup's objects (compressed, encrypted for Secrets).
fn stored_bytes(index: &drover_backup::Index) -> u64 {
    index.objects.iter().map(|e| e.size).sum()
}

#[cfg(feature = "kubernetes")]
fn cluster_api(access: &drover_core::plan::ClusterAccess, name: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
    Ok(Arc::new(drover_adapters::kubernetes::KubeCluster::new(access, name)))
}

#[cfg(not(feature = "kubernetes"))]
fn cluster_api(_: &drover_core::plan::ClusterAccess, name: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
    Err(Failure::input(format!(
        "{name}: this drover was built without the kubernetes feature; rebuild with --features kubernetes"
    )))
}

/// Progress lines go to stderr, so stdout holds only the result (and stays JSON with -o json).
pub(super) fn to_stderr() -> OnProgress {
    Arc::new(|line: &str| eprintln!("{line}"))
}

/// What `backup create` did, as `-o json` prints it.
#[derive(Serialize)]
pub struct CreateReport {
    pub id: String,
    pub region: String,
    pub objects: usize,
    /// Stored bytes of all the backup's objects (compressed, encrypted for Secrets).
    pub bytes: u64,
    pub secrets_encrypted: usize,
    /// False for a backup of some namespaces or a selector: retention is not applied after one.
    pub retention_applied: bool,
    /// API groups discovery could not read, with why: their objects are not in the backup.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_groups: Vec<String>,
    pub stores: Vec<StoreWrite>,
}

#[derive(Default, Serialize)]
pub struct StoreWrite {
    pub store: String,
    /// Content objects this store did not hold yet (0 for an unchanged cluster); None: not written.
    pub new_objects: Option<usize>,
    /// Backups retention deleted afterwards.
    pub deleted: Vec<String>,
    /// Why the backup, or retention after it, failed in this store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CreateReport {
    /// The stores where something failed, as one line for the exit message; None if none.
    pub fn problems(&self) -> Option<String> {
        let failed: Vec<String> = self
            .stores
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("the {} store: {e}", s.store)))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

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
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Problem {
    object: String,
    hash: String,
}

impl Verified {
    fn new(store: &str, state: &'static str) -> Verified {
        Verified { store: store.to_owned(), state, checked: 0, missing: vec![], corrupt: vec![], error: None }
    }

    fn checked(store: &str, report: VerifyReport) -> Verified {
        let problems =
            |list: Vec<(String, String)>| list.into_iter().map(|(object, hash)| Problem { object, hash }).collect();
        Verified {
            state: if report.ok() { "ok" } else { "damaged" },
            checked: report.checked,
            missing: problems(report.missing),
            corrupt: problems(report.corrupt),
            ..Verified::new(store, "ok")
        }
    }
}

/// Verifies backup `id` in each chosen store; a store that cannot be read is reported and
/// the others are still checked.
async fn verify(plan: &Path, id: &str, region: Option<&str>, output: Output) -> Result<(), Failure> {
    let backups = Backups::open(plan)?;
    let mut results = Vec::new();
    for store in backups.chosen_stores(region)? {
        let result = match store.backup_ids().await {
            Ok(ids) if !ids.iter().any(|b| b == id) => Verified::new(&store.name, "absent"),
            Ok(_) => match store.verify(id).await {
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
                for p in &r.corrupt {
                    println!("  corrupt  {} ({})", p.object, p.hash);
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
