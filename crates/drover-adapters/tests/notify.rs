//! Webhook notifications against a local HTTP receiver that records every
//! request and answers from a script: what each kind of receiver gets, what is
//! retried and what is not, that sending never holds up the caller, and that
//! no URL or routing key reaches the logs.

#[path = "support/logs.rs"]
mod logs;
#[path = "support/silent.rs"]
mod silent;
use logs::Captured;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use drover_adapters::notify::{WebhookNotifier, WebhookSecrets};
use drover_core::engine::RetryPolicy;
use drover_core::notify::{EventKind, Notifier, NotifyEvent, payload};
use drover_core::plan::{NotifySpec, WebhookKind, WebhookSpec, WebhookUrl};
use drover_core::secret::{Secret, SecretRef};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Hang guard only.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

/// Retries without real pauses, so a test of five attempts takes milliseconds.
const QUICK: RetryPolicy =
    RetryPolicy { attempts: 5, initial: Duration::from_millis(1), max_delay: Duration::from_millis(5) };

const ROUTING_KEY: &str = "R0UTING-sekrit-key";
const SLACK_PATH: &str = "/services/T0/B0/sekrit-slack-token";

#[derive(Debug)]
struct Received {
    path: String,
    content_type: String,
    body: Value,
}

/// What the receiver does for one path, request after request.
enum Answer {
    /// These statuses in turn, then 200.
    Statuses(VecDeque<u16>),
    /// Holds the first request until the test releases it.
    HoldUntil(oneshot::Receiver<()>),
    /// 400 with the request's URL, routing key and body echoed back, as careless receivers do.
    EchoAndRefuse,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<HashMap<String, Answer>>>,
    /// Told the path of each request as it arrives, before it is answered.
    arrivals: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>,
}

impl Receiver {
    fn answer(&self, path: &str, answer: Answer) {
        self.script.lock().unwrap().insert(path.to_owned(), answer);
    }

    fn on(&self, path: &str) -> Vec<Value> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).map(|r| r.body.clone()).collect()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn record(State(receiver): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let path = uri.path().to_owned();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.received.lock().unwrap().push(Received { path: path.clone(), content_type, body: body.clone() });
    if let Some(arrivals) = &*receiver.arrivals.lock().unwrap() {
        let _ = arrivals.send(path.clone());
    }
    let held = match receiver.script.lock().unwrap().get_mut(&path) {
        Some(Answer::Statuses(statuses)) => {
            let status = statuses.pop_front().unwrap_or(200);
            return (StatusCode::from_u16(status).unwrap(), "ok".into());
        }
        // Later requests find a closed channel and are answered at once.
        Some(Answer::HoldUntil(release)) => std::mem::replace(release, oneshot::channel().1),
        Some(Answer::EchoAndRefuse) => {
            let key = body["routing_key"].as_str().unwrap_or_default();
            return (StatusCode::BAD_REQUEST, format!("bad request to {uri} with key {key}: {body_text}"));
        }
        None => return (StatusCode::OK, "ok".into()),
    };
    let _ = held.await;
    (StatusCode::OK, "ok".into())
}

async fn receiver() -> (Receiver, SocketAddr) {
    let receiver = Receiver::default();
    let app = Router::new().fallback(record).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, addr)
}

/// A webhook of `kind` posting to `url`, which the plan holds in an environment variable.
fn hook(name: &str, kind: WebhookKind, on: &[EventKind]) -> WebhookSpec {
    WebhookSpec {
        name: name.into(),
        kind,
        url: WebhookUrl::Secret(SecretRef::Env(format!("{}_URL", name.to_uppercase()))),
        routing_key: (kind == WebhookKind::Pagerduty).then(|| SecretRef::File("/etc/drover/pd-key".into())),
        on: on.to_vec(),
    }
}

/// A notifier for `hooks`: each webhook and the URL it posts to.
fn notifier(hooks: Vec<(WebhookSpec, String)>) -> WebhookNotifier {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut spec = NotifySpec::default();
    let mut secrets = BTreeMap::new();
    for (hook, url) in hooks {
        let routing_key = hook.routing_key.as_ref().map(|_| Secret::new(ROUTING_KEY));
        secrets.insert(hook.name.clone(), WebhookSecrets { url: Secret::new(url), routing_key });
        spec.webhooks.insert(hook.name.clone(), hook);
    }
    WebhookNotifier::new(&spec, secrets).unwrap().with_retry(QUICK)
}

fn event(kind: EventKind) -> NotifyEvent {
    NotifyEvent {
        kind,
        plan: "shop".into(),
        run_id: Some("r1714564800000-ab12".into()),
        from: Some("east".into()),
        to: Some("west".into()),
        reason: "west database: promote failed: pg_promote() timed out after 60s".into(),
        runbook_url: Some("https://wiki.example.com/runbooks/shop-failover".into()),
        at_ms: 1_714_564_800_250,
    }
}

#[tokio::test]
async fn each_kind_of_receiver_gets_exactly_one_payload_in_its_own_format() {
    let (receiver, addr) = receiver().await;
    let all = EventKind::ALL;
    let notifier = notifier(vec![
        (hook("ops-slack", WebhookKind::Slack, &all), format!("http://{addr}{SLACK_PATH}")),
        (hook("pager", WebhookKind::Pagerduty, &all), format!("http://{addr}/v2/enqueue")),
        (hook("audit", WebhookKind::Json, &all), format!("http://{addr}/drover")),
    ]);
    let paused = event(EventKind::RunPaused);
    notifier.notify(paused.clone());
    guard(notifier.flush()).await;

    assert_eq!(receiver.count(), 3);
    assert!(receiver.received.lock().unwrap().iter().all(|r| r.content_type == "application/json"));

    let slack = receiver.on(SLACK_PATH);
    assert_eq!(slack, [payload(WebhookKind::Slack, &paused, None)]);
    assert!(slack[0]["text"].as_str().unwrap().starts_with("shop: run r1714564800000-ab12 paused"));
    assert_eq!(
        slack[0]["attachments"][0]["fields"][0],
        serde_json::json!({"title": "Plan", "value": "shop", "short": true})
    );

    let pager = receiver.on("/v2/enqueue");
    assert_eq!(pager, [payload(WebhookKind::Pagerduty, &paused, Some(ROUTING_KEY))]);
    assert_eq!(pager[0]["routing_key"], ROUTING_KEY);
    assert_eq!(pager[0]["event_action"], "trigger");
    assert_eq!(pager[0]["dedup_key"], "r1714564800000-ab12");
    assert_eq!(pager[0]["payload"]["severity"], "critical");
    assert_eq!(pager[0]["links"][0]["href"], "https://wiki.example.com/runbooks/shop-failover");

    let audit = receiver.on("/drover");
    assert_eq!(audit, [payload(WebhookKind::Json, &paused, None)]);
    assert_eq!(audit[0]["event"], "run_paused");
    assert_eq!(audit[0]["at_ms"], 1_714_564_800_250u64);
}

#[tokio::test]
async fn a_receiver_that_is_briefly_overloaded_gets_the_notification_once_it_recovers() {
    let (receiver, addr) = receiver().await;
    receiver.answer("/flaky", Answer::Statuses([429, 503].into()));
    let notifier = notifier(vec![(hook("audit", WebhookKind::Json, &EventKind::ALL), format!("http://{addr}/flaky"))]);
    notifier.notify(event(EventKind::RunStarted));
    guard(notifier.flush()).await;

    let got = receiver.on("/flaky");
    assert_eq!(got.len(), 3, "429, 503, then delivered: {got:?}");
    assert!(got.iter().all(|body| *body == got[0]), "every attempt sends the same event");
}

#[tokio::test]
async fn a_refused_notification_is_not_retried() {
    let (receiver, addr) = receiver().await;
    receiver.answer("/v2/enqueue", Answer::Statuses([400].into()));
    let notifier =
        notifier(vec![(hook("pager", WebhookKind::Pagerduty, &EventKind::ALL), format!("http://{addr}/v2/enqueue"))]);
    notifier.notify(event(EventKind::RunPaused));
    guard(notifier.flush()).await;
    assert_eq!(receiver.on("/v2/enqueue").len(), 1, "a 400 will not change by sending it again");
}

#[tokio::test]
async fn notify_returns_while_the_receiver_still_holds_the_request() {
    let (receiver, addr) = receiver().await;
    let (release, held) = oneshot::channel();
    receiver.answer("/stuck", Answer::HoldUntil(held));
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    *receiver.arrivals.lock().unwrap() = Some(arrived_tx);
    let notifier =
        Arc::new(notifier(vec![(hook("audit", WebhookKind::Json, &EventKind::ALL), format!("http://{addr}/stuck"))]));

    // A notifier that waited for its receiver would never return here: the receiver
    // answers only after `release` below, which runs only once `notify` has returned.
    let sender = Arc::clone(&notifier);
    guard(tokio::task::spawn_blocking(move || sender.notify(event(EventKind::RunStarted))))
        .await
        .expect("notify panicked");
    assert_eq!(guard(arrived.recv()).await.as_deref(), Some("/stuck"), "the send went on in the background");

    release.send(()).expect("notify waited for the webhook to answer");
    guard(notifier.flush()).await;
    assert_eq!(receiver.on("/stuck").len(), 1);
}

#[tokio::test]
async fn a_webhook_hears_only_the_events_it_asked_for() {
    let (receiver, addr) = receiver().await;
    let notifier = notifier(vec![
        (
            hook("pager", WebhookKind::Pagerduty, &[EventKind::RunPaused, EventKind::FailoverRefused]),
            format!("http://{addr}/v2/enqueue"),
        ),
        (hook("audit", WebhookKind::Json, &EventKind::ALL), format!("http://{addr}/drover")),
    ]);
    notifier.notify(event(EventKind::RunStarted));
    notifier.notify(event(EventKind::RunCompleted));
    guard(notifier.flush()).await;
    assert_eq!(receiver.on("/v2/enqueue"), Vec::<Value>::new(), "the pager is not woken for a routine run");
    assert_eq!(receiver.on("/drover").len(), 2);

    notifier.notify(event(EventKind::RunPaused));
    guard(notifier.flush()).await;
    assert_eq!(receiver.on("/v2/enqueue").len(), 1);
}

// One thread, so the sends (spawned tasks) log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn failures_are_logged_by_webhook_name_never_by_url_or_routing_key() {
    let (logs, _logging) = Captured::start();

    let (receiver, addr) = receiver().await;
    receiver.answer("/v2/enqueue/sekrit-path", Answer::EchoAndRefuse);
    // Nothing listens on a port just released: every attempt is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let notifier = notifier(vec![
        (hook("ops-slack", WebhookKind::Slack, &EventKind::ALL), format!("http://{closed}{SLACK_PATH}")),
        (
            hook("pager", WebhookKind::Pagerduty, &EventKind::ALL),
            format!("http://{addr}/v2/enqueue/sekrit-path?token=sekrit-query"),
        ),
    ]);
    notifier.notify(event(EventKind::RunPaused));
    guard(notifier.flush()).await;

    let logs = logs.text();
    assert_eq!(receiver.on("/v2/enqueue/sekrit-path").len(), 1);
    assert!(
        logs.contains("webhook ops-slack (slack) was not notified of run_paused after 5 attempts: connection refused"),
        "{logs}"
    );
    assert!(logs.contains("webhook pager (pagerduty) was not notified of run_paused after 1 attempt: answered 400 Bad Request: bad request to <redacted> with key <redacted>: {"), "{logs}");
    assert!(!logs.contains("sekrit"), "a secret reached the log:\n{logs}");
}

#[tokio::test]
async fn a_webhook_without_a_usable_url_or_routing_key_is_refused_at_start() {
    let refused = |url: &str, routing_key: Option<&str>| {
        let mut spec = NotifySpec::default();
        spec.webhooks.insert("pager".into(), hook("pager", WebhookKind::Pagerduty, &EventKind::ALL));
        let secrets = WebhookSecrets { url: Secret::new(url), routing_key: routing_key.map(Secret::new) };
        WebhookNotifier::new(&spec, BTreeMap::from([("pager".to_owned(), secrets)])).map(|_| ()).unwrap_err()
    };
    let build = |url: &str, routing_key: Option<&str>| refused(url, routing_key).message;
    let unparsed = refused("hooks.example.com/sekrit", Some("k"));
    assert!(std::error::Error::source(&unparsed).is_some(), "keeps the URL parser's error: {unparsed:?}");
    assert_eq!(
        build("hooks.example.com/sekrit", Some("k")),
        "notify.webhooks.pager: the URL in environment variable PAGER_URL is not a valid URL (relative URL without a base)"
    );
    assert_eq!(
        build("ftp://example.com/sekrit", Some("k")),
        "notify.webhooks.pager: the URL in environment variable PAGER_URL is not an http:// or https:// URL"
    );
    assert_eq!(
        build("https://events.pagerduty.com/v2/enqueue", None),
        "notify.webhooks.pager: a pagerduty webhook needs its routing key (routing_key_env or routing_key_file)"
    );
}

/// A receiver that takes the connection and never answers: each POST ends at the send
/// timeout, the attempts run out, `flush` returns, and the log says what happened.
#[tokio::test(flavor = "current_thread")]
async fn a_receiver_that_never_answers_is_given_up_at_the_send_timeout() {
    let (logs, _logging) = Captured::start();
    let silent = silent::silent_server().await;
    let notifier = notifier(vec![(hook("ops", WebhookKind::Json, &EventKind::ALL), format!("http://{silent}/drover"))])
        .with_send_timeout(Duration::from_millis(200))
        .unwrap();
    notifier.notify(event(EventKind::RunPaused));
    guard(notifier.flush()).await;
    let logs = logs.text();
    assert!(
        logs.contains("webhook ops (json) was not notified of run_paused after 5 attempts: no answer within 200ms"),
        "{logs}"
    );
}
