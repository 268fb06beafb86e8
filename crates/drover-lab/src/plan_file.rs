//! The plan file a lab writes for itself: the same format users write, secrets by reference.

use crate::layout::{LabDir, PG_BIN_DIR};
use crate::state::Replication;

/// `DIR/plan.yaml` for the lab at `dir`. With daemons, they fail over by themselves
/// once two of the three vantages (east, west, witness) see the primary down.
pub fn plan_yaml(dir: &LabDir, replication: Replication, daemons: bool) -> String {
    let policy = if daemons {
        "policy: { auto_failover: true, quorum: 2, max_lag_on_failover: 16MiB, cooldown: 1m, detect_with: [api, db] }\n"
    } else {
        "policy: { quorum: 1, max_lag_on_failover: 16MiB, cooldown: 1m, detect_with: [api, db] }\n"
    };
    let (rpo, mode) = match replication {
        Replication::Synchronous => ("0s", "synchronous"),
        Replication::Asynchronous => ("5s", "asynchronous"),
    };
    let member = |region: &str| {
        format!(
            "    {region}:\n      dsn_file: {dsn}\n      host: {{ exec: [ip, netns, exec, drover-{region}, runuser, -u, postgres, --], data_dir: {data}, bin_dir: {PG_BIN_DIR} }}\n",
            dsn = dir.dsn_file(region).display(),
            data = dir.pgdata(region).display(),
        )
    };
    format!(
        "# Written by 'drover lab up' for the lab in {root}.\n\
         name: lab\n\
         objectives: {{ rto: 10s, rpo: {rpo} }}\n\
         regions:\n  east: {{ role: primary }}\n  west: {{ role: standby }}\n  witness: {{ role: witness }}\n\
         database:\n  kind: postgres\n  replication: {mode}\n\
         \x20 # The regions share one machine: a live member answers a connect in milliseconds.\n\
         \x20 connect_timeout: 1s\n  members:\n{east}{west}\
         traffic:\n  kind: rfc2136\n  server: 10.200.0.1:53\n  zone: app.test.\n  record: api.app.test.\n  ttl: 1s\n\
         \x20 tsig: {{ name: drover, algorithm: hmac-sha256, secret_file: {tsig} }}\n\
         \x20 targets: {{ east: 10.200.0.11, west: 10.200.0.12 }}\n\
         checks:\n\
         \x20 api: {{ http: \"http://{{target}}:8080/healthz\", interval: 1s, timeout: 500ms, failure_threshold: 3, success_threshold: 2 }}\n\
         \x20 db:  {{ postgres: member, interval: 1s, timeout: 500ms, failure_threshold: 3, success_threshold: 2 }}\n\
         {policy}\
         # Only the three daemons vote, and only with reports signed with the lab's peer key.\n\
         vantages: {{ names: [east, west, witness], key_file: {peer_key} }}\n",
        root = dir.root().display(),
        peer_key = dir.peer_key().display(),
        east = member("east"),
        west = member("west"),
        tsig = dir.tsig_key().display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_core::secret::{Secret, SecretRef, SecretSource};
    use std::path::Path;

    struct AnySecret;
    impl SecretSource for AnySecret {
        fn resolve(&self, _: &SecretRef) -> Result<Secret, String> {
            // Long enough for the peer key, which must be at least 32 bytes.
            Ok(Secret::new("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"))
        }
    }

    #[test]
    fn the_lab_plan_is_a_valid_plan() {
        let dir = LabDir::new("/tmp/drover-lab");
        for (replication, daemons) in [(Replication::Synchronous, false), (Replication::Asynchronous, true)] {
            let text = plan_yaml(&dir, replication, daemons);
            let plan = drover_core::plan::parse_plan(Path::new("/tmp/drover-lab/plan.yaml"), &text, &AnySecret);
            assert!(plan.is_ok(), "{text}\n{}", plan.err().map(|e| e.to_string()).unwrap_or_default());
        }
    }

    #[test]
    fn plan_names_the_lab_files_and_the_replication_objective() {
        let text = plan_yaml(&LabDir::new("/srv/lab"), Replication::Synchronous, false);
        assert!(text.contains("objectives: { rto: 10s, rpo: 0s }"));
        assert!(text.contains("replication: synchronous\n"));
        assert!(text.contains("      dsn_file: /srv/lab/secrets/east.dsn\n"));
        assert!(text.contains(
            "      host: { exec: [ip, netns, exec, drover-west, runuser, -u, postgres, --], data_dir: /srv/lab/west/pgdata, bin_dir: /usr/lib/postgresql/15/bin }\n"
        ));
        assert!(text.contains("secret_file: /srv/lab/secrets/tsig.key }"));
        assert!(text.contains("vantages: { names: [east, west, witness], key_file: /srv/lab/secrets/peer.key }\n"));
        let async_text = plan_yaml(&LabDir::new("/srv/lab"), Replication::Asynchronous, true);
        assert!(async_text.contains("policy: { auto_failover: true, quorum: 2,"), "{async_text}");
        assert!(text.contains("policy: { quorum: 1,"), "{text}");
        assert!(async_text.contains("rpo: 5s") && async_text.contains("replication: asynchronous\n"));
    }
}
