//! The journal and the epoch, as the engine needs them. redb and etcd implement this.

use async_trait::async_trait;

use crate::drill_log::{DrillEntry, DrillHeader, DrillId, DrillRecord, DrillSummary, DrillsPage};
use crate::error::StoreError;
use crate::history::{Keep, PageRequest, Pruned, RunsPage};
use crate::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary};
use crate::world::{Capacity, Units, WHOLE};

/// The last capacity seen of a compute resource in one region, unit by unit, with when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "NoteOnDisk")]
pub struct CapacitySeen {
    pub units: Units,
    pub at_ms: u64,
}

/// A note as stored: before units, a note held one `capacity` (a whole resource).
#[derive(serde::Deserialize)]
struct NoteOnDisk {
    #[serde(default)]
    units: Units,
    capacity: Option<Capacity>,
    at_ms: u64,
}

impl From<NoteOnDisk> for CapacitySeen {
    fn from(note: NoteOnDisk) -> CapacitySeen {
        let mut units = note.units;
        if let Some(capacity) = note.capacity {
            units.insert(WHOLE.to_owned(), capacity);
        }
        CapacitySeen { units, at_ms: note.at_ms }
    }
}

/// A run held by one driver (`Journal::claim_run`): what lets it go again.
#[derive(Clone, Debug)]
pub struct DriverClaim {
    /// Unique to this claim: a release lets go only the claim it names.
    pub token: String,
    /// Tells the store, without I/O, that this process no longer holds the claim: called
    /// when the claim is dropped unreleased (a drive that panicked, a future dropped), so
    /// the run is not held by a driver that no longer exists.
    pub forget: Option<fn(&str)>,
}

#[async_trait]
pub trait Journal: Send + Sync {
    /// Starts a run: writes its `Started` record. Fails with `ActiveRun` when
    /// another run is running or paused, atomically with the write.
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError>;

    /// Appends one record to a run and returns it as stored.
    async fn append(&self, run: &RunId, record: Record) -> Result<Entry, StoreError>;

    /// A run's records, oldest first.
    async fn entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError>;

    /// The current epoch (0 before any promotion).
    async fn epoch(&self) -> Result<Epoch, StoreError>;

    /// Sets the epoch to `new` if it is `expected`; otherwise returns the epoch found.
    async fn compare_and_swap_epoch(&self, expected: Epoch, new: Epoch) -> Result<Result<(), Epoch>, StoreError>;

    /// Keeps the capacity just seen of `resource` in `region`, replacing the last one: a
    /// failover sizes the new primary region from it when the old one can no longer be
    /// read. An observation, not a decision: never fenced.
    async fn note_capacity(&self, resource: &str, region: &str, seen: CapacitySeen) -> Result<(), StoreError>;

    /// The capacity last noted of `resource` in `region`, if any.
    async fn noted_capacity(&self, resource: &str, region: &str) -> Result<Option<CapacitySeen>, StoreError>;

    // One driver per run. A run is driven by whoever holds its claim; a second driver (a
    // resume beside a running daemon, two approvals, an API call beside the CLI) would do
    // each step and each notification twice. A claim dies with its holder — the process
    // (redb: checked by its PID and start time) or the etcd lease (the leader's, or one the
    // process keeps alive) — so a run whose driver crashed is taken over, not stuck.

    /// Takes run `run` for one driver, `who` in words for a person ("the east daemon").
    /// Refused with `StoreError::Driven`, naming the holder, while another live driver
    /// holds it; a claim whose holder is gone is replaced.
    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError>;

    /// Lets go of `claim` on `run`; a claim that is no longer there (or another's) is left.
    async fn release_run(&self, run: &RunId, claim: &DriverClaim) -> Result<(), StoreError>;

    async fn summary(&self, run: &RunId) -> Result<RunSummary, StoreError> {
        let entries = self.entries(run).await?;
        RunSummary::fold(&entries).ok_or_else(|| StoreError::UnknownRun(run.0.clone()))
    }

    // A journal without a size cliff (see `crate::history`): no call below reads every run.

    /// One page of runs, newest first (in the order they began).
    async fn page(&self, request: &PageRequest) -> Result<RunsPage, StoreError>;

    /// The active run (running, paused or awaiting approval), found by its own key.
    async fn active(&self) -> Result<Option<RunSummary>, StoreError>;

    /// Removes at most one batch of the ended runs `keep` does not keep, oldest due first
    /// judged newest first (`history::Sweep`); `now_ms` comes from the caller's clock.
    async fn prune(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError>;

    // Drills, journaled like runs (`crate::drill_log`), in a key space of their own: the
    // same store, so a drill and the runs it drove are found and kept together.

    /// Starts a drill: writes its `Started` record. Fails with `ActiveDrill` when another
    /// drill is unfinished, atomically with the write.
    async fn begin_drill(&self, header: &DrillHeader) -> Result<DrillEntry, StoreError>;

    /// Appends one record to a drill (checked by `drill_log::check_drill_appendable`);
    /// `Ended` frees the drill slot in the same write.
    async fn append_drill(&self, drill: &DrillId, record: DrillRecord) -> Result<DrillEntry, StoreError>;

    /// A drill's records, oldest first.
    async fn drill_entries(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError>;

    async fn drill(&self, drill: &DrillId) -> Result<DrillSummary, StoreError> {
        let entries = self.drill_entries(drill).await?;
        DrillSummary::fold(&entries).ok_or_else(|| StoreError::UnknownDrill(drill.0.clone()))
    }

    /// One page of drills, newest first (in the order they began).
    async fn drill_page(&self, request: &PageRequest) -> Result<DrillsPage, StoreError>;

    /// The unfinished drill, if any, found by its own key: what `drill resume|abort` acts on.
    async fn active_drill(&self) -> Result<Option<DrillSummary>, StoreError>;

    /// Removes at most one batch of the ended drills `keep` does not keep (the same
    /// judgement as runs', `history::Sweep`: the newest drill and the unfinished one stay).
    async fn prune_drills(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::CapacitySeen;

    #[test]
    fn a_note_written_before_units_reads_as_one_whole_unit() {
        let old = r#"{"capacity":{"desired":3,"min":1,"max":6,"ready":3},"at_ms":7}"#;
        let seen: CapacitySeen = serde_json::from_str(old).unwrap();
        assert_eq!((seen.units[""].desired, seen.at_ms), (3, 7));
        let again: CapacitySeen = serde_json::from_str(&serde_json::to_string(&seen).unwrap()).unwrap();
        assert_eq!(again, seen);
    }
}
