//! The plan file: read and validated, the secrets it references resolved from the
//! environment and files, and the plan in brief as both front ends show it.

use std::path::Path;

use drover_adapters::secret_file;
use drover_core::plan::{Plan, parse_plan};
use drover_core::secret::{Secret, SecretRef, SecretSource};

use crate::app::error::Failure;

/// Secrets from the environment and from files, read only when needed; a file its group
/// or others can open is refused (`drover_adapters::secret_file`).
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => match secret_file::read(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!("file {} is empty", path.display())),
                Err(e) => Err(e.describe(|e| format!("cannot read file {}: {e}", path.display()), "file")),
            },
        }
    }
}

/// Reads and validates a plan; any problem is bad input (exit 2).
pub fn load_plan(path: &Path) -> Result<Plan, Failure> {
    load_plan_with(path, &EnvSecrets)
}

/// Reads and validates a plan, resolving its secret references through `secrets`.
pub fn load_plan_with(path: &Path, secrets: &dyn SecretSource) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("{}: cannot read the plan: {e}", path.display())))?;
    parse_plan(path, &text, secrets).map_err(|errors| Failure::input(errors.to_string()))
}

/// The plan in brief, as `plan check --output json` and the API's /api/v1/plan give it.
pub fn summary_json(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "plan": plan.name,
        "valid": true,
        "regions": plan.regions.iter().map(|(n, r)| (n.clone(), r.role.as_str())).collect::<std::collections::BTreeMap<_, _>>(),
        "database": plan.database.kind().as_str(),
        "replication": plan.database.replication(),
        "record": plan.traffic.record(),
        "checks": plan.checks.keys().collect::<Vec<_>>(),
        "policy": {
            "auto_failover": plan.policy.auto_failover,
            "require_approval": plan.policy.require_approval,
            "quorum": plan.policy.quorum,
            "max_lag_on_failover": plan.policy.max_lag_on_failover,
            "max_lag_time_on_failover_s": plan.policy.max_lag_time_on_failover.map(|d| d.as_secs_f64()),
            "cooldown_s": plan.policy.cooldown.as_secs(),
        },
        "runbooks": {
            "failover": plan.runbooks.failover.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "switchover": plan.runbooks.switchover.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        },
        "drill": { "canary": plan.drill.canary.as_ref().map(canary_json) },
    })
}

/// The canary in brief: its kind, pace and how it resolves names (no URL or DSN: either
/// may be where a user put something private).
fn canary_json(canary: &drover_core::plan::CanarySpec) -> serde_json::Value {
    use drover_core::plan::CanaryResolve;
    let (resolve, dns_server) = match canary.resolve {
        CanaryResolve::Dns { server } => ("dns", server.map(|s| s.to_string())),
        CanaryResolve::Traffic => ("traffic", None),
    };
    serde_json::json!({
        "kind": canary.target.kind(),
        "interval_ms": canary.interval.as_millis() as u64,
        "timeout_ms": canary.timeout.as_millis() as u64,
        "resolve": resolve,
        "dns_server": dns_server,
    })
}
