//! `fence`: make the old primary refuse writes, so it can never be a second primary.

use std::time::Duration;

use async_trait::async_trait;

use super::{Need, Observation, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::{Plan, StepKind};
use crate::run::{RunHeader, RunKind};
use crate::world::MemberStatus;

pub struct Fence;

#[async_trait]
impl Step for Fence {
    fn kind(&self) -> StepKind {
        StepKind::Fence
    }

    /// A fence may wait for the member to take its new settings as long as a promotion.
    fn waits(&self, plan: &Plan) -> Duration {
        super::database_waits(plan)
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the database member in {}", self.acts_on(cx.header))
    }

    fn acts_on<'h>(&self, header: &'h RunHeader) -> &'h str {
        &header.from
    }

    fn needs(&self) -> &'static [Need] {
        &[Need::SourceMember { fences: true }]
    }

    /// An unreachable old primary is skipped in a failover (best effort: the region is
    /// lost), and stops any planned move (it needs the old primary).
    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let from = cx.from();
        Ok(match cx.world.database.member(from).await? {
            MemberStatus::Unreachable { reason } if cx.header.kind == RunKind::Failover => {
                Observation::Skipped(format!("{from} unreachable ({reason}); fencing skipped, best effort"))
            }
            MemberStatus::Unreachable { reason } => {
                return Err(ProviderError::permanent(format!(
                    "{from} database unreachable ({reason}); a {} needs it — use 'drover failover' instead",
                    cx.header.kind.as_str()
                )));
            }
            MemberStatus::Primary { writable: true, .. } => Observation::Needed(format!("{from} accepts writes")),
            MemberStatus::Primary { writable: false, .. } => Observation::Done(format!("{from} refuses writes")),
            MemberStatus::Standby { .. } => Observation::Done(format!("{from} is a standby; nothing to fence")),
        })
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        cx.world.database.fence(cx.from()).await?;
        Ok(None)
    }

    /// Lifts the fence. `crate::undo` offers this only when no promotion was ever
    /// attempted; the world is looked at once more in case someone promoted the target by
    /// hand meanwhile.
    async fn undo(&self, cx: &StepCx<'_>) -> Result<String, ProviderError> {
        let (db, from, to) = (cx.world.database, cx.from(), cx.to());
        if let MemberStatus::Primary { writable: true, .. } = db.member(to).await? {
            return Err(ProviderError::permanent(format!(
                "{to} accepts writes now; lifting the fence on {from} would make two primaries"
            )));
        }
        db.unfence(from).await?;
        match db.member(from).await? {
            MemberStatus::Primary { writable: true, .. } => Ok(format!("{from} accepts writes again")),
            other => Err(ProviderError::permanent(format!("{from} is {} after lifting its fence", other.role_str()))),
        }
    }
}
