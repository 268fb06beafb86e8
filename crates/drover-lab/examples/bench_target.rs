//! The endpoints the health-check benchmark (bench/checks-cost.sh) probes: a
//! tiny HTTP server answering `GET /e/{i}` with 200 "ok" on every address it is
//! given. Once a second it writes one line,
//! `UNIX_SECONDS REQUESTS CONNECTIONS PEAK_10MS`: the requests served and the
//! TCP connections accepted during that second, and the most requests that
//! arrived in any 10 ms of it. Requests show that both checkers did the same
//! work; connections and the peak show how (a checker that reuses connections
//! opens almost none; one that fires every check at the same instant has a
//! peak near its whole rate, one that spreads them has about a hundredth).
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

/// 10 ms slots of the current wall-clock second.
const SLOTS: usize = 100;

struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
    slots: [AtomicU64; SLOTS],
}

fn usage() -> ! {
    eprintln!("usage: bench_target --listen ADDR:PORT [--listen ADDR:PORT ...] [--rate-file FILE]");
    std::process::exit(2);
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970")
}

/// A listener with a deep accept queue: the target must never be what limits a checker.
/// `TcpListener::bind` uses 128, which a checker opening thousands of connections in the
/// same millisecond overflows; the kernel then drops handshakes and the checker times out
/// waiting for a retransmission, a failure of the target, not of the checker.
fn listen_on(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // Capped by net.core.somaxconn (4096 by default since Linux 5.4).
    socket.listen(8192)
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

    let counters = Arc::new(Counters {
        requests: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        slots: std::array::from_fn(|_| AtomicU64::new(0)),
    });
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
                    let slot = unix_now().subsec_millis() as usize / 10;
                    counters.slots[slot.min(SLOTS - 1)].fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        )
    };
    for addr in listen {
        let listener = listen_on(addr).unwrap_or_else(|e| {
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
    let to_next_second = Duration::from_secs(1) - Duration::from_nanos(u64::from(unix_now().subsec_nanos()));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + to_next_second, Duration::from_secs(1));
    // A late tick must still cover one second, not a burst of short ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let second = unix_now().as_secs();
        let requests = counters.requests.swap(0, Ordering::Relaxed);
        let connections = counters.connections.swap(0, Ordering::Relaxed);
        let peak = counters.slots.iter().map(|s| s.swap(0, Ordering::Relaxed)).max().unwrap_or(0);
        // The line names the second that just ended.
        let _ = writeln!(out, "{} {requests} {connections} {peak}", second - 1);
        let _ = out.flush();
    }
}
