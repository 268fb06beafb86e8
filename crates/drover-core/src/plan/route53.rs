//! `traffic.kind: route53`: one Route 53 record set per region in a hosted zone,
//! with failover (PRIMARY/SECONDARY) or weighted routing.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::dns::{absolute_name, ttl};
use super::model::{Check, Route53RecordType, Route53Routing, Route53Spec, Route53Target, TrafficSpec};
use super::raw::{Node, Value};
use super::reader::{Entry, Mapping, Reader};
use super::regions::{Regions, distinct_per_region, region_entries};

const FIELDS: [&str; 10] = [
    "kind",
    "hosted_zone_id",
    "record",
    "type",
    "ttl",
    "routing",
    "targets",
    "stages",
    "stage_pause",
    "change_timeout",
];
const TARGET_FIELDS: [&str; 3] = ["value", "set_identifier", "health_check_id"];
const TYPES: [(&str, Route53RecordType); 3] =
    [("A", Route53RecordType::A), ("AAAA", Route53RecordType::Aaaa), ("CNAME", Route53RecordType::Cname)];
#[derive(Clone, Copy, PartialEq)]
enum Routing {
    Failover,
    Weighted,
}
const ROUTINGS: [(&str, Routing); 2] = [("failover", Routing::Failover), ("weighted", Routing::Weighted)];
pub(super) const DEFAULT_STAGE_PAUSE: Duration = Duration::from_secs(60);
pub(super) const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Route 53's limit on a set identifier.
const MAX_SET_IDENTIFIER: usize = 128;

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<TrafficSpec> {
    let at = top.key("traffic").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "traffic",
        at,
        &FIELDS,
        &[],
        "a mapping with kind, hosted_zone_id, record, type, ttl, routing and targets",
    )?;
    let zone = r
        .require(&m, "hosted_zone_id", "add the hosted zone's id, e.g. hosted_zone_id: Z0123456789ABCDEFGHIJ")
        .and_then(|n| hosted_zone_id(r, n));
    let record = r
        .require(&m, "record", "add the name clients resolve, e.g. record: api.example.com.")
        .and_then(|n| absolute_name(r, n, "traffic.record", "api.example.com."));
    let record_type = r
        .require(&m, "type", "add the record type: type: A (or AAAA, CNAME)")
        .and_then(|n| r.choice(n, "traffic.type", "record type", &TYPES));
    let ttl = r.require(&m, "ttl", "add the record's TTL, e.g. ttl: 60s").and_then(|n| ttl(r, n));
    let routing = r
        .require(&m, "routing", "add routing: failover (PRIMARY/SECONDARY records) or routing: weighted")
        .and_then(|n| r.choice(n, "traffic.routing", "routing", &ROUTINGS));
    let targets = r
        .require(
            &m,
            "targets",
            "add the record value of each primary and standby region, e.g. targets: { east: 192.0.2.10 }",
        )
        .and_then(|n| read_targets(r, &m, n, regions, record_type?));
    let change_timeout = match m.get("change_timeout") {
        Some(n) => r.positive_duration(n, "traffic.change_timeout"),
        None => Some(DEFAULT_CHANGE_TIMEOUT),
    };
    let routing = match routing? {
        Routing::Failover => {
            for field in ["stages", "stage_pause"] {
                if let Some(key) = m.key(field) {
                    r.error(
                        key.pos(),
                        &m.field(field),
                        "applies only to routing: weighted; failover records switch at once, remove it",
                    );
                }
            }
            if let (Some(targets), Some(node)) = (&targets, m.get("routing"))
                && targets.len() != 2
            {
                let names: Vec<&str> = targets.keys().map(String::as_str).collect();
                r.error(
                    node.pos(),
                    "traffic.routing",
                    format!(
                        "failover routing has exactly one PRIMARY and one SECONDARY record, but the plan has {} \
                         primary and standby regions ({}); use routing: weighted",
                        targets.len(),
                        super::reader::list_words(&names)
                    ),
                );
                return None;
            }
            Route53Routing::Failover
        }
        Routing::Weighted => {
            let stages = match m.get("stages") {
                Some(n) => read_stages(r, n),
                None => Some(vec![100]),
            };
            let stage_pause = match m.get("stage_pause") {
                Some(n) => r.positive_duration(n, "traffic.stage_pause"),
                None => Some(DEFAULT_STAGE_PAUSE),
            };
            Route53Routing::Weighted { stages: stages?, stage_pause: stage_pause? }
        }
    };
    Some(TrafficSpec::Route53(Route53Spec {
        hosted_zone_id: zone?,
        record: record?,
        record_type: record_type?,
        ttl: ttl?,
        routing,
        targets: targets?,
        change_timeout: change_timeout?,
    }))
}

/// Route 53 ids are upper-case letters and digits; the API's `/hostedzone/` prefix is accepted.
fn hosted_zone_id(r: &mut Reader<'_>, node: &Node) -> Option<String> {
    let text = r.text(node, "traffic.hosted_zone_id", "a hosted zone id like Z0123456789ABCDEFGHIJ")?;
    let id = text.trim().trim_start_matches("/hostedzone/");
    if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        r.error(
            node.pos(),
            "traffic.hosted_zone_id",
            format!(
                "'{text}' is not a hosted zone id (upper-case letters and digits); copy it from \
                 `aws route53 list-hosted-zones`, e.g. Z0123456789ABCDEFGHIJ"
            ),
        );
        return None;
    }
    Some(id.to_owned())
}

/// Percentages of the traffic on the new region, rising, ending at 100.
pub(super) fn read_stages(r: &mut Reader<'_>, node: &Node) -> Option<Vec<u8>> {
    let field = "traffic.stages";
    let items = r.list(node, field, "a list of percentages like [10, 25, 50, 100]")?;
    if items.is_empty() {
        r.error(node.pos(), field, "is empty; write e.g. [10, 25, 50, 100] (or [100] to switch at once)");
        return None;
    }
    let mut stages: Vec<u8> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let percent = r.count(item, &path, 1)?;
        if percent > 100 {
            r.error(item.pos(), &path, format!("{percent} is more than 100; stages are percentages of the weight"));
            return None;
        }
        if let Some(&before) = stages.last()
            && u32::from(before) >= percent
        {
            r.error(
                item.pos(),
                &path,
                format!("{percent} does not rise above the stage before it ({before}); write stages in rising order"),
            );
            return None;
        }
        stages.push(percent as u8);
    }
    if stages.last() != Some(&100) {
        let last = items.last().expect("not empty");
        r.error(last.pos(), field, "the last stage must be 100, so a switch moves all the weight; add 100");
        return None;
    }
    Some(stages)
}

fn read_targets(
    r: &mut Reader<'_>,
    traffic: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
    record_type: Route53RecordType,
) -> Option<BTreeMap<String, Route53Target>> {
    let at = traffic.key("targets").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {}", example_value(record_type));
    let entries = region_entries(r, node, "traffic.targets", at, regions, "traffic target", &example)?;
    // Route 53 tells record sets of one name apart by their set identifier.
    distinct_per_region(
        r,
        &entries,
        |r, entry| read_target(r, entry, record_type),
        |t| &t.set_identifier,
        "set_identifier",
        |id, first| format!("'{id}' is also {first}'s set identifier; each region's record set needs its own"),
    )
}

fn example_value(record_type: Route53RecordType) -> &'static str {
    match record_type {
        Route53RecordType::A => "192.0.2.10",
        Route53RecordType::Aaaa => "2001:db8::10",
        Route53RecordType::Cname => "east-alb.example.com.",
    }
}

/// `east: 192.0.2.10`, or `east: { value: 192.0.2.10, set_identifier: ..., health_check_id: ... }`.
fn read_target(r: &mut Reader<'_>, entry: &Entry<'_>, record_type: Route53RecordType) -> Option<Route53Target> {
    if !matches!(entry.value.value, Value::Map(_)) {
        let value = record_value(r, entry.value, &entry.path, record_type)?;
        return Some(Route53Target { value, set_identifier: entry.name.clone(), health_check_id: None });
    }
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &TARGET_FIELDS,
        &[],
        "a record value, or a mapping like { value: 192.0.2.10, health_check_id: ... }",
    )?;
    let value = r
        .require(&m, "value", &format!("add the record value, e.g. value: {}", example_value(record_type)))
        .and_then(|n| record_value(r, n, &m.field("value"), record_type));
    let set_identifier = match m.get("set_identifier") {
        Some(n) => set_identifier(r, n, &m.field("set_identifier")),
        None => Some(entry.name.clone()),
    };
    let health_check_id = match m.get("health_check_id") {
        Some(n) => {
            r.text(n, &m.field("health_check_id"), "a Route 53 health check id").map(|id| Some(id.trim().to_owned()))
        }
        None => Some(None),
    };
    Some(Route53Target { value: value?, set_identifier: set_identifier?, health_check_id: health_check_id? })
}

fn set_identifier(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<String> {
    let text = r.text(node, field, "a name like east")?;
    if text.len() > MAX_SET_IDENTIFIER {
        r.error(node.pos(), field, format!("is {} characters; Route 53 allows at most 128", text.len()));
        return None;
    }
    Some(text.to_owned())
}

/// The value as Route 53 stores it: an address for A/AAAA, a fully qualified name for CNAME.
fn record_value(r: &mut Reader<'_>, node: &Node, field: &str, record_type: Route53RecordType) -> Option<String> {
    let example = example_value(record_type);
    let text = r.text(node, field, &format!("a record value like {example}"))?.trim();
    let ok = match record_type {
        Route53RecordType::A => text.parse::<Ipv4Addr>().is_ok(),
        Route53RecordType::Aaaa => text.parse::<Ipv6Addr>().is_ok(),
        Route53RecordType::Cname => {
            !text.contains("..") && !text.chars().any(char::is_whitespace) && text.parse::<std::net::IpAddr>().is_err()
        }
    };
    if !ok {
        let what = match record_type {
            Route53RecordType::A => "an IPv4 address",
            Route53RecordType::Aaaa => "an IPv6 address",
            Route53RecordType::Cname => "a DNS name",
        };
        r.error(
            node.pos(),
            field,
            format!("'{text}' is not {what}, as a {} record holds; write e.g. {example}", record_type.as_str()),
        );
        return None;
    }
    Some(match record_type {
        Route53RecordType::Cname if !text.ends_with('.') => format!("{}.", text.to_ascii_lowercase()),
        Route53RecordType::Cname => text.to_ascii_lowercase(),
        _ => text.to_owned(),
    })
}

/// Checks fill `{target}` with the region's address; CNAME targets are names and a
/// Global Accelerator has no address per region, so a check of such a plan must
/// say what it probes. `why` says what the plan's traffic has instead, and what to write.
pub(super) fn targets_are_not_addresses(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    checks: &BTreeMap<String, Check>,
    why: &str,
) {
    let written = top.get("checks").map(|n| &n.value);
    for (name, check) in checks {
        let (kind, Some(template)) = (check.probe.kind().as_str(), check.probe.template()) else {
            continue;
        };
        if !template.contains("{target}") {
            continue;
        }
        let at = match written {
            Some(Value::Map(entries)) => entries
                .iter()
                .find(|(k, _)| k.value == Value::Str(name.clone()))
                .and_then(|(_, v)| match &v.value {
                    Value::Map(fields) => fields.iter().find(|(k, _)| k.value == Value::Str(kind.into())),
                    _ => None,
                })
                .map(|(_, v)| v.pos()),
            _ => None,
        };
        r.error(
            at.unwrap_or(top.at),
            &format!("checks.{name}.{kind}"),
            format!("{{target}} is filled with the region's traffic address, but {why}"),
        );
    }
}
