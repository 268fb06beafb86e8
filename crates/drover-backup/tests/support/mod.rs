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
    // The one Secret is sealed anew, bound to the new backup; the rest is not written again.
    assert_eq!(second.written[0].1, 1, "an unchanged cluster writes no new content objects but its Secret");
    assert_ne!(first.index.id, second.index.id);
    assert_eq!(store.content_objects().await.unwrap().len(), 11);

    let kind = source.resource_kinds().await.unwrap().into_iter().find(|k| k.kind == "ConfigMap").unwrap();
    let mut settings = source.get(&kind, Some("shop"), "settings").await.unwrap().unwrap();
    settings["data"]["mode"] = json!("maintenance");
    source.replace(&kind, settings).await.unwrap();
    let third = create_backup(&source, &stores, &request(true), later + Duration::from_secs(3600)).await.unwrap();
    assert_eq!(third.written[0].1, 2, "only the changed ConfigMap (and the Secret) is new");

    // Keep only the newest: the two older backups go, and the old ConfigMap content with them.
    let deleted = apply_retention(store, Keep { last: 1, daily: 0 }).await.unwrap();
    assert_eq!(deleted, [first.index.id, second.index.id]);
    assert_eq!(store.backup_ids().await.unwrap(), [third.index.id.as_str()]);
    assert_eq!(store.content_objects().await.unwrap().len(), 10);
    assert!(store.verify(&third.index.id, Some(key())).await.unwrap().ok());
}

/// `verify` names a corrupted object and a missing one.
pub async fn verify_detects_corruption(store: &BackupStore) {
    use object_store::ObjectStoreExt;
    let source = source_cluster();
    let backup = create_backup(&source, std::slice::from_ref(store), &request(true), NOW).await.unwrap();
    let id = &backup.index.id;
    assert!(store.verify(id, None).await.unwrap().ok());

    let entry = |kind: &str| backup.index.objects.iter().find(|e| e.kind == kind).unwrap().clone();
    let (deployment, service) = (entry("Deployment"), entry("Service"));
    let path = |hash: &str| object_store::path::Path::from(format!("objects/{hash}"));
    store.inner().put(&path(&deployment.hash), b"flipped bits".to_vec().into()).await.unwrap();
    store.inner().delete(&path(&service.hash)).await.unwrap();
    let report = store.verify(id, None).await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.checked, 10);
    assert_eq!(
        report.corrupt,
        [("Deployment shop/web".to_string(), deployment.hash, "its bytes do not match its hash".to_string())]
    );
    assert_eq!(report.missing, [("Service shop/web".to_string(), service.hash)]);
}

/// One holder at a time: a second waits, then is told who holds the store; a lock its
/// holder renews is not taken over however long the work takes; one whose holder stopped
/// renewing is taken over, by one contender only; a holder whose lock was taken from it
/// learns so and does not release the new holder's; two backups at once both end whole.
pub async fn the_store_lock_lets_one_backup_in_at_a_time(store: &BackupStore) {
    use drover_backup::Error;
    let store = &store.clone().with_lock_ttl(Duration::from_secs(2));
    let first = store.lock("first", Duration::ZERO).await.unwrap();
    match store.lock("second", Duration::from_millis(300)).await {
        Err(Error::Busy(why)) => assert!(why.contains("store is locked by first"), "{why}"),
        other => panic!("a second holder got in: {other:?}"),
    }
    // Renewed while held: well past its two-second lifetime, it is still first's.
    tokio::time::sleep(Duration::from_secs(5)).await;
    match store.lock("second", Duration::ZERO).await {
        Err(Error::Busy(why)) => assert!(why.contains("store is locked by first"), "{why}"),
        other => panic!("a renewed lock was taken over: {other:?}"),
    }
    first.still_held().await.unwrap();
    first.release().await.unwrap();
    store.lock("second", Duration::ZERO).await.unwrap().release().await.unwrap();

    // A holder that stopped renewing long ago: of two taking it over at once, one gets it.
    put_lock(store, "gone", 1).await;
    let (a, b) = tokio::join!(store.lock("a", Duration::ZERO), store.lock("b", Duration::ZERO));
    let (winner, loser) = match (a, b) {
        (Ok(lock), Err(Error::Busy(why))) => (lock, why),
        (Err(Error::Busy(why)), Ok(lock)) => (lock, why),
        (a, b) => panic!("not exactly one took the lapsed lock over: {a:?} {b:?}"),
    };
    assert!(loser.contains("store is locked by a") || loser.contains("store is locked by b"), "{loser}");

    // The winner stalls past its lifetime and another takes the lock (here written as that
    // other would): the winner's next renewal says it lost, and its release leaves it be.
    put_lock(store, "third", u64::MAX / 2).await;
    match winner.still_held().await {
        Err(Error::Busy(why)) => assert!(why.contains("lock was taken from"), "{why}"),
        other => panic!("a holder did not notice its lock was taken: {other:?}"),
    }
    winner.release().await.unwrap();
    assert_eq!(lock_record(store).await["holder"], "third", "a release freed another holder's lock");
    put_lock(store, "third", 0).await;

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
    assert!(store.verify(&second.index.id, None).await.unwrap().ok(), "retention took content the kept backup uses");
    assert_eq!(lock_record(store).await["until_ms"], 0, "a lock was left held");
}

async fn put_lock(store: &BackupStore, holder: &str, until_ms: u64) {
    let record = serde_json::to_vec(&json!({"holder": holder, "token": holder, "until_ms": until_ms})).unwrap();
    store.inner().put(&object_store::path::Path::from("locks/backup"), record.into()).await.unwrap();
}

async fn lock_record(store: &BackupStore) -> serde_json::Value {
    let got = store.inner().get(&object_store::path::Path::from("locks/backup")).await.unwrap();
    serde_json::from_slice(&got.bytes().await.unwrap()).unwrap()
}

/// A gzip stream of 1 GiB of zeros, about a megabyte: made a mebibyte at a time (each
/// flushed to a byte boundary, the same compressed bytes standing for every mebibyte
/// after the first), never holding the gigabyte.
pub fn gzip_bomb() -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress};
    const MIB: usize = 1 << 20;
    let zeros = vec![0u8; MIB];
    let mut deflate = Compress::new(Compression::best(), false);
    let block = |deflate: &mut Compress| {
        let mut out = Vec::with_capacity(64 << 10);
        let before = deflate.total_in();
        while deflate.total_in() - before < MIB as u64 {
            let at = (deflate.total_in() - before) as usize;
            deflate.compress_vec(&zeros[at..], &mut out, FlushCompress::Sync).unwrap();
            out.reserve(64 << 10);
        }
        out
    };
    let first = block(&mut deflate);
    // Refers back at most 32 KiB, into zeros whichever mebibyte precedes it.
    let next = block(&mut deflate);
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    bomb.extend_from_slice(&first);
    let mut crc = Crc::new();
    crc.update(&zeros);
    for _ in 1..1024 {
        bomb.extend_from_slice(&next);
        crc.update(&zeros);
    }
    // A final, empty fixed-Huffman block; then the CRC and length of the gigabyte.
    bomb.extend_from_slice(&[0x03, 0x00]);
    bomb.extend_from_slice(&crc.sum().to_le_bytes());
    bomb.extend_from_slice(&(crc.amount()).to_le_bytes());
    bomb
}

/// Damage a restore must refuse before it applies anything, each in a fresh store (from
/// `stores`): an object whose bytes were changed, two sealed Secrets swapped between their
/// entries in the index, and an object replaced by a 1 GiB gzip bomb (the index rewritten
/// to its hash). `verify` names each.
pub async fn a_damaged_backup_is_refused_before_anything_is_applied(stores: [&BackupStore; 3]) {
    use drover_backup::Error;
    let source = source_cluster();
    source.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": "shop"}, "type": "Opaque", "data": {"token": "c2VjcmV0"}}));
    let [tampered, swapped, bombed] = stores;
    let refused = |store: &BackupStore, id: String| {
        let store = store.clone();
        async move {
            let target = Arc::new(MemoryCluster::new());
            let err = restore(target.clone(), &store, &restore_request(&id, &[])).await.unwrap_err();
            assert!(matches!(err, Error::Damaged(_)), "{err:?}");
            assert!(target.log().is_empty(), "applied before refusing: {:?}", target.log());
            assert!(err.to_string().contains("nothing was restored"), "{err}");
            err.to_string()
        }
    };
    let path = |hash: &str| object_store::path::Path::from(format!("objects/{hash}"));

    // Bytes changed in place: a Deployment scaled to nothing.
    let backup = create_backup(&source, std::slice::from_ref(tampered), &request(true), NOW).await.unwrap();
    let web = backup.index.objects.iter().find(|e| e.kind == "Deployment").unwrap().clone();
    let scaled = drover_backup::format::encode(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 0}}));
    tampered.inner().put(&path(&web.hash), scaled.into()).await.unwrap();
    let why = refused(tampered, backup.index.id.clone()).await;
    assert!(why.contains(&format!("corrupt Deployment shop/web ({})", web.hash)), "{why}");
    let report = tampered.verify(&backup.index.id, None).await.unwrap();
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, "Deployment shop/web");

    // Two sealed Secrets swapped: each blob is whole and hashes right, in the wrong entry.
    let backup = create_backup(&source, std::slice::from_ref(swapped), &request(true), NOW).await.unwrap();
    let mut index = swapped.index(&backup.index.id).await.unwrap();
    let at = |name: &str| index.objects.iter().position(|e| e.kind == "Secret" && e.name == name).unwrap();
    let (db, api) = (at("db"), at("api"));
    let (db_blob, api_blob) = (
        (index.objects[db].hash.clone(), index.objects[db].size),
        (index.objects[api].hash.clone(), index.objects[api].size),
    );
    (index.objects[db].hash, index.objects[db].size) = api_blob;
    (index.objects[api].hash, index.objects[api].size) = db_blob;
    swapped.put_index(&index).await.unwrap();
    let why = refused(swapped, backup.index.id.clone()).await;
    assert!(why.contains("unreadable Secret shop/db") && why.contains("unreadable Secret shop/api"), "{why}");
    assert!(why.contains("does not open with this key as this entry"), "{why}");
    let report = swapped.verify(&backup.index.id, Some(key())).await.unwrap();
    let named: Vec<&str> = report.unreadable.iter().map(|(label, _, _)| label.as_str()).collect();
    assert_eq!(named, ["Secret shop/api", "Secret shop/db"]);
    let unkeyed = swapped.verify(&backup.index.id, None).await.unwrap();
    assert_eq!(unkeyed.sealed_unopened, 2, "without the key a swap cannot be seen, and verify says so");

    // A gzip bomb, its hash and size written into the index in place of a ConfigMap's.
    let backup = create_backup(&source, std::slice::from_ref(bombed), &request(true), NOW).await.unwrap();
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "the bomb is small on disk: {} bytes", bomb.len());
    let hash = drover_backup::format::sha256_hex(&bomb);
    let size = bomb.len() as u64;
    bombed.inner().put(&path(&hash), bomb.into()).await.unwrap();
    let mut index = bombed.index(&backup.index.id).await.unwrap();
    let settings = index.objects.iter_mut().find(|e| e.kind == "ConfigMap").unwrap();
    (settings.hash, settings.size) = (hash.clone(), size);
    bombed.put_index(&index).await.unwrap();
    let why = refused(bombed, backup.index.id.clone()).await;
    assert!(why.contains(&format!("unreadable ConfigMap shop/settings ({hash})")), "{why}");
    assert!(why.contains("inflates to more than 67108864 bytes"), "{why}");
    let report = bombed.verify(&backup.index.id, None).await.unwrap();
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].0, "ConfigMap shop/settings");
}
