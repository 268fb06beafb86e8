//! Where runs are journaled and the epoch is kept. The embedded redb file is
//! the default for one machine; etcd keeps them for drovers in several regions.

mod etcd_journal;
mod leadership;
mod redb_journal;

pub use etcd_journal::{EtcdJournal, Fence};
pub use leadership::{Leader, campaign};
pub use redb_journal::RedbJournal;
