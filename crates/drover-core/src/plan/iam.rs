//! The least-privilege IAM policy a plan needs: every AWS action drover calls for
//! this plan's resources, scoped to those resources wherever AWS allows it, and
//! nothing else. `drover plan iam PLAN` prints it.
//!
//! Each adapter's calls are listed here beside the plan part that causes them; a
//! test reads the adapters' sources so a new call cannot be forgotten here.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{BackupStoreSpec, ComputeTarget, DatabaseSpec, Plan, Probe, TrafficSpec};

/// One action on one resource (an ARN, or `*` where the action has no resource-level scope).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub action: &'static str,
    pub resource: String,
}

fn grant(action: &'static str, resource: impl Into<String>) -> Grant {
    Grant { action, resource: resource.into() }
}

/// Every grant the plan needs, sorted and without repeats.
pub fn grants(plan: &Plan) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    if let TrafficSpec::Route53(t) = &plan.traffic {
        let zone = format!("arn:aws:route53:::hostedzone/{}", t.hosted_zone_id);
        out.insert(grant("route53:ListResourceRecordSets", &zone));
        out.insert(grant("route53:ChangeResourceRecordSets", &zone));
        // A change's id is only known once it is made.
        out.insert(grant("route53:GetChange", "arn:aws:route53:::change/*"));
        // Drills' `route53-health-check` fault inverts a record set's health check and sets it
        // back; readiness reads the health check each record set is routed by.
        for id in t.targets.values().filter_map(|target| target.health_check_id.as_ref()) {
            let check = format!("arn:aws:route53:::healthcheck/{id}");
            out.insert(grant("route53:GetHealthCheck", &check));
            out.insert(grant("route53:GetHealthCheckStatus", &check));
            out.insert(grant("route53:UpdateHealthCheck", check));
        }
    }
    if let TrafficSpec::GlobalAccelerator(t) = &plan.traffic {
        for action in [
            "globalaccelerator:DescribeAccelerator",
            "globalaccelerator:ListTagsForResource",
            "globalaccelerator:TagResource",
        ] {
            out.insert(grant(action, &t.accelerator_arn));
        }
        for group in t.endpoint_groups.values() {
            out.insert(grant("globalaccelerator:DescribeEndpointGroup", &group.arn));
            out.insert(grant("globalaccelerator:UpdateEndpointGroup", &group.arn));
        }
    }
    match &plan.database {
        DatabaseSpec::Postgres(_) => {}
        DatabaseSpec::Rds(db) => {
            for (region, member) in &db.members {
                let aws = plan.aws_region(region);
                let instance = arn_or(&member.instance, || format!("arn:aws:rds:{aws}:*:db:{}", member.instance));
                for action in ["rds:DescribeDBInstances", "rds:PromoteReadReplica", "rds:AddTagsToResource"] {
                    out.insert(grant(action, &instance));
                }
                // Drills' `rds-reboot` and `rds-stop` faults (a stop's undo starts it again).
                for action in ["rds:RebootDBInstance", "rds:StopDBInstance", "rds:StartDBInstance"] {
                    out.insert(grant(action, &instance));
                }
                // The fence's parameter group is the instance's, found at run time.
                let groups = format!("arn:aws:rds:{aws}:*:pg:*");
                out.insert(grant("rds:DescribeDBParameters", &groups));
                // Readiness compares the two sides' parameter group families.
                out.insert(grant("rds:DescribeDBParameterGroups", &groups));
                out.insert(grant("rds:ModifyDBParameterGroup", groups));
            }
            // Replica lag (ReplicaLag); CloudWatch reads take no resource-level scope.
            out.insert(grant("cloudwatch:GetMetricStatistics", "*"));
        }
        DatabaseSpec::AuroraGlobal(db) => {
            let global = format!("arn:aws:rds::*:global-cluster:{}", db.global_cluster);
            out.insert(grant("rds:DescribeGlobalClusters", &global));
            for (region, member) in &db.members {
                let aws = plan.aws_region(region);
                let cluster = arn_or(&member.cluster, || format!("arn:aws:rds:{aws}:*:cluster:{}", member.cluster));
                out.insert(grant("rds:DescribeDBClusters", &cluster));
                out.insert(grant("rds:AddTagsToResource", &cluster));
                // A switchover or failover names the global cluster and the target cluster.
                for action in ["rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster"] {
                    out.insert(grant(action, &global));
                    out.insert(grant(action, &cluster));
                }
            }
            out.insert(grant("cloudwatch:GetMetricStatistics", "*"));
        }
    }
    for check in plan.checks.values() {
        match &check.probe {
            Probe::Route53HealthCheck { ids } => {
                for id in ids.values() {
                    out.insert(grant("route53:GetHealthCheckStatus", format!("arn:aws:route53:::healthcheck/{id}")));
                }
            }
            Probe::CloudwatchAlarm { alarms } => {
                for (region, name) in alarms {
                    let aws = plan.aws_region(region);
                    out.insert(grant("cloudwatch:DescribeAlarms", format!("arn:aws:cloudwatch:{aws}:*:alarm:{name}")));
                }
            }
            _ => {}
        }
    }
    for spec in plan.compute.values() {
        for (region, target) in &spec.targets {
            let aws = plan.aws_region(region);
            match target {
                ComputeTarget::EksNodegroup { cluster, nodegroup } => {
                    let arn = format!("arn:aws:eks:{aws}:*:nodegroup/{cluster}/{nodegroup}/*");
                    out.insert(grant("eks:DescribeNodegroup", &arn));
                    out.insert(grant("eks:UpdateNodegroupConfig", &arn));
                }
                ComputeTarget::AutoScalingGroup { name } => {
                    // Describe calls take no resource-level scope.
                    out.insert(grant("autoscaling:DescribeAutoScalingGroups", "*"));
                    // Readiness: the launch configuration the group launches from exists.
                    out.insert(grant("autoscaling:DescribeLaunchConfigurations", "*"));
                    let group = format!("arn:aws:autoscaling:{aws}:*:autoScalingGroup:*:autoScalingGroupName/{name}");
                    // Resizes (the scale step, drills' `asg-scale-to-zero`), and drills' `asg-suspend`.
                    for action in [
                        "autoscaling:UpdateAutoScalingGroup",
                        "autoscaling:SuspendProcesses",
                        "autoscaling:ResumeProcesses",
                    ] {
                        out.insert(grant(action, &group));
                    }
                }
                // Kubernetes RBAC, not IAM, grants these (docs/kubernetes.md lists the rules).
                ComputeTarget::Kubernetes(_) => {}
            }
        }
    }
    // Kubernetes backups: drover-backup's object_store calls on each S3 store. Its Kubernetes
    // calls are granted by RBAC (docs/backup.md); a directory store needs nothing.
    for store in plan.backup.iter().flat_map(|b| b.stores.values()) {
        // A store with an endpoint is an S3-compatible server (MinIO, Ceph, ...), not AWS:
        // its own access rules, not IAM, decide what drover may do there.
        let BackupStoreSpec::S3 { bucket, prefix, endpoint: None, .. } = store else {
            continue;
        };
        // Listing `objects/` and `backups/` under the prefix (ListObjectsV2). It stays on the
        // whole bucket, not narrowed by an `s3:prefix` condition: a Grant has no condition;
        // and S3 answers a GET of a missing object with 404 (which drover relies on for a
        // restore's first progress record and for verify) only to a caller allowed
        // s3:ListBucket, else 403, while a GET carries no `s3:prefix`, so a ListBucket that
        // requires one may not count there. S3 ARNs name no region or account, so
        // `aws_region` plays no part. The adapters' source test does not cover these calls:
        // they go through object_store in drover-backup (crates/drover-backup/src/store.rs).
        out.insert(grant("s3:ListBucket", format!("arn:aws:s3:::{bucket}")));
        // Content objects, indexes and restore progress: read, written, and deleted by
        // retention and garbage collection.
        let keys = match prefix.as_str() {
            "" => format!("arn:aws:s3:::{bucket}/*"),
            prefix => format!("arn:aws:s3:::{bucket}/{prefix}/*"),
        };
        for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
            out.insert(grant(action, &keys));
        }
    }
    // A drill's stop conditions are read while it runs; its `fis` fault starts templates.
    for stop in &plan.drill.stop_when {
        let aws = plan.aws_region(&stop.region);
        out.insert(grant("cloudwatch:DescribeAlarms", format!("arn:aws:cloudwatch:{aws}:*:alarm:{}", stop.alarm)));
    }
    out.extend(fis_grants(plan, &plan.drill.fis));
    out
}

/// What drills' `fis` fault needs for the experiment templates it starts, by plan region
/// (`templates`: region -> template id): start one (which names the template and creates
/// an experiment, tagged with the drill's id), find the drill's experiments again, stop
/// them. FIS lists experiments without resource-level scope.
pub fn fis_grants(plan: &Plan, templates: &BTreeMap<String, String>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (region, template) in templates {
        let aws = plan.aws_region(region);
        let experiments = format!("arn:aws:fis:{aws}:*:experiment/*");
        out.insert(grant("fis:StartExperiment", format!("arn:aws:fis:{aws}:*:experiment-template/{template}")));
        out.insert(grant("fis:StartExperiment", &experiments));
        out.insert(grant("fis:TagResource", &experiments));
        out.insert(grant("fis:StopExperiment", &experiments));
        out.insert(grant("fis:ListExperiments", "*"));
    }
    out
}

/// `id` itself when it is an ARN (the plan may give one), otherwise the ARN `make` builds.
fn arn_or(id: &str, make: impl FnOnce() -> String) -> String {
    if id.starts_with("arn:") { id.to_owned() } else { make() }
}

/// An IAM policy document. Fields in the order IAM's own documents use; a struct, not
/// a JSON map, so the order does not depend on serde_json's features.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    #[serde(rename = "Action")]
    pub actions: Vec<&'static str>,
    #[serde(rename = "Resource")]
    pub resources: Vec<String>,
}

/// The IAM policy document: one statement per set of resources, actions and resources
/// sorted so the output is stable (and diffs well in review). `None` when the plan uses
/// no AWS resource at all.
pub fn policy(plan: &Plan) -> Option<Policy> {
    let grants = grants(plan);
    if grants.is_empty() {
        return None;
    }
    let mut by_action: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        by_action.entry(g.action).or_default().insert(g.resource);
    }
    let mut by_resources: BTreeMap<BTreeSet<String>, BTreeSet<&'static str>> = BTreeMap::new();
    for (action, resources) in by_action {
        by_resources.entry(resources).or_default().insert(action);
    }
    let mut statements: Vec<(BTreeSet<&'static str>, BTreeSet<String>)> =
        by_resources.into_iter().map(|(resources, actions)| (actions, resources)).collect();
    statements.sort();
    let statements = statements
        .into_iter()
        .enumerate()
        .map(|(i, (actions, resources))| Statement {
            sid: format!("Drover{}", i + 1),
            effect: "Allow",
            actions: actions.into_iter().collect(),
            resources: resources.into_iter().collect(),
        })
        .collect();
    Some(Policy { version: "2012-10-17", statements })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Grant, Statement, grant, grants, policy};
    use crate::plan::parse_plan;

    /// Four service regions, one of each kind of store; nothing else in the plan uses AWS.
    const PLAN: &str = r#"
name: shop
objectives: { rto: 5m, rpo: 0s }
regions:
  east: { role: primary }
  west: { role: standby }
  north: { role: standby }
  south: { role: standby }
database:
  kind: postgres
  replication: asynchronous
  members: { east: { dsn_env: E }, west: { dsn_env: W }, north: { dsn_env: N }, south: { dsn_env: S } }
traffic:
  kind: rfc2136
  server: 127.0.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: k, algorithm: hmac-sha256, secret_env: K }
  targets: { east: 192.0.2.1, west: 192.0.2.2, north: 192.0.2.3, south: 192.0.2.4 }
checks: { api: { http: "http://{target}/healthz" } }
backup:
  clusters: { east: in-cluster, west: in-cluster, north: in-cluster, south: in-cluster }
  stores:
    east: { url: s3://shop-east/drover/shop/ }
    west: { url: s3://shop-west, aws_region: us-west-2 }
    north: { dir: /var/backups/north }
    south: { url: s3://shop-south/drover, endpoint: http://minio:9000 }
"#;

    fn plan() -> crate::plan::Plan {
        parse_plan(Path::new("plan.yaml"), PLAN, &crate::plan::test_support::Recording::default()).unwrap()
    }

    #[test]
    fn s3_backup_stores_on_aws_are_granted_their_bucket_and_keys() {
        let expected: Vec<Grant> = vec![
            grant("s3:DeleteObject", "arn:aws:s3:::shop-east/drover/shop/*"),
            grant("s3:DeleteObject", "arn:aws:s3:::shop-west/*"),
            grant("s3:GetObject", "arn:aws:s3:::shop-east/drover/shop/*"),
            grant("s3:GetObject", "arn:aws:s3:::shop-west/*"),
            grant("s3:ListBucket", "arn:aws:s3:::shop-east"),
            grant("s3:ListBucket", "arn:aws:s3:::shop-west"),
            grant("s3:PutObject", "arn:aws:s3:::shop-east/drover/shop/*"),
            grant("s3:PutObject", "arn:aws:s3:::shop-west/*"),
        ];
        let plan = plan();
        // The directory store (north) and the S3-compatible server (south) add nothing.
        assert_eq!(grants(&plan).into_iter().collect::<Vec<_>>(), expected);
        let statements = policy(&plan).unwrap().statements;
        let statement = |sid: &str, actions: &[&'static str], resources: &[&str]| Statement {
            sid: sid.into(),
            effect: "Allow",
            actions: actions.to_vec(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
        };
        assert_eq!(
            statements,
            [
                statement(
                    "Drover1",
                    &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                    &["arn:aws:s3:::shop-east/drover/shop/*", "arn:aws:s3:::shop-west/*"],
                ),
                statement("Drover2", &["s3:ListBucket"], &["arn:aws:s3:::shop-east", "arn:aws:s3:::shop-west"]),
            ]
        );
    }

    #[test]
    fn a_drills_fis_templates_are_granted_start_tag_list_and_stop_in_their_region() {
        let mut plan = plan();
        plan.regions.get_mut("west").unwrap().aws_region = Some("us-west-1".into());
        let templates = [("west".to_owned(), "EXT1a2b".to_owned())].into();
        let got: Vec<Grant> = super::fis_grants(&plan, &templates).into_iter().collect();
        let experiments = "arn:aws:fis:us-west-1:*:experiment/*";
        assert_eq!(
            got,
            [
                grant("fis:ListExperiments", "*"),
                grant("fis:StartExperiment", "arn:aws:fis:us-west-1:*:experiment-template/EXT1a2b"),
                grant("fis:StartExperiment", experiments),
                grant("fis:StopExperiment", experiments),
                grant("fis:TagResource", experiments),
            ]
        );
    }

    #[test]
    fn directory_and_s3_compatible_stores_need_no_policy() {
        let mut plan = plan();
        plan.backup.as_mut().unwrap().stores.retain(|region, _| region == "north" || region == "south");
        assert_eq!(policy(&plan), None);
    }
}
