//! Running the system's tools and looking at processes through /proc.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::LabError;

/// A tool the lab needs, and the Debian package that has it.
pub struct Tool {
    pub name: &'static str,
    pub package: &'static str,
}

pub const TOOLS: [Tool; 9] = [
    Tool { name: "ip", package: "iproute2" },
    Tool { name: "nft", package: "nftables" },
    Tool { name: "knotd", package: "knot" },
    Tool { name: "keymgr", package: "knot" },
    Tool { name: "runuser", package: "util-linux" },
    Tool { name: "/usr/lib/postgresql/15/bin/postgres", package: "postgresql-15" },
    Tool { name: "/usr/lib/postgresql/15/bin/initdb", package: "postgresql-15" },
    Tool { name: "/usr/lib/postgresql/15/bin/pg_basebackup", package: "postgresql-15" },
    Tool { name: "/usr/lib/postgresql/15/bin/pg_ctl", package: "postgresql-15" },
];

/// The full path of a tool: absolute names as given, others searched in PATH and the sbin dirs
/// (which a non-login root shell may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return is_executable(path).then(|| path.to_path_buf());
    }
    let search = std::env::var("PATH").unwrap_or_default();
    search
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The path of `name`, assuming `require_tools` already vouched for it.
pub fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| PathBuf::from(name))
}

pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::refused("drover lab needs root to create network namespaces; run it with sudo"))
    }
}

/// Every missing tool, named with its package.
pub fn require_tools() -> Result<(), LabError> {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|t| which(t.name).is_none())
        .map(|t| format!("{} (Debian package {})", t.name, t.package))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::refused(format!(
            "drover lab needs {}; run scripts/setup.sh (it installs postgresql-15 knot knot-dnsutils nftables iproute2)",
            missing.join(", ")
        )))
    }
}

/// One more tool that only some labs need (etcd for `lab up --ha`).
pub fn require_tool(name: &str, package: &str) -> Result<(), LabError> {
    match which(name) {
        Some(_) => Ok(()),
        None => Err(LabError::refused(format!(
            "this lab needs {name} (Debian package {package}); run scripts/setup.sh, which installs it"
        ))),
    }
}

/// Runs a command to completion; its stdout on success, its stderr in the error.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    run_with_input(program, args, None)
}

pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String, LabError> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(tool(program))
        .args(args)
        .current_dir("/")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::failed(format!("{shown}: cannot start: {e}")))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).map_err(|e| LabError::failed(format!("{shown}: writing input: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| LabError::failed(format!("{shown}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::failed(format!("{shown}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// `len` random bytes as lowercase hex.
pub fn random_hex(len: usize) -> Result<String, LabError> {
    use std::io::Read;
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LabError::failed(format!("/dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file readable only by its owner (secrets).
pub fn write_private(path: &Path, contents: &str) -> Result<(), LabError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LabError::failed(format!("{}: {e}", path.display())))?;
    f.write_all(contents.as_bytes()).map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
}

pub fn write_file(path: &Path, contents: &str) -> Result<(), LabError> {
    std::fs::write(path, contents).map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
}

pub fn create_dir(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(|e| LabError::failed(format!("{}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
}

/// Gives `path` to the postgres OS user.
pub fn chown_postgres(path: &Path) -> Result<(), LabError> {
    let (uid, gid) = postgres_ids()?;
    nix::unistd::chown(path, Some(uid), Some(gid))
        .map_err(|e| LabError::failed(format!("chown postgres {}: {e}", path.display())))
}

pub fn postgres_ids() -> Result<(nix::unistd::Uid, nix::unistd::Gid), LabError> {
    let user = postgres_user()?;
    Ok((user.uid, user.gid))
}

/// The postgres OS user's home directory, as `runuser -u postgres` sets `HOME`.
pub fn postgres_home() -> Result<std::path::PathBuf, LabError> {
    Ok(postgres_user()?.dir)
}

fn postgres_user() -> Result<nix::unistd::User, LabError> {
    nix::unistd::User::from_name(crate::layout::PG_OS_USER).ok().flatten().ok_or_else(|| {
        LabError::refused(
            "there is no 'postgres' OS user; run scripts/setup.sh (Debian package postgresql-15 creates it)",
        )
    })
}

/// Last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A process's state letter from /proc (R, S, T, Z, ...); None when it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The fields of /proc/PID/stat after the command name, which is in parentheses and may
/// hold spaces: the first is field 3 (the state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(str::to_string).collect())
}

fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// When `pid` started, in clock ticks after boot (/proc/PID/stat field 22). A pid is reused
/// once its process is gone; a pid with its start time names one process for good.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(process_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// A process's arguments, `argv[0]` first (empty when it is gone or a zombie).
pub fn argv(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

pub fn cmdline(pid: u32) -> String {
    argv(pid).join(" ")
}

/// A process the lab started, recorded when it started: the lab signals a pid only while
/// the process behind it is still this one (same start time, same command line), never a
/// stranger that was given the pid later or that merely names the lab's directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Started {
    pub pid: u32,
    /// Clock ticks after boot (`start_ticks`).
    pub start: u64,
    pub argv: Vec<String>,
}

impl Started {
    /// The child `cmd` just started as `pid` (its start time read now: it does not change
    /// at exec, and the pid cannot be reused before its parent reaps it).
    pub fn child(pid: u32, cmd: &Command) -> Option<Started> {
        let argv = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Some(Started { pid, start: start_ticks(pid)?, argv })
    }

    /// This process.
    pub fn this() -> Option<Started> {
        let pid = std::process::id();
        Some(Started { pid, start: start_ticks(pid)?, argv: argv(pid) })
    }

    /// True while the recorded process still runs.
    pub fn running(&self) -> bool {
        alive(self.pid) && start_ticks(self.pid) == Some(self.start) && argv(self.pid) == self.argv
    }

    /// Sends `sig` only if the recorded process still runs; true when it was sent.
    pub fn signal(&self, sig: Signal) -> bool {
        self.running() && signal(self.pid, sig).is_ok()
    }
}

/// Live processes whose command line satisfies `matches`, except this process and its ancestors.
fn processes_where(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let mut spared = vec![std::process::id()];
    while let Some(parent) = spared.last().and_then(|p| parent_pid(*p)).filter(|p| *p > 1) {
        spared.push(parent);
    }
    all_pids().into_iter().filter(|p| !spared.contains(p) && alive(*p) && matches(&cmdline(*p))).collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Live processes whose command line contains `text` (to find, never to signal).
pub fn processes_mentioning(text: &str) -> Vec<u32> {
    processes_where(|cmd| cmd.contains(text))
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    all_pids().into_iter().filter(|p| parent_pid(*p) == Some(pid)).collect()
}

pub fn signal(pid: u32, sig: Signal) -> Result<(), nix::Error> {
    kill(Pid::from_raw(pid as i32), sig)
}

/// The postmaster of `pgdata` from its `postmaster.pid`, if that process is alive and is
/// the one the file describes: a postgres server run by the postgres OS user for this data
/// dir, started when the file says (PostgreSQL writes its start time, in seconds, on the
/// third line). The file may be stale and its pid another process's by now.
pub fn postmaster(pgdata: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let started_s: u64 = lines.nth(1)?.trim().parse().ok()?;
    let args = argv(pid);
    let is_postgres = args.first().is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "postgres"));
    let for_pgdata = args.windows(2).any(|w| w[0] == "-D" && Path::new(&w[1]) == pgdata);
    let by_postgres = postgres_ids()
        .is_ok_and(|(uid, _)| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid.as_raw()));
    let on_time = start_epoch_s(pid).is_some_and(|s| s.abs_diff(started_s) <= 5);
    (alive(pid) && is_postgres && for_pgdata && by_postgres && on_time).then_some(pid)
}

/// The unit of /proc's clock ticks: the kernel reports them in USER_HZ, 100 on every
/// architecture Linux runs drover on.
const USER_HZ: u64 = 100;

/// When `pid` started, in seconds since the Unix epoch (boot time plus its start ticks).
fn start_epoch_s(pid: u32) -> Option<u64> {
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + start_ticks(pid)? / USER_HZ)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_process_is_known_by_its_start_time_and_command_line() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = cmd.spawn().expect("start sleep");
        let started = Started::child(child.id(), &cmd).expect("its start time");
        // spawn returns once the child has begun its exec, which may be a moment before the
        // kernel has set up the new command line (/proc/PID/cmdline is empty until then).
        let shown = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while argv(started.pid).is_empty() && std::time::Instant::now() < shown {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(started.running(), "{started:?}");
        // The same pid with another start time, or another command line, is someone else.
        assert!(!Started { start: started.start + 1, ..started.clone() }.running());
        assert!(!Started { argv: vec!["sleep".into(), "31".into()], ..started.clone() }.running());
        assert!(!Started { start: started.start + 1, ..started.clone() }.signal(Signal::SIGKILL));
        assert!(child.try_wait().unwrap().is_none(), "a mismatched record signalled the process");
        assert!(started.signal(Signal::SIGKILL));
        child.wait().unwrap();
        assert!(!started.running());
    }

    #[test]
    fn a_postmaster_pid_file_naming_another_process_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let pgdata = dir.path().join("pgdata");
        std::fs::create_dir(&pgdata).unwrap();
        // This test's own process: alive, but no postgres for this data dir.
        let now_s = now_ms() / 1000;
        std::fs::write(
            pgdata.join("postmaster.pid"),
            format!("{}\n{}\n{now_s}\n5432\n", std::process::id(), pgdata.display()),
        )
        .unwrap();
        assert_eq!(postmaster(&pgdata), None);
    }
}
