//! The run commands against a running `drover serve` (`--server URL`): the daemon
//! owns the journal and the world; the CLI only asks, so the two never fight.

use std::path::PathBuf;
use std::time::Duration;

use drover_core::StoreError;
use drover_core::history::{PageRequest, RunsPage};
use drover_core::run::{RunState, RunSummary};
use serde_json::{Value, json};

use crate::app::error::{ErrorClass, Failure, store_failure};
use crate::app::runs::Request;
use crate::app::store::{EtcdArgs, PlanArgs};
use crate::commands::table::{Align, Table};
use crate::commands::terminal::{UndoChoice, aborted_line, confirm, intro_line, outcome, question_through, render_run};
use crate::commands::{Output, print_json};

/// Where a command acts: here (plan file, local journal) or through a daemon.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// The plan file (YAML); see docs/plan.md. Not needed with --server.
    #[arg(long, short = 'p', value_name = "PLAN", required_unless_present = "server")]
    pub plan: Option<PathBuf>,
    /// Where the journal lives [default: .drover/ beside the plan file].
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    pub state: Option<PathBuf>,
    /// Keep the journal and epoch in etcd: etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix default /drover),
    /// or etcds://... for members that serve TLS (then give --etcd-ca).
    #[arg(long, value_name = "URL", conflicts_with_all = ["server", "state"])]
    pub store: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Ask a running 'drover serve' instead (e.g. https://10.0.0.11:7070, or http://127.0.0.1:7070
    /// on the same machine): it owns the journal and runs the steps; this command shows them.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With an https:// --server: the CA that signed the daemon's certificate (PEM); without it,
    /// the system's trusted roots.
    #[arg(long, value_name = "FILE", env = "DROVER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding your token for the daemon (the token alone, or your NAME ROLE TOKEN line of
    /// the daemon's --token-file): with --server, needed for reads and changes; unused without --server.
    // Not `requires = "server"`: clap counts a value from the environment as given, so a
    // DROVER_TOKEN_FILE exported for daemon work would break every local command.
    #[arg(long, value_name = "FILE", env = "DROVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

pub enum Target {
    Local(PlanArgs),
    Remote(Remote),
}

impl TargetArgs {
    pub fn target(&self) -> Result<Target, Failure> {
        match (&self.server, &self.plan) {
            (Some(server), _) => {
                Remote::new(server, self.token_file.as_deref(), self.ca_file.as_deref()).map(Target::Remote)
            }
            (None, Some(plan)) => Ok(Target::Local(PlanArgs {
                plan: plan.clone(),
                state: self.state.clone(),
                store: self.store.clone(),
                etcd: self.etcd.clone(),
            })),
            (None, None) => Err(Failure::input("give --plan PLAN (or --server URL for a running daemon)")),
        }
    }
}

/// The token in the CLI's `--token-file`: the token alone, or one `NAME ROLE TOKEN` line
/// copied from a daemon's file. A file of several entries is refused rather than sent
/// whole (it would be no one's token, and would show every one of them to the daemon).
fn own_token(path: &std::path::Path) -> Result<String, Failure> {
    let text = crate::serve::tokens::read_token_file(path)?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let fields: Vec<&str> = match lines.as_slice() {
        [line] => line.split_whitespace().collect(),
        [] => return Err(Failure::input(format!("--token-file {}: the file is empty", path.display()))),
        _ => {
            return Err(Failure::input(format!(
                "--token-file {}: holds {} entries; the CLI's file holds your own token alone (or your one line of the daemon's file)",
                path.display(),
                lines.len()
            )));
        }
    };
    match fields.as_slice() {
        [token] | [_, _, token] => Ok((*token).to_string()),
        _ => Err(Failure::input(format!(
            "--token-file {}: expected the token alone, or NAME ROLE TOKEN on one line",
            path.display()
        ))),
    }
}

/// How long an abort with undo may take through a daemon: a lifted RDS fence is waited for.
const UNDO_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    fn new(
        server: &str,
        token_file: Option<&std::path::Path>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Remote, Failure> {
        crate::app::daemon_client::check_url("--server", server)?;
        let token = token_file.map(own_token).transpose()?;
        let http = crate::app::daemon_client::build(ca_file, None, Duration::from_secs(2), Duration::from_secs(30))?;
        Ok(Remote { base: server.trim_end_matches('/').to_string(), token, http })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            let refused = crate::app::daemon_client::certificate_refused(&e);
            let why = crate::app::daemon_client::describe(e);
            match refused {
                // Not the daemon's fault and not the network's: this command's trust settings.
                true => Failure::input(format!(
                    "the daemon at {} presented a certificate this command does not trust ({why}): \
                     give --ca-file with the CA that signed its --tls-cert",
                    self.base
                )),
                false => Failure::failed(format!("cannot reach the daemon at {}: {why}", self.base)),
            }
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {status}"));
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED { " (give --token-file)" } else { "" };
        // A refusal or bad input changed nothing: exit 2, like the local commands.
        let class = ErrorClass::of_http_status(status.as_u16());
        Err(if status.is_client_error() {
            Failure::new(class, format!("{message}{hint}"))
        } else {
            Failure::new(class, format!("the daemon at {} answered {status}: {message}", self.base))
        })
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn run(&self, id: &str) -> Result<RunSummary, Failure> {
        serde_json::from_value(self.get(&format!("/api/v1/runs/{id}")).await?)
            .map_err(|e| Failure::failed(format!("the daemon's answer for run {id} is not a run: {e}")))
    }

    /// Prints each step as the daemon finishes it, until the run stops moving.
    async fn follow(&self, id: &str) -> Result<RunSummary, Failure> {
        let mut shown = 0;
        loop {
            let run = self.run(id).await?;
            shown = print_new_steps(&run, shown);
            if run.state != RunState::Running {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn status(&self, output: Output) -> Result<(), Failure> {
        let regions = self.get("/api/v1/regions").await?;
        match output {
            Output::Json => print_json(&regions),
            Output::Text => print!("{}", render_regions(&regions)),
        }
        Ok(())
    }

    /// One page of the daemon's runs.
    pub async fn runs(&self, request: &PageRequest) -> Result<RunsPage, Failure> {
        let mut path = format!("/api/v1/runs?limit={}", request.limit);
        if let Some(before) = &request.before {
            // Run ids are letters, digits and '-': anything else is no run, and would not
            // survive a query string unescaped.
            if !before.0.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(store_failure(StoreError::UnknownRun(before.0.clone())));
            }
            path.push_str(&format!("&before={}", before.0));
        }
        serde_json::from_value(self.get(&path).await?)
            .map_err(|e| Failure::failed(format!("the daemon's runs are not a page of runs: {e}")))
    }

    /// A page of the daemon's drill history (`GET /api/v1/drills`).
    pub async fn drills(&self, request: &PageRequest) -> Result<crate::app::drills::DrillRows, Failure> {
        let mut path = format!("/api/v1/drills?limit={}", request.limit);
        if let Some(before) = &request.before {
            // Drill ids are letters, digits and '-', as run ids are.
            if !before.0.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(store_failure(StoreError::UnknownDrill(before.0.clone())));
            }
            path.push_str(&format!("&before={}", before.0));
        }
        serde_json::from_value(self.get(&path).await?)
            .map_err(|e| Failure::failed(format!("the daemon's drills are not a page of drills: {e}")))
    }

    /// One drill as the daemon's journal holds it (`GET /api/v1/drills/{id}`).
    pub async fn drill(&self, id: &str) -> Result<drover_core::drill_log::DrillSummary, Failure> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(store_failure(StoreError::UnknownDrill(id.into())));
        }
        serde_json::from_value(self.get(&format!("/api/v1/drills/{id}")).await?)
            .map_err(|e| Failure::failed(format!("the daemon's answer for drill {id} is not a drill: {e}")))
    }

    pub async fn show(&self, id: &str, output: Output) -> Result<(), Failure> {
        let run = self.run(id).await?;
        match output {
            Output::Json => print_json(&run),
            Output::Text => print!("{}", render_run(&run)),
        }
        Ok(())
    }

    /// Asks the daemon to start the run, then follows it step by step.
    pub async fn start(&self, request: Request<'_>, reason: &str, yes: bool) -> Result<(), Failure> {
        if !yes {
            confirm(&question_through(request, &self.base))?;
        }
        let started = self.post("/api/v1/runs", request.body(reason)).await?;
        let id = started["run"].as_str().unwrap_or_default().to_string();
        let (from, to) = (started["from"].as_str().unwrap_or("?"), started["to"].as_str().unwrap_or("?"));
        let driven = format!("run {id}, driven by the daemon at {}", self.base);
        println!("{}", intro_line(request.kind(), from, to, &started["epoch"], &driven));
        outcome(&self.follow(&id).await?)
    }

    /// `resume` or `approve`: the daemon drives the run; this follows it.
    pub async fn drive(&self, id: &str, action: &str, body: Value) -> Result<(), Failure> {
        self.post(&format!("/api/v1/runs/{id}/{action}"), body).await?;
        println!("run {id}: {action} accepted by the daemon at {}", self.base);
        outcome(&self.follow(id).await?)
    }

    pub async fn abort(&self, id: &str, reason: &str, choice: UndoChoice) -> Result<(), Failure> {
        let run: RunSummary = serde_json::from_value(self.get(&format!("/api/v1/runs/{id}")).await?).map_err(|e| {
            Failure::failed(format!("the daemon at {} answered a run drover cannot read: {e}", self.base))
        })?;
        let undo = choice.decide(&run)?;
        let url = format!("{}/api/v1/runs/{id}/abort", self.base);
        // An undo waits for the world (an RDS parameter group in sync takes minutes): the
        // daemon's answer comes when it is done, not within the usual 30 s.
        let request = self.http.post(url).json(&json!({"reason": reason, "undo": undo})).timeout(UNDO_TIMEOUT);
        let aborted = self.call(request).await?;
        let aborted: RunSummary = serde_json::from_value(aborted).map_err(|e| {
            Failure::failed(format!("the daemon at {} answered a run drover cannot read: {e}", self.base))
        })?;
        println!("{}", aborted_line(&aborted, reason));
        Ok(())
    }
}

/// Prints the steps finished since `shown`; returns how many are shown now.
pub fn print_new_steps(run: &RunSummary, mut shown: usize) -> usize {
    for step in run.steps.iter().skip(shown).take_while(|s| s.state.is_done()) {
        println!("  {} {}: {}", step.kind.as_str(), step.state.as_str(), step.detail.as_deref().unwrap_or(""));
        shown += 1;
    }
    shown
}

/// The daemon's view, one line per region: its verdict by quorum, its database, its checks.
fn render_regions(v: &Value) -> String {
    let mut out = format!(
        "vantage {} (heard from: {})\n",
        v["vantage"].as_str().unwrap_or("?"),
        v["vantages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let fresh = if x["fresh"] == true { "" } else { " (stale)" };
                        format!("{}{fresh}", x["vantage"].as_str().unwrap_or("?"))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    );
    let mut table = Table::new(&[
        ("REGION", Align::Left),
        ("ROLE", Align::Left),
        ("VERDICT", Align::Left),
        ("DATABASE", Align::Left),
        ("CHECKS", Align::Left),
    ]);
    for r in v["regions"].as_array().into_iter().flatten() {
        let verdict = match r["verdict"].as_object() {
            Some(verdict) => format!(
                "{} (down {}/{} needed)",
                verdict["verdict"].as_str().unwrap_or("?"),
                verdict["down_votes"].as_array().map_or(0, Vec::len),
                verdict["quorum"]
            ),
            None => "-".into(),
        };
        let checks: Vec<String> = r["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} {}", c["check"].as_str().unwrap_or("?"), c["health"].as_str().unwrap_or("?")))
            .collect();
        table.row(vec![
            r["region"].as_str().unwrap_or("?").into(),
            r["role"].as_str().unwrap_or("?").into(),
            verdict,
            r["database"]["role"].as_str().unwrap_or("-").into(),
            if checks.is_empty() { "-".into() } else { checks.join(", ") },
        ]);
    }
    out.push_str(&table.render());
    if let Some(refusal) = v["last_refusal"].as_object() {
        out.push_str(&format!(
            "last refusal ({}): {}\n",
            refusal["gate"].as_str().unwrap_or("?"),
            refusal["reason"].as_str().unwrap_or("")
        ));
    }
    out
}
