//! YAML → Plan. Reads the whole file, collects every problem in file order,
//! and returns the typed plan only when there are none.

use std::collections::BTreeMap;
use std::path::Path;

use super::kinds::DatabaseKind;
use super::model::{Check, Objectives, Plan, Route53RecordType, TrafficSpec};
use super::raw::{self, Node};
use super::reader::{Mapping, PlanError, PlanErrors, Reader, declared_kind};
use super::{
    aws, backup, checks, compute, custom_steps, database, drill, journal, notify, policy, regions, route53, traffic,
    vantages,
};
use crate::secret::SecretSource;

const TOP_LEVEL: [&str; 16] = [
    "name",
    "objectives",
    "regions",
    "database",
    "traffic",
    "compute",
    "checks",
    "policy",
    "steps",
    "runbooks",
    "notify",
    "backup",
    "aws",
    "vantages",
    "journal",
    "drill",
];

/// Reads and validates a plan. `path` is only used to name the file in errors
/// and as `Plan::source`; secret references are checked through `secrets`.
pub fn parse_plan(path: &Path, text: &str, secrets: &dyn SecretSource) -> Result<Plan, PlanErrors> {
    let mut r = Reader::new(path.display().to_string(), secrets);
    let root = match raw::load(text) {
        Ok(root) => root,
        Err(e) => {
            r.error((e.line, e.column), "plan", e.message);
            return Err(PlanErrors(r.errors));
        }
    };
    let plan = read_plan(&mut r, &root, path);
    let mut errors = r.errors;
    // Sections are read in dependency order (regions before members); report in file order.
    errors.sort_by_key(|e| (e.line, e.column));
    match plan {
        Some(plan) if errors.is_empty() => Ok(plan),
        None if errors.is_empty() => {
            // Every reader records why it gave up; reaching this is a drover bug.
            debug_assert!(false, "plan refused without an error");
            let file = path.display().to_string();
            let message = "drover could not read this plan but found no reason; please report it".into();
            Err(PlanErrors(vec![PlanError { file, line: 1, column: 1, field: "plan".into(), message }]))
        }
        _ => Err(PlanErrors(errors)),
    }
}

fn read_plan(r: &mut Reader<'_>, root: &Node, path: &Path) -> Option<Plan> {
    if matches!(root.value, raw::Value::Null) {
        r.error(root.pos(), "plan", "the file is empty; start from the example in docs/plan.md");
        return None;
    }
    let top =
        r.mapping(root, "", (1, 1), &TOP_LEVEL, &[], "a mapping with name, regions, database, traffic, checks")?;

    let name = r.require(&top, "name", "add e.g. name: shop").and_then(|n| plan_name(r, n));
    let objectives = r
        .require(&top, "objectives", "add e.g. objectives: { rto: 30s, rpo: 0s }")
        .and_then(|n| read_objectives(r, &top, n));
    let regions = r
        .require(&top, "regions", "add e.g. regions: { east: { role: primary }, west: { role: standby } }")
        .and_then(|n| regions::read(r, &top, n));
    let database = r
        .require(&top, "database", "add a database section (kind, replication, members)")
        .and_then(|n| database::read(r, &top, n, regions.as_ref()));
    let traffic = r
        .require(&top, "traffic", "add a traffic section: kind: rfc2136 (server, zone, record, ttl, tsig, targets) or kind: route53 (hosted_zone_id, record, type, ttl, routing, targets) or kind: global-accelerator (accelerator_arn, endpoint_groups)")
        .and_then(|n| traffic::read(r, &top, n, regions.as_ref()));
    let checks = r
        .require(
            &top,
            "checks",
            "add at least one check, e.g. checks: { api: { http: \"http://{target}:8080/healthz\" } }",
        )
        .and_then(|n| checks::read(r, &top, n, regions.as_ref()));
    let no_addresses = match &traffic {
        Some(TrafficSpec::Route53(t)) if t.record_type == Route53RecordType::Cname => Some(
            "traffic.type CNAME targets are names; probe each region with route53_health_check: { <region>: <id> }, \
             or a fixed URL with per_region: false",
        ),
        Some(traffic) => traffic.kind().no_region_addresses(),
        None => None,
    };
    if let (Some(why), Some(checks)) = (no_addresses, &checks) {
        route53::targets_are_not_addresses(r, &top, checks, why);
    }
    let check_names: Option<Vec<&str>> = checks.as_ref().map(|c| c.keys().map(String::as_str).collect());
    // An unreadable or unknown kind (the database section reports it) is read as postgres,
    // the kind that refuses nothing here, so it brings no errors of its own.
    let database_kind =
        top.get("database").and_then(declared_kind).and_then(DatabaseKind::from_name).unwrap_or(DatabaseKind::Postgres);
    if let (false, Some(checks)) = (database_kind.has_member_dsns(), &checks) {
        member_checks_need_member_dsns(r, &top, checks, database_kind);
    }
    let policy = policy::read_policy(r, &top, check_names.as_deref(), database_kind);
    let compute = compute::read(r, &top, regions.as_ref());
    let with_compute = compute.as_ref().is_some_and(|c| !c.is_empty());
    let service: Vec<String> = regions.iter().flat_map(|r| r.service().map(|(n, _)| n.to_owned())).collect();
    let steps = custom_steps::read(r, &top, &service);
    // Names written in `steps` count even when a step there is wrong: that error is its own.
    let custom: Vec<&str> = custom_steps::names(&top);
    let runbooks = policy::read_runbooks(r, &top, database_kind, with_compute, &custom);
    if let Some(steps) = &steps {
        custom_steps::refuse_lost_region_steps(r, &top, steps);
    }
    let notify = notify::read(r, &top);
    let backup = backup::read(r, &top, regions.as_ref(), compute.as_ref());
    let aws = aws::read(r, &top);
    let vantages = vantages::read(r, &top);
    let journal = journal::read(r, &top);
    let drill = drill::read(r, &top, traffic.as_ref(), regions.as_ref());

    let (policy, detect_with) = policy?;
    let mut checks = checks?;
    if let Some(detect_with) = detect_with {
        for (name, check) in &mut checks {
            check.critical = detect_with.contains(name);
        }
    }
    Some(Plan {
        name: name?,
        source: path.to_path_buf(),
        objectives: objectives?,
        regions: regions?.into_model()?,
        database: database?,
        traffic: traffic?,
        compute: compute?,
        checks,
        policy,
        runbooks: runbooks?,
        steps: steps?,
        notify: notify?,
        backup: backup?,
        aws: aws?,
        vantages: vantages?,
        journal: journal?,
        drill: drill?,
    })
}

/// A `postgres: member` check connects with the member's DSN, which only `kind: postgres` has.
fn member_checks_need_member_dsns(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    checks: &BTreeMap<String, Check>,
    kind: DatabaseKind,
) {
    let Some(written) = top.get("checks") else { return };
    let raw::Value::Map(entries) = &written.value else { return };
    for (name, check) in checks {
        if !check.probe.kind().connects_to_member() {
            continue;
        }
        let field = check.probe.kind().as_str();
        let at =
            entries.iter().find(|(k, _)| k.value == raw::Value::Str(name.clone())).map_or(top.at, |(_, v)| {
                match &v.value {
                    raw::Value::Map(fields) => fields
                        .iter()
                        .find(|(k, _)| k.value == raw::Value::Str(field.into()))
                        .map_or(v.pos(), |(_, value)| value.pos()),
                    _ => v.pos(),
                }
            });
        r.error(
            at,
            &format!("checks.{name}.{field}"),
            format!(
                "postgres checks connect with database.members.<region>.dsn_env, which database kind {kind} does not \
                 have; probe the database endpoint with tcp: <endpoint>:5432 instead"
            ),
        );
    }
}

fn plan_name(r: &mut Reader<'_>, node: &Node) -> Option<String> {
    let name = r.text(node, "name", "a name like shop")?;
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        r.error(
            node.pos(),
            "name",
            format!("'{name}' is not a valid name; use lowercase letters, digits and '-' (e.g. shop)"),
        );
        return None;
    }
    Some(name.to_owned())
}

fn read_objectives(r: &mut Reader<'_>, top: &Mapping<'_>, node: &Node) -> Option<Objectives> {
    let at = top.key("objectives").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "objectives", at, &["rto", "rpo"], &[], "a mapping like { rto: 30s, rpo: 0s }")?;
    let rto = r
        .require(&m, "rto", "add the longest outage you accept, e.g. rto: 30s")
        .and_then(|n| r.duration(n, "objectives.rto"));
    let rpo = r
        .require(&m, "rpo", "add the most recent writes you accept to lose, e.g. rpo: 0s")
        .and_then(|n| r.duration(n, "objectives.rpo"));
    Some(Objectives { rto: rto?, rpo: rpo? })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::test_support::Recording;
    use crate::plan::{Check, MemberHost, Policy, Probe, Replication, Runbooks};
    use crate::secret::SecretRef;

    const PLAN: &str = "\
name: shop
objectives: { rto: 30s, rpo: 0s }
regions: { east: { role: primary }, west: { role: standby }, witness: { role: witness } }
database:
  kind: postgres
  replication: synchronous
  members:
    east: { dsn_env: EAST_DSN, host: { exec: [ssh, db-east], data_dir: /pg } }
    west: { dsn_file: /etc/drover/west.dsn }
traffic:
  kind: rfc2136
  server: 10.200.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: drover, algorithm: hmac-sha256, secret_file: /etc/drover/tsig }
  targets: { east: 10.200.0.11, west: 10.200.0.12 }
checks:
  api: { http: \"http://{target}:8080/healthz\" }
  db: { postgres: member }
";

    fn parse(text: &str) -> Result<Plan, PlanErrors> {
        parse_plan(Path::new("plan.yaml"), text, &Recording::default())
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text).unwrap_err().0.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.field)).collect()
    }

    #[test]
    fn defaults_fill_what_is_not_written() {
        let plan = parse(PLAN).unwrap();
        assert_eq!(plan.source, Path::new("plan.yaml"));
        let pg = plan.postgres().unwrap();
        assert_eq!(pg.replication, Replication::Synchronous);
        assert_eq!(pg.promote_timeout, Duration::from_secs(60));
        assert_eq!(
            pg.members["east"].host,
            Some(MemberHost {
                exec: vec!["ssh".into(), "db-east".into()],
                data_dir: "/pg".into(),
                bin_dir: "/usr/lib/postgresql/15/bin".into(),
            })
        );
        assert_eq!(pg.members["west"].host, None);
        assert_eq!(pg.members["west"].dsn, SecretRef::File("/etc/drover/west.dsn".into()));
        assert_eq!(
            plan.checks["api"],
            Check {
                name: "api".into(),
                probe: Probe::Http { url: "http://{target}:8080/healthz".into(), status: 200, body_contains: None },
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                failure_threshold: 3,
                success_threshold: 2,
                per_region: true,
                critical: true,
            }
        );
        assert_eq!(plan.checks["db"].probe, Probe::Postgres);
        assert_eq!(plan.policy, Policy::default());
        assert_eq!(plan.policy.max_lag_on_failover, 1 << 20);
        assert_eq!(plan.policy.cooldown, Duration::from_secs(600));
        assert_eq!(plan.runbooks, Runbooks::default());
    }

    #[test]
    fn detect_with_decides_which_checks_are_critical() {
        let plan = parse(&format!("{PLAN}policy: {{ detect_with: [db] }}\n")).unwrap();
        assert!(!plan.checks["api"].critical);
        assert!(plan.checks["db"].critical);
    }

    #[test]
    fn every_secret_reference_is_checked_and_nothing_else() {
        let secrets = Recording::default();
        parse_plan(Path::new("plan.yaml"), PLAN, &secrets).unwrap();
        let mut asked = secrets.0.into_inner().unwrap();
        asked.sort_by_key(|r| r.to_string());
        assert_eq!(
            asked,
            [
                SecretRef::Env("EAST_DSN".into()),
                SecretRef::File("/etc/drover/tsig".into()),
                SecretRef::File("/etc/drover/west.dsn".into()),
            ]
        );
    }

    #[test]
    fn errors_come_in_file_order_whatever_order_sections_are_read_in() {
        // policy is read after checks, but written first here.
        let text = format!("policy: {{ detect_with: [nope] }}\n{}", PLAN.replace("ttl: 5s", "ttl: 5"));
        assert_eq!(errors(&text), ["1:25 policy.detect_with[0]", "16:8 traffic.ttl"]);
    }

    #[test]
    fn anchors_and_merge_keys_share_settings() {
        let text = PLAN
            .replace("checks:\n", "x-fast: &fast { interval: 1s, timeout: 500ms }\ncheck_defaults: null\nchecks:\n");
        // Unknown top-level keys are still refused, even as anchor holders.
        assert_eq!(errors(&text), ["18:1 x-fast", "19:1 check_defaults"]);

        let text = PLAN.replace(
            "  db: { postgres: member }",
            "  db: &fast { postgres: member, interval: 1s, timeout: 500ms }\n  db2: { <<: *fast, failure_threshold: 5 }\n  \
             api2: { <<: *fast, postgres: other }",
        );
        // A merged field can be overridden, and the override is what is validated.
        let errs = parse(&text).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].field.as_str(), errs[0].line), ("checks.api2.postgres", 22));

        let plan = parse(&text.replace("postgres: other", "postgres: member, interval: 5s")).unwrap();
        assert_eq!(plan.checks["db2"].interval, Duration::from_secs(1));
        assert_eq!(plan.checks["db2"].failure_threshold, 5);
        assert_eq!(plan.checks["api2"].interval, Duration::from_secs(5));
    }

    #[test]
    fn a_region_with_a_bad_role_is_not_also_reported_undefined() {
        let text = PLAN.replace("west: { role: standby }", "west: { role: replica }");
        assert_eq!(errors(&text), ["3:51 regions.west.role"]);
    }

    #[test]
    fn syntax_errors_stop_everything_else() {
        let text = PLAN.replace("ttl: 5s", "ttl: [5s").replace("name: shop", "name: Shop");
        let errs = parse(&text).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "plan");
        assert!(errs[0].message.starts_with("not valid YAML: "), "{errs:?}");
    }

    #[test]
    fn display_is_one_line_per_error() {
        let err = parse(&PLAN.replace("rto: 30s", "rto: soon")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: plan.yaml:2:20: objectives.rto: 'soon' is not a duration; write e.g. 500ms, 5s, 10m\n"
        );
    }
}
