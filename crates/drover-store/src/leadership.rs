//! Leader election among drovers on etcd. A candidate holds a lease that it keeps
//! alive *before* campaigning (so it can never win with a lease already dead),
//! and races the campaign against losing the lease (etcd's campaign does not
//! return when the lease dies). The winner's key and revision become the `Fence`
//! every journal write of the leader carries.

use std::time::Duration;

use drover_core::StoreError;
use etcd_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// `err` for a failure with an error of its own, kept as the source.
fn err_from(endpoints: &str, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::io_from(format!("etcd {endpoints}: {what}: {e}"), e)
}

/// Campaigns for `election` as `who` with a lease of `ttl` seconds; returns once
/// this candidate leads, or an error when its lease is lost first.
pub async fn campaign(endpoints: &[String], election: &str, who: &str, ttl: i64) -> Result<Leader, StoreError> {
    let joined = endpoints.join(",");
    // No request timeout: a campaign waits as long as another candidate leads.
    let options = crate::etcd_options(Duration::from_secs(3));
    let mut client =
        Client::connect(endpoints, Some(options)).await.map_err(|e| err_from(&joined, "cannot connect", e))?;
    let lease = client.lease_grant(ttl, None).await.map_err(|e| err_from(&joined, "lease", e))?.id();
    let (mut keeper, mut responses) =
        client.lease_keep_alive(lease).await.map_err(|e| err_from(&joined, "lease keep-alive", e))?;
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
    let mut campaigner = client.clone();
    let won = tokio::select! {
        won = campaigner.campaign(election, who, lease) => won.map_err(|e| err_from(&joined, "campaign", e))?,
        _ = async { while !*lost.borrow_and_update() { if lost.changed().await.is_err() { break } } } => {
            keeper_task.abort();
            return Err(err(&joined, "campaign", "the lease was lost before this drover won"));
        }
    };
    let key = won.leader().ok_or_else(|| err(&joined, "campaign", "etcd named no leader key"))?;
    let fence = Fence { key: String::from_utf8_lossy(key.key()).into_owned(), create_revision: key.rev() };
    Ok(Leader { fence, lease, lost, keeper: keeper_task })
}
