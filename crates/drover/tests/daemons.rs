//! The daemons end to end in the lab: three `drover serve` vantages (east, west,
//! witness), a quorum of two. A blackout of east makes them fail over with no
//! command given; 5% packet loss on east for two minutes makes them do nothing.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{LabGuard, drover, run};

const DAEMONS: [(&str, &str); 3] =
    [("east", "http://10.200.0.11:7070"), ("west", "http://10.200.0.12:7070"), ("witness", "http://10.200.0.13:7070")];

struct Lab {
    guard: LabGuard,
    token: String,
    _tmp: tempfile::TempDir,
}

fn lab_with_daemons() -> Lab {
    let tmp = tempfile::Builder::new().prefix("drover-daemons-").tempdir_in("/tmp").unwrap();
    // PostgreSQL runs as the postgres OS user and must reach its data dir below.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("lab");
    let guard = LabGuard::new(&dir);
    let up = run(drover().args(["lab", "up", "--daemons", "--replication", "sync", "--dir"]).arg(&dir));
    assert_eq!(up.code, 0, "lab up --daemons failed:\n{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("drover serve :7070"), "{}", up.stdout);
    let token = std::fs::read_to_string(dir.join("secrets/api-token")).unwrap().trim().to_string();
    Lab { guard, token, _tmp: tmp }
}

fn get(lab: &Lab, base: &str, path: &str) -> Option<reqwest::blocking::Response> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    client.get(format!("{base}{path}")).bearer_auth(&lab.token).send().ok()
}

fn runs_on(lab: &Lab, base: &str) -> Vec<Value> {
    get(lab, base, "/api/v1/runs").and_then(|r| r.json::<Vec<Value>>().ok()).unwrap_or_default()
}

fn lab_cmd(lab: &Lab, args: &[&str]) -> support::Ran {
    run(drover().args(args).arg("--dir").arg(&lab.guard.dir))
}

#[test]
fn a_blackout_of_the_primary_region_makes_the_daemons_fail_over_on_their_own() {
    let lab = lab_with_daemons();
    let plan = lab.guard.dir.join("plan.yaml");
    let report = lab.guard.dir.join("drill.json");
    // The drill injects the fault and only watches: no failover command is given.
    let drill = run(drover()
        .args(["drill", "--daemons", "--fault", "blackout:east", "--plan"])
        .arg(&plan)
        .arg("--state")
        .arg(lab.guard.dir.join("drill-state"))
        .arg("--json")
        .arg(&report));
    assert_eq!(drill.code, 0, "drill failed:\n{}\n{}", drill.stdout, drill.stderr);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["run_state"], "completed", "{r:#}");
    assert_eq!(r["lost_acknowledged_writes"], 0, "synchronous replication lost writes: {r:#}");
    assert!(r["rto_ms"].as_u64().is_some(), "writes never recovered: {r:#}");
    let detected = r["timeline"]["detected"].as_u64().expect("detected from the daemon's journal");
    assert!(detected <= r["timeline"]["promoted"].as_u64().unwrap(), "{r:#}");
    eprintln!("daemons drill: rto_ms={} detected={detected}", r["rto_ms"]);

    // The run is in the journal of the acting vantage, west, and says why it started.
    let run_id = r["run_id"].as_str().unwrap();
    let runs = runs_on(&lab, DAEMONS[1].1);
    let run = runs.iter().find(|x| x["header"]["id"] == run_id).unwrap_or_else(|| {
        let answers: Vec<String> = DAEMONS
            .iter()
            .map(|(name, base)| {
                let answer = get(&lab, base, "/api/v1/runs").map(|r| (r.status(), r.text().unwrap_or_default()));
                format!("{name}: {answer:?}")
            })
            .collect();
        panic!("{run_id} not on west: {runs:?}\n{}", answers.join("\n"))
    });
    let reason = run["header"]["reason"].as_str().unwrap();
    assert!(reason.contains("east is down to 2 of 2 vantages"), "{reason}");
    assert!(runs_on(&lab, DAEMONS[2].1).is_empty(), "the witness must not start a run of its own");

    // Its metrics tell the story.
    let metrics = get(&lab, DAEMONS[1].1, "/metrics").unwrap().text().unwrap();
    for series in [
        "drover_last_failover_timestamp_seconds ",
        "drover_last_failover_duration_seconds ",
        "drover_run_step_duration_seconds{kind=\"failover\"",
        "drover_region_verdict{region=\"east\",verdict=\"down\"} 1",
        "drover_vantage_fresh{vantage=\"east\"} 0",
        "drover_database_role{region=\"west\",role=\"primary\"} 1",
        // The quorum was made of reports signed with the lab's peer key: none was refused.
        "drover_vantage_reports_dropped_total{reason=\"unsigned\"} 0",
        "drover_vantage_reports_dropped_total{reason=\"bad_signature\"} 0",
    ] {
        assert!(metrics.contains(series), "west /metrics lacks {series}:\n{metrics}");
    }
    let own: Value = get(&lab, DAEMONS[1].1, "/api/v1/vantage").unwrap().json().unwrap();
    assert_eq!(own["signature"].as_str().map(str::len), Some(64), "west's report is signed: {own}");

    // East comes back still believing it is primary at the old epoch: the daemons fence it.
    let heal = lab_cmd(&lab, &["lab", "heal", "east"]);
    assert_eq!(heal.code, 0, "{}", heal.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let regions: Value = get(&lab, DAEMONS[1].1, "/api/v1/regions").and_then(|r| r.json().ok()).unwrap_or_default();
        let east = &regions["regions"][0]["database"];
        if east["role"] == "primary" && east["writable"] == false {
            assert_eq!(regions["regions"][1]["database"]["writable"], true, "west stays the writable primary");
            break;
        }
        assert!(Instant::now() < deadline, "the returning east was not fenced within 60s: {east}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn five_percent_packet_loss_for_two_minutes_causes_no_failover() {
    let lab = lab_with_daemons();
    let fault = lab_cmd(&lab, &["lab", "fault", "loss", "east", "--percent", "5"]);
    assert_eq!(fault.code, 0, "{}", fault.stderr);
    assert!(fault.stdout.contains("loss:east (5%)"), "{}", fault.stdout);
    let status = lab_cmd(&lab, &["lab", "status", "--output", "json"]);
    assert!(status.stdout.contains("\"loss\""), "the loss is in force on east: {}", status.stdout);
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        for (name, base) in DAEMONS {
            let runs = runs_on(&lab, base);
            assert!(runs.is_empty(), "5% loss made the {name} daemon start a run: {runs:?}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let heal = lab_cmd(&lab, &["lab", "heal", "east"]);
    assert_eq!(heal.code, 0, "{}", heal.stderr);
    // East is still the writable primary: nothing was fenced or moved. (Under the loss one
    // observation may see east's database unreachable — a lost SYN costs a 1 s retransmit,
    // the plan's connect timeout — so it is judged once the loss is healed.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let regions: Value = get(&lab, DAEMONS[1].1, "/api/v1/regions").unwrap().json().unwrap();
        let east = &regions["regions"][0]["database"];
        if east["role"] == "primary" && east["writable"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "east is not the writable primary 30s after the loss healed: {regions:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    for (name, base) in DAEMONS {
        assert!(runs_on(&lab, base).is_empty(), "the {name} daemon started a run");
    }
}
