//! `switch`: point traffic at the target, conditional on the epoch — a record at a newer
//! epoch is never overwritten, and a record at this run's epoch elsewhere is another
//! run's doing.

use async_trait::async_trait;

use super::{Need, Observation, Step, StepCx, stale};
use crate::error::ProviderError;
use crate::plan::StepKind;

pub struct Switch;

#[async_trait]
impl Step for Switch {
    fn kind(&self) -> StepKind {
        StepKind::Switch
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
