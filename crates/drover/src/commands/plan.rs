use std::path::Path;
use std::process::ExitCode;

use drover_core::engine;

use crate::app::context::adapters;
use crate::app::error::Failure;
use crate::app::plan::{load_plan, summary_json};
use crate::app::runtime;
use crate::commands::{Output, finish, print_json};

pub fn check(path: &Path, output: Output) -> ExitCode {
    finish(load_plan(path).map(|plan| match output {
        Output::Text => print!("{}", drover_core::plan::summary(&plan)),
        Output::Json => print_json(&summary_json(&plan)),
    }))
}

/// `drover plan check --live`: the plan, then every resource it names read and checked as a
/// run's preflight checks them (`drover_core::preflight`). Problems are bad input (exit 2):
/// the plan or the account must change before a run could use them. Resources that cannot
/// be reached are not judged here: `drover status` shows what answers.
pub fn check_live(path: &Path, output: Output) -> ExitCode {
    finish(runtime().block_on(async {
        let plan = load_plan(path)?;
        let adapters = adapters(&plan)?;
        let problems = drover_core::preflight::for_plan(&plan, adapters.providers()).await;
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
    finish(load_plan(path).map(|plan| match drover_core::plan::iam::policy(&plan) {
        Some(policy) => print_json(&policy),
        None => {
            eprintln!("{}: this plan uses no AWS resources; drover needs no IAM permissions for it", path.display())
        }
    }))
}
