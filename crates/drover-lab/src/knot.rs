//! Knot DNS in the hub: authoritative for the service zone, updatable with the lab's TSIG key.

use std::path::Path;

use crate::LabError;
use crate::layout::{DNS_PORT, HUB_ADDRESS, LabDir, RECORD, REGIONS, Role, TSIG_KEY_NAME, ZONE};
use crate::sys;

pub const ZONE_FILE: &str = "app.test.zone";

/// A fresh hmac-sha256 secret (base64), made by Knot's own keymgr so the format is what Knot reads.
pub fn generate_tsig_secret() -> Result<String, LabError> {
    let out = sys::run("keymgr", &["-t", TSIG_KEY_NAME, "hmac-sha256"])?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("secret:").map(|s| s.trim().to_string()))
        .ok_or_else(|| LabError::failed(format!("keymgr -t printed no secret: {out}")))
}

/// The zone with the service record on the primary region, TTL 1 s so clients follow a switch fast.
pub fn zone_text() -> String {
    let primary = REGIONS.iter().find(|r| r.role == Role::Primary).expect("a primary region");
    let label = RECORD.strip_suffix(&format!(".{ZONE}")).expect("record inside the zone");
    format!(
        "$ORIGIN {ZONE}\n$TTL 60\n\
         @ SOA ns.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 1\n\
         @ NS ns\n\
         ns A {HUB_ADDRESS}\n\
         {label} 1 A {}\n",
        primary.address
    )
}

/// knotd's configuration. Updates are flushed to the zone file at once, so a restarted knotd
/// serves what drover last switched to, never the initial record.
pub fn config_text(dir: &Path, secret: &str) -> String {
    let d = dir.display();
    format!(
        r#"server:
    rundir: "{d}/run"
    listen: {HUB_ADDRESS}@{DNS_PORT}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{d}/db"
key:
  - id: {TSIG_KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: drover-update
    key: {TSIG_KEY_NAME}
    action: update
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "{ZONE_FILE}"
    acl: drover-update
    zonefile-sync: 0
    journal-content: changes
"#
    )
}

/// Writes the zone, the config (mode 0600: it holds the key) and knotd's directories.
pub fn prepare(lab: &LabDir, secret: &str) -> Result<(), LabError> {
    let dir = lab.knot_dir();
    sys::create_dir(&dir, 0o700)?;
    sys::create_dir(&dir.join("run"), 0o700)?;
    sys::create_dir(&dir.join("db"), 0o700)?;
    sys::write_file(&dir.join(ZONE_FILE), &zone_text())?;
    sys::write_private(&lab.knot_conf(), &config_text(&dir, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_points_the_service_at_east_with_a_one_second_ttl() {
        let zone = zone_text();
        assert!(zone.contains("\napi 1 A 10.200.0.11\n"), "{zone}");
        assert!(zone.contains("ns A 10.200.0.1\n"));
    }

    #[test]
    fn config_listens_on_the_hub_and_lets_the_key_update() {
        let conf = config_text(Path::new("/tmp/lab/knot"), "c2VjcmV0");
        assert!(conf.contains("listen: 10.200.0.1@53"));
        assert!(conf.contains("secret: c2VjcmV0"));
        assert!(conf.contains("acl: drover-update"));
        assert!(conf.contains("rundir: \"/tmp/lab/knot/run\""));
    }
}
