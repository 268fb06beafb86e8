//! The least-privilege IAM policy a plan needs: every AWS action drover calls for
//! this plan's resources, scoped to those resources wherever AWS allows it, and
//! nothing else. `drover plan iam PLAN` prints it.
//!
//! Each adapter's calls are listed here beside the plan part that causes them; a
//! test reads the adapters' sources so a new call cannot be forgotten here.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{ComputeTarget, Plan, Probe, TrafficSpec};

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
    for check in plan.checks.values() {
        if let Probe::Route53HealthCheck { ids } = &check.probe {
            for id in ids.values() {
                out.insert(grant("route53:GetHealthCheckStatus", format!("arn:aws:route53:::healthcheck/{id}")));
            }
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
            }
        }
    }
    out
}

/// The IAM policy document: one statement per set of resources, actions and resources
/// sorted so the output is stable (and diffs well in review). `None` when the plan uses
/// no AWS resource at all.
pub fn policy(plan: &Plan) -> Option<serde_json::Value> {
    let grants = grants(plan);
    if grants.is_empty() {
        return None;
    }
    let mut by_action: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        by_action.entry(g.action).or_default().insert(g.resource);
    }
    let mut by_resources: BTreeMap<BTreeSet<String>, BTreeSet<&str>> = BTreeMap::new();
    for (action, resources) in by_action {
        by_resources.entry(resources).or_default().insert(action);
    }
    let mut statements: Vec<(BTreeSet<&str>, BTreeSet<String>)> =
        by_resources.into_iter().map(|(resources, actions)| (actions, resources)).collect();
    statements.sort();
    let statements: Vec<serde_json::Value> = statements
        .into_iter()
        .enumerate()
        .map(|(i, (actions, resources))| {
            serde_json::json!({
                "Sid": format!("Drover{}", i + 1),
                "Effect": "Allow",
                "Action": actions.into_iter().collect::<Vec<_>>(),
                "Resource": resources.into_iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    Some(serde_json::json!({ "Version": "2012-10-17", "Statement": statements }))
}
