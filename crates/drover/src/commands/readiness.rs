//! `drover readiness`: would a failover work now, and meet the plan's objectives? Every
//! rule's finding, pass, warn or fail, with the reason and what to do.

use std::process::ExitCode;

use crate::app::context::Context;
use crate::app::error::Failure;
use crate::app::readiness::{Report, assess};
use crate::app::runtime;
use crate::app::store::PlanArgs;
use crate::commands::table::{Align, Table};
use crate::commands::{Output, finish, print_json};

pub fn run(args: &PlanArgs, output: Output) -> ExitCode {
    finish(runtime().block_on(async {
        let cx = Context::open(args).await?;
        let report = assess(&cx).await?;
        match output {
            Output::Json => print_json(&report),
            Output::Text => print!("{}", render(&report)),
        }
        let failing = report.failing().count();
        if failing > 0 {
            return Err(Failure::failed(format!(
                "{failing} readiness finding(s) fail: a failover now may not work or not meet the objectives"
            )));
        }
        Ok(())
    }))
}

/// The findings as a table, after one line that counts them.
pub fn render(report: &Report) -> String {
    let count = |level| report.findings.iter().filter(|f| f.level == level).count();
    use drover_core::readiness::Level;
    let mut out = format!(
        "readiness of {}: {} ({} fail, {} warn, {} pass)\n\n",
        report.plan,
        report.level.as_str(),
        count(Level::Fail),
        count(Level::Warn),
        count(Level::Pass)
    );
    let mut table = Table::new(&[
        ("REGION", Align::Left),
        ("RULE", Align::Left),
        ("LEVEL", Align::Left),
        ("REASON", Align::Left),
        ("ACTION", Align::Left),
    ]);
    for f in &report.findings {
        table.row(vec![
            f.region_label().to_owned(),
            f.rule.as_str().to_owned(),
            f.level.as_str().to_owned(),
            f.reason.clone(),
            f.action.clone(),
        ]);
    }
    out.push_str(&table.render());
    out
}
