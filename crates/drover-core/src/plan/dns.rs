//! DNS names and TTLs as the DNS traffic sections (`rfc2136`, `route53`) write them.

use super::raw::Node;
use super::reader::Reader;

/// A fully qualified DNS name, lowercased for comparison.
pub(super) fn absolute_name(r: &mut Reader<'_>, node: &Node, field: &str, example: &str) -> Option<String> {
    let text = r.text(node, field, &format!("a DNS name like {example}"))?;
    if text.chars().any(char::is_whitespace) || text.contains("..") || text == "." {
        r.error(node.pos(), field, format!("'{text}' is not a DNS name; write e.g. {example}"));
        return None;
    }
    if !text.ends_with('.') {
        r.error(node.pos(), field, format!("'{text}' is not fully qualified; write {text}. (with the final dot)"));
        return None;
    }
    Some(text.to_ascii_lowercase())
}

/// DNS TTLs are whole seconds.
pub(super) fn ttl(r: &mut Reader<'_>, node: &Node) -> Option<std::time::Duration> {
    let ttl = r.duration(node, "traffic.ttl")?;
    if ttl.subsec_nanos() != 0 {
        let up = ttl.as_secs() + 1;
        r.error(node.pos(), "traffic.ttl", format!("DNS TTLs are whole seconds; write e.g. {up}s"));
        return None;
    }
    Some(ttl)
}
