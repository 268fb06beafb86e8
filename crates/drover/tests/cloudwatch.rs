//! CloudWatch alarm checks through the whole drover path: a plan file with a
//! `cloudwatch_alarm` check, the `drover` binary, a real PostgreSQL pair, and a
//! real moto server holding the alarms (created and set with PutMetricAlarm and
//! SetAlarmState) in each region's AWS region.
//!
//! moto 5.2.5 speaks CloudWatch's Query and JSON protocols but not rpc-v2-cbor,
//! the only one the Rust SDK's CloudWatch client sends. So CloudWatch requests go
//! (`AWS_ENDPOINT_URL_CLOUDWATCH`) to a small bridge (support/cloudwatch.rs) that re-encodes
//! each CBOR request as JSON for moto, keeping its signed Authorization header
//! (moto takes the region from it), and moto's JSON answer as CBOR. Every other
//! AWS request (Route 53) goes to moto directly.

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

use std::path::PathBuf;

use aws::{assert_no_secrets, with_moto};
use cw::{bridge, put_alarm, set_state};
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{Moto, a_set, create_sets, hosted_zone, read_back, roles};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST: &str = "192.0.2.10";
const WEST: &str = "192.0.2.20";
/// moto with east's Route 53 PRIMARY record and an alarm per region (east in
/// us-east-2, west in us-west-1), a PostgreSQL pair, the bridge, and the plan.
struct Scene {
    moto: Moto,
    bridge: bridge::Bridge,
    rt: tokio::runtime::Runtime,
    zone: String,
    plan: PathBuf,
    _cluster: pg::Cluster,
    _dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        // reqwest (the test's own calls to moto and the bridge's) needs a rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = moto.route53();
        let zone = rt.block_on(async {
            let zone = hosted_zone(&client, "example.test.").await;
            let sets = [
                a_set(RECORD, EAST, "east").failover(ResourceRecordSetFailover::Primary).build().unwrap(),
                a_set(RECORD, WEST, "west").failover(ResourceRecordSetFailover::Secondary).build().unwrap(),
            ];
            create_sets(&client, &zone, sets.into()).await;
            zone
        });
        put_alarm(&moto, "us-east-2", "api-5xx-east");
        put_alarm(&moto, "us-west-1", "api-5xx-west");
        let bridge = bridge::start(moto.endpoint());
        let cluster = pg::Cluster::pair(pg::Replication::Asynchronous);
        let dir = tempfile::tempdir().unwrap();
        for region in ["east", "west"] {
            support::write_secret(dir.path().join(format!("{region}.dsn")), cluster.node(region).dsn());
        }
        let d = dir.path().display();
        let plan = format!(
            r#"name: shop
objectives: {{ rto: 60s, rpo: 1m }}
regions:
  east: {{ role: primary, aws_region: us-east-2 }}
  west: {{ role: standby, aws_region: us-west-1 }}
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
  routing: failover
  targets: {{ east: {EAST}, west: {WEST} }}
checks:
  db: {{ postgres: member, interval: 500ms, timeout: 400ms }}
  errors:
    cloudwatch_alarm: {{ east: api-5xx-east, west: api-5xx-west }}
    interval: 2s
    timeout: 1500ms
"#
        );
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        Scene { moto, bridge, rt, zone, plan: path, _cluster: cluster, _dir: dir }
    }

    fn drover(&self, args: &[&str]) -> Ran {
        let mut cmd = drover();
        with_moto(cmd.args(args).arg("--plan").arg(&self.plan), &self.moto)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &self.bridge.endpoint);
        let ran = run(&mut cmd);
        assert_no_secrets(&ran);
        ran
    }

    /// Each region's `errors` check as `drover status -o json` reports it: (ok, detail).
    fn alarm_checks(&self) -> Vec<(String, bool, String)> {
        let ran = self.drover(&["status", "-o", "json"]);
        assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
        let status: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
        let mut seen = Vec::new();
        for region in status["regions"].as_array().unwrap() {
            for check in region["checks"].as_array().unwrap().iter().filter(|c| c["check"] == "errors") {
                seen.push((
                    region["region"].as_str().unwrap().to_owned(),
                    check["ok"].as_bool().unwrap(),
                    check["detail"].as_str().unwrap().to_owned(),
                ));
            }
        }
        seen
    }

    fn primary_record(&self) -> Vec<(String, Option<String>)> {
        let (sets, _) = self.rt.block_on(read_back(&self.moto.route53(), &self.zone, RECORD));
        roles(&sets).into_iter().map(|(id, _, role)| (id.to_owned(), role.map(str::to_owned))).collect()
    }
}

#[test]
fn a_cloudwatch_alarm_in_alarm_makes_its_region_unhealthy_and_refuses_a_failover_to_it() {
    let scene = Scene::new();
    set_state(&scene.moto, "us-east-2", "api-5xx-east", "OK", "Threshold Crossed: 0 errors");
    set_state(&scene.moto, "us-west-1", "api-5xx-west", "ALARM", "Threshold Crossed: 42 errors");

    // Each region's alarm is read in its own AWS region.
    assert_eq!(
        scene.alarm_checks(),
        [
            ("east".to_owned(), true, "OK: Threshold Crossed: 0 errors".to_owned()),
            ("west".to_owned(), false, "ALARM: Threshold Crossed: 42 errors".to_owned()),
        ]
    );

    let refused = scene.drover(&["failover", "--yes", "--to", "west"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(
            "region 'west' is unhealthy: check errors: ALARM: Threshold Crossed: 42 errors; fix it or choose another region"
        ),
        "{}",
        refused.stderr
    );
    let east_primary =
        [("east".to_owned(), Some("PRIMARY".to_owned())), ("west".to_owned(), Some("SECONDARY".to_owned()))];
    assert_eq!(scene.primary_record(), east_primary, "nothing moved");

    // INSUFFICIENT_DATA fails too: the alarm cannot say the region is well.
    set_state(&scene.moto, "us-east-2", "api-5xx-east", "INSUFFICIENT_DATA", "no datapoints");
    let checks = scene.alarm_checks();
    assert!(!checks[0].1, "{checks:?}");
    assert!(checks[0].2.starts_with("INSUFFICIENT_DATA: no datapoints — the alarm has too little data"), "{checks:?}");

    // West's alarm back to OK: the failover goes through, and west passes verify.
    set_state(&scene.moto, "us-west-1", "api-5xx-west", "OK", "Threshold Crossed: 0 errors");
    let ran = scene.drover(&["failover", "--yes", "--to", "west"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(
        scene.primary_record(),
        [("east".to_owned(), Some("SECONDARY".to_owned())), ("west".to_owned(), Some("PRIMARY".to_owned()))]
    );
}
