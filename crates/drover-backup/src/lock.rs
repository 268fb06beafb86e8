//! The store's lock: held by the one backup or retention working in a store, since a
//! backup reuses content the store holds and a retention deletes content no index names
//! yet. It is the object `locks/backup`, and every change to it is conditional on what it
//! was when last read — S3's `If-None-Match: *` to create it and `If-Match: <ETag>` to
//! change it; in a local directory, a compare under an exclusive file lock — so two
//! processes never both believe they took it. Its holder renews it while working
//! (`TTL / 3`); one whose holder stopped renewing is taken over once its time has passed;
//! releasing it marks it free only if it is still the holder's. Nothing deletes it.

use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::Error;
use crate::store::BackupStore;

/// A lock not renewed for this long belongs to a process that stopped (or lost the store),
/// and is taken over. Holders' clocks must agree to well within `TTL - TTL / 3`.
pub const TTL: Duration = Duration::from_secs(120);

/// What `locks/backup` holds. `until_ms` 0 means released.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LockRecord {
    pub holder: String,
    /// Unique to one taking of the lock, so a holder knows its own record. Empty in a
    /// record an older drover wrote.
    #[serde(default)]
    pub token: String,
    pub until_ms: u64,
}

impl LockRecord {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lock record serializes")
    }
}

/// The lock as last read or written: what a conditional change compares against. The
/// ETag serves S3 (`If-Match`); the bytes serve a local directory.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub e_tag: Option<String>,
    pub version: Option<String>,
    pub bytes: Vec<u8>,
}

impl Seen {
    pub fn update_version(&self) -> UpdateVersion {
        UpdateVersion { e_tag: self.e_tag.clone(), version: self.version.clone() }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    data_encoding::HEXLOWER.encode(&bytes)
}

/// The store's lock, held. Renewed in the background until `release`d (or dropped: it then
/// lapses after `TTL`). Work that must not run without it calls `still_held` first.
pub struct StoreLock {
    store: BackupStore,
    record: LockRecord,
    state: Arc<Mutex<Held>>,
    stop: watch::Sender<bool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

struct Held {
    seen: Seen,
    /// Why the lock is no longer ours, once a renewal found it changed.
    lost: Option<String>,
}

impl StoreLock {
    /// Renews the lock now; an error if it is no longer ours (taken over, or deleted by
    /// hand), so the caller stops before it does what only the holder may.
    pub async fn still_held(&self) -> Result<(), Error> {
        let mut held = self.state.lock().await;
        renew(&self.store, &self.record, &mut held).await
    }

    /// Marks the lock free if it is still ours; one taken over is left to its new holder.
    pub async fn release(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        if let Some(heartbeat) = self.heartbeat.take() {
            // Awaited, not aborted: a renewal cut off mid-request could change the lock
            // without our learning its new version.
            let _ = heartbeat.await;
        }
        let held = self.state.lock().await;
        if held.lost.is_some() {
            return Ok(());
        }
        let free = LockRecord { until_ms: 0, ..self.record.clone() };
        if self.store.swap_lock(Some(&held.seen), &free).await?.is_none() {
            tracing::warn!(store = %self.store.name, "the backup lock was no longer ours when released; left as it is");
        }
        Ok(())
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreLock({} held by {})", self.store.name, self.record.holder)
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One renewal: the lock's time pushed to `TTL` from now, if it is still as we left it.
async fn renew(store: &BackupStore, record: &LockRecord, held: &mut Held) -> Result<(), Error> {
    if let Some(why) = &held.lost {
        return Err(Error::Busy(why.clone()));
    }
    let renewed = LockRecord { until_ms: now_ms() + store.lock_ttl().as_millis() as u64, ..record.clone() };
    match store.swap_lock(Some(&held.seen), &renewed).await? {
        Some(seen) => {
            held.seen = seen;
            Ok(())
        }
        None => {
            let why = format!(
                "the {} store's lock was taken from {} while it worked (its renewal found it changed): stopped",
                store.name, record.holder
            );
            held.lost = Some(why.clone());
            Err(Error::Busy(why))
        }
    }
}

impl BackupStore {
    /// Takes the store's lock for `holder`, waiting up to `wait` for another holder to let
    /// go. A lock whose holder stopped renewing it is taken over once its time has passed.
    pub async fn lock(&self, holder: &str, wait: Duration) -> Result<StoreLock, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let token = new_token();
        loop {
            let current = self.read_lock().await?;
            let expected = match &current {
                None => None,
                Some((Some(held), _)) if held.until_ms > now_ms() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Busy(format!(
                            "the {} store is locked by {} (a backup or retention running there); try again later, \
                             or, if that process is surely gone, wait {}s for its lock to lapse",
                            self.name,
                            held.holder,
                            self.lock_ttl().as_secs()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Some((held, seen)) => {
                    if let Some(held) = held.as_ref().filter(|h| h.until_ms != 0) {
                        tracing::warn!(store = %self.name, holder = %held.holder, "taking over a backup lock its holder stopped renewing");
                    }
                    Some(seen)
                }
            };
            let record = LockRecord {
                holder: holder.to_owned(),
                token: token.clone(),
                until_ms: now_ms() + self.lock_ttl().as_millis() as u64,
            };
            // Another process changed it since we read it: read it again.
            let Some(seen) = self.swap_lock(expected, &record).await? else { continue };
            let state = Arc::new(Mutex::new(Held { seen, lost: None }));
            let (stop, mut stopped) = watch::channel(false);
            let heartbeat = tokio::spawn({
                let (store, record, state) = (self.clone(), record.clone(), state.clone());
                async move {
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(store.lock_ttl() / 3) => {}
                            _ = stopped.changed() => return,
                        }
                        let mut held = state.lock().await;
                        match renew(&store, &record, &mut held).await {
                            Ok(()) => {}
                            Err(Error::Busy(why)) => {
                                tracing::warn!(store = %store.name, "{why}");
                                return;
                            }
                            // The store did not answer: try again at the next beat, well
                            // before the lock lapses.
                            Err(e) => {
                                tracing::warn!(store = %store.name, error = %e, "could not renew the backup lock")
                            }
                        }
                    }
                }
            });
            return Ok(StoreLock { store: self.clone(), record, state, stop, heartbeat: Some(heartbeat) });
        }
    }

    /// The lock as it is: its record (None if it is not one) and what to compare against.
    async fn read_lock(&self) -> Result<Option<(Option<LockRecord>, Seen)>, Error> {
        let got = match self.inner().get(&lock_path()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (e_tag, version) = (got.meta.e_tag.clone(), got.meta.version.clone());
        let bytes = got.bytes().await?.to_vec();
        Ok(Some((serde_json::from_slice(&bytes).ok(), Seen { e_tag, version, bytes })))
    }

    /// Writes `record` as the lock if the lock is still `expected` (absent, for None);
    /// what it now is, or None if it had changed.
    pub(crate) async fn swap_lock(&self, expected: Option<&Seen>, record: &LockRecord) -> Result<Option<Seen>, Error> {
        let bytes = record.bytes();
        if let Some(dir) = self.local_dir() {
            let (dir, expected, new) = (dir.to_owned(), expected.map(|s| s.bytes.clone()), bytes.clone());
            let swapped = tokio::task::spawn_blocking(move || swap_local(&dir, expected.as_deref(), &new))
                .await
                .expect("the lock swap does not panic")
                .map_err(|e| Error::Invalid(format!("the local store's lock: {e}")))?;
            return Ok(swapped.then_some(Seen { e_tag: None, version: None, bytes }));
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(seen) => PutMode::Update(seen.update_version()),
        };
        match self.inner().put_opts(&lock_path(), PutPayload::from(bytes.clone()), mode.into()).await {
            Ok(put) => Ok(Some(Seen { e_tag: put.e_tag, version: put.version, bytes })),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn lock_path() -> object_store::path::Path {
    object_store::path::Path::from("locks/backup")
}

/// A local directory's compare-and-swap: under an exclusive lock on a file beside it (held
/// only for the swap), the lock is replaced (by rename, so a reader never sees half of it)
/// only if its bytes are still `expected`.
fn swap_local(dir: &std::path::Path, expected: Option<&[u8]>, new: &[u8]) -> std::io::Result<bool> {
    let locks = dir.join("locks");
    std::fs::create_dir_all(&locks)?;
    let guard =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(locks.join(".backup.swap"))?;
    guard.lock()?;
    let current = match std::fs::read(locks.join("backup")) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if current.as_deref() != expected {
        return Ok(false);
    }
    let staged = locks.join(format!(".backup.{}", std::process::id()));
    std::fs::write(&staged, new)?;
    std::fs::rename(&staged, locks.join("backup"))?;
    Ok(true)
}
