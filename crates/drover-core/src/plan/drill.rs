//! The optional top-level `drill` section: how a drill measures the service (`canary`),
//! what stops it (`stop_when`), and what its faults need (`fis`).
//!
//! ```yaml
//! drill:
//!   canary:
//!     http: { url: https://shop.example.com/drover-canary, token_env: CANARY_TOKEN }
//!     # or: postgres: { dsn_env: SHOP_CANARY_DSN, table: drover_canary }
//!     interval: 200ms
//!     timeout: 2s
//!     resolve: dns            # or traffic
//!     dns_server: 10.0.0.2:53 # default: the system's resolver (/etc/resolv.conf)
//!   stop_when:
//!     - { cloudwatch_alarm: shop-5xx, region: us-west-1 }
//!   fis: { us-east-2: EXT1a2b3c4d5e6f7 }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::model::{
    CanaryResolve, CanarySpec, CanaryTarget, DrillSpec, HttpCanarySpec, PostgresCanarySpec, Route53RecordType,
    StopCondition, TrafficSpec,
};
use super::raw::{Node, Value};
use super::reader::{Mapping, Reader, http_url};
use super::regions::Regions;

const FIELDS: [&str; 3] = ["canary", "stop_when", "fis"];
const STOP_FIELDS: [&str; 2] = ["cloudwatch_alarm", "region"];
const CANARY_FIELDS: [&str; 6] = ["http", "postgres", "interval", "timeout", "resolve", "dns_server"];
const HTTP_FIELDS: [&str; 4] = ["url", "token_env", "token_file", "ca_file"];
const POSTGRES_FIELDS: [&str; 3] = ["dsn_env", "dsn_file", "table"];

/// A real service takes a write every 200 ms easily, and a drill of a few minutes still
/// gives RTO to a fifth of a second.
pub const DEFAULT_CANARY_INTERVAL: Duration = Duration::from_millis(200);
/// A write a user's client would have given up on: longer than any healthy commit,
/// short enough that an outage shows as failures, not as one long wait.
pub const DEFAULT_CANARY_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_CANARY_TABLE: &str = "drover_canary";
/// Faster than this the canary would load the service more than it measures it.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const EXAMPLE: &str = "{ http: { url: https://shop.example.com/drover-canary } }";

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    traffic: Option<&TrafficSpec>,
    regions: Option<&Regions>,
) -> Option<DrillSpec> {
    let Some(node) = top.get("drill") else {
        return Some(DrillSpec::default());
    };
    if node.value == Value::Null {
        return Some(DrillSpec::default());
    }
    let at = top.key("drill").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "drill", at, &FIELDS, &[], &format!("a mapping like {{ canary: {EXAMPLE} }}"))?;
    let canary = match m.get("canary") {
        Some(n) if n.value != Value::Null => read_canary(r, &m, n, traffic).map(Some),
        _ => Some(None),
    };
    let stop_when = match m.get("stop_when") {
        Some(n) if n.value != Value::Null => stop_when(r, n, regions),
        _ => Some(Vec::new()),
    };
    let fis = match m.get("fis") {
        Some(n) if n.value != Value::Null => fis_templates(r, n, regions),
        _ => Some(BTreeMap::new()),
    };
    Some(DrillSpec { canary: canary?, stop_when: stop_when?, fis: fis? })
}

/// `drill.stop_when`: a list of `{ cloudwatch_alarm: NAME, region: REGION }`. Every item
/// is read, so all mistakes show at once.
fn stop_when(r: &mut Reader<'_>, node: &Node, regions: Option<&Regions>) -> Option<Vec<StopCondition>> {
    let field = "drill.stop_when";
    let example = "a list like [{ cloudwatch_alarm: shop-5xx, region: us-west-1 }]";
    let items = r.list(node, field, example)?;
    let mut conditions = Vec::new();
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let read = (|| {
            let m = r.mapping(item, &path, item.pos(), &STOP_FIELDS, &[], example)?;
            let alarm = r
                .require(&m, "cloudwatch_alarm", "name the CloudWatch alarm, e.g. cloudwatch_alarm: shop-5xx")
                .and_then(|n| r.text(n, &format!("{path}.cloudwatch_alarm"), "a CloudWatch alarm name"));
            let region = r
                .require(&m, "region", "name the plan region whose AWS region holds the alarm, e.g. region: us-west-1")
                .and_then(|n| plan_region(r, n, &format!("{path}.region"), regions));
            Some(StopCondition { alarm: alarm?.to_owned(), region: region? })
        })();
        match read {
            Some(c) => conditions.push(c),
            None => complete = false,
        }
    }
    complete.then_some(conditions)
}

/// `drill.fis`: plan region -> the FIS experiment template a `fis` drill starts there.
fn fis_templates(r: &mut Reader<'_>, node: &Node, regions: Option<&Regions>) -> Option<BTreeMap<String, String>> {
    let entries = r.entries(node, "drill.fis", "a mapping like { us-east-2: EXT1a2b3c4d5e6f7 }", "region")?;
    let mut complete = true;
    let mut templates = BTreeMap::new();
    for entry in &entries {
        if let Some(regions) = regions
            && regions.role(&entry.name).is_none()
        {
            let names = regions.names();
            r.error(entry.key.pos(), &entry.path, format!("unknown region; the plan's regions are {names}"));
            complete = false;
            continue;
        }
        match r.text(entry.value, &entry.path, "an experiment template id like EXT1a2b3c4d5e6f7") {
            Some(id) => {
                templates.insert(entry.name.clone(), id.to_owned());
            }
            None => complete = false,
        }
    }
    complete.then_some(templates)
}

/// A region the plan declares.
fn plan_region(r: &mut Reader<'_>, node: &Node, field: &str, regions: Option<&Regions>) -> Option<String> {
    let name = r.text(node, field, "a region of the plan")?;
    if let Some(regions) = regions
        && regions.role(name).is_none()
    {
        let names = regions.names();
        r.error(node.pos(), field, format!("unknown region '{name}'; the plan's regions are {names}"));
        return None;
    }
    Some(name.to_owned())
}

fn read_canary(
    r: &mut Reader<'_>,
    drill: &Mapping<'_>,
    node: &Node,
    traffic: Option<&TrafficSpec>,
) -> Option<CanarySpec> {
    let at = drill.key("canary").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "drill.canary", at, &CANARY_FIELDS, &[], &format!("a mapping like {EXAMPLE}"))?;
    let target = match (m.get("http"), m.get("postgres")) {
        (Some(http), None) => read_http(r, &m, http).map(CanaryTarget::Http),
        (None, Some(pg)) => read_postgres(r, &m, pg).map(CanaryTarget::Postgres),
        (Some(http), Some(pg)) => {
            // Both are read, so their own mistakes show too.
            read_http(r, &m, http);
            read_postgres(r, &m, pg);
            let pos = m.key("postgres").map_or(at, Node::pos);
            r.error(pos, "drill.canary.postgres", "give one canary, http or postgres, not both");
            None
        }
        (None, None) => {
            r.error(
                at,
                "drill.canary.http",
                "required field is missing; the canary writes through http: { url: https://… } (the canary \
                 protocol in docs/drill.md) or postgres: { dsn_env: <VARIABLE> }",
            );
            None
        }
    };
    let interval = match m.get("interval") {
        Some(n) => interval(r, n),
        None => Some(DEFAULT_CANARY_INTERVAL),
    };
    let timeout = match m.get("timeout") {
        Some(n) => r.positive_duration(n, "drill.canary.timeout"),
        None => Some(DEFAULT_CANARY_TIMEOUT),
    };
    let resolve = read_resolve(r, &m, traffic);
    Some(CanarySpec { target: target?, interval: interval?, timeout: timeout?, resolve: resolve? })
}

fn interval(r: &mut Reader<'_>, node: &Node) -> Option<Duration> {
    let field = "drill.canary.interval";
    let d = r.duration(node, field)?;
    if d < MIN_INTERVAL {
        r.error(
            node.pos(),
            field,
            "is shorter than 10ms, which loads the service more than it measures it; write e.g. 200ms",
        );
        return None;
    }
    Some(d)
}

fn read_http(r: &mut Reader<'_>, canary: &Mapping<'_>, node: &Node) -> Option<HttpCanarySpec> {
    let at = canary.key("http").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "drill.canary.http",
        at,
        &HTTP_FIELDS,
        &["token"],
        "a mapping like { url: https://shop.example.com/drover-canary, token_env: CANARY_TOKEN }",
    )?;
    let url = r
        .require(
            &m,
            "url",
            "add the canary's URL through the service's public name, e.g. url: https://shop.example.com/drover-canary",
        )
        .and_then(|n| canary_url(r, n))
        .map(|u| u.trim_end_matches('/').to_owned());
    let token = if ["token", "token_env", "token_file"].iter().any(|k| m.key(k).is_some()) {
        r.secret_ref(&m, "token", "token_env", "token_file").map(Some)
    } else {
        Some(None)
    };
    let ca_file = match m.get("ca_file") {
        Some(n) => ca_file(r, n).map(Some),
        None => Some(None),
    };
    if let (Some(url), Some(Some(_))) = (&url, &token)
        && url.starts_with("http://")
    {
        let pos = ["token_env", "token_file"].iter().find_map(|k| m.key(k)).map_or(at, Node::pos);
        r.error(
            pos,
            "drill.canary.http.token",
            "the URL is plain http://, so the token would cross the network in clear; use https://",
        );
        return None;
    }
    if let (Some(url), Some(Some(_))) = (&url, &ca_file)
        && url.starts_with("http://")
        && let Some(n) = m.key("ca_file")
    {
        r.error(
            n.pos(),
            "drill.canary.http.ca_file",
            "the URL is plain http://, so no certificate is checked; use https:// or remove ca_file",
        );
        return None;
    }
    Some(HttpCanarySpec { url: url?, token: token?, ca_file: ca_file? })
}

/// A URL written in the plan is printed with it, so it carries no credential; the canary
/// adds its own path (`/writes`) and query, so it has none either. Its text is never echoed.
fn canary_url<'n>(r: &mut Reader<'_>, node: &'n Node) -> Option<&'n str> {
    let field = "drill.canary.http.url";
    let url = http_url(r, node, field, "https://shop.example.com/drover-canary")?;
    let authority = url.split("://").nth(1).unwrap_or_default().split(['/', '?', '#']).next().unwrap_or_default();
    let problem = if authority.contains('@') {
        Some("holds a user name or password (user:password@host); give a bearer token with token_env or token_file")
    } else if url.contains('?') || url.contains('#') {
        Some(
            "has a query string or fragment; the canary adds its own (docs/drill.md), and a token goes in token_env or token_file",
        )
    } else {
        None
    };
    if let Some(problem) = problem {
        r.error(node.pos(), field, problem);
        return None;
    }
    Some(url)
}

fn ca_file(r: &mut Reader<'_>, node: &Node) -> Option<PathBuf> {
    let field = "drill.canary.http.ca_file";
    let text = r.text(node, field, "the path of a PEM file")?;
    if !text.starts_with('/') {
        r.error(node.pos(), field, format!("'{text}' is not an absolute path; write e.g. /etc/drover/shop-ca.pem"));
        return None;
    }
    Some(PathBuf::from(text))
}

fn read_postgres(r: &mut Reader<'_>, canary: &Mapping<'_>, node: &Node) -> Option<PostgresCanarySpec> {
    let at = canary.key("postgres").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "drill.canary.postgres",
        at,
        &POSTGRES_FIELDS,
        &["dsn"],
        "a mapping like { dsn_env: SHOP_CANARY_DSN, table: drover_canary }",
    )?;
    let dsn = r.secret_ref(&m, "dsn", "dsn_env", "dsn_file");
    let table = match m.get("table") {
        Some(n) => table(r, n),
        None => Some(DEFAULT_CANARY_TABLE.to_owned()),
    };
    Some(PostgresCanarySpec { dsn: dsn?, table: table? })
}

/// An unquoted PostgreSQL identifier: drover writes it into its SQL as it is.
fn table(r: &mut Reader<'_>, node: &Node) -> Option<String> {
    let field = "drill.canary.postgres.table";
    let text = r.text(node, field, "a table name like drover_canary")?;
    let mut chars = text.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || text.len() > 63 {
        r.error(
            node.pos(),
            field,
            format!(
                "'{text}' is not a plain table name; use up to 63 lowercase letters, digits and _, e.g. drover_canary"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

fn read_resolve(r: &mut Reader<'_>, m: &Mapping<'_>, traffic: Option<&TrafficSpec>) -> Option<CanaryResolve> {
    #[derive(Clone, Copy)]
    enum How {
        Dns,
        Traffic,
    }
    // Read first: its mistakes show even when resolve has its own.
    let server = match m.get("dns_server") {
        Some(n) => dns_server(r, n).map(Some),
        None => Some(None),
    };
    let how = match m.get("resolve") {
        Some(n) => {
            r.choice(n, "drill.canary.resolve", "way to resolve", &[("dns", How::Dns), ("traffic", How::Traffic)])?
        }
        None => How::Dns,
    };
    match how {
        How::Dns => Some(CanaryResolve::Dns { server: server? }),
        How::Traffic => {
            if let Some(n) = m.key("dns_server") {
                r.error(
                    n.pos(),
                    "drill.canary.dns_server",
                    "resolve: traffic asks no DNS server; remove dns_server or write resolve: dns",
                );
                return None;
            }
            let why = match traffic {
                Some(TrafficSpec::GlobalAccelerator(_)) => {
                    Some("an accelerator's static addresses never change in a switch; its dials do")
                }
                Some(TrafficSpec::Route53(t)) if t.record_type == Route53RecordType::Cname => {
                    Some("a CNAME record holds names, not addresses")
                }
                _ => None,
            };
            if let Some(why) = why {
                let at = m.get("resolve").map_or(m.at, Node::pos);
                r.error(
                    at,
                    "drill.canary.resolve",
                    format!("traffic cannot be followed to an address here: {why}; write resolve: dns"),
                );
                return None;
            }
            Some(CanaryResolve::Traffic)
        }
    }
}

fn dns_server(r: &mut Reader<'_>, node: &Node) -> Option<SocketAddr> {
    let field = "drill.canary.dns_server";
    let text = r.text(node, field, "an address like 10.0.0.2:53")?;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let message = if text.parse::<IpAddr>().is_ok() {
        format!("'{text}' has no port; write e.g. {text}:53")
    } else {
        format!("'{text}' is not an ip:port address; write e.g. 10.0.0.2:53 (or [fd00::53]:53)")
    };
    r.error(node.pos(), field, message);
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::test_support::Recording;
    use crate::plan::{Plan, PlanErrors, parse_plan};
    use crate::secret::SecretRef;

    const PLAN: &str = "\
name: shop
objectives: { rto: 30s, rpo: 0s }
regions: { east: { role: primary }, west: { role: standby } }
database: { kind: postgres, replication: synchronous, members: { east: { dsn_env: E }, west: { dsn_env: W } } }
traffic:
  kind: rfc2136
  server: 10.200.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: drover, algorithm: hmac-sha256, secret_env: T }
  targets: { east: 10.200.0.11, west: 10.200.0.12 }
checks: { api: { http: \"http://{target}:8080/healthz\" } }
";

    fn parse(plan: &str, drill: &str) -> Result<Plan, PlanErrors> {
        parse_plan(Path::new("plan.yaml"), &format!("{plan}{drill}"), &Recording::default())
    }

    fn messages(plan: &str, drill: &str) -> Vec<String> {
        parse(plan, drill).unwrap_err().0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
    }

    #[test]
    fn a_token_over_plain_http_is_refused() {
        let drill = "drill: { canary: { http: { url: \"http://shop.example.com/c\", token_env: CANARY_TOKEN } } }\n";
        assert_eq!(
            messages(PLAN, drill),
            ["drill.canary.http.token: the URL is plain http://, so the token would cross the network in clear; use \
              https://"]
        );
    }

    #[test]
    fn without_a_section_there_is_no_canary_and_defaults_fill_the_rest() {
        assert_eq!(parse(PLAN, "").unwrap().drill, DrillSpec::default());
        assert_eq!(parse(PLAN, "drill:\n").unwrap().drill.canary, None);
        let plan = parse(PLAN, "drill: { canary: { postgres: { dsn_file: /etc/drover/canary.dsn } } }\n").unwrap();
        assert_eq!(
            plan.drill.canary,
            Some(CanarySpec {
                target: CanaryTarget::Postgres(PostgresCanarySpec {
                    dsn: SecretRef::File("/etc/drover/canary.dsn".into()),
                    table: DEFAULT_CANARY_TABLE.into(),
                }),
                interval: DEFAULT_CANARY_INTERVAL,
                timeout: DEFAULT_CANARY_TIMEOUT,
                resolve: CanaryResolve::Dns { server: None },
            })
        );
        let plan = parse(PLAN, "drill: { canary: { http: { url: \"https://shop.example.com/c/\" } } }\n").unwrap();
        let Some(CanarySpec { target: CanaryTarget::Http(http), .. }) = plan.drill.canary else { panic!() };
        assert_eq!((http.url.as_str(), http.token, http.ca_file), ("https://shop.example.com/c", None, None));
    }

    #[test]
    fn traffic_that_holds_no_address_to_follow_is_refused() {
        let canary = "drill: { canary: { http: { url: \"https://shop.example.com/c\" }, resolve: traffic } }\n";
        assert!(parse(PLAN, canary).is_ok());
        let cname = PLAN.replace(
            "traffic:\n  kind: rfc2136\n  server: 10.200.0.1:53\n  zone: app.test.\n  record: api.app.test.\n  ttl: 5s\n  \
             tsig: { name: drover, algorithm: hmac-sha256, secret_env: T }\n  targets: { east: 10.200.0.11, west: 10.200.0.12 }\n",
            "traffic:\n  kind: route53\n  hosted_zone_id: Z0123456789ABCDEFGHIJ\n  record: api.example.com.\n  type: CNAME\n  \
             ttl: 60s\n  routing: failover\n  targets:\n    east: { value: east.example.com. }\n    west: { value: west.example.com. }\n",
        )
        .replace("http://{target}:8080/healthz\" }", "https://api.example.com/healthz\", per_region: false }");
        let errors = messages(&cname, canary);
        assert_eq!(
            errors,
            ["drill.canary.resolve: traffic cannot be followed to an address here: a CNAME record holds names, not \
              addresses; write resolve: dns"],
            "{errors:?}"
        );
    }

    /// docs/plan.md must describe every field this section accepts.
    #[test]
    fn every_field_is_documented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = doc.split("\n## drill\n").nth(1).expect("docs/plan.md has a '## drill' section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut words: Vec<String> = FIELDS.iter().map(|f| format!("`drill.{f}")).collect();
        words.extend(CANARY_FIELDS.iter().map(|f| format!("`drill.canary.{f}")));
        words.extend(HTTP_FIELDS.iter().map(|f| f.to_string()));
        words.extend(POSTGRES_FIELDS.iter().map(|f| f.to_string()));
        let missing: Vec<&String> = words.iter().filter(|w| !section.contains(w.as_str())).collect();
        assert!(missing.is_empty(), "docs/plan.md's drill section does not mention {missing:?}");
    }
}
