//! The journal's history of runs, read a page at a time, and the retention of ended runs.
//!
//! A journal lives as long as the service it protects: every drill and switchover adds a
//! run. Nothing that drover does routinely may read the whole history at once (an etcd
//! answer is refused past 4 MiB, which ~1,500 ended runs reach), so runs are listed in
//! pages, the active run is found by its own key, and `journal.keep` trims ended runs.
//!
//! Every store keeps an index of run starts, in the order runs began (the `Started`
//! record's sequence number): `RunStart`. Pages and retention walk that index, newest
//! first; the records of a run are read only for the runs a page shows.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::drill_log::DrillHeader;
use crate::error::StoreError;
use crate::journal::Journal;
use crate::run::{RunId, RunKind, RunSummary};

/// What a page holds when a caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// The most a page may hold: one store request reads a page's runs.
pub const MAX_PAGE: usize = 500;
/// The most ended runs one `prune` removes: the rest wait for the next run's end or round.
pub const PRUNE_BATCH: usize = 200;
/// The runs a search for the newest run of some sort reads first (`newest_of`).
const FIRST_LOOK: usize = 5;
/// How far back a search for the newest run of some sort looks (`newest_where`).
pub const SEARCH_DEPTH: usize = 1_000;

/// Which page of runs: newest first, at most `limit`, only runs that began before `before`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub before: Option<RunId>,
}

impl PageRequest {
    /// The first page of `limit` runs (clamped to 1..=MAX_PAGE).
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { limit: limit.clamp(1, MAX_PAGE), before: None }
    }

    /// The page after `before` (a `RunsPage::next`).
    pub fn after(limit: usize, before: Option<RunId>) -> PageRequest {
        PageRequest { before, ..PageRequest::first(limit) }
    }
}

/// One page of runs, newest first; `next` is the cursor for the following page (None:
/// this is the last).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunsPage {
    pub runs: Vec<RunSummary>,
    pub next: Option<RunId>,
}

/// One entry of a store's index of run starts: enough to page and to judge retention
/// without reading the run's records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStart {
    pub id: RunId,
    pub kind: RunKind,
    pub started_ms: u64,
}

impl RunStart {
    pub fn of(summary: &RunSummary) -> RunStart {
        RunStart { id: summary.header.id.clone(), kind: summary.header.kind, started_ms: summary.started_ms }
    }

    /// A drill's entry in a store's index of drill starts, in the shape retention judges:
    /// drills are judged as one kind, so the newest drill is always kept.
    pub fn of_drill(header: &DrillHeader, started_ms: u64) -> RunStart {
        RunStart { id: header.id.clone(), kind: RunKind::Failover, started_ms }
    }
}

/// The plan's `journal.keep`: ended runs kept. A run is kept when either rule keeps it
/// (whichever keeps more); the active run and the newest run of each kind are always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    /// The newest this many runs.
    pub last: Option<u32>,
    /// Runs that began within this many days.
    pub days: Option<u32>,
}

/// What one `prune` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The ended runs removed, with all their records.
    pub removed: Vec<RunId>,
    /// More runs are due than one batch removes: prune again.
    pub more: bool,
}

/// Judges runs for retention, fed from the index newest first. Stores walk their index
/// in their own pages and stop when `full()`; what is `doomed` is theirs to delete.
pub struct Sweep {
    last: usize,
    cutoff_ms: Option<u64>,
    active: Option<RunId>,
    seen: usize,
    kinds: BTreeSet<&'static str>,
    pub doomed: Vec<RunId>,
    /// A due run was seen after the batch filled.
    pub more: bool,
}

const DAY_MS: u64 = 24 * 3_600_000;

impl Sweep {
    pub fn new(keep: &Keep, now_ms: u64, active: Option<RunId>) -> Sweep {
        // No rule given keeps nothing by that rule; `days` counts back from the clock.
        let cutoff_ms = keep.days.map(|days| now_ms.saturating_sub(u64::from(days).saturating_mul(DAY_MS)));
        Sweep {
            last: keep.last.map_or(0, |n| n as usize),
            cutoff_ms,
            active,
            seen: 0,
            kinds: BTreeSet::new(),
            doomed: Vec::new(),
            more: false,
        }
    }

    /// Takes the next run, newer runs first. Returns false once the batch is full and
    /// one more due run was seen: the walk can stop.
    pub fn consider(&mut self, start: &RunStart) -> bool {
        let rank = self.seen;
        self.seen += 1;
        let first_of_kind = self.kinds.insert(start.kind.as_str());
        let recent = self.cutoff_ms.is_some_and(|cutoff| start.started_ms >= cutoff);
        let kept = rank < self.last || recent || first_of_kind || self.active.as_ref() == Some(&start.id);
        if kept {
            return true;
        }
        if self.doomed.len() >= PRUNE_BATCH {
            self.more = true;
            return false;
        }
        self.doomed.push(start.id.clone());
        true
    }

    pub fn finish(self) -> Pruned {
        Pruned { removed: self.doomed, more: self.more }
    }
}

/// The newest run (among the newest `SEARCH_DEPTH`) that `wanted` accepts, walking pages.
/// For "the last failover", "the last move into west": found near the top of the history.
pub async fn newest_where(
    journal: &dyn Journal,
    wanted: impl Fn(&RunSummary) -> bool + Send + Sync,
) -> Result<Option<RunSummary>, StoreError> {
    Ok(newest_of(journal, &[&wanted]).await?.pop().flatten())
}

/// For each of `wanted`, the newest run (among the newest `SEARCH_DEPTH`) it accepts, in
/// one walk down the history that stops once each has its run.
pub async fn newest_of(
    journal: &dyn Journal,
    wanted: &[&(dyn Fn(&RunSummary) -> bool + Send + Sync)],
) -> Result<Vec<Option<RunSummary>>, StoreError> {
    let mut found: Vec<Option<RunSummary>> = vec![None; wanted.len()];
    // What is wanted is nearly always among the newest few: look there first.
    let mut request = PageRequest::first(FIRST_LOOK);
    let mut looked = 0;
    loop {
        let page = journal.page(&request).await?;
        looked += page.runs.len();
        for run in &page.runs {
            for (slot, wants) in found.iter_mut().zip(wanted) {
                if slot.is_none() && wants(run) {
                    *slot = Some(run.clone());
                }
            }
        }
        match page.next {
            Some(next) if looked < SEARCH_DEPTH && found.iter().any(Option::is_none) => {
                request = PageRequest::after(DEFAULT_PAGE, Some(next))
            }
            _ => return Ok(found),
        }
    }
}

/// A page size as a person or a caller writes it: a whole number from 1 to `MAX_PAGE`.
pub fn page_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a page size; write a whole number from 1 to {MAX_PAGE}")),
    }
}

/// Every run, newest first, read page by page: for tests and tools over small journals;
/// what drover does routinely reads one page or the active run.
pub async fn every_run(journal: &dyn Journal) -> Result<Vec<RunSummary>, StoreError> {
    let mut request = PageRequest::first(MAX_PAGE);
    let mut out = Vec::new();
    loop {
        let page = journal.page(&request).await?;
        out.extend(page.runs);
        match page.next {
            Some(next) => request = PageRequest::after(MAX_PAGE, Some(next)),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str, kind: RunKind, started_ms: u64) -> RunStart {
        RunStart { id: RunId(id.into()), kind, started_ms }
    }

    fn sweep(keep: Keep, now_ms: u64, active: Option<&str>, runs: &[RunStart]) -> Vec<String> {
        let mut s = Sweep::new(&keep, now_ms, active.map(|a| RunId(a.into())));
        for r in runs {
            if !s.consider(r) {
                break;
            }
        }
        s.finish().removed.into_iter().map(|r| r.0).collect()
    }

    #[test]
    fn whichever_rule_keeps_more_wins() {
        let day = DAY_MS;
        // Newest first: four switchovers a day apart, then one failover long ago.
        let runs = [
            start("s4", RunKind::Switchover, 10 * day),
            start("s3", RunKind::Switchover, 9 * day),
            start("s2", RunKind::Switchover, 8 * day),
            start("s1", RunKind::Switchover, 7 * day),
            start("f0", RunKind::Failover, day),
        ];
        let now = 10 * day;
        // last: 1 alone keeps s4 and the newest failover (the last of its kind).
        assert_eq!(sweep(Keep { last: Some(1), days: None }, now, None, &runs), ["s3", "s2", "s1"]);
        // days: 2 keeps what began in the last two days, more than last: 1 does.
        assert_eq!(sweep(Keep { last: Some(1), days: Some(2) }, now, None, &runs), ["s1"]);
        // last: 3 keeps more than days: 1.
        assert_eq!(sweep(Keep { last: Some(3), days: Some(1) }, now, None, &runs), ["s1"]);
        // The active run is never removed, however old.
        assert_eq!(sweep(Keep { last: Some(1), days: None }, now, Some("s2"), &runs), ["s3", "s1"]);
    }
}
