//! An etcd member that accepts the connection and never answers (a member stopped with
//! SIGSTOP, a half-open link): the journal's writes during a run end with an error that
//! names the member and what to check, instead of holding the run.

#[path = "../../drover-adapters/tests/support/silent.rs"]
mod silent;

use std::time::Duration;

use drover_core::engine::plan_run;
use drover_core::journal::Journal;
use drover_core::run::RunKind;
use drover_core::testing::scenarios::{observe, two_region_plan};
use drover_core::testing::{FakeWorld, MemoryJournal};
use drover_store::{EtcdAccess, EtcdClient, EtcdJournal, etcd_options};

/// Hang guard only.
async fn guard<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

#[tokio::test]
async fn a_journal_write_to_an_etcd_member_that_never_answers_ends_with_what_to_check() {
    let member = silent::silent_server().await;
    let access = EtcdAccess::plain([member.to_string()]);
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let header =
        plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &MemoryJournal::default(), &world).await, "test")
            .unwrap();

    let options = etcd_options(Duration::from_millis(300)).with_timeout(Duration::from_millis(300));
    let client = guard(EtcdClient::connect(&access, options)).await.unwrap();
    let journal = EtcdJournal::with_client(client, "/drover/shop");
    let said = format!(
        "etcd http://{member}: read: no answer within the request's timeout: check that the members are up and answer ('etcdctl endpoint health' from this host)"
    );
    let err = guard(journal.begin(&header)).await.unwrap_err().to_string();
    assert!(err.contains(&said), "{err}");
    let err = guard(journal.compare_and_swap_epoch(0, 1)).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("etcd http://{member}: ")) && err.contains("no answer within the request's timeout"),
        "{err}"
    );
}
