//! Re-protect and failback in the lab, with the built binary: real namespaces, PostgreSQL 15,
//! Knot DNS, the lab app, and the journal in a real etcd. Needs root and the Debian packages
//! (scripts/setup.sh); fails, never skips, without them. Holds the lab lock (one lab per machine).
//!
//! The story: east is blacked out and drover fails over to west; east comes back still
//! believing it is primary. `drover reprotect` while east is still cut off pauses without
//! stopping anything; once east is healed, `drover resume` makes it a streaming standby of
//! west with pg_rewind. Then a failback drill moves the primary home under the probe's write
//! load and must lose no acknowledged write. Last, west's data directory is wiped and
//! `drover reprotect` rebuilds it from a fresh base backup.
//!
//! The plan also scales a Kubernetes Deployment per region. Stand-in: no Kubernetes API server
//! can be installed here, so each region's cluster is drover-backup's in-memory stand-in served
//! over HTTP on loopback (outside the lab's namespaces, so a blackout of east does not reach it).
//! The failover raises west's Deployment to east's size; the failback drill sets it back.

mod support;

use std::path::Path;
use std::sync::Arc;

use drover_backup::standin::MemoryCluster;
use drover_backup::standin::http::ApiServer;
use support::{EtcdLab, Ran, drover, run};

/// A cluster running Deployment shop/web with `replicas`.
fn cluster_with_web(replicas: u32) -> Arc<MemoryCluster> {
    let c = MemoryCluster::new();
    c.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    c.seed(serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [{"name": "web", "image": "shop:1"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas}}));
    Arc::new(c)
}

fn web_replicas(cluster: &MemoryCluster) -> u64 {
    cluster.object("deployments", "shop", "web").expect("web")["spec"]["replicas"].as_u64().unwrap()
}

fn json(ran: &Ran) -> serde_json::Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr))
}

fn database<'a>(status: &'a serde_json::Value, region: &str) -> &'a serde_json::Value {
    let regions = status["regions"].as_array().expect("regions");
    &regions.iter().find(|r| r["region"] == region).unwrap_or_else(|| panic!("{region} in {status:#}"))["database"]
}

#[test]
fn reprotect_with_pg_rewind_then_failback_loses_nothing_and_a_lost_data_dir_is_rebuilt() {
    let tmp = tempfile::Builder::new().prefix("drover-reprotect-").tempdir_in("/tmp").unwrap();
    // PostgreSQL runs as the postgres OS user and must reach its data dir below.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("lab");
    let etcd_lab = EtcdLab::up(&dir, "lab-reprotect");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (east_cluster, west_cluster) = (cluster_with_web(3), cluster_with_web(1));
    let apis = rt.block_on(async {
        (ApiServer::start(east_cluster.clone()).await, ApiServer::start(west_cluster.clone()).await)
    });
    let compute = format!(
        "compute:\n  apps:\n    kind: kubernetes\n    ready_timeout: 30s\n    regions:\n      east: {{ cluster: {{ kubeconfig: {}, context: east }}, namespace: shop, selector: app=shop }}\n      west: {{ cluster: {{ kubeconfig: {}, context: west }}, namespace: shop, selector: app=shop }}\n",
        apis.0.write_kubeconfig(tmp.path(), "east").display(),
        apis.1.write_kubeconfig(tmp.path(), "west").display(),
    );
    let plan = std::fs::read_to_string(&etcd_lab.plan).unwrap();
    std::fs::write(&etcd_lab.plan, format!("{plan}{compute}")).unwrap();
    let with_plan = |args: &[&str]| etcd_lab.drover(args);
    let lab = |args: &[&str]| {
        let ran = run(drover().args(["lab"]).args(args).arg("--dir").arg(&dir));
        assert_eq!(ran.code, 0, "lab {args:?}:\n{}\n{}", ran.stdout, ran.stderr);
    };
    let status = || {
        let ran = with_plan(&["status", "--output", "json"]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        json(&ran)
    };

    // An unplanned failover: east blacked out, so nothing fences it.
    lab(&["fault", "blackout", "east"]);
    let failover = with_plan(&["failover", "--to", "west", "--yes"]);
    assert_eq!(failover.code, 0, "failover failed:\n{}\n{}", failover.stdout, failover.stderr);
    assert!(failover.stdout.contains("fence skipped"), "{}", failover.stdout);
    assert_eq!(web_replicas(&west_cluster), 3, "the failover raised west to east's size: {}", failover.stdout);
    let s = status();
    assert_eq!(s["compute"]["apps"]["west"]["deployment/web"]["ready"], 3, "{s:#}");
    let text = with_plan(&["status"]).stdout;
    assert!(text.contains("compute apps: east 3/3 ready in 1 workload, west 3/3 ready in 1 workload"), "{text}");

    // Failback refuses until east follows west, and says what to run.
    let refused = with_plan(&["failback", "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("reprotect it first: drover reprotect --plan"), "{}", refused.stderr);

    // Reprotect while east is still cut off: east's host cannot reach west, so the run
    // pauses before stopping anything, and says how to go on.
    let paused = with_plan(&["reprotect", "--region", "east", "--yes", "--output", "json"]);
    assert_eq!(paused.code, 1, "a reprotect that cannot reach west fails:\n{}\n{}", paused.stdout, paused.stderr);
    let run_json = json(&paused);
    assert_eq!(run_json["state"], "paused", "{run_json:#}");
    assert_eq!(run_json["header"]["kind"], "reprotect");
    assert_eq!((run_json["header"]["from"].as_str(), run_json["header"]["to"].as_str()), (Some("east"), Some("west")));
    assert_eq!(run_json["header"]["epoch"], 1, "a reprotect keeps the epoch");
    assert!(run_json["rejoin_method"].is_null());
    let reason = run_json["reason"].as_str().unwrap();
    assert!(reason.contains("nothing was stopped") && reason.contains("drover resume"), "{reason}");
    let id = run_json["header"]["id"].as_str().unwrap().to_string();

    // East returns, still a writable primary of the old epoch.
    lab(&["heal", "east"]);
    let s = status();
    assert_eq!(database(&s, "east")["role"], "primary", "east came back as it was: {s:#}");
    assert_eq!(database(&s, "east")["writable"], true, "{s:#}");
    assert_eq!(s["current_primary"], "west");
    let text = with_plan(&["status"]);
    assert!(
        text.stdout.contains("hint: east's database is an old primary that does not follow west"),
        "{}",
        text.stdout
    );
    // Only one run at a time: the paused reprotect holds the slot.
    let second = with_plan(&["reprotect", "--region", "east", "--yes"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains(&format!("run {id} is still active")), "{}", second.stderr);

    let resumed = with_plan(&["resume", &id]);
    assert_eq!(resumed.code, 0, "resume failed:\n{}\n{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stdout.contains("rejoined with pg_rewind"), "{}", resumed.stdout);
    assert!(resumed.stdout.contains("east is a streaming standby of west (pg_rewind)"), "{}", resumed.stdout);
    let s = status();
    let east = database(&s, "east");
    assert_eq!(east["role"], "standby", "{s:#}");
    assert_eq!(east["upstream"], "10.200.0.12", "east streams from west: {s:#}");
    assert_eq!(database(&s, "west")["sync_standbys"], 1, "west waits for east again (synchronous plan): {s:#}");
    let text = with_plan(&["status"]).stdout;
    assert!(text.contains("hint: the primary is away from home") && text.contains("drover failback --plan"), "{text}");
    let shown = with_plan(&["runs", "show", &id, "--output", "json"]);
    let shown = json(&shown);
    assert_eq!(shown["state"], "completed");
    assert!(shown["steps"][0]["attempts"].as_u64().unwrap() >= 2, "paused, then resumed: {shown:#}");

    // Failback under the probe's writes: a planned switchover home, nothing lost.
    let report_path = tmp.path().join("failback.json");
    let drill = with_plan(&["drill", "--failback", "--json", report_path.to_str().unwrap()]);
    assert_eq!(drill.code, 0, "failback drill failed:\n{}\n{}", drill.stdout, drill.stderr);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["fault"], "failback:east", "{report:#}");
    assert_eq!((report["from"].as_str(), report["to"].as_str()), (Some("west"), Some("east")));
    assert_eq!(report["run_state"], "completed", "{report:#}");
    assert_eq!(report["lost_acknowledged_writes"], 0, "a failback lost acknowledged writes: {report:#}");
    assert!(report["writes"]["acknowledged"].as_u64().unwrap() > 20, "the probe wrote throughout: {report:#}");
    assert!(report["timeline"]["promoted"].as_u64().is_some() && report["rto_ms"].as_u64().is_some(), "{report:#}");
    eprintln!("failback: rto_ms={} writes={}", report["rto_ms"], report["writes"]);
    // Journaled as a drill without a fault: the failback run, then compute set back.
    let drills = json(&with_plan(&["drills", "--output", "json"]));
    let id = drills["drills"][0]["id"].as_str().unwrap().to_string();
    let shown = json(&with_plan(&["drills", "show", &id, "--output", "json"]));
    assert_eq!((shown["state"].as_str(), shown["fault"].as_str()), (Some("completed"), Some("none")), "{shown:#}");
    let phases: Vec<(&str, &str)> = shown["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phase"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(phases, [("failback", "completed"), ("compute_set_back", "completed")], "{shown:#}");
    assert_eq!(shown["phases"][0]["run"], report["run_id"]);
    // West is a standby again, and goes back to the size it had before the failover.
    assert!(drill.stdout.contains("scale: west apps deployment/web back to 1"), "{}", drill.stdout);
    assert_eq!(report["scale_restored"], serde_json::json!(["west apps deployment/web back to 1"]), "{report:#}");
    assert_eq!(web_replicas(&west_cluster), 1);
    assert_eq!(web_replicas(&east_cluster), 3, "east, primary again, keeps its size");
    let text = with_plan(&["status"]).stdout;
    assert!(text.contains("compute apps: east 3/3 ready in 1 workload, west 1/1 ready in 1 workload"), "{text}");
    let s = status();
    assert_eq!(s["current_primary"], "east");
    assert_eq!(s["traffic"]["region"], "east");
    assert_eq!(s["traffic"]["epoch"], 2);
    assert_eq!(database(&s, "east")["epoch"], 2);
    assert_eq!(database(&s, "west")["upstream"], "10.200.0.11", "the failback rejoined west: {s:#}");

    // West loses its data directory: no pg_rewind possible, so a fresh base backup.
    lab(&["fault", "kill", "west"]);
    let west_data = dir.join("west/pgdata");
    assert!(west_data.join("PG_VERSION").exists(), "the lab's layout changed: {}", west_data.display());
    std::fs::remove_dir_all(&west_data).unwrap();
    let rebuilt = with_plan(&["reprotect", "--region", "west", "--yes", "--output", "json"]);
    assert_eq!(rebuilt.code, 0, "reprotect west failed:\n{}\n{}", rebuilt.stdout, rebuilt.stderr);
    let rebuilt_json = json(&rebuilt);
    assert_eq!(rebuilt_json["rejoin_method"], "base_backup", "{rebuilt_json:#}");
    let detail = rebuilt_json["steps"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("pg_rewind impossible: no usable data directory at")
            && detail.contains("no old data directory"),
        "{detail}"
    );
    assert!(
        rebuilt.stderr.contains("[1/1] rejoin done"),
        "progress goes to stderr with --output json: {}",
        rebuilt.stderr
    );
    let s = status();
    assert_eq!(database(&s, "west")["role"], "standby", "{s:#}");
    assert_eq!(database(&s, "west")["upstream"], "10.200.0.11", "{s:#}");
    assert_eq!(database(&s, "east")["sync_standbys"], 1, "{s:#}");
    assert!(Path::new(&west_data).join("standby.signal").exists());

    let runs = with_plan(&["runs"]).stdout;
    // Column widths follow the content; each row's words are what matters here.
    let rows: Vec<String> = runs.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for line in ["reprotect completed west follows east", "failback completed west -> east", "failover"] {
        assert!(rows.iter().any(|r| r.contains(line)), "'{line}' missing from 'drover runs':\n{runs}");
    }
}
