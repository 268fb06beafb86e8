//! `database.kind: rds` and `database.kind: aurora-global`: managed databases that AWS
//! replicates across regions; drover names their instances or clusters per region.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{AuroraGlobalSpec, AuroraMember, DatabaseSpec, RdsMember, RdsSpec};
use super::raw::Node;
use super::reader::{Entry, Mapping, Reader};
use super::regions::{Regions, region_entries};

const RDS_FIELDS: [&str; 3] = ["kind", "promote_timeout", "members"];
const AURORA_FIELDS: [&str; 4] = ["kind", "global_cluster", "timeout", "members"];
/// Promoting a cross-region replica, or switching a global database over, takes minutes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// RDS and Aurora identifiers: 1 to 63 letters, digits and hyphens, starting with a
/// letter, no two hyphens in a row, not ending in a hyphen.
const MAX_IDENTIFIER: usize = 63;

pub(super) fn read_rds(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<DatabaseSpec> {
    let at = top.key("database").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "database", at, &RDS_FIELDS, &[], "a mapping with kind and members")?;
    let promote_timeout = match m.get("promote_timeout") {
        Some(n) => r.positive_duration(n, "database.promote_timeout"),
        None => Some(DEFAULT_TIMEOUT),
    };
    let members = r
        .require(&m, "members", "add the DB instance of each primary and standby region, e.g. members: { us-east-2: { instance: shop-db } }")
        .and_then(|n| members(r, &m, n, regions, "instance", "shop-db"))?;
    let members = members.into_iter().map(|(region, instance)| (region, RdsMember { instance })).collect();
    Some(DatabaseSpec::Rds(RdsSpec { members, promote_timeout: promote_timeout? }))
}

pub(super) fn read_aurora(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<DatabaseSpec> {
    let at = top.key("database").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "database", at, &AURORA_FIELDS, &[], "a mapping with kind, global_cluster and members")?;
    let global_cluster = r
        .require(&m, "global_cluster", "add the global database's identifier, e.g. global_cluster: shop-global")
        .and_then(|n| identifier(r, n, "database.global_cluster", "shop-global"));
    let timeout = match m.get("timeout") {
        Some(n) => r.positive_duration(n, "database.timeout"),
        None => Some(DEFAULT_TIMEOUT),
    };
    let members = r
        .require(&m, "members", "add the DB cluster of each primary and standby region, e.g. members: { us-east-2: { cluster: shop-east } }")
        .and_then(|n| members(r, &m, n, regions, "cluster", "shop-east"));
    let members = members?.into_iter().map(|(region, cluster)| (region, AuroraMember { cluster })).collect();
    Some(DatabaseSpec::AuroraGlobal(AuroraGlobalSpec { global_cluster: global_cluster?, members, timeout: timeout? }))
}

/// Each region's `{ <field>: <identifier> }`, every identifier different.
fn members(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
    field: &str,
    example_id: &str,
) -> Option<BTreeMap<String, String>> {
    let at = m.key("members").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {{ {field}: {example_id} }}");
    let entries = region_entries(r, node, "database.members", at, regions, "database member", &example)?;
    r.each(&entries, |r, entry| member(r, entry, field, example_id))
}

fn member(r: &mut Reader<'_>, entry: &Entry<'_>, field: &str, example_id: &str) -> Option<String> {
    let expected = format!("a mapping like {{ {field}: {example_id} }}");
    let m = r.mapping(entry.value, &entry.path, entry.key.pos(), &[field], &[], &expected)?;
    let hint = format!("add the identifier, e.g. {field}: {example_id}");
    let node = r.require(&m, field, &hint)?;
    identifier(r, node, &m.field(field), example_id)
}

/// An RDS/Aurora identifier (or an ARN, which names the resource in another account or region).
fn identifier(r: &mut Reader<'_>, node: &Node, field: &str, example: &str) -> Option<String> {
    let text = r.text(node, field, &format!("an identifier like {example}"))?.trim();
    if text.starts_with("arn:") {
        return Some(text.to_owned());
    }
    let valid = text.len() <= MAX_IDENTIFIER
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !text.contains("--")
        && !text.ends_with('-');
    if !valid {
        r.error(
            node.pos(),
            field,
            format!(
                "'{text}' is not an RDS identifier (1 to 63 letters, digits and hyphens, starting with a letter); \
                 copy it from the RDS console or `aws rds describe-db-instances`, e.g. {example}"
            ),
        );
        return None;
    }
    // RDS stores identifiers in lowercase.
    Some(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::test_support::Recording;
    use crate::plan::{DatabaseSpec, Plan, PlanErrors, StepKind, parse_plan};

    fn plan(database: &str, extra: &str) -> String {
        format!(
            "name: shop
objectives: {{ rto: 30m, rpo: 1m }}
regions: {{ us-east-2: {{ role: primary }}, us-west-1: {{ role: standby }} }}
database:
{database}
traffic:
  kind: route53
  hosted_zone_id: Z0123456789
  record: api.example.com.
  type: A
  ttl: 60s
  routing: failover
  targets: {{ us-east-2: 192.0.2.10, us-west-1: 192.0.2.20 }}
checks:
  api: {{ http: \"http://{{target}}/healthz\" }}
{extra}"
        )
    }

    const RDS: &str =
        "  kind: rds\n  members: { us-east-2: { instance: shop-db }, us-west-1: { instance: Shop-DB-Replica } }";
    const AURORA: &str = "  kind: aurora-global\n  global_cluster: shop-global\n  timeout: 10m\n  members:\n    us-east-2: { cluster: shop-east }\n    us-west-1: { cluster: shop-west }";

    fn parse(text: &str) -> Result<Plan, PlanErrors> {
        parse_plan(Path::new("plan.yaml"), text, &Recording::default())
    }

    /// `line:column field: message` of each error.
    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| format!("{}:{} {}: {}", e.line, e.column, e.field, e.message))
            .collect()
    }

    #[test]
    fn rds_members_name_instances_and_default_runbooks_have_no_catch_up_or_rejoin() {
        let plan = parse(&plan(RDS, "")).unwrap();
        let DatabaseSpec::Rds(rds) = &plan.database else { panic!("{:?}", plan.database) };
        assert_eq!(rds.members["us-east-2"].instance, "shop-db");
        assert_eq!(rds.members["us-west-1"].instance, "shop-db-replica");
        assert_eq!(rds.promote_timeout.as_secs(), 30 * 60);
        use StepKind::*;
        assert_eq!(plan.runbooks.failover, [Fence, Promote, Switch, Verify]);
        assert_eq!(plan.policy.max_lag_time_on_failover.map(|d| d.as_secs()), Some(60));
        assert!(plan.postgres().is_none());
    }

    #[test]
    fn aurora_global_names_the_global_cluster_and_its_clusters() {
        let plan = parse(&plan(AURORA, "policy: { max_lag_time_on_failover: 5s }\n")).unwrap();
        let DatabaseSpec::AuroraGlobal(aurora) = &plan.database else { panic!("{:?}", plan.database) };
        assert_eq!(aurora.global_cluster, "shop-global");
        assert_eq!(aurora.members["us-west-1"].cluster, "shop-west");
        assert_eq!(aurora.timeout.as_secs(), 600);
        use StepKind::*;
        assert_eq!(plan.runbooks.failover, [Promote, Switch, Verify]);
        assert_eq!(plan.runbooks.switchover, [Promote, Switch, Verify]);
        assert_eq!(plan.policy.max_lag_time_on_failover.map(|d| d.as_secs()), Some(5));
    }

    #[test]
    fn bad_rds_input_names_the_field() {
        let text = plan(
            "  kind: rds\n  promote_timeout: 0s\n  members: { us-east-2: { instance: 1db }, us-west-1: { dsn_env: X } }",
            "",
        );
        assert_eq!(
            errors(&text),
            [
                "6:20 database.promote_timeout: must be longer than 0s; write e.g. 1s",
                "7:37 database.members.us-east-2.instance: '1db' is not an RDS identifier (1 to 63 letters, digits and hyphens, starting with a letter); copy it from the RDS console or `aws rds describe-db-instances`, e.g. shop-db",
                "7:44 database.members.us-west-1.instance: required field is missing; add the identifier, e.g. instance: shop-db",
                "7:57 database.members.us-west-1.dsn_env: unknown field; allowed here: instance",
            ]
        );
    }

    #[test]
    fn bad_aurora_input_names_the_field() {
        let text = plan("  kind: aurora-global\n  members: { us-east-2: { cluster: shop-east } }", "");
        assert_eq!(
            errors(&text),
            [
                "4:1 database.global_cluster: required field is missing; add the global database's identifier, e.g. global_cluster: shop-global",
                "6:3 database.members.us-west-1: missing; us-west-1 is a standby region and needs a database member, e.g. us-west-1: { cluster: shop-east }",
            ]
        );
    }

    #[test]
    fn runbooks_refuse_steps_the_managed_database_cannot_take() {
        let text = plan(RDS, "runbooks: { failover: [fence, catch_up, promote, switch, verify, rejoin] }\n");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("runbooks.failover: catch_up cannot run with database kind rds"), "{errs:?}");
        assert!(errs[0].contains("rejoin cannot run with database kind rds"), "{errs:?}");

        let text = plan(AURORA, "runbooks: { switchover: [fence, promote, switch] }\n");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("runbooks.switchover: fence cannot run with database kind aurora-global"), "{errs:?}");
    }

    #[test]
    fn byte_lag_limits_and_postgres_checks_need_postgres() {
        let text = plan(RDS, "  db: { postgres: member }\npolicy: { max_lag_on_failover: 1MiB }\n");
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("checks.db.postgres: postgres checks connect with database.members"), "{errs:?}");
        assert!(errs[1].contains("policy.max_lag_on_failover: rds exposes no replication lag in bytes"), "{errs:?}");
    }
}
