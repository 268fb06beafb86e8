use std::path::Path;
use std::process::ExitCode;

use drover_core::engine;
use drover_core::plan::Plan;

use crate::cli::Output;
use crate::commands::{Failure, finish, print_json};
use crate::wiring;

pub fn check(path: &Path, output: Output) -> ExitCode {
    finish(wiring::load_plan(path).map(|plan| match output {
        Output::Text => print!("{}", drover_core::plan::summary(&plan)),
        Output::Json => print_json(&summary_json(&plan)),
    }))
}

/// `drover plan check --live`: the plan, then every resource it names read and checked as a
/// run's preflight checks them (`drover_core::preflight`). Problems are bad input (exit 2):
/// the plan or the account must change before a run could use them. Resources that cannot
/// be reached are not judged here: `drover status` shows what answers.
pub fn check_live(path: &Path, output: Output) -> ExitCode {
    finish(crate::commands::runtime().block_on(async {
        let plan = wiring::load_plan(path)?;
        let world = wiring::World::new(&plan)?;
        let problems = drover_core::preflight::for_plan(&plan, world.providers()).await;
        match output {
            Output::Text => {
                print!("{}", drover_core::plan::summary(&plan));
                if problems.is_empty() {
                    println!("live       every resource the plan names exists and is usable");
                }
            }
            Output::Json => {
                let mut json = summary_json(&plan);
                json["live"] = serde_json::json!({ "problems": problems });
                print_json(&json);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Failure::input(format!("{}: {}", path.display(), engine::Refusal::Preflight(problems))))
        }
    }))
}

/// `drover plan iam`: the policy document, or a note that none is needed.
pub fn iam(path: &Path) -> ExitCode {
    finish(wiring::load_plan(path).map(|plan| match drover_core::plan::iam::policy(&plan) {
        Some(policy) => print_json(&policy),
        None => {
            eprintln!("{}: this plan uses no AWS resources; drover needs no IAM permissions for it", path.display())
        }
    }))
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
    })
}
