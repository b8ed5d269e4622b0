//! What root may trust. As root, jrun runs what `JRUN_HOME` holds (the supervisor's spec
//! files), appends to its logs and uses its keys: a home that another user owns or can
//! write — or can rename, through a folder above it — would give that user root. So under
//! euid 0 the home, every folder above it and what jrun keeps in it must belong to root and
//! be writable by nobody else (a folder others may write needs the sticky bit, as `/tmp`
//! has, so they cannot rename what root put there).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode bits that let someone other than the owner write.
const OTHERS_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Why a home cannot be trusted by root: the path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing JRUN_HOME {home}: {path} {why}. As root, jrun trusts only a home that root owns and nobody else can write or rename (another user could plant what root then runs). Fix: {fix}")]
pub struct Untrusted {
    pub home: PathBuf,
    pub path: PathBuf,
    pub why: String,
    pub fix: String,
}

/// The folders and files of a home that jrun keeps (checked when they exist); `logs/`,
/// `run/` and `keys/` are checked one and two levels down as well.
const KEPT: &[&str] = &[
    "state.json",
    "state.lock",
    "run",
    "keys",
    "logs",
    "vm",
    "playbooks",
];
const WALKED: &[&str] = &["run", "keys", "logs"];

/// Checks `home` (canonical) for root: see the module's text. Call it only under euid 0.
pub fn check(home: &Path) -> Result<(), Untrusted> {
    let fail = |path: &Path, why: String, fix: String| Untrusted {
        home: home.to_path_buf(),
        path: path.to_path_buf(),
        why,
        fix,
    };
    // The folders above: root's, and not writable by others unless sticky.
    for dir in home.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| {
            fail(
                dir,
                format!("cannot be read ({e})"),
                "check the path".into(),
            )
        })?;
        let mode = meta.permissions().mode();
        if meta.uid() != 0 {
            return Err(fail(
                dir,
                format!("(above it) is owned by uid {}, who could rename the home and put another in its place", meta.uid()),
                "use a JRUN_HOME under folders root owns, e.g. /root/.jrun or /var/lib/jrun".into(),
            ));
        }
        if mode & OTHERS_WRITE != 0 && mode & STICKY == 0 {
            return Err(fail(
                dir,
                format!(
                    "(above it) is writable by others (mode {:o}) without the sticky bit",
                    mode & 0o7777
                ),
                format!(
                    "`chmod go-w {}`, or use a JRUN_HOME elsewhere",
                    dir.display()
                ),
            ));
        }
    }
    check_entry(home, home, &fail)?;
    for name in KEPT {
        let path = home.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            check_entry(home, &path, &fail)?;
        }
    }
    for name in WALKED {
        walk(home, &home.join(name), 2, &fail)?;
    }
    Ok(())
}

fn walk(
    home: &Path,
    dir: &Path,
    depth: u32,
    fail: &impl Fn(&Path, String, String) -> Untrusted,
) -> Result<(), Untrusted> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        check_entry(home, &path, fail)?;
        if depth > 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(home, &path, depth - 1, fail)?;
        }
    }
    Ok(())
}

/// One folder or file of the home: not a link, root's, writable by root alone.
fn check_entry(
    home: &Path,
    path: &Path,
    fail: &impl Fn(&Path, String, String) -> Untrusted,
) -> Result<(), Untrusted> {
    let reset = format!(
        "`chown -R root:root {h} && chmod -R go-w {h}` if you trust what is in it, or use a fresh JRUN_HOME",
        h = home.display()
    );
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| fail(path, format!("cannot be read ({e})"), reset.clone()))?;
    if meta.file_type().is_symlink() && path != home {
        return Err(fail(path, "is a symbolic link".into(), reset));
    }
    if meta.uid() != 0 {
        return Err(fail(
            path,
            format!("is owned by uid {}, not root", meta.uid()),
            reset,
        ));
    }
    let mode = meta.permissions().mode();
    // Sockets are checked by their folder (`run/`, 0700).
    if mode & OTHERS_WRITE != 0 && !meta.file_type().is_socket() {
        return Err(fail(
            path,
            format!("is writable by others (mode {:o})", mode & 0o7777),
            reset,
        ));
    }
    Ok(())
}

/// Whether root may read `.env` (or any settings file) with these owner and mode: root's,
/// and writable by root alone.
pub fn dotenv_trusted(uid: u32, mode: u32) -> Result<(), String> {
    if uid != 0 {
        return Err(format!("it is owned by uid {uid}, not root"));
    }
    if mode & OTHERS_WRITE != 0 {
        return Err(format!("others can write it (mode {:o})", mode & 0o7777));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotenv_must_be_roots_and_writable_by_root_alone() {
        assert!(dotenv_trusted(0, 0o644).is_ok());
        assert!(dotenv_trusted(0, 0o600).is_ok());
        assert!(dotenv_trusted(1000, 0o600)
            .unwrap_err()
            .contains("uid 1000"));
        assert!(dotenv_trusted(0, 0o664).unwrap_err().contains("664"));
        assert!(dotenv_trusted(0, 0o646).is_err());
    }
}
