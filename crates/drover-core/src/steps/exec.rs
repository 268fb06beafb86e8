//! `exec` (a step the plan defines): run a command in a region — on the host the plan's
//! `host` prefix reaches (`[ssh, ops@app-east]`), or where drover runs. argv, never a
//! shell string. The command gets `DROVER_RUN`, `DROVER_EPOCH`, `DROVER_FROM`,
//! `DROVER_TO` and `DROVER_STEP`, the plan's `env`, and `PATH` — nothing else of drover's
//! environment, which holds its secrets.
//!
//! Without `observe`, the command runs once per drive (again after a crash between its
//! intent and its outcome — at least once). With `observe`, that command runs first, and
//! the step's command only while the observe command does not exit 0.

use std::time::Duration;

use async_trait::async_trait;

use super::{Observation, Pace, Step, StepCx};
use crate::error::ProviderError;
use crate::plan::{ExecAction, Plan, RunSide, StepKind};
use crate::run::RunHeader;
use crate::secret::SecretText;
use crate::world::{CommandExit, CommandLine};

pub struct Exec<'p> {
    pub name: &'p str,
    pub action: &'p ExecAction,
}

impl Exec<'_> {
    fn command(&self, cx: &StepCx<'_>, words: &[String]) -> CommandLine {
        let h = cx.header;
        let region = self.acts_on(h);
        let mut argv: Vec<String> = self.action.host.get(region).cloned().unwrap_or_default();
        argv.extend(words.iter().cloned());
        let plain = |v: &str| SecretText::Plain(v.to_owned());
        let mut env: Vec<(String, SecretText)> = vec![
            ("DROVER_RUN".into(), plain(&h.id.0)),
            ("DROVER_EPOCH".into(), plain(&h.epoch.to_string())),
            ("DROVER_FROM".into(), plain(&h.from)),
            ("DROVER_TO".into(), plain(&h.to)),
            ("DROVER_STEP".into(), plain(self.name)),
        ];
        env.extend(self.action.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        CommandLine { argv, env, timeout: self.action.timeout }
    }

    /// `exited 3: <the end of its output>`.
    fn said(exit: &CommandExit) -> String {
        let how = match exit.code {
            Some(code) => format!("exited {code}"),
            None => "was killed by a signal".into(),
        };
        match exit.output.trim() {
            "" => how,
            output => format!("{how}: {output}"),
        }
    }
}

#[async_trait]
impl Step for Exec<'_> {
    fn kind(&self) -> StepKind {
        StepKind::custom(self.name)
    }

    fn acts_on<'h>(&self, header: &'h RunHeader) -> &'h str {
        match self.action.on {
            RunSide::To => &header.to,
            RunSide::From => &header.from,
        }
    }

    /// One call or command may take the step's own `timeout`.
    fn waits(&self, _plan: &Plan) -> Duration {
        self.action.timeout
    }

    fn answers_from(&self, _cx: &StepCx<'_>) -> String {
        format!("the command of step {} (`{}`)", self.name, self.action.argv.join(" "))
    }

    fn pace(&self) -> Pace {
        if self.action.observe.is_some() { Pace::Act } else { Pace::Once }
    }

    fn acts_again(&self) -> bool {
        false
    }

    /// "Not done" only from an observe command that ran and said so (exit 1–125): one
    /// that could not run (126, 127), whose host prefix could not reach the host (ssh's
    /// 255), or that was killed, tells nothing — an error, never a reason to act again.
    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let Some(observe) = &self.action.observe else {
            return Ok(Observation::Needed("nothing in the world shows this command ran".into()));
        };
        let exit = cx.world.hooks.exec(&self.command(cx, observe)).await?;
        let said = format!("{}: observe {}", self.name, Exec::said(&exit));
        match exit.code {
            Some(0) => Ok(Observation::Done(said)),
            Some(1..=125) => Ok(Observation::Needed(said)),
            Some(126 | 127) => Err(ProviderError::permanent(format!("{said}: the observe command cannot be run"))),
            _ => Err(ProviderError::transient(format!("{said}: cannot tell whether the command ran"))),
        }
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        // A run another has overtaken acts no more, here as in promote and switch.
        cx.not_stale().await?;
        let exit = cx.world.hooks.exec(&self.command(cx, &self.action.argv)).await?;
        let said = format!("{} {}", self.name, Exec::said(&exit));
        if exit.code == Some(0) {
            Ok(Some(said))
        } else {
            // A command that failed said so itself: a person reads why and resumes.
            Err(ProviderError::permanent(said))
        }
    }
}
