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
pub mod metrics;
pub mod peers;

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
    /// Address for the API and /metrics. Off loopback, --token-file is required.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// This vantage's name. Name it after the plan region it runs in (east, west,
    /// witness): a vantage in a region judged down never starts a run.
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub vantage: String,
    /// Another vantage, by the name you give it and its base URL (repeat for each), e.g.
    /// west=http://10.200.0.12:7070. Its reports count toward policy.quorum under that name
    /// only: a report that names itself otherwise is dropped, and one is trusted for at
    /// most a report's time to live after it arrived, whatever it claims.
    #[arg(long = "peer", value_name = "NAME=URL")]
    pub peers: Vec<String>,
    /// File holding the bearer token that API changes (and reads off loopback) require;
    /// peers send it too, so give every vantage the same one.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// With --store etcd://...: how long a leader that stops renewing its lease (dead, or cut
    /// off from etcd) keeps the role before another daemon takes over. Shorter fails over
    /// sooner; it must stay above etcd's election timeout (default 1s) plus network jitter.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_ttl: u64,
}

/// Serves until the process ends; an error is why the daemon could not start (or stopped serving).
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::input(format!("--token-file {}: {e}", path.display())))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(Failure::input(format!("--token-file {}: the file is empty", path.display())));
            }
            Some(token)
        }
        None => None,
    };
    let loopback = args.listen.ip().is_loopback();
    if !loopback && token.is_none() {
        return Err(Failure::input(format!(
            "--listen {} is not a loopback address: give --token-file so that only holders of the token can read or change runs",
            args.listen
        )));
    }
    let peers = peers::named(&args.peers, &args.vantage)?;
    for (_, peer) in &peers {
        if !(peer.starts_with("http://") || peer.starts_with("https://")) {
            return Err(Failure::input(format!("--peer {peer}: expected a base URL like http://10.200.0.12:7070")));
        }
    }
    let etcd = etcd_store(&args.plan)?;
    if etcd.is_some() && !args.peers.is_empty() {
        return Err(Failure::input(
            "--peer is not used with --store etcd://...: the daemons share their reports through etcd; drop --peer",
        ));
    }
    runtime().block_on(async move {
        let cx = Context::open(&args.plan).await?;
        raise_open_file_limit(&cx);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::input(format!("--listen {}: {e}", args.listen)))?;
        let lease_ttl = std::time::Duration::from_secs(args.lease_ttl);
        let (exchange, election): (Arc<dyn VantageExchange>, _) = match etcd {
            None => {
                let ttl_ms = drover_core::vantage::report_ttl_ms(&cx.plan);
                let peers = Arc::new(peers::HttpPeers::new(peers, token.as_deref(), ttl_ms));
                peers.spawn(&args.vantage);
                (peers, None)
            }
            Some(store) => {
                // A silent vantage's report leaves etcd once it would have expired anyway.
                let ttl = std::time::Duration::from_millis(drover_core::vantage::report_ttl_ms(&cx.plan));
                let vantages = EtcdVantages::connect(&store.access, &store.prefix, &args.vantage, ttl)
                    .await
                    .map_err(store_failure)?;
                (Arc::new(vantages), Some(Arc::new(leadership::Election::new(store, lease_ttl))))
            }
        };
        let coordination = if election.is_some() { "etcd leader election" } else { "acting vantage" };
        let daemon = Arc::new(daemon::Daemon::new(cx, args.vantage.clone(), exchange, election));
        daemon.spawn();
        backups::spawn_schedule(&daemon);
        tracing::info!(vantage = %args.vantage, listen = %args.listen, peers = ?args.peers, plan = %daemon.cx.plan.name, coordination, "serving");
        let app = api::router(api::Api { daemon, token, open_reads: loopback });
        axum::serve(listener, app).await.map_err(|e| Failure::failed(format!("serving the API: {e}")))
    })
}

/// One socket per probe in flight: a plan with thousands of checks needs more than
/// the usual soft limit of 1024 open files. Raise it to the hard limit, and say so
/// when even that is short, rather than see checks fail with "too many open files".
fn raise_open_file_limit(cx: &Context) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let probes: u64 = cx.plan.service_regions().map(|r| cx.plan.checks_for(r).count() as u64).sum();
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
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
}
