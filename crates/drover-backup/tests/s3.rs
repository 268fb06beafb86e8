//! Backup and restore against a real S3-compatible server (moto), one bucket per region.

mod support;

use support::moto::Moto;

#[tokio::test]
async fn backup_and_restore_through_s3() {
    let moto = Moto::start();
    let (east, west) = (moto.store("east", "backups-east").await, moto.store("west", "backups-west").await);
    support::round_trip_with_namespace_mapping(&east, &west).await;

    let unchanged = moto.store("east", "backups-unchanged").await;
    support::unchanged_backup_writes_nothing_new(&unchanged).await;

    let corrupted = moto.store("east", "backups-corrupted").await;
    support::verify_detects_corruption(&corrupted).await;

    // The lock is S3's create-if-absent (If-None-Match: *), which moto honours as S3 does.
    let locked = moto.store("east", "backups-locked").await;
    support::the_store_lock_lets_one_backup_in_at_a_time(&locked).await;
}
