//! The plan's own steps against the real world: `http` steps against a local HTTP
//! receiver, `exec` steps as real processes. Each runs inside a failover of the fake
//! world (database, traffic) through the engine, journaled like any step: what the
//! receiver and the command get, what is retried and what pauses the run, that a crash
//! after the effect and before its record does not act twice when `observe` says done,
//! and that no secret reaches the journal.

#[path = "support/silent.rs"]
mod silent;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use drover_adapters::hooks::HookRunner;
use drover_core::engine::{Engine, Providers, RetryPolicy, plan_run};
use drover_core::journal::Journal;
use drover_core::plan::{ExecAction, HttpAction, HttpObserve, Plan, RunSide, StepAction, StepKind};
use drover_core::run::{RunKind, RunState, RunSummary, StepState};
use drover_core::secret::{Secret, SecretRef, SecretSource, SecretText};
use drover_core::testing::scenarios::{observe, two_region_plan};
use drover_core::testing::{CrashingJournal, FakeWorld, MemoryJournal};
use drover_core::world::{Hooks, HttpRequest};

/// Hang guard only.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

const TOKEN: &str = "Bearer hook-s3cret-token";
const VARIABLE: &str = "queue-s3cret-value";

struct Secrets;

impl SecretSource for Secrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        match reference {
            SecretRef::Env(name) if name == "OPS_TOKEN" => Ok(Secret::new(TOKEN)),
            SecretRef::Env(name) if name == "QUEUE_TOKEN" => Ok(Secret::new(VARIABLE)),
            other => Err(format!("{other} is not set")),
        }
    }
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

/// Records every request. `POST /warm` answers the next scripted status (200 when the
/// script is empty) and, on 2xx, marks the cache warm; `GET /warm/done` answers 200 once
/// it is warm, 404 before.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Vec<u16>>>,
    warm: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn start(self) -> String {
        async fn handle(
            State(rx): State<Receiver>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, String) {
            rx.requests.lock().unwrap().push(Request {
                method: method.to_string(),
                path: uri.path().to_owned(),
                headers: headers.clone(),
                body: body.clone(),
            });
            if method == Method::GET {
                let warm = *rx.warm.lock().unwrap();
                return if warm { (StatusCode::OK, "warm".into()) } else { (StatusCode::NOT_FOUND, "cold".into()) };
            }
            let status = {
                let mut script = rx.script.lock().unwrap();
                if script.is_empty() { 200 } else { script.remove(0) }
            };
            if (200..300).contains(&status) {
                *rx.warm.lock().unwrap() = true;
            }
            // A careless receiver echoes what it was sent, the token included.
            let echo =
                format!("got {} with {}", body, headers.get("authorization").map_or("", |v| v.to_str().unwrap()));
            (StatusCode::from_u16(status).unwrap(), echo)
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn posts(&self) -> Vec<Request> {
        self.requests.lock().unwrap().iter().filter(|r| r.method == "POST").cloned().collect()
    }
}

fn http_step(base: &str, observe: bool) -> StepAction {
    StepAction::Http(HttpAction {
        url: SecretText::Plain(format!("{base}/warm")),
        method: "POST".into(),
        headers: BTreeMap::from([
            ("Authorization".to_owned(), SecretText::Secret(SecretRef::Env("OPS_TOKEN".into()))),
            ("X-Team".to_owned(), SecretText::Plain("sre".into())),
        ]),
        body: Some(r#"{"cache":"sessions"}"#.into()),
        expect_status: Vec::new(),
        timeout: Duration::from_secs(5),
        observe: observe
            .then(|| HttpObserve { url: SecretText::Plain(format!("{base}/warm/done")), expect_status: vec![200] }),
    })
}

/// The fake world's plan with `step` after promote in the failover runbook.
fn plan_with(name: &str, step: StepAction) -> Plan {
    let mut plan = two_region_plan();
    plan.steps.insert(name.into(), step);
    let failover = &mut plan.runbooks.failover;
    let promote = failover.iter().position(|s| *s == StepKind::Promote).unwrap();
    failover.insert(promote + 1, StepKind::custom(name));
    plan
}

fn runner(plan: &Plan) -> HookRunner {
    let _ = rustls::crypto::ring::default_provider().install_default();
    HookRunner::new(plan.steps.values().flat_map(StepAction::secrets), &Secrets).unwrap()
}

/// Quick retries: a handful of attempts, milliseconds apart.
const QUICK: RetryPolicy =
    RetryPolicy { attempts: 3, initial: Duration::from_millis(5), max_delay: Duration::from_millis(10) };

fn engine<'a>(plan: &'a Plan, journal: &'a dyn Journal, world: &'a FakeWorld, hooks: &'a HookRunner) -> Engine<'a> {
    Engine::new(plan, journal, Providers { hooks, ..Providers::all(world) }).with_retries(QUICK, QUICK)
}

/// Starts a failover to west and drives it until it ends or pauses.
async fn failover(plan: &Plan, journal: &dyn Journal, world: &FakeWorld, hooks: &HookRunner) -> RunSummary {
    let header = plan_run(plan, RunKind::Failover, "west", &observe(plan, journal, world).await, "test").unwrap();
    engine(plan, journal, world, hooks).start(&header).await.unwrap()
}

fn step<'s>(run: &'s RunSummary, name: &str) -> &'s drover_core::run::StepView {
    run.steps.iter().find(|s| s.kind.as_str() == name).unwrap()
}

/// Everything the journal holds for the run, as text: no secret may be in it.
async fn journal_text(journal: &dyn Journal, run: &RunSummary) -> String {
    serde_json::to_string(&journal.entries(&run.header.id).await.unwrap()).unwrap()
}

#[tokio::test]
async fn an_http_step_calls_once_with_the_run_in_its_headers_and_no_secret_in_the_journal() {
    guard(async {
        let receiver = Receiver::default();
        let base = receiver.clone().start().await;
        let plan = plan_with("warm-cache", http_step(&base, true));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);

        let posts = receiver.posts();
        assert_eq!(posts.len(), 1, "one call: {posts:?}");
        let post = &posts[0];
        assert_eq!(post.path, "/warm");
        assert_eq!(post.body, r#"{"cache":"sessions"}"#);
        let header = |name: &str| post.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("authorization").as_deref(), Some(TOKEN), "the secret header is sent");
        assert_eq!(header("x-team").as_deref(), Some("sre"));
        assert_eq!(header("x-drover-run"), Some(run.header.id.0.clone()));
        assert_eq!(header("x-drover-epoch"), Some(run.header.epoch.to_string()));
        assert_eq!(header("x-drover-from").as_deref(), Some("east"));
        assert_eq!(header("x-drover-to").as_deref(), Some("west"));
        assert_eq!(header("idempotency-key"), Some(format!("{}/warm-cache", run.header.id)));
        let gets = receiver.requests.lock().unwrap().iter().filter(|r| r.method == "GET").count();
        assert!(gets >= 2, "observed before and after the call: {gets} GETs");

        let warm = step(&run, "warm-cache");
        assert_eq!(warm.state, StepState::Applied);
        let detail = warm.detail.as_deref().unwrap();
        assert!(detail.contains("warm-cache POST answered 200"), "{detail}");
        assert!(detail.contains("<redacted>"), "the echoed token is cut out: {detail}");
        let journal = journal_text(&journal, &run).await;
        assert!(!journal.contains("s3cret"), "a secret reached the journal: {journal}");
    })
    .await;
}

/// The call was made, then drover died before the journal heard: the resumed run asks
/// the observe URL, which says done, and does not call again.
#[tokio::test]
async fn a_crash_after_the_call_and_before_its_record_does_not_call_twice() {
    guard(async {
        let receiver = Receiver::default();
        let base = receiver.clone().start().await;
        let plan = plan_with("warm-cache", http_step(&base, true));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let header =
            plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "test").unwrap();
        // Records: started, then intent and outcome for fence and promote (and the
        // epoch raised), then warm-cache's intent (7) and its outcome (8), which is lost.
        let crashing = CrashingJournal::losing(&journal, 8);
        assert!(engine(&plan, &crashing, &world, &hooks).start(&header).await.is_err());
        assert_eq!(receiver.posts().len(), 1, "the call was made before the crash");
        let summary = journal.summary(&header.id).await.unwrap();
        assert_eq!(step(&summary, "warm-cache").state, StepState::InFlight, "the journal never heard");

        let run = engine(&plan, &journal, &world, &hooks).resume(&header.id).await.unwrap();
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
        assert_eq!(receiver.posts().len(), 1, "observe said done: no second call");
        assert_eq!(step(&run, "warm-cache").state, StepState::AlreadyDone);
    })
    .await;
}

/// Without observe nothing shows the call was made: after the same crash it is made
/// again (at least once), with the same Idempotency-Key for the receiver to spot.
#[tokio::test]
async fn without_observe_a_call_is_made_again_after_a_crash_with_the_same_idempotency_key() {
    guard(async {
        let receiver = Receiver::default();
        let base = receiver.clone().start().await;
        let plan = plan_with("warm-cache", http_step(&base, false));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let header =
            plan_run(&plan, RunKind::Failover, "west", &observe(&plan, &journal, &world).await, "test").unwrap();
        let crashing = CrashingJournal::losing(&journal, 8);
        assert!(engine(&plan, &crashing, &world, &hooks).start(&header).await.is_err());
        let run = engine(&plan, &journal, &world, &hooks).resume(&header.id).await.unwrap();
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
        let keys: Vec<String> = receiver
            .posts()
            .iter()
            .map(|p| p.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned())
            .collect();
        let key = format!("{}/warm-cache", header.id);
        assert_eq!(keys, [key.clone(), key]);
    })
    .await;
}

/// A 503 is retried within the step's attempts; a 404 pauses the run at once, saying what
/// came back; a resume after the receiver is fixed completes it.
#[tokio::test]
async fn an_overloaded_receiver_is_retried_and_a_refusal_pauses_the_run_until_resumed() {
    guard(async {
        let receiver = Receiver::default();
        receiver.script.lock().unwrap().extend([503, 404]);
        let base = receiver.clone().start().await;
        let plan = plan_with("warm-cache", http_step(&base, true));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Paused);
        assert_eq!(receiver.posts().len(), 2, "the 503 was tried again; the 404 was not");
        let reason = run.reason.as_deref().unwrap();
        assert!(reason.starts_with("west warm-cache: warm-cache POST answered 404"), "{reason}");
        assert!(reason.contains("(expected a 2xx status)") && reason.contains("drover resume"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");

        let run = engine(&plan, &journal, &world, &hooks).resume(&run.header.id).await.unwrap();
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
        assert_eq!(receiver.posts().len(), 3);
    })
    .await;
}

/// A call nobody answers is transient; reqwest's error is kept as the source, with no secret in it.
#[tokio::test]
async fn a_call_nobody_answers_keeps_the_http_clients_error() {
    guard(async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let hooks = runner(&plan_with("warm-cache", http_step(&format!("http://{closed}"), false)));
        let request = HttpRequest {
            method: "POST".into(),
            url: SecretText::Plain(format!("http://{closed}/warm")),
            headers: vec![("Authorization".into(), SecretText::Secret(SecretRef::Env("OPS_TOKEN".into())))],
            body: None,
            timeout: Duration::from_secs(5),
        };
        let err = hooks.http(&request).await.unwrap_err();
        assert!(err.retryable(), "{err}");
        assert_eq!(err.message, format!("POST http://{closed}/warm: connection refused"));
        let source = std::error::Error::source(&err).expect("keeps reqwest's error");
        assert!(!format!("{source} {source:?}").contains("s3cret"), "{source:?}");
    })
    .await;
}

/// A receiver that takes the connection and never answers: the step's call ends at the
/// step's `timeout`, and the run pauses on it saying so.
#[tokio::test]
async fn an_http_step_whose_receiver_never_answers_pauses_the_run_at_its_timeout() {
    guard(async {
        let silent = silent::silent_server().await;
        let mut warm = http_step(&format!("http://{silent}"), false);
        if let StepAction::Http(action) = &mut warm {
            action.timeout = Duration::from_millis(300);
        }
        let plan = plan_with("warm-cache", warm);
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Paused, "{:?}", run.reason);
        assert_eq!(step(&run, "warm-cache").state, StepState::Failed);
        let reason = run.reason.unwrap_or_default();
        assert!(
            reason.starts_with(&format!("west warm-cache: POST http://{silent}/warm: no answer within 300ms")),
            "{reason}"
        );
    })
    .await;
}

fn exec_step(script: &str, observe: Option<&str>, timeout: Duration) -> StepAction {
    let sh = |s: &str| vec!["sh".to_owned(), "-c".to_owned(), s.to_owned()];
    StepAction::Exec(ExecAction {
        argv: sh(script),
        on: RunSide::From,
        host: BTreeMap::new(),
        env: BTreeMap::from([
            ("MODE".to_owned(), SecretText::Plain("fast".into())),
            ("QUEUE_TOKEN".to_owned(), SecretText::Secret(SecretRef::Env("QUEUE_TOKEN".into()))),
        ]),
        timeout,
        observe: observe.map(sh),
    })
}

/// The command runs with the run in DROVER_* variables, the plan's env and PATH, and
/// nothing else of drover's environment; the observe command makes it once-only.
#[tokio::test]
async fn an_exec_step_runs_with_the_run_in_its_environment_and_nothing_else_of_drovers() {
    guard(async {
        assert!(std::env::var_os("HOME").is_some(), "the test's own environment has HOME");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("drained");
        let script =
            format!("env > {out}.env; echo drained >> {out}; echo \"token $QUEUE_TOKEN\" >&2", out = out.display());
        let observe = format!("test -s {}", out.display());
        let plan = plan_with("drain-queue", exec_step(&script, Some(&observe), Duration::from_secs(10)));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let header =
            plan_run(&plan, RunKind::Failover, "west", &observe_world(&plan, &journal, &world).await, "t").unwrap();
        // The command ran, then drover died before the journal heard; the resume observes.
        let crashing = CrashingJournal::losing(&journal, 8);
        assert!(engine(&plan, &crashing, &world, &hooks).start(&header).await.is_err());
        let run = engine(&plan, &journal, &world, &hooks).resume(&header.id).await.unwrap();
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "drained\n", "the command ran exactly once");

        let env = std::fs::read_to_string(format!("{}.env", out.display())).unwrap();
        let var = |name: &str| env.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).map(str::to_owned);
        assert_eq!(var("DROVER_RUN"), Some(header.id.0.clone()));
        assert_eq!(var("DROVER_EPOCH"), Some(header.epoch.to_string()));
        assert_eq!(var("DROVER_FROM").as_deref(), Some("east"));
        assert_eq!(var("DROVER_TO").as_deref(), Some("west"));
        assert_eq!(var("DROVER_STEP").as_deref(), Some("drain-queue"));
        assert_eq!(var("MODE").as_deref(), Some("fast"));
        assert_eq!(var("QUEUE_TOKEN").as_deref(), Some(VARIABLE));
        assert!(var("PATH").is_some());
        assert_eq!(var("HOME"), None, "drover's own environment stays out: {env}");
        let journal = journal_text(&journal, &run).await;
        assert!(!journal.contains("s3cret"), "a secret reached the journal: {journal}");
    })
    .await;
}

/// Observes the fake world (the scenario helper, named apart from the steps' `observe`).
async fn observe_world(plan: &Plan, journal: &dyn Journal, world: &FakeWorld) -> drover_core::engine::Observed {
    observe(plan, journal, world).await
}

/// What a command leaves running in the background when it exits is not waited for (it
/// may hold the command's output open) and not killed: the step is done when the command is.
#[tokio::test]
async fn a_command_that_exits_is_done_even_when_it_leaves_a_child_running() {
    guard(async {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("later");
        let script = format!("(sleep 1; touch {}) & echo started", marker.display());
        let plan = plan_with("drain-queue", exec_step(&script, None, Duration::from_secs(5)));
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let started = std::time::Instant::now();
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
        assert!(started.elapsed() < Duration::from_secs(4), "waited for the background child: {:?}", started.elapsed());
        let detail = step(&run, "drain-queue").detail.clone().unwrap();
        assert!(detail.contains("drain-queue exited 0: started"), "{detail}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(marker.exists(), "the background child was left to finish");
    })
    .await;
}

/// A command that fails pauses the run with the end of what it wrote; one that outlives
/// its timeout is killed with everything it started, and the step is tried again.
#[tokio::test]
async fn a_failing_command_pauses_the_run_and_one_past_its_timeout_is_killed_with_its_children() {
    guard(async {
        let dir = tempfile::tempdir().unwrap();
        let failing = exec_step(
            "echo step one ok; echo \"queue locked by $QUEUE_TOKEN\" >&2; exit 3",
            None,
            Duration::from_secs(10),
        );
        let plan = plan_with("drain-queue", failing);
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Paused);
        let reason = run.reason.as_deref().unwrap();
        assert!(reason.starts_with("east drain-queue: drain-queue exited 3: queue locked by <redacted>"), "{reason}");

        let pid_file = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let slow = exec_step(&script, None, Duration::from_millis(300));
        let plan = plan_with("drain-queue", slow);
        let (world, journal, hooks) = (FakeWorld::two_regions(), MemoryJournal::default(), runner(&plan));
        let run = failover(&plan, &journal, &world, &hooks).await;
        assert_eq!(run.state, RunState::Paused);
        let reason = run.reason.as_deref().unwrap();
        assert!(reason.contains("still ran after 300ms; it was killed with everything it started"), "{reason}");
        assert!(!reason.contains("gave up after"), "without observe a timed-out command is not run again: {reason}");
        let child: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let alive = std::path::Path::new(&format!("/proc/{child}")).exists()
            && !std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default().contains(") Z ");
        assert!(!alive, "the command's child {child} outlived the timeout");
    })
    .await;
}
