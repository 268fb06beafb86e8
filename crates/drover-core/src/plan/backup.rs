//! The optional `backup` section: where each region's Kubernetes backups are stored,
//! whether Secrets are taken (and the key they are encrypted with), retention and schedule.

use std::collections::BTreeMap;

use super::compute::read_cluster;
use super::model::{BackupSpec, BackupStoreSpec, ClusterAccess, ComputeSpec, ComputeTarget};
use super::raw::{Node, Value};
use super::reader::{Entry, Mapping, Reader};
use super::regions::{Regions, region_entries};

const FIELDS: [&str; 8] = ["stores", "clusters", "secrets", "key_env", "key_file", "keep", "schedule", "key"];
const STORE_FIELDS: [&str; 4] = ["url", "dir", "endpoint", "aws_region"];

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    regions: Option<&Regions>,
    compute: Option<&BTreeMap<String, ComputeSpec>>,
) -> Option<Option<BackupSpec>> {
    let Some(node) = top.get("backup") else {
        return Some(None);
    };
    if node.value == Value::Null {
        return Some(None);
    }
    let at = top.key("backup").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "backup", at, &FIELDS, &[], "a mapping like { stores: { ... }, keep: { last: 7 } }")?;
    let secrets = match m.get("secrets") {
        Some(n) => r.flag(n, &m.field("secrets")),
        None => Some(false),
    };
    let mentions_key = ["key", "key_env", "key_file"].iter().any(|k| m.key(k).is_some());
    // The key is only read (and must resolve) when Secrets are taken; a key without them is a mistake.
    let key = match secrets {
        Some(true) => r.secret_ref(&m, "key", "key_env", "key_file").map(Some),
        Some(false) if mentions_key => {
            let key = ["key_env", "key_file", "key"].iter().find_map(|k| m.key(k)).expect("mentioned");
            r.error(key.pos(), "backup.secrets", "a key is given but secrets is not true; add secrets: true");
            None
        }
        _ => Some(None),
    };
    let (keep_last, keep_daily) = match m.get("keep") {
        Some(n) => read_keep(r, n, &m)?,
        None => (0, 0),
    };
    let schedule = match m.get("schedule") {
        Some(n) => r.positive_duration(n, &m.field("schedule")).map(Some),
        None => Some(None),
    };
    let stores = r
        .require(
            &m,
            "stores",
            "add one store per primary and standby region, e.g. stores: { east: { url: s3://bucket/prefix } }",
        )
        .and_then(|n| read_stores(r, &m, n, regions));
    let named = match m.get("clusters") {
        Some(n) => read_clusters(r, &m, n, regions),
        None => Some(BTreeMap::new()),
    };
    let clusters = match (&stores, named, compute) {
        (Some(stores), Some(named), Some(compute)) => clusters_of(r, &m, stores, named, compute),
        // Reported already; nothing to resolve against.
        _ => None,
    };
    Some(Some(BackupSpec {
        secrets: secrets?,
        key: key?,
        keep_last,
        keep_daily,
        schedule: schedule?,
        stores: stores?,
        clusters: clusters?,
    }))
}

/// `backup.clusters`: how drover reaches each region's cluster to back it up or restore to it.
fn read_clusters(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, ClusterAccess>> {
    let at = m.key("clusters").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {{ kubeconfig: ~/.kube/config, context: shop-{region} }}");
    let entries = region_entries(r, node, &m.field("clusters"), at, regions, "Kubernetes cluster", &example)?;
    r.each(&entries, |r, entry| read_cluster(r, entry.value, &entry.path))
}

/// Every store's region needs a cluster: the one named in `backup.clusters`, or else the one
/// its `kubernetes` compute resources share. Two different ones there are ambiguous.
fn clusters_of(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    stores: &BTreeMap<String, BackupStoreSpec>,
    mut named: BTreeMap<String, ClusterAccess>,
    compute: &BTreeMap<String, ComputeSpec>,
) -> Option<BTreeMap<String, ClusterAccess>> {
    let at = m.key("clusters").or_else(|| m.key("stores")).map_or(m.at, Node::pos);
    let mut complete = true;
    for region in stores.keys() {
        if named.contains_key(region) {
            continue;
        }
        let mut seen: Vec<&ClusterAccess> = Vec::new();
        for spec in compute.values() {
            if let Some(ComputeTarget::Kubernetes(k)) = spec.targets.get(region)
                && !seen.contains(&&k.cluster)
            {
                seen.push(&k.cluster);
            }
        }
        let field = format!("{}.{region}", m.field("clusters"));
        match seen.as_slice() {
            [one] => {
                named.insert(region.clone(), (*one).clone());
            }
            [] => {
                r.error(
                    at,
                    &field,
                    format!(
                        "missing; drover backs up and restores {region}'s Kubernetes cluster: add clusters: {{ {region}: \
                         {{ kubeconfig: PATH, context: NAME }} }} (or in-cluster), or a kubernetes compute resource in {region}"
                    ),
                );
                complete = false;
            }
            _ => {
                r.error(
                    at,
                    &field,
                    format!(
                        "missing; {region}'s kubernetes compute resources name different clusters, so say which one \
                         to back up: clusters: {{ {region}: {{ kubeconfig: PATH, context: NAME }} }}"
                    ),
                );
                complete = false;
            }
        }
    }
    complete.then_some(named)
}

fn read_keep(r: &mut Reader<'_>, node: &Node, m: &Mapping<'_>) -> Option<(u32, u32)> {
    let path = m.field("keep");
    let at = m.key("keep").map_or(node.pos(), Node::pos);
    let keep = r.mapping(node, &path, at, &["last", "daily"], &[], "a mapping like { last: 7, daily: 14 }")?;
    let last = match keep.get("last") {
        Some(n) => r.count(n, &keep.field("last"), 0),
        None => Some(0),
    };
    let daily = match keep.get("daily") {
        Some(n) => r.count(n, &keep.field("daily"), 0),
        None => Some(0),
    };
    Some((last?, daily?))
}

fn read_stores(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, BackupStoreSpec>> {
    let at = m.key("stores").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {{ url: s3://shop-backups-{region}/drover }}");
    let entries = region_entries(r, node, &m.field("stores"), at, regions, "backup store", &example)?;
    r.each(&entries, read_store)
}

fn read_store(r: &mut Reader<'_>, entry: &Entry<'_>) -> Option<BackupStoreSpec> {
    let expected = "a mapping like { url: s3://bucket/prefix } or { dir: /var/lib/drover/backups }";
    let m = r.mapping(entry.value, &entry.path, entry.key.pos(), &STORE_FIELDS, &[], expected)?;
    match (m.get("url"), m.get("dir")) {
        (Some(url), None) => {
            let field = m.field("url");
            let text = r.text(url, &field, "an s3://bucket/prefix URL")?;
            let Some(rest) = text.strip_prefix("s3://").filter(|rest| !rest.is_empty()) else {
                r.error(
                    url.pos(),
                    &field,
                    format!("'{text}' is not an s3:// URL; write s3://bucket or s3://bucket/prefix"),
                );
                return None;
            };
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let endpoint = match m.get("endpoint") {
                Some(n) => {
                    Some(r.text(n, &m.field("endpoint"), "an http(s):// URL of an S3-compatible server")?.to_owned())
                }
                None => None,
            };
            let aws_region = match m.get("aws_region") {
                Some(n) => Some(r.text(n, &m.field("aws_region"), "an AWS region like us-east-1")?.to_owned()),
                None => None,
            };
            Some(BackupStoreSpec::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                endpoint,
                aws_region,
            })
        }
        (None, Some(dir)) => {
            for key in ["endpoint", "aws_region"] {
                if let Some(k) = m.key(key) {
                    r.error(k.pos(), &m.field(key), "only an s3:// store has this; remove it or use url");
                }
            }
            let text = r.text(dir, &m.field("dir"), "a directory path")?;
            Some(BackupStoreSpec::Dir(text.into()))
        }
        (Some(_), Some(_)) => {
            r.error(entry.key.pos(), &entry.path, "give url or dir, not both");
            None
        }
        (None, None) => {
            r.error(entry.key.pos(), &m.field("url"), format!("required field is missing; add url or dir: {expected}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::plan::{BackupStoreSpec, ClusterAccess, parse_plan};
    use crate::secret::SecretRef;

    const BASE: &str = r#"
name: shop
objectives: { rto: 5m, rpo: 0s }
regions: { east: { role: primary }, west: { role: standby }, witness: { role: witness } }
database:
  kind: postgres
  replication: synchronous
  members: { east: { dsn_env: E }, west: { dsn_env: W } }
traffic:
  kind: rfc2136
  server: 127.0.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: k, algorithm: hmac-sha256, secret_env: K }
  targets: { east: 192.0.2.1, west: 192.0.2.2 }
checks: { api: { http: "http://{target}/healthz" } }
"#;

    const COMPUTE: &str = "compute:\n  apps:\n    kind: kubernetes\n    regions:\n      east: { cluster: { kubeconfig: /k/east.yaml, context: shop-east }, namespace: shop }\n      west: { cluster: in-cluster, namespace: shop }\n";

    fn parse(backup: &str) -> Result<crate::plan::Plan, String> {
        let text = format!("{BASE}{backup}");
        parse_plan(Path::new("plan.yaml"), &text, &crate::plan::test_support::Recording::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn stores_secrets_keep_and_schedule_are_read() {
        let plan = parse(
            "backup:\n  secrets: true\n  key_env: BACKUP_KEY\n  keep: { last: 7, daily: 14 }\n  schedule: 6h\n  clusters: { east: in-cluster, west: { kubeconfig: /etc/k/west.yaml, context: shop-west } }\n  stores:\n    east: { url: s3://shop-east/drover/shop }\n    west: { url: s3://shop-west, endpoint: http://minio:9000, aws_region: us-west-1 }\n",
        )
        .unwrap();
        assert!(
            crate::plan::summary(&plan).contains(
                "  backup     east -> s3://shop-east/drover/shop, west -> s3://shop-west; secrets encrypted; keep last 7, daily 14; every 6h\n"
            ),
            "{}",
            crate::plan::summary(&plan)
        );
        let backup = plan.backup.unwrap();
        assert!(backup.secrets);
        assert_eq!(backup.key, Some(SecretRef::Env("BACKUP_KEY".into())));
        assert_eq!((backup.keep_last, backup.keep_daily), (7, 14));
        assert_eq!(backup.clusters["east"], ClusterAccess::InCluster);
        assert_eq!(
            backup.clusters["west"],
            ClusterAccess::Kubeconfig { path: Some("/etc/k/west.yaml".into()), context: Some("shop-west".into()) }
        );
        assert_eq!(backup.schedule, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(
            backup.stores["east"],
            BackupStoreSpec::S3 {
                bucket: "shop-east".into(),
                prefix: "drover/shop".into(),
                endpoint: None,
                aws_region: None
            }
        );
        assert_eq!(
            backup.stores["west"],
            BackupStoreSpec::S3 {
                bucket: "shop-west".into(),
                prefix: "".into(),
                endpoint: Some("http://minio:9000".into()),
                aws_region: Some("us-west-1".into())
            }
        );
    }

    #[test]
    fn without_secrets_no_key_is_needed_and_a_plan_may_have_no_backup() {
        let plan = parse(&format!(
            "{COMPUTE}backup:\n  stores: {{ east: {{ dir: /var/backups/east }}, west: {{ dir: /var/backups/west }} }}\n"
        ))
        .unwrap();
        let backup = plan.backup.unwrap();
        assert!(!backup.secrets && backup.key.is_none() && backup.schedule.is_none());
        assert_eq!(backup.stores["west"], BackupStoreSpec::Dir("/var/backups/west".into()));
        // No backup.clusters: each region's cluster is the one its kubernetes compute names.
        assert_eq!(backup.clusters["west"], ClusterAccess::InCluster);
        assert_eq!(
            backup.clusters["east"],
            ClusterAccess::Kubeconfig { path: Some("/k/east.yaml".into()), context: Some("shop-east".into()) }
        );
        assert!(parse("").unwrap().backup.is_none());
    }

    #[test]
    fn mistakes_are_located() {
        let cases = [
            (
                "backup:\n  secrets: true\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "plan.yaml:18:1: backup.key_env: required field is missing; add key_env: <VARIABLE> or key_file: <path>",
            ),
            (
                "backup:\n  key_env: K\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "plan.yaml:19:3: backup.secrets: a key is given but secrets is not true; add secrets: true",
            ),
            (
                "backup:\n  stores: { east: { url: http://x }, west: { dir: /b } }\n",
                "plan.yaml:19:26: backup.stores.east.url: 'http://x' is not an s3:// URL; write s3://bucket or s3://bucket/prefix",
            ),
            (
                "backup:\n  stores: { east: { dir: /a } }\n",
                "plan.yaml:19:3: backup.stores.west: missing; west is a standby region and needs a backup store, e.g. west: { url: s3://shop-backups-west/drover }",
            ),
            (
                "backup:\n  keep: { last: -1 }\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "plan.yaml:19:17: backup.keep.last: is -1, must be at least 0",
            ),
            (
                "backup:\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "plan.yaml:19:3: backup.clusters.east: missing; drover backs up and restores east's Kubernetes cluster: add clusters: { east: { kubeconfig: PATH, context: NAME } } (or in-cluster), or a kubernetes compute resource in east",
            ),
            (
                "backup:\n  clusters: { east: in-clust, witness: in-cluster }\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "plan.yaml:19:21: backup.clusters.east: expected in-cluster or { kubeconfig: PATH, context: NAME }, found in-clust",
            ),
            (
                "backup:\n  clusters: { east: in-cluster, witness: in-cluster }\n  stores: { east: { dir: /a }, west: { dir: /b } }\n",
                "backup.clusters.witness: witness is a witness region",
            ),
        ];
        for (backup, expected) in cases {
            let errors = parse(backup).unwrap_err();
            assert!(errors.contains(expected), "{backup}\nexpected {expected}\nfound {errors}");
        }
    }
}
