//! The optional top-level `vantages` section: who may vote, and the key their reports
//! are signed with.
//!
//! ```yaml
//! vantages:
//!   names: [east, west, witness]
//!   key_file: /etc/drover/peer.key        # or key_env
//!   previous_key_file: /etc/drover/peer.key.old   # during a rotation only
//! ```
//!
//! Without a key, a report counts when it comes from a peer the daemon was given and
//! names itself as that peer: anything that can answer at the peer's URL (or write to
//! etcd) can vote. With a key, only reports signed with it count.

use super::model::VantagesSpec;
use super::raw::Node;
use super::reader::{Mapping, Reader, check_identifier};
use crate::secret::SecretRef;

const FIELDS: [&str; 7] =
    ["names", "key", "key_env", "key_file", "previous_key", "previous_key_env", "previous_key_file"];

/// HMAC-SHA256 wants a key as long as its output: a shorter one is easier to guess.
pub const MIN_KEY_BYTES: usize = 32;

pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>) -> Option<VantagesSpec> {
    let Some(node) = top.get("vantages") else {
        return Some(VantagesSpec::default());
    };
    let at = top.key("vantages").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "vantages",
        at,
        &FIELDS,
        &[],
        "a mapping like { names: [east, west, witness], key_file: /etc/drover/peer.key }",
    )?;
    let names = match m.get("names") {
        Some(n) => read_names(r, &m, n),
        None => Some(Vec::new()),
    };
    let key = read_key(r, &m, "key");
    let previous_key = read_key(r, &m, "previous_key");
    if let (Some(None), Some(Some(_))) = (&key, &previous_key) {
        let pos = m.key("previous_key_env").or(m.key("previous_key_file")).map_or(at, Node::pos);
        r.error(
            pos,
            &m.field("previous_key"),
            "a previous key is only accepted beside the key reports are signed with now; add key_env or key_file",
        );
        return None;
    }
    Some(VantagesSpec { names: names?, key: key?, previous_key: previous_key? })
}

fn read_names(r: &mut Reader<'_>, m: &Mapping<'_>, node: &Node) -> Option<Vec<String>> {
    let field = m.field("names");
    let items = r.list(node, &field, "a list of vantage names, e.g. [east, west, witness]")?;
    if items.is_empty() {
        r.error(node.pos(), &field, "is empty; list every vantage, e.g. [east, west, witness], or leave names out");
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Some(name) = r.text(item, &item_field, "a vantage name like east") else {
            complete = false;
            continue;
        };
        let entry = super::reader::Entry { name: name.to_owned(), key: item, value: item, path: item_field.clone() };
        let errors = r.errors.len();
        check_identifier(r, &entry, "vantage");
        if r.errors.len() > errors {
            complete = false;
            continue;
        }
        if names.iter().any(|n| n == name) {
            r.error(item.pos(), &item_field, format!("'{name}' is listed twice; list each vantage once"));
            complete = false;
            continue;
        }
        names.push(name.to_owned());
    }
    complete.then_some(names)
}

/// `<prefix>_env` or `<prefix>_file`, if either (or an inline `<prefix>`) is written:
/// Some(None) when none is, None after an error.
fn read_key(r: &mut Reader<'_>, m: &Mapping<'_>, prefix: &str) -> Option<Option<SecretRef>> {
    let (inline, env, file) = (prefix.to_owned(), format!("{prefix}_env"), format!("{prefix}_file"));
    if m.get(&inline).is_none() && m.get(&env).is_none() && m.get(&file).is_none() {
        return Some(None);
    }
    let reference = r.secret_ref(m, &inline, &env, &file)?;
    let node = m.get(&env).or(m.get(&file)).expect("secret_ref found one of them");
    let field = m.field(if m.get(&env).is_some() { &env } else { &file });
    // secret_ref resolved it already; read again only to judge its length, never to print it.
    if let Ok(secret) = r.resolve(&reference)
        && secret.expose().len() < MIN_KEY_BYTES
    {
        r.error(
            node.pos(),
            &field,
            format!(
                "the key is {} bytes long; use at least {MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`",
                secret.expose().len()
            ),
        );
        return None;
    }
    Some(Some(reference))
}
