//! AWS endpoints that take the connection and then say nothing: every AWS call has a
//! deadline (the plan's `aws.timeouts`), so `drover status` and `drover failover` end, and
//! say which call timed out against which endpoint, instead of waiting silently for ever.
//! The endpoint is a TCP listener on 127.0.0.1 that accepts every connection and never
//! reads or writes; drover is pointed at it through `AWS_ENDPOINT_URL`, as at moto.

#![cfg(feature = "aws")]

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Ran, drover};

/// Far beyond what the plan's timeouts allow (2 s per call): only a hang reaches it.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Runs `cmd` to its end, or kills it at `guard` and fails the test: a hang is the bug here.
fn run_guarded(cmd: &mut Command, guard: Duration) -> Ran {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drover still running after {guard:?}: it hangs\n{}", stderr.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ran { code: status.code().unwrap_or(-1), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

const ACCESS_KEY_ID: &str = "AKIDDEADLINETEST";
const SECRET_ACCESS_KEY: &str = "deadline-test-secret-key";

/// Accepts connections and holds them open without a word. Dropped with the test.
struct Silent {
    endpoint: String,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

fn silent_endpoint() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    Silent { endpoint, _held: held }
}

const PLAN: &str = r#"name: shop
objectives: { rto: 30m, rpo: 1m }
regions:
  us-east-2: { role: primary }
  us-west-1: { role: standby }
database:
  kind: rds
  promote_timeout: 2m
  members:
    us-east-2: { instance: shop-db }
    us-west-1: { instance: shop-db-replica }
traffic:
  kind: route53
  hosted_zone_id: Z0123456789ABCDEFGHIJ
  record: api.example.test.
  type: A
  ttl: 60s
  routing: failover
  targets:
    us-east-2: { value: 192.0.2.10, set_identifier: us-east-2 }
    us-west-1: { value: 192.0.2.20, set_identifier: us-west-1 }
checks:
  r53:
    route53_health_check: { us-east-2: 11111111-1111-1111-1111-111111111111, us-west-1: 22222222-2222-2222-2222-222222222222 }
    interval: 1s
    timeout: 900ms
aws:
  timeouts: { connect: 1s, attempt: 1s, operation: 2s }
"#;

/// Runs drover against `endpoint` with only the environment's credentials, logging everything.
fn drover_at(endpoint: &str, args: &[&str]) -> (Ran, Duration) {
    let mut cmd: Command = drover();
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DROVER_LOG", "trace");
    let started = Instant::now();
    let ran = run_guarded(&mut cmd, HANG_GUARD);
    let took = started.elapsed();
    for secret in [ACCESS_KEY_ID, SECRET_ACCESS_KEY] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "a credential leaked:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
    // The cap on the SDK's logs holds at DROVER_LOG=trace for every crate under it.
    let capped = [" aws_", " hyper::", " hyper_util::", " h2::", " rustls::"];
    for line in ran.stderr.lines().filter(|l| l.contains(" DEBUG ") || l.contains(" TRACE ")) {
        assert!(!capped.iter().any(|c| line.contains(c)), "an SDK debug line escaped the cap: {line}");
    }
    (ran, took)
}

#[test]
fn status_and_failover_end_and_name_the_call_and_endpoint_that_timed_out() {
    let silent = silent_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let plan = plan.to_str().unwrap();

    let (status, took) = drover_at(&silent.endpoint, &["status", "--plan", plan]);
    let all = format!("exit {}\n{}{}", status.code, status.stdout, status.stderr);
    eprintln!("drover status took {took:?}");
    // Status reports what it could not read; it ends by itself (not killed, no panic).
    assert!(matches!(status.code, 0 | 1), "{all}");
    for (call, resource) in [
        ("DescribeDBInstances", "us-east-2/shop-db"),
        ("DescribeDBInstances", "us-west-1/shop-db-replica"),
        ("ListResourceRecordSets", "us-east-1/hostedzone/Z0123456789ABCDEFGHIJ"),
    ] {
        let said = format!("{resource}: {call} timed out: no answer from {}", silent.endpoint);
        assert!(all.contains(&said), "missing {said:?}:\n{all}");
    }
    assert!(all.contains("raise aws.timeouts in the plan"), "{all}");

    let (failover, took) = drover_at(&silent.endpoint, &["failover", "--yes", "--plan", plan, "--to", "us-west-1"]);
    let all = format!("exit {}\n{}{}", failover.code, failover.stdout, failover.stderr);
    eprintln!("drover failover took {took:?}");
    // The target's database cannot be seen: refused before anything is done, not run blind.
    assert_eq!(failover.code, 2, "{all}");
    assert!(failover.stderr.contains("failover refused"), "{all}");
    let said = format!("us-west-1/shop-db-replica: DescribeDBInstances timed out: no answer from {}", silent.endpoint);
    assert!(failover.stderr.contains(&said), "missing {said:?}:\n{all}");
}
