//! Reading a secret from a file: a plan's `file:` and `*_file` references, token files,
//! password files and private keys. A secret file its group or others can open is refused
//! (its secret may already be out, or be swapped), with the command that fixes it; setting
//! `DROVER_ALLOW_OPEN_SECRET_FILES=1` turns the refusal into a warning on stderr.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Set to `1` to read secret files whatever their mode (with a warning).
pub const ALLOW_OPEN_ENV: &str = "DROVER_ALLOW_OPEN_SECRET_FILES";

/// The permission bits that let anyone but the owner in.
const OPEN_BITS: u32 = 0o077;

/// Why a secret file was not read: the file system's error (each caller words it as it
/// always has), or its mode.
#[derive(Debug)]
pub enum SecretFileError {
    Io(std::io::Error),
    /// What is wrong and what to run, without the path (`Display` puts it first).
    OpenToOthers {
        path: std::path::PathBuf,
        why: String,
    },
}

impl std::fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretFileError::Io(e) => write!(f, "{e}"),
            SecretFileError::OpenToOthers { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl SecretFileError {
    /// The message, as the caller words it: `io` words a file-system error as it always
    /// has; the refusal for the mode comes after `flag` (e.g. `--token-file`, or "").
    pub fn describe(self, io: impl FnOnce(std::io::Error) -> String, flag: &str) -> String {
        match self {
            SecretFileError::Io(e) => io(e),
            open if flag.is_empty() => open.to_string(),
            open => format!("{flag} {open}"),
        }
    }
}

/// The text of the secret file at `path` (invalid UTF-8 is an `InvalidData` error).
pub fn read(path: &Path) -> Result<String, SecretFileError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| SecretFileError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// The bytes of the secret file at `path`, refused when its mode lets others in. The mode
/// is that of the file opened (a symlink's target), checked before a byte is read.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let mut file = std::fs::File::open(path).map_err(SecretFileError::Io)?;
    let meta = file.metadata().map_err(SecretFileError::Io)?;
    admit(path, meta.permissions().mode(), allowed())
        .map_err(|why| SecretFileError::OpenToOthers { path: path.to_path_buf(), why })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(SecretFileError::Io)?;
    Ok(bytes)
}

fn allowed() -> bool {
    std::env::var(ALLOW_OPEN_ENV).is_ok_and(|v| v == "1")
}

/// The decision on `mode`: Ok for a file only its owner can open; otherwise why not (the
/// path is the caller's to name), or with `allow` a warning on stderr and Ok.
fn admit(path: &Path, mode: u32, allow: bool) -> Result<(), String> {
    if mode & OPEN_BITS == 0 {
        return Ok(());
    }
    let open = format!("open to its group or others (mode {:04o})", mode & 0o7777);
    if allow {
        eprintln!("warning: {}: {open}; read anyway ({ALLOW_OPEN_ENV}=1)", path.display());
        return Ok(());
    }
    Err(format!(
        "{open}: a secret file must be its owner's alone; run 'chmod 600 {}' \
         (or set {ALLOW_OPEN_ENV}=1 to read it anyway, with a warning)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = admit(&path, 0o100644, false).unwrap_err();
        assert_eq!(
            e,
            format!(
                "open to its group or others (mode 0644): a secret file must be its owner's alone; \
                 run 'chmod 600 {0}' (or set DROVER_ALLOW_OPEN_SECRET_FILES=1 to read it anyway, with a warning)",
                path.display()
            )
        );
        assert!(admit(&path, 0o100640, false).is_err(), "group-readable");
        assert!(admit(&path, 0o100604, false).is_err(), "world-readable");
        // Allowed: read, with a warning.
        assert_eq!(admit(&path, 0o100644, true), Ok(()));
        assert_eq!(admit(&path, 0o100600, false), Ok(()));
        assert_eq!(admit(&path, 0o100400, false), Ok(()));
        // Through the file itself: refused as written, read once its owner's alone.
        let e = read(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: open to its group or others (mode 0644)", path.display())), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&path).unwrap(), "s3cret\n");
    }
}
