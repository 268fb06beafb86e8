//! Whose the lab directory is. The lab runs as root and runs what its directory says (the
//! plan's `host.exec`, the pids in `lab.json`) with the secrets in it, so it uses only a
//! directory it made itself and no one but root can change: a directory another user made
//! or can write to (the default is under the world-writable /tmp) is refused, never adopted.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::LabError;
use crate::sys;

/// The mode `up` gives the lab directory: root's, and the postgres OS user (its group) may
/// pass through to its data dirs below, without listing or changing anything.
pub const LAB_DIR_MODE: u32 = 0o710;

/// Refuses `root` unless it is a real directory (not a symlink) owned by root that neither
/// group nor others can write. Nothing there yet is fine: there is nothing to believe.
pub fn check_own(root: &Path) -> Result<(), LabError> {
    let Ok(meta) = std::fs::symlink_metadata(root) else { return Ok(()) };
    let mode = meta.mode() & 0o7777;
    let trusted = meta.is_dir() && meta.uid() == 0 && mode & 0o022 == 0;
    if trusted {
        return Ok(());
    }
    let what = if meta.file_type().is_symlink() {
        "is a symbolic link".to_string()
    } else if !meta.is_dir() {
        "is not a directory".to_string()
    } else {
        format!("is owned by {} with mode {mode:04o}", user_name(meta.uid()))
    };
    Err(LabError::refused(format!(
        "{} {what}: the lab runs as root and uses only a directory it made itself, owned by root \
         with mode {LAB_DIR_MODE:04o} (group postgres), so that no one else can change its plan, secrets or \
         state; remove it if you trust it ('rm -rf {0}') or choose another --dir",
        root.display()
    )))
}

/// Makes `root` for a new lab: refused if something is there that an earlier lab did not
/// leave (no `marker`, or not root's own), or if a parent directory lets others replace it.
/// A directory an earlier lab left behind is removed first.
pub fn make_lab_dir(root: &Path, marker: &Path) -> Result<(), LabError> {
    if std::fs::symlink_metadata(root).is_ok() {
        check_reusable(root, marker)?;
        // A lab that is no longer up left it behind.
        std::fs::remove_dir_all(root).map_err(|e| LabError::failed(format!("{}: {e}", root.display())))?;
    }
    let parent = root.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| LabError::failed(format!("{}: {e}", parent.display())))?;
    check_parents(parent)?;
    // Made here and now, not found: `create` fails if someone made it in between.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(root)
        .map_err(|e| LabError::refused(format!("{}: cannot create the lab directory: {e}", root.display())))?;
    let (_, postgres_gid) = sys::postgres_ids()?;
    nix::unistd::chown(root, Some(nix::unistd::Uid::from_raw(0)), Some(postgres_gid))
        .map_err(|e| LabError::failed(format!("{}: {e}", root.display())))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(LAB_DIR_MODE))
        .map_err(|e| LabError::failed(format!("{}: {e}", root.display())))
}

/// Refuses an existing `root` that an earlier lab did not leave: not root's own, or without
/// the lab's `marker` (only root can have put it in a directory only root can write).
pub fn check_reusable(root: &Path, marker: &Path) -> Result<(), LabError> {
    check_own(root)?;
    if std::fs::symlink_metadata(root).is_ok() && !marker.exists() {
        return Err(LabError::refused(format!(
            "{} exists and was not made by 'drover lab up': the lab uses only a directory it makes itself; \
             choose a --dir that does not exist yet",
            root.display()
        )));
    }
    Ok(())
}

/// Every directory above the lab must be root's and closed to others' writes, or sticky
/// (as /tmp is: others may write there but not rename or remove what root made).
fn check_parents(parent: &Path) -> Result<(), LabError> {
    let real = parent.canonicalize().map_err(|e| LabError::failed(format!("{}: {e}", parent.display())))?;
    for dir in real.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|e| LabError::failed(format!("{}: {e}", dir.display())))?;
        let mode = meta.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        if meta.uid() != 0 || (mode & 0o022 != 0 && !sticky) {
            return Err(LabError::refused(format!(
                "{} is owned by {} with mode {mode:04o}: whoever can write there could replace the lab directory \
                 below it; choose a --dir whose parents only root can change (e.g. under /tmp or /var/lib)",
                dir.display(),
                user_name(meta.uid())
            )));
        }
    }
    Ok(())
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_can_write_is_refused_with_its_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_own(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("{} is owned by", dir.path().display())), "{e}");
        assert!(e.contains("with mode 0777"), "{e}");
        assert!(e.contains(&format!("'rm -rf {}'", dir.path().display())), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Root's own (the tests run as root), closed to others' writes: believed.
        if nix::unistd::geteuid().is_root() {
            check_own(dir.path()).unwrap();
        }
    }

    #[test]
    fn a_symbolic_link_is_not_a_lab_directory() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("lab");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let e = check_own(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }
}
