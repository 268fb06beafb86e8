//! Where runs are journaled and the epoch is kept. The embedded redb file is
//! the default for one machine; etcd keeps them for drovers in several regions,
//! with leader election among them and their vantage reports.

pub mod cluster;
mod etcd_journal;
mod leadership;
mod redb_journal;
mod vantages;

pub use etcd_journal::{EtcdJournal, Fence};
pub use leadership::{Leader, campaign};
pub use redb_journal::RedbJournal;
pub use vantages::EtcdVantages;

/// How every drover connection to etcd is set up. HTTP/2 keep-alive pings find a
/// member that went silent (its region was cut off) within about a second, so the
/// client stops sending requests there instead of waiting out each timeout.
pub(crate) fn etcd_options(connect: std::time::Duration) -> etcd_client::ConnectOptions {
    use std::time::Duration;
    etcd_client::ConnectOptions::new()
        .with_connect_timeout(connect)
        .with_keep_alive(Duration::from_millis(500), Duration::from_millis(1000))
        .with_keep_alive_while_idle(true)
}
