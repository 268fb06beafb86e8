//! The optional `steps` section: steps the plan defines itself — an HTTP call (`http`) or
//! a command (`exec`) — that a runbook names like any built-in step. Their definitions,
//! how the plan writes them, and how `plan check` describes them live here; what each
//! does at run time is in `crate::steps::http` and `crate::steps::exec`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::{Node, Value};
use super::reader::{Entry, Mapping, Reader};
use super::steps::StepKind;
use crate::duration::format_duration;
use crate::secret::SecretRef;
use crate::secret::SecretText;

/// What one of the plan's own steps does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepAction {
    Http(HttpAction),
    Exec(ExecAction),
}

impl StepAction {
    /// Every secret the step references: resolved when drover starts.
    pub fn secrets(&self) -> Vec<&SecretRef> {
        let texts: Vec<&SecretText> = match self {
            StepAction::Http(h) => {
                let mut texts: Vec<&SecretText> = h.headers.values().collect();
                texts.push(&h.url);
                texts.extend(h.observe.as_ref().map(|o| &o.url));
                texts
            }
            StepAction::Exec(e) => e.env.values().collect(),
        };
        texts
            .into_iter()
            .filter_map(|t| match t {
                SecretText::Secret(reference) => Some(reference),
                SecretText::Plain(_) => None,
            })
            .collect()
    }
}

/// `steps.<name>.http`: one request (docs/plan.md).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpAction {
    pub url: SecretText,
    /// Upper case: GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    pub headers: BTreeMap<String, SecretText>,
    pub body: Option<String>,
    /// The statuses that mean success; empty: any 2xx.
    pub expect_status: Vec<u16>,
    pub timeout: Duration,
    /// How to tell the call already had its effect, which makes the step idempotent.
    pub observe: Option<HttpObserve>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpObserve {
    pub url: SecretText,
    /// The statuses that mean "already done" (default 200).
    pub expect_status: Vec<u16>,
}

/// `steps.<name>.exec`: one command (docs/plan.md).
#[derive(Clone, Debug, PartialEq)]
pub struct ExecAction {
    pub argv: Vec<String>,
    /// The region it runs in.
    pub on: RunSide,
    /// The command prefix reaching a host of each service region; empty: where drover runs.
    pub host: BTreeMap<String, Vec<String>>,
    pub env: BTreeMap<String, SecretText>,
    pub timeout: Duration,
    /// A command whose exit 0 means "already done", which makes the step idempotent.
    pub observe: Option<Vec<String>>,
}

/// One of a run's two regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunSide {
    /// The region losing the primary role.
    From,
    /// The region taking it.
    To,
}

impl StepAction {
    /// `warm-cache: POST https://ops.example.com/warm, observed` — a referenced URL or secret
    /// shows where it is held, never its value.
    pub fn describe(&self, name: &str) -> String {
        let text = |t: &SecretText| match t {
            SecretText::Plain(text) => text.clone(),
            SecretText::Secret(reference) => format!("<{reference}>"),
        };
        match self {
            StepAction::Http(h) => {
                let observe = h
                    .observe
                    .as_ref()
                    .map_or(", called at least once".into(), |o| format!(", observed at {}", text(&o.url)));
                format!("{name}: {} {}, timeout {}{observe}", h.method, text(&h.url), format_duration(h.timeout))
            }
            StepAction::Exec(e) => {
                let side = match e.on {
                    RunSide::To => "the target",
                    RunSide::From => "the old primary region",
                };
                let host = if e.host.is_empty() { "where drover runs".to_owned() } else { format!("on {side}'s host") };
                let observe = e
                    .observe
                    .as_ref()
                    .map_or(", run at least once".into(), |o| format!(", observed by `{}`", o.join(" ")));
                format!("{name}: `{}` {host}, timeout {}{observe}", e.argv.join(" "), format_duration(e.timeout))
            }
        }
    }
}

const HTTP_FIELDS: [&str; 9] =
    ["url", "url_env", "url_file", "method", "headers", "body", "expect_status", "timeout", "observe"];
const OBSERVE_FIELDS: [&str; 4] = ["url", "url_env", "url_file", "expect_status"];
const EXEC_FIELDS: [&str; 6] = ["argv", "on", "host", "env", "timeout", "observe"];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const EXAMPLE: &str = "steps: { warm-cache: { http: { url: https://ops.example.com/warm, method: POST } } }";

/// How long an `http` step's call may take when the plan says nothing.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an `exec` step's command may run when the plan says nothing.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// The plan's own steps by name; empty without a `steps` section.
pub(super) fn read(r: &mut Reader<'_>, top: &Mapping<'_>, regions: &[String]) -> Option<BTreeMap<String, StepAction>> {
    let Some(node) = top.get("steps") else { return Some(BTreeMap::new()) };
    if node.value == Value::Null {
        return Some(BTreeMap::new());
    }
    let entries = r.entries(node, "steps", &format!("a mapping of step name to step, e.g. {EXAMPLE}"), "step")?;
    r.each(&entries, |r, entry| read_step(r, entry, regions))
}

/// The step names the `steps` section writes, read or not.
pub(super) fn names<'n>(top: &Mapping<'n>) -> Vec<&'n str> {
    match top.get("steps").map(|n| &n.value) {
        Some(Value::Map(entries)) => entries
            .iter()
            .filter_map(|(k, _)| match &k.value {
                Value::Str(name) if StepKind::from_name(name).is_none() => Some(name.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An `exec` step that runs in the region being left (`on: from`) cannot run when that
/// region is lost — the reason most failovers happen. Before `promote` it would stop the
/// failover with nothing moved, so a failover runbook may hold one only after `promote`.
pub(super) fn refuse_lost_region_steps(r: &mut Reader<'_>, top: &Mapping<'_>, steps: &BTreeMap<String, StepAction>) {
    let Some(Value::Map(runbooks)) = top.get("runbooks").map(|n| &n.value) else { return };
    let Some((_, failover)) = runbooks.iter().find(|(k, _)| k.value == Value::Str("failover".into())) else { return };
    let Value::Seq(items) = &failover.value else { return };
    let mut promoted = false;
    for (i, item) in items.iter().enumerate() {
        let Value::Str(name) = &item.value else { continue };
        promoted |= StepKind::from_name(name) == Some(StepKind::Promote);
        if let (false, Some(StepAction::Exec(exec))) = (promoted, steps.get(name))
            && exec.on == RunSide::From
        {
            r.error(
                item.pos(),
                &format!("runbooks.failover[{i}]"),
                format!(
                    "{name} runs in the region being left (on: from), which a failover may have lost: \
                     before promote it would stop the failover with nothing moved; put it after promote, \
                     or in the switchover runbook"
                ),
            );
        }
    }
}

fn read_step(r: &mut Reader<'_>, entry: &Entry<'_>, regions: &[String]) -> Option<StepAction> {
    let name = entry.name.as_str();
    if StepKind::from_name(name).is_some() {
        r.error(entry.key.pos(), &entry.path, format!("'{name}' is a built-in step; give this step another name"));
        return None;
    }
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        r.error(
            entry.key.pos(),
            &entry.path,
            "a step name starts with a lowercase letter and holds only a-z, 0-9, - and _ (e.g. warm-cache)",
        );
        return None;
    }
    let kinds = ["http", "exec"];
    let m = r.mapping(entry.value, &entry.path, entry.key.pos(), &kinds, &[], "a mapping with http or exec")?;
    match (m.get("http"), m.get("exec")) {
        (Some(n), None) => read_http(r, &m, n).map(StepAction::Http),
        (None, Some(n)) => read_exec(r, &m, n, regions).map(StepAction::Exec),
        (Some(_), Some(_)) => {
            r.error(m.at, &entry.path, "give one of http or exec: a step does one thing");
            None
        }
        (None, None) => {
            r.error(m.at, &entry.path, "say what the step does: http: { url: … } or exec: { argv: [...] }");
            None
        }
    }
}

fn read_http(r: &mut Reader<'_>, step: &Mapping<'_>, node: &Node) -> Option<HttpAction> {
    let path = step.field("http");
    let at = step.key("http").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, &path, at, &HTTP_FIELDS, &[], "a mapping with url, method, headers, body")?;
    let url = super::reader::url_field(r, &m, "https://ops.example.com/hooks/warm-cache");
    let method = m.get("method").map_or(Some("POST".to_owned()), |n| method(r, n, &m.field("method")));
    let headers = m.get("headers").map_or(Some(BTreeMap::new()), |n| headers(r, n, &m.field("headers")));
    let body = m
        .get("body")
        .map_or(Some(None), |n| r.text(n, &m.field("body"), "the request body as text").map(|b| Some(b.to_owned())));
    let expect_status = m.get("expect_status").map_or(Some(Vec::new()), |n| statuses(r, n, &m.field("expect_status")));
    let timeout = m.get("timeout").map_or(Some(DEFAULT_HTTP_TIMEOUT), |n| r.positive_duration(n, &m.field("timeout")));
    let observe = m.get("observe").map_or(Some(None), |n| read_observe(r, &m, n).map(Some));
    Some(HttpAction {
        url: url?,
        method: method?,
        headers: headers?,
        body: body?,
        expect_status: expect_status?,
        timeout: timeout?,
        observe: observe?,
    })
}

fn read_observe(r: &mut Reader<'_>, http: &Mapping<'_>, node: &Node) -> Option<HttpObserve> {
    let path = http.field("observe");
    let at = http.key("observe").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, &path, at, &OBSERVE_FIELDS, &[], "a mapping with url and expect_status")?;
    let url = super::reader::url_field(r, &m, "https://ops.example.com/hooks/warm-cache");
    let expect_status = m.get("expect_status").map_or(Some(vec![200]), |n| statuses(r, n, &m.field("expect_status")));
    let expect_status = expect_status?;
    if expect_status.is_empty() {
        r.error(m.at, &m.field("expect_status"), "is empty; list the status that means done, e.g. 200");
        return None;
    }
    Some(HttpObserve { url: url?, expect_status })
}

fn method(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<String> {
    let text = r.text(node, field, "an HTTP method")?;
    let upper = text.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Some(upper)
    } else {
        r.error(node.pos(), field, format!("'{text}' is not a method drover sends; use one of {}", METHODS.join(", ")));
        None
    }
}

/// Status codes: one number or a list of them, each 100–599.
fn statuses(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<Vec<u16>> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut codes = Vec::new();
    for item in &items {
        match &item.value {
            Value::Int(n) if (100..=599).contains(n) => codes.push(*n as u16),
            _ => {
                r.error(item.pos(), field, "expected an HTTP status code (100-599) or a list of them, e.g. [200, 204]")
            }
        }
    }
    (codes.len() == items.len()).then_some(codes)
}

/// Header names are HTTP tokens; `X-Drover-*` are drover's own (run id, epoch, regions).
fn headers(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<BTreeMap<String, SecretText>> {
    let entries = r.entries(node, field, "a mapping of header name to value", "header")?;
    r.each(&entries, |r, entry| {
        let name = entry.name.as_str();
        let token = name.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            r.error(entry.key.pos(), &entry.path, "is not a header name (letters, digits and - only, e.g. X-Team)");
            return None;
        }
        if name.to_ascii_lowercase().starts_with("x-drover-") || name.eq_ignore_ascii_case("idempotency-key") {
            r.error(entry.key.pos(), &entry.path, "is set by drover itself (run, epoch, regions); remove it");
            return None;
        }
        text_or_secret(r, entry)
    })
}

/// A value written in the plan (`sre`), or a secret by reference (`{ env: TOKEN }` or
/// `{ file: /etc/drover/token }`).
fn text_or_secret(r: &mut Reader<'_>, entry: &Entry<'_>) -> Option<SecretText> {
    match &entry.value.value {
        Value::Map(_) => {
            let m = r.mapping(
                entry.value,
                &entry.path,
                entry.key.pos(),
                &["env", "file"],
                &["value"],
                "{ env: VARIABLE } or { file: /path }",
            )?;
            r.secret_ref(&m, "value", "env", "file").map(SecretText::Secret)
        }
        _ => r
            .text(entry.value, &entry.path, "text, or a secret as { env: VARIABLE }")
            .map(|t| SecretText::Plain(t.into())),
    }
}

fn read_exec(r: &mut Reader<'_>, step: &Mapping<'_>, node: &Node, regions: &[String]) -> Option<ExecAction> {
    let path = step.field("exec");
    let at = step.key("exec").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, &path, at, &EXEC_FIELDS, &[], "a mapping with argv")?;
    let argv = r
        .require(&m, "argv", "add the command as a list of words, e.g. argv: [/usr/local/bin/drain-queue, --all]")
        .and_then(|n| {
            super::reader::argv(r, n, &m.field("argv"), "the command, e.g. [/usr/local/bin/drain-queue, --all]")
        });
    let on = m.get("on").map_or(Some(RunSide::To), |n| {
        r.choice(n, &m.field("on"), "region", &[("to", RunSide::To), ("from", RunSide::From)])
    });
    let host = m.get("host").map_or(Some(BTreeMap::new()), |n| hosts(r, &m, n, regions));
    let env = m.get("env").map_or(Some(BTreeMap::new()), |n| environment(r, n, &m.field("env")));
    let timeout = m.get("timeout").map_or(Some(DEFAULT_EXEC_TIMEOUT), |n| r.positive_duration(n, &m.field("timeout")));
    let observe = m.get("observe").map_or(Some(None), |n| {
        super::reader::argv(
            r,
            n,
            &m.field("observe"),
            "a command whose exit 0 means done, e.g. [/usr/local/bin/queue-is-empty]",
        )
        .map(Some)
    });
    Some(ExecAction { argv: argv?, on: on?, host: host?, env: env?, timeout: timeout?, observe: observe? })
}

/// The command prefix that runs the command in each region (`[ssh, ops@app-east]`): every
/// service region, or none (the command then runs where drover runs).
fn hosts(
    r: &mut Reader<'_>,
    exec: &Mapping<'_>,
    node: &Node,
    regions: &[String],
) -> Option<BTreeMap<String, Vec<String>>> {
    let field = exec.field("host");
    let entries =
        r.entries(node, &field, "a mapping of region to command prefix, e.g. { east: [ssh, app-east] }", "region")?;
    let hosts = r.each(&entries, |r, entry| {
        if !regions.contains(&entry.name) {
            r.error(
                entry.key.pos(),
                &entry.path,
                format!("is not a service region of the plan ({})", regions.join(", ")),
            );
            return None;
        }
        super::reader::argv(
            r,
            entry.value,
            &entry.path,
            "the command prefix that reaches a host there, e.g. [ssh, ops@app-east]",
        )
    })?;
    let missing: Vec<&str> = regions.iter().filter(|region| !hosts.contains_key(*region)).map(String::as_str).collect();
    if !missing.is_empty() {
        let at = exec.key("host").map_or(node.pos(), Node::pos);
        r.error(at, &field, format!("has no command prefix for {}; give every service region one", missing.join(", ")));
        return None;
    }
    Some(hosts)
}

/// The command's environment beyond drover's own `DROVER_*` variables. Nothing else of
/// drover's environment is passed on: it holds drover's secrets.
fn environment(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<BTreeMap<String, SecretText>> {
    let entries = r.entries(node, field, "a mapping of variable name to value", "variable")?;
    r.each(&entries, |r, entry| {
        let name = entry.name.as_str();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(entry.key.pos(), &entry.path, "is not an environment variable name (letters, digits and _)");
            return None;
        }
        if name.starts_with("DROVER_") {
            r.error(entry.key.pos(), &entry.path, "DROVER_* variables are set by drover itself; rename it");
            return None;
        }
        text_or_secret(r, entry)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a step may hold is in docs/plan.md's steps table.
    #[test]
    fn every_field_is_documented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = doc.split("\n## steps\n").nth(1).expect("docs/plan.md has a '## steps' section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut words: Vec<String> = Vec::new();
        for field in HTTP_FIELDS.iter().filter(|f| !f.starts_with("url_")) {
            words.push(format!("`steps.<name>.http.{field}"));
        }
        for field in OBSERVE_FIELDS.iter().filter(|f| !f.starts_with("url_")) {
            words.push(format!("`steps.<name>.http.observe.{field}"));
        }
        for field in EXEC_FIELDS {
            words.push(format!("`steps.<name>.exec.{field}`"));
        }
        words.extend(["url_env", "url_file"].map(|w| format!("`{w}")));
        words.extend(METHODS.map(|m| format!("`{m}`")));
        let missing: Vec<&String> = words.iter().filter(|w| !section.contains(w.as_str())).collect();
        assert!(missing.is_empty(), "docs/plan.md's steps section does not mention {missing:?}");
    }
}
