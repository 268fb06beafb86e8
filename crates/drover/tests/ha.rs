//! drover survives its own region, in the lab (`lab up --ha`): three daemons (east,
//! west, witness) keep their journal in a 3-member etcd cluster, one member per
//! region, and elect a leader; east starts leading both etcd and the election.
//!
//! A write probe runs through every test, and every test ends with the same two
//! checks: for every epoch at most one database accepted writes, and (synchronous
//! replication) every acknowledged write is on the final primary.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use drover_lab::probe::{Probe, ProbeConfig, ProbeHandle};
use serde_json::Value;
use support::{LabGuard, drover, run};

const ELECTION: &str = "/drover/lab/leader";

/// A lab region's address: its etcd member listens on :2379, its daemon on :7070.
fn address(region: &str) -> &'static str {
    match region {
        "east" => "10.200.0.11",
        "west" => "10.200.0.12",
        _ => "10.200.0.13",
    }
}

/// The etcd members of `regions`, `HOST:PORT`.
fn members(regions: &[&str]) -> Vec<String> {
    regions.iter().map(|r| format!("{}:2379", address(r))).collect()
}

struct HaLab {
    guard: LabGuard,
    rt: tokio::runtime::Runtime,
    probe: Option<ProbeHandle>,
    _tmp: tempfile::TempDir,
}

impl HaLab {
    /// A fresh HA lab with the write probe running. `kill_after`: the daemons SIGKILL
    /// themselves after journaling that record (DROVER_TEST_KILL_AFTER), which only a
    /// binary built with the `fault-injection` feature honours.
    fn up(kill_after: Option<&str>) -> HaLab {
        // This test crate and the binary it runs are built with the same features of the
        // drover package: without the hook, the daemons would never die and the test
        // would prove nothing. Say so, before taking the lab.
        assert!(
            kill_after.is_none() || cfg!(feature = "fault-injection"),
            "this test kills daemons through an injected fault (DROVER_TEST_KILL_AFTER), compiled only \
             with drover's `fault-injection` feature: run it with \
             `cargo nextest run -p drover --features fault-injection --test ha`, or run scripts/test.sh"
        );
        let tmp = tempfile::Builder::new().prefix("drover-ha-").tempdir_in("/tmp").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("lab");
        let guard = LabGuard::new(&dir);
        let mut up = drover();
        up.args(["lab", "up", "--ha", "--replication", "sync", "--dir"]).arg(&dir);
        if let Some(record) = kill_after {
            up.env("DROVER_TEST_KILL_AFTER", record);
        }
        let up = run(&mut up);
        assert_eq!(up.code, 0, "lab up --ha failed:\n{}\n{}", up.stdout, up.stderr);
        assert!(up.stdout.contains("etcd :2379"), "{}", up.stdout);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let probe = rt.block_on(async {
            Probe::start(ProbeConfig {
                dns_server: "10.200.0.1:53".parse().unwrap(),
                name: "api.app.test.".into(),
                port: 8080,
                interval: Duration::from_millis(50),
                write_timeout: Duration::from_secs(2),
                first_seq: drover_core::engine::now_ms() * 1000,
            })
        });
        // Writes flow before anything is broken: a second of them, all acknowledged.
        let flowing = rt.block_on(probe.wait_for_success_streak(
            Duration::from_secs(1),
            drover_core::engine::now_ms(),
            Duration::from_secs(30),
        ));
        assert!(flowing, "the lab took no writes within 30s of coming up");
        let lab = HaLab { guard, rt, probe: Some(probe), _tmp: tmp };
        assert_eq!(lab.raft_leader(&["east", "west", "witness"]), "east", "the lab starts with east leading etcd");
        assert_eq!(lab.election_leader(&["east", "west", "witness"]).as_deref(), Some("east"));
        lab
    }

    fn plan(&self) -> PathBuf {
        self.guard.dir.join("plan.yaml")
    }

    fn lab(&self, args: &[&str]) {
        let ran = run(drover().args(args).arg("--dir").arg(&self.guard.dir));
        assert_eq!(ran.code, 0, "drover {args:?}: {}\n{}", ran.stdout, ran.stderr);
    }

    /// The lab's etcd through the members of `reachable`, over TLS as the lab's etcd user.
    fn etcd(&self, reachable: &[&str]) -> drover_store::EtcdAccess {
        drover_lab::LabDir::new(&self.guard.dir).etcd_access(members(reachable)).unwrap()
    }

    /// `--store` and the flags that go with it (CA, user, password file), through `reachable`.
    fn store(&self, reachable: &[&str]) -> Vec<String> {
        let mut args = drover_lab::LabDir::new(&self.guard.dir).etcd_store_args();
        args[1] = format!("etcds://{}/drover/lab", members(reachable).join(","));
        args
    }

    /// Writes, as the lab's etcd user, reports under `names` that see east down, unsigned or
    /// copied from a real one and altered (its signature no longer matches); returns how many.
    fn forge_reports(&self, names: &[&str]) -> usize {
        self.rt.block_on(async {
            let options = drover_store::etcd_options(Duration::from_secs(2));
            let client =
                drover_store::EtcdClient::connect(&self.etcd(&["east", "west", "witness"]), options).await.unwrap();
            let prefix = "/drover/lab/vantages/";
            let real = client.get(format!("{prefix}witness"), None).await.unwrap();
            let real: Value = serde_json::from_slice(real.kvs()[0].value()).unwrap();
            for name in names {
                let mut report = real.clone();
                report["vantage"] = Value::from(*name);
                report["at_ms"] = Value::from(drover_core::clock::now_ms());
                report["expires_ms"] = Value::from(u64::MAX);
                report["regions"]["east"]["down"] = Value::from(true);
                report["regions"]["east"]["up"] = Value::from(false);
                client.put(format!("{prefix}{name}"), report.to_string(), None).await.unwrap();
            }
            names.len()
        })
    }

    fn raft_leader(&self, reachable: &[&str]) -> String {
        self.rt.block_on(drover_store::cluster::raft_leader(&self.etcd(reachable))).unwrap()
    }

    fn election_leader(&self, reachable: &[&str]) -> Option<String> {
        self.rt.block_on(drover_store::cluster::election_leader(&self.etcd(reachable), ELECTION)).ok().flatten()
    }

    /// Every run in the shared journal, read through the members in `reachable`.
    fn runs(&self, reachable: &[&str]) -> Vec<Value> {
        let ran = run(drover().args(["runs", "-o", "json"]).args(self.store(reachable)).arg("--plan").arg(self.plan()));
        assert_eq!(ran.code, 0, "drover runs: {}", ran.stderr);
        let page: Value = serde_json::from_str(&ran.stdout).unwrap();
        page["runs"].as_array().unwrap().clone()
    }

    fn wait_run_ended(&self, reachable: &[&str], guard: Duration) -> Value {
        let deadline = Instant::now() + guard;
        loop {
            let runs = self.runs(reachable);
            if let Some(run) = runs.first()
                && run["state"] != "running"
            {
                assert_eq!(runs.len(), 1, "one run, no more: {runs:#?}");
                return run.clone();
            }
            assert!(Instant::now() < deadline, "no run ended within {guard:?}: {runs:#?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn status(&self, reachable: &[&str]) -> Value {
        let ran =
            run(drover().args(["status", "-o", "json"]).args(self.store(reachable)).arg("--plan").arg(self.plan()));
        serde_json::from_str(&ran.stdout).unwrap_or_else(|_| panic!("status: {}\n{}", ran.stdout, ran.stderr))
    }

    fn database(&self, status: &Value, region: &str) -> Value {
        status["regions"].as_array().unwrap().iter().find(|r| r["region"] == region).unwrap()["database"].clone()
    }

    fn dsn(&self, region: &str) -> String {
        std::fs::read_to_string(self.guard.dir.join(format!("secrets/{region}.dsn"))).unwrap().trim().to_string()
    }

    fn logs(&self) -> String {
        ["east", "west", "witness"]
            .iter()
            .map(|r| {
                let log = std::fs::read_to_string(self.guard.dir.join(format!("serve-{r}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!("--- serve-{r}.log\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `drover ARGS --yes` through the leading daemon's API, as a person must
    /// while daemons lead; returns its stdout.
    fn through_leader(&self, args: &[&str]) -> String {
        let ran = self.ask_leader(args);
        assert_eq!(ran.code, 0, "drover {args:?} through the leader: {}\n{}\n{}", ran.stdout, ran.stderr, self.logs());
        ran.stdout
    }

    /// `drover ARGS --yes` through the leading daemon's API, whatever its outcome.
    fn ask_leader(&self, args: &[&str]) -> support::Ran {
        let leader = self.election_leader(&["east", "west", "witness"]).expect("a daemon leads");
        let server = format!("https://{}:7070", address(&leader));
        run(drover()
            .args(args)
            .args(["--yes", "--server", &server, "--token-file"])
            .arg(self.guard.dir.join("secrets/api-token"))
            .arg("--ca-file")
            .arg(self.guard.dir.join("secrets/pki/ca.pem")))
    }

    /// Lifts every fault, stops the probe, and checks what a client would care about:
    /// no epoch had two writers, and every acknowledged write is on `final_primary`.
    fn finish(mut self, final_primary: &str) {
        for region in ["east", "west", "witness"] {
            self.lab(&["lab", "heal", region]);
        }
        // A returning old primary must be fenced before anything is counted.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status(&["east", "west", "witness"]);
            let writable: Vec<&str> =
                ["east", "west"].into_iter().filter(|r| self.database(&status, r)["writable"] == true).collect();
            if writable == [final_primary] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "writable primaries {writable:?}, want only {final_primary}: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        // The service takes writes again, on the final primary.
        let probe = self.probe.take().unwrap();
        let flowing = self.rt.block_on(probe.wait_for_success_streak(
            Duration::from_secs(1),
            drover_core::engine::now_ms(),
            Duration::from_secs(30),
        ));
        assert!(flowing, "no second of acknowledged writes within 30s of the end\n{}", self.logs());
        let samples = self.rt.block_on(probe.stop());
        let acked: BTreeSet<u64> = samples.iter().filter(|s| s.acked_ms.is_some()).map(|s| s.seq).collect();
        assert!(acked.len() > 20, "the probe saw too few acknowledged writes to prove anything: {}", acked.len());

        let mut writers: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for region in ["east", "west"] {
            let by_epoch = self.rt.block_on(drover_lab::probe::writers_by_epoch(&self.dsn(region))).unwrap();
            for (epoch, regions) in by_epoch {
                writers.entry(epoch).or_default().extend(regions);
            }
        }
        for (epoch, regions) in &writers {
            assert!(regions.len() <= 1, "epoch {epoch} had two writers: {regions:?} (all: {writers:?})");
        }
        let present = self.rt.block_on(drover_lab::probe::present_sequences(&self.dsn(final_primary))).unwrap();
        let lost: Vec<&u64> = acked.difference(&present).collect();
        assert!(lost.is_empty(), "{} acknowledged writes are not on {final_primary}: {lost:?}", lost.len());
        eprintln!(
            "checked: {} of {} writes acknowledged, all on {final_primary}; writers by epoch {writers:?}",
            acked.len(),
            samples.len()
        );
    }
}

/// A client that kept an old DNS answer: it writes to one region's app every 50 ms,
/// each write on its own, and sorts the answers it gets.
struct StaleClient {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<StaleAnswers>,
}

#[derive(Debug, Default)]
struct StaleAnswers {
    /// Writes the app answered at all (a blacked-out region answers nothing).
    answered: usize,
    /// Acknowledged (200): written at the app's database.
    acked: Vec<u64>,
    /// Refused by a read-only database: the fence at work.
    read_only: usize,
}

impl StaleClient {
    fn start(rt: &tokio::runtime::Runtime, app: &str) -> StaleClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Longer than the app's own 5 s commit timeout, so every answer is heard.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(8)).build().unwrap();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let app = app.to_string();
        let task = rt.spawn(async move {
            let mut writes = tokio::task::JoinSet::new();
            for seq in 1u64.. {
                let (http, url) = (http.clone(), format!("{app}/write?seq={seq}"));
                writes.spawn(async move {
                    let response = http.post(url).send().await.ok()?;
                    let status = response.status();
                    Some((seq, status, response.text().await.unwrap_or_default()))
                });
                if tokio::time::timeout(Duration::from_millis(50), stopped.changed()).await.is_ok() {
                    break;
                }
            }
            let mut answers = StaleAnswers::default();
            for (seq, status, body) in writes.join_all().await.into_iter().flatten() {
                answers.answered += 1;
                if status.is_success() {
                    answers.acked.push(seq);
                } else if body.contains("read-only") {
                    answers.read_only += 1;
                }
            }
            answers
        });
        StaleClient { stop, task }
    }

    /// Stops writing, waits for every answer, and returns them.
    async fn stop(self) -> StaleAnswers {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// Cases 1 and 5: east, the primary region, holds the etcd leader and the drover
/// leader, and goes dark. West and the witness elect a new leader, which fails over;
/// when east returns, its database is fenced at once. Then re-protect and failback,
/// through the leader: east follows west, then takes the primary back, and no
/// acknowledged write of the whole story is lost.
#[test]
fn a_blackout_of_east_holding_every_leader_elects_a_new_leader_that_fails_over() {
    let lab = HaLab::up(None);
    let capture = support::BridgeCapture::start(&lab.guard.dir);

    // Someone holding the etcd user (not the peer key) writes reports that see east down,
    // under names that sort first, and as west: none votes, no run starts.
    let forged = lab.forge_reports(&["aaa-fake-1", "aaa-fake-2", "west"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(lab.runs(&["east", "west", "witness"]).is_empty(), "forged reports started a run:\n{}", lab.logs());
    // Every daemon read them and counted none: east has no down vote, the forgeries are problems.
    let client = support::lab_daemon_client(&lab.guard.dir, Duration::from_secs(5));
    let token = std::fs::read_to_string(lab.guard.dir.join("secrets/api-token")).unwrap();
    for region in ["east", "west", "witness"] {
        let regions: Value = client
            .get(format!("https://{}:7070/api/v1/regions", address(region)))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .json()
            .unwrap();
        let east = regions["regions"].as_array().unwrap().iter().find(|r| r["region"] == "east").unwrap();
        assert_eq!(east["verdict"]["down_votes"], serde_json::json!([]), "{region} counted a forged vote: {regions:#}");
        let problems = regions["peer_errors"].to_string();
        assert!(problems.contains("aaa-fake-1"), "{region} does not show the forgery: {problems}");
    }
    assert_eq!(forged, 3);

    let fault_at = Instant::now();
    lab.lab(&["lab", "fault", "blackout", "east"]);
    let survivors = ["west", "witness"];
    let leader = loop {
        if let Some(leader) = lab.election_leader(&survivors).filter(|l| l != "east") {
            break leader;
        }
        assert!(fault_at.elapsed() < Duration::from_secs(60), "no new leader within 60s:\n{}", lab.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    let takeover = fault_at.elapsed();
    assert_ne!(lab.raft_leader(&survivors), "east", "etcd elected a new raft leader too");
    eprintln!("figure: leader takeover {} ms after the blackout (new leader {leader})", takeover.as_millis());

    let failover = lab.wait_run_ended(&survivors, Duration::from_secs(90));
    assert_eq!(failover["state"], "completed", "{failover:#}");
    assert_eq!(failover["header"]["kind"], "failover");
    let moved = (failover["header"]["from"].as_str(), failover["header"]["to"].as_str());
    assert_eq!(moved, (Some("east"), Some("west")));
    let log = std::fs::read_to_string(lab.guard.dir.join(format!("serve-{leader}.log"))).unwrap();
    assert!(log.contains("automatic failover to west"), "the new leader ran it:\n{}", lab.logs());

    // Tokens, the etcd passwords and PostgreSQL crossed the bridge throughout, never in clear.
    let captured = capture.stop();
    assert!(captured.len() > 100_000, "the capture saw almost nothing ({} bytes)", captured.len());
    let secrets = lab.guard.dir.join("secrets");
    let mut hidden: Vec<(String, Vec<u8>)> = Vec::new();
    for line in std::fs::read_to_string(secrets.join("api-tokens")).unwrap().lines().filter(|l| !l.starts_with('#')) {
        if let Some(token) = line.split_whitespace().nth(2) {
            hidden.push((format!("the {} token", line.split_whitespace().next().unwrap()), token.as_bytes().to_vec()));
        }
    }
    for entry in std::fs::read_dir(&secrets).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("etcd") && name.contains("password") {
            hidden.push((name, std::fs::read_to_string(entry.path()).unwrap().trim().as_bytes().to_vec()));
        }
    }
    assert!(
        hidden.len() >= 5,
        "tokens and etcd passwords to look for: {:?}",
        hidden.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    hidden.push(("the lab app's SQL".into(), b"lab_writes".to_vec()));
    for (what, secret) in &hidden {
        assert!(!support::contains_bytes(&captured, secret), "{what} crossed the bridge in clear");
    }

    // Case 5: east comes back believing it is primary at epoch 0; it is fenced. Meanwhile
    // a client with a stale DNS answer writes straight to east's app: none of its writes
    // may be acknowledged at the old epoch.
    let stale = StaleClient::start(&lab.rt, "http://10.200.0.11:8080");
    lab.lab(&["lab", "heal", "east"]);
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(30);
    loop {
        let status = lab.status(&["east", "west", "witness"]);
        let east = lab.database(&status, "east");
        if east["writable"] == false {
            assert_eq!(lab.database(&status, "west")["writable"], true, "{status:#}");
            break;
        }
        assert!(Instant::now() < deadline, "the returning east was not fenced within 30s: {east}\n{}", lab.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("figure: east fenced within {} ms of coming back (seen by drover status)", healed.elapsed().as_millis());
    std::thread::sleep(Duration::from_secs(2));
    let answers = lab.rt.block_on(stale.stop());
    assert!(answers.acked.is_empty(), "the returning east acknowledged writes at the old epoch: {answers:?}");
    assert!(answers.read_only > 10, "east, fenced, should refuse the stale client's writes as read-only: {answers:?}");
    eprintln!(
        "stale client: east answered {} writes after it came back, acknowledged none, refused {} as read-only",
        answers.answered, answers.read_only
    );

    // Issue 13: the fenced east holds older data (no epoch, while west was promoted at epoch 1).
    // A failover to it is refused, asked of the leading daemon or run from a shell with its
    // own journal, and nothing changes.
    let older = "region 'east' holds older data than the primary: east is a fenced (read-only) former primary, \
                 not a standby of the primary; its data is at no epoch (data from before drover's first move), \
                 while west was promoted at epoch 1";
    let refused = lab.ask_leader(&["failover", "--to", "east"]);
    assert_eq!(refused.code, 2, "{}\n{}\n{}", refused.stdout, refused.stderr, lab.logs());
    assert!(refused.stderr.contains(older), "{}", refused.stderr);
    let shell = run(drover().args(["failover", "--to", "east", "--yes", "--plan"]).arg(lab.plan()));
    assert_eq!(shell.code, 2, "{}\n{}", shell.stdout, shell.stderr);
    assert!(shell.stderr.contains(&format!("failover refused: {older}")), "{}", shell.stderr);
    let status = lab.status(&["east", "west", "witness"]);
    let (east, west) = (lab.database(&status, "east"), lab.database(&status, "west"));
    assert_eq!((&west["writable"], &west["epoch"]), (&true.into(), &1.into()), "{status:#}");
    assert_eq!((&east["role"], &east["writable"]), (&"primary".into(), &false.into()), "{status:#}");
    assert_eq!((&status["traffic"]["region"], &status["traffic"]["epoch"]), (&"west".into(), &1.into()), "{status:#}");
    assert_eq!(lab.runs(&["east", "west", "witness"]).len(), 1, "only the failover to west is journaled");
    let local = run(drover().args(["runs", "-o", "json", "--plan"]).arg(lab.plan()));
    let local: Value = serde_json::from_str(&local.stdout).unwrap();
    assert_eq!(local["runs"], serde_json::json!([]), "the shell journaled nothing: {local}");

    // While daemons lead, a shell's reprotect on their store is refused: the leader runs it.
    let refused = run(drover()
        .args(["reprotect", "--region", "east", "--yes"])
        .args(lab.store(&["east", "west", "witness"]))
        .arg("--plan")
        .arg(lab.plan()));
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("daemon leads them"), "{}", refused.stderr);
    let reprotect = lab.through_leader(&["reprotect", "--region", "east"]);
    assert!(reprotect.starts_with("reprotect east: make it a streaming standby of west"), "{reprotect}");
    assert!(
        ["(pg_rewind)", "(base_backup)"]
            .iter()
            .any(|m| reprotect.contains(&format!("east is a streaming standby of west {m}"))),
        "the reprotect says how it made the standby: {reprotect}"
    );
    let status = lab.status(&["east", "west", "witness"]);
    let east = lab.database(&status, "east");
    assert_eq!((&east["role"], &east["upstream"]), (&"standby".into(), &"10.200.0.12".into()), "{status:#}");
    let failback = lab.through_leader(&["failback"]);
    assert!(failback.starts_with("failback west -> east at epoch 2"), "{failback}");
    eprintln!("{reprotect}{failback}");
    let runs = lab.runs(&["east", "west", "witness"]);
    let kinds: Vec<(&str, &str)> =
        runs.iter().map(|r| (r["header"]["kind"].as_str().unwrap(), r["state"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("failback", "completed"), ("reprotect", "completed"), ("failover", "completed")], "{runs:#?}");
    lab.finish("east");
}

/// Case 2: east and west cannot see each other; both still see the witness. No
/// failover: east still reaches a majority of vantages (itself and the witness), so
/// a quorum of two never calls it down. Writes stall meanwhile (synchronous
/// replication cannot reach west) and none acknowledged is lost.
#[test]
fn a_partition_between_east_and_west_alone_causes_no_failover() {
    let lab = HaLab::up(None);
    lab.lab(&["lab", "fault", "partition", "east", "--from", "west"]);
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let runs = lab.runs(&["witness"]);
        assert!(runs.is_empty(), "a partition of east from west alone started a run: {runs:#?}\n{}", lab.logs());
        std::thread::sleep(Duration::from_secs(1));
    }
    let status = lab.status(&["east", "witness"]);
    assert_eq!(lab.database(&status, "east")["writable"], true, "east stays the primary: {status:#}");
    lab.finish("east");
}

/// Case 3: the witness region is lost. Nothing changes for clients: east and west still
/// form an etcd quorum, a leader remains (east, or west if east's lease ran through the
/// witness), and no run starts.
#[test]
fn losing_the_witness_changes_nothing() {
    let lab = HaLab::up(None);
    lab.lab(&["lab", "fault", "blackout", "witness"]);
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let runs = lab.runs(&["east", "west"]);
        assert!(runs.is_empty(), "losing the witness started a run: {runs:#?}\n{}", lab.logs());
        std::thread::sleep(Duration::from_secs(1));
    }
    // A leader remains. It may have moved to west: a leader whose lease keep-alive ran
    // through the witness's etcd member loses it and stands down, and west takes over.
    let leader = lab.election_leader(&["east", "west"]);
    assert!(matches!(leader.as_deref(), Some("east" | "west")), "no daemon leads without the witness: {leader:?}");
    let status = lab.status(&["east", "west"]);
    assert_eq!(lab.database(&status, "east")["writable"], true, "{status:#}");
    lab.finish("east");
}

/// Case 4: the leader is SIGKILLed in the middle of a failover, at each step boundary
/// in turn. A follower takes the run over from the journal; the run completes, and
/// west was promoted exactly once (its WAL timeline went from 1 to 2, no further).
#[test]
fn a_leader_killed_at_each_step_boundary_is_replaced_and_the_run_completes_once() {
    for boundary in ["started", "fence", "promote", "switch", "verify"] {
        eprintln!("--- the leader dies after journaling: {boundary}");
        let lab = HaLab::up(Some(boundary));
        lab.lab(&["lab", "fault", "blackout", "east"]);
        let survivors = ["west", "witness"];
        let run = lab.wait_run_ended(&survivors, Duration::from_secs(120));
        assert_eq!(run["state"], "completed", "after a kill at {boundary}: {run:#}\n{}", lab.logs());
        // Log lines start with an RFC 3339 timestamp, so they order as strings.
        let lines: Vec<(String, &str)> = survivors
            .iter()
            .flat_map(|r| {
                let log = std::fs::read_to_string(lab.guard.dir.join(format!("serve-{r}.log"))).unwrap();
                log.lines().map(|l| (l.to_string(), *r)).collect::<Vec<_>>()
            })
            .collect();
        let killed = lines.iter().find(|(l, _)| l.contains("DROVER_TEST_KILL_AFTER"));
        let (kill_line, killed_region) =
            killed.unwrap_or_else(|| panic!("no leader killed at {boundary}:\n{}", lab.logs()));
        // Another daemon — a follower, or the killed one's restarted process, which starts
        // as a follower — took the run over from the journal after the kill.
        let took_over = lines.iter().find(|(l, _)| l.contains("taking over run") && l[..27] > kill_line[..27]);
        let (_, by) = took_over.unwrap_or_else(|| panic!("nobody took the run over after the kill:\n{}", lab.logs()));
        eprintln!("killed the leader in {killed_region} after {boundary}; the {by} daemon took the run over");
        let timeline = lab.rt.block_on(drover_lab::probe::wal_timeline(&lab.dsn("west"))).unwrap();
        assert_eq!(timeline, 2, "west promoted exactly once (timeline 1 -> 2), after a kill at {boundary}");
        lab.finish("west");
    }
}
