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

/// Objects already in the target are left alone, or updated when asked (replaced with the
/// current resourceVersion); one that already matches the backup is left unchanged.
#[tokio::test]
async fn existing_objects_are_skipped_or_updated() {
    use drover_backup::standin::MemoryCluster;
    use drover_backup::{ClusterApi, Existing, Outcome, create_backup, restore};
    use serde_json::json;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let east = store(&dir, "east");
    let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let backup = create_backup(&support::source_cluster(), std::slice::from_ref(&east), &support::request(true), now)
        .await
        .unwrap();
    let target = || {
        let c = MemoryCluster::new();
        c.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        c.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}, "data": {"mode": "local edit"}}));
        Arc::new(c)
    };
    let outcome = |report: &drover_backup::RestoreReport, label: &str| {
        report.objects.iter().find(|(l, _)| l == label).map(|(_, o)| o.clone()).unwrap()
    };

    let skipping = target();
    let mut request = support::restore_request(&backup.index.id, &[]);
    request.target = "skip".into();
    let report = restore(skipping.clone(), &east, &request).await.unwrap();
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    assert_eq!(outcome(&report, "ConfigMap shop/settings"), Outcome::Unchanged);
    assert_eq!(outcome(&report, "Namespace shop"), Outcome::Unchanged);
    assert_eq!(skipping.object("configmaps", "shop", "settings").unwrap()["data"]["mode"], "local edit");

    let updating = target();
    request.target = "update".into();
    request.existing = Existing::Update;
    let report = restore(updating.clone(), &east, &request).await.unwrap();
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    assert_eq!(outcome(&report, "ConfigMap shop/settings"), Outcome::Updated);
    assert_eq!(outcome(&report, "Namespace shop"), Outcome::Unchanged, "it already matched the backup");
    assert_eq!(updating.object("configmaps", "shop", "settings").unwrap()["data"]["mode"], "live");
    assert!(updating.log().contains(&"replace ConfigMap shop/settings".to_string()), "{:#?}", updating.log());
    let kinds = updating.resource_kinds().await.unwrap();
    assert!(kinds.iter().any(|k| k.kind == "Widget"), "the restored CRD serves its kind");
}

/// A cluster whose discovery left an API group out: the backup's index says so.
struct MissingMetrics(drover_backup::standin::MemoryCluster);

#[async_trait::async_trait]
impl drover_backup::ClusterApi for MissingMetrics {
    async fn resource_kinds(&self) -> Result<Vec<drover_backup::ResourceKind>, drover_backup::ClusterError> {
        self.0.resource_kinds().await
    }
    fn skipped_groups(&self) -> Vec<String> {
        vec!["metrics.k8s.io/v1beta1: 503 ServiceUnavailable".into()]
    }
    async fn list(
        &self,
        kind: &drover_backup::ResourceKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, drover_backup::ClusterError> {
        self.0.list(kind, namespace, selector).await
    }
    async fn get(
        &self,
        kind: &drover_backup::ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, drover_backup::ClusterError> {
        self.0.get(kind, namespace, name).await
    }
    async fn create(
        &self,
        kind: &drover_backup::ResourceKind,
        object: serde_json::Value,
    ) -> Result<serde_json::Value, drover_backup::ClusterError> {
        self.0.create(kind, object).await
    }
    async fn replace(
        &self,
        kind: &drover_backup::ResourceKind,
        object: serde_json::Value,
    ) -> Result<serde_json::Value, drover_backup::ClusterError> {
        self.0.replace(kind, object).await
    }
    async fn crd_established(&self, name: &str) -> Result<bool, drover_backup::ClusterError> {
        self.0.crd_established(name).await
    }
}

#[tokio::test]
async fn a_group_discovery_left_out_is_named_in_the_index() {
    use drover_backup::ClusterApi;
    let dir = tempfile::tempdir().unwrap();
    let east = store(&dir, "east");
    let cluster = MissingMetrics(support::source_cluster());
    assert!(support::source_cluster().skipped_groups().is_empty(), "the stand-in skips nothing");
    let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let report = drover_backup::create_backup(&cluster, std::slice::from_ref(&east), &support::request(false), now)
        .await
        .unwrap();
    let index = east.index(&report.index.id).await.unwrap();
    assert_eq!(index.skipped_groups, ["metrics.k8s.io/v1beta1: 503 ServiceUnavailable"]);
    assert!(!index.objects.is_empty(), "the rest is backed up");
}

#[tokio::test]
async fn the_store_lock_lets_one_backup_in_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    support::the_store_lock_lets_one_backup_in_at_a_time(&store(&dir, "east")).await;
}

#[tokio::test]
async fn a_damaged_backup_is_refused_before_anything_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [store(&dir, "tampered"), store(&dir, "swapped"), store(&dir, "bombed")];
    support::a_damaged_backup_is_refused_before_anything_is_applied([&stores[0], &stores[1], &stores[2]]).await;
}

#[test]
fn the_gzip_bomb_is_a_whole_gibibyte() {
    // The test above is only as good as its bomb: it inflates, read to the end, to 1 GiB.
    let bomb = support::gzip_bomb();
    let inflated = std::io::copy(&mut flate2::read::GzDecoder::new(&bomb[..]), &mut std::io::sink()).unwrap();
    assert_eq!(inflated, 1 << 30);
}

#[tokio::test]
async fn retention_after_a_failover_keeps_the_lost_regions_newest_backups() {
    use drover_backup::backup::apply_retention;
    let dir = tempfile::tempdir().unwrap();
    let west = store(&dir, "west");
    let keep = drover_backup::Keep { last: 2, daily: 0 };
    let cluster = support::source_cluster();
    let start = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let hour = std::time::Duration::from_secs(3600);
    // East, the primary, backed up (to west's store too) every hour until it was lost.
    for n in 0..3 {
        drover_backup::create_backup(&cluster, std::slice::from_ref(&west), &support::request(false), start + hour * n)
            .await
            .unwrap();
        apply_retention(&west, keep).await.unwrap();
    }
    // West, promoted, takes five scheduled backups of its own, retention after each.
    let west_request = drover_backup::BackupRequest { region: "west".into(), ..support::request(false) };
    for n in 3..8 {
        drover_backup::create_backup(&cluster, std::slice::from_ref(&west), &west_request, start + hour * n)
            .await
            .unwrap();
        apply_retention(&west, keep).await.unwrap();
    }
    assert_eq!(
        west.backup_ids().await.unwrap(),
        [
            "20261125-110000-000-east",
            "20261125-120000-000-east",
            "20261125-160000-000-west",
            "20261125-170000-000-west"
        ]
    );
    for id in ["20261125-110000-000-east", "20261125-120000-000-east"] {
        assert!(west.verify(id, None).await.unwrap().ok(), "{id} lost content to retention");
    }
}

#[tokio::test]
async fn a_format_1_backup_still_restores_and_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let east = store(&dir, "east");
    let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
    let backup = drover_backup::create_backup(
        &support::source_cluster(),
        std::slice::from_ref(&east),
        &support::request(false),
        now,
    )
    .await
    .unwrap();
    let mut index = backup.index.clone();
    index.format = 1;
    east.put_index(&index).await.unwrap();
    let target = std::sync::Arc::new(drover_backup::standin::MemoryCluster::with_establish_after(1));
    let restored = drover_backup::restore(target, &east, &support::restore_request(&index.id, &[])).await.unwrap();
    assert!(restored.failed().is_empty(), "{:?}", restored.failed());
    assert_eq!(restored.count(&drover_backup::Outcome::Created), index.objects.len());

    index.format = drover_backup::format::FORMAT + 1;
    east.put_index(&index).await.unwrap();
    let err = east.index(&index.id).await.unwrap_err().to_string();
    assert!(err.contains("newer than this drover reads"), "{err}");
}
