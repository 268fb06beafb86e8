//! End to end in the lab (real namespaces, PostgreSQL, Knot; the journal in a real
//! etcd): status, a planned switchover and back, the run journal, and a measured
//! blackout drill with synchronous replication that must lose no acknowledged write.

mod support;

use std::path::Path;

use support::{EtcdLab, assert_golden};

/// Run ids, times and measured values change every run; the shape must not.
fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.replace(dir.to_str().unwrap(), "DIR");
    for (pattern, with) in [
        (r"r\d{13}-[0-9a-f]{4}", "RUN"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z", "TIME"),
        (r"(applied|already done|skipped|failed) +\d+ +", "$1  AT  "),
        (r" *\d+ ms", " N ms"),
        (r"completed in [\d.]+m?s", "completed in T"),
        // The lag and the padding after it: its width varies with the lag's digits.
        (r"\d+ B / [\d.]+ s +", "N B / N s  "),
    ] {
        text = regex::Regex::new(pattern).unwrap().replace_all(&text, with).into_owned();
    }
    text
}

fn json(ran: &support::Ran) -> serde_json::Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr))
}

#[test]
fn lab_switchover_back_and_a_sync_blackout_drill_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    // The journal lives in a real etcd here (the daemons' tests use the embedded default).
    let lab = EtcdLab::up(&dir, "lab-e2e");
    let with_plan = |args: &[&str]| lab.drover(args);

    // Status before anything: east primary, west streaming standby, DNS on east.
    let status = with_plan(&["status", "--output", "json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let s = json(&status);
    assert_eq!(s["current_primary"], "east");
    assert_eq!(s["traffic"]["region"], "east");
    assert_eq!(s["regions"][1]["database"]["role"], "standby", "{s:#}");

    // A planned switchover: zero data loss, east becomes a standby of west.
    let switchover = with_plan(&["switchover", "--to", "west", "--yes"]);
    assert_eq!(switchover.code, 0, "switchover failed:\n{}\n{}", switchover.stdout, switchover.stderr);
    assert_golden("lab-switchover", &redact(&switchover.transcript(&[]), &dir));
    let s = json(&with_plan(&["status", "--output", "json"]));
    assert_eq!(s["current_primary"], "west");
    assert_eq!(s["traffic"]["region"], "west");
    assert_eq!(s["traffic"]["epoch"], 1);
    assert_eq!(s["regions"][0]["database"]["role"], "standby", "east rejoined as a standby: {s:#}");
    assert_eq!(s["regions"][1]["database"]["role"], "primary");
    assert_eq!(s["regions"][1]["database"]["epoch"], 1);

    let runs = with_plan(&["runs"]);
    assert_eq!(runs.code, 0);
    assert_golden("lab-runs", &redact(&runs.transcript(&[]), &dir));
    let id = runs.stdout.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let show = with_plan(&["runs", "show", &id]);
    assert_eq!(show.code, 0);
    assert_golden("lab-runs-show", &redact(&show.transcript(&[]), &dir));

    // Another move while nothing is active, back to east.
    let back = with_plan(&["switchover", "--to", "east", "--yes"]);
    assert_eq!(back.code, 0, "switchover back failed:\n{}\n{}", back.stdout, back.stderr);
    let status = with_plan(&["status"]);
    assert_golden("lab-status", &redact(&status.transcript(&[]), &dir));

    // The drill: black out east, detect, fail over, measure.
    let report_path = tmp.path().join("drill.json");
    let md_path = tmp.path().join("drill.md");
    let drill = with_plan(&[
        "drill",
        "--fault",
        "blackout:east",
        "--json",
        report_path.to_str().unwrap(),
        "--markdown",
        md_path.to_str().unwrap(),
    ]);
    assert_eq!(drill.code, 0, "drill failed:\n{}\n{}", drill.stdout, drill.stderr);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["replication"], "synchronous");
    assert_eq!(report["run_state"], "completed");
    assert_eq!(report["lost_acknowledged_writes"], 0, "synchronous replication lost writes: {report:#}");
    assert!(report["rto_ms"].as_u64().is_some(), "writes never recovered: {report:#}");
    assert!(report["writes"]["acknowledged"].as_u64().unwrap() > 0);
    assert!(report["writes"]["attempted"].as_u64().unwrap() >= report["writes"]["acknowledged"].as_u64().unwrap());
    let t = &report["timeline"];
    for field in ["fault", "detected", "promoted", "switched", "first_success"] {
        assert!(t[field].as_u64().is_some(), "timeline.{field} missing: {report:#}");
    }
    assert!(t["detected"].as_u64() <= t["promoted"].as_u64() && t["promoted"].as_u64() <= t["switched"].as_u64());
    assert!(t["fenced"].is_null(), "east was blacked out, so nothing fenced it: {report:#}");
    assert!(std::fs::read_to_string(&md_path).unwrap().contains("lost acknowledged writes | 0"));
    eprintln!("drill: rto_ms={} lost={}", report["rto_ms"], report["lost_acknowledged_writes"]);

    // After the drill west serves, at a higher epoch; east is still blacked out.
    let s = json(&with_plan(&["status", "--output", "json"]));
    assert_eq!(s["current_primary"], "west");
    assert_eq!(s["traffic"]["epoch"], 3);
    assert_eq!(s["regions"][0]["database"]["role"], "unreachable");
    // West no longer waits for a synchronous standby (east is gone), and status says so.
    assert!(s["regions"][1]["database"]["sync_standbys"].is_null(), "{s:#}");
    let text = with_plan(&["status"]).stdout;
    assert!(text.contains("async: RPO 0 unprotected"), "{text}");
}
