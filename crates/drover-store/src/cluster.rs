//! What the etcd cluster itself looks like, for the lab and for people: which
//! member leads raft, which drover leads the election, and moving raft
//! leadership (the lab starts with the primary region holding every leader).

use std::time::Duration;

use drover_core::StoreError;
use etcd_client::Client;

async fn connect(endpoints: &[String]) -> Result<Client, StoreError> {
    let options = crate::etcd_options(Duration::from_secs(2)).with_timeout(Duration::from_secs(3));
    Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| StoreError::io_from(format!("etcd {}: cannot connect: {e}", endpoints.join(",")), e))
}

fn io(endpoints: &[String], what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::io(format!("etcd {}: {what}: {e}", endpoints.join(",")))
}

/// `io` for a failure with an error of its own, kept as the source.
fn io_from(endpoints: &[String], what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::io_from(format!("etcd {}: {what}: {e}", endpoints.join(",")), e)
}

/// The name of the member that leads raft now.
pub async fn raft_leader(endpoints: &[String]) -> Result<String, StoreError> {
    let mut client = connect(endpoints).await?;
    let leader = client.status().await.map_err(|e| io_from(endpoints, "status", e))?.leader();
    let members = client.member_list().await.map_err(|e| io_from(endpoints, "member list", e))?;
    members
        .members()
        .iter()
        .find(|m| m.id() == leader)
        .map(|m| m.name().to_string())
        .ok_or_else(|| io(endpoints, "status", "no member leads raft (no quorum?)"))
}

/// Makes member `name` the raft leader (asked of the current leader, as etcd requires).
pub async fn move_raft_leader(endpoints: &[String], name: &str) -> Result<(), StoreError> {
    let mut client = connect(endpoints).await?;
    let members = client.member_list().await.map_err(|e| io_from(endpoints, "member list", e))?;
    let leader_id = client.status().await.map_err(|e| io_from(endpoints, "status", e))?.leader();
    let target = members
        .members()
        .iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| io(endpoints, "move leader", format!("no member named {name}")))?;
    if target.id() == leader_id {
        return Ok(());
    }
    let leader = members
        .members()
        .iter()
        .find(|m| m.id() == leader_id)
        .ok_or_else(|| io(endpoints, "move leader", "no member leads raft"))?;
    let mut at_leader = connect(leader.client_urls()).await?;
    at_leader.move_leader(target.id()).await.map_err(|e| io_from(endpoints, "move leader", e))?;
    Ok(())
}

/// The value the current leader of `election` campaigned with (drover: its vantage), if any.
pub async fn election_leader(endpoints: &[String], election: &str) -> Result<Option<String>, StoreError> {
    let mut client = connect(endpoints).await?;
    match client.leader(election).await {
        Ok(response) => Ok(response.kv().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
        // etcd answers "election: no leader" as an error.
        Err(e) if e.to_string().contains("no leader") => Ok(None),
        Err(e) => Err(io_from(endpoints, "election leader", e)),
    }
}
