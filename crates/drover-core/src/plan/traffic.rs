//! The `traffic` section: how clients are pointed at the serving region.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::dns::{absolute_name, ttl};
use super::kinds::TrafficKind;
use super::model::{Rfc2136Spec, TrafficSpec, Tsig, TsigAlgorithm};
use super::raw::Node;
use super::reader::{Mapping, Reader, declared_kind};
use super::regions::{Regions, region_entries};
use super::{global_accelerator, route53};

const FIELDS: [&str; 7] = ["kind", "server", "zone", "record", "ttl", "tsig", "targets"];
const TSIG_FIELDS: [&str; 4] = ["name", "algorithm", "secret_env", "secret_file"];
const ALGORITHMS: [(&str, TsigAlgorithm); 3] = [
    ("hmac-sha256", TsigAlgorithm::HmacSha256),
    ("hmac-sha384", TsigAlgorithm::HmacSha384),
    ("hmac-sha512", TsigAlgorithm::HmacSha512),
];

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<TrafficSpec> {
    match declared_kind(node).and_then(TrafficKind::from_name) {
        Some(TrafficKind::Route53) => return route53::read(r, top, node, regions),
        Some(TrafficKind::GlobalAccelerator) => return global_accelerator::read(r, top, node, regions),
        Some(TrafficKind::Rfc2136) | None => {}
    }
    let at = top.key("traffic").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "traffic",
        at,
        &FIELDS,
        &[],
        "a mapping with kind, server, zone, record, ttl, tsig and targets",
    )?;
    // `route53` and `global-accelerator` are read by their own modules; here they only complete the list in messages.
    let kinds = TrafficKind::ALL.map(|k| (k.as_str(), k));
    let kind =
        r.require(&m, "kind", "add kind: rfc2136").and_then(|n| r.choice(n, "traffic.kind", "traffic kind", &kinds));
    let server = r
        .require(&m, "server", "add the DNS server that takes updates, e.g. server: 10.200.0.1:53")
        .and_then(|n| server(r, n));
    let zone = r
        .require(&m, "zone", "add the zone the record lives in, e.g. zone: app.test.")
        .and_then(|n| absolute_name(r, n, "traffic.zone", "app.test."));
    let record = r
        .require(&m, "record", "add the name clients resolve, e.g. record: api.app.test.")
        .and_then(|n| absolute_name(r, n, "traffic.record", "api.app.test.").map(|name| (name, n)));
    let ttl = r.require(&m, "ttl", "add the record's TTL, e.g. ttl: 5s").and_then(|n| ttl(r, n));
    let tsig = r
        .require(
            &m,
            "tsig",
            "add the update key, e.g. tsig: { name: drover, algorithm: hmac-sha256, secret_file: /etc/drover/tsig }",
        )
        .and_then(|n| read_tsig(r, &m, n));
    let targets = r
        .require(
            &m,
            "targets",
            "add the address of each primary and standby region, e.g. targets: { east: 10.200.0.11 }",
        )
        .and_then(|n| read_targets(r, &m, n, regions));

    let (record, record_node) = record?;
    let zone = zone?;
    if !in_zone(&record, &zone) {
        r.error(
            record_node.pos(),
            "traffic.record",
            format!("{record} is not inside zone {zone}; write a name ending in .{zone} (or change the zone)"),
        );
        return None;
    }
    kind?;
    Some(TrafficSpec::Rfc2136(Rfc2136Spec { server: server?, zone, record, ttl: ttl?, tsig: tsig?, targets: targets? }))
}

fn server(r: &mut Reader<'_>, node: &Node) -> Option<SocketAddr> {
    let text = r.text(node, "traffic.server", "an address like 10.200.0.1:53")?;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let message = if text.parse::<IpAddr>().is_ok() {
        format!("'{text}' has no port; write e.g. {text}:53")
    } else {
        format!("'{text}' is not an ip:port address; write e.g. 10.200.0.1:53 (or [fd00::1]:53)")
    };
    r.error(node.pos(), "traffic.server", message);
    None
}

fn in_zone(record: &str, zone: &str) -> bool {
    record == zone || record.ends_with(&format!(".{zone}"))
}

fn read_tsig(r: &mut Reader<'_>, traffic: &Mapping<'_>, node: &Node) -> Option<Tsig> {
    let at = traffic.key("tsig").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "traffic.tsig",
        at,
        &TSIG_FIELDS,
        &["secret"],
        "a mapping like { name: drover, algorithm: hmac-sha256, secret_file: /etc/drover/tsig }",
    )?;
    let name = r
        .require(&m, "name", "add the key's name as the DNS server knows it, e.g. name: drover")
        .and_then(|n| r.text(n, "traffic.tsig.name", "a key name like drover"));
    let algorithm = r
        .require(&m, "algorithm", "add algorithm: hmac-sha256 (or hmac-sha384, hmac-sha512)")
        .and_then(|n| r.choice(n, "traffic.tsig.algorithm", "TSIG algorithm", &ALGORITHMS));
    let secret = r.secret_ref(&m, "secret", "secret_env", "secret_file");
    Some(Tsig { name: name?.to_owned(), algorithm: algorithm?, secret: secret? })
}

fn read_targets(
    r: &mut Reader<'_>,
    traffic: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, IpAddr>> {
    let at = traffic.key("targets").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: 10.0.0.1");
    let entries = region_entries(r, node, "traffic.targets", at, regions, "traffic target", &example)?;
    r.each(&entries, |r, entry| {
        let text = r.text(entry.value, &entry.path, "an IP address like 10.200.0.11")?;
        let ip = text.parse::<IpAddr>().ok();
        if ip.is_none() {
            r.error(
                entry.value.pos(),
                &entry.path,
                format!("'{text}' is not an IP address; write the address clients should reach, e.g. 10.200.0.11"),
            );
        }
        ip
    })
}

#[cfg(test)]
mod tests {
    use super::in_zone;

    #[test]
    fn records_inside_zones() {
        assert!(in_zone("api.app.test.", "app.test."));
        assert!(in_zone("app.test.", "app.test."));
        assert!(!in_zone("api.other.test.", "app.test."));
        // A suffix match is not enough: the label boundary matters.
        assert!(!in_zone("api.myapp.test.", "app.test."));
    }
}
