//! The plan's own steps behind `drover_core::world::Hooks`: an `http` step's request
//! through reqwest, an `exec` step's command as a child process in its own process group.
//! Secret values (a URL with its token, an Authorization header, a variable) never reach
//! an error or the journal: anything echoed back is redacted before it is kept.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::secret::{Secret, SecretRef, SecretSource, SecretText};
use drover_core::world::{CommandExit, CommandLine, Hooks, HttpAnswer, HttpRequest};
use tokio::io::AsyncReadExt;

use crate::errors::{chain, describe_io, hide, io_cause};
use crate::notify::one_line;

/// How much of an answer or of a command's output is kept for the journal.
const KEEP: usize = 300;
/// How much is read: more than is kept, so an echoed secret is redacted whole before the cut.
const READ: usize = 16 << 10;
/// How long a command's output is read after it exited: what it left running in the
/// background may hold the pipes open, and is not waited for.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);
/// How long an `http` step may take to connect, whatever its own (total) `timeout`: a
/// receiver's TCP and TLS handshakes take milliseconds, so a connection not made in this
/// goes nowhere; the step's `timeout` still bounds the whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `http` and `exec` steps with the secrets the plan's steps reference, resolved
/// once when drover starts (the adapter reads no environment variable or file itself).
pub struct HookRunner {
    secrets: BTreeMap<SecretRef, Secret>,
    /// Built at the first `http` step: a plan without one needs no client, no TLS provider.
    client: OnceLock<Option<reqwest::Client>>,
}

impl HookRunner {
    /// `references`: every secret the plan's steps use; each is resolved now, so a missing
    /// one is found when drover starts, not half way through a failover.
    pub fn new<'a>(
        references: impl IntoIterator<Item = &'a SecretRef>,
        secrets: &dyn SecretSource,
    ) -> Result<HookRunner, String> {
        let mut resolved = BTreeMap::new();
        for reference in references {
            resolved.insert(reference.clone(), secrets.resolve(reference)?);
        }
        Ok(HookRunner { secrets: resolved, client: OnceLock::new() })
    }

    /// The HTTP client; None when none can be built (no rustls crypto provider installed,
    /// which makes reqwest panic rather than fail).
    fn client(&self) -> Option<&reqwest::Client> {
        self.client
            .get_or_init(|| {
                let client = reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")));
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.build())).ok().and_then(Result::ok)
            })
            .as_ref()
    }

    fn value(&self, text: &SecretText) -> Result<Secret, ProviderError> {
        text.resolve(self).map_err(ProviderError::permanent)
    }

    /// Every secret value this call carries, to be cut out of whatever comes back.
    fn hide(&self, texts: &[&SecretText], said: &str) -> String {
        let values = texts.iter().filter_map(|text| match text {
            SecretText::Secret(reference) => self.secrets.get(reference).map(Secret::expose),
            SecretText::Plain(_) => None,
        });
        hide(said, values)
    }
}

impl SecretSource for HookRunner {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        self.secrets.get(reference).cloned().ok_or_else(|| format!("{reference} was not resolved when drover started"))
    }
}

#[async_trait]
impl Hooks for HookRunner {
    async fn http(&self, request: &HttpRequest) -> Result<HttpAnswer, ProviderError> {
        let client = self.client().ok_or_else(|| {
            ProviderError::permanent("http step: no HTTP client (no rustls crypto provider installed)")
        })?;
        let url = self.value(&request.url)?;
        // Shown in messages only when the plan wrote it: a referenced URL may hold a token.
        let shown = match &request.url {
            SecretText::Plain(url) => url.clone(),
            SecretText::Secret(reference) => format!("the URL in {reference}"),
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| ProviderError::permanent(format!("http step: '{}' is not an HTTP method", request.method)))?;
        let mut call = client.request(method, url.expose()).timeout(request.timeout);
        for (name, value) in &request.headers {
            call = call.header(name.as_str(), self.value(value)?.expose());
        }
        if let Some(body) = &request.body {
            call = call.body(body.clone());
        }
        let mut texts: Vec<&SecretText> = request.headers.iter().map(|(_, v)| v).collect();
        texts.push(&request.url);
        let answer = call.send().await.map_err(|e| {
            let e = e.without_url();
            let why = if e.is_timeout() {
                format!("no answer within {}", drover_core::duration::format_duration(request.timeout))
            } else if let Some(io) = io_cause(&e) {
                describe_io(io)
            } else {
                chain(&e)
            };
            let error = ProviderError::transient(self.hide(&texts, &format!("{} {shown}: {why}", request.method)));
            // reqwest's error (its URL dropped) is kept as the source, unless its text or debug
            // form holds one of the call's secrets: redaction cannot reach inside it.
            let (text, debug) = (chain(&e), format!("{e:?}"));
            if self.hide(&texts, &text) == text && self.hide(&texts, &debug) == debug {
                error.with_source(e)
            } else {
                error
            }
        })?;
        let status = answer.status().as_u16();
        let mut body = Vec::new();
        let mut stream = answer;
        while body.len() < READ {
            match stream.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let body = self.hide(&texts, &String::from_utf8_lossy(&body));
        Ok(HttpAnswer { status, body: one_line(&body, KEEP) })
    }

    async fn exec(&self, command: &CommandLine) -> Result<CommandExit, ProviderError> {
        let (program, args) =
            command.argv.split_first().ok_or_else(|| ProviderError::permanent("exec step: the command is empty"))?;
        let mut child = tokio::process::Command::new(program);
        child.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // PATH to find programs; SSH_AUTH_SOCK (a socket's path, no secret) so that a host
        // prefix through ssh can use the agent, as `host.exec` prefixes do.
        for name in ["PATH", "SSH_AUTH_SOCK"] {
            if let Some(value) = std::env::var_os(name) {
                child.env(name, value);
            }
        }
        for (name, value) in &command.env {
            child.env(name, self.value(value)?.expose());
        }
        // Its own process group: a timeout kills the command and everything it started.
        child.process_group(0).kill_on_drop(true);
        let mut child = child.spawn().map_err(|e| {
            ProviderError::permanent(format!("exec step: cannot run {program}: {}", describe_io(&e))).with_source(e)
        })?;
        let pid = child.id();
        let (out, err) =
            (Output::read(child.stdout.take().expect("piped")), Output::read(child.stderr.take().expect("piped")));
        let texts: Vec<&SecretText> = command.env.iter().map(|(_, v)| v).collect();
        // The command's own end is what counts: something it left running in the background
        // may hold its output open long after it exited.
        let status = match tokio::time::timeout(command.timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| {
                ProviderError::transient(format!("exec step: waiting for {program}: {}", describe_io(&e)))
                    .with_source(e)
            })?,
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                out.stop();
                err.stop();
                return Err(ProviderError::transient(format!(
                    "exec step: {program} still ran after {}; it was killed with everything it started",
                    drover_core::duration::format_duration(command.timeout)
                )));
            }
        };
        let (stdout, stderr) = (out.drained().await, err.drained().await);
        // What it said about itself: stderr, or stdout when stderr is empty.
        let said = if stderr.iter().any(|b| !b.is_ascii_whitespace()) { stderr } else { stdout };
        let said = self.hide(&texts, &String::from_utf8_lossy(&said));
        Ok(CommandExit { code: status.code(), output: tail(&one_line(&said, READ), KEEP) })
    }
}

/// The end of what a command writes to one pipe, read as it comes.
struct Output {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Output {
    /// Reads `pipe` to its end (a command blocked on a full pipe would never exit), keeping
    /// only its last `READ` bytes: a failing command says why at its end.
    fn read(mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Output {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = kept.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                let mut kept = sink.lock().unwrap();
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * READ {
                    let cut = kept.len() - READ;
                    kept.drain(..cut);
                }
            }
        });
        Output { kept, reader }
    }

    /// What was written, once the pipe closes or `OUTPUT_GRACE` after the command exited:
    /// something it left in the background may hold the pipe open.
    async fn drained(mut self) -> Vec<u8> {
        let _ = tokio::time::timeout(OUTPUT_GRACE, &mut self.reader).await;
        self.stop();
        std::mem::take(&mut *self.kept.lock().unwrap())
    }

    fn stop(&self) {
        self.reader.abort();
    }
}

/// SIGKILL to the command's process group (its pid is the group id: `process_group(0)`).
fn kill_group(pid: u32) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
}

/// The last `limit` characters: a failing command says why at its end.
fn tail(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        text.to_owned()
    } else {
        format!("…{}", text.chars().skip(count - limit).collect::<String>())
    }
}
