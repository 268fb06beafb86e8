//! The optional top-level `journal` section: how much history the journal keeps.
//!
//! ```yaml
//! journal:
//!   keep: { last: 1000, days: 400 }
//! ```
//!
//! Ended runs beyond both rules are removed after a run ends and on the daemon's rounds,
//! a bounded batch at a time. Whichever rule keeps more wins; the active run and the
//! newest run of each kind are always kept. Without `keep`, every run is kept.

use super::model::JournalSpec;
use super::raw::{Node, Value};
use super::reader::{Mapping, Reader};
use crate::history::Keep;

const FIELDS: [&str; 1] = ["keep"];
const KEEP: [&str; 2] = ["last", "days"];

pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>) -> Option<JournalSpec> {
    let Some(node) = top.get("journal") else {
        return Some(JournalSpec::default());
    };
    if node.value == Value::Null {
        return Some(JournalSpec::default());
    }
    let at = top.key("journal").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "journal", at, &FIELDS, &[], "a mapping like { keep: { last: 1000, days: 400 } }")?;
    let keep = match m.get("keep") {
        Some(n) if n.value != Value::Null => Some(read_keep(r, &m, n)?),
        _ => None,
    };
    Some(JournalSpec { keep })
}

fn read_keep(r: &mut Reader<'_>, journal: &Mapping<'_>, node: &Node) -> Option<Keep> {
    let at = journal.key("keep").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "journal.keep", at, &KEEP, &[], "a mapping like { last: 1000, days: 400 }")?;
    // At least one run is always kept (the newest of each kind), so 1 is the least that says anything.
    let last = m.get("last").map(|n| r.count(n, &m.field("last"), 1));
    let days = m.get("days").map(|n| r.count(n, &m.field("days"), 1));
    if last.is_none() && days.is_none() {
        r.error(
            at,
            "journal.keep",
            "keeps nothing it names; add last: <runs> and/or days: <days>, e.g. { last: 1000, days: 400 }",
        );
        return None;
    }
    let (last, days) = (unwrap_read(last)?, unwrap_read(days)?);
    Some(Keep { last, days })
}

/// A field that was absent (Some(None)), read (Some(Some)), or wrong (None: already reported).
fn unwrap_read(field: Option<Option<u32>>) -> Option<Option<u32>> {
    match field {
        None => Some(None),
        Some(read) => read.map(Some),
    }
}
