//! `drover status`: one look at every region.

use std::process::ExitCode;

use drover_core::engine::Observed;
use drover_core::plan::{Plan, Replication, Role};
use drover_core::world::{MemberStatus, TrafficState, WHOLE};

use crate::cli::Output;
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::{finish, print_json, runtime};
use crate::wiring::Context;

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
        Ok(())
    }))
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
            serde_json::json!({
                "region": name,
                "role": region.role.as_str(),
                "database": o.members.get(name),
                "traffic": traffic_region(o) == Some(name.as_str()),
                "health": o.region_health(plan, name).as_str(),
                "checks": checks,
            })
        })
        .collect();
    serde_json::json!({
        "plan": plan.name,
        "epoch": o.epoch,
        "active_run": o.active_run,
        "current_primary": o.current_primary(plan),
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
        Some(MemberStatus::Standby { lag_bytes, lag_seconds, upstream, .. }) => (
            format!(
                "standby{}",
                upstream.as_ref().map(|u| format!(" of {u}")).unwrap_or_else(|| ", not streaming".into())
            ),
            format!(
                "lag {} / {}",
                lag_bytes.map_or("? B".to_owned(), |b| format!("{b} B")),
                lag_seconds.map_or("? s".to_owned(), |s| format!("{s:.1} s"))
            ),
        ),
        Some(MemberStatus::Unreachable { reason }) => (format!("unreachable: {reason}"), "-".into()),
    }
}

pub fn render(plan: &Plan, o: &Observed) -> String {
    let mut out = format!(
        "plan {}: epoch {}, primary {}, {}\n",
        plan.name,
        o.epoch,
        o.current_primary(plan),
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
    out.push_str(&format!(
        "{:<9} {:<8} {:<9} {:<40} {:<30} {:<7} {}\n",
        "REGION", "ROLE", "HEALTH", "DATABASE", "REPLICATION", "TRAFFIC", "CHECKS"
    ));
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
        let health = if region.role == Role::Witness { "-" } else { o.region_health(plan, name).as_str() };
        out.push_str(&format!(
            "{:<9} {:<8} {:<9} {:<40} {:<30} {:<7} {}\n",
            name,
            region.role.as_str(),
            health,
            db,
            lag,
            if traffic_region(o) == Some(name.as_str()) { "<-" } else { "" },
            checks
        ));
    }
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

/// What to run next when a region does not protect the primary, or the primary is away from home.
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
        hints.push(format!(
            "{region}'s database {why} {primary}; make it a standby: drover reprotect --plan {path} --region {region}"
        ));
    }
    let home = plan.planned_primary();
    if home != primary && matches!(o.members.get(home), Some(MemberStatus::Standby { upstream: Some(_), .. })) {
        hints.push(format!(
            "the primary is away from home ({home} streams from {primary}); move it back with zero data loss: \
             drover failback --plan {path}"
        ));
    }
    hints
}
