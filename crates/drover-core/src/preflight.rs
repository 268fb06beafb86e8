//! Preflight: every resource a run will touch is read and checked before its first
//! irreversible step. A misnamed Auto Scaling group found at `scale` — after the primary
//! was fenced and the standby promoted — leaves traffic on a fenced primary until someone
//! fixes the plan; found here, the run is refused (exit 2) and nothing is journaled.
//!
//! Providers say what is wrong ([`crate::world::Preflight`]); this module only decides
//! which resources a run touches and asks them all at once. `drover plan check --live`
//! asks the same of every resource of the plan.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::join::join_all;
use crate::plan::Plan;
use crate::run::{RunHeader, RunKind};
use crate::steps::{Need, step};
use crate::world::Providers;

/// How long one provider's preflight may take. A lost region's API that never answers must
/// not delay a failover: past this, the resource is not judged (observation already did).
const DEADLINE: Duration = Duration::from_secs(15);

/// Which of a run's regions the preflight judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Both: the region losing the role and the target (switchovers, failbacks, reprotects,
    /// and a person's failover, where a misnamed primary is a plan to fix first).
    Both,
    /// Only the target and traffic: a failover whose source is lost — the daemons' quorum
    /// judged it, or a person said so with `--accept-data-loss` — may have lost its
    /// resources too (deleted instances are a disaster like any other).
    TargetOnly,
}

impl Scope {
    /// The scope of a person's run: a failover said to accept data loss does not depend on
    /// anything in the region it leaves.
    pub fn for_person(kind: RunKind, accept_data_loss: bool) -> Scope {
        if kind == RunKind::Failover && accept_data_loss { Scope::TargetOnly } else { Scope::Both }
    }
}

/// What is wrong with the resources `header`'s run would touch: the database members it
/// fences, promotes or rejoins, the traffic records it switches, and the compute it reads
/// and sizes. Empty when the run may start.
pub async fn for_run(plan: &Plan, world: Providers<'_>, header: &RunHeader, scope: Scope) -> Vec<String> {
    let needs: Vec<Need> = header.steps.iter().flat_map(|kind| step(kind, plan).needs().iter().copied()).collect();
    let has = |need: Need| needs.contains(&need);
    let source = scope == Scope::Both || header.kind != RunKind::Failover;
    let mut members: Vec<(&str, bool)> = Vec::new();
    let fences = has(Need::SourceMember { fences: true });
    if source && (fences || has(Need::SourceMember { fences: false })) {
        members.push((&header.from, fences));
    }
    if header.kind.moves_primary() {
        members.push((&header.to, false));
    }
    let mut regions = vec![header.to.as_str()];
    if source {
        regions.push(&header.from);
    }
    let compute: Vec<(&str, &str)> = if has(Need::Compute) {
        plan.compute.keys().flat_map(|r| regions.iter().map(move |region| (r.as_str(), *region))).collect()
    } else {
        Vec::new()
    };
    gather(world, &members, has(Need::Traffic), &compute).await
}

/// What is wrong with any resource of the plan, in every service region (each member as
/// one a run may fence).
pub async fn for_plan(plan: &Plan, world: Providers<'_>) -> Vec<String> {
    let found = by_resource(plan, world).await;
    let mut seen = std::collections::HashSet::new();
    found
        .members
        .into_values()
        .flatten()
        .chain(found.traffic)
        .chain(found.compute.into_values().flatten())
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

/// What is wrong with each resource of the plan, filed by resource: readiness
/// (`crate::readiness`) names each problem under its rule and region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanProblems {
    /// By service region: its database member's problems (judged as one a run may fence).
    pub members: BTreeMap<String, Vec<String>>,
    pub traffic: Vec<String>,
    /// By (compute resource, region).
    pub compute: BTreeMap<(String, String), Vec<String>>,
}

/// [`for_plan`]'s answers, each kept with the resource it is about.
pub async fn by_resource(plan: &Plan, world: Providers<'_>) -> PlanProblems {
    let regions: Vec<&str> = plan.service_regions().collect();
    let compute: Vec<(&str, &str)> =
        plan.compute.keys().flat_map(|r| regions.iter().map(move |region| (r.as_str(), *region))).collect();
    let (members, traffic, found) = tokio::join!(
        join_all(
            regions.iter().map(|r| async move { (r.to_string(), bounded(world.database.preflight(r, true)).await) })
        ),
        bounded(world.traffic.preflight()),
        join_all(compute.iter().map(|(resource, region)| async move {
            ((resource.to_string(), region.to_string()), bounded(world.compute.preflight(resource, region)).await)
        })),
    );
    PlanProblems { members: members.into_iter().collect(), traffic, compute: found.into_iter().collect() }
}

/// A provider's answer within [`DEADLINE`], or nothing judged (as for any API that does
/// not answer: the observation before planning has judged its reachability).
async fn bounded(check: impl std::future::Future<Output = Vec<String>>) -> Vec<String> {
    tokio::time::timeout(DEADLINE, check).await.unwrap_or_default()
}

async fn gather(
    world: Providers<'_>,
    members: &[(&str, bool)],
    traffic: bool,
    compute: &[(&str, &str)],
) -> Vec<String> {
    let (members, traffic, compute) = tokio::join!(
        join_all(members.iter().map(|(r, fences)| bounded(world.database.preflight(r, *fences)))),
        async { if traffic { bounded(world.traffic.preflight()).await } else { Vec::new() } },
        join_all(compute.iter().map(|(resource, region)| bounded(world.compute.preflight(resource, region)))),
    );
    // A resource several regions share (an Aurora global cluster) is named by each
    // region's answer, not always next to each other: each problem once, first place kept.
    let mut seen = std::collections::HashSet::new();
    members
        .into_iter()
        .flatten()
        .chain(traffic)
        .chain(compute.into_iter().flatten())
        .filter(|p| seen.insert(p.clone()))
        .collect()
}
