//! Drives Prometheus blackbox_exporter for the health-check benchmark
//! (bench/checks-cost.sh) the way a Prometheus server scraping N probe targets
//! every second would: each second, for i in 0..N,
//! `GET http://EXPORTER/probe?module=MODULE&target=TARGET_BASE/e/<i>`, each
//! target at its own fixed offset in the second (Prometheus spreads targets over
//! the interval too), at most --concurrency requests in flight.
//!
//!   cargo run --release -p drover-lab --example bench_blackbox_driver -- \
//!       --exporter 127.0.0.1:9115 --target-base http://127.0.0.1:18080 -n 1000 \
//!       [--module http_2xx] [--concurrency 4096] [--rate-file FILE]
//!
//! Once a second it writes `UNIX_SECONDS SENT OK FAILED SKIPPED` (to --rate-file,
//! or stderr): scrapes started, scrapes answered with `probe_success 1`, scrapes
//! that failed (probe_success 0, an HTTP error or no answer), and scrapes not
//! started because the driver was more than a second behind its schedule — as
//! Prometheus skips a scrape rather than catching up.
//!
//! No `X-Prometheus-Scrape-Timeout-Seconds` header is sent: with it the exporter
//! would cut the probe to that value minus 0.5 s, and the benchmark wants the
//! module's own `timeout` (the same as drover's check timeout) to govern.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

struct Args {
    exporter: String,
    target_base: String,
    n: u64,
    module: String,
    concurrency: usize,
    rate_file: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_blackbox_driver --exporter HOST:PORT --target-base http://HOST:PORT -n N \
         [--module http_2xx] [--concurrency 4096] [--rate-file FILE]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        exporter: "127.0.0.1:9115".into(),
        target_base: String::new(),
        n: 0,
        module: "http_2xx".into(),
        concurrency: 4096,
        rate_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--exporter" => args.exporter = value(),
            "--target-base" => args.target_base = value().trim_end_matches('/').to_string(),
            "-n" => args.n = value().parse().unwrap_or_else(|_| usage()),
            "--module" => args.module = value(),
            "--concurrency" => args.concurrency = value().parse().unwrap_or_else(|_| usage()),
            "--rate-file" => args.rate_file = Some(value()),
            _ => usage(),
        }
    }
    if args.n == 0 || args.target_base.is_empty() || args.concurrency == 0 {
        usage();
    }
    args
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970")
}

/// The tokio instant of the next wall-clock second boundary, so rounds line up with
/// the target's per-second lines.
fn next_second() -> Instant {
    Instant::now() + Duration::from_secs(1) - Duration::from_nanos(u64::from(unix_now().subsec_nanos()))
}

async fn scrape(client: &reqwest::Client, url: String) -> bool {
    let Ok(response) = client.get(url).send().await else { return false };
    if !response.status().is_success() {
        return false;
    }
    let Ok(body) = response.text().await else { return false };
    body.lines().any(|line| line == "probe_success 1")
}

#[tokio::main]
async fn main() {
    // reqwest is built with rustls but no crypto provider (as in drover's main): it
    // panics on building a client unless one is installed, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args();
    let client = reqwest::Client::builder()
        .no_proxy()
        // Prometheus's scrape timeout would be the 1 s interval; a little more here so a
        // probe that ends at the module's timeout is still read, and counted as failed.
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("http client");
    let urls: Vec<String> = (0..args.n)
        .map(|i| format!("http://{}/probe?module={}&target={}/e/{i}", args.exporter, args.module, args.target_base))
        .collect();
    let urls = Arc::new(urls);
    let counters = Arc::new(Counters::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency));

    {
        let counters = Arc::clone(&counters);
        let rate_file = args.rate_file.clone();
        tokio::spawn(async move {
            let mut out: Box<dyn Write + Send> = match &rate_file {
                Some(path) => Box::new(std::fs::File::create(path).unwrap_or_else(|e| {
                    eprintln!("bench_blackbox_driver: cannot create {path}: {e}");
                    std::process::exit(1);
                })),
                None => Box::new(std::io::stderr()),
            };
            let mut tick = tokio::time::interval_at(next_second(), Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let second = unix_now().as_secs() - 1;
                let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
                let line = format!(
                    "{second} {} {} {} {}",
                    take(&counters.sent),
                    take(&counters.ok),
                    take(&counters.failed),
                    take(&counters.skipped)
                );
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        });
    }

    // Runs until the benchmark stops it.
    let start = next_second();
    let step = Duration::from_secs(1) / u32::try_from(args.n).unwrap_or(u32::MAX);
    for round in 0u64.. {
        let round_start = start + Duration::from_secs(round);
        for i in 0..args.n {
            let due = round_start + step * i as u32;
            tokio::time::sleep_until(due).await;
            let permit = Arc::clone(&permits).acquire_owned().await.expect("semaphore never closed");
            if Instant::now().saturating_duration_since(due) > Duration::from_secs(1) {
                // Behind by a whole interval: this target's next scrape is already due.
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let (client, urls, counters) = (client.clone(), Arc::clone(&urls), Arc::clone(&counters));
            tokio::spawn(async move {
                let ok = scrape(&client, urls[i as usize].clone()).await;
                let counter = if ok { &counters.ok } else { &counters.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
}
