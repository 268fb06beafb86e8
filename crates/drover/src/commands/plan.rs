use std::path::Path;
use std::process::ExitCode;

use crate::cli::Output;
use crate::commands::{finish, print_json};
use crate::wiring;

pub fn check(path: &Path, output: Output) -> ExitCode {
    finish(wiring::load_plan(path).map(|plan| match output {
        Output::Text => print!("{}", drover_core::plan::summary(&plan)),
        Output::Json => print_json(&serde_json::json!({
            "plan": plan.name,
            "valid": true,
            "regions": plan.regions.iter().map(|(n, r)| (n.clone(), r.role.as_str())).collect::<std::collections::BTreeMap<_, _>>(),
            "replication": plan.postgres().replication.as_str(),
            "record": plan.rfc2136().record,
            "checks": plan.checks.keys().collect::<Vec<_>>(),
            "runbooks": {
                "failover": plan.runbooks.failover.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "switchover": plan.runbooks.switchover.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            },
        })),
    }))
}
