//! `up` and `down`: building a whole lab, and leaving nothing of it behind.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::http::http_get;
use crate::layout::{
    APP_PORT, DNS_PORT, ETCD_CLIENT_PORT, ETCD_PREFIX, HUB_ADDRESS, LabDir, RECORD, REGIONS, Role, SERVE_PORT, absolute,
};
use crate::state::{LabState, Replication};
use crate::{LabError, knot, net, ownership, plan_file, postgres, supervisor, sys};

/// Hang guard for each readiness wait of `up` (each is usually well under a few seconds).
const READY_GUARD: Duration = Duration::from_secs(90);

/// A lab that came up.
#[derive(Debug)]
pub struct Up {
    pub dir: PathBuf,
    pub plan: PathBuf,
    pub replication: Replication,
    pub daemons: bool,
    /// The daemons coordinate through the lab's 3-member etcd cluster.
    pub ha: bool,
    pub took: Duration,
    /// Host settings that may hurt the lab, for the person to fix.
    pub warnings: Vec<String>,
}

impl Up {
    pub fn summary(&self) -> String {
        let dir_arg = if self.dir == Path::new(crate::DEFAULT_DIR) {
            String::new()
        } else {
            format!(" --dir {}", self.dir.display())
        };
        let mut out = format!(
            "lab up in {:.1} s at {} ({} replication)\n",
            self.took.as_secs_f64(),
            self.dir.display(),
            self.replication.as_str()
        );
        for r in &REGIONS {
            let what = match r.role {
                Role::Primary => format!("postgres primary :5432, app :{APP_PORT}"),
                Role::Standby => format!("postgres standby :5432 (streaming), app :{APP_PORT}"),
                Role::Witness => "witness (no service)".into(),
            };
            let serve = if self.daemons { format!(", drover serve :{SERVE_PORT}") } else { String::new() };
            let serve = if self.ha { format!("{serve}, etcd :{ETCD_CLIENT_PORT}") } else { serve };
            out.push_str(&format!("  {:<8} {:<12} netns drover-{:<8} {what}{serve}\n", r.name, r.address, r.name));
        }
        let primary = REGIONS.iter().find(|r| r.role == Role::Primary).expect("a primary");
        out.push_str(&format!(
            "  {:<8} {:<12} Knot DNS :{DNS_PORT}, {RECORD} -> {} (TSIG key drover)\n",
            "hub", HUB_ADDRESS, primary.address
        ));
        out.push_str(&format!("plan: {}\n", self.plan.display()));
        if self.ha {
            out.push_str(&format!(
                "store: {} (etcd over TLS with auth; east leads etcd and the daemons' election)\n",
                LabDir::new(&self.dir).etcd_store_args().join(" ")
            ));
        }
        out.push_str("next:\n");
        out.push_str(&format!("  drover status --plan {}\n", self.plan.display()));
        let daemons = if self.daemons { " --daemons" } else { "" };
        out.push_str(&format!("  drover drill --plan {} --fault blackout:east{daemons}\n", self.plan.display()));
        out.push_str(&format!(
            "  drover lab status{dir_arg}    drover lab fault blackout east{dir_arg}    drover lab heal east{dir_arg}\n"
        ));
        out.push_str(&format!("  drover lab down{dir_arg}\n"));
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

/// Builds the lab at `dir` and returns once every part answers; the lab keeps running under
/// its supervisor after this returns.
/// Builds the lab; with `daemons`, a `drover serve` in each region (east, west, witness)
/// watching the lab's plan, which then fails over by itself.
///
/// With `ha`, the daemons keep their journal in a 3-member etcd cluster (one member
/// per region) and elect a leader; the lab starts with east, the primary region,
/// leading both etcd and the election: the worst case when east is lost.
pub async fn up(dir: &Path, replication: Replication, daemons: bool, ha: bool) -> Result<Up, LabError> {
    sys::require_root()?;
    sys::require_tools()?;
    if ha {
        sys::require_tool("etcd", "etcd-server")?;
    }
    let daemons = daemons || ha;
    let started = Instant::now();
    let lab = LabDir::new(absolute(dir));
    ownership::check_reusable(lab.root(), &lab.marker())?;
    refuse_if_up(&lab)?;
    make_dir(&lab)?;
    let warnings = net::bridge_filter_warnings();
    let partly = |e: LabError| {
        LabError::failed(format!(
            "{e}\nthe lab is partly up; logs are in {root} (supervisor.log, east/postgres.log, west/postgres.log, knot/knotd.log); \
             remove it with 'drover lab down --dir {root}'",
            root = lab.root().display()
        ))
    };
    build(&lab, replication, daemons, ha).await.map_err(partly)?;
    Ok(Up {
        dir: lab.root().to_path_buf(),
        plan: lab.plan(),
        replication,
        daemons,
        ha,
        took: started.elapsed(),
        warnings,
    })
}

fn read_trimmed(path: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
}

fn refuse_if_up(lab: &LabDir) -> Result<(), LabError> {
    let running = running_supervisors();
    let leftovers = net::leftovers();
    if running.is_empty() && leftovers.is_empty() {
        return Ok(());
    }
    let mut what = leftovers;
    what.extend(running.iter().map(|d| format!("supervisor for {}", d.display())));
    let down_dir = running.first().cloned().unwrap_or_else(|| lab.root().to_path_buf());
    let dir_arg = if down_dir == Path::new(crate::DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {}", down_dir.display())
    };
    Err(LabError::refused(format!(
        "a lab is already up on this machine ({}); only one can exist at a time: run 'drover lab down{dir_arg}' first",
        what.join(", ")
    )))
}

/// Lab dirs that have a live supervisor.
fn running_supervisors() -> Vec<PathBuf> {
    sys::processes_mentioning("lab supervise")
        .into_iter()
        .filter_map(|pid| {
            let cmd = sys::cmdline(pid);
            let dir = cmd.split_once("--dir ")?.1.trim();
            Some(PathBuf::from(dir))
        })
        .collect()
}

fn make_dir(lab: &LabDir) -> Result<(), LabError> {
    let root = lab.root();
    ownership::make_lab_dir(root, &lab.marker())?;
    sys::write_file(&lab.marker(), "drover lab directory: 'drover lab down' removes it\n")?;
    // PostgreSQL runs as the postgres OS user, which must reach its data dir under this one.
    let reachable = Command::new(sys::tool("runuser"))
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(root)
        .current_dir("/")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !reachable {
        let _ = std::fs::remove_dir_all(root);
        return Err(LabError::refused(format!(
            "the postgres OS user cannot reach {} (a parent directory is private); choose a --dir under /tmp",
            root.display()
        )));
    }
    sys::create_dir(&lab.secrets(), 0o700)
}

async fn build(lab: &LabDir, replication: Replication, daemons: bool, ha: bool) -> Result<(), LabError> {
    net::create()?;

    // Every TLS endpoint's certificate is issued by it below, before anything starts.
    let ca = crate::pki::LabCa::create(&lab.pki())?;
    // The CA certificate is public; this copy is the one the postgres OS user can read.
    sys::write_file(
        &lab.shared_ca_cert(),
        &std::fs::read_to_string(ca.cert_file())
            .map_err(|e| LabError::failed(format!("{}: {e}", ca.cert_file().display())))?,
    )?;
    let ca_file = lab.shared_ca_cert();
    std::fs::set_permissions(&ca_file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| LabError::failed(format!("{}: {e}", ca_file.display())))?;
    if ha {
        prepare_etcd(lab, &ca)?;
    }
    let password = sys::random_hex(16)?;
    for r in REGIONS.iter().filter(|r| r.serves()) {
        sys::write_private(&lab.dsn_file(r.name), &postgres::dsn(r.address, &password, &ca_file))?;
    }
    let tsig = knot::generate_tsig_secret()?;
    sys::write_private(&lab.tsig_key(), &tsig)?;
    knot::prepare(lab, &tsig)?;
    // Read by the plan (vantages.key_file), so written before it.
    sys::write_private(&lab.peer_key(), &sys::random_hex(32)?)?;
    sys::write_file(&lab.plan(), &plan_file::plan_yaml(lab, replication, daemons))?;
    if daemons {
        // The operator's token alone for the drill and tests; the daemons' file names it
        // `operator` beside one peer token per daemon, which each shows its peers.
        let operator = sys::random_hex(24)?;
        let mut tokens = format!("# Written by 'drover lab up': NAME ROLE TOKEN\noperator operator {operator}\n");
        for r in crate::layout::REGIONS {
            tokens.push_str(&format!("{} peer {}\n", r.name, sys::random_hex(24)?));
        }
        sys::write_private(&lab.api_token(), &operator)?;
        sys::write_private(&lab.api_tokens(), &tokens)?;
        for r in &REGIONS {
            let issued = ca.issue(&format!("serve-{}", r.name), &[r.address.into()], &[])?;
            debug_assert_eq!(issued.cert, lab.serve_cert(r.name).cert);
        }
    }
    LabState::new(lab, replication, daemons, ha).write(lab)?;

    for r in REGIONS.iter().filter(|r| r.serves()) {
        postgres::prepare_region(lab, r.name, r.address, replication)?;
        let issued = ca.issue(&format!("postgres-{}", r.name), &[r.address.into()], &[])?;
        postgres::install_server_cert(lab, r.name, &issued)?;
    }
    let primary = REGIONS.iter().find(|r| r.role == Role::Primary).expect("a primary");
    let standby = REGIONS.iter().find(|r| r.role == Role::Standby).expect("a standby");
    postgres::initdb(lab, primary.name, &password)?;

    spawn_supervisor(lab)?;

    let primary_dsn = postgres::dsn(primary.address, &password, &ca_file);
    let client = postgres::wait_connect(&primary_dsn, READY_GUARD).await.map_err(|e| {
        LabError::failed(format!(
            "{} database did not accept connections: {e}; its log ends:\n{}",
            primary.name,
            sys::tail(&lab.pg_log(primary.name), 15)
        ))
    })?;
    postgres::create_app_table(&client).await.map_err(|e| {
        LabError::failed(format!(
            "{} database: creating the app's tables (lab_writes, lab_canary_writes): {e}",
            primary.name
        ))
    })?;

    postgres::basebackup(lab, standby.name, primary.address, &password)?;
    supervisor::request(lab, &format!("start postgres-{}", standby.name))?;
    let standby_dsn = postgres::dsn(standby.address, &password, &ca_file);
    postgres::wait_connect(&standby_dsn, READY_GUARD).await.map_err(|e| {
        LabError::failed(format!(
            "{} database did not accept connections: {e}; its log ends:\n{}",
            standby.name,
            sys::tail(&lab.pg_log(standby.name), 15)
        ))
    })?;
    wait_streaming(lab, &client, standby.name, replication).await?;

    wait_dns(lab, primary.address.into()).await?;
    for r in REGIONS.iter().filter(|r| r.serves()) {
        wait_app(lab, r.name, r.address.into()).await?;
    }
    if ha {
        start_etcd(lab).await?;
        // East first, and alone until it leads: the others then queue behind it.
        supervisor::request(lab, "start serve-east")?;
        wait_election_leader(lab, "east").await?;
        for r in REGIONS.iter().filter(|r| r.name != "east") {
            supervisor::request(lab, &format!("start serve-{}", r.name))?;
        }
    } else if daemons {
        for r in &REGIONS {
            supervisor::request(lab, &format!("start serve-{}", r.name))?;
        }
    }
    if daemons {
        // Over https, trusting the lab CA alone: the daemons' TLS is checked as a client would.
        let tls =
            drover_adapters::tls::client_config(&lab.ca_cert(), None).map_err(|e| LabError::failed(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| LabError::failed(format!("http client: {e}")))?;
        for r in &REGIONS {
            let url = format!("https://{}:{SERVE_PORT}/readyz", r.address);
            let get = || async {
                let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
                let code = response.status().as_u16();
                Ok((code, response.text().await.unwrap_or_default()))
            };
            wait_http(get, &url, &format!("{} daemon", r.name), &lab.serve_log(r.name)).await?;
        }
    }
    Ok(())
}

/// What the etcd members need before they start: each a certificate from the lab CA for
/// its address (serving clients and peers, and presented to peers as a client), a client
/// certificate for drover, and the passwords of etcd's `root` and `ETCD_USER`, random per
/// lab, in the secrets dir.
fn prepare_etcd(lab: &LabDir, ca: &crate::pki::LabCa) -> Result<(), LabError> {
    for r in &REGIONS {
        let issued = ca.issue(&format!("etcd-{}", r.name), &[r.address.into()], &[])?;
        debug_assert_eq!((issued.cert, issued.key), (lab.etcd_cert(r.name), lab.etcd_key(r.name)));
    }
    // Named after no etcd user: the password, not the certificate, says who the client is.
    let client = ca.issue("etcd-client", &[], &[])?;
    debug_assert_eq!((client.cert, client.key), (lab.etcd_client_cert(), lab.etcd_client_key()));
    sys::write_private(&lab.etcd_root_password(), &sys::random_hex(16)?)?;
    sys::write_private(&lab.etcd_password(), &sys::random_hex(16)?)
}

/// Starts the three etcd members, waits for a raft leader, turns etcd's auth on (a
/// `root` user, and `ETCD_USER` limited to the lab's prefix), and moves raft leadership
/// to east.
async fn start_etcd(lab: &LabDir) -> Result<(), LabError> {
    for r in &REGIONS {
        supervisor::request(lab, &format!("start etcd-{}", r.name))?;
    }
    let logs = || REGIONS.iter().map(|r| sys::tail(&lab.etcd_log(r.name), 5)).collect::<Vec<_>>().join("\n");
    let not_ready = |why: String| {
        LabError::failed(format!("the lab's etcd cluster is not ready: {why}; its logs end:\n{}", logs()))
    };
    let before_auth = lab.etcd_tls_access(crate::layout::etcd_members())?;
    let user = drover_store::EtcdUser {
        name: crate::layout::ETCD_USER.into(),
        password: drover_core::secret::Secret::new(read_trimmed(&lab.etcd_password())?),
    };
    let root_password = drover_core::secret::Secret::new(read_trimmed(&lab.etcd_root_password())?);
    let started = Instant::now();
    loop {
        let enabled = drover_store::cluster::enable_auth(&before_auth, &root_password, &user, ETCD_PREFIX).await;
        match enabled {
            Ok(()) => break,
            Err(e) if started.elapsed() > READY_GUARD => return Err(not_ready(e.to_string())),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let root = lab.etcd_root_access()?;
    loop {
        let result = match drover_store::cluster::raft_leader(&root).await {
            Ok(leader) if leader == "east" => return Ok(()),
            Ok(_) => drover_store::cluster::move_raft_leader(&root, "east").await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if started.elapsed() > READY_GUARD {
            let why = result.err().unwrap_or_else(|| "raft leadership did not move to east".into());
            return Err(LabError::failed(format!(
                "the lab's etcd cluster is not ready: {why}; its logs end:\n{}",
                logs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `region`'s daemon leads the daemons' election.
async fn wait_election_leader(lab: &LabDir, region: &str) -> Result<(), LabError> {
    let endpoints = lab.etcd_access(crate::layout::etcd_members())?;
    let election = format!("{}/leader", crate::layout::ETCD_PREFIX);
    let started = Instant::now();
    loop {
        let last = match drover_store::cluster::election_leader(&endpoints, &election).await {
            Ok(Some(leader)) if leader == region => return Ok(()),
            Ok(other) => format!("the leader is {}", other.as_deref().unwrap_or("nobody")),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > READY_GUARD {
            return Err(LabError::failed(format!(
                "the {region} daemon did not take the lead: {last}; its log ends:\n{}",
                sys::tail(&lab.serve_log(region), 10)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `get` answers 200 (the lab app's health, a daemon's readiness at `at`).
async fn wait_http<F, Fut>(get: F, at: &str, what: &str, log: &Path) -> Result<(), LabError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(u16, String), String>>,
{
    let started = Instant::now();
    loop {
        let last = match get().await {
            Ok((200, _)) => return Ok(()),
            Ok((code, body)) => format!("{code} {}", body.trim()),
            Err(e) => e,
        };
        if started.elapsed() > READY_GUARD {
            return Err(LabError::failed(format!(
                "{what} on {at} is not ready: {last}; its log ends:\n{}",
                sys::tail(log, 10)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `drover lab supervise` in its own session, detached from this process.
fn spawn_supervisor(lab: &LabDir) -> Result<(), LabError> {
    let exe = std::env::current_exe().map_err(|e| LabError::failed(format!("cannot find the drover binary: {e}")))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.supervisor_log())
        .map_err(|e| LabError::failed(format!("{}: {e}", lab.supervisor_log().display())))?;
    let err = log.try_clone().map_err(|e| LabError::failed(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["lab", "supervise", "--dir"])
        .arg(lab.root())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    cmd.spawn().map_err(|e| LabError::failed(format!("cannot start the lab supervisor: {e}")))?;
    // Wait for its control socket, so later requests reach it.
    let started = Instant::now();
    while supervisor::request(lab, "ping").is_err() {
        if started.elapsed() > READY_GUARD {
            return Err(LabError::failed(format!(
                "the lab supervisor did not start; its log ends:\n{}",
                sys::tail(&lab.supervisor_log(), 15)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

async fn wait_streaming(
    lab: &LabDir,
    primary: &tokio_postgres::Client,
    standby: &str,
    replication: Replication,
) -> Result<(), LabError> {
    let want_sync = replication == Replication::Synchronous;
    let started = Instant::now();
    let mut last = String::from("not connected");
    while started.elapsed() < READY_GUARD {
        match postgres::replication_of(primary, standby).await {
            Ok(Some((state, sync))) if state == "streaming" && (!want_sync || sync == "sync") => return Ok(()),
            Ok(Some((state, sync))) => last = format!("{state}, {sync}"),
            Ok(None) => last = "not connected".into(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LabError::failed(format!(
        "{standby} database is not streaming from the primary after {}s ({last}); its log ends:\n{}",
        READY_GUARD.as_secs(),
        sys::tail(&lab.pg_log(standby), 15)
    )))
}

async fn wait_dns(lab: &LabDir, expected: IpAddr) -> Result<(), LabError> {
    let server = SocketAddr::new(HUB_ADDRESS.into(), DNS_PORT);
    let started = Instant::now();
    loop {
        let last = match drover_adapters::dns::resolve(server, RECORD).await {
            Ok((addresses, _)) if addresses.contains(&expected) => return Ok(()),
            Ok((addresses, _)) => format!("it answers {addresses:?}"),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > READY_GUARD {
            return Err(LabError::failed(format!(
                "Knot DNS on {server} does not answer {RECORD} with {expected}: {last}; its log ends:\n{}",
                sys::tail(&lab.knot_log(), 15)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_app(lab: &LabDir, region: &str, address: IpAddr) -> Result<(), LabError> {
    let addr = SocketAddr::new(address, APP_PORT);
    let get = || http_get(addr, "/healthz", Duration::from_secs(1));
    wait_http(get, &addr.to_string(), &format!("{region} app"), &lab.app_log(region)).await
}

/// What `down` removed; empty when nothing of a lab was there.
#[derive(Debug, Default)]
pub struct Downed {
    pub removed: Vec<String>,
    /// Things a person should know (e.g. a directory left in place).
    pub notes: Vec<String>,
}

impl Downed {
    pub fn summary(&self, dir: &Path) -> String {
        let mut out = if self.removed.is_empty() {
            format!("no lab was up at {}; nothing to do\n", dir.display())
        } else {
            format!("lab down: removed {}\n", self.removed.join(", "))
        };
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// Stops everything the lab at `dir` started and removes its network and directory.
/// Safe to run any number of times. It signals only processes the lab recorded when it
/// started them (pid, start time and command line, in `lab.json`) or that PostgreSQL
/// recorded in the lab's data dirs, and only while each is still that process: never one
/// found by what its command line mentions, nor one it cannot tell from a stranger.
pub fn down(dir: &Path) -> Result<Downed, LabError> {
    sys::require_root()?;
    let lab = LabDir::new(absolute(dir));
    let root = lab.root().to_path_buf();
    // Believes nothing (pids, paths) from a directory someone else could have written.
    ownership::check_own(&root)?;
    let is_lab = lab.marker().exists();
    let mut removed = Vec::new();
    let mut notes = Vec::new();
    let state = if is_lab { LabState::read(&lab).ok() } else { None };

    let supervisor: Vec<sys::Started> =
        state.as_ref().and_then(|s| s.supervisor.clone()).filter(sys::Started::running).into_iter().collect();
    // The supervisor gives its children 10 s before SIGKILL; give it a little more.
    if stop(&supervisor, Signal::SIGTERM, Duration::from_secs(15)) {
        removed.push("supervisor".to_string());
    }

    // What the supervisor started and could not stop (it was killed): by its records.
    let services: Vec<sys::Started> = state
        .iter()
        .flat_map(|s| s.services.values())
        .filter_map(|s| s.process.clone())
        .filter(sys::Started::running)
        .collect();
    for p in &services {
        p.signal(Signal::SIGCONT);
    }
    if stop(&services, Signal::SIGTERM, Duration::from_secs(5)) {
        removed.push(format!("{} service(s) the supervisor had left", services.len()));
    }

    // Databases started outside the supervisor (pg_ctl through the plan's host exec), by the
    // pid each recorded in its data dir, once checked (`sys::postmaster`). Resumed first in
    // case a fault paused them; a fast shutdown.
    let postmasters: Vec<sys::Started> = if is_lab {
        REGIONS
            .iter()
            .filter_map(|r| sys::postmaster(&lab.pgdata(r.name)))
            .filter_map(|pid| Some(sys::Started { pid, start: sys::start_ticks(pid)?, argv: sys::argv(pid) }))
            .collect()
    } else {
        Vec::new()
    };
    for p in &postmasters {
        p.signal(Signal::SIGCONT);
        for child in sys::children(p.pid) {
            let _ = sys::signal(child, Signal::SIGCONT);
        }
    }
    if stop(&postmasters, Signal::SIGINT, Duration::from_secs(10)) {
        removed.push(format!("{} database(s) started outside the supervisor", postmasters.len()));
    }

    // Whatever else still runs in the lab's namespaces was not started by the lab: named,
    // and left alone (deleting a namespace does not end what runs in it).
    for r in &REGIONS {
        if net::namespace_exists(&r.namespace())
            && let Ok(out) = sys::run("ip", &["netns", "pids", &r.namespace()])
        {
            for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).filter(|p| sys::alive(*p)) {
                notes.push(format!(
                    "pid {pid} ({}) runs in the lab's namespace {} but was not started by the lab; left running",
                    sys::cmdline(pid),
                    r.namespace()
                ));
            }
        }
    }

    removed.extend(net::remove());

    if is_lab {
        std::fs::remove_dir_all(&root)
            .map_err(|e| LabError::failed(format!("{}: cannot remove: {e}", root.display())))?;
        removed.push(root.display().to_string());
    } else if root.exists() {
        notes.push(format!("{} is not a drover lab directory; left in place", root.display()));
    }
    Ok(Downed { removed, notes })
}

/// Sends `first` to each recorded process still running, waits up to `grace` for them to
/// end, then SIGKILLs those still running (checked again: a pid freed meanwhile may be
/// someone else's). True when there was anything to stop.
fn stop(processes: &[sys::Started], first: Signal, grace: Duration) -> bool {
    for p in processes {
        p.signal(first);
    }
    if !wait_gone(processes, grace) {
        for p in processes {
            p.signal(Signal::SIGKILL);
        }
        wait_gone(processes, Duration::from_secs(5));
    }
    !processes.is_empty()
}

fn wait_gone(processes: &[sys::Started], guard: Duration) -> bool {
    let started = Instant::now();
    while processes.iter().any(sys::Started::running) {
        if started.elapsed() > guard {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}
