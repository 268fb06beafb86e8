//! The drill's write canary against services that answer as real ones do: an HTTP
//! service speaking the canary protocol (docs/drill.md) on loopback addresses, a real
//! Knot DNS server whose record a switch moves, and a real PostgreSQL. What is checked is
//! what a drill report would say: which writes were acknowledged, where they went, and
//! which acknowledged ones the service no longer holds.

#[path = "support/knot.rs"]
mod knot;
#[path = "support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drover_adapters::canary::{Canary, CanaryError, Resolution, RunningCanary};
use drover_adapters::rfc2136::Rfc2136Traffic;
use drover_core::drill::{CanaryHeld, CanaryWrite, Measurement, WriteSample, measure};
use drover_core::plan::{
    CanaryResolve, CanarySpec, CanaryTarget, HttpCanarySpec, PostgresCanarySpec, Rfc2136Spec, TrafficSpec, Tsig,
    TsigAlgorithm,
};
use drover_core::secret::{Secret, SecretRef, SecretSource};
use drover_core::world::Traffic;
use knot::{Knot, RECORD, ZONE};

const TOKEN: &str = "canary-token-5d1e";
const EAST: &str = "127.0.0.1";
const WEST: &str = "127.0.0.2";

/// Hang guard only: every wait here ends in well under a second when things work.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

struct Secrets(Vec<(SecretRef, String)>);

impl SecretSource for Secrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        self.0.iter().find(|(r, _)| r == reference).map(|(_, v)| Secret::new(v.clone())).ok_or("not set".into())
    }
}

fn secrets() -> Secrets {
    Secrets(vec![(SecretRef::Env("CANARY_TOKEN".into()), TOKEN.into())])
}

/// The canary protocol as a service implements it, over an in-memory store. `drop_every`
/// acknowledges every write but forgets each n-th: the lost acknowledged writes of a
/// database that lost its tail.
#[derive(Clone)]
struct Service {
    held: Arc<Mutex<BTreeMap<String, BTreeSet<u64>>>>,
    drop_every: Option<u64>,
}

impl Service {
    fn new(drop_every: Option<u64>) -> Service {
        Service { held: Arc::default(), drop_every }
    }

    fn held(&self, drill: &str) -> BTreeSet<u64> {
        self.held.lock().unwrap().get(drill).cloned().unwrap_or_default()
    }

    fn router(&self) -> Router {
        Router::new().route("/drover-canary/writes", post(service_write).get(service_held)).with_state(self.clone())
    }

    /// Serves on `ip:port` (port 0: any) under `/drover-canary`; returns the address.
    async fn serve(&self, ip: &str, port: u16) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    /// As `serve`, over TLS with `config`.
    async fn serve_tls(&self, ip: &str, config: rustls::ServerConfig) -> SocketAddr {
        let tcp = tokio::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0)).await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }
}

/// TLS in front of axum: handshakes that fail (a client refusing the certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A CA (its PEM file in `dir`) and a server configuration with a certificate it signed for `names`.
fn test_tls(dir: &std::path::Path, names: &[&str]) -> (std::path::PathBuf, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "canary test CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = names.iter().map(|n| rcgen::SanType::DnsName((*n).try_into().unwrap())).collect();
    let (cert, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, params.signed_by(&key, &issuer).unwrap().pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    // drover reads a private key only when it is its owner's alone.
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (ca_file, drover_adapters::tls::server_config(&cert, &key_file, None).unwrap())
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn service_write(
    State(s): State<Service>,
    headers: HeaderMap,
    axum::Json(w): axum::Json<CanaryWrite>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if s.drop_every.is_none_or(|n| w.seq % n != 0) {
        s.held.lock().unwrap().entry(w.drill.clone()).or_default().insert(w.seq);
    }
    axum::Json(w).into_response()
}

#[derive(serde::Deserialize)]
struct HeldParams {
    drill: String,
}

async fn service_held(State(s): State<Service>, headers: HeaderMap, Query(p): Query<HeldParams>) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(CanaryHeld::new(&p.drill, s.held(&p.drill))).into_response()
}

fn rfc2136_spec(knot: &Knot, ttl: Duration) -> Rfc2136Spec {
    Rfc2136Spec {
        server: knot.addr,
        zone: ZONE.into(),
        record: RECORD.into(),
        ttl,
        tsig: Tsig {
            name: "drover".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env("UNUSED_IN_TESTS".into()),
        },
        targets: BTreeMap::from([("east".into(), EAST.parse().unwrap()), ("west".into(), WEST.parse().unwrap())]),
    }
}

/// A traffic section for canaries whose front door is an address (nothing to follow).
fn no_traffic() -> TrafficSpec {
    TrafficSpec::Rfc2136(Rfc2136Spec {
        server: "127.0.0.1:9".parse().unwrap(),
        zone: ZONE.into(),
        record: RECORD.into(),
        ttl: Duration::from_secs(5),
        tsig: Tsig { name: "x".into(), algorithm: TsigAlgorithm::HmacSha256, secret: SecretRef::Env("X".into()) },
        targets: BTreeMap::new(),
    })
}

fn http_spec(url: String, token: bool, resolve: CanaryResolve) -> CanarySpec {
    CanarySpec {
        target: CanaryTarget::Http(HttpCanarySpec {
            url,
            token: token.then(|| SecretRef::Env("CANARY_TOKEN".into())),
            ca_file: None,
        }),
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        resolve,
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Waits until `done` holds for the samples so far.
async fn until(running: &RunningCanary, done: impl Fn(&[WriteSample]) -> bool) {
    guard(async {
        while !done(&running.samples()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn acked(samples: &[WriteSample]) -> BTreeSet<u64> {
    samples.iter().filter(|s| s.acked_ms.is_some()).map(|s| s.seq).collect()
}

#[tokio::test]
async fn every_acknowledged_write_is_read_back_and_none_is_lost() {
    install_crypto();
    let service = Service::new(None);
    let addr = service.serve(EAST, 0).await;
    let url = format!("http://{addr}/drover-canary");
    let canary =
        Canary::from_spec(&http_spec(url, true, CanaryResolve::Dns { server: None }), &no_traffic(), &secrets(), None)
            .unwrap();
    assert_eq!(canary.resolution(), &Resolution::Address);
    canary.prepare().await.unwrap();
    let running = canary.start("drill-1").unwrap();
    until(&running, |s| acked(s).len() >= 20).await;
    let samples = guard(running.stop()).await;

    let seqs: Vec<u64> = samples.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=samples.len() as u64).collect::<Vec<_>>(), "numbered 1, 2, … in order");
    assert!(samples.iter().all(|s| s.acked_ms.is_some() && s.target.as_deref() == Some(EAST)), "{samples:?}");
    assert!(samples.iter().all(|s| s.latency_ms().is_some()));
    let present = guard(canary.read_back("drill-1")).await.unwrap();
    assert_eq!(present, service.held("drill-1"), "read back through the door is what the service holds");
    assert_eq!(present, acked(&samples));
    let out = measure(&Measurement { fault_at_ms: samples[0].sent_ms, samples: &samples, present: &present });
    assert!(out.lost.is_empty());
    assert_eq!(out.rpo_ms, 0);
    // Another drill's writes are its own.
    assert!(guard(canary.read_back("drill-2")).await.unwrap().is_empty());
}

#[tokio::test]
async fn acknowledged_writes_the_service_dropped_are_counted_lost() {
    install_crypto();
    let service = Service::new(Some(3));
    let addr = service.serve(EAST, 0).await;
    let spec = http_spec(format!("http://{addr}/drover-canary/"), true, CanaryResolve::Dns { server: None });
    let canary = Canary::from_spec(&spec, &no_traffic(), &secrets(), None).unwrap();
    let running = canary.start("drill-lossy").unwrap();
    until(&running, |s| acked(s).len() >= 12).await;
    let samples = guard(running.stop()).await;
    let present = guard(canary.read_back("drill-lossy")).await.unwrap();
    let out = measure(&Measurement { fault_at_ms: samples[0].sent_ms, samples: &samples, present: &present });
    let dropped: Vec<u64> = acked(&samples).into_iter().filter(|seq| seq % 3 == 0).collect();
    assert!(dropped.len() >= 4);
    assert_eq!(out.lost, dropped, "exactly the acknowledged writes the service forgot");
    assert!(out.rpo_ms > 0);
}

#[tokio::test]
async fn a_refused_write_is_never_acknowledged() {
    install_crypto();
    let service = Service::new(None);
    let addr = service.serve(EAST, 0).await;
    // No token: the service answers 401.
    let spec = http_spec(format!("http://{addr}/drover-canary"), false, CanaryResolve::Dns { server: None });
    let canary = Canary::from_spec(&spec, &no_traffic(), &secrets(), None).unwrap();
    let running = canary.start("drill-401").unwrap();
    until(&running, |s| s.iter().filter(|w| w.target.is_some()).count() >= 5).await;
    let samples = guard(running.stop()).await;
    assert!(samples.iter().all(|s| s.acked_ms.is_none()), "{samples:?}");
    assert!(service.held("drill-401").is_empty());
    let err = guard(canary.read_back("drill-401")).await.unwrap_err();
    assert!(matches!(&err, CanaryError::Unavailable(m) if m.contains("401")), "{err}");
}

/// The canary resolves the service's name with a real DNS server and follows a switch
/// once the cached answer's TTL is over. The two regions' services hold their own writes
/// (nothing replicates), so the writes east acknowledged are lost, as a drill reports
/// them when replication did not carry them over.
#[tokio::test]
async fn the_canary_follows_a_dns_switch_after_the_ttl() {
    install_crypto();
    let knot = Knot::start();
    let traffic = Rfc2136Traffic::new(&rfc2136_spec(&knot, Duration::from_secs(1)), Secret::new(knot.secret.clone()));
    guard(traffic.switch("east", 0, 1)).await.unwrap();
    let (east, west) = (Service::new(None), Service::new(None));
    let port = east.serve(EAST, 0).await.port();
    west.serve(WEST, port).await;

    let url = format!("http://{}:{port}/drover-canary", RECORD.trim_end_matches('.'));
    let spec = http_spec(url, true, CanaryResolve::Dns { server: Some(knot.addr) });
    let canary = Canary::from_spec(&spec, &no_traffic(), &secrets(), None).unwrap();
    assert_eq!(canary.resolution(), &Resolution::Dns { server: knot.addr, system: false });
    let running = canary.start("drill-dns").unwrap();
    until(&running, |s| acked(s).len() >= 5).await;
    guard(traffic.switch("west", 1, 2)).await.unwrap();
    let switched_ms = now_ms();
    until(&running, |s| s.iter().rev().take(5).all(|w| w.acked_ms.is_some() && w.target.as_deref() == Some(WEST)))
        .await;
    let samples = guard(running.stop()).await;

    let to =
        |ip: &str| samples.iter().filter(|s| s.target.as_deref() == Some(ip)).map(|s| s.seq).collect::<BTreeSet<_>>();
    assert!(!to(EAST).is_empty() && !to(WEST).is_empty());
    assert!(to(EAST).iter().max() < to(WEST).iter().min(), "once it followed the switch it stayed: {samples:?}");
    assert_eq!(east.held("drill-dns"), to(EAST));
    assert_eq!(west.held("drill-dns"), to(WEST));
    // Read back through the name: west now.
    let present = guard(canary.read_back("drill-dns")).await.unwrap();
    assert_eq!(present, to(WEST));
    let out = measure(&Measurement { fault_at_ms: switched_ms, samples: &samples, present: &present });
    assert_eq!(out.lost, to(EAST).into_iter().collect::<Vec<_>>());
}

/// `resolve: traffic`: the canary asks the traffic provider where the record points (for
/// a stack whose provider serves no DNS, such as moto's Route 53), not DNS; here the
/// provider is RFC 2136 against Knot, read through the adapter, never resolved.
#[tokio::test]
async fn resolve_traffic_follows_the_providers_record() {
    install_crypto();
    let knot = Knot::start();
    let spec = rfc2136_spec(&knot, Duration::from_secs(1));
    let traffic = Arc::new(Rfc2136Traffic::new(&spec, Secret::new(knot.secret.clone())));
    guard(traffic.switch("east", 0, 1)).await.unwrap();
    let (east, west) = (Service::new(None), Service::new(None));
    let port = east.serve(EAST, 0).await.port();
    west.serve(WEST, port).await;

    // A name nobody serves: only the provider can say where it points.
    let url = format!("http://shop.nowhere.invalid:{port}/drover-canary");
    let canary_spec = http_spec(url, true, CanaryResolve::Traffic);
    let plan_traffic = TrafficSpec::Rfc2136(spec);
    let missing = Canary::from_spec(&canary_spec, &plan_traffic, &secrets(), None).err().expect("needs a provider");
    assert!(missing.to_string().contains("traffic provider"), "{missing}");
    let canary =
        Canary::from_spec(&canary_spec, &plan_traffic, &secrets(), Some(traffic.clone() as Arc<dyn Traffic>)).unwrap();
    assert_eq!(canary.resolution(), &Resolution::Traffic { record: RECORD.into() });
    assert!(canary.resolution().to_string().contains("not DNS"));
    let running = canary.start("drill-traffic").unwrap();
    until(&running, |s| acked(s).len() >= 5).await;
    guard(traffic.switch("west", 1, 2)).await.unwrap();
    until(&running, |s| s.iter().rev().take(5).all(|w| w.acked_ms.is_some() && w.target.as_deref() == Some(WEST)))
        .await;
    let samples = guard(running.stop()).await;
    assert!(samples.iter().any(|s| s.acked_ms.is_some() && s.target.as_deref() == Some(EAST)));
    assert_eq!(west.held("drill-traffic"), guard(canary.read_back("drill-traffic")).await.unwrap());
}

/// HTTPS through the name: the certificate is checked against the CA in `ca_file` and
/// the service's name (not the address it resolved to); a certificate for another name
/// gets no write acknowledged.
#[tokio::test]
async fn https_checks_the_services_certificate_against_its_name() {
    install_crypto();
    let knot = Knot::start();
    let traffic = Rfc2136Traffic::new(&rfc2136_spec(&knot, Duration::from_secs(1)), Secret::new(knot.secret.clone()));
    guard(traffic.switch("east", 0, 1)).await.unwrap();
    let name = RECORD.trim_end_matches('.');
    for (cert_names, trusted) in [(vec![name], true), (vec!["other.app.test"], false)] {
        let dir = tempfile::tempdir().unwrap();
        let (ca_file, config) = test_tls(dir.path(), &cert_names);
        let service = Service::new(None);
        let port = service.serve_tls(EAST, config).await.port();
        let mut spec = http_spec(
            format!("https://{name}:{port}/drover-canary"),
            true,
            CanaryResolve::Dns { server: Some(knot.addr) },
        );
        let CanaryTarget::Http(http) = &mut spec.target else { unreachable!() };
        http.ca_file = Some(ca_file);
        let canary = Canary::from_spec(&spec, &no_traffic(), &secrets(), None).unwrap();
        let running = canary.start("drill-tls").unwrap();
        until(&running, |s| s.iter().filter(|w| w.target.is_some()).count() >= 5).await;
        let samples = guard(running.stop()).await;
        if trusted {
            assert!(acked(&samples).len() >= 4, "{samples:?}");
            assert_eq!(guard(canary.read_back("drill-tls")).await.unwrap(), service.held("drill-tls"));
        } else {
            assert!(acked(&samples).is_empty(), "{samples:?}");
            assert!(service.held("drill-tls").is_empty());
            let err = guard(canary.read_back("drill-tls")).await.unwrap_err().to_string();
            assert!(err.contains("certificate"), "{err}");
        }
    }
}

fn pg_spec(dsn_env: &str, resolve: CanaryResolve) -> CanarySpec {
    CanarySpec {
        target: CanaryTarget::Postgres(PostgresCanarySpec {
            dsn: SecretRef::Env(dsn_env.into()),
            table: "drover_canary".into(),
        }),
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        resolve,
    }
}

/// The PostgreSQL canary through the service's name (resolved with Knot): rows for every
/// acknowledged write, read back through the name; once the server is fenced (read-only)
/// no write is acknowledged and none lands.
#[tokio::test]
async fn the_postgres_canary_writes_rows_through_the_name_and_a_fenced_server_acknowledges_none() {
    let knot = Knot::start();
    let traffic = Rfc2136Traffic::new(&rfc2136_spec(&knot, Duration::from_secs(1)), Secret::new(knot.secret.clone()));
    guard(traffic.switch("east", 0, 1)).await.unwrap();
    let cluster = pg::Cluster::primary();
    let node = cluster.node("east");
    let dsn = node.dsn().replace("host=127.0.0.1", &format!("host={}", RECORD.trim_end_matches('.')));
    let secrets = Secrets(vec![(SecretRef::Env("SHOP_DSN".into()), dsn)]);
    let canary = Canary::from_spec(
        &pg_spec("SHOP_DSN", CanaryResolve::Dns { server: Some(knot.addr) }),
        &no_traffic(),
        &secrets,
        None,
    )
    .unwrap();
    assert_eq!(canary.describe(), "postgres api.app.test table drover_canary");
    guard(canary.prepare()).await.unwrap();
    guard(canary.prepare()).await.expect("preparing twice is harmless");

    let running = canary.start("drill-pg").unwrap();
    until(&running, |s| acked(s).len() >= 10).await;
    // Fence the server as drover's fence step does: every transaction read-only.
    let admin = cluster.client("east").await;
    // One statement at a time: ALTER SYSTEM refuses to run in the implicit transaction of a batch.
    admin.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on").await.unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    until(&running, |s| s.iter().rev().filter(|w| w.target.is_some()).take(10).all(|w| w.acked_ms.is_none())).await;
    let samples = guard(running.stop()).await;

    let rows: BTreeSet<u64> = admin
        .query("SELECT seq FROM drover_canary WHERE drill = 'drill-pg'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    assert_eq!(rows, acked(&samples), "a row for every acknowledged write and no other");
    let failed: Vec<u64> = samples.iter().filter(|s| s.acked_ms.is_none()).map(|s| s.seq).collect();
    assert!(failed.len() >= 10, "writes to the fenced server failed: {samples:?}");
    assert!(samples.iter().all(|s| s.target.as_deref() == Some(EAST)));
    assert_eq!(guard(canary.read_back("drill-pg")).await.unwrap(), rows, "reading needs no write");
    admin.batch_execute("ALTER SYSTEM RESET default_transaction_read_only").await.unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
}

#[test]
fn a_dsn_that_cannot_reach_the_service_by_name_is_refused_without_showing_it() {
    let cases = [
        ("host=/var/run/postgresql user=u password=pw-s3cret", "Unix socket"),
        ("host=a.example,b.example user=u password=pw-s3cret", "several hosts"),
        ("host=db.example hostaddr=10.0.0.1 user=u password=pw-s3cret", "hostaddr"),
        ("user=u password=pw-s3cret sslmode=sometimes", "sslmode"),
        ("user=u password=pw-s3cret dbname=shop", "names no host"),
    ];
    for (dsn, why) in cases {
        let secrets = Secrets(vec![(SecretRef::Env("SHOP_DSN".into()), dsn.into())]);
        let err =
            Canary::from_spec(&pg_spec("SHOP_DSN", CanaryResolve::Dns { server: None }), &no_traffic(), &secrets, None)
                .err()
                .expect("refused");
        let text = err.to_string();
        assert!(matches!(err, CanaryError::Setup(_)), "{text}");
        assert!(text.contains(why) && !text.contains("s3cret"), "{dsn}: {text}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
