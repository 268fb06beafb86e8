//! Readiness: would a failover work now, and would it meet the plan's objectives? Each
//! rule looks at facts the adapters gathered (the same observation and preflight a run
//! makes, plus what only readiness asks: a managed database's settings, a record set's
//! health check, what compute launches, the backup stores, the caller's permissions, the
//! last drill) and says pass, warn or fail, with the reason and what to do.
//!
//! Pure: no I/O, the time comes in. A pass needs evidence; what cannot be told is a warn
//! that says why, never a pass. `drover readiness` and every daemon round call
//! [`evaluate`]; docs/readiness.md describes every rule.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::check::Health;
use crate::duration::format_duration;
use crate::engine::Observed;
use crate::plan::{DatabaseSpec, Plan, TrafficSpec};
use crate::preflight::PlanProblems;
use crate::world::{Answer, DatabaseSettings, MemberStatus, Size};

/// How old the last successful drill may be before the drills rule fails, until the plan
/// says otherwise (`drill.max_age`): a little over a month, so a monthly drill passes.
pub const DRILL_MAX_AGE: Duration = Duration::from_secs(35 * 24 * 3600);

/// A backup may be this late (a fraction of its schedule, at least [`BACKUP_MIN_MARGIN`])
/// before the backups rule fails: a backup still being written is not missing.
pub const BACKUP_MARGIN_PERCENT: u32 = 50;
pub const BACKUP_MIN_MARGIN: Duration = Duration::from_secs(10 * 60);

/// How a rule judged: the gauge's value is 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }

    /// `drover_readiness{rule,region}`: 0 pass, 1 warn, 2 fail.
    pub fn gauge(self) -> u8 {
        self as u8
    }
}

/// What a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Database,
    Budget,
    Traffic,
    Compute,
    Backups,
    Permissions,
    Drills,
}

impl Rule {
    pub const ALL: [Rule; 7] =
        [Rule::Database, Rule::Budget, Rule::Traffic, Rule::Compute, Rule::Backups, Rule::Permissions, Rule::Drills];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Database => "database",
            Rule::Budget => "budget",
            Rule::Traffic => "traffic",
            Rule::Compute => "compute",
            Rule::Backups => "backups",
            Rule::Permissions => "permissions",
            Rule::Drills => "drills",
        }
    }
}

/// The region label of a finding about the whole plan (the budget, traffic's zone, the
/// permissions, the drills), in the gauge and the text table.
pub const PLAN_WIDE: &str = "plan";

/// One rule's judgement of one region (or of the whole plan: `region` None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub region: Option<String>,
    pub level: Level,
    pub reason: String,
    /// What to do; empty when nothing is to be done.
    pub action: String,
}

impl Finding {
    fn new(
        rule: Rule,
        region: Option<&str>,
        level: Level,
        reason: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Finding { rule, region: region.map(str::to_owned), level, reason: reason.into(), action: action.into() }
    }

    /// The gauge's region label.
    pub fn region_label(&self) -> &str {
        self.region.as_deref().unwrap_or(PLAN_WIDE)
    }

    /// One line for a confirmation prompt or a notification.
    pub fn line(&self) -> String {
        let action = if self.action.is_empty() { String::new() } else { format!(" — {}", self.action) };
        format!("{} {} ({}): {}{action}", self.level.as_str(), self.rule.as_str(), self.region_label(), self.reason)
    }
}

/// The newest backup of one region's store, as the store answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupFact {
    /// Its id, when it was taken, and whether verifying it found every object whole
    /// (`Err`: the problems).
    Newest {
        id: String,
        taken_ms: u64,
        whole: Result<usize, String>,
    },
    Empty,
    Unreadable(String),
}

/// Whether the caller may make every call the plan's runs make (`drover plan iam`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permissions {
    /// The plan calls no AWS API.
    NotNeeded,
    /// Every listed action is allowed; how many, and who asked (e.g. `iam:SimulatePrincipalPolicy`).
    Allowed {
        actions: usize,
        by: String,
    },
    /// The actions denied, each with the resource asked about.
    Denied(Vec<String>),
    CannotTell(String),
}

/// Everything readiness looks at, gathered by the application layer.
#[derive(Clone, Debug)]
pub struct Facts {
    /// One observation of the world (`engine::observe`).
    pub observed: Observed,
    /// What preflight finds wrong with every resource (`preflight::by_resource`).
    pub problems: PlanProblems,
    /// Each service region's managed database settings (`Database::settings`).
    pub settings: BTreeMap<String, Result<Option<DatabaseSettings>, String>>,
    /// Each service region's traffic health check (`Traffic::health_check`).
    pub health_checks: BTreeMap<String, Answer>,
    /// By (compute resource, region): `Compute::can_launch`.
    pub launch: BTreeMap<(String, String), Answer>,
    /// By region with a backup store.
    pub backups: BTreeMap<String, BackupFact>,
    pub permissions: Permissions,
    /// When the last successful drill ended (ms since the Unix epoch); None: none recorded.
    pub last_successful_drill_ms: Option<u64>,
    /// `drill.max_age`: [`DRILL_MAX_AGE`] until the plan has the field.
    pub drill_max_age: Duration,
}

/// Every rule's findings, in rule order, then region order.
pub fn evaluate(plan: &Plan, facts: &Facts, now_ms: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    database(plan, facts, &mut out);
    budget(plan, &mut out);
    traffic(plan, facts, &mut out);
    compute(plan, facts, &mut out);
    backups(plan, facts, now_ms, &mut out);
    permissions(facts, &mut out);
    drills(facts, now_ms, &mut out);
    out
}

/// The worst level among the findings; Pass when there are none.
pub fn worst(findings: &[Finding]) -> Level {
    findings.iter().map(|f| f.level).max().unwrap_or(Level::Pass)
}

/// The worst level of each (rule, region label): the gauge's values.
pub fn levels(findings: &[Finding]) -> BTreeMap<(Rule, String), Level> {
    let mut out: BTreeMap<(Rule, String), Level> = BTreeMap::new();
    for f in findings {
        let level = out.entry((f.rule, f.region_label().to_owned())).or_insert(f.level);
        *level = (*level).max(f.level);
    }
    out
}

/// A (rule, region) whose level moved between two evaluations, with the new reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub rule: Rule,
    pub region: String,
    /// None: the rule had no finding for the region before (the first evaluation).
    pub from: Option<Level>,
    /// None: the rule has no finding for the region any more.
    pub to: Option<Level>,
    pub reasons: Vec<String>,
}

impl Change {
    pub fn line(&self) -> String {
        let level = |l: Option<Level>| l.map_or("none", Level::as_str);
        let mut line =
            format!("readiness {} ({}): {} -> {}", self.rule.as_str(), self.region, level(self.from), level(self.to));
        if !self.reasons.is_empty() {
            line.push_str(": ");
            line.push_str(&self.reasons.join("; "));
        }
        line
    }
}

/// What changed from `before` to `now`'s findings. Nothing changed from None (the first
/// round) except rules that do not pass: a daemon that starts says what is wrong once.
pub fn changes(before: Option<&BTreeMap<(Rule, String), Level>>, now: &[Finding]) -> Vec<Change> {
    let after = levels(now);
    let reasons = |rule: Rule, region: &str| -> Vec<String> {
        now.iter()
            .filter(|f| f.rule == rule && f.region_label() == region && f.level != Level::Pass)
            .map(|f| f.reason.clone())
            .collect()
    };
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let old = before.unwrap_or(&empty);
    for ((rule, region), level) in &after {
        let from = old.get(&(*rule, region.clone())).copied();
        let moved = match before {
            Some(_) => from != Some(*level),
            None => *level != Level::Pass,
        };
        if moved {
            out.push(Change {
                rule: *rule,
                region: region.clone(),
                from,
                to: Some(*level),
                reasons: reasons(*rule, region),
            });
        }
    }
    for ((rule, region), level) in old {
        if !after.contains_key(&(*rule, region.clone())) {
            out.push(Change { rule: *rule, region: region.clone(), from: Some(*level), to: None, reasons: Vec::new() });
        }
    }
    out
}

/// A preflight problem as a finding: `what — check field` becomes reason and action.
fn problem(rule: Rule, region: Option<&str>, text: &str) -> Finding {
    let (reason, action) = match text.split_once(" — ") {
        Some((reason, action)) => (reason, action.to_owned()),
        None => (text, "fix the resource or the plan field the reason names".to_owned()),
    };
    Finding::new(rule, region, Level::Fail, reason, action)
}

fn secs(s: f64) -> String {
    format_duration(Duration::from_secs_f64(s.max(0.0)))
}

/// The database: the primary takes writes, each standby exists and replicates within the
/// RPO, and an RDS or Aurora standby is configured like its primary.
fn database(plan: &Plan, facts: &Facts, out: &mut Vec<Finding>) {
    let o = &facts.observed;
    let primary = o.current_primary(plan);
    let rpo = plan.objectives.rpo;
    for region in plan.service_regions() {
        let r = Some(region);
        for p in facts.problems.members.get(region).into_iter().flatten() {
            out.push(problem(Rule::Database, r, p));
        }
        let member = o.members.get(region);
        if region == primary {
            match member {
                Some(MemberStatus::Primary { writable: true, .. }) => {
                    out.push(Finding::new(Rule::Database, r, Level::Pass, "the primary takes writes", ""))
                }
                Some(MemberStatus::Primary { writable: false, .. }) => out.push(Finding::new(
                    Rule::Database,
                    r,
                    Level::Fail,
                    "the primary is fenced (read-only): no database takes writes",
                    "finish or abort the run that fenced it ('drover runs'), or fail over",
                )),
                Some(MemberStatus::Unreachable { reason }) => out.push(Finding::new(
                    Rule::Database,
                    r,
                    Level::Fail,
                    format!("the primary cannot be reached: {reason}"),
                    "check the primary region; fail over if it is lost",
                )),
                _ => out.push(Finding::new(
                    Rule::Database,
                    r,
                    Level::Fail,
                    "no database member takes writes",
                    "see 'drover status'; promote a standby with 'drover failover'",
                )),
            }
            continue;
        }
        match member {
            Some(MemberStatus::Standby { upstream: None, .. }) => out.push(Finding::new(
                Rule::Database,
                r,
                Level::Fail,
                "the standby replicates from nothing (no upstream)",
                "restart its replication from the primary ('drover reprotect' for PostgreSQL)",
            )),
            Some(MemberStatus::Standby { lag_seconds: Some(lag), upstream: Some(up), .. }) => {
                let lag_d = Duration::from_secs_f64(lag.max(0.0));
                if lag_d > rpo {
                    out.push(Finding::new(
                        Rule::Database,
                        r,
                        Level::Fail,
                        format!(
                            "the standby replicates from {up} {} behind, more than the RPO objective {}",
                            secs(*lag),
                            format_duration(rpo)
                        ),
                        "find why it falls behind (write load, network, its instance size) or raise objectives.rpo",
                    ));
                } else {
                    out.push(Finding::new(
                        Rule::Database,
                        r,
                        Level::Pass,
                        format!(
                            "the standby replicates from {up}, {} behind (RPO objective {})",
                            secs(*lag),
                            format_duration(rpo)
                        ),
                        "",
                    ));
                }
            }
            Some(MemberStatus::Standby { lag_seconds: None, upstream: Some(up), .. }) => out.push(Finding::new(
                Rule::Database,
                r,
                Level::Warn,
                format!("the standby replicates from {up}, but its lag is unknown"),
                "check the lag metric (CloudWatch ReplicaLag / AuroraGlobalDBReplicationLag) or pg_stat_replication",
            )),
            Some(MemberStatus::Primary { writable, .. }) => out.push(Finding::new(
                Rule::Database,
                r,
                Level::Fail,
                format!(
                    "not a standby: a {} primary, so nothing replicates to it",
                    if *writable { "writable" } else { "fenced" }
                ),
                "make it a standby of the primary again ('drover reprotect' for PostgreSQL; a new read replica for RDS)",
            )),
            Some(MemberStatus::Unreachable { reason }) => out.push(Finding::new(
                Rule::Database,
                r,
                Level::Fail,
                format!("the standby cannot be reached: {reason}"),
                "check the standby and the database.members entry for the region",
            )),
            None => out.push(Finding::new(
                Rule::Database,
                r,
                Level::Warn,
                "the standby was not read",
                "run 'drover status' to see why",
            )),
        }
        if matches!(plan.database, DatabaseSpec::Rds(_) | DatabaseSpec::AuroraGlobal(_)) {
            out.push(settings(region, primary, facts));
        }
    }
}

/// An RDS or Aurora standby against its primary: engine version and parameter group
/// family must match (fail); instance class, Multi-AZ and backup retention should (warn:
/// the promoted database runs smaller, in one zone, or without backups).
fn settings(region: &str, primary: &str, facts: &Facts) -> Finding {
    let read = |r: &str| -> Result<DatabaseSettings, String> {
        match facts.settings.get(r) {
            Some(Ok(Some(s))) => Ok(s.clone()),
            Some(Ok(None)) => Err(format!("the provider does not report {r}'s settings")),
            Some(Err(e)) => Err(format!("{r}'s settings could not be read: {e}")),
            None => Err(format!("{r}'s settings were not read")),
        }
    };
    let (p, s) = match (read(primary), read(region)) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            return Finding::new(
                Rule::Database,
                Some(region),
                Level::Warn,
                format!("cannot compare the standby's settings with the primary's: {e}"),
                "check drover may call DescribeDBInstances and DescribeDBParameterGroups ('drover plan iam')",
            );
        }
    };
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    if p.engine_version != s.engine_version {
        fails.push(format!("engine version {} (primary {})", s.engine_version, p.engine_version));
    }
    if p.parameter_group_family != s.parameter_group_family {
        fails.push(format!(
            "parameter group family {} (primary {})",
            s.parameter_group_family, p.parameter_group_family
        ));
    }
    if p.instance_class != s.instance_class {
        warns.push(format!("instance class {} (primary {})", s.instance_class, p.instance_class));
    }
    if p.multi_az != s.multi_az {
        let az = |m: bool| if m { "Multi-AZ" } else { "single-AZ" };
        warns.push(format!("{} (primary {})", az(s.multi_az), az(p.multi_az)));
    }
    if p.backup_retention_days != s.backup_retention_days {
        warns.push(format!("backup retention {} days (primary {})", s.backup_retention_days, p.backup_retention_days));
    }
    let level = if !fails.is_empty() {
        Level::Fail
    } else if !warns.is_empty() {
        Level::Warn
    } else {
        return Finding::new(
            Rule::Database,
            Some(region),
            Level::Pass,
            format!(
                "configured like the primary: engine {}, {}, family {}, {}, backups kept {} days",
                s.engine_version,
                s.instance_class,
                s.parameter_group_family,
                if s.multi_az { "Multi-AZ" } else { "single-AZ" },
                s.backup_retention_days
            ),
            "",
        );
    };
    let differences: Vec<String> = fails.into_iter().chain(warns).collect();
    Finding::new(
        Rule::Database,
        Some(region),
        level,
        format!("the standby differs from the primary: {}", differences.join(", ")),
        "make the standby match the primary (modify-db-instance / a replica created with the primary's settings)",
    )
}

/// The time a failover takes at worst, against the RTO; an RPO of 0 with asynchronous
/// replication.
fn budget(plan: &Plan, out: &mut Vec<Finding>) {
    let critical: Vec<_> = plan.checks.values().filter(|c| c.critical).collect();
    let detection = critical.iter().map(|c| c.interval.saturating_mul(c.failure_threshold)).max();
    let promote = match &plan.database {
        DatabaseSpec::Postgres(p) => p.promote_timeout,
        DatabaseSpec::Rds(r) => r.promote_timeout,
        DatabaseSpec::AuroraGlobal(a) => a.timeout,
    };
    let (switch, ttl) = match &plan.traffic {
        TrafficSpec::Rfc2136(t) => (Duration::ZERO, t.ttl),
        TrafficSpec::Route53(t) => {
            let pauses = match &t.routing {
                crate::plan::Route53Routing::Weighted { stages, stage_pause } => {
                    stage_pause.saturating_mul(stages.len().saturating_sub(1) as u32)
                }
                crate::plan::Route53Routing::Failover => Duration::ZERO,
            };
            (t.change_timeout.saturating_add(pauses), t.ttl)
        }
        TrafficSpec::GlobalAccelerator(g) => {
            let pauses = g.stage_pause.saturating_mul(g.stages.len().saturating_sub(1) as u32);
            (g.change_timeout.saturating_add(pauses), Duration::ZERO)
        }
    };
    let rto = plan.objectives.rto;
    let sum = detection.unwrap_or_default().saturating_add(promote).saturating_add(switch).saturating_add(ttl);
    let parts = format!(
        "detection {} + promote timeout {} + switch {} + TTL {} = {}",
        detection.map_or("unknown".to_owned(), format_duration),
        format_duration(promote),
        format_duration(switch),
        format_duration(ttl),
        format_duration(sum)
    );
    if sum > rto {
        out.push(Finding::new(
            Rule::Budget,
            None,
            Level::Fail,
            format!("a failover may take {parts}, more than the RTO objective {}", format_duration(rto)),
            "shorten the checks' interval × failure_threshold, the promote or change timeouts or the TTL, or raise objectives.rto",
        ));
    } else if detection.is_none() {
        out.push(Finding::new(
            Rule::Budget,
            None,
            Level::Warn,
            format!("no critical check detects a lost region: {parts} (RTO objective {})", format_duration(rto)),
            "add a critical check, or count the time a person takes to notice",
        ));
    } else {
        out.push(Finding::new(
            Rule::Budget,
            None,
            Level::Pass,
            format!("a failover takes at most {parts}, within the RTO objective {}", format_duration(rto)),
            "",
        ));
    }
    let asynchronous = plan.database.replication() == crate::plan::Replication::Asynchronous.as_str();
    if plan.objectives.rpo.is_zero() && asynchronous {
        out.push(Finding::new(
            Rule::Budget,
            None,
            Level::Fail,
            format!(
                "objectives.rpo is 0s but {} replication is asynchronous: a failover can lose acknowledged writes",
                plan.database.kind()
            ),
            "use replication: synchronous (PostgreSQL), or set objectives.rpo to the loss you accept",
        ));
    }
}

/// Traffic: the record sets exist as the plan names them, the record can be read, and each
/// region's health check (or the plan's critical checks) is healthy.
fn traffic(plan: &Plan, facts: &Facts, out: &mut Vec<Finding>) {
    let o = &facts.observed;
    for p in &facts.problems.traffic {
        out.push(problem(Rule::Traffic, None, p));
    }
    if let Err(e) = &o.traffic {
        out.push(Finding::new(
            Rule::Traffic,
            None,
            Level::Fail,
            format!("the traffic record cannot be read: {e}"),
            "check the traffic section and that drover reaches its API",
        ));
    }
    for region in plan.service_regions() {
        let r = Some(region);
        let answer = facts.health_checks.get(region);
        let checks = o.region_health(plan, region);
        let failing: Vec<String> = o
            .checks
            .get(region)
            .into_iter()
            .flatten()
            .filter(|(name, p)| !p.ok && plan.checks.get(name).is_some_and(|c| c.critical))
            .map(|(name, p)| format!("{name}: {}", p.detail))
            .collect();
        let finding = match (answer, checks) {
            (Some(Answer::No(why)), _) => Finding::new(
                Rule::Traffic,
                r,
                Level::Fail,
                format!("its health check fails: {why}"),
                "fix what the health check probes, or the health check itself",
            ),
            (_, Health::Unhealthy) => Finding::new(
                Rule::Traffic,
                r,
                Level::Fail,
                format!("critical checks fail: {}", failing.join("; ")),
                "fix what the checks probe before a failover sends traffic here",
            ),
            (Some(Answer::Yes(why)), _) => {
                Finding::new(Rule::Traffic, r, Level::Pass, format!("its health check is healthy: {why}"), "")
            }
            (_, Health::Healthy) => Finding::new(Rule::Traffic, r, Level::Pass, "its critical checks pass", ""),
            (answer, _) => {
                let why = match answer {
                    Some(Answer::CannotTell(why)) => why.clone(),
                    _ => "no health check was read".to_owned(),
                };
                Finding::new(
                    Rule::Traffic,
                    r,
                    Level::Warn,
                    format!("cannot tell whether it would serve: {why}, and no critical check covers it"),
                    "attach a health check to its record set (traffic.targets.REGION.health_check_id) or add a critical check",
                )
            }
        };
        out.push(finding);
    }
}

/// Compute: each resource exists, the primary's capacity is read, every standby may reach
/// its share of it, and can launch what it is sized to.
fn compute(plan: &Plan, facts: &Facts, out: &mut Vec<Finding>) {
    let o = &facts.observed;
    let primary = o.current_primary(plan);
    for (name, spec) in &plan.compute {
        for region in plan.service_regions() {
            let r = Some(region);
            let key = (name.clone(), region.to_owned());
            for p in facts.problems.compute.get(&key).into_iter().flatten() {
                out.push(problem(Rule::Compute, r, p));
            }
            let read = o.compute.get(name).and_then(|by| by.get(region));
            if region == primary {
                match read {
                    Some(Ok(units)) => {
                        let runs: Vec<String> = units
                            .iter()
                            .map(|(unit, c)| {
                                let unit = if unit.is_empty() { String::new() } else { format!("{unit} ") };
                                format!("{unit}{} desired ({} ready)", c.desired, c.ready)
                            })
                            .collect();
                        out.push(Finding::new(
                            Rule::Compute,
                            r,
                            Level::Pass,
                            format!("{name}: the primary runs {}", runs.join(", ")),
                            "",
                        ));
                    }
                    Some(Err(e)) => out.push(Finding::new(
                        Rule::Compute,
                        r,
                        Level::Warn,
                        format!("{name}: the primary's capacity cannot be read: {e}"),
                        "check the compute section and drover's access to it",
                    )),
                    None => {}
                }
                continue;
            }
            let primary_units = o.compute.get(name).and_then(|by| by.get(primary));
            match (primary_units, read) {
                (_, Some(Err(e))) => out.push(Finding::new(
                    Rule::Compute,
                    r,
                    Level::Warn,
                    format!("{name}: the standby's capacity cannot be read: {e}"),
                    "check the compute section and drover's access to it",
                )),
                (Some(Ok(p)), Some(Ok(s))) => {
                    let mut short = Vec::new();
                    let mut fits = Vec::new();
                    let mut missing = Vec::new();
                    for (unit, pc) in p {
                        let label = if unit.is_empty() { name.clone() } else { format!("{name} {unit}") };
                        let Some(sc) = s.get(unit) else {
                            missing.push(label);
                            continue;
                        };
                        let need = Size::share_of(pc, spec.capacity_percent, sc).desired;
                        if sc.max < need {
                            short.push(format!("{label}: max {} below the {need} it needs", sc.max));
                        } else {
                            fits.push(format!("{label}: max {} allows the {need} it needs", sc.max));
                        }
                    }
                    let share = format!("{}% of the primary's", spec.capacity_percent);
                    if !missing.is_empty() {
                        out.push(Finding::new(
                            Rule::Compute,
                            r,
                            Level::Fail,
                            format!("{} not in the standby: it cannot take its share", missing.join(", ")),
                            "deploy the same workloads in the standby's cluster",
                        ));
                    }
                    if !short.is_empty() {
                        out.push(Finding::new(
                            Rule::Compute,
                            r,
                            Level::Warn,
                            format!("{share}: {}", short.join("; ")),
                            "raise the standby's max size: the scale step widens it during a run, and the account's quotas must allow it",
                        ));
                    } else if missing.is_empty() {
                        out.push(Finding::new(
                            Rule::Compute,
                            r,
                            Level::Pass,
                            format!("{share}: {}", fits.join("; ")),
                            "",
                        ));
                    }
                }
                _ => out.push(Finding::new(
                    Rule::Compute,
                    r,
                    Level::Warn,
                    format!(
                        "{name}: cannot tell whether the standby can take its share: the primary's capacity is unknown"
                    ),
                    "see 'drover status'",
                )),
            }
            if spec.kind.launches_machines() {
                match facts.launch.get(&key) {
                    Some(Answer::Yes(why)) => out.push(Finding::new(Rule::Compute, r, Level::Pass, why.clone(), "")),
                    Some(Answer::No(why)) => out.push(Finding::new(
                        Rule::Compute,
                        r,
                        Level::Fail,
                        why.clone(),
                        "create what it launches (launch template, launch configuration, image) in the standby's AWS region",
                    )),
                    Some(Answer::CannotTell(why)) => out.push(Finding::new(
                        Rule::Compute,
                        r,
                        Level::Warn,
                        why.clone(),
                        "check by hand that it can launch in the standby's AWS region",
                    )),
                    None => {}
                }
            }
        }
    }
}

/// Backups: the newest backup in every region's store is young enough and whole.
fn backups(plan: &Plan, facts: &Facts, now_ms: u64, out: &mut Vec<Finding>) {
    let Some(spec) = &plan.backup else { return };
    for region in spec.stores.keys() {
        let r = Some(region.as_str());
        let finding = match facts.backups.get(region) {
            None => Finding::new(Rule::Backups, r, Level::Warn, "the store was not read", "see 'drover backup list'"),
            Some(BackupFact::Unreadable(e)) => Finding::new(
                Rule::Backups,
                r,
                Level::Warn,
                format!("the store cannot be read: {e}"),
                "check the store (backup.stores) and drover's access to it",
            ),
            Some(BackupFact::Empty) => Finding::new(
                Rule::Backups,
                r,
                Level::Fail,
                "the store holds no backup",
                "take one ('drover backup create') and set backup.schedule so 'drover serve' keeps taking them",
            ),
            Some(BackupFact::Newest { id, taken_ms, whole }) => {
                let age = Duration::from_millis(now_ms.saturating_sub(*taken_ms));
                match (whole, spec.schedule) {
                    (Err(problems), _) => Finding::new(
                        Rule::Backups,
                        r,
                        Level::Fail,
                        format!("the newest backup {id} is not whole: {problems}"),
                        "take a new backup ('drover backup create'); 'drover backup verify' shows every problem",
                    ),
                    (Ok(_), None) => Finding::new(
                        Rule::Backups,
                        r,
                        Level::Warn,
                        format!("the newest backup {id} is {} old and no schedule takes more", format_duration(age)),
                        "set backup.schedule so 'drover serve' takes them",
                    ),
                    (Ok(objects), Some(schedule)) => {
                        let margin = (schedule.saturating_mul(BACKUP_MARGIN_PERCENT) / 100).max(BACKUP_MIN_MARGIN);
                        let limit = schedule.saturating_add(margin);
                        if age > limit {
                            Finding::new(
                                Rule::Backups,
                                r,
                                Level::Fail,
                                format!(
                                    "the newest backup {id} is {} old, more than its schedule {} plus {}",
                                    format_duration(age),
                                    format_duration(schedule),
                                    format_duration(margin)
                                ),
                                "check that 'drover serve' runs and its backups succeed (its log, /metrics)",
                            )
                        } else {
                            Finding::new(
                                Rule::Backups,
                                r,
                                Level::Pass,
                                format!(
                                    "the newest backup {id} is {} old (schedule {}), whole ({objects} objects checked)",
                                    format_duration(age),
                                    format_duration(schedule)
                                ),
                                "",
                            )
                        }
                    }
                }
            }
        };
        out.push(finding);
    }
}

fn permissions(facts: &Facts, out: &mut Vec<Finding>) {
    let f = match &facts.permissions {
        Permissions::NotNeeded => {
            Finding::new(Rule::Permissions, None, Level::Pass, "the plan calls no AWS API: no permission to check", "")
        }
        Permissions::Allowed { actions, by } => Finding::new(
            Rule::Permissions,
            None,
            Level::Pass,
            format!("all {actions} actions 'drover plan iam' lists are allowed ({by})"),
            "",
        ),
        Permissions::Denied(denied) => Finding::new(
            Rule::Permissions,
            None,
            Level::Fail,
            format!("denied: {}", denied.join(", ")),
            "attach the policy 'drover plan iam PLAN' prints to the role drover runs as",
        ),
        Permissions::CannotTell(why) => Finding::new(
            Rule::Permissions,
            None,
            Level::Warn,
            format!("cannot tell whether every action is allowed: {why}"),
            "allow drover iam:SimulatePrincipalPolicy on its own role, or check 'drover plan iam' by hand",
        ),
    };
    out.push(f);
}

/// An age in days once it is a day or more (drills are weeks apart), else as durations are.
fn age(d: Duration) -> String {
    match d.as_secs() / 86_400 {
        0 => format_duration(d),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

fn drills(facts: &Facts, now_ms: u64, out: &mut Vec<Finding>) {
    let max = facts.drill_max_age;
    let f = match facts.last_successful_drill_ms {
        None => Finding::new(
            Rule::Drills,
            None,
            Level::Warn,
            "no drill recorded: the failover path is unproven",
            "run a drill ('drover drill --plan PLAN')",
        ),
        Some(at) => {
            let since = Duration::from_millis(now_ms.saturating_sub(at));
            if since > max {
                Finding::new(
                    Rule::Drills,
                    None,
                    Level::Fail,
                    format!("the last successful drill is {} old, older than {}", age(since), age(max)),
                    "run a drill ('drover drill --plan PLAN')",
                )
            } else {
                Finding::new(
                    Rule::Drills,
                    None,
                    Level::Pass,
                    format!("the last successful drill is {} old (at most {})", age(since), age(max)),
                    "",
                )
            }
        }
    };
    out.push(f);
}
