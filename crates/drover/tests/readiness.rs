//! `drover readiness` against a real moto server: an RDS primary in us-east-2 and its
//! cross-region read replica in us-west-1, Route 53
//! failover record sets with health checks, and an Auto Scaling group in each region.
//! First every AWS-backed rule passes; then the world is changed the way it drifts (the
//! replica resized and moved to an older parameter group family, the
//! standby group's max size lowered and its launch configuration deleted, a health check
//! that does not exist) and each of those rules fails, read back from moto.
//!
//! moto serves CloudWatch only in protocols the Rust SDK's client does not speak (see
//! cloudwatch.rs), so an RDS replica's lag is unknown here: the database rule warns so.
//! The lag against the RPO is proven on a PostgreSQL pair (readiness_pg.rs) and in the core.

#![cfg(feature = "aws")]

#[path = "support/aws.rs"]
mod aws;
#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;
mod support;

use std::path::Path;

use aws::{assert_no_secrets, with_moto};
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{Moto, a_set, auto_scaling_group, create_sets, health_check, hosted_zone, seed_rds};
use serde_json::Value;
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST_IP: &str = "192.0.2.10";
const WEST_IP: &str = "192.0.2.20";

fn readiness(moto: &Moto, plan: &Path) -> (Ran, Value) {
    let ran = run(with_moto(drover().args(["readiness", "-o", "json", "--plan"]).arg(plan), moto));
    assert_no_secrets(&ran);
    let v: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", ran.stdout, ran.stderr));
    (ran, v)
}

/// The findings of `rule` in `region` ("plan" for plan-wide ones), as (level, reason).
fn findings(v: &Value, rule: &str, region: &str) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule && f["region"].as_str().unwrap_or("plan") == region)
        .map(|f| (f["level"].as_str().unwrap().to_owned(), f["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn plan_text(zone: &str, east_hc: &str, west_hc: &str, objectives: &str) -> String {
    format!(
        r#"name: shop
objectives: {objectives}
regions:
  us-east-2: {{ role: primary }}
  us-west-1: {{ role: standby }}
database:
  kind: rds
  promote_timeout: 10m
  members:
    us-east-2: {{ instance: shop-db }}
    us-west-1: {{ instance: shop-db-replica }}
traffic:
  kind: route53
  hosted_zone_id: {zone}
  record: {RECORD}
  type: A
  ttl: 60s
  routing: failover
  change_timeout: 2m
  targets:
    us-east-2: {{ value: {EAST_IP}, set_identifier: us-east-2, health_check_id: {east_hc} }}
    us-west-1: {{ value: {WEST_IP}, set_identifier: us-west-1, health_check_id: {west_hc} }}
compute:
  web:
    kind: autoscaling-group
    regions:
      us-east-2: {{ name: web-east }}
      us-west-1: {{ name: web-west }}
checks:
  r53:
    route53_health_check: {{ us-east-2: {east_hc}, us-west-1: {west_hc} }}
    interval: 10s
    timeout: 5s
"#
    )
}

#[test]
fn aws_rules_pass_on_a_matching_pair_and_fail_once_it_drifts() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (east, west, r53) = (moto.rds("us-east-2"), moto.rds("us-west-1"), moto.route53());
    let asg_west = moto::autoscaling(&moto, "us-west-1");
    let (zone, east_hc, west_hc) = rt.block_on(async {
        seed_rds(&east, &west, "shop-pg").await;
        auto_scaling_group(&moto::autoscaling(&moto, "us-east-2"), "web-east", "us-east-2a", 3).await;
        auto_scaling_group(&asg_west, "web-west", "us-west-1a", 1).await;
        let zone = hosted_zone(&r53, "example.test.").await;
        let (east_hc, west_hc) = (health_check(&r53, EAST_IP).await, health_check(&r53, WEST_IP).await);
        let sets = [
            a_set(RECORD, EAST_IP, "us-east-2").failover(ResourceRecordSetFailover::Primary),
            a_set(RECORD, WEST_IP, "us-west-1").failover(ResourceRecordSetFailover::Secondary),
        ];
        create_sets(&r53, &zone, sets.into_iter().map(|s| s.build().unwrap()).collect()).await;
        (zone, east_hc, west_hc)
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, plan_text(&zone, &east_hc, &west_hc, "{ rto: 15m, rpo: 1m }")).unwrap();

    let (ran, v) = readiness(&moto, &plan);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let pass = |rule: &str, region: &str, words: &str| {
        let found = findings(&v, rule, region);
        assert!(found.iter().any(|(l, r)| l == "pass" && r.contains(words)), "{rule} {region}: {found:?}\n{v:#}");
    };
    pass("database", "us-east-2", "the primary takes writes");
    pass("database", "us-west-1", "configured like the primary: engine");
    pass("database", "us-west-1", "family postgres15");
    let west_db = findings(&v, "database", "us-west-1");
    assert!(west_db.iter().any(|(l, r)| l == "warn" && r.ends_with("shop-db, but its lag is unknown")), "{west_db:?}");
    // 10s × 3 + 10m + 2m + 60s = 13m30s.
    pass("budget", "plan", "= 810s, within the RTO objective 15m");
    pass("traffic", "us-east-2", &format!("health check {east_hc}"));
    pass("traffic", "us-west-1", &format!("health check {west_hc}"));
    pass("compute", "us-east-2", "web: the primary runs 3 desired");
    pass("compute", "us-west-1", "web: max 10 allows the 3 it needs");
    pass("compute", "us-west-1", "launch configuration web-west-lc exists");
    assert_eq!(findings(&v, "permissions", "plan")[0].0, "warn", "{v:#}");
    assert_eq!(
        findings(&v, "drills", "plan")[0],
        ("warn".into(), "no drill recorded: the failover path is unproven".into())
    );
    assert_eq!(v["level"], "warn");

    // The world drifts.
    rt.block_on(async {
        west.create_db_parameter_group()
            .db_parameter_group_name("shop-old-pg")
            .db_parameter_group_family("postgres14")
            .description("an older family")
            .send()
            .await
            .unwrap();
        west.modify_db_instance()
            .db_instance_identifier("shop-db-replica")
            .db_instance_class("db.t3.large")
            .db_parameter_group_name("shop-old-pg")
            .apply_immediately(true)
            .send()
            .await
            .unwrap();
        asg_west.update_auto_scaling_group().auto_scaling_group_name("web-west").max_size(2).send().await.unwrap();
        asg_west.delete_launch_configuration().launch_configuration_name("web-west-lc").send().await.unwrap();
        // Read back: moto holds the drift drover is to report.
        let replica = west.describe_db_instances().db_instance_identifier("shop-db-replica").send().await.unwrap();
        assert_eq!(replica.db_instances()[0].db_instance_class(), Some("db.t3.large"));
    });
    let missing_hc = "00000000-0000-0000-0000-000000000000";
    std::fs::write(&plan, plan_text(&zone, &east_hc, missing_hc, "{ rto: 10m, rpo: 1m }")).unwrap();

    let (ran, v) = readiness(&moto, &plan);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("readiness finding(s) fail"), "{}", ran.stderr);
    assert_eq!(v["level"], "fail");
    let has = |rule: &str, region: &str, level: &str, words: &str| {
        let found = findings(&v, rule, region);
        assert!(
            found.iter().any(|(l, r)| l == level && r.contains(words)),
            "{rule} {region} {level} {words:?}: {found:?}"
        );
    };
    has("database", "us-west-1", "fail", "parameter group family postgres14 (primary postgres15)");
    has("database", "us-west-1", "fail", "instance class db.t3.large (primary db.t3.micro)");
    has("budget", "plan", "fail", "= 810s, more than the RTO objective 10m");
    has(
        "traffic",
        "us-west-1",
        "fail",
        &format!(
            "its health check fails: us-east-1/healthcheck/{missing_hc}: GetHealthCheckStatus failed: NoSuchHealthCheck"
        ),
    );
    has("traffic", "plan", "fail", "no such health check");
    has("compute", "us-west-1", "warn", "web: max 2 below the 3 it needs");
    has("compute", "us-west-1", "fail", "its launch configuration web-west-lc does not exist");
    // What did not drift still passes.
    has("traffic", "us-east-2", "pass", &format!("health check {east_hc}"));
    has("database", "us-east-2", "pass", "the primary takes writes");

    // RDS replicates asynchronously: an RPO of 0 cannot be met.
    std::fs::write(&plan, plan_text(&zone, &east_hc, &west_hc, "{ rto: 1h, rpo: 0s }")).unwrap();
    let (ran, v) = readiness(&moto, &plan);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    has_in(&v, "budget", "objectives.rpo is 0s but rds replication is asynchronous");
}

fn has_in(v: &Value, rule: &str, words: &str) {
    let found = findings(v, rule, "plan");
    assert!(found.iter().any(|(l, r)| l == "fail" && r.contains(words)), "{rule}: {found:?}");
}
