//! Restoring a backup in dependency order: CRDs (then wait until Established),
//! namespaces, configuration and access, storage, other resources, workloads last.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{ClusterApi, ClusterError, ResourceKind};
use crate::format::{self, Binding, Entry, Index, SecretKey};
use crate::store::BackupStore;
use crate::{Error, run_bounded};

/// What to do with an object that already exists in the target cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    Skip,
    Update,
}

pub struct RestoreRequest {
    pub backup: String,
    /// Names the target in the restore's progress record (the region, usually).
    pub target: String,
    /// Source namespace to target namespace.
    pub namespace_map: BTreeMap<String, String>,
    pub existing: Existing,
    pub key: Option<Arc<SecretKey>>,
    /// How long a CRD may take to become Established.
    pub crd_timeout: Duration,
    pub progress: Option<crate::OnProgress>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    /// It existed and was left as it was (Existing::Skip), or already matched the backup.
    Unchanged,
    /// An earlier run of this restore applied it.
    DoneBefore,
    Failed(String),
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Each object, by `kind namespace/name` in the target, in the order they were applied.
    pub objects: Vec<(String, Outcome)>,
}

impl RestoreReport {
    pub fn count(&self, outcome: &Outcome) -> usize {
        self.objects.iter().filter(|(_, o)| o == outcome).count()
    }

    pub fn failed(&self) -> Vec<&(String, Outcome)> {
        self.objects.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).collect()
    }
}

/// The order kinds are applied in; the custom resources and other kinds go between
/// storage and workloads so that workloads find what they refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Crds,
    Namespaces,
    Config,
    Storage,
    Other,
    Workloads,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Crds => "CRDs",
            Phase::Namespaces => "namespaces",
            Phase::Config => "configuration and access",
            Phase::Storage => "storage",
            Phase::Other => "other resources",
            Phase::Workloads => "workloads",
        }
    }
}

pub fn phase(group: &str, kind: &str) -> Phase {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Crds,
        ("", "Namespace") => Phase::Namespaces,
        ("", "ConfigMap" | "Secret" | "ServiceAccount" | "LimitRange" | "ResourceQuota")
        | ("rbac.authorization.k8s.io", _)
        | ("scheduling.k8s.io", "PriorityClass")
        | ("networking.k8s.io", "NetworkPolicy") => Phase::Config,
        ("storage.k8s.io", _) | ("", "PersistentVolume" | "PersistentVolumeClaim") => Phase::Storage,
        ("apps", _) | ("batch", _) | ("autoscaling", _) | ("", "Pod" | "ReplicationController" | "Service") => {
            Phase::Workloads
        }
        _ => Phase::Other,
    }
}

/// How many objects are applied at once, and how many between progress records.
const CONCURRENCY: usize = 32;
const CHUNK: usize = 1000;

fn done_key(entry: &Entry) -> String {
    format!("{}/{}/{}/{}", entry.group, entry.plural, entry.namespace.as_deref().unwrap_or(""), entry.name)
}

/// The object as it goes to the target: namespaces renamed, and the namespaces of
/// ServiceAccount subjects in bindings with them.
fn map_namespaces(mut object: Value, entry: &Entry, map: &BTreeMap<String, String>) -> Value {
    let (namespace, name) = entry.restored_as(map);
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    object["metadata"]["name"] = json!(name);
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            if let Some(new) = subject["namespace"].as_str().and_then(|ns| map.get(ns)) {
                subject["namespace"] = json!(new);
            }
        }
    }
    object
}

fn resource_kind(entry: &Entry) -> ResourceKind {
    ResourceKind::new(&entry.group, &entry.version, &entry.kind, &entry.plural, entry.namespace.is_some())
}

/// Creates the object, or deals with the one already there as `existing` says.
async fn apply(cluster: &dyn ClusterApi, kind: &ResourceKind, object: Value, existing: Existing) -> Outcome {
    let failed = |e: ClusterError| Outcome::Failed(e.to_string());
    match cluster.create(kind, object.clone()).await {
        Ok(_) => return Outcome::Created,
        Err(ClusterError::AlreadyExists(_)) if existing == Existing::Skip => return Outcome::Unchanged,
        Err(ClusterError::AlreadyExists(_)) => {}
        Err(e) => return failed(e),
    }
    let namespace = object["metadata"]["namespace"].as_str();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    // A conflict means someone changed it between our get and replace: read it again, once.
    for _ in 0..2 {
        let current = match cluster.get(kind, namespace, name).await {
            Ok(Some(current)) => current,
            Ok(None) => return Outcome::Failed("it existed, then vanished".into()),
            Err(e) => return failed(e),
        };
        if format::strip(current.clone(), &kind.kind) == format::canonical(object.clone()) {
            return Outcome::Unchanged;
        }
        let mut replacement = object.clone();
        replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        match cluster.replace(kind, replacement).await {
            Ok(_) => return Outcome::Updated,
            Err(ClusterError::Conflict(_)) => continue,
            Err(e) => return failed(e),
        }
    }
    Outcome::Failed("it kept changing while being updated".into())
}

/// Polls until every CRD in `names` is Established or `timeout` passes; those that are.
async fn wait_established(cluster: &dyn ClusterApi, names: &[String], timeout: Duration) -> HashSet<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut established = HashSet::new();
    let mut pause = Duration::from_millis(20);
    loop {
        for name in names {
            if !established.contains(name) && matches!(cluster.crd_established(name).await, Ok(true)) {
                established.insert(name.clone());
            }
        }
        if established.len() == names.len() || tokio::time::Instant::now() >= deadline {
            return established;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The name of a restore's progress record: its target, and, when they are not the
/// defaults, its namespace map and update mode. A rerun with a different map or mode is
/// another restore: what the first one applied says nothing of what this one must.
pub fn restore_progress_name(request: &RestoreRequest) -> String {
    if request.namespace_map.is_empty() && request.existing == Existing::Skip {
        return request.target.clone();
    }
    let mut what: Vec<String> = request.namespace_map.iter().map(|(from, to)| format!("{from}={to}")).collect();
    what.push(format!("{:?}", request.existing));
    format!("{}-{}", request.target, &format::sha256_hex(what.join(",").as_bytes())[..12])
}

/// Restores backup `request.backup` from `store` into `cluster`. Objects applied by an
/// earlier run of the same restore (same backup and target) are not applied again.
pub async fn restore(
    cluster: Arc<dyn ClusterApi>,
    store: &BackupStore,
    request: &RestoreRequest,
) -> Result<RestoreReport, Error> {
    let mut index = store.index(&request.backup).await?;
    if let Some(needed) = &index.key_id {
        match &request.key {
            None => return Err(Error::Key(format!("backup {} holds encrypted Secrets: give its key", index.id))),
            Some(key) if key.id() != needed => {
                return Err(Error::Key(format!(
                    "backup {} was encrypted with key {needed}, not {}",
                    index.id,
                    key.id()
                )));
            }
            Some(_) => {}
        }
    }
    // An index whose key id was taken out still needs the key for its sealed Secrets, and
    // must fail here, not object by object once others are applied.
    if request.key.is_none() && index.objects.iter().any(|e| e.encrypted) {
        return Err(Error::Key(format!("backup {} holds encrypted Secrets: give its key", index.id)));
    }
    let progress = restore_progress_name(request);
    let mut done = store.restore_progress(&index.id, &progress).await?;
    let objects = std::mem::take(&mut index.objects);
    let index = Arc::new(index);
    let contents = Arc::new(checked_contents(store, &index, &objects, &done, request).await?);
    let total = objects.len();
    let mut phases: BTreeMap<Phase, Vec<Entry>> = BTreeMap::new();
    for entry in objects {
        phases.entry(phase(&entry.group, &entry.kind)).or_default().push(entry);
    }
    let crds_in_backup: HashSet<String> =
        phases.get(&Phase::Crds).map(|crds| crds.iter().map(|e| e.name.clone()).collect()).unwrap_or_default();
    let mut established: HashSet<String> = HashSet::new();
    let mut report = RestoreReport::default();
    for (phase, entries) in phases {
        for chunk in entries.chunks(CHUNK) {
            let work: Vec<Entry> = chunk.to_vec();
            let outcomes = Arc::new(Mutex::new(Vec::new()));
            let (cluster, done_before) = (cluster.clone(), Arc::new(done.clone()));
            let (map, existing, key) = (Arc::new(request.namespace_map.clone()), request.existing, request.key.clone());
            let (index, contents) = (index.clone(), contents.clone());
            let crds_in_backup = Arc::new(crds_in_backup.clone());
            let established = Arc::new(established.clone());
            run_bounded(work, CONCURRENCY, |entry| {
                let (cluster, done_before, outcomes) = (cluster.clone(), done_before.clone(), outcomes.clone());
                let (index, contents) = (index.clone(), contents.clone());
                let (map, key, crds_in_backup, established) =
                    (map.clone(), key.clone(), crds_in_backup.clone(), established.clone());
                async move {
                    let key_of = done_key(&entry);
                    let crd = format!("{}.{}", entry.plural, entry.group);
                    let label = entry.label_in(&map);
                    let outcome = if done_before.contains(&key_of) {
                        Outcome::DoneBefore
                    } else if crds_in_backup.contains(&crd) && !established.contains(&crd) {
                        Outcome::Failed(format!("its CRD {crd} is not Established"))
                    } else {
                        match load(&contents, &index, &entry, key.as_deref()) {
                            Ok(object) => {
                                let object = map_namespaces(object, &entry, &map);
                                apply(cluster.as_ref(), &resource_kind(&entry), object, existing).await
                            }
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    };
                    outcomes.lock().unwrap().push((key_of, label, outcome));
                }
            })
            .await;
            let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
            outcomes.sort_by(|a, b| a.0.cmp(&b.0));
            for (key_of, label, outcome) in outcomes {
                if !matches!(outcome, Outcome::Failed(_)) {
                    done.insert(key_of);
                }
                report.objects.push((label, outcome));
            }
            store.put_restore_progress(&index.id, &progress, &done).await?;
            crate::report(&request.progress, || format!("{}/{total} objects ({})", report.objects.len(), phase.name()));
        }
        if phase == Phase::Crds {
            let names: Vec<String> = crds_in_backup.iter().cloned().collect();
            established = wait_established(cluster.as_ref(), &names, request.crd_timeout).await;
            for name in names.iter().filter(|n| !established.contains(*n)) {
                tracing::warn!(crd = %name, "CRD not Established in time; its custom resources are not restored");
            }
        }
    }
    Ok(report)
}

/// The stored bytes of every object the restore will apply (those an earlier run did not),
/// each checked against its hash and read as it will be applied; a backup with any that
/// fails is refused whole, before anything is applied.
async fn checked_contents(
    store: &BackupStore,
    index: &Index,
    objects: &[Entry],
    done: &BTreeSet<String>,
    request: &RestoreRequest,
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let to_apply: Vec<Entry> = objects.iter().filter(|e| !done.contains(&done_key(e))).cloned().collect();
    if !to_apply.is_empty() {
        crate::report(&request.progress, || {
            format!("checking {} objects against their hashes before applying any", to_apply.len())
        });
    }
    let (report, contents) = store.check(index, &to_apply, request.key.clone()).await?;
    if report.ok() {
        return Ok(contents);
    }
    const SHOWN: usize = 10;
    let problems = report.problems();
    let more = match problems.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    Err(Error::Damaged(format!(
        "backup {} in the {} store is damaged, so nothing was restored: {}{more}. 'drover backup verify {}' \
         checks every store's copy; restore from a whole one with --store REGION",
        index.id,
        store.name,
        problems.into_iter().take(SHOWN).collect::<Vec<_>>().join("; "),
        index.id
    )))
}

/// The object as backed up, from its checked stored bytes: decrypted if it is a Secret,
/// decompressed.
fn load(
    contents: &HashMap<String, Vec<u8>>,
    index: &Index,
    entry: &Entry,
    key: Option<&SecretKey>,
) -> Result<Value, Error> {
    let stored =
        contents.get(&entry.hash).ok_or_else(|| Error::Corrupt(format!("object {} was not read", entry.hash)))?;
    if entry.encrypted {
        let key = key.ok_or_else(|| Error::Key("no key for an encrypted Secret".into()))?;
        format::decode(&key.open(stored, &Binding::of(index, entry))?)
    } else {
        format::decode(stored)
    }
}
