use std::path::{Path, PathBuf};

use crate::drivers::{self, Holder};
use async_trait::async_trait;
use drover_core::StoreError;
use drover_core::clock::now_ms;
use drover_core::journal::{CapacitySeen, DriverClaim, Journal};
use drover_core::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary, check_appendable, fold_runs};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (run id, sequence) → one journal entry as JSON.
const ENTRIES: TableDefinition<(&str, u64), &str> = TableDefinition::new("entries");
/// "epoch" → the current epoch; "seq" → the last sequence number given out.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (compute resource, region) → the capacity last seen there, as JSON.
const CAPACITY: TableDefinition<(&str, &str), &str> = TableDefinition::new("capacity");
/// run id → who drives it (`drivers::Holder` as JSON).
const DRIVERS: TableDefinition<&str, &str> = TableDefinition::new("drivers");

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

    /// All runs folded from a table view, newest first.
    fn fold_runs(
        &self,
        table: &impl ReadableTable<(&'static str, u64), &'static str>,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut entries = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            entries.push((key.value().0.to_string(), self.decode(value.value())?));
        }
        Ok(fold_runs(entries))
    }
}

#[async_trait]
impl Journal for RedbJournal {
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        // The active-run check and the write share one transaction: two starts cannot both win.
        {
            let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            if let Some(active) = self.fold_runs(&table)?.into_iter().find(|r| r.state.is_active()) {
                return Err(StoreError::ActiveRun { active: active.header.id.0 });
            }
        }
        let entry = self.append_in(&tx, &header.id, Record::Started { header: header.clone() })?;
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

    async fn runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        self.fold_runs(&table)
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

    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let holder = {
            let mut drivers = tx.open_table(DRIVERS).map_err(|e| self.err(e))?;
            // Read and written in one write transaction: two claims cannot both see it free.
            if let Some(json) = drivers.get(run.0.as_str()).map_err(|e| self.err(e))? {
                let current: Holder = serde_json::from_str(json.value())
                    .map_err(|e| io(&self.path, format!("unreadable driver of run {run}: {e}"), e))?;
                if current.alive() {
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
        Ok(DriverClaim { token: holder.token })
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
