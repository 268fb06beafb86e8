//! The optional top-level `aws` section: how long drover waits for the AWS APIs.
//!
//! ```yaml
//! aws:
//!   timeouts: { connect: 3s, attempt: 10s, operation: 30s }
//! ```
//!
//! Every AWS SDK client drover builds gets these deadlines, so an endpoint that accepts a
//! connection and never answers ends in a clear error instead of a silent hang.

use super::model::{AwsSettings, AwsTimeouts};
use super::raw::{Node, Value};
use super::reader::{Mapping, Reader};
use crate::duration::format_duration;

const FIELDS: [&str; 1] = ["timeouts"];
const TIMEOUTS: [&str; 3] = ["connect", "attempt", "operation"];

pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>) -> Option<AwsSettings> {
    let Some(node) = top.get("aws") else {
        return Some(AwsSettings::default());
    };
    if node.value == Value::Null {
        return Some(AwsSettings::default());
    }
    let at = top.key("aws").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "aws", at, &FIELDS, &[], "a mapping like { timeouts: { attempt: 10s } }")?;
    let timeouts = match m.get("timeouts") {
        Some(n) if n.value != Value::Null => read_timeouts(r, &m, n)?,
        _ => AwsTimeouts::default(),
    };
    Some(AwsSettings { timeouts })
}

fn read_timeouts(r: &mut Reader<'_>, aws: &Mapping<'_>, node: &Node) -> Option<AwsTimeouts> {
    let at = aws.key("timeouts").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "aws.timeouts",
        at,
        &TIMEOUTS,
        &[],
        "a mapping like { connect: 3s, attempt: 10s, operation: 30s }",
    )?;
    let defaults = AwsTimeouts::default();
    let mut field = |key: &str, default| match m.get(key) {
        Some(n) => r.positive_duration(n, &m.field(key)),
        None => Some(default),
    };
    let connect = field("connect", defaults.connect);
    let attempt = field("attempt", defaults.attempt);
    let operation = field("operation", defaults.operation);
    // An attempt is part of the operation, and connecting is part of an attempt: a longer
    // inner deadline would never be reached, which is surely not what was meant. Judged
    // between the values that could be read, so every mistake shows at once.
    let mut ordered = true;
    if let (Some(attempt), Some(operation)) = (attempt, operation)
        && attempt > operation
    {
        let pos = m.get("attempt").or(m.get("operation")).map_or(at, Node::pos);
        r.error(
            pos,
            "aws.timeouts.attempt",
            format!(
                "{} is longer than operation {}; an operation is one or more attempts (the SDK retries), so make attempt at most operation",
                format_duration(attempt),
                format_duration(operation)
            ),
        );
        ordered = false;
    }
    if let (Some(connect), Some(attempt)) = (connect, attempt)
        && connect > attempt
    {
        let pos = m.get("connect").or(m.get("attempt")).map_or(at, Node::pos);
        r.error(
            pos,
            "aws.timeouts.connect",
            format!(
                "{} is longer than attempt {}; connecting is part of an attempt, so make connect at most attempt",
                format_duration(connect),
                format_duration(attempt)
            ),
        );
        ordered = false;
    }
    let (connect, attempt, operation) = (connect?, attempt?, operation?);
    ordered.then_some(AwsTimeouts { connect, attempt, operation })
}
