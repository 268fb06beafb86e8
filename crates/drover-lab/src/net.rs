//! The lab's network: a bridge in the root namespace (the hub) and one namespace per region,
//! each joined to the bridge by a veth pair.

use std::path::Path;

use crate::LabError;
use crate::layout::{BRIDGE, HUB_ADDRESS, PREFIX_LEN, REGIONS, RegionSpec};
use crate::sys;

pub fn namespace_exists(namespace: &str) -> bool {
    Path::new("/run/netns").join(namespace).exists()
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// What of a lab's network exists right now (any of it means a lab is up or half up).
pub fn leftovers() -> Vec<String> {
    let mut found: Vec<String> = REGIONS
        .iter()
        .map(RegionSpec::namespace)
        .filter(|ns| namespace_exists(ns))
        .map(|ns| format!("namespace {ns}"))
        .collect();
    if link_exists(BRIDGE) {
        found.push(format!("bridge {BRIDGE}"));
    }
    found
}

pub fn create() -> Result<(), LabError> {
    let hub = format!("{HUB_ADDRESS}/{PREFIX_LEN}");
    sys::run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    sys::run("ip", &["addr", "add", &hub, "dev", BRIDGE])?;
    sys::run("ip", &["link", "set", BRIDGE, "up"])?;
    for region in &REGIONS {
        let ns = region.namespace();
        let veth = region.veth();
        let peer = format!("{veth}-ns");
        let address = format!("{}/{PREFIX_LEN}", region.address);
        sys::run("ip", &["netns", "add", &ns])?;
        sys::run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        sys::run("ip", &["link", "set", &peer, "netns", &ns])?;
        sys::run("ip", &["link", "set", &veth, "master", BRIDGE])?;
        sys::run("ip", &["link", "set", &veth, "up"])?;
        sys::run("ip", &["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
        sys::run("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
        sys::run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        sys::run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Removes namespaces (their nft tables go with them), veths and the bridge. Returns what it removed.
pub fn remove() -> Vec<String> {
    let mut removed = Vec::new();
    for region in &REGIONS {
        let ns = region.namespace();
        if namespace_exists(&ns) && sys::run("ip", &["netns", "del", &ns]).is_ok() {
            removed.push(format!("namespace {ns}"));
        }
        if link_exists(&region.veth()) {
            let _ = sys::run("ip", &["link", "del", &region.veth()]);
        }
    }
    if link_exists(BRIDGE) && sys::run("ip", &["link", "del", BRIDGE]).is_ok() {
        removed.push(format!("bridge {BRIDGE}"));
    }
    removed
}

/// Host firewall settings that would drop the lab's bridged traffic, as warnings a person can act on.
/// With br_netfilter loaded and `bridge-nf-call-iptables` = 1, frames between regions cross the
/// host's FORWARD hooks, where a drop policy (Docker, ufw) silently cuts region from region.
pub fn bridge_filter_warnings() -> Vec<String> {
    let calls_iptables = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if !calls_iptables {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    let ruleset = sys::run("nft", &["list", "ruleset"]).unwrap_or_default();
    if forward_drop_chains(&ruleset) > 0 {
        warnings.push(format!(
            "the host's nftables has a forward chain with policy drop and bridge-nf-call-iptables=1: traffic between \
             regions on {BRIDGE} may be dropped; allow it (e.g. `iifname {BRIDGE} oifname {BRIDGE} accept` in that chain) \
             or set `sysctl net.bridge.bridge-nf-call-iptables=0`"
        ));
    }
    if let Ok(out) = sys::run("iptables-legacy", &["-S", "FORWARD"])
        && out.lines().any(|l| l.trim() == "-P FORWARD DROP")
    {
        warnings.push(format!(
            "iptables (legacy) FORWARD policy is DROP and bridge-nf-call-iptables=1: traffic between regions on {BRIDGE} \
             may be dropped; add `iptables -I FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT`"
        ));
    }
    warnings
}

/// Chains hooked on forward whose policy is drop, in `nft list ruleset` output.
fn forward_drop_chains(ruleset: &str) -> usize {
    ruleset.lines().filter(|l| l.contains("hook forward") && l.contains("policy drop")).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_forward_chains_that_drop() {
        let ruleset = "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                       table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n";
        assert_eq!(forward_drop_chains(ruleset), 1);
        assert_eq!(
            forward_drop_chains(
                "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n"
            ),
            0
        );
    }

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        for r in &REGIONS {
            assert!(format!("{}-ns", r.veth()).len() <= 15, "{}", r.veth());
        }
    }
}
