//! `traffic.kind: global-accelerator`: an AWS Global Accelerator with one endpoint
//! group per region, switched by the groups' traffic dials.

use std::collections::BTreeMap;

use super::model::{EndpointGroupTarget, GlobalAcceleratorSpec, TrafficSpec};
use super::raw::Node;
use super::reader::{Entry, Mapping, Reader};
use super::regions::{Regions, distinct_per_region, region_entries};
use super::route53::{DEFAULT_CHANGE_TIMEOUT, DEFAULT_STAGE_PAUSE, read_stages};

const FIELDS: [&str; 6] = ["kind", "accelerator_arn", "endpoint_groups", "stages", "stage_pause", "change_timeout"];
const GROUP_FIELDS: [&str; 2] = ["arn", "endpoints"];
const EXAMPLE_ARN: &str = "arn:aws:globalaccelerator::123456789012:accelerator/1234abcd-abcd-1234-abcd-1234abcdefgh";

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<TrafficSpec> {
    let at = top.key("traffic").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "traffic", at, &FIELDS, &[], "a mapping with kind, accelerator_arn and endpoint_groups")?;
    let accelerator = r
        .require(&m, "accelerator_arn", &format!("add the accelerator's ARN, e.g. accelerator_arn: {EXAMPLE_ARN}"))
        .and_then(|n| accelerator_arn(r, n));
    let groups = r
        .require(
            &m,
            "endpoint_groups",
            "add each primary and standby region's endpoint group, e.g. endpoint_groups: { east: { arn: <endpoint group ARN> } }",
        )
        .and_then(|n| read_groups(r, &m, n, regions, accelerator.as_deref()));
    let stages = match m.get("stages") {
        Some(n) => read_stages(r, n),
        None => Some(vec![100]),
    };
    let stage_pause = match m.get("stage_pause") {
        Some(n) => r.positive_duration(n, "traffic.stage_pause"),
        None => Some(DEFAULT_STAGE_PAUSE),
    };
    let change_timeout = match m.get("change_timeout") {
        Some(n) => r.positive_duration(n, "traffic.change_timeout"),
        None => Some(DEFAULT_CHANGE_TIMEOUT),
    };
    Some(TrafficSpec::GlobalAccelerator(GlobalAcceleratorSpec {
        accelerator_arn: accelerator?,
        endpoint_groups: groups?,
        stages: stages?,
        stage_pause: stage_pause?,
        change_timeout: change_timeout?,
    }))
}

/// `arn:aws:globalaccelerator::<account>:accelerator/<id>`, nothing under it.
fn accelerator_arn(r: &mut Reader<'_>, node: &Node) -> Option<String> {
    let text = r.text(node, "traffic.accelerator_arn", "an accelerator ARN")?.trim();
    let ok = text.starts_with("arn:aws")
        && text.contains(":globalaccelerator::")
        && text.split_once(":accelerator/").is_some_and(|(_, id)| !id.is_empty() && !id.contains('/'));
    if !ok {
        r.error(
            node.pos(),
            "traffic.accelerator_arn",
            format!(
                "'{text}' is not a Global Accelerator ARN; copy it from `aws globalaccelerator list-accelerators --region us-west-2`, e.g. {EXAMPLE_ARN}"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

fn read_groups(
    r: &mut Reader<'_>,
    traffic: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
    accelerator: Option<&str>,
) -> Option<BTreeMap<String, EndpointGroupTarget>> {
    let at = traffic.key("endpoint_groups").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {{ arn: <endpoint group ARN> }}");
    let entries =
        region_entries(r, node, "traffic.endpoint_groups", at, regions, "Global Accelerator endpoint group", &example)?;
    // Two regions on one group could never be told apart by their dials.
    distinct_per_region(
        r,
        &entries,
        |r, entry| read_group(r, entry, accelerator),
        |g| &g.arn,
        "arn",
        |_, first| format!("is also {first}'s endpoint group; each region needs its own"),
    )
}

/// `east: { arn: ..., endpoints: { <endpoint id>: <weight>, ... } }`.
fn read_group(r: &mut Reader<'_>, entry: &Entry<'_>, accelerator: Option<&str>) -> Option<EndpointGroupTarget> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &GROUP_FIELDS,
        &[],
        "a mapping like { arn: <endpoint group ARN>, endpoints: { <load balancer ARN>: 100 } }",
    )?;
    let arn = r
        .require(
            &m,
            "arn",
            "add the endpoint group's ARN, e.g. arn: <accelerator ARN>/listener/<id>/endpoint-group/<id>",
        )
        .and_then(|n| group_arn(r, n, &m.field("arn"), accelerator));
    let endpoints = match m.get("endpoints") {
        Some(n) => read_endpoints(r, n, &m.field("endpoints")),
        None => Some(BTreeMap::new()),
    };
    Some(EndpointGroupTarget { arn: arn?, endpoints: endpoints? })
}

fn group_arn(r: &mut Reader<'_>, node: &Node, field: &str, accelerator: Option<&str>) -> Option<String> {
    let text = r.text(node, field, "an endpoint group ARN")?.trim();
    if !text.contains("/listener/") || !text.contains("/endpoint-group/") {
        r.error(
            node.pos(),
            field,
            format!(
                "'{text}' is not an endpoint group ARN (…:accelerator/<id>/listener/<id>/endpoint-group/<id>); copy it from `aws globalaccelerator list-endpoint-groups --region us-west-2`"
            ),
        );
        return None;
    }
    if let Some(accelerator) = accelerator
        && !text.starts_with(&format!("{accelerator}/"))
    {
        r.error(
            node.pos(),
            field,
            format!("'{text}' is not under traffic.accelerator_arn ({accelerator}); use an endpoint group of that accelerator"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// Endpoint id -> weight (0 to 255, Global Accelerator's range).
fn read_endpoints(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<BTreeMap<String, u8>> {
    let entries =
        r.entries(node, field, "a mapping of endpoint id to weight, like { <load balancer ARN>: 100 }", "endpoint")?;
    r.each(&entries, |r, entry| match r.count(entry.value, &entry.path, 0)? {
        weight if weight <= 255 => Some(weight as u8),
        weight => {
            r.error(
                entry.value.pos(),
                &entry.path,
                format!("{weight} is more than 255, Global Accelerator's largest weight"),
            );
            None
        }
    })
}
