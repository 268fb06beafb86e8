//! Preflight against the customer's stack in a real moto server: RDS in us-east-2 with a
//! cross-region read replica in us-west-1, Route 53 failover record sets with health checks,
//! an EKS node group and an Auto Scaling group on each side. A plan that misnames one of
//! them is refused by `drover failover` before anything happens: exit 2, the resource and
//! the plan field named, no run journaled, and every resource read back as it was.

#![cfg(feature = "aws")]

#[path = "support/aws.rs"]
mod aws;
#[path = "../../drover-adapters/tests/support/moto.rs"]
mod moto;
#[path = "../../drover-adapters/tests/support/pg.rs"]
mod pg;
mod support;

use std::path::PathBuf;

use aws::{assert_no_secrets, with_moto};
use drover_adapters::aws::autoscaling_sdk::Client as AsgClient;
use drover_adapters::aws::eks_sdk::Client as EksClient;
use drover_adapters::aws::rds::sdk::Client as RdsClient;
use drover_adapters::aws::route53::sdk::Client as Route53Client;
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{
    Moto, SetSeen, a_set, auto_scaling_group, create_sets, group_size, health_check, hosted_zone, nodegroup,
    nodegroup_size, read_back, seed_rds,
};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";
const EAST_IP: &str = "192.0.2.10";
const WEST_IP: &str = "192.0.2.20";

struct Scene {
    moto: Moto,
    rt: tokio::runtime::Runtime,
    rds: [RdsClient; 2],
    eks: [EksClient; 2],
    asg: [AsgClient; 2],
    r53: Route53Client,
    zone: String,
    plan: PathBuf,
    _dir: tempfile::TempDir,
}

/// Everything a refused run must have left as it was.
#[derive(Debug, PartialEq)]
struct World {
    /// The primary's `default_transaction_read_only` in its parameter group (the fence).
    east_read_only: Option<String>,
    /// What the replica in us-west-1 replicates from.
    replica_source: Option<String>,
    /// Route 53's sets of the record, and the epoch TXT's values.
    sets: (Vec<SetSeen>, Vec<String>),
    /// (desired node group size, desired Auto Scaling group size) in us-west-1.
    west_compute: (i32, i32),
}

impl Scene {
    /// The stack, and a plan for it that `edit` may get wrong (it gets the correct text).
    fn new(edit: impl FnOnce(String) -> String) -> Scene {
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rds = [moto.rds("us-east-2"), moto.rds("us-west-1")];
        let eks = [moto::eks(&moto, "us-east-2"), moto::eks(&moto, "us-west-1")];
        let asg = [moto::autoscaling(&moto, "us-east-2"), moto::autoscaling(&moto, "us-west-1")];
        let r53 = moto.route53();
        let (zone, east_hc, west_hc) = rt.block_on(async {
            seed_rds(&rds[0], &rds[1], "shop-pg").await;
            nodegroup(&eks[0], "shop-east", "general", 3).await;
            nodegroup(&eks[1], "shop-west", "general", 1).await;
            auto_scaling_group(&asg[0], "web-east", "us-east-2a", 3).await;
            auto_scaling_group(&asg[1], "web-west", "us-west-1a", 1).await;
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
        let plan = format!(
            r#"name: shop
objectives: {{ rto: 30m, rpo: 1m }}
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
  ttl: 60s
  routing: failover
  targets:
    east: {{ value: {EAST_IP}, set_identifier: us-east-2, health_check_id: {east_hc} }}
    west: {{ value: {WEST_IP}, set_identifier: us-west-1, health_check_id: {west_hc} }}
compute:
  nodes:
    kind: eks-nodegroup
    ready_timeout: 1m
    regions:
      east: {{ cluster: shop-east, nodegroup: general }}
      west: {{ cluster: shop-west, nodegroup: general }}
  web:
    kind: autoscaling-group
    ready_timeout: 1m
    regions:
      east: {{ name: web-east }}
      west: {{ name: web-west }}
checks:
  r53:
    route53_health_check: {{ east: {east_hc}, west: {west_hc} }}
    interval: 500ms
    timeout: 400ms
"#
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, edit(plan)).unwrap();
        Scene { moto, rt, rds, eks, asg, r53, zone, plan: path, _dir: dir }
    }

    fn drover(&self, args: &[&str]) -> Ran {
        let mut cmd = drover();
        cmd.args(args).arg("--plan").arg(&self.plan);
        let ran = run(with_moto(&mut cmd, &self.moto));
        assert_no_secrets(&ran);
        ran
    }

    /// `drover plan check --live PLAN`: the same preflight over every resource of the plan.
    fn check_live(&self) -> Ran {
        let mut cmd = drover();
        cmd.args(["plan", "check", "--live"]).arg(&self.plan);
        let ran = run(with_moto(&mut cmd, &self.moto));
        assert_no_secrets(&ran);
        ran
    }

    fn world(&self) -> World {
        self.rt.block_on(async {
            let params = self.rds[0].describe_db_parameters().db_parameter_group_name("shop-pg").send().await.unwrap();
            let east_read_only = params
                .parameters()
                .iter()
                .find(|p| p.parameter_name() == Some("default_transaction_read_only"))
                .and_then(|p| p.parameter_value())
                .map(str::to_owned);
            let replica =
                self.rds[1].describe_db_instances().db_instance_identifier("shop-db-replica").send().await.unwrap();
            let replica_source =
                replica.db_instances()[0].read_replica_source_db_instance_identifier().map(str::to_owned);
            let (nodes, _, _) = nodegroup_size(&self.eks[1], "shop-west", "general").await;
            let (instances, _) = group_size(&self.asg[1], "web-west").await;
            World {
                east_read_only,
                replica_source,
                sets: read_back(&self.r53, &self.zone, RECORD).await,
                west_compute: (nodes, instances),
            }
        })
    }

    /// `drover failover --to west --yes` is refused before anything happens: exit 2, every
    /// `expected` piece in its message, no run journaled, the world as it was.
    fn refused(&self, expected: &[&str]) {
        let before = self.world();
        assert_eq!(before.replica_source.as_deref().map(|s| s.ends_with("shop-db")), Some(true), "{before:?}");
        assert_eq!(before.east_read_only, None, "the primary starts writable");

        let ran = self.drover(&["failover", "--to", "west", "--yes"]);
        assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
        let said = format!("{}{}", ran.stdout, ran.stderr);
        assert!(said.contains("failover refused: checked before anything was changed"), "{said}");
        for piece in expected {
            assert!(said.contains(piece), "missing {piece:?} in:\n{said}");
        }

        let runs = self.drover(&["runs"]);
        assert_eq!((runs.code, runs.stdout.as_str()), (0, "no runs yet\n"), "{}", runs.stderr);
        assert_eq!(self.world(), before, "a refused run changed nothing");

        // `plan check --live` finds the same, before anyone asks for a run.
        let live = self.check_live();
        assert_eq!(live.code, 2, "{}{}", live.stdout, live.stderr);
        for piece in expected {
            assert!(live.stderr.contains(piece), "plan check --live misses {piece:?} in:\n{}", live.stderr);
        }
        assert_eq!(self.world(), before, "plan check --live changed nothing");
    }
}

#[test]
fn the_correct_plan_passes_preflight_and_fails_over() {
    // The control for the refusals below: the same stack, named right, is not refused.
    let scene = Scene::new(|plan| plan);
    let live = scene.check_live();
    assert_eq!(live.code, 0, "{}{}", live.stdout, live.stderr);
    assert!(live.stdout.contains("live       every resource the plan names exists and is usable"), "{}", live.stdout);
    let ran = scene.drover(&["failover", "--to", "west", "--yes"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let after = scene.world();
    assert_eq!(after.east_read_only.as_deref(), Some("1"), "the old primary was fenced");
    assert_eq!(after.replica_source, None, "the replica was promoted");
    assert_eq!(after.west_compute, (3, 3), "west was scaled to east's size");
    let failover: Vec<_> = after.sets.0.iter().map(|s| (s.set_identifier.as_str(), s.failover.as_deref())).collect();
    assert_eq!(failover, [("us-east-2", Some("SECONDARY")), ("us-west-1", Some("PRIMARY"))]);
}

#[test]
fn a_misnamed_auto_scaling_group_is_refused_before_the_fence() {
    let scene = Scene::new(|plan| plan.replace("{ name: web-west }", "{ name: web-wset }"));
    scene.refused(&[
        "us-west-1/autoscaling/web-wset: no Auto Scaling group 'web-wset' in AWS region us-west-1",
        "compute.web.regions.west.name",
    ]);
}

#[test]
fn a_misnamed_node_group_is_refused_before_the_fence() {
    let scene = Scene::new(|plan| {
        plan.replace("{ cluster: shop-west, nodegroup: general }", "{ cluster: shop-west, nodegroup: genral }")
    });
    scene.refused(&[
        "us-west-1/eks/shop-west/genral: no node group 'genral' in EKS cluster 'shop-west' in AWS region us-west-1",
        "compute.nodes.regions.west.nodegroup",
    ]);
}

#[test]
fn a_wrong_record_set_identifier_is_refused_and_no_third_set_appears() {
    let scene = Scene::new(|plan| plan.replace("set_identifier: us-west-1", "set_identifier: ncal"));
    scene.refused(&[
        "holds no record set with set identifier 'ncal'",
        "traffic.targets.west.set_identifier",
        // The set the plan meant is there, and nothing in the plan names it: said too.
        "also holds record set 'us-west-1' (A, SECONDARY)",
    ]);
    assert_eq!(scene.world().sets.0.len(), 2, "still the two sets the zone held");
}

#[test]
fn a_nonexistent_primary_instance_is_refused_and_no_run_pauses() {
    let scene = Scene::new(|plan| plan.replace("east: { instance: shop-db }", "east: { instance: shop-db-old }"));
    scene.refused(&[
        "us-east-2/shop-db-old: no DB instance 'shop-db-old' in AWS region us-east-2",
        "database.members.east.instance",
    ]);
    // A later run with the plan corrected is not blocked by anything the refused one left.
    std::fs::write(
        &scene.plan,
        std::fs::read_to_string(&scene.plan).unwrap().replace("instance: shop-db-old", "instance: shop-db"),
    )
    .unwrap();
    let ran = scene.drover(&["failover", "--to", "west", "--yes"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(scene.world().replica_source, None, "the replica was promoted");
}
