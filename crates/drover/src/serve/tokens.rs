//! `--token-file`: who may call the API, by name and role. One entry a line,
//! `NAME ROLE TOKEN`, `#` starts a comment:
//!
//! ```text
//! alice    operator  3b1f…   # a person: reads, starts, approves, resumes, aborts runs
//! grafana  reader    9c0d…   # reads only
//! east     peer      77aa…   # the east daemon: reads (its peers' reports); sent by east to its peers
//! ```
//!
//! A file holding one bare token (the format before names) still works: it is the
//! operator `token`. Every run started, approved, resumed or aborted through the API is
//! recorded under the name of the token that asked.

use std::path::Path;

use crate::app::error::Failure;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads, and starts, approves, resumes and aborts runs.
    Operator,
    /// Reads only.
    Reader,
    /// Another daemon: reads only (its peers' vantage reports), never starts or approves runs.
    Peer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Reader => "reader",
            Role::Peer => "peer",
        }
    }
}

/// Who called: the name and role of the token given.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

struct Entry {
    name: String,
    role: Role,
    token: String,
}

pub struct Tokens {
    entries: Vec<Entry>,
}

/// Shorter tokens are easy to guess; a generated one (`openssl rand -hex 32`) is far longer.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The name a file with one bare token gives it.
pub const BARE_NAME: &str = "token";

impl Tokens {
    /// Reads and checks the file; any problem is bad input naming file:line, never a token.
    pub fn read(path: &Path) -> Result<Tokens, Failure> {
        let text = read_token_file(path)?;
        Tokens::parse(&text).map_err(|(line, why)| match line {
            Some(line) => Failure::input(format!("--token-file {}:{line}: {why}", path.display())),
            None => Failure::input(format!("--token-file {}: {why}", path.display())),
        })
    }

    /// The entries of `text`, or (line, why) of the first problem. A message never holds a
    /// line's text: a token may sit anywhere in it when the columns are mixed up.
    fn parse(text: &str) -> Result<Tokens, (Option<usize>, String)> {
        let lines: Vec<(usize, Vec<&str>)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").split_whitespace().collect::<Vec<_>>()))
            .filter(|(_, fields)| !fields.is_empty())
            .collect();
        if lines.is_empty() {
            return Err((None, "the file holds no token; write one `NAME ROLE TOKEN` a line".into()));
        }
        // The format before names: one token alone, for an operator.
        if let [(line, fields)] = lines.as_slice()
            && fields.len() == 1
        {
            let token = fields[0].to_owned();
            check_length(*line, &token)?;
            return Ok(Tokens { entries: vec![Entry { name: BARE_NAME.into(), role: Role::Operator, token }] });
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (line, fields) in lines {
            let [name, role, token] = fields.as_slice() else {
                return Err((
                    Some(line),
                    format!("expected NAME ROLE TOKEN (e.g. alice operator <token>), found {} fields", fields.len()),
                ));
            };
            let role = match *role {
                "operator" => Role::Operator,
                "reader" => Role::Reader,
                "peer" => Role::Peer,
                _ => return Err((Some(line), "unknown role (the second field); use operator, reader or peer".into())),
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                return Err((
                    Some(line),
                    "the name (the first field) may hold letters, digits, '-', '_', '.' and '@' only".into(),
                ));
            }
            check_length(line, token)?;
            if entries.iter().any(|e| e.name == *name) {
                return Err((Some(line), format!("the name '{name}' is given twice; one entry per name")));
            }
            if entries.iter().any(|e| e.token == *token) {
                return Err((Some(line), "this token is given twice; every entry needs its own".into()));
            }
            entries.push(Entry { name: (*name).to_owned(), role, token: (*token).to_owned() });
        }
        Ok(Tokens { entries })
    }

    /// Who holds `given`. Every entry is compared, in constant time each, so the answer's
    /// timing tells neither which entry matched nor how much of a token did.
    pub fn caller(&self, given: &str) -> Option<Caller> {
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(given.as_bytes(), entry.token.as_bytes()) {
                found = Some(Caller { name: entry.name.clone(), role: entry.role });
            }
        }
        found
    }

    /// The token this daemon shows its peers: the `peer` entry named like its vantage, or
    /// the one token of a file in the format before names.
    pub fn peer_token(&self, vantage: &str) -> Option<&str> {
        match self.entries.as_slice() {
            [only] if only.name == BARE_NAME => Some(&only.token),
            entries => entries.iter().find(|e| e.name == vantage && e.role == Role::Peer).map(|e| e.token.as_str()),
        }
    }
}

fn check_length(line: usize, token: &str) -> Result<(), (Option<usize>, String)> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err((
            Some(line),
            format!("the token is shorter than {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`"),
        ));
    }
    Ok(())
}

/// Compares without leaking through timing how much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token file's text (the daemon's or the CLI's): a secret file, refused when its group
/// or others can open it.
pub fn read_token_file(path: &Path) -> Result<String, Failure> {
    drover_adapters::secret_file::read(path)
        .map_err(|e| Failure::input(e.describe(|e| format!("--token-file {}: {e}", path.display()), "--token-file")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    fn error(text: &str) -> String {
        let (line, why) = Tokens::parse(text).err().expect("refused");
        format!("{}: {why}", line.map_or("-".into(), |l| l.to_string()))
    }

    #[test]
    fn named_entries_give_each_caller_its_name_and_role() {
        let tokens =
            Tokens::parse(&format!("# who\nalice operator {A}\n\neast peer {B}  # the east daemon\n")).unwrap();
        let alice = tokens.caller(A).unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Operator));
        assert_eq!(tokens.caller(B).unwrap().role, Role::Peer);
        assert!(tokens.caller("nope").is_none());
        assert_eq!(tokens.peer_token("east"), Some(B));
        assert_eq!(tokens.peer_token("alice"), None, "an operator's token is not sent to peers");
    }

    #[test]
    fn one_bare_token_is_the_operator_token_as_before() {
        let tokens = Tokens::parse(&format!("{A}\n")).unwrap();
        let caller = tokens.caller(A).unwrap();
        assert_eq!((caller.name.as_str(), caller.role), ("token", Role::Operator));
        assert_eq!(tokens.peer_token("east"), Some(A));
    }

    #[test]
    fn a_bad_file_names_the_line_and_never_a_token() {
        assert_eq!(error(""), "-: the file holds no token; write one `NAME ROLE TOKEN` a line");
        assert_eq!(
            error(&format!("alice operator {A}\nbob admin {B}\n")),
            "2: unknown role (the second field); use operator, reader or peer"
        );
        assert_eq!(
            error(&format!("alice operator {A}\nalice reader {B}\n")),
            "2: the name 'alice' is given twice; one entry per name"
        );
        assert_eq!(
            error(&format!("alice operator {A}\nbob reader {A}\n")),
            "2: this token is given twice; every entry needs its own"
        );
        assert!(error(&format!("alice operator {A}\n{B}\n")).starts_with("2: expected NAME ROLE TOKEN"));
        assert!(error("alice operator short\n").starts_with("1: the token is shorter than 16"));
        for text in [format!("alice {A} operator\nbob reader {B}\n"), format!("alice operator {A} extra\n")] {
            let e = error(&text);
            assert!(!e.contains(A) && !e.contains(B), "{e}");
        }
    }
}
