//! `rejoin`: make the old primary a streaming standby of the new one (pg_rewind, or a
//! fresh base backup that keeps the old data aside).

use std::time::Duration;

use async_trait::async_trait;

use super::{Need, Observation, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::{Plan, StepKind};
use crate::run::RunHeader;
use crate::world::MemberStatus;

/// The longest a rejoin's copy of the database may take: the PostgreSQL adapter bounds its
/// base backup at two hours, and its commands (stop, rewind, start) at ten minutes each.
const REJOIN_COPY: Duration = Duration::from_secs(3 * 3600);

pub struct Rejoin;

#[async_trait]
impl Step for Rejoin {
    fn kind(&self) -> StepKind {
        StepKind::Rejoin
    }

    /// A rejoin may copy the whole database (a base backup, which the PostgreSQL adapter
    /// bounds at two hours) and then wait for the member to start and follow.
    fn waits(&self, plan: &Plan) -> Duration {
        REJOIN_COPY.saturating_add(super::database_waits(plan).saturating_mul(2))
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the database member in {}", self.acts_on(cx.header))
    }

    fn acts_on<'h>(&self, header: &'h RunHeader) -> &'h str {
        &header.from
    }

    fn needs(&self) -> &'static [Need] {
        &[Need::SourceMember { fences: false }]
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        cx.not_stale().await?;
        let from = cx.from();
        Ok(match cx.world.database.member(from).await? {
            MemberStatus::Standby { upstream: Some(up), .. } => {
                Observation::Done(format!("{from} is a standby streaming from {up}"))
            }
            MemberStatus::Standby { upstream: None, .. } => {
                Observation::Needed(format!("{from} is a standby that streams from no primary"))
            }
            // Its server may be stopped or its data gone: the rejoin works through its host.
            MemberStatus::Unreachable { reason } => {
                Observation::Needed(format!("{from} database unreachable ({reason})"))
            }
            MemberStatus::Primary { .. } => Observation::Needed(format!("{from} is still a primary")),
        })
    }

    /// Returns the method (rewind, base backup) for the journal.
    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        Ok(Some(cx.world.database.rejoin(cx.from(), cx.to()).await?.describe()))
    }
}
