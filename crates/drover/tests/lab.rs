//! The lab end to end, with the built binary: real namespaces, PostgreSQL, Knot DNS and the
//! lab app. Needs root and the Debian packages (scripts/setup.sh); fails, never skips,
//! without them. One lab per machine (fixed namespace names): nextest runs these serially.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::post_write;

/// The binary under test (see `support::drover`).
fn drover_bin() -> String {
    std::env::var("DROVER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_drover").to_string())
}
const EAST_APP: &str = "10.200.0.11:8080";
const WEST_APP: &str = "10.200.0.12:8080";

fn drover(args: &[&str]) -> Output {
    Command::new(drover_bin()).args(args).output().expect("run drover")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = drover(args);
    assert!(out.status.success(), "drover {}: {}", args.join(" "), text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reachable(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse::<SocketAddr>().unwrap(), Duration::from_secs(1)).is_ok()
}

fn status_json(dir: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["lab", "status", "--dir", dir, "-o", "json"])).expect("status JSON")
}

fn region<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["regions"].as_array().unwrap().iter().find(|r| r["name"] == name).expect("region in status")
}

fn namespaces() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip netns").stdout).into_owned()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|cmd| cmd.contains(needle))
        .collect()
}

/// Polls the west database until it holds every one of `seqs` (replay follows the commit).
fn wait_present_on(dsn: &str, seqs: &[u64]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    loop {
        let present = rt.block_on(drover_lab::probe::present_sequences(dsn)).expect("read lab_writes");
        let missing: Vec<&u64> = seqs.iter().filter(|s| !present.contains(s)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still missing on the standby: {missing:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lab_up_fault_heal_down() {
    let tmp = tempfile::Builder::new().prefix("drover-lab-test-").tempdir_in("/tmp").unwrap();
    // PostgreSQL runs as the postgres OS user and must reach its data dir below.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir_path = tmp.path().join("lab");
    let dir = dir_path.to_str().unwrap().to_string();
    // Takes the lab lock, and takes the lab down when the test ends, passed or failed.
    let _guard = support::LabGuard::new(&dir_path);
    assert!(
        !namespaces().contains("drover-"),
        "a lab is already up on this machine ({}); run 'drover lab down --dir DIR' first",
        namespaces().trim()
    );

    // Processes the lab did not start, named as its servers are: `lab up` and `lab down`
    // leave them running (one names the lab dir, as a log tail would; one runs in a region's
    // namespace).
    let strangers = Strangers::new();
    let knotd = strangers.start("knotd", "sleep", &["600"]);
    let up = ok(&["lab", "up", "--dir", &dir, "--replication", "sync"]);
    assert!(up.contains(&format!("plan: {dir}/plan.yaml")), "{up}");
    let etcd = strangers.start("etcd", "tail", &["-f", &format!("{dir}/supervisor.log")]);
    let in_namespace = strangers.start_in("drover-west", "knotd", "sleep", &["600"]);
    // The lab dir is root's alone (the postgres group may pass through to its data dirs),
    // and its standby got the password from a file, never a command line.
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&dir_path).unwrap()) & 0o7777;
    assert_eq!(mode, 0o710, "lab dir mode {mode:o}");
    let conninfo = std::fs::read_to_string(format!("{dir}/west/pgdata/postgresql.auto.conf")).unwrap();
    assert!(conninfo.contains("passfile=") && conninfo.contains(&format!("{dir}/west/primary.pgpass")), "{conninfo}");
    assert!(!conninfo.contains("password="), "{conninfo}");

    // A second lab on the same machine is refused.
    let again = drover(&["lab", "up", "--dir", &format!("{dir}-2")]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("drover lab down"), "{}", text(&again));

    let status = status_json(&dir);
    let east = &region(&status, "east")["postgres"];
    let west = &region(&status, "west")["postgres"];
    assert_eq!(east["role"], "primary", "{status:#}");
    assert_eq!(east["replication"][0], "west streaming sync", "{status:#}");
    assert_eq!(west["role"], "standby", "{status:#}");
    assert_eq!(west["replication"][0], "streaming", "{status:#}");
    assert_eq!(status["dns"]["addresses"][0], "10.200.0.11", "{status:#}");
    assert_eq!(region(&status, "east")["app"]["healthz"], 200);
    assert_eq!(region(&status, "west")["app"]["healthz"], 200);

    // The plan the lab wrote is one the plan parser accepts, secrets and all.
    ok(&["plan", "check", &format!("{dir}/plan.yaml")]);

    // A write acknowledged by the east app is on the west standby.
    let (code, body) = post_write(EAST_APP, 424_242);
    assert_eq!((code, body.as_str()), (200, r#"{"seq":424242,"region":"east"}"#));
    assert_eq!(post_write(EAST_APP, 424_242).0, 200, "a repeated write is acknowledged again");
    let (code, body) = post_write(WEST_APP, 1);
    assert_eq!(code, 503, "the standby refuses writes: {body}");
    let west_dsn = std::fs::read_to_string(format!("{dir}/secrets/west.dsn")).unwrap();
    wait_present_on(west_dsn.trim(), &[424_242]);

    // Everything above went over TLS that checks the lab CA and the address: the lab's
    // PostgreSQL refuses a plain connection outright.
    assert!(west_dsn.contains("sslmode=verify-full&sslrootcert="), "the lab DSN verifies the server");
    let plain = west_dsn.trim().replace("sslmode=verify-full", "sslmode=disable");
    let plain = drover_adapters::pg_connect::PgConnector::parse(&plain).unwrap();
    let refused = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(plain.connect())
        .map(|_| ())
        .expect_err("a plain connection to a lab database");
    let refused = refused.as_db_error().map(|db| db.message().to_string()).unwrap_or_else(|| refused.to_string());
    assert!(refused.contains("no encryption"), "{refused}");

    // The probe, through the lab DNS, as a drill runs it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let samples = rt.block_on(async {
        let probe = drover_lab::probe::Probe::start(drover_lab::probe::ProbeConfig {
            dns_server: "10.200.0.1:53".parse().unwrap(),
            name: "api.app.test.".into(),
            port: 8080,
            interval: Duration::from_millis(50),
            write_timeout: Duration::from_secs(1),
            first_seq: 1,
        });
        let streak = probe.wait_for_success_streak(Duration::from_secs(1), now_ms(), Duration::from_secs(30)).await;
        let samples = probe.stop().await;
        assert!(streak, "no 1 s streak of acknowledged writes: {samples:?}");
        samples
    });
    let acked: Vec<u64> = samples.iter().filter(|s| s.acked_ms.is_some()).map(|s| s.seq).collect();
    assert!(acked.len() >= 10, "{samples:?}");
    assert!(samples.iter().filter(|s| s.acked_ms.is_some()).all(|s| s.target.as_deref() == Some("10.200.0.11")));
    wait_present_on(west_dsn.trim(), &acked);

    // Blackout: east is cut off from the hub, west is not.
    ok(&["lab", "fault", "blackout", "east", "--dir", &dir]);
    assert!(!reachable(EAST_APP), "east still answers during its blackout");
    assert!(reachable(WEST_APP), "west must stay reachable");
    assert!(region(&status_json(&dir), "east")["faults"].as_array().unwrap().contains(&"blackout".into()));
    let healed = ok(&["lab", "heal", "east", "--dir", &dir]);
    assert!(healed.contains("removed blackout"), "{healed}");
    assert!(reachable(EAST_APP), "east is still unreachable after heal");

    // Kill and heal: the database comes back from its files, as primary.
    ok(&["lab", "fault", "kill", "east", "--dir", &dir]);
    let healed = ok(&["lab", "heal", "east", "--dir", &dir]);
    assert!(healed.contains("restarted postgres"), "{healed}");
    assert_eq!(region(&status_json(&dir), "east")["postgres"]["role"], "primary");

    let down = ok(&["lab", "down", "--dir", &dir]);
    assert!(down.contains("namespace drover-east"), "{down}");
    for (name, pid) in [("knotd", knotd), ("etcd", etcd), ("knotd in drover-west", in_namespace)] {
        assert!(Strangers::running(pid), "lab up/down ended the {name} it did not start (pid {pid}):\n{up}\n{down}");
    }
    assert!(
        down.contains(&format!("note: pid {in_namespace} ("))
            && down.contains("was not started by the lab; left running"),
        "{down}"
    );
    drop(strangers);
    assert!(!namespaces().contains("drover-"), "namespaces left: {}", namespaces());
    assert!(!Path::new("/sys/class/net/drover0").exists(), "bridge drover0 left");
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new(), "processes left");
    assert!(!dir_path.exists(), "lab dir left");
    let again = ok(&["lab", "down", "--dir", &dir]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn lab_refuses_without_root() {
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", &drover_bin(), "lab", "up", "--dir", "/tmp/drover-lab-nobody"])
        .output()
        .expect("run drover as nobody");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("drover lab needs root to create network namespaces; run it with sudo"),
        "{}",
        text(&out)
    );
}

/// Processes this test starts as a stranger to the lab would: copies of a system tool under
/// the name of one of the lab's servers (`etcd`, `knotd`). Killed on drop.
struct Strangers {
    dir: tempfile::TempDir,
    children: std::cell::RefCell<Vec<std::process::Child>>,
}

impl Strangers {
    fn new() -> Strangers {
        Strangers { dir: tempfile::tempdir().unwrap(), children: Default::default() }
    }

    /// Runs `tool ARGS` under the name `name`; its pid.
    fn start(&self, name: &str, tool: &str, args: &[&str]) -> u32 {
        self.spawn(Command::new(self.copy(name, tool)).args(args))
    }

    /// The same, inside the network namespace `namespace`.
    fn start_in(&self, namespace: &str, name: &str, tool: &str, args: &[&str]) -> u32 {
        self.spawn(Command::new("ip").args(["netns", "exec", namespace]).arg(self.copy(name, tool)).args(args))
    }

    fn copy(&self, name: &str, tool: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        if !path.exists() {
            let which = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
            std::fs::copy(String::from_utf8_lossy(&which.stdout).trim(), &path).unwrap();
        }
        path
    }

    fn spawn(&self, cmd: &mut Command) -> u32 {
        let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let pid = child.id();
        self.children.borrow_mut().push(child);
        // Exec'd under its name before anything looks for it.
        let started = Instant::now();
        while !std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() != "ip" && !c.is_empty()) {
            assert!(started.elapsed() < Duration::from_secs(10), "pid {pid} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        pid
    }

    /// Alive and not a zombie.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])))
    }
}

impl Drop for Strangers {
    fn drop(&mut self) {
        for child in self.children.borrow_mut().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `scripts/setup.sh` (which CI runs first) stops no process it did not start: an `etcd`
/// and a `knotd` of someone else's run on, where it once ran `pkill -x` on both names.
#[test]
fn setup_leaves_an_etcd_and_a_knotd_it_did_not_start_running() {
    let strangers = Strangers::new();
    let etcd = strangers.start("etcd", "sleep", &["600"]);
    let knotd = strangers.start("knotd", "sleep", &["600"]);
    let setup = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup.sh");
    let out = Command::new("bash").arg(&setup).stdin(std::process::Stdio::null()).output().expect("run setup.sh");
    assert!(out.status.success(), "{}", text(&out));
    assert!(Strangers::running(etcd), "setup.sh ended an etcd it did not start: {}", text(&out));
    assert!(Strangers::running(knotd), "setup.sh ended a knotd it did not start: {}", text(&out));
}

/// The lab runs as root what its directory says: it refuses a directory it did not make,
/// naming its owner and mode and what to do, and changes nothing there.
#[test]
fn lab_refuses_a_directory_it_did_not_make() {
    let tmp = tempfile::Builder::new().prefix("drover-lab-foreign-").tempdir_in("/tmp").unwrap();
    let foreign = tmp.path().join("lab");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("plan.yaml"), "planted\n").unwrap();
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&nobody.stdout).trim().parse().unwrap();
    std::os::unix::fs::chown(&foreign, Some(uid), None).unwrap();
    let dir = foreign.to_str().unwrap();
    for command in ["up", "down"] {
        let out = drover(&["lab", command, "--dir", dir]);
        assert_eq!(out.status.code(), Some(2), "lab {command}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{dir} is owned by nobody (uid {uid}) with mode 0755")), "{stderr}");
        assert!(stderr.contains(&format!("'rm -rf {dir}'")), "{stderr}");
        assert_eq!(std::fs::read_to_string(foreign.join("plan.yaml")).unwrap(), "planted\n");
    }
    // Root's own, but not made by the lab: refused too.
    std::os::unix::fs::chown(&foreign, Some(0), None).unwrap();
    let out = drover(&["lab", "up", "--dir", dir]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not made by 'drover lab up'"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(foreign.join("plan.yaml")).unwrap(), "planted\n");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn lab_down_of_a_directory_that_is_not_a_lab_kills_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bystander_path = dir.path().join("bystander");
    // A process whose command line names the directory, as a log tail would.
    let mut bystander =
        Command::new("sh").args(["-c", "sleep 120"]).arg(&bystander_path).spawn().expect("start a bystander");
    let out = drover(&["lab", "down", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let still_running = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(still_running, "lab down killed a process that only mentioned a non-lab directory");
    assert!(dir.path().exists(), "lab down removed a directory that is not a lab");
}

/// A test killed by nextest's timeout leaves the lab lock behind: the next lab test takes
/// it over instead of waiting 45 minutes (which once made every later lab test time out).
#[test]
fn a_lab_lock_left_by_a_dead_process_is_taken_over() {
    let dir = std::path::Path::new("/tmp/drover-lock-test-lab");
    let lock = support::LabLock::take(dir);
    // As if its owner had been SIGKILLed: a pid that cannot exist (above pid_max).
    std::fs::write("/tmp/drover-lab-lock/owner", format!("4294967295 {}", dir.display())).unwrap();
    std::mem::forget(lock);
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(support::LabLock::take(dir)).unwrap());
    let again = wait.recv_timeout(std::time::Duration::from_secs(60)).expect("a stale lab lock was not taken over");
    let owner = std::fs::read_to_string("/tmp/drover-lab-lock/owner").unwrap();
    assert!(owner.starts_with(&format!("{} ", std::process::id())), "{owner}");
    drop(again);
    assert!(!std::path::Path::new("/tmp/drover-lab-lock").exists());
}
