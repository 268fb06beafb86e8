//! `switch`: point traffic at the target, conditional on the epoch — a record at a newer
//! epoch is never overwritten, and a record at this run's epoch elsewhere is another
//! run's doing.

use std::time::Duration;

use async_trait::async_trait;

use super::{Need, Observation, Step, StepCx, stale};
use crate::error::ProviderError;
use crate::plan::{Plan, Route53Routing, StepKind, TrafficSpec};

pub struct Switch;

#[async_trait]
impl Step for Switch {
    fn kind(&self) -> StepKind {
        StepKind::Switch
    }

    /// A switch waits for each change to be in effect, and between the stages of a
    /// gradual shift while the target's checks run.
    fn waits(&self, plan: &Plan) -> Duration {
        let (changes, pause, stages) = match &plan.traffic {
            TrafficSpec::Rfc2136(_) => return Duration::ZERO,
            TrafficSpec::Route53(r) => match &r.routing {
                Route53Routing::Weighted { stages, stage_pause } => (r.change_timeout, *stage_pause, stages.len()),
                Route53Routing::Failover => (r.change_timeout, Duration::ZERO, 1),
            },
            TrafficSpec::GlobalAccelerator(g) => (g.change_timeout, g.stage_pause, g.stages.len()),
        };
        let stages = u32::try_from(stages.max(1)).unwrap_or(u32::MAX);
        changes.saturating_add(pause).saturating_mul(stages)
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the traffic provider ({})", cx.plan.traffic.kind().as_str())
    }

    fn needs(&self) -> &'static [Need] {
        &[Need::Traffic]
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let (to, epoch) = (cx.to(), cx.epoch());
        let now = cx.world.traffic.current().await?;
        if now.epoch > epoch {
            return Err(stale(now.epoch, epoch));
        }
        Ok(match &now.region {
            Some(r) if r == to && now.epoch == epoch => {
                Observation::Done(format!("traffic points at {to} at epoch {epoch}"))
            }
            // Our epoch on no single region: this run's staged shift stopped part way
            // (a failing check paused it); switching again continues it.
            None if now.epoch == epoch => Observation::Needed(format!(
                "traffic is split between regions at epoch {epoch}: this run's shift to {to} is part way"
            )),
            // Our epoch, somewhere else: another writer used it; never overwrite.
            _ if now.epoch == epoch => {
                return Err(ProviderError::permanent(format!(
                    "traffic holds this run's epoch {epoch} but points at {}; another run switched it — abort this one",
                    now.region.as_deref().unwrap_or("no region")
                )));
            }
            _ => Observation::Needed(format!(
                "traffic points at {} (epoch {})",
                now.region.as_deref().unwrap_or("no region"),
                now.epoch
            )),
        })
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        let (to, epoch) = (cx.to(), cx.epoch());
        let now = cx.world.traffic.current().await?;
        if now.region.as_deref() != Some(to) || now.epoch != epoch {
            cx.world.traffic.switch(to, now.epoch, epoch).await?
        }
        Ok(None)
    }
}
