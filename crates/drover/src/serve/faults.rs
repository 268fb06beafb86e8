//! Injected faults for tests. This module is compiled only with the `drover` crate's
//! `fault-injection` feature (off by default; `scripts/test.sh` turns it on), so a
//! release daemon carries no test hook: none of the variables below, nor what they do.

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

/// With `DROVER_TEST_LOOP_FAULTS=<dir>`, the supervised loop named N (`super::supervisor`)
/// obeys the file `<dir>/N` (characters other than letters, digits and `-` written `_`),
/// looked at every 100 ms: `panic` makes the loop panic (and again after each restart while
/// the file says so); `hang` stops it dead mid-round, no more rounds nor heartbeats, until
/// the file says otherwise. `tests/serve.rs` uses it to prove that `/readyz` names such a
/// loop, that it is restarted and counted, and that one that keeps dying stops the daemon.
pub async fn in_loop<T>(name: String, work: impl Future<Output = T>) -> T {
    static DIR: std::sync::LazyLock<Option<std::path::PathBuf>> = std::sync::LazyLock::new(|| {
        std::env::var_os("DROVER_TEST_LOOP_FAULTS").filter(|d| !d.is_empty()).map(Into::into)
    });
    let Some(dir) = DIR.as_ref() else { return work.await };
    let file = dir.join(name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"));
    let mut work = std::pin::pin!(work);
    loop {
        match std::fs::read_to_string(&file).unwrap_or_default().trim() {
            "panic" => panic!("DROVER_TEST_LOOP_FAULTS: a panic injected in the loop '{name}'"),
            // `work` is not polled: the loop is stuck wherever it was.
            "hang" => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            _ => tokio::select! {
                done = &mut work => return done,
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            },
        }
    }
}
