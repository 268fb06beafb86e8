//! The journal and the epoch, as the engine needs them. redb and etcd implement this.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary};
use crate::world::Capacity;

/// The last capacity seen of a compute resource in one region, with when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapacitySeen {
    pub capacity: Capacity,
    pub at_ms: u64,
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

    /// Every run, newest first.
    async fn runs(&self) -> Result<Vec<RunSummary>, StoreError>;

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

    /// The active run, if any.
    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.runs().await?.into_iter().find(|r| r.state.is_active()))
    }

    async fn summary(&self, run: &RunId) -> Result<RunSummary, StoreError> {
        let entries = self.entries(run).await?;
        RunSummary::fold(&entries).ok_or_else(|| StoreError::UnknownRun(run.0.clone()))
    }
}
