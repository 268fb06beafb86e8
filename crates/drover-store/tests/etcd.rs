//! The journal contract and the engine's crash and idempotence proofs against a
//! real etcd server (Debian `etcd-server`, started here on free ports), plus
//! what etcd adds: two processes racing for the active-run slot, and a fence
//! that stops a deposed leader's writes.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_core::StoreError;
use drover_core::journal::Journal;
use drover_core::run::{Record, RunKind, RunState};
use drover_core::testing::FakeWorld;
use drover_core::testing::scenarios::{
    an_ended_run_takes_no_more_records, an_illegal_record_order_is_refused, crash_after_every_record,
    every_step_twice_is_once, observe, two_region_plan,
};
use drover_store::{EtcdJournal, Fence};

/// One etcd member on free loopback ports, in a temp dir; killed on drop.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    async fn start() -> Etcd {
        let etcd = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| std::path::Path::new(p).exists());
        let etcd = etcd.expect("etcd not found: these tests need Debian's etcd-server (scripts/setup.sh installs it)");
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let etcd = Etcd { child, endpoint, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = etcd_client::Client::connect([etcd.endpoint.as_str()], None).await
                && client.kv_client().get("ping", None).await.is_ok()
            {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd did not start within 30s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kv(&self) -> etcd_client::KvClient {
        etcd_client::Client::connect([self.endpoint.as_str()], None).await.unwrap().kv_client()
    }
}

#[tokio::test]
async fn failover_crash_after_every_record_resumes_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.kv().await;
    crash_after_every_record(RunKind::Failover, move |case| {
        Arc::new(EtcdJournal::with_client(kv.clone(), "test", &format!("/t/failover/{case}"))) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn switchover_crash_after_every_record_resumes_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.kv().await;
    crash_after_every_record(RunKind::Switchover, move |case| {
        Arc::new(EtcdJournal::with_client(kv.clone(), "test", &format!("/t/switchover/{case}"))) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn reprotect_and_failback_crash_after_every_record_resume_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.kv().await;
    for kind in [RunKind::Reprotect, RunKind::Failback] {
        let kv = kv.clone();
        crash_after_every_record(kind, move |case| {
            Arc::new(EtcdJournal::with_client(kv.clone(), "test", &format!("/t/{}/{case}", kind.as_str())))
                as Arc<dyn Journal>
        })
        .await;
    }
}

#[tokio::test]
async fn every_step_twice_is_once_on_etcd_and_ended_runs_stay_ended_and_illegal_orders_are_refused() {
    let etcd = Etcd::start().await;
    let kv = etcd.kv().await;
    let n = AtomicU64::new(0);
    let kv2 = kv.clone();
    every_step_twice_is_once(move || {
        let case = n.fetch_add(1, Ordering::SeqCst);
        Arc::new(EtcdJournal::with_client(kv2.clone(), "test", &format!("/t/twice/{case}"))) as Arc<dyn Journal>
    })
    .await;
    an_ended_run_takes_no_more_records(&EtcdJournal::with_client(kv.clone(), "test", "/t/ended")).await;
    an_illegal_record_order_is_refused(&EtcdJournal::with_client(kv, "test", "/t/order")).await;
}

/// Two processes (two connections) start runs at the same moment: exactly one wins the slot.
#[tokio::test]
async fn of_two_racing_starts_exactly_one_wins_and_the_epoch_is_compare_and_swap() {
    let etcd = Etcd::start().await;
    let a = EtcdJournal::connect(std::slice::from_ref(&etcd.endpoint), "/t/race").await.unwrap();
    let b = EtcdJournal::connect(std::slice::from_ref(&etcd.endpoint), "/t/race").await.unwrap();
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, &a, &world).await;
    let first = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "a").unwrap();
    let mut second = first.clone();
    second.id = drover_core::RunId("r2-other".into());
    let (ra, rb) = tokio::join!(a.begin(&first), b.begin(&second));
    let wins = [ra.is_ok(), rb.is_ok()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "exactly one start wins: {ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(StoreError::ActiveRun { .. })), "the other is told which run is active");
    assert_eq!(b.runs().await.unwrap().len(), 1, "the losing start left nothing behind");

    assert_eq!(a.compare_and_swap_epoch(0, 1).await.unwrap(), Ok(()));
    assert_eq!(b.compare_and_swap_epoch(0, 1).await.unwrap(), Err(1), "a stale swap sees the newer epoch");
    assert_eq!(b.epoch().await.unwrap(), 1);
}

/// A journal fenced on a leader key writes nothing once another process holds the key.
#[tokio::test]
async fn a_deposed_leader_cannot_write() {
    let etcd = Etcd::start().await;
    let mut kv = etcd.kv().await;
    let leader = "/t/fence/leader";
    let won = kv.put(leader, "east", None).await.unwrap();
    let revision = won.header().unwrap().revision();
    let journal = EtcdJournal::with_client(kv.clone(), "test", "/t/fence")
        .fenced(Fence { key: leader.into(), create_revision: revision });
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let header =
        drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "t")
            .unwrap();
    journal.begin(&header).await.expect("the leader writes");
    // The key is lost (its lease ran out) and another drover wins it.
    kv.delete(leader, None).await.unwrap();
    kv.put(leader, "west", None).await.unwrap();
    let first_step = Record::StepIntent { step: 0, kind: header.steps[0].clone() };
    let refused = journal.append(&header.id, first_step).await;
    let message = refused.expect_err("a deposed leader must not write").to_string();
    assert!(message.contains("no longer holds the leader key /t/fence/leader"), "{message}");
    let swapped = journal.compare_and_swap_epoch(0, 5).await;
    assert!(!matches!(swapped, Ok(Ok(()))), "a deposed leader must not raise the epoch: {swapped:?}");
    let unfenced = EtcdJournal::with_client(kv, "test", "/t/fence");
    assert_eq!(unfenced.entries(&header.id).await.unwrap().len(), 1, "nothing was added after the fence broke");
    assert_eq!(unfenced.summary(&header.id).await.unwrap().state, RunState::Running);
    assert_eq!(unfenced.epoch().await.unwrap(), 0);
}

/// The leader dies (its lease is no longer kept alive): another candidate takes
/// over within about one TTL, and the dead leader's fenced writes are refused.
#[tokio::test]
async fn when_the_leader_dies_another_takes_over_and_the_old_one_cannot_write() {
    let etcd = Etcd::start().await;
    let endpoints = vec![etcd.endpoint.clone()];
    let east = drover_store::campaign(&endpoints, "/t/leader", "east", 2).await.expect("east leads");
    let east_journal = EtcdJournal::connect(&endpoints, "/t/ha").await.unwrap().fenced(east.fence.clone());
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let header = drover_core::engine::plan_run(
        &plan,
        RunKind::Failover,
        "west",
        &observe(&plan, &east_journal, &world).await,
        "t",
    )
    .unwrap();
    east_journal.begin(&header).await.expect("the leader writes");

    let candidate = tokio::spawn({
        let endpoints = endpoints.clone();
        async move { drover_store::campaign(&endpoints, "/t/leader", "west", 2).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!candidate.is_finished(), "west must not lead while east's lease lives");

    // East's process dies: nothing keeps its lease alive any more.
    let east_key = east.fence.key.clone();
    let died = Instant::now();
    drop(east);
    let west = tokio::time::timeout(Duration::from_secs(30), candidate).await.expect("west never took over").unwrap();
    let west = west.expect("west leads");
    let takeover = died.elapsed();
    eprintln!("leader takeover after the leader died: {} ms (lease ttl 2 s)", takeover.as_millis());
    assert_ne!(west.fence.key, east_key, "west leads under its own key");

    let first_step = || Record::StepIntent { step: 0, kind: header.steps[0].clone() };
    let late = east_journal.append(&header.id, first_step()).await;
    assert!(late.is_err_and(|e| e.to_string().contains("no longer holds the leader key")), "the old leader wrote");
    let west_journal = EtcdJournal::connect(&endpoints, "/t/ha").await.unwrap().fenced(west.fence.clone());
    west_journal.append(&header.id, first_step()).await.expect("the new leader drives the run on");
}

/// A vantage's report lives under a lease of its own: while it publishes, the others
/// read it; once it falls silent (dead, or cut off from etcd), etcd deletes it within
/// about one TTL, even though the report's own expiry lies far ahead.
#[tokio::test]
async fn a_silent_vantages_report_is_deleted_by_etcd_and_a_forged_one_is_no_vote() {
    use drover_core::vantage::{ReportRules, VantageExchange, VantageReport};
    use drover_store::EtcdVantages;
    let etcd = Etcd::start().await;
    let endpoints = [etcd.endpoint.clone()];
    let ttl = Duration::from_secs(2);
    // No peer key: the weaker rules of a plan without `vantages`.
    let rules = std::sync::Arc::new(ReportRules { plan: "t".into(), names: vec![], keys: None, ttl_ms: 3_000 });
    let east = EtcdVantages::connect(&endpoints, "/t", "east", ttl, rules.clone()).await.unwrap();
    let west = EtcdVantages::connect(&endpoints, "/t", "west", ttl, rules).await.unwrap();
    let now = drover_core::clock::now_ms();
    let report = VantageReport {
        vantage: "east".into(),
        at_ms: now,
        expires_ms: now + 3_600_000,
        regions: Default::default(),
        signature: None,
    };
    // Published for a while, past several lease renewals: always there.
    for _ in 0..8 {
        east.publish(&report).await;
        let seen: Vec<String> = west.others().await.into_iter().map(|r| r.vantage).collect();
        assert_eq!(seen, ["east"], "west reads east's report while east publishes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(east);
    let silent = Instant::now();
    let mut kv = etcd.kv().await;
    loop {
        let left = kv.get("/t/vantages/east", None).await.unwrap().kvs().len();
        if left == 0 {
            break;
        }
        assert!(silent.elapsed() < Duration::from_secs(30), "east's report outlived its lease by far");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(west.others().await.is_empty(), "west no longer sees east");
    eprintln!("east's report was deleted {} ms after east fell silent (lease TTL 2 s)", silent.elapsed().as_millis());

    // Forged reports: under a key that names another vantage, or naming one that is not
    // its key's, a report is no vote.
    let forged = |name: &str| serde_json::to_string(&VantageReport { vantage: name.into(), ..report.clone() }).unwrap();
    kv.put("/t/vantages/east", forged("aaa-fake"), None).await.unwrap();
    kv.put("/t/vantages/zzz", forged("east"), None).await.unwrap();
    assert!(west.others().await.is_empty(), "a forged report voted");
    kv.put("/t/vantages/east", forged("east"), None).await.unwrap();
    let seen: Vec<String> = west.others().await.into_iter().map(|r| r.vantage).collect();
    assert_eq!(seen, ["east"], "a report under its own key counts");
}

/// With the plan's peer key, a report written straight into etcd counts only when signed
/// with that key, recently, under its own key and a name the plan lists: the others are no
/// vote, each counted by why and shown as a problem under its key's name.
#[tokio::test]
async fn with_a_peer_key_a_report_forged_into_etcd_is_no_vote_and_shows_as_a_problem() {
    use drover_core::vantage::{Dropped, PeerKeys, ReportRules, VantageExchange, VantageReport};
    use drover_store::EtcdVantages;
    let etcd = Etcd::start().await;
    let endpoints = [etcd.endpoint.clone()];
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let rules = |key: Vec<u8>| ReportRules {
        plan: "shop".into(),
        names: vec!["east".into(), "west".into(), "witness".into()],
        keys: Some(PeerKeys::new(key, None)),
        ttl_ms: 3_000,
    };
    let ours = rules(key.clone());
    let west =
        EtcdVantages::connect(&endpoints, "/k", "west", Duration::from_secs(2), std::sync::Arc::new(ours.clone()))
            .await
            .unwrap();
    let mut kv = etcd.kv().await;
    let report = |name: &str, at_ms: u64| VantageReport {
        vantage: name.into(),
        at_ms,
        expires_ms: u64::MAX,
        regions: Default::default(),
        signature: None,
    };
    let sealed = |rules: &ReportRules, name: &str, at_ms: u64| {
        let mut r = report(name, at_ms);
        rules.seal(&mut r);
        serde_json::to_string(&r).unwrap()
    };
    let now = drover_core::clock::now_ms();
    let theirs = rules(b"not our key, but just as long as it".to_vec());
    let unlisted = ReportRules { names: vec![], ..ours.clone() };
    for (name, value, why) in [
        ("east", serde_json::to_string(&report("east", now)).unwrap(), Dropped::Unsigned),
        ("east", sealed(&theirs, "east", now), Dropped::BadSignature),
        ("east", sealed(&ours, "east", now - 60_000), Dropped::Stale),
        ("aaa-fake", sealed(&unlisted, "aaa-fake", now), Dropped::UnknownName),
        ("east", sealed(&ours, "witness", now), Dropped::WrongName),
    ] {
        kv.put(format!("/k/vantages/{name}"), value, None).await.unwrap();
        let seen: Vec<String> = west.others().await.into_iter().map(|r| r.vantage).collect();
        assert!(seen.is_empty(), "{why:?}: a forged report voted");
        assert_eq!(west.dropped().get(&why), Some(&1), "{why:?} is counted");
        let problem = west.problems().get(&format!("vantage {name}")).cloned().unwrap_or_default();
        assert!(problem.contains("not counted"), "{why:?}: {problem:?}");
        kv.delete(format!("/k/vantages/{name}"), None).await.unwrap();
    }
    kv.put("/k/vantages/east", sealed(&ours, "east", drover_core::clock::now_ms()), None).await.unwrap();
    let seen = west.others().await;
    assert_eq!(seen.iter().map(|r| r.vantage.as_str()).collect::<Vec<_>>(), ["east"], "a signed report counts");
    assert!(seen[0].expires_ms <= drover_core::clock::now_ms() + 3_000, "trusted one TTL, not the u64::MAX it claims");
    assert!(west.problems().is_empty(), "{:?}", west.problems());
}
