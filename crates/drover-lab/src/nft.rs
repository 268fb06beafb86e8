//! Network faults as nftables tables inside a region's namespace. Every table drover adds
//! is named `drover_*`, so lifting a fault is deleting tables, never editing rules.

use std::net::Ipv4Addr;

use crate::LabError;
use crate::sys;

pub const BLACKOUT_TABLE: &str = "drover_blackout";
const PARTITION_PREFIX: &str = "drover_partition_";

/// The table cutting a region off from `peer`, named after the peer region.
pub fn partition_table(peer: &str) -> String {
    format!("{PARTITION_PREFIX}{peer}")
}

/// Replaces `table` with `body` in one transaction (so applying twice equals once).
fn replace_table(table: &str, body: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n{body}}}\n")
}

/// Drops every packet in and out of the namespace except on loopback.
pub fn blackout_ruleset() -> String {
    replace_table(
        BLACKOUT_TABLE,
        "  chain input {\n    type filter hook input priority -300; policy drop;\n    iif \"lo\" accept\n  }\n\
         \x20 chain output {\n    type filter hook output priority -300; policy drop;\n    oif \"lo\" accept\n  }\n",
    )
}

pub const LOSS_TABLE: &str = "drover_loss";

/// Drops `percent` of the packets in and out of the namespace at random (nft `numgen`;
/// this kernel has no netem), loopback excepted.
pub fn loss_ruleset(percent: u8) -> String {
    replace_table(
        LOSS_TABLE,
        &format!(
            "  chain input {{\n    type filter hook input priority -300; policy accept;\n    iif \"lo\" accept\n    numgen random mod 100 < {percent} drop\n  }}\n\
             \x20 chain output {{\n    type filter hook output priority -300; policy accept;\n    oif \"lo\" accept\n    numgen random mod 100 < {percent} drop\n  }}\n"
        ),
    )
}

/// Drops every packet between the namespace and `peer_address`, both directions.
pub fn partition_ruleset(peer: &str, peer_address: Ipv4Addr) -> String {
    replace_table(
        &partition_table(peer),
        &format!(
            "  chain input {{\n    type filter hook input priority -300; policy accept;\n    ip saddr {peer_address} drop\n  }}\n\
             \x20 chain output {{\n    type filter hook output priority -300; policy accept;\n    ip daddr {peer_address} drop\n  }}\n"
        ),
    )
}

pub fn apply(namespace: &str, ruleset: &str) -> Result<(), LabError> {
    sys::run_with_input("ip", &["netns", "exec", namespace, "nft", "-f", "-"], Some(ruleset)).map(|_| ())
}

/// The drover tables present in the namespace.
pub fn tables(namespace: &str) -> Result<Vec<String>, LabError> {
    let out = sys::run("ip", &["netns", "exec", namespace, "nft", "list", "tables"])?;
    Ok(parse_tables(&out))
}

/// `table inet drover_blackout` lines -> table names starting with `drover_`.
fn parse_tables(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter(|name| name.starts_with("drover_"))
        .map(str::to_string)
        .collect()
}

pub fn delete(namespace: &str, table: &str) -> Result<(), LabError> {
    sys::run("ip", &["netns", "exec", namespace, "nft", "delete", "table", "inet", table]).map(|_| ())
}

/// What a drover table means to a person: `blackout`, `partition from west`.
pub fn describe(table: &str) -> String {
    match table.strip_prefix(PARTITION_PREFIX) {
        Some(peer) => format!("partition from {peer}"),
        None => table.strip_prefix("drover_").unwrap_or(table).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackout_keeps_loopback_and_drops_everything_else() {
        let rules = blackout_ruleset();
        assert!(rules.starts_with("table inet drover_blackout\ndelete table inet drover_blackout\n"));
        assert!(rules.contains("type filter hook input priority -300; policy drop;\n    iif \"lo\" accept"));
        assert!(rules.contains("type filter hook output priority -300; policy drop;\n    oif \"lo\" accept"));
    }

    #[test]
    fn partition_drops_only_the_peer_both_ways() {
        let rules = partition_ruleset("west", Ipv4Addr::new(10, 200, 0, 12));
        assert!(rules.contains("table inet drover_partition_west {"));
        assert!(rules.contains("policy accept;\n    ip saddr 10.200.0.12 drop"));
        assert!(rules.contains("policy accept;\n    ip daddr 10.200.0.12 drop"));
    }

    #[test]
    fn loss_drops_a_random_share_both_ways_but_not_loopback() {
        let rules = loss_ruleset(5);
        assert!(rules.contains("table inet drover_loss {"));
        assert_eq!(rules.matches("numgen random mod 100 < 5 drop").count(), 2, "{rules}");
        assert!(rules.contains("iif \"lo\" accept") && rules.contains("oif \"lo\" accept"));
        assert_eq!(describe(LOSS_TABLE), "loss");
    }

    #[test]
    fn listing_keeps_only_drover_tables() {
        let listing = "table inet drover_blackout\ntable ip nat\ntable inet drover_partition_east\n";
        let tables = parse_tables(listing);
        assert_eq!(tables, ["drover_blackout", "drover_partition_east"]);
        assert_eq!(describe(&tables[0]), "blackout");
        assert_eq!(describe(&tables[1]), "partition from east");
    }
}
