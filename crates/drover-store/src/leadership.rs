//! Leader election among drovers on etcd. A candidate holds a lease that it keeps
//! alive *before* campaigning (so it can never win with a lease already dead),
//! and races the campaign against losing the lease (etcd's campaign does not
//! return when the lease dies). The winner's key and revision become the `Fence`
//! every journal write of the leader carries.

use std::time::Duration;

use drover_core::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access::{EtcdAccess, EtcdClient};
use crate::etcd_journal::Fence;

/// Leadership held: while `lost()` has not fired, writes fenced on `fence` succeed.
pub struct Leader {
    pub fence: Fence,
    pub lease: i64,
    lost: watch::Receiver<bool>,
    keeper: JoinHandle<()>,
}

impl Leader {
    /// Resolves once the lease can no longer be kept (etcd unreachable past the TTL, or revoked).
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

fn err(endpoints: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::io(format!("etcd {endpoints}: {what}: {e}"))
}

/// Campaigns for `election` as `who` with a lease of `ttl` seconds; returns once
/// this candidate leads, or an error when its lease is lost first.
pub async fn campaign(access: &EtcdAccess, election: &str, who: &str, ttl: i64) -> Result<Leader, StoreError> {
    let joined = access.describe();
    // No request timeout: a campaign waits as long as another candidate leads.
    let options = crate::access::options(Duration::from_secs(3));
    let mut client = EtcdClient::connect(access, options).await?;
    let lease = client.lease_grant(ttl, None).await.map_err(|e| client.failure("lease", e))?.id();
    let (mut keeper, mut responses) =
        client.lease_keep_alive(lease).await.map_err(|e| client.failure("lease keep-alive", e))?;
    let (lost_tx, mut lost) = watch::channel(false);
    let every = Duration::from_millis((ttl.max(1) as u64) * 1000 / 3);
    let keeper_task = tokio::spawn(async move {
        loop {
            let alive = async {
                keeper.keep_alive().await.ok()?;
                let response = responses.message().await.ok()??;
                (response.ttl() > 0).then_some(())
            };
            if tokio::time::timeout(every, alive).await.ok().flatten().is_none() {
                let _ = lost_tx.send(true);
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
    // A campaign that fails leaves its key behind, kept alive by the keeper: stop the
    // keeper and revoke the lease, or the key would hold every later candidate back.
    let give_up = |e: StoreError| {
        keeper_task.abort();
        let client = client.clone();
        tokio::spawn(async move { client.clone().lease_revoke(lease).await });
        e
    };
    let won = tokio::select! {
        won = client.campaign(election, who, lease) => won.map_err(|e| give_up(client.failure("campaign", e)))?,
        _ = async { while !*lost.borrow_and_update() { if lost.changed().await.is_err() { break } } } => {
            return Err(give_up(err(&joined, "campaign", "the lease was lost before this drover won")));
        }
    };
    let key = won.leader().ok_or_else(|| give_up(err(&joined, "campaign", "etcd named no leader key")))?;
    let fence = Fence { key: String::from_utf8_lossy(key.key()).into_owned(), create_revision: key.rev(), lease };
    Ok(Leader { fence, lease, lost, keeper: keeper_task })
}
