//! The least-privilege IAM policy a plan needs: every AWS action drover calls for
//! this plan's resources, scoped to those resources wherever AWS allows it, and
//! nothing else. `drover plan iam PLAN` prints it.
//!
//! Each adapter's calls are listed here beside the plan part that causes them; a
//! test reads the adapters' sources so a new call cannot be forgotten here.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{ComputeTarget, DatabaseSpec, Plan, Probe, TrafficSpec};

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
                // The fence's parameter group is the instance's, found at run time.
                let groups = format!("arn:aws:rds:{aws}:*:pg:*");
                out.insert(grant("rds:DescribeDBParameters", &groups));
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
                    out.insert(grant(
                        "autoscaling:UpdateAutoScalingGroup",
                        format!("arn:aws:autoscaling:{aws}:*:autoScalingGroup:*:autoScalingGroupName/{name}"),
                    ));
                }
                // Kubernetes RBAC, not IAM, grants these (docs/kubernetes.md lists the rules).
                ComputeTarget::Kubernetes(_) => {}
            }
        }
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
