//! The whole drover path with Route 53 traffic: a plan file, the `drover` binary
//! pointed at a real moto server through `AWS_ENDPOINT_URL`, and a real
//! PostgreSQL pair. Record sets are read back from moto with the SDK.

#![cfg(feature = "aws")]

#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_adapters::route53::sdk::Client;
use drover_adapters::route53::sdk::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};
use moto::Moto;
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST: &str = "192.0.2.10";
const WEST: &str = "192.0.2.20";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A hosted zone holding the region's record sets (`routing` sets each one's attribute),
/// and a health check per region; returns the zone id and the health check ids.
async fn seed(client: &Client, weighted: bool) -> (String, String, String) {
    let zone = client
        .create_hosted_zone()
        .name("example.test.")
        .caller_reference("drover-cli-test")
        .send()
        .await
        .expect("create hosted zone in moto")
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let mut health = Vec::new();
    for ip in [EAST, WEST] {
        let config =
            HealthCheckConfig::builder().ip_address(ip).port(80).r#type(HealthCheckType::Http).build().unwrap();
        let out = client.create_health_check().caller_reference(ip).health_check_config(config).send().await.unwrap();
        health.push(out.health_check().unwrap().id().to_owned());
    }
    let mut changes = Vec::new();
    for (region, value, first) in [("east", EAST, true), ("west", WEST, false)] {
        let mut set = ResourceRecordSet::builder()
            .name(RECORD)
            .r#type(RrType::A)
            .ttl(60)
            .set_identifier(region)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap());
        set = if weighted {
            set.weight(if first { 100 } else { 0 })
        } else {
            set.failover(if first { ResourceRecordSetFailover::Primary } else { ResourceRecordSetFailover::Secondary })
        };
        let set = set.build().unwrap();
        changes.push(Change::builder().action(ChangeAction::Create).resource_record_set(set).build().unwrap());
    }
    client
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
        .send()
        .await
        .expect("seed record sets");
    (zone, health.remove(0), health.remove(0))
}

/// (set identifier, value, failover, weight) of RECORD's sets, and the epoch TXT values.
async fn read_back(client: &Client, zone: &str) -> (Vec<(String, String, Option<String>, Option<i64>)>, Vec<String>) {
    let out = client.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let (mut sets, mut txt) = (Vec::new(), Vec::new());
    for s in out.resource_record_sets() {
        let values: Vec<&str> = s.resource_records().iter().map(|r| r.value()).collect();
        if s.name() == format!("_drover-epoch.{RECORD}") {
            txt.extend(values.iter().map(|v| v.to_string()));
        } else if s.name() == RECORD {
            let failover = s.failover().map(|f| f.as_str().to_owned());
            sets.push((s.set_identifier().unwrap_or_default().to_owned(), values.join(","), failover, s.weight()));
        }
    }
    sets.sort();
    (sets, txt)
}

/// A plan for the pair: route53 traffic as given, a postgres check and the health checks.
fn write_plan(dir: &Path, cluster: &pg::Cluster, traffic: &str, east_hc: &str, west_hc: &str) -> std::path::PathBuf {
    for region in ["east", "west"] {
        std::fs::write(dir.join(format!("{region}.dsn")), cluster.node(region).dsn()).unwrap();
    }
    let d = dir.display();
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
{traffic}
checks:
  db: {{ postgres: member, interval: 500ms, timeout: 400ms }}
  r53:
    route53_health_check: {{ east: {east_hc}, west: {west_hc} }}
    interval: 500ms
    timeout: 400ms
"#
    );
    let path = dir.join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    path
}

fn with_moto<'c>(cmd: &'c mut Command, moto: &Moto) -> &'c mut Command {
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd.env("DROVER_LOG", "trace")
}

/// Neither the AWS credentials nor the database password reach output or logs (at trace level).
fn assert_no_secrets(ran: &Ran) {
    for secret in [moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, pg::PASSWORD] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "a secret leaked:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
}

fn status(plan: &Path, moto: &Moto) -> Ran {
    let ran = run(with_moto(drover().args(["status", "--plan"]).arg(plan), moto));
    assert_no_secrets(&ran);
    ran
}

#[test]
fn failover_moves_the_route53_primary_record_to_the_new_region() {
    let moto = Moto::start();
    let rt = runtime();
    let client = moto.route53();
    let (zone, east_hc, west_hc) = rt.block_on(seed(&client, false));
    let cluster = pg::Cluster::pair(pg::Replication::Asynchronous);
    let dir = tempfile::tempdir().unwrap();
    let traffic = format!(
        "traffic:\n  kind: route53\n  hosted_zone_id: {zone}\n  record: {RECORD}\n  type: A\n  ttl: 60s\n  routing: failover\n  targets:\n    east: {{ value: {EAST}, health_check_id: {east_hc} }}\n    west: {{ value: {WEST}, health_check_id: {west_hc} }}\n"
    );
    let plan = write_plan(dir.path(), &cluster, &traffic, &east_hc, &west_hc);

    let before = status(&plan, &moto);
    assert_eq!(before.code, 0, "{}{}", before.stdout, before.stderr);
    assert!(
        before.stdout.contains(&format!("traffic: {RECORD} -> {EAST} (region east, epoch 0)")),
        "{}",
        before.stdout
    );

    let ran = run(with_moto(drover().args(["failover", "--yes", "--to", "west", "--plan"]).arg(&plan), &moto));
    assert_no_secrets(&ran);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);

    let (sets, txt) = rt.block_on(read_back(&client, &zone));
    assert_eq!(
        sets,
        vec![
            ("east".into(), EAST.into(), Some("SECONDARY".into()), None),
            ("west".into(), WEST.into(), Some("PRIMARY".into()), None),
        ]
    );
    assert_eq!(txt, vec!["\"1\"".to_string()]);
    let after = status(&plan, &moto);
    assert!(after.stdout.contains(&format!("traffic: {RECORD} -> {WEST} (region west, epoch 1)")), "{}", after.stdout);
}

#[test]
fn a_staged_weighted_failover_applies_every_stage_in_order() {
    let moto = Moto::start();
    let rt = runtime();
    let client = moto.route53();
    let (zone, east_hc, west_hc) = rt.block_on(seed(&client, true));
    let cluster = pg::Cluster::pair(pg::Replication::Asynchronous);
    let dir = tempfile::tempdir().unwrap();
    let traffic = format!(
        "traffic:\n  kind: route53\n  hosted_zone_id: {zone}\n  record: {RECORD}\n  type: A\n  ttl: 60s\n  routing: weighted\n  stages: [10, 25, 50, 100]\n  stage_pause: 1s\n  targets: {{ east: {EAST}, west: {WEST} }}\n"
    );
    let plan = write_plan(dir.path(), &cluster, &traffic, &east_hc, &west_hc);

    // Watch moto while drover runs: every distinct (east, west) weights and epoch record, in order.
    let seen: Arc<Mutex<Vec<(Vec<Option<i64>>, Vec<String>)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, done, client, zone) = (seen.clone(), done.clone(), client.clone(), zone.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            while !done.load(Ordering::Relaxed) {
                let (sets, txt) = rt.block_on(read_back(&client, &zone));
                let now = (sets.iter().map(|s| s.3).collect::<Vec<_>>(), txt);
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let ran = run(with_moto(drover().args(["failover", "--yes", "--to", "west", "--plan"]).arg(&plan), &moto));
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_no_secrets(&ran);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);

    let q = |s: &str| vec![format!("\"{s}\"")];
    let seen = seen.lock().unwrap().clone();
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
    let after = status(&plan, &moto);
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
