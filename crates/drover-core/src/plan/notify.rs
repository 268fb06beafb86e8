//! The optional `notify` section: which webhooks hear about runs, and of which events.

use std::collections::BTreeMap;

use super::model::{NotifySpec, WebhookKind, WebhookSpec, WebhookUrl};
use super::raw::{Node, Value};
use super::reader::{Entry, Mapping, Reader, URL_KEYS, check_identifier, closest, http_url, url_field};
use crate::event::EventKind;
use crate::secret::SecretRef;

const FIELDS: [&str; 3] = ["runbook_url", "webhooks", "on"];
const WEBHOOK_FIELDS: [&str; 7] = ["kind", "url", "url_env", "url_file", "routing_key_env", "routing_key_file", "on"];
const ROUTING_KEY_KEYS: [&str; 3] = ["routing_key", "routing_key_env", "routing_key_file"];
const KINDS: [(&str, WebhookKind); 3] =
    [("json", WebhookKind::Json), ("slack", WebhookKind::Slack), ("pagerduty", WebhookKind::Pagerduty)];
const WEBHOOKS_EXAMPLE: &str = "webhooks: { ops: { kind: slack, url_env: SLACK_WEBHOOK_URL } }";

impl Default for NotifySpec {
    fn default() -> Self {
        NotifySpec { runbook_url: None, webhooks: BTreeMap::new(), on: EventKind::ALL.to_vec() }
    }
}

pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>) -> Option<NotifySpec> {
    let Some(node) = top.get("notify") else {
        return Some(NotifySpec::default());
    };
    if node.value == Value::Null {
        return Some(NotifySpec::default());
    }
    let at = top.key("notify").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "notify", at, &FIELDS, &[], &format!("a mapping like {{ {WEBHOOKS_EXAMPLE} }}"))?;
    let runbook_url = match m.get("runbook_url") {
        Some(n) => runbook_url(r, n).map(|url| Some(url.to_owned())),
        None => Some(None),
    };
    let on = m.get("on").map_or(Some(EventKind::ALL.to_vec()), |n| events(r, n, "notify.on"));
    let webhooks = r
        .require(&m, "webhooks", &format!("add at least one, e.g. {WEBHOOKS_EXAMPLE}"))
        .and_then(|n| read_webhooks(r, &m, n, on.as_deref().unwrap_or(&EventKind::ALL)));
    Some(NotifySpec { runbook_url: runbook_url?, webhooks: webhooks?, on: on? })
}

fn read_webhooks(
    r: &mut Reader<'_>,
    notify: &Mapping<'_>,
    node: &Node,
    default_on: &[EventKind],
) -> Option<BTreeMap<String, WebhookSpec>> {
    let entries = r.entries(node, "notify.webhooks", "a mapping of webhook name to webhook", "webhook")?;
    if entries.is_empty() {
        let at = notify.key("webhooks").map_or(node.pos(), Node::pos);
        r.error(at, "notify.webhooks", format!("no webhooks; add one, e.g. {WEBHOOKS_EXAMPLE}, or remove notify"));
        return None;
    }
    let mut webhooks = BTreeMap::new();
    let mut complete = true;
    for entry in &entries {
        check_identifier(r, entry, "webhook");
        match read_webhook(r, entry, default_on) {
            Some(hook) => {
                webhooks.insert(entry.name.clone(), hook);
            }
            None => complete = false,
        }
    }
    complete.then_some(webhooks)
}

fn read_webhook(r: &mut Reader<'_>, entry: &Entry<'_>, default_on: &[EventKind]) -> Option<WebhookSpec> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &WEBHOOK_FIELDS,
        &["routing_key"],
        "a mapping like { kind: slack, url_env: SLACK_WEBHOOK_URL }",
    )?;
    let kind = r
        .require(&m, "kind", "add kind: json, slack or pagerduty")
        .and_then(|n| r.choice(n, &m.field("kind"), "webhook kind", &KINDS));
    let url = webhook_url(r, &m, kind);
    let routing_key = match kind {
        Some(WebhookKind::Pagerduty) => routing_key(r, &m).map(Some),
        Some(other) => {
            refuse_routing_key(r, &m, other);
            Some(None)
        }
        // Whether a routing key belongs here depends on the kind, which is already reported.
        None => None,
    };
    let on = m.get("on").map_or(Some(default_on.to_vec()), |n| events(r, n, &m.field("on")));
    Some(WebhookSpec { name: entry.name.clone(), kind: kind?, url: url?, routing_key: routing_key?, on: on? })
}

/// Exactly one of `url` (only when it holds no credential), `url_env` or `url_file`; a
/// Slack webhook's URL is always a secret (its path carries the token).
fn webhook_url(r: &mut Reader<'_>, m: &Mapping<'_>, kind: Option<WebhookKind>) -> Option<WebhookUrl> {
    let given = URL_KEYS.iter().filter(|key| m.key(key).is_some()).count();
    if kind == Some(WebhookKind::Slack)
        && given == 1
        && let Some(node) = m.get("url")
    {
        let move_it =
            "move the whole URL into an environment variable or a file: url_env: <VARIABLE> or url_file: <path>";
        r.error(node.pos(), &m.field("url"), format!("a Slack webhook URL carries its token in the path; {move_it}"));
        return None;
    }
    url_field(r, m, "https://alerts.example.com/drover")
}

/// The runbook URL is no secret, so a mistake in it can be shown and corrected.
fn runbook_url<'n>(r: &mut Reader<'_>, node: &'n Node) -> Option<&'n str> {
    let field = "notify.runbook_url";
    if let Value::Str(text) = &node.value
        && !text.contains("://")
        && !text.trim().is_empty()
    {
        r.error(node.pos(), field, format!("'{text}' is not an http:// or https:// URL; write https://{text}"));
        return None;
    }
    http_url(r, node, field, "https://wiki.example.com/runbooks/shop")
}

/// PagerDuty's integration key: a secret, by reference.
fn routing_key(r: &mut Reader<'_>, m: &Mapping<'_>) -> Option<SecretRef> {
    if ROUTING_KEY_KEYS.iter().all(|key| m.key(key).is_none()) {
        r.error(
            m.at,
            &m.field("routing_key_env"),
            "required field is missing; a pagerduty webhook needs the integration's routing key: \
             add routing_key_env: <VARIABLE> or routing_key_file: <path>",
        );
        return None;
    }
    r.secret_ref(m, "routing_key", "routing_key_env", "routing_key_file")
}

fn refuse_routing_key(r: &mut Reader<'_>, m: &Mapping<'_>, kind: WebhookKind) {
    for key in ROUTING_KEY_KEYS {
        if let Some(node) = m.key(key) {
            r.error(
                node.pos(),
                &m.field(key),
                format!(
                    "only pagerduty webhooks take a routing key; a {} webhook is authorised by its URL alone, \
                     remove {key}",
                    kind.as_str()
                ),
            );
        }
    }
}

/// A non-empty list of event names, each once.
fn events(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<Vec<EventKind>> {
    let valid: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let items = r.list(node, field, "a list of events, e.g. [run_paused, failover_refused]")?;
    if items.is_empty() {
        r.error(
            node.pos(),
            field,
            "is empty, so nothing would ever be sent; list events, or remove on to send them all",
        );
        return None;
    }
    let mut events: Vec<EventKind> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Some(name) = r.text(item, &item_field, "an event name") else {
            continue;
        };
        match EventKind::from_name(name) {
            Some(event) if events.contains(&event) => {
                r.error(item.pos(), &item_field, format!("{name} is already listed; remove this one"))
            }
            Some(event) => events.push(event),
            None => {
                let near = closest(name, &valid).map(|n| format!("did you mean {n}? ")).unwrap_or_default();
                r.error(
                    item.pos(),
                    &item_field,
                    format!("unknown event '{name}'; {near}events are {}", valid.join(", ")),
                );
            }
        }
    }
    (events.len() == items.len()).then_some(events)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::test_support::Recording;
    use crate::plan::{Plan, PlanErrors, parse_plan};

    const PLAN: &str = "\
name: shop
objectives: { rto: 30s, rpo: 0s }
regions: { east: { role: primary }, west: { role: standby } }
database: { kind: postgres, replication: synchronous, members: { east: { dsn_env: E }, west: { dsn_env: W } } }
traffic:
  kind: rfc2136
  server: 10.200.0.1:53
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: drover, algorithm: hmac-sha256, secret_env: T }
  targets: { east: 10.200.0.11, west: 10.200.0.12 }
checks: { api: { http: \"http://{target}:8080/healthz\" } }
";

    fn parse_with(notify: &str, secrets: &Recording) -> Result<Plan, PlanErrors> {
        parse_plan(Path::new("plan.yaml"), &format!("{PLAN}{notify}"), secrets)
    }

    fn parse(notify: &str) -> Result<Plan, PlanErrors> {
        parse_with(notify, &Recording::default())
    }

    fn messages(notify: &str) -> Vec<String> {
        parse(notify).unwrap_err().0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
    }

    #[test]
    fn without_a_section_nobody_is_told() {
        assert_eq!(parse("").unwrap().notify, NotifySpec::default());
        assert_eq!(parse("notify:\n").unwrap().notify, NotifySpec::default());
        assert_eq!(NotifySpec::default().on, EventKind::ALL);
        assert!(NotifySpec::default().webhooks.is_empty());
    }

    #[test]
    fn webhooks_take_the_sections_events_unless_they_list_their_own() {
        let secrets = Recording::default();
        let plan = parse_with(
            "notify:\n  on: [run_paused, run_completed]\n  webhooks:\n    \
             audit: { kind: json, url: \"http://audit.internal:9000/drover\" }\n    \
             pager: { kind: pagerduty, url_env: PD_URL, routing_key_file: /etc/pd, on: [failover_refused] }\n",
            &secrets,
        )
        .unwrap();
        let notify = &plan.notify;
        assert_eq!(notify.on, [EventKind::RunPaused, EventKind::RunCompleted]);
        assert_eq!(notify.runbook_url, None);
        let audit = &notify.webhooks["audit"];
        assert_eq!(audit.url, WebhookUrl::Plain("http://audit.internal:9000/drover".into()));
        assert_eq!((audit.kind, audit.routing_key.clone()), (WebhookKind::Json, None));
        assert_eq!(audit.on, notify.on);
        let pager = &notify.webhooks["pager"];
        assert_eq!(pager.url, WebhookUrl::Secret(SecretRef::Env("PD_URL".into())));
        assert_eq!(pager.routing_key, Some(SecretRef::File("/etc/pd".into())));
        assert_eq!(pager.on, [EventKind::FailoverRefused]);
        // Secret references are checked at plan time; a plain URL is not a reference.
        let asked = secrets.0.into_inner().unwrap();
        assert!(asked.contains(&SecretRef::Env("PD_URL".into())) && asked.contains(&SecretRef::File("/etc/pd".into())));
        assert_eq!(asked.len(), 5, "{asked:?}");
    }

    #[test]
    fn on_reads_the_same_quoted_or_not() {
        let hook = "  webhooks: { a: { kind: json, url_env: A } }\n";
        let bare = parse(&format!("notify:\n  on: [run_paused]\n{hook}")).unwrap();
        let quoted = parse(&format!("notify:\n  \"on\": [run_paused]\n{hook}")).unwrap();
        assert_eq!(bare.notify.on, [EventKind::RunPaused]);
        assert_eq!(bare.notify, quoted.notify);
    }

    #[test]
    fn a_section_that_could_never_send_anything_is_refused() {
        assert_eq!(
            messages("notify: { runbook_url: https://wiki.example.com/x }\n"),
            ["notify.webhooks: required field is missing; add at least one, e.g. \
              webhooks: { ops: { kind: slack, url_env: SLACK_WEBHOOK_URL } }"]
        );
        assert_eq!(
            messages("notify: { webhooks: {} }\n"),
            ["notify.webhooks: no webhooks; add one, e.g. webhooks: { ops: { kind: slack, url_env: \
              SLACK_WEBHOOK_URL } }, or remove notify"]
        );
        assert_eq!(
            messages("notify: { on: [], webhooks: { a: { kind: json, url_env: A } } }\n"),
            ["notify.on: is empty, so nothing would ever be sent; list events, or remove on to send them all"]
        );
    }

    #[test]
    fn plain_urls_hold_no_credentials_and_runbook_urls_are_corrected() {
        let hook =
            |url: &str| messages(&format!("notify: {{ webhooks: {{ a: {{ kind: json, url: \"{url}\" }} }} }}\n"));
        assert!(
            parse("notify: { webhooks: { a: { kind: json, url: \"https://x.example.com:8443/hook#frag\" } } }\n")
                .is_ok()
        );
        assert!(hook("https://x.example.com/?token=1")[0].contains("query string"));
        assert!(hook("https://u:p@x.example.com/")[0].contains("user name or password"));
        assert!(hook("ftp://x.example.com/")[0].contains("is not an http:// or https:// URL"));
        assert!(hook("https:///hook")[0].contains("has no host"));
        assert!(hook("https://x.example.com/a b")[0].contains("percent-encode"));
        for (url, message) in [("https://u:p@x.example.com/", "p@x"), ("https://x.example.com/?token=s3cret", "s3cret")]
        {
            assert!(!hook(url).concat().contains(message), "a refused URL is never echoed");
        }
        assert_eq!(
            messages("notify: { runbook_url: wiki.example.com/shop, webhooks: { a: { kind: json, url_env: A } } }\n"),
            ["notify.runbook_url: 'wiki.example.com/shop' is not an http:// or https:// URL; \
              write https://wiki.example.com/shop"]
        );
    }

    /// docs/plan.md must describe every field this section accepts and every event.
    #[test]
    fn every_field_and_event_is_documented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = doc.split("\n## notify\n").nth(1).expect("docs/plan.md has a '## notify' section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut words: Vec<String> = FIELDS.iter().map(|f| format!("`notify.{f}`")).collect();
        words.extend(WEBHOOK_FIELDS.iter().map(|f| format!("`{f}`")));
        words.extend(KINDS.iter().map(|(k, _)| format!("`{k}`")));
        words.extend(EventKind::ALL.iter().map(|e| format!("`{}`", e.as_str())));
        let missing: Vec<&String> = words.iter().filter(|w| !section.contains(w.as_str())).collect();
        assert!(missing.is_empty(), "docs/plan.md's notify section does not mention {missing:?}");
    }
}
