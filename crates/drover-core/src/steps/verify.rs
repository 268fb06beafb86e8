//! `verify`: the move itself (the target a writable primary at the run's epoch, traffic
//! on it) and the plan's critical checks against the target, until they pass.

use async_trait::async_trait;

use super::{Observation, Pace, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::StepKind;
use crate::world::MemberStatus;

pub struct Verify;

#[async_trait]
impl Step for Verify {
    fn kind(&self) -> StepKind {
        StepKind::Verify
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the database member in {}, the traffic provider and the checks", cx.to())
    }

    fn pace(&self) -> Pace {
        Pace::Wait
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let (to, epoch) = (cx.to(), cx.epoch());
        let mut failing = Vec::new();
        // The checks alone pass on a read-only standby too: verify the move itself.
        match cx.world.database.member(to).await? {
            MemberStatus::Primary { writable: true, epoch: Some(e), .. } if e >= epoch => {}
            other => failing
                .push(format!("{to} database is {} (want a writable primary at epoch {epoch})", other.role_str())),
        }
        let now = cx.world.traffic.current().await?;
        if now.region.as_deref() != Some(to) {
            failing.push(format!("traffic points at {}", now.region.as_deref().unwrap_or("no region")));
        }
        for check in cx.plan.checks_for(to).filter(|c| c.critical) {
            let r = cx.world.prober.probe(check, to).await;
            if !r.ok {
                failing.push(format!("check {}: {}", check.name, r.detail));
            }
        }
        Ok(if failing.is_empty() {
            Observation::Done(format!("{to} passes its checks"))
        } else {
            Observation::Needed(failing.join("; "))
        })
    }

    /// Verifying changes nothing: a failing observation is a transient error, so the
    /// executor looks again within the wait budget.
    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        match self.observe(cx).await? {
            Observation::Done(_) | Observation::Skipped(_) => Ok(None),
            Observation::Needed(why) => Err(ProviderError::transient(why)),
        }
    }
}
