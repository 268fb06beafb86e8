//! One region's backup store: `objects/<sha256>` for content, `backups/<id>/index.json`
//! for each backup, and `restores/<id>/<target>.json` for a restore's progress.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::format::{Entry, Index, sha256_hex};
use crate::{Error, run_bounded};

/// How many requests to a store are in flight at once.
const CONCURRENCY: usize = 32;

#[derive(Clone, Debug)]
pub struct BackupStore {
    /// A name for reports: the region, usually.
    pub name: String,
    store: Arc<dyn ObjectStore>,
}

/// What `verify` found: objects missing and objects whose bytes do not match their hash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    pub checked: usize,
    /// `(label, hash)` of each object that is not there.
    pub missing: Vec<(String, String)>,
    /// `(label, hash)` of each object whose content does not match.
    pub corrupt: Vec<(String, String)>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

fn object_path(hash: &str) -> Path {
    Path::from(format!("objects/{hash}"))
}

fn index_path(id: &str) -> Path {
    Path::from(format!("backups/{id}/index.json"))
}

/// Held by the one backup or retention working in a store (see `BackupStore::lock`).
fn lock_path() -> Path {
    Path::from("locks/backup")
}

/// A lock older than this belongs to a process that died holding it, and is taken over.
const LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(serde::Serialize, serde::Deserialize)]
struct LockRecord {
    holder: String,
    until_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn progress_path(id: &str, target: &str) -> Path {
    Path::from(format!("restores/{id}/{target}.json"))
}

impl BackupStore {
    pub fn new(name: &str, store: Arc<dyn ObjectStore>) -> BackupStore {
        BackupStore { name: name.into(), store }
    }

    /// A store in a local directory, created if missing.
    pub fn local(name: &str, dir: &std::path::Path) -> Result<BackupStore, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        // Deleting a backup's index must remove its directory too, or listing would still show the backup.
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(BackupStore::new(name, Arc::new(local)))
    }

    /// A store in an S3 bucket (under `prefix`, if any). Credentials and region come from
    /// the standard AWS environment; `endpoint` points at an S3-compatible server.
    pub fn s3(
        name: &str,
        bucket: &str,
        prefix: Option<&str>,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<BackupStore, Error> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_region(region);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let store = match prefix.filter(|p| !p.is_empty()) {
            Some(prefix) => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) as Arc<dyn ObjectStore>,
            None => s3,
        };
        Ok(BackupStore::new(name, store))
    }

    /// The content objects the store holds.
    pub async fn content_objects(&self) -> Result<HashSet<String>, Error> {
        let listing = self.store.list_with_delimiter(Some(&Path::from("objects"))).await?;
        Ok(listing.objects.into_iter().filter_map(|o| o.location.filename().map(str::to_owned)).collect())
    }

    /// Writes the content objects the store lacks; how many it wrote.
    pub async fn put_objects(&self, objects: &[(String, Vec<u8>)]) -> Result<usize, Error> {
        let existing = self.content_objects().await?;
        // Only the new ones are copied: an unchanged cluster's backup copies nothing.
        let new: Vec<_> = objects.iter().filter(|(hash, _)| !existing.contains(hash)).cloned().collect();
        let count = new.len();
        let store = self.store.clone();
        let results = run_bounded(new, CONCURRENCY, move |(hash, bytes)| {
            let store = store.clone();
            async move { store.put(&object_path(&hash), PutPayload::from(bytes)).await.map(|_| ()) }
        })
        .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    /// Writes the index, after the objects: an index in the store means its objects are there.
    pub async fn put_index(&self, index: &Index) -> Result<(), Error> {
        let json = serde_json::to_vec(index).expect("an index serializes");
        self.store.put(&index_path(&index.id), PutPayload::from(json)).await?;
        Ok(())
    }

    pub async fn index(&self, id: &str) -> Result<Index, Error> {
        let bytes = match self.store.get(&index_path(id)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NoBackup(format!("no backup {id} in the {} store", self.name)));
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt(format!("index of {id}: {e}")))
    }

    /// The ids of the backups in the store, oldest first (ids sort by time).
    pub async fn backup_ids(&self) -> Result<Vec<String>, Error> {
        let listing = self.store.list_with_delimiter(Some(&Path::from("backups"))).await?;
        let mut ids: Vec<String> =
            listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        ids.sort();
        Ok(ids)
    }

    pub async fn object(&self, hash: &str) -> Result<Vec<u8>, Error> {
        Ok(self.store.get(&object_path(hash)).await?.bytes().await?.to_vec())
    }

    /// Checks that every object of backup `id` is present and its bytes hash to its name.
    pub async fn verify(&self, id: &str) -> Result<VerifyReport, Error> {
        let index = self.index(id).await?;
        let mut seen = HashSet::new();
        let unique: Vec<Entry> = index.objects.into_iter().filter(|e| seen.insert(e.hash.clone())).collect();
        let store = self.store.clone();
        let results = run_bounded(unique, CONCURRENCY, move |entry| {
            let store = store.clone();
            async move {
                let got = match store.get(&object_path(&entry.hash)).await {
                    Ok(got) => got.bytes().await,
                    Err(e) => Err(e),
                };
                (entry, got)
            }
        })
        .await;
        let mut report = VerifyReport::default();
        for (entry, got) in results {
            report.checked += 1;
            match got {
                Ok(bytes) if sha256_hex(&bytes) == entry.hash => {}
                Ok(_) => report.corrupt.push((entry.label(), entry.hash)),
                Err(object_store::Error::NotFound { .. }) => report.missing.push((entry.label(), entry.hash)),
                Err(e) => return Err(e.into()),
            }
        }
        report.missing.sort();
        report.corrupt.sort();
        Ok(report)
    }

    /// Deletes backup `id`'s index (its content objects go with `collect_garbage`).
    pub async fn delete_backup(&self, id: &str) -> Result<(), Error> {
        self.store.delete(&index_path(id)).await?;
        Ok(())
    }

    /// Takes the store's backup lock for `holder`, waiting up to `wait` for another holder
    /// to let go: a backup reuses content the store holds, so a retention deleting unused
    /// content must never run beside it. The lock is an object created only if absent
    /// (S3 `If-None-Match: *`, or an exclusive create on a local directory); one whose
    /// holder died is taken over after an hour. Release it with `unlock`.
    pub async fn lock(&self, holder: &str, wait: std::time::Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let record = LockRecord { holder: holder.to_owned(), until_ms: now_ms() + LOCK_TTL.as_millis() as u64 };
            let body = PutPayload::from(serde_json::to_vec(&record).expect("a lock serializes"));
            match self.store.put_opts(&lock_path(), body, PutMode::Create.into()).await {
                Ok(_) => return Ok(()),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let held: Option<LockRecord> = match self.store.get(&lock_path()).await {
                Ok(got) => serde_json::from_slice(&got.bytes().await?).ok(),
                // Let go between our create and this read: try again at once.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            match held {
                Some(held) if held.until_ms > now_ms() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Busy(format!(
                            "the {} store is locked by {} (a backup or retention running there); try again later, \
                             or delete locks/backup in the store if that process is gone",
                            self.name, held.holder
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                // Expired, or not a lock record: its holder is gone.
                _ => {
                    tracing::warn!(store = %self.name, "taking over a backup lock whose holder is gone");
                    self.unlock().await?;
                }
            }
        }
    }

    pub async fn unlock(&self) -> Result<(), Error> {
        match self.store.delete(&lock_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the content objects no remaining backup refers to; how many. The caller holds
    /// the store's lock: a backup running beside it may reuse an object no index names yet.
    pub async fn collect_garbage(&self) -> Result<usize, Error> {
        let mut referenced = HashSet::new();
        for id in self.backup_ids().await? {
            referenced.extend(self.index(&id).await?.objects.into_iter().map(|e| e.hash));
        }
        let unreferenced: Vec<String> =
            self.content_objects().await?.into_iter().filter(|h| !referenced.contains(h)).collect();
        let count = unreferenced.len();
        let store = self.store.clone();
        let results = run_bounded(unreferenced, CONCURRENCY, move |hash| {
            let store = store.clone();
            async move { store.delete(&object_path(&hash)).await }
        })
        .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    /// The objects a restore of `id` to `target` has already applied.
    pub async fn restore_progress(&self, id: &str, target: &str) -> Result<BTreeSet<String>, Error> {
        match self.store.get(&progress_path(id, target)).await {
            Ok(got) => serde_json::from_slice(&got.bytes().await?)
                .map_err(|e| Error::Corrupt(format!("restore progress of {id} to {target}: {e}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(BTreeSet::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets a restore's progress: its next run applies every object again.
    pub async fn delete_restore_progress(&self, id: &str, target: &str) -> Result<(), Error> {
        match self.store.delete(&progress_path(id, target)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn put_restore_progress(&self, id: &str, target: &str, done: &BTreeSet<String>) -> Result<(), Error> {
        let json = serde_json::to_vec(done).expect("a set of strings serializes");
        self.store.put(&progress_path(id, target), PutPayload::from(json)).await?;
        Ok(())
    }

    /// The underlying store, for tests that tamper with it.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}
