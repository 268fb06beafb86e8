//! A few lines describing a valid plan, printed by `drover plan check`.

use std::fmt::Write;

use super::model::{Check, ClusterAccess, ComputeTarget, DatabaseSpec, NotifySpec, Plan, Route53Routing, TrafficSpec};
use super::steps::StepKind;
use crate::duration::format_duration;
use crate::event::EventKind;

/// One line per section, labels aligned, e.g. `  regions    east (primary), west (standby)`.
pub fn summary(plan: &Plan) -> String {
    let mut out = format!("plan {}: valid\n", plan.name);
    let mut line = |label: &str, text: String| {
        let _ = writeln!(out, "  {label:<10} {text}");
    };

    let regions: Vec<String> = plan.regions.iter().map(|(name, r)| format!("{name} ({})", r.role.as_str())).collect();
    line("regions", regions.join(", "));

    line("database", describe_database(&plan.database));

    line("traffic", describe_traffic(&plan.traffic));

    if let Some(backup) = &plan.backup {
        line("backup", describe_backup(backup));
    }

    for spec in plan.compute.values() {
        let targets: Vec<String> = spec
            .targets
            .iter()
            .map(|(region, t)| match t {
                ComputeTarget::EksNodegroup { cluster, nodegroup } => format!("{region} -> {cluster}/{nodegroup}"),
                ComputeTarget::AutoScalingGroup { name } => format!("{region} -> {name}"),
                ComputeTarget::Kubernetes(k) => {
                    let cluster = match &k.cluster {
                        ClusterAccess::InCluster => "in-cluster".to_owned(),
                        ClusterAccess::Kubeconfig { context: Some(c), .. } => c.clone(),
                        ClusterAccess::Kubeconfig { context: None, .. } => "current context".to_owned(),
                    };
                    let selector = k.selector.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
                    format!("{region} -> {cluster} {}{selector}", k.namespace)
                }
            })
            .collect();
        line(
            "compute",
            format!(
                "{} ({}, {}% of the primary's, ready within {}): {}",
                spec.name,
                spec.kind.as_str(),
                spec.capacity_percent,
                format_duration(spec.ready_timeout),
                targets.join(", ")
            ),
        );
    }

    // Only when written: the defaults are documented, and most plans leave them.
    if plan.aws != Default::default() {
        let t = plan.aws.timeouts;
        line(
            "aws",
            format!(
                "timeouts: connect {}, attempt {}, operation {}",
                format_duration(t.connect),
                format_duration(t.attempt),
                format_duration(t.operation)
            ),
        );
    }

    let checks: Vec<String> = plan.checks.values().map(describe_check).collect();
    line("checks", checks.join(", "));

    let p = &plan.policy;
    // Lag in bytes is known only where drover reads WAL positions (postgres).
    let mut lag = Vec::new();
    if plan.database.knows_wal_positions() {
        lag.push(format!("max lag {}", format_bytes(p.max_lag_on_failover)));
    }
    if let Some(time) = p.max_lag_time_on_failover {
        lag.push(format!("max lag time {}", format_duration(time)));
    }
    let mut policy = format!(
        "quorum {}, auto failover {}, {}, cooldown {}",
        p.quorum,
        if p.auto_failover { "on" } else { "off" },
        lag.join(", "),
        format_duration(p.cooldown),
    );
    if p.require_approval {
        policy.push_str(", approval required");
    }
    line("policy", policy);

    // Only when written: without it, the weaker default (any peer given, unsigned) applies.
    if plan.vantages != Default::default() {
        let v = &plan.vantages;
        let names = if v.names.is_empty() { "any name".to_owned() } else { v.names.join(", ") };
        let key = match (&v.key, &v.previous_key) {
            (Some(key), None) => format!("reports signed with the peer key ({key})"),
            (Some(key), Some(old)) => format!("reports signed with the peer key ({key}), also accepting {old}"),
            (None, _) => "reports not signed (no key)".to_owned(),
        };
        line("vantages", format!("{names}; {key}"));
    }

    // Only when written: without it, every run is kept.
    if let Some(keep) = plan.journal.keep {
        let rules: Vec<String> =
            [keep.last.map(|n| format!("the last {n} runs")), keep.days.map(|d| format!("{d} days"))]
                .into_iter()
                .flatten()
                .collect();
        line("journal", format!("keeps {}, whichever keeps more, and the last run of each kind", rules.join(" or ")));
    }

    // Only when written: without a canary, a drill on this plan has nothing to measure with.
    if let Some(canary) = &plan.drill.canary {
        line("drill", describe_canary(canary));
    }
    if !plan.drill.stop_when.is_empty() {
        let alarms: Vec<String> =
            plan.drill.stop_when.iter().map(|c| format!("alarm {} in {}", c.alarm, c.region)).collect();
        line("stop when", alarms.join(", "));
    }
    if !plan.drill.fis.is_empty() {
        let templates: Vec<String> = plan.drill.fis.iter().map(|(region, id)| format!("{region}: {id}")).collect();
        line("fis", templates.join(", "));
    }

    line(
        "runbooks",
        format!("failover: {}; switchover: {}", steps(&plan.runbooks.failover), steps(&plan.runbooks.switchover)),
    );
    // Plans without webhooks print nothing here, as before notifications existed.
    if !plan.steps.is_empty() {
        let own: Vec<String> = plan.steps.iter().map(|(name, action)| action.describe(name)).collect();
        line("steps", own.join("; "));
    }
    if !plan.notify.webhooks.is_empty() {
        line("notify", describe_notify(&plan.notify));
    }
    line(
        "objectives",
        format!("rto {}, rpo {}", format_duration(plan.objectives.rto), format_duration(plan.objectives.rpo)),
    );
    out
}

fn describe_canary(canary: &super::model::CanarySpec) -> String {
    use super::model::{CanaryResolve, CanaryTarget};
    let target = match &canary.target {
        CanaryTarget::Http(h) => {
            let token = h.token.as_ref().map(|t| format!(", token from {t}")).unwrap_or_default();
            let ca = h.ca_file.as_ref().map(|c| format!(", CA {}", c.display())).unwrap_or_default();
            format!("http canary {}{token}{ca}", h.url)
        }
        CanaryTarget::Postgres(p) => format!("postgres canary into table {} (DSN from {})", p.table, p.dsn),
    };
    let resolve = match canary.resolve {
        CanaryResolve::Dns { server: Some(server) } => format!("names resolved with DNS at {server}"),
        CanaryResolve::Dns { server: None } => "names resolved with the system's DNS resolver".to_owned(),
        CanaryResolve::Traffic => "the traffic record followed through its provider, not DNS".to_owned(),
    };
    format!(
        "{target}, a write every {}, timeout {}, {resolve}",
        format_duration(canary.interval),
        format_duration(canary.timeout)
    )
}

fn describe_database(database: &DatabaseSpec) -> String {
    let members = |m: Vec<String>| m.join(", ");
    match database {
        DatabaseSpec::Postgres(pg) => {
            let names: Vec<&str> = pg.members.keys().map(String::as_str).collect();
            let with_host: Vec<&str> =
                pg.members.iter().filter(|(_, m)| m.host.is_some()).map(|(n, _)| n.as_str()).collect();
            let host_access = match with_host.len() {
                0 => "no host access (rejoin is refused)".to_owned(),
                n if n == names.len() => "host access on all".to_owned(),
                _ => format!("host access on {}", with_host.join(", ")),
            };
            format!(
                "postgres, {} replication, members {}, connect timeout {}, promote timeout {}, {host_access}",
                pg.replication.as_str(),
                names.join(", "),
                format_duration(pg.connect_timeout),
                format_duration(pg.promote_timeout),
            )
        }
        DatabaseSpec::Rds(rds) => format!(
            "rds, instances {}, promote timeout {}",
            members(rds.members.iter().map(|(r, m)| format!("{r} -> {}", m.instance)).collect()),
            format_duration(rds.promote_timeout),
        ),
        DatabaseSpec::AuroraGlobal(aurora) => format!(
            "aurora-global {}, clusters {}, timeout {}",
            aurora.global_cluster,
            members(aurora.members.iter().map(|(r, m)| format!("{r} -> {}", m.cluster)).collect()),
            format_duration(aurora.timeout),
        ),
    }
}

fn describe_traffic(traffic: &TrafficSpec) -> String {
    match traffic {
        TrafficSpec::Rfc2136(dns) => {
            let targets: Vec<String> = dns.targets.iter().map(|(region, ip)| format!("{region} -> {ip}")).collect();
            format!(
                "rfc2136 {} in {} via {}, ttl {}, key {} ({}); {}",
                dns.record,
                dns.zone,
                dns.server,
                format_duration(dns.ttl),
                dns.tsig.name,
                dns.tsig.algorithm.as_str(),
                targets.join(", "),
            )
        }
        TrafficSpec::Route53(r53) => {
            let targets: Vec<String> = r53
                .targets
                .iter()
                .map(|(region, t)| match &t.health_check_id {
                    Some(hc) => format!("{region} -> {} (health check {hc})", t.value),
                    None => format!("{region} -> {}", t.value),
                })
                .collect();
            let routing = match &r53.routing {
                Route53Routing::Failover => "failover".to_owned(),
                Route53Routing::Weighted { stages, stage_pause } if stages.len() > 1 => {
                    let stages: Vec<String> = stages.iter().map(u8::to_string).collect();
                    format!("weighted in stages {}% with {} pauses", stages.join("/"), format_duration(*stage_pause))
                }
                Route53Routing::Weighted { .. } => "weighted".to_owned(),
            };
            format!(
                "route53 {} {} in hosted zone {}, ttl {}, {routing}; {}",
                r53.record,
                r53.record_type.as_str(),
                r53.hosted_zone_id,
                format_duration(r53.ttl),
                targets.join(", "),
            )
        }
        TrafficSpec::GlobalAccelerator(ga) => {
            let groups: Vec<String> = ga
                .endpoint_groups
                .iter()
                .map(|(region, g)| {
                    let weights: Vec<String> = g.endpoints.iter().map(|(id, w)| format!("{id} weight {w}")).collect();
                    match weights.is_empty() {
                        true => format!("{region} -> {}", g.arn),
                        false => format!("{region} -> {} ({})", g.arn, weights.join(", ")),
                    }
                })
                .collect();
            let stages = match ga.stages.len() {
                1 => "dials switched at once".to_owned(),
                _ => {
                    let stages: Vec<String> = ga.stages.iter().map(u8::to_string).collect();
                    format!("dials in stages {}% with {} pauses", stages.join("/"), format_duration(ga.stage_pause))
                }
            };
            format!("global-accelerator {}, {stages}; {}", ga.accelerator_arn, groups.join(", "))
        }
    }
}

fn describe_check(check: &Check) -> String {
    let kind = check.probe.kind();
    let mut text = format!(
        "{} ({kind}, every {}, timeout {}, {} down / {} up",
        check.name,
        format_duration(check.interval),
        format_duration(check.timeout),
        check.failure_threshold,
        check.success_threshold,
    );
    if !check.per_region {
        text.push_str(", not per region");
    }
    if !check.critical {
        text.push_str(", not used for detection");
    }
    text.push(')');
    text
}

/// `2 webhooks (audit json, pager pagerduty [run_paused, failover_refused]); events: all; runbook https://…`
fn describe_notify(notify: &NotifySpec) -> String {
    let count = notify.webhooks.len();
    let hooks: Vec<String> = notify
        .webhooks
        .values()
        .map(|hook| {
            let own = if hook.on == notify.on { String::new() } else { format!(" [{}]", events(&hook.on)) };
            format!("{} {}{own}", hook.name, hook.kind.as_str())
        })
        .collect();
    let mut text = format!(
        "{count} webhook{} ({}); events: {}",
        if count == 1 { "" } else { "s" },
        hooks.join(", "),
        events(&notify.on)
    );
    if let Some(url) = &notify.runbook_url {
        text.push_str(&format!("; runbook {url}"));
    }
    text
}

fn events(events: &[EventKind]) -> String {
    if EventKind::ALL.iter().all(|e| events.contains(e)) {
        return "all".into();
    }
    events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
}

fn steps(steps: &[StepKind]) -> String {
    steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Renders a size the way plans write them: `0`, `512KiB`, `1MiB`, `1500B`.
fn format_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    if bytes == 0 {
        return "0".into();
    }
    match UNITS.iter().find(|(size, _)| bytes.is_multiple_of(*size)) {
        Some((size, unit)) => format!("{}{unit}", bytes / size),
        None => format!("{bytes}B"),
    }
}

fn describe_backup(backup: &super::model::BackupSpec) -> String {
    use super::model::BackupStoreSpec;
    let stores: Vec<String> = backup
        .stores
        .iter()
        .map(|(region, store)| match store {
            BackupStoreSpec::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("{region} -> s3://{bucket}"),
            BackupStoreSpec::S3 { bucket, prefix, .. } => format!("{region} -> s3://{bucket}/{prefix}"),
            BackupStoreSpec::Dir(dir) => format!("{region} -> {}", dir.display()),
        })
        .collect();
    let secrets = if backup.secrets { "secrets encrypted" } else { "no secrets" };
    let schedule = backup.schedule.map_or("on demand".to_owned(), |every| format!("every {}", format_duration(every)));
    format!("{}; {secrets}; keep last {}, daily {}; {schedule}", stores.join(", "), backup.keep_last, backup.keep_daily)
}

#[cfg(test)]
mod tests {
    use super::format_bytes;

    #[test]
    fn sizes_read_back_as_written() {
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(1 << 20), "1MiB");
        assert_eq!(format_bytes(512 << 10), "512KiB");
        assert_eq!(format_bytes(3 << 30), "3GiB");
        assert_eq!(format_bytes(1500), "1500B");
    }
}
