//! `rejoin()`: turn an old primary — or a member whose server or data is gone — into a
//! streaming standby of the new primary, with `pg_ctl`, `pg_rewind` and `pg_basebackup`
//! run on the member's host through its exec prefix.
//!
//! pg_rewind when it can; a fresh base backup when it cannot: the data directory is missing
//! or unusable, or pg_rewind finds no common ancestor, misses WAL it needs, or the old
//! primary ran without data checksums or `wal_log_hints`. The old data directory is moved
//! aside (`<data_dir>.drover-<ms>`), never deleted. The new primary's password reaches
//! pg_rewind and pg_basebackup as `PGPASSWORD`, never on a command line.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use drover_core::clock::now_ms;
use drover_core::error::ProviderError;
use drover_core::plan::MemberHost;
use drover_core::world::{HostAccess, MemberStatus, RejoinMethod};

use super::{Member, PostgresDatabase};
use drover_core::duration::format_duration;

/// Any one command on the member's host (pg_rewind copies data: give it time).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// A base backup copies the whole database.
const BASE_BACKUP_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Looking at a host (`pg_ctl status`, `pg_isready`) before anything changes.
const LOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a start that fails at once is tried again: a postmaster killed a moment ago
/// leaves its socket lock file, and processes holding it, for a little while.
const START_WINDOW: Duration = Duration::from_secs(30);

/// pg_rewind's words for the failures a fresh base backup fixes: no common ancestor, WAL
/// it needs is gone, a target without checksums or wal_log_hints, a damaged data directory,
/// a target whose crash recovery fails (e.g. a copy an interrupted rejoin never started).
const REWIND_IMPOSSIBLE: [&str; 6] = [
    "could not find common ancestor",
    "wal_log_hints",
    "could not find previous WAL record",
    "could not read WAL record",
    "could not open file",
    "single-user mode in target cluster failed",
];

/// The member's own configuration, kept across a base backup (the copy brings the primary's).
const MEMBER_CONFIG: [&str; 3] = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"];

impl PostgresDatabase {
    /// Idempotent: a member already streaming from `new` is left alone; otherwise stop it
    /// (if running), rewind it — or, when pg_rewind cannot, replace its data directory with a
    /// base backup — start it as a standby, and wait until it streams from `new`.
    pub(super) async fn rejoin_member(&self, old: &Member, new: &Member) -> Result<RejoinMethod, ProviderError> {
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
        if self.streams_from(old, new).await? {
            self.restore_synchronous(new).await?;
            return Ok(RejoinMethod::AlreadyFollowing);
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
        let source = Source::of(new, region);
        let shell = HostShell { member: old, host, new_primary: Some(new) };
        let data_dir = host.data_dir.display().to_string();
        let pg_ctl = tool(host, "pg_ctl");

        // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
        let status = shell.run("check the server", &[&pg_ctl, "status", "-D", &data_dir], LOOK_TIMEOUT).await?;
        if !matches!(status.code, Some(0 | 3 | 4)) {
            // The way there failed (ssh exits 255 when it cannot connect): worth retrying.
            let e = status.failure(region, "check the server", "is the member's host reachable?");
            return Err(ProviderError::transient(e.message));
        }
        // Before anything is stopped or moved: the host must reach the new primary.
        shell.reach(&source).await?;
        let rebuild = match status.code {
            Some(0) => {
                let stop = [pg_ctl.as_str(), "-D", &data_dir, "stop", "-m", "fast", "-w", "-t", "120"];
                shell.run("stop the server", &stop, COMMAND_TIMEOUT).await?.require(region, "stop the server")?;
                None
            }
            Some(3) => None,
            _ => Some(format!("no usable data directory at {data_dir} ({})", status.last_line())),
        };
        let rebuild = match rebuild {
            Some(why) => Some(why),
            None => self.rewind(&shell, new, &source).await?,
        };
        let method = match rebuild {
            None => RejoinMethod::Rewind,
            Some(why) => {
                tracing::warn!(region, why = %why, "pg_rewind cannot make the old primary a standby; taking a base backup");
                let old_data = shell.base_backup(&source).await?;
                RejoinMethod::BaseBackup { why, old_data }
            }
        };

        // pg_rewind --write-recovery-conf and pg_basebackup -R write both; make sure.
        let signal = Path::new(&data_dir).join("standby.signal").display().to_string();
        shell
            .run("create standby.signal", &["touch", &signal], LOOK_TIMEOUT)
            .await?
            .require(region, "create standby.signal")?;
        let auto_conf = Path::new(&data_dir).join("postgresql.auto.conf").display().to_string();
        let grep =
            shell.run("check primary_conninfo", &["grep", "-q", "^primary_conninfo", &auto_conf], LOOK_TIMEOUT).await?;
        if grep.code != Some(0) {
            return Err(ProviderError::permanent(format!(
                "{region} database: rejoin failed: {} left no primary_conninfo in {auto_conf} — \
                 set it to reach {} and retry",
                method.name(),
                new.region
            )));
        }

        shell.start_server().await?;
        tracing::info!(region, primary = %new.region, method = method.name(), "old primary restarted as a standby");
        self.wait_streaming(old, new).await?;
        self.restore_synchronous(new).await?;
        Ok(method)
    }

    /// Runs pg_rewind. None when it worked; the reason when only a base backup can help.
    async fn rewind(
        &self,
        shell: &HostShell<'_>,
        new: &Member,
        source: &Source,
    ) -> Result<Option<String>, ProviderError> {
        let region = shell.member.region.as_str();
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
        let rewind = tool(shell.host, "pg_rewind");
        let target = format!("--target-pgdata={}", shell.host.data_dir.display());
        let from = format!("--source-server={}", source.url);
        let out = shell.run("rewind", &[&rewind, &target, &from, "--write-recovery-conf"], COMMAND_TIMEOUT).await?;
        if out.code == Some(0) {
            return Ok(None);
        }
        if let Some(why) = rewind_impossible(&out.text) {
            return Ok(Some(why));
        }
        let e = out.failure(
            region,
            "pg_rewind",
            "check pg_rewind's message; the network to the new primary, its pg_hba.conf and drover's role",
        );
        Err(if out.text.contains("connection to server") || out.text.contains("could not connect") {
            ProviderError::transient(e.message)
        } else {
            e
        })
    }

    /// Whether `old` is a standby streaming from `new` right now.
    async fn streams_from(&self, old: &Member, new: &Member) -> Result<bool, ProviderError> {
        Ok(match self.status(old).await? {
            MemberStatus::Standby { upstream: Some(up), .. } => new.host_name().is_none_or(|h| h == up),
            _ => false,
        })
    }

    /// In a synchronous plan, the new primary waits for a standby again once one follows it;
    /// returns once the primary counts one as synchronous (the walsenders have read the
    /// setting), so no commit after the rejoin is acknowledged without the standby.
    async fn restore_synchronous(&self, primary: &Member) -> Result<(), ProviderError> {
        if !self.synchronous {
            return Ok(());
        }
        let fail = |f: super::PgFailure| {
            f.into_error(&primary.region, "restore synchronous replication", "run 'drover status'")
        };
        let client = primary.connect().await.map_err(fail)?;
        primary.timed(client.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")).await.map_err(fail)?;
        primary.timed(client.batch_execute("SELECT pg_reload_conf()")).await.map_err(fail)?;
        // sync_state is NULL to a role without pg_monitor: then there is nothing to wait on.
        let sql = "SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')), \
                   count(*) FILTER (WHERE sync_state IS NULL) FROM pg_stat_replication";
        let deadline = tokio::time::Instant::now() + self.promote_timeout;
        loop {
            let row = primary.timed(client.query_one(sql, &[])).await.map_err(fail)?;
            let (synchronous, hidden): (i64, i64) = (row.get(0), row.get(1));
            if synchronous > 0 || hidden > 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::transient(format!(
                    "{} database: restore synchronous replication failed: no standby is synchronous {} after \
                     the reload — run 'drover status'",
                    primary.region,
                    format_duration(self.promote_timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the restarted member streams from the new primary.
    async fn wait_streaming(&self, m: &Member, new: &Member) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + self.promote_timeout;
        loop {
            if self.streams_from(m, new).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let seen = self.status(m).await?;
                return Err(ProviderError::transient(format!(
                    "{} database: rejoin failed: started, but after {} it is {} and does not stream from {} — see \
                     the server log in its data directory ('log')",
                    m.region,
                    format_duration(self.promote_timeout),
                    seen.role_str(),
                    new.region
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Can drover run commands on the member's host? Looks with `pg_ctl status`, changing nothing.
    pub(super) async fn host_access_of(&self, m: &Member) -> HostAccess {
        let Some(host) = &m.host else { return HostAccess::NotConfigured };
        let shell = HostShell { member: m, host, new_primary: None };
        let data_dir = host.data_dir.display().to_string();
        let argv = [tool(host, "pg_ctl"), "status".into(), "-D".into(), data_dir.clone()];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        match shell.run("check the server", &argv, LOOK_TIMEOUT).await {
            Err(e) => HostAccess::Unreachable(e.message),
            Ok(out) => match out.code {
                Some(0) => HostAccess::Reachable("server running".into()),
                Some(3) => HostAccess::Reachable("server stopped".into()),
                Some(4) => HostAccess::Reachable(format!("no usable data directory at {data_dir}")),
                _ => HostAccess::Unreachable(
                    out.failure(&m.region, "check the server", "is the host reachable?").message,
                ),
            },
        }
    }
}

fn tool(host: &MemberHost, name: &str) -> String {
    host.bin_dir.join(name).display().to_string()
}

/// The line of pg_rewind's output that says a base backup is needed, in its own words.
fn rewind_impossible(text: &str) -> Option<String> {
    let line = text.lines().find(|l| REWIND_IMPOSSIBLE.iter().any(|words| l.contains(words)))?;
    let line = line.trim().trim_start_matches("pg_rewind:").trim().trim_start_matches("error:").trim();
    Some(line.to_string())
}

/// How the member's host reaches the new primary: a URL without the password (it goes in
/// `PGPASSWORD`), naming the standby by its region so the primary sees it under that name,
/// with the DSN's `sslmode` and `sslrootcert` (a path on the member's host, then).
struct Source {
    url: String,
}

impl Source {
    fn of(primary: &Member, standby_region: &str) -> Source {
        let c = primary.config();
        let ports = c.get_ports();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let name =
                    if name.contains(':') && !name.starts_with('/') { format!("[{name}]") } else { encode(&name) };
                match ports.get(i).or(if ports.len() == 1 { ports.first() } else { None }) {
                    Some(port) => format!("{name}:{port}"),
                    None => name,
                }
            })
            .collect();
        let user = c.get_user().map(|u| format!("{}@", encode(u))).unwrap_or_default();
        let dbname = c.get_dbname().map(encode).unwrap_or_default();
        // The TLS the DSN asks for holds there too: the rewind, the base backup and the
        // standby's streaming (primary_conninfo, written from this URL) are no less secret.
        let tls: String = primary.connector.libpq_params().iter().map(|(k, v)| format!("&{k}={}", encode(v))).collect();
        Source {
            url: format!(
                "postgresql://{user}{}/{dbname}?application_name={}{tls}",
                hosts.join(","),
                encode(standby_region)
            ),
        }
    }
}

fn password_of(m: &Member) -> Option<String> {
    m.config().get_password().and_then(|p| std::str::from_utf8(p).ok()).map(str::to_string)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs argv on a member's host: `exec` prefix + argv. Output is redacted before anyone sees it.
struct HostShell<'a> {
    member: &'a Member,
    host: &'a MemberHost,
    /// The primary the member is made to follow: its password goes into `PGPASSWORD`.
    new_primary: Option<&'a Member>,
}

struct Output {
    code: Option<i32>,
    /// stdout then stderr, secrets removed.
    text: String,
}

impl HostShell<'_> {
    async fn run(&self, what: &str, argv: &[&str], timeout: Duration) -> Result<Output, ProviderError> {
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
        if let Some(password) = self.new_primary.and_then(password_of) {
            command.env("PGPASSWORD", password);
        }
        let output = match tokio::time::timeout(timeout, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(ProviderError::permanent(format!(
                    "{region} host: cannot run '{program}' to {what}: {e} — check the member's host exec prefix"
                ))
                .with_source(e));
            }
            Err(_) => {
                return Err(ProviderError::transient(format!(
                    "{region} host: {what} did not finish within {}",
                    format_duration(timeout)
                )));
            }
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let mut text = self.member.redact(&text);
        if let Some(primary) = self.new_primary {
            text = primary.redact(&text);
        }
        Ok(Output { code: output.status.code(), text: text.trim().to_string() })
    }

    /// `pg_ctl start`, tried again for a while when the server dies at once; a start that
    /// keeps failing says how the server log ends.
    async fn start_server(&self) -> Result<(), ProviderError> {
        let region = self.member.region.as_str();
        let data_dir = self.host.data_dir.display().to_string();
        let (pg_ctl, log) = (tool(self.host, "pg_ctl"), Path::new(&data_dir).join("log").display().to_string());
        let start = [pg_ctl.as_str(), "-D", &data_dir, "-l", &log, "start", "-w", "-t", "120"];
        let deadline = tokio::time::Instant::now() + START_WINDOW;
        loop {
            let out = self.run("start the server", &start, COMMAND_TIMEOUT).await?;
            if out.code == Some(0) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let tail = match self.run("read the server log", &["tail", "-n", "3", &log], LOOK_TIMEOUT).await {
                    Ok(t) => t.text.lines().map(str::trim).collect::<Vec<_>>().join(" | "),
                    Err(e) => e.message,
                };
                return Err(out.failure(region, "start the server", &format!("its log {log} ends: {tail}")));
            }
            tracing::info!(region, "the server did not start; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Checks, from the member's host, that the new primary answers (`pg_isready`).
    async fn reach(&self, source: &Source) -> Result<(), ProviderError> {
        let region = &self.member.region;
        let primary = self.new_primary.map_or("the new primary", |p| p.region.as_str());
        let isready = tool(self.host, "pg_isready");
        let out = self.run("reach the new primary", &[&isready, "-d", &source.url, "-t", "5"], LOOK_TIMEOUT).await?;
        match out.code {
            Some(0) => Ok(()),
            Some(1 | 2) => Err(ProviderError::transient(format!(
                "{region} database: rejoin failed: {region}'s host cannot reach {primary}'s database ({}) — \
                 nothing was stopped; check the network between them",
                out.last_line()
            ))),
            _ => Err(out.failure(region, "reach the new primary with pg_isready", "is bin_dir right in the plan?")),
        }
    }

    /// Moves the data directory aside (if there is one), copies the new primary into its place
    /// with `pg_basebackup -R`, and puts the member's own configuration files back.
    /// Returns where the old data directory went.
    async fn base_backup(&self, source: &Source) -> Result<Option<String>, ProviderError> {
        let region = self.member.region.as_str();
        let data_dir = self.host.data_dir.display().to_string();
        let look = self.run("look for the data directory", &["test", "-e", &data_dir], LOOK_TIMEOUT).await?;
        let old_data = if look.code == Some(0) {
            let aside = format!("{data_dir}.drover-{}", now_ms());
            let mv = ["mv", data_dir.as_str(), aside.as_str()];
            self.run("move the old data directory aside", &mv, COMMAND_TIMEOUT)
                .await?
                .require(region, "move the old data directory aside")?;
            tracing::warn!(region, data_dir = %data_dir, moved_to = %aside, "old data directory moved aside (kept, not deleted) for a fresh base backup");
            Some(aside)
        } else {
            None
        };
        let kept = old_data.as_ref().map(|a| format!("; the old data directory is kept at {a}")).unwrap_or_default();
        let basebackup = tool(self.host, "pg_basebackup");
        let argv = [
            basebackup.as_str(),
            "--pgdata",
            &data_dir,
            "--dbname",
            &source.url,
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
        ];
        let out = self.run("take a base backup", &argv, BASE_BACKUP_TIMEOUT).await?;
        if out.code != Some(0) {
            let e = out.failure(region, "pg_basebackup", &format!("check its message and retry{kept}"));
            let connection = out.text.contains("connection to server") || out.text.contains("could not connect");
            return Err(if connection { ProviderError::transient(e.message) } else { e });
        }
        if let Some(aside) = &old_data {
            for file in MEMBER_CONFIG {
                let kept = Path::new(aside).join(file).display().to_string();
                if self.run("look for the member's configuration", &["test", "-f", &kept], LOOK_TIMEOUT).await?.code
                    == Some(0)
                {
                    let to = Path::new(&data_dir).join(file).display().to_string();
                    let cp = ["cp", "-p", kept.as_str(), to.as_str()];
                    self.run("keep the member's configuration", &cp, LOOK_TIMEOUT)
                        .await?
                        .require(region, "keep the member's configuration")?;
                }
            }
        }
        Ok(old_data)
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

    fn last_line(&self) -> &str {
        self.text.lines().last().unwrap_or("no output").trim()
    }

    fn failure(&self, region: &str, what: &str, next: &str) -> ProviderError {
        // The last lines say why; the whole output can be long.
        let lines: Vec<&str> = self.text.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        let code = self.code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
        ProviderError::permanent(format!("{region} database: rejoin failed: {what} ended with {code}: {tail} — {next}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_connect::PgConnector;

    #[test]
    fn pg_rewind_failures_a_base_backup_fixes_are_recognized_in_its_words() {
        let hints = "pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\"";
        assert_eq!(
            rewind_impossible(hints).as_deref(),
            Some("target server needs to use either data checksums or \"wal_log_hints = on\"")
        );
        let ancestor = "pg_rewind: servers diverged at WAL location 0/3000000 on timeline 1\n\
                        pg_rewind: error: could not find common ancestor of the source and target cluster's timelines";
        assert!(rewind_impossible(ancestor).unwrap().starts_with("could not find common ancestor"));
        let network = "pg_rewind: error: connection to server at \"10.200.0.12\", port 5432 failed: timeout expired";
        assert_eq!(rewind_impossible(network), None, "a network failure is not fixed by copying everything");
    }

    #[test]
    fn the_source_url_names_the_standby_and_holds_no_password() {
        let dsn = "host=10.200.0.12 port=5432 user=drover password=s3cr:et dbname=postgres";
        let member = Member {
            region: "west".into(),
            dsn: drover_core::secret::Secret::new(dsn.to_string()),
            connector: PgConnector::parse(dsn).unwrap(),
            host: None,
            connect_timeout: Duration::from_secs(1),
        };
        let source = Source::of(&member, "east");
        assert_eq!(source.url, "postgresql://drover@10.200.0.12:5432/postgres?application_name=east");
        assert!(!source.url.contains("s3cr"));
        assert_eq!(password_of(&member).as_deref(), Some("s3cr:et"));
        let url = "postgresql://app%20user:pw@db1:5433,db2:5434/my%2Fdb";
        let member = Member { connector: PgConnector::parse(url).unwrap(), ..member };
        assert_eq!(
            Source::of(&member, "east").url,
            "postgresql://app%20user@db1:5433,db2:5434/my%2Fdb?application_name=east"
        );
    }

    #[test]
    fn the_source_url_keeps_the_tls_the_dsn_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("lab ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&ca, rcgen::CertificateParams::default().self_signed(&key).unwrap().pem()).unwrap();
        let dsn = format!(
            "postgresql://drover:s3cret@10.200.0.12:5432/postgres?sslmode=verify-full&sslrootcert={}",
            encode(&ca.display().to_string())
        );
        let member = Member {
            region: "west".into(),
            dsn: drover_core::secret::Secret::new(dsn.clone()),
            connector: PgConnector::parse(&dsn).unwrap(),
            host: None,
            connect_timeout: Duration::from_secs(1),
        };
        let url = Source::of(&member, "east").url;
        assert_eq!(
            url,
            format!(
                "postgresql://drover@10.200.0.12:5432/postgres?application_name=east&sslmode=verify-full&sslrootcert={}",
                encode(&ca.display().to_string())
            )
        );
        assert!(!url.contains("s3cret"));
        // libpq reads it back to the same CA file (tokio-postgres stands in for it here).
        let back = PgConnector::parse(&url).unwrap();
        assert_eq!(back.root_cert(), Some(ca.as_path()));
        assert_eq!(back.ssl_mode(), crate::pg_connect::SslMode::VerifyFull);
    }
}
