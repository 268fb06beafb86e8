//! Where runs are journaled and the epoch is kept. The embedded redb file is
//! the default for one machine; etcd (for HA) will implement the same trait.

mod redb_journal;

pub use redb_journal::RedbJournal;
