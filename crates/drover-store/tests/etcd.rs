//! The journal contract and the engine's crash and idempotence proofs against a
//! real etcd server (Debian `etcd-server`, started here on free ports), plus
//! what etcd adds: two processes racing for the active-run slot, and a fence
//! that stops a deposed leader's writes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_core::StoreError;
use drover_core::journal::Journal;
use drover_core::run::{Record, RunKind, RunState};
use drover_core::secret::Secret;
use drover_core::testing::scenarios::{
    an_ended_run_takes_no_more_records, an_illegal_record_order_is_refused, crash_after_every_record,
    every_step_twice_is_once, observe, one_driver_per_run, pages_list_every_run_once_newest_first,
    retention_trims_to_keep, two_region_plan,
};
use drover_core::testing::{FakeWorld, MemoryJournal};
use drover_store::{EtcdAccess, EtcdClient, EtcdJournal, EtcdTls, EtcdUser, Fence};

/// One etcd member on free loopback ports, in a temp dir; killed on drop.
struct Etcd {
    child: Child,
    /// How the tests reach it: plain, or over TLS as the user `drover` (`start_secure`).
    access: EtcdAccess,
    dir: tempfile::TempDir,
    /// Its command line, to start it again (`restart`).
    program: &'static str,
    args: Vec<std::ffi::OsString>,
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

/// The password of the secure etcd's `drover` user, and of its `root`.
const PASSWORD: &str = "pw-of-drover-7c1e";
const ROOT_PASSWORD: &str = "pw-of-root-93ab";

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "etcd");
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

impl Etcd {
    async fn start() -> Etcd {
        Etcd::launch(None, &[]).await
    }

    /// A member serving TLS (its certificate from a CA of the test's own) with auth on:
    /// `root`, and `drover` limited to the keys under /t. `extra`: more etcd flags.
    async fn start_secure(extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "etcd");
        let mut etcd = Etcd::launch(Some((dir, pki)), extra).await;
        let user = EtcdUser { name: "drover".into(), password: Secret::new(PASSWORD) };
        drover_store::cluster::enable_auth(&etcd.access, &Secret::new(ROOT_PASSWORD), &user, "/t").await.unwrap();
        etcd.access.user = Some(user);
        etcd
    }

    async fn launch(secure: Option<(tempfile::TempDir, Pki)>, extra: &[&str]) -> Etcd {
        let etcd = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| std::path::Path::new(p).exists());
        let etcd = etcd.expect("etcd not found: these tests need Debian's etcd-server (scripts/setup.sh installs it)");
        let (dir, pki) = match secure {
            Some((dir, pki)) => (dir, Some(pki)),
            None => (tempfile::tempdir().unwrap(), None),
        };
        let (client, peer) = (free_port(), free_port());
        let member = format!("127.0.0.1:{client}");
        let scheme = if pki.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{member}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut command = Command::new(etcd);
        command
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(extra);
        let mut access = EtcdAccess::plain([member.clone()]);
        if let Some(pki) = &pki {
            command.arg("--cert-file").arg(&pki.cert).arg("--key-file").arg(&pki.key);
            // With --client-cert-auth, clients present a certificate the CA signed: the
            // member's own serves (it is issued for clients too).
            let client_certs = extra.contains(&"--client-cert-auth");
            if client_certs {
                command.arg("--trusted-ca-file").arg(&pki.ca);
            }
            let identity = client_certs.then_some((pki.cert.as_path(), pki.key.as_path()));
            access.tls = Some(EtcdTls::load(&pki.ca, identity).unwrap());
        }
        let args = command.get_args().map(ToOwned::to_owned).collect();
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("start etcd");
        let etcd = Etcd { child, access, dir, program: etcd, args };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = EtcdClient::connect(&etcd.access, etcd_client::ConnectOptions::new()).await
                && client.get("ping", None).await.is_ok()
            {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd did not start within 30s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the member, runs `meanwhile`, and starts it again on its data (its users kept).
    async fn restart<T>(&mut self, meanwhile: impl std::future::Future<Output = T>) -> T {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = meanwhile.await;
        let log = std::fs::OpenOptions::new().append(true).open(self.dir.path().join("etcd.log")).unwrap();
        self.child =
            Command::new(self.program).args(&self.args).stdout(Stdio::null()).stderr(log).spawn().expect("start etcd");
        out
    }

    async fn client(&self) -> EtcdClient {
        EtcdClient::connect(&self.access, etcd_client::ConnectOptions::new()).await.unwrap()
    }

    async fn kv(&self) -> etcd_client::KvClient {
        self.client().await.kv_client()
    }
}

#[tokio::test]
async fn failover_crash_after_every_record_resumes_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.client().await;
    crash_after_every_record(RunKind::Failover, move |case| {
        Arc::new(EtcdJournal::with_client(kv.clone(), &format!("/t/failover/{case}"))) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn switchover_crash_after_every_record_resumes_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.client().await;
    crash_after_every_record(RunKind::Switchover, move |case| {
        Arc::new(EtcdJournal::with_client(kv.clone(), &format!("/t/switchover/{case}"))) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test]
async fn reprotect_and_failback_crash_after_every_record_resume_from_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.client().await;
    for kind in [RunKind::Reprotect, RunKind::Failback] {
        let kv = kv.clone();
        crash_after_every_record(kind, move |case| {
            Arc::new(EtcdJournal::with_client(kv.clone(), &format!("/t/{}/{case}", kind.as_str()))) as Arc<dyn Journal>
        })
        .await;
    }
}

#[tokio::test]
async fn every_step_twice_is_once_on_etcd_and_ended_runs_stay_ended_and_illegal_orders_are_refused() {
    let etcd = Etcd::start().await;
    let kv = etcd.client().await;
    let n = AtomicU64::new(0);
    let kv2 = kv.clone();
    every_step_twice_is_once(move || {
        let case = n.fetch_add(1, Ordering::SeqCst);
        Arc::new(EtcdJournal::with_client(kv2.clone(), &format!("/t/twice/{case}"))) as Arc<dyn Journal>
    })
    .await;
    an_ended_run_takes_no_more_records(&EtcdJournal::with_client(kv.clone(), "/t/ended")).await;
    an_illegal_record_order_is_refused(&EtcdJournal::with_client(kv, "/t/order")).await;
}

/// Two processes (two connections) start runs at the same moment: exactly one wins the slot.
#[tokio::test]
async fn of_two_racing_starts_exactly_one_wins_and_the_epoch_is_compare_and_swap() {
    let etcd = Etcd::start().await;
    let a = EtcdJournal::connect(&etcd.access, "/t/race").await.unwrap();
    let b = EtcdJournal::connect(&etcd.access, "/t/race").await.unwrap();
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
    assert_eq!(drover_core::history::every_run(&b).await.unwrap().len(), 1, "the losing start left nothing behind");

    assert_eq!(a.compare_and_swap_epoch(0, 1).await.unwrap(), Ok(()));
    assert_eq!(b.compare_and_swap_epoch(0, 1).await.unwrap(), Err(1), "a stale swap sees the newer epoch");
    assert_eq!(b.epoch().await.unwrap(), 1);
}

/// A journal fenced on a leader key writes nothing once another process holds the key.
#[tokio::test]
async fn a_deposed_leader_cannot_write() {
    let etcd = Etcd::start().await;
    let client = etcd.client().await;
    let mut kv = client.kv_client();
    let leader = "/t/fence/leader";
    let won = kv.put(leader, "east", None).await.unwrap();
    let revision = won.header().unwrap().revision();
    let journal = EtcdJournal::with_client(client.clone(), "/t/fence").fenced(Fence {
        key: leader.into(),
        create_revision: revision,
        lease: 0,
    });
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
    let unfenced = EtcdJournal::with_client(client, "/t/fence");
    assert_eq!(unfenced.entries(&header.id).await.unwrap().len(), 1, "nothing was added after the fence broke");
    assert_eq!(unfenced.summary(&header.id).await.unwrap().state, RunState::Running);
    assert_eq!(unfenced.epoch().await.unwrap(), 0);
}

/// The leader dies (its lease is no longer kept alive): another candidate takes
/// over within about one TTL, and the dead leader's fenced writes are refused.
#[tokio::test]
async fn when_the_leader_dies_another_takes_over_and_the_old_one_cannot_write() {
    let etcd = Etcd::start().await;
    let endpoints = etcd.access.clone();
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
    let endpoints = etcd.access.clone();
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
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let rules = |key: Vec<u8>| ReportRules {
        plan: "shop".into(),
        names: vec!["east".into(), "west".into(), "witness".into()],
        keys: Some(PeerKeys::new(key, None)),
        ttl_ms: 3_000,
    };
    let ours = rules(key.clone());
    let west =
        EtcdVantages::connect(&etcd.access, "/k", "west", Duration::from_secs(2), std::sync::Arc::new(ours.clone()))
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

/// A new start of a run through `journal`, its header returned.
async fn begin_a_run(journal: &EtcdJournal) -> drover_core::run::RunHeader {
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let header =
        drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observe(&plan, journal, &world).await, "t")
            .unwrap();
    journal.begin(&header).await.expect("a run starts");
    header
}

/// Through TLS (the members' CA) and as a user whose role holds the plan's prefix, the
/// journal works; etcd kept its keys from a client without the user.
#[tokio::test]
async fn through_tls_and_a_user_the_journal_works() {
    let etcd = Etcd::start_secure(&[]).await;
    let journal = EtcdJournal::connect(&etcd.access, "/t/secure").await.expect("connects as drover over TLS");
    let header = begin_a_run(&journal).await;
    assert_eq!(drover_core::history::every_run(&journal).await.unwrap().len(), 1);
    assert_eq!(journal.summary(&header.id).await.unwrap().state, RunState::Running);

    // The role holds /t only: the same user cannot touch another plan's prefix.
    let outside = EtcdJournal::connect(&etcd.access, "/elsewhere").await.unwrap();
    let refused = outside.epoch().await.expect_err("a key outside the role's prefix was read").to_string();
    assert!(refused.contains("may not use these keys"), "{refused}");
}

/// Members that want a client certificate get the one given; without it, the refusal
/// says to give one.
#[tokio::test]
async fn a_client_certificate_is_presented_when_the_members_ask_for_one() {
    let etcd = Etcd::start_secure(&["--client-cert-auth"]).await;
    let journal = EtcdJournal::connect(&etcd.access, "/t/mtls").await.expect("connects with a client certificate");
    begin_a_run(&journal).await;

    let mut without = etcd.access.clone();
    let ca = etcd.dir.path().join("etcd-ca.pem");
    without.tls = Some(EtcdTls::load(&ca, None).unwrap());
    // Refused at connect (authenticating), or, when the refusal came as a broken
    // connection (etcd may be reached later), at the first request.
    let refused = match EtcdJournal::connect(&without, "/t/mtls").await {
        Err(e) => e.to_string(),
        Ok(journal) => journal.epoch().await.expect_err("read without a certificate").to_string(),
    };
    assert!(refused.contains("give --etcd-cert and --etcd-key"), "{refused}");
}

/// A wrong password, no user, and a CA that did not sign the members' certificates are
/// each refused with what to check; the password never shows.
#[tokio::test]
async fn a_wrong_password_no_user_or_a_wrong_ca_is_refused_with_its_cause() {
    let etcd = Etcd::start_secure(&[]).await;
    let refusal = |access: EtcdAccess| async move {
        let message = match EtcdJournal::connect(&access, "/t/refused").await {
            Err(e) => e.to_string(),
            // Without a user, connecting works (etcd asks nothing yet): the first read is refused.
            Ok(journal) => journal.epoch().await.expect_err("a read without a user").to_string(),
        };
        assert!(!message.contains(PASSWORD) && !message.contains("wrong-one-1234"), "{message}");
        eprintln!("refused: {message}");
        message
    };

    let mut wrong_password = etcd.access.clone();
    wrong_password.user = Some(EtcdUser { name: "drover".into(), password: Secret::new("wrong-one-1234") });
    let message = refusal(wrong_password).await;
    assert!(message.contains("etcd refused user 'drover': wrong password"), "{message}");

    let mut no_user = etcd.access.clone();
    no_user.user = None;
    let message = refusal(no_user).await;
    assert!(message.contains("etcd requires a user"), "{message}");

    let other = make_pki(etcd.dir.path(), "other");
    let mut wrong_ca = etcd.access.clone();
    wrong_ca.tls = Some(EtcdTls::load(&other.ca, None).unwrap());
    let message = refusal(wrong_ca).await;
    assert!(message.contains("not signed by the CA in"), "{message}");
    assert!(message.contains("other-ca.pem"), "the CA file is named: {message}");

    let mut plain = etcd.access.clone();
    plain.tls = None;
    let message = refusal(plain).await;
    assert!(message.contains("if the members serve TLS, write etcds://"), "{message}");
}

/// etcd forgets an unused token after --auth-token-ttl (2 s here, 300 s by default): a
/// journal, a vantage exchange and a waiting candidate that were idle for longer keep
/// working, as a daemon that runs for days must.
#[tokio::test]
async fn past_the_auth_token_ttl_the_journal_reports_and_election_keep_working() {
    use drover_core::vantage::{VantageExchange, VantageReport};
    let etcd = Etcd::start_secure(&["--auth-token-ttl", "2"]).await;
    let journal = EtcdJournal::connect(&etcd.access, "/t/ttl").await.unwrap();
    let header = begin_a_run(&journal).await;
    let ttl = Duration::from_secs(2);
    let rules = std::sync::Arc::new(drover_core::vantage::ReportRules {
        plan: "t".into(),
        names: vec![],
        keys: None,
        ttl_ms: 60_000,
    });
    let east = drover_store::EtcdVantages::connect(&etcd.access, "/t", "east", Duration::from_secs(60), rules.clone())
        .await
        .unwrap();
    let west =
        drover_store::EtcdVantages::connect(&etcd.access, "/t", "west", Duration::from_secs(60), rules).await.unwrap();
    let leader = drover_store::campaign(&etcd.access, "/t/leader", "east", 2).await.expect("east leads");
    let candidate = tokio::spawn({
        let access = etcd.access.clone();
        async move { drover_store::campaign(&access, "/t/leader", "west", 2).await }
    });

    // Idle for more than two TTLs (etcd sweeps tokens each second).
    tokio::time::sleep(ttl * 2 + Duration::from_secs(1)).await;

    let first_step = Record::StepIntent { step: 0, kind: header.steps[0].clone() };
    journal.append(&header.id, first_step).await.expect("the journal writes past the token's TTL");
    let now = drover_core::clock::now_ms();
    let report = VantageReport {
        vantage: "east".into(),
        at_ms: now,
        expires_ms: now + 60_000,
        regions: Default::default(),
        signature: None,
    };
    east.publish(&report).await;
    assert!(east.problems().is_empty(), "east published past the token's TTL: {:?}", east.problems());
    let seen: Vec<String> = west.others().await.into_iter().map(|r| r.vantage).collect();
    assert_eq!(seen, ["east"], "west reads past the token's TTL: {:?}", west.problems());

    // East's leadership ends; west, which waited all along, takes over.
    drop(leader);
    let west_leads = tokio::time::timeout(Duration::from_secs(30), candidate).await.expect("west never took over");
    let west_leads = west_leads.unwrap().expect("west's campaign survives its token's end");
    assert!(west_leads.fence.key.starts_with("/t/leader/"), "{}", west_leads.fence.key);
}

/// etcd out of reach when a drover connects (a daemon starting during an outage): it
/// connects anyway, and its first request once etcd is back authenticates first, also
/// where etcd would otherwise judge a request without a token as its client
/// certificate's name (which is no user: "permission denied").
#[tokio::test]
async fn a_drover_that_connected_while_etcd_was_away_authenticates_with_its_first_request() {
    let mut etcd = Etcd::start_secure(&["--client-cert-auth"]).await;
    let access = etcd.access.clone();
    let connected = etcd.restart(EtcdJournal::connect(&access, "/t/away")).await;
    let journal = connected.expect("connects while etcd is down");
    // The journal's requests wait (a few seconds) for etcd to be back.
    begin_a_run(&journal).await;
    assert_eq!(drover_core::history::every_run(&journal).await.unwrap().len(), 1);
}

/// Two processes' connections: one driver per run; and a claim whose holder is gone (its
/// lease ran out; its host cannot be looked at from here) is taken over.
#[tokio::test]
async fn one_driver_per_run_on_etcd_and_a_gone_drivers_claim_is_taken_over() {
    let etcd = Etcd::start().await;
    let a = EtcdJournal::connect(&etcd.access, "/t/drivers").await.unwrap();
    let b = EtcdJournal::connect(&etcd.access, "/t/drivers").await.unwrap();
    one_driver_per_run(&a, &b).await;

    let client = etcd.client().await;
    let lease = client.lease_grant(2, None).await.unwrap().id();
    let gone = r#"{"token":"t","who":"the west daemon","pid":4242,"started":1,"host":"a-host-that-crashed"}"#;
    let options = etcd_client::PutOptions::new().with_lease(lease);
    client.put("/t/drivers/drivers/r-orphan", gone, Some(options)).await.unwrap();
    let run = drover_core::RunId("r-orphan".into());
    match a.claim_run(&run, "the east daemon").await {
        Err(StoreError::Driven { holder, .. }) => {
            assert!(holder.contains("the west daemon (pid 4242 on a-host-that-crashed)"), "{holder}")
        }
        other => panic!("a live lease's claim must hold: {other:?}"),
    }
    // Nobody keeps that lease alive: once it runs out, the claim is free.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let claim = loop {
        match a.claim_run(&run, "the east daemon").await {
            Ok(claim) => break claim,
            Err(StoreError::Driven { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => panic!("the orphaned claim was not taken over: {other:?}"),
        }
    };
    a.release_run(&run, &claim).await.unwrap();
    assert!(client.get("/t/drivers/drivers/r-orphan", None).await.unwrap().kvs().is_empty(), "released");
}

#[tokio::test]
async fn pages_and_retention_on_etcd() {
    let etcd = Etcd::start().await;
    let kv = etcd.client().await;
    pages_list_every_run_once_newest_first(&EtcdJournal::with_client(kv.clone(), "/t/pages")).await;
    retention_trims_to_keep(&EtcdJournal::with_client(kv.clone(), "/t/keep")).await;
    drover_core::testing::scenarios::drills_are_journaled(&EtcdJournal::with_client(kv, "/t/drills")).await;
}

/// Ended runs copied from one real run, written as a journal from before the run index
/// (no `starts/`, no `indexed`): `count` runs whose abort reason is `pad` bytes long.
/// Returns the bytes written.
async fn seed_old_journal(kv: &mut etcd_client::KvClient, prefix: &str, count: u64, pad: usize) -> usize {
    use drover_core::run::{Entry, RunHeader};
    use etcd_client::{Txn, TxnOp};
    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let scratch = MemoryJournal::default();
    let observed = observe(&plan, &scratch, &world).await;
    let header: RunHeader = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "seed").unwrap();
    let mut bytes = 0;
    let mut ops = Vec::new();
    for i in 0..count {
        let mut h = header.clone();
        h.id = drover_core::RunId(format!("r{:013}-{i:04x}", 1_700_000_000_000 + i));
        let (first, second) = (2 * i + 1, 2 * i + 2);
        let at_ms = 1_700_000_000_000 + i;
        let started = Entry { seq: first, at_ms, record: Record::Started { header: h.clone() } };
        let aborted = Entry { seq: second, at_ms, record: Record::Aborted { reason: "x".repeat(pad), by: None } };
        for entry in [started, aborted] {
            let json = serde_json::to_string(&entry).unwrap();
            bytes += json.len();
            ops.push(TxnOp::put(format!("{prefix}/runs/{}/{:020}", h.id.0, entry.seq), json, None));
        }
        if ops.len() >= 100 || i + 1 == count {
            kv.txn(Txn::new().and_then(std::mem::take(&mut ops))).await.unwrap();
        }
    }
    kv.put(format!("{prefix}/seq"), (2 * count).to_string(), None).await.unwrap();
    bytes
}

/// The cliff of issue 16: a journal holding well over the 4 MiB an etcd answer may carry.
/// Reading its runs in one request fails; the journal still finds the (absent) active
/// run, lists a page, and begins a run, which then heads the first page.
#[tokio::test]
async fn a_journal_past_four_mib_still_answers_active_a_page_and_begin() {
    use drover_core::history::PageRequest;
    let etcd = Etcd::start().await;
    let mut kv = etcd.kv().await;
    let written = seed_old_journal(&mut kv, "/t/big", 3_000, 2_000).await;
    assert!(written > 6 << 20, "seeded only {written} bytes");
    let whole = kv.get("/t/big/runs/", Some(etcd_client::GetOptions::new().with_prefix())).await;
    assert!(whole.is_err(), "one read of every run fit in one answer: the test seeded too little");

    let journal = EtcdJournal::with_client(etcd.client().await, "/t/big");
    assert_eq!(journal.active().await.unwrap(), None);
    let page = journal.page(&PageRequest::first(50)).await.unwrap();
    assert_eq!(page.runs.len(), 50);
    assert_eq!(page.runs[0].header.id.0, format!("r{:013}-{:04x}", 1_700_000_000_000u64 + 2_999, 2_999));
    let next = journal.page(&PageRequest::after(50, page.next.clone())).await.unwrap();
    assert_eq!(next.runs[0].header.id.0, format!("r{:013}-{:04x}", 1_700_000_000_000u64 + 2_949, 2_949));

    let plan = two_region_plan();
    let world = FakeWorld::two_regions();
    let observed = observe(&plan, &journal, &world).await;
    let header = drover_core::engine::plan_run(&plan, RunKind::Failover, "west", &observed, "test").unwrap();
    journal.begin(&header).await.unwrap();
    assert_eq!(journal.active().await.unwrap().map(|r| r.header.id), Some(header.id.clone()));
    assert_eq!(journal.page(&PageRequest::first(1)).await.unwrap().runs[0].header.id, header.id);
    let mut second = header.clone();
    second.id = drover_core::RunId("r-second".into());
    assert!(matches!(journal.begin(&second).await, Err(StoreError::ActiveRun { .. })));
}
