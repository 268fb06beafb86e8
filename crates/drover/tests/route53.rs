//! The whole drover path with Route 53 traffic: a plan file, the `drover` binary
//! pointed at a real moto server through `AWS_ENDPOINT_URL`, and a real
//! PostgreSQL pair. Record sets are read back from moto with the SDK.

#![cfg(feature = "aws")]

#[path = "support/aws.rs"]
mod aws;
#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws::{assert_no_secrets, with_moto};
use drover_adapters::aws::route53::sdk::Client;
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{Moto, a_set, create_sets, health_check, hosted_zone, read_back, roles, weights};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST: &str = "192.0.2.10";
const WEST: &str = "192.0.2.20";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A hosted zone holding the region's record sets (failover or weighted), east serving,
/// and a health check per region; returns the zone id and the health check ids.
async fn seed(client: &Client, weighted: bool) -> (String, String, String) {
    let zone = hosted_zone(client, "example.test.").await;
    let (east_hc, west_hc) = (health_check(client, EAST).await, health_check(client, WEST).await);
    let (east, west) = (a_set(RECORD, EAST, "east"), a_set(RECORD, WEST, "west"));
    let sets = if weighted {
        [east.weight(100), west.weight(0)]
    } else {
        [east.failover(ResourceRecordSetFailover::Primary), west.failover(ResourceRecordSetFailover::Secondary)]
    };
    create_sets(client, &zone, sets.into_iter().map(|s| s.build().unwrap()).collect()).await;
    (zone, east_hc, west_hc)
}

/// moto with the zone seeded, a real PostgreSQL pair, and a plan file for both:
/// route53 traffic (failover records with health check ids, or weighted in stages
/// [10, 25, 50, 100]), a postgres check and the Route 53 health checks.
struct Scene {
    moto: Moto,
    rt: tokio::runtime::Runtime,
    client: Client,
    zone: String,
    plan: PathBuf,
    cluster: pg::Cluster,
    _dir: tempfile::TempDir,
}

impl Scene {
    fn new(weighted: bool) -> Scene {
        let moto = Moto::start();
        let rt = runtime();
        let client = moto.route53();
        let (zone, east_hc, west_hc) = rt.block_on(seed(&client, weighted));
        let cluster = pg::Cluster::pair(pg::Replication::Asynchronous);
        let dir = tempfile::tempdir().unwrap();
        for region in ["east", "west"] {
            support::write_secret(dir.path().join(format!("{region}.dsn")), cluster.node(region).dsn());
        }
        let routing = if weighted {
            format!(
                "weighted\n  stages: [10, 25, 50, 100]\n  stage_pause: 1s\n  targets: {{ east: {EAST}, west: {WEST} }}"
            )
        } else {
            format!(
                "failover\n  targets:\n    east: {{ value: {EAST}, health_check_id: {east_hc} }}\n    west: {{ value: {WEST}, health_check_id: {west_hc} }}"
            )
        };
        let d = dir.path().display();
        let plan = format!(
            r#"name: shop
objectives: {{ rto: 60s, rpo: 1m }}
regions:
  east: {{ role: primary }}
  west: {{ role: standby }}
database:
  kind: postgres
  replication: asynchronous
  members:
    east: {{ dsn_file: {d}/east.dsn }}
    west: {{ dsn_file: {d}/west.dsn }}
traffic:
  kind: route53
  hosted_zone_id: {zone}
  record: {RECORD}
  type: A
  ttl: 60s
  routing: {routing}
checks:
  db: {{ postgres: member, interval: 500ms, timeout: 400ms }}
  r53:
    route53_health_check: {{ east: {east_hc}, west: {west_hc} }}
    interval: 500ms
    timeout: 400ms
"#
        );
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        Scene { moto, rt, client, zone, plan: path, cluster, _dir: dir }
    }

    fn drover(&self, args: &[&str]) -> Ran {
        let ran = run(with_moto(drover().args(args).arg("--plan").arg(&self.plan), &self.moto));
        assert_no_secrets(&ran);
        ran
    }
}

fn status(plan: &Path, moto: &Moto) -> Ran {
    let ran = run(with_moto(drover().args(["status", "--plan"]).arg(plan), moto));
    assert_no_secrets(&ran);
    ran
}

#[test]
fn failover_moves_the_route53_primary_record_to_the_new_region() {
    let scene = Scene::new(false);
    let before = scene.drover(&["status"]);
    assert_eq!(before.code, 0, "{}{}", before.stdout, before.stderr);
    assert!(
        before.stdout.contains(&format!("traffic: {RECORD} -> {EAST} (region east, epoch 0)")),
        "{}",
        before.stdout
    );

    let ran = scene.drover(&["failover", "--yes", "--to", "west"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);

    let (sets, txt) = scene.rt.block_on(read_back(&scene.client, &scene.zone, RECORD));
    assert_eq!(roles(&sets), [("east", EAST, Some("SECONDARY")), ("west", WEST, Some("PRIMARY"))]);
    assert_eq!(txt, vec!["\"1\"".to_string()]);
    let after = scene.drover(&["status"]);
    assert!(after.stdout.contains(&format!("traffic: {RECORD} -> {WEST} (region west, epoch 1)")), "{}", after.stdout);
}

/// (east, west) weights and the epoch record's values at one moment.
type Moment = (Vec<Option<i64>>, Vec<String>);

#[test]
fn a_staged_weighted_failover_applies_every_stage_in_order() {
    let scene = Scene::new(true);
    // Watch moto while drover runs: every distinct (east, west) weights and epoch record, in order.
    let seen: Arc<Mutex<Vec<Moment>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, done, client, zone) = (seen.clone(), done.clone(), scene.client.clone(), scene.zone.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            while !done.load(Ordering::Relaxed) {
                let (sets, txt) = rt.block_on(read_back(&client, &zone, RECORD));
                let now = (weights(&sets), txt);
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let ran = scene.drover(&["failover", "--yes", "--to", "west"]);
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    // The last change can land between the watcher's last look and drover's exit: look once more.
    let (sets, txt) = scene.rt.block_on(read_back(&scene.client, &scene.zone, RECORD));
    let last = (weights(&sets), txt);
    let mut seen = seen.lock().unwrap().clone();
    if seen.last() != Some(&last) {
        seen.push(last);
    }

    let q = |s: &str| vec![format!("\"{s}\"")];
    assert_eq!(
        seen,
        vec![
            (vec![Some(100), Some(0)], vec![]),
            (vec![Some(90), Some(10)], q("1;10")),
            (vec![Some(75), Some(25)], q("1;25")),
            (vec![Some(50), Some(50)], q("1;50")),
            (vec![Some(0), Some(100)], q("1")),
        ],
        "(east, west) weights and the epoch record, as drover moved them"
    );
    let after = scene.drover(&["status"]);
    assert!(
        after.stdout.contains(&format!("traffic: {RECORD} -> {WEST} (weight 100) (region west, epoch 1)")),
        "{}",
        after.stdout
    );
}

#[test]
fn aws_errors_name_region_resource_operation_code_and_what_to_check() {
    let moto = Moto::start();
    let dir = support::plan_dir(support::PLAN);
    let traffic = "traffic:\n  kind: route53\n  hosted_zone_id: ZNOSUCHZONE0000\n  record: api.app.test.\n  type: A\n  ttl: 5s\n  routing: failover\n  targets: { east: 127.0.0.11, west: 127.0.0.12 }\n";
    let plan_text = std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap();
    let start = plan_text.find("traffic:").unwrap();
    let end = plan_text.find("checks:").unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, format!("{}{traffic}{}", &plan_text[..start], &plan_text[end..])).unwrap();

    let ran = status(&plan, &moto);
    assert!(
        ran.stdout.contains(
            "traffic: unknown: us-east-1/hostedzone/ZNOSUCHZONE0000: ListResourceRecordSets failed: NoSuchHostedZone: "
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(" — check traffic.hosted_zone_id names a hosted zone of this account"),
        "{}",
        ran.stdout
    );
}

/// A switchover that fenced east and then stopped (west's replay is paused, so it never
/// catches up) leaves no database taking writes. The pause says so and what each way on
/// does; an abort off a terminal must choose; `--undo` lifts the fence and east writes again.
#[test]
fn abort_undo_lifts_the_fence_of_a_switchover_that_never_promoted() {
    let scene = Scene::new(false);
    let (east, west) =
        scene.rt.block_on(async { (scene.cluster.client("east").await, scene.cluster.client("west").await) });
    scene.rt.block_on(async {
        east.batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1)").await.unwrap();
        // West stops replaying, then east writes more: west can never catch up.
        tokio::time::sleep(Duration::from_secs(1)).await;
        west.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
        east.batch_execute("INSERT INTO orders SELECT generate_series(2, 1000)").await.unwrap();
    });

    let paused = scene.drover(&["switchover", "--yes", "--to", "west"]);
    assert_eq!(paused.code, 1, "{}{}", paused.stdout, paused.stderr);
    assert!(paused.stderr.contains("now: east is fenced (read-only) and west is not promoted"), "{}", paused.stderr);
    assert!(paused.stderr.contains("abort --undo: lift the fence on east"), "{}", paused.stderr);
    let run = regex::Regex::new(r"run (r\d{13}-[0-9a-f]{4}) paused").unwrap();
    let id = run.captures(&paused.stderr).unwrap_or_else(|| panic!("{}", paused.stderr))[1].to_string();
    let writes = |id: i32| {
        scene.rt.block_on(async {
            let client = scene.cluster.client("east").await;
            client.execute("INSERT INTO orders VALUES ($1)", &[&id]).await.map(|_| ())
        })
    };
    assert!(writes(5000).is_err(), "the fence holds while the run is paused");

    // A script that does not choose is refused, and nothing changes.
    let unchosen = scene.drover(&["abort", &id]);
    assert_eq!(unchosen.code, 2, "{}{}", unchosen.stdout, unchosen.stderr);
    assert!(unchosen.stderr.contains("say --undo to do that, or --keep"), "{}", unchosen.stderr);
    let shown = scene.drover(&["runs", "show", &id]);
    assert!(shown.stdout.contains("paused") && shown.stdout.contains("abort --keep"), "{}", shown.stdout);
    assert!(writes(5001).is_err(), "still fenced");

    let undone = scene.drover(&["abort", &id, "--undo"]);
    assert_eq!(undone.code, 0, "{}{}", undone.stdout, undone.stderr);
    assert!(undone.stdout.contains("fence undone: east accepts writes again"), "{}", undone.stdout);
    writes(5002).expect("east takes writes again");
    let shown = scene.drover(&["runs", "show", &id, "-o", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "aborted", "{shown:#}");
    assert_eq!(shown["steps"][0]["state"], "undone", "{shown:#}");
    // West was never promoted and traffic never moved.
    let (sets, _) = scene.rt.block_on(read_back(&scene.client, &scene.zone, RECORD));
    assert_eq!(roles(&sets), [("east", EAST, Some("PRIMARY")), ("west", WEST, Some("SECONDARY"))]);
    scene.rt.block_on(west.batch_execute("SELECT pg_wal_replay_resume()")).unwrap();
}
