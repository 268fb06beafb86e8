//! `drover serve`: protect a plan around the clock. This vantage probes every
//! check, exchanges reports with its peers, and when a quorum sees the primary
//! region down and every gate holds, fails over by itself (or asks a person).
//! The daemon's front end over the application layer (`crate::app`), beside the CLI's.

pub mod api;
pub mod backups;
pub mod daemon;
#[cfg(feature = "fault-injection")]
mod faults;
pub mod leadership;
pub mod listener;
pub mod metrics;
pub mod peers;
pub mod readiness;
pub mod supervisor;
mod tls_files;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use drover_core::vantage::VantageExchange;
use drover_store::EtcdVantages;

use crate::app::context::Context;
use crate::app::error::{Failure, store_failure};
use crate::app::runtime;
use crate::app::store::{PlanArgs, etcd_store};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Address for the API and /metrics. Off loopback, --token-file and --tls-cert/--tls-key
    /// are required: tokens never cross the network in clear.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// This vantage's name. Name it after the plan region it runs in (east, west,
    /// witness): a vantage in a region judged down never starts a run.
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub vantage: String,
    /// How often, in seconds, the readiness rules are evaluated ('drover readiness'; gauge
    /// drover_readiness, GET /api/v1/readiness, readiness_changed notifications). Each round
    /// reads every resource of the plan, so AWS calls cost: 300 by default; 0 never.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub readiness_every: u64,
    /// Another vantage, by the name you give it and its base URL (repeat for each), e.g.
    /// west=https://10.200.0.12:7070. Its reports count toward policy.quorum under that name
    /// only: a report that names itself otherwise is dropped, and one is trusted for at
    /// most a report's time to live after it arrived, whatever it claims.
    #[arg(long = "peer", value_name = "NAME=URL")]
    pub peers: Vec<String>,
    /// Who may call the API: one `NAME ROLE TOKEN` a line (# for comments). Roles: operator
    /// (reads; starts, approves, resumes, aborts runs, recorded under NAME), reader (reads),
    /// peer (reads: another daemon). This daemon shows its peers the token of the `peer`
    /// entry named like its --vantage, so give every daemon the same file. A file with one
    /// bare token is the operator `token`, as before names. See docs/serve.md.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Most connections open at once; at the limit an idle one is closed to make room (one that
    /// never sent a request first; requests in flight are never cut), so idle floods cannot lock
    /// peers or people out.
    /// Lowered to fit the open-file limit after one socket per check.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    pub max_connections: u64,
    /// How long a client has to finish the TLS handshake and send a request's headers, also
    /// between requests on a kept-alive connection; slower clients are disconnected.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout: u64,
    /// A DNS name clients may use for this daemon in the Host header (repeat for each). Requests
    /// by IP address always pass; a name not listed is refused (421), so a web page elsewhere
    /// cannot reach the API through DNS rebinding.
    #[arg(long = "name", value_name = "HOST")]
    pub names: Vec<String>,
    /// Let anyone who can reach the listen address read (plan, regions, vantage report, runs)
    /// without a token. Loopback only: every local user can then read.
    #[arg(long)]
    pub open_reads: bool,
    /// With --store etcd://...: how long a leader that stops renewing its lease (dead, or cut
    /// off from etcd) keeps the role before another daemon takes over. Shorter fails over
    /// sooner; it must stay above etcd's election timeout (default 1s) plus network jitter.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_ttl: u64,
}

/// Serves until the process ends; an error is why the daemon could not start (or stopped serving).
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let tokens = args.token_file.as_deref().map(tokens::Tokens::read).transpose()?;
    let loopback = args.listen.ip().is_loopback();
    if !loopback && tokens.is_none() {
        return Err(Failure::input(format!(
            "--listen {} is not a loopback address: give --token-file so that only holders of the token can read or change runs",
            args.listen
        )));
    }
    if args.open_reads && !loopback {
        return Err(Failure::input(format!(
            "--open-reads: --listen {} is not a loopback address; off loopback every read needs a token (give a reader one)",
            args.listen
        )));
    }
    let tls = args.tls.server_config()?;
    if !loopback && tls.is_none() {
        return Err(Failure::input(format!(
            "--listen {} is not a loopback address: give --tls-cert and --tls-key so that tokens and reports are not sent in clear \
             (or listen on 127.0.0.1 behind a proxy that terminates TLS)",
            args.listen
        )));
    }
    let peers = peers::named(&args.peers, &args.vantage)?;
    // The token shown to peers: this daemon's own `peer` entry.
    let peer_token = tokens.as_ref().and_then(|t| t.peer_token(&args.vantage)).map(str::to_owned);
    if let (Some(path), false, None) = (&args.token_file, peers.is_empty(), &peer_token) {
        return Err(Failure::input(format!(
            "--token-file {}: no `peer` entry named '{}' (this --vantage) to show its peers; add a line `{} peer <token>`",
            path.display(),
            args.vantage,
            args.vantage
        )));
    }
    for (_, peer) in &peers {
        crate::app::daemon_client::check_url("--peer", peer)?;
    }
    let peer_client = crate::app::daemon_client::build(
        args.tls.ca_file.as_deref(),
        args.tls.identity(),
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(1),
    )?;
    let hosts = listener::Hosts {
        names: args.names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect(),
        loopback,
    };
    let etcd = etcd_store(&args.plan)?;
    if etcd.is_some() && !args.peers.is_empty() {
        return Err(Failure::input(
            "--peer is not used with --store etcd://...: the daemons share their reports through etcd; drop --peer",
        ));
    }
    if tokens.is_none() && !args.open_reads {
        return Err(Failure::input(
            "give --token-file FILE (reads and changes then need a token of it), or --open-reads to let anyone who can reach the loopback address read without one",
        ));
    }
    runtime().block_on(async move {
        let cx = Context::open(&args.plan).await?;
        let rules = Arc::new(report_rules(&cx.plan, &args.vantage, &peers, etcd.is_some())?);
        let max_connections = raise_open_file_limit(&cx, args.max_connections);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::input(format!("--listen {}: {e}", args.listen)))?;
        let lease_ttl = std::time::Duration::from_secs(args.lease_ttl);
        let mut http_peers = None;
        let (exchange, election): (Arc<dyn VantageExchange>, _) = match etcd {
            None => {
                let peers = Arc::new(peers::HttpPeers::new(peers, peer_client, peer_token.as_deref(), Arc::clone(&rules)));
                http_peers = Some(Arc::clone(&peers));
                (peers, None)
            }
            Some(store) => {
                // A silent vantage's report leaves etcd once it would have expired anyway.
                let ttl = std::time::Duration::from_millis(drover_core::vantage::report_ttl_ms(&cx.plan));
                let vantages =
                    EtcdVantages::connect(&store.access, &store.prefix, &args.vantage, ttl, Arc::clone(&rules))
                    .await
                    .map_err(store_failure)?;
                (Arc::new(vantages), Some(Arc::new(leadership::Election::new(store, lease_ttl))))
            }
        };
        let coordination = if election.is_some() { "etcd leader election" } else { "acting vantage" };
        let daemon = Arc::new(daemon::Daemon::new(cx, args.vantage.clone(), exchange, rules, election));
        daemon.spawn();
        if let Some(peers) = &http_peers {
            peers.spawn(&daemon.loops, &args.vantage);
        }
        backups::spawn_schedule(&daemon);
        readiness::spawn(&daemon, std::time::Duration::from_secs(args.readiness_every));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(vantage = %args.vantage, listen = %args.listen, scheme, peers = ?args.peers, plan = %daemon.cx.plan.name, coordination, "serving");
        let loops = Arc::clone(&daemon.loops);
        let app = api::router(api::Api { daemon, tokens, open_reads: args.open_reads });
        let limits = listener::Limits {
            max_connections: max_connections as usize,
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
        };
        tokio::select! {
            served = listener::serve(listener, app, tls.map(Arc::new), limits, hosts) => {
                served.map_err(|e| Failure::failed(format!("serving the API: {e}")))
            }
            // A loop died and could not be restarted: exit 1, naming it, for systemd or
            // Kubernetes to start the whole daemon again.
            why = loops.failed() => Err(Failure::failed(why)),
        }
    })
}

/// The plan's rules for reports, with its peer key read; a --vantage or --peer name the
/// plan's `vantages.names` does not list is refused (its votes would never count).
fn report_rules(
    plan: &drover_core::plan::Plan,
    vantage: &str,
    peers: &[(String, String)],
    through_etcd: bool,
) -> Result<drover_core::vantage::ReportRules, Failure> {
    use drover_core::secret::SecretSource;
    let listed = &plan.vantages.names;
    if through_etcd && listed.is_empty() {
        // Through etcd no --peer names the vantages: without a list, any name written under
        // the prefix would vote (and one sorting first would become the acting vantage).
        return Err(Failure::input(format!(
            "{}: with --store etcd://... the plan must list its vantages (vantages.names; and vantages.key_file \
             to sign their reports): a report under any other name is then dropped",
            plan.source.display()
        )));
    }
    if !listed.is_empty() {
        let unlisted = std::iter::once(("--vantage", vantage))
            .chain(peers.iter().map(|(name, _)| ("--peer", name.as_str())))
            .find(|(_, name)| !listed.iter().any(|l| l == name));
        if let Some((flag, name)) = unlisted {
            return Err(Failure::input(format!(
                "{flag} {name}: '{name}' is not in the plan's vantages.names ({}); its report would never count",
                listed.join(", ")
            )));
        }
    }
    let read = |reference: &drover_core::secret::SecretRef, field: &str| {
        crate::app::plan::EnvSecrets
            .resolve(reference)
            .map(|s| s.expose().as_bytes().to_vec())
            .map_err(|e| Failure::input(format!("{}: vantages.{field}: {e}", plan.source.display())))
    };
    let keys = match &plan.vantages.key {
        Some(key) => {
            let previous = plan.vantages.previous_key.as_ref().map(|k| read(k, "previous_key")).transpose()?;
            Some(drover_core::vantage::PeerKeys::new(read(key, "key")?, previous))
        }
        None => {
            tracing::warn!(
                "the plan sets no vantages.key: peers' reports are not authenticated (anything that answers at a peer's URL, or writes to etcd, votes); see docs/security.md"
            );
            None
        }
    };
    Ok(drover_core::vantage::ReportRules::new(plan, keys))
}

/// One socket per probe in flight: a plan with thousands of checks needs more than
/// the usual soft limit of 1024 open files. Raise it to the hard limit, and say so
/// when even that is short, rather than see checks fail with "too many open files".
/// Returns how many API connections fit beside the probes (at most `wanted`): API
/// clients can never take the probes' descriptors.
fn raise_open_file_limit(cx: &Context, wanted: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let probes: u64 = cx.plan.service_regions().map(|r| cx.plan.checks_for(r).count() as u64).sum();
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return wanted };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        tracing::warn!(soft, hard, "could not raise the open-file limit");
    }
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map(|(s, _)| s).unwrap_or(soft);
    // Headroom for peers, the API, the journal and database sessions.
    if probes + 256 > limit {
        tracing::warn!(
            probes,
            limit,
            "the open-file limit is below one socket per check; raise it (ulimit -n) or some checks will fail as 'too many open files'"
        );
    }
    let room = limit.saturating_sub(probes + 256).max(16);
    if room < wanted {
        tracing::warn!(wanted, room, limit, "--max-connections lowered to fit the open-file limit beside the probes");
    }
    wanted.min(room)
}

/// TLS for the API (serving) and for reaching other daemons (peers, --server).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Serve the API over TLS with this certificate (PEM, the chain after the leaf). Required
    /// off loopback. Peers present it as their client certificate too. Renewed files (with
    /// --tls-key and --client-ca) are picked up by new connections within a second.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Accept only clients presenting a certificate this CA signed (mutual TLS), on top of
    /// the token: peers then present their --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<std::path::PathBuf>,
    /// The CA that signed the peers' certificates: https:// peers are trusted only if it did.
    #[arg(long, value_name = "FILE", env = "DROVER_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl TlsArgs {
    fn server_config(&self) -> Result<Option<tls_files::TlsFiles>, Failure> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        tls_files::TlsFiles::load(cert.clone(), key.clone(), self.client_ca.clone()).map(Some)
    }

    fn identity(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }
}
