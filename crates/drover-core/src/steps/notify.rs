//! `notify`: tell the plan's webhooks where the run stands. Never waits for them.

use async_trait::async_trait;

use super::{Observation, Pace, Step, StepCx};
use crate::error::ProviderError;
use crate::notify::EventKind;
use crate::plan::StepKind;

pub struct Notify;

#[async_trait]
impl Step for Notify {
    fn kind(&self) -> StepKind {
        StepKind::Notify
    }

    /// Nothing in the world shows a notification was sent: sent again after a crash (at
    /// least once).
    fn pace(&self) -> Pace {
        Pace::Once
    }

    async fn observe(&self, _cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        Ok(Observation::Needed("a notification leaves no trace in the world".into()))
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        let h = cx.header;
        let done: Vec<String> = match cx.journal.summary(&h.id).await {
            Ok(s) => s.steps.iter().filter(|s| s.state.is_done()).map(|s| s.kind.to_string()).collect(),
            Err(_) => Vec::new(),
        };
        let reason = format!("{} -> {} at epoch {}; done: {}", h.from, h.to, h.epoch, done.join(", "));
        cx.world.notifier.notify(h.event(cx.plan, EventKind::RunProgress, reason, cx.world.clock.now_ms()));
        Ok(Some("told the plan's webhooks where the run stands".into()))
    }
}
