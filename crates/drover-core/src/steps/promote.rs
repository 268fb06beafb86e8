//! `promote`: raise the epoch in the store, promote the target, and record the epoch in it.
//! The store's compare-and-swap is what makes two runs unable to promote at one epoch.

use std::time::Duration;

use async_trait::async_trait;

use super::{Observation, Step, StepCx, stale};
use crate::error::{ProviderError, StoreError};
use crate::plan::{Plan, StepKind};
use crate::run::Record;
use crate::world::MemberStatus;

pub struct Promote;

#[async_trait]
impl Step for Promote {
    fn kind(&self) -> StepKind {
        StepKind::Promote
    }

    /// A promotion waits for the new primary to take writes: the plan's promote timeout.
    fn waits(&self, plan: &Plan) -> Duration {
        super::database_waits(plan)
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the database member in {}", self.acts_on(cx.header))
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        cx.not_stale().await?;
        let (to, epoch) = (cx.to(), cx.epoch());
        Ok(match cx.world.database.member(to).await? {
            MemberStatus::Primary { writable: true, epoch: Some(e), .. } if e >= epoch => {
                Observation::Done(format!("{to} is primary at epoch {e}"))
            }
            MemberStatus::Unreachable { reason } => {
                return Err(ProviderError::transient(format!("{to} database unreachable: {reason}")));
            }
            other => Observation::Needed(format!("{to} is {}", other.role_str())),
        })
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        raise_epoch(cx).await?;
        let db = cx.world.database;
        db.promote(cx.to(), cx.header.kind).await?;
        db.record_epoch(cx.to(), cx.epoch(), &cx.header.id).await?;
        Ok(None)
    }
}

/// Compare-and-swap the store's epoch up to this run's; fine if this run already did.
/// The run's epoch may be more than one above the store's (the world held a higher one).
async fn raise_epoch(cx: &StepCx<'_>) -> Result<(), ProviderError> {
    let store = |e: StoreError| ProviderError::transient(e.to_string()).with_source(e);
    let ours = cx.epoch();
    let current = cx.journal.epoch().await.map_err(store)?;
    if current == ours {
        return Ok(());
    }
    if current > ours {
        return Err(stale(current, ours));
    }
    match cx.journal.compare_and_swap_epoch(current, ours).await.map_err(store)? {
        Ok(()) => cx.log.record(&cx.header.id, Record::EpochRaised { from: current, to: ours }).await.map_err(store),
        Err(found) if found == ours => Ok(()),
        // Someone moved it between our read and the swap.
        Err(found) => Err(stale(found, ours)),
    }
}
