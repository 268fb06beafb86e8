//! YAML → Plan. Reads the whole file, collects every problem in file order,
//! and returns the typed plan only when there are none.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::model::{Check, Objectives, Plan, Probe, Region, Role, Route53RecordType, TrafficSpec};
use super::raw::{self, Node};
use super::reader::{Entry, Mapping, Pos, Reader, closest, join, list_words};
use super::{aws, aws_database, backup, checks, compute, database, notify, policy, route53, traffic};
use crate::secret::SecretSource;

/// One problem in a plan file, located precisely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `checks.api.interval`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.field, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

const TOP_LEVEL: [&str; 12] = [
    "name",
    "objectives",
    "regions",
    "database",
    "traffic",
    "compute",
    "checks",
    "policy",
    "runbooks",
    "notify",
    "backup",
    "aws",
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
        .and_then(|n| read_regions(r, &top, n));
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
        Some(TrafficSpec::GlobalAccelerator(_)) => Some(
            "a global accelerator's static addresses serve every region, so no address is the region's own; \
             probe each region with cloudwatch_alarm: { <region>: <alarm name> }, or a fixed URL with per_region: false",
        ),
        _ => None,
    };
    if let (Some(why), Some(checks)) = (no_addresses, &checks) {
        route53::targets_are_not_addresses(r, &top, checks, why);
    }
    let check_names: Option<Vec<&str>> = checks.as_ref().map(|c| c.keys().map(String::as_str).collect());
    let database_kind = top.get("database").and_then(aws_database::declared_kind);
    if let (Some(kind @ ("rds" | "aurora-global")), Some(checks)) = (database_kind, &checks) {
        postgres_checks_need_postgres(r, &top, checks, kind);
    }
    let policy = policy::read_policy(r, &top, check_names.as_deref(), database_kind);
    let compute = compute::read(r, &top, regions.as_ref());
    let with_compute = compute.as_ref().is_some_and(|c| !c.is_empty());
    let runbooks = policy::read_runbooks(r, &top, database_kind, with_compute);
    let notify = notify::read(r, &top);
    let backup = backup::read(r, &top, regions.as_ref(), compute.as_ref());
    let aws = aws::read(r, &top);

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
        notify: notify?,
        backup: backup?,
        aws: aws?,
    })
}

/// A `postgres: member` check connects with the member's DSN, which only `kind: postgres` has.
fn postgres_checks_need_postgres(r: &mut Reader<'_>, top: &Mapping<'_>, checks: &BTreeMap<String, Check>, kind: &str) {
    let Some(written) = top.get("checks") else { return };
    let raw::Value::Map(entries) = &written.value else { return };
    for (name, check) in checks {
        if check.probe != Probe::Postgres {
            continue;
        }
        let at =
            entries.iter().find(|(k, _)| k.value == raw::Value::Str(name.clone())).map_or(top.at, |(_, v)| {
                match &v.value {
                    raw::Value::Map(fields) => fields
                        .iter()
                        .find(|(k, _)| k.value == raw::Value::Str("postgres".into()))
                        .map_or(v.pos(), |(_, value)| value.pos()),
                    _ => v.pos(),
                }
            });
        r.error(
            at,
            &format!("checks.{name}.postgres"),
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

/// The regions as declared, kept even when a role is unreadable, so references
/// to them are not reported as undefined on top of the real problem.
pub(super) struct Regions {
    /// In file order; `None` when the role was missing or invalid.
    pub declared: Vec<(String, Option<Role>)>,
    /// `aws_region` where given.
    aws: BTreeMap<String, String>,
    complete: bool,
}

impl Regions {
    pub fn role(&self, name: &str) -> Option<Option<Role>> {
        self.declared.iter().find(|(n, _)| n == name).map(|(_, role)| *role)
    }

    /// "east, west and witness", for "regions are ..." hints.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.declared.iter().map(|(n, _)| n.as_str()).collect();
        list_words(&names)
    }

    /// Primary and standby regions, which each need a member and a target.
    pub fn service(&self) -> impl Iterator<Item = (&str, Role)> {
        self.declared.iter().filter_map(|(n, role)| match role {
            Some(role @ (Role::Primary | Role::Standby)) => Some((n.as_str(), *role)),
            _ => None,
        })
    }

    fn into_model(self) -> Option<BTreeMap<String, Region>> {
        if !self.complete {
            return None;
        }
        let mut aws = self.aws;
        self.declared
            .into_iter()
            .map(|(name, role)| role.map(|role| (name.clone(), Region { role, aws_region: aws.remove(&name) })))
            .collect()
    }
}

const ROLES: [(&str, Role); 3] = [("primary", Role::Primary), ("standby", Role::Standby), ("witness", Role::Witness)];

fn read_regions(r: &mut Reader<'_>, top: &Mapping<'_>, node: &Node) -> Option<Regions> {
    let at = top.key("regions").map_or(node.pos(), Node::pos);
    let entries =
        r.entries(node, "regions", "a mapping of region name to { role: primary|standby|witness }", "region")?;
    let mut regions = Regions { declared: Vec::new(), aws: BTreeMap::new(), complete: true };
    let mut primary: Option<String> = None;
    for entry in entries {
        check_identifier(r, &entry, "region");
        let (role, aws_region) = region_fields(r, &entry.path, entry.key, entry.value);
        if let Some(aws_region) = aws_region {
            regions.aws.insert(entry.name.clone(), aws_region);
        }
        if role == Some(Role::Primary) {
            if let Some(first) = &primary {
                let role_at = match &entry.value.value {
                    raw::Value::Map(items) => items.iter().find(|(k, _)| k.value == raw::Value::Str("role".into())),
                    _ => None,
                }
                .map_or(entry.key.pos(), |(_, v)| v.pos());
                r.error(
                    role_at,
                    &format!("{}.role", entry.path),
                    format!("{first} is already the primary; exactly one region is primary, make this one standby"),
                );
            } else {
                primary = Some(entry.name.clone());
            }
        }
        regions.complete &= role.is_some();
        regions.declared.push((entry.name, role));
    }
    let roles: Vec<Option<Role>> = regions.declared.iter().map(|(_, role)| *role).collect();
    if regions.declared.is_empty() {
        r.error(at, "regions", "no regions; declare one primary and at least one standby");
        return None;
    }
    // Only judge the set of roles when every role could be read.
    if regions.complete {
        if primary.is_none() {
            r.error(at, "regions", "no primary region; give exactly one region role: primary");
        }
        if !roles.contains(&Some(Role::Standby)) {
            r.error(at, "regions", "no standby region; give at least one region role: standby to fail over to");
        }
    }
    Some(regions)
}

/// A region's role, and the AWS region its AWS resources live in, if given.
fn region_fields(r: &mut Reader<'_>, path: &str, key: &Node, node: &Node) -> (Option<Role>, Option<String>) {
    let Some(m) = r.mapping(node, path, key.pos(), &["role", "aws_region"], &[], "a mapping like { role: standby }")
    else {
        return (None, None);
    };
    let role = r
        .require(&m, "role", "add role: primary, role: standby or role: witness")
        .and_then(|n| r.choice(n, &m.field("role"), "role", &ROLES));
    let aws_region = m.get("aws_region").and_then(|n| {
        let field = m.field("aws_region");
        let text = r.text(n, &field, "an AWS region code, e.g. us-east-2")?;
        let parts: Vec<&str> = text.split('-').collect();
        let plain = text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if parts.len() < 3 || !plain || parts.last().is_none_or(|p| p.parse::<u8>().is_err()) {
            r.error(n.pos(), &field, format!("'{text}' is not an AWS region code; write one like us-east-2"));
            return None;
        }
        Some(text)
    });
    (role, aws_region.map(str::to_owned))
}

/// Region and check names end up in namespaces, metrics and URLs: keep them plain.
pub(super) fn check_identifier(r: &mut Reader<'_>, entry: &Entry<'_>, what: &str) {
    let plain = entry.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !plain {
        r.error(
            entry.key.pos(),
            &entry.path,
            format!("'{}' is not a valid {what} name; use lowercase letters, digits, '-' and '_'", entry.name),
        );
    }
}

/// Entries of a mapping keyed by region (database members, traffic targets):
/// each key must be a declared primary or standby region, and each of those
/// must appear. Entries for unknown or witness regions are reported and dropped.
/// Each region's entry read with `read`, refusing two regions whose values share
/// what `key` picks (reported at `<entry>.<field>` with `clash(shared value, first region)`).
pub(super) fn distinct_per_region<T>(
    r: &mut Reader<'_>,
    entries: &[Entry<'_>],
    mut read: impl FnMut(&mut Reader<'_>, &Entry<'_>) -> Option<T>,
    key: impl Fn(&T) -> &str,
    field: &str,
    clash: impl Fn(&str, &str) -> String,
) -> Option<BTreeMap<String, T>> {
    let mut values = BTreeMap::new();
    let mut complete = true;
    for entry in entries {
        match read(r, entry) {
            Some(value) => {
                values.insert(entry.name.clone(), value);
            }
            None => complete = false,
        }
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (region, value) in &values {
        if let Some(first) = seen.insert(key(value), region) {
            let entry = entries.iter().find(|e| &e.name == region).expect("read from entries");
            r.error(entry.key.pos(), &format!("{}.{field}", entry.path), clash(key(value), first));
            complete = false;
        }
    }
    complete.then_some(values)
}

pub(super) fn region_entries<'n>(
    r: &mut Reader<'_>,
    node: &'n Node,
    path: &str,
    at: Pos,
    regions: Option<&Regions>,
    what: &str,
    example: &dyn Fn(&str) -> String,
) -> Option<Vec<Entry<'n>>> {
    let entries = r.entries(node, path, &format!("a mapping of region name to {what}"), "region")?;
    // Without readable regions there is nothing to check the keys against.
    let Some(regions) = regions else {
        return Some(entries);
    };
    let mut kept = Vec::new();
    for entry in entries {
        match regions.role(&entry.name) {
            None => {
                let names: Vec<&str> = regions.declared.iter().map(|(n, _)| n.as_str()).collect();
                let near = closest(&entry.name, &names).map(|n| format!("did you mean {n}? ")).unwrap_or_default();
                r.error(
                    entry.key.pos(),
                    &entry.path,
                    format!("no region named {}; {near}regions are {}", entry.name, regions.names()),
                );
            }
            Some(Some(Role::Witness)) => r.error(
                entry.key.pos(),
                &entry.path,
                format!(
                    "{} is a witness region: it runs no service, so it has no {what}; remove this entry",
                    entry.name
                ),
            ),
            Some(_) => kept.push(entry),
        }
    }
    for (name, role) in regions.service() {
        if !kept.iter().any(|e| e.name == name) {
            r.error(
                at,
                &join(path, name),
                format!("missing; {name} is a {} region and needs a {what}, e.g. {}", role.as_str(), example(name)),
            );
        }
    }
    Some(kept)
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
