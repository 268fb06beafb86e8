//! The plan's webhooks behind `drover_core::notify::Notifier`: each event is
//! POSTed (Slack, PagerDuty Events v2 or plain JSON) from a background task,
//! retried while the receiver is unreachable or overloaded, and a final
//! failure is logged by the webhook's plan name. URLs and routing keys are
//! secrets: they never reach a log line or an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_core::duration::format_duration;
use drover_core::engine::RetryPolicy;
use drover_core::error::ProviderError;
use drover_core::notify::{EventKind, Notifier, NotifyEvent, payload};
use drover_core::plan::{NotifySpec, WebhookKind, WebhookUrl};
use drover_core::secret::Secret;
use reqwest::StatusCode;
use tokio::task::JoinHandle;

use crate::errors::{chain, describe_io, hide, io_cause};

/// How long one POST may take, connecting included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// About 15 s of pauses over 5 attempts: long enough to ride out a receiver's
/// restart, short enough that a stale "run started" does not arrive after the run ended.
pub const DELIVERY_RETRY: RetryPolicy =
    RetryPolicy { attempts: 5, initial: Duration::from_millis(500), max_delay: Duration::from_secs(8) };

/// How much of a refusing receiver's answer is logged (PagerDuty says what it disliked).
const ANSWER_LIMIT: usize = 300;
/// How much of it is read: far more than is logged, so secrets echoed in it are
/// hidden whole before it is cut (a cut secret would no longer match).
const ANSWER_READ_LIMIT: usize = 16 << 10;

/// A webhook's secrets, already resolved by the caller (the adapter reads no
/// environment or file): its URL, and PagerDuty's routing key.
#[derive(Clone, Debug)]
pub struct WebhookSecrets {
    /// The URL to POST to; `WebhookUrl::resolve` gives it for plain and referenced URLs alike.
    pub url: Secret,
    /// Required for `pagerduty`, ignored otherwise.
    pub routing_key: Option<Secret>,
}

/// One webhook, ready to send to. Not `Debug`: the URL is a secret.
struct Webhook {
    name: String,
    kind: WebhookKind,
    url: reqwest::Url,
    routing_key: Option<Secret>,
    on: Vec<EventKind>,
    /// Texts that must not appear in anything logged: the URL, its path and query, the routing key.
    secrets: Vec<String>,
}

/// Sends the plan's notifications. `notify` never waits: every send runs in
/// its own task on the current tokio runtime.
pub struct WebhookNotifier {
    hooks: Vec<Arc<Webhook>>,
    client: reqwest::Client,
    /// Bounds each POST, connecting and the answer included (`SEND_TIMEOUT`).
    send_timeout: Duration,
    retry: RetryPolicy,
    /// Sends not yet awaited by `flush`; finished ones are pruned as new ones start.
    sends: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hooks: Vec<(&str, &str)> = self.hooks.iter().map(|h| (h.name.as_str(), h.kind.as_str())).collect();
        f.debug_struct("WebhookNotifier").field("webhooks", &hooks).finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// One sender per webhook of `spec`; `secrets` holds each webhook's resolved
    /// URL and routing key, by webhook name. HTTPS needs a rustls crypto
    /// provider installed (once, at start) before this is called.
    pub fn new(spec: &NotifySpec, mut secrets: BTreeMap<String, WebhookSecrets>) -> Result<Self, ProviderError> {
        let mut hooks = Vec::new();
        for (name, hook) in &spec.webhooks {
            let field = format!("notify.webhooks.{name}");
            let resolved = secrets.remove(name).ok_or_else(|| {
                ProviderError::permanent(format!("{field}: its URL was not resolved; this is a drover bug"))
            })?;
            // Where the URL came from, for errors: never the URL itself.
            let source = match &hook.url {
                WebhookUrl::Plain(_) => "url".to_owned(),
                WebhookUrl::Secret(reference) => reference.to_string(),
            };
            let url = reqwest::Url::parse(resolved.url.expose()).map_err(|e| {
                ProviderError::permanent(format!("{field}: the URL in {source} is not a valid URL ({e})"))
                    .with_source(e)
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ProviderError::permanent(format!(
                    "{field}: the URL in {source} is not an http:// or https:// URL"
                )));
            }
            let routing_key = match hook.kind {
                WebhookKind::Pagerduty => Some(resolved.routing_key.ok_or_else(|| {
                    ProviderError::permanent(format!(
                        "{field}: a pagerduty webhook needs its routing key (routing_key_env or routing_key_file)"
                    ))
                })?),
                WebhookKind::Json | WebhookKind::Slack => None,
            };
            let mut hidden = vec![resolved.url.expose().to_owned(), url.as_str().to_owned()];
            // A URL kept out of the plan may hold its token in the path (Slack) or the query.
            if let WebhookUrl::Secret(_) = hook.url {
                hidden.push(url.path().to_owned());
                if let Some(query) = url.query() {
                    hidden.extend([format!("{}?{query}", url.path()), query.to_owned()]);
                }
            }
            hidden.extend(routing_key.as_ref().map(|key| key.expose().to_owned()));
            hooks.push(Arc::new(Webhook {
                name: name.clone(),
                kind: hook.kind,
                url,
                routing_key,
                on: hook.on.clone(),
                secrets: hidden,
            }));
        }
        Ok(WebhookNotifier {
            hooks,
            client: client(SEND_TIMEOUT)?,
            send_timeout: SEND_TIMEOUT,
            retry: DELIVERY_RETRY,
            sends: Mutex::new(Vec::new()),
        })
    }

    /// Bounds each POST by `timeout` instead of `SEND_TIMEOUT` (tests: a receiver that never answers).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Result<Self, ProviderError> {
        self.client = client(timeout)?;
        self.send_timeout = timeout;
        Ok(self)
    }

    /// Replaces the retry policy (tests use one without long pauses).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Waits until every notification handed over so far is delivered or given up.
    /// Call it before the process exits, bounded by a timeout: pending sends die with the runtime.
    pub async fn flush(&self) {
        loop {
            let pending = std::mem::take(&mut *self.sends());
            if pending.is_empty() {
                return;
            }
            for send in pending {
                if let Err(e) = send.await
                    && e.is_panic()
                {
                    tracing::warn!("a notification task panicked; that notification is lost");
                }
            }
        }
    }

    fn sends(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        // A panic while holding the lock leaves only a list of handles behind; it is still usable.
        self.sends.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, event: NotifyEvent) {
        let wanted: Vec<&Arc<Webhook>> = self.hooks.iter().filter(|h| h.on.contains(&event.kind)).collect();
        if wanted.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(event = event.kind.as_str(), "notification dropped: drover has no async runtime running");
            return;
        };
        let event = Arc::new(event);
        let mut sends = self.sends();
        sends.retain(|send| !send.is_finished());
        for hook in wanted {
            let body = payload(hook.kind, &event, hook.routing_key.as_ref().map(Secret::expose));
            let (hook, event, client, retry) = (Arc::clone(hook), Arc::clone(&event), self.client.clone(), self.retry);
            let timeout = self.send_timeout;
            sends.push(runtime.spawn(async move { deliver(&client, timeout, &hook, &event, &body, retry).await }));
        }
    }
}

/// Sends `body` until the receiver accepts it, refuses it, or the attempts run out.
async fn deliver(
    client: &reqwest::Client,
    timeout: Duration,
    hook: &Webhook,
    event: &NotifyEvent,
    body: &serde_json::Value,
    retry: RetryPolicy,
) {
    let attempts = retry.attempts.max(1);
    let run = event.run_id.as_deref().unwrap_or("-");
    for attempt in 1..=attempts {
        let failure = match send(client, timeout, hook, body).await {
            Ok(status) => {
                tracing::debug!(webhook = %hook.name, event = event.kind.as_str(), run, attempt, status, "notified");
                return;
            }
            Err(failure) => failure,
        };
        let cause = one_line(&hook.hide_secrets(&failure.cause), ANSWER_LIMIT);
        if !failure.retryable || attempt == attempts {
            let tries = if attempt == 1 { "1 attempt".to_owned() } else { format!("{attempt} attempts") };
            tracing::warn!(
                webhook = %hook.name,
                event = event.kind.as_str(),
                run,
                "webhook {} ({}) was not notified of {} after {tries}: {cause}",
                hook.name,
                hook.kind.as_str(),
                event.kind.as_str(),
            );
            return;
        }
        tracing::debug!(webhook = %hook.name, event = event.kind.as_str(), run, attempt, "will retry: {cause}");
        tokio::time::sleep(retry.delay(attempt)).await;
    }
}

/// Why one POST did not land, and whether another may.
struct SendFailure {
    cause: String,
    retryable: bool,
}

async fn send(
    client: &reqwest::Client,
    timeout: Duration,
    hook: &Webhook,
    body: &serde_json::Value,
) -> Result<u16, SendFailure> {
    let mut response = client.post(hook.url.clone()).json(body).send().await.map_err(|e| SendFailure {
        // A request that never got an answer (refused, reset, timed out) may get one next time.
        retryable: !e.is_builder(),
        cause: describe_send_error(&e.without_url(), timeout),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    let mut answer = Vec::new();
    while answer.len() < ANSWER_READ_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let mut cause = format!("answered {status}");
    if status.is_redirection() {
        cause.push_str(" (a redirect, which drover does not follow; check the URL)");
    }
    let answer = String::from_utf8_lossy(&answer);
    if !answer.trim().is_empty() {
        cause.push_str(&format!(": {answer}"));
    }
    Err(SendFailure { cause, retryable })
}

/// What happened, in a user's words. reqwest names the URL in its errors: the caller drops
/// it first (`without_url`).
fn describe_send_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", format_duration(timeout));
    }
    if let Some(io) = io_cause(e) {
        return describe_io(io);
    }
    chain(e)
}

impl Webhook {
    /// The receiver's answer or an error may echo what was sent; none of the secrets may be logged.
    fn hide_secrets(&self, text: &str) -> String {
        hide(text, self.secrets.iter().map(String::as_str))
    }
}

/// Control characters and newlines become spaces, so a receiver's page fits one log line.
pub(crate) fn one_line(text: &str, limit: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

fn client(timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    // Unlike checks, webhooks usually leave through the site's egress proxy, so
    // HTTP(S)_PROXY is honoured; redirects are not followed, so the body (and a
    // routing key) only ever goes where the plan says.
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("drover-notify/", env!("CARGO_PKG_VERSION")));
    // reqwest panics when no rustls crypto provider is installed; building a notifier must not.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build())) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => {
            let e = e.without_url();
            let cause = describe_send_error(&e, timeout);
            Err(ProviderError::permanent(format!("notify: http client: {cause}")).with_source(e))
        }
        Err(_) => Err(ProviderError::permanent(
            "notify: http client: no rustls crypto provider installed — the binary must install one at start",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fit_one_line() {
        assert_eq!(
            one_line("{\"status\":\"invalid event\",\n  \"errors\": [\"x\"]}\r\n", 100),
            "{\"status\":\"invalid event\", \"errors\": [\"x\"]}"
        );
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ééé", 2), "éé…");
    }

    #[test]
    fn secrets_are_hidden_longest_first() {
        let url = reqwest::Url::parse("https://hooks.example.com/services/T0/B0/tok?sig=abc").unwrap();
        let hook = Webhook {
            name: "ops".into(),
            kind: WebhookKind::Slack,
            secrets: vec![url.as_str().into(), url.path().into(), "sig=abc".into()],
            url,
            routing_key: None,
            on: EventKind::ALL.to_vec(),
        };
        assert_eq!(
            hook.hide_secrets("POST https://hooks.example.com/services/T0/B0/tok?sig=abc: 404 /services/T0/B0/tok"),
            "POST <redacted>: 404 <redacted>"
        );
    }
}
