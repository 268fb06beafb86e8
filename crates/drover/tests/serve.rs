//! `drover serve` as a user meets it: a real daemon process on loopback, its
//! API with and without the token (and each token's role), bad requests, /metrics, and
//! peers' reports with and without the plan's peer key. The plan's
//! database and DNS point nowhere, so every check fails — which is what a
//! daemon watching a lost world must report.

mod support;

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PLAN, drover, plan_dir, run};

/// The operator token of every daemon started here (a file of one bare token, the
/// format before names, unless a test writes its own).
const TOKEN: &str = "s3cret-token-for-tests";
/// The plan's peer key where a plan references `DIR/peer.key`.
const PEER_KEY: &[u8] = b"peer-key-s3cret-0123456789abcdef0123";

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
    start_in(plan_dir(plan), vantage, &format!("{TOKEN}\n"), extra)
}

/// A daemon on a plan directory prepared by the caller, with `tokens` as its --token-file.
fn start_in(dir: tempfile::TempDir, vantage: &str, tokens: &str, extra: &[&str]) -> Daemon {
    let (mut serve, port) = serve_in(dir.path(), vantage, tokens, extra);
    let child = serve.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start drover serve");
    let daemon = Daemon { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
    wait_for(&daemon, "/healthz", 200);
    daemon
}

/// The command that starts a daemon on the plan in `dir`, and the port it listens on.
fn serve_in(dir: &std::path::Path, vantage: &str, tokens: &str, extra: &[&str]) -> (std::process::Command, u16) {
    support::write_secret(dir.join("token"), tokens);
    support::write_secret(dir.join("peer.key"), PEER_KEY);
    let port = free_port();
    let mut serve = drover();
    serve
        .args(["serve", "--vantage", vantage, "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
        .arg(dir.join("token"))
        .arg("--plan")
        .arg(dir.join("plan.yaml"))
        .args(extra);
    (serve, port)
}

/// A client that sends the operator token: reads need one (no --open-reads here).
fn client() -> reqwest::blocking::Client {
    with_token(TOKEN)
}

fn with_token(token: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    builder().default_headers(headers).build().unwrap()
}

/// A client that sends no token.
fn anonymous() -> reqwest::blocking::Client {
    builder().build().unwrap()
}

fn builder() -> reqwest::blocking::ClientBuilder {
    // reqwest is built without a bundled TLS provider; plain HTTP still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30))
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
    let mut request = anonymous().post(format!("{}{path}", d.base)).body(body.to_string());
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
    assert_eq!(runs, json!({"runs": [], "next": null}));
    // One page at a time: a bad page size or parameter is a 400 naming it.
    for (query, field, says) in [
        ("limit=0", "limit", "'0' is not a page size; write a whole number from 1 to 500"),
        ("limit=many", "limit", "'many' is not a page size"),
        ("page=2", "page", "unknown query parameter 'page'; allowed: limit, before"),
    ] {
        let answer = client().get(format!("{}/api/v1/runs?{query}", d.base)).send().unwrap();
        assert_eq!(answer.status(), 400, "{query}");
        let body: Value = answer.json().unwrap();
        assert_eq!(body["field"], field, "{body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    let unknown = client().get(format!("{}/api/v1/runs?limit=5&before=r1-nope", d.base)).send().unwrap();
    assert_eq!(unknown.status(), 404);

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
        r#"drover_loop_restarts_total{loop="world"} 0"#,
        r#"drover_loop_restarts_total{loop="probe east/api"} 0"#,
        r#"drover_loop_heartbeat_age_seconds{loop="autopilot"} "#,
        "drover_journal_readable 1",
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
    // Reads need the token too, on loopback as anywhere (no --open-reads).
    let anonymous = remote(&["runs"], false);
    assert_eq!(anonymous.code, 2, "{}", anonymous.stderr);
    assert!(anonymous.stderr.contains("bearer token"), "{}", anonymous.stderr);
    let runs = remote(&["runs"], true);
    assert_eq!((runs.code, runs.stdout.as_str()), (0, "no runs yet\n"), "{}", runs.stderr);
    wait_for(&d, "/readyz", 200);
    let status = remote(&["status"], true);
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

/// The drill history through the API and `drover drills --server`.
#[test]
fn the_daemon_serves_the_drill_history() {
    let dir = plan_dir(PLAN);
    {
        let journal = drover_store::RedbJournal::open(&dir.path().join(".drover")).unwrap();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(support::drills::seed(&journal));
    }
    let d = start_in(dir, "east", &format!("{TOKEN}\n"), &[]);
    let page: Value = client().get(format!("{}/api/v1/drills?limit=2", d.base)).send().unwrap().json().unwrap();
    let ids: Vec<&str> = page["drills"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        (ids, &page["next"]),
        (vec!["d1700000200000-0003", "d1700000100000-0002"], &json!("d1700000100000-0002"))
    );
    let drill: Value =
        client().get(format!("{}/api/v1/drills/d1700000000000-0001", d.base)).send().unwrap().json().unwrap();
    assert_eq!(drill["report"]["rto_ms"], 4_120, "{drill:#}");
    let unknown = client().get(format!("{}/api/v1/drills/d-nope", d.base)).send().unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(anonymous().get(format!("{}/api/v1/drills", d.base)).send().unwrap().status(), 401);

    let token_file = d._dir.path().join("token");
    let remote =
        |args: &[&str]| run(drover().args(args).args(["--server", &d.base]).arg("--token-file").arg(&token_file));
    let listed = remote(&["drills", "--before", "d1700000100000-0002"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("d1700000000000-0001") && listed.stdout.contains("4120 ms"), "{}", listed.stdout);
    let shown = remote(&["drills", "show", "d1700000000000-0001", "-o", "markdown"]);
    assert_eq!(shown.stdout, support::drills::report().to_markdown(), "{}", shown.stderr);
    let refused = remote(&["drills", "show", "d-nope"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("no drill with id d-nope"), "{}", refused.stderr);
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
    // Through etcd the plan must list its vantages: without a list it is refused (exit 2).
    let bare = plan_dir(PLAN);
    let unlisted = run(drover()
        .args(["serve", "--store", store.as_str(), "--open-reads", "--plan"])
        .arg(bare.path().join("plan.yaml")));
    assert_eq!(unlisted.code, 2, "{}", unlisted.stderr);
    assert!(unlisted.stderr.contains("the plan must list its vantages"), "{}", unlisted.stderr);
    let plan = format!("{PLAN}vantages: {{ names: [east, west, witness] }}\n");
    let mut east = start_with("east", &plan, &args);
    let west = start_with("west", &plan, &args);
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
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs["runs"], json!([]), "a refused command journaled a run: {runs}");

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

/// After a failover, the new primary's scheduled backups do not push the lost region's out:
/// with `keep: {last: 2}`, the stores hold three backups of west (primary until it was
/// lost) when the daemon, east now primary, takes five of east; west's newest two stay.
#[test]
fn scheduled_retention_after_a_failover_keeps_the_lost_regions_newest_backups() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::standin::http::ApiServer;
    use drover_backup::{BackupRequest, BackupStore, create_backup};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let kube = tempfile::tempdir().unwrap();
    let (east, west) = (std::sync::Arc::new(MemoryCluster::new()), std::sync::Arc::new(MemoryCluster::new()));
    for cluster in [&east, &west] {
        cluster.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    }
    let apis = rt.block_on(async { (ApiServer::start(east).await, ApiServer::start(west.clone()).await) });
    let plan = format!(
        "{PLAN}backup:\n  schedule: 1s\n  keep: {{ last: 2 }}\n  clusters:\n    east: {{ kubeconfig: {}, context: east }}\n    west: {{ kubeconfig: {}, context: west }}\n  stores:\n    east: {{ dir: DIR/backups-east }}\n    west: {{ dir: DIR/backups-west }}\n",
        apis.0.write_kubeconfig(kube.path(), "east").display(),
        apis.1.write_kubeconfig(kube.path(), "west").display(),
    );
    let dir = plan_dir(&plan);
    let stores: Vec<BackupStore> = ["east", "west"]
        .iter()
        .map(|r| BackupStore::local(r, &dir.path().join(format!("backups-{r}"))).unwrap())
        .collect();
    let request = BackupRequest {
        plan: "shop".into(),
        region: "west".into(),
        namespaces: vec![],
        selector: None,
        secrets: None,
        progress: None,
    };
    let lost = [
        time::macros::datetime!(2026-11-20 10:00:00 UTC),
        time::macros::datetime!(2026-11-21 10:00:00 UTC),
        time::macros::datetime!(2026-11-22 10:00:00 UTC),
    ];
    rt.block_on(async {
        for at in lost {
            create_backup(west.as_ref(), &stores, &request, at).await.unwrap();
        }
    });
    let d = start_in(dir, "witness", &format!("{TOKEN}\n"), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(&d, "drover_backups_total{result=\"ok\"}").unwrap_or(0.0) < 5.0 {
        assert!(Instant::now() < deadline, "five scheduled backups never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Retention runs after each backup; the fifth's may still be running: read after it.
    std::thread::sleep(Duration::from_secs(2));
    for store in ["backups-east", "backups-west"] {
        let mut ids: Vec<String> = std::fs::read_dir(d._dir.path().join(store).join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        ids.sort();
        let of = |region: &str| ids.iter().filter(|id| id.ends_with(region)).cloned().collect::<Vec<_>>();
        assert_eq!(of("-west"), ["20261121-100000-000-west", "20261122-100000-000-west"], "{store}: {ids:?}");
        assert!((2..=3).contains(&of("-east").len()), "{store}: {ids:?}");
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

/// What the signing fake peer answers: always a report that calls east down.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signed {
    /// As west, signed with the plan's key, now.
    Right,
    /// As west, signed with another key.
    WrongKey,
    /// As west, with no signature.
    Unsigned,
    /// As west, signed with the plan's key a minute ago (a captured report, replayed).
    Replayed,
    /// Signed with the plan's key, under a new name on every request.
    RotatingNames,
}

/// A peer on loopback that signs its reports as `mode` says.
fn signing_peer() -> (u16, std::sync::Arc<std::sync::Mutex<Signed>>) {
    use std::io::{Read, Write};

    use drover_core::vantage::{PeerKeys, RegionView, ReportRules, VantageReport};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::sync::Arc::new(std::sync::Mutex::new(Signed::Unsigned));
    let mode = answer.clone();
    std::thread::spawn(move || {
        let rules = |key: &[u8]| ReportRules {
            plan: "shop".into(),
            names: vec![],
            keys: Some(PeerKeys::new(key, None)),
            ttl_ms: 3_000,
        };
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let view = |down: bool| RegionView { checks: Default::default(), down, up: !down };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
            let mode = *mode.lock().unwrap();
            let (name, at_ms) = match mode {
                Signed::RotatingNames => (format!("aaa-fake-{n}"), now),
                Signed::Replayed => ("west".to_string(), now - 60_000),
                _ => ("west".to_string(), now),
            };
            let mut report = VantageReport {
                vantage: name,
                at_ms,
                expires_ms: u64::MAX,
                regions: [("east".to_string(), view(true)), ("west".to_string(), view(false))].into(),
                signature: None,
            };
            match mode {
                Signed::Unsigned => {}
                Signed::WrongKey => rules(b"another key, just as long as the plan's").seal(&mut report),
                _ => rules(PEER_KEY).seal(&mut report),
            }
            let body = serde_json::to_string(&report).unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, answer)
}

/// With the plan's peer key, a peer's report counts only when signed with it, lately, under
/// the name it was given: a wrong key, no signature, a replayed report or made-up names add
/// no vote, each is counted by why and shown as the peer's problem; the right key counts.
#[test]
fn with_a_peer_key_only_a_peer_that_signs_with_it_counts() {
    let (port, answer) = signing_peer();
    let plan = format!("{PLAN}policy:\n  quorum: 2\nvantages:\n  names: [east, west]\n  key_file: DIR/peer.key\n");
    let peer = format!("http://127.0.0.1:{port}");
    let d = start_with("east", &plan, &["--peer", &format!("west={peer}")]);
    let until = |what: &str, done: &dyn Fn(&Value, &Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (votes, verdict) = east_votes(&d);
            if done(&votes, &verdict) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: votes {votes}, verdict {verdict}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("east's own down vote", &|votes, _| *votes == json!(["east"]));
    for (mode, label, said) in [
        (Signed::Unsigned, "unsigned", "is not signed"),
        (Signed::WrongKey, "bad_signature", "not signed with the plan's peer key"),
        (Signed::Replayed, "stale", "a replay"),
        (Signed::RotatingNames, "wrong_name", "answered as vantage 'aaa-fake-"),
    ] {
        *answer.lock().unwrap() = mode;
        let sample = format!("drover_vantage_reports_dropped_total{{reason=\"{label}\"}}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric(&d, &sample).unwrap_or(0.0) < 3.0 {
            assert!(Instant::now() < deadline, "{mode:?}: never counted as {label}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let (votes, verdict) = east_votes(&d);
        assert_eq!(votes, json!(["east"]), "{mode:?}: the peer voted");
        assert_ne!(verdict, "down", "{mode:?}: one real vote reached a quorum of 2");
        let regions: Value = client().get(format!("{}/api/v1/regions", d.base)).send().unwrap().json().unwrap();
        let problem = regions["peer_errors"][&peer].as_str().unwrap_or_default().to_string();
        assert!(problem.contains(said), "{mode:?}: the peer's problem is {problem:?}");
    }
    *answer.lock().unwrap() = Signed::Right;
    until("the signed peer's vote as west", &|votes, verdict| *votes == json!(["east", "west"]) && verdict == "down");
    let regions: Value = client().get(format!("{}/api/v1/regions", d.base)).send().unwrap().json().unwrap();
    assert_eq!(regions["peer_errors"], json!({}), "a peer that signs right has no problem");
    // This daemon's own report is signed too, for its peers to check.
    let own: Value = client().get(format!("{}/api/v1/vantage", d.base)).send().unwrap().json().unwrap();
    assert_eq!(own["signature"].as_str().map(str::len), Some(64), "{own}");
}

#[test]
fn a_vantage_the_plan_does_not_list_is_refused() {
    let plan = format!("{PLAN}vantages:\n  names: [east, west]\n");
    let dir = plan_dir(&plan);
    support::write_secret(dir.path().join("token"), format!("{TOKEN}\n"));
    for (args, said) in [
        (
            &["--vantage", "witness"][..],
            "--vantage witness: 'witness' is not in the plan's vantages.names (east, west)",
        ),
        (
            &["--vantage", "east", "--peer", "ops=http://127.0.0.1:9"],
            "--peer ops: 'ops' is not in the plan's vantages.names",
        ),
    ] {
        let ran = run(drover()
            .arg("serve")
            .args(args)
            .arg("--token-file")
            .arg(dir.path().join("token"))
            .arg("--plan")
            .arg(dir.path().join("plan.yaml")));
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert!(ran.stderr.contains(said), "{}", ran.stderr);
    }
}

const READER: &str = "reader-token-0123456789abcdef";
const PEER: &str = "peer-token-0123456789abcdef";

/// A run waiting for approval, journaled before the daemon opens the journal (no region
/// here is healthy enough for the planner to start one). It has no steps: approved, it ends.
fn seed_run_awaiting_approval(dir: &std::path::Path) {
    use drover_core::journal::Journal;
    use drover_core::run::{Record, RunHeader, RunId, RunKind};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let journal = drover_store::RedbJournal::open(&dir.join(".drover")).unwrap();
        let header = RunHeader {
            id: RunId("r1-seeded".into()),
            kind: RunKind::Failover,
            plan: "shop".into(),
            from: "east".into(),
            to: "west".into(),
            epoch: 1,
            steps: vec![],
            reason: "seeded by the test".into(),
            accepted_loss: None,
            requested_by: None,
        };
        journal.begin(&header).await.unwrap();
        journal.append(&header.id, Record::AwaitingApproval { reason: "a person decides".into() }).await.unwrap();
    });
}

fn named_tokens() -> String {
    format!("# who may call\nalice operator {TOKEN}\ngrafana reader {READER}\neast peer {PEER}   # the east daemon\n")
}

fn run_json(d: &Daemon) -> Value {
    client().get(format!("{}/api/v1/runs/r1-seeded", d.base)).send().unwrap().json().unwrap()
}

/// Each token has a name and a role: a reader reads, a peer reads, only an operator
/// changes runs, and what it does is recorded under its name.
#[test]
fn only_an_operator_token_changes_runs_and_the_run_records_its_name() {
    let dir = plan_dir(PLAN);
    seed_run_awaiting_approval(dir.path());
    let d = start_in(dir, "east", &named_tokens(), &[]);

    // On loopback too, a read needs a token; health, readiness and metrics do not.
    let anonymous_read = anonymous().get(format!("{}/api/v1/runs", d.base)).send().unwrap();
    assert_eq!(anonymous_read.status().as_u16(), 401);
    assert_eq!(anonymous().get(format!("{}/metrics", d.base)).send().unwrap().status().as_u16(), 200);
    for token in [READER, PEER, TOKEN] {
        let read = with_token(token).get(format!("{}/api/v1/vantage", d.base)).send().unwrap();
        assert_eq!(read.status().as_u16(), 200);
    }

    let (status, body) = post(&d, "/api/v1/runs", Some(READER), r#"{"kind": "failover", "to": "west"}"#);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("the token 'grafana' (role reader) may only read"), "{body}");
    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/approve", Some(PEER), "");
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("the token 'east' (role peer) is a peer's"), "{body}");
    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/approve", Some(READER), "");
    assert_eq!(status, 403, "{body}");
    // Approving under another's name is refused, not recorded.
    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/approve", Some(TOKEN), r#"{"by": "mallory"}"#);
    assert_eq!((status, &body["field"]), (400, &json!("by")), "{body}");
    assert_eq!(run_json(&d)["state"], "awaiting_approval");

    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/approve", Some(TOKEN), "");
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_json(&d)["state"] != "completed" {
        assert!(Instant::now() < deadline, "the approved run never completed: {}", run_json(&d));
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = &run_json(&d)["asked"];
    assert_eq!(asked.as_array().map(Vec::len), Some(1), "{asked}");
    assert_eq!((&asked[0]["action"], &asked[0]["by"]), (&json!("approve"), &json!("alice")), "{asked}");
    // The command line shows it, asking with alice's token alone.
    support::write_secret(d._dir.path().join("alice.token"), format!("{TOKEN}\n"));
    let shown = run(drover()
        .args(["runs", "show", "r1-seeded", "--server", &d.base, "--token-file"])
        .arg(d._dir.path().join("alice.token")));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("asked: approve by alice\n"), "{}", shown.stdout);
}

#[test]
fn an_abort_is_recorded_under_the_operators_name() {
    let dir = plan_dir(PLAN);
    seed_run_awaiting_approval(dir.path());
    let d = start_in(dir, "east", &named_tokens(), &[]);
    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/abort", Some(PEER), r#"{"reason": "x"}"#);
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&d, "/api/v1/runs/r1-seeded/abort", Some(TOKEN), r#"{"reason": "not today"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "aborted", "{body}");
    assert_eq!(
        body["asked"],
        json!([{"action": "abort", "by": "alice", "at_ms": body["asked"][0]["at_ms"]}]),
        "{body}"
    );
}

#[test]
fn open_reads_lets_anyone_on_loopback_read_but_not_change() {
    let d = start_in(plan_dir(PLAN), "east", &named_tokens(), &["--open-reads"]);
    let read = anonymous().get(format!("{}/api/v1/runs", d.base)).send().unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let (status, _) = post(&d, "/api/v1/runs", None, r#"{"kind": "failover", "to": "west"}"#);
    assert_eq!(status, 401);
}

#[test]
fn a_bad_token_file_is_refused_naming_its_line_and_never_a_token() {
    let dir = plan_dir(PLAN);
    let serve = |tokens: &str, extra: &[&str]| {
        support::write_secret(dir.path().join("tokens"), tokens);
        run(drover()
            .args(["serve", "--vantage", "east", "--token-file"])
            .arg(dir.path().join("tokens"))
            .args(extra)
            .arg("--plan")
            .arg(dir.path().join("plan.yaml")))
    };
    let file = dir.path().join("tokens").display().to_string();
    for (tokens, said) in [
        (String::new(), format!("--token-file {file}: the file holds no token")),
        (format!("alice operator {TOKEN}\nbob admin {READER}\n"), format!("--token-file {file}:2: unknown role")),
        (
            format!("alice operator {TOKEN}\nalice reader {READER}\n"),
            format!("{file}:2: the name 'alice' is given twice"),
        ),
        (format!("alice operator {TOKEN}\nbob reader {TOKEN}\n"), format!("{file}:2: this token is given twice")),
        (format!("alice {TOKEN} operator\n"), format!("{file}:1: unknown role")),
    ] {
        let ran = serve(&tokens, &[]);
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert!(ran.stderr.contains(&said), "{}", ran.stderr);
        for token in [TOKEN, READER] {
            assert!(!ran.stderr.contains(token) && !ran.stdout.contains(token), "a token was printed: {}", ran.stderr);
        }
    }
    // A daemon with peers shows them its own peer token: a file without one is refused.
    let ran = serve(&format!("alice operator {TOKEN}\n"), &["--peer", "west=http://127.0.0.1:9"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("no `peer` entry named 'east'"), "{}", ran.stderr);
    // Without a token file, a daemon serves reads only with --open-reads, and never off loopback.
    let ran = run(drover().args(["serve", "--plan"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("give --token-file FILE"), "{}", ran.stderr);
    let ran = serve(&format!("{TOKEN}\n"), &["--listen", "0.0.0.0:0", "--open-reads"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("--open-reads: --listen 0.0.0.0:0 is not a loopback address"), "{}", ran.stderr);
}

#[test]
fn serve_help_teaches_the_token_file_and_open_reads() {
    let ran = run(drover().args(["serve", "--help"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let help = ran.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for said in [
        "one `NAME ROLE TOKEN` a line",
        "operator (reads; starts, approves, resumes, aborts runs, recorded under NAME), reader (reads), peer (reads: another daemon)",
        "--open-reads",
        "Loopback only",
    ] {
        assert!(help.contains(said), "serve --help lacks {said:?}:\n{}", ran.stdout);
    }
}

/// A daemon shows its peers its own `peer` token; a peer whose file lacks it refuses the
/// reads, and the daemon says which entry to add.
#[test]
fn a_peer_that_does_not_know_this_daemons_token_is_shown_as_its_problem() {
    let west = start_in(plan_dir(PLAN), "west", &format!("alice operator {TOKEN}\nwest peer {PEER}\n"), &[]);
    let tokens = format!("alice operator {TOKEN}\neast peer east-token-0123456789abcdef\n");
    let east = start_in(plan_dir(PLAN), "east", &tokens, &["--peer", &format!("west={}", west.base)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let regions: Value = client().get(format!("{}/api/v1/regions", east.base)).send().unwrap().json().unwrap();
        let problem = regions["peer_errors"][&west.base].as_str().unwrap_or_default().to_string();
        if problem.contains("the peer does not accept this daemon's token (the `peer` entry named 'east'") {
            break;
        }
        assert!(Instant::now() < deadline, "west's refusal never shown: {regions:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A daemon on PLAN whose supervised loops obey the fault files in its `faults` directory
/// (DROVER_TEST_LOOP_FAULTS, serve/faults.rs: a file named after a loop saying `panic` or
/// `hang`), its log in `serve.log` there. The faults are compiled in only with the
/// `fault-injection` feature, as `scripts/test.sh` builds.
fn start_with_faults(faults: &[(&str, &str)]) -> (std::process::Child, String, tempfile::TempDir) {
    if !cfg!(feature = "fault-injection") {
        panic!(
            "these tests inject faults compiled only with drover's `fault-injection` feature: run them with \
             `cargo nextest run -p drover --features fault-injection --test serve`, or run scripts/test.sh"
        );
    }
    let dir = plan_dir(PLAN);
    let dir_faults = dir.path().join("faults");
    std::fs::create_dir(&dir_faults).unwrap();
    for (name, fault) in faults {
        std::fs::write(dir_faults.join(name), fault).unwrap();
    }
    let (mut serve, port) = serve_in(dir.path(), "east", &format!("{TOKEN}\n"), &[]);
    let log = std::fs::File::create(dir_faults.join("serve.log")).unwrap();
    let child = serve
        .env("DROVER_TEST_LOOP_FAULTS", &dir_faults)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start drover serve");
    (child, format!("http://127.0.0.1:{port}"), dir)
}

fn inject(d: &Daemon, name: &str, fault: &str) {
    std::fs::write(d._dir.path().join("faults").join(name), fault).unwrap();
}

fn readyz(d: &Daemon) -> (u16, Value) {
    let response = anonymous().get(format!("{}/readyz", d.base)).send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// Polls /readyz until `until` holds of its answer; the deadline is a hang guard only.
fn readyz_until(d: &Daemon, what: &str, until: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = readyz(d);
        if until(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz never showed {what}: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The loop `name` among /readyz's unready loops, if it is.
fn unready<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body["unready_loops"].as_array()?.iter().find(|l| l["loop"] == name)
}

/// Waits for the process to end (the deadline is a hang guard only) and returns its exit
/// code and log.
fn exit_of(mut child: std::process::Child, dir: &tempfile::TempDir) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon never exited");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.code(), std::fs::read_to_string(dir.path().join("faults/serve.log")).unwrap())
}

#[test]
fn a_loop_that_panics_fails_readyz_by_name_and_is_restarted_until_ready_again() {
    let (child, base, dir) = start_with_faults(&[]);
    let d = Daemon { child, base, _dir: dir };
    wait_for(&d, "/readyz", 200);
    assert_eq!(readyz(&d).1, json!({"ready": true, "checks_probed": true, "unready_loops": []}));

    inject(&d, "world", "panic");
    let body =
        readyz_until(&d, "the world loop unready", |status, body| status == 503 && unready(body, "world").is_some());
    assert_eq!(body["ready"], false, "{body}");
    // Unready is not unhealthy: the process answers, and only the dead loop is named.
    assert_eq!(anonymous().get(format!("{}/healthz", d.base)).send().unwrap().status(), 200);
    assert!(unready(&body, "autopilot").is_none() && unready(&body, "probe east/api").is_none(), "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&d, r#"drover_loop_restarts_total{loop="world"}"#) < Some(1.0) {
        assert!(Instant::now() < deadline, "the world loop was never restarted");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The fault gone, the next restart stays up: ready again, the restarts counted.
    inject(&d, "world", "");
    readyz_until(&d, "ready again", |status, body| status == 200 && body["ready"] == true);
    let restarts = metric(&d, r#"drover_loop_restarts_total{loop="world"}"#).unwrap();
    assert!((1.0..=5.0).contains(&restarts), "{restarts}");
    assert_eq!(metric(&d, r#"drover_loop_restarts_total{loop="autopilot"}"#), Some(0.0));
    let mut d = d;
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon exited");
}

#[test]
fn a_loop_that_hangs_fails_readyz_as_stale_until_it_moves_again() {
    let (child, base, dir) = start_with_faults(&[]);
    let d = Daemon { child, base, _dir: dir };
    wait_for(&d, "/readyz", 200);

    inject(&d, "autopilot", "hang");
    // Stale once three rounds (0.5 s) and the slack (15 s) pass without a heartbeat.
    let body = readyz_until(&d, "the autopilot stale", |status, body| {
        status == 503 && unready(body, "autopilot").is_some_and(|l| l["state"] == "stale")
    });
    let autopilot = unready(&body, "autopilot").unwrap();
    assert!(autopilot["seconds_since_heartbeat"].as_f64().unwrap() > 16.5, "{body}");
    assert_eq!(body["unready_loops"].as_array().unwrap().len(), 1, "only the stuck loop is named: {body}");
    let age = metric(&d, r#"drover_loop_heartbeat_age_seconds{loop="autopilot"}"#).unwrap();
    assert!(age > 16.5, "{age}");

    inject(&d, "autopilot", "");
    readyz_until(&d, "ready again", |status, _| status == 200);
    // Stuck is not dead: nothing was restarted.
    assert_eq!(metric(&d, r#"drover_loop_restarts_total{loop="autopilot"}"#), Some(0.0));
}

#[test]
fn a_loop_that_keeps_panicking_stops_the_daemon_naming_it() {
    let (child, _, dir) = start_with_faults(&[("world", "panic")]);
    let (code, log) = exit_of(child, &dir);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("the daemon's loop 'world' panicked: DROVER_TEST_LOOP_FAULTS: a panic injected in the loop 'world'; restarted 5 times in 600 s already: stopping the daemon"),
        "{log}"
    );
    // Restarted with a backoff first, each time said.
    assert_eq!(log.matches("the daemon's loop 'world' panicked: DROVER_TEST_LOOP_FAULTS: a panic injected in the loop 'world'; restarting it in").count(), 5, "{log}");
}

#[test]
fn a_dead_autopilot_is_not_restarted_but_stops_the_daemon() {
    let (child, _, dir) = start_with_faults(&[("autopilot", "panic")]);
    let (code, log) = exit_of(child, &dir);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("the daemon's loop 'autopilot' panicked"), "{log}");
    assert!(log.contains("it is not restarted: a run it was driving would stay half done"), "{log}");
}

/// A plan whose runs have one step of the plan's own: it writes a line to `DIR/applied`
/// each time it acts, then takes `seconds` — long enough for a second driver to try.
fn counting_plan(seconds: u32) -> String {
    format!(
        "{PLAN}steps:\n  count:\n    exec:\n      argv: [sh, -c, \"echo acted >> DIR/applied; sleep {seconds}\"]\n      timeout: 60s\n"
    )
}

/// Journals run `id` (one `count` step) before the daemon opens the journal: paused at its
/// step, or (`paused: false`) interrupted inside it, as a driver killed there leaves it.
fn seed_counting_run(dir: &std::path::Path, id: &str, paused: bool) {
    use drover_core::journal::Journal;
    use drover_core::plan::StepKind;
    use drover_core::run::{Record, RunHeader, RunId, RunKind};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let journal = drover_store::RedbJournal::open(&dir.join(".drover")).unwrap();
        let step = StepKind::Custom("count".into());
        let header = RunHeader {
            id: RunId(id.into()),
            kind: RunKind::Failover,
            plan: "shop".into(),
            from: "east".into(),
            to: "west".into(),
            epoch: 1,
            steps: vec![step.clone()],
            reason: "seeded by the test".into(),
            accepted_loss: None,
            requested_by: None,
        };
        journal.begin(&header).await.unwrap();
        journal.append(&header.id, Record::StepIntent { step: 0, kind: step.clone() }).await.unwrap();
        if paused {
            journal.append(&header.id, Record::Paused { step: 0, kind: step, reason: "seeded".into() }).await.unwrap();
        }
    });
}

fn acted(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("applied")).map_or(0, |s| s.lines().count())
}

fn state_of(d: &Daemon, id: &str) -> Value {
    client().get(format!("{}/api/v1/runs/{id}", d.base)).send().unwrap().json::<Value>().unwrap()["state"].clone()
}

fn wait_until_state(d: &Daemon, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while state_of(d, id) != state {
        assert!(Instant::now() < deadline, "run {id} never became {state}: {}", state_of(d, id));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A run has one driver: while the daemon drives it (resumed through the API), `drover
/// resume` from a terminal is refused naming the daemon; while a terminal drives it, the
/// API's resume is a 409 naming that command. Each time the step acts once.
#[test]
fn a_run_has_one_driver_the_daemon_or_a_command_never_both() {
    let dir = plan_dir(&counting_plan(3));
    let path = dir.path().to_path_buf();
    seed_counting_run(&path, "r1-held", true);
    let d = start_in(dir, "east", &format!("{TOKEN}\n"), &[]);
    let resume_here = |id: &str| {
        let mut cmd = drover();
        cmd.args(["resume", id, "--plan"]).arg(path.join("plan.yaml")).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };

    let (status, body) = post(&d, "/api/v1/runs/r1-held/resume", Some(TOKEN), "");
    assert_eq!(status, 202, "{body}");
    let refused = run(&mut resume_here("r1-held"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("run r1-held is being driven by the east daemon (pid "), "{}", refused.stderr);
    let (status, body) = post(&d, "/api/v1/runs/r1-held/resume", Some(TOKEN), "");
    assert_eq!(status, 409, "the daemon's own second driver is refused too: {body}");
    wait_until_state(&d, "r1-held", "completed");
    assert_eq!(acted(&path), 1, "the step acted once");

    seed_counting_run(&path, "r2-held", true);
    let terminal = resume_here("r2-held").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acted(&path) < 2 {
        assert!(Instant::now() < deadline, "the command never drove the run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = post(&d, "/api/v1/runs/r2-held/resume", Some(TOKEN), "");
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is being driven by a drover command (pid "), "{body}");
    let out = terminal.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state_of(&d, "r2-held"), "completed");
    assert_eq!(acted(&path), 2, "each run's step acted once");
}

/// Without etcd, a daemon killed while it drives a run finishes that run when it starts
/// again: its claim died with it, and the run would otherwise hold the active slot and
/// refuse every later failover.
#[test]
fn a_daemon_killed_mid_run_finishes_it_when_it_starts_again() {
    let dir = plan_dir(&counting_plan(5));
    let path = dir.path().to_path_buf();
    seed_counting_run(&path, "r1-killed", true);
    let mut first = start_in(dir, "east", &format!("{TOKEN}\n"), &[]);
    let (status, body) = post(&first, "/api/v1/runs/r1-killed/resume", Some(TOKEN), "");
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while acted(&path) < 1 {
        assert!(Instant::now() < deadline, "the daemon never drove the run");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL mid-step: no chance to let go of the run.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let dir = std::mem::replace(&mut first._dir, tempfile::tempdir().unwrap());
    drop(first);
    let second = start_in(dir, "east", &format!("{TOKEN}\n"), &[]);
    wait_until_state(&second, "r1-killed", "completed");
    // Without `observe` a step acts at least once: the killed drive's act, then the resumed one's.
    assert_eq!(acted(&path), 2);
}

/// Each round evaluates readiness: `GET /api/v1/readiness` serves what `drover readiness -o
/// json` prints, and /metrics a gauge per rule and region (2: fail).
#[test]
fn readiness_is_served_and_gauged_each_round() {
    let d = start_with("east", PLAN, &["--readiness-every", "1"]);
    let report = wait_for(&d, "/api/v1/readiness", 200);
    let v: Value = report.json().unwrap();
    assert_eq!(v["plan"], "shop");
    assert_eq!(v["level"], "fail");
    let budget = v["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "budget").unwrap();
    assert_eq!(budget["region"], Value::Null);
    assert!(budget["reason"].as_str().unwrap().contains("more than the RTO objective 30s"), "{budget}");
    assert_eq!(metric(&d, r#"drover_readiness{rule="budget",region="plan"}"#), Some(2.0));
    assert_eq!(metric(&d, r#"drover_readiness{rule="database",region="west"}"#), Some(2.0));
    assert_eq!(metric(&d, r#"drover_readiness{rule="drills",region="plan"}"#), Some(1.0));
    assert_eq!(anonymous().get(format!("{}/api/v1/readiness", d.base)).send().unwrap().status().as_u16(), 401);
}
