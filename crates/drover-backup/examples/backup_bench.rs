//! Backs up and restores many small ConfigMaps and Secrets against the in-memory API-server
//! stand-in and a local-directory store, and prints objects per second each way.
//! Run by bench/k8s-backup.sh; `backup_bench [COUNT] [DIR]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_backup::standin::{MemoryCluster, bench_object};
use drover_backup::{BackupRequest, BackupStore, Existing, RestoreRequest, SecretKey, create_backup, restore};
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|n| n.parse().expect("COUNT is a number")).unwrap_or(30_000);
    let dir = tempfile::tempdir().unwrap();
    let path = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().to_owned());
    let store = BackupStore::local("east", &path.join("store")).unwrap();
    let key = Arc::new(SecretKey::from_material(&[42u8; 32]).unwrap());

    let source = MemoryCluster::new();
    source.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}));
    for i in 0..count {
        source.seed(bench_object(i));
    }
    let request = BackupRequest {
        plan: "bench".into(),
        region: "east".into(),
        namespaces: vec![],
        selector: None,
        secrets: Some(key.clone()),
        progress: None,
    };

    let started = Instant::now();
    let backup =
        create_backup(&source, std::slice::from_ref(&store), &request, time::OffsetDateTime::now_utc()).await.unwrap();
    let took = started.elapsed();
    let objects = backup.index.objects.len();
    report("backup", objects, took);

    let started = Instant::now();
    let again =
        create_backup(&source, std::slice::from_ref(&store), &request, time::OffsetDateTime::now_utc()).await.unwrap();
    report("backup, unchanged", objects, started.elapsed());
    assert_eq!(again.written[0].1, 0);

    let target = Arc::new(MemoryCluster::new());
    let started = Instant::now();
    let restored = restore(
        target,
        &store,
        &RestoreRequest {
            backup: backup.index.id.clone(),
            target: "west".into(),
            namespace_map: Default::default(),
            existing: Existing::Skip,
            key: Some(key),
            crd_timeout: Duration::from_secs(10),
            progress: None,
        },
    )
    .await
    .unwrap();
    assert!(restored.failed().is_empty());
    report("restore", restored.objects.len(), started.elapsed());
}

fn report(what: &str, objects: usize, took: Duration) {
    println!(
        "{what:<18} {objects:>6} objects in {:>6.2}s: {:>8.0} objects/s",
        took.as_secs_f64(),
        objects as f64 / took.as_secs_f64()
    );
}
