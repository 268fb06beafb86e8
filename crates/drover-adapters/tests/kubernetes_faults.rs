//! `kubernetes-scale-to-zero` against the Kubernetes stand-in (the in-memory API server
//! behind its HTTP front, `drover_backup::standin::http::ApiServer`), reached through a
//! kubeconfig as a plan names it: the selected workloads go to 0 replicas, the others stay,
//! and a new injector sets them back from the journaled state, twice.
#![cfg(feature = "kubernetes")]

use std::path::Path;
use std::sync::Arc;

use drover_adapters::faults::{FaultSettings, injector_for};
use drover_backup::standin::MemoryCluster;
use drover_backup::standin::http::ApiServer;
use drover_core::fault::{FaultKind, FaultState};
use drover_core::plan::parse_plan;
use drover_core::secret::{Secret, SecretRef, SecretSource};
use serde_json::{Value, json};

struct AnySecret;
impl SecretSource for AnySecret {
    fn resolve(&self, _: &SecretRef) -> Result<Secret, String> {
        Ok(Secret::new("dHNpZy1zM2NyZXQ="))
    }
}

fn workload(kind: &str, name: &str, app: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": {}}})
}

fn replicas(cluster: &MemoryCluster, plural: &str, name: &str) -> (u64, u64) {
    let o = cluster.object(plural, "shop", name).unwrap();
    (o["spec"]["replicas"].as_u64().unwrap(), o["status"]["readyReplicas"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn the_regions_workloads_go_to_zero_and_come_back_from_the_journaled_state() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(MemoryCluster::new());
    cluster.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    cluster.seed(workload("Deployment", "web", "shop", 3));
    cluster.seed(workload("StatefulSet", "cache", "shop", 2));
    cluster.seed(workload("Deployment", "batch", "reports", 1));
    let server = ApiServer::start(cluster.clone()).await;
    let kubeconfig = server.write_kubeconfig(dir.path(), "east");
    let text = format!(
        r#"
name: shop
objectives: {{ rto: 5m, rpo: 0s }}
regions:
  east: {{ role: primary }}
  west: {{ role: standby }}
database:
  kind: postgres
  replication: asynchronous
  members: {{ east: {{ dsn_env: E }}, west: {{ dsn_env: W }} }}
traffic:
  kind: rfc2136
  server: 127.0.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: {{ name: k, algorithm: hmac-sha256, secret_env: K }}
  targets: {{ east: 192.0.2.1, west: 192.0.2.2 }}
compute:
  apps:
    kind: kubernetes
    ready_timeout: 1m
    regions:
      east: {{ cluster: {{ kubeconfig: {path}, context: east }}, namespace: shop, selector: app=shop }}
      west: {{ cluster: {{ kubeconfig: {path}, context: east }}, namespace: shop, selector: app=shop }}
checks: {{ api: {{ http: "http://{{target}}/healthz" }} }}
"#,
        path = kubeconfig.display()
    );
    let plan = parse_plan(Path::new("plan.yaml"), &text, &AnySecret).unwrap();
    let settings = FaultSettings::default();
    let injector = injector_for(FaultKind::KubernetesScaleToZero, "east", &plan, &settings).unwrap();
    let state = injector.capture().await.unwrap();
    assert_eq!(
        state.targets,
        ["apps deployment/web (desired 3, min 3, max 3)", "apps statefulset/cache (desired 2, min 2, max 2)"]
    );
    let journaled = serde_json::to_string(&state).unwrap();
    assert!(!injector.observe(&state).await.unwrap().in_place);
    injector.inject(&state).await.unwrap();
    injector.inject(&state).await.unwrap();
    assert!(injector.observe(&state).await.unwrap().in_place);
    assert_eq!(replicas(&cluster, "deployments", "web"), (0, 0));
    assert_eq!(replicas(&cluster, "statefulsets", "cache"), (0, 0));
    assert_eq!(replicas(&cluster, "deployments", "batch"), (1, 1), "not selected: left alone");

    drop(injector);
    let state: FaultState = serde_json::from_str(&journaled).unwrap();
    for _ in 0..2 {
        let fresh = injector_for(FaultKind::KubernetesScaleToZero, "east", &plan, &settings).unwrap();
        fresh.undo(&state).await.unwrap();
    }
    assert_eq!(replicas(&cluster, "deployments", "web"), (3, 3));
    assert_eq!(replicas(&cluster, "statefulsets", "cache"), (2, 2));
    let fresh = injector_for(FaultKind::KubernetesScaleToZero, "east", &plan, &settings).unwrap();
    assert!(!fresh.observe(&state).await.unwrap().in_place);
}
