//! The drill's write canary (`drill.canary`): numbered writes through the service's
//! front door — its public name, resolved as a client resolves it — every interval,
//! each from its own task; then the surviving writes read back through the same door,
//! for `drover_core::drill::measure` to count the acknowledged writes that were lost.
//!
//! ```ignore
//! let canary = Canary::from_plan(&plan, &secrets, Some(traffic))?;
//! canary.prepare().await?;                  // the postgres canary creates its table
//! let running = canary.start(&drill_id)?;   // writes seq 1, 2, … every interval
//! // … the fault, the failover …
//! let samples = running.stop().await;       // every write: sent, acknowledged, where to
//! let present = canary.read_back(&drill_id).await?;
//! let outcome = measure(&Measurement { fault_at_ms, samples: &samples, present: &present });
//! ```
//!
//! Two front doors: `http` speaks the canary protocol of docs/drill.md to the service
//! itself; `postgres` inserts rows into a table drover owns. Both go to the address the
//! name resolves to *now* (`resolve`), so a switch is followed once the cached answer's
//! TTL runs out, as it is by the service's clients. The report names how names were
//! resolved: [`Canary::resolution`].

mod http;
mod postgres;
mod resolve;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use drover_core::drill::WriteSample;
use drover_core::plan::{CanarySpec, CanaryTarget, Plan, TrafficSpec};
use drover_core::secret::SecretSource;
use drover_core::world::Traffic;
pub use resolve::Resolution;
use resolve::Resolver;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why the canary cannot run or read back.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The plan's canary cannot be used as written (a DSN without a host, an unreadable
    /// CA file, a secret that does not resolve): fix the plan or the secret; nothing ran.
    #[error("drill.canary: {0}")]
    Setup(String),
    /// The service did not answer as the canary needs (read-back failed, table not made).
    #[error("drill canary: {0}")]
    Unavailable(String),
}

/// One way into the service: the protocol spoken once the address is known.
#[async_trait]
trait FrontDoor: Send + Sync {
    /// The name the canary resolves (the URL's or the DSN's host).
    fn name(&self) -> &str;
    /// What a report says it wrote to (no secret in it).
    fn describe(&self) -> String;
    async fn prepare(&self, address: IpAddr) -> Result<(), String>;
    /// Ok only when the service acknowledged the write as durable.
    async fn write(&self, address: IpAddr, drill: &str, seq: u64) -> Result<(), String>;
    async fn read_back(&self, address: IpAddr, drill: &str) -> Result<BTreeSet<u64>, String>;
}

/// A canary built from the plan, ready to start.
pub struct Canary {
    door: Arc<dyn FrontDoor>,
    resolver: Arc<Resolver>,
    interval: Duration,
    timeout: Duration,
}

impl Canary {
    /// The plan's `drill.canary`, its secrets resolved. `traffic` is the plan's traffic
    /// provider, used only by `resolve: traffic`.
    pub fn from_plan(
        plan: &Plan,
        secrets: &dyn SecretSource,
        traffic: Option<Arc<dyn Traffic>>,
    ) -> Result<Canary, CanaryError> {
        let spec = plan.drill.canary.as_ref().ok_or_else(|| {
            CanaryError::Setup(format!(
                "the plan {} has no drill.canary; add one (docs/plan.md, section drill)",
                plan.source.display()
            ))
        })?;
        Canary::from_spec(spec, &plan.traffic, secrets, traffic)
    }

    /// As [`Canary::from_plan`], from the section itself and the plan's traffic section.
    pub fn from_spec(
        spec: &CanarySpec,
        plan_traffic: &TrafficSpec,
        secrets: &dyn SecretSource,
        traffic: Option<Arc<dyn Traffic>>,
    ) -> Result<Canary, CanaryError> {
        let door: Arc<dyn FrontDoor> = match &spec.target {
            CanaryTarget::Http(h) => Arc::new(http::HttpDoor::new(h, spec.timeout, secrets)?),
            CanaryTarget::Postgres(p) => Arc::new(postgres::PostgresDoor::new(p, spec.timeout, secrets)?),
        };
        let resolver = Arc::new(Resolver::new(door.name(), spec.resolve, plan_traffic, traffic)?);
        Ok(Canary { door, resolver, interval: spec.interval, timeout: spec.timeout })
    }

    /// How the service's name was resolved, for the report.
    pub fn resolution(&self) -> &Resolution {
        self.resolver.resolution()
    }

    /// What the canary writes to, e.g. `http https://shop.example.com/drover-canary`.
    pub fn describe(&self) -> String {
        self.door.describe()
    }

    /// Makes what the canary needs before it starts (the postgres canary's table),
    /// through the front door. The HTTP canary needs nothing: the service serves it.
    pub async fn prepare(&self) -> Result<(), CanaryError> {
        let address = self.resolver.address().await.map_err(CanaryError::Unavailable)?;
        self.bounded(self.door.prepare(address)).await
    }

    /// Starts writing `1, 2, …` for `drill` at once, one write every interval, each in
    /// its own task (a hung write never delays the next), on the current tokio runtime.
    pub fn start(&self, drill: &str) -> Result<RunningCanary, CanaryError> {
        check_drill_id(drill)?;
        let records: Records = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let writer = Writer {
            door: self.door.clone(),
            resolver: self.resolver.clone(),
            drill: drill.to_owned(),
            timeout: self.timeout,
            records: records.clone(),
        };
        let ticker = tokio::spawn(tick(writer, self.interval, stopped));
        Ok(RunningCanary { records, stop, ticker })
    }

    /// The sequence numbers the service holds for `drill`, read through the front door
    /// (the name resolved afresh, as after the failover a client would).
    pub async fn read_back(&self, drill: &str) -> Result<BTreeSet<u64>, CanaryError> {
        check_drill_id(drill)?;
        let address = self.resolver.address().await.map_err(CanaryError::Unavailable)?;
        self.bounded(self.door.read_back(address, drill)).await
    }

    /// A call the canary makes outside the writes: reading thousands of sequence numbers
    /// may take longer than one write, so it gets ten write timeouts.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, String>>) -> Result<T, CanaryError> {
        let limit = self.timeout.saturating_mul(10);
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(CanaryError::Unavailable),
            Err(_) => Err(CanaryError::Unavailable(format!(
                "{}: no answer within {}",
                self.door.describe(),
                drover_core::duration::format_duration(limit)
            ))),
        }
    }
}

/// Drill ids travel in URLs and SQL parameters: plain words only.
fn check_drill_id(drill: &str) -> Result<(), CanaryError> {
    let plain = !drill.is_empty()
        && drill.len() <= 128
        && drill.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if plain {
        Ok(())
    } else {
        Err(CanaryError::Setup(format!("drill id {drill:?} is not up to 128 letters, digits, '-', '_', '.' or ':'")))
    }
}

type Records = Arc<Mutex<Vec<WriteSample>>>;

/// A running canary. Dropping it stops the writes; `stop` also waits for those in flight.
pub struct RunningCanary {
    records: Records,
    stop: watch::Sender<bool>,
    ticker: tokio::task::JoinHandle<()>,
}

impl RunningCanary {
    /// Every write so far, by sequence number (those in flight not yet acknowledged).
    pub fn samples(&self) -> Vec<WriteSample> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops writing, waits for the writes in flight (each at most the write timeout),
    /// and returns every write by sequence number.
    pub async fn stop(self) -> Vec<WriteSample> {
        let _ = self.stop.send(true);
        let _ = (&mut { self.ticker }).await;
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Writer {
    door: Arc<dyn FrontDoor>,
    resolver: Arc<Resolver>,
    drill: String,
    timeout: Duration,
    records: Records,
}

async fn tick(writer: Writer, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let writer = Arc::new(writer);
    let mut writes = JoinSet::new();
    let mut every = tokio::time::interval(interval);
    // A stalled runtime sends the missed writes later, not in a burst.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            // Stop asked, or the handle dropped.
            _ = stopped.changed() => break,
        }
        seq += 1;
        writer.records.lock().unwrap_or_else(|p| p.into_inner()).push(WriteSample {
            seq,
            sent_ms: now_ms(),
            acked_ms: None,
            target: None,
        });
        writes.spawn(write_one(writer.clone(), seq));
        while writes.try_join_next().is_some() {}
    }
    // Every write is bounded by the write timeout.
    while writes.join_next().await.is_some() {}
}

/// One write: resolve (from the cache while its TTL lasts), send, wait for the
/// acknowledgement; the whole within the write timeout, as a client's call would be.
async fn write_one(writer: Arc<Writer>, seq: u64) {
    let target = Arc::new(Mutex::new(None::<IpAddr>));
    let attempt = {
        let (writer, target) = (writer.clone(), target.clone());
        async move {
            let address = writer.resolver.address().await?;
            *target.lock().unwrap_or_else(|p| p.into_inner()) = Some(address);
            writer.door.write(address, &writer.drill, seq).await
        }
    };
    let acked = matches!(tokio::time::timeout(writer.timeout, attempt).await, Ok(Ok(())));
    let acked_ms = acked.then(now_ms);
    let target = target.lock().unwrap_or_else(|p| p.into_inner()).map(|a| a.to_string());
    let mut records = writer.records.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sample) = usize::try_from(seq - 1).ok().and_then(|i| records.get_mut(i)) {
        sample.acked_ms = acked_ms;
        sample.target = target;
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
