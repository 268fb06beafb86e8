//! Real regions on one machine: network namespaces joined by a bridge, a
//! PostgreSQL primary and streaming standby, Knot DNS for the service name, the
//! lab app in each region, fault injection, and the probe that measures drills.
//!
//! `up` builds the network and hands the processes to a detached supervisor
//! (`drover lab supervise`), which starts, reaps and stops them; everything the
//! lab creates lives in one directory and is removed by `down`.

pub mod app;
mod fault;
mod http;
mod injector;
mod knot;
mod layout;
mod lifecycle;
mod net;
mod nft;
mod ownership;
pub mod pki;
mod plan_file;
mod postgres;
pub mod probe;
mod state;
mod status;
mod supervisor;
mod sys;

pub use fault::{Fault, FaultKind};
pub use injector::{LabInjector, injector, lab_kind};
pub use layout::{DEFAULT_DIR, LabDir, REGIONS, RegionSpec, Role};
pub use lifecycle::{Downed, Up, down, up};
pub use plan_file::plan_yaml;
/// The lab app's tables, for tests that serve the app against a database of their own.
pub use postgres::create_app_table;
pub use state::{Lab, LabState, Replication};
pub use status::{LabStatus, RegionStatus, status};
pub use supervisor::supervise;

/// Why a lab command did not succeed; the CLI classes it (a refusal is bad input).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad input or a refusal; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The operation failed part-way.
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    pub fn refused(message: impl Into<String>) -> Self {
        LabError::Refused(message.into())
    }
    pub fn failed(message: impl Into<String>) -> Self {
        LabError::Failed(message.into())
    }
}

/// Injects `fault` into the lab at `dir`.
pub fn fault(dir: &std::path::Path, fault: &Fault) -> Result<(), LabError> {
    Lab::load(dir)?.fault(fault)
}

/// Lifts every fault from `region`, and restarts its database if it was killed.
pub fn heal(dir: &std::path::Path, region: &str) -> Result<String, LabError> {
    Lab::load(dir)?.heal(region)
}
