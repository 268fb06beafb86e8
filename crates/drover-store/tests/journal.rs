//! The engine's crash and idempotence proofs, against the real redb file:
//! each "new process" reopens the journal from disk.

use std::sync::Arc;

use drover_core::StoreError;
use drover_core::journal::Journal;
use drover_core::run::{Record, RunKind, RunState};
use drover_core::testing::FakeWorld;
use drover_core::testing::scenarios::{
    an_ended_run_takes_no_more_records, an_illegal_record_order_is_refused, crash_after_every_record,
    every_step_twice_is_once, observe, one_driver_per_run, pages_list_every_run_once_newest_first,
    retention_trims_to_keep, two_region_plan,
};
use drover_store::RedbJournal;

#[tokio::test]
async fn failover_crash_after_every_record_resumes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    crash_after_every_record(RunKind::Failover, move |case| {
        Arc::new(RedbJournal::open(&root.join(case.to_string())).unwrap()) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn switchover_crash_after_every_record_resumes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    crash_after_every_record(RunKind::Switchover, move |case| {
        Arc::new(RedbJournal::open(&root.join(case.to_string())).unwrap()) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn every_step_twice_is_once_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let n = std::sync::atomic::AtomicU64::new(0);
    every_step_twice_is_once(move || {
        let case = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Arc::new(RedbJournal::open(&root.join(case.to_string())).unwrap()) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn journal_survives_reopen_and_refuses_a_second_active_run() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let header = {
        let journal = RedbJournal::open(dir.path()).unwrap();
        let observed = observe(&plan, &journal, &world).await;
        let header = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
        journal.begin(&header).await.unwrap();
        journal.append(&header.id, Record::StepIntent { step: 0, kind: header.steps[0].clone() }).await.unwrap();
        assert_eq!(journal.compare_and_swap_epoch(0, 1).await.unwrap(), Ok(()));
        assert_eq!(journal.compare_and_swap_epoch(0, 1).await.unwrap(), Err(1));
        header
    };
    let journal = RedbJournal::open(dir.path()).unwrap();
    let runs = drover_core::history::every_run(&journal).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Running);
    assert_eq!(journal.epoch().await.unwrap(), 1);
    let mut other = header.clone();
    other.id = drover_core::RunId("r2".into());
    match journal.begin(&other).await {
        Err(StoreError::ActiveRun { active }) => assert_eq!(active, header.id.0),
        other => panic!("expected ActiveRun, got {other:?}"),
    }
    let ended = drover_core::testing::scenarios::engine(&plan, &journal, &world)
        .abort(&header.id, "operator gave up", false)
        .await
        .unwrap();
    assert_eq!(ended.state, RunState::Aborted);
    journal.begin(&other).await.expect("a new run may start once the old one is aborted");
}

#[tokio::test]
async fn an_illegal_record_order_is_refused_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    an_illegal_record_order_is_refused(&RedbJournal::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn an_ended_run_takes_no_more_records_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    an_ended_run_takes_no_more_records(&RedbJournal::open(dir.path()).unwrap()).await;
}

/// `drover status` and `drover runs` open the journal while a run holds it open.
#[tokio::test]
async fn two_handles_share_one_state_directory_and_see_each_others_runs() {
    let dir = tempfile::tempdir().unwrap();
    let running = RedbJournal::open(dir.path()).unwrap();
    let looking = RedbJournal::open(dir.path()).expect("a second handle opens beside the first");
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, &running, &world).await;
    let header = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    running.begin(&header).await.unwrap();
    assert_eq!(looking.active().await.unwrap().map(|r| r.header.id), Some(header.id.clone()));
    let second = looking.begin(&header).await;
    assert!(matches!(second, Err(drover_core::StoreError::ActiveRun { .. })), "{second:?}");
}

/// Two handles on one journal file (a daemon and a CLI beside it): one driver per run.
#[tokio::test]
async fn one_driver_per_run_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let a = RedbJournal::open(dir.path()).unwrap();
    let b = RedbJournal::open(dir.path()).unwrap();
    one_driver_per_run(&a, &b).await;
}

#[tokio::test]
async fn pages_and_retention_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    pages_list_every_run_once_newest_first(&RedbJournal::open(&dir.path().join("pages")).unwrap()).await;
    retention_trims_to_keep(&RedbJournal::open(&dir.path().join("keep")).unwrap()).await;
}

/// A journal file written before the run index: opening it indexes every run and points
/// at the active one, so pages and the active-run rule work on it at once.
#[tokio::test]
async fn a_journal_from_before_the_run_index_is_indexed_when_opened() {
    use drover_core::history::every_run;
    use redb::{ReadableDatabase, TableDefinition};
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let journal = RedbJournal::open(dir.path()).unwrap();
        let ids = drover_core::testing::scenarios::ended_runs(&journal, 5).await;
        let mut header = journal.summary(&ids[4]).await.unwrap().header;
        header.id = drover_core::RunId("r-active".into());
        journal.begin(&header).await.unwrap();
        ids
    };
    {
        // Back to the old layout: no index, no pointer, no mark.
        let db = redb::Database::open(dir.path().join("journal.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.delete_table(TableDefinition::<u64, &str>::new("starts")).unwrap();
        tx.delete_table(TableDefinition::<&str, &str>::new("pointers")).unwrap();
        tx.open_table(TableDefinition::<&str, u64>::new("meta")).unwrap().remove("indexed").unwrap();
        tx.commit().unwrap();
        assert!(db.begin_read().unwrap().open_table(TableDefinition::<u64, &str>::new("starts")).is_err());
    }
    let journal = RedbJournal::open(dir.path()).unwrap();
    let runs: Vec<String> = every_run(&journal).await.unwrap().into_iter().map(|r| r.header.id.0).collect();
    let mut expected: Vec<String> = ids.iter().rev().map(|r| r.0.clone()).collect();
    expected.insert(0, "r-active".into());
    assert_eq!(runs, expected);
    assert_eq!(journal.active().await.unwrap().map(|r| r.header.id.0), Some("r-active".into()));
    let mut other = journal.summary(&ids[0]).await.unwrap().header;
    other.id = drover_core::RunId("r-other".into());
    assert!(matches!(journal.begin(&other).await, Err(StoreError::ActiveRun { .. })));
}

/// A drive that panicked or was dropped (its held run never released) does not keep the
/// run: this process's next driver takes it, where before it was refused until a restart.
#[tokio::test]
async fn a_held_run_dropped_unreleased_is_free_for_the_next_driver() {
    let dir = tempfile::tempdir().unwrap();
    let journal = RedbJournal::open(dir.path()).unwrap();
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let run = drover_core::RunId("r-dropped".into());
    let first = drover_core::testing::scenarios::engine(&plan, &journal, &world).with_driver("the API");
    let held = first.hold(&run).await.unwrap();
    let second = drover_core::testing::scenarios::engine(&plan, &journal, &world).with_driver("take-over");
    assert!(matches!(second.hold(&run).await, Err(drover_core::engine::EngineError::Store(StoreError::Driven { .. }))));
    drop(held);
    second.hold(&run).await.expect("a dropped hold lets the run go");
}

#[tokio::test]
async fn drills_are_journaled_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    drover_core::testing::scenarios::drills_are_journaled(&RedbJournal::open(&dir.path().join("drills")).unwrap())
        .await;
}

/// A drill that crashed with its fault in place is found by the next process that opens
/// the file, with what undoing the fault needs.
#[tokio::test]
async fn an_unfinished_drill_survives_the_process() {
    use drover_core::drill_log::DrillRecord;
    let dir = tempfile::tempdir().unwrap();
    let header = drover_core::testing::scenarios::drill_header("d1-crash");
    {
        let journal = RedbJournal::open(dir.path()).unwrap();
        journal.begin_drill(&header).await.unwrap();
        let state = serde_json::json!({"lab": "/tmp/lab", "fault": "blackout:east"});
        journal.append_drill(&header.id, DrillRecord::FaultCaptured { state }).await.unwrap();
    }
    let journal = RedbJournal::open(dir.path()).unwrap();
    let found = journal.active_drill().await.unwrap().expect("the unfinished drill");
    assert_eq!(found.header, header);
    assert!(found.needs_undo(), "captured but not known to be injected: the fault may be in place");
    assert_eq!(found.fault_state.unwrap()["fault"], "blackout:east");
}
