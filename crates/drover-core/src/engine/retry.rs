//! Retries: how often and how long a step tries again before the run pauses.

use std::time::Duration;

/// Bounded exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// For steps that act: a few quick tries.
    pub const ACT: RetryPolicy =
        RetryPolicy { attempts: 6, initial: Duration::from_millis(200), max_delay: Duration::from_secs(3) };
    /// For steps that wait for the world (catch-up, verify): many short waits.
    pub const WAIT: RetryPolicy =
        RetryPolicy { attempts: 60, initial: Duration::from_millis(100), max_delay: Duration::from_millis(500) };
    /// For tests: no sleeping.
    pub const IMMEDIATE: RetryPolicy = RetryPolicy { attempts: 3, initial: Duration::ZERO, max_delay: Duration::ZERO };

    /// Delay before retry number `attempt` (1-based): doubling, capped, with ±25% jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_delay);
        let jitter = 0.75 + rand::random::<f64>() * 0.5;
        base.mul_f64(jitter)
    }

    /// The longest total wait this policy allows (without jitter), for error messages.
    pub fn budget(&self) -> Duration {
        (1..self.attempts).map(|a| self.initial.saturating_mul(1u32 << (a - 1).min(16)).min(self.max_delay)).sum()
    }
}
