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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(process_state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string())
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Live processes whose command line satisfies `matches`, except this process and its ancestors.
fn processes_where(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let mut spared = vec![std::process::id()];
    while let Some(parent) = spared.last().and_then(|p| parent_pid(*p)).filter(|p| *p > 1) {
        spared.push(parent);
    }
    all_pids().into_iter().filter(|p| !spared.contains(p) && alive(*p) && matches(&cmdline(*p))).collect()
}

/// Live processes whose command line contains `text`.
pub fn processes_mentioning(text: &str) -> Vec<u32> {
    processes_where(|cmd| cmd.contains(text))
}

/// Live processes whose command line names `dir` or a path below it.
pub fn processes_using(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy();
    processes_where(|cmd| mentions_path(cmd, &dir))
}

/// True when `cmdline` holds `dir` as a whole path or a path prefix (`/tmp/lab` matches
/// `/tmp/lab/east` but not `/tmp/lab-2`).
pub fn mentions_path(cmdline: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    cmdline.match_indices(dir).any(|(at, _)| {
        matches!(cmdline[at + dir.len()..].chars().next(), None | Some('/') | Some(' ') | Some('\'') | Some('"'))
    })
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    all_pids().into_iter().filter(|p| parent_pid(*p) == Some(pid)).collect()
}

pub fn signal(pid: u32, sig: Signal) -> Result<(), nix::Error> {
    kill(Pid::from_raw(pid as i32), sig)
}

/// The postmaster's pid from `postmaster.pid`, if that process is alive.
pub fn postmaster(pgdata: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    (alive(pid) && cmdline(pid).contains("postgres")).then_some(pid)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_mentioned_only_whole() {
        let cmd = "/usr/lib/postgresql/15/bin/postgres -D /tmp/lab/east/pgdata";
        assert!(mentions_path(cmd, "/tmp/lab"));
        assert!(mentions_path("drover lab supervise --dir /tmp/lab", "/tmp/lab/"));
        assert!(!mentions_path("drover lab supervise --dir /tmp/lab-2", "/tmp/lab"));
        assert!(!mentions_path("postgres -D /tmp/labx/east", "/tmp/lab"));
    }
}
