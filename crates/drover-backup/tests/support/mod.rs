//! Backup and restore scenarios run against each kind of store: a local directory and a
//! real S3-compatible server (moto). The cluster is the in-memory API-server stand-in.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_backup::backup::apply_retention;
use drover_backup::standin::{MemoryCluster, widget_crd};
use drover_backup::{
    BackupRequest, BackupStore, ClusterApi, Existing, Keep, Outcome, RestoreRequest, SecretKey, create_backup, restore,
};
use object_store::ObjectStoreExt;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

pub mod moto;

pub fn key() -> Arc<SecretKey> {
    Arc::new(SecretKey::from_material(b"0123456789abcdef0123456789abcdef").unwrap())
}

/// A cluster with an application in namespace `shop`, a custom resource, and objects a
/// backup must leave out.
pub fn source_cluster() -> MemoryCluster {
    let c = MemoryCluster::new();
    c.seed(widget_crd());
    for ns in ["shop", "kube-system"] {
        c.seed(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}),
        );
    }
    c.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}, "data": {"mode": "live"}}));
    c.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}, "data": {"ca.crt": "x"}}));
    c.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {}}));
    c.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}));
    c.seed(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop", "namespace": "shop"}}));
    c.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "shop", "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "shop", "namespace": "shop"}]}));
    c.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-123"}, "status": {"phase": "Bound"}}));
    c.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "generation": 4},
        "spec": {"replicas": 3, "template": {"spec": {"serviceAccountName": "shop"}}}, "status": {"readyReplicas": 3}}));
    c.seed(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]}}));
    c.seed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-abc", "namespace": "shop",
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": true}]}, "spec": {}}));
    c.seed(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"size": 3}}));
    c
}

pub fn request(secrets: bool) -> BackupRequest {
    BackupRequest {
        plan: "shop".into(),
        region: "east".into(),
        namespaces: vec![],
        selector: None,
        secrets: secrets.then(key),
        progress: None,
    }
}

pub fn restore_request(backup: &str, map: &[(&str, &str)]) -> RestoreRequest {
    RestoreRequest {
        backup: backup.into(),
        target: "west".into(),
        namespace_map: map.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<BTreeMap<_, _>>(),
        existing: Existing::Skip,
        key: Some(key()),
        crd_timeout: Duration::from_secs(5),
        progress: None,
    }
}

const NOW: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);

/// Backs up to both regions' stores, restores from the other region's into an empty
/// cluster with `shop` mapped to `shop-dr`, and checks what arrived and in which order.
pub async fn round_trip_with_namespace_mapping(east: &BackupStore, west: &BackupStore) {
    let source = source_cluster();
    let report = create_backup(&source, &[east.clone(), west.clone()], &request(true), NOW).await.unwrap();
    let labels: Vec<String> = report.index.objects.iter().map(|e| e.label()).collect();
    assert_eq!(
        labels,
        [
            "ConfigMap shop/settings",
            "Namespace shop",
            "PersistentVolumeClaim shop/data",
            "Secret shop/db",
            "ServiceAccount shop/shop",
            "Service shop/web",
            "CustomResourceDefinition widgets.example.com",
            "Deployment shop/web",
            "Widget shop/blue",
            "RoleBinding shop/shop",
        ],
        "system namespaces, generated and controller-owned objects are left out"
    );
    assert!(report.index.objects.iter().find(|e| e.kind == "Secret").unwrap().encrypted);
    assert_eq!(report.written, [("east".to_string(), 10), ("west".to_string(), 10)]);
    assert_eq!(east.backup_ids().await.unwrap(), [report.index.id.as_str()]);

    // The secret's plaintext is nowhere in the store.
    let secret = report.index.objects.iter().find(|e| e.kind == "Secret").unwrap();
    let stored = west.object(&secret.hash).await.unwrap();
    assert!(drover_backup::format::decode(&stored).is_err(), "a Secret is not stored as plain gzip");

    let target = Arc::new(MemoryCluster::with_establish_after(3));
    let restored =
        restore(target.clone(), west, &restore_request(&report.index.id, &[("shop", "shop-dr")])).await.unwrap();
    assert!(restored.failed().is_empty(), "{:?}", restored.failed());
    assert_eq!(restored.count(&Outcome::Created), 10);
    assert!(restored.objects.iter().any(|(l, _)| l == "Widget shop-dr/blue"));

    let cm = target.object("configmaps", "shop-dr", "settings").expect("settings restored into shop-dr");
    assert_eq!(cm["data"]["mode"], "live");
    assert!(target.object("configmaps", "shop", "settings").is_none());
    assert!(target.object("namespaces", "", "shop-dr").is_some());
    let secret = target.object("secrets", "shop-dr", "db").unwrap();
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    let binding = target.object("rolebindings", "shop-dr", "shop").unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "shop-dr");
    let deployment = target.object("deployments", "shop-dr", "web").unwrap();
    assert!(deployment.get("status").is_none());
    assert!(deployment["metadata"]["uid"].is_string(), "the target assigns its own uid");
    let service = target.object("services", "shop-dr", "web").unwrap();
    assert!(service["spec"].get("clusterIP").is_none());
    let claim = target.object("persistentvolumeclaims", "shop-dr", "data").unwrap();
    assert!(claim["spec"].get("volumeName").is_none());
    assert!(target.object("pods", "shop-dr", "web-abc").is_none());
    assert!(target.object("widgets", "shop-dr", "blue").is_some());

    assert_order(&target.log());

    // A rerun of the same restore applies nothing again.
    let before = target.log().len();
    let again =
        restore(target.clone(), west, &restore_request(&report.index.id, &[("shop", "shop-dr")])).await.unwrap();
    assert_eq!(again.count(&Outcome::DoneBefore), 10);
    assert_eq!(target.log().len(), before);
}

/// CRD, Established, namespaces, config, storage, custom resources, workloads.
pub fn assert_order(log: &[String]) {
    let at = |prefix: &str| {
        log.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} not in {log:#?}"))
    };
    let order = [
        at("create CustomResourceDefinition"),
        at("established widgets.example.com"),
        at("create Namespace"),
        at("create ConfigMap"),
        at("create PersistentVolumeClaim"),
        at("create Widget"),
        at("create Deployment"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "restore order {order:?} in {log:#?}");
}

/// A second backup of an unchanged cluster writes no content; one changed object writes one.
pub async fn unchanged_backup_writes_nothing_new(store: &BackupStore) {
    let source = source_cluster();
    let stores = [store.clone()];
    let first = create_backup(&source, &stores, &request(true), NOW).await.unwrap();
    assert_eq!(first.written[0].1, 10);
    let later = NOW + Duration::from_secs(3600);
    let second = create_backup(&source, &stores, &request(true), later).await.unwrap();
    assert_eq!(second.written[0].1, 0, "an unchanged cluster writes no new content objects");
    assert_ne!(first.index.id, second.index.id);
    assert_eq!(store.content_objects().await.unwrap().len(), 10);

    let kind = source.resource_kinds().await.unwrap().into_iter().find(|k| k.kind == "ConfigMap").unwrap();
    let mut settings = source.get(&kind, Some("shop"), "settings").await.unwrap().unwrap();
    settings["data"]["mode"] = json!("maintenance");
    source.replace(&kind, settings).await.unwrap();
    let third = create_backup(&source, &stores, &request(true), later + Duration::from_secs(3600)).await.unwrap();
    assert_eq!(third.written[0].1, 1, "only the changed ConfigMap is new");

    // Keep only the newest: the two older backups go, and the old ConfigMap content with them.
    let deleted = apply_retention(store, Keep { last: 1, daily: 0 }).await.unwrap();
    assert_eq!(deleted, [first.index.id, second.index.id]);
    assert_eq!(store.backup_ids().await.unwrap(), [third.index.id.as_str()]);
    assert_eq!(store.content_objects().await.unwrap().len(), 10);
    assert!(store.verify(&third.index.id).await.unwrap().ok());
}

/// `verify` names a corrupted object and a missing one.
pub async fn verify_detects_corruption(store: &BackupStore) {
    use object_store::ObjectStoreExt;
    let source = source_cluster();
    let backup = create_backup(&source, std::slice::from_ref(store), &request(true), NOW).await.unwrap();
    let id = &backup.index.id;
    assert!(store.verify(id).await.unwrap().ok());

    let entry = |kind: &str| backup.index.objects.iter().find(|e| e.kind == kind).unwrap().clone();
    let (deployment, service) = (entry("Deployment"), entry("Service"));
    let path = |hash: &str| object_store::path::Path::from(format!("objects/{hash}"));
    store.inner().put(&path(&deployment.hash), b"flipped bits".to_vec().into()).await.unwrap();
    store.inner().delete(&path(&service.hash)).await.unwrap();
    let report = store.verify(id).await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.checked, 10);
    assert_eq!(report.corrupt, [("Deployment shop/web".to_string(), deployment.hash)]);
    assert_eq!(report.missing, [("Service shop/web".to_string(), service.hash)]);
}

/// One holder at a time: a second waits, then is told who holds the store; a lock whose
/// holder died (expired) is taken over; two backups at once both end whole.
pub async fn the_store_lock_lets_one_backup_in_at_a_time(store: &BackupStore) {
    use drover_backup::Error;
    store.lock("first", Duration::ZERO).await.unwrap();
    match store.lock("second", Duration::from_millis(300)).await {
        Err(Error::Busy(why)) => assert!(why.contains("store is locked by first"), "{why}"),
        other => panic!("a second holder got in: {other:?}"),
    }
    store.unlock().await.unwrap();
    store.lock("second", Duration::ZERO).await.unwrap();
    store.unlock().await.unwrap();

    // A holder that died an hour ago.
    let stale = serde_json::to_vec(&json!({"holder": "gone", "until_ms": 1})).unwrap();
    store.inner().put(&object_store::path::Path::from("locks/backup"), stale.into()).await.unwrap();
    store.lock("third", Duration::ZERO).await.unwrap();
    store.unlock().await.unwrap();

    // Two backups of a changed cluster into one store at the same time, with retention.
    let cluster = source_cluster();
    let (a, b) = (datetime!(2026-11-25 10:00:00 UTC), datetime!(2026-11-25 10:00:01 UTC));
    let stores = std::slice::from_ref(store);
    let req = request(false);
    let (first, second) =
        tokio::join!(create_backup(&cluster, stores, &req, a), create_backup(&cluster, stores, &req, b));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.failed.is_empty() && second.failed.is_empty());
    apply_retention(store, Keep { last: 1, daily: 0 }).await.unwrap();
    assert_eq!(store.backup_ids().await.unwrap(), std::slice::from_ref(&second.index.id));
    assert!(store.verify(&second.index.id).await.unwrap().ok(), "retention took content the kept backup uses");
    assert!(
        store.inner().head(&object_store::path::Path::from("locks/backup")).await.is_err(),
        "a lock was left behind"
    );
}
