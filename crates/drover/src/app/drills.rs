//! Drills as the front ends journal and read them: a drill being run (`DrillLog`), the
//! history's rows (`DrillRow`) and one drill shown (`show`). The drill log's records and
//! their legal orders are the core's (`drover_core::drill_log`); the journal keeps them.

use drover_core::clock::{Ids, SystemClock};
use drover_core::drill::DrillReport;
use drover_core::drill_log::{
    DrillHeader, DrillId, DrillOutcome, DrillPhase, DrillRecord, DrillState, DrillSummary, DrillsPage,
};
use drover_core::engine::now_ms;
use drover_core::history::{Keep, PageRequest};
use drover_core::journal::Journal;
use drover_core::run::RunId;
use serde::{Deserialize, Serialize};

use crate::app::error::{Failure, store_failure};

/// A drill being run: every record goes through here to the journal.
pub struct DrillLog<'a> {
    journal: &'a dyn Journal,
    pub id: DrillId,
    keep: Option<Keep>,
}

/// What a drill is about to do, before it has an id.
pub struct DrillStart<'a> {
    pub plan: &'a str,
    pub fault: &'a str,
    pub region: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub requested_by: &'a str,
}

impl<'a> DrillLog<'a> {
    /// Journals the drill's start. Refused (a conflict) while another drill is unfinished:
    /// call this after every check and before anything is touched.
    pub async fn begin(journal: &'a dyn Journal, keep: Option<Keep>, start: DrillStart<'_>) -> Result<Self, Failure> {
        Self::begin_as(journal, keep, &SystemClock.drill_id(now_ms()), start).await
    }

    /// `begin`, under an id drawn before (what was built for the drill, e.g. a FIS
    /// experiment's client token, already carries it).
    pub async fn begin_as(
        journal: &'a dyn Journal,
        keep: Option<Keep>,
        id: &DrillId,
        start: DrillStart<'_>,
    ) -> Result<Self, Failure> {
        let header = DrillHeader {
            id: id.clone(),
            plan: start.plan.into(),
            fault: start.fault.into(),
            region: start.region.into(),
            from: start.from.into(),
            to: start.to.into(),
            requested_by: start.requested_by.into(),
        };
        journal.begin_drill(&header).await.map_err(store_failure)?;
        Ok(DrillLog { journal, id: header.id, keep })
    }

    /// The log of a drill already begun (`drover drill abort|resume ID`).
    pub fn resume(journal: &'a dyn Journal, keep: Option<Keep>, id: &DrillId) -> Self {
        DrillLog { journal, id: id.clone(), keep }
    }

    pub async fn record(&self, record: DrillRecord) -> Result<(), Failure> {
        self.journal.append_drill(&self.id, record).await.map(|_| ()).map_err(store_failure)
    }

    pub async fn phase_started(&self, phase: DrillPhase, run: Option<&RunId>) -> Result<(), Failure> {
        self.record(DrillRecord::PhaseStarted { phase, run: run.cloned() }).await
    }

    pub async fn phase_ended(&self, phase: DrillPhase, run: Option<&RunId>, state: &str) -> Result<(), Failure> {
        self.record(DrillRecord::PhaseEnded { phase, run: run.cloned(), state: state.into() }).await
    }

    pub async fn measured(&self, report: &DrillReport) -> Result<(), Failure> {
        self.record(DrillRecord::Measured { report: Box::new(report.clone()) }).await
    }

    /// Ends the drill as `result` says: completed, or failed with its message. A phase left
    /// open by the failure is ended first (its run's state unknown here). Then trims the
    /// drill history to `journal.keep`. A journal that cannot be written is reported, but
    /// does not hide the drill's own result.
    pub async fn end(&self, result: &Result<(), Failure>) {
        match result {
            Ok(()) => self.end_as(DrillOutcome::Completed, None).await,
            Err(f) => self.end_as(DrillOutcome::Failed, Some(f.message.clone())).await,
        }
    }

    /// Ends the drill with `outcome` (see `end`).
    pub async fn end_as(&self, outcome: DrillOutcome, reason: Option<String>) {
        if let Ok(summary) = self.journal.drill(&self.id).await
            && let Some(open) = summary.open_phase()
        {
            let _ = self.phase_ended(open.phase, open.run.as_ref(), "unknown").await;
        }
        let record = DrillRecord::Ended { outcome, reason };
        if let Err(e) = self.record(record).await {
            eprintln!("warning: drill {}: its end could not be journaled: {}", self.id, e.message);
        }
        if let Some(keep) = &self.keep {
            let _ = self.journal.prune_drills(keep, now_ms()).await;
        }
    }
}

/// One line of `drover drills`: what a person compares drill to drill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillRow {
    pub id: String,
    pub started_ms: u64,
    pub fault: String,
    pub from: String,
    pub to: String,
    pub rto_ms: Option<u64>,
    pub rpo_ms: Option<u64>,
    pub lost_acknowledged_writes: Option<u64>,
    /// Both objectives met; None before the drill was measured.
    pub objectives_met: Option<bool>,
    pub state: DrillState,
    /// The fault may still be in place.
    pub fault_in_place: bool,
    /// The drill's failover (or failback) run.
    pub run_id: Option<String>,
}

impl DrillRow {
    pub fn of(drill: &DrillSummary) -> DrillRow {
        let report = drill.report.as_ref();
        DrillRow {
            id: drill.header.id.0.clone(),
            started_ms: drill.started_ms,
            fault: drill.header.fault_spec(),
            from: drill.header.from.clone(),
            to: drill.header.to.clone(),
            rto_ms: report.and_then(|r| r.rto_ms),
            rpo_ms: report.map(|r| r.rpo_ms),
            lost_acknowledged_writes: report.map(|r| r.lost_acknowledged_writes),
            objectives_met: report.map(DrillReport::objectives_met),
            state: drill.state,
            fault_in_place: drill.needs_undo(),
            run_id: drill.run_id().map(|r| r.0.clone()),
        }
    }
}

/// One page of the drill history, as rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillRows {
    pub drills: Vec<DrillRow>,
    /// The cursor for the next page (`--before`); None: this is the last.
    pub next: Option<String>,
}

pub async fn page(journal: &dyn Journal, request: &PageRequest) -> Result<DrillRows, Failure> {
    let DrillsPage { drills, next } = journal.drill_page(request).await.map_err(store_failure)?;
    Ok(DrillRows { drills: drills.iter().map(DrillRow::of).collect(), next: next.map(|n| n.0) })
}

pub async fn show(journal: &dyn Journal, id: &str) -> Result<DrillSummary, Failure> {
    journal.drill(&RunId(id.into())).await.map_err(store_failure)
}
