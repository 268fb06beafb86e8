//! The application layer: what the command line (`crate::commands`) and the daemon
//! (`crate::serve`) both do, so that neither imports the other. Opening a plan, its
//! journal and its providers (`context`), asking for a run and planning it (`runs`), the
//! progress a run's journal entries make (`progress`), the plan's backups (`backups`), and
//! the one classification of errors the front ends turn into exit codes and HTTP statuses
//! (`error`).
//!
//! The floors, each using only those below it: `main` and `cli` (parsing, dispatch); the
//! front ends `commands` and `serve`; `app`; then the crates: drover-core (plans, the
//! engine, the journal's rules), drover-adapters (the providers, built by its `factory`),
//! drover-store (the journals), drover-backup and drover-lab.

pub mod backups;
pub mod context;
pub mod daemon_client;
pub mod drill;
pub mod drills;
pub mod error;
pub mod plan;
pub mod progress;
pub mod readiness;
pub mod runs;
pub mod store;

/// A runtime for work that talks to the world: a command's, or the daemon's for its life.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}
