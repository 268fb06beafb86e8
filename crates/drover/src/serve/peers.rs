//! Vantages sharing reports over HTTP: every 500 ms each daemon fetches each
//! peer's `GET /api/v1/vantage`. An unreachable peer's last report simply
//! expires, which is how a partition or a lost region shows up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_core::vantage::{VantageExchange, VantageReport};

/// How often each peer is asked.
pub const ROUND: Duration = Duration::from_millis(500);

pub struct HttpPeers {
    urls: Vec<String>,
    http: reqwest::Client,
    latest: Mutex<BTreeMap<String, VantageReport>>,
    /// Peer URL -> why the last fetch failed (cleared on success).
    errors: Mutex<BTreeMap<String, String>>,
}

impl HttpPeers {
    /// `token`: sent to peers, whose API wants it off loopback.
    pub fn new(urls: Vec<String>, token: Option<&str>) -> HttpPeers {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token
            && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(1))
            .default_headers(headers)
            .build()
            .expect("http client");
        HttpPeers { urls, http, latest: Mutex::default(), errors: Mutex::default() }
    }

    /// Starts one polling loop per peer; they run until the process ends.
    pub fn spawn(self: &Arc<Self>, vantage: &str) {
        for url in self.urls.clone() {
            let (peers, vantage) = (Arc::clone(self), vantage.to_string());
            tokio::spawn(async move { peers.poll(url, vantage).await });
        }
    }

    async fn poll(&self, peer: String, vantage: String) {
        let url = format!("{}/api/v1/vantage", peer.trim_end_matches('/'));
        loop {
            let fetched = async {
                let response = self.http.get(&url).send().await.map_err(|e| e.without_url().to_string())?;
                if !response.status().is_success() {
                    return Err(format!("HTTP {}", response.status()));
                }
                response.json::<VantageReport>().await.map_err(|e| e.without_url().to_string())
            }
            .await;
            match fetched {
                Ok(report) => {
                    self.errors.lock().unwrap().remove(&peer);
                    self.latest.lock().unwrap().insert(report.vantage.clone(), report);
                }
                Err(e) => {
                    if self.errors.lock().unwrap().insert(peer.clone(), e.clone()).is_none() {
                        tracing::warn!(%vantage, %peer, error = %e, "peer unreachable; its report expires");
                    }
                }
            }
            tokio::time::sleep(ROUND).await;
        }
    }
}

#[async_trait]
impl VantageExchange for HttpPeers {
    async fn publish(&self, _: &VantageReport) {
        // Peers fetch our report from the API; nothing to push.
    }

    async fn others(&self) -> Vec<VantageReport> {
        self.latest.lock().unwrap().values().cloned().collect()
    }

    fn problems(&self) -> BTreeMap<String, String> {
        self.errors.lock().unwrap().clone()
    }
}
