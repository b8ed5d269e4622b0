//! Crash-safe file replacement, shared by every crate that writes state, keys or configs
//! (re-exported as `jrun_core::fs`).
//!
//! A reader sees the old file or the new one, never a half-written one; after a crash
//! the new content is either fully on disk or absent; the file never has wider
//! permissions than `mode`, not even for a moment.

use std::ffi::OsString;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` with `bytes`, file mode `mode` (e.g. `0o600`).
///
/// Writes a temp file with a unique name in the same folder (mode 0600, then `mode`),
/// fsyncs it, renames it over `path` and fsyncs the folder. On error the temp file is
/// removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(path)
}

/// Like [`write_atomic`], but never replaces an existing file: if `path` exists the
/// error is [`io::ErrorKind::AlreadyExists`] and nothing changes.
pub fn write_atomic_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(path)
}

/// The prefix of the temp files [`write_atomic`] makes for `path` (`<name>.tmp.`), so a
/// caller that holds a lock can sweep those left by a writer that crashed.
pub fn temp_prefix(path: &Path) -> OsString {
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(".tmp.");
    prefix
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<tempfile::NamedTempFile> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    }
    // tempfile creates the file 0600 with O_EXCL and a random name: no one else can have
    // opened it, and a planted symlink is never followed.
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .rand_bytes(8)
        .tempfile_in(parent(path))?;
    let file = tmp.as_file_mut();
    file.set_permissions(Permissions::from_mode(mode & 0o7777))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(tmp)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

/// Whether the file at `path` can be read or written by users other than its owner.
pub fn is_shared(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o077 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_with_the_given_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        write_atomic(&path, b"newer", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(files_in(dir.path()), ["state.json"]);
    }

    #[test]
    fn new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic_new(&path, b"first", 0o600).unwrap();
        let err = write_atomic_new(&path, b"second", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(files_in(dir.path()), ["key.pem"]);
    }

    #[test]
    fn a_planted_symlink_at_the_old_fixed_temp_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("records.conf");
        std::os::unix::fs::symlink(&victim, dir.path().join("records.tmp")).unwrap();
        write_atomic(&path, b"data", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a folder: the rename fails, the temp file goes.
        let path = dir.path().join("busy");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        assert!(write_atomic(&path, b"data", 0o600).is_err());
        assert_eq!(files_in(dir.path()), ["busy"]);
    }

    #[test]
    fn temp_names_share_the_sweepable_prefix() {
        assert_eq!(temp_prefix(Path::new("/x/state.json")), "state.json.tmp.");
    }
}
