//! Telling people what drover does: the events a run raises and the exact
//! bodies Slack, PagerDuty (Events API v2) and generic JSON receivers expect.
//! Building a body is pure; sending it is an adapter's job, behind `Notifier`.

use serde_json::{Value, json};

pub use crate::event::EventKind;
use crate::plan::{NotifySpec, Plan, WebhookKind};

/// One notification, as every webhook kind receives it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotifyEvent {
    pub kind: EventKind,
    /// The plan's name.
    pub plan: String,
    /// The run it is about; `None` for a refused failover, which starts no run.
    pub run_id: Option<String>,
    /// The region the primary moves away from, when known.
    pub from: Option<String>,
    /// The region the primary moves to, when known.
    pub to: Option<String>,
    /// Why, in the words drover logs and journals.
    pub reason: String,
    pub runbook_url: Option<String>,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl NotifyEvent {
    /// An event about `plan`, carrying its runbook URL; set `run_id`, `from` and `to` when known.
    pub fn new(plan: &Plan, kind: EventKind, reason: impl Into<String>, at_ms: u64) -> NotifyEvent {
        NotifyEvent {
            kind,
            plan: plan.name.clone(),
            run_id: None,
            from: None,
            to: None,
            reason: reason.into(),
            runbook_url: plan.notify.runbook_url.clone(),
            at_ms,
        }
    }

    /// One line a person reads first: `shop: run r1-ab paused (east -> west): promote failed: …`.
    pub fn headline(&self) -> String {
        let run = self.run_id.as_deref().map(|id| format!("run {id}")).unwrap_or_else(|| "run".into());
        let what = match self.kind {
            EventKind::RunStarted => format!("{run} started"),
            EventKind::RunPaused => format!("{run} paused, waiting for a human"),
            EventKind::RunCompleted => format!("{run} completed"),
            EventKind::RunAborted => format!("{run} aborted"),
            EventKind::ApprovalNeeded => format!("{run} waits for approval"),
            EventKind::FailoverRefused => "failover refused".to_owned(),
            EventKind::RunProgress => format!("{run} in progress"),
            EventKind::ReadinessChanged => "readiness changed".to_owned(),
        };
        let route = match (&self.from, &self.to) {
            (Some(from), Some(to)) => format!(" ({from} -> {to})"),
            (Some(from), None) => format!(" (from {from})"),
            (None, Some(to)) => format!(" (to {to})"),
            (None, None) => String::new(),
        };
        let mut line = format!("{}: {what}{route}", self.plan);
        if !self.reason.trim().is_empty() {
            line.push_str(": ");
            line.push_str(self.reason.trim());
        }
        line
    }
}

/// Hands notifications to whoever should hear them. Implementations must not
/// wait for delivery: a slow or dead receiver may never delay a failover, so
/// `notify` queues the sends and returns at once, and failures are only logged.
pub trait Notifier: Send + Sync {
    fn notify(&self, event: NotifyEvent);
}

/// Whether any webhook of the plan wants `event`; callers can skip building events nobody gets.
/// Sends nothing: for plans without webhooks, and for tests.
pub struct Silent;

impl Notifier for Silent {
    fn notify(&self, _: NotifyEvent) {}
}

pub fn wants(spec: &NotifySpec, event: EventKind) -> bool {
    spec.webhooks.values().any(|hook| hook.wants(event))
}

/// PagerDuty refuses a longer `payload.summary`.
const PAGERDUTY_SUMMARY_LIMIT: usize = 1024;

/// The body to POST to a webhook of `kind`. `routing_key` is PagerDuty's
/// integration key (already resolved); other kinds ignore it, and PagerDuty
/// bodies leave it out when it is `None`.
pub fn payload(kind: WebhookKind, event: &NotifyEvent, routing_key: Option<&str>) -> Value {
    match kind {
        WebhookKind::Json => json_payload(event),
        WebhookKind::Slack => slack_payload(event),
        WebhookKind::Pagerduty => pagerduty_payload(event, routing_key),
    }
}

/// Every field, absent ones as null, so receivers can rely on the shape.
fn json_payload(event: &NotifyEvent) -> Value {
    json!({
        "event": event.kind.as_str(),
        "plan": event.plan,
        "run_id": event.run_id,
        "from": event.from,
        "to": event.to,
        "reason": event.reason,
        "runbook_url": event.runbook_url,
        "at_ms": event.at_ms,
        "summary": event.headline(),
    })
}

/// Slack incoming webhook: `text` (what notifications show), plus one
/// attachment whose fields repeat the details in columns.
fn slack_payload(event: &NotifyEvent) -> Value {
    let mut text = slack_escape(&event.headline());
    if let Some(url) = &event.runbook_url {
        text.push_str(&format!(" <{url}|runbook>"));
    }
    let short = |title: &str, value: &str| json!({ "title": title, "value": slack_escape(value), "short": true });
    let mut fields = vec![short("Plan", &event.plan), short("Event", event.kind.as_str())];
    for (title, value) in [("Run", &event.run_id), ("From", &event.from), ("To", &event.to)] {
        if let Some(value) = value {
            fields.push(short(title, value));
        }
    }
    if !event.reason.trim().is_empty() {
        fields.push(json!({ "title": "Reason", "value": slack_escape(event.reason.trim()), "short": false }));
    }
    let color = match event.kind {
        EventKind::RunCompleted => "good",
        kind if kind.needs_a_human() => "danger",
        _ => "warning",
    };
    json!({
        "text": text,
        "attachments": [{
            "fallback": slack_escape(&event.headline()),
            "color": color,
            "fields": fields,
            "footer": "drover",
            "ts": event.at_ms / 1000,
        }],
    })
}

/// Slack reads `&`, `<` and `>` as markup; a reason like `drover resume <run>` must stay text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// PagerDuty Events API v2. One incident per run (`dedup_key` is the run id):
/// a completed run resolves it, every other event triggers or updates it.
fn pagerduty_payload(event: &NotifyEvent, routing_key: Option<&str>) -> Value {
    let action = if event.kind == EventKind::RunCompleted { "resolve" } else { "trigger" };
    let severity = if event.kind.needs_a_human() { "critical" } else { "info" };
    // Events without a run (a refused failover) share one incident per plan, so repeats do not page again.
    let dedup_key = event.run_id.clone().unwrap_or_else(|| format!("drover/{}", event.plan));
    let mut details = serde_json::Map::new();
    details.insert("event".into(), event.kind.as_str().into());
    details.insert("plan".into(), event.plan.clone().into());
    for (key, value) in
        [("run_id", &event.run_id), ("from", &event.from), ("to", &event.to), ("runbook_url", &event.runbook_url)]
    {
        if let Some(value) = value {
            details.insert(key.into(), value.clone().into());
        }
    }
    details.insert("reason".into(), event.reason.clone().into());
    details.insert("at_ms".into(), event.at_ms.into());
    let mut body = json!({
        "event_action": action,
        "dedup_key": dedup_key,
        "client": "drover",
        "payload": {
            "summary": truncate(&event.headline(), PAGERDUTY_SUMMARY_LIMIT),
            "source": event.plan,
            "severity": severity,
            "timestamp": rfc3339_millis(event.at_ms),
            "class": event.kind.as_str(),
            "custom_details": details,
        },
    });
    if let Some(key) = routing_key {
        body["routing_key"] = key.into();
    }
    if let Some(url) = &event.runbook_url {
        body["links"] = json!([{ "href": url, "text": "runbook" }]);
    }
    body
}

/// At most `limit` bytes, cut at a character boundary, marked with `…` when cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = limit - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

/// `2024-05-01T12:00:00.123Z`: PagerDuty wants ISO 8601, and core has no clock or calendar crate.
fn rfc3339_millis(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        at_ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{WebhookSpec, WebhookUrl};
    use crate::secret::SecretRef;

    /// 2024-05-01T12:00:00.250Z
    const AT_MS: u64 = 1_714_564_800_250;

    fn paused() -> NotifyEvent {
        NotifyEvent {
            kind: EventKind::RunPaused,
            plan: "shop".into(),
            run_id: Some("r1714564800000-ab12".into()),
            from: Some("east".into()),
            to: Some("west".into()),
            reason: "west database: promote failed: pg_promote() timed out after 60s; run 'drover resume <run>'".into(),
            runbook_url: Some("https://wiki.example.com/runbooks/shop-failover".into()),
            at_ms: AT_MS,
        }
    }

    fn refused() -> NotifyEvent {
        NotifyEvent {
            kind: EventKind::FailoverRefused,
            run_id: None,
            from: Some("east".into()),
            to: None,
            reason: "west is 3MiB behind, more than max_lag_on_failover 1MiB".into(),
            runbook_url: None,
            ..paused()
        }
    }

    #[test]
    fn event_names_are_the_plan_words() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(EventKind::from_name("paused"), None);
    }

    #[test]
    fn json_carries_every_field_with_absent_ones_null() {
        let body = payload(WebhookKind::Json, &refused(), None);
        assert_eq!(
            body,
            json!({
                "event": "failover_refused",
                "plan": "shop",
                "run_id": null,
                "from": "east",
                "to": null,
                "reason": "west is 3MiB behind, more than max_lag_on_failover 1MiB",
                "runbook_url": null,
                "at_ms": AT_MS,
                "summary": "shop: failover refused (from east): west is 3MiB behind, more than max_lag_on_failover 1MiB",
            })
        );
    }

    #[test]
    fn slack_gets_escaped_text_a_runbook_link_and_fields() {
        let body = payload(WebhookKind::Slack, &paused(), Some("ignored"));
        let text = body["text"].as_str().unwrap();
        assert_eq!(
            text,
            "shop: run r1714564800000-ab12 paused, waiting for a human (east -&gt; west): west database: promote \
             failed: pg_promote() timed out after 60s; run 'drover resume &lt;run&gt;' \
             <https://wiki.example.com/runbooks/shop-failover|runbook>"
        );
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "danger");
        assert_eq!(attachment["ts"], AT_MS / 1000);
        let fields = attachment["fields"].as_array().unwrap();
        let titles: Vec<&str> = fields.iter().map(|f| f["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["Plan", "Event", "Run", "From", "To", "Reason"]);
        assert!(fields.iter().all(|f| f["value"].is_string() && f["short"].is_boolean()), "{fields:?}");
        assert_eq!(fields[1]["value"], "run_paused");
        assert!(body.get("routing_key").is_none() && !body.to_string().contains("ignored"));
        assert_eq!(
            payload(WebhookKind::Slack, &NotifyEvent { kind: EventKind::RunCompleted, ..paused() }, None)["attachments"]
                [0]["color"],
            "good"
        );
    }

    #[test]
    fn pagerduty_triggers_one_incident_per_run_and_resolves_it_on_completion() {
        let body = payload(WebhookKind::Pagerduty, &paused(), Some("R0UTINGKEY"));
        assert_eq!(
            body,
            json!({
                "routing_key": "R0UTINGKEY",
                "event_action": "trigger",
                "dedup_key": "r1714564800000-ab12",
                "client": "drover",
                "payload": {
                    "summary": paused().headline(),
                    "source": "shop",
                    "severity": "critical",
                    "timestamp": "2024-05-01T12:00:00.250Z",
                    "class": "run_paused",
                    "custom_details": {
                        "event": "run_paused",
                        "plan": "shop",
                        "run_id": "r1714564800000-ab12",
                        "from": "east",
                        "to": "west",
                        "runbook_url": "https://wiki.example.com/runbooks/shop-failover",
                        "reason": paused().reason,
                        "at_ms": AT_MS,
                    },
                },
                "links": [{ "href": "https://wiki.example.com/runbooks/shop-failover", "text": "runbook" }],
            })
        );

        let completed = payload(
            WebhookKind::Pagerduty,
            &NotifyEvent { kind: EventKind::RunCompleted, ..paused() },
            Some("R0UTINGKEY"),
        );
        assert_eq!(completed["event_action"], "resolve");
        assert_eq!(completed["dedup_key"], "r1714564800000-ab12");
        assert_eq!(completed["payload"]["severity"], "info");
    }

    #[test]
    fn pagerduty_severity_is_critical_only_when_a_human_must_act() {
        let severity = |kind| {
            let body = payload(WebhookKind::Pagerduty, &NotifyEvent { kind, ..paused() }, Some("k"));
            (
                body["event_action"].as_str().unwrap().to_owned(),
                body["payload"]["severity"].as_str().unwrap().to_owned(),
            )
        };
        let got: Vec<(String, String)> = EventKind::ALL.into_iter().map(severity).collect();
        let want = [
            ("trigger", "info"),
            ("trigger", "critical"),
            ("resolve", "info"),
            ("trigger", "info"),
            ("trigger", "critical"),
            ("trigger", "critical"),
            ("trigger", "info"),
            ("trigger", "info"),
        ];
        assert_eq!(got, want.map(|(a, s)| (a.to_owned(), s.to_owned())));
    }

    #[test]
    fn pagerduty_without_a_run_dedups_per_plan_and_sends_no_empty_links() {
        let body = payload(WebhookKind::Pagerduty, &refused(), Some("k"));
        assert_eq!(body["dedup_key"], "drover/shop");
        assert!(body.get("links").is_none(), "{body}");
        assert!(body["payload"]["custom_details"].get("run_id").is_none(), "{body}");
    }

    #[test]
    fn pagerduty_summary_fits_its_limit() {
        let long = NotifyEvent { reason: "é".repeat(2000), ..paused() };
        let summary =
            payload(WebhookKind::Pagerduty, &long, Some("k"))["payload"]["summary"].as_str().unwrap().to_owned();
        assert!(summary.len() <= PAGERDUTY_SUMMARY_LIMIT, "{}", summary.len());
        assert!(summary.ends_with('…'));
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_millis(AT_MS), "2024-05-01T12:00:00.250Z");
    }

    #[test]
    fn wants_follows_each_webhooks_events() {
        let hook = |name: &str, on: Vec<EventKind>| WebhookSpec {
            name: name.into(),
            kind: WebhookKind::Json,
            url: WebhookUrl::Secret(SecretRef::Env("X".into())),
            routing_key: None,
            on,
        };
        let mut spec = NotifySpec::default();
        assert!(!wants(&spec, EventKind::RunPaused), "no webhooks, nobody to tell");
        spec.webhooks.insert("pager".into(), hook("pager", vec![EventKind::RunPaused]));
        assert!(wants(&spec, EventKind::RunPaused));
        assert!(!wants(&spec, EventKind::RunStarted));
    }
}
