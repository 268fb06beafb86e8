//! Where runs are journaled and the epoch is kept. The embedded redb file is
//! the default for one machine; etcd keeps them for drovers in several regions,
//! with leader election among them and their vantage reports.

mod access;
pub mod cluster;
mod drivers;
mod etcd_journal;
mod leadership;
mod redb_journal;
mod vantages;

pub use access::{EtcdAccess, EtcdClient, EtcdTls, EtcdUser, options as etcd_options, token_refused};
pub use etcd_journal::{EtcdJournal, Fence};
pub use leadership::{Leader, campaign};
pub use redb_journal::RedbJournal;
pub use vantages::EtcdVantages;
