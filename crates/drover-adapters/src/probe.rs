//! The plan's checks, run for real: http (reqwest), tcp, and postgres (`SELECT 1`).
//! A probe never fails loudly: every outcome is a `ProbeResult` whose detail
//! says what happened, without secrets.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drover_core::duration::format_duration;
use drover_core::plan::{Check, Probe};
use drover_core::secret::Secret;
use drover_core::world::{ProbeResult, Prober};

use crate::errors::{chain, describe_io, io_cause};
use crate::postgres::{describe_error, redact};

/// How much of a response body is searched for `body_contains`.
const BODY_LIMIT: usize = 1 << 20;

/// Runs checks against regions: `{target}` is the region's traffic address,
/// postgres checks connect to the region's database member.
pub struct CheckProber {
    targets: BTreeMap<String, IpAddr>,
    databases: BTreeMap<String, Secret>,
    /// One client per host override (None: the URL's own host). Clients pool connections.
    clients: Mutex<HashMap<Option<(String, SocketAddr)>, reqwest::Client>>,
    /// Reads Route 53 health checks (the `aws` feature).
    #[cfg(feature = "aws")]
    route53: Option<std::sync::Arc<crate::aws::route53::Route53Api>>,
    /// Reads CloudWatch alarms (the `aws` feature).
    #[cfg(feature = "aws")]
    cloudwatch: Option<std::sync::Arc<crate::aws::cloudwatch::CloudWatchApi>>,
}

impl std::fmt::Debug for CheckProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckProber")
            .field("targets", &self.targets)
            .field("databases", &self.databases.keys().collect::<Vec<_>>())
            .finish()
    }
}

type Outcome = Result<String, String>;

impl CheckProber {
    /// `targets`: region → address filling `{target}`; `databases`: region → DSN for postgres checks.
    /// HTTP needs a rustls crypto provider installed (once, at start) before the first http probe.
    pub fn new(targets: BTreeMap<String, IpAddr>, databases: BTreeMap<String, Secret>) -> Self {
        CheckProber {
            targets,
            databases,
            clients: Mutex::new(HashMap::new()),
            #[cfg(feature = "aws")]
            route53: None,
            #[cfg(feature = "aws")]
            cloudwatch: None,
        }
    }

    /// Route 53 health checks are read through `api`.
    #[cfg(feature = "aws")]
    pub fn with_route53(mut self, api: std::sync::Arc<crate::aws::route53::Route53Api>) -> Self {
        self.route53 = Some(api);
        self
    }

    /// CloudWatch alarms are read through `api`.
    #[cfg(feature = "aws")]
    pub fn with_cloudwatch(mut self, api: std::sync::Arc<crate::aws::cloudwatch::CloudWatchApi>) -> Self {
        self.cloudwatch = Some(api);
        self
    }

    /// The state of the region's alarm, read through the AWS API in the region's AWS region.
    async fn cloudwatch_alarm(&self, region: &str, alarms: &BTreeMap<String, String>) -> Outcome {
        let name = alarms.get(region).ok_or_else(|| format!("no CloudWatch alarm for region {region}"))?;
        #[cfg(feature = "aws")]
        {
            let api = self.cloudwatch.as_ref().ok_or("no CloudWatch client configured")?;
            api.alarm_state(region, name).await
        }
        #[cfg(not(feature = "aws"))]
        {
            Err(format!("alarm {name}: this drover was built without AWS support (cargo feature aws)"))
        }
    }

    /// The region's health check id (or the service's, keyed ""), read through the AWS API.
    async fn route53_health_check(&self, region: &str, ids: &BTreeMap<String, String>) -> Outcome {
        let id =
            ids.get(region).or_else(|| ids.get("")).ok_or_else(|| format!("no health check id for region {region}"))?;
        #[cfg(feature = "aws")]
        {
            let api = self.route53.as_ref().ok_or("no Route 53 client configured")?;
            api.health_check_status(id).await
        }
        #[cfg(not(feature = "aws"))]
        {
            Err(format!("health check {id}: this drover was built without AWS support (cargo feature aws)"))
        }
    }

    /// Replaces `{target}` with the region's address (bracketed when IPv6).
    fn fill(&self, template: &str, region: &str) -> Result<String, String> {
        if !template.contains("{target}") {
            return Ok(template.to_string());
        }
        let target = self.targets.get(region).ok_or_else(|| format!("no target address for region {region}"))?;
        let text = match target {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        Ok(template.replace("{target}", &text))
    }

    async fn http(&self, check: &Check, region: &str, url: &str, status: u16, body: Option<&str>) -> Outcome {
        let filled = self.fill(url, region)?;
        let parsed = reqwest::Url::parse(&filled).map_err(|e| format!("invalid URL: {e}"))?;
        // A URL naming a host (not `{target}`) is sent to the region's address with that Host and SNI.
        let resolve = match (url.contains("{target}"), parsed.domain(), self.targets.get(region)) {
            (false, Some(domain), Some(ip)) => {
                Some((domain.to_string(), SocketAddr::new(*ip, parsed.port_or_known_default().unwrap_or(80))))
            }
            _ => None,
        };
        let client = self.client(resolve)?;
        let mut response =
            client.get(parsed).timeout(check.timeout).send().await.map_err(|e| describe_http(&e, check))?;
        let got = response.status();
        if got.as_u16() != status {
            return Err(format!("status {}, expected {status}", got.as_u16()));
        }
        if let Some(needle) = body {
            let mut seen = Vec::new();
            while seen.len() < BODY_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => seen.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(e) => return Err(format!("reading body: {}", describe_http(&e, check))),
                }
            }
            if !String::from_utf8_lossy(&seen).contains(needle) {
                return Err(format!("body lacks {needle:?}"));
            }
        }
        Ok(got.to_string())
    }

    fn client(&self, resolve: Option<(String, SocketAddr)>) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&resolve) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            // A health check judges the endpoint's own answer, as Route 53 does.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drover-check/", env!("CARGO_PKG_VERSION")));
        if let Some((domain, addr)) = &resolve {
            builder = builder.resolve(domain, *addr);
        }
        // reqwest panics when no rustls crypto provider is installed; a probe must not.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build()));
        let client = match built {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(format!("http client: {}", chain(&e))),
            Err(_) => {
                return Err(
                    "http client: no rustls crypto provider installed — the binary must install one at start".into()
                );
            }
        };
        clients.insert(resolve, client.clone());
        Ok(client)
    }

    async fn tcp(&self, region: &str, address: &str) -> Outcome {
        let filled = self.fill(address, region)?;
        let addr = match SocketAddr::from_str(&filled) {
            Ok(addr) => addr,
            Err(_) => tokio::net::lookup_host(&filled)
                .await
                .map_err(|e| format!("cannot resolve {filled}: {e}"))?
                .next()
                .ok_or_else(|| format!("{filled} resolves to no address"))?,
        };
        tokio::net::TcpStream::connect(addr).await.map_err(|e| describe_io(&e))?;
        Ok(format!("connected to {addr}"))
    }

    async fn postgres(&self, check: &Check, region: &str) -> Outcome {
        let dsn = self.databases.get(region).ok_or_else(|| format!("no database member for region {region}"))?;
        let mut connector = crate::pg_connect::PgConnector::parse(dsn.expose())
            .map_err(|e| format!("the DSN for {region} cannot be used: {e}"))?;
        connector.config_mut().connect_timeout(check.timeout).application_name("drover-check");
        let client = connector
            .connect()
            .await
            .map_err(|e| redact(&connector.describe_tls(&e).unwrap_or_else(|| describe_error(&e)), dsn))?;
        client.simple_query("SELECT 1").await.map_err(|e| redact(&describe_error(&e), dsn))?;
        Ok("SELECT 1 ok".into())
    }
}

#[async_trait]
impl Prober for CheckProber {
    async fn probe(&self, check: &Check, region: &str) -> ProbeResult {
        let started = Instant::now();
        let run = async {
            match &check.probe {
                Probe::Http { url, status, body_contains } => {
                    self.http(check, region, url, *status, body_contains.as_deref()).await
                }
                Probe::Tcp { address } => self.tcp(region, address).await,
                Probe::Postgres => self.postgres(check, region).await,
                Probe::Route53HealthCheck { ids } => self.route53_health_check(region, ids).await,
                Probe::CloudwatchAlarm { alarms } => self.cloudwatch_alarm(region, alarms).await,
            }
        };
        // The check's timeout bounds everything: resolve, connect, request, body.
        let outcome =
            tokio::time::timeout(check.timeout, run).await.unwrap_or_else(|_| Err(timeout_detail(check.timeout)));
        let latency = started.elapsed();
        match outcome {
            Ok(detail) => ProbeResult { ok: true, latency, detail },
            Err(detail) => ProbeResult { ok: false, latency, detail },
        }
    }
}

fn timeout_detail(after: Duration) -> String {
    format!("timeout after {}", format_duration(after))
}

fn describe_http(e: &reqwest::Error, check: &Check) -> String {
    if e.is_timeout() {
        return timeout_detail(check.timeout);
    }
    if let Some(io) = io_cause(e) {
        return describe_io(io);
    }
    let text = chain(e);
    // A URL may carry credentials.
    match e.url() {
        Some(url) if url.password().is_some() => text.replace(url.as_str(), "<url redacted>"),
        _ => text,
    }
}
