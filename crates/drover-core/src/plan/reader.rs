//! Reading fields out of the located YAML tree. Every problem becomes a
//! `PlanError` pointing at the key or value at fault; readers return `None`
//! after recording the error, so callers simply carry on to find the next one.

use std::fmt;
use std::time::Duration;

use super::raw::{Node, Value};
use crate::duration::{parse_bytes, parse_duration};
use crate::secret::{SecretRef, SecretSource, SecretText};

/// One problem in a plan file, located precisely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `checks.api.interval`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.field, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// A 1-based (line, column) position in the plan file.
pub(super) type Pos = (u64, u64);

impl Node {
    pub(super) fn pos(&self) -> Pos {
        (self.line, self.column)
    }
}

/// `parent.key`, or `key` at the top level.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// `a, b and c` — for listing what exists or what is allowed.
pub(super) fn list_words<S: AsRef<str>>(words: &[S]) -> String {
    match words {
        [] => "none".into(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// A mapping whose keys are a fixed set of field names.
pub(super) struct Mapping<'n> {
    /// Dotted path of the mapping itself (`""` for the whole plan).
    pub path: String,
    /// Where the mapping is named (its key), where "missing field" errors point.
    pub at: Pos,
    entries: &'n [(Node, Node)],
}

impl<'n> Mapping<'n> {
    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn entry(&self, key: &str) -> Option<&'n (Node, Node)> {
        self.entries.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
    }

    /// The value written for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Where `key` itself is written, if it is.
    pub fn key(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(k, _)| k)
    }
}

/// One entry of a mapping keyed by names the user chooses (regions, checks).
pub(super) struct Entry<'n> {
    pub name: String,
    pub key: &'n Node,
    pub value: &'n Node,
    /// Dotted path of the entry, e.g. `checks.api`.
    pub path: String,
}

pub(super) struct Reader<'s> {
    file: String,
    secrets: &'s dyn SecretSource,
    pub errors: Vec<PlanError>,
}

impl<'s> Reader<'s> {
    pub fn new(file: String, secrets: &'s dyn SecretSource) -> Self {
        Reader { file, secrets, errors: Vec::new() }
    }

    pub fn error(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        // The whole document has no field name of its own.
        let field = if field.is_empty() { "plan" } else { field };
        self.errors.push(PlanError {
            file: self.file.clone(),
            line: at.0,
            column: at.1,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        let found = node.value.kind();
        self.error(node.pos(), field, format!("expected {expected}, found {found}"));
    }

    /// Opens a mapping of field names. Keys outside `allowed` are reported (with
    /// a suggestion); keys in `refused` are left for the caller to explain.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        at: Pos,
        allowed: &[&str],
        refused: &[&str],
        expected: &str,
    ) -> Option<Mapping<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, path, expected);
            return None;
        };
        self.repeated_keys(entries, path);
        for (key, _) in entries {
            let Value::Str(name) = &key.value else {
                self.error(
                    key.pos(),
                    path,
                    format!("expected a field name, found {}; allowed here: {}", key.value.kind(), allowed.join(", ")),
                );
                continue;
            };
            if allowed.contains(&name.as_str()) || refused.contains(&name.as_str()) {
                continue;
            }
            let hint = match closest(name, allowed) {
                Some(near) => format!("unknown field; did you mean {near}? allowed here: {}", allowed.join(", ")),
                None => format!("unknown field; allowed here: {}", allowed.join(", ")),
            };
            self.error(key.pos(), &join(path, name), hint);
        }
        Some(Mapping { path: path.to_owned(), at, entries })
    }

    /// Opens a mapping keyed by names the user chose (`what` names them in errors).
    pub fn entries<'n>(&mut self, node: &'n Node, path: &str, expected: &str, what: &str) -> Option<Vec<Entry<'n>>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, path, expected);
            return None;
        };
        self.repeated_keys(entries, path);
        let mut named = Vec::new();
        for (key, value) in entries {
            match &key.value {
                Value::Str(name) if !name.is_empty() => {
                    named.push(Entry { name: name.clone(), key, value, path: join(path, name) })
                }
                other => {
                    let text = other.scalar_text().unwrap_or_default();
                    let field = if text.is_empty() { path.to_owned() } else { join(path, &text) };
                    self.error(
                        key.pos(),
                        &field,
                        format!("{what} names are text; found {}, write the name in quotes", other.kind()),
                    );
                }
            }
        }
        Some(named)
    }

    /// Reads every entry with `read`, which reports its own problems: the values by entry
    /// name, or None when any entry was bad. Every entry is read, so all mistakes show at once.
    pub fn each<'n, T>(
        &mut self,
        entries: &[Entry<'n>],
        mut read: impl FnMut(&mut Self, &Entry<'n>) -> Option<T>,
    ) -> Option<std::collections::BTreeMap<String, T>> {
        let mut values = std::collections::BTreeMap::new();
        let mut complete = true;
        for entry in entries {
            match read(self, entry) {
                Some(value) => {
                    values.insert(entry.name.clone(), value);
                }
                None => complete = false,
            }
        }
        complete.then_some(values)
    }

    /// YAML forbids a key twice in one mapping; only the first would be read.
    fn repeated_keys(&mut self, entries: &[(Node, Node)], path: &str) {
        // One pass with the keys seen so far: plans with thousands of checks stay fast.
        let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for (key, _) in entries {
            let Some(name) = key.value.scalar_text() else {
                continue;
            };
            match seen.get(&name) {
                Some(first_line) => {
                    let message = format!("written twice (first on line {first_line}); keep one");
                    self.error(key.pos(), &join(path, &name), message);
                }
                None => {
                    seen.insert(name, key.line);
                }
            }
        }
    }

    /// The value of a required field; reports it missing at the parent mapping.
    pub fn require<'n>(&mut self, m: &Mapping<'n>, key: &str, hint: &str) -> Option<&'n Node> {
        let found = m.get(key);
        if found.is_none() {
            self.error(m.at, &m.field(key), format!("required field is missing; {hint}"));
        }
        found
    }

    /// Non-empty text. Numbers and booleans are refused: quoting says text was meant.
    pub fn text<'n>(&mut self, node: &'n Node, field: &str, expected: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) if s.trim().is_empty() => {
                self.error(node.pos(), field, format!("is empty; expected {expected}"));
                None
            }
            Value::Str(s) => Some(s),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                let found = node.value.kind();
                self.error(
                    node.pos(),
                    field,
                    format!("expected {expected}, found {found}; put it in quotes if it is meant as text"),
                );
                None
            }
            _ => {
                self.wrong_type(node, field, expected);
                None
            }
        }
    }

    /// `500ms`, `5s`, `10m`; messages come from `parse_duration`.
    pub fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let Some(text) = scalar_number_or_text(node) else {
            self.wrong_type(node, field, "a duration like 500ms, 5s or 10m");
            return None;
        };
        parse_duration(&text).map_err(|e| self.error(node.pos(), field, e)).ok()
    }

    /// A duration that must be more than zero.
    pub fn positive_duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let d = self.duration(node, field)?;
        if d.is_zero() {
            self.error(node.pos(), field, "must be longer than 0s; write e.g. 1s");
            return None;
        }
        Some(d)
    }

    /// `0`, `512KiB`, `1MiB`; messages come from `parse_bytes`.
    pub fn bytes(&mut self, node: &Node, field: &str) -> Option<u64> {
        let Some(text) = scalar_number_or_text(node) else {
            self.wrong_type(node, field, "a size like 0, 512KiB or 1MiB");
            return None;
        };
        parse_bytes(&text).map_err(|e| self.error(node.pos(), field, e)).ok()
    }

    /// A whole number no smaller than `min`.
    pub fn count(&mut self, node: &Node, field: &str, min: u32) -> Option<u32> {
        let n = match &node.value {
            Value::Int(n) => *n,
            Value::Str(s) if s.trim().parse::<i128>().is_ok() => {
                self.error(
                    node.pos(),
                    field,
                    format!("expected a whole number, found the text \"{s}\"; remove the quotes"),
                );
                return None;
            }
            _ => {
                self.wrong_type(node, field, "a whole number");
                return None;
            }
        };
        if n < i128::from(min) {
            self.error(node.pos(), field, format!("is {n}, must be at least {min}"));
            return None;
        }
        u32::try_from(n).map_err(|_| self.error(node.pos(), field, format!("{n} is too large"))).ok()
    }

    pub fn flag(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s == "true" || s == "false" => {
                self.error(
                    node.pos(),
                    field,
                    format!("expected true or false, found the text \"{s}\"; remove the quotes"),
                );
                None
            }
            // YAML 1.1 spellings: the plan is read as YAML 1.2, where they are text.
            Value::Str(s) if ["yes", "no", "on", "off", "y", "n"].contains(&s.to_lowercase().as_str()) => {
                let meant = if ["yes", "on", "y"].contains(&s.to_lowercase().as_str()) { "true" } else { "false" };
                self.error(node.pos(), field, format!("expected true or false, found \"{s}\"; write {meant}"));
                None
            }
            _ => {
                self.wrong_type(node, field, "true or false");
                None
            }
        }
    }

    pub fn list<'n>(&mut self, node: &'n Node, field: &str, expected: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, field, expected);
                None
            }
        }
    }

    /// One of a fixed set of words, e.g. `synchronous` / `asynchronous`.
    pub fn choice<T: Copy>(&mut self, node: &Node, field: &str, what: &str, options: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let expected = format!("one of {}", names.join(", "));
        let text = self.text(node, field, &expected)?;
        match options.iter().find(|(n, _)| *n == text) {
            Some((_, value)) => Some(*value),
            None => {
                let message = match (names.as_slice(), closest(text, &names)) {
                    ([only], _) => {
                        format!("unknown {what} '{text}'; only {only} is supported for now")
                    }
                    (_, Some(near)) => {
                        format!("unknown {what} '{text}'; did you mean {near}? use one of {}", names.join(", "))
                    }
                    (_, None) => {
                        format!("unknown {what} '{text}'; use one of {}", names.join(", "))
                    }
                };
                self.error(node.pos(), field, message);
                None
            }
        }
    }

    /// A referenced secret's value, to judge it (a key's length); never to print.
    pub fn resolve(&self, reference: &SecretRef) -> Result<crate::secret::Secret, String> {
        self.secrets.resolve(reference)
    }

    /// A secret given by reference: exactly one of `<env_key>` / `<file_key>`;
    /// an inline `<inline_key>` is refused without ever echoing its value.
    /// The reference must resolve through the `SecretSource`.
    pub fn secret_ref(
        &mut self,
        m: &Mapping<'_>,
        inline_key: &str,
        env_key: &str,
        file_key: &str,
    ) -> Option<SecretRef> {
        if let Some(key) = m.key(inline_key) {
            self.error(
                key.pos(),
                &m.field(inline_key),
                format!("secrets are never written in the plan: use {env_key} or {file_key}"),
            );
        }
        let mut found = None;
        for (key, by_env) in [(env_key, true), (file_key, false)] {
            let Some(node) = m.get(key) else { continue };
            let field = m.field(key);
            if found.is_some() {
                self.error(
                    m.key(key).map_or(node.pos(), Node::pos),
                    &field,
                    format!("give one of {env_key} or {file_key}, not both"),
                );
                return None;
            }
            found = Some((node, field, by_env));
        }
        let Some((node, field, by_env)) = found else {
            if m.key(inline_key).is_none() {
                self.error(
                    m.at,
                    &m.field(env_key),
                    format!("required field is missing; add {env_key}: <VARIABLE> or {file_key}: <path>"),
                );
            }
            return None;
        };
        // Never echo these values: people paste the secret itself here by mistake.
        let Value::Str(text) = &node.value else {
            let expected = if by_env { "an environment variable name" } else { "a file path" };
            self.wrong_type(node, &field, expected);
            return None;
        };
        let reference = if by_env {
            if !is_env_name(text) {
                self.error(
                    node.pos(),
                    &field,
                    "is not an environment variable name (letters, digits and _, e.g. EAST_DSN); \
                     if this is the secret itself, move it into that variable or a file",
                );
                return None;
            }
            SecretRef::Env(text.clone())
        } else {
            if text.trim().is_empty() || text.contains('\n') {
                self.error(node.pos(), &field, "is not a file path; write e.g. /etc/drover/secret");
                return None;
            }
            SecretRef::File(text.into())
        };
        if let Err(message) = self.secrets.resolve(&reference) {
            self.error(node.pos(), &field, message);
            return None;
        }
        Some(reference)
    }
}

/// Numbers are accepted where text is parsed (`ttl: 5` → "'5' has no unit").
/// Region and check names end up in namespaces, metrics and URLs: keep them plain.
pub(super) fn check_identifier(r: &mut Reader<'_>, entry: &Entry<'_>, what: &str) {
    let plain = entry.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !plain {
        r.error(
            entry.key.pos(),
            &entry.path,
            format!("'{}' is not a valid {what} name; use lowercase letters, digits, '-' and '_'", entry.name),
        );
    }
}

/// The `kind` written in a section's mapping, if it is readable text: the section
/// readers pick the reader for that kind from it before reading anything else.
pub(super) fn declared_kind(node: &Node) -> Option<&str> {
    let Value::Map(entries) = &node.value else { return None };
    entries.iter().find_map(|(k, v)| match (&k.value, &v.value) {
        (Value::Str(key), Value::Str(kind)) if key == "kind" => Some(kind.as_str()),
        _ => None,
    })
}

fn scalar_number_or_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn is_env_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The allowed word a typo most likely meant: one edit away for short words,
/// two for longer ones (a swap of neighbours counts as one edit).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= if c.len() <= 5 { 1 } else { 2 } && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions, swaps.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A command or command prefix: a non-empty list of words (numbers allowed, e.g. a port).
/// `what` says what the words are for, with an example: `the command prefix that runs a
/// command on the host, e.g. [ssh, db-east]`.
pub(super) fn argv(r: &mut Reader<'_>, node: &Node, field: &str, what: &str) -> Option<Vec<String>> {
    let example = what.split("e.g. ").nth(1).unwrap_or("[ssh, db-east]");
    let items = r.list(node, field, &format!("a command as a list of words, e.g. {example}"))?;
    if items.is_empty() {
        r.error(node.pos(), field, format!("is empty; write {what}"));
        return None;
    }
    let mut words = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match &item.value {
            Value::Str(s) if s.is_empty() => {
                r.error(item.pos(), &format!("{field}[{i}]"), "is an empty word; remove it")
            }
            Value::Str(s) => words.push(s.clone()),
            Value::Int(n) => words.push(n.to_string()),
            other => r.error(
                item.pos(),
                &format!("{field}[{i}]"),
                format!("expected a word of the command, found {}", other.kind()),
            ),
        }
    }
    (words.len() == items.len()).then_some(words)
}

/// The keys a URL that may be a secret is written under.
pub(super) const URL_KEYS: [&str; 3] = ["url", "url_env", "url_file"];

/// Exactly one of `url` (only when it holds no credential), `url_env` or `url_file`.
pub(super) fn url_field(r: &mut Reader<'_>, m: &Mapping<'_>, example: &str) -> Option<SecretText> {
    let given: Vec<&str> = URL_KEYS.into_iter().filter(|key| m.key(key).is_some()).collect();
    match given.as_slice() {
        [] => {
            r.error(
                m.at,
                &m.field("url"),
                "required field is missing; add url_env: <VARIABLE> or url_file: <path> \
                 (or url: https://… when the URL holds no token)",
            );
            None
        }
        ["url"] => {
            let node = m.get("url")?;
            plain_url(r, node, &m.field("url"), example).map(|url| SecretText::Plain(url.to_owned()))
        }
        [_] => r.secret_ref(m, "url", "url_env", "url_file").map(SecretText::Secret),
        [.., extra] => {
            let at = m.key(extra).map_or(m.at, Node::pos);
            r.error(at, &m.field(extra), "give only one of url, url_env or url_file");
            None
        }
    }
}

/// A URL written in the plan is printed and committed with it, so it must not
/// carry a credential. Its text is never echoed: it may hold one by mistake.
fn plain_url<'n>(r: &mut Reader<'_>, node: &'n Node, field: &str, example: &str) -> Option<&'n str> {
    let move_it = "move the whole URL into an environment variable or a file: url_env: <VARIABLE> or url_file: <path>";
    let url = http_url(r, node, field, example)?;
    let authority = url.split("://").nth(1).unwrap_or_default().split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        r.error(node.pos(), field, format!("holds a user name or password (user:password@host); {move_it}"));
        return None;
    }
    if url.contains('?') {
        r.error(node.pos(), field, format!("has a query string, which often carries a token; {move_it}"));
        return None;
    }
    Some(url)
}

/// An absolute http(s) URL that fits in Slack's `<url|text>` link markup.
pub(super) fn http_url<'n>(r: &mut Reader<'_>, node: &'n Node, field: &str, example: &str) -> Option<&'n str> {
    let text = r.text(node, field, "an http:// or https:// URL")?;
    let Some(rest) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else {
        r.error(node.pos(), field, format!("is not an http:// or https:// URL; write e.g. {example}"));
        return None;
    };
    if rest.split(['/', '?', '#']).next().is_none_or(|host| host.is_empty() || host.starts_with('@')) {
        r.error(node.pos(), field, format!("has no host; write e.g. {example}"));
        return None;
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|' | '"')) {
        r.error(node.pos(), field, "contains spaces or one of < > | \"; percent-encode them (e.g. %20 for a space)");
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let allowed = ["interval", "timeout", "http", "tcp"];
        assert_eq!(closest("intervall", &allowed), Some("interval"));
        assert_eq!(closest("timeuot", &allowed), Some("timeout"));
        assert_eq!(closest("htp", &allowed), Some("http"));
        assert_eq!(closest("retries", &allowed), None);
        assert_eq!(closest("x", &["tcp"]), None);
        assert_eq!(closest("wets", &["east", "west"]), Some("west"));
        assert_eq!(closest("zone", &["role"]), None);
        assert_eq!(closest("swtich", &["switch", "verify"]), Some("switch"));
    }

    #[test]
    fn lists_read_like_english() {
        assert_eq!(list_words::<&str>(&[]), "none");
        assert_eq!(list_words(&["east"]), "east");
        assert_eq!(list_words(&["east", "west", "witness"]), "east, west and witness");
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("EAST_DSN"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("postgres://u:pw@h/db"));
        assert!(!is_env_name(""));
    }
}
