//! Observation: the whole world read once, before a run is planned or a region judged.

use std::collections::BTreeMap;

use crate::check::Health;
use crate::error::StoreError;
use crate::journal::Journal;
use crate::plan::Plan;
use crate::run::{Epoch, RunId};
use crate::world::{MemberStatus, ProbeResult, Providers, TrafficState, Units};

use crate::join::join_all;
use crate::steps::read_capacity;

/// The world as observed before a run is planned.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Observed {
    pub members: BTreeMap<String, MemberStatus>,
    pub traffic: Result<TrafficState, String>,
    /// Per region, each check's single probe result.
    pub checks: BTreeMap<String, Vec<(String, ProbeResult)>>,
    /// Per compute resource, per region: its capacity unit by unit, or why it could not be read.
    pub compute: BTreeMap<String, BTreeMap<String, Result<Units, String>>>,
    pub epoch: Epoch,
    pub active_run: Option<RunId>,
    /// The id a run planned from this observation takes.
    #[serde(skip)]
    pub next_run: RunId,
}

impl Observed {
    /// The region currently acting as primary: the writable primary member with
    /// the highest epoch, then where traffic points, then the plan's declared primary.
    pub fn current_primary<'a>(&'a self, plan: &'a Plan) -> &'a str {
        if let Some(r) = crate::world::newest_primary(&self.members) {
            return r;
        }
        if let Ok(TrafficState { region: Some(r), .. }) = &self.traffic {
            return r;
        }
        plan.planned_primary()
    }

    /// Members that accept writes, with the epoch each has recorded.
    pub fn writable_primaries(&self) -> Vec<(&str, Option<Epoch>)> {
        crate::world::writable_primaries(&self.members)
    }

    /// The highest epoch anywhere: the store, the traffic record, any member.
    /// A new run takes the next one, so it can never be refused as stale by the world.
    pub fn highest_epoch(&self) -> Epoch {
        let traffic = self.traffic.as_ref().map(|t| t.epoch).unwrap_or(0);
        let members = self
            .members
            .values()
            .filter_map(|m| match m {
                MemberStatus::Primary { epoch, .. } => *epoch,
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.epoch.max(traffic).max(members)
    }

    /// Health of a region from one round of its critical checks.
    pub fn region_health(&self, plan: &Plan, region: &str) -> Health {
        let Some(results) = self.checks.get(region) else { return Health::Unknown };
        let critical: Vec<_> =
            results.iter().filter(|(name, _)| plan.checks.get(name).is_some_and(|c| c.critical)).collect();
        if critical.is_empty() {
            Health::Unknown
        } else if critical.iter().all(|(_, r)| r.ok) {
            Health::Healthy
        } else {
            Health::Unhealthy
        }
    }
}

/// Looks at the whole world once: every member, the traffic record, one round
/// of every region's checks (concurrently), the epoch and any active run.
pub async fn observe(plan: &Plan, journal: &dyn Journal, world: Providers<'_>) -> Result<Observed, StoreError> {
    let regions: Vec<&str> = plan.service_regions().collect();
    observe_regions(plan, journal, world, &regions).await
}

/// Like `observe`, but only the given regions' members and checks. A failover
/// right after detection looks only at its target: the lost region already
/// failed its checks, and waiting out its connect timeout again delays recovery.
pub async fn observe_regions(
    plan: &Plan,
    journal: &dyn Journal,
    world: Providers<'_>,
    regions: &[&str],
) -> Result<Observed, StoreError> {
    let members = join_all(regions.iter().map(|r| async move {
        let status = world.database.member(r).await.unwrap_or_else(|e| MemberStatus::Unreachable { reason: e.message });
        (r.to_string(), status)
    }))
    .await;
    let checks = join_all(regions.iter().map(|r| async move {
        let probes =
            join_all(plan.checks_for(r).map(|c| async move { (c.name.clone(), world.prober.probe(c, r).await) })).await;
        (r.to_string(), probes)
    }))
    .await;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for resource in plan.compute.keys() {
        pairs.extend(regions.iter().map(|r| (resource.clone(), r.to_string())));
    }
    let at_ms = world.clock.now_ms();
    let compute = join_all(pairs.into_iter().map(|(res, r)| async move {
        let capacity = read_capacity(journal, world.compute, &res, &r, at_ms).await;
        (res, r, capacity)
    }))
    .await;
    let mut by_resource: BTreeMap<String, BTreeMap<String, Result<Units, String>>> = BTreeMap::new();
    for (res, r, capacity) in compute {
        by_resource.entry(res).or_default().insert(r, capacity.map_err(|e| e.message));
    }
    Ok(Observed {
        members: members.into_iter().collect(),
        traffic: world.traffic.current().await.map_err(|e| e.message),
        checks: checks.into_iter().collect(),
        compute: by_resource,
        epoch: journal.epoch().await?,
        active_run: journal.active().await?.map(|r| r.header.id),
        next_run: world.ids.run_id(at_ms),
    })
}
