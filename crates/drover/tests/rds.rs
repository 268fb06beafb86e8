//! The whole drover path with an RDS database: a plan file, the `drover` binary pointed at
//! a real moto server through `AWS_ENDPOINT_URL`, a primary instance in us-east-2 and its
//! cross-region read replica in us-west-1, Route 53 failover records in the same moto.
//! `drover failover` fences the primary (its parameter group), promotes the replica and
//! tags it with the epoch; the instances are read back from moto with the SDK.

#![cfg(feature = "aws")]

#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
mod support;

use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{Moto, a_set, create_sets, health_check, hosted_zone, read_back, roles, seed_rds};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST_IP: &str = "192.0.2.10";
const WEST_IP: &str = "192.0.2.20";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn drover_with(moto: &Moto, args: &[&str]) -> Ran {
    let mut cmd = drover();
    cmd.args(args);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    let ran = run(cmd.env("DROVER_LOG", "trace"));
    for secret in [moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "a credential leaked:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
    ran
}

#[test]
fn failover_promotes_the_cross_region_replica_and_tags_it_with_the_epoch() {
    let moto = Moto::start();
    let rt = runtime();
    let (east, west, r53) = (moto.rds("us-east-2"), moto.rds("us-west-1"), moto.route53());
    let (zone, east_hc, west_hc) = rt.block_on(async {
        seed_rds(&east, &west, "shop-pg").await;
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
    std::fs::write(
        &plan,
        format!(
            r#"name: shop
objectives: {{ rto: 30m, rpo: 1m }}
regions:
  us-east-2: {{ role: primary }}
  us-west-1: {{ role: standby }}
database:
  kind: rds
  promote_timeout: 2m
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
  targets:
    us-east-2: {{ value: {EAST_IP}, set_identifier: us-east-2 }}
    us-west-1: {{ value: {WEST_IP}, set_identifier: us-west-1 }}
checks:
  r53:
    route53_health_check: {{ us-east-2: {east_hc}, us-west-1: {west_hc} }}
    interval: 500ms
    timeout: 400ms
"#
        ),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();

    let check = drover_with(&moto, &["plan", "check", plan]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains(
            "database   rds, instances us-east-2 -> shop-db, us-west-1 -> shop-db-replica, promote timeout 2m"
        ),
        "{}",
        check.stdout
    );

    // A planned move cannot be promised for RDS: refused with the reason, nothing changed.
    let refused = drover_with(&moto, &["switchover", "--yes", "--plan", plan, "--to", "us-west-1"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("cannot promise no data loss"), "{}", refused.stderr);

    let ran = drover_with(&moto, &["failover", "--yes", "--plan", plan, "--to", "us-west-1", "-o", "json"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let out: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout));
    let steps: Vec<(String, String)> = out["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["state"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let kinds: Vec<&str> = steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["fence", "promote", "switch", "verify"], "{out}");

    rt.block_on(async {
        let replica = west.describe_db_instances().db_instance_identifier("shop-db-replica").send().await.unwrap();
        let replica = &replica.db_instances()[0];
        assert_eq!(replica.read_replica_source_db_instance_identifier(), None, "standalone");
        assert_eq!(replica.db_instance_status(), Some("available"));
        let epoch = replica.tag_list().iter().find(|t| t.key() == Some("drover:epoch")).and_then(|t| t.value());
        assert_eq!(epoch, Some("1"));
        // The old primary was reachable, so it was fenced through its parameter group.
        let params = east.describe_db_parameters().db_parameter_group_name("shop-pg").send().await.unwrap();
        let read_only =
            params.parameters().iter().find(|p| p.parameter_name() == Some("default_transaction_read_only"));
        assert_eq!(read_only.and_then(|p| p.parameter_value()), Some("1"));
        let (sets, txt) = read_back(&r53, &zone, RECORD).await;
        assert_eq!(roles(&sets), [("us-east-2", EAST_IP, Some("SECONDARY")), ("us-west-1", WEST_IP, Some("PRIMARY"))]);
        assert_eq!(txt, vec!["\"1\"".to_string()]);
    });

    let status = drover_with(&moto, &["status", "--plan", plan]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("primary, writable, epoch 1"), "{}", status.stdout);
    assert!(status.stdout.contains("primary, read-only (fenced)"), "{}", status.stdout);

    // The old primary is a standalone instance with none of the writes made on us-west-1
    // since: a failover back to it is refused, and nothing is touched.
    let stale = drover_with(&moto, &["failover", "--yes", "--plan", plan, "--to", "us-east-2"]);
    assert_eq!(stale.code, 2, "{}{}", stale.stdout, stale.stderr);
    assert!(
        stale.stderr.contains("region 'us-east-2' holds older data than the primary")
            && stale.stderr.contains("us-west-1 was promoted at epoch 1")
            && stale.stderr.contains("--accept-data-loss"),
        "{}",
        stale.stderr
    );
    let read_only =
        |params: &drover_adapters::aws::rds::sdk::operation::describe_db_parameters::DescribeDbParametersOutput| {
            params
                .parameters()
                .iter()
                .find(|p| p.parameter_name() == Some("default_transaction_read_only"))
                .and_then(|p| p.parameter_value().map(str::to_owned))
        };
    let world = || {
        rt.block_on(async {
            let east_params = east.describe_db_parameters().db_parameter_group_name("shop-pg").send().await.unwrap();
            let west_params =
                west.describe_db_parameters().db_parameter_group_name("shop-replica-pg").send().await.unwrap();
            let (sets, txt) = read_back(&r53, &zone, RECORD).await;
            let roles: Vec<(String, String, Option<String>)> = roles(&sets)
                .into_iter()
                .map(|(id, value, role)| (id.to_owned(), value.to_owned(), role.map(str::to_owned)))
                .collect();
            (read_only(&east_params), read_only(&west_params), roles, txt)
        })
    };
    let (east_ro, west_ro, sets, txt) = world();
    assert_eq!(east_ro.as_deref(), Some("1"), "the stale primary stays fenced");
    assert_ne!(west_ro.as_deref(), Some("1"), "the real primary was not fenced");
    let owned = |set: [(&str, &str, &str); 2]| -> Vec<(String, String, Option<String>)> {
        set.iter().map(|(id, v, r)| (id.to_string(), v.to_string(), Some(r.to_string()))).collect()
    };
    assert_eq!(sets, owned([("us-east-2", EAST_IP, "SECONDARY"), ("us-west-1", WEST_IP, "PRIMARY")]));
    assert_eq!(txt, vec!["\"1\"".to_string()]);
    let runs = drover_with(&moto, &["runs", "--plan", plan, "-o", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "the refusal journaled nothing: {runs}");

    // Said explicitly, the loss is accepted: the move happens and the journal keeps why.
    let forced = drover_with(
        &moto,
        &["failover", "--yes", "--plan", plan, "--to", "us-east-2", "--accept-data-loss", "-o", "json"],
    );
    assert_eq!(forced.code, 0, "{}{}", forced.stdout, forced.stderr);
    assert!(forced.stderr.contains("DATA LOSS ACCEPTED"), "{}", forced.stderr);
    let run: serde_json::Value = serde_json::from_str(&forced.stdout).unwrap();
    let loss = run["header"]["accepted_loss"].as_str().unwrap_or_else(|| panic!("no accepted_loss: {run}"));
    assert!(loss.contains("us-west-1 was promoted at epoch 1"), "{loss}");
    let (east_ro, west_ro, sets, txt) = world();
    assert_eq!((east_ro.as_deref(), west_ro.as_deref()), (Some("0"), Some("1")), "east unfenced, west fenced");
    assert_eq!(sets, owned([("us-east-2", EAST_IP, "PRIMARY"), ("us-west-1", WEST_IP, "SECONDARY")]));
    assert_eq!(txt, vec!["\"2\"".to_string()]);
}
