//! `http` (a step the plan defines): call a URL — a cache to warm, a queue to drain, a
//! team's own runbook automation. The run id, epoch and regions travel in `X-Drover-*`
//! headers and `Idempotency-Key` is `<run>/<step>`, so a receiver can tell a repeat.
//!
//! Without `observe`, nothing shows the call was made: it is made once per drive (again
//! after a crash between its intent and its outcome — at least once). With `observe`, the
//! step first asks the observe URL, and calls only while that does not answer "done".

use std::time::Duration;

use async_trait::async_trait;

use super::{Observation, Pace, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::{HttpAction, Plan, StepKind};
use crate::world::{HttpAnswer, HttpRequest};

pub struct Http<'p> {
    pub name: &'p str,
    pub action: &'p HttpAction,
}

impl Http<'_> {
    fn request(&self, cx: &StepCx<'_>, method: &str, url: &crate::secret::SecretText) -> HttpRequest {
        let h = cx.header;
        let mut headers: Vec<(String, crate::secret::SecretText)> =
            self.action.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let plain = |v: String| crate::secret::SecretText::Plain(v);
        headers.push(("X-Drover-Run".into(), plain(h.id.0.clone())));
        headers.push(("X-Drover-Epoch".into(), plain(h.epoch.to_string())));
        headers.push(("X-Drover-From".into(), plain(h.from.clone())));
        headers.push(("X-Drover-To".into(), plain(h.to.clone())));
        headers.push(("X-Drover-Step".into(), plain(self.name.to_owned())));
        headers.push(("Idempotency-Key".into(), plain(format!("{}/{}", h.id, self.name))));
        let body = if method == "GET" { None } else { self.action.body.clone() };
        HttpRequest { method: method.to_owned(), url: url.clone(), headers, body, timeout: self.action.timeout }
    }

    /// The answer's status, and the start of its body when it has one.
    fn said(answer: &HttpAnswer) -> String {
        match answer.body.trim() {
            "" => format!("answered {}", answer.status),
            body => format!("answered {}: {body}", answer.status),
        }
    }
}

#[async_trait]
impl Step for Http<'_> {
    fn kind(&self) -> StepKind {
        StepKind::custom(self.name)
    }

    /// One call or command may take the step's own `timeout`.
    fn waits(&self, _plan: &Plan) -> Duration {
        self.action.timeout
    }

    fn answers_from(&self, _cx: &StepCx<'_>) -> String {
        format!("the receiver of step {} (its url and observe.url)", self.name)
    }

    fn pace(&self) -> Pace {
        if self.action.observe.is_some() { Pace::Act } else { Pace::Once }
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let Some(observe) = &self.action.observe else {
            return Ok(Observation::Needed("nothing in the world shows this call was made".into()));
        };
        let answer = cx.world.hooks.http(&self.request(cx, "GET", &observe.url)).await?;
        let said = format!("{}: observe {}", self.name, Http::said(&answer));
        Ok(if observe.expect_status.contains(&answer.status) {
            Observation::Done(said)
        } else {
            Observation::Needed(said)
        })
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        let answer = cx.world.hooks.http(&self.request(cx, &self.action.method, &self.action.url)).await?;
        let expected = match self.action.expect_status.as_slice() {
            [] => (200..300).contains(&answer.status),
            codes => codes.contains(&answer.status),
        };
        let said = format!("{} {} {}", self.name, self.action.method, Http::said(&answer));
        if expected {
            return Ok(Some(said));
        }
        // An overloaded or restarting receiver may take it later; anything else is an answer.
        let message = format!("{said} (expected {})", expected_text(&self.action.expect_status));
        Err(if unavailable(answer.status) {
            ProviderError::transient(message)
        } else {
            ProviderError::permanent(message)
        })
    }
}

/// A receiver that is overloaded, restarting or timed out: ask again later.
fn unavailable(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

fn expected_text(codes: &[u16]) -> String {
    match codes {
        [] => "a 2xx status".into(),
        codes => codes.iter().map(u16::to_string).collect::<Vec<_>>().join(" or "),
    }
}
