//! What the etcd cluster itself looks like, for the lab and for people: which
//! member leads raft, which drover leads the election, and moving raft
//! leadership (the lab starts with the primary region holding every leader);
//! and setting up etcd's users for drover (the lab's, and a test's).

use std::time::Duration;

use drover_core::StoreError;
use drover_core::secret::Secret;
use etcd_client::Permission;

use crate::access::{EtcdAccess, EtcdClient};

async fn connect(access: &EtcdAccess) -> Result<EtcdClient, StoreError> {
    let options = crate::access::options(Duration::from_secs(2)).with_timeout(Duration::from_secs(3));
    EtcdClient::connect(access, options).await
}

fn io(access: &EtcdAccess, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::io(format!("etcd {}: {what}: {e}", access.describe()))
}

/// The name of the member that leads raft now.
pub async fn raft_leader(access: &EtcdAccess) -> Result<String, StoreError> {
    let client = connect(access).await?;
    let leader = client.status().await.map_err(|e| client.failure("status", e))?.leader();
    let members = client.member_list().await.map_err(|e| client.failure("member list", e))?;
    members
        .members()
        .iter()
        .find(|m| m.id() == leader)
        .map(|m| m.name().to_string())
        .ok_or_else(|| io(access, "status", "no member leads raft (no quorum?)"))
}

/// Makes member `name` the raft leader (asked of the current leader, as etcd requires;
/// with auth enabled, only etcd's root user may).
pub async fn move_raft_leader(access: &EtcdAccess, name: &str) -> Result<(), StoreError> {
    let client = connect(access).await?;
    let members = client.member_list().await.map_err(|e| client.failure("member list", e))?;
    let leader_id = client.status().await.map_err(|e| client.failure("status", e))?.leader();
    let target = members
        .members()
        .iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| io(access, "move leader", format!("no member named {name}")))?;
    if target.id() == leader_id {
        return Ok(());
    }
    let leader = members
        .members()
        .iter()
        .find(|m| m.id() == leader_id)
        .ok_or_else(|| io(access, "move leader", "no member leads raft"))?;
    // Its client URLs carry a scheme; the access adds its own.
    let at = leader.client_urls().iter().map(|u| u.split_once("://").map_or(u.as_str(), |(_, rest)| rest));
    let at_leader = connect(&access.towards(at)).await?;
    at_leader.move_leader(target.id()).await.map_err(|e| client.failure("move leader", e))?;
    Ok(())
}

/// The value the current leader of `election` campaigned with (drover: its vantage), if any.
pub async fn election_leader(access: &EtcdAccess, election: &str) -> Result<Option<String>, StoreError> {
    let client = connect(access).await?;
    match client.leader(election).await {
        Ok(response) => Ok(response.kv().map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
        // etcd answers "election: no leader" as an error.
        Err(e) if e.to_string().contains("no leader") => Ok(None),
        Err(e) => Err(client.failure("election leader", e)),
    }
}

/// Turns etcd's auth on: a `root` user with `root_password`, and `user` with a role of
/// its own name that may read and write the keys under `prefix` only. `access` reaches
/// the cluster before auth is on (no user): on a new cluster, and again if it failed.
pub async fn enable_auth(
    access: &EtcdAccess,
    root_password: &Secret,
    user: &crate::access::EtcdUser,
    prefix: &str,
) -> Result<(), StoreError> {
    let client = connect(access).await?;
    let mut c = (*client).clone();
    // A step already done (a first try that failed half-way) is done: tried again, it passes.
    let done = |what: &str, result: Result<(), etcd_client::Error>| match result {
        Err(e) if !e.to_string().contains("already") => Err(client.failure(what, e)),
        _ => Ok(()),
    };
    done("add user root", c.user_add("root", root_password.expose(), None).await.map(drop))?;
    done("grant root", c.user_grant_role("root", "root").await.map(drop))?;
    done("add role", c.role_add(user.name.as_str()).await.map(drop))?;
    let keys = Permission::read_write(prefix).with_prefix();
    done("grant the prefix", c.role_grant_permission(user.name.as_str(), keys).await.map(drop))?;
    done("add user", c.user_add(user.name.as_str(), user.password.expose(), None).await.map(drop))?;
    done("grant the role", c.user_grant_role(user.name.as_str(), user.name.as_str()).await.map(drop))?;
    c.auth_enable().await.map_err(|e| client.failure("enable auth", e))?;
    Ok(())
}
