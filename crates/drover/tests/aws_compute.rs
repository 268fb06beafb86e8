//! The whole drover path with AWS compute: a plan whose regions live in us-east-2 and
//! us-west-1, with an EKS node group and an Auto Scaling group in each, Route 53
//! failover records and a real PostgreSQL pair; the `drover` binary pointed at a real
//! moto server through `AWS_ENDPOINT_URL`. Node groups and groups are read back from moto.

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
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use moto::{Moto, a_set, auto_scaling_group, create_sets, group_size, hosted_zone, nodegroup, nodegroup_size};
use support::{Ran, drover, run};

const RECORD: &str = "api.example.test.";

struct Scene {
    moto: Moto,
    rt: tokio::runtime::Runtime,
    eks: [EksClient; 2],
    asg: [AsgClient; 2],
    plan: PathBuf,
    _cluster: pg::Cluster,
    _dir: tempfile::TempDir,
}

impl Scene {
    /// East (us-east-2) runs 3 nodes and 3 instances, west (us-west-1) 1 of each.
    fn new() -> Scene {
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let eks = [moto::eks(&moto, "us-east-2"), moto::eks(&moto, "us-west-1")];
        let asg = [moto::autoscaling(&moto, "us-east-2"), moto::autoscaling(&moto, "us-west-1")];
        let zone = rt.block_on(async {
            nodegroup(&eks[0], "shop-east", "general", 3).await;
            nodegroup(&eks[1], "shop-west", "general", 1).await;
            auto_scaling_group(&asg[0], "web-east", "us-east-2a", 3).await;
            auto_scaling_group(&asg[1], "web-west", "us-west-1a", 1).await;
            let r53 = moto.route53();
            let zone = hosted_zone(&r53, "example.test.").await;
            let sets = [
                a_set(RECORD, "192.0.2.10", "east").failover(ResourceRecordSetFailover::Primary),
                a_set(RECORD, "192.0.2.20", "west").failover(ResourceRecordSetFailover::Secondary),
            ];
            create_sets(&r53, &zone, sets.into_iter().map(|s| s.build().unwrap()).collect()).await;
            zone
        });
        let cluster = pg::Cluster::pair(pg::Replication::Asynchronous);
        let dir = tempfile::tempdir().unwrap();
        for region in ["east", "west"] {
            support::write_secret(dir.path().join(format!("{region}.dsn")), cluster.node(region).dsn());
        }
        let d = dir.path().display();
        let plan = format!(
            r#"name: shop
objectives: {{ rto: 5m, rpo: 1m }}
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
  targets: {{ east: 192.0.2.10, west: 192.0.2.20 }}
compute:
  nodes:
    kind: eks-nodegroup
    capacity: 100%
    ready_timeout: 1m
    regions:
      east: {{ cluster: shop-east, nodegroup: general }}
      west: {{ cluster: shop-west, nodegroup: general }}
  web:
    kind: autoscaling-group
    capacity: 67%
    ready_timeout: 1m
    regions:
      east: {{ name: web-east }}
      west: {{ name: web-west }}
checks:
  db: {{ postgres: member, interval: 500ms, timeout: 400ms }}
"#
        );
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        Scene { moto, rt, eks, asg, plan: path, _cluster: cluster, _dir: dir }
    }

    fn drover(&self, args: &[&str]) -> Ran {
        let mut cmd = drover();
        cmd.args(args).arg("--plan").arg(&self.plan);
        let ran = run(with_moto(&mut cmd, &self.moto));
        assert_no_secrets(&ran);
        ran
    }

    /// West's (node group desired size, Auto Scaling group desired, InService instances).
    fn west(&self) -> (i32, i32, usize) {
        self.rt.block_on(async {
            let (nodes, _, _) = nodegroup_size(&self.eks[1], "shop-west", "general").await;
            let (desired, in_service) = group_size(&self.asg[1], "web-west").await;
            (nodes, desired, in_service)
        })
    }
}

/// The scale step's detail in a run's JSON.
fn scale_detail(ran: &Ran) -> String {
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout));
    let steps = json["steps"].as_array().expect("steps");
    let scale = steps.iter().find(|s| s["kind"] == "scale").expect("a scale step");
    scale["detail"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_failover_scales_the_node_group_and_the_auto_scaling_group_in_the_new_region() {
    let scene = Scene::new();
    let ran = scene.drover(&["failover", "--yes", "--to", "west", "-o", "json"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    // 100% of east's 3 nodes; 67% of east's 3 instances is 2.01, rounded up to 3.
    assert_eq!(scene.west(), (3, 3, 3), "west's (nodes, desired instances, InService) after the failover");
    let detail = scale_detail(&ran);
    assert_eq!(detail, "west runs nodes 3/3 ready (100% of east's 3), web 3/3 ready (67% of east's 3)");
    // The node group's limits were widened only as far as needed.
    let (_, min, max) = scene.rt.block_on(nodegroup_size(&scene.eks[1], "shop-west", "general"));
    assert_eq!((min, max), (1, 10));
}

#[test]
fn a_group_the_old_primary_region_no_longer_has_refuses_the_failover_before_the_fence() {
    // This test once deleted east's group to stand for a region that cannot be read, and saw
    // the failover size west from what status noted. But an API that answers "no such group"
    // is not a lost region: the plan names a group east does not have, which preflight now
    // refuses before anything happens. A lost region's API, which cannot answer, is not
    // refused; the scale step then sizes from the noted capacity.
    let scene = Scene::new();
    let status = scene.drover(&["status"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("compute nodes: east 3/3 ready, west 1/1 ready"), "{}", status.stdout);
    scene
        .rt
        .block_on(async {
            scene.asg[0].delete_auto_scaling_group().auto_scaling_group_name("web-east").force_delete(true).send().await
        })
        .expect("delete east's group in moto");
    let ran = scene.drover(&["failover", "--yes", "--to", "west"]);
    assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains(
            "us-east-2/autoscaling/web-east: no Auto Scaling group 'web-east' in AWS region us-east-2 — check compute.web.regions.east.name"
        ),
        "{}",
        ran.stderr
    );
    assert_eq!(scene.west(), (1, 1, 1), "west was not scaled");
    let runs = scene.drover(&["runs"]);
    assert_eq!(runs.stdout, "no runs yet\n", "{}", runs.stderr);

    // A person who says east is gone (--accept-data-loss) is not held by what east lacks:
    // only the target is checked, and west is sized from the 3 status noted.
    let ran = scene.drover(&["failover", "--yes", "--to", "west", "--accept-data-loss", "-o", "json"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(scene.west(), (3, 3, 3));
    let detail = scale_detail(&ran);
    assert!(detail.contains("web 3/3 ready (67% of east's 3 last seen "), "{detail}");
}
