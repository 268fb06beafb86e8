use std::path::{Path, PathBuf};

use crate::drivers::{self, Holder};
use async_trait::async_trait;
use drover_core::StoreError;
use drover_core::clock::now_ms;
use drover_core::drill_log::{
    DrillEntry, DrillHeader, DrillId, DrillRecord, DrillSummary, DrillsPage, check_drill_appendable,
};
use drover_core::history::{Keep, PageRequest, Pruned, RunStart, RunsPage, Sweep};
use drover_core::journal::{CapacitySeen, DriverClaim, Journal};
use drover_core::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary, check_appendable};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (run id, sequence) → one journal entry as JSON.
const ENTRIES: TableDefinition<(&str, u64), &str> = TableDefinition::new("entries");
/// "epoch" → the current epoch; "seq" → the last sequence number given out.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (compute resource, region) → the capacity last seen there, as JSON.
const CAPACITY: TableDefinition<(&str, &str), &str> = TableDefinition::new("capacity");
/// run id → who drives it (`drivers::Holder` as JSON).
const DRIVERS: TableDefinition<&str, &str> = TableDefinition::new("drivers");
/// The sequence of a run's `Started` entry → the run's `RunStart` as JSON: runs in the
/// order they began, so a page or a retention sweep reads only the runs it needs.
const STARTS: TableDefinition<u64, &str> = TableDefinition::new("starts");
/// "active" → the id of the run holding the active slot (absent: none).
const POINTERS: TableDefinition<&str, &str> = TableDefinition::new("pointers");
/// (drill id, sequence) → one drill record as JSON (`drill_log::DrillEntry`).
const DRILL_ENTRIES: TableDefinition<(&str, u64), &str> = TableDefinition::new("drill_entries");
/// The sequence of a drill's `Started` entry → its start (`RunStart` as JSON): drills in
/// the order they began, for pages and retention.
const DRILL_STARTS: TableDefinition<u64, &str> = TableDefinition::new("drill_starts");
/// The POINTERS key naming the unfinished drill.
const ACTIVE_DRILL: &str = "active_drill";
/// The META key set once `STARTS` and `POINTERS` hold every run of the file.
const INDEXED: &str = "indexed";

/// The journal in one redb file (`journal.redb` under the state directory).
/// Every append is its own durable transaction: an entry that was returned is on disk.
pub struct RedbJournal {
    db: Database,
    path: PathBuf,
}

/// The journal file failed with `source`; `message` says how, for a person.
fn io(
    path: &Path,
    message: impl std::fmt::Display,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::io_from(format!("{}: {message}", path.display()), source)
}

impl RedbJournal {
    /// Opens (or creates) `DIR/journal.redb`, creating DIR if needed.
    pub fn open(state_dir: &Path) -> Result<RedbJournal, StoreError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| io(state_dir, format!("cannot create state directory: {e}"), e))?;
        let path = state_dir.join("journal.redb");
        // Several drover processes may share a state directory (a run, and `status` or
        // `runs` beside it); redb serializes their write transactions, and the
        // active-run check inside `begin` keeps a second run out.
        let db = redb::Builder::new().set_concurrency_mode(ConcurrencyMode::MultiWriter).create(&path).map_err(|e| {
            io(&path, format!("cannot open the journal ({e}); check that the state directory is writable and the file is a drover journal"), e)
        })?;
        let journal = RedbJournal { db, path };
        let tx = journal.db.begin_write().map_err(|e| journal.err(e))?;
        tx.open_table(ENTRIES).map_err(|e| journal.err(e))?;
        tx.open_table(META).map_err(|e| journal.err(e))?;
        tx.open_table(CAPACITY).map_err(|e| journal.err(e))?;
        tx.open_table(DRIVERS).map_err(|e| journal.err(e))?;
        tx.open_table(DRILL_ENTRIES).map_err(|e| journal.err(e))?;
        tx.open_table(DRILL_STARTS).map_err(|e| journal.err(e))?;
        tx.open_table(POINTERS).map_err(|e| journal.err(e))?;
        journal.index_once(&tx)?;
        tx.commit().map_err(|e| journal.err(e))?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        io(&self.path, e.to_string(), e)
    }

    fn decode(&self, json: &str) -> Result<Entry, StoreError> {
        serde_json::from_str(json).map_err(|e| io(&self.path, format!("unreadable journal entry: {e}"), e))
    }

    /// Appends inside an open write transaction.
    fn append_in(&self, tx: &redb::WriteTransaction, run: &RunId, record: Record) -> Result<Entry, StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let seq = meta.get("seq").map_err(|e| self.err(e))?.map(|v| v.value()).unwrap_or(0) + 1;
        meta.insert("seq", seq).map_err(|e| self.err(e))?;
        let entry = Entry { seq, at_ms: now_ms(), record };
        let json = serde_json::to_string(&entry).map_err(|e| self.err(e))?;
        tx.open_table(ENTRIES)
            .map_err(|e| self.err(e))?
            .insert((run.0.as_str(), seq), json.as_str())
            .map_err(|e| self.err(e))?;
        Ok(entry)
    }

    /// One run's entries, oldest first (empty when there is no such run).
    fn run_entries(
        &self,
        table: &impl ReadableTable<(&'static str, u64), &'static str>,
        run: &RunId,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for item in table.range((run.0.as_str(), 0)..=(run.0.as_str(), u64::MAX)).map_err(|e| self.err(e))? {
            let (_, value) = item.map_err(|e| self.err(e))?;
            out.push(self.decode(value.value())?);
        }
        Ok(out)
    }
}

// A journal without a size cliff: the index of run starts and the active pointer.
impl RedbJournal {
    /// A file written before the index (no `indexed` mark): every run is indexed and the
    /// active run pointed at, once, in the transaction that opens it.
    fn index_once(&self, tx: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        if meta.get(INDEXED).map_err(|e| self.err(e))?.is_some() {
            return Ok(());
        }
        let mut runs: Vec<(String, Vec<Entry>)> = Vec::new();
        for item in tx.open_table(ENTRIES).map_err(|e| self.err(e))?.iter().map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let (run, entry) = (key.value().0.to_string(), self.decode(value.value())?);
            match runs.last_mut() {
                Some((id, group)) if *id == run => group.push(entry),
                _ => runs.push((run, vec![entry])),
            }
        }
        let mut starts = tx.open_table(STARTS).map_err(|e| self.err(e))?;
        let mut pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
        for (_, entries) in &runs {
            let Some(summary) = RunSummary::fold(entries) else { continue };
            starts.insert(entries[0].seq, self.encode_start(&summary)?.as_str()).map_err(|e| self.err(e))?;
            if summary.state.is_active() {
                pointers.insert("active", summary.header.id.0.as_str()).map_err(|e| self.err(e))?;
            }
        }
        meta.insert(INDEXED, 1).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn encode_start(&self, summary: &RunSummary) -> Result<String, StoreError> {
        serde_json::to_string(&RunStart::of(summary)).map_err(|e| self.err(e))
    }

    fn decode_start(&self, json: &str) -> Result<RunStart, StoreError> {
        serde_json::from_str(json).map_err(|e| io(&self.path, format!("unreadable run index entry: {e}"), e))
    }

    /// The run the active pointer names, if it is still active (a run ended by a writer
    /// that did not clear the pointer frees the slot).
    fn active_in(
        &self,
        pointers: &impl ReadableTable<&'static str, &'static str>,
        entries: &impl ReadableTable<(&'static str, u64), &'static str>,
    ) -> Result<Option<RunSummary>, StoreError> {
        let Some(id) = pointers.get("active").map_err(|e| self.err(e))?.map(|v| RunId(v.value().to_string())) else {
            return Ok(None);
        };
        Ok(RunSummary::fold(&self.run_entries(entries, &id)?).filter(|s| s.state.is_active()))
    }

    /// The sequence a run began at: its first entry's.
    fn start_seq(
        &self,
        entries: &impl ReadableTable<(&'static str, u64), &'static str>,
        run: &RunId,
    ) -> Result<u64, StoreError> {
        let mut range = entries.range((run.0.as_str(), 0)..=(run.0.as_str(), u64::MAX)).map_err(|e| self.err(e))?;
        match range.next() {
            Some(item) => Ok(item.map_err(|e| self.err(e))?.0.value().1),
            None => Err(StoreError::UnknownRun(run.0.clone())),
        }
    }
}

// Drills: their own tables, the same sequence and the same index-and-pointer shape as runs.
impl RedbJournal {
    fn decode_drill(&self, json: &str) -> Result<DrillEntry, StoreError> {
        serde_json::from_str(json).map_err(|e| io(&self.path, format!("unreadable drill record: {e}"), e))
    }

    fn append_drill_in(
        &self,
        tx: &redb::WriteTransaction,
        drill: &DrillId,
        record: DrillRecord,
    ) -> Result<DrillEntry, StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let seq = meta.get("seq").map_err(|e| self.err(e))?.map(|v| v.value()).unwrap_or(0) + 1;
        meta.insert("seq", seq).map_err(|e| self.err(e))?;
        let entry = DrillEntry { seq, at_ms: now_ms(), record };
        let json = serde_json::to_string(&entry).map_err(|e| self.err(e))?;
        tx.open_table(DRILL_ENTRIES)
            .map_err(|e| self.err(e))?
            .insert((drill.0.as_str(), seq), json.as_str())
            .map_err(|e| self.err(e))?;
        Ok(entry)
    }

    fn drill_records(
        &self,
        table: &impl ReadableTable<(&'static str, u64), &'static str>,
        drill: &DrillId,
    ) -> Result<Vec<DrillEntry>, StoreError> {
        let mut out = Vec::new();
        for item in table.range((drill.0.as_str(), 0)..=(drill.0.as_str(), u64::MAX)).map_err(|e| self.err(e))? {
            let (_, value) = item.map_err(|e| self.err(e))?;
            out.push(self.decode_drill(value.value())?);
        }
        Ok(out)
    }

    /// The drill the pointer names, if it is still unfinished.
    fn active_drill_in(
        &self,
        pointers: &impl ReadableTable<&'static str, &'static str>,
        entries: &impl ReadableTable<(&'static str, u64), &'static str>,
    ) -> Result<Option<DrillSummary>, StoreError> {
        let Some(id) = pointers.get(ACTIVE_DRILL).map_err(|e| self.err(e))?.map(|v| RunId(v.value().to_string()))
        else {
            return Ok(None);
        };
        Ok(DrillSummary::fold(&self.drill_records(entries, &id)?).filter(|s| s.state.is_active()))
    }
}

#[async_trait]
impl Journal for RedbJournal {
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        // The active-run check and the write share one transaction: two starts cannot both win.
        {
            let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            if let Some(active) = self.active_in(&pointers, &table)? {
                return Err(StoreError::ActiveRun { active: active.header.id.0 });
            }
        }
        let entry = self.append_in(&tx, &header.id, Record::Started { header: header.clone() })?;
        // The index entry and the active pointer land with the Started entry, or not at all.
        let start = RunStart { id: header.id.clone(), kind: header.kind, started_ms: entry.at_ms };
        let json = serde_json::to_string(&start).map_err(|e| self.err(e))?;
        tx.open_table(STARTS).map_err(|e| self.err(e))?.insert(entry.seq, json.as_str()).map_err(|e| self.err(e))?;
        tx.open_table(POINTERS)
            .map_err(|e| self.err(e))?
            .insert("active", header.id.0.as_str())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(entry)
    }

    async fn append(&self, run: &RunId, record: Record) -> Result<Entry, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        // Checked inside the write transaction, so nothing can end the run in between.
        {
            let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            check_appendable(run, &self.run_entries(&table, run)?, &record)?;
        }
        if matches!(record, Record::Completed | Record::Aborted { .. }) {
            // Ending the run frees the active slot, in the same transaction.
            let mut pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            let mine = pointers.get("active").map_err(|e| self.err(e))?.is_some_and(|v| v.value() == run.0);
            if mine {
                pointers.remove("active").map_err(|e| self.err(e))?;
            }
        }
        let entry = self.append_in(&tx, run, record)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(entry)
    }

    async fn entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let out = self.run_entries(&table, run)?;
        if out.is_empty() {
            return Err(StoreError::UnknownRun(run.0.clone()));
        }
        Ok(out)
    }

    async fn epoch(&self) -> Result<Epoch, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        Ok(meta.get("epoch").map_err(|e| self.err(e))?.map(|v| v.value()).unwrap_or(0))
    }

    async fn compare_and_swap_epoch(&self, expected: Epoch, new: Epoch) -> Result<Result<(), Epoch>, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let current = meta.get("epoch").map_err(|e| self.err(e))?.map(|v| v.value()).unwrap_or(0);
            if current != expected {
                return Ok(Err(current));
            }
            meta.insert("epoch", new).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    async fn note_capacity(&self, resource: &str, region: &str, seen: CapacitySeen) -> Result<(), StoreError> {
        let json = serde_json::to_string(&seen).map_err(|e| self.err(e))?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(CAPACITY)
            .map_err(|e| self.err(e))?
            .insert((resource, region), json.as_str())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    async fn noted_capacity(&self, resource: &str, region: &str) -> Result<Option<CapacitySeen>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(CAPACITY).map_err(|e| self.err(e))?;
        let Some(json) = table.get((resource, region)).map_err(|e| self.err(e))? else { return Ok(None) };
        serde_json::from_str(json.value())
            .map(Some)
            .map_err(|e| io(&self.path, format!("unreadable capacity note: {e}"), e))
    }

    async fn page(&self, request: &PageRequest) -> Result<RunsPage, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let entries = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let starts = tx.open_table(STARTS).map_err(|e| self.err(e))?;
        let below = match &request.before {
            Some(before) => self.start_seq(&entries, before)?,
            None => u64::MAX,
        };
        let mut runs = Vec::new();
        let mut next = None;
        for item in starts.range(..below).map_err(|e| self.err(e))?.rev() {
            let (_, value) = item.map_err(|e| self.err(e))?;
            let start = self.decode_start(value.value())?;
            if runs.len() == request.limit {
                next = runs.last().map(|r: &RunSummary| r.header.id.clone());
                break;
            }
            runs.extend(RunSummary::fold(&self.run_entries(&entries, &start.id)?));
        }
        Ok(RunsPage { runs, next })
    }

    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let entries = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
        self.active_in(&pointers, &entries)
    }

    async fn prune(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        // One write transaction: nothing begins or ends between the judgement and the removal.
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut doomed_seqs = Vec::new();
        let pruned = {
            let entries = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            let active = self.active_in(&pointers, &entries)?.map(|s| s.header.id);
            let starts = tx.open_table(STARTS).map_err(|e| self.err(e))?;
            let mut sweep = Sweep::new(keep, now_ms, active);
            for item in starts.iter().map_err(|e| self.err(e))?.rev() {
                let (seq, value) = item.map_err(|e| self.err(e))?;
                let start = self.decode_start(value.value())?;
                let before = sweep.doomed.len();
                if !sweep.consider(&start) {
                    break;
                }
                if sweep.doomed.len() > before {
                    doomed_seqs.push(seq.value());
                }
            }
            sweep.finish()
        };
        if pruned.removed.is_empty() {
            return Ok(pruned);
        }
        {
            let mut entries = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let mut starts = tx.open_table(STARTS).map_err(|e| self.err(e))?;
            for (run, seq) in pruned.removed.iter().zip(&doomed_seqs) {
                let id = run.0.as_str();
                entries.retain_in((id, 0)..=(id, u64::MAX), |_, _| false).map_err(|e| self.err(e))?;
                starts.remove(*seq).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(pruned)
    }

    async fn begin_drill(&self, header: &DrillHeader) -> Result<DrillEntry, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        // The unfinished-drill check and the write share one transaction.
        {
            let entries = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
            let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            if let Some(active) = self.active_drill_in(&pointers, &entries)? {
                return Err(StoreError::ActiveDrill { active: active.header.id.0 });
            }
        }
        let entry = self.append_drill_in(&tx, &header.id, DrillRecord::Started { header: header.clone() })?;
        let json = serde_json::to_string(&RunStart::of_drill(header, entry.at_ms)).map_err(|e| self.err(e))?;
        tx.open_table(DRILL_STARTS)
            .map_err(|e| self.err(e))?
            .insert(entry.seq, json.as_str())
            .map_err(|e| self.err(e))?;
        tx.open_table(POINTERS)
            .map_err(|e| self.err(e))?
            .insert(ACTIVE_DRILL, header.id.0.as_str())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(entry)
    }

    async fn append_drill(&self, drill: &DrillId, record: DrillRecord) -> Result<DrillEntry, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let table = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
            check_drill_appendable(drill, &self.drill_records(&table, drill)?, &record)?;
        }
        if matches!(record, DrillRecord::Ended { .. }) {
            let mut pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            let mine = pointers.get(ACTIVE_DRILL).map_err(|e| self.err(e))?.is_some_and(|v| v.value() == drill.0);
            if mine {
                pointers.remove(ACTIVE_DRILL).map_err(|e| self.err(e))?;
            }
        }
        let entry = self.append_drill_in(&tx, drill, record)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(entry)
    }

    async fn drill_entries(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
        let out = self.drill_records(&table, drill)?;
        if out.is_empty() {
            return Err(StoreError::UnknownDrill(drill.0.clone()));
        }
        Ok(out)
    }

    async fn drill_page(&self, request: &PageRequest) -> Result<DrillsPage, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let entries = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
        let starts = tx.open_table(DRILL_STARTS).map_err(|e| self.err(e))?;
        let below = match &request.before {
            Some(before) => match self.drill_records(&entries, before)?.first() {
                Some(first) => first.seq,
                None => return Err(StoreError::UnknownDrill(before.0.clone())),
            },
            None => u64::MAX,
        };
        let mut drills = Vec::new();
        let mut next = None;
        for item in starts.range(..below).map_err(|e| self.err(e))?.rev() {
            let (_, value) = item.map_err(|e| self.err(e))?;
            let start = self.decode_start(value.value())?;
            if drills.len() == request.limit {
                next = drills.last().map(|d: &DrillSummary| d.header.id.clone());
                break;
            }
            drills.extend(DrillSummary::fold(&self.drill_records(&entries, &start.id)?));
        }
        Ok(DrillsPage { drills, next })
    }

    async fn active_drill(&self) -> Result<Option<DrillSummary>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let entries = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
        let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
        self.active_drill_in(&pointers, &entries)
    }

    async fn prune_drills(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut doomed_seqs = Vec::new();
        let pruned = {
            let entries = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
            let pointers = tx.open_table(POINTERS).map_err(|e| self.err(e))?;
            let active = self.active_drill_in(&pointers, &entries)?.map(|s| s.header.id);
            let starts = tx.open_table(DRILL_STARTS).map_err(|e| self.err(e))?;
            let mut sweep = Sweep::new(keep, now_ms, active);
            for item in starts.iter().map_err(|e| self.err(e))?.rev() {
                let (seq, value) = item.map_err(|e| self.err(e))?;
                let before = sweep.doomed.len();
                if !sweep.consider(&self.decode_start(value.value())?) {
                    break;
                }
                if sweep.doomed.len() > before {
                    doomed_seqs.push(seq.value());
                }
            }
            sweep.finish()
        };
        if pruned.removed.is_empty() {
            return Ok(pruned);
        }
        {
            let mut entries = tx.open_table(DRILL_ENTRIES).map_err(|e| self.err(e))?;
            let mut starts = tx.open_table(DRILL_STARTS).map_err(|e| self.err(e))?;
            for (drill, seq) in pruned.removed.iter().zip(&doomed_seqs) {
                let id = drill.0.as_str();
                entries.retain_in((id, 0)..=(id, u64::MAX), |_, _| false).map_err(|e| self.err(e))?;
                starts.remove(*seq).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(pruned)
    }

    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let holder = {
            let mut drivers = tx.open_table(DRIVERS).map_err(|e| self.err(e))?;
            // Read and written in one write transaction: two claims cannot both see it free.
            if let Some(json) = drivers.get(run.0.as_str()).map_err(|e| self.err(e))? {
                let current: Holder = serde_json::from_str(json.value())
                    .map_err(|e| io(&self.path, format!("unreadable driver of run {run}: {e}"), e))?;
                // A redb journal is one host's: a holder naming another host is a recreated container.
                if current.alive(true) {
                    return Err(StoreError::Driven { run: run.0.clone(), holder: current.describe() });
                }
                tracing::warn!(run = %run, "taking over run {run} from {}, which is gone", current.describe());
            }
            let holder = Holder::new_here(who);
            let json = serde_json::to_string(&holder).map_err(|e| self.err(e))?;
            drivers.insert(run.0.as_str(), json.as_str()).map_err(|e| self.err(e))?;
            holder
        };
        if let Err(e) = tx.commit() {
            drivers::let_go(&holder.token);
            return Err(self.err(e));
        }
        Ok(DriverClaim { token: holder.token, forget: Some(drivers::let_go) })
    }

    async fn release_run(&self, run: &RunId, claim: &DriverClaim) -> Result<(), StoreError> {
        drivers::let_go(&claim.token);
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut drivers = tx.open_table(DRIVERS).map_err(|e| self.err(e))?;
            let ours = match drivers.get(run.0.as_str()).map_err(|e| self.err(e))? {
                Some(json) => serde_json::from_str::<Holder>(json.value()).is_ok_and(|h| h.token == claim.token),
                None => false,
            };
            if ours {
                drivers.remove(run.0.as_str()).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim left by a process that has ended (a CLI killed mid-run) is taken over.
    #[tokio::test]
    async fn a_claim_whose_process_ended_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let journal = RedbJournal::open(dir.path()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Holder { token: "t".into(), who: "the CLI".into(), pid, started: 1, host: String::new() };
        let mut live = gone.clone();
        live.host = Holder::new_here("me").host;
        let tx = journal.db.begin_write().unwrap();
        let json = serde_json::to_string(&live).unwrap();
        tx.open_table(DRIVERS).unwrap().insert("r1", json.as_str()).unwrap();
        tx.commit().unwrap();
        let run = RunId("r1".into());
        let claim = journal.claim_run(&run, "the east daemon").await.expect("the ended process's claim is replaced");
        let refused = journal.claim_run(&run, "the CLI").await;
        assert!(
            matches!(&refused, Err(StoreError::Driven { holder, .. }) if holder.starts_with("the east daemon (pid")),
            "{refused:?}"
        );
        journal.release_run(&run, &claim).await.unwrap();
        journal.claim_run(&run, "the CLI").await.expect("free once released");
    }
}
