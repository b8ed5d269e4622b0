//! `$JRUN_HOME/state.json` on disk: read under an exclusive lock, written atomically.
//!
//! The lock (`flock` on `state.lock`) is taken before the state is read and held until
//! the [`StateLock`] is dropped, so two jrun processes never plan from the same state.
//! A write goes to a temp file in the same folder, is fsynced, renamed over
//! `state.json`, and the folder is fsynced: a crash leaves the old or the new state,
//! never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::model::{State, STATE_VERSION};

/// File names inside `$JRUN_HOME`.
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";

/// Why the state could not be read, locked or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("another jrun (pid {pid}) is working on this instance (lock {lock}); wait for it, or run again with --wait", pid = pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()))]
    Locked { lock: PathBuf, pid: Option<u32> },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state file {path} is corrupt ({reason}); jrun left it untouched. Restore it from a backup, or move it aside to start from an empty state (jrun will then forget the jails it made)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the state file {path} is Jailrun's, and jrun cannot convert it: {field}: {reason}. jrun changed nothing (Jailrun still reads it); correct or remove that entry, or move the file aside to start from an empty state")]
    Jailrun {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("the state file {path} has version {found}, but this jrun only knows versions up to {known}; use a newer jrun")]
    TooNew {
        path: PathBuf,
        found: u64,
        known: u32,
    },
}

/// Whether to wait for another jrun holding the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`StateError::Locked`], naming the holder's pid.
    No,
    /// Block until the other process releases the lock.
    Yes,
}

/// Where one instance's state lives.
#[derive(Debug, Clone)]
pub struct StateStore {
    home: PathBuf,
    /// Told one line per thing a conversion of Jailrun's state did.
    notes: fn(&str),
}

fn print_note(line: &str) {
    eprintln!("jrun: {line}");
}

/// The exclusive lock without the state (see [`StateStore::lock_only`]); held until dropped.
#[derive(Debug)]
pub struct HeldLock(Flock<File>);

/// The state, read under the exclusive lock, which is held until this is dropped.
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
    path: PathBuf,
    /// The state as read; change it, then [`StateLock::save`].
    pub state: State,
}

impl StateStore {
    /// The store in `home` (`$JRUN_HOME`).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        StateStore {
            home: home.into(),
            notes: print_note,
        }
    }

    /// Where a conversion of Jailrun's state reports what it did (default: stderr).
    pub fn with_notes(mut self, notes: fn(&str)) -> Self {
        self.notes = notes;
        self
    }

    /// `$JRUN_HOME/state.json`.
    pub fn path(&self) -> PathBuf {
        self.home.join(STATE_FILE)
    }

    /// `$JRUN_HOME/state.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.home.join(LOCK_FILE)
    }

    /// Takes the exclusive lock, then reads the state (missing file: empty state).
    pub fn lock(&self, wait: LockWait) -> Result<StateLock, StateError> {
        let lock = self.lock_only(wait)?;
        let path = self.path();
        let state = match read_any(&path)? {
            Found::Jrun(state) => *state,
            Found::Jailrun(value, bytes) => convert_jailrun(&path, &value, &bytes, self.notes)?,
        };
        Ok(StateLock {
            _lock: lock.0,
            path,
            state,
        })
    }

    /// The exclusive lock alone, the state left unread: for `stop`, which tears down by
    /// name and must work whatever the state file holds.
    pub fn lock_only(&self, wait: LockWait) -> Result<HeldLock, StateError> {
        let lock_path = self.lock_path();
        fs::create_dir_all(&self.home).map_err(|source| StateError::Io {
            action: "create the jrun home folder",
            path: self.home.clone(),
            source,
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| StateError::Io {
                action: "open the lock file",
                path: lock_path.clone(),
                source,
            })?;
        let arg = match wait {
            LockWait::No => FlockArg::LockExclusiveNonblock,
            LockWait::Yes => FlockArg::LockExclusive,
        };
        let mut lock = match Flock::lock(file, arg) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(StateError::Locked {
                    pid: read_pid(&mut file),
                    lock: lock_path,
                })
            }
            Err((_, errno)) => {
                return Err(StateError::Io {
                    action: "lock",
                    path: lock_path,
                    source: errno.into(),
                })
            }
        };
        write_pid(&mut lock).map_err(|source| StateError::Io {
            action: "write our pid into",
            path: lock_path,
            source,
        })?;
        Ok(HeldLock(lock))
    }

    /// Reads the state without the lock, for commands that only look (`status`, `plan`).
    /// Writes are atomic renames, so this sees a whole old or a whole new state. Jailrun's
    /// state is converted first, under the lock (once: see [`StateStore::lock`]).
    pub fn read(&self) -> Result<State, StateError> {
        match read_any(&self.path())? {
            Found::Jrun(state) => Ok(*state),
            Found::Jailrun(..) => Ok(self.lock(LockWait::Yes)?.state),
        }
    }
}

impl StateLock {
    /// Writes `self.state` atomically and durably; the lock stays held.
    pub fn save(&mut self) -> Result<(), StateError> {
        write_state(&self.path, &self.state)
    }

    /// The state file this lock guards.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// What a state file holds.
enum Found {
    Jrun(Box<State>),
    /// Jailrun's state (its JSON, and the file's bytes for the backup).
    Jailrun(serde_json::Value, Vec<u8>),
}

/// Reads and checks a state file; a missing file is an empty state.
fn read_any(path: &Path) -> Result<Found, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Jrun(Box::default())),
        Err(source) => {
            return Err(StateError::Io {
                action: "read the state file",
                path: path.into(),
                source,
            })
        }
    };
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.into(),
        reason,
    };
    // The version is checked first, so a newer file gets the version message rather
    // than a complaint about fields this binary does not know.
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    // Jailrun's format also says version 1: told apart by its shape.
    if super::jailrun::is_jailrun(&value) {
        return Ok(Found::Jailrun(value, bytes));
    }
    let version = match value.get("version") {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| corrupt(format!("\"version\" is {n}, not a whole number")))?,
        Some(other) => return Err(corrupt(format!("\"version\" is {other}, not a number"))),
        None => return Err(corrupt("it has no \"version\"".into())),
    };
    if version > u64::from(STATE_VERSION) {
        return Err(StateError::TooNew {
            path: path.into(),
            found: version,
            known: STATE_VERSION,
        });
    }
    if version == 0 {
        return Err(corrupt("\"version\" is 0".into()));
    }
    let mut state: State = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    check_consistent(&state).map_err(corrupt)?;
    // Older formats read as this one (a version-1 jail has no recorded file) and are
    // written back as this one.
    state.version = STATE_VERSION;
    Ok(Found::Jrun(Box::new(state)))
}

/// Converts Jailrun's state in `path` (under the lock): checks everything first, then
/// keeps the original as a backup, then replaces `path` atomically, then tells `notes`
/// what it did. A conversion that fails changes nothing.
fn convert_jailrun(
    path: &Path,
    value: &serde_json::Value,
    bytes: &[u8],
    notes: fn(&str),
) -> Result<State, StateError> {
    let converted = super::jailrun::convert(value).map_err(|e| StateError::Jailrun {
        path: path.into(),
        field: e.field,
        reason: e.reason,
    })?;
    let backup = backup_path(path, bytes)?;
    if !backup.exists() {
        crate::fs::write_atomic(&backup, bytes, 0o600).map_err(|source| StateError::Io {
            action: "keep a backup of Jailrun's state in",
            path: backup.clone(),
            source,
        })?;
    }
    write_state(path, &converted.state)?;
    notes(&format!(
        "{} was Jailrun's state; converted it for jrun (the original is kept as {})",
        path.display(),
        backup.display()
    ));
    for line in &converted.notes {
        notes(line);
    }
    Ok(converted.state)
}

/// `state.jailrun.json` next to `path`, or the same file already holding these bytes; a
/// backup of other content is never overwritten: the next free `state.jailrun.N.json`.
fn backup_path(path: &Path, bytes: &[u8]) -> Result<PathBuf, StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    for n in 1..1000 {
        let name = match n {
            1 => super::jailrun::BACKUP_FILE.to_string(),
            n => format!("state.jailrun.{n}.json"),
        };
        let candidate = dir.join(name);
        match fs::read(&candidate) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(candidate),
            Ok(existing) if existing == bytes => return Ok(candidate),
            Ok(_) => continue,
            Err(source) => {
                return Err(StateError::Io {
                    action: "read",
                    path: candidate,
                    source,
                })
            }
        }
    }
    Err(StateError::Io {
        action: "find a free backup name next to",
        path: path.into(),
        source: std::io::Error::other("state.jailrun.1000.json and all before it exist"),
    })
}

/// Invariants serde cannot express: map keys match the records they hold.
fn check_consistent(state: &State) -> Result<(), String> {
    let mut ips = std::collections::BTreeMap::new();
    for (name, jail) in &state.jails {
        if *name != jail.name {
            return Err(format!(
                "jail {name} is recorded under the name {}",
                jail.name
            ));
        }
        if let Some(other) = ips.insert(jail.ip, name) {
            return Err(format!("jails {other} and {name} both hold {}", jail.ip));
        }
    }
    for (code, peer) in &state.peers {
        if *code != peer.code {
            return Err(format!(
                "pairing {code} is recorded with the code {}",
                peer.code
            ));
        }
    }
    Ok(())
}

/// Temp file in the same folder, fsync, rename, fsync the folder ([`crate::fs::write_atomic`]).
pub(crate) fn write_state(path: &Path, state: &State) -> Result<(), StateError> {
    let mut json = serde_json::to_vec_pretty(state).expect("the state always serialises");
    json.push(b'\n');
    crate::fs::write_atomic(path, &json, 0o600).map_err(|source| StateError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })?;
    remove_stale_temps(path);
    Ok(())
}

/// Temp files of writers that crashed before their rename. Only called under the lock,
/// so no live writer owns one; failing to remove one is harmless.
fn remove_stale_temps(path: &Path) {
    let Some(dir) = path.parent() else {
        return;
    };
    let prefix = crate::fs::temp_prefix(path).to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JailState;

    /// A crash after the temp file was written but before the rename: the old state is
    /// what is read, and the next save replaces the leftover.
    #[test]
    fn a_crash_before_rename_keeps_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let mut lock = store.lock(LockWait::No).unwrap();
        lock.save().unwrap();
        let old = lock.state.clone();

        let mut new = old.clone();
        new.runtime.insert("native".into(), serde_json::json!(1));
        let mut tmp = crate::fs::temp_prefix(&store.path());
        tmp.push("crashed");
        let tmp = store.path().with_file_name(tmp);
        // What the writer had done when it died: the whole new state in the temp file,
        // and for good measure a half-written one from another pid.
        std::fs::write(&tmp, serde_json::to_vec(&new).unwrap()).unwrap();
        std::fs::write(store.path().with_extension("json.tmp.1"), b"{\"vers").unwrap();
        drop(lock);

        let mut lock = store.lock(LockWait::No).unwrap();
        assert_eq!(lock.state, old);
        lock.state = new.clone();
        lock.save().unwrap();
        assert!(!tmp.exists(), "the save swept the leftover");
        assert!(!store.path().with_extension("json.tmp.1").exists());
        assert_eq!(store.read().unwrap(), new);
    }

    #[test]
    fn state_json_is_versioned_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let mut lock = store.lock(LockWait::No).unwrap();
        let jail = crate::plan::testing::jail("web");
        let record = JailState::from_jail(&jail, std::net::Ipv4Addr::new(10, 17, 89, 10), true);
        lock.state.jails.insert(record.name.clone(), record);
        lock.save().unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(value["version"], STATE_VERSION);
        assert_eq!(value["jails"]["web"]["ip"], "10.17.89.10");
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
