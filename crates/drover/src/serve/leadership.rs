//! Who may act. With the embedded store, each daemon acts on its own authority
//! (the acting-vantage rule picks one). With `--store etcd://...`, daemons elect
//! a leader: only the leader starts or drives runs, and it journals through an
//! `EtcdJournal` fenced on its leader key, so a deposed leader can write nothing.
//! A new leader takes over a run its predecessor left unfinished, from the journal.

use std::sync::Arc;
use std::time::Duration;

use drover_core::journal::Journal;
use drover_store::{EtcdJournal, campaign, cluster};
use tokio::sync::watch;

use crate::app::store::EtcdStore;

/// The leader election a daemon takes part in.
pub struct Election {
    pub store: EtcdStore,
    /// The lease behind the leader key: how long a dead leader keeps the role.
    pub ttl: Duration,
    term: watch::Sender<Option<Term>>,
}

/// One stretch of leadership, with the journal fenced on it.
#[derive(Clone)]
struct Term {
    number: u64,
    journal: Arc<dyn Journal>,
}

/// The journal a run driven by this daemon writes through, and the term it belongs to
/// (`None`: no election; the daemon acts on its own authority).
#[derive(Clone)]
pub struct Authority {
    pub journal: Arc<dyn Journal>,
    term: Option<u64>,
}

impl Authority {
    /// Acting on one's own authority, through `journal` (no election).
    pub fn local(journal: Arc<dyn Journal>) -> Authority {
        Authority { journal, term: None }
    }
}

impl Election {
    pub fn new(store: EtcdStore, ttl: Duration) -> Election {
        Election { store, ttl, term: watch::channel(None).0 }
    }

    fn key(&self) -> String {
        self.store.election_key()
    }

    pub fn is_leader(&self) -> bool {
        self.term.borrow().is_some()
    }

    /// The leader's authority, or None on a follower.
    pub fn authority(&self) -> Option<Authority> {
        self.term.borrow().as_ref().map(|t| Authority { journal: Arc::clone(&t.journal), term: Some(t.number) })
    }

    /// Which vantage leads now, as etcd says (for messages to people).
    pub async fn leader_name(&self) -> String {
        match cluster::election_leader(&self.store.access, &self.key()).await {
            Ok(Some(name)) => name,
            Ok(None) => "no daemon".into(),
            Err(e) => format!("an unknown daemon ({e})"),
        }
    }

    /// Campaigns for as long as the process lives; `on_elected` runs at the start of each term.
    pub async fn run(&self, vantage: &str, on_elected: impl Fn()) {
        let ttl = self.ttl.as_secs().max(1) as i64;
        let mut number = 0;
        let mut last_error = String::new();
        loop {
            let mut leader = match campaign(&self.store.access, &self.key(), vantage, ttl).await {
                Ok(leader) => leader,
                Err(e) => {
                    let e = e.to_string();
                    if e != last_error {
                        tracing::warn!(%vantage, error = %e, "cannot campaign for leadership; retrying");
                        last_error = e;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            last_error.clear();
            let journal = match EtcdJournal::connect(&self.store.access, &self.store.prefix).await {
                Ok(j) => j.fenced(leader.fence.clone()),
                Err(e) => {
                    tracing::warn!(%vantage, error = %e, "won the election but cannot open the journal; standing down");
                    drop(leader);
                    tokio::time::sleep(self.ttl).await;
                    continue;
                }
            };
            number += 1;
            tracing::warn!(%vantage, term = number, key = %leader.fence.key, "this daemon leads: it alone starts and drives runs");
            self.term.send_replace(Some(Term { number, journal: Arc::new(journal) }));
            on_elected();
            leader.lost().await;
            self.term.send_replace(None);
            tracing::warn!(%vantage, term = number, "leadership lost (etcd lease not renewed): runs driven here stop");
        }
    }

    /// Resolves when the term `authority` belongs to has ended (never without an election).
    pub async fn ended(&self, authority: &Authority) {
        let Some(term) = authority.term else { return std::future::pending().await };
        let mut rx = self.term.subscribe();
        let _ = rx.wait_for(|t| t.as_ref().map(|t| t.number) != Some(term)).await;
    }
}
