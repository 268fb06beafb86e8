//! `drover drills` and `drover drills show` over drills journaled in the plan's real redb
//! journal: the history's table and paging, one drill's life and report in every format,
//! and the refusals. (The lab drill journaling itself is proven in drill.rs.)

mod support;

use std::path::Path;

use drover_store::RedbJournal;
use support::drills::{report, seed};
use support::{PLAN, assert_golden, drover, plan_dir, run};

/// Journal times change every run; the shape must not.
fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.replace(dir.to_str().unwrap(), "DIR");
    for (pattern, with) in [
        // As wide as a time: the table's columns stay aligned.
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z", "YYYY-MM-DD HH:MM:SS.mmmZ"),
        (r"Z \(\d+ ms\)", "Z (N ms)"),
        // A phase's duration ends its row, and its width changes the padding before it: the
        // alignment of tables is proven by table.rs's tests.
        (r"(?m) +\d+ ms$", "  N ms"),
        (r"(?m)^(PHASE +RUN +STATE) +TOOK$", "$1  TOOK"),
        (r"(?m)^(\S+) +(\S+) +(\S+)  N ms$", "$1  $2  $3  N ms"),
    ] {
        text = regex::Regex::new(pattern).unwrap().replace_all(&text, with).into_owned();
    }
    text
}

#[test]
fn drills_list_and_show_what_the_journal_holds() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let drover_at = |args: &[&str]| run(drover().args(args).arg("--plan").arg(&plan));
    let empty = drover_at(&["drills"]);
    assert_eq!((empty.code, empty.stdout.as_str()), (0, "no drills yet\n"), "{}", empty.stderr);

    {
        let journal = RedbJournal::open(&dir.path().join(".drover")).unwrap();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(seed(&journal));
    }

    let mut all = String::new();
    for args in [&["drills"][..], &["drills", "--limit", "2"], &["drills", "show", "d1700000000000-0001"]] {
        let ran = drover_at(args);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
        all.push_str(&format!("$ drover {}\n{}", args.join(" "), redact(&ran.transcript(&[]), dir.path())));
    }
    for args in [&["drills", "show", "d1700000100000-0002"][..], &["drills", "show", "d1700000200000-0003"]] {
        let ran = drover_at(args);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
        all.push_str(&format!("$ drover {}\n{}", args.join(" "), redact(&ran.transcript(&[]), dir.path())));
    }
    assert_golden("drills", &all);

    // JSON: the rows a script compares drill to drill, and the cursor of the next page.
    let ran = drover_at(&["drills", "-o", "json", "--limit", "2"]);
    let page: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let ids: Vec<&str> = page["drills"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d1700000200000-0003", "d1700000100000-0002"]);
    assert_eq!(page["next"], "d1700000100000-0002");
    assert_eq!(
        (page["drills"][0]["state"].as_str(), page["drills"][0]["fault_in_place"].as_bool()),
        (Some("running"), Some(true))
    );
    let ran = drover_at(&["drills", "-o", "json", "--before", "d1700000100000-0002"]);
    let page: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let only = &page["drills"][0];
    assert_eq!(
        (only["id"].as_str(), only["rto_ms"].as_u64(), only["objectives_met"].as_bool()),
        (Some("d1700000000000-0001"), Some(4_120), Some(true))
    );
    assert_eq!(page["next"], serde_json::Value::Null);

    // One drill as journaled, with the report's stable fields and the new ones.
    let ran = drover_at(&["drills", "show", "d1700000000000-0001", "-o", "json"]);
    let drill: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(drill["report"]["rto_ms"], 4_120);
    assert_eq!(drill["report"]["timeline"]["first_success"], 4_120);
    assert_eq!(drill["report"]["steps"][0]["state"], "skipped");
    assert_eq!(
        drill["report"]["samples"][1],
        serde_json::json!({"sent_ms": 0, "latency_ms": null, "acknowledged": false})
    );
    assert_eq!(drill["phases"][0]["run"], "r1700000000000-0a1b");

    let markdown = drover_at(&["drills", "show", "d1700000000000-0001", "-o", "markdown"]);
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    assert_golden("drills-show-markdown", &markdown.transcript(&[]));

    // The page: printed, or written to a file; the same, and nothing in it is fetched.
    let html = drover_at(&["drills", "show", "d1700000000000-0001", "-o", "html"]);
    assert_eq!(html.code, 0, "{}", html.stderr);
    let file = dir.path().join("drill.html");
    let written = run(drover()
        .args(["drills", "show", "d1700000000000-0001", "-o", "json", "--html"])
        .arg(&file)
        .arg("--plan")
        .arg(&plan));
    assert_eq!(written.code, 0, "{}", written.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), html.stdout);
    assert!(html.stdout.starts_with("<!DOCTYPE html>"));
    for external in ["http:", "https:", "<script", "<link", "<img", "url(", "@import"] {
        assert!(!html.stdout.contains(external), "the page holds {external}");
    }
    let labels: Vec<&str> = html.stdout.split("data-at-ms=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    let times: Vec<u64> = labels.iter().map(|t| t.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "timeline events out of order: {times:?}");
    assert_eq!(times.len(), 6 + 4, "six milestones (fenced skipped) and four steps");
}

#[test]
fn an_unknown_or_unmeasured_drill_is_refused_with_exit_2() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    {
        let journal = RedbJournal::open(&dir.path().join(".drover")).unwrap();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(seed(&journal));
    }
    let mut all = String::new();
    for args in [
        &["drills", "show", "d-nope"][..],
        &["drills", "show", "d1700000200000-0003", "-o", "html"],
        &["drills", "--before", "d-nope"],
        &["drills", "--limit", "0"],
    ] {
        let ran = run(drover().args(args).arg("--plan").arg(&plan));
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{args:?} printed {}", ran.stdout);
        all.push_str(&format!("$ drover {}\n{}", args.join(" "), ran.transcript(&[])));
    }
    assert_golden("drills-refused", &all);
}

#[test]
fn drills_help_teaches() {
    let mut all = String::new();
    for args in [&["drills", "--help"][..], &["drills", "show", "--help"]] {
        let ran = run(drover().args(args));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        all.push_str(&format!("$ drover {}\n{}", args.join(" "), ran.transcript(&[])));
    }
    assert_golden("drills-help", &all);
}

/// A report file renders with no journal; a file that is no report is bad input naming
/// the file and the field.
#[test]
fn a_report_file_renders_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("drill.json");
    std::fs::write(&report_file, serde_json::to_string_pretty(&report()).unwrap()).unwrap();
    let markdown = run(drover().args(["drills", "render", "-o", "markdown"]).arg(&report_file));
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    assert_eq!(markdown.stdout, report().to_markdown());
    let html = run(drover().args(["drills", "render"]).arg(&report_file));
    assert_eq!(html.stdout, report().to_html(), "html is the default");

    // A drill as 'drills show -o json' prints it renders the report it holds.
    let drill_file = dir.path().join("shown.json");
    let drill = serde_json::json!({"header": {"id": "d1"}, "report": report()});
    std::fs::write(&drill_file, drill.to_string()).unwrap();
    let from_drill = run(drover().args(["drills", "render", "-o", "markdown"]).arg(&drill_file));
    assert_eq!(from_drill.stdout, report().to_markdown(), "{}", from_drill.stderr);

    let mut all = String::new();
    // From the report's own serialization (its field order is the struct's, whatever
    // serde_json's map features), so the error's column is the same in every build.
    let bad = serde_json::to_string(&report()).unwrap().replacen("\"detected\":2900", "\"detected\":\"soon\"", 1);
    assert!(bad.contains("\"soon\""), "{bad}");
    let cases = [
        ("missing.json", None),
        ("garbage.json", Some("{not json".to_string())),
        ("wrong.json", Some(bad)),
        ("unmeasured.json", Some(r#"{"header": {"id": "d2"}, "report": null}"#.to_string())),
    ];
    for (name, contents) in cases {
        let path = dir.path().join(name);
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let ran = run(drover().args(["drills", "render"]).arg(&path));
        assert_eq!(ran.code, 2, "{name}: {}", ran.stderr);
        all.push_str(&format!(
            "$ drover drills render {name}\n{}",
            ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")])
        ));
    }
    assert_golden("drills-render-refused", &all);
}
