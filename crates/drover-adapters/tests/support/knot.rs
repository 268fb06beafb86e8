//! A real Knot DNS server for tests: authoritative for `app.test.` on 127.0.0.1 at a free
//! port, with a TSIG key `drover` allowed to update the zone and a key `reader` that is not.
//! The server is a child process, killed and reaped on Drop.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Hang guard only: Knot answers within a fraction of a second here.
const START_GUARD: Duration = Duration::from_secs(30);

pub const ZONE: &str = "app.test.";
pub const RECORD: &str = "api.app.test.";
pub const EAST: &str = "10.200.0.11";
pub const WEST: &str = "10.200.0.12";

pub struct Knot {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// Base64 secret of key `drover` (may update the zone).
    pub secret: String,
    /// Base64 secret of key `reader` (known to the server, not in the update ACL).
    pub reader_secret: String,
}

impl Knot {
    /// Starts knotd and waits until it answers for the zone. Panics (never skips) when
    /// Knot is not installed: CI installs Debian `knot` and `knot-dnsutils`.
    pub fn start() -> Knot {
        for tool in ["knotd", "kdig", "keymgr"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false),
                "{tool} is not installed: install Debian packages `knot` and `knot-dnsutils` (apt-get install knot knot-dnsutils)"
            );
        }
        let secret = tsig_secret("drover");
        let reader_secret = tsig_secret("reader");
        // A port another process grabs between our probe and knotd's bind makes knotd fail: try again.
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("drover-knot-").tempdir().expect("temp dir");
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            write_config(dir.path(), port, &secret, &reader_secret);
            let log = std::fs::File::create(dir.path().join("knotd.log")).expect("log file");
            let child = Command::new(knotd())
                .arg("-c")
                .arg(dir.path().join("knot.conf"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn knotd");
            let mut knot = Knot { child, dir, addr, secret: secret.clone(), reader_secret: reader_secret.clone() };
            if knot.wait_until_serving() {
                return knot;
            }
            last_log = knot.log();
        }
        panic!("knotd did not start serving app.test.; its last log:\n{last_log}");
    }

    /// True once the zone answers; false if knotd exited. Panics after the hang guard.
    fn wait_until_serving(&mut self) -> bool {
        let deadline = Instant::now() + START_GUARD;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Connect first: kdig against a port nobody listens on yet waits out its whole timeout.
            let listening = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
            if listening && self.kdig(RECORD, "A").contains(EAST) {
                return true;
            }
            assert!(Instant::now() < deadline, "knotd did not answer within {START_GUARD:?}; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// `kdig @127.0.0.1 -p PORT NAME TYPE +short`-style answer lines: `name ttl class type rdata`.
    pub fn kdig(&self, name: &str, rtype: &str) -> String {
        let out = Command::new("kdig")
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.port().to_string(), name, rtype, "+noall", "+answer", "+time=1", "+retry=0"])
            .output()
            .expect("run kdig");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The (ttl, rdata) pairs kdig sees for `name`/`rtype`.
    pub fn kdig_records(&self, name: &str, rtype: &str) -> Vec<(u32, String)> {
        self.kdig(name, rtype)
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                match f.as_slice() {
                    [_, ttl, "IN", t, rdata @ ..] if *t == rtype => Some((ttl.parse().ok()?, rdata.join(" "))),
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn knotd() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/knotd");
    if sbin.exists() { sbin } else { PathBuf::from("knotd") }
}

/// A fresh random key, generated by Knot's own tool so its format is what users have.
fn tsig_secret(name: &str) -> String {
    let keymgr = if Path::new("/usr/sbin/keymgr").exists() { "/usr/sbin/keymgr" } else { "keymgr" };
    let out = Command::new(keymgr).args(["-t", name, "hmac-sha256"]).output().expect("run keymgr");
    assert!(out.status.success(), "keymgr -t failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:").map(|s| s.trim().to_string()))
        .expect("keymgr printed a secret")
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn write_config(dir: &Path, port: u16, secret: &str, reader_secret: &str) {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("app.test.zone"),
        format!(
            "$ORIGIN {ZONE}\n$TTL 60\n\
             @ SOA ns.app.test. hostmaster.app.test. 1 3600 600 86400 1\n\
             @ NS ns\n\
             ns A 127.0.0.1\n\
             api 1 A {EAST}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("knot.conf"),
        format!(
            r#"server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: "{d}/db"
key:
  - id: drover
    algorithm: hmac-sha256
    secret: {secret}
  - id: reader
    algorithm: hmac-sha256
    secret: {reader_secret}
acl:
  - id: drover-update
    key: drover
    action: update
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "app.test.zone"
    acl: drover-update
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
"#
        ),
    )
    .unwrap();
}
