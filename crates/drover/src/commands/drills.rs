//! `drover drills` and `drover drills show`: the drill history and one drill's evidence
//! (its report as text, JSON, Markdown or a self-contained HTML page), here or through a
//! daemon (`--server`).

use std::path::PathBuf;
use std::process::ExitCode;

use drover_core::drill::DrillReport;
use drover_core::drill_log::DrillSummary;
use drover_core::history::{self, DEFAULT_PAGE, PageRequest};
use drover_core::run::RunId;

use crate::app::drills::{self, DrillRows};
use crate::app::error::Failure;
use crate::app::runtime;
use crate::app::store::open_journal;
use crate::commands::remote::{Target, TargetArgs};
use crate::commands::table::{Align, Table};
use crate::commands::terminal::time_of_day;
use crate::commands::{Output, finish, print_json};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DrillsArgs {
    #[command(subcommand)]
    command: Option<DrillsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    /// How many drills to list, newest first (1 to 500).
    #[arg(long, default_value_t = DEFAULT_PAGE, value_parser = history::page_limit)]
    limit: usize,
    /// List the drills that began before this one (the "next" of the previous page).
    #[arg(long, value_name = "DRILL")]
    before: Option<String>,
}

/// How `drills show` prints a drill.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum, PartialEq, Eq)]
pub enum ShowOutput {
    /// Its life (phases, fault) and its report as a person reads it on a terminal.
    #[default]
    Text,
    /// The whole drill as journaled: its phases, fault and report (docs/drill.md lists the fields).
    Json,
    /// The report in Markdown, for a ticket or a wiki.
    Markdown,
    /// The report as one self-contained HTML page (inline CSS and SVG; nothing fetched).
    Html,
}

// Parsed once per process: the size of a variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
enum DrillsCommand {
    /// Show one drill: its fault, phases and runs, and its report (RTO, RPO, lost writes,
    /// the timeline). '-o html > drill.html' or '--html FILE' writes the page to open in a browser.
    Show {
        /// The drill id ('drover drills' lists them).
        drill: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: ShowOutput,
        /// Also write the report as a self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Render a drill report file as Markdown or a self-contained HTML page, with no journal:
    /// the JSON 'drover drill --json FILE' wrote, or a drill 'drover drills show DRILL -o json'
    /// printed. 'drover drills render drill.json > drill.html', then open it in a browser.
    Render {
        /// The report (JSON).
        file: PathBuf,
        #[arg(long, short = 'o', value_enum, default_value_t = RenderOutput::Html)]
        output: RenderOutput,
    },
}

/// What `drills render` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum RenderOutput {
    Markdown,
    Html,
}

pub fn run(args: DrillsArgs) -> ExitCode {
    finish(runtime().block_on(async {
        match args.command {
            None => {
                let ListArgs { target, output, limit, before } = args.list;
                let request = PageRequest::after(limit, before.map(RunId));
                let page = match target.target()? {
                    Target::Remote(remote) => remote.drills(&request).await?,
                    Target::Local(local) => drills::page(open_journal(&local).await?.as_ref(), &request).await?,
                };
                match output {
                    Output::Json => print_json(&page),
                    Output::Text => print!("{}", render_rows(&page)),
                }
                Ok(())
            }
            Some(DrillsCommand::Show { drill, target, output, html }) => {
                let summary = match target.target()? {
                    Target::Remote(remote) => remote.drill(&drill).await?,
                    Target::Local(local) => drills::show(open_journal(&local).await?.as_ref(), &drill).await?,
                };
                show(&summary, output, html)
            }
            Some(DrillsCommand::Render { file, output }) => {
                let report = read_report(&file)?;
                match output {
                    RenderOutput::Markdown => print!("{}", report.to_markdown()),
                    RenderOutput::Html => print!("{}", report.to_html()),
                }
                Ok(())
            }
        }
    }))
}

/// A report file: a report, or a drill whose report it holds. Bad input names the file,
/// the field at fault and, for a report, the line and column.
fn read_report(file: &std::path::Path) -> Result<DrillReport, Failure> {
    let name = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure::input(format!("{name}: cannot read the report: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Failure::input(format!("{name}: not JSON: {e}")))?;
    let bad = |field: String, e: &dyn std::fmt::Display| {
        let at = if field.is_empty() || field == "." { String::new() } else { format!(" field {field}:") };
        Failure::input(format!("{name}: not a drill report:{at} {e}"))
    };
    // A drill as 'drills show -o json' prints it carries its report under "report".
    match value.get("header").and(value.get("report")) {
        Some(report) if report.is_null() => {
            Err(Failure::input(format!("{name}: this drill has no report: it was not measured")))
        }
        Some(report) => {
            serde_path_to_error::deserialize(report.clone()).map_err(|e| bad(format!("report.{}", e.path()), e.inner()))
        }
        None => serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
            .map_err(|e| bad(e.path().to_string(), e.inner())),
    }
}

fn show(drill: &DrillSummary, output: ShowOutput, html: Option<PathBuf>) -> Result<(), Failure> {
    let report = drill.report.as_ref();
    let id = &drill.header.id;
    let unmeasured = || {
        Failure::conflict(if drill.state.is_active() {
            format!(
                "drill {id} has no report yet: it is unfinished (running, or stopped by a crash before it was \
                 measured); 'drover drills show {id}' shows how far it got"
            )
        } else {
            format!("drill {id} has no report: it {} before it was measured", drill.state.as_str())
        })
    };
    if let Some(path) = &html {
        let report = report.ok_or_else(unmeasured)?;
        std::fs::write(path, report.to_html())
            .map_err(|e| Failure::failed(format!("{}: cannot write the HTML report: {e}", path.display())))?;
    }
    match output {
        ShowOutput::Text => print!("{}", render_drill(drill)),
        ShowOutput::Json => print_json(drill),
        ShowOutput::Markdown => print!("{}", report.ok_or_else(unmeasured)?.to_markdown()),
        ShowOutput::Html => print!("{}", report.ok_or_else(unmeasured)?.to_html()),
    }
    Ok(())
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} ms"))
}

pub fn render_rows(page: &DrillRows) -> String {
    if page.drills.is_empty() {
        return "no drills yet\n".into();
    }
    let mut table = Table::new(&[
        ("DRILL", Align::Left),
        ("STARTED", Align::Left),
        ("FAULT", Align::Left),
        ("MOVE", Align::Left),
        ("RTO", Align::Right),
        ("RPO", Align::Right),
        ("LOST", Align::Right),
        ("OBJECTIVES", Align::Left),
        ("STATE", Align::Left),
    ]);
    for d in &page.drills {
        let state =
            if d.fault_in_place { format!("{} (fault in place)", d.state.as_str()) } else { d.state.as_str().into() };
        table.row(vec![
            d.id.clone(),
            time_of_day(d.started_ms),
            d.fault.clone(),
            format!("{} -> {}", d.from, d.to),
            ms(d.rto_ms),
            ms(d.rpo_ms),
            d.lost_acknowledged_writes.map_or_else(|| "-".into(), |n| n.to_string()),
            match d.objectives_met {
                Some(true) => "met".into(),
                Some(false) => "MISSED".into(),
                None => "-".into(),
            },
            state,
        ]);
    }
    let mut text = table.render();
    if let Some(next) = &page.next {
        text.push_str(&format!("older drills: drover drills --before {next}\n"));
    }
    text
}

pub fn render_drill(d: &DrillSummary) -> String {
    let h = &d.header;
    let mut out = format!(
        "drill {}: {} on {}, {} -> {}, {}\nasked by: {}\nstarted: {}\n",
        h.id,
        h.fault,
        h.region,
        h.from,
        h.to,
        d.state.as_str(),
        h.requested_by,
        time_of_day(d.started_ms)
    );
    if let Some(f) = d.finished_ms {
        out.push_str(&format!("finished: {} ({} ms)\n", time_of_day(f), f.saturating_sub(d.started_ms)));
    }
    if let Some(reason) = &d.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    let fault = match (&d.undone, d.needs_undo()) {
        (Some(how), _) => format!("undone ({how})"),
        (None, true) => {
            let undo = d.fault_state.as_ref().and_then(|s| s.get("undo")).and_then(|u| u.as_str());
            match undo {
                Some(undo) => format!("{} — '{undo}' lifts it", d.fault_word()),
                None => d.fault_word().into(),
            }
        }
        (None, false) => d.fault_word().into(),
    };
    out.push_str(&format!("fault: {fault}\n"));
    if !d.phases.is_empty() {
        let mut table =
            Table::new(&[("PHASE", Align::Left), ("RUN", Align::Left), ("STATE", Align::Left), ("TOOK", Align::Right)]);
        for p in &d.phases {
            table.row(vec![
                p.phase.as_str().into(),
                p.run.as_ref().map_or_else(|| "-".into(), |r| r.0.clone()),
                p.state.clone().unwrap_or_else(|| "running".into()),
                ms(p.finished_ms.map(|f| f.saturating_sub(p.started_ms))),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    match &d.report {
        Some(report) => {
            out.push('\n');
            out.push_str(&report.to_markdown());
        }
        None => out.push_str("\nnot measured\n"),
    }
    out
}
