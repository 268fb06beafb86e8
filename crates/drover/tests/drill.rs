//! End to end in the lab (real namespaces, PostgreSQL, Knot; the journal in a real
//! etcd): status, a planned switchover and back, the run journal, and a measured
//! blackout drill with synchronous replication that must lose no acknowledged write.
//! Then east returns with older data than west: a move back to it is refused, writable or
//! fenced, until a person accepts the loss.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_adapters::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use drover_core::secret::Secret;
use drover_core::world::Database;
use support::{EtcdLab, assert_golden, drover, post_write, run};

const EAST_APP: &str = "10.200.0.11:8080";
const WEST_APP: &str = "10.200.0.12:8080";

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
        // Columns are as wide as their widest cell, which holds measured values: the alignment
        // is proven by the unit goldens (status, table), the lab's only by its shape.
        (r" {2,}", "  "),
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
    // The new fields: each step's times from the run's journal, and every canary write.
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["fence", "promote", "switch", "verify"], "{report:#}");
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len() as u64, report["writes"]["attempted"].as_u64().unwrap());
    assert!(samples.iter().any(|s| s["acknowledged"] == false), "the blackout failed some writes");

    // The drill is journaled (in etcd here): listed, shown with its run, and its fault
    // recorded as left in place for 'drover lab heal'.
    let drills = json(&with_plan(&["drills", "--output", "json"]));
    let row = &drills["drills"][0];
    assert_eq!(
        (row["fault"].as_str(), row["state"].as_str()),
        (Some("blackout:east"), Some("completed")),
        "{drills:#}"
    );
    assert_eq!((row["rto_ms"].clone(), row["run_id"].clone()), (report["rto_ms"].clone(), report["run_id"].clone()));
    assert_eq!((row["lost_acknowledged_writes"].as_u64(), row["fault_in_place"].as_bool()), (Some(0), Some(true)));
    let id = row["id"].as_str().unwrap();
    let shown = json(&with_plan(&["drills", "show", id, "--output", "json"]));
    assert_eq!(shown["report"], report, "the journal holds the report the drill wrote");
    assert_eq!(shown["phases"][0]["run"], report["run_id"]);
    // What undoing the fault needs, as the lab's injector captured it.
    assert_eq!((&shown["fault_state"]["kind"], &shown["fault_state"]["region"]), (&"blackout".into(), &"east".into()));
    let html = with_plan(&["drills", "show", id, "--output", "html"]);
    assert!(html.stdout.contains("<svg class=\"timeline\"") && !html.stdout.contains("http"), "{}", html.stdout);

    // After the drill west serves, at a higher epoch; east is still blacked out.
    let s = json(&with_plan(&["status", "--output", "json"]));
    assert_eq!(s["current_primary"], "west");
    assert_eq!(s["traffic"]["epoch"], 3);
    assert_eq!(s["regions"][0]["database"]["role"], "unreachable");
    // West no longer waits for a synchronous standby (east is gone), and status says so.
    assert!(s["regions"][1]["database"]["sync_standbys"].is_null(), "{s:#}");
    let text = with_plan(&["status"]).stdout;
    assert!(text.contains("async: RPO 0 unprotected"), "{text}");

    // Issue 13: east returns with older data. A write acknowledged by west since the drill's
    // failover is what a move back to east would lose.
    let (code, body) = post_write(WEST_APP, 131_313);
    assert_eq!((code, body.as_str()), (200, r#"{"seq":131313,"region":"west"}"#), "west takes writes");
    let healed = run(drover().args(["lab", "heal", "east", "--dir"]).arg(&dir));
    assert_eq!(healed.code, 0, "{}\n{}", healed.stdout, healed.stderr);
    let runs_before = json(&with_plan(&["runs", "--output", "json"]))["runs"].as_array().unwrap().len();
    let lab_dns = || {
        let ran = run(drover().args(["lab", "status", "--output", "json", "--dir"]).arg(&dir));
        json(&ran)["dns"]["addresses"].clone()
    };
    let east_dsn = std::fs::read_to_string(dir.join("secrets/east.dsn")).unwrap().trim().to_string();
    let west_dsn = std::fs::read_to_string(dir.join("secrets/west.dsn")).unwrap().trim().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Nothing changed: west is the writable primary at epoch 3 with every write, DNS points
    // at it, east is as it was (`east_writable`), and no run was journaled.
    let nothing_changed = |east_writable: bool| {
        let s = json(&with_plan(&["status", "--output", "json"]));
        assert_eq!(s["current_primary"], "west", "{s:#}");
        assert_eq!((&s["traffic"]["region"], &s["traffic"]["epoch"]), (&"west".into(), &3.into()), "{s:#}");
        let (east, west) = (&s["regions"][0]["database"], &s["regions"][1]["database"]);
        assert_eq!((&west["role"], &west["writable"], &west["epoch"]), (&"primary".into(), &true.into(), &3.into()));
        assert_eq!(
            (&east["role"], &east["writable"], &east["epoch"]),
            (&"primary".into(), &east_writable.into(), &2.into())
        );
        assert_eq!(lab_dns(), serde_json::json!(["10.200.0.12"]), "the lab's DNS answers west");
        let runs = json(&with_plan(&["runs", "--output", "json"]));
        assert_eq!(runs["runs"].as_array().unwrap().len(), runs_before, "a refused move journaled a run: {runs:#}");
        let on_west = rt.block_on(drover_lab::probe::present_sequences(&west_dsn)).unwrap();
        assert!(on_west.contains(&131_313), "west lost the write it acknowledged");
    };

    // East back and unfenced: two databases accept writes, and no move is made.
    let deadline = Instant::now() + Duration::from_secs(60);
    while json(&with_plan(&["status", "--output", "json"]))["regions"][0]["database"]["writable"] != true {
        assert!(Instant::now() < deadline, "east's database did not answer within 60s of the heal");
        std::thread::sleep(Duration::from_millis(500));
    }
    let refused = with_plan(&["failover", "--to", "east", "--yes"]);
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("failover refused: more than one database accepts writes (east at epoch 2, west at epoch 3)"),
        "{}",
        refused.stderr
    );
    nothing_changed(true);

    // East fenced with drover's own fence (what the daemons do to a returning old primary):
    // read-only, still at epoch 2 while west was promoted at 3.
    let db = PostgresDatabase::new(PostgresConfig::new(BTreeMap::from([(
        "east".to_string(),
        PostgresMemberConfig { dsn: Secret::new(east_dsn.clone()), host: None },
    )])))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = rt.block_on(db.fence("east")) {
        assert!(Instant::now() < deadline, "east could not be fenced within 60s: {e}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let (code, body) = post_write(EAST_APP, 141_414);
    assert_ne!(code, 200, "the fenced east acknowledged a write: {body}");
    let older = "region 'east' holds older data than the primary: east is a fenced (read-only) former primary, not a \
                 standby of the primary; its data is at epoch 2, while west was promoted at epoch 3";
    for kind in ["failover", "switchover"] {
        let refused = with_plan(&[kind, "--to", "east", "--yes"]);
        assert_eq!(refused.code, 2, "{kind}: {}\n{}", refused.stdout, refused.stderr);
        assert!(refused.stderr.contains(&format!("{kind} refused: {older}")), "{}", refused.stderr);
        assert!(
            refused.stderr.contains("--accept-data-loss"),
            "the refusal says how to move anyway: {}",
            refused.stderr
        );
        nothing_changed(false);
    }

    // A person accepts the loss: east becomes the writable primary at epoch 4 with traffic,
    // the journal's run header says what was accepted, and west's write is gone from the service.
    let moved = with_plan(&["failover", "--to", "east", "--yes", "--accept-data-loss", "--output", "json"]);
    assert_eq!(moved.code, 0, "{}\n{}", moved.stdout, moved.stderr);
    let id = json(&moved)["header"]["id"].as_str().unwrap().to_string();
    let shown = json(&with_plan(&["runs", "show", &id, "--output", "json"]));
    assert_eq!(shown["state"], "completed", "{shown:#}");
    assert_eq!((&shown["header"]["from"], &shown["header"]["to"]), (&"west".into(), &"east".into()));
    assert_eq!(shown["header"]["accepted_loss"], older, "{shown:#}");
    let s = json(&with_plan(&["status", "--output", "json"]));
    assert_eq!(s["current_primary"], "east", "{s:#}");
    assert_eq!((&s["traffic"]["region"], &s["traffic"]["epoch"]), (&"east".into(), &4.into()), "{s:#}");
    let (east, west) = (&s["regions"][0]["database"], &s["regions"][1]["database"]);
    assert_eq!((&east["writable"], &east["epoch"]), (&true.into(), &4.into()), "{s:#}");
    assert_eq!(west["writable"], false, "the failover fenced west: {s:#}");
    assert_eq!(lab_dns(), serde_json::json!(["10.200.0.11"]), "the lab's DNS answers east");
    // East was a synchronous primary with west as its standby; west does not follow it now,
    // so the promote of the fenced east drops the wait for a synchronous standby (a reprotect
    // restores it): east takes writes at once.
    let (code, body) = post_write(EAST_APP, 151_515);
    assert_eq!((code, body.as_str()), (200, r#"{"seq":151515,"region":"east"}"#), "east takes writes at once");
    // The way back to protection: west, holding the writes given up, becomes east's standby
    // (pg_rewind discards them there too), and the service takes writes on east.
    let reprotect = with_plan(&["reprotect", "--region", "west", "--yes"]);
    assert_eq!(reprotect.code, 0, "{}\n{}", reprotect.stdout, reprotect.stderr);
    let (code, body) = post_write(EAST_APP, 161_616);
    assert_eq!((code, body.as_str()), (200, r#"{"seq":161616,"region":"east"}"#), "east takes writes");
    let on_east = rt.block_on(drover_lab::probe::present_sequences(&east_dsn)).unwrap();
    assert!(on_east.contains(&161_616) && !on_east.contains(&131_313), "the loss accepted is real: {on_east:?}");
    let on_west = rt.block_on(drover_lab::probe::present_sequences(&west_dsn)).unwrap();
    assert!(!on_west.contains(&131_313), "west, east's standby now, holds what east holds: {on_west:?}");
}
