//! Who drives a run (`Journal::claim_run`), as the stores record it: a holder names its
//! process (PID, start time, host), so a claim whose process has ended is seen as gone and
//! replaced, and a PID the kernel gave to another process since does not keep it alive.
//! Claims made in this process are also listed here until released: two drivers inside one
//! daemon (its autopilot, an API call) share a PID, and one that let go — even if the
//! store could not be written then — no longer holds.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Tokens of the claims this process holds now.
static HELD_HERE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A claim as stored beside the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub token: String,
    /// In words for a person: "the east daemon".
    pub who: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub started: u64,
    pub host: String,
}

impl Holder {
    /// A new claim by this process for `who`, listed as held here until `let_go`.
    pub fn new_here(who: &str) -> Holder {
        let pid = std::process::id();
        let started = match process_start(pid) {
            Seen::Started(started) => started,
            _ => 0,
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let token = format!("{pid}-{started}-{n}-{nanos}");
        HELD_HERE.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone());
        Holder { token, who: who.to_owned(), pid, started, host: host_name() }
    }

    /// How a refused driver is told who holds the run.
    pub fn describe(&self) -> String {
        format!("{} (pid {} on {})", self.who, self.pid, self.host)
    }

    /// Whether the holder may still be driving. `same_host_only`: the store lives on this
    /// host alone (redb), so a holder that names another host is a process of a machine or
    /// container that is gone (a recreated pod gets a new hostname) — judged gone. In etcd
    /// another host's holder is judged by its lease, which the store checks: alive here.
    pub fn alive(&self, same_host_only: bool) -> bool {
        if self.host != host_name() {
            return !same_host_only;
        }
        if self.pid == std::process::id() {
            return HELD_HERE.lock().unwrap_or_else(|p| p.into_inner()).contains(&self.token);
        }
        match process_start(self.pid) {
            Seen::Started(started) => started == self.started,
            Seen::Gone => false,
            // Another user's process under `hidepid`: it may be driving.
            Seen::Hidden => true,
        }
    }
}

/// What `/proc` shows of a process.
enum Seen {
    Started(u64),
    Gone,
    Hidden,
}

/// This process no longer holds the claim `token` (called before the store is written, so
/// a failed write still frees the run for this process's next driver).
pub fn let_go(token: &str) {
    HELD_HERE.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
fn process_start(pid: u32) -> Seen {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Seen::Gone,
        Err(_) => return Seen::Hidden,
    };
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let started = stat.rfind(')').and_then(|at| stat[at + 1..].split_whitespace().nth(19)?.parse().ok());
    started.map_or(Seen::Hidden, Seen::Started)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_lives_while_held_here_and_not_after() {
        let held = Holder::new_here("test");
        assert!(held.alive(true));
        let_go(&held.token);
        assert!(!held.alive(true), "let go in this process: gone");
    }

    #[test]
    fn a_holder_whose_process_ended_or_was_replaced_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let Seen::Started(started) = process_start(pid) else { panic!("a running child has a start time") };
        let holder = Holder { token: "t".into(), who: "cli".into(), pid, started, host: host_name() };
        assert!(holder.alive(true));
        let reused = Holder { started: started + 1, ..holder.clone() };
        assert!(!reused.alive(true), "same pid, another process");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!holder.alive(true), "its process ended");
        let elsewhere = Holder { host: "another-host".into(), ..holder };
        assert!(elsewhere.alive(false), "in etcd another host's holder lives by its lease");
        assert!(!elsewhere.alive(true), "a one-host store: another host's holder is a recreated container, gone");
    }
}
