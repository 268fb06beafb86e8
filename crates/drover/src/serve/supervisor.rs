//! The daemon's loops under supervision. Each loop (probes, world, autopilot, peers,
//! backups, leadership) is spawned here under a name and marks a heartbeat at the start
//! of each round. A loop that panics or returns is restarted after a backoff; one whose
//! restart would be unsafe, or that dies too often, takes the daemon down: the process
//! exits non-zero with the loop's name and why, so systemd or Kubernetes restarts it whole
//! rather than it serving `/healthz` ok with a loop silently gone.
//!
//! A loop is *ready* while it has beaten since its latest start and not longer ago than
//! three rounds plus `SLACK` (a round's outside calls, all timing out); `/readyz` names the
//! loops that are not (`Supervisor::unready`), /metrics shows each loop's restarts and
//! heartbeat age.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

// tokio's clock (the same as std's in the daemon) so that tests can pause it.
use tokio::sync::watch;
use tokio::time::Instant;

/// What a round may spend in outside calls when they all time out (a database member's
/// 2 s connect plus 10 s query, a probe's timeout, a peer's 1.5 s): a dead world must not
/// make the daemon unready, only a loop that stopped.
const SLACK: Duration = Duration::from_secs(15);

/// The lock of state a loop shares with the API, recovered if a panic poisoned it. Every
/// lock of the daemon's state goes through here: a loop that panics holding the guard is
/// restarted, and the state it leaves is at worst one round's update half made (each
/// field is rewritten by its own loop next round), whereas an `unwrap` on the poisoned
/// lock would panic every loop and API handler that touches it after — the daemon wedged
/// with `/healthz` still ok.
pub fn unpoisoned<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to do when a loop ends.
#[derive(Clone, Copy, Debug)]
pub enum Restart {
    /// Start it again after a backoff, up to `Limits::max_restarts` in `Limits::window`.
    WithBackoff,
    /// Restarting would be unsafe (the reason): exit at once.
    Never(&'static str),
}

/// The restart budget; `Limits::default()` in the daemon.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The wait before the first restart, doubled for each restart still in the window.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// More restarts than this within `window`, and the daemon exits.
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        // 0.5 + 1 + 2 + 4 + 8 s of backoff: a loop that cannot stay up is given up on within
        // about 20 s, and one that panics once a day is restarted every time.
        Limits {
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_restarts: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// One loop's record, shared by the loop (through its `Heartbeat`) and its supervisor.
struct LoopState {
    /// How often it beats; None for a loop with no rounds (it waits on something else).
    round: Option<Duration>,
    /// Milliseconds since the supervisor started, at the last beat (0: none yet).
    last_beat_ms: AtomicU64,
    /// Whether it has beaten since its latest (re)start.
    beaten: AtomicBool,
    restarts: AtomicU64,
    /// Dead, waiting for its restart.
    down: AtomicBool,
}

/// The daemon's supervisor: the loops by name, and why the daemon must stop, once it must.
pub struct Supervisor {
    epoch: Instant,
    limits: Limits,
    loops: Mutex<BTreeMap<String, Arc<LoopState>>>,
    fatal: watch::Sender<Option<String>>,
}

/// What a loop holds to say it is alive.
#[derive(Clone)]
pub struct Heartbeat {
    state: Arc<LoopState>,
    epoch: Instant,
}

impl Heartbeat {
    /// Called at the start of each round.
    pub fn beat(&self) {
        // Never 0, which means "no beat yet".
        let ms = (self.epoch.elapsed().as_millis() as u64).max(1);
        self.state.last_beat_ms.store(ms, Relaxed);
        self.state.beaten.store(true, Relaxed);
    }

    /// Runs `work` that may take far longer than a round (a failover, a backup), beating
    /// every round while it is in progress: the loop is busy, not stuck. Such work is
    /// bounded by its own timeouts (a run's steps), and shows in the runs API.
    pub async fn through<T>(&self, work: impl Future<Output = T>) -> T {
        let Some(round) = self.state.round else { return work.await };
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tokio::time::sleep(round) => self.beat(),
            }
        }
    }
}

/// A loop that is not ready, for `/readyz`.
#[derive(Debug, serde::Serialize)]
pub struct Unready {
    #[serde(rename = "loop")]
    pub name: String,
    /// down (dead, waiting for its restart), starting (no beat since it started) or stale.
    pub state: &'static str,
    /// Since its last beat; None before its first.
    pub seconds_since_heartbeat: Option<f64>,
    pub restarts: u64,
}

/// One loop's figures, for /metrics.
pub struct LoopFigures {
    pub name: String,
    pub restarts: u64,
    /// Seconds since the last beat (or since the daemon started, before the first); None
    /// for a loop with no rounds.
    pub heartbeat_age: Option<f64>,
}

impl Supervisor {
    pub fn new(limits: Limits) -> Arc<Supervisor> {
        Arc::new(Supervisor { epoch: Instant::now(), limits, loops: Mutex::default(), fatal: watch::channel(None).0 })
    }

    /// Runs the loop `start` makes under `name`, starting it again (`start` called anew)
    /// when it panics or returns, as `restart` says. `round`: how often it beats (None: it
    /// has no rounds, so it is never stale; it is still restarted or fatal).
    pub fn spawn<F, Fut>(self: &Arc<Self>, name: impl Into<String>, round: Option<Duration>, restart: Restart, start: F)
    where
        F: Fn(Heartbeat) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let state = Arc::new(LoopState {
            round,
            last_beat_ms: AtomicU64::new(0),
            beaten: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            down: AtomicBool::new(false),
        });
        unpoisoned(&self.loops).insert(name.clone(), Arc::clone(&state));
        let supervisor = Arc::clone(self);
        tokio::spawn(async move {
            let mut recent: VecDeque<Instant> = VecDeque::new();
            loop {
                let heartbeat = Heartbeat { state: Arc::clone(&state), epoch: supervisor.epoch };
                let run = start(heartbeat);
                #[cfg(feature = "fault-injection")]
                let run = super::faults::in_loop(name.clone(), run);
                let ended = tokio::spawn(run).await;
                state.down.store(true, Relaxed);
                state.beaten.store(false, Relaxed);
                let why = match ended {
                    Ok(()) => "returned".to_string(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                    Err(e) => format!("was cancelled: {e}"),
                };
                let now = Instant::now();
                while recent.front().is_some_and(|t| now.duration_since(*t) > supervisor.limits.window) {
                    recent.pop_front();
                }
                let fatal = match restart {
                    Restart::Never(unsafe_because) => Some(format!("it is not restarted: {unsafe_because}")),
                    Restart::WithBackoff if recent.len() >= supervisor.limits.max_restarts => Some(format!(
                        "restarted {} times in {} s already",
                        recent.len(),
                        supervisor.limits.window.as_secs()
                    )),
                    Restart::WithBackoff => None,
                };
                if let Some(fatal) = fatal {
                    let message = format!("the daemon's loop '{name}' {why}; {fatal}: stopping the daemon");
                    tracing::error!(%name, "{message}");
                    supervisor.fatal.send_replace(Some(message));
                    return;
                }
                let backoff = supervisor.limits.first_backoff.saturating_mul(1 << recent.len().min(16));
                let backoff = backoff.min(supervisor.limits.max_backoff);
                tracing::error!(%name, restarts = recent.len() + 1, "the daemon's loop '{name}' {why}; restarting it in {backoff:?}");
                tokio::time::sleep(backoff).await;
                recent.push_back(Instant::now());
                state.restarts.fetch_add(1, Relaxed);
                state.down.store(false, Relaxed);
            }
        });
    }

    /// Resolves with why, once a loop has taken the daemon down.
    pub async fn failed(&self) -> String {
        let mut rx = self.fatal.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The sender lives in `self`: it cannot be dropped while this waits.
            Err(_) => std::future::pending().await,
        }
    }

    /// The loops that are not ready now, by name.
    pub fn unready(&self) -> Vec<Unready> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let loops = unpoisoned(&self.loops);
        let judged = loops.iter().filter_map(|(name, state)| {
            let last = state.last_beat_ms.load(Relaxed);
            let age_ms = (last > 0).then(|| now_ms.saturating_sub(last));
            let verdict = readiness(state.round?, state.down.load(Relaxed), state.beaten.load(Relaxed), age_ms)?;
            Some(Unready {
                name: name.clone(),
                state: verdict,
                seconds_since_heartbeat: age_ms.map(|ms| ms as f64 / 1000.0),
                restarts: state.restarts.load(Relaxed),
            })
        });
        judged.collect()
    }

    /// Every loop's restarts and heartbeat age, by name.
    pub fn figures(&self) -> Vec<LoopFigures> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let loops = unpoisoned(&self.loops);
        let figures = loops.iter().map(|(name, state)| {
            let last = state.last_beat_ms.load(Relaxed);
            LoopFigures {
                name: name.clone(),
                restarts: state.restarts.load(Relaxed),
                heartbeat_age: state.round.map(|_| now_ms.saturating_sub(last) as f64 / 1000.0),
            }
        });
        figures.collect()
    }
}

/// Why a loop that beats every `round` is not ready (None: it is): it is `down` (dead,
/// waiting for its restart), has not `beaten` since it started, or its last beat, `age_ms`
/// ago, is more than three rounds and `SLACK` old.
fn readiness(round: Duration, down: bool, beaten: bool, age_ms: Option<u64>) -> Option<&'static str> {
    let stale_after = round.saturating_mul(3).saturating_add(SLACK);
    match age_ms {
        _ if down => Some("down"),
        _ if !beaten => Some("starting"),
        Some(age) if u128::from(age) > stale_after.as_millis() => Some("stale"),
        _ => None,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or("(not a text message)".into(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Limits {
        Limits {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_restarts: 3,
            window: Duration::from_secs(600),
        }
    }

    /// Polls `done` until it holds; the deadline is a hang guard only.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn a_poisoned_lock_still_gives_its_state() {
        let lock = Arc::new(Mutex::new(1));
        let poisoner = Arc::clone(&lock);
        let _ = std::thread::spawn(move || {
            let mut guard = poisoner.lock().unwrap();
            *guard = 2;
            panic!("a loop dies holding the lock");
        })
        .join();
        assert!(lock.is_poisoned());
        assert_eq!(*unpoisoned(&lock), 2);
    }

    #[tokio::test]
    async fn a_loop_that_panics_is_restarted_and_counted() {
        let supervisor = Supervisor::new(quick());
        let starts = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&starts);
        supervisor.spawn("flaky", Some(Duration::from_millis(10)), Restart::WithBackoff, move |beat| {
            let start = counted.fetch_add(1, Relaxed);
            async move {
                beat.beat();
                if start < 2 {
                    panic!("injected");
                }
                loop {
                    beat.beat();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        until("a third start, up and beating", || supervisor.unready().is_empty() && starts.load(Relaxed) == 3).await;
        let figures = supervisor.figures();
        assert_eq!((figures[0].name.as_str(), figures[0].restarts), ("flaky", 2));
        assert!(supervisor.fatal.borrow().is_none());
    }

    #[tokio::test]
    async fn a_loop_that_keeps_dying_takes_the_daemon_down_naming_it() {
        let supervisor = Supervisor::new(quick());
        supervisor.spawn("doomed", Some(Duration::from_millis(10)), Restart::WithBackoff, |_| async {
            panic!("poisoned lock");
        });
        let why = tokio::time::timeout(Duration::from_secs(30), supervisor.failed()).await.expect("hang guard");
        assert!(why.contains("'doomed' panicked: poisoned lock; restarted 3 times"), "{why}");
    }

    #[tokio::test]
    async fn a_loop_not_safe_to_restart_takes_the_daemon_down_when_it_returns() {
        let supervisor = Supervisor::new(quick());
        supervisor.spawn("leadership", None, Restart::Never("the term would be lost"), |_| async {});
        let why = tokio::time::timeout(Duration::from_secs(30), supervisor.failed()).await.expect("hang guard");
        assert!(why.contains("'leadership' returned; it is not restarted: the term would be lost"), "{why}");
        assert_eq!(supervisor.figures()[0].restarts, 0);
    }

    #[tokio::test]
    async fn a_loop_is_unready_until_it_first_beats() {
        let supervisor = Supervisor::new(quick());
        supervisor.spawn("world", Some(Duration::from_secs(2)), Restart::WithBackoff, |beat| async move {
            beat.beat();
            std::future::pending::<()>().await
        });
        // Not yet run: this test's runtime has one thread, and it has not yielded.
        let unready = supervisor.unready();
        assert_eq!((unready[0].name.as_str(), unready[0].state), ("world", "starting"));
        until("the first beat", || supervisor.unready().is_empty()).await;
    }

    #[test]
    fn a_loop_is_stale_three_rounds_and_the_slack_after_its_last_beat() {
        let round = Duration::from_secs(2);
        let limit = 3 * 2000 + SLACK.as_millis() as u64;
        assert_eq!(readiness(round, false, true, Some(limit)), None);
        assert_eq!(readiness(round, false, true, Some(limit + 1)), Some("stale"));
        assert_eq!(readiness(round, false, false, Some(1)), Some("starting"), "restarted, not beaten since");
        assert_eq!(readiness(round, true, true, Some(1)), Some("down"));
        // A round so long it would overflow is never stale rather than a panic.
        assert_eq!(readiness(Duration::MAX, false, true, Some(u64::MAX)), None);
    }
}
