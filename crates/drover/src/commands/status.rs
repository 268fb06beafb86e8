//! `drover status`: one look at every region.

use std::process::ExitCode;

use drover_core::check::Health;
use drover_core::engine::Observed;
use drover_core::plan::{DatabaseSpec, Plan, Replication, Role};
use drover_core::world::{MemberStatus, TrafficState, WHOLE};

use crate::app::context::Context;
use crate::app::error::Failure;
use crate::app::runtime;
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::table::{Align, Table};
use crate::commands::{Output, finish, print_json};

pub fn run(target: &TargetArgs, output: Output) -> ExitCode {
    finish(runtime().block_on(async {
        let args = match target.target()? {
            Target::Remote(remote) => return remote.status(output).await,
            Target::Local(args) => args,
        };
        let cx = Context::open(&args).await?;
        let observed = cx.observe().await?;
        match output {
            Output::Json => print_json(&json(&cx.plan, &observed)),
            Output::Text => print!("{}", render(&cx.plan, &observed)),
        }
        // The table above shows what failed; a read of nothing at all is a failure of its
        // own (wrong network, wrong plan), and scripts must not take it for a healthy world.
        if read_nothing(&observed) {
            return Err(Failure::failed(
                "nothing could be read: no database member, no traffic record and no check answered; \
                 check that this machine reaches the plan's addresses",
            ));
        }
        Ok(())
    }))
}

/// Whether not one source answered: every member unreachable (or not read), the traffic
/// record unreadable, no check passed and no compute read. A failed check counts as no
/// answer: its probe cannot tell a refused connection from a bad reply.
fn read_nothing(o: &Observed) -> bool {
    o.members.values().all(MemberStatus::is_unreachable)
        && o.traffic.is_err()
        && o.checks.values().flatten().all(|(_, r)| !r.ok)
        && o.compute.values().flat_map(|by_region| by_region.values()).all(Result::is_err)
}

/// What `Observed::current_primary` went by: a writable database, else the traffic record,
/// else only the plan. The header says so, rather than name the plan's primary as if seen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrimarySource {
    Database,
    Traffic,
    Plan,
}

impl PrimarySource {
    fn of(o: &Observed) -> PrimarySource {
        if drover_core::world::newest_primary(&o.members).is_some() {
            PrimarySource::Database
        } else if matches!(&o.traffic, Ok(TrafficState { region: Some(_), .. })) {
            PrimarySource::Traffic
        } else {
            PrimarySource::Plan
        }
    }

    fn name(self) -> &'static str {
        match self {
            PrimarySource::Database => "database",
            PrimarySource::Traffic => "traffic",
            PrimarySource::Plan => "plan",
        }
    }
}

/// What a region's database is doing now, which is what `ROLE` shows; the plan's role
/// is only where the region started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    Witness,
    /// The region acting as primary (`Observed::current_primary`), accepting writes.
    Primary,
    /// The region acting as primary, but fenced (a run stopped between fence and promote).
    FencedPrimary,
    /// Accepts writes but is not the primary: a returned old primary at an older epoch.
    OldPrimary,
    FencedOldPrimary,
    Standby,
    Unreachable,
    /// No member was read for it.
    Unknown,
}

impl Current {
    fn of(plan: &Plan, o: &Observed, region: &str) -> Current {
        if plan.regions.get(region).is_some_and(|r| r.role == Role::Witness) {
            return Current::Witness;
        }
        let acting = o.current_primary(plan) == region;
        match o.members.get(region) {
            Some(MemberStatus::Primary { writable: true, .. }) if acting => Current::Primary,
            Some(MemberStatus::Primary { writable: false, .. }) if acting => Current::FencedPrimary,
            Some(MemberStatus::Primary { writable: true, .. }) => Current::OldPrimary,
            Some(MemberStatus::Primary { writable: false, .. }) => Current::FencedOldPrimary,
            Some(MemberStatus::Standby { .. }) => Current::Standby,
            Some(MemberStatus::Unreachable { .. }) => Current::Unreachable,
            None => Current::Unknown,
        }
    }

    /// The JSON value.
    fn name(self) -> &'static str {
        match self {
            Current::Witness => "witness",
            Current::Primary => "primary",
            Current::FencedPrimary => "fenced_primary",
            Current::OldPrimary => "old_primary",
            Current::FencedOldPrimary => "fenced_old_primary",
            Current::Standby => "standby",
            Current::Unreachable => "unreachable",
            Current::Unknown => "unknown",
        }
    }

    /// The text cell.
    fn words(self) -> &'static str {
        match self {
            Current::OldPrimary => "old primary, writable",
            Current::FencedPrimary => "fenced primary",
            Current::FencedOldPrimary => "fenced old primary",
            other => other.name(),
        }
    }
}

/// `primary`, or `primary (plan: standby)` when the world moved away from the plan.
fn role_cell(plan_role: Role, current: Current) -> String {
    if current.words() == plan_role.as_str() {
        current.words().into()
    } else {
        format!("{} (plan: {})", current.words(), plan_role.as_str())
    }
}

/// One reason a region is not healthy: a few words for the table (the full detail is in
/// its DATABASE, CHECKS or compute cell), and the whole of it for JSON.
struct Reason {
    short: String,
    full: String,
}

/// A region's health and why. The deciding inputs:
/// - its database member: unreachable, or not read at all, makes it unhealthy — a region
///   whose database cannot be reached serves nothing and takes no move (the engine
///   refuses such a target for the same reason);
/// - its critical checks, as the engine judges them: one failing makes it unhealthy, none
///   answering leaves it unknown;
/// - its compute: a resource that cannot be read leaves it unknown at best, since a
///   failover could not size it there.
///
/// Non-critical checks are shown but decide nothing, as in the engine.
fn health(plan: &Plan, o: &Observed, region: &str) -> (Health, Vec<Reason>) {
    let mut unhealthy = Vec::new();
    let mut unknown = Vec::new();
    match o.members.get(region) {
        Some(MemberStatus::Unreachable { reason }) => unhealthy
            .push(Reason { short: "database unreachable".into(), full: format!("database unreachable: {reason}") }),
        None => {
            unhealthy.push(Reason { short: "no database member".into(), full: "no database member was read".into() })
        }
        Some(_) => {}
    }
    let critical = |name: &str| plan.checks.get(name).is_some_and(|c| c.critical);
    match o.region_health(plan, region) {
        Health::Unhealthy => {
            for (name, r) in o.checks.get(region).into_iter().flatten().filter(|(n, r)| critical(n) && !r.ok) {
                unhealthy.push(Reason {
                    short: format!("check {name} failed"),
                    full: format!("check {name}: {}", r.detail),
                });
            }
        }
        Health::Unknown => unknown.push(Reason {
            short: "no critical check".into(),
            full: "no critical check ran against this region".into(),
        }),
        Health::Healthy => {}
    }
    for (resource, by_region) in &o.compute {
        if let Some(Err(e)) = by_region.get(region) {
            unknown.push(Reason {
                short: format!("compute {resource} unreadable"),
                full: format!("compute {resource} cannot be read: {e}"),
            });
        }
    }
    if !unhealthy.is_empty() {
        (Health::Unhealthy, unhealthy)
    } else if !unknown.is_empty() {
        (Health::Unknown, unknown)
    } else {
        (Health::Healthy, Vec::new())
    }
}

fn health_cell(health: Health, reasons: &[Reason]) -> String {
    if reasons.is_empty() {
        health.as_str().into()
    } else {
        format!("{}: {}", health.as_str(), reasons.iter().map(|r| r.short.as_str()).collect::<Vec<_>>().join(", "))
    }
}

fn traffic_region(observed: &Observed) -> Option<&str> {
    match &observed.traffic {
        Ok(TrafficState { region, .. }) => region.as_deref(),
        Err(_) => None,
    }
}

fn json(plan: &Plan, o: &Observed) -> serde_json::Value {
    let regions: Vec<serde_json::Value> = plan
        .regions
        .iter()
        .map(|(name, region)| {
            let checks: Vec<serde_json::Value> = o
                .checks
                .get(name)
                .map(|c| {
                    c.iter()
                        .map(|(check, r)| {
                            serde_json::json!({"check": check, "ok": r.ok, "latency_ms": r.latency.as_millis() as u64, "detail": r.detail})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let witness = region.role == Role::Witness;
            let (health, reasons) = health(plan, o, name);
            serde_json::json!({
                "region": name,
                "role": Current::of(plan, o, name).name(),
                "plan_role": region.role.as_str(),
                "database": o.members.get(name),
                "traffic": traffic_region(o) == Some(name.as_str()),
                // A witness serves nothing: it has no health to judge.
                "health": if witness { None } else { Some(health.as_str()) },
                "health_reasons": if witness { Vec::new() } else { reasons.into_iter().map(|r| r.full).collect() },
                "checks": checks,
            })
        })
        .collect();
    serde_json::json!({
        "plan": plan.name,
        "epoch": o.epoch,
        "active_run": o.active_run,
        "current_primary": o.current_primary(plan),
        "current_primary_from": PrimarySource::of(o).name(),
        "traffic": match &o.traffic {
            Ok(t) => serde_json::to_value(t).unwrap(),
            Err(e) => serde_json::json!({"error": e}),
        },
        "regions": regions,
        "compute": o.compute.iter().map(|(name, by_region)| {
            let regions: serde_json::Map<String, serde_json::Value> = by_region
                .iter()
                .map(|(r, c)| {
                    let v = match c {
                        // A resource scaled as a whole shows its one capacity; workloads show each.
                        Ok(units) => match units.get(WHOLE) {
                            Some(c) if units.len() == 1 => serde_json::to_value(c).unwrap(),
                            _ => serde_json::to_value(units).unwrap(),
                        },
                        Err(e) => serde_json::json!({"error": e}),
                    };
                    (r.clone(), v)
                })
                .collect();
            (name.clone(), serde_json::Value::Object(regions))
        }).collect::<serde_json::Map<_, _>>(),
    })
}

/// A primary's replication as it bears on the plan's RPO.
fn replication_cell(plan: &Plan, sync_standbys: Option<u32>) -> String {
    let replication = plan.postgres().map_or(Replication::Asynchronous, |pg| pg.replication);
    match (replication, sync_standbys) {
        (_, Some(0)) => "sync, NO standby: commits wait".into(),
        (_, Some(n)) => format!("sync to {n} standby{}", if n == 1 { "" } else { "s" }),
        (Replication::Synchronous, None) => "async: RPO 0 unprotected".into(),
        (Replication::Asynchronous, None) => "async".into(),
    }
}

/// A standby's lag as far as it is known. Only PostgreSQL has a lag in bytes; RDS and
/// Aurora have none to show, not an unknown one, so their cell is the time alone.
fn lag_cell(plan: &Plan, bytes: Option<u64>, seconds: Option<f64>) -> String {
    let seconds = seconds.map(|s| format!("{s:.1} s"));
    if !plan.database.knows_wal_positions() {
        return format!("lag {}", seconds.as_deref().unwrap_or("unknown"));
    }
    match (bytes, seconds) {
        (Some(b), Some(s)) => format!("lag {b} B / {s}"),
        (Some(b), None) => format!("lag {b} B (time unknown)"),
        (None, Some(s)) => format!("lag {s} (bytes unknown)"),
        (None, None) => "lag unknown".into(),
    }
}

fn database_cell(plan: &Plan, m: Option<&MemberStatus>) -> (String, String) {
    match m {
        None => ("-".into(), "-".into()),
        Some(MemberStatus::Primary { writable, epoch, sync_standbys, .. }) => (
            format!(
                "primary, {}{}",
                if *writable { "writable" } else { "read-only (fenced)" },
                epoch.map(|e| format!(", epoch {e}")).unwrap_or_default()
            ),
            replication_cell(plan, *sync_standbys),
        ),
        Some(MemberStatus::Standby { lag_bytes, lag_seconds, upstream, epoch, .. }) => (
            format!(
                "standby{}{}",
                upstream.as_ref().map(|u| format!(" of {u}")).unwrap_or_else(|| ", not streaming".into()),
                epoch.map(|e| format!(", epoch {e}")).unwrap_or_default()
            ),
            lag_cell(plan, *lag_bytes, *lag_seconds),
        ),
        Some(MemberStatus::Unreachable { reason }) => (format!("unreachable: {reason}"), "-".into()),
    }
}

pub fn render(plan: &Plan, o: &Observed) -> String {
    let mut out = format!(
        "plan {}: epoch {}, primary {}, {}\n",
        plan.name,
        o.epoch,
        match PrimarySource::of(o) {
            PrimarySource::Database => o.current_primary(plan).to_owned(),
            PrimarySource::Traffic =>
                format!("{} (where traffic points; no writable database seen)", o.current_primary(plan)),
            PrimarySource::Plan => format!("unknown (plan: {})", plan.planned_primary()),
        },
        match &o.active_run {
            Some(id) => format!("run {id} active ('drover runs show {id}')"),
            None => "no active run".into(),
        }
    );
    match &o.traffic {
        Ok(t) => out.push_str(&format!(
            "traffic: {} -> {} (region {}, epoch {})\n",
            plan.traffic.record(),
            t.addresses.join(", "),
            t.region.as_deref().unwrap_or("none"),
            t.epoch
        )),
        Err(e) => out.push_str(&format!("traffic: unknown: {e}\n")),
    }
    let mut table = Table::new(&[
        ("REGION", Align::Left),
        ("ROLE", Align::Left),
        ("HEALTH", Align::Left),
        ("DATABASE", Align::Left),
        ("REPLICATION", Align::Left),
        ("TRAFFIC", Align::Left),
        ("CHECKS", Align::Left),
    ]);
    for (name, region) in &plan.regions {
        let (db, lag) = database_cell(plan, o.members.get(name));
        let checks = o
            .checks
            .get(name)
            .map(|c| {
                c.iter()
                    .map(|(check, r)| if r.ok { format!("{check} ok") } else { format!("{check} FAIL ({})", r.detail) })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "-".into());
        let health = match region.role {
            Role::Witness => "-".into(),
            _ => {
                let (health, reasons) = health(plan, o, name);
                health_cell(health, &reasons)
            }
        };
        table.row(vec![
            name.clone(),
            role_cell(region.role, Current::of(plan, o, name)),
            health,
            db,
            lag,
            if traffic_region(o) == Some(name.as_str()) { "<-".into() } else { String::new() },
            checks,
        ]);
    }
    out.push_str(&table.render());
    for (name, by_region) in &o.compute {
        let cells: Vec<String> = by_region
            .iter()
            .map(|(r, c)| match c {
                Ok(units) if units.len() == 1 && units.contains_key(WHOLE) => {
                    format!("{r} {}/{} ready", units[WHOLE].ready, units[WHOLE].desired)
                }
                Ok(units) => format!(
                    "{r} {}/{} ready in {} workload{}",
                    units.values().map(|c| u64::from(c.ready)).sum::<u64>(),
                    units.values().map(|c| u64::from(c.desired)).sum::<u64>(),
                    units.len(),
                    if units.len() == 1 { "" } else { "s" }
                ),
                Err(e) => format!("{r} unknown ({e})"),
            })
            .collect();
        out.push_str(&format!("compute {name}: {}\n", cells.join(", ")));
    }
    for hint in hints(plan, o) {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

/// What to do next when a region does not protect the primary, or the primary is away
/// from home. The advice depends on the database: drover rejoins PostgreSQL itself, while
/// RDS and Aurora are re-protected outside drover (docs/aws.md) and `drover reprotect`
/// refuses them, so pointing there would send people in a circle.
fn hints(plan: &Plan, o: &Observed) -> Vec<String> {
    let primary = o.current_primary(plan);
    let path = plan.source.display();
    let mut hints = Vec::new();
    for region in plan.service_regions().filter(|r| *r != primary) {
        let why = match o.members.get(region) {
            Some(MemberStatus::Primary { .. }) => "is an old primary that does not follow",
            Some(MemberStatus::Standby { upstream: None, .. }) => "is a standby that streams from no primary, not",
            _ => continue,
        };
        let todo = match &plan.database {
            DatabaseSpec::Postgres(_) => {
                format!("make it a standby: drover reprotect --plan {path} --region {region}")
            }
            DatabaseSpec::Rds(rds) => {
                let instance = |r: &str| rds.members.get(r).map_or("?", |m| m.instance.as_str());
                format!(
                    "RDS cannot make it a replica again, so 'drover reprotect' does not apply: create a cross-region \
                     read replica of {} (the primary's instance, in {primary}) by hand (aws rds \
                     create-db-instance-read-replica), retire the old instance {}, and name the replica in \
                     database.members.{region} (docs/aws.md)",
                    instance(primary),
                    instance(region)
                )
            }
            DatabaseSpec::AuroraGlobal(_) => "Aurora makes an old primary cluster a secondary of the global \
                 database itself once its region is back; if it stays apart, remove it from the global cluster and \
                 add it again (aws rds remove-from-global-cluster, then create-db-cluster with \
                 --global-cluster-identifier; docs/aws.md)"
                .into(),
        };
        hints.push(format!("{region}'s database {why} {primary}; {todo}"));
    }
    let home = plan.planned_primary();
    if home != primary && matches!(o.members.get(home), Some(MemberStatus::Standby { upstream: Some(_), .. })) {
        hints.push(match &plan.database {
            // RDS cannot confirm a replica holds every write, so drover refuses planned moves for it.
            DatabaseSpec::Rds(_) => format!(
                "the primary is away from home ({home} replicates from {primary}); RDS has no planned move back: \
                 drover failover --plan {path} --to {home} fences {primary} first and accepts the replica's lag"
            ),
            _ => format!(
                "the primary is away from home ({home} streams from {primary}); move it back with zero data loss: \
                 drover failback --plan {path}"
            ),
        });
    }
    hints
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use drover_core::engine::Observed;
    use drover_core::plan::{AuroraGlobalSpec, AuroraMember, DatabaseKind, DatabaseSpec, Plan, RdsMember, RdsSpec};
    use drover_core::testing::scenarios::two_region_plan;
    use drover_core::world::{Capacity, MemberStatus, ProbeResult, TrafficState, WHOLE};

    use super::{json, render};

    /// Compares with crates/drover/tests/golden/NAME.out, as the CLI tests do (their helper
    /// lives with the integration tests); `UPDATE_GOLDEN=1` rewrites it.
    fn assert_golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.out"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}; run with UPDATE_GOLDEN=1", path.display()));
        assert!(
            expected == actual,
            "output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }

    fn probe(ok: bool, detail: &str) -> ProbeResult {
        ProbeResult { ok, latency: Duration::from_millis(3), detail: detail.into() }
    }

    fn primary(epoch: Option<u64>, writable: bool, wal_lsn: Option<u64>) -> MemberStatus {
        MemberStatus::Primary { writable, epoch, wal_lsn, sync_standbys: None }
    }

    fn standby(upstream: &str, epoch: Option<u64>, lag_bytes: Option<u64>, lag_seconds: Option<f64>) -> MemberStatus {
        MemberStatus::Standby {
            lag_bytes,
            lag_seconds,
            replay_lsn: lag_bytes.map(|_| 0x3000_0000),
            epoch,
            upstream: Some(upstream.into()),
        }
    }

    fn unreachable(reason: &str) -> MemberStatus {
        MemberStatus::Unreachable { reason: reason.into() }
    }

    /// Traffic on `region` at `epoch`, the `api` check passing everywhere.
    fn world(plan: &Plan, members: &[(&str, MemberStatus)], traffic_on: &str, epoch: u64) -> Observed {
        let address = |r: &str| if r == "east" { "10.0.0.1" } else { "10.0.0.2" };
        Observed {
            members: members.iter().map(|(r, m)| (r.to_string(), m.clone())).collect(),
            traffic: Ok(TrafficState {
                region: Some(traffic_on.into()),
                addresses: vec![address(traffic_on).into()],
                epoch,
            }),
            checks: plan
                .service_regions()
                .map(|r| (r.to_string(), vec![("api".into(), probe(true, "200 OK"))]))
                .collect(),
            compute: BTreeMap::new(),
            epoch,
            active_run: None,
            next_run: drover_core::RunId("r-next".into()),
        }
    }

    fn section(title: &str, plan: &Plan, o: &Observed) -> String {
        format!("$ {title}\n{}\n", render(plan, o))
    }

    /// After a failover the table shows who is primary now, with the plan's role beside it,
    /// and the header, ROLE and hints agree; then the way back (reprotect, failback).
    #[test]
    fn status_after_a_failover_shows_current_roles_beside_the_plan() {
        let plan = two_region_plan();
        let lost = world(
            &plan,
            &[("east", unreachable("connection refused")), ("west", primary(Some(1), true, Some(0x3000_0000)))],
            "west",
            1,
        );
        let mut lost_checks = lost.clone();
        lost_checks.checks.insert("east".into(), vec![("api".into(), probe(false, "connection refused"))]);
        let returned = world(
            &plan,
            &[("east", primary(None, false, Some(0x2000_0000))), ("west", primary(Some(1), true, Some(0x3000_0000)))],
            "west",
            1,
        );
        let reprotected = world(
            &plan,
            &[("east", standby("10.0.0.2", Some(1), Some(0), Some(0.0))), ("west", primary(Some(1), true, Some(1)))],
            "west",
            1,
        );
        let text = [
            section("east lost, west promoted (epoch 1), traffic on west", &plan, &lost_checks),
            section("east back, fenced, not following", &plan, &returned),
            section("east reprotected: a standby of west", &plan, &reprotected),
        ]
        .concat();
        assert_golden("status-after-failover", &text);

        let v = json(&plan, &returned);
        assert_eq!(v["current_primary"], "west");
        assert_eq!(
            (&v["regions"][0]["role"], &v["regions"][0]["plan_role"]),
            (&"fenced_old_primary".into(), &"primary".into())
        );
        assert_eq!((&v["regions"][1]["role"], &v["regions"][1]["plan_role"]), (&"primary".into(), &"standby".into()));
    }

    /// A database that cannot be reached, or was not read, makes its region unhealthy even
    /// with every check passing; unreadable compute makes it unknown. The reason shows.
    #[test]
    fn health_follows_the_database_and_compute_not_only_the_checks() {
        let plan = two_region_plan();
        let mut o = world(&plan, &[("east", primary(Some(1), true, Some(1)))], "east", 1);
        o.members.insert("west".into(), unreachable("timeout after 2s"));
        let text = render(&plan, &o);
        let west = text.lines().find(|l| l.starts_with("west")).unwrap();
        assert!(west.contains("unhealthy: database unreachable"), "{text}");
        assert!(!west.contains("healthy "), "{text}");
        let v = json(&plan, &o);
        assert_eq!(v["regions"][1]["health"], "unhealthy");
        assert_eq!(v["regions"][1]["health_reasons"], serde_json::json!(["database unreachable: timeout after 2s"]));
        assert_eq!(v["regions"][0]["health"], "healthy");
        assert_eq!(v["regions"][0]["health_reasons"], serde_json::json!([]));

        o.members.remove("west");
        let v = json(&plan, &o);
        assert_eq!(v["regions"][1]["health"], "unhealthy");
        assert_eq!(v["regions"][1]["health_reasons"], serde_json::json!(["no database member was read"]));

        let capacity = Capacity { desired: 2, min: 1, max: 4, ready: 2 };
        o.compute.insert(
            "web".into(),
            [
                ("east".to_string(), Ok([(WHOLE.to_string(), capacity)].into())),
                ("west".to_string(), Err("AccessDenied".to_string())),
            ]
            .into(),
        );
        o.members.insert("west".into(), standby("10.0.0.1", Some(1), Some(0), Some(0.0)));
        let text = render(&plan, &o);
        let west = text.lines().find(|l| l.starts_with("west")).unwrap();
        assert!(west.contains("unknown: compute web unreadable"), "{text}");
        assert!(text.contains("compute web: east 2/2 ready, west unknown (AccessDenied)"), "{text}");
    }

    fn rds_plan() -> Plan {
        let mut plan = two_region_plan();
        let member = |i: &str| RdsMember { instance: i.into() };
        plan.database = DatabaseSpec::Rds(RdsSpec {
            members: [("east".into(), member("shop-db")), ("west".into(), member("shop-db-west"))].into(),
            promote_timeout: Duration::from_secs(1800),
        });
        plan.runbooks = DatabaseKind::Rds.default_runbooks(false);
        plan
    }

    /// RDS exposes no WAL positions: no byte lag is shown (not even an unknown one), JSON
    /// has null rather than 0, and the hints say what docs/aws.md says to do, not reprotect.
    #[test]
    fn rds_status_shows_time_lag_only_and_hints_what_rds_needs() {
        let plan = rds_plan();
        let returned =
            world(&plan, &[("east", primary(None, false, None)), ("west", primary(Some(1), true, None))], "west", 1);
        let replaced = world(
            &plan,
            &[("east", standby("shop-db-west", Some(1), None, Some(2.0))), ("west", primary(Some(1), true, None))],
            "west",
            1,
        );
        let mut no_datapoint = replaced.clone();
        no_datapoint.members.insert("east".into(), standby("shop-db-west", Some(1), None, None));
        let text = [
            section("rds: east back after a failover, fenced", &plan, &returned),
            section("rds: east replaced by a read replica of west", &plan, &replaced),
            section("rds: the replica's lag has no CloudWatch datapoint", &plan, &no_datapoint),
        ]
        .concat();
        // 'drover reprotect' refuses RDS: a hint to run it would send people in a circle.
        assert!(!text.contains("drover reprotect --plan"), "{text}");
        assert!(!text.contains("drover failback"), "{text}");
        assert!(!text.contains(" B"), "{text}");
        assert_golden("status-rds", &text);

        let v = json(&plan, &no_datapoint);
        let east = &v["regions"][0]["database"];
        assert_eq!(
            (&east["lag_bytes"], &east["lag_seconds"], &east["replay_lsn"]),
            (&serde_json::Value::Null, &serde_json::Value::Null, &serde_json::Value::Null),
            "{v:#}"
        );
        assert_eq!(v["regions"][1]["database"]["wal_lsn"], serde_json::Value::Null, "{v:#}");
    }

    /// Aurora re-protects itself: the hint says so (and what to do if it does not), never
    /// 'drover reprotect'; its planned failback is allowed, so that hint stays.
    #[test]
    fn aurora_hints_point_at_aurora_not_reprotect() {
        let mut plan = rds_plan();
        let member = |c: &str| AuroraMember { cluster: c.into() };
        plan.database = DatabaseSpec::AuroraGlobal(AuroraGlobalSpec {
            global_cluster: "shop".into(),
            members: [("east".into(), member("shop-east")), ("west".into(), member("shop-west"))].into(),
            timeout: Duration::from_secs(1800),
        });
        let apart =
            world(&plan, &[("east", primary(None, true, None)), ("west", primary(Some(1), true, None))], "west", 1);
        let text = render(&plan, &apart);
        assert!(
            text.contains("hint: east's database is an old primary that does not follow west; Aurora makes"),
            "{text}"
        );
        assert!(!text.contains("drover reprotect --plan"), "{text}");
        let rejoined = world(
            &plan,
            &[("east", standby("shop-west", Some(1), None, Some(0.5))), ("west", primary(Some(1), true, None))],
            "west",
            1,
        );
        let text = render(&plan, &rejoined);
        assert!(text.contains("lag 0.5 s "), "{text}");
        assert!(text.contains("drover failback --plan plan.yaml"), "{text}");
    }
}
