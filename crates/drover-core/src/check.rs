//! Route 53-style health: a check flips only after N consecutive results the other way.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not enough results yet to say.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One check's state as seen by one vantage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckState {
    failure_threshold: u32,
    success_threshold: u32,
    health: Health,
    consecutive_failures: u32,
    consecutive_successes: u32,
}

impl CheckState {
    pub fn new(failure_threshold: u32, success_threshold: u32) -> Self {
        CheckState {
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
            health: Health::Unknown,
            consecutive_failures: 0,
            consecutive_successes: 0,
        }
    }

    /// Records one probe result; returns the new health when it changed.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        let before = self.health;
        if ok {
            self.consecutive_successes += 1;
            self.consecutive_failures = 0;
            if self.consecutive_successes >= self.success_threshold {
                self.health = Health::Healthy;
            }
        } else {
            self.consecutive_failures += 1;
            self.consecutive_successes = 0;
            if self.consecutive_failures >= self.failure_threshold {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }

    pub fn health(&self) -> Health {
        self.health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_only_after_consecutive_results() {
        let mut s = CheckState::new(3, 2);
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(Health::Healthy));
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "a success resets the failure count");
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(Health::Unhealthy));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(Health::Healthy));
    }
}
