//! What a person asks for, a run, and how it is planned against the world: the same for
//! a command run here and for a request to a daemon's API.

use drover_core::engine::{self, Observed, Refusal};
use drover_core::run::{RunHeader, RunKind};

use crate::app::context::Context;
use crate::app::error::{Failure, refused};

/// What a person asks for: one run, planned against the world as it is when it starts.
/// The CLI and a daemon's API plan it the same way.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    /// A failover or switchover to a region; `accept_data_loss` as `--accept-data-loss`.
    Move {
        kind: RunKind,
        to: &'a str,
        accept_data_loss: bool,
    },
    Reprotect {
        region: &'a str,
    },
    /// To the plan's home region unless `to` says otherwise.
    Failback {
        to: Option<&'a str>,
    },
}

impl Request<'_> {
    pub fn kind(self) -> RunKind {
        match self {
            Request::Move { kind, .. } => kind,
            Request::Reprotect { .. } => RunKind::Reprotect,
            Request::Failback { .. } => RunKind::Failback,
        }
    }

    /// The body of `POST /api/v1/runs` that asks a daemon for this run (the daemon reads it
    /// back in `serve::api`).
    pub fn body(self, reason: &str) -> serde_json::Value {
        let mut body = serde_json::json!({"kind": self.kind().as_str(), "reason": reason});
        match self {
            Request::Move { to, accept_data_loss, .. } => {
                body["to"] = to.into();
                if accept_data_loss {
                    body["accept_data_loss"] = true.into();
                }
            }
            Request::Failback { to: Some(to) } => body["to"] = to.into(),
            Request::Reprotect { region } => body["region"] = region.into(),
            Request::Failback { to: None } => {}
        }
        body
    }

    /// Looks at the world and plans the run, with the preflight when `preflight` (the
    /// re-plan after a person's confirmation only looks for a world that moved: the resources
    /// were read a moment ago). A refusal changes nothing (`error::refused` classes it).
    pub async fn plan(self, cx: &Context, reason: &str, preflight: bool) -> Result<RunHeader, Failure> {
        let observed = cx.observe().await?;
        let planned = match preflight {
            true => self.plan_with(cx, &observed, reason).await,
            false => self.decide(cx, &observed, reason).await,
        };
        planned.map_err(|refusal| refused(self.kind(), &refusal))
    }

    /// Plans the run against what `observed` shows of the world, then reads every resource
    /// it would touch (preflight): nothing is journaled unless all of them are as it needs.
    pub async fn plan_with(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
        let header = self.decide(cx, observed, reason).await?;
        let scope = match self {
            Request::Move { kind, accept_data_loss, .. } => {
                drover_core::preflight::Scope::for_person(kind, accept_data_loss)
            }
            _ => drover_core::preflight::Scope::Both,
        };
        let problems = drover_core::preflight::for_run(&cx.plan, cx.adapters.providers(), &header, scope).await;
        if problems.is_empty() { Ok(header) } else { Err(Refusal::Preflight(problems)) }
    }

    /// The planners' decision alone, from what `observed` shows.
    async fn decide(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
        match self {
            Request::Move { kind, to, accept_data_loss } => {
                engine::plan_move(&cx.plan, kind, to, observed, reason, accept_data_loss)
            }
            Request::Reprotect { region } => {
                let host = cx.adapters.providers().database.host_access(region).await;
                engine::plan_reprotect(&cx.plan, region, observed, &host, reason)
            }
            Request::Failback { to } => engine::plan_failback(&cx.plan, to, observed, reason),
        }
    }
}
