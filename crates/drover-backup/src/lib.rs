//! Backups of a Kubernetes cluster's resources to object storage (a local directory, S3
//! or any S3-compatible store), and restores of them in dependency order. The format is
//! an index plus content-addressed, compressed objects: docs/backup.md.

pub mod backup;
pub mod check;
pub mod cluster;
pub mod format;
pub mod lock;
pub mod restore;
pub mod retention;
#[cfg(feature = "testing")]
pub mod standin;
pub mod store;

pub use backup::{BackupReport, BackupRequest, create_backup};
pub use check::VerifyReport;
pub use cluster::{ClusterApi, ClusterError, ResourceKind};
pub use format::{Entry, Index, SecretKey};
pub use lock::StoreLock;
pub use restore::{Existing, Outcome, RestoreReport, RestoreRequest, restore, restore_progress_name};
pub use retention::Keep;
pub use store::BackupStore;

/// Called with a line for a person while a long backup or restore goes on.
pub type OnProgress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Reports `line` through `progress`, if there is one.
pub(crate) fn report(progress: &Option<OnProgress>, line: impl FnOnce() -> String) {
    if let Some(progress) = progress {
        progress(&line());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("corrupt backup object: {0}")]
    Corrupt(String),
    #[error("encryption key: {0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
    /// The store holds no backup with that id.
    #[error("{0}")]
    NoBackup(String),
    /// The store's lock is held by another backup or retention (or was taken from us).
    #[error("{0}")]
    Busy(String),
    /// A backup whose objects are not what its index says: nothing was applied.
    #[error("{0}")]
    Damaged(String),
}

/// Runs `f` on every item, at most `limit` at a time; results come back in completion order.
pub(crate) async fn run_bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if tasks.len() >= limit {
            out.push(tasks.join_next().await.expect("a task is running").expect("backup task panicked"));
        }
        tasks.spawn(f(item));
    }
    while let Some(done) = tasks.join_next().await {
        out.push(done.expect("backup task panicked"));
    }
    out
}
