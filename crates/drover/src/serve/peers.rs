//! Vantages sharing reports over HTTP: every 500 ms each daemon fetches each
//! peer's `GET /api/v1/vantage`. An unreachable peer's last report simply
//! expires, which is how a partition or a lost region shows up.
//!
//! A peer is who the operator says it is: its report counts under the name given with
//! `--peer NAME=URL` and no other (a peer, or anything on its path, that answers under
//! other names cannot add votes), and it is trusted for at most the plan's report time
//! to live after it arrived, on this daemon's clock (a claimed expiry far in the future
//! does not keep a dead peer voting). With the plan's peer key, a report counts only when
//! signed with it, within one time to live of the time it was signed; and with the plan's
//! `vantages.names`, only under a listed name (`drover_core::vantage::ReportRules`). Every
//! report dropped is counted by why, and shown as the peer's problem.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_core::vantage::{Dropped, ReportRules, VantageExchange, VantageReport};

use super::supervisor::{Heartbeat, Restart, Supervisor, unpoisoned};
use crate::app::error::Failure;

/// How often each peer is asked.
pub const ROUND: Duration = Duration::from_millis(500);

pub struct HttpPeers {
    /// (vantage name, base URL).
    peers: Vec<(String, String)>,
    /// What a report must be to count.
    rules: Arc<ReportRules>,
    http: reqwest::Client,
    /// The Authorization header's value.
    token: Option<String>,
    latest: Mutex<BTreeMap<String, VantageReport>>,
    /// Peer URL -> why the last fetch failed (cleared on success).
    errors: Mutex<BTreeMap<String, String>>,
    dropped: Mutex<BTreeMap<Dropped, u64>>,
}

impl HttpPeers {
    /// `http`: a client for daemons (`app::daemon_client`); `token`: sent to peers, whose API wants it.
    pub fn new(
        peers: Vec<(String, String)>,
        http: reqwest::Client,
        token: Option<&str>,
        rules: Arc<ReportRules>,
    ) -> HttpPeers {
        let token = token.map(|t| format!("Bearer {t}"));
        HttpPeers {
            peers,
            rules,
            http,
            token,
            latest: Mutex::default(),
            errors: Mutex::default(),
            dropped: Mutex::default(),
        }
    }

    /// Starts one polling loop per peer under the daemon's supervisor; they run until the
    /// process ends.
    pub fn spawn(self: &Arc<Self>, loops: &Arc<Supervisor>, vantage: &str) {
        for (name, url) in self.peers.clone() {
            let (peers, vantage) = (Arc::clone(self), vantage.to_string());
            loops.spawn(format!("peer {name}"), Some(ROUND), Restart::WithBackoff, move |beat| {
                let (peers, name, url, vantage) = (Arc::clone(&peers), name.clone(), url.clone(), vantage.clone());
                async move { peers.poll(name, url, vantage, beat).await }
            });
        }
    }

    async fn poll(&self, name: String, peer: String, vantage: String, beat: Heartbeat) {
        let url = format!("{}/api/v1/vantage", peer.trim_end_matches('/'));
        loop {
            beat.beat();
            let fetched = async {
                let mut request = self.http.get(&url);
                if let Some(token) = &self.token {
                    let mut value = reqwest::header::HeaderValue::from_str(token).map_err(|e| e.to_string())?;
                    value.set_sensitive(true);
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
                let response = request.send().await.map_err(crate::app::daemon_client::describe)?;
                let status = response.status();
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    // The usual cause when rolling out named tokens: say which entry is sent.
                    return Err(format!(
                        "HTTP {status}: the peer does not accept this daemon's token (the `peer` entry named '{vantage}' in --token-file, which every daemon's file must hold)"
                    ));
                }
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                response.json::<VantageReport>().await.map_err(|e| e.without_url().to_string())
            }
            .await;
            let fetched = fetched.and_then(|report| {
                let said = report.vantage.clone();
                // Trusted for at most one time to live, on this clock, whatever it claims.
                self.rules.admit(report, &name, drover_core::clock::now_ms()).map_err(|why| {
                    *unpoisoned(&self.dropped).entry(why).or_default() += 1;
                    why.explain(&name, &said)
                })
            });
            match fetched {
                Ok(report) => {
                    unpoisoned(&self.errors).remove(&peer);
                    unpoisoned(&self.latest).insert(name.clone(), report);
                }
                Err(e) => {
                    if unpoisoned(&self.errors).insert(peer.clone(), e.clone()).is_none() {
                        tracing::warn!(%vantage, %peer, error = %e, "peer unreachable; its report expires");
                    }
                }
            }
            tokio::time::sleep(ROUND).await;
        }
    }
}

/// `--peer NAME=URL` values as (name, URL). A peer without a name, two peers of one
/// name, or a peer named like this daemon is refused (exit 2): its votes would count
/// under a name nobody chose.
pub fn named(peers: &[String], own: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut named: Vec<(String, String)> = Vec::new();
    for peer in peers {
        let Some((name, url)) = peer.split_once('=').filter(|(n, _)| !n.is_empty() && !n.contains("://")) else {
            return Err(Failure::input(format!(
                "--peer {peer}: name the vantage it is, e.g. --peer west={peer}: its reports count under that name only"
            )));
        };
        if name == own {
            return Err(Failure::input(format!("--peer {peer}: '{name}' is this daemon's own --vantage")));
        }
        if named.iter().any(|(n, _)| n == name) {
            return Err(Failure::input(format!("--peer {peer}: two peers are named '{name}'")));
        }
        named.push((name.to_owned(), url.to_owned()));
    }
    Ok(named)
}

#[async_trait]
impl VantageExchange for HttpPeers {
    async fn publish(&self, _: &VantageReport) {
        // Peers fetch our report from the API; nothing to push.
    }

    async fn others(&self) -> Vec<VantageReport> {
        unpoisoned(&self.latest).values().cloned().collect()
    }

    fn problems(&self) -> BTreeMap<String, String> {
        unpoisoned(&self.errors).clone()
    }

    fn dropped(&self) -> BTreeMap<Dropped, u64> {
        unpoisoned(&self.dropped).clone()
    }
}
