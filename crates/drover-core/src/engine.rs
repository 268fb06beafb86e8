//! The engine: a pure planner decides a run's steps from the plan and the
//! observed world; a thin executor drives them, journaling intent before and
//! outcome after each, so a crash at any point can be resumed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::check::Health;
use crate::error::{ProviderError, StoreError};
use crate::journal::{CapacitySeen, Journal};
use crate::notify::{EventKind, Notifier, NotifyEvent};
use crate::plan::{DatabaseKind, Plan, Role, StepKind};
use crate::run::{Entry, Epoch, Record, RunHeader, RunId, RunKind, RunState, RunSummary, StepOutcome};
use crate::world::{
    Capacity, Compute, Database, HostAccess, MemberStatus, ProbeResult, Prober, Size, Traffic, TrafficState, Units,
    WHOLE,
};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

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
    let compute = join_all(pairs.into_iter().map(|(res, r)| async move {
        let capacity = read_capacity(journal, world.compute, &res, &r).await;
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
    })
}

/// Reads a compute resource's capacity in a region, and notes it in the journal so a later
/// failover can size the new primary from it when this region can no longer be read. A
/// note that cannot be written leaves the previous one: it never hides the reading.
async fn read_capacity(
    journal: &dyn Journal,
    compute: &dyn Compute,
    resource: &str,
    region: &str,
) -> Result<Units, ProviderError> {
    let units = compute.capacity(resource, region).await?;
    let _ = journal.note_capacity(resource, region, CapacitySeen { units: units.clone(), at_ms: now_ms() }).await;
    Ok(units)
}

/// Runs futures concurrently on the current task (no spawning, no extra crate).
pub async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|v| v.expect("every future finished")).collect()
}

/// Why a run was not started. Shown to the user, who exits with code 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("region '{0}' is not in the plan (regions: {1})")]
    UnknownRegion(String, String),
    #[error("region '{0}' is a witness; it runs no service and cannot become primary")]
    Witness(String),
    #[error("region '{0}' is already the primary and traffic points at it; nothing to do")]
    AlreadyPrimary(String),
    #[error("region '{region}' is unhealthy: {reason}; fix it or choose another region")]
    TargetUnhealthy { region: String, reason: String },
    #[error(
        "switchover needs a reachable primary in '{region}': {reason}; use 'drover failover' for an unplanned move"
    )]
    PrimaryUnreachable { region: String, reason: String },
    #[error("run {0} is still active; resume it with 'drover resume {0}' or end it with 'drover abort {0}'")]
    ActiveRun(RunId),
    #[error(
        "more than one database accepts writes ({0}); make the stale one a standby (pg_rewind) or fence it before moving the primary"
    )]
    SplitBrain(String),
    #[error(
        "standby '{region}' is {lag_bytes} bytes behind, more than policy.max_lag_on_failover ({limit}); a failover would lose them — wait for it to catch up, or fail over by hand with 'drover failover --to {region} --accept-data-loss' if you accept that"
    )]
    LagTooHigh { region: String, lag_bytes: u64, limit: u64 },
    #[error(
        "standby '{region}' lags {lag}, more than policy.max_lag_time_on_failover ({limit}); a failover would lose the writes of that time — wait for it to catch up, or fail over by hand with 'drover failover --to {region} --accept-data-loss' if you accept that"
    )]
    LagTimeTooHigh { region: String, lag: String, limit: String },
    #[error(
        "region '{region}' holds older data than the primary: {why}; moving the primary there would lose every write since — {remedy}, or, to move anyway and lose those writes, run 'drover failover --to {region} --accept-data-loss'"
    )]
    StaleTarget { region: String, why: String, remedy: String },
    #[error(
        "a {kind} of database kind {database} cannot promise no data loss: {why}; use 'drover failover --to {to}' (it fences a reachable primary first) and accept the replica's lag"
    )]
    NoPlannedMove { kind: &'static str, database: DatabaseKind, why: &'static str, to: String },
    #[error("database kind {kind} cannot be reprotected by drover: {what}")]
    ManagedRejoin { kind: DatabaseKind, what: &'static str },
    #[error(
        "cannot read where traffic points ({0}); drover will not move the primary without knowing — check the DNS server and the TSIG key"
    )]
    TrafficUnknown(String),
    #[error(
        "region '{0}' already holds the primary database and traffic points at no region of the plan; point traffic by hand or fix traffic.targets"
    )]
    NoSource(String),
    #[error(
        "region '{0}' is the current primary; reprotect makes a returned old primary follow the new one — to move the primary use 'drover switchover' or 'drover failover'"
    )]
    IsPrimary(String),
    #[error(
        "no database accepts writes, so there is no primary for '{0}' to follow; make one primary first ('drover failover --to REGION')"
    )]
    NoPrimary(String),
    #[error("region '{region}' is already a streaming standby (of {upstream}); nothing to do")]
    AlreadyStandby { region: String, upstream: String },
    #[error(
        "traffic still points at '{region}' while '{primary}' holds the primary database; finish the move first ('drover failover --to {primary}')"
    )]
    TrafficOnRegion { region: String, primary: String },
    #[error(
        "the plan gives region '{0}' no host (database.members.{0}.host), so drover cannot stop, rewind or rebuild its database; add one (docs/plan.md) or make it a standby by hand"
    )]
    NoHost(String),
    #[error(
        "region '{region}' is unreachable: {reason}; reprotect needs its machine — bring it back, then run this again"
    )]
    RegionUnreachable { region: String, reason: String },
    #[error(
        "region '{region}' is not a healthy streaming standby ({state}); reprotect it first: drover reprotect --plan {plan} --region {region} (while drover serve daemons lead, send it to the leader with --server URL instead of --plan)"
    )]
    NotProtected { region: String, state: String, plan: String },
    /// `NotProtected` for a managed database, which drover cannot reprotect itself.
    #[error("region '{region}' is not a replica of the primary ({state}); database kind {kind}: {what}")]
    ManagedNotProtected { region: String, state: String, kind: DatabaseKind, what: &'static str },
    #[error("a {0} run is planned by 'drover {0}', not as a move of the primary")]
    NotAMove(&'static str),
    #[error(
        "checked before anything was changed, the plan's resources are not as the run needs them:\n  - {}\nfix the plan or the resources, then run this again ('drover plan check --live' checks them all); if they are in the region a failover leaves and are really gone, 'drover failover --accept-data-loss' checks only the target",
        .0.join("\n  - ")
    )]
    Preflight(Vec<String>),
}

/// The region must be in the plan and run the service.
fn service_region(plan: &Plan, region: &str) -> Result<(), Refusal> {
    match plan.regions.get(region) {
        None => {
            let names: Vec<_> = plan.regions.keys().map(String::as_str).collect();
            Err(Refusal::UnknownRegion(region.into(), names.join(", ")))
        }
        Some(r) if r.role == Role::Witness => Err(Refusal::Witness(region.into())),
        Some(_) => Ok(()),
    }
}

fn split_brain(writable: &[(&str, Option<Epoch>)]) -> Refusal {
    let list: Vec<String> = writable
        .iter()
        .map(|(r, e)| format!("{r} at epoch {}", e.map(|e| e.to_string()).unwrap_or_else(|| "none".into())))
        .collect();
    Refusal::SplitBrain(list.join(", "))
}

/// The steps a run of `kind` takes: the plan's runbooks for moves, a rejoin for a reprotect.
pub fn runbook(plan: &Plan, kind: RunKind) -> Vec<StepKind> {
    match kind {
        RunKind::Failover => plan.runbooks.failover.clone(),
        RunKind::Switchover | RunKind::Failback => plan.runbooks.switchover.clone(),
        RunKind::Reprotect => vec![StepKind::Rejoin],
    }
}

/// Plans a move of the primary to `to` (a failover, switchover or failback): pure,
/// from the plan and what was observed. Reprotect runs are planned by `plan_reprotect`.
/// A target with older data than the primary is refused (`stale_target`).
pub fn plan_run(plan: &Plan, kind: RunKind, to: &str, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
    plan_move(plan, kind, to, observed, reason, false)
}

/// `plan_run`, where `accept_data_loss` is a person's explicit choice (`--accept-data-loss`)
/// to move to a target that holds older data than the primary, or lags more than policy
/// allows. The loss is written into the run's header (journaled, and told to the notifiers).
pub fn plan_move(
    plan: &Plan,
    kind: RunKind,
    to: &str,
    observed: &Observed,
    reason: &str,
    accept_data_loss: bool,
) -> Result<RunHeader, Refusal> {
    if !kind.moves_primary() {
        return Err(Refusal::NotAMove(kind.as_str()));
    }
    service_region(plan, to)?;
    if kind.is_planned()
        && let Err(why) = plan.database.kind().planned_move_without_loss()
    {
        return Err(Refusal::NoPlannedMove { kind: kind.as_str(), database: plan.database.kind(), why, to: to.into() });
    }
    if let Some(active) = &observed.active_run {
        return Err(Refusal::ActiveRun(active.clone()));
    }
    // The target first: its health is what the user can act on most directly.
    match observed.members.get(to) {
        Some(MemberStatus::Unreachable { reason }) => {
            return Err(Refusal::TargetUnhealthy {
                region: to.into(),
                reason: format!("database unreachable: {reason}"),
            });
        }
        None => {
            return Err(Refusal::TargetUnhealthy { region: to.into(), reason: "no database member".into() });
        }
        _ => {}
    }
    if observed.region_health(plan, to) == Health::Unhealthy {
        let failing: Vec<String> = observed.checks[to]
            .iter()
            .filter(|(_, r)| !r.ok)
            .map(|(name, r)| format!("check {name}: {}", r.detail))
            .collect();
        return Err(Refusal::TargetUnhealthy { region: to.into(), reason: failing.join("; ") });
    }
    let traffic = observed.traffic.as_ref().map_err(|e| Refusal::TrafficUnknown(e.clone()))?;
    let writable = observed.writable_primaries();
    if writable.len() > 1 {
        return Err(split_brain(&writable));
    }
    // The region losing the role. When the target already holds the primary database
    // (a run was aborted between promote and switch), it is where traffic still points.
    let primary = observed.current_primary(plan);
    let from = if primary != to {
        primary.to_string()
    } else {
        match &traffic.region {
            Some(r) if r != to => r.clone(),
            Some(_) => return Err(Refusal::AlreadyPrimary(to.into())),
            None => return Err(Refusal::NoSource(to.into())),
        }
    };
    if kind.is_planned()
        && let Some(MemberStatus::Unreachable { reason }) = observed.members.get(&from)
    {
        return Err(Refusal::PrimaryUnreachable { region: from, reason: reason.clone() });
    }
    // Data loss is the last question: every refusal above is about whether the move can
    // happen at all, and a person should not accept a loss for a move that cannot.
    let mut losses = Vec::new();
    if let Some(why) = stale_target(plan, observed, to) {
        let remedy = match plan.database.kind().rejoin_by_hand() {
            Some(_) => format!(
                "make it a replica of the primary first (docs/aws.md: {} cannot be reprotected by drover)",
                plan.database.kind()
            ),
            None => format!("make it a standby of the primary first ('drover reprotect --region {to}')"),
        };
        losses.push(Refusal::StaleTarget { region: to.into(), why, remedy });
    }
    // A planned move waits in catch_up until nothing is behind; a failover does not. Lag is
    // measured against the primary only while it answers: once it is lost, what a standby
    // has received but not replayed is not lost (promotion replays it), and the time since
    // the last replayed commit grows with the outage, not with what is missing.
    let primary_answers = matches!(observed.members.get(&from), Some(MemberStatus::Primary { .. }));
    if kind == RunKind::Failover
        && primary_answers
        && let Err(lag) = lag_limits(plan, observed, to, false)
    {
        losses.push(lag);
    }
    let accepted_loss = match (losses.is_empty(), accept_data_loss) {
        (true, _) => None,
        (false, false) => return Err(losses.remove(0)),
        (false, true) => Some(losses.iter().filter_map(Refusal::loss).collect::<Vec<_>>().join("; ")),
    };
    Ok(RunHeader {
        id: RunId::generate(now_ms()),
        kind,
        plan: plan.name.clone(),
        from,
        to: to.into(),
        epoch: observed.highest_epoch() + 1,
        steps: runbook(plan, kind),
        reason: reason.into(),
        accepted_loss,
    })
}

impl Refusal {
    /// What a refusal for data loss found, without its advice: what a run that goes ahead
    /// anyway (`--accept-data-loss`) journals as the loss it accepted. None for the others.
    pub fn loss(&self) -> Option<String> {
        match self {
            Refusal::StaleTarget { region, why, .. } => {
                Some(format!("region '{region}' holds older data than the primary: {why}"))
            }
            Refusal::LagTooHigh { region, lag_bytes, limit } => Some(format!(
                "standby '{region}' is {lag_bytes} bytes behind, more than policy.max_lag_on_failover ({limit})"
            )),
            Refusal::LagTimeTooHigh { region, lag, limit } => {
                Some(format!("standby '{region}' lags {lag}, more than policy.max_lag_time_on_failover ({limit})"))
            }
            _ => None,
        }
    }
}

/// Why `to` holds older data than the newest primary, or None when it holds the newest
/// (or drover cannot tell: a managed replica whose source is lost). One rule orders the
/// data: the epoch. Every promotion records a higher one in the new primary (and in its
/// standbys, which replay it), and the traffic record carries the epoch that switched it
/// (unless it points at a writable primary, whose own epoch then speaks); a member whose
/// data is at an older epoch than any of them missed every write since.
pub fn stale_target(plan: &Plan, observed: &Observed, to: &str) -> Option<String> {
    // The newest promotion the world shows outside the target, and where it shows.
    let mut newest: (Epoch, String) = (0, String::new());
    for (region, member) in observed.members.iter().filter(|(r, _)| r.as_str() != to) {
        let (epoch, what) = match member {
            MemberStatus::Primary { epoch: Some(e), .. } => (*e, format!("{region} was promoted at epoch {e}")),
            MemberStatus::Standby { epoch: Some(e), .. } => {
                (*e, format!("{region} replays the data of a primary promoted at epoch {e}"))
            }
            _ => continue,
        };
        if epoch > newest.0 {
            newest = (epoch, what);
        }
    }
    // The traffic record's epoch is the newest switch. When it points at a writable primary
    // other than the target, every write since that switch is on that primary, whose own epoch
    // (and its standbys') says what the data holds: a record ahead of it (the primary's epoch
    // table lost or restored) shows no newer data. Anywhere else — a lost region, the target
    // itself, a third region — it counts: a writable member elsewhere may be a stale one.
    let traffic_on_a_writable_primary = |region: &Option<String>| {
        region.as_deref().is_some_and(|r| {
            r != to && matches!(observed.members.get(r), Some(MemberStatus::Primary { writable: true, .. }))
        })
    };
    if let Ok(traffic) = &observed.traffic
        && traffic.epoch > newest.0
        && !traffic_on_a_writable_primary(&traffic.region)
    {
        newest = (traffic.epoch, format!("traffic was switched at epoch {}", traffic.epoch));
    }
    let (newest, where_) = newest;
    if newest == 0 {
        return None;
    }
    // What the target's data carries; None: the provider cannot tell (a managed replica).
    let (held, state) = match observed.members.get(to)? {
        MemberStatus::Primary { epoch, writable, .. } => {
            let state = if *writable { "a writable primary" } else { "a fenced (read-only) former primary" };
            (Some(epoch.unwrap_or(0)), format!("{to} is {state}, not a standby of the primary"))
        }
        // PostgreSQL standbys replay the epoch table: no epoch means none was ever replayed.
        MemberStatus::Standby { epoch, .. } => match epoch.or(plan.database.knows_wal_positions().then_some(0)) {
            Some(e) => (Some(e), format!("{to} is a standby that does not follow the newest primary")),
            None => (None, String::new()),
        },
        MemberStatus::Unreachable { .. } => (None, String::new()),
    };
    let held = held?;
    (held < newest).then(|| {
        let at = if held == 0 {
            "no epoch (data from before drover's first move)".to_owned()
        } else {
            format!("epoch {held}")
        };
        format!("{state}; its data is at {at}, while {where_}")
    })
}

/// Plans making `region` — a returned old primary, or a member whose server or data is
/// gone — a streaming standby of the current primary. Pure: from the plan, what was
/// observed, and whether drover can reach the region's machine (`Database::host_access`).
/// The primary does not move: the run carries the current epoch and never raises it.
pub fn plan_reprotect(
    plan: &Plan,
    region: &str,
    observed: &Observed,
    host: &HostAccess,
    reason: &str,
) -> Result<RunHeader, Refusal> {
    service_region(plan, region)?;
    if let Some(what) = plan.database.kind().rejoin_by_hand() {
        return Err(Refusal::ManagedRejoin { kind: plan.database.kind(), what });
    }
    if let Some(active) = &observed.active_run {
        return Err(Refusal::ActiveRun(active.clone()));
    }
    // The primary to follow: the one writable member other than `region`. The region may
    // itself still accept writes (it came back after a failover), but only at an older epoch.
    let writable = observed.writable_primaries();
    let own = writable.iter().find(|(r, _)| *r == region).map(|(_, e)| *e);
    let others: Vec<_> = writable.iter().filter(|(r, _)| *r != region).collect();
    if let Some(own) = own
        && others.iter().all(|(_, epoch)| *epoch < own)
    {
        return Err(Refusal::IsPrimary(region.into()));
    }
    let to = match others.as_slice() {
        [] => return Err(Refusal::NoPrimary(region.into())),
        [(to, epoch)] if own.is_none_or(|own| own < *epoch) => to.to_string(),
        _ => return Err(split_brain(&writable)),
    };
    let traffic = observed.traffic.as_ref().map_err(|e| Refusal::TrafficUnknown(e.clone()))?;
    if traffic.region.as_deref() == Some(region) {
        return Err(Refusal::TrafficOnRegion { region: region.into(), primary: to });
    }
    if let Some(MemberStatus::Standby { upstream: Some(upstream), .. }) = observed.members.get(region) {
        return Err(Refusal::AlreadyStandby { region: region.into(), upstream: upstream.clone() });
    }
    match host {
        HostAccess::NotConfigured => return Err(Refusal::NoHost(region.into())),
        HostAccess::Unreachable(why) => {
            let database = match observed.members.get(region) {
                Some(MemberStatus::Unreachable { reason }) => format!("database unreachable ({reason}), "),
                _ => String::new(),
            };
            return Err(Refusal::RegionUnreachable { region: region.into(), reason: format!("{database}host: {why}") });
        }
        HostAccess::Reachable(_) => {}
    }
    Ok(RunHeader {
        id: RunId::generate(now_ms()),
        kind: RunKind::Reprotect,
        plan: plan.name.clone(),
        from: region.into(),
        to,
        epoch: observed.highest_epoch(),
        steps: runbook(plan, RunKind::Reprotect),
        reason: reason.into(),
        accepted_loss: None,
    })
}

/// Plans a failback: a switchover (the plan's switchover runbook, so nothing is lost) back
/// to `to`, by default the plan's home region (the one whose role is `primary`). Refused
/// unless that region is a streaming standby, with what to do instead.
pub fn plan_failback(plan: &Plan, to: Option<&str>, observed: &Observed, reason: &str) -> Result<RunHeader, Refusal> {
    let to = to.unwrap_or(plan.planned_primary());
    service_region(plan, to)?;
    if let Some(active) = &observed.active_run {
        return Err(Refusal::ActiveRun(active.clone()));
    }
    let traffic_here = matches!(&observed.traffic, Ok(TrafficState { region: Some(r), .. }) if r == to);
    if crate::world::newest_primary(&observed.members) == Some(to) && traffic_here {
        return Err(Refusal::AlreadyPrimary(to.into()));
    }
    let state = match observed.members.get(to) {
        Some(MemberStatus::Standby { upstream: Some(_), .. }) => None,
        Some(MemberStatus::Standby { upstream: None, .. }) => Some("a standby that streams from no primary".into()),
        Some(MemberStatus::Primary { writable: true, epoch, .. }) => Some(format!(
            "it still accepts writes, at epoch {}",
            epoch.map(|e| e.to_string()).unwrap_or_else(|| "none".into())
        )),
        Some(MemberStatus::Primary { writable: false, .. }) => Some("a fenced old primary".into()),
        Some(MemberStatus::Unreachable { reason }) => Some(format!("database unreachable: {reason}")),
        None => Some("no database member".into()),
    };
    if let Some(state) = state {
        // A managed database's replica is made by hand: 'drover reprotect' would be refused.
        if let Some(what) = plan.database.kind().rejoin_by_hand() {
            return Err(Refusal::ManagedNotProtected { region: to.into(), state, kind: plan.database.kind(), what });
        }
        return Err(Refusal::NotProtected { region: to.into(), state, plan: plan.source.display().to_string() });
    }
    plan_run(plan, RunKind::Failback, to, observed, reason)
}

/// The gate an automatic failover passes on top of `plan_run`'s: the target's
/// replication lag is within `policy.max_lag_on_failover` (bytes, where the database
/// exposes them) and `policy.max_lag_time_on_failover` (time, when set; an unknown lag
/// is refused then, since drover cannot tell how much would be lost).
pub fn lag_gate(plan: &Plan, observed: &Observed, to: &str) -> Result<(), Refusal> {
    lag_limits(plan, observed, to, true)
}

/// The lag limits; `unknown_refused` for automatic failovers. A person's failover
/// (`plan_run`) is refused only for a lag known to be beyond policy: with no recent
/// measurement (a managed replica whose CloudWatch has no datapoint), the person decides.
fn lag_limits(plan: &Plan, observed: &Observed, to: &str, unknown_refused: bool) -> Result<(), Refusal> {
    let Some(MemberStatus::Standby { lag_bytes, lag_seconds, .. }) = observed.members.get(to) else {
        return Ok(());
    };
    let limit = plan.policy.max_lag_on_failover;
    if let Some(lag_bytes) = *lag_bytes
        && lag_bytes > limit
        && plan.database.knows_wal_positions()
    {
        return Err(Refusal::LagTooHigh { region: to.into(), lag_bytes, limit });
    }
    if let Some(limit) = plan.policy.max_lag_time_on_failover {
        let too_high = |lag: String| Refusal::LagTimeTooHigh {
            region: to.into(),
            lag,
            limit: crate::duration::format_duration(limit),
        };
        match lag_seconds {
            None if unknown_refused => return Err(too_high("an unknown time (no recent measurement)".into())),
            None => {}
            Some(s) if *s > limit.as_secs_f64() => return Err(too_high(format!("{s:.1}s"))),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Bounded exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// For steps that act: a few quick tries.
    pub const ACT: RetryPolicy =
        RetryPolicy { attempts: 6, initial: Duration::from_millis(200), max_delay: Duration::from_secs(3) };
    /// For steps that wait for the world (catch-up, verify): many short waits.
    pub const WAIT: RetryPolicy =
        RetryPolicy { attempts: 60, initial: Duration::from_millis(100), max_delay: Duration::from_millis(500) };
    /// For tests: no sleeping.
    pub const IMMEDIATE: RetryPolicy = RetryPolicy { attempts: 3, initial: Duration::ZERO, max_delay: Duration::ZERO };

    /// Delay before retry number `attempt` (1-based): doubling, capped, with ±25% jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_delay);
        let jitter = 0.75 + rand::random::<f64>() * 0.5;
        base.mul_f64(jitter)
    }

    /// The longest total wait this policy allows (without jitter), for error messages.
    pub fn budget(&self) -> Duration {
        (1..self.attempts).map(|a| self.initial.saturating_mul(1u32 << (a - 1).min(16)).min(self.max_delay)).sum()
    }
}

/// The outcome of observing a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The world already matches; the detail says how.
    Done(String),
    /// The step cannot act, and the run may go on without it; the detail says why.
    Skipped(String),
    /// Apply is needed; the detail says why.
    Needed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} has ended ({1}); nothing to resume")]
    Ended(RunId, &'static str),
    #[error("run {0} waits for approval; approve it with 'drover approve {0}' or end it with 'drover abort {0}'")]
    NeedsApproval(RunId),
    #[error("run {0} is {1}, not waiting for approval")]
    NotAwaitingApproval(RunId, &'static str),
    #[error(
        "could not {0}: {1}; the run was not aborted and stays paused — fix the cause and abort again, or resume it (which first does the step again)"
    )]
    Undo(String, String),
    #[error("run {0} is {1}: only a paused run can be set back; wait for it to pause, or abort it with --keep")]
    UndoNotPaused(RunId, &'static str),
}

/// The world's providers, as one value the engine borrows.
#[derive(Clone, Copy)]
pub struct Providers<'a> {
    pub database: &'a dyn Database,
    pub traffic: &'a dyn Traffic,
    /// Node groups and Auto Scaling groups the `scale` step sizes.
    pub compute: &'a dyn Compute,
    pub prober: &'a dyn Prober,
    /// Told about every run's start, pause, approval wait, completion and abort, and by `notify` steps.
    pub notifier: &'a dyn Notifier,
}

pub struct Engine<'a> {
    pub plan: &'a Plan,
    pub journal: &'a dyn Journal,
    pub world: Providers<'a>,
    pub act: RetryPolicy,
    pub wait: RetryPolicy,
    /// Sees every journal entry as it is written: progress output, drill timelines.
    pub on_entry: &'a (dyn Fn(&Entry) + Send + Sync),
}

impl<'a> Engine<'a> {
    /// Starts a planned run and drives it until it completes or pauses.
    pub async fn start(&self, header: &RunHeader) -> Result<RunSummary, EngineError> {
        self.begin(header).await?;
        self.drive(&header.id).await
    }

    /// Records the run's start (refused when another run is active) without driving it;
    /// `resume` drives it.
    pub async fn begin(&self, header: &RunHeader) -> Result<(), EngineError> {
        let started = self.journal.begin(header).await?;
        (self.on_entry)(&started);
        self.announce(&header.id, &started).await;
        Ok(())
    }

    /// Opens a planned run that waits for a person: it holds the active-run slot,
    /// so nothing else starts meanwhile, and does nothing until approved.
    pub async fn open_for_approval(&self, header: &RunHeader, reason: &str) -> Result<RunSummary, EngineError> {
        self.begin(header).await?;
        self.record(&header.id, Record::AwaitingApproval { reason: reason.into() }).await?;
        Ok(self.journal.summary(&header.id).await?)
    }

    /// Approves a run that waits for it, and drives it.
    pub async fn approve(&self, id: &RunId, by: &str) -> Result<RunSummary, EngineError> {
        let summary = self.journal.summary(id).await?;
        if summary.state != RunState::AwaitingApproval {
            return Err(EngineError::NotAwaitingApproval(id.clone(), summary.state.as_str()));
        }
        self.record(id, Record::Approved { by: by.into() }).await?;
        self.drive(id).await
    }

    /// Continues a paused or interrupted run from the first step not done.
    pub async fn resume(&self, id: &RunId) -> Result<RunSummary, EngineError> {
        let summary = self.journal.summary(id).await?;
        match summary.state {
            RunState::Completed | RunState::Aborted => {
                return Err(EngineError::Ended(id.clone(), summary.state.as_str()));
            }
            RunState::AwaitingApproval => return Err(EngineError::NeedsApproval(id.clone())),
            RunState::Paused => self.record(id, Record::Resumed).await?,
            RunState::Running => {}
        }
        self.drive(id).await
    }

    pub(crate) async fn record(&self, id: &RunId, record: Record) -> Result<(), StoreError> {
        let entry = self.journal.append(id, record).await?;
        (self.on_entry)(&entry);
        self.announce(id, &entry).await;
        Ok(())
    }

    /// The event hooks: a run's milestones go to the notifier (which never blocks).
    async fn announce(&self, id: &RunId, entry: &Entry) {
        let (kind, reason) = match &entry.record {
            Record::Started { header } => match &header.accepted_loss {
                Some(loss) => (EventKind::RunStarted, format!("{} — DATA LOSS ACCEPTED: {loss}", header.reason)),
                None => (EventKind::RunStarted, header.reason.clone()),
            },
            Record::Paused { reason, .. } => (EventKind::RunPaused, reason.clone()),
            Record::AwaitingApproval { reason } => (EventKind::ApprovalNeeded, reason.clone()),
            Record::Completed => (EventKind::RunCompleted, String::new()),
            Record::Aborted { reason } => (EventKind::RunAborted, reason.clone()),
            _ => return,
        };
        let Ok(summary) = self.journal.summary(id).await else { return };
        let h = &summary.header;
        let reason = match (kind, h.kind) {
            (EventKind::RunCompleted, RunKind::Reprotect) => format!("{} is a streaming standby of {}", h.from, h.to),
            (EventKind::RunCompleted, _) => "the target is primary and serves traffic".into(),
            _ => reason,
        };
        self.world.notifier.notify(run_event(self.plan, h, kind, reason, entry.at_ms));
    }

    async fn drive(&self, id: &RunId) -> Result<RunSummary, EngineError> {
        let summary = self.journal.summary(id).await?;
        let header = summary.header.clone();
        for (step, &kind) in header.steps.iter().enumerate().skip(summary.next_step().unwrap_or(header.steps.len())) {
            self.record(id, Record::StepIntent { step, kind }).await?;
            match self.run_step(kind, &header).await {
                Ok((outcome, detail)) => self.record(id, Record::StepDone { step, kind, outcome, detail }).await?,
                Err(e) => {
                    // Named after the region the step acts on: the old primary for fence and rejoin.
                    let region = match kind {
                        StepKind::Fence | StepKind::Rejoin => &header.from,
                        _ => &header.to,
                    };
                    let reason = format!(
                        "{region} {kind_name}: {e} — fix the cause, then 'drover resume {id}' (or 'drover abort {id}')",
                        kind_name = kind.as_str()
                    );
                    self.record(id, Record::Paused { step, kind, reason }).await?;
                    return Ok(self.journal.summary(id).await?);
                }
            }
        }
        self.record(id, Record::Completed).await?;
        Ok(self.journal.summary(id).await?)
    }

    /// Observe, apply only if needed, observe again; retrying transient errors.
    /// Returns how the step came to be done, and what the final observation said.
    async fn run_step(&self, kind: StepKind, header: &RunHeader) -> Result<(StepOutcome, String), ProviderError> {
        if kind == StepKind::Notify {
            // Nothing in the world shows a notification was sent: send (again after a crash: at least once).
            self.apply_step(kind, header).await?;
            return Ok((StepOutcome::Applied, "told the plan's webhooks where the run stands".into()));
        }
        let policy = match kind {
            StepKind::CatchUp | StepKind::Verify => self.wait,
            _ => self.act,
        };
        let mut applied = false;
        let mut just_applied = false;
        // What applying said about how it acted (a rejoin's method), journaled with the outcome.
        let mut note: Option<String> = None;
        let mut attempt = 0;
        loop {
            let result: Result<(), ProviderError> = match self.observe_step(kind, header).await {
                Ok(Observation::Done(detail)) => {
                    let outcome = if applied { StepOutcome::Applied } else { StepOutcome::AlreadyDone };
                    let detail = match note {
                        Some(note) => format!("{detail}; {note}"),
                        None => detail,
                    };
                    return Ok((outcome, detail));
                }
                Ok(Observation::Skipped(why)) => return Ok((StepOutcome::Skipped, why)),
                // Applied, yet the world does not show it: wait and look again, within the bound.
                Ok(Observation::Needed(why)) if just_applied => {
                    Err(ProviderError::transient(format!("applied, but the world does not show it yet: {why}")))
                }
                Ok(Observation::Needed(_)) => {
                    // An attempt that reported an error may still have acted (a fence whose
                    // confirmation timed out): once an acting step has tried, "done" is its doing.
                    applied |= !matches!(kind, StepKind::CatchUp | StepKind::Verify);
                    match self.apply_step(kind, header).await {
                        Ok(said) => {
                            note = said.or(note);
                            applied = true;
                            just_applied = true;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            just_applied = false;
            if let Err(e) = result {
                attempt += 1;
                if !e.retryable() || attempt >= policy.attempts {
                    return Err(if e.retryable() {
                        ProviderError::permanent(format!("{e} (gave up after {attempt} attempts)"))
                    } else {
                        e
                    });
                }
                tokio::time::sleep(policy.delay(attempt)).await;
            }
        }
    }

    /// Looks at the world: is this step already done for this run?
    pub async fn observe_step(&self, kind: StepKind, header: &RunHeader) -> Result<Observation, ProviderError> {
        let (from, to, epoch) = (header.from.as_str(), header.to.as_str(), header.epoch);
        let db = self.world.database;
        Ok(match kind {
            StepKind::Fence => match db.member(from).await? {
                MemberStatus::Unreachable { reason } if header.kind == RunKind::Failover => {
                    Observation::Skipped(format!("{from} unreachable ({reason}); fencing skipped, best effort"))
                }
                MemberStatus::Unreachable { reason } => {
                    return Err(ProviderError::permanent(format!(
                        "{from} database unreachable ({reason}); a {} needs it — use 'drover failover' instead",
                        header.kind.as_str()
                    )));
                }
                MemberStatus::Primary { writable: true, .. } => Observation::Needed(format!("{from} accepts writes")),
                MemberStatus::Primary { writable: false, .. } => Observation::Done(format!("{from} refuses writes")),
                MemberStatus::Standby { .. } => Observation::Done(format!("{from} is a standby; nothing to fence")),
            },
            StepKind::CatchUp => {
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
                match db.member(to).await? {
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
                }
            }
            StepKind::Promote => {
                let stored = self.stored_epoch().await?;
                if stored > epoch {
                    return Err(stale(stored, epoch));
                }
                match db.member(to).await? {
                    MemberStatus::Primary { writable: true, epoch: Some(e), .. } if e >= epoch => {
                        Observation::Done(format!("{to} is primary at epoch {e}"))
                    }
                    MemberStatus::Unreachable { reason } => {
                        return Err(ProviderError::transient(format!("{to} database unreachable: {reason}")));
                    }
                    other => Observation::Needed(format!("{to} is {}", other.role_str())),
                }
            }
            StepKind::Scale => {
                let mut short = Vec::new();
                let mut done = Vec::new();
                for (name, spec) in &self.plan.compute {
                    for unit in self.scale_target(name, spec.capacity_percent, header).await? {
                        let line = unit.describe(name);
                        if unit.is_done() { done.push(line) } else { short.push(line) }
                    }
                }
                if short.is_empty() {
                    Observation::Done(format!("{to} runs {}", done.join(", ")))
                } else {
                    Observation::Needed(format!("{to} runs {}", short.join(", ")))
                }
            }
            StepKind::Switch => {
                let now = self.world.traffic.current().await?;
                if now.epoch > epoch {
                    return Err(stale(now.epoch, epoch));
                }
                match &now.region {
                    Some(r) if r == to && now.epoch == epoch => {
                        Observation::Done(format!("traffic points at {to} at epoch {epoch}"))
                    }
                    // Our epoch on no single region: this run's staged shift stopped part way
                    // (a failing check paused it); switching again continues it.
                    None if now.epoch == epoch => Observation::Needed(format!(
                        "traffic is split between regions at epoch {epoch}: this run's shift to {to} is part way"
                    )),
                    // Our epoch, somewhere else: another writer used it; never overwrite.
                    _ if now.epoch == epoch => {
                        return Err(ProviderError::permanent(format!(
                            "traffic holds this run's epoch {epoch} but points at {}; another run switched it — abort this one",
                            now.region.as_deref().unwrap_or("no region")
                        )));
                    }
                    _ => Observation::Needed(format!(
                        "traffic points at {} (epoch {})",
                        now.region.as_deref().unwrap_or("no region"),
                        now.epoch
                    )),
                }
            }
            StepKind::Verify => {
                let mut failing = Vec::new();
                // The checks alone pass on a read-only standby too: verify the move itself.
                match db.member(to).await? {
                    MemberStatus::Primary { writable: true, epoch: Some(e), .. } if e >= epoch => {}
                    other => failing.push(format!(
                        "{to} database is {} (want a writable primary at epoch {epoch})",
                        other.role_str()
                    )),
                }
                let now = self.world.traffic.current().await?;
                if now.region.as_deref() != Some(to) {
                    failing.push(format!("traffic points at {}", now.region.as_deref().unwrap_or("no region")));
                }
                for check in self.plan.checks_for(to).filter(|c| c.critical) {
                    let r = self.world.prober.probe(check, to).await;
                    if !r.ok {
                        failing.push(format!("check {}: {}", check.name, r.detail));
                    }
                }
                if failing.is_empty() {
                    Observation::Done(format!("{to} passes its checks"))
                } else {
                    Observation::Needed(failing.join("; "))
                }
            }
            StepKind::Notify => Observation::Needed("a notification leaves no trace in the world".into()),
            StepKind::Rejoin => {
                let stored = self.stored_epoch().await?;
                if stored > epoch {
                    return Err(stale(stored, epoch));
                }
                match db.member(from).await? {
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
                }
            }
        })
    }

    /// Changes the world so the step is done. Safe to call again (idempotent).
    /// Returns how it acted when that is worth journaling (a rejoin's method).
    pub async fn apply_step(&self, kind: StepKind, header: &RunHeader) -> Result<Option<String>, ProviderError> {
        let (from, to, epoch) = (header.from.as_str(), header.to.as_str(), header.epoch);
        let db = self.world.database;
        match kind {
            StepKind::Fence => db.fence(from).await?,
            StepKind::CatchUp => {}
            StepKind::Promote => {
                self.raise_epoch(header).await?;
                db.promote(to, header.kind).await?;
                db.record_epoch(to, epoch, &header.id).await?
            }
            StepKind::Scale => {
                let targets = join_all(self.plan.compute.iter().map(|(name, spec)| async move {
                    (name, self.scale_target(name, spec.capacity_percent, header).await)
                }))
                .await;
                // One resource that cannot be sized keeps none of the others from scaling.
                let mut failures = Vec::new();
                let mut resizes = Vec::new();
                for (name, units) in targets {
                    let units = match units {
                        Ok(units) => units,
                        Err(e) => {
                            failures.push(e);
                            continue;
                        }
                    };
                    let sizes: BTreeMap<String, Size> =
                        units.iter().filter(|u| !u.is_done()).map(|u| (u.unit.clone(), u.want)).collect();
                    if sizes.is_empty() {
                        continue;
                    }
                    let before: Units = units.iter().map(|u| (u.unit.clone(), u.have)).collect();
                    match self.note_scaled_from(header, name, before).await {
                        Ok(()) => resizes.push((name, sizes)),
                        Err(e) => failures.push(e),
                    }
                }
                // Every resource at once: node groups and instances take minutes each.
                let resizes =
                    join_all(resizes.iter().map(|(name, sizes)| self.world.compute.resize(name, to, sizes))).await;
                // A permanent failure outranks a transient one: retrying cannot fix it.
                failures.extend(resizes.into_iter().filter_map(Result::err));
                failures.sort_by_key(ProviderError::retryable);
                if let Some(first) = failures.into_iter().next() {
                    return Err(first);
                }
            }
            StepKind::Switch => {
                let now = self.world.traffic.current().await?;
                if now.region.as_deref() != Some(to) || now.epoch != epoch {
                    self.world.traffic.switch(to, now.epoch, epoch).await?
                }
            }
            StepKind::Verify => match self.observe_step(kind, header).await? {
                Observation::Done(_) | Observation::Skipped(_) => {}
                Observation::Needed(why) => return Err(ProviderError::transient(why)),
            },
            StepKind::Rejoin => return Ok(Some(db.rejoin(from, to).await?.describe())),
            StepKind::Notify => {
                let done: Vec<&str> = match self.journal.summary(&header.id).await {
                    Ok(s) => s.steps.iter().filter(|s| s.state.is_done()).map(|s| s.kind.as_str()).collect(),
                    Err(_) => Vec::new(),
                };
                let reason = format!("{from} -> {to} at epoch {epoch}; done: {}", done.join(", "));
                self.world.notifier.notify(run_event(self.plan, header, EventKind::RunProgress, reason, now_ms()));
            }
        }
        Ok(None)
    }

    /// What each unit of `resource` should run in the run's target region: `percent` of what
    /// its twin in the old primary region runs — read now, or, when it cannot be read (it is
    /// lost), as last noted in the journal. A unit the old primary runs and the target lacks
    /// stops the step: drover sizes workloads, it does not create them.
    async fn scale_target(
        &self,
        resource: &str,
        percent: u32,
        header: &RunHeader,
    ) -> Result<Vec<UnitTarget>, ProviderError> {
        let (from, to) = (header.from.as_str(), header.to.as_str());
        let (primary, seen) = match read_capacity(self.journal, self.world.compute, resource, from).await {
            Ok(units) => (units, String::new()),
            Err(e) => match self.journal.noted_capacity(resource, from).await {
                Ok(Some(note)) => (
                    note.units,
                    format!(
                        " last seen {}s before; {from} cannot be read now",
                        now_ms().saturating_sub(note.at_ms) / 1000
                    ),
                ),
                Ok(None) => {
                    return Err(ProviderError::permanent(format!(
                        "cannot read {resource} in {from} ({e}) and drover never saw it before: size {to}'s {resource} by hand, then resume"
                    )));
                }
                Err(store) => return Err(ProviderError::transient(store.to_string())),
            },
        };
        let have = self.world.compute.capacity(resource, to).await?;
        let missing: Vec<&str> = primary.keys().filter(|u| !have.contains_key(*u)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(ProviderError::permanent(format!(
                "{to} has no {} that {from} runs in {resource}: deploy or restore it in {to}, then resume",
                missing.join(", ")
            )));
        }
        Ok(primary
            .iter()
            .map(|(unit, old)| {
                let now = have[unit];
                UnitTarget {
                    unit: unit.clone(),
                    want: Size::share_of(old, percent, &now),
                    have: now,
                    basis: format!("{percent}% of {from}'s {}{seen}", old.desired),
                }
            })
            .collect())
    }

    /// Journals what `resource` ran in the target region before this run first resized it
    /// there; a resumed run keeps the first record, the sizes from before any resize.
    async fn note_scaled_from(&self, header: &RunHeader, resource: &str, units: Units) -> Result<(), ProviderError> {
        let store = |e: StoreError| ProviderError::transient(e.to_string()).with_source(e);
        let to = header.to.as_str();
        let entries = self.journal.entries(&header.id).await.map_err(store)?;
        let noted = entries.iter().any(
            |e| matches!(&e.record, Record::ScaledFrom { resource: r, region, .. } if r == resource && region == to),
        );
        if noted {
            return Ok(());
        }
        self.record(&header.id, Record::ScaledFrom { resource: resource.to_owned(), region: to.to_owned(), units })
            .await
            .map_err(store)
    }

    /// Undoes the scale-up of the newest failover or switchover into `region` (the run a
    /// failback out of `region` reverses), if it scaled anything. For failback drills.
    pub async fn undo_scale_into(&self, region: &str) -> Result<Vec<String>, ProviderError> {
        let runs = self.journal.runs().await.map_err(|e| ProviderError::transient(e.to_string()))?;
        let into = runs
            .iter()
            .filter(|r| matches!(r.header.kind, RunKind::Failover | RunKind::Switchover) && r.header.to == region)
            .max_by_key(|r| r.started_ms);
        match into {
            Some(run) => self.undo_scale(&run.header.id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Sets every resource a run's scale step resized back to what it ran before: a drill's
    /// undo, so the standby costs what it did. Returns one line per unit set back.
    pub async fn undo_scale(&self, run: &RunId) -> Result<Vec<String>, ProviderError> {
        let entries = self.journal.entries(run).await.map_err(|e| ProviderError::transient(e.to_string()))?;
        let mut restored = Vec::new();
        for entry in &entries {
            let Record::ScaledFrom { resource, region, units } = &entry.record else { continue };
            let sizes: BTreeMap<String, Size> = units.iter().map(|(u, c)| (u.clone(), Size::of(c))).collect();
            self.world.compute.resize(resource, region, &sizes).await?;
            restored.extend(
                units.iter().map(|(u, c)| format!("{region} {} back to {}", unit_name(resource, u), c.desired)),
            );
        }
        Ok(restored)
    }

    async fn stored_epoch(&self) -> Result<Epoch, ProviderError> {
        self.journal.epoch().await.map_err(|e| ProviderError::transient(e.to_string()))
    }

    /// Compare-and-swap the store's epoch up to this run's; fine if this run already did.
    /// The run's epoch may be more than one above the store's (the world held a higher one).
    async fn raise_epoch(&self, header: &RunHeader) -> Result<(), ProviderError> {
        let store = |e: StoreError| ProviderError::transient(e.to_string()).with_source(e);
        let current = self.journal.epoch().await.map_err(store)?;
        if current == header.epoch {
            return Ok(());
        }
        if current > header.epoch {
            return Err(stale(current, header.epoch));
        }
        match self.journal.compare_and_swap_epoch(current, header.epoch).await.map_err(store)? {
            Ok(()) => {
                self.record(&header.id, Record::EpochRaised { from: current, to: header.epoch }).await.map_err(store)
            }
            Err(found) if found == header.epoch => Ok(()),
            // Someone moved it between our read and the swap.
            Err(found) => Err(stale(found, header.epoch)),
        }
    }
}

fn stale(found: Epoch, ours: Epoch) -> ProviderError {
    ProviderError::stale(format!(
        "epoch is {found}, newer than this run's {ours}: another run has taken over; abort this one"
    ))
}

/// A notification about a run, with its regions.
fn run_event(plan: &Plan, header: &RunHeader, kind: EventKind, reason: String, at_ms: u64) -> NotifyEvent {
    let mut event = NotifyEvent::new(plan, kind, reason, at_ms);
    event.run_id = Some(header.id.0.clone());
    event.from = Some(header.from.clone());
    event.to = Some(header.to.clone());
    event
}

/// One unit's place in a scale step: what it should run, and what it runs now.
struct UnitTarget {
    unit: String,
    want: Size,
    have: Capacity,
    /// Where `want` came from, e.g. `50% of east's 3`.
    basis: String,
}

impl UnitTarget {
    fn is_done(&self) -> bool {
        self.have.desired >= self.want.desired && self.have.ready >= self.want.desired
    }

    fn describe(&self, resource: &str) -> String {
        format!("{} {}/{} ready ({})", unit_name(resource, &self.unit), self.have.ready, self.want.desired, self.basis)
    }
}

/// `web` for a whole resource, `web deployment/shop/api` for one of its workloads.
fn unit_name(resource: &str, unit: &str) -> String {
    if unit == WHOLE { resource.to_owned() } else { format!("{resource} {unit}") }
}
