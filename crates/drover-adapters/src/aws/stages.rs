//! Staged traffic shifts, shared by Route 53 weighted records and Global
//! Accelerator dials: the stages still ahead of where traffic is, and the gate
//! that holds a shift between stages while the target's checks run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::plan::Check;
use drover_core::world::Prober;

/// Holds a staged shift between stages: the target's checks run for the pause.
#[async_trait]
pub trait StageGate: Send + Sync {
    /// `Ok` when `region` may take more traffic after `pause`; `Err` says which check failed.
    async fn hold(&self, region: &str, pause: Duration) -> Result<(), String>;
}

/// The plan's critical per-region checks, probed at their interval during a pause;
/// one reaching its failure threshold stops the shift.
pub struct ChecksGate {
    pub prober: Arc<dyn Prober>,
    pub checks: Vec<Check>,
}

#[async_trait]
impl StageGate for ChecksGate {
    async fn hold(&self, region: &str, pause: Duration) -> Result<(), String> {
        let checks: Vec<&Check> = self.checks.iter().filter(|c| c.critical && c.per_region).collect();
        let until = Instant::now() + pause;
        let tick = checks.iter().map(|c| c.interval).min().unwrap_or(pause).min(pause).max(Duration::from_millis(10));
        let mut failures = vec![0u32; checks.len()];
        loop {
            for (check, failed) in checks.iter().zip(failures.iter_mut()) {
                let result = self.prober.probe(check, region).await;
                *failed = if result.ok { 0 } else { *failed + 1 };
                if *failed >= check.failure_threshold {
                    return Err(format!("check {} failed {} times on {region}: {}", check.name, failed, result.detail));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(tick.min(left)).await;
        }
    }
}

/// The stages a shift still has to take when `share` percent already reached the
/// target (a resumed run skips the ones done); the last, 100, is always taken.
pub fn stages_ahead(stages: &[u8], share: i64) -> Vec<u8> {
    stages.iter().copied().filter(|&p| i64::from(p) > share || p == 100).collect()
}

/// After stage `index` of `ahead` (`percent` reached), holds the shift on `gate`;
/// a failing check stops it where it is, with a permanent error naming `what`
/// and what stays as it is.
pub async fn hold_after_stage(
    gate: Option<&Arc<dyn StageGate>>,
    what: &str,
    stays: &str,
    region: &str,
    pause: Duration,
    (index, percent, ahead): (usize, u8, usize),
) -> Result<(), ProviderError> {
    let Some(gate) = gate else { return Ok(()) };
    gate.hold(region, pause).await.map_err(|why| {
        ProviderError::permanent(format!(
            "{what}: shift to {region} stopped at {percent}% (stage {} of {ahead}): {why} — {stays}; fix {region} and resume the run to continue the shift, or abort it",
            index + 1,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::stages_ahead;

    #[test]
    fn a_resumed_shift_skips_the_stages_done() {
        assert_eq!(stages_ahead(&[10, 25, 50, 100], 0), [10, 25, 50, 100]);
        assert_eq!(stages_ahead(&[10, 25, 50, 100], 25), [50, 100]);
        assert_eq!(stages_ahead(&[10, 25, 50, 100], 100), [100]);
    }
}
