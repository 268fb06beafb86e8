//! The autopilot's decision: given the vantages' verdicts and what the world
//! looks like, start a failover, ask a person, or refuse — always with a reason.
//! Pure, so every gate is tested on its own.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Observed, Refusal, lag_gate};
use crate::plan::{Plan, Role};
use crate::vantage::{RegionVerdict, Verdict};
use crate::world::MemberStatus;

/// Why an automatic failover did not start. Each is logged and counted by label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum GateRefusal {
    #[error("{region} looks down to {votes} of {quorum} vantages needed ({voters}); a minority view never fails over")]
    NoQuorum { region: String, votes: usize, quorum: u32, voters: String },
    #[error("no standby region is healthy enough to take over from {primary}: {why}")]
    StandbyUnhealthy { primary: String, why: String },
    #[error("standby {region} is {lag_bytes} bytes behind, more than policy.max_lag_on_failover ({limit})")]
    LagTooHigh { region: String, lag_bytes: u64, limit: u64 },
    #[error("standby {region} lags {lag}, more than policy.max_lag_time_on_failover ({limit})")]
    LagTimeTooHigh { region: String, lag: String, limit: String },
    #[error("run {run} is still active")]
    ActiveRun { run: String },
    #[error("the last failover ended {since_s}s ago; policy.cooldown is {cooldown_s}s")]
    Cooldown { since_s: u64, cooldown_s: u64 },
    /// Every gate held, but planning the run refused it (a stale target, a preflight
    /// problem): what a person would be told at `drover failover`.
    #[error("{why}")]
    Planner { why: String },
}

impl GateRefusal {
    /// The metric label: one per gate.
    pub fn label(&self) -> &'static str {
        match self {
            GateRefusal::NoQuorum { .. } => "no_quorum",
            GateRefusal::StandbyUnhealthy { .. } => "standby_unhealthy",
            GateRefusal::LagTooHigh { .. } | GateRefusal::LagTimeTooHigh { .. } => "lag_too_high",
            GateRefusal::ActiveRun { .. } => "active_run",
            GateRefusal::Cooldown { .. } => "cooldown",
            GateRefusal::Planner { .. } => "planner",
        }
    }

    pub const LABELS: [&'static str; 6] =
        ["no_quorum", "standby_unhealthy", "lag_too_high", "active_run", "cooldown", "planner"];
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The primary region is not judged down: nothing to do.
    Hold,
    /// Every gate holds: fail over now.
    Failover {
        from: String,
        to: String,
        reason: String,
    },
    /// Every gate holds, but the plan wants a person to approve (`auto_failover: false`
    /// or `require_approval: true`).
    AskApproval {
        from: String,
        to: String,
        reason: String,
    },
    Refuse(GateRefusal),
}

/// What the autopilot needs besides the verdicts and the observed world.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub verdicts: &'a BTreeMap<String, RegionVerdict>,
    /// Of the target only is enough: members, lag, active run.
    pub observed: &'a Observed,
    /// The primary region as the world shows it.
    pub primary: &'a str,
    /// When the last failover or switchover ended, ms since the Unix epoch.
    pub last_run_ended_ms: Option<u64>,
    pub now_ms: u64,
}

/// The gates, in the order a person would ask: is the primary really down
/// (quorum)? is there somewhere to go (standby healthy)? would we lose data
/// (lag)? is someone already on it (active run)? did we just move (cooldown)?
pub fn decide(cx: &Context<'_>) -> Decision {
    let plan = cx.plan;
    let primary_verdict = match primary_down(cx.verdicts, cx.primary) {
        Ok(Some(v)) => v,
        Ok(None) => return Decision::Hold,
        Err(refusal) => return Decision::Refuse(refusal),
    };
    let to = match target(cx) {
        Ok(to) => to,
        Err(why) => return Decision::Refuse(GateRefusal::StandbyUnhealthy { primary: cx.primary.into(), why }),
    };
    match lag_gate(plan, cx.observed, &to) {
        Err(Refusal::LagTooHigh { region, lag_bytes, limit }) => {
            return Decision::Refuse(GateRefusal::LagTooHigh { region, lag_bytes, limit });
        }
        Err(Refusal::LagTimeTooHigh { region, lag, limit }) => {
            return Decision::Refuse(GateRefusal::LagTimeTooHigh { region, lag, limit });
        }
        _ => {}
    }
    if let Some(run) = &cx.observed.active_run {
        return Decision::Refuse(GateRefusal::ActiveRun { run: run.0.clone() });
    }
    if let Some(ended) = cx.last_run_ended_ms {
        let since = cx.now_ms.saturating_sub(ended);
        let cooldown = plan.policy.cooldown.as_millis() as u64;
        if since < cooldown {
            return Decision::Refuse(GateRefusal::Cooldown { since_s: since / 1000, cooldown_s: cooldown / 1000 });
        }
    }
    let reason = format!(
        "{} is down to {} of {} vantages ({})",
        cx.primary,
        primary_verdict.down_votes.len(),
        primary_verdict.quorum,
        primary_verdict.down_votes.join(", ")
    );
    let (from, to) = (cx.primary.to_string(), to);
    if plan.policy.auto_failover && !plan.policy.require_approval {
        Decision::Failover { from, to, reason }
    } else {
        Decision::AskApproval { from, to, reason }
    }
}

/// The first gate, which needs nothing but the verdicts (so a daemon can skip
/// observing the world while it holds): the primary's verdict when a quorum
/// sees it down, None when it is not seen down, a refusal when only a minority does.
pub fn primary_down<'a>(
    verdicts: &'a BTreeMap<String, RegionVerdict>,
    primary: &str,
) -> Result<Option<&'a RegionVerdict>, GateRefusal> {
    let Some(v) = verdicts.get(primary) else { return Ok(None) };
    match v.verdict {
        Verdict::Down => Ok(Some(v)),
        Verdict::Suspect => Err(GateRefusal::NoQuorum {
            region: primary.into(),
            votes: v.down_votes.len(),
            quorum: v.quorum,
            voters: v.down_votes.join(", "),
        }),
        Verdict::Up | Verdict::Unknown => Ok(None),
    }
}

/// The standby region to fail over to: judged up by the vantages and holding a
/// reachable standby database. Standby-role regions first, then by name.
fn target(cx: &Context<'_>) -> Result<String, String> {
    let mut candidates: Vec<(&String, Role)> = cx
        .plan
        .regions
        .iter()
        .filter(|(name, r)| r.role != Role::Witness && name.as_str() != cx.primary)
        .map(|(name, r)| (name, r.role))
        .collect();
    candidates.sort_by_key(|(name, role)| (*role != Role::Standby, name.as_str()));
    let mut why = Vec::new();
    for (name, _) in candidates {
        let verdict = cx.verdicts.get(name.as_str()).map_or(Verdict::Unknown, |v| v.verdict);
        if verdict != Verdict::Up {
            why.push(format!("{name} is {} to the vantages", verdict.as_str()));
            continue;
        }
        match cx.observed.members.get(name.as_str()) {
            Some(MemberStatus::Standby { .. }) => return Ok(name.clone()),
            Some(other) => why.push(format!("{name} database is {}", other.role_str())),
            None => why.push(format!("{name} database was not observed")),
        }
    }
    Err(if why.is_empty() { "the plan has no other service region".into() } else { why.join("; ") })
}
