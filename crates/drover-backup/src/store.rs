//! One region's backup store: `objects/<sha256>` for content, `backups/<id>/index.json`
//! for each backup, and `restores/<id>/<target>.json` for a restore's progress.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::format::{FORMAT, Index, MAX_INDEX_BYTES, MAX_OBJECT_BYTES};
use crate::lock::StoreLock;
use crate::{Error, run_bounded};

/// How many requests to a store are in flight at once.
pub(crate) const CONCURRENCY: usize = 32;

#[derive(Clone, Debug)]
pub struct BackupStore {
    /// A name for reports: the region, usually.
    pub name: String,
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store: its lock is swapped under a file lock there, the
    /// local object store having no conditional update.
    local_dir: Option<PathBuf>,
    lock_ttl: Duration,
}

fn object_path(hash: &str) -> Path {
    Path::from(format!("objects/{hash}"))
}

fn index_path(id: &str) -> Path {
    Path::from(format!("backups/{id}/index.json"))
}

fn progress_path(id: &str, target: &str) -> Path {
    Path::from(format!("restores/{id}/{target}.json"))
}

impl BackupStore {
    pub fn new(name: &str, store: Arc<dyn ObjectStore>) -> BackupStore {
        BackupStore { name: name.into(), store, local_dir: None, lock_ttl: crate::lock::TTL }
    }

    /// The same store with another lock lifetime (tests, which cannot wait two minutes).
    pub fn with_lock_ttl(mut self, ttl: Duration) -> BackupStore {
        self.lock_ttl = ttl;
        self
    }

    pub(crate) fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    pub(crate) fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    /// A store in a local directory, created if missing.
    pub fn local(name: &str, dir: &std::path::Path) -> Result<BackupStore, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        // Deleting a backup's index must remove its directory too, or listing would still show the backup.
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(BackupStore { local_dir: Some(dir.to_owned()), ..BackupStore::new(name, Arc::new(local)) })
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
        let what = format!("the index of {id} in the {} store", self.name);
        let bytes = match self.get_within(&index_path(id), MAX_INDEX_BYTES, &what).await {
            Err(Error::Store(object_store::Error::NotFound { .. })) => {
                return Err(Error::NoBackup(format!("no backup {id} in the {} store", self.name)));
            }
            other => other?,
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
        if index.format > FORMAT {
            return Err(Error::Invalid(format!(
                "{what} is format {}, newer than this drover reads ({FORMAT}): use a newer drover",
                index.format
            )));
        }
        Ok(index)
    }

    /// The bytes at `path`, refused unread when the store says they are over `limit`, and
    /// as they arrive once past it (a store that misreports the size).
    async fn get_within(&self, path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
        let got = self.store.get(path).await?;
        let too_big = |size: u64| Error::Corrupt(format!("{what} is {size} bytes or more, over the limit of {limit}"));
        let size = got.meta.size;
        if size > limit {
            return Err(too_big(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_big((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The ids of the backups in the store, oldest first (ids sort by time).
    pub async fn backup_ids(&self) -> Result<Vec<String>, Error> {
        let listing = self.store.list_with_delimiter(Some(&Path::from("backups"))).await?;
        let mut ids: Vec<String> =
            listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        ids.sort();
        Ok(ids)
    }

    /// The stored bytes of object `hash`, refused past `MAX_OBJECT_BYTES`.
    pub async fn object(&self, hash: &str) -> Result<Vec<u8>, Error> {
        self.object_within(hash, MAX_OBJECT_BYTES).await
    }

    /// The stored bytes of object `hash`, refused past `limit` (the size its index gives).
    pub(crate) async fn object_within(&self, hash: &str, limit: u64) -> Result<Vec<u8>, Error> {
        self.get_within(&object_path(hash), limit, &format!("object {hash}")).await
    }

    /// Deletes backup `id`'s index (its content objects go with `collect_garbage`).
    pub async fn delete_backup(&self, id: &str) -> Result<(), Error> {
        self.store.delete(&index_path(id)).await?;
        Ok(())
    }

    /// Deletes the content objects no remaining backup refers to; how many. Only under the
    /// store's lock, confirmed held just before: a backup running beside it may reuse an
    /// object no index names yet.
    pub async fn collect_garbage(&self, lock: &StoreLock) -> Result<usize, Error> {
        let mut referenced = HashSet::new();
        for id in self.backup_ids().await? {
            referenced.extend(self.index(&id).await?.objects.into_iter().map(|e| e.hash));
        }
        let unreferenced: Vec<String> =
            self.content_objects().await?.into_iter().filter(|h| !referenced.contains(h)).collect();
        let count = unreferenced.len();
        lock.still_held().await?;
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
