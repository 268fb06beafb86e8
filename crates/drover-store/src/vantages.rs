//! Vantage reports shared through etcd: each vantage puts its latest report
//! under `<prefix>/vantages/<name>` attached to a lease of its own. A vantage
//! that dies, or loses etcd, stops renewing, and etcd deletes its view when the
//! lease runs out — besides the report's own expiry, which `verdicts` checks.
//!
//! Anyone who can write to etcd can put a report under any key: on read, a report counts
//! only under the key its vantage owns, by the plan's rules (listed names, the peer key's
//! signature, signed within one time to live: `ReportRules::admit`). Every report dropped
//! is counted by why, and shown as a problem under its key's name.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drover_core::StoreError;
use drover_core::vantage::{Dropped, ReportRules, VantageExchange, VantageReport};
use etcd_client::{GetOptions, PutOptions};

use crate::access::{EtcdAccess, EtcdClient};

pub struct EtcdVantages {
    client: EtcdClient,
    prefix: String,
    vantage: String,
    ttl_s: i64,
    /// The lease our report is attached to, and when it was granted.
    lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
    problem: Mutex<Option<String>>,
    /// The last reports read, kept when etcd cannot be reached (they expire by themselves).
    last: Mutex<Vec<VantageReport>>,
    /// What a report must be to count.
    rules: std::sync::Arc<ReportRules>,
    /// Reports read and not counted since start, by why (one per report per read).
    dropped: Mutex<BTreeMap<Dropped, u64>>,
    /// Key name -> why its report was not counted at the last read.
    refused: Mutex<BTreeMap<String, String>>,
}

impl EtcdVantages {
    /// `ttl`: how long a silent vantage's report stays in etcd (at least 2 s).
    pub async fn connect(
        access: &EtcdAccess,
        prefix: &str,
        vantage: &str,
        ttl: Duration,
        rules: std::sync::Arc<ReportRules>,
    ) -> Result<EtcdVantages, StoreError> {
        // Short timeouts: the autopilot reads the reports twice a second and must not stall.
        let options = crate::access::options(Duration::from_secs(1)).with_timeout(Duration::from_millis(800));
        let client = EtcdClient::connect(access, options).await?;
        Ok(EtcdVantages {
            client,
            prefix: format!("{}/vantages/", prefix.trim_end_matches('/')),
            vantage: vantage.to_string(),
            ttl_s: ttl.as_secs().max(2) as i64,
            lease: tokio::sync::Mutex::new(None),
            problem: Mutex::new(None),
            last: Mutex::new(Vec::new()),
            rules,
            dropped: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    /// A lease for our key: a fresh one each third of the TTL, so that a report put
    /// with it lives at most one TTL after this vantage falls silent.
    async fn lease(&self) -> Result<i64, etcd_client::Error> {
        let mut held = self.lease.lock().await;
        let renew_after = Duration::from_secs(self.ttl_s as u64) / 3;
        if let Some((id, granted)) = *held
            && granted.elapsed() < renew_after
        {
            return Ok(id);
        }
        let id = self.client.clone().lease_grant(self.ttl_s, None).await?.id();
        *held = Some((id, Instant::now()));
        Ok(id)
    }

    fn note(&self, result: Result<(), String>) {
        let mut problem = self.problem.lock().unwrap();
        match result {
            Ok(()) => *problem = None,
            Err(e) => {
                if problem.as_deref() != Some(e.as_str()) {
                    tracing::warn!(vantage = %self.vantage, error = %e, "etcd: cannot share vantage reports");
                }
                *problem = Some(e);
            }
        }
    }
}

#[async_trait]
impl VantageExchange for EtcdVantages {
    async fn publish(&self, report: &VantageReport) {
        let result = async {
            let lease = self.lease().await.map_err(|e| format!("lease: {e}"))?;
            let value = serde_json::to_vec(report).map_err(|e| e.to_string())?;
            let key = format!("{}{}", self.prefix, self.vantage);
            self.client
                .clone()
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
                .map_err(|e| format!("put: {e}"))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            // A lease etcd no longer knows (expired while we were cut off) is not reused.
            *self.lease.lock().await = None;
        }
        self.note(result);
    }

    async fn others(&self) -> Vec<VantageReport> {
        let read = self.client.clone().get(self.prefix.as_str(), Some(GetOptions::new().with_prefix())).await;
        match read {
            Ok(response) => {
                // A report counts only under the key its vantage owns: one written under
                // another vantage's key (or naming someone else) is not a vote.
                let now = drover_core::clock::now_ms();
                let mut reports = Vec::new();
                let mut refused = BTreeMap::new();
                let mut dropped = self.dropped.lock().unwrap();
                for kv in response.kvs() {
                    let Some(name) = kv.key_str().ok().and_then(|k| k.strip_prefix(self.prefix.as_str())) else {
                        continue;
                    };
                    if name == self.vantage {
                        continue;
                    }
                    let admitted = match serde_json::from_slice::<VantageReport>(kv.value()) {
                        Ok(report) => {
                            let said = report.vantage.clone();
                            self.rules.admit(report, name, now).map_err(|why| (why, why.explain(name, &said)))
                        }
                        Err(_) => Err((Dropped::Unreadable, Dropped::Unreadable.explain(name, name))),
                    };
                    match admitted {
                        Ok(report) => reports.push(report),
                        Err((why, message)) => {
                            *dropped.entry(why).or_default() += 1;
                            // A few are enough to see what is wrong; thousands of forged keys
                            // must not grow every answer of the API.
                            if refused.len() < 16 {
                                let shown: String = name.chars().take(64).collect();
                                refused.insert(format!("vantage {shown}"), message);
                            }
                        }
                    }
                }
                drop(dropped);
                *self.refused.lock().unwrap() = refused;
                *self.last.lock().unwrap() = reports.clone();
                reports
            }
            Err(e) => {
                self.note(Err(format!("read: {e}")));
                self.last.lock().unwrap().clone()
            }
        }
    }

    fn problems(&self) -> BTreeMap<String, String> {
        let mut problems = self.refused.lock().unwrap().clone();
        problems.extend(self.problem.lock().unwrap().iter().map(|p| ("etcd".to_string(), p.clone())));
        problems
    }

    fn dropped(&self) -> BTreeMap<Dropped, u64> {
        self.dropped.lock().unwrap().clone()
    }
}
