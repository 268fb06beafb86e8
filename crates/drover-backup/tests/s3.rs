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

    let damaged = [
        &moto.store("east", "backups-tampered").await,
        &moto.store("east", "backups-swapped").await,
        &moto.store("east", "backups-bombed").await,
    ];
    support::a_damaged_backup_is_refused_before_anything_is_applied(damaged).await;

    // The lock is S3's conditional writes (If-None-Match: * to create, If-Match: ETag to
    // renew, take over or release), which moto honours as S3 does.
    let locked = moto.store("east", "backups-locked").await;
    support::the_store_lock_lets_one_backup_in_at_a_time(&locked).await;
}
