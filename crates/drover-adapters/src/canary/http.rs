//! The HTTP canary: the canary protocol of docs/drill.md, spoken to the service itself.
//!
//! Connections: one new connection per write (no keep-alive). A client that keeps a
//! connection alive goes on writing to the address it first resolved for as long as that
//! server keeps the connection open — past a switch, and past the TTL — so it would
//! measure the old region, not the front door. A fresh connection per write goes where
//! the name points now (its cached answer, until the TTL runs out), which is what the
//! service's clients see once their own connections turn over. The cost, a TCP (and TLS)
//! handshake per write, is small at a write every 200 ms.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::drill::{CanaryHeld, CanaryWrite};
use drover_core::plan::HttpCanarySpec;
use drover_core::secret::{Secret, SecretSource};

use super::{CanaryError, FrontDoor};
use crate::error_chain;

/// A read-back answer larger than this is refused: ranges keep even a long drill's small.
const READ_BACK_LIMIT: usize = 16 << 20;

pub(super) struct HttpDoor {
    base: reqwest::Url,
    host: String,
    port: u16,
    token: Option<Secret>,
    tls: Option<rustls::ClientConfig>,
    timeout: Duration,
    /// The client for the address the name resolves to now; replaced when it changes.
    client: Mutex<Option<(IpAddr, reqwest::Client)>>,
}

/// More sequence numbers than any drill writes (a write every 10 ms for a month).
const MOST_SEQS: u64 = 300_000_000;

impl HttpDoor {
    pub(super) fn new(
        spec: &HttpCanarySpec,
        timeout: Duration,
        secrets: &dyn SecretSource,
    ) -> Result<HttpDoor, CanaryError> {
        let base = reqwest::Url::parse(&spec.url)
            .map_err(|e| CanaryError::Setup(format!("http.url {} is not a URL: {e}", spec.url)))?;
        let host = base.host_str().ok_or_else(|| CanaryError::Setup(format!("http.url {} has no host", spec.url)))?;
        let port = base.port_or_known_default().unwrap_or(80);
        let token = match &spec.token {
            Some(reference) => Some(
                secrets.resolve(reference).map_err(|e| CanaryError::Setup(format!("http.token ({reference}): {e}")))?,
            ),
            None => None,
        };
        let tls = match &spec.ca_file {
            Some(ca) => Some(
                crate::tls::client_config(ca, None).map_err(|e| CanaryError::Setup(format!("http.ca_file: {e}")))?,
            ),
            None => None,
        };
        Ok(HttpDoor { host: host.to_owned(), port, base, token, tls, timeout, client: Mutex::new(None) })
    }

    /// `{url}/writes`.
    fn writes_url(&self) -> reqwest::Url {
        let mut url = self.base.clone();
        let path = format!("{}/writes", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// A client sending the name's requests to `address` (with the name as Host and SNI).
    fn client(&self, address: IpAddr) -> Result<reqwest::Client, String> {
        let mut current = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, client)) = current.as_ref()
            && *at == address
        {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("drover-canary/", env!("CARGO_PKG_VERSION")))
            .resolve(&self.host, SocketAddr::new(address, self.port));
        if let Some(tls) = &self.tls {
            builder = builder.tls_backend_preconfigured(tls.clone());
        }
        // reqwest panics when no rustls crypto provider is installed; the canary must not.
        let client = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build())) {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(format!("http client: {}", error_chain(&e))),
            Err(_) => return Err("http client: no rustls crypto provider installed".into()),
        };
        *current = Some((address, client.clone()));
        Ok(client)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    fn at(&self, address: IpAddr) -> String {
        format!("{} at {address}", self.base)
    }
}

#[async_trait]
impl FrontDoor for HttpDoor {
    fn name(&self) -> &str {
        &self.host
    }

    fn describe(&self) -> String {
        format!("http {}", self.base)
    }

    async fn prepare(&self, _address: IpAddr) -> Result<(), String> {
        Ok(())
    }

    async fn write(&self, address: IpAddr, drill: &str, seq: u64) -> Result<(), String> {
        let client = self.client(address)?;
        let request =
            self.authorized(client.post(self.writes_url()).json(&CanaryWrite { drill: drill.to_owned(), seq }));
        let response = request.send().await.map_err(|e| format!("{}: {}", self.at(address), error_chain(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("{}: HTTP {status}", self.at(address)));
        }
        // The echo proves the canary's own service answered, not a page that says 200 to anything.
        let body = response.bytes().await.map_err(|e| format!("{}: {}", self.at(address), error_chain(&e)))?;
        match serde_json::from_slice::<CanaryWrite>(&body) {
            Ok(echo) if echo.drill == drill && echo.seq == seq => Ok(()),
            _ => Err(format!("{}: 200 without the write's echo {{\"drill\", \"seq\"}}", self.at(address))),
        }
    }

    async fn read_back(&self, address: IpAddr, drill: &str) -> Result<BTreeSet<u64>, String> {
        let client = self.client(address)?;
        let mut url = self.writes_url();
        url.query_pairs_mut().append_pair("drill", drill);
        let request = self.authorized(client.get(url)).timeout(self.timeout.saturating_mul(10));
        let mut response =
            request.send().await.map_err(|e| format!("read-back from {}: {}", self.at(address), error_chain(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("read-back from {}: HTTP {status}", self.at(address)));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("read-back from {}: {}", self.at(address), error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > READ_BACK_LIMIT {
                return Err(format!("read-back from {}: the answer is over {READ_BACK_LIMIT} bytes", self.at(address)));
            }
        }
        let held: CanaryHeld = serde_json::from_slice(&body).map_err(|e| {
            format!("read-back from {}: not the canary protocol's {{\"drill\", \"ranges\"}}: {e}", self.at(address))
        })?;
        if held.drill != drill {
            return Err(format!(
                "read-back from {}: answered for drill {:?}, not {drill:?}",
                self.at(address),
                held.drill
            ));
        }
        held.seqs(MOST_SEQS).ok_or_else(|| {
            format!("read-back from {}: the ranges are not ranges of at most {MOST_SEQS} writes", self.at(address))
        })
    }
}
