//! Running the built `drover` binary and comparing its output with checked-in
//! golden files. `UPDATE_GOLDEN=1` rewrites them (then read the diff).

#![allow(dead_code)]

pub mod drills;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test: the one cargo built, or `DROVER_TEST_BIN` (a copy kept aside
/// while other checkouts build into the same target dir, or an installed release).
pub fn drover() -> Command {
    let bin = std::env::var_os("DROVER_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_drover").into());
    let mut cmd = Command::new(bin);
    cmd.env_remove("DROVER_LOG").env("NO_COLOR", "1").env("COLUMNS", "100");
    cmd
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Ran {
    let Output { status, stdout, stderr } = cmd.output().expect("run drover");
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Ran {
    /// The transcript a golden file holds: exit code, stdout, stderr.
    pub fn transcript(&self, redactions: &[(&str, &str)]) -> String {
        let mut text = format!("exit: {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr);
        for (from, to) in redactions {
            text = text.replace(from, to);
        }
        text
    }
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.out"))
}

/// Compares with tests/golden/NAME.out.
pub fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}; run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        panic!(
            "output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}\n(UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        );
    }
}

/// Writes a secret file as its owner's alone (mode 0600): drover refuses one its group or
/// others can open.
pub fn write_secret(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path.as_ref();
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    file.write_all(contents.as_ref()).unwrap();
}

/// A plan with real secret files in a temp dir; its addresses point nowhere.
pub fn plan_dir(plan: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("east.dsn", "postgres://drover:pw@127.0.0.1:1/postgres"),
        ("west.dsn", "postgres://drover:pw@127.0.0.1:2/postgres"),
        ("tsig.key", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="),
    ] {
        write_secret(dir.path().join(name), value);
    }
    std::fs::write(dir.path().join("plan.yaml"), plan.replace("DIR", dir.path().to_str().unwrap())).unwrap();
    dir
}

pub const PLAN: &str = r#"name: shop
objectives: { rto: 30s, rpo: 0s }
regions:
  east: { role: primary }
  west: { role: standby }
  witness: { role: witness }
database:
  kind: postgres
  replication: synchronous
  members:
    east: { dsn_file: DIR/east.dsn }
    west: { dsn_file: DIR/west.dsn }
traffic:
  kind: rfc2136
  server: 127.0.0.1:9
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: drover, algorithm: hmac-sha256, secret_file: DIR/tsig.key }
  targets: { east: 127.0.0.11, west: 127.0.0.12 }
checks:
  api: { http: "http://{target}:9/healthz", interval: 1s, timeout: 200ms }
"#;

/// A client for the daemons of the lab in `lab_dir`: https, trusting the lab CA alone.
pub fn lab_daemon_client(lab_dir: &Path, timeout: std::time::Duration) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(lab_dir.join("secrets/pki/ca.pem")).expect("the lab CA");
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Only one lab can exist on a machine (fixed namespace names). Benchmarks and tests
/// that bring one up hold this lock — a directory, made atomically — while they do.
/// Its `owner` file says "PID LAB_DIR". A test killed by nextest's timeout never runs its
/// drops, so a lock whose owner process is gone is stale: its lab is brought down and the
/// lock taken, rather than every later lab test waiting on it (scripts/lab-lock.sh is the
/// same protocol for the benchmarks).
pub struct LabLock(PathBuf);

impl LabLock {
    pub fn take(lab_dir: &Path) -> LabLock {
        let path = PathBuf::from("/tmp/drover-lab-lock");
        let owner_file = path.join("owner");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45 * 60);
        while std::fs::create_dir(&path).is_err() {
            assert!(std::time::Instant::now() < deadline, "{} held for 45 minutes", path.display());
            match std::fs::read_to_string(&owner_file) {
                Ok(owner) => {
                    let (pid, dir) = owner.trim().split_once(' ').unwrap_or((owner.trim(), ""));
                    if !Path::new("/proc").join(pid).exists() {
                        eprintln!("lab lock: its owner (pid {pid}) is gone; bringing its lab down");
                        if Path::new(dir).join(".drover-lab").exists() {
                            let _ = drover().args(["lab", "down", "--dir", dir]).output();
                        }
                        let _ = std::fs::remove_dir_all(&path);
                        continue;
                    }
                }
                // Made, but its owner not yet written — or left by a process that died in
                // between: give the maker a minute.
                Err(_) => {
                    let age = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > std::time::Duration::from_secs(60)) {
                        let _ = std::fs::remove_dir_all(&path);
                        continue;
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        std::fs::write(&owner_file, format!("{} {}", std::process::id(), lab_dir.display())).unwrap();
        LabLock(path)
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Brings a lab down when the test ends, even on failure, then frees the lab lock.
pub struct LabGuard {
    pub dir: PathBuf,
    _lock: LabLock,
}

impl LabGuard {
    /// Takes the lab lock first; `lab up` itself is the caller's.
    pub fn new(dir: &Path) -> LabGuard {
        LabGuard { _lock: LabLock::take(dir), dir: dir.to_path_buf() }
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = drover().args(["lab", "down", "--dir"]).arg(&self.dir).output();
    }
}

/// One etcd member (Debian `etcd-server`) on free loopback ports; killed on drop.
pub struct Etcd {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, peer) = (free(), free());
        let dir = tempfile::tempdir().unwrap();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
            .spawn()
            .expect("start etcd (Debian etcd-server; scripts/setup.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "etcd did not listen within 30s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Etcd { child, port, _dir: dir }
    }

    /// The `--store` value for this member, under `prefix`.
    pub fn store(&self, prefix: &str) -> String {
        format!("etcd://127.0.0.1:{}/{prefix}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lab for one test (synchronous replication) whose runs journal to a real etcd: it takes
/// the lab lock, brings the lab up, and takes it down when dropped, passed or failed.
pub struct EtcdLab {
    pub dir: PathBuf,
    pub plan: PathBuf,
    store: String,
    _etcd: Etcd,
    _guard: LabGuard,
}

impl EtcdLab {
    /// `lab up --replication sync` in `dir`, journaling under the etcd prefix `prefix`.
    pub fn up(dir: &Path, prefix: &str) -> EtcdLab {
        let guard = LabGuard::new(dir);
        let up = run(drover().args(["lab", "up", "--replication", "sync", "--dir"]).arg(dir));
        assert_eq!(up.code, 0, "lab up failed:\n{}\n{}", up.stdout, up.stderr);
        let etcd = Etcd::start();
        let store = etcd.store(prefix);
        EtcdLab { dir: dir.to_path_buf(), plan: dir.join("plan.yaml"), store, _etcd: etcd, _guard: guard }
    }

    /// `drover ARGS --plan PLAN --store etcd://...`.
    pub fn drover(&self, args: &[&str]) -> Ran {
        run(drover().args(args).arg("--plan").arg(&self.plan).args(["--store", &self.store]))
    }
}

/// POST /write?seq=N on one region's app (`10.200.0.11:8080`): (status, body). Waits 8 s for
/// the answer, longer than the app's own 5 s commit timeout, so every answer is heard.
pub fn post_write(addr: &str, seq: u64) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), std::time::Duration::from_secs(2))
        .expect("connect to the app");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(8))).unwrap();
    use std::io::{Read, Write};
    write!(stream, "POST /write?seq={seq} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the app's answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_string())
}

/// Every packet on the lab's bridge while it lives (tcpdump), to prove what never
/// crosses it in clear: tokens, passwords.
pub struct BridgeCapture {
    child: std::process::Child,
    file: PathBuf,
}

impl BridgeCapture {
    pub fn start(lab_dir: &Path) -> BridgeCapture {
        let file = lab_dir.join("bridge.pcap");
        let child = Command::new("tcpdump")
            .args(["-i", "drover0", "-U", "-s", "0", "-w"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump (scripts/setup.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !file.exists() {
            assert!(std::time::Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        BridgeCapture { child, file }
    }

    /// Stops the capture; returns the raw bytes captured (every packet, headers and payload).
    pub fn stop(mut self) -> Vec<u8> {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGINT);
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
