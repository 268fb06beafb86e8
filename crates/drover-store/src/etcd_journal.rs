//! The journal and the epoch in etcd, for drovers that must survive their own
//! region. Every write is one transaction that compares the journal's sequence
//! key: a writer that read stale state (another process appended meanwhile)
//! retries on fresh state, so the active-run rule and "an ended run takes no more
//! records" hold across processes. With a `Fence`, every transaction also
//! requires the leader key to be the one this process won, so a deposed leader
//! can write nothing.
//!
//! Keys under the prefix: `seq` (last entry number), `epoch`, `active` (the run
//! id holding the active slot), `runs/<run>/<seq, 20 digits>` (one entry each),
//! `starts/<u64::MAX - seq of the Started entry, 20 digits>` (the run's `RunStart`: the
//! index pages and retention walk, newest first in plain key order, because etcd reads a
//! whole range before it sorts one), `indexed` (set once every run has its start), and
//! `drivers/<run>` (who drives the run, on a lease: the leader's with a `Fence`, else one
//! this process keeps alive while it drives; the claim dies with it).
//!
//! Drills (`drover_core::drill_log`) keep the same shape under `drills/`:
//! `drills/records/<drill>/<seq, 20 digits>`, `drills/starts/<u64::MAX - seq, 20 digits>`
//! and `drills/active`, numbered from the same `seq` and fenced the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use drover_core::StoreError;
use drover_core::clock::now_ms;
use drover_core::drill_log::{
    DrillEntry, DrillHeader, DrillId, DrillRecord, DrillSummary, DrillsPage, check_drill_appendable,
};
use drover_core::history::{Keep, PageRequest, Pruned, RunStart, RunsPage, Sweep};
use drover_core::journal::{CapacitySeen, DriverClaim, Journal};
use drover_core::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary, check_appendable};
use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};

use crate::access::{ELECTION_PATIENCE, EtcdAccess, EtcdClient, patiently, transient};
use crate::drivers::{self, Holder};

/// How many times a write is retried when another writer got in first.
const CONFLICT_RETRIES: u32 = 50;
/// How long a driver's claim outlives its process when no leader's lease carries it.
const DRIVER_LEASE_SECONDS: i64 = 10;

/// The leader key this process holds, with the revision at which it won it, and the lease
/// that keeps it (a run's driver claim rides on it: it dies with the leadership).
#[derive(Clone, Debug)]
pub struct Fence {
    pub key: String,
    pub create_revision: i64,
    pub lease: i64,
}

/// Claim token -> the lease kept alive for it, and the task keeping it.
type KeptLeases = std::collections::BTreeMap<String, (i64, tokio::task::JoinHandle<()>)>;

#[derive(Clone)]
pub struct EtcdJournal {
    client: EtcdClient,
    prefix: String,
    endpoints: String,
    fence: Option<Fence>,
    /// Claim token -> the lease this process keeps alive for it (no fence), and its keeper.
    kept: std::sync::Arc<std::sync::Mutex<KeptLeases>>,
    /// This process found (or made) the index of run starts: no need to look again.
    indexed: Arc<AtomicBool>,
}

impl std::fmt::Debug for EtcdJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdJournal").field("endpoints", &self.endpoints).field("prefix", &self.prefix).finish()
    }
}

/// A journal entry about to be written: the entry, the ops writing it, and its key and value.
struct NextEntry {
    entry: Entry,
    ops: Vec<TxnOp>,
    key: String,
    json: String,
}

/// The value read at a key, and its modification revision (0: absent).
struct Read {
    value: Option<String>,
    mod_revision: i64,
}

impl EtcdJournal {
    /// Connects to the cluster; `prefix` separates plans (e.g. `/drover/shop`).
    pub async fn connect(access: &EtcdAccess, prefix: &str) -> Result<EtcdJournal, StoreError> {
        let options = crate::access::options(Duration::from_secs(3)).with_timeout(Duration::from_secs(5));
        let client = EtcdClient::connect(access, options).await?;
        Ok(EtcdJournal::with_client(client, prefix))
    }

    /// A journal over an existing connection (several prefixes can share one).
    pub fn with_client(client: EtcdClient, prefix: &str) -> EtcdJournal {
        let endpoints = client.access().describe();
        EtcdJournal {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            endpoints,
            fence: None,
            kept: Default::default(),
            indexed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Every later write also requires `fence` to still hold.
    pub fn fenced(mut self, fence: Fence) -> EtcdJournal {
        self.fence = Some(fence);
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    fn run_prefix(&self, run: &RunId) -> String {
        format!("{}/runs/{}/", self.prefix, run.0)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::io(format!("etcd {}: {what}: {e}", self.endpoints))
    }

    /// `err` for a failure with an error of its own, kept as the source.
    fn err_from(&self, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::io_from(format!("etcd {}: {what}: {e}", self.endpoints), e)
    }

    /// An etcd client error in a person's words: an unreachable cluster says so plainly.
    fn etcd(&self, what: &str, e: etcd_client::Error) -> StoreError {
        self.client.failure(what, e)
    }

    async fn read(&self, key: &str) -> Result<Read, StoreError> {
        let response = patiently(|| {
            let client = &self.client;
            async move { client.get(key, None).await }
        })
        .await
        .map_err(|e| self.etcd("read", e))?;
        Ok(match response.kvs().first() {
            Some(kv) => {
                Read { value: Some(String::from_utf8_lossy(kv.value()).into_owned()), mod_revision: kv.mod_revision() }
            }
            None => Read { value: None, mod_revision: 0 },
        })
    }

    /// Entries under a prefix, in key order (which is journal order).
    async fn entries_under(&self, prefix: &str) -> Result<Vec<(String, Entry)>, StoreError> {
        let response = patiently(|| {
            let client = &self.client;
            async move { client.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await
        .map_err(|e| self.etcd("read the journal", e))?;
        response.kvs().iter().map(|kv| Ok((String::from_utf8_lossy(kv.key()).into_owned(), self.decode(kv)?))).collect()
    }

    /// The compare that a key still has the revision it was read at.
    fn unchanged(key: &str, read: &Read) -> Compare {
        Compare::mod_revision(key, CompareOp::Equal, read.mod_revision)
    }

    fn fence_compare(&self) -> Option<Compare> {
        self.fence.as_ref().map(|f| Compare::create_revision(f.key.as_str(), CompareOp::Equal, f.create_revision))
    }

    /// Runs `txn` with the fence added; Ok(true) committed, Ok(false) lost a race.
    ///
    /// `landed`: a key and the exact value the transaction writes. A transaction whose
    /// answer was lost (etcd changed leader mid-request) may still have been applied;
    /// when that value is found in place, it was, and is not written twice.
    async fn commit(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        landed: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        compares.extend(self.fence_compare());
        let txn = Txn::new().when(compares).and_then(ops);
        let started = tokio::time::Instant::now();
        let response = loop {
            match self.client.txn(txn.clone()).await {
                Ok(response) => break response,
                Err(e) if transient(&e) && started.elapsed() < ELECTION_PATIENCE => {
                    if self.landed(landed).await? {
                        return Ok(true);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.etcd("write", e)),
            }
        };
        if response.succeeded() || self.landed(landed).await? {
            return Ok(true);
        }
        if let Some(fence) = &self.fence {
            let holder = patiently(|| {
                let client = &self.client;
                async move { client.get(fence.key.as_str(), None).await }
            })
            .await
            .map_err(|e| self.etcd("read", e))?;
            let still = holder.kvs().first().is_some_and(|kv| kv.create_revision() == fence.create_revision);
            if !still {
                return Err(self.err(
                    "write refused",
                    format!("this drover no longer holds the leader key {}; another leader writes now", fence.key),
                ));
            }
        }
        Ok(false)
    }

    async fn landed(&self, landed: Option<(&str, &str)>) -> Result<bool, StoreError> {
        let Some((key, value)) = landed else { return Ok(false) };
        Ok(self.read(key).await?.value.as_deref() == Some(value))
    }

    /// The next entry for `run`, and the ops that store it after the sequence read as `seq`.
    fn next_entry(&self, run: &RunId, record: &Record, seq: &Read) -> Result<NextEntry, StoreError> {
        let next = seq.value.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        let entry = Entry { seq: next, at_ms: now_ms(), record: record.clone() };
        let json = serde_json::to_string(&entry).map_err(|e| self.err_from("encode", e))?;
        let key = format!("{}{next:020}", self.run_prefix(run));
        let ops =
            vec![TxnOp::put(self.key("seq"), next.to_string(), None), TxnOp::put(key.as_str(), json.as_str(), None)];
        Ok(NextEntry { entry, ops, key, json })
    }

    /// The lease a claim rides on: the leader's, or a new one kept alive by this process
    /// until the claim is released (so a crashed driver's claim ends with its lease).
    async fn driver_lease(&self) -> Result<(i64, Option<tokio::task::JoinHandle<()>>), StoreError> {
        if let Some(fence) = &self.fence {
            return Ok((fence.lease, None));
        }
        let lease =
            self.client.lease_grant(DRIVER_LEASE_SECONDS, None).await.map_err(|e| self.etcd("driver lease", e))?.id();
        let mut client = self.client.clone();
        let keeper = tokio::spawn(async move {
            let every = Duration::from_secs(DRIVER_LEASE_SECONDS as u64) / 3;
            let Ok((mut keeper, mut answers)) = client.lease_keep_alive(lease).await else { return };
            loop {
                tokio::time::sleep(every).await;
                // A missed beat is tried again next time: the lease lasts three of them.
                let _ = tokio::time::timeout(every, async {
                    keeper.keep_alive().await.ok()?;
                    answers.message().await.ok()?
                })
                .await;
            }
        });
        Ok((lease, Some(keeper)))
    }

    /// Stops keeping the claim's own lease alive and revokes it (the leader's is left).
    async fn drop_driver_lease(&self, token: &str) {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
        if let Some((lease, keeper)) = kept {
            keeper.abort();
            let _ = self.client.clone().lease_revoke(lease).await;
        }
    }

    async fn run_entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError> {
        Ok(self.entries_under(&self.run_prefix(run)).await?.into_iter().map(|(_, e)| e).collect())
    }
}

#[async_trait]
impl Journal for EtcdJournal {
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError> {
        let (seq_key, active_key) = (self.key("seq"), self.key("active"));
        let record = Record::Started { header: header.clone() };
        self.ensure_indexed().await?;
        for _ in 0..CONFLICT_RETRIES {
            let seq = self.read(&seq_key).await?;
            let active = self.read(&active_key).await?;
            // A slot left by a run that has ended (its last write did not clear it) is free.
            if let Some(run) = &active.value
                && RunSummary::fold(&self.run_entries(&RunId(run.clone())).await?).is_some_and(|s| s.state.is_active())
            {
                return Err(StoreError::ActiveRun { active: run.clone() });
            }
            let NextEntry { entry, mut ops, key, json } = self.next_entry(&header.id, &record, &seq)?;
            ops.push(TxnOp::put(active_key.as_str(), header.id.0.as_str(), None));
            let start = RunStart { id: header.id.clone(), kind: header.kind, started_ms: entry.at_ms };
            ops.push(self.put_start(entry.seq, &start)?);
            // The slot is taken in the same transaction as the Started entry.
            let compares = vec![Self::unchanged(&seq_key, &seq), Self::unchanged(&active_key, &active)];
            if self.commit(compares, ops, Some((&key, &json))).await? {
                return Ok(entry);
            }
        }
        Err(self.err("begin", format!("gave up after {CONFLICT_RETRIES} conflicting writers")))
    }

    async fn append(&self, run: &RunId, record: Record) -> Result<Entry, StoreError> {
        let (seq_key, active_key) = (self.key("seq"), self.key("active"));
        let ends = matches!(record, Record::Completed | Record::Aborted { .. });
        for _ in 0..CONFLICT_RETRIES {
            let seq = self.read(&seq_key).await?;
            // Checked against entries read after `seq`: the transaction fails if anything was appended since.
            check_appendable(run, &self.run_entries(run).await?, &record)?;
            let NextEntry { entry, mut ops, key, json } = self.next_entry(run, &record, &seq)?;
            let mut compares = vec![Self::unchanged(&seq_key, &seq)];
            if ends {
                // Ending the run frees the active slot, in the same transaction.
                let active = self.read(&active_key).await?;
                if active.value.as_deref() == Some(run.0.as_str()) {
                    compares.push(Self::unchanged(&active_key, &active));
                    ops.push(TxnOp::delete(active_key.as_str(), None));
                }
            }
            if self.commit(compares, ops, Some((&key, &json))).await? {
                return Ok(entry);
            }
        }
        Err(self.err("append", format!("gave up after {CONFLICT_RETRIES} conflicting writers")))
    }

    async fn entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError> {
        let entries = self.run_entries(run).await?;
        if entries.is_empty() {
            return Err(StoreError::UnknownRun(run.0.clone()));
        }
        Ok(entries)
    }

    async fn epoch(&self) -> Result<Epoch, StoreError> {
        let read = self.read(&self.key("epoch")).await?;
        Ok(read.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn compare_and_swap_epoch(&self, expected: Epoch, new: Epoch) -> Result<Result<(), Epoch>, StoreError> {
        let key = self.key("epoch");
        let read = self.read(&key).await?;
        let current: Epoch = read.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        if current != expected {
            return Ok(Err(current));
        }
        if self
            .commit(vec![Self::unchanged(&key, &read)], vec![TxnOp::put(key.as_str(), new.to_string(), None)], None)
            .await?
        {
            Ok(Ok(()))
        } else {
            Ok(Err(self.epoch().await?))
        }
    }

    // Plain puts, outside the leader's fence: a note is what some daemon saw, not a decision.
    async fn note_capacity(&self, resource: &str, region: &str, seen: CapacitySeen) -> Result<(), StoreError> {
        let key = self.key(&format!("capacity/{resource}/{region}"));
        let json = serde_json::to_string(&seen).map_err(|e| self.err_from("encode", e))?;
        patiently(|| {
            let (client, key, json) = (&self.client, key.clone(), json.clone());
            async move { client.put(key, json, None).await }
        })
        .await
        .map_err(|e| self.etcd("note capacity", e))?;
        Ok(())
    }

    async fn noted_capacity(&self, resource: &str, region: &str) -> Result<Option<CapacitySeen>, StoreError> {
        let read = self.read(&self.key(&format!("capacity/{resource}/{region}"))).await?;
        read.value
            .map(|v| serde_json::from_str(&v).map_err(|e| self.err_from("unreadable capacity note", e)))
            .transpose()
    }

    async fn begin_drill(&self, header: &DrillHeader) -> Result<DrillEntry, StoreError> {
        let (seq_key, active_key) = (self.key("seq"), self.key("drills/active"));
        let record = DrillRecord::Started { header: header.clone() };
        for _ in 0..CONFLICT_RETRIES {
            let seq = self.read(&seq_key).await?;
            let active = self.read(&active_key).await?;
            // A slot left by a drill that has ended (its last write did not clear it) is free.
            if let Some(drill) = &active.value
                && DrillSummary::fold(&self.drill_records(&RunId(drill.clone())).await?)
                    .is_some_and(|s| s.state.is_active())
            {
                return Err(StoreError::ActiveDrill { active: drill.clone() });
            }
            let (entry, mut ops, key, json) = self.next_drill_entry(&header.id, &record, &seq)?;
            ops.push(TxnOp::put(active_key.as_str(), header.id.0.as_str(), None));
            let start = serde_json::to_string(&RunStart::of_drill(header, entry.at_ms))
                .map_err(|e| self.err_from("encode", e))?;
            ops.push(TxnOp::put(self.drill_start_key(entry.seq), start, None));
            let compares = vec![Self::unchanged(&seq_key, &seq), Self::unchanged(&active_key, &active)];
            if self.commit(compares, ops, Some((&key, &json))).await? {
                return Ok(entry);
            }
        }
        Err(self.err("begin the drill", format!("gave up after {CONFLICT_RETRIES} conflicting writers")))
    }

    async fn append_drill(&self, drill: &DrillId, record: DrillRecord) -> Result<DrillEntry, StoreError> {
        let (seq_key, active_key) = (self.key("seq"), self.key("drills/active"));
        let ends = matches!(record, DrillRecord::Ended { .. });
        for _ in 0..CONFLICT_RETRIES {
            let seq = self.read(&seq_key).await?;
            check_drill_appendable(drill, &self.drill_records(drill).await?, &record)?;
            let (entry, mut ops, key, json) = self.next_drill_entry(drill, &record, &seq)?;
            let mut compares = vec![Self::unchanged(&seq_key, &seq)];
            if ends {
                let active = self.read(&active_key).await?;
                if active.value.as_deref() == Some(drill.0.as_str()) {
                    compares.push(Self::unchanged(&active_key, &active));
                    ops.push(TxnOp::delete(active_key.as_str(), None));
                }
            }
            if self.commit(compares, ops, Some((&key, &json))).await? {
                return Ok(entry);
            }
        }
        Err(self.err("append to the drill", format!("gave up after {CONFLICT_RETRIES} conflicting writers")))
    }

    async fn drill_entries(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError> {
        let entries = self.drill_records(drill).await?;
        if entries.is_empty() {
            return Err(StoreError::UnknownDrill(drill.0.clone()));
        }
        Ok(entries)
    }

    async fn drill_page(&self, request: &PageRequest) -> Result<DrillsPage, StoreError> {
        let from = match &request.before {
            // Keys after the cursor's own start key are the drills that began before it.
            Some(before) => format!("{}\0", self.drill_start_key(self.drill_start_seq(before).await?)),
            None => self.key("drills/starts/"),
        };
        let end = self.key("drills/starts0");
        let range = GetOptions::new().with_range(end).with_limit(request.limit as i64 + 1);
        let kvs = self.get(&from, range, "read the drill index").await?;
        let mut ids = Vec::new();
        for kv in &kvs {
            let start: RunStart =
                serde_json::from_slice(kv.value()).map_err(|e| self.err_from("unreadable drill index entry", e))?;
            ids.push(start.id);
        }
        let next = (ids.len() > request.limit).then(|| {
            ids.truncate(request.limit);
            ids[request.limit - 1].clone()
        });
        // A drill holds its report and write samples: a few drills to a read.
        let mut drills = Vec::new();
        for id in &ids {
            drills.extend(DrillSummary::fold(&self.drill_records(id).await?));
        }
        Ok(DrillsPage { drills, next })
    }

    async fn active_drill(&self) -> Result<Option<DrillSummary>, StoreError> {
        let Some(drill) = self.read(&self.key("drills/active")).await?.value else { return Ok(None) };
        Ok(DrillSummary::fold(&self.drill_records(&RunId(drill)).await?).filter(|s| s.state.is_active()))
    }

    async fn prune_drills(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        let active = self.active_drill().await?.map(|s| s.header.id);
        let mut sweep = Sweep::new(keep, now_ms, active);
        let mut doomed_keys = Vec::new();
        let end = self.key("drills/starts0");
        let mut from = self.key("drills/starts/");
        'walk: loop {
            let range = GetOptions::new().with_range(end.as_str()).with_limit(SWEEP_PAGE as i64);
            let kvs = self.get(&from, range, "read the drill index").await?;
            let Some(last) = kvs.last() else { break };
            from = format!("{}\0", String::from_utf8_lossy(last.key()));
            for kv in &kvs {
                let start: RunStart =
                    serde_json::from_slice(kv.value()).map_err(|e| self.err_from("unreadable drill index entry", e))?;
                let before = sweep.doomed.len();
                if !sweep.consider(&start) {
                    break 'walk;
                }
                if sweep.doomed.len() > before {
                    doomed_keys.push(String::from_utf8_lossy(kv.key()).into_owned());
                }
            }
            if kvs.len() < SWEEP_PAGE {
                break;
            }
        }
        let pruned = sweep.finish();
        let doomed: Vec<(&RunId, &String)> = pruned.removed.iter().zip(&doomed_keys).collect();
        for batch in doomed.chunks(DELETES_PER_TXN) {
            let mut ops = Vec::new();
            for (drill, start_key) in batch {
                ops.push(TxnOp::delete(self.drill_prefix(drill), Some(DeleteOptions::new().with_prefix())));
                ops.push(TxnOp::delete(start_key.as_str(), None));
            }
            if !self.commit(Vec::new(), ops, None).await? {
                return Err(self.err("prune drills", "the transaction was refused"));
            }
        }
        Ok(pruned)
    }

    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError> {
        let key = self.key(&format!("drivers/{}", run.0));
        for _ in 0..CONFLICT_RETRIES {
            let current = self.read(&key).await?;
            if let Some(json) = &current.value {
                match serde_json::from_str::<Holder>(json) {
                    Ok(holder) if holder.alive(false) => {
                        return Err(StoreError::Driven { run: run.0.clone(), holder: holder.describe() });
                    }
                    Ok(holder) => {
                        tracing::warn!(run = %run, "taking over run {run} from {}, which is gone", holder.describe())
                    }
                    Err(e) => return Err(self.err_from(&format!("unreadable driver of run {run}"), e)),
                }
            }
            let holder = Holder::new_here(who);
            let json = serde_json::to_string(&holder).map_err(|e| self.err_from("encode", e))?;
            let (lease, keeper) = match self.driver_lease().await {
                Ok(lease) => lease,
                Err(e) => {
                    drivers::let_go(&holder.token);
                    return Err(e);
                }
            };
            let put = TxnOp::put(key.as_str(), json.as_str(), Some(etcd_client::PutOptions::new().with_lease(lease)));
            let won = self.commit(vec![Self::unchanged(&key, &current)], vec![put], Some((&key, &json))).await;
            if let Some(keeper) = keeper {
                self.kept.lock().unwrap_or_else(|p| p.into_inner()).insert(holder.token.clone(), (lease, keeper));
            }
            match won {
                Ok(true) => return Ok(DriverClaim { token: holder.token, forget: Some(drivers::let_go) }),
                // Another driver got in first: look again (it is likely alive).
                Ok(false) => {}
                Err(e) => {
                    drivers::let_go(&holder.token);
                    self.drop_driver_lease(&holder.token).await;
                    return Err(e);
                }
            }
            drivers::let_go(&holder.token);
            self.drop_driver_lease(&holder.token).await;
        }
        Err(self.err("claim the run", format!("gave up after {CONFLICT_RETRIES} conflicting writers")))
    }

    async fn release_run(&self, run: &RunId, claim: &DriverClaim) -> Result<(), StoreError> {
        drivers::let_go(&claim.token);
        let key = self.key(&format!("drivers/{}", run.0));
        let current = self.read(&key).await;
        let ours = match &current {
            Ok(read) => read
                .value
                .as_deref()
                .and_then(|json| serde_json::from_str::<Holder>(json).ok())
                .is_some_and(|h| h.token == claim.token),
            Err(_) => false,
        };
        let deleted = match current {
            // Not fenced: letting go is not a decision, and a deposed leader may still let go.
            Ok(read) if ours => {
                let txn = Txn::new()
                    .when(vec![Self::unchanged(&key, &read)])
                    .and_then(vec![TxnOp::delete(key.as_str(), None)]);
                self.client.txn(txn).await.map(|_| ()).map_err(|e| self.etcd("release the run", e))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        self.drop_driver_lease(&claim.token).await;
        deleted
    }

    async fn page(&self, request: &PageRequest) -> Result<RunsPage, StoreError> {
        self.ensure_indexed().await?;
        let from = match &request.before {
            // Keys after the cursor's own start key are the runs that began before it.
            Some(before) => format!("{}\0", self.start_key(self.start_seq(before).await?)),
            None => self.key("starts/"),
        };
        let mut starts = self.starts_from(&from, request.limit + 1).await?;
        let next = (starts.len() > request.limit).then(|| {
            starts.truncate(request.limit);
            starts[request.limit - 1].1.id.clone()
        });
        let ids: Vec<RunId> = starts.into_iter().map(|(_, s)| s.id).collect();
        Ok(RunsPage { runs: self.summaries(&ids).await?, next })
    }

    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        self.ensure_indexed().await?;
        let Some(run) = self.read(&self.key("active")).await?.value else { return Ok(None) };
        // A slot left by a run that has ended (its last write did not clear it) is free.
        Ok(RunSummary::fold(&self.run_entries(&RunId(run)).await?).filter(|s| s.state.is_active()))
    }

    async fn prune(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        self.ensure_indexed().await?;
        let active = self.active().await?.map(|s| s.header.id);
        let mut sweep = Sweep::new(keep, now_ms, active);
        let mut doomed_keys = Vec::new();
        let mut from = self.key("starts/");
        'walk: loop {
            let page = self.starts_from(&from, SWEEP_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            from = format!("{last}\0");
            let full = page.len() < SWEEP_PAGE;
            for (key, start) in page {
                let before = sweep.doomed.len();
                if !sweep.consider(&start) {
                    break 'walk;
                }
                if sweep.doomed.len() > before {
                    doomed_keys.push(key);
                }
            }
            if full {
                break;
            }
        }
        let pruned = sweep.finish();
        // A run's records and its start go together; a few runs to a transaction keep each
        // under etcd's limit on operations per transaction (128 by default).
        let doomed: Vec<(&RunId, &String)> = pruned.removed.iter().zip(&doomed_keys).collect();
        for batch in doomed.chunks(DELETES_PER_TXN) {
            let mut ops = Vec::new();
            for (run, start_key) in batch {
                ops.push(TxnOp::delete(self.run_prefix(run), Some(DeleteOptions::new().with_prefix())));
                ops.push(TxnOp::delete(start_key.as_str(), None));
            }
            if !self.commit(Vec::new(), ops, None).await? {
                return Err(self.err("prune", "the transaction was refused"));
            }
        }
        Ok(pruned)
    }
}

/// How many index entries one request of a retention sweep reads (about 100 bytes each).
const SWEEP_PAGE: usize = 500;
/// Runs deleted per transaction: two operations each.
const DELETES_PER_TXN: usize = 50;
/// Runs whose records one transaction reads for a page: well under 4 MiB of answer.
const RUNS_PER_READ: usize = 50;
/// Index entries written per transaction while an old journal is indexed.
const PUTS_PER_TXN: usize = 100;
/// Records read per request while an old journal is indexed.
const INDEX_PAGE: usize = 200;

// Drills: the runs' shape under `drills/`.
impl EtcdJournal {
    fn drill_prefix(&self, drill: &DrillId) -> String {
        format!("{}/drills/records/{}/", self.prefix, drill.0)
    }

    fn drill_start_key(&self, seq: u64) -> String {
        self.key(&format!("drills/starts/{:020}", u64::MAX - seq))
    }

    /// The sequence `drill` began at: its first record's key, read alone and without its value
    /// (a drill's report holds every canary sample).
    async fn drill_start_seq(&self, drill: &DrillId) -> Result<u64, StoreError> {
        let prefix = self.drill_prefix(drill);
        let range = GetOptions::new().with_prefix().with_limit(1).with_keys_only();
        let first = self.get(&prefix, range, "read the drill").await?;
        let key = first.first().ok_or_else(|| StoreError::UnknownDrill(drill.0.clone()))?;
        let key = String::from_utf8_lossy(key.key()).into_owned();
        key[prefix.len()..].parse().map_err(|_| self.err("read the drill", format!("unreadable record key {key}")))
    }

    async fn drill_records(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError> {
        let kvs = self.get(&self.drill_prefix(drill), GetOptions::new().with_prefix(), "read the drill").await?;
        kvs.iter()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| {
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    self.err_from(&format!("read the drill: unreadable record {key}"), e)
                })
            })
            .collect()
    }

    /// The drill's next record and the ops that store it after the sequence read as `seq`.
    fn next_drill_entry(
        &self,
        drill: &DrillId,
        record: &DrillRecord,
        seq: &Read,
    ) -> Result<(DrillEntry, Vec<TxnOp>, String, String), StoreError> {
        let next = seq.value.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        let entry = DrillEntry { seq: next, at_ms: now_ms(), record: record.clone() };
        let json = serde_json::to_string(&entry).map_err(|e| self.err_from("encode", e))?;
        let key = format!("{}{next:020}", self.drill_prefix(drill));
        let ops =
            vec![TxnOp::put(self.key("seq"), next.to_string(), None), TxnOp::put(key.as_str(), json.as_str(), None)];
        Ok((entry, ops, key, json))
    }
}

// A journal without a size cliff: the index of run starts, read a bounded range at a time.
impl EtcdJournal {
    fn start_key(&self, seq: u64) -> String {
        self.key(&format!("starts/{:020}", u64::MAX - seq))
    }

    fn put_start(&self, seq: u64, start: &RunStart) -> Result<TxnOp, StoreError> {
        let json = serde_json::to_string(start).map_err(|e| self.err_from("encode", e))?;
        Ok(TxnOp::put(self.start_key(seq), json, None))
    }

    async fn get(&self, key: &str, options: GetOptions, what: &str) -> Result<Vec<KeyValue>, StoreError> {
        let mut response = patiently(|| {
            let (client, options) = (&self.client, options.clone());
            async move { client.get(key, Some(options)).await }
        })
        .await
        .map_err(|e| self.etcd(what, e))?;
        Ok(response.take_kvs())
    }

    /// The sequence `run` began at: its first record's key, read alone and without its value.
    async fn start_seq(&self, run: &RunId) -> Result<u64, StoreError> {
        let prefix = self.run_prefix(run);
        let range = GetOptions::new().with_prefix().with_limit(1).with_keys_only();
        let first = self.get(&prefix, range, "read the journal").await?;
        let key = first.first().ok_or_else(|| StoreError::UnknownRun(run.0.clone()))?;
        let key = String::from_utf8_lossy(key.key()).into_owned();
        key[prefix.len()..].parse().map_err(|_| self.err("read the journal", format!("unreadable entry key {key}")))
    }

    /// At most `limit` run starts from key `from` on (newest first), with their keys.
    async fn starts_from(&self, from: &str, limit: usize) -> Result<Vec<(String, RunStart)>, StoreError> {
        let end = self.key("starts0"); // '0' follows '/': the end of the `starts/` range
        let range = GetOptions::new().with_range(end).with_limit(limit as i64);
        let kvs = self.get(from, range, "read the run index").await?;
        kvs.iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let start = serde_json::from_slice(kv.value())
                    .map_err(|e| self.err_from(&format!("unreadable run index entry {key}"), e))?;
                Ok((key, start))
            })
            .collect()
    }

    /// The summaries of `runs`, in that order, read a few runs to a transaction.
    async fn summaries(&self, runs: &[RunId]) -> Result<Vec<RunSummary>, StoreError> {
        let mut out = Vec::new();
        for batch in runs.chunks(RUNS_PER_READ) {
            let ops: Vec<TxnOp> = batch
                .iter()
                .map(|run| TxnOp::get(self.run_prefix(run), Some(GetOptions::new().with_prefix())))
                .collect();
            let txn = Txn::new().and_then(ops);
            let response = patiently(|| {
                let (client, txn) = (&self.client, txn.clone());
                async move { client.txn(txn).await }
            })
            .await
            .map_err(|e| self.etcd("read the journal", e))?;
            for answer in response.op_responses() {
                let TxnOpResponse::Get(got) = answer else { continue };
                let entries = got.kvs().iter().map(|kv| self.decode(kv)).collect::<Result<Vec<_>, _>>()?;
                out.extend(RunSummary::fold(&entries));
            }
        }
        Ok(out)
    }

    fn decode(&self, kv: &KeyValue) -> Result<Entry, StoreError> {
        serde_json::from_slice(kv.value()).map_err(|e| {
            let key = String::from_utf8_lossy(kv.key());
            StoreError::io_from(format!("etcd {}: read the journal: unreadable entry {key}: {e}", self.endpoints), e)
        })
    }

    /// A journal written before the index (no `indexed` key): every run gets its start
    /// and an active run without the pointer gets it, reading the records a bounded page
    /// at a time. Once per journal; a second process doing it at once writes the same.
    async fn ensure_indexed(&self) -> Result<(), StoreError> {
        if self.indexed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let marker = self.key("indexed");
        if self.read(&marker).await?.value.is_none() {
            let runs = self.key("runs/");
            let end = self.key("runs0");
            let mut from = runs.clone();
            let mut current: Option<(String, Vec<Entry>)> = None;
            let mut puts = Vec::new();
            loop {
                let range = GetOptions::new().with_range(end.as_str()).with_limit(INDEX_PAGE as i64);
                let kvs = self.get(&from, range, "index the journal").await?;
                for kv in &kvs {
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    let run = key[runs.len()..].split('/').next().unwrap_or_default().to_string();
                    let entry = self.decode(kv)?;
                    match &mut current {
                        Some((id, entries)) if *id == run => entries.push(entry),
                        _ => {
                            if let Some((_, entries)) = current.replace((run, vec![entry])) {
                                self.index_run(&entries, &mut puts).await?;
                            }
                        }
                    }
                }
                match kvs.last() {
                    Some(last) if kvs.len() == INDEX_PAGE => {
                        from = format!("{}\0", String::from_utf8_lossy(last.key()))
                    }
                    _ => break,
                }
            }
            if let Some((_, entries)) = current {
                self.index_run(&entries, &mut puts).await?;
            }
            puts.push(TxnOp::put(marker.as_str(), "1", None));
            self.commit(Vec::new(), puts, None).await?;
        }
        self.indexed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Indexes one run of an old journal into `puts` (written a transaction's worth at a
    /// time); points the active slot at it if it is active and the slot is empty.
    async fn index_run(&self, entries: &[Entry], puts: &mut Vec<TxnOp>) -> Result<(), StoreError> {
        let Some(summary) = RunSummary::fold(entries) else { return Ok(()) };
        puts.push(self.put_start(entries[0].seq, &RunStart::of(&summary))?);
        if puts.len() >= PUTS_PER_TXN {
            self.commit(Vec::new(), std::mem::take(puts), None).await?;
        }
        if summary.state.is_active() {
            let active = self.key("active");
            let absent = Compare::version(active.as_str(), CompareOp::Equal, 0);
            self.commit(vec![absent], vec![TxnOp::put(active.as_str(), summary.header.id.0.as_str(), None)], None)
                .await?;
        }
        Ok(())
    }
}
