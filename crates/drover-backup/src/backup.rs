//! Taking a backup: read the cluster's resources once, write them to every region's store.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::Error;
use crate::cluster::{ClusterApi, ResourceKind};
use crate::format::{self, Binding, Entry, FORMAT, Index, SecretKey};
use crate::retention::{self, Keep};
use crate::store::BackupStore;

pub struct BackupRequest {
    pub plan: String,
    /// The region whose cluster is backed up.
    pub region: String,
    /// Only these namespaces; empty means all but the system ones.
    pub namespaces: Vec<String>,
    /// A label selector for namespaced objects.
    pub selector: Option<String>,
    /// Secrets are backed up only with a key to encrypt them.
    pub secrets: Option<Arc<SecretKey>>,
    pub progress: Option<crate::OnProgress>,
}

#[derive(Debug)]
pub struct BackupReport {
    pub index: Index,
    /// Per store written (by name): how many content objects were new and written.
    pub written: Vec<(String, usize)>,
    /// Per store that could not be written: why.
    pub failed: Vec<(String, String)>,
}

/// Namespaces Kubernetes makes itself; backed up only when named.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// Kinds that describe the running cluster rather than what was deployed to it: a
/// restore would be refused or would be wrong.
fn skipped_kind(kind: &ResourceKind) -> bool {
    matches!(
        (kind.group.as_str(), kind.kind.as_str()),
        ("", "Event")
            | ("events.k8s.io", "Event")
            | ("", "Endpoints")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("", "Node")
            | ("coordination.k8s.io", "Lease")
            | ("", "ComponentStatus")
            | ("", "Binding")
    )
}

/// Objects a controller or the cluster recreates by itself.
fn skipped_object(kind: &ResourceKind, object: &Value) -> bool {
    let meta = &object["metadata"];
    let controlled = meta["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|o| o["controller"].as_bool() == Some(true)));
    let generated = match kind.kind.as_str() {
        "Secret" => object["type"].as_str() == Some("kubernetes.io/service-account-token"),
        "ConfigMap" => meta["name"].as_str() == Some("kube-root-ca.crt"),
        _ => false,
    };
    controlled || generated
}

const ID_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]-[hour][minute][second]-[subsecond digits:3]");

/// `YYYYMMDD-HHMMSS-mmm-region`: sorts by time, and retention reads the day from it.
pub fn backup_id(now: OffsetDateTime, region: &str) -> String {
    format!("{}-{region}", now.to_offset(time::UtcOffset::UTC).format(ID_TIME).expect("a valid format"))
}

/// When backup `id` was taken (UTC), read back from its id; None for an id drover did not make.
pub fn backup_time(id: &str) -> Option<OffsetDateTime> {
    let stamp = id.get(..19)?;
    time::PrimitiveDateTime::parse(stamp, ID_TIME).ok().map(time::PrimitiveDateTime::assume_utc)
}

/// [`backup_time`] in milliseconds since the Unix epoch. A store's id naming a time before
/// 1970 is none drover took: None, not a negative time cast to a huge one.
pub fn backup_time_ms(id: &str) -> Option<u64> {
    u64::try_from(backup_time(id)?.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Reads every selected object from `cluster` and writes the backup to each of `stores`.
pub async fn create_backup(
    cluster: &dyn ClusterApi,
    stores: &[BackupStore],
    request: &BackupRequest,
    now: OffsetDateTime,
) -> Result<BackupReport, Error> {
    let wanted_namespace = |ns: &str| {
        if request.namespaces.is_empty() {
            !SYSTEM_NAMESPACES.contains(&ns)
        } else {
            request.namespaces.iter().any(|n| n == ns)
        }
    };
    let id = backup_id(now, &request.region);
    let mut entries = Vec::new();
    let mut contents = Vec::new();
    let kinds = cluster.resource_kinds().await?;
    let skipped_groups = cluster.skipped_groups();
    for kind in kinds {
        let secret = kind.group.is_empty() && kind.kind == "Secret";
        if skipped_kind(&kind) || (secret && request.secrets.is_none()) {
            continue;
        }
        let selector = if kind.namespaced { request.selector.as_deref() } else { None };
        let mut objects = Vec::new();
        if kind.namespaced && !request.namespaces.is_empty() {
            for ns in &request.namespaces {
                objects.extend(cluster.list(&kind, Some(ns), selector).await?);
            }
        } else {
            objects = cluster.list(&kind, None, selector).await?;
        }
        for object in objects {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
            let in_scope = match (&namespace, kind.kind.as_str()) {
                (Some(ns), _) => wanted_namespace(ns),
                (None, "Namespace") if kind.group.is_empty() => wanted_namespace(&name),
                (None, _) => true,
            };
            if !in_scope || skipped_object(&kind, &object) {
                continue;
            }
            let mut entry = Entry {
                group: kind.group.clone(),
                version: kind.version.clone(),
                kind: kind.kind.clone(),
                plural: kind.plural.clone(),
                namespace,
                name,
                hash: String::new(),
                size: 0,
                encrypted: secret,
            };
            let mut bytes = format::encode(&format::strip(object, &kind.kind));
            if let Some(key) = request.secrets.as_ref().filter(|_| secret) {
                bytes = key.seal(&bytes, &Binding::entry(&id, &entry));
            }
            entry.hash = format::sha256_hex(&bytes);
            entry.size = bytes.len() as u64;
            contents.push((entry.hash.clone(), bytes));
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| {
        (&a.group, &a.plural, &a.namespace, &a.name).cmp(&(&b.group, &b.plural, &b.namespace, &b.name))
    });
    contents.sort_by(|a, b| a.0.cmp(&b.0));
    contents.dedup_by(|a, b| a.0 == b.0);
    crate::report(&request.progress, || {
        format!(
            "read {} objects ({} distinct contents) from {}'s cluster",
            entries.len(),
            contents.len(),
            request.region
        )
    });
    let index = Index {
        format: FORMAT,
        id,
        created: now.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats"),
        plan: request.plan.clone(),
        region: request.region.clone(),
        namespaces: request.namespaces.clone(),
        selector: request.selector.clone(),
        key_id: entries.iter().any(|e| e.encrypted).then(|| request.secrets.as_ref().unwrap().id().to_owned()),
        skipped_groups,
        objects: entries,
    };
    // Each store on its own: a region that is down must not keep the others from a backup.
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    for store in stores {
        crate::report(&request.progress, || format!("writing to the {} store", store.name));
        match write_to(store, &index, &contents).await {
            Ok(count) => {
                tracing::info!(store = %store.name, backup = %index.id, objects = index.objects.len(), new = count, "backup written");
                written.push((store.name.clone(), count));
            }
            Err(e) => {
                tracing::warn!(store = %store.name, backup = %index.id, error = %e, "backup not written to this store");
                failed.push((store.name.clone(), e.to_string()));
            }
        }
    }
    if written.is_empty() {
        let why: Vec<String> = failed.iter().map(|(store, e)| format!("the {store} store: {e}")).collect();
        return Err(Error::Invalid(format!("no store could be written: {}", why.join("; "))));
    }
    Ok(BackupReport { index, written, failed })
}

/// Writes one store under its lock: the objects it lacks, then the index.
async fn write_to(store: &BackupStore, index: &Index, contents: &[(String, Vec<u8>)]) -> Result<usize, Error> {
    let lock = store.lock(&holder(&index.id), LOCK_WAIT).await?;
    let written = async {
        let count = store.put_objects(contents).await?;
        // A retention that took the lock over meanwhile may have deleted objects this
        // index would name: then no index, and the next backup writes them again.
        lock.still_held().await?;
        store.put_index(index).await?;
        Ok::<_, Error>(count)
    }
    .await;
    let released = lock.release().await;
    let count = written?;
    released?;
    Ok(count)
}

/// How long a backup or retention waits for another one to let go of a store.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Who holds a store's lock, for the message another process sees.
fn holder(what: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{what} (process {} on {})", std::process::id(), host.trim())
}

/// Deletes the backups `keep` does not keep, then the content only they used; the ids deleted.
pub async fn apply_retention(store: &BackupStore, keep: Keep) -> Result<Vec<String>, Error> {
    if retention::to_delete(&store.backup_ids().await?, keep).is_empty() {
        return Ok(Vec::new());
    }
    let lock = store.lock(&holder("retention"), LOCK_WAIT).await?;
    let applied = async {
        let delete = retention::to_delete(&store.backup_ids().await?, keep);
        for id in &delete {
            store.delete_backup(id).await?;
        }
        if !delete.is_empty() {
            store.collect_garbage(&lock).await?;
        }
        Ok::<_, Error>(delete)
    }
    .await;
    let released = lock.release().await;
    let delete = applied?;
    released?;
    Ok(delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_id_gives_back_its_time() {
        let at = time::macros::datetime!(2026-12-05 20:15:07.123 UTC);
        let id = backup_id(at, "east");
        assert_eq!(id, "20261205-201507-123-east");
        assert_eq!(backup_time(&id), Some(at));
        assert_eq!(backup_time("not-a-backup"), None);
    }

    /// A store holding `00000101-…` once made the daemon's next backup due at a wrapped
    /// time: a backup every round (release) or a panicked loop (debug).
    #[test]
    fn an_id_before_1970_has_no_time_in_milliseconds() {
        assert_eq!(backup_time_ms("19700101-000001-250-east"), Some(1_250));
        assert_eq!(backup_time_ms("19691231-235959-999-east"), None);
        assert_eq!(backup_time_ms("00000101-000000-000-east"), None);
    }
}
