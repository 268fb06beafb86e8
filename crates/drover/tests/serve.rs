//! `drover serve` as a user meets it: a real daemon process on loopback, its
//! API with and without the token, bad requests, and /metrics. The plan's
//! database and DNS point nowhere, so every check fails — which is what a
//! daemon watching a lost world must report.

mod support;

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PLAN, drover, plan_dir, run};

const TOKEN: &str = "s3cret-token-for-tests";

struct Daemon {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(plan: &str) -> Daemon {
    start_as("east", plan)
}

fn start_as(vantage: &str, plan: &str) -> Daemon {
    start_with(vantage, plan, &[])
}

fn start_with(vantage: &str, plan: &str, extra: &[&str]) -> Daemon {
    let dir = plan_dir(plan);
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let child = drover()
        .args(["serve", "--vantage", vantage, "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
        .arg(dir.path().join("token"))
        .arg("--plan")
        .arg(dir.path().join("plan.yaml"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start drover serve");
    let daemon = Daemon { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
    wait_for(&daemon, "/healthz", 200);
    daemon
}

fn client() -> reqwest::blocking::Client {
    // reqwest is built without a bundled TLS provider; plain HTTP still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Polls a path until it answers `status`; the deadline is a hang guard only.
fn wait_for(d: &Daemon, path: &str, status: u16) -> reqwest::blocking::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client().get(format!("{}{path}", d.base)).send()
            && r.status().as_u16() == status
        {
            return r;
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(d: &Daemon, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = client().post(format!("{}{path}", d.base)).body(body.to_string());
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn changes_need_the_token_and_bad_requests_name_the_field() {
    let d = start(PLAN);
    let start_run = r#"{"kind": "failover", "to": "west"}"#;
    let (status, body) = post(&d, "/api/v1/runs", None, start_run);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bearer token"), "{body}");
    assert_eq!(post(&d, "/api/v1/runs", Some("wrong"), start_run).0, 401);
    assert_eq!(post(&d, "/api/v1/runs/r1-x/abort", None, r#"{"reason": "x"}"#).0, 401);

    let (status, body) = post(&d, "/api/v1/runs", Some(TOKEN), r#"{"kind": "failover"}"#);
    assert_eq!((status, &body["field"]), (400, &json!("to")), "{body}");
    let (status, body) = post(&d, "/api/v1/runs", Some(TOKEN), r#"{"kind": "failover", "to": "west""#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("invalid request body"), "{body}");
    let (status, body) = post(&d, "/api/v1/runs", Some(TOKEN), r#"{"kind": "failover", "to": "mars"}"#);
    assert_eq!((status, &body["field"]), (400, &json!("to")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("not in the plan"), "{body}");

    // A well-formed request the planner refuses: 409 with the reason, nothing journaled.
    let (status, body) = post(&d, "/api/v1/runs", Some(TOKEN), start_run);
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("region 'west' is unhealthy"), "{body}");
    let runs: Value = client().get(format!("{}/api/v1/runs", d.base)).send().unwrap().json().unwrap();
    assert_eq!(runs, json!([]));

    let (status, body) = post(&d, "/api/v1/runs/r1-nope/approve", Some(TOKEN), "");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no run with id r1-nope"), "{body}");
    // The token never comes back in an answer.
    assert!(!body.to_string().contains(TOKEN));
}

#[test]
fn reads_regions_metrics_and_the_openapi_document() {
    let d = start(PLAN);
    wait_for(&d, "/readyz", 200);
    let openapi: Value = client().get(format!("{}/api/v1/openapi.json", d.base)).send().unwrap().json().unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    let plan: Value = client().get(format!("{}/api/v1/plan", d.base)).send().unwrap().json().unwrap();
    assert_eq!(plan["plan"], "shop");

    // Every check points nowhere: after its failure threshold, east is down to this one vantage.
    let deadline = Instant::now() + Duration::from_secs(60);
    let regions = loop {
        let r: Value = client().get(format!("{}/api/v1/regions", d.base)).send().unwrap().json().unwrap();
        if r["regions"][0]["verdict"]["verdict"] == "down" {
            break r;
        }
        assert!(Instant::now() < deadline, "east never judged down: {r:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(regions["vantage"], "east");
    assert_eq!(regions["regions"][0]["verdict"]["down_votes"], json!(["east"]));
    assert_eq!(regions["regions"][0]["checks"][0]["health"], "unhealthy");

    let metrics = client().get(format!("{}/metrics", d.base)).send().unwrap().text().unwrap();
    for series in [
        r#"drover_check_healthy{vantage="east",region="east",check="api"} 0"#,
        r#"drover_check_up{vantage="east",region="west",check="api"} 0"#,
        "drover_check_latency_seconds{",
        r#"drover_region_verdict{region="east",verdict="down"} 1"#,
        r#"drover_database_role{region="east",role="unreachable"} 1"#,
        "# TYPE drover_database_replication_lag_bytes gauge",
        "# TYPE drover_database_replication_lag_seconds gauge",
        r#"drover_autopilot_refusals_total{gate="cooldown"} 0"#,
        "# TYPE drover_last_failover_timestamp_seconds gauge",
        "# TYPE drover_last_failover_duration_seconds gauge",
        "# TYPE drover_run_step_duration_seconds gauge",
        "drover_runs_active 0",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series}:\n{metrics}");
    }
}

#[test]
fn serving_off_loopback_without_a_token_is_refused() {
    let dir = plan_dir(PLAN);
    let ran = run(drover().args(["serve", "--listen", "0.0.0.0:0", "--plan"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("give --token-file"), "{}", ran.stderr);
}

/// Accepts HTTP requests on loopback and keeps each body; answers 200.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (port, rx)
}

#[test]
fn a_refused_automatic_failover_is_counted_and_notified() {
    let (port, bodies) = webhook_receiver();
    let plan =
        format!("{PLAN}notify:\n  webhooks:\n    audit: {{ kind: json, url: \"http://127.0.0.1:{port}/hook\" }}\n");
    // Every check fails, so east is down to this vantage (quorum 1) but west is no better.
    // The vantage is named after no region, so it may act wherever it sees the primary down.
    let d = start_as("ops", &plan);
    let deadline = Instant::now() + Duration::from_secs(60);
    let event: Value = loop {
        let body = bodies.recv_timeout(Duration::from_secs(60)).expect("no notification within 60s");
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["event"] == "failover_refused" {
            break v;
        }
        assert!(Instant::now() < deadline, "no failover_refused notification");
    };
    assert_eq!(event["plan"], "shop");
    let reason = event["reason"].as_str().unwrap();
    assert!(reason.contains("no standby region is healthy enough to take over from east"), "{reason}");
    let metrics = client().get(format!("{}/metrics", d.base)).send().unwrap().text().unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with(r#"drover_autopilot_refusals_total{gate="standby_unhealthy"}"#))
        .unwrap();
    assert_ne!(line.rsplit(' ').next(), Some("0"), "the refusal is counted: {line}");
    assert!(bodies.recv_timeout(Duration::from_secs(3)).is_err(), "the same refusal is notified once, not every round");
}

#[test]
fn the_cli_asks_a_running_daemon_with_server() {
    let d = start(PLAN);
    let token_file = d._dir.path().join("token");
    let remote = |args: &[&str], token: bool| {
        let mut cmd = drover();
        cmd.args(args).args(["--server", &d.base]);
        if token {
            cmd.arg("--token-file").arg(&token_file);
        }
        run(&mut cmd)
    };
    let runs = remote(&["runs"], false);
    assert_eq!((runs.code, runs.stdout.as_str()), (0, "no runs yet\n"), "{}", runs.stderr);
    wait_for(&d, "/readyz", 200);
    let status = remote(&["status"], false);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.starts_with("vantage east (heard from: east)\n"), "{}", status.stdout);
    assert!(status.stdout.contains("REGION   ROLE     VERDICT"), "{}", status.stdout);

    let no_token = remote(&["failover", "--to", "west", "--yes"], false);
    assert_eq!(no_token.code, 2, "{}", no_token.stderr);
    assert!(
        no_token.stderr.contains("bearer token (Authorization: Bearer …) (give --token-file)"),
        "{}",
        no_token.stderr
    );
    let refused = remote(&["failover", "--to", "west", "--yes"], true);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("failover refused: region 'west' is unhealthy"), "{}", refused.stderr);
    let unknown = remote(&["abort", "r1-nope"], true);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no run with id r1-nope"), "{}", unknown.stderr);

    let nowhere = run(drover().args(["runs", "--server", "http://127.0.0.1:9"]));
    assert_eq!(nowhere.code, 1, "{}", nowhere.stderr);
    assert!(nowhere.stderr.contains("cannot reach the daemon at http://127.0.0.1:9"), "{}", nowhere.stderr);
}

/// `drover_leader` as a daemon's /metrics reports it (None while unreachable).
fn leads(d: &Daemon) -> Option<bool> {
    let text = client().get(format!("{}/metrics", d.base)).send().ok()?.text().ok()?;
    let line = text.lines().find(|l| l.starts_with("drover_leader{"))?;
    Some(line.ends_with(" 1"))
}

#[test]
fn with_an_etcd_store_one_daemon_leads_and_a_follower_sends_changes_to_it() {
    let etcd = support::Etcd::start();
    let store = etcd.store("serve-ha");
    let args = ["--store", store.as_str(), "--lease-ttl", "2"];
    let mut east = start_with("east", PLAN, &args);
    let west = start_with("west", PLAN, &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leader, follower) = loop {
        match (leads(&east), leads(&west)) {
            (Some(true), Some(false)) => break ("east", &west),
            (Some(false), Some(true)) => break ("west", &east),
            (Some(true), Some(true)) => panic!("two daemons lead at once"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "no daemon took the lead within 30s");
        std::thread::sleep(Duration::from_millis(100));
    };
    // A follower starts nothing: it names the leader, so the client can go there.
    let (status, body) = post(follower, "/api/v1/runs", Some(TOKEN), r#"{"kind": "failover", "to": "west"}"#);
    assert_eq!(status, 409, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("does not lead") && error.contains(&format!("{leader} leads")), "{error}");
    let (status, body) = post(follower, "/api/v1/runs", Some(TOKEN), r#"{"kind": "reprotect", "region": "east"}"#);
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&format!("{leader} leads")), "{body}");
    // The leader plans a reprotect: a region the plan does not know is bad input, named.
    let leading = if leader == "east" { &east } else { &west };
    let (status, body) = post(leading, "/api/v1/runs", Some(TOKEN), r#"{"kind": "reprotect", "region": "nowhere"}"#);
    assert_eq!((status, body["field"].as_str()), (400, Some("region")), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("reprotect refused: region 'nowhere' is not in the plan"),
        "{body}"
    );
    // A person's command on the same store is sent to the leader too, whatever the run:
    // nothing is journaled here.
    for command in [&["failover", "--to", "west"][..], &["reprotect", "--region", "east"], &["failback"]] {
        let ran = run(drover()
            .args(command)
            .args(["--yes", "--store", store.as_str(), "--plan"])
            .arg(east._dir.path().join("plan.yaml")));
        assert_eq!(ran.code, 2, "{command:?}: {}\n{}", ran.stdout, ran.stderr);
        assert!(ran.stderr.contains(&format!("the {leader} daemon leads them")), "{command:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("--server"), "{}", ran.stderr);
    }
    let runs = run(drover()
        .args(["runs", "-o", "json", "--store", store.as_str(), "--plan"])
        .arg(east._dir.path().join("plan.yaml")));
    assert_eq!(runs.stdout.trim(), "[]", "a refused command journaled a run: {}", runs.stderr);

    // The leader dies (SIGKILL: its lease is not revoked, it expires): the other takes over.
    if leader == "east" {
        let _ = east.child.kill();
        let _ = east.child.wait();
        let deadline = Instant::now() + Duration::from_secs(30);
        while leads(&west) != Some(true) {
            assert!(Instant::now() < deadline, "west did not take over within 30s of east's death");
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        drop(west);
        let deadline = Instant::now() + Duration::from_secs(30);
        while leads(&east) != Some(true) {
            assert!(Instant::now() < deadline, "east did not take over within 30s of west's death");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn peers_are_refused_with_an_etcd_store() {
    let dir = plan_dir(PLAN);
    let ran = run(drover()
        .args(["serve", "--store", "etcd://127.0.0.1:2379/x", "--peer", "west=https://10.0.0.2:7070", "--plan"])
        .arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("--peer is not used with --store etcd://"), "{}", ran.stderr);
}

fn metric(d: &Daemon, sample: &str) -> Option<f64> {
    let text = client().get(format!("{}/metrics", d.base)).send().ok()?.text().ok()?;
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// Stand-in: each region's cluster is drover-backup's in-memory stand-in served over HTTP
/// (no Kubernetes API server can be installed here).
#[test]
fn the_backup_schedule_backs_up_the_primary_regions_cluster_and_keeps_the_last_two() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::standin::http::ApiServer;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let kube = tempfile::tempdir().unwrap();
    let (east, west) = (std::sync::Arc::new(MemoryCluster::new()), std::sync::Arc::new(MemoryCluster::new()));
    east.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    east.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "live"}}));
    let apis = rt.block_on(async { (ApiServer::start(east).await, ApiServer::start(west).await) });
    let plan = format!(
        "{PLAN}backup:\n  schedule: 1s\n  keep: {{ last: 2 }}\n  clusters:\n    east: {{ kubeconfig: {}, context: east }}\n    west: {{ kubeconfig: {}, context: west }}\n  stores:\n    east: {{ dir: DIR/backups-east }}\n    west: {{ dir: DIR/backups-west }}\n",
        apis.0.write_kubeconfig(kube.path(), "east").display(),
        apis.1.write_kubeconfig(kube.path(), "west").display(),
    );
    // The witness acts: east and west are judged down (their checks point nowhere), and the
    // planned primary, east, is the region backed up.
    let d = start_as("witness", &plan);
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric(&d, "drover_backups_total{result=\"ok\"}").unwrap_or(0.0) < 3.0 {
        assert!(Instant::now() < deadline, "three scheduled backups never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&d, "drover_backup_last_objects"), Some(2.0), "the Namespace and the ConfigMap");
    let last = metric(&d, "drover_backup_last_success_timestamp_seconds").expect("a last success time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} is not recent");
    for store in ["backups-east", "backups-west"] {
        let ids: Vec<String> = std::fs::read_dir(d._dir.path().join(store).join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // Retention after each backup: never more than keep.last (plus one being written).
        assert!((2..=3).contains(&ids.len()), "{store}: {ids:?}");
        assert!(ids.iter().all(|id| id.ends_with("-east")), "{store}: {ids:?}");
    }
}

/// A restart does not mean a backup: the next is due a period after the newest in the stores.
#[test]
fn a_restarted_daemon_waits_a_period_after_the_newest_backup() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::standin::http::ApiServer;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let kube = tempfile::tempdir().unwrap();
    let (east, west) = (std::sync::Arc::new(MemoryCluster::new()), std::sync::Arc::new(MemoryCluster::new()));
    east.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let apis = rt.block_on(async { (ApiServer::start(east).await, ApiServer::start(west).await) });
    let stores = tempfile::tempdir().unwrap();
    let plan = format!(
        "{PLAN}backup:\n  schedule: 1h\n  clusters:\n    east: {{ kubeconfig: {}, context: east }}\n    west: {{ kubeconfig: {}, context: west }}\n  stores:\n    east: {{ dir: {s}/east }}\n    west: {{ dir: {s}/west }}\n",
        apis.0.write_kubeconfig(kube.path(), "east").display(),
        apis.1.write_kubeconfig(kube.path(), "west").display(),
        s = stores.path().display(),
    );
    // A backup taken a minute ago, by this daemon before its restart or by another.
    let taken = std::time::SystemTime::now() - Duration::from_secs(60);
    let at = time::OffsetDateTime::from(taken);
    let id = drover_backup::backup::backup_id(at, "east");
    for region in ["east", "west"] {
        let index = stores.path().join(region).join("backups").join(&id);
        std::fs::create_dir_all(&index).unwrap();
        let body = json!({"format": 1, "id": id, "created": "x", "plan": "shop", "region": "east", "objects": []});
        std::fs::write(index.join("index.json"), body.to_string()).unwrap();
    }
    let d = start_as("witness", &plan);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&d, "drover_backup_last_success_timestamp_seconds").is_none() {
        assert!(Instant::now() < deadline, "the newest backup's time never showed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = metric(&d, "drover_backup_last_success_timestamp_seconds").unwrap();
    let expected = (at.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0;
    assert!((shown - expected).abs() < 0.002, "{shown} is not the seeded backup's time {expected}");
    // Several autopilot rounds later the witness acts, and still takes none: one is due in 59 minutes.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(metric(&d, "drover_backups_total{result=\"ok\"}"), Some(0.0));
    assert_eq!(std::fs::read_dir(stores.path().join("east").join("backups")).unwrap().count(), 1);
}

/// Only the daemon that acts backs up: one whose own region is judged down does not.
#[test]
fn a_daemon_that_does_not_act_takes_no_backup() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::standin::http::ApiServer;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let kube = tempfile::tempdir().unwrap();
    let (east, west) = (std::sync::Arc::new(MemoryCluster::new()), std::sync::Arc::new(MemoryCluster::new()));
    east.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let apis = rt.block_on(async { (ApiServer::start(east).await, ApiServer::start(west).await) });
    let plan = format!(
        "{PLAN}backup:\n  schedule: 1s\n  clusters:\n    east: {{ kubeconfig: {}, context: east }}\n    west: {{ kubeconfig: {}, context: west }}\n  stores:\n    east: {{ dir: DIR/backups-east }}\n    west: {{ dir: DIR/backups-west }}\n",
        apis.0.write_kubeconfig(kube.path(), "east").display(),
        apis.1.write_kubeconfig(kube.path(), "west").display(),
    );
    // This vantage is in west, and west's checks point nowhere: once judged down, it never acts.
    let d = start_as("west", &plan);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r: Value = client().get(format!("{}/api/v1/regions", d.base)).send().unwrap().json().unwrap();
        let west = r["regions"].as_array().unwrap().iter().find(|v| v["region"] == "west").cloned().unwrap();
        if west["verdict"]["verdict"] == "down" {
            break;
        }
        assert!(Instant::now() < deadline, "west never judged down: {r:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Before its region was judged it may have acted; from now on it must not.
    let taken = metric(&d, "drover_backups_total{result=\"ok\"}").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(metric(&d, "drover_backups_total{result=\"ok\"}"), Some(taken), "a daemon that does not act backed up");
}

/// What the fake peer answers.
#[derive(Clone, Copy, PartialEq)]
enum PeerAnswer {
    /// A report that calls east down, under a new vantage name on every request.
    RotatingNames,
    /// The same report as `west`, claiming never to expire.
    AsWestForever,
    /// 503: the peer is gone.
    Gone,
}

/// A peer on loopback that answers `GET /api/v1/vantage` as told.
fn fake_peer() -> (u16, std::sync::Arc<std::sync::Mutex<PeerAnswer>>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::sync::Arc::new(std::sync::Mutex::new(PeerAnswer::RotatingNames));
    let mode = answer.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let view = |down: bool| json!({ "checks": {}, "down": down, "up": !down });
            let report = |name: String| {
                json!({ "vantage": name, "at_ms": 0, "expires_ms": u64::MAX,
                        "regions": { "east": view(true), "west": view(false) } })
                .to_string()
            };
            let (status, body) = match *mode.lock().unwrap() {
                // "aaa…" sorts first: it would also become the acting vantage.
                PeerAnswer::RotatingNames => ("200 OK", report(format!("aaa-fake-{n}"))),
                PeerAnswer::AsWestForever => ("200 OK", report("west".into())),
                PeerAnswer::Gone => ("503 Service Unavailable", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, answer)
}

fn east_votes(d: &Daemon) -> (Value, Value) {
    let r: Value = client().get(format!("{}/api/v1/regions", d.base)).send().unwrap().json().unwrap();
    let east = r["regions"].as_array().unwrap().iter().find(|g| g["region"] == "east").unwrap().clone();
    (east["verdict"]["down_votes"].clone(), east["verdict"]["verdict"].clone())
}

/// With a quorum of 2, one real vantage (east, whose checks all fail) and one peer: a peer
/// answering under ever new names adds no votes; answering as the `west` it was given, it
/// counts — and only while it answers, whatever expiry its report claims.
#[test]
fn a_peer_counts_only_under_its_given_name_and_only_while_it_answers() {
    let (port, answer) = fake_peer();
    let plan = format!("{PLAN}policy:\n  quorum: 2\n");
    let d = start_with("east", &plan, &["--peer", &format!("west=http://127.0.0.1:{port}")]);
    let until = |what: &str, done: &dyn Fn(&Value, &Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (votes, verdict) = east_votes(&d);
            if done(&votes, &verdict) {
                return (votes, verdict);
            }
            assert!(Instant::now() < deadline, "{what}: votes {votes}, verdict {verdict}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("east's own down vote", &|votes, _| *votes == json!(["east"]));
    // Many rounds of new names: still only east's vote, and no verdict.
    std::thread::sleep(Duration::from_secs(3));
    let (votes, verdict) = east_votes(&d);
    assert_eq!(votes, json!(["east"]), "a peer's made-up names voted");
    assert_ne!(verdict, "down", "one real vote reached a quorum of 2");

    *answer.lock().unwrap() = PeerAnswer::AsWestForever;
    until("the peer's vote as west", &|votes, verdict| *votes == json!(["east", "west"]) && verdict == "down");

    *answer.lock().unwrap() = PeerAnswer::Gone;
    let (_, verdict) = until("the gone peer's vote to expire", &|votes, _| *votes == json!(["east"]));
    assert_ne!(verdict, "down");
}

#[test]
fn a_peer_without_a_name_or_named_like_the_daemon_is_refused() {
    let dir = plan_dir(PLAN);
    for (peer, said) in [
        (
            "http://10.0.0.2:7070",
            "--peer http://10.0.0.2:7070: name the vantage it is, e.g. --peer west=http://10.0.0.2:7070",
        ),
        ("east=http://10.0.0.2:7070", "'east' is this daemon's own --vantage"),
    ] {
        let ran = run(drover()
            .args(["serve", "--vantage", "east", "--peer", peer, "--plan"])
            .arg(dir.path().join("plan.yaml")));
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert!(ran.stderr.contains(said), "{}", ran.stderr);
    }
}
