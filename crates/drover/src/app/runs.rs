//! What a person asks for, a run, and how it is planned against the world: the same for
//! a command run here and for a request to a daemon's API.

use drover_core::engine::{self, Observed, Refusal};
use drover_core::run::RunHeader;

use crate::app::context::Context;
use crate::app::error::{Failure, refused};

pub use drover_core::request::Request;

/// How a [`Request`] is planned: against the world as this process sees it (`Context`).
/// A trait because the request itself is core's, read by the API as core reads it.
pub(crate) trait PlanRequest {
    async fn plan(self, cx: &Context, reason: &str, preflight: bool) -> Result<RunHeader, Failure>;
    async fn plan_with(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal>;
}

impl PlanRequest for Request<'_> {
    /// Looks at the world and plans the run, with the preflight when `preflight` (the
    /// re-plan after a person's confirmation only looks for a world that moved: the resources
    /// were read a moment ago). A refusal changes nothing (`error::refused` classes it).
    async fn plan(self, cx: &Context, reason: &str, preflight: bool) -> Result<RunHeader, Failure> {
        let observed = cx.observe().await?;
        let planned = match preflight {
            true => self.plan_with(cx, &observed, reason).await,
            false => decide(self, cx, &observed, reason).await,
        };
        planned.map_err(|refusal| refused(self.kind(), &refusal))
    }

    /// Plans the run against what `observed` shows of the world, then reads every resource
    /// it would touch (preflight): nothing is journaled unless all of them are as it needs.
    async fn plan_with(self, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
        let header = decide(self, cx, observed, reason).await?;
        let scope = match self {
            Request::Move { kind, accept_data_loss, .. } => {
                drover_core::preflight::Scope::for_person(kind, accept_data_loss)
            }
            _ => drover_core::preflight::Scope::Both,
        };
        let problems = drover_core::preflight::for_run(&cx.plan, cx.adapters.providers(), &header, scope).await;
        if problems.is_empty() { Ok(header) } else { Err(Refusal::Preflight(problems)) }
    }
}

/// The planners' decision alone, from what `observed` shows.
async fn decide(request: Request<'_>, cx: &Context, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
    match request {
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
