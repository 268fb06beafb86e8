//! `drover backup create|list|verify` and `drover restore` as a user meets them: the
//! binary, a plan file, each region's cluster reached through a kubeconfig, and backup
//! stores in local directories and in a real S3-compatible server (moto).
//!
//! Stand-in: no Kubernetes API server can be installed where CI runs, so each region's
//! cluster is drover-backup's in-memory stand-in served over HTTP (`standin::http`), which
//! keeps objects, honours resourceVersion and serves discovery. drover talks to it with its
//! real kube-rs client.

#![cfg(feature = "kubernetes")]

#[path = "../../drover-adapters/tests/support/moto.rs"]
#[cfg(feature = "aws")]
mod moto;
mod support;

use std::path::Path;
use std::sync::Arc;

use drover_backup::standin::http::ApiServer;
use drover_backup::standin::{MemoryCluster, widget_crd};
use serde_json::{Value, json};
use support::{Ran, assert_golden, drover, run};

const KEY: &str = "a-backup-key-of-at-least-32-bytes-for-tests";
const SECRET_VALUE: &str = "aHVudGVyMg==";

fn runtime() -> tokio::runtime::Runtime {
    // reqwest is built without a TLS provider of its own; the binary installs ring, tests do too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The east cluster: an application in namespace `shop`, with a custom resource.
fn east_cluster() -> Arc<MemoryCluster> {
    let c = MemoryCluster::new();
    c.seed(widget_crd());
    c.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    c.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}, "data": {"mode": "live"}}));
    c.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": {"password": SECRET_VALUE}}));
    c.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "shop:1"}]}}}}));
    c.seed(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"size": 3}}));
    Arc::new(c)
}

struct Setup {
    dir: tempfile::TempDir,
    plan: std::path::PathBuf,
    west: Arc<MemoryCluster>,
    _servers: (ApiServer, ApiServer),
}

/// A plan whose east and west clusters are stand-ins, with `stores` as its backup stores.
fn setup(rt: &tokio::runtime::Runtime, stores: &str) -> Setup {
    // The plan's database and DNS secrets exist but point nowhere: backups need neither.
    let dir = support::plan_dir(support::PLAN);
    let (east, west) = (east_cluster(), Arc::new(MemoryCluster::new()));
    let (east_api, west_api) =
        rt.block_on(async { (ApiServer::start(east.clone()).await, ApiServer::start(west.clone()).await) });
    let east_config = east_api.write_kubeconfig(dir.path(), "east");
    let west_config = west_api.write_kubeconfig(dir.path(), "west");
    support::write_secret(dir.path().join("backup.key"), KEY);
    let plan = format!(
        "{}backup:\n  secrets: true\n  key_file: {}\n  keep: {{ last: 2 }}\n  clusters:\n    east: {{ kubeconfig: {}, context: east }}\n    west: {{ kubeconfig: {}, context: west }}\n  stores:\n{stores}",
        support::PLAN,
        dir.path().join("backup.key").display(),
        east_config.display(),
        west_config.display(),
    );
    let plan = plan.replace("DIR", dir.path().to_str().unwrap());
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    Setup { dir, plan: path, west, _servers: (east_api, west_api) }
}

fn local_stores() -> &'static str {
    "    east: { dir: DIR/backups-east }\n    west: { dir: DIR/backups-west }\n"
}

fn drover_on(plan: &Path, args: &[&str]) -> Ran {
    run(drover().args(args).arg("--plan").arg(plan).env("DROVER_LOG", "debug"))
}

/// Backs up east's cluster; the backup's id.
fn backed_up(plan: &Path) -> String {
    json(&drover_on(plan, &["backup", "create", "--region", "east", "-o", "json"]))["id"].as_str().unwrap().to_owned()
}

fn json(ran: &Ran) -> Value {
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

/// Neither the key nor a Secret's value reaches the output or the logs.
fn assert_no_secrets(ran: &Ran) {
    for secret in [KEY, SECRET_VALUE] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "a secret leaked:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
}

fn object_files(store: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.join("objects")).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn backup_to_both_regions_then_restore_into_west_under_another_namespace() {
    let rt = runtime();
    let s = setup(&rt, local_stores());

    let first = drover_on(&s.plan, &["backup", "create", "--region", "east", "-o", "json"]);
    assert_no_secrets(&first);
    let first = json(&first);
    let id = first["id"].as_str().unwrap().to_owned();
    // CRD, Namespace, ConfigMap, Secret, Deployment, Widget.
    assert_eq!(first["objects"], 6, "{first}");
    assert_eq!(first["secrets_encrypted"], 1);
    for store in first["stores"].as_array().unwrap() {
        assert_eq!(store["new_objects"], 6, "{first}");
    }
    let east_store = s.dir.path().join("backups-east");
    assert_eq!(object_files(&east_store).len(), 6);
    for file in object_files(&east_store) {
        let bytes = std::fs::read(file).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET_VALUE), "a Secret is stored in the clear");
    }

    // Nothing changed in east: the second backup writes only its index, and its Secret
    // sealed anew (bound to the new backup).
    let second = json(&drover_on(&s.plan, &["backup", "create", "--region", "east", "-o", "json"]));
    for store in second["stores"].as_array().unwrap() {
        assert_eq!(store["new_objects"], 1, "{second}");
    }
    let listed = json(&drover_on(&s.plan, &["backup", "list", "-o", "json"]));
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str(), second["id"].as_str().unwrap()]);
    assert_eq!(listed[0]["stores"], json!(["east", "west"]));

    let verified = drover_on(&s.plan, &["backup", "verify", &id]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(
        verified.stdout.contains("east store: backup ") && verified.stdout.contains("6 objects checked, ok"),
        "{}",
        verified.stdout
    );

    let restored = drover_on(
        &s.plan,
        &["restore", "--from", &id, "--to-region", "west", "--namespace-map", "shop=shop-dr", "-o", "json"],
    );
    assert_no_secrets(&restored);
    let restored = json(&restored);
    assert_eq!(restored["created"], 6, "{restored}");
    assert_eq!(restored["failed"], 0);
    let order: Vec<&str> =
        restored["objects"].as_array().unwrap().iter().map(|o| o["object"].as_str().unwrap()).collect();
    assert_eq!(order.first(), Some(&"CustomResourceDefinition widgets.example.com"), "{order:?}");
    assert_eq!(order.last(), Some(&"Deployment shop-dr/web"), "workloads go last: {order:?}");
    let secret = s.west.object("secrets", "shop-dr", "db").expect("the Secret is restored");
    assert_eq!(secret["data"]["password"], SECRET_VALUE);
    assert!(s.west.object("widgets", "shop-dr", "blue").is_some());
    assert!(s.west.object("configmaps", "shop", "settings").is_none(), "nothing lands in the unmapped namespace");
    let log = s.west.log();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line} not in {log:#?}"));
    let (established, widget) = (at("established widgets.example.com"), at("create Widget shop-dr/blue"));
    assert!(established < widget, "a custom resource went in before its CRD was Established: {log:?}");

    // The same restore again: every object was done before, nothing is applied twice.
    let again = json(&drover_on(
        &s.plan,
        &["restore", "--from", &id, "--to-region", "west", "--namespace-map", "shop=shop-dr", "-o", "json"],
    ));
    assert_eq!((again["done_before"].as_u64(), again["created"].as_u64()), (Some(6), Some(0)), "{again}");
}

#[test]
fn verify_names_a_corrupted_object_and_retention_keeps_the_last_two() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(backed_up(&s.plan));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // keep: { last: 2 }: the oldest is gone from both stores.
    let listed = json(&drover_on(&s.plan, &["backup", "list", "-o", "json"]));
    let kept: Vec<&str> = listed.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(kept, [ids[1].as_str(), ids[2].as_str()]);

    // Flip a byte of one content object in the west store.
    let west_store = s.dir.path().join("backups-west");
    let victim = object_files(&west_store).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let hash = victim.file_name().unwrap().to_str().unwrap().to_owned();

    let ran = drover_on(&s.plan, &["backup", "verify", &ids[2]]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("east store: backup ") && ran.stdout.contains("objects checked, ok"), "{}", ran.stdout);
    let line = ran.stdout.lines().find(|l| l.contains("corrupt")).unwrap_or_else(|| panic!("{}", ran.stdout));
    assert!(line.contains(&hash), "{line}");
    assert!(
        ran.stderr.contains(&format!(
            "backup {} is damaged in the west store; restore from a whole copy with --store east",
            ids[2]
        )),
        "{}",
        ran.stderr
    );
    let as_json = drover_on(&s.plan, &["backup", "verify", &ids[2], "--region", "west", "-o", "json"]);
    assert_eq!(as_json.code, 1);
    let report: Value = serde_json::from_str(&as_json.stdout).unwrap();
    assert_eq!(report[0]["corrupt"][0]["hash"], hash.as_str());
    assert_eq!(report[0]["sealed_unopened"], 0, "the plan's key opened the sealed Secret");

    // A restore from the damaged copy is refused whole (exit 1, as verify's), the object
    // named and nothing applied; from the whole copy it goes through.
    let ran = drover_on(&s.plan, &["restore", "--from", &ids[2], "--to-region", "west"]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("in the west store is damaged, so nothing was restored: corrupt "), "{}", ran.stderr);
    assert!(ran.stderr.contains(&hash) && ran.stderr.contains("--store REGION"), "{}", ran.stderr);
    assert!(s.west.log().is_empty(), "applied before refusing: {:?}", s.west.log());
    let restored = json(&drover_on(
        &s.plan,
        &["restore", "--from", &ids[2], "--to-region", "west", "--store", "east", "-o", "json"],
    ));
    assert_eq!(restored["failed"], 0, "{restored}");
}

#[test]
fn bad_input_is_refused_with_exit_2_and_changes_nothing() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let id = backed_up(&s.plan);
    let cases: [(&[&str], &str); 5] = [
        (
            &["backup", "create", "--region", "north"],
            "--region north: the plan's backup section has no store for north; its regions are east, west",
        ),
        (
            &["restore", "--from", &id, "--to-region", "west", "--namespace-map", "shop"],
            "--namespace-map shop: write FROM=TO",
        ),
        (
            &["restore", "--from", "20990101-000000-000-east", "--to-region", "west"],
            "no backup 20990101-000000-000-east in the west store",
        ),
        (&["backup", "verify", "nope"], "no backup nope in any store"),
        (&["restore", "--from", &id, "--to-region", "west", "--crd-timeout", "soon"], "soon"),
    ];
    for (args, expected) in cases {
        let ran = drover_on(&s.plan, args);
        assert_eq!(ran.code, 2, "{args:?}: {}{}", ran.stdout, ran.stderr);
        assert!(ran.stderr.contains(expected), "{args:?}: expected {expected}\nfound {}", ran.stderr);
    }
    assert!(s.west.objects("configmaps").is_empty(), "a refused restore applied something");

    // A wrong key is refused before anything is applied.
    support::write_secret(s.dir.path().join("backup.key"), "another-key-of-at-least-32-bytes-long!!");
    let ran = drover_on(&s.plan, &["restore", "--from", &id, "--to-region", "west"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("was encrypted with key") && ran.stderr.contains("nothing was restored"),
        "{}",
        ran.stderr
    );
    assert!(s.west.objects("namespaces").is_empty());

    // A plan without a backup section says what to add.
    let bare = s.dir.path().join("bare.yaml");
    std::fs::write(&bare, support::PLAN.replace("DIR", s.dir.path().to_str().unwrap())).unwrap();
    let ran = drover_on(&bare, &["backup", "list"]);
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("the plan has no backup section; add one"), "{}", ran.stderr);
}

#[test]
fn backup_and_restore_help_teach_the_commands() {
    for (name, args) in [
        ("backup-help", &["backup", "--help"][..]),
        ("backup-create-help", &["backup", "create", "--help"]),
        ("restore-help", &["restore", "--help"]),
    ] {
        let ran = run(drover().args(args));
        assert_eq!(ran.code, 0);
        assert_golden(name, &ran.transcript(&[]));
    }
}

/// The text each command prints, with the backup's id (a time) and the temp dir redacted.
#[test]
fn backup_commands_print_what_they_did() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    // Without DROVER_LOG, as a person runs them: only warnings reach stderr.
    let quiet = |args: &[&str]| run(drover().args(args).arg("--plan").arg(&s.plan));
    let created = quiet(&["backup", "create", "--region", "east"]);
    let id = created.stdout.split_whitespace().nth(1).expect("backup ID").to_owned();
    let dir = s.dir.path().to_str().unwrap().to_owned();
    let redactions = [(id.as_str(), "ID"), (dir.as_str(), "DIR")];
    let mut all = format!("$ drover backup create --region east\n{}", created.transcript(&redactions));
    for args in [
        vec!["backup", "list"],
        vec!["backup", "verify", &id],
        vec!["restore", "--from", &id, "--to-region", "west", "--namespace-map", "shop=shop-dr"],
        vec!["restore", "--from", &id, "--to-region", "west", "--namespace-map", "shop=shop-dr"],
    ] {
        let ran = quiet(&args);
        all.push_str(&format!("$ drover {}\n{}", args.join(" ").replace(&id, "ID"), ran.transcript(&redactions)));
    }
    // The created timestamp in the list is the id's time: redact the column's value too.
    let created_at = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    assert_golden("backup-commands", &created_at.replace_all(&all, "CREATED"));
}

#[test]
fn list_of_an_empty_store_says_how_to_take_a_backup() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let ran = drover_on(&s.plan, &["backup", "list"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("no backups yet; take one with 'drover backup create --plan {} --region REGION'\n", s.plan.display())
    );
}

/// The stores are S3 buckets in a real moto server, one per region.
#[cfg(feature = "aws")]
#[test]
fn backup_to_s3_buckets_in_both_regions_and_restore_from_west() {
    let rt = runtime();
    let moto = moto::Moto::start();
    let endpoint = moto.endpoint();
    for bucket in ["shop-backups-east", "shop-backups-west"] {
        let made = reqwest::blocking::Client::new().put(format!("{endpoint}/{bucket}")).send().unwrap();
        assert!(made.status().is_success(), "create bucket {bucket}: {}", made.status());
    }
    let stores = format!(
        "    east: {{ url: s3://shop-backups-east/drover, endpoint: {endpoint}, aws_region: us-east-2 }}\n    west: {{ url: s3://shop-backups-west/drover, endpoint: {endpoint}, aws_region: us-west-1 }}\n"
    );
    let s = setup(&rt, &stores);
    let with_moto = |args: &[&str]| {
        let mut cmd = drover();
        cmd.args(args).arg("--plan").arg(&s.plan).env("DROVER_LOG", "debug");
        for (k, v) in moto.env() {
            cmd.env(k, v);
        }
        let ran = run(&mut cmd);
        assert_no_secrets(&ran);
        for secret in [moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY] {
            assert!(!ran.stdout.contains(secret) && !ran.stderr.contains(secret), "an AWS credential leaked");
        }
        ran
    };
    let created = json(&with_moto(&["backup", "create", "--region", "east", "-o", "json"]));
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = json(&with_moto(&["backup", "list", "--region", "west", "-o", "json"]));
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(with_moto(&["backup", "verify", &id]).code, 0);
    let restored = json(&with_moto(&["restore", "--from", &id, "--to-region", "west", "-o", "json"]));
    assert_eq!(restored["created"], 6, "{restored}");
    assert!(s.west.object("deployments", "shop", "web").is_some());
}

#[test]
fn a_restore_under_another_namespace_map_is_not_taken_for_a_rerun() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let id = backed_up(&s.plan);
    let restore = |map: &str| {
        json(&drover_on(
            &s.plan,
            &["restore", "--from", &id, "--to-region", "west", "--namespace-map", map, "-o", "json"],
        ))
    };
    assert_eq!(restore("shop=shop-a")["created"], 6);
    let second = restore("shop=shop-b");
    assert_eq!(second["created"], 5, "all but the CRD, which exists: {second}");
    assert_eq!(second["unchanged"], 1, "{second}");
    assert!(s.west.object("configmaps", "shop-b", "settings").is_some());
}

#[test]
fn a_store_that_cannot_be_written_does_not_keep_the_backup_from_the_others() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    // West's store cannot take objects: where its objects/ directory goes is a file.
    let west_store = s.dir.path().join("backups-west");
    std::fs::create_dir_all(&west_store).unwrap();
    std::fs::write(west_store.join("objects"), "not a directory").unwrap();

    let ran = drover_on(&s.plan, &["backup", "create", "--region", "east"]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("  east store: 6 new content objects\n"), "{}", ran.stdout);
    assert!(ran.stdout.contains("  west store: NOT WRITTEN ("), "{}", ran.stdout);
    let id = ran.stdout.split_whitespace().nth(1).unwrap().to_owned();
    assert!(ran.stderr.contains(&format!("backup {id} is incomplete: the west store: ")), "{}", ran.stderr);
    assert!(!west_store.join("pending").join(&id).exists(), "a failed store keeps no pending marker");

    let listed = json(&drover_on(&s.plan, &["backup", "list", "-o", "json"]));
    assert_eq!(listed[0]["stores"], json!(["east"]));
    let verified = drover_on(&s.plan, &["backup", "verify", &id]);
    assert_eq!(verified.code, 1);
    assert!(verified.stdout.contains(&format!("west store: backup {id}: ABSENT")), "{}", verified.stdout);
    assert!(
        verified.stderr.contains("absent in the west store; restore from a whole copy with --store east"),
        "{}",
        verified.stderr
    );

    // West's own store lacks it: a restore into west reads east's copy when told to.
    let refused = drover_on(&s.plan, &["restore", "--from", &id, "--to-region", "west"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("no backup {id} in the west store")), "{}", refused.stderr);
    let restored =
        json(&drover_on(&s.plan, &["restore", "--from", &id, "--to-region", "west", "--store", "east", "-o", "json"]));
    assert_eq!(restored["created"], 6, "{restored}");
}

#[test]
fn restart_applies_again_what_an_earlier_run_applied() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let id = backed_up(&s.plan);
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", "--from", &id, "--to-region", "west", "-o", "json"];
        args.extend_from_slice(extra);
        json(&drover_on(&s.plan, &args))
    };
    assert_eq!(restore(&[])["created"], 6);
    assert_eq!(restore(&[])["done_before"], 6);
    let again = restore(&["--restart"]);
    assert_eq!((again["done_before"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(6)), "{again}");
}

#[test]
fn the_backup_commands_need_no_database_or_dns_secret() {
    let rt = runtime();
    let s = setup(&rt, local_stores());
    let id = backed_up(&s.plan);
    // In a disaster, whoever restores may hold only the backup key.
    for file in ["east.dsn", "west.dsn", "tsig.key"] {
        std::fs::remove_file(s.dir.path().join(file)).unwrap();
    }
    assert_eq!(drover_on(&s.plan, &["backup", "list"]).code, 0);
    assert_eq!(drover_on(&s.plan, &["backup", "verify", &id]).code, 0);
    assert_eq!(
        json(&drover_on(&s.plan, &["restore", "--from", &id, "--to-region", "west", "-o", "json"]))["created"],
        6
    );
}
