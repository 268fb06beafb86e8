//! The endpoints the health-check benchmark (bench/checks-cost.sh) probes: a
//! tiny HTTP server answering `GET /e/{i}` with 200 "ok" on every address it is
//! given. Once a second it writes one line, `UNIX_SECONDS REQUESTS CONNECTIONS`,
//! the requests served and the TCP connections accepted during that second, so
//! the benchmark can show that both checkers did the same work (requests), and
//! how they did it (a checker that reuses connections opens almost none).
//!
//!   cargo run --release -p drover-lab --example bench_target -- \
//!       --listen 127.0.0.1:18080 --listen 127.0.0.2:18080 [--rate-file FILE]
//!
//! Without --rate-file the lines go to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use axum::serve::ListenerExt;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
}

fn usage() -> ! {
    eprintln!("usage: bench_target --listen ADDR:PORT [--listen ADDR:PORT ...] [--rate-file FILE]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut rate_file: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen.push(args.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| usage())),
            "--rate-file" => rate_file = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    if listen.is_empty() {
        usage();
    }

    let counters = Arc::new(Counters::default());
    let app = {
        let counters = Arc::clone(&counters);
        // The index is parsed (not just matched) so a malformed path is a 400, as a real
        // endpoint would answer, and only well-formed checks are counted.
        Router::new().route(
            "/e/{i}",
            get(move |Path(_i): Path<u64>| {
                let counters = Arc::clone(&counters);
                async move {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        )
    };
    for addr in listen {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("bench_target: cannot listen on {addr}: {e}");
            std::process::exit(1);
        });
        let counters = Arc::clone(&counters);
        let listener = listener.tap_io(move |_| {
            counters.connections.fetch_add(1, Ordering::Relaxed);
        });
        let app = app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    let mut out: Box<dyn Write + Send> = match &rate_file {
        Some(path) => Box::new(std::fs::File::create(path).unwrap_or_else(|e| {
            eprintln!("bench_target: cannot create {path}: {e}");
            std::process::exit(1);
        })),
        None => Box::new(std::io::stderr()),
    };
    // Ticks on wall-clock second boundaries, so the script can pick a measurement window
    // by Unix time and line it up with its own CPU samples.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let to_next_second = Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + to_next_second, Duration::from_secs(1));
    // A late tick must still cover one second, not a burst of short ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let second = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let requests = counters.requests.swap(0, Ordering::Relaxed);
        let connections = counters.connections.swap(0, Ordering::Relaxed);
        // The line names the second that just ended.
        let _ = writeln!(out, "{} {requests} {connections}", second - 1);
        let _ = out.flush();
    }
}
