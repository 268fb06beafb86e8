//! `rejoin()`: turn an old primary into a streaming standby of the new one,
//! with `pg_ctl` and `pg_rewind` run on the member's host through its exec prefix.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use drover_core::error::ProviderError;
use drover_core::plan::MemberHost;
use drover_core::secret::Secret;
use drover_core::world::MemberStatus;

use super::{Member, PostgresDatabase};
use drover_core::duration::format_duration;

/// Any one command on the member's host (pg_rewind copies data: give it time).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

impl PostgresDatabase {
    /// Idempotent: a member already streaming from `new` is left alone; otherwise
    /// stop (if running), rewind (pg_rewind says when nothing is needed), mark as
    /// standby, start, and wait until it is in recovery.
    pub(super) async fn rejoin_member(&self, old: &Member, new: &Member) -> Result<(), ProviderError> {
        let region = old.region.as_str();
        if old.region == new.region {
            return Err(ProviderError::permanent(format!(
                "{region} database: rejoin refused: a member cannot follow itself — the old and new primary are the same region"
            )));
        }
        let Some(host) = &old.host else {
            return Err(ProviderError::permanent(format!(
                "{region} database: rejoin refused: no host is configured for this member, so drover cannot \
                 stop, rewind and start it — add `host` (exec, data_dir) to the member in the plan, or run \
                 pg_rewind by hand"
            )));
        };
        if let MemberStatus::Standby { upstream: Some(up), .. } = self.status(old).await?
            && Some(&up) == new.host_name().as_ref()
        {
            return self.restore_synchronous(new).await;
        }
        match self.status(new).await? {
            MemberStatus::Primary { .. } => {}
            other => {
                return Err(ProviderError::transient(format!(
                    "{region} database: rejoin failed: {} is {}, not a primary it can follow — promote it first; \
                     run 'drover status'",
                    new.region,
                    other.role_str()
                )));
            }
        }
        let shell = HostShell { member: old, host, new_primary_dsn: &new.dsn };
        let data_dir = host.data_dir.display().to_string();
        let pg_ctl = host.bin_dir.join("pg_ctl").display().to_string();

        // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
        let status = shell.run("check the server", &[&pg_ctl, "status", "-D", &data_dir]).await?;
        match status.code {
            Some(0) => {
                let stop = [pg_ctl.as_str(), "-D", &data_dir, "stop", "-m", "fast", "-w", "-t", "120"];
                shell.run("stop the server", &stop).await?.require(region, "stop the server")?;
            }
            Some(3) => {}
            Some(4) => return Err(status.failure(region, "check the server", "is data_dir right in the plan?")),
            // Anything else is the way there (ssh exits 255 when it cannot connect): worth retrying.
            _ => {
                let e = status.failure(region, "check the server", "is the member's host reachable?");
                return Err(ProviderError::transient(e.message));
            }
        }

        // A freshly promoted primary's control file names its new timeline only after a
        // checkpoint; without one pg_rewind sees "the same timeline" and skips a needed rewind.
        let checkpoint = async {
            let client = new.connect().await?;
            new.timed(client.batch_execute("CHECKPOINT")).await
        };
        checkpoint.await.map_err(|f| {
            f.into_error(
                region,
                "rejoin",
                &format!("{} must accept a CHECKPOINT from drover's role (superuser or pg_checkpoint)", new.region),
            )
        })?;

        let rewind = host.bin_dir.join("pg_rewind").display().to_string();
        let target = format!("--target-pgdata={data_dir}");
        let source = format!("--source-server={}", new.dsn.expose());
        let out = shell.run("rewind", &[&rewind, &target, &source, "--write-recovery-conf"]).await?;
        if out.code != Some(0) {
            let hint = if out.text.contains("wal_log_hints") || out.text.contains("checksums") {
                "pg_rewind needs wal_log_hints = on or data checksums on the old primary; enable one and retry"
            } else {
                "check pg_rewind's message above; the old primary may need a fresh pg_basebackup"
            };
            return Err(out.failure(region, "pg_rewind", hint));
        }

        // pg_rewind --write-recovery-conf writes both; make sure, whatever it decided.
        let signal = Path::new(&data_dir).join("standby.signal").display().to_string();
        shell.run("create standby.signal", &["touch", &signal]).await?.require(region, "create standby.signal")?;
        let auto_conf = Path::new(&data_dir).join("postgresql.auto.conf").display().to_string();
        let grep = shell.run("check primary_conninfo", &["grep", "-q", "^primary_conninfo", &auto_conf]).await?;
        if grep.code != Some(0) {
            return Err(ProviderError::permanent(format!(
                "{region} database: rejoin failed: pg_rewind left no primary_conninfo in {auto_conf} — \
                 set it to reach {} and retry",
                new.region
            )));
        }

        let log = Path::new(&data_dir).join("log").display().to_string();
        let start = [pg_ctl.as_str(), "-D", &data_dir, "-l", &log, "start", "-w", "-t", "120"];
        shell.run("start the server", &start).await?.require(region, "start the server")?;
        tracing::info!(region, primary = %new.region, "old primary restarted as a standby");
        self.wait_in_recovery(old).await?;
        self.restore_synchronous(new).await
    }

    /// In a synchronous plan, the new primary waits for a standby again once one follows it.
    async fn restore_synchronous(&self, primary: &Member) -> Result<(), ProviderError> {
        if !self.synchronous {
            return Ok(());
        }
        let fail = |f: super::PgFailure| {
            f.into_error(&primary.region, "restore synchronous replication", "run 'drover status'")
        };
        let client = primary.connect().await.map_err(fail)?;
        primary.timed(client.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")).await.map_err(fail)?;
        primary.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)
    }

    async fn wait_in_recovery(&self, m: &Member) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + self.promote_timeout;
        loop {
            let seen = self.status(m).await?;
            if let MemberStatus::Standby { .. } = seen {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::transient(format!(
                    "{} database: rejoin failed: started, but still {} after {} — see the server log in its data \
                     directory ('log')",
                    m.region,
                    seen.role_str(),
                    format_duration(self.promote_timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs argv on a member's host: `exec` prefix + argv. Output is redacted before anyone sees it.
struct HostShell<'a> {
    member: &'a Member,
    host: &'a MemberHost,
    new_primary_dsn: &'a Secret,
}

struct Output {
    code: Option<i32>,
    /// stdout then stderr, secrets removed.
    text: String,
}

impl HostShell<'_> {
    async fn run(&self, what: &str, argv: &[&str]) -> Result<Output, ProviderError> {
        let region = &self.member.region;
        let mut full = self.host.exec.iter().map(String::as_str).chain(argv.iter().copied());
        let program = full.next().unwrap_or_default();
        let mut command = tokio::process::Command::new(program);
        command
            .args(full)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(ProviderError::permanent(format!(
                    "{region} database: rejoin failed: cannot run '{program}' to {what}: {e} — check the member's host exec prefix"
                )));
            }
            Err(_) => {
                return Err(ProviderError::transient(format!(
                    "{region} database: rejoin failed: {what} did not finish within {}",
                    format_duration(COMMAND_TIMEOUT)
                )));
            }
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let text = super::redact(&self.member.redact(&text), self.new_primary_dsn);
        Ok(Output { code: output.status.code(), text: text.trim().to_string() })
    }
}

impl Output {
    fn require(self, region: &str, what: &str) -> Result<Output, ProviderError> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(self.failure(region, what, "check the server log in its data directory"))
        }
    }

    fn failure(&self, region: &str, what: &str, next: &str) -> ProviderError {
        // The last lines say why; the whole output can be long.
        let lines: Vec<&str> = self.text.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        let code = self.code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
        ProviderError::permanent(format!("{region} database: rejoin failed: {what} ended with {code}: {tail} — {next}"))
    }
}
