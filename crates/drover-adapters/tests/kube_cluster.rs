//! Backups and restores through kube-rs (`KubeCluster`), and the scale step, against the
//! in-memory API server behind its HTTP front (`drover_backup::standin::http::ApiServer`):
//! real kube clients, real HTTP, no Kubernetes installed. A scripted server gives the
//! failures the stand-in never does. The compute preflight reads the same stand-in.
#![cfg(feature = "kubernetes")]

#[path = "support/logs.rs"]
mod logs;
use logs::Captured;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_adapters::kubernetes::{KubeCluster, KubernetesCompute};
use drover_backup::standin::http::ApiServer;
use drover_backup::standin::{MemoryCluster, widget_crd};
use drover_backup::{
    BackupRequest, BackupStore, ClusterApi, ClusterError, Existing, ResourceKind, RestoreRequest, create_backup,
    restore,
};
use drover_core::plan::{ClusterAccess, ComputeKind, ComputeSpec, ComputeTarget, KubernetesTarget, Plan};
use drover_core::testing::scenarios::two_region_plan;
use drover_core::world::{Capacity, Compute, Size};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The cluster's context `region` in a kubeconfig the stand-in wrote: the way a plan names it.
fn access(server: &ApiServer, dir: &std::path::Path, region: &str) -> ClusterAccess {
    let path = server.write_kubeconfig(dir, region);
    ClusterAccess::Kubeconfig { path: Some(path), context: Some(region.into()) }
}

async fn client(server: &ApiServer) -> Client {
    let config = kube::Config::new(server.url().parse().unwrap());
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn backup_and_restore_round_trip_through_kube() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(MemoryCluster::new());
    source.seed(widget_crd());
    source.seed(namespace("shop"));
    source.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}, "data": {"mode": "live"}}));
    source.seed(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"colour": "blue"}}));
    source
        .seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {}}}));
    let target = Arc::new(MemoryCluster::with_establish_after(3));
    let (east, west) = (ApiServer::start(source.clone()).await, ApiServer::start(target.clone()).await);
    let east_cluster = KubeCluster::new(&access(&east, dir.path(), "east"), "east's cluster");
    let west_cluster = Arc::new(KubeCluster::new(&access(&west, dir.path(), "west"), "west's cluster"));

    let store = BackupStore::local("east", &dir.path().join("store")).unwrap();
    let request = BackupRequest {
        plan: "shop".into(),
        region: "east".into(),
        namespaces: vec![],
        selector: None,
        secrets: None,
        progress: None,
    };
    let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let backup = create_backup(&east_cluster, std::slice::from_ref(&store), &request, now).await.unwrap();
    let mut labels: Vec<String> = backup.index.objects.iter().map(|e| e.label()).collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "ConfigMap shop/settings",
            "CustomResourceDefinition widgets.example.com",
            "Deployment shop/web",
            "Namespace shop",
            "Widget shop/blue"
        ]
    );

    let restore_request = RestoreRequest {
        backup: backup.index.id.clone(),
        target: "west".into(),
        namespace_map: [("shop".to_owned(), "shop-dr".to_owned())].into(),
        existing: Existing::Skip,
        key: None,
        crd_timeout: Duration::from_secs(10),
        progress: None,
    };
    let report = restore(west_cluster, &store, &restore_request).await.unwrap();
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    assert_eq!(report.count(&drover_backup::Outcome::Created), 5);

    let log = target.log();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line} not in {log:#?}"));
    assert!(at("create CustomResourceDefinition /widgets.example.com") < at("established widgets.example.com"));
    assert!(at("established widgets.example.com") < at("create Widget shop-dr/blue"), "{log:#?}");
    assert_eq!(target.object("widgets", "shop-dr", "blue").unwrap()["spec"]["colour"], "blue");
    assert_eq!(target.object("configmaps", "shop-dr", "settings").unwrap()["data"]["mode"], "live");
    assert_eq!(target.object("deployments", "shop-dr", "web").unwrap()["spec"]["replicas"], 2);
    assert!(target.object("namespaces", "", "shop-dr").is_some());
    assert!(target.objects("configmaps").iter().all(|cm| cm["metadata"]["namespace"] == "shop-dr"));
}

#[tokio::test]
async fn discovery_shows_a_crd_kind_only_once_established() {
    let cluster = Arc::new(MemoryCluster::with_establish_after(2));
    let server = ApiServer::start(cluster.clone()).await;
    let kube = KubeCluster::with_client("west's cluster", client(&server).await);

    let crds =
        ResourceKind::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false);
    kube.create(&crds, widget_crd()).await.unwrap();
    let kinds = kube.resource_kinds().await.unwrap();
    assert!(kinds.contains(&ResourceKind::new("", "v1", "ConfigMap", "configmaps", true)), "{kinds:?}");
    assert!(kinds.contains(&ResourceKind::new(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true
    )));
    assert!(!kinds.iter().any(|k| k.kind == "Widget"), "not Established yet: {kinds:?}");

    assert!(!kube.crd_established("widgets.example.com").await.unwrap());
    assert!(kube.crd_established("widgets.example.com").await.unwrap());
    let kinds = kube.resource_kinds().await.unwrap();
    assert!(kinds.contains(&ResourceKind::new("example.com", "v1", "Widget", "widgets", true)), "{kinds:?}");
    assert!(matches!(kube.crd_established("gadgets.example.com").await, Err(ClusterError::NotFound(_))));
}

#[tokio::test]
async fn conflicts_and_existing_objects_are_told_apart() {
    let cluster = Arc::new(MemoryCluster::new());
    cluster.seed(namespace("shop"));
    let server = ApiServer::start(cluster.clone()).await;
    let kube = KubeCluster::with_client("west's cluster", client(&server).await);
    let configmaps = ResourceKind::new("", "v1", "ConfigMap", "configmaps", true);
    let settings =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}});

    let created = kube.create(&configmaps, settings.clone()).await.unwrap();
    assert!(matches!(kube.create(&configmaps, settings.clone()).await, Err(ClusterError::AlreadyExists(_))));
    let mut elsewhere = settings;
    elsewhere["metadata"]["namespace"] = json!("gone");
    assert!(matches!(kube.create(&configmaps, elsewhere).await, Err(ClusterError::NotFound(_))));
    kube.replace(&configmaps, created.clone()).await.unwrap();
    match kube.replace(&configmaps, created).await {
        Err(ClusterError::Conflict(message)) => {
            assert!(message.starts_with("west's cluster: replace ConfigMap shop/settings: "))
        }
        other => panic!("a stale resourceVersion: {other:?}"),
    }
    assert_eq!(kube.get(&configmaps, Some("shop"), "nope").await.unwrap(), None);
    let listed = kube.list(&configmaps, None, None).await.unwrap();
    assert_eq!((listed[0]["apiVersion"].as_str(), listed[0]["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
}

/// Answers the next request with a `Status` failure.
async fn fail_next(handle: &mut Handle, code: u16, reason: &str) {
    let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    let (_, respond) = next.expect("a request").unwrap();
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("the server says {reason}"), "reason": reason, "code": code});
    respond.send_response(Response::builder().status(code).body(Body::from(status.to_string().into_bytes())).unwrap());
}

#[tokio::test]
async fn failures_name_the_cluster_the_call_and_what_to_grant() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let kube = KubeCluster::with_client("east's cluster", Client::new(service, "default"));
    let secrets = ResourceKind::new("", "v1", "Secret", "secrets", true);
    let server = tokio::spawn(async move {
        fail_next(&mut handle, 403, "Forbidden").await;
        fail_next(&mut handle, 500, "InternalError").await;
    });

    let Err(ClusterError::Other(forbidden)) = kube.list(&secrets, Some("shop"), None).await else {
        panic!("a 403 is neither NotFound nor a conflict")
    };
    assert!(
        forbidden
            .starts_with("east's cluster: list secrets in shop: the server says Forbidden (403 Forbidden) — grant"),
        "{forbidden}"
    );
    assert!(forbidden.contains("get and list on every kind it backs up, and create and update"), "{forbidden}");

    let object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}});
    let Err(ClusterError::Other(broken)) = kube.create(&secrets, object).await else { panic!("a 500 is Other") };
    assert_eq!(broken, "east's cluster: create Secret shop/db: the server says InternalError (500 InternalError)");
    server.await.unwrap();
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Asserts the next request is `GET path` and answers `code` with `body`.
async fn answer(handle: &mut Handle, path: &str, code: u16, body: Value) {
    let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    let (request, respond) = next.unwrap_or_else(|_| panic!("no request; expected GET {path}")).unwrap();
    assert_eq!((request.method().as_str(), request.uri().path()), ("GET", path));
    respond.send_response(Response::builder().status(code).body(Body::from(body.to_string().into_bytes())).unwrap());
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

/// `APIResourceList`: (plural, kind, namespaced, verbs) each.
fn resources(group_version: &str, served: &[(&str, &str, bool, &[&str])]) -> Value {
    let resources: Vec<Value> = served
        .iter()
        .map(|(plural, kind, namespaced, verbs)| {
            json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

const VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];

/// `/api`, then `/apis` with apps/v1 and metrics.k8s.io/v1beta1: what every discovery asks first.
async fn groups(handle: &mut Handle) {
    answer(handle, "/api", 200, json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
        .await;
    let group = |name: &str, version: &str| {
        let entry = json!({"groupVersion": format!("{name}/{version}"), "version": version});
        json!({"name": name, "versions": [entry], "preferredVersion": entry})
    };
    let list = json!({"kind": "APIGroupList", "apiVersion": "v1",
        "groups": [group("apps", "v1"), group("metrics.k8s.io", "v1beta1")]});
    answer(handle, "/apis", 200, list).await;
}

#[tokio::test]
async fn a_group_that_fails_discovery_is_left_out_with_a_warning() {
    let (logs, _logging) = Captured::start();
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let kube = KubeCluster::with_client("east's cluster", Client::new(service, "default"));
    let server = tokio::spawn(async move {
        groups(&mut handle).await;
        let core = resources(
            "v1",
            &[
                ("configmaps", "ConfigMap", true, VERBS),
                ("namespaces", "Namespace", false, VERBS),
                ("pods/log", "Pod", true, &["get"]),
                ("componentstatuses", "ComponentStatus", false, &["get", "list"]),
            ],
        );
        answer(&mut handle, "/api/v1", 200, core).await;
        let apps = resources(
            "apps/v1",
            &[("deployments", "Deployment", true, VERBS), ("deployments/scale", "Scale", true, &["get", "update"])],
        );
        answer(&mut handle, "/apis/apps/v1", 200, apps).await;
        let down = status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
        answer(&mut handle, "/apis/metrics.k8s.io/v1beta1", 503, down).await;
    });

    let kinds = kube.resource_kinds().await.unwrap();
    server.await.unwrap();
    assert_eq!(
        kinds,
        [
            ResourceKind::new("", "v1", "ConfigMap", "configmaps", true),
            ResourceKind::new("", "v1", "Namespace", "namespaces", false),
            ResourceKind::new("apps", "v1", "Deployment", "deployments", true),
        ]
    );
    let logs = logs.text();
    assert!(
        logs.contains(
            "WARN drover_adapters::kubernetes::cluster: east's cluster: discover metrics.k8s.io/v1beta1: the server is \
             currently unable to handle the request (503 ServiceUnavailable); its objects are not in this backup"
        ),
        "{logs}"
    );
    // The backup's index and report name it too (drover_backup reads it after discovery).
    assert_eq!(
        kube.skipped_groups(),
        ["metrics.k8s.io/v1beta1: east's cluster: discover metrics.k8s.io/v1beta1: the server is currently unable \
          to handle the request (503 ServiceUnavailable)"]
    );
}

#[tokio::test]
async fn the_core_group_failing_fails_discovery() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let kube = KubeCluster::with_client("east's cluster", Client::new(service, "default"));
    let server = tokio::spawn(async move {
        groups(&mut handle).await;
        answer(&mut handle, "/api/v1", 500, status(500, "InternalError", "etcd is unreachable")).await;
    });

    let Err(ClusterError::Other(message)) = kube.resource_kinds().await else { panic!("no core group, no backup") };
    server.await.unwrap();
    assert_eq!(message, "east's cluster: discover the core group (v1): etcd is unreachable (500 InternalError)");
}

#[tokio::test]
async fn the_scale_step_runs_against_the_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(MemoryCluster::new());
    cluster.seed(namespace("shop"));
    cluster.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}}}));
    cluster.seed(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "queue", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"replicas": 1, "serviceName": "queue", "selector": {"matchLabels": {"app": "queue"}}, "template": {}}}));
    cluster.seed(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "queue", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "queue"},
            "minReplicas": 1, "maxReplicas": 4}}));
    let server = ApiServer::start(cluster.clone()).await;

    let mut plan: Plan = two_region_plan();
    let target = ComputeTarget::Kubernetes(KubernetesTarget {
        cluster: access(&server, dir.path(), "east"),
        namespace: "shop".into(),
        selector: Some("app=shop".into()),
    });
    plan.compute.insert(
        "apps".into(),
        ComputeSpec {
            name: "apps".into(),
            kind: ComputeKind::Kubernetes,
            capacity_percent: 100,
            ready_timeout: Duration::from_secs(10),
            targets: [("east".into(), target)].into(),
        },
    );
    let compute = KubernetesCompute::new(&plan).poll_every(Duration::from_millis(10));
    let sizes: BTreeMap<String, Size> = [
        ("deployment/web".to_owned(), Size { desired: 3, min: 3, max: 3 }),
        ("statefulset/queue".to_owned(), Size { desired: 2, min: 1, max: 4 }),
    ]
    .into();
    compute.resize("apps", "east", &sizes).await.unwrap();

    let capacity = compute.capacity("apps", "east").await.unwrap();
    assert_eq!(capacity["deployment/web"], Capacity { desired: 3, min: 3, max: 3, ready: 3 });
    assert_eq!(capacity["statefulset/queue"], Capacity { desired: 2, min: 2, max: 4, ready: 2 });
    let hpa = cluster.object("horizontalpodautoscalers", "shop", "queue").unwrap();
    assert_eq!(hpa["spec"]["minReplicas"], 2, "raised, the autoscaler holds the new replicas");
}

/// A plan whose `apps` compute is the workloads `namespace` and `selector` choose in each
/// region's cluster (kubeconfig context = region).
fn kubernetes_plan(targets: &[(&str, ClusterAccess, &str, Option<&str>)]) -> Plan {
    let mut plan: Plan = two_region_plan();
    let targets = targets
        .iter()
        .map(|(region, cluster, namespace, selector)| {
            let target = ComputeTarget::Kubernetes(KubernetesTarget {
                cluster: cluster.clone(),
                namespace: (*namespace).into(),
                selector: selector.map(str::to_owned),
            });
            ((*region).to_owned(), target)
        })
        .collect();
    plan.compute.insert(
        "apps".into(),
        ComputeSpec {
            name: "apps".into(),
            kind: ComputeKind::Kubernetes,
            capacity_percent: 100,
            ready_timeout: Duration::from_secs(10),
            targets,
        },
    );
    plan
}

#[tokio::test]
async fn the_compute_preflight_names_a_namespace_or_selector_that_chooses_no_workload() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(MemoryCluster::new());
    cluster.seed(namespace("shop"));
    cluster.seed(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "queue", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"replicas": 1, "serviceName": "queue", "selector": {"matchLabels": {"app": "queue"}}, "template": {}}}));
    // A Deployment the selector leaves out: it must not count for it.
    cluster.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "admin", "namespace": "shop", "labels": {"app": "admin"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "admin"}}, "template": {}}}));
    let server = ApiServer::start(cluster).await;
    let (east, west) = (access(&server, dir.path(), "east"), access(&server, dir.path(), "west"));

    let plan = kubernetes_plan(&[
        ("east", east.clone(), "shop", Some("app=shop")),
        ("west", west.clone(), "shop", Some("app=shop-typo")),
    ]);
    let compute = KubernetesCompute::new(&plan);
    assert_eq!(compute.preflight("apps", "east").await, Vec::<String>::new(), "a StatefulSet is selected");
    assert_eq!(
        compute.preflight("apps", "west").await,
        [
            "apps in west: no Deployment or StatefulSet matching selector 'app=shop-typo' in namespace 'shop' — check compute.apps.regions.west.namespace and compute.apps.regions.west.selector"
        ]
    );

    // A namespace the cluster does not have lists nothing, as Kubernetes answers.
    let plan = kubernetes_plan(&[("east", east.clone(), "shop", None), ("west", west, "shop-dr", None)]);
    let compute = KubernetesCompute::new(&plan);
    assert_eq!(compute.preflight("apps", "east").await, Vec::<String>::new());
    assert_eq!(
        compute.preflight("apps", "west").await,
        [
            "apps in west: no Deployment or StatefulSet in namespace 'shop-dr' — check compute.apps.regions.west.namespace and compute.apps.regions.west.selector"
        ]
    );

    // The API server gone (its region lost): nothing is judged, the run may start.
    drop(server);
    let plan = kubernetes_plan(&[("east", east, "shop", Some("app=shop-typo"))]);
    let compute = KubernetesCompute::new(&plan);
    assert!(compute.capacity("apps", "east").await.is_err(), "the API server is gone");
    assert_eq!(compute.preflight("apps", "east").await, Vec::<String>::new());
}
