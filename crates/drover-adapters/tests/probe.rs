//! The check prober against real endpoints: a tiny local HTTP server with canned
//! answers, plain TCP ports, and a real PostgreSQL server.

#[path = "support/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use drover_adapters::probe::CheckProber;
use drover_core::plan::{Check, Probe};
use drover_core::secret::Secret;
use drover_core::world::{ProbeResult, Prober};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Hang guard only.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

fn check(probe: Probe, timeout: Duration) -> Check {
    Check {
        name: "api".into(),
        probe,
        interval: Duration::from_secs(1),
        timeout,
        failure_threshold: 3,
        success_threshold: 2,
        per_region: true,
        critical: true,
    }
}

fn http(url: String, status: u16, body: Option<&str>) -> Probe {
    Probe::Http { url, status, body_contains: body.map(String::from) }
}

fn prober() -> CheckProber {
    let _ = rustls::crypto::ring::default_provider().install_default();
    CheckProber::new(BTreeMap::from([("east".to_string(), LOCALHOST)]), BTreeMap::new())
}

/// Answers by path: `/ok` 200 "status: ok", `/down` 503, `/starting` 200 "starting",
/// `/slow` after 10 s, `/host` 200 with the request's Host header as body.
async fn canned_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")))
                    .unwrap_or("")
                    .to_string();
                let (status, body) = match path.as_str() {
                    "/ok" => ("200 OK", "status: ok".to_string()),
                    "/down" => ("503 Service Unavailable", "down".to_string()),
                    "/starting" => ("200 OK", "starting".to_string()),
                    "/host" => ("200 OK", host),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        ("200 OK", "late".to_string())
                    }
                    _ => ("404 Not Found", String::new()),
                };
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

async fn run(prober: &CheckProber, probe: Probe, timeout: Duration) -> ProbeResult {
    prober.probe(&check(probe, timeout), "east").await
}

#[tokio::test]
async fn http_ok_when_status_and_body_match() {
    guard(async {
        let port = canned_server().await.port();
        let r =
            run(&prober(), http(format!("http://{{target}}:{port}/ok"), 200, Some("ok")), Duration::from_secs(5)).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.detail, "200 OK");
    })
    .await;
}

#[tokio::test]
async fn http_status_mismatch_says_what_came_back() {
    guard(async {
        let port = canned_server().await.port();
        let r = run(&prober(), http(format!("http://{{target}}:{port}/down"), 200, None), Duration::from_secs(5)).await;
        assert!(!r.ok);
        assert_eq!(r.detail, "status 503, expected 200");
    })
    .await;
}

#[tokio::test]
async fn http_body_mismatch_names_the_missing_text() {
    guard(async {
        let port = canned_server().await.port();
        let url = format!("http://{{target}}:{port}/starting");
        let r = run(&prober(), http(url, 200, Some("ok")), Duration::from_secs(5)).await;
        assert!(!r.ok);
        assert_eq!(r.detail, r#"body lacks "ok""#);
    })
    .await;
}

#[tokio::test]
async fn http_timeout_fails_within_the_check_timeout() {
    guard(async {
        let port = canned_server().await.port();
        let url = format!("http://{{target}}:{port}/slow");
        let r = run(&prober(), http(url, 200, None), Duration::from_millis(500)).await;
        assert!(!r.ok);
        assert_eq!(r.detail, "timeout after 500ms");
    })
    .await;
}

#[tokio::test]
async fn http_connection_refused() {
    guard(async {
        let port = pg::free_port();
        let r = run(&prober(), http(format!("http://{{target}}:{port}/ok"), 200, None), Duration::from_secs(5)).await;
        assert!(!r.ok);
        assert_eq!(r.detail, "connection refused");
    })
    .await;
}

#[tokio::test]
async fn http_named_host_is_sent_to_the_region_target() {
    guard(async {
        let port = canned_server().await.port();
        // No {target}: the name is kept (Host header, SNI) and resolved to the region's address.
        let url = format!("http://api.app.test:{port}/host");
        let r = run(&prober(), http(url, 200, Some("api.app.test")), Duration::from_secs(5)).await;
        assert!(r.ok, "{r:?}");
    })
    .await;
}

#[tokio::test]
async fn region_without_target_is_a_failed_probe_not_a_panic() {
    guard(async {
        let r = prober()
            .probe(&check(http("http://{target}:1/ok".into(), 200, None), Duration::from_secs(1)), "west")
            .await;
        assert!(!r.ok);
        assert_eq!(r.detail, "no target address for region west");
    })
    .await;
}

#[tokio::test]
async fn tcp_ok_and_refused() {
    guard(async {
        let port = canned_server().await.port();
        let prober = prober();
        let ok = run(&prober, Probe::Tcp { address: format!("{{target}}:{port}") }, Duration::from_secs(5)).await;
        assert!(ok.ok, "{ok:?}");
        let closed = pg::free_port();
        let refused =
            run(&prober, Probe::Tcp { address: format!("{{target}}:{closed}") }, Duration::from_secs(5)).await;
        assert!(!refused.ok);
        assert_eq!(refused.detail, "connection refused");
    })
    .await;
}

#[tokio::test]
async fn postgres_ok_and_refused_without_leaking_the_password() {
    let cluster = pg::Cluster::primary();
    guard(async {
        let up = CheckProber::new(
            BTreeMap::new(),
            BTreeMap::from([("east".to_string(), Secret::new(cluster.node("east").dsn()))]),
        );
        let ok = run(&up, Probe::Postgres, Duration::from_secs(5)).await;
        assert!(ok.ok, "{ok:?}");
        assert_eq!(ok.detail, "SELECT 1 ok");

        let closed = pg::free_port();
        let dsn = format!("host=127.0.0.1 port={closed} user=drover password={} dbname=postgres", pg::PASSWORD);
        let down = CheckProber::new(BTreeMap::new(), BTreeMap::from([("east".to_string(), Secret::new(dsn))]));
        let refused = run(&down, Probe::Postgres, Duration::from_secs(5)).await;
        assert!(!refused.ok);
        assert_eq!(refused.detail, "connection refused");

        let wrong = "wrong-pw-19";
        let dsn =
            format!("host=127.0.0.1 port={} user=drover password={wrong} dbname=postgres", cluster.node("east").port);
        let denied = CheckProber::new(BTreeMap::new(), BTreeMap::from([("east".to_string(), Secret::new(dsn))]));
        let r = run(&denied, Probe::Postgres, Duration::from_secs(5)).await;
        assert!(!r.ok);
        assert!(r.detail.contains("28P01") && !r.detail.contains(wrong), "{}", r.detail);
    })
    .await;
}
