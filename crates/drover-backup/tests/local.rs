//! Backup and restore against local-directory stores.

mod support;

use drover_backup::BackupStore;

fn store(dir: &tempfile::TempDir, name: &str) -> BackupStore {
    BackupStore::local(name, &dir.path().join(name)).unwrap()
}

#[tokio::test]
async fn round_trip_with_namespace_mapping() {
    let dir = tempfile::tempdir().unwrap();
    support::round_trip_with_namespace_mapping(&store(&dir, "east"), &store(&dir, "west")).await;
}

#[tokio::test]
async fn unchanged_backup_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    support::unchanged_backup_writes_nothing_new(&store(&dir, "east")).await;
}

#[tokio::test]
async fn verify_detects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    support::verify_detects_corruption(&store(&dir, "east")).await;
}

/// A custom resource whose CRD never becomes Established is not applied (and is reported
/// failed, so a rerun tries it again); everything else is restored.
#[tokio::test]
async fn custom_resources_wait_for_their_crd() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::{Outcome, create_backup, restore};
    use std::sync::Arc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let east = store(&dir, "east");
    let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let backup = create_backup(&support::source_cluster(), std::slice::from_ref(&east), &support::request(true), now)
        .await
        .unwrap();
    let target = Arc::new(MemoryCluster::with_establish_after(u32::MAX));
    let mut request = support::restore_request(&backup.index.id, &[]);
    request.crd_timeout = Duration::from_millis(200);
    let report = restore(target.clone(), &east, &request).await.unwrap();
    let failed = report.failed();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "Widget shop/blue");
    assert!(matches!(&failed[0].1, Outcome::Failed(why) if why.contains("not Established")));
    assert!(!target.log().iter().any(|l| l.contains("Widget")), "{:#?}", target.log());
    assert!(target.object("deployments", "shop", "web").is_some());

    // Once the CRD is Established, a rerun applies only what is left.
    target.establish_all();
    let rerun = restore(target.clone(), &east, &request).await.unwrap();
    assert!(rerun.failed().is_empty(), "{:?}", rerun.failed());
    assert_eq!(rerun.count(&Outcome::DoneBefore), 9);
    assert_eq!(rerun.count(&Outcome::Created), 1);
    assert!(target.object("widgets", "shop", "blue").is_some());
}
