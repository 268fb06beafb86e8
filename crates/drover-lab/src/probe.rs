//! The drill's measuring instrument: a client in the hub that resolves the service name
//! through the lab DNS (caching answers for their TTL, as a client library would), sends a
//! numbered write every interval, and records when each was acknowledged.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_core::drill::WriteSample;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{postgres, sys};

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// The DNS server that is authoritative for `name` (the lab's Knot in the hub).
    pub dns_server: SocketAddr,
    /// The service name, e.g. `api.app.test.`.
    pub name: String,
    pub port: u16,
    /// Time between two numbered writes (50 ms by default in drills).
    pub interval: Duration,
    /// A write not acknowledged within this counts as failed.
    pub write_timeout: Duration,
    /// The first sequence number. Each drill starts its own range, so rows left in
    /// the database by an earlier drill can never vouch for this one's writes.
    pub first_seq: u64,
}

/// Starts probes.
pub struct Probe;

/// Where one write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Pending,
    Acked,
    Failed,
}

struct Record {
    sample: WriteSample,
    outcome: Outcome,
}

type Records = Arc<Mutex<Vec<Record>>>;

/// A running probe. Dropping it stops the writes; `stop` also waits for those in flight.
pub struct ProbeHandle {
    records: Records,
    interval: Duration,
    stop: watch::Sender<bool>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// Starts writing at once, on the current tokio runtime.
    pub fn start(config: ProbeConfig) -> ProbeHandle {
        // Plain HTTP needs no TLS, but reqwest insists on a crypto provider being chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.write_timeout)
            .connect_timeout(config.write_timeout)
            .build()
            .expect("an HTTP client with timeouts builds");
        let records: Records = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let cache =
            Arc::new(DnsCache { server: config.dns_server, name: config.name.clone(), entry: Default::default() });
        let ticker = tokio::spawn(tick(config.clone(), client, cache, records.clone(), stopped));
        ProbeHandle { records, interval: config.interval, stop, ticker }
    }
}

async fn tick(
    config: ProbeConfig,
    client: reqwest::Client,
    cache: Arc<DnsCache>,
    records: Records,
    mut stopped: watch::Receiver<bool>,
) {
    let mut writes = JoinSet::new();
    let mut every = tokio::time::interval(config.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = config.first_seq.saturating_sub(1);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            // Stop asked, or the handle dropped.
            _ = stopped.changed() => break,
        }
        seq += 1;
        let sent_ms = sys::now_ms();
        records.lock().expect("probe records").push(Record {
            sample: WriteSample { seq, sent_ms, acked_ms: None, target: None },
            outcome: Outcome::Pending,
        });
        // Each write in its own task: a hung write must not delay the next.
        writes.spawn(write(config.clone(), client.clone(), cache.clone(), records.clone(), seq));
        while writes.try_join_next().is_some() {}
    }
    // Every write is bounded by the write timeout.
    while writes.join_next().await.is_some() {}
}

async fn write(config: ProbeConfig, client: reqwest::Client, cache: Arc<DnsCache>, records: Records, seq: u64) {
    let target = Arc::new(Mutex::new(None::<IpAddr>));
    let attempt = {
        let target = target.clone();
        async move {
            let address = cache.address().await?;
            *target.lock().expect("target") = Some(address);
            let url = format!("http://{}/write?seq={seq}", SocketAddr::new(address, config.port));
            let response = client.post(url).send().await.map_err(|e| e.to_string())?;
            if response.status() == reqwest::StatusCode::OK {
                Ok(())
            } else {
                Err(format!("HTTP {}", response.status()))
            }
        }
    };
    let acked = matches!(tokio::time::timeout(config.write_timeout, attempt).await, Ok(Ok(())));
    let acked_ms = acked.then(sys::now_ms);
    let target = target.lock().expect("target").map(|a| a.to_string());
    let mut records = records.lock().expect("probe records");
    if let Some(r) = records.get_mut((seq - config.first_seq) as usize) {
        r.sample.acked_ms = acked_ms;
        r.sample.target = target;
        r.outcome = if acked { Outcome::Acked } else { Outcome::Failed };
    }
}

/// The service name's address, cached for the answer's TTL. One lookup at a time: writes
/// that find the entry expired wait for the same answer.
struct DnsCache {
    server: SocketAddr,
    name: String,
    entry: tokio::sync::Mutex<Option<(IpAddr, Instant)>>,
}

impl DnsCache {
    async fn address(&self) -> Result<IpAddr, String> {
        let mut entry = self.entry.lock().await;
        if let Some((address, expires)) = *entry
            && Instant::now() < expires
        {
            return Ok(address);
        }
        let (addresses, ttl) =
            drover_adapters::dns::resolve(self.server, &self.name).await.map_err(|e| e.to_string())?;
        let address = *addresses.first().ok_or_else(|| format!("{} has no address", self.name))?;
        *entry = Some((address, Instant::now() + ttl));
        Ok(address)
    }
}

impl ProbeHandle {
    /// Every write so far, by sequence number.
    pub fn samples(&self) -> Vec<WriteSample> {
        self.records.lock().expect("probe records").iter().map(|r| r.sample.clone()).collect()
    }

    /// Waits until every write sent during the last `streak` (and at least one) was
    /// acknowledged, with that whole stretch after `after_ms`. False when `timeout` passes first.
    pub async fn wait_for_success_streak(&self, streak: Duration, after_ms: u64, timeout: Duration) -> bool {
        let started = Instant::now();
        let poll = self.interval.clamp(Duration::from_millis(10), Duration::from_millis(50));
        loop {
            let reached = {
                let records = self.records.lock().expect("probe records");
                let view: Vec<(u64, Outcome)> = records.iter().map(|r| (r.sample.sent_ms, r.outcome)).collect();
                streak_reached(&view, after_ms, sys::now_ms(), streak.as_millis() as u64)
            };
            if reached {
                return true;
            }
            if started.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Stops writing, waits for the writes in flight (each at most the write timeout), and
    /// returns every sample by sequence number.
    pub async fn stop(self) -> Vec<WriteSample> {
        let _ = self.stop.send(true);
        let _ = (&mut { self.ticker }).await;
        self.records.lock().expect("probe records").iter().map(|r| r.sample.clone()).collect()
    }
}

/// The streak rule on (sent_ms, outcome) pairs in sending order: the window of `streak_ms`
/// ending now lies after `after_ms`, holds no failed write and at least one acknowledged
/// one, and its writes still in flight were all sent after its newest acknowledged write
/// (an older write still unanswered is a warning sign, not a success).
fn streak_reached(writes: &[(u64, Outcome)], after_ms: u64, now_ms: u64, streak_ms: u64) -> bool {
    let Some(window_start) = now_ms.checked_sub(streak_ms) else { return false };
    if window_start < after_ms {
        return false;
    }
    let window = writes.iter().filter(|(sent, _)| *sent >= window_start);
    let mut newest_ack = None;
    let mut oldest_pending = None;
    for (sent, outcome) in window {
        match outcome {
            Outcome::Failed => return false,
            Outcome::Acked => newest_ack = newest_ack.max(Some(*sent)),
            Outcome::Pending => oldest_pending = Some(oldest_pending.map_or(*sent, |o: u64| o.min(*sent))),
        }
    }
    match (newest_ack, oldest_pending) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(ack), Some(pending)) => pending > ack,
    }
}

/// The sequence numbers the lab app stored in a database (`SELECT seq FROM lab_writes`).
pub async fn present_sequences(dsn: &str) -> Result<BTreeSet<u64>, String> {
    let client = postgres::connect(dsn, Duration::from_secs(5)).await?;
    let rows = client.query("SELECT seq FROM lab_writes", &[]).await.map_err(|e| postgres::describe(&e))?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0)).filter_map(|s| u64::try_from(s).ok()).collect())
}

/// The regions whose database took the lab app's writes, by the drover epoch that database
/// held when it took them. Split brain shows as one epoch with two regions.
pub async fn writers_by_epoch(dsn: &str) -> Result<std::collections::BTreeMap<u64, BTreeSet<String>>, String> {
    let client = postgres::connect(dsn, Duration::from_secs(5)).await?;
    let rows =
        client.query("SELECT DISTINCT epoch, region FROM lab_writes", &[]).await.map_err(|e| postgres::describe(&e))?;
    let mut writers = std::collections::BTreeMap::<u64, BTreeSet<String>>::new();
    for row in rows {
        writers.entry(row.get::<_, i64>(0).max(0) as u64).or_default().insert(row.get(1));
    }
    Ok(writers)
}

/// The WAL timeline a database is on: 1 for a cluster never promoted, one more per promotion.
pub async fn wal_timeline(dsn: &str) -> Result<u32, String> {
    let client = postgres::connect(dsn, Duration::from_secs(5)).await?;
    let row = client
        .query_one("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", &[])
        .await
        .map_err(|e| postgres::describe(&e))?;
    u32::from_str_radix(row.get::<_, &str>(0), 16).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Acked, Failed, Pending};
    use super::*;

    #[test]
    fn a_full_window_of_acks_is_a_streak() {
        let writes: Vec<(u64, Outcome)> = (0..40).map(|i| (1000 + i * 50, Acked)).collect();
        assert!(streak_reached(&writes, 1000, 3000, 2000));
    }

    #[test]
    fn the_window_must_lie_after_the_mark() {
        let writes: Vec<(u64, Outcome)> = (0..40).map(|i| (1000 + i * 50, Acked)).collect();
        assert!(!streak_reached(&writes, 1500, 3000, 2000), "window starts at 1000, before the mark");
        assert!(!streak_reached(&writes, 0, 1000, 2000), "no window before time 2000");
    }

    #[test]
    fn one_failure_in_the_window_breaks_it() {
        let mut writes: Vec<(u64, Outcome)> = (0..40).map(|i| (1000 + i * 50, Acked)).collect();
        writes[30].1 = Failed; // sent at 2500
        assert!(!streak_reached(&writes, 0, 3000, 2000));
        assert!(streak_reached(&writes, 0, 3000, 400), "the failure is older than a 400 ms window");
    }

    #[test]
    fn writes_in_flight_at_the_tail_are_fine_but_not_older_ones() {
        let mut writes: Vec<(u64, Outcome)> = (0..40).map(|i| (1000 + i * 50, Acked)).collect();
        writes[39].1 = Pending; // the newest, sent at 2950
        assert!(streak_reached(&writes, 0, 3000, 2000));
        writes[20].1 = Pending; // sent at 2000, unanswered while later ones were acked
        assert!(!streak_reached(&writes, 0, 3000, 2000));
    }

    #[test]
    fn an_empty_or_unacknowledged_window_is_no_streak() {
        assert!(!streak_reached(&[], 0, 3000, 2000));
        assert!(!streak_reached(&[(2900, Pending)], 0, 3000, 2000));
        assert!(!streak_reached(&[(500, Acked)], 0, 3000, 2000), "the only ack is outside the window");
    }
}
