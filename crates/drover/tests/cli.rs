//! Golden tests of the commands that need no running world: plan check, help,
//! and the run commands' refusals. The lab-backed commands are in drill.rs.

mod support;

use support::{PLAN, assert_golden, drover, plan_dir, run};

#[test]
fn plan_check_summarizes_a_valid_plan() {
    let dir = plan_dir(PLAN);
    let ran = run(drover().args(["plan", "check"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_golden("plan-check-valid", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));
}

#[test]
fn plan_check_json() {
    let dir = plan_dir(PLAN);
    let ran = run(drover().args(["plan", "check", "--output", "json"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["regions"]["east"], "primary");
    assert_eq!(v["runbooks"]["failover"], serde_json::json!(["fence", "promote", "switch", "verify"]));
    assert_eq!(v["drill"]["canary"], serde_json::Value::Null, "no canary written");
}

#[test]
fn plan_check_names_file_line_column_and_field_and_exits_2() {
    let bad = PLAN
        .replace("interval: 1s, timeout: 200ms", "interval: 1 sec, timeout: 200ms, retries: 3")
        .replace("west: { role: standby }", "west: { role: standby }\n  north: { role: primary }")
        .replace("{ dsn_file: DIR/west.dsn }", "{ dsn: \"postgres://drover:hunter2@db/x\" }");
    let dir = plan_dir(&bad);
    let ran = run(drover().args(["plan", "check"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2);
    assert!(!ran.stderr.contains("hunter2"), "a secret leaked into the error: {}", ran.stderr);
    assert_golden("plan-check-invalid", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));
}

/// A bad `drill.canary` is refused like any other section: file, line, column, field, and
/// no secret echoed; a good one is summarised with how the canary resolves names.
#[test]
fn plan_check_refuses_a_bad_canary_and_summarises_a_good_one() {
    let bad = format!(
        "{PLAN}drill:\n  canary:\n    http: {{ url: \"https://shop.example.com/c?t=hunter2\", token: hunter2 }}\n    \
         interval: 5ms\n    resolve: traffic\n    dns_server: 10.0.0.2\n"
    );
    let dir = plan_dir(&bad);
    let ran = run(drover().args(["plan", "check"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2);
    assert!(!ran.stderr.contains("hunter2"), "a secret leaked into the error: {}", ran.stderr);
    assert_golden("plan-check-bad-canary", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));

    let good = format!(
        "{PLAN}drill:\n  canary:\n    postgres: {{ dsn_file: DIR/east.dsn, table: shop_canary }}\n    resolve: traffic\n"
    );
    let dir = plan_dir(&good);
    let ran = run(drover().args(["plan", "check"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(
            "drill      postgres canary into table shop_canary (DSN from file DIR/east.dsn), a write every 200ms, \
             timeout 2s, the traffic record followed through its provider, not DNS"
                .replace("DIR", dir.path().to_str().unwrap())
                .as_str()
        ),
        "{}",
        ran.stdout
    );
    let ran = run(drover().args(["plan", "check", "--output", "json"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(
        v["drill"]["canary"],
        serde_json::json!({ "kind": "postgres", "interval_ms": 200, "timeout_ms": 2000, "resolve": "traffic", "dns_server": null })
    );
}

#[test]
fn plan_check_of_a_missing_file_exits_2() {
    let ran = run(drover().args(["plan", "check", "/nonexistent/plan.yaml"]));
    assert_eq!(ran.code, 2);
    assert_golden("plan-check-missing", &ran.transcript(&[]));
}

#[test]
fn a_missing_secret_file_is_bad_input() {
    let dir = plan_dir(PLAN);
    std::fs::remove_file(dir.path().join("tsig.key")).unwrap();
    let ran = run(drover().args(["status", "--plan"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2);
    assert_golden("status-missing-secret", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));
}

/// A DSN's TLS settings are read before anything connects: an unknown sslmode or a CA
/// file that is not there is bad input naming the member and the parameter, never the DSN.
#[test]
fn a_bad_sslmode_or_sslrootcert_is_bad_input_without_the_dsn() {
    let dir = plan_dir(PLAN);
    let west = dir.path().join("west.dsn");
    support::write_secret(&west, "postgres://drover:hunter2@127.0.0.1:2/postgres?sslmode=verify_full");
    for args in [&["status", "--plan"][..], &["plan", "check", "--live"][..]] {
        let ran = run(drover().args(args).arg(dir.path().join("plan.yaml")));
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("west database: sslmode=verify_full is not one of disable, allow, prefer, require, verify-ca, verify-full"), "{}", ran.stderr);
        assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
    }
    let ca = dir.path().join("missing-ca.pem");
    support::write_secret(
        &west,
        format!("host=127.0.0.1 port=2 password=hunter2 sslmode=verify-full sslrootcert={}", ca.display()),
    );
    let ran = run(drover().args(["status", "--plan"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains(&format!("west database: sslrootcert: {}: ", ca.display())), "{}", ran.stderr);
    assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
}

/// Every address of the plan is a closed local port: status shows each failure, and since
/// it could read nothing at all it exits 1 rather than pass for a quiet, healthy world.
#[test]
fn status_when_nothing_is_reachable_shows_why_and_exits_1() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let ran = run(drover().args(["status", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(!ran.stdout.contains("healthy ") && !ran.stdout.contains("pw@"), "{}", ran.stdout);
    assert_golden("status-nothing-reachable", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));

    let ran = run(drover().args(["status", "--output", "json", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(v["current_primary_from"], "plan");
    assert_eq!(v["regions"][0]["role"], "unreachable");
    assert_eq!(v["regions"][0]["plan_role"], "primary");
    assert_eq!(v["regions"][0]["health"], "unhealthy");
    assert_eq!(v["regions"][0]["health_reasons"][0], "database unreachable: connection refused");
    assert!(ran.stderr.contains("nothing could be read"), "{}", ran.stderr);
}

#[test]
fn status_help_says_what_role_and_health_mean_and_the_exit_codes() {
    let ran = run(drover().args(["status", "--help"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_golden("status-help", &ran.transcript(&[]));
}

/// `serve --help` teaches TLS, tokens, the listener's limits and the etcd store's flags.
#[test]
fn serve_help_teaches_tls_tokens_limits_and_the_store() {
    let ran = run(drover().args(["serve", "--help"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_golden("serve-help", &ran.transcript(&[]));
}

/// Drills need the lab; a plan of real regions is told so once, not that its region names
/// are wrong. A lab-shaped plan with no lab beside it is told the same.
#[test]
fn drill_on_a_plan_that_is_not_the_labs_says_drills_need_the_lab() {
    let real = PLAN
        .replace("east", "us-east-1")
        .replace("west", "us-west-1")
        .replace("DIR/us-east-1.dsn", "DIR/east.dsn")
        .replace("DIR/us-west-1.dsn", "DIR/west.dsn");
    let mut all = String::new();
    for (plan, fault) in [(real.as_str(), "blackout:us-east-1"), (PLAN, "blackout:east")] {
        let dir = plan_dir(plan);
        let ran = run(drover().args(["drill", "--fault", fault, "--plan"]).arg(dir.path().join("plan.yaml")));
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert_eq!(ran.stderr.matches("drover lab up").count(), 1, "{}", ran.stderr);
        all.push_str(&format!(
            "$ drover drill --fault {fault}\n{}",
            ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")])
        ));
    }
    assert_golden("drill-not-a-lab-plan", &all);
}

#[test]
fn help_teaches_the_commands() {
    let ran = run(drover().arg("--help"));
    assert_eq!(ran.code, 0);
    assert_golden("help", &ran.transcript(&[]));
}

#[test]
fn runs_on_a_fresh_state_dir_and_unknown_runs() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let ran = run(drover().args(["runs", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, "no runs yet\n");
    assert!(dir.path().join(".drover/journal.redb").exists(), "the journal lives beside the plan by default");
    // A token file exported for daemon work does not get in the way of local commands.
    let ran = run(drover().env("DROVER_TOKEN_FILE", dir.path().join("token")).args(["runs", "--plan"]).arg(&plan));
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "no runs yet\n"), "{}", ran.stderr);
    let mut all = String::new();
    for args in [&["runs", "show", "r-nope"][..], &["resume", "r-nope"], &["abort", "r-nope"]] {
        let ran = run(drover().args(args).arg("--plan").arg(&plan));
        assert_eq!(ran.code, 2, "{args:?}");
        all.push_str(&format!("$ drover {}\n{}", args.join(" "), ran.transcript(&[])));
    }
    assert_golden("unknown-run", &all);
}

/// A run in progress holds the journal open; `runs` in another process still answers.
#[test]
fn runs_answers_while_another_process_holds_the_journal() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let _held = drover_store::RedbJournal::open(&dir.path().join(".drover")).expect("open the journal");
    let ran = run(drover().args(["runs", "--plan"]).arg(&plan));
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "no runs yet\n"), "{}", ran.stderr);
}

#[test]
fn failover_to_a_witness_or_unknown_region_is_refused() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let mut all = String::new();
    for to in ["witness", "mars"] {
        let ran = run(drover().args(["failover", "--yes", "--to", to, "--plan"]).arg(&plan));
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        all.push_str(&format!("$ drover failover --to {to}\n{}", ran.transcript(&[])));
    }
    assert_golden("failover-refused", &all);
}

#[test]
fn failover_to_an_unreachable_standby_is_refused_and_nothing_is_journaled() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let ran = run(drover().args(["failover", "--yes", "--to", "west", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(ran.stderr.contains("region 'west' is unhealthy: database unreachable"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("pw@"), "a password leaked: {}", ran.stderr);
    let runs = run(drover().args(["runs", "--plan"]).arg(&plan));
    assert_eq!(runs.stdout, "no runs yet\n");
}

#[test]
fn runs_live_in_etcd_with_store_and_a_bad_store_is_bad_input() {
    let etcd = support::Etcd::start();
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let with_store =
        |args: &[&str], store: &str| run(drover().args(args).arg("--plan").arg(&plan).args(["--store", store]));
    // etcd answers TCP a moment before it serves: the guard is generous, the first answer usually right.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let runs = loop {
        let runs = with_store(&["runs"], &etcd.store("cli"));
        if runs.code == 0 || std::time::Instant::now() > deadline {
            break runs;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!((runs.code, runs.stdout.as_str()), (0, "no runs yet\n"), "{}", runs.stderr);
    assert!(!dir.path().join(".drover").exists(), "with --store nothing is written beside the plan");
    let unknown = with_store(&["runs", "show", "r-nope"], &etcd.store("cli"));
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no run with id r-nope"), "{}", unknown.stderr);

    let bad = with_store(&["runs"], "etcd://nowhere");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--store etcd://nowhere: 'nowhere' is not HOST:PORT"), "{}", bad.stderr);
    let down = with_store(&["runs"], "etcd://127.0.0.1:9");
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(down.stderr.contains("etcd http://127.0.0.1:9: cannot connect"), "{}", down.stderr);
}

/// Flags for an etcd store over TLS or with a user that cannot work are refused before
/// anything connects (exit 2, what to do), for the commands and the daemon alike.
#[test]
fn etcd_tls_and_user_flags_that_cannot_work_are_refused_and_nothing_is_done() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let (ca, missing) = (not_pem.display().to_string(), dir.path().join("nope").display().to_string());
    let refused = |args: &[&str], says: &str| {
        for command in [&["runs"][..], &["failover", "--to", "west", "--yes"], &["serve", "--listen", "127.0.0.1:0"]] {
            let ran =
                run(drover().args(command).arg("--plan").arg(&plan).args(args).env_remove("DROVER_ETCD_PASSWORD"));
            assert_eq!(ran.code, 2, "{command:?} {args:?}: {}\n{}", ran.stdout, ran.stderr);
            assert!(ran.stderr.contains(says), "{command:?} {args:?}: {}", ran.stderr);
        }
    };
    let tls = "etcds://127.0.0.1:9/x";
    refused(&["--store", tls], "etcds:// needs --etcd-ca FILE");
    refused(&["--store", "etcd://127.0.0.1:9/x", "--etcd-ca", &ca], "is plain HTTP (etcd://) and --etcd-ca is for TLS");
    refused(&["--store", tls, "--etcd-ca", &ca, "--etcd-cert", &ca], "--etcd-cert needs --etcd-key");
    refused(&["--store", tls, "--etcd-ca", &missing], &missing);
    refused(&["--store", tls, "--etcd-ca", &ca], "holds no certificate");
    refused(
        &["--store", "etcd://127.0.0.1:9/x", "--etcd-user", "drover"],
        "give its password with --etcd-password-file",
    );
    refused(
        &["--store", "etcd://127.0.0.1:9/x", "--etcd-user", "drover", "--etcd-password-file", &missing],
        &format!("--etcd-password-file {missing}: cannot read it"),
    );
    refused(&["--etcd-ca", &ca], "--etcd-ca is for an etcd store");
    assert!(!dir.path().join(".drover").exists(), "nothing was journaled beside the plan");
}

#[test]
fn reprotect_and_failback_help_teach_when_and_how() {
    let mut all = String::new();
    for command in ["reprotect", "failback"] {
        let ran = run(drover().args([command, "--help"]));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        all.push_str(&format!("$ drover {command} --help\n{}", ran.transcript(&[])));
    }
    assert_golden("reprotect-failback-help", &all);
}

/// Refused before anything changes (exit 2), each with its reason and what to do; nothing is journaled.
#[test]
fn reprotect_and_failback_refusals_say_what_to_do() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let mut all = String::new();
    for args in [
        &["reprotect", "--region", "witness"][..],
        // Nothing answers at the plan's addresses: no primary to follow.
        &["reprotect", "--region", "east"],
        // The home region is not a streaming standby: reprotect it first.
        &["failback"],
    ] {
        let ran = run(drover().args(args).args(["--yes", "--plan"]).arg(&plan));
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(!ran.stderr.contains("pw@"), "a password leaked: {}", ran.stderr);
        all.push_str(&format!(
            "$ drover {}\n{}",
            args.join(" "),
            ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")])
        ));
    }
    assert_golden("reprotect-failback-refused", &all);
    let runs = run(drover().args(["runs", "--plan"]).arg(&plan));
    assert_eq!(runs.stdout, "no runs yet\n");
}

/// The repository's root, for the shipped example and the adapters' sources.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn plan_iam_prints_the_policy_for_the_shipped_aws_example() {
    let ran = run(drover().args(["plan", "iam", "examples/aws-two-region/plan.yaml"]).current_dir(repo()));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_golden("plan-iam-aws-two-region", &ran.transcript(&[]));
    // And it is the plan `plan check` accepts.
    let check = run(drover().args(["plan", "check", "examples/aws-two-region/plan.yaml"]).current_dir(repo()));
    assert_eq!(check.code, 0, "{}", check.stderr);
}

#[test]
fn plan_iam_of_a_plan_without_aws_prints_no_policy() {
    let dir = plan_dir(PLAN);
    let ran = run(drover().args(["plan", "iam"]).arg(dir.path().join("plan.yaml")));
    assert_eq!((ran.code, ran.stdout.as_str()), (0, ""), "{}", ran.stderr);
    assert!(ran.stderr.contains("this plan uses no AWS resources; drover needs no IAM permissions for it"));
}

/// Every AWS operation an adapter calls (each goes through `aws::describe(SERVICE, "Operation", ..)`)
/// is granted by `drover plan iam` for some plan that uses its resource kind: the policy
/// cannot silently fall behind the code.
#[test]
fn plan_iam_grants_every_aws_operation_the_adapters_call() {
    // The AWS providers, and drills' fault injectors.
    let files = ["crates/drover-adapters/src/aws", "crates/drover-adapters/src/faults"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo().join(dir)).unwrap())
        .map(|entry| entry.unwrap().path());
    let mut prefixes = std::collections::HashMap::new();
    let mut called = std::collections::BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        // `const EKS: Service = Service { name: "EKS", iam: "eks", ...`
        for line in text.lines().filter(|l| l.contains(": Service = Service {")) {
            let name = line.split("const ").nth(1).unwrap().split(':').next().unwrap().to_owned();
            let iam = line.split("iam: \"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            prefixes.insert(name, iam);
        }
        for call in text.split("describe(").skip(1) {
            let mut parts = call.splitn(3, ", \"");
            let (service, rest) = (parts.next().unwrap(), parts.next());
            if let Some(operation) = rest.and_then(|r| r.split('"').next())
                && service.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                called.insert((service.to_owned(), operation.to_owned()));
            }
        }
    }
    assert!(called.len() > 20, "found only {called:?}: has the adapters' error helper changed?");
    let plans = [
        repo().join("examples/aws-two-region/plan.yaml"),
        repo().join("crates/drover-core/tests/plans/good/global-accelerator.yaml"),
        repo().join("crates/drover-core/tests/plans/good/aurora-global.yaml"),
    ];
    let mut policies = String::new();
    for plan in &plans {
        let ran = run(drover()
            .args(["plan", "iam"])
            .arg(plan)
            .env("EAST_DSN", "postgres://x@h/db")
            .env("WEST_DSN", "postgres://x@h/db"));
        assert_eq!(ran.code, 0, "{}: {}", plan.display(), ran.stderr);
        policies.push_str(&ran.stdout);
    }
    // A drill's FIS templates are the drill's settings, not the plan's: granted by `fis_grants`.
    struct NoSecrets;
    impl drover_core::secret::SecretSource for NoSecrets {
        fn resolve(&self, r: &drover_core::secret::SecretRef) -> Result<drover_core::secret::Secret, String> {
            Err(format!("{r}: not needed"))
        }
    }
    let aws =
        drover_core::plan::parse_plan(&plans[0], &std::fs::read_to_string(&plans[0]).unwrap(), &NoSecrets).unwrap();
    let templates = [("us-east-2".to_owned(), "EXT123".to_owned())].into();
    for g in drover_core::plan::iam::fis_grants(&aws, &templates) {
        policies.push_str(&format!(" \"{}\"", g.action));
    }
    let missing: Vec<String> = called
        .iter()
        .map(|(service, op)| {
            format!("{}:{op}", prefixes.get(service).unwrap_or_else(|| panic!("no Service {service}")))
        })
        .filter(|action| !policies.contains(&format!("\"{action}\"")))
        .collect();
    assert!(missing.is_empty(), "drover calls these but `plan iam` never grants them: {missing:?}");
}

/// `drover runs` lists one page, newest first, and says how to see the next; `--before`
/// pages on; a bad page size or an unknown cursor is bad input (exit 2).
#[test]
fn runs_lists_a_page_and_the_next_one_from_its_cursor() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let ids = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let journal = drover_store::RedbJournal::open(&dir.path().join(".drover")).unwrap();
        drover_core::testing::scenarios::ended_runs(&journal, 5).await
    });
    let ran = run(drover().args(["runs", "--limit", "2", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header, two runs and the way on:\n{}", ran.stdout);
    assert!(lines[1].starts_with(&ids[4].0) && lines[2].starts_with(&ids[3].0), "{}", ran.stdout);
    assert_eq!(lines[3], format!("older runs: drover runs --before {}", ids[3]));

    let ran = run(drover().args(["runs", "--limit", "2", "--before", &ids[3].0, "-o", "json", "--plan"]).arg(&plan));
    let page: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let listed: Vec<&str> =
        page["runs"].as_array().unwrap().iter().map(|r| r["header"]["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].0.as_str(), ids[1].0.as_str()]);
    assert_eq!(page["next"], ids[1].0.as_str());
    let last = run(drover().args(["runs", "--before", &ids[1].0, "-o", "json", "--plan"]).arg(&plan));
    let page: serde_json::Value = serde_json::from_str(&last.stdout).unwrap();
    assert_eq!((page["runs"].as_array().unwrap().len(), &page["next"]), (1, &serde_json::Value::Null));

    let zero = run(drover().args(["runs", "--limit", "0", "--plan"]).arg(&plan));
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    assert!(zero.stderr.contains("'0' is not a page size; write a whole number from 1 to 500"), "{}", zero.stderr);
    let unknown = run(drover().args(["runs", "--before", "r-nope", "--plan"]).arg(&plan));
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no run with id r-nope"), "{}", unknown.stderr);
}

/// A secret file its group or others can read is refused (exit 2) with the command that
/// fixes it; `DROVER_ALLOW_OPEN_SECRET_FILES=1` reads it anyway, with a warning.
#[test]
fn a_secret_file_others_can_read_is_refused_with_what_to_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let tsig = dir.path().join("tsig.key");
    assert!(run(drover().args(["plan", "check"]).arg(&plan)).code == 0, "the fixture's secrets are 0600");
    std::fs::set_permissions(&tsig, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = run(drover().args(["plan", "check"]).arg(&plan).env_remove("DROVER_ALLOW_OPEN_SECRET_FILES"));
    assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
    let fix = format!("run 'chmod 600 {}'", tsig.display());
    assert!(
        ran.stderr.contains(&format!("{}: open to its group or others (mode 0644)", tsig.display())),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains(&fix), "{}", ran.stderr);
    let allowed = run(drover().args(["plan", "check"]).arg(&plan).env("DROVER_ALLOW_OPEN_SECRET_FILES", "1"));
    assert_eq!(allowed.code, 0, "{}{}", allowed.stdout, allowed.stderr);
    assert!(
        allowed.stderr.contains(&format!("warning: {}: open to its group or others (mode 0644)", tsig.display())),
        "{}",
        allowed.stderr
    );

    // A token file too, for the daemon and the CLI alike.
    let token = dir.path().join("token");
    std::fs::write(&token, "operator operator 0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(&tsig, std::fs::Permissions::from_mode(0o600)).unwrap();
    for args in
        [&["serve", "--listen", "127.0.0.1:0", "--plan"][..], &["runs", "--server", "https://127.0.0.1:9", "--plan"]]
    {
        let ran = run(drover()
            .args(args)
            .arg(&plan)
            .arg("--token-file")
            .arg(&token)
            .env_remove("DROVER_ALLOW_OPEN_SECRET_FILES"));
        assert_eq!(ran.code, 2, "{args:?}: {}{}", ran.stdout, ran.stderr);
        assert!(
            ran.stderr.contains(&format!("--token-file {}: open to its group or others (mode 0640)", token.display())),
            "{args:?}: {}",
            ran.stderr
        );
    }
}

/// Nothing of the plan answers: every rule that reads the world says so and why, the budget
/// (1s × 3 + 1m + 0s + 5s over 30s) fails, and the command exits 1.
#[test]
fn readiness_when_nothing_is_reachable_names_each_failing_rule_and_exits_1() {
    let dir = plan_dir(PLAN);
    let plan = dir.path().join("plan.yaml");
    let ran = run(drover().args(["readiness", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_golden("readiness-nothing-reachable", &ran.transcript(&[(dir.path().to_str().unwrap(), "DIR")]));

    let ran = run(drover().args(["readiness", "-o", "json", "--plan"]).arg(&plan));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(v["at_ms"].as_u64().unwrap() > 1_700_000_000_000, "{v}");
    assert_eq!(v["level"], "fail");
    // The command's own output, its field order the report's; only the time is masked.
    let json = regex::Regex::new(r#""at_ms": \d+"#).unwrap().replace(&ran.stdout, r#""at_ms": 0"#);
    assert_golden("readiness-nothing-reachable-json", &json);
}

/// A plan that cannot be read is bad input: exit 2, nothing judged.
#[test]
fn readiness_of_a_missing_secret_is_bad_input() {
    let dir = plan_dir(PLAN);
    std::fs::remove_file(dir.path().join("tsig.key")).unwrap();
    let ran = run(drover().args(["readiness", "--plan"]).arg(dir.path().join("plan.yaml")));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(ran.stderr.contains("tsig.key"), "{}", ran.stderr);
}

#[test]
fn readiness_help_names_every_rule_and_the_exit_codes() {
    let ran = run(drover().args(["readiness", "--help"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_golden("readiness-help", &ran.transcript(&[]));
}
