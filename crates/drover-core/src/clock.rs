//! Time and ids, passed in: the engine, observation and the steps read the time, wait
//! and name runs through a [`Clock`] and [`Ids`] held with the providers, so a test can
//! run a run without sleeping and the core owns no ambient runtime state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::run::RunId;

#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch: what the journal stamps and notifications carry.
    fn now_ms(&self) -> u64;
    /// Waits `duration` (a retry's back-off).
    async fn sleep(&self, duration: Duration);
}

/// Names runs.
pub trait Ids: Send + Sync {
    /// A run id, sortable by start time and unique enough for one store.
    fn run_id(&self, now_ms: u64) -> RunId;

    /// A drill id, `d<ms>-<hex>`: a run id's shape with its own letter.
    fn drill_id(&self, now_ms: u64) -> RunId {
        let run = self.run_id(now_ms);
        RunId(format!("d{}", run.0.strip_prefix('r').unwrap_or(&run.0)))
    }
}

/// The machine's clock, tokio's timer for waiting, and random run ids.
pub struct SystemClock;

impl Ids for SystemClock {
    fn run_id(&self, now_ms: u64) -> RunId {
        RunId(format!("r{now_ms}-{:04x}", rand::random::<u16>()))
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await
    }
}

/// The machine's time in milliseconds since the Unix epoch, for the stores and front
/// ends that stamp what they write (0 on a clock before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
