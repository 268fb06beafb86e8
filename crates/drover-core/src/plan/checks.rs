//! The `checks` section: probes whose verdicts decide whether a region is up.

use std::collections::BTreeMap;
use std::time::Duration;

use super::kinds::CheckKind;
use super::model::{Check, Probe};
use super::raw::Node;
use super::reader::{Entry, Mapping, Reader, check_identifier};
use super::regions::{Regions, region_entries};
use crate::duration::format_duration;

/// The probes (one per check), then the settings.
const FIELDS: [&str; 12] = [
    CheckKind::Http.as_str(),
    CheckKind::Tcp.as_str(),
    CheckKind::Postgres.as_str(),
    CheckKind::Route53HealthCheck.as_str(),
    CheckKind::CloudwatchAlarm.as_str(),
    "status",
    "body_contains",
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "per_region",
];
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;
const DEFAULT_STATUS: u16 = 200;

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, Check>> {
    let at = top.key("checks").map_or(node.pos(), Node::pos);
    let entries = r.entries(node, "checks", "a mapping of check name to { http: ..., interval: ... }", "check")?;
    if entries.is_empty() {
        r.error(at, "checks", "no checks; add at least one, e.g. api: { http: \"http://{target}:8080/healthz\" }");
        return None;
    }
    r.each(&entries, |r, entry| {
        check_identifier(r, entry, "check");
        read_check(r, entry, regions)
    })
}

fn read_check(r: &mut Reader<'_>, entry: &Entry<'_>, regions: Option<&Regions>) -> Option<Check> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &FIELDS,
        &[],
        "a mapping like { http: \"http://{target}:8080/healthz\", interval: 1s }",
    )?;
    let per_region = match m.get("per_region") {
        Some(n) => r.flag(n, &m.field("per_region")),
        None => Some(true),
    };
    let probe = read_probe(r, &m, entry, per_region.unwrap_or(true), regions);

    let interval = match m.get("interval") {
        Some(n) => r.positive_duration(n, &m.field("interval")),
        None => Some(DEFAULT_INTERVAL),
    };
    let timeout = match m.get("timeout") {
        Some(n) => r.positive_duration(n, &m.field("timeout")),
        None => Some(DEFAULT_TIMEOUT),
    };
    if let (Some(interval), Some(t)) = (interval, timeout)
        && t >= interval
    {
        // Point at whichever of the two was written here; the default is invisible.
        let at = m.get("timeout").or(m.get("interval")).map_or(entry.key.pos(), Node::pos);
        let default = if m.get("timeout").is_none() { " (the default)" } else { "" };
        r.error(
            at,
            &m.field("timeout"),
            format!(
                "timeout {}{default} must be shorter than interval {}, or probes overlap; write e.g. timeout: {}",
                format_duration(t),
                format_duration(interval),
                format_duration(interval / 2),
            ),
        );
    }
    let failure_threshold = match m.get("failure_threshold") {
        Some(n) => r.count(n, &m.field("failure_threshold"), 1),
        None => Some(DEFAULT_FAILURE_THRESHOLD),
    };
    let success_threshold = match m.get("success_threshold") {
        Some(n) => r.count(n, &m.field("success_threshold"), 1),
        None => Some(DEFAULT_SUCCESS_THRESHOLD),
    };
    Some(Check {
        name: entry.name.clone(),
        probe: probe?,
        interval: interval?,
        timeout: timeout?,
        failure_threshold: failure_threshold?,
        success_threshold: success_threshold?,
        per_region: per_region?,
        critical: true,
    })
}

fn read_probe(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    entry: &Entry<'_>,
    per_region: bool,
    regions: Option<&Regions>,
) -> Option<Probe> {
    let given: Vec<CheckKind> = CheckKind::ALL.into_iter().filter(|k| m.get(k.as_str()).is_some()).collect();
    let kind = match given.as_slice() {
        [] => {
            r.error(
                entry.key.pos(),
                &entry.path,
                "no probe; give one of http: <url>, tcp: <host:port>, postgres: member, route53_health_check: <id> \
                 or cloudwatch_alarm: { <region>: <alarm name> }",
            );
            return None;
        }
        [one] => *one,
        [first, rest @ ..] => {
            for other in rest {
                r.error(
                    m.key(other.as_str()).map_or(entry.key.pos(), Node::pos),
                    &m.field(other.as_str()),
                    format!("this check already probes with {first}; a check has exactly one probe, split it into two checks"),
                );
            }
            return None;
        }
    };
    let node = m.get(kind.as_str())?;
    let field = m.field(kind.as_str());
    if !kind.reads_http_response() {
        for http_only in ["status", "body_contains"] {
            if let Some(key) = m.key(http_only) {
                r.error(
                    key.pos(),
                    &m.field(http_only),
                    format!("applies only to http checks, and this is a {kind} check; remove it"),
                );
            }
        }
    }
    match kind {
        CheckKind::Http => {
            let url = r.text(node, &field, "a URL like http://{target}:8080/healthz")?;
            let url_ok = template(r, node, &field, url, per_region);
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok {
                r.error(
                    node.pos(),
                    &field,
                    format!("'{url}' is not an http:// or https:// URL; write e.g. http://{{target}}:8080/healthz"),
                );
            }
            let status = match m.get("status") {
                Some(n) => status(r, n, &m.field("status")),
                None => Some(DEFAULT_STATUS),
            };
            let body_contains = match m.get("body_contains") {
                Some(n) => r
                    .text(n, &m.field("body_contains"), "text the response body must contain")
                    .map(|s| Some(s.to_owned())),
                None => Some(None),
            };
            (url_ok && scheme_ok).then_some(())?;
            Some(Probe::Http { url: url.to_owned(), status: status?, body_contains: body_contains? })
        }
        CheckKind::Tcp => {
            let address = r.text(node, &field, "an address like {target}:5432")?;
            let address_ok = template(r, node, &field, address, per_region);
            let port_ok = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                r.error(node.pos(), &field, format!("'{address}' is not host:port; write e.g. {{target}}:5432"));
            }
            (address_ok && port_ok).then(|| Probe::Tcp { address: address.to_owned() })
        }
        CheckKind::Route53HealthCheck => route53_health_check(r, m, node, &field, per_region, regions),
        CheckKind::CloudwatchAlarm => cloudwatch_alarm(r, m, node, &field, per_region, regions),
        CheckKind::Postgres => {
            let target = r.text(node, &field, "member")?;
            if target != "member" {
                r.error(
                    node.pos(),
                    &field,
                    format!(
                        "'{target}' is not something to connect to; postgres checks connect to the region's \
                         database member: write postgres: member"
                    ),
                );
                return None;
            }
            if !per_region {
                r.error(
                    m.key("per_region").map_or(node.pos(), Node::pos),
                    &m.field("per_region"),
                    "postgres checks connect to each region's member, so they run per region; remove per_region: false",
                );
                return None;
            }
            Some(Probe::Postgres)
        }
    }
}

/// `{ east: <id>, west: <id> }` per region, or one `<id>` with `per_region: false`.
fn route53_health_check(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    field: &str,
    per_region: bool,
    regions: Option<&Regions>,
) -> Option<Probe> {
    let expected = "a Route 53 health check id";
    if !matches!(node.value, super::raw::Value::Map(_)) {
        let id = r.text(node, field, expected)?;
        if per_region {
            r.error(
                node.pos(),
                field,
                "one health check id serves every region only with per_region: false; \
                 add per_region: false, or give one id per region: { east: <id>, west: <id> }",
            );
            return None;
        }
        return Some(Probe::Route53HealthCheck { ids: [(String::new(), id.trim().to_owned())].into() });
    }
    if !per_region {
        r.error(
            m.key("per_region").map_or(node.pos(), Node::pos),
            &m.field("per_region"),
            "ids per region run per region; remove per_region: false, or give one id for the whole service",
        );
        return None;
    }
    let ids = names_per_region(
        r,
        m,
        node,
        CheckKind::Route53HealthCheck.as_str(),
        regions,
        ("Route 53 health check", expected, "health check id"),
    )?;
    Some(Probe::Route53HealthCheck { ids })
}

/// `{ <region>: <name>, ... }` under check field `kind`, one name for every
/// primary and standby region; `what` names the thing, `expected` says what a name
/// looks like, `placeholder` stands for one in examples.
fn names_per_region(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    kind: &str,
    regions: Option<&Regions>,
    (what, expected, placeholder): (&str, &str, &str),
) -> Option<BTreeMap<String, String>> {
    let at = m.key(kind).map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: <{placeholder}>");
    let entries = region_entries(r, node, &m.field(kind), at, regions, what, &example)?;
    let mut names = BTreeMap::new();
    for entry in &entries {
        names.insert(entry.name.clone(), r.text(entry.value, &entry.path, expected)?.trim().to_owned());
    }
    Some(names)
}

/// `{ east: <alarm name>, west: <alarm name> }`: alarms live in an AWS region, so one per plan region.
fn cloudwatch_alarm(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    field: &str,
    per_region: bool,
    regions: Option<&Regions>,
) -> Option<Probe> {
    if !per_region {
        r.error(
            m.key("per_region").map_or(node.pos(), Node::pos),
            &m.field("per_region"),
            "a CloudWatch alarm lives in one AWS region, so alarm checks run per region; remove per_region: false",
        );
        return None;
    }
    if !matches!(node.value, super::raw::Value::Map(_)) {
        r.error(
            node.pos(),
            field,
            "give one alarm name per region (alarms live in the region's AWS region): { east: api-5xx-east, west: api-5xx-west }",
        );
        return None;
    }
    let alarms = names_per_region(
        r,
        m,
        node,
        CheckKind::CloudwatchAlarm.as_str(),
        regions,
        ("CloudWatch alarm", "a CloudWatch alarm name", "alarm name"),
    )?;
    Some(Probe::CloudwatchAlarm { alarms })
}

/// Only `{target}` may be filled in, and only when the check runs per region.
fn template(r: &mut Reader<'_>, node: &Node, field: &str, text: &str, per_region: bool) -> bool {
    let mut ok = true;
    let mut uses_target = false;
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            r.error(
                node.pos(),
                field,
                format!("'{text}' has a '{{' without a closing '}}'; the only placeholder is {{target}}"),
            );
            return false;
        };
        let name = &after[..close];
        if name == "target" {
            uses_target = true;
        } else {
            r.error(
                node.pos(),
                field,
                format!(
                    "unknown placeholder {{{name}}}; the only placeholder is {{target}}, the region's traffic target"
                ),
            );
            ok = false;
        }
        rest = &after[close + 1..];
    }
    if uses_target && !per_region {
        r.error(
            node.pos(),
            field,
            "{target} is filled in per region, but this check has per_region: false; write a fixed address or remove per_region: false",
        );
        ok = false;
    }
    ok
}

fn status(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<u16> {
    let code = r.count(node, field, 0)?;
    match u16::try_from(code) {
        Ok(code) if (100..=599).contains(&code) => Some(code),
        _ => {
            r.error(node.pos(), field, format!("{code} is not an HTTP status; write e.g. 200"));
            None
        }
    }
}
