//! What a person asks for: one run ([`Request`]), planned the same way for a command run
//! here and for a request to a daemon's API, and the API's request bodies, read strictly.
//! The bodies live here, not in the binary, so the fuzz target (`fuzz/`) reads them with
//! exactly the daemon's code without linking the daemon.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::run::RunKind;

/// What a person asks for: one run, planned against the world as it is when it starts.
/// The CLI and a daemon's API plan it the same way (`drover::app::runs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// A failover or switchover to a region; `accept_data_loss` as `--accept-data-loss`.
    Move {
        kind: RunKind,
        to: &'a str,
        accept_data_loss: bool,
    },
    Reprotect {
        region: &'a str,
    },
    /// To the plan's home region unless `to` says otherwise.
    Failback {
        to: Option<&'a str>,
    },
}

impl Request<'_> {
    pub fn kind(self) -> RunKind {
        match self {
            Request::Move { kind, .. } => kind,
            Request::Reprotect { .. } => RunKind::Reprotect,
            Request::Failback { .. } => RunKind::Failback,
        }
    }

    /// The body of `POST /api/v1/runs` that asks a daemon for this run (read back by
    /// [`StartRun`]).
    pub fn body(self, reason: &str) -> serde_json::Value {
        let mut body = serde_json::json!({"kind": self.kind().as_str(), "reason": reason});
        match self {
            Request::Move { to, accept_data_loss, .. } => {
                body["to"] = to.into();
                if accept_data_loss {
                    body["accept_data_loss"] = true.into();
                }
            }
            Request::Failback { to: Some(to) } => body["to"] = to.into(),
            Request::Reprotect { region } => body["region"] = region.into(),
            Request::Failback { to: None } => {}
        }
        body
    }
}

/// A request body refused before anything is done (the API answers 400 with both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyError {
    /// The field at fault (`to`, `kind`, …), when one is.
    pub field: Option<String>,
    pub message: String,
}

impl BodyError {
    fn field(name: &str, message: String) -> BodyError {
        BodyError { field: Some(name.into()), message: format!("invalid request body: {message}") }
    }
}

/// Parses a JSON body strictly; an error names the field it is about. An empty (or blank)
/// body is `{}`, so a POST without one still reads as "no fields".
pub fn read_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing or unknown field in its message, not in the path.
        let field = quoted_field(&message).or(if path == "." { None } else { Some(path) });
        BodyError { field, message: format!("invalid request body: {message}") }
    })
}

/// The field in messages like "missing field `to`" or "unknown field `too`".
fn quoted_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `").or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_string)
}

/// The body of `POST /api/v1/runs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    pub kind: RunKind,
    /// failover, switchover: the region that becomes primary; failback: instead of the home region.
    #[serde(default)]
    pub to: Option<String>,
    /// reprotect: the region to make a standby of the primary.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_reason")]
    pub reason: String,
    /// failover, switchover: move even to a target with older data (`--accept-data-loss`).
    #[serde(default)]
    pub accept_data_loss: bool,
}

fn default_reason() -> String {
    "requested through the API".into()
}

impl StartRun {
    /// The run asked for; a missing or misplaced region is refused naming its field.
    pub fn request(&self) -> Result<Request<'_>, BodyError> {
        let kind = self.kind.as_str();
        // Only a move chooses its target: a flag that would be ignored is refused, not dropped.
        if self.accept_data_loss && matches!(self.kind, RunKind::Reprotect | RunKind::Failback) {
            return Err(BodyError::field(
                "accept_data_loss",
                format!(
                    "a {kind} takes no field `accept_data_loss`: only a failover or switchover moves to a target it names"
                ),
            ));
        }
        match (self.kind, self.to.as_deref(), self.region.as_deref()) {
            (RunKind::Reprotect, None, Some(region)) => Ok(Request::Reprotect { region }),
            (RunKind::Reprotect, None, None) => Err(BodyError::field("region", "missing field `region`".into())),
            (RunKind::Reprotect, Some(_), _) => Err(BodyError::field(
                "to",
                "a reprotect takes no field `to`: the region follows the current primary; give `region`".into(),
            )),
            (_, _, Some(_)) => {
                Err(BodyError::field("region", format!("a {kind} takes no field `region`; `to` names the region")))
            }
            (RunKind::Failback, to, None) => Ok(Request::Failback { to }),
            (kind, Some(to), None) => Ok(Request::Move { kind, to, accept_data_loss: self.accept_data_loss }),
            (_, None, None) => Err(BodyError::field("to", "missing field `to`".into())),
        }
    }
}

/// The body of `POST /api/v1/runs/{id}/approve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// Who approves: the token's name is recorded; a different name here is refused, so
    /// nobody believes an approval was recorded under a name it was not.
    #[serde(default)]
    pub by: Option<String>,
}

/// The body of `POST /api/v1/runs/{id}/abort`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abort {
    pub reason: String,
    /// Set back what has an undo (a fence with no promotion after it, raised compute) first.
    #[serde(default)]
    pub undo: bool,
}

/// The body of `POST /api/v1/runs/{id}/resume`: anything JSON (it carries nothing yet).
pub type Resume = serde::de::IgnoredAny;

#[cfg(test)]
mod tests {
    use super::*;

    /// What `POST /api/v1/runs` answers a bad body, before anything is planned.
    fn start_error(json: &[u8]) -> BodyError {
        match read_body::<StartRun>(json) {
            Ok(start) => start.request().expect_err("the body is refused"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_bad_body_names_its_field() {
        assert_eq!(start_error(br#"{"kind": "failover"}"#).field.as_deref(), Some("to"));
        assert_eq!(start_error(br#"{"kind": "failover", "to": "west", "too": 1}"#).field.as_deref(), Some("too"));
        let e = start_error(br#"{"kind": "sideways", "to": "west"}"#);
        assert_eq!(e.field.as_deref(), Some("kind"));
        assert!(e.message.contains("unknown variant `sideways`"), "{}", e.message);
        assert_eq!(start_error(br#"{"kind": "failover", "to": 3}"#).field.as_deref(), Some("to"));
        assert!(start_error(b"{not json").message.starts_with("invalid request body: "));
        assert_eq!(read_body::<Abort>(b" ").unwrap_err().field.as_deref(), Some("reason"));
        assert!(read_body::<Resume>(b"").is_ok());
    }

    #[test]
    fn a_reprotect_names_its_region_and_a_failback_may_name_none() {
        assert_eq!(start_error(br#"{"kind": "reprotect"}"#).field.as_deref(), Some("region"));
        assert_eq!(
            start_error(br#"{"kind": "reprotect", "to": "west", "region": "east"}"#).field.as_deref(),
            Some("to")
        );
        let e = start_error(br#"{"kind": "switchover", "to": "west", "region": "east"}"#);
        assert_eq!(e.field.as_deref(), Some("region"));
        let e = start_error(br#"{"kind": "failback", "accept_data_loss": true}"#);
        assert_eq!(e.field.as_deref(), Some("accept_data_loss"));
        let read = |json: &[u8]| read_body::<StartRun>(json).unwrap();
        let start = read(br#"{"kind": "failover", "to": "west", "accept_data_loss": true}"#);
        assert!(matches!(start.request(), Ok(Request::Move { to: "west", accept_data_loss: true, .. })));
        assert_eq!(
            read(br#"{"kind": "reprotect", "region": "east"}"#).request(),
            Ok(Request::Reprotect { region: "east" })
        );
        assert_eq!(read(br#"{"kind": "failback"}"#).request(), Ok(Request::Failback { to: None }));
        assert_eq!(
            read(br#"{"kind": "failback", "to": "east"}"#).request(),
            Ok(Request::Failback { to: Some("east") })
        );
    }

    /// The CLI's body for a daemon reads back as the same request.
    #[test]
    fn a_request_sent_by_the_cli_reads_back_as_itself() {
        for request in [
            Request::Move { kind: RunKind::Failover, to: "west", accept_data_loss: true },
            Request::Move { kind: RunKind::Switchover, to: "west", accept_data_loss: false },
            Request::Reprotect { region: "east" },
            Request::Failback { to: None },
            Request::Failback { to: Some("east") },
        ] {
            let bytes = serde_json::to_vec(&request.body("because")).unwrap();
            let start: StartRun = read_body(&bytes).unwrap();
            assert_eq!((start.request(), start.reason.as_str()), (Ok(request), "because"));
        }
    }
}
