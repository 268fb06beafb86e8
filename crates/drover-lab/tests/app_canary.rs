//! The lab app serves the canary protocol (docs/drill.md) against a real PostgreSQL:
//! the drill's canary writes through it, reads back through it, and the rows are in the
//! app's database; a database that refuses writes (fenced, read-only) gets none
//! acknowledged.

#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use drover_adapters::canary::{Canary, RunningCanary};
use drover_core::drill::WriteSample;
use drover_core::plan::{
    CanaryResolve, CanarySpec, CanaryTarget, HttpCanarySpec, Rfc2136Spec, TrafficSpec, Tsig, TsigAlgorithm,
};
use drover_core::secret::{Secret, SecretRef, SecretSource};

/// Hang guard only.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

struct NoSecrets;

impl SecretSource for NoSecrets {
    fn resolve(&self, _: &SecretRef) -> Result<Secret, String> {
        Err("not set".into())
    }
}

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
async fn the_lab_app_answers_the_canary_protocol_from_its_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = pg::Cluster::primary();
    let admin = cluster.client("east").await;
    drover_lab::create_app_table(&admin).await.unwrap();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", pg::free_port()).parse().unwrap();
    tokio::spawn(drover_lab::app::serve("east".into(), listen, cluster.node("east").dsn()));
    guard(async {
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let spec = CanarySpec {
        target: CanaryTarget::Http(HttpCanarySpec {
            url: format!("http://{listen}/drover-canary"),
            token: None,
            ca_file: None,
        }),
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        resolve: CanaryResolve::Dns { server: None },
    };
    let traffic = TrafficSpec::Rfc2136(Rfc2136Spec {
        server: "127.0.0.1:9".parse().unwrap(),
        zone: "app.test.".into(),
        record: "api.app.test.".into(),
        ttl: Duration::from_secs(5),
        tsig: Tsig { name: "x".into(), algorithm: TsigAlgorithm::HmacSha256, secret: SecretRef::Env("X".into()) },
        targets: BTreeMap::new(),
    });
    let canary = Canary::from_spec(&spec, &traffic, &NoSecrets, None).unwrap();
    let running = canary.start("lab-drill").unwrap();
    until(&running, |s| acked(s).len() >= 10).await;
    // Fenced as drover fences: every transaction read-only; the app answers 503.
    admin.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on").await.unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    until(&running, |s| s.iter().rev().filter(|w| w.target.is_some()).take(10).all(|w| w.acked_ms.is_none())).await;
    let samples = guard(running.stop()).await;

    let rows: BTreeSet<u64> = admin
        .query("SELECT seq FROM lab_canary_writes WHERE drill = 'lab-drill' AND region = 'east'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    assert_eq!(rows, acked(&samples), "a row for every acknowledged write and no other");
    assert!(samples.iter().filter(|s| s.acked_ms.is_none()).count() >= 10);
    assert_eq!(guard(canary.read_back("lab-drill")).await.unwrap(), rows);
    assert!(guard(canary.read_back("another-drill")).await.unwrap().is_empty());
}
