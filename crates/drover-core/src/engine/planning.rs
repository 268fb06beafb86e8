//! Planning: which run, if any, the plan and the observed world allow. Pure: every gate
//! and refusal a person or the autopilot can meet before anything is journaled.

use crate::check::Health;
use crate::plan::{DatabaseKind, Plan, Role, StepKind};
use crate::run::{Epoch, RunHeader, RunId, RunKind};
use crate::world::{HostAccess, MemberStatus, TrafficState};

use super::observe::Observed;

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
    /// The traffic's epoch record or a primary's epoch table holds the largest number there
    /// is: the next run has no greater epoch to fence with (a wrap to 0 would let the old
    /// primary's writes win). drover never writes it: someone or something else did.
    #[error(
        "the highest epoch recorded is {0}, the largest drover can count, so a run has no newer epoch to fence with; drover never writes such a number: correct the epoch record (traffic) or the database's epoch table to the epoch of the last run ('drover runs')"
    )]
    EpochExhausted(Epoch),
}

/// The epoch of a new run: one past the highest recorded anywhere, which came from the
/// world (a DNS TXT, a database row) and so may be any number.
fn next_epoch(observed: &Observed) -> Result<Epoch, Refusal> {
    let highest = observed.highest_epoch();
    highest.checked_add(1).ok_or(Refusal::EpochExhausted(highest))
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
        id: observed.next_run.clone(),
        kind,
        plan: plan.name.clone(),
        from,
        to: to.into(),
        epoch: next_epoch(observed)?,
        steps: runbook(plan, kind),
        reason: reason.into(),
        accepted_loss,
        requested_by: None,
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
        id: observed.next_run.clone(),
        kind: RunKind::Reprotect,
        plan: plan.name.clone(),
        from: region.into(),
        to,
        epoch: observed.highest_epoch(),
        steps: runbook(plan, RunKind::Reprotect),
        reason: reason.into(),
        accepted_loss: None,
        requested_by: None,
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
