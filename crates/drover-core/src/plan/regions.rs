//! The `regions` section, and what every section keyed by region shares: which
//! regions exist, their roles, and the per-region entries other sections read.

use std::collections::BTreeMap;

use super::model::{Region, Role};
use super::raw::{self, Node};
use super::reader::{Entry, Mapping, Pos, Reader, check_identifier, closest, join, list_words};

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

    pub(super) fn into_model(self) -> Option<BTreeMap<String, Region>> {
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

pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>, node: &Node) -> Option<Regions> {
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
