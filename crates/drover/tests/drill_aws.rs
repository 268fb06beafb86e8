//! A drill on the customer's AWS plan (RDS with a cross-region replica, Route 53 failover
//! records with health checks), against a real moto server, with no lab: the plan's HTTP
//! canary writes through the record to a local service that speaks the canary protocol,
//! the `route53-health-check` fault inverts the primary's health check, the plan's
//! Route 53 check sees it, drover fails over, and the fault is undone — at the end, when a
//! stop condition (a CloudWatch alarm) goes to ALARM, and by `drover drill abort ID` after
//! the drill was SIGKILLed. Each time the health check is read back from moto.
//!
//! Stand-ins: the service is this test's (127.0.0.1 is east, 127.0.0.2 is west; east
//! refuses writes while its health check is inverted, as a region judged down would
//! serve nobody); moto serves no DNS, so the canary follows the record through the
//! Route 53 provider (`resolve: traffic`), and the report says so.

#![cfg(feature = "aws")]

#[path = "support/aws.rs"]
mod aws;
#[path = "support/cloudwatch.rs"]
mod cw;
#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws::{assert_no_secrets, with_moto};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_adapters::aws::route53::sdk::Client as Route53Client;
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use drover_core::drill::{CanaryHeld, CanaryWrite};
use moto::{Moto, a_set, create_sets, health_check, hosted_zone, read_back, seed_rds};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST_IP: &str = "127.0.0.1";
const WEST_IP: &str = "127.0.0.2";
const ALARM: &str = "shop-5xx";

/// The service behind the record: one store, two front doors (east and west).
#[derive(Clone, Default)]
struct Service {
    held: Arc<Mutex<BTreeMap<String, BTreeSet<u64>>>>,
    /// Writes each door acknowledged.
    east_acked: Arc<AtomicU64>,
    west_acked: Arc<AtomicU64>,
    /// East is judged down (its health check inverted): it serves nobody.
    east_down: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Door {
    service: Service,
    east: bool,
}

async fn write(State(door): State<Door>, axum::Json(w): axum::Json<CanaryWrite>) -> Response {
    if door.east && door.service.east_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    door.service.held.lock().unwrap().entry(w.drill.clone()).or_default().insert(w.seq);
    let acked = if door.east { &door.service.east_acked } else { &door.service.west_acked };
    acked.fetch_add(1, Ordering::SeqCst);
    axum::Json(w).into_response()
}

#[derive(serde::Deserialize)]
struct HeldParams {
    drill: String,
}

async fn held(State(door): State<Door>, Query(p): Query<HeldParams>) -> Response {
    let seqs = door.service.held.lock().unwrap().get(&p.drill).cloned().unwrap_or_default();
    axum::Json(CanaryHeld::new(&p.drill, seqs)).into_response()
}

impl Service {
    /// Serves east on 127.0.0.1:PORT and west on 127.0.0.2:PORT, on its own thread.
    fn start(&self) -> u16 {
        let (east, west) = (0..50)
            .find_map(|_| {
                let east = std::net::TcpListener::bind((EAST_IP, 0)).ok()?;
                let port = east.local_addr().ok()?.port();
                let west = std::net::TcpListener::bind((WEST_IP, port)).ok()?;
                Some((east, west))
            })
            .expect("two loopback listeners on one port");
        let port = east.local_addr().unwrap().port();
        let service = self.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                for (listener, is_east) in [(east, true), (west, false)] {
                    listener.set_nonblocking(true).unwrap();
                    let router = axum::Router::new()
                        .route("/drover-canary/writes", axum::routing::post(write).get(held))
                        .with_state(Door { service: service.clone(), east: is_east });
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::spawn(async move { axum::serve(listener, router).await });
                }
                std::future::pending::<()>().await
            })
        });
        port
    }
}

struct Scene {
    moto: Moto,
    bridge: cw::bridge::Bridge,
    rt: tokio::runtime::Runtime,
    r53: Route53Client,
    zone: String,
    east_hc: String,
    service: Service,
    plan: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scene {
    /// The stack, the service, and the plan; `check_every` paces the Route 53 check that
    /// detects the fault (three failures in a row).
    fn new(check_every: &str) -> Scene {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rds = [moto.rds("us-east-2"), moto.rds("us-west-1")];
        let r53 = moto.route53();
        let (zone, east_hc, west_hc) = rt.block_on(async {
            seed_rds(&rds[0], &rds[1], "shop-pg").await;
            let zone = hosted_zone(&r53, "example.test.").await;
            let (east_hc, west_hc) = (health_check(&r53, EAST_IP).await, health_check(&r53, WEST_IP).await);
            let sets = [
                a_set(RECORD, EAST_IP, "us-east-2")
                    .failover(ResourceRecordSetFailover::Primary)
                    .health_check_id(&east_hc),
                a_set(RECORD, WEST_IP, "us-west-1")
                    .failover(ResourceRecordSetFailover::Secondary)
                    .health_check_id(&west_hc),
            ];
            create_sets(&r53, &zone, sets.into_iter().map(|s| s.build().unwrap()).collect()).await;
            (zone, east_hc, west_hc)
        });
        cw::put_alarm(&moto, "us-west-1", ALARM);
        cw::set_state(&moto, "us-west-1", ALARM, "OK", "no errors");
        let bridge = cw::bridge::start(moto.endpoint());
        let service = Service::default();
        let port = service.start();
        let plan = format!(
            r#"name: shop
objectives: {{ rto: 5m, rpo: 1m }}
regions:
  east: {{ role: primary, aws_region: us-east-2 }}
  west: {{ role: standby, aws_region: us-west-1 }}
database:
  kind: rds
  promote_timeout: 2m
  members:
    east: {{ instance: shop-db }}
    west: {{ instance: shop-db-replica }}
traffic:
  kind: route53
  hosted_zone_id: {zone}
  record: {RECORD}
  type: A
  ttl: 1s
  routing: failover
  targets:
    east: {{ value: {EAST_IP}, set_identifier: us-east-2, health_check_id: {east_hc} }}
    west: {{ value: {WEST_IP}, set_identifier: us-west-1, health_check_id: {west_hc} }}
checks:
  r53:
    route53_health_check: {{ east: {east_hc}, west: {west_hc} }}
    interval: {check_every}
    timeout: 400ms
drill:
  canary:
    http: {{ url: "http://api.example.test:{port}/drover-canary" }}
    interval: 50ms
    timeout: 1s
    resolve: traffic
  stop_when:
    - {{ cloudwatch_alarm: {ALARM}, region: west }}
"#
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        let scene = Scene { moto, bridge, rt, r53, zone, east_hc, service, plan: path, _dir: dir };
        scene.watch_east();
        scene
    }

    /// East serves nobody while its health check is inverted (read from moto).
    fn watch_east(&self) {
        let (r53, id, down) = (self.r53.clone(), self.east_hc.clone(), self.service.east_down.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                loop {
                    if let Ok(out) = r53.get_health_check().health_check_id(&id).send().await {
                        let inverted =
                            out.health_check().and_then(|h| h.health_check_config()).and_then(|c| c.inverted());
                        down.store(inverted == Some(true), Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = drover();
        with_moto(cmd.args(args).arg("--plan").arg(&self.plan), &self.moto)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &self.bridge.endpoint);
        cmd
    }

    fn drover(&self, args: &[&str]) -> Ran {
        let ran = run(&mut self.command(args));
        assert_no_secrets(&ran);
        ran
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let ran = self.drover(args);
        assert_eq!(ran.code, 0, "{args:?}: {}{}", ran.stdout, ran.stderr);
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", ran.stdout))
    }

    /// East's health check, read from moto: inverted or not.
    fn east_inverted(&self) -> bool {
        self.rt.block_on(async {
            let out = self.r53.get_health_check().health_check_id(&self.east_hc).send().await.unwrap();
            out.health_check().and_then(|h| h.health_check_config()).and_then(|c| c.inverted()) == Some(true)
        })
    }

    /// (region, failover role) of each record set, from moto.
    fn roles(&self) -> Vec<(String, String)> {
        let (sets, _) = self.rt.block_on(read_back(&self.r53, &self.zone, RECORD));
        sets.into_iter().map(|s| (s.set_identifier, s.failover.unwrap_or_default())).collect()
    }

    fn drills(&self) -> Vec<serde_json::Value> {
        self.json(&["drills", "-o", "json"])["drills"].as_array().unwrap().clone()
    }
}

fn wait_until(what: &str, guard: Duration, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + guard;
    while !done() {
        assert!(Instant::now() < give_up, "{what}: not within {guard:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_route53_health_check_drill_fails_over_measures_the_canary_and_undoes_the_fault() {
    let scene = Scene::new("500ms");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let ran = scene.drover(&[
        "drill",
        "--fault",
        "route53-health-check",
        "--yes",
        "--despite-readiness",
        "--settle",
        "2s",
        "--json",
        report.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let said = format!("{}{}", ran.stdout, ran.stderr);
    for piece in ["fault: route53-health-check injected in east", "detected: east is down", "fault undone"] {
        assert!(said.contains(piece), "missing {piece:?} in:\n{said}");
    }

    // The failover happened: west holds the PRIMARY set, and the fault is gone.
    assert!(!scene.east_inverted(), "the health check was set back");
    let roles = scene.roles();
    assert!(roles.contains(&("us-west-1".into(), "PRIMARY".into())), "{roles:?}");

    // What the canary saw: it wrote to east, then followed the record to west; nothing
    // acknowledged was lost (one store), and the outage shows as an RTO.
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!((&r["from"], &r["to"], &r["run_state"]), (&"east".into(), &"west".into(), &"completed".into()), "{r:#}");
    assert_eq!(r["fault"], "route53-health-check:east");
    assert_eq!(r["lost_acknowledged_writes"], 0, "{r:#}");
    assert!(r["rto_ms"].as_u64().is_some(), "writes recovered: {r:#}");
    assert!(r["timeline"]["detected"].as_u64().is_some() && r["timeline"]["switched"].as_u64().is_some(), "{r:#}");
    let canary = r["canary"].as_str().unwrap();
    assert!(canary.contains("traffic"), "the report says names were followed through the traffic record: {canary}");
    assert!(scene.service.east_acked.load(Ordering::SeqCst) > 0, "the canary wrote to east first");
    assert!(scene.service.west_acked.load(Ordering::SeqCst) > 0, "then to west");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && !page.contains("<script"), "a self-contained page");

    // Journaled: the history lists it, completed, with the fault undone.
    let drills = scene.drills();
    assert_eq!(drills.len(), 1, "{drills:#?}");
    assert_eq!(
        (&drills[0]["state"], &drills[0]["fault_in_place"]),
        (&"completed".into(), &false.into()),
        "{drills:#?}"
    );
}

#[test]
fn a_stop_condition_refuses_a_drill_and_one_going_to_alarm_aborts_it_and_undoes_the_fault() {
    // Detection takes 30 s here: the stop condition comes first.
    let scene = Scene::new("10s");
    let drill = |extra: &[&str]| {
        let mut args = vec!["drill", "--fault", "route53-health-check", "--yes", "--despite-readiness"];
        args.extend_from_slice(extra);
        scene.drover(&args)
    };

    cw::set_state(&scene.moto, "us-west-1", ALARM, "ALARM", "errors above budget");
    let refused = drill(&[]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("drill refused: stop condition alarm shop-5xx in west is in ALARM: errors above budget"),
        "{}",
        refused.stderr
    );
    assert!(!scene.east_inverted(), "nothing was injected");
    assert!(scene.drills().is_empty(), "nothing was journaled");

    // Back to OK: the drill starts; the alarm fires once the fault is in place.
    cw::set_state(&scene.moto, "us-west-1", ALARM, "OK", "no errors");
    let mut child = scene.command(&["drill", "--fault", "route53-health-check", "--yes", "--despite-readiness"]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until("the fault is injected", Duration::from_secs(60), || scene.east_inverted());
    cw::set_state(&scene.moto, "us-west-1", ALARM, "ALARM", "errors above budget");
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("drill stopped: stop condition alarm shop-5xx in west is in ALARM"), "{said}");
    assert!(!scene.east_inverted(), "the fault was undone");
    assert_eq!(scene.roles(), [("us-east-2".into(), "PRIMARY".into()), ("us-west-1".into(), "SECONDARY".into())]);
    let drills = scene.drills();
    assert_eq!((&drills[0]["state"], &drills[0]["fault_in_place"]), (&"aborted".into(), &false.into()), "{drills:#?}");
}

#[test]
fn a_drill_killed_with_its_fault_in_place_is_undone_by_drill_abort() {
    let scene = Scene::new("10s");
    let mut child = scene.command(&["drill", "--fault", "route53-health-check", "--yes", "--despite-readiness"]);
    let mut child = child.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the fault is injected", Duration::from_secs(60), || scene.east_inverted());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(scene.east_inverted(), "SIGKILL left the fault in place");

    let drills = scene.drills();
    assert_eq!((&drills[0]["state"], &drills[0]["fault_in_place"]), (&"running".into(), &true.into()), "{drills:#?}");
    let id = drills[0]["id"].as_str().unwrap().to_owned();
    // A new drill is refused while this one is unfinished.
    let second = scene.drover(&["drill", "--fault", "route53-health-check", "--yes", "--despite-readiness"]);
    assert_eq!(second.code, 2, "{}{}", second.stdout, second.stderr);
    assert!(scene.east_inverted());

    let aborted = scene.drover(&["drill", "abort", &id]);
    assert_eq!(aborted.code, 0, "{}{}", aborted.stdout, aborted.stderr);
    assert!(aborted.stdout.contains(&format!("drill {id} aborted")), "{}", aborted.stdout);
    assert!(!scene.east_inverted(), "drill abort set the health check back");
    let drills = scene.drills();
    assert_eq!((&drills[0]["state"], &drills[0]["fault_in_place"]), (&"aborted".into(), &false.into()), "{drills:#?}");
    // Twice is refused, and changes nothing.
    let again = scene.drover(&["drill", "abort", &id]);
    assert_eq!(again.code, 2, "{}{}", again.stdout, again.stderr);
}
