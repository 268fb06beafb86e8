//! Golden tests for plan files: every `tests/plans/bad/*.yaml` must fail with
//! exactly the errors in the `.err` file beside it, and every
//! `tests/plans/good/*.yaml` must parse and summarise as its `.summary` file.
//! `UPDATE_GOLDEN=1 cargo nextest run -p drover-core --test plan_golden`
//! rewrites the expectations; read the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use drover_core::plan::{Plan, Role, parse_plan, summary};
use drover_core::secret::{Secret, SecretRef, SecretSource};

/// The secrets a test machine "has". Their values must never reach any output.
struct MapSecrets(Vec<(SecretRef, &'static str)>);

impl SecretSource for MapSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        match self.0.iter().find(|(r, _)| r == reference) {
            Some((_, value)) => Ok(Secret::new(*value)),
            None => Err(match reference {
                SecretRef::Env(_) => format!("{reference} is not set"),
                SecretRef::File(_) => format!("{reference} cannot be read: no such file"),
            }),
        }
    }
}

fn secrets() -> MapSecrets {
    MapSecrets(vec![
        (SecretRef::Env("EAST_DSN".into()), "postgres://app:east-s3cret@10.200.0.11/app"),
        (SecretRef::Env("WEST_DSN".into()), "postgres://app:west-s3cret@10.200.0.12/app"),
        (SecretRef::Env("TSIG_KEY".into()), "dHNpZy1zM2NyZXQ="),
        (SecretRef::File("/etc/drover/west.dsn".into()), "postgres://app:west-s3cret@10.200.0.12/app"),
        (SecretRef::File("/etc/drover/tsig".into()), "dHNpZy1zM2NyZXQ="),
        (SecretRef::File("/var/lib/drover/lab/tsig.key".into()), "dHNpZy1zM2NyZXQ="),
        (SecretRef::Env("SLACK_WEBHOOK_URL".into()), "https://hooks.slack.com/services/T0/B0/s3cret"),
        (SecretRef::File("/etc/drover/pd-key".into()), "pd-routing-key-s3cret"),
        (SecretRef::Env("OPS_TOKEN".into()), "Bearer ops-s3cret"),
        (SecretRef::File("/etc/drover/hooks-url".into()), "https://ops.example.com/hooks?token=s3cret"),
        (SecretRef::File("/etc/drover/peer.key".into()), "peer-key-s3cret-0123456789abcdef0123456789"),
        (SecretRef::Env("OLD_PEER_KEY".into()), "old-peer-key-s3cret-0123456789abcdef012345"),
        (SecretRef::Env("SHORT_PEER_KEY".into()), "short-s3cret"),
        (SecretRef::Env("CANARY_TOKEN".into()), "canary-s3cret"),
        (SecretRef::Env("SHOP_CANARY_DSN".into()), "postgres://canary:s3cret@db.shop.example.com/shop"),
    ])
}

/// Secret values in the source above and in the bad fixtures' inline secrets.
const NEVER_PRINTED: [&str; 4] = ["s3cret", "dHNpZy1zM2NyZXQ=", "hunter2", "aHVudGVyMg=="];

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new("tests/plans").join(dir))
        .unwrap_or_else(|e| panic!("tests/plans/{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn parse(path: &Path) -> Result<Plan, String> {
    let text = fs::read_to_string(path).unwrap();
    parse_plan(path, &text, &secrets()).map_err(|e| e.to_string())
}

/// Compares `actual` with the golden file (or rewrites it); returns a failure description.
fn golden(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(path, actual).unwrap();
        return None;
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| format!("{}:\n--- expected\n{expected}--- actual\n{actual}", path.display()))
}

#[test]
fn bad_plans_fail_with_exactly_the_expected_errors() {
    let files = fixtures("bad");
    assert!(files.len() >= 15, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let output = match parse(path) {
            Ok(_) => {
                failures.push(format!("{}: parsed, but should have failed", path.display()));
                continue;
            }
            Err(output) => output,
        };
        for secret in NEVER_PRINTED {
            assert!(!output.contains(secret), "{} prints a secret:\n{output}", path.display());
        }
        failures.extend(golden(&path.with_extension("err"), &output));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_plans_parse_and_summarise_as_expected() {
    let files = fixtures("good");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for path in &files {
        match parse(path) {
            Ok(plan) => failures.extend(golden(&path.with_extension("summary"), &summary(&plan))),
            Err(errors) => failures.push(format!("{}: should be valid:\n{errors}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_golden_file_has_its_plan() {
    for (dir, ext) in [("bad", "err"), ("good", "summary")] {
        for entry in fs::read_dir(Path::new("tests/plans").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == ext) {
                assert!(path.with_extension("yaml").exists(), "{} has no plan beside it", path.display());
            }
        }
    }
}

#[test]
fn netns_regions_plan_reads_as_the_lab_needs() {
    let plan = parse(Path::new("tests/plans/good/lab.yaml")).unwrap();
    assert_eq!(plan.planned_primary(), "east");
    assert_eq!(plan.service_regions().collect::<Vec<_>>(), ["east", "west"]);
    assert_eq!(plan.regions["witness"].role, Role::Witness);
    let dns = plan.rfc2136().expect("rfc2136 traffic");
    assert_eq!(dns.server.to_string(), "10.200.0.1:53");
    assert_eq!(dns.targets["west"].to_string(), "10.200.0.12");
    let api = &plan.checks["api"];
    assert_eq!(api.interval.as_millis(), 1000);
    assert_eq!(api.timeout.as_millis(), 500);
    assert!(api.critical);
    let east = plan.postgres().unwrap().members["east"].host.as_ref().unwrap();
    assert_eq!(east.exec[..4], ["ip", "netns", "exec", "drover-east"]);
    assert_eq!(plan.source, Path::new("tests/plans/good/lab.yaml"));
}

/// docs/plan.md shows a complete example and what `drover plan check` prints
/// for it; both must stay true.
#[test]
fn documented_example_is_valid_and_summarised_as_shown() {
    let doc = fs::read_to_string("../../docs/plan.md").unwrap();
    let block = |after: &str, fence: &str| -> String {
        let start = doc.find(after).unwrap_or_else(|| panic!("docs/plan.md has no {after:?}"));
        let rest = &doc[start..];
        let open = rest.find(fence).unwrap() + fence.len();
        let close = rest[open..].find("```").unwrap();
        rest[open..open + close].to_owned()
    };
    let example = block("## A complete example", "```yaml\n");
    let plan = parse_plan(Path::new("shop.yaml"), &example, &secrets()).unwrap_or_else(|e| panic!("{e}"));
    let shown = block("$ drover plan check shop.yaml\n", "shop.yaml\n");
    assert_eq!(summary(&plan), shown);
}
