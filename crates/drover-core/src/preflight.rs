//! Preflight: every resource a run will touch is read and checked before its first
//! irreversible step. A misnamed Auto Scaling group found at `scale` — after the primary
//! was fenced and the standby promoted — leaves traffic on a fenced primary until someone
//! fixes the plan; found here, the run is refused (exit 2) and nothing is journaled.
//!
//! Providers say what is wrong ([`crate::world::Preflight`]); this module only decides
//! which resources a run touches and asks them all at once. `drover plan check --live`
//! asks the same of every resource of the plan.

use crate::engine::{Providers, join_all};
use crate::plan::{Plan, StepKind};
use crate::run::RunHeader;

/// What is wrong with the resources `header`'s run would touch: the database members it
/// fences, promotes or rejoins, the traffic records it switches, and the compute it reads
/// and sizes in both regions. Empty when the run may start.
pub async fn for_run(plan: &Plan, world: Providers<'_>, header: &RunHeader) -> Vec<String> {
    let steps = &header.steps;
    let has = |kind: StepKind| steps.contains(&kind);
    let mut members: Vec<&str> = Vec::new();
    if has(StepKind::Fence) || has(StepKind::CatchUp) || has(StepKind::Rejoin) {
        members.push(&header.from);
    }
    if header.kind.moves_primary() {
        members.push(&header.to);
    }
    let compute: Vec<(&str, &str)> = if has(StepKind::Scale) {
        plan.compute
            .keys()
            .flat_map(|r| [(r.as_str(), header.from.as_str()), (r.as_str(), header.to.as_str())])
            .collect()
    } else {
        Vec::new()
    };
    gather(world, &members, has(StepKind::Switch), &compute).await
}

/// What is wrong with any resource of the plan, in every service region.
pub async fn for_plan(plan: &Plan, world: Providers<'_>) -> Vec<String> {
    let regions: Vec<&str> = plan.service_regions().collect();
    let compute: Vec<(&str, &str)> =
        plan.compute.keys().flat_map(|r| regions.iter().map(move |region| (r.as_str(), *region))).collect();
    gather(world, &regions, true, &compute).await
}

async fn gather(world: Providers<'_>, members: &[&str], traffic: bool, compute: &[(&str, &str)]) -> Vec<String> {
    let (members, traffic, compute) = tokio::join!(
        join_all(members.iter().map(|r| world.database.preflight(r))),
        async { if traffic { world.traffic.preflight().await } else { Vec::new() } },
        join_all(compute.iter().map(|(resource, region)| world.compute.preflight(resource, region))),
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
