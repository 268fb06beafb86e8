//! The lab's supervisor: a detached process (`drover lab supervise`) that starts the lab's
//! servers as its children, reaps them (and any orphan below it: it is a child subreaper,
//! since PID 1 here reaps nothing), restarts what should always run, and stops everything
//! on SIGTERM. A unix socket in the lab dir takes one-line commands (`start postgres-east`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};

use crate::LabError;
use crate::layout::{APP_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, LabDir, PG_BIN_DIR, REGIONS, RegionSpec, SERVE_PORT};
use crate::state::{LabState, ServiceState};
use crate::sys;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How long children get to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Delay before restarting a service that should always run.
const RESTART_DELAY: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(50);

#[derive(Clone, Copy)]
enum Kind {
    Knot,
    Postgres(&'static RegionSpec),
    App(&'static RegionSpec),
    /// `drover serve` for the lab's plan, one vantage per region (witness included).
    Serve(&'static RegionSpec),
    /// One member of the lab's etcd cluster (`lab up --ha`).
    Etcd(&'static RegionSpec),
}

struct Service {
    name: String,
    kind: Kind,
    pid: Option<u32>,
    /// The running process as it was started (`pid` with its start time and command line).
    process: Option<sys::Started>,
    /// Started on request and not to be restarted automatically (a killed database stays down).
    restart: bool,
    wanted: bool,
    next_start: Option<Instant>,
    starts: u32,
    last_exit: Option<String>,
}

struct Supervisor {
    lab: LabDir,
    state: LabState,
    exe: PathBuf,
    services: Vec<Service>,
}

/// Runs the supervisor for the lab at `dir` until SIGTERM. Call before any thread starts:
/// it makes this process the reaper of everything started below it.
pub fn supervise(dir: &Path) -> Result<(), LabError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| LabError::failed(format!("cannot become child subreaper: {e}")))?;
    let handler = SigAction::new(SigHandler::Handler(on_stop), SaFlags::empty(), SigSet::empty());
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = sigaction(Signal::SIGTERM, &handler);
        let _ = sigaction(Signal::SIGINT, &handler);
        let _ = sigaction(Signal::SIGHUP, &ignore);
        let _ = sigaction(Signal::SIGPIPE, &ignore);
    }
    let lab = LabDir::new(dir);
    let mut state = LabState::read(&lab)?;
    state.supervisor = sys::Started::this();
    let exe = std::env::current_exe().map_err(|e| LabError::failed(format!("cannot find the drover binary: {e}")))?;
    let mut services = vec![service("knot", Kind::Knot, true)];
    for region in REGIONS.iter().filter(|r| r.serves()) {
        services.push(service(&format!("postgres-{}", region.name), Kind::Postgres(region), false));
        services.push(service(&format!("app-{}", region.name), Kind::App(region), true));
    }
    for region in &REGIONS {
        services.push(service(&format!("serve-{}", region.name), Kind::Serve(region), true));
        services.push(service(&format!("etcd-{}", region.name), Kind::Etcd(region), true));
    }
    let mut sup = Supervisor { lab, state, exe, services };

    let socket = sup.lab.control_socket();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| LabError::failed(format!("{}: cannot listen: {e}", socket.display())))?;
    listener.set_nonblocking(true).map_err(|e| LabError::failed(format!("{}: {e}", socket.display())))?;
    log(&format!("supervising the lab in {} (pid {})", dir.display(), std::process::id()));

    // The standby's database starts on request, once `up` has made it by base backup.
    for name in ["knot", "postgres-east", "app-east", "app-west"] {
        if let Err(e) = sup.start(name) {
            log(&format!("{name}: {e}"));
        }
    }
    sup.save();
    while !STOP.load(Ordering::SeqCst) {
        let mut changed = sup.reap();
        changed |= sup.restart_due();
        while let Ok((stream, _)) = listener.accept() {
            sup.answer(stream);
            changed = true;
        }
        if changed {
            sup.save();
        }
        std::thread::sleep(TICK);
    }
    log("stopping");
    sup.shutdown();
    let _ = std::fs::remove_file(&socket);
    sup.state.supervisor = None;
    sup.save();
    log("stopped");
    Ok(())
}

fn service(name: &str, kind: Kind, restart: bool) -> Service {
    Service {
        name: name.into(),
        kind,
        pid: None,
        process: None,
        restart,
        wanted: false,
        next_start: None,
        starts: 0,
        last_exit: None,
    }
}

fn log(message: &str) {
    eprintln!("{} supervisor: {message}", sys::now_ms());
}

impl Supervisor {
    fn start(&mut self, name: &str) -> Result<u32, LabError> {
        let idx = self
            .services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| LabError::refused(format!("no service named '{name}'")))?;
        self.services[idx].wanted = true;
        if let Some(pid) = self.services[idx].pid.filter(|p| sys::alive(*p)) {
            return Ok(pid);
        }
        let kind = self.services[idx].kind;
        if let Kind::Postgres(region) = kind {
            let pgdata = self.lab.pgdata(region.name);
            // Started by someone else (e.g. pg_ctl through the plan's host exec): leave it be.
            if let Some(pid) = sys::postmaster(&pgdata) {
                return Ok(pid);
            }
            if !pgdata.join("PG_VERSION").exists() {
                return Err(LabError::failed(format!("{}: no database cluster yet", pgdata.display())));
            }
        }
        let process = self.spawn(kind)?;
        let pid = process.pid;
        let s = &mut self.services[idx];
        s.pid = Some(pid);
        s.process = Some(process);
        s.starts += 1;
        s.next_start = None;
        log(&format!("{name} started (pid {pid})"));
        Ok(pid)
    }

    fn spawn(&self, kind: Kind) -> Result<sys::Started, LabError> {
        let (mut cmd, log_path, region, user) = match kind {
            Kind::Knot => {
                let mut cmd = Command::new(sys::tool("knotd"));
                cmd.arg("-c").arg(self.lab.knot_conf());
                (cmd, self.lab.knot_log(), None, None)
            }
            Kind::Postgres(r) => {
                let mut cmd = Command::new(format!("{PG_BIN_DIR}/postgres"));
                cmd.arg("-D").arg(self.lab.pgdata(r.name)).current_dir(self.lab.region_dir(r.name));
                // The standby's walreceiver (libpq, over TLS) looks for a client certificate
                // under $HOME; root's home is unreadable to postgres, which libpq counts as an
                // error, so postgres gets its own, as `runuser -u postgres` would give it.
                cmd.env("HOME", sys::postgres_home()?);
                (cmd, self.lab.pg_log(r.name), Some(r), Some(sys::postgres_ids()?))
            }
            Kind::App(r) => {
                let mut cmd = Command::new(&self.exe);
                cmd.args(["lab", "app", "--region", r.name, "--listen", &format!("{}:{APP_PORT}", r.address)])
                    .arg("--dsn-file")
                    .arg(self.lab.dsn_file(r.name));
                (cmd, self.lab.app_log(r.name), Some(r), None)
            }
            Kind::Serve(r) => {
                let mut cmd = Command::new(&self.exe);
                cmd.args(["serve", "--vantage", r.name, "--listen", &format!("{}:{SERVE_PORT}", r.address)])
                    .arg("--plan")
                    .arg(self.lab.plan())
                    .arg("--token-file")
                    .arg(self.lab.api_tokens());
                // The API over TLS from the lab CA, which the daemons also trust for their peers.
                let tls = self.lab.serve_cert(r.name);
                cmd.arg("--tls-cert").arg(&tls.cert).arg("--tls-key").arg(&tls.key);
                cmd.arg("--ca-file").arg(self.lab.ca_cert());
                if self.state.ha {
                    // A short lease: the lab measures how fast a new leader takes over.
                    cmd.args(self.lab.etcd_store_args()).args(["--lease-ttl", "2"]);
                } else {
                    cmd.arg("--state").arg(self.lab.serve_state(r.name));
                    for peer in REGIONS.iter().filter(|p| p.name != r.name) {
                        cmd.arg("--peer").arg(format!("{}=https://{}:{SERVE_PORT}", peer.name, peer.address));
                    }
                }
                (cmd, self.lab.serve_log(r.name), Some(r), None)
            }
            Kind::Etcd(r) => {
                // TLS for clients and peers alike, with the member's certificate from the lab
                // CA; clients and peers must present one the CA signed too (and clients then
                // a password: auth is on).
                let peer = |r: &RegionSpec| format!("https://{}:{ETCD_PEER_PORT}", r.address);
                let cluster: Vec<String> = REGIONS.iter().map(|m| format!("{}={}", m.name, peer(m))).collect();
                let client = format!("https://{}:{ETCD_CLIENT_PORT}", r.address);
                let (cert, key, ca) = (self.lab.etcd_cert(r.name), self.lab.etcd_key(r.name), self.lab.ca_cert());
                let mut cmd = Command::new(sys::tool("etcd"));
                cmd.arg("--name")
                    .arg(r.name)
                    .arg("--data-dir")
                    .arg(self.lab.etcd_dir(r.name))
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer(r), "--initial-advertise-peer-urls", &peer(r)])
                    .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-token", "drover-lab"])
                    .args(["--initial-cluster-state", "new"])
                    .arg("--cert-file")
                    .arg(&cert)
                    .arg("--key-file")
                    .arg(&key)
                    .arg("--trusted-ca-file")
                    .arg(&ca)
                    .arg("--client-cert-auth")
                    .arg("--peer-cert-file")
                    .arg(&cert)
                    .arg("--peer-key-file")
                    .arg(&key)
                    .arg("--peer-trusted-ca-file")
                    .arg(&ca)
                    .arg("--peer-client-cert-auth")
                    // Raft's defaults (100 ms heartbeat, 1 s election); pre-vote keeps a member
                    // that only lost one peer from disrupting a leader the others still hear.
                    .args(["--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote"])
                    .args(["--logger", "zap", "--log-level", "warn"]);
                (cmd, self.lab.etcd_log(r.name), Some(r), None)
            }
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LabError::failed(format!("{}: {e}", log_path.display())))?;
        let err = out.try_clone().map_err(|e| LabError::failed(format!("{}: {e}", log_path.display())))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let namespace = match region {
            Some(r) => Some(
                File::open(format!("/run/netns/{}", r.namespace()))
                    .map_err(|e| LabError::failed(format!("namespace {}: {e}", r.namespace())))?,
            ),
            None => None,
        };
        enter(&mut cmd, namespace.as_ref(), user);
        let child = cmd.spawn().map_err(|e| LabError::failed(format!("{:?}: cannot start: {e}", cmd.get_program())))?;
        // Reaped by `reap` (waitpid(-1)), never through the Child handle: until then its pid
        // is not reused, so its start time read now is its own.
        sys::Started::child(child.id(), &cmd)
            .ok_or_else(|| LabError::failed(format!("{:?}: started but not found in /proc", cmd.get_program())))
    }

    /// Collects every exited child (services and orphans alike). True when a service ended.
    fn reap(&mut self) -> bool {
        let mut changed = false;
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exited with status {code}")),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, format!("killed by {}", sig.as_str())),
                Ok(WaitStatus::StillAlive) | Err(_) => return changed,
                Ok(_) => continue,
            };
            let pid = pid.as_raw() as u32;
            if let Some(s) = self.services.iter_mut().find(|s| s.pid == Some(pid)) {
                log(&format!("{} (pid {pid}) {how}", s.name));
                s.pid = None;
                s.process = None;
                s.last_exit = Some(how);
                if s.restart && s.wanted && !STOP.load(Ordering::SeqCst) {
                    s.next_start = Some(Instant::now() + RESTART_DELAY);
                }
                changed = true;
            }
        }
    }

    fn restart_due(&mut self) -> bool {
        let due: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.pid.is_none() && s.next_start.is_some_and(|t| t <= Instant::now()))
            .map(|s| s.name.clone())
            .collect();
        for name in &due {
            if let Err(e) = self.start(name) {
                log(&format!("{name}: restart failed: {e}"));
                if let Some(s) = self.services.iter_mut().find(|s| &s.name == name) {
                    s.next_start = Some(Instant::now() + RESTART_DELAY * 5);
                }
            }
        }
        !due.is_empty()
    }

    fn answer(&mut self, stream: UnixStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ping"] => format!("ok pid {}", std::process::id()),
            ["start", name] => match self.start(name) {
                Ok(pid) => format!("ok pid {pid}"),
                Err(e) => format!("error {}", e.to_string().replace('\n', " ")),
            },
            _ => format!("error unknown command '{}': use 'ping' or 'start SERVICE'", line.trim()),
        };
        let mut writer = &stream;
        let _ = writer.write_all(format!("{reply}\n").as_bytes());
    }

    /// Stops every child: databases with a fast shutdown (resumed first if paused), the rest
    /// with SIGTERM; SIGKILL after the grace period.
    fn shutdown(&mut self) {
        for s in &self.services {
            let Some(pid) = s.pid else { continue };
            match s.kind {
                Kind::Postgres(_) => {
                    for p in std::iter::once(pid).chain(sys::children(pid)) {
                        let _ = sys::signal(p, Signal::SIGCONT);
                    }
                    let _ = sys::signal(pid, Signal::SIGINT);
                }
                _ => {
                    let _ = sys::signal(pid, Signal::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.services.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(TICK);
        }
        for s in self.services.iter().filter(|s| s.pid.is_some()) {
            let pid = s.pid.unwrap_or_default();
            log(&format!("{} (pid {pid}) did not stop within {}s: SIGKILL", s.name, STOP_GRACE.as_secs()));
            for p in std::iter::once(pid).chain(sys::children(pid)) {
                let _ = sys::signal(p, Signal::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.services.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(TICK);
        }
        // Orphans that were still exiting.
        std::thread::sleep(Duration::from_millis(200));
        self.reap();
    }

    fn save(&mut self) {
        self.state.services = self
            .services
            .iter()
            .filter(|s| s.starts > 0)
            .map(|s| {
                let state =
                    ServiceState { process: s.process.clone(), starts: s.starts, last_exit: s.last_exit.clone() };
                (s.name.clone(), state)
            })
            .collect();
        if let Err(e) = self.state.write(&self.lab) {
            log(&format!("cannot record state: {e}"));
        }
    }
}

/// Makes `cmd` start inside `namespace` and as `user`. Done in the child between fork and
/// exec, so the server is this process's direct child with its own pid (no `ip netns exec`
/// or `runuser` in between).
fn enter(cmd: &mut Command, namespace: Option<&File>, user: Option<(Uid, Gid)>) {
    let ns_fd = namespace.map(|f| f.as_raw_fd());
    // SAFETY: only async-signal-safe system calls run between fork and exec; the namespace
    // file stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = ns_fd {
                nix::sched::setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET)?;
            }
            if let Some((uid, gid)) = user {
                nix::unistd::setgroups(&[gid])?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
            }
            Ok(())
        });
    }
}

/// Sends one command to the lab's supervisor and returns its answer (`pid N`).
pub fn request(lab: &LabDir, command: &str) -> Result<String, LabError> {
    let socket = lab.control_socket();
    let not_running = |e: std::io::Error| {
        LabError::failed(format!(
            "the lab supervisor is not running ({}: {e}); see {}, then 'drover lab down' and 'drover lab up'",
            socket.display(),
            lab.supervisor_log().display()
        ))
    };
    let mut stream = UnixStream::connect(&socket).map_err(not_running)?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(not_running)?;
    stream.write_all(format!("{command}\n").as_bytes()).map_err(not_running)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(not_running)?;
    let line = line.trim();
    match line.split_once(' ') {
        Some(("ok", rest)) => Ok(rest.to_string()),
        Some(("error", rest)) => Err(LabError::failed(format!("supervisor: {command}: {rest}"))),
        _ => Err(LabError::failed(format!("supervisor: {command}: unexpected answer '{line}'"))),
    }
}
