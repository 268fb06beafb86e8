//! Whether a backup in a store is what its index says: every object present, its bytes
//! hashing to its name, within the size its index gives, and — read as a restore reads it
//! — inflating within `MAX_DECODED_BYTES` to JSON, a sealed Secret opening as the entry
//! it stands for. `verify` reports it; a restore runs it before it applies anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::format::{self, Binding, Entry, Index, MAX_OBJECT_BYTES, SecretKey, sha256_hex};
use crate::store::{BackupStore, CONCURRENCY};
use crate::{Error, run_bounded};

/// What a check found. Each problem is `(label, hash)`, or with why for `unreadable`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    /// Distinct objects read.
    pub checked: usize,
    /// Objects that are not there.
    pub missing: Vec<(String, String)>,
    /// Objects whose bytes do not match their hash (or the size the index gives).
    pub corrupt: Vec<(String, String, String)>,
    /// Objects whose bytes match but that a restore could not use: a sealed Secret moved
    /// from another entry, an object over the size limits (a gzip bomb), not gzip or JSON.
    pub unreadable: Vec<(String, String, String)>,
    /// Sealed Secrets checked only by hash, for want of the key.
    pub sealed_unopened: usize,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty() && self.unreadable.is_empty()
    }

    /// Each problem on a line of its own, for a message.
    pub fn problems(&self) -> Vec<String> {
        let missing = self.missing.iter().map(|(label, hash)| format!("missing {label} ({hash})"));
        let corrupt = self.corrupt.iter().map(|(label, hash, why)| format!("corrupt {label} ({hash}): {why}"));
        let unreadable = self.unreadable.iter().map(|(label, hash, why)| format!("unreadable {label} ({hash}): {why}"));
        missing.chain(corrupt).chain(unreadable).collect()
    }
}

/// One distinct object and the entries that name it.
struct Named {
    hash: String,
    size: u64,
    entries: Vec<(Entry, Binding)>,
}

enum Found {
    Missing,
    Corrupt(String),
    /// The stored bytes, and per entry that cannot use them, why.
    Read(Vec<u8>, Vec<(Entry, String)>),
}

impl BackupStore {
    /// Checks every object of backup `id` (see the module). Without `key`, sealed Secrets
    /// are checked by hash only.
    pub async fn verify(&self, id: &str, key: Option<Arc<SecretKey>>) -> Result<VerifyReport, Error> {
        let index = self.index(id).await?;
        Ok(self.check(&index, &index.objects, key).await?.0)
    }

    /// Checks `entries` of `index`, keeping the stored bytes of the objects that passed.
    pub(crate) async fn check(
        &self,
        index: &Index,
        entries: &[Entry],
        key: Option<Arc<SecretKey>>,
    ) -> Result<(VerifyReport, HashMap<String, Vec<u8>>), Error> {
        let mut by_hash: BTreeMap<&str, Named> = BTreeMap::new();
        for entry in entries {
            let named = by_hash.entry(&entry.hash).or_insert_with(|| Named {
                hash: entry.hash.clone(),
                size: entry.size,
                entries: Vec::new(),
            });
            named.entries.push((entry.clone(), Binding::of(index, entry)));
        }
        let mut report = VerifyReport {
            sealed_unopened: if key.is_none() { entries.iter().filter(|e| e.encrypted).count() } else { 0 },
            ..VerifyReport::default()
        };
        let work: Vec<Named> = by_hash.into_values().collect();
        let store = self.clone();
        let results = run_bounded(work, CONCURRENCY, move |named| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let found = read(&store, &named, key.as_deref()).await;
                (named, found)
            }
        })
        .await;
        let mut contents = HashMap::new();
        for (named, found) in results {
            report.checked += 1;
            let label = named.entries[0].0.label();
            match found? {
                Found::Missing => report.missing.push((label, named.hash)),
                Found::Corrupt(why) => report.corrupt.push((label, named.hash, why)),
                Found::Read(bytes, unusable) if unusable.is_empty() => {
                    contents.insert(named.hash, bytes);
                }
                Found::Read(_, unusable) => {
                    report.unreadable.extend(unusable.into_iter().map(|(e, why)| (e.label(), e.hash, why)))
                }
            }
        }
        report.missing.sort();
        report.corrupt.sort();
        report.unreadable.sort();
        Ok((report, contents))
    }
}

async fn read(store: &BackupStore, named: &Named, key: Option<&SecretKey>) -> Result<Found, Error> {
    if named.size > MAX_OBJECT_BYTES {
        let why = format!("its index gives {} bytes, over the limit of {MAX_OBJECT_BYTES}", named.size);
        return Ok(Found::Read(Vec::new(), named.entries.iter().map(|(e, _)| (e.clone(), why.clone())).collect()));
    }
    let stored = match store.object_within(&named.hash, named.size).await {
        Ok(stored) => stored,
        Err(Error::Store(object_store::Error::NotFound { .. })) => return Ok(Found::Missing),
        Err(Error::Corrupt(_)) => {
            return Ok(Found::Corrupt(format!("larger than the {} bytes its index gives", named.size)));
        }
        Err(e) => return Err(e),
    };
    if sha256_hex(&stored) != named.hash {
        return Ok(Found::Corrupt("its bytes do not match its hash".into()));
    }
    if stored.len() as u64 != named.size {
        return Ok(Found::Corrupt(format!("{} bytes, not the {} its index gives", stored.len(), named.size)));
    }
    let mut unusable = Vec::new();
    let mut plain_checked = false;
    for (entry, binding) in &named.entries {
        let result = match (entry.encrypted, key) {
            (true, Some(key)) => key.open(&stored, binding).and_then(|gz| format::decode(&gz).map(|_| ())),
            (true, None) => Ok(()),
            // One check serves every plain entry of the same bytes.
            (false, _) if plain_checked => Ok(()),
            (false, _) => {
                plain_checked = true;
                format::decode(&stored).map(|_| ())
            }
        };
        if let Err(e) = result {
            unusable.push((entry.clone(), e.to_string()));
        }
    }
    Ok(Found::Read(stored, unusable))
}
