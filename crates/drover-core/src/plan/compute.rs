//! The optional `compute` section: capacity that follows the primary (EKS node
//! groups, Auto Scaling groups, Kubernetes workloads). The `scale` step raises the new primary region's
//! share of each before traffic moves there.

use std::collections::BTreeMap;
use std::time::Duration;

use std::path::PathBuf;

use super::kinds::ComputeKind;
use super::model::{ClusterAccess, ComputeSpec, ComputeTarget, KubernetesTarget};
use super::raw::{Node, Value};
use super::reader::{Entry, Mapping, Reader, check_identifier};
use super::regions::{Regions, region_entries};

const FIELDS: [&str; 4] = ["kind", "capacity", "ready_timeout", "regions"];
const IN_CLUSTER: &str = "in-cluster";
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// More than twice the primary's size is almost certainly a typo (1000 for 100).
const MAX_PERCENT: u32 = 200;

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, ComputeSpec>> {
    let Some(node) = top.get("compute") else {
        return Some(BTreeMap::new());
    };
    if node.value == Value::Null {
        return Some(BTreeMap::new());
    }
    let entries = r.entries(node, "compute", "a mapping of resource name to { kind, capacity, regions }", "compute")?;
    r.each(&entries, |r, entry| {
        check_identifier(r, entry, "compute resource");
        read_one(r, entry, regions)
    })
}

fn read_one(r: &mut Reader<'_>, entry: &Entry<'_>, regions: Option<&Regions>) -> Option<ComputeSpec> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &FIELDS,
        &[],
        "a mapping like { kind: autoscaling-group, capacity: 100%, regions: { ... } }",
    )?;
    let kind = r
        .require(&m, "kind", "add kind: eks-nodegroup, kind: autoscaling-group or kind: kubernetes")
        .and_then(|n| r.choice(n, &m.field("kind"), "compute kind", &ComputeKind::ALL.map(|k| (k.as_str(), k))));
    let capacity_percent = match m.get("capacity") {
        Some(n) => percent(r, n, &m.field("capacity")),
        None => Some(100),
    };
    let ready_timeout = match m.get("ready_timeout") {
        Some(n) => r.positive_duration(n, &m.field("ready_timeout")),
        None => Some(DEFAULT_READY_TIMEOUT),
    };
    let targets = match (kind, r.require(&m, "regions", "add one entry per primary and standby region")) {
        (Some(kind), Some(n)) => read_targets(r, &m, n, kind, regions),
        _ => None,
    };
    Some(ComputeSpec {
        name: entry.name.clone(),
        kind: kind?,
        capacity_percent: capacity_percent?,
        ready_timeout: ready_timeout?,
        targets: targets?,
    })
}

/// `100%`, or a bare number of percent.
fn percent(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<u32> {
    let value = match &node.value {
        Value::Int(n) => u32::try_from(*n).ok(),
        Value::Str(s) => s.trim().strip_suffix('%').and_then(|n| n.trim().parse::<u32>().ok()),
        _ => None,
    };
    match value {
        Some(p) if (1..=MAX_PERCENT).contains(&p) => Some(p),
        Some(p) => {
            r.error(
                node.pos(),
                field,
                format!("{p}% is out of range; give 1% to {MAX_PERCENT}% of the primary region's capacity"),
            );
            None
        }
        None => {
            let found = node.value.scalar_text().unwrap_or_else(|| node.value.kind().to_owned());
            r.error(
                node.pos(),
                field,
                format!("expected a percentage of the primary region's capacity like 100%, found {found}"),
            );
            None
        }
    }
}

fn read_targets(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    kind: ComputeKind,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, ComputeTarget>> {
    let at = m.key("regions").map_or(node.pos(), Node::pos);
    let path = m.field("regions");
    let example = |region: &str| match kind {
        ComputeKind::EksNodegroup => format!("{region}: {{ cluster: shop-{region}, nodegroup: general }}"),
        ComputeKind::AutoScalingGroup => format!("{region}: {{ name: web-{region} }}"),
        ComputeKind::Kubernetes => format!("{region}: {{ cluster: {{ context: shop-{region} }}, namespace: shop }}"),
    };
    let entries = region_entries(r, node, &path, at, regions, "compute target", &example)?;
    r.each(&entries, |r, entry| read_target(r, entry, kind))
}

fn read_target(r: &mut Reader<'_>, entry: &Entry<'_>, kind: ComputeKind) -> Option<ComputeTarget> {
    match kind {
        ComputeKind::EksNodegroup => {
            let m = r.mapping(
                entry.value,
                &entry.path,
                entry.key.pos(),
                &["cluster", "nodegroup"],
                &[],
                "a mapping like { cluster: shop-east, nodegroup: general }",
            )?;
            let cluster = r
                .require(&m, "cluster", "add the EKS cluster's name, e.g. cluster: shop-east")
                .and_then(|n| r.text(n, &m.field("cluster"), "a cluster name"));
            let nodegroup = r
                .require(&m, "nodegroup", "add the managed node group's name, e.g. nodegroup: general")
                .and_then(|n| r.text(n, &m.field("nodegroup"), "a node group name"));
            Some(ComputeTarget::EksNodegroup { cluster: cluster?.to_owned(), nodegroup: nodegroup?.to_owned() })
        }
        ComputeKind::AutoScalingGroup => {
            let m = r.mapping(
                entry.value,
                &entry.path,
                entry.key.pos(),
                &["name"],
                &[],
                "a mapping like { name: web-east }",
            )?;
            let name = r
                .require(&m, "name", "add the Auto Scaling group's name, e.g. name: web-east")
                .and_then(|n| r.text(n, &m.field("name"), "an Auto Scaling group name"));
            Some(ComputeTarget::AutoScalingGroup { name: name?.to_owned() })
        }
        ComputeKind::Kubernetes => read_kubernetes(r, entry),
    }
}

fn read_kubernetes(r: &mut Reader<'_>, entry: &Entry<'_>) -> Option<ComputeTarget> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &["cluster", "namespace", "selector"],
        &[],
        "a mapping like { cluster: { kubeconfig: ~/.kube/config, context: shop-east }, namespace: shop, selector: app=shop }",
    )?;
    let cluster = r
        .require(&m, "cluster", "add cluster: in-cluster, or cluster: { kubeconfig: PATH, context: NAME }")
        .and_then(|n| read_cluster(r, n, &m.field("cluster")));
    let namespace = r
        .require(&m, "namespace", "add the namespace its workloads run in, e.g. namespace: shop")
        .and_then(|n| r.text(n, &m.field("namespace"), "a namespace"));
    let selector =
        m.get("selector").map(|n| r.text(n, &m.field("selector"), "a label selector like app=shop,tier!=batch"));
    Some(ComputeTarget::Kubernetes(KubernetesTarget {
        cluster: cluster?,
        namespace: namespace?.to_owned(),
        selector: optional(selector)?.map(str::to_owned),
    }))
}

/// `in-cluster`, or `{ kubeconfig: PATH, context: NAME }` (both optional: `$KUBECONFIG`, its current context).
pub(super) fn read_cluster(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<ClusterAccess> {
    if let Value::Str(s) = &node.value {
        if s == IN_CLUSTER {
            return Some(ClusterAccess::InCluster);
        }
        r.error(node.pos(), field, format!("expected in-cluster or {{ kubeconfig: PATH, context: NAME }}, found {s}"));
        return None;
    }
    let m = r.mapping(
        node,
        field,
        node.pos(),
        &["kubeconfig", "context"],
        &[],
        "in-cluster, or a mapping like { kubeconfig: ~/.kube/config, context: shop-east }",
    )?;
    let path = m.get("kubeconfig").map(|n| r.text(n, &m.field("kubeconfig"), "a kubeconfig file's path"));
    let context = m.get("context").map(|n| r.text(n, &m.field("context"), "a context in the kubeconfig"));
    let (path, context) = (optional(path), optional(context));
    // Written as in the plan (`~/.kube/config` too): the adapter that opens it expands `~`.
    Some(ClusterAccess::Kubeconfig { path: path?.map(PathBuf::from), context: context?.map(str::to_owned) })
}

/// An optional field as read: None when absent, Some(None) when present and reported bad.
fn optional<T>(field: Option<Option<T>>) -> Option<Option<T>> {
    field.map(|v| v.ok_or(())).transpose().ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::{ClusterAccess, ComputeKind, ComputeTarget, KubernetesTarget, parse_plan};

    const BASE: &str = r#"
name: shop
objectives: { rto: 5m, rpo: 0s }
regions: { us-east-2: { role: primary }, us-west-1: { role: standby } }
database:
  kind: postgres
  replication: synchronous
  members: { us-east-2: { dsn_env: E }, us-west-1: { dsn_env: W } }
traffic:
  kind: rfc2136
  server: 127.0.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: k, algorithm: hmac-sha256, secret_env: K }
  targets: { us-east-2: 192.0.2.1, us-west-1: 192.0.2.2 }
checks: { api: { http: "http://{target}/healthz" } }
"#;

    fn parse(compute: &str) -> Result<crate::plan::Plan, String> {
        let text = format!("{BASE}{compute}");
        parse_plan(Path::new("plan.yaml"), &text, &crate::plan::test_support::Recording::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn node_groups_and_auto_scaling_groups_are_read_with_defaults() {
        let plan = parse(
            "compute:\n  nodes:\n    kind: eks-nodegroup\n    capacity: 50%\n    regions:\n      us-east-2: { cluster: c-east, nodegroup: general }\n      us-west-1: { cluster: c-west, nodegroup: general }\n  web:\n    kind: autoscaling-group\n    regions: { us-east-2: { name: web-east }, us-west-1: { name: web-west } }\n",
        )
        .unwrap();
        let nodes = &plan.compute["nodes"];
        assert_eq!((nodes.kind, nodes.capacity_percent), (ComputeKind::EksNodegroup, 50));
        assert_eq!(
            nodes.targets["us-west-1"],
            ComputeTarget::EksNodegroup { cluster: "c-west".into(), nodegroup: "general".into() }
        );
        let web = &plan.compute["web"];
        assert_eq!((web.capacity_percent, web.ready_timeout.as_secs()), (100, 900));
        // A plan with compute scales in both runbooks, between promote and switch.
        let names: Vec<&str> = plan.runbooks.failover.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["fence", "promote", "scale", "switch", "verify"]);
    }

    #[test]
    fn kubernetes_workloads_are_read_per_region() {
        let plan = parse(
            "compute:\n  apps:\n    kind: kubernetes\n    capacity: 50%\n    ready_timeout: 5m\n    regions:\n      us-east-2: { cluster: { kubeconfig: /etc/k/east.yaml, context: shop-east }, namespace: shop, selector: app=shop }\n      us-west-1: { cluster: in-cluster, namespace: shop }\n",
        )
        .unwrap();
        let apps = &plan.compute["apps"];
        assert_eq!(
            (apps.kind, apps.capacity_percent, apps.ready_timeout.as_secs()),
            (ComputeKind::Kubernetes, 50, 300)
        );
        assert_eq!(
            apps.targets["us-east-2"],
            ComputeTarget::Kubernetes(KubernetesTarget {
                cluster: ClusterAccess::Kubeconfig {
                    path: Some("/etc/k/east.yaml".into()),
                    context: Some("shop-east".into())
                },
                namespace: "shop".into(),
                selector: Some("app=shop".into()),
            })
        );
        assert_eq!(
            apps.targets["us-west-1"],
            ComputeTarget::Kubernetes(KubernetesTarget {
                cluster: ClusterAccess::InCluster,
                namespace: "shop".into(),
                selector: None
            })
        );
    }

    #[test]
    fn bad_kubernetes_targets_name_the_line_and_field() {
        let cases = [
            (
                "compute:\n  apps:\n    kind: kubernetes\n    regions:\n      us-east-2: { cluster: in-clust, namespace: shop }\n      us-west-1: { cluster: in-cluster, namespace: shop }\n",
                "plan.yaml:22:29: compute.apps.regions.us-east-2.cluster: expected in-cluster or { kubeconfig: PATH, context: NAME }, found in-clust",
            ),
            (
                "compute:\n  apps:\n    kind: kubernetes\n    regions:\n      us-east-2: { cluster: in-cluster }\n      us-west-1: { cluster: in-cluster, namespace: shop }\n",
                "compute.apps.regions.us-east-2.namespace: required field is missing",
            ),
            (
                "compute:\n  apps:\n    kind: kubernetes\n    regions:\n      us-east-2: { cluster: { contxt: e }, namespace: shop }\n      us-west-1: { cluster: in-cluster, namespace: shop }\n",
                "compute.apps.regions.us-east-2.cluster.contxt: unknown field; did you mean context?",
            ),
        ];
        for (compute, want) in cases {
            let err = parse(compute).expect_err(compute);
            assert!(err.contains(want), "want {want:?} in:\n{err}");
        }
    }

    #[test]
    fn bad_compute_names_the_line_and_field() {
        let cases = [
            (
                "compute:\n  web:\n    kind: autoscaling-grp\n    regions: { us-east-2: { name: a }, us-west-1: { name: b } }\n",
                "plan.yaml:20:11: compute.web.kind: unknown compute kind 'autoscaling-grp'",
            ),
            (
                "compute:\n  web:\n    kind: autoscaling-group\n    capacity: 1000%\n    regions: { us-east-2: { name: a }, us-west-1: { name: b } }\n",
                "plan.yaml:21:15: compute.web.capacity: 1000% is out of range",
            ),
            (
                "compute:\n  web:\n    kind: autoscaling-group\n    capacity: lots\n    regions: { us-east-2: { name: a }, us-west-1: { name: b } }\n",
                "compute.web.capacity: expected a percentage of the primary region's capacity like 100%, found lots",
            ),
            (
                "compute:\n  web:\n    kind: autoscaling-group\n    regions: { us-east-2: { name: a } }\n",
                "compute.web.regions.us-west-1: missing; us-west-1 is a standby region and needs a compute target",
            ),
            (
                "compute:\n  nodes:\n    kind: eks-nodegroup\n    regions: { us-east-2: { cluster: a }, us-west-1: { cluster: b, nodegroup: g } }\n",
                "compute.nodes.regions.us-east-2.nodegroup: required field is missing",
            ),
            (
                "runbooks: { failover: [fence, promote, scale, switch, verify] }\n",
                "runbooks.failover: scale needs a compute section",
            ),
        ];
        for (compute, want) in cases {
            let err = parse(compute).expect_err(compute);
            assert!(err.contains(want), "want {want:?} in:\n{err}");
        }
    }
}
