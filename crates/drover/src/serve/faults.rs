//! Injected faults for tests. This module is compiled only with the `drover` crate's
//! `fault-injection` feature (off by default; `scripts/test.sh` turns it on), so a
//! release daemon carries no test hook: neither the variable below nor the kill.

use drover_core::run::{Entry, Record};

/// With `DROVER_TEST_KILL_AFTER=<record>` (a step name such as `promote`, or `started`),
/// the daemon SIGKILLs itself right after journaling that step's completion (or the run's
/// start), as a crash at that step boundary would. The lab tests (`tests/ha.rs`) use it to
/// prove that a follower takes the run over.
pub fn after_journaled(vantage: &str, entry: &Entry) {
    static AFTER: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::var("DROVER_TEST_KILL_AFTER").ok().filter(|s| !s.is_empty()));
    let Some(after) = AFTER.as_deref() else { return };
    let boundary = match &entry.record {
        Record::Started { .. } => "started",
        Record::StepDone { kind, .. } => kind.as_str(),
        _ => return,
    };
    if boundary == after {
        tracing::error!(%vantage, "DROVER_TEST_KILL_AFTER={after}: killing this daemon with SIGKILL after journaling it");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
