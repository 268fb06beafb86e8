//! The journal and the epoch, as the engine needs them. redb and etcd implement this.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary};

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

    /// The active run, if any.
    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.runs().await?.into_iter().find(|r| r.state.is_active()))
    }

    async fn summary(&self, run: &RunId) -> Result<RunSummary, StoreError> {
        let entries = self.entries(run).await?;
        RunSummary::fold(&entries).ok_or_else(|| StoreError::UnknownRun(run.0.clone()))
    }
}
