//! `catch_up`: wait until the target has replayed all WAL the fenced old primary wrote —
//! what makes a planned move lose nothing.

use async_trait::async_trait;

use super::{Need, Observation, Pace, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::StepKind;
use crate::world::MemberStatus;

pub struct CatchUp;

#[async_trait]
impl Step for CatchUp {
    fn kind(&self) -> StepKind {
        StepKind::CatchUp
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the database members in {} and {}", cx.from(), cx.to())
    }

    fn pace(&self) -> Pace {
        Pace::Wait
    }

    fn needs(&self) -> &'static [Need] {
        &[Need::SourceMember { fences: false }]
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let (db, from, to) = (cx.world.database, cx.from(), cx.to());
        let old = match db.member(from).await? {
            MemberStatus::Primary { wal_lsn: Some(wal_lsn), .. } => wal_lsn,
            MemberStatus::Primary { wal_lsn: None, .. } => {
                return Err(ProviderError::permanent(format!(
                    "{from} exposes no WAL position — cannot confirm the standby has everything; use 'drover failover'"
                )));
            }
            other => {
                return Err(ProviderError::permanent(format!(
                    "{from} is {} — cannot confirm the standby has everything; use 'drover failover'",
                    other.role_str()
                )));
            }
        };
        Ok(match db.member(to).await? {
            MemberStatus::Standby { replay_lsn: Some(replay_lsn), .. } if replay_lsn >= old => {
                Observation::Done(format!("{to} replayed all WAL of {from}"))
            }
            MemberStatus::Standby { replay_lsn: Some(replay_lsn), .. } => {
                return Err(ProviderError::transient(format!(
                    "{to} is {} bytes behind {from}",
                    old.saturating_sub(replay_lsn)
                )));
            }
            MemberStatus::Standby { replay_lsn: None, .. } => {
                return Err(ProviderError::permanent(format!(
                    "{to} exposes no WAL position — cannot confirm it has everything of {from}"
                )));
            }
            MemberStatus::Primary { .. } => Observation::Done(format!("{to} is already primary")),
            MemberStatus::Unreachable { reason } => {
                return Err(ProviderError::transient(format!("{to} database unreachable: {reason}")));
            }
        })
    }

    /// Nothing to do but wait: the observation retries until the standby has caught up.
    async fn apply(&self, _cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
}
