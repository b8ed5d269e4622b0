//! ZFS snapshots of a jail's dataset (`jrun snapshot`), as Jailrun takes them: `zfs
//! snapshot -r`, `zfs list -t snapshot`, `zfs rollback -r`, `zfs destroy -r`.
//!
//! Every command reaches the guest as an argv (each word quoted by [`SshTarget::command_argv`]),
//! built only from a validated [`JailName`] and a validated [`SnapshotName`]: no shell text is
//! ever made from what a user typed.
//!
//! [`SshTarget::command_argv`]: crate::ssh::SshTarget::command_argv

use std::process::{Command, Stdio};

use jrun_core::config::JailName;
use serde::Serialize;

use crate::paths;
use crate::runtime::{VmError, VmRuntime};

/// The longest snapshot name jrun accepts (ZFS allows 255 bytes for the whole
/// `pool/…/jail@name`; this leaves room for any jail name).
pub const MAX_NAME: usize = 64;

/// Names starting with this are jrun's own (the transient `jrun-copy-…` snapshot a jail
/// with a `base` is copied through): `create` refuses them.
pub const RESERVED_PREFIX: &str = "jrun-";

/// A snapshot name that is safe in any ZFS command: 1 to [`MAX_NAME`] letters, digits,
/// `-`, `_`, `.` and `:`, starting with a letter or a digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SnapshotName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotNameError {
    #[error("a snapshot name cannot be empty")]
    Empty,
    #[error("a snapshot name has at most {MAX_NAME} characters; {0:?} has {1}")]
    TooLong(String, usize),
    #[error("{0:?} starts with {1:?}; a snapshot name starts with a letter or a digit")]
    BadStart(String, char),
    #[error(
        "{0:?} holds {1:?}; a snapshot name is made of letters, digits, '-', '_', '.' and ':'"
    )]
    BadChar(String, char),
}

impl SnapshotName {
    pub fn new(s: &str) -> Result<Self, SnapshotNameError> {
        let first = s.chars().next().ok_or(SnapshotNameError::Empty)?;
        let len = s.chars().count();
        if len > MAX_NAME {
            return Err(SnapshotNameError::TooLong(s.into(), len));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(SnapshotNameError::BadChar(s.into(), c));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(SnapshotNameError::BadStart(s.into(), first));
        }
        Ok(SnapshotName(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is one jrun uses for itself ([`RESERVED_PREFIX`]).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX)
    }
}

impl std::str::FromStr for SnapshotName {
    type Err = SnapshotNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SnapshotName::new(s)
    }
}

impl std::fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One snapshot of a jail, as `zfs list -p` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The part after `@`.
    pub name: String,
    /// Bytes held only by this snapshot (what changed in the jail since it was taken).
    pub used_bytes: u64,
    /// When it was taken, in Unix seconds.
    pub created: u64,
}

/// `pool/…/jail@name`.
pub fn full_name(jail: &JailName, snap: &SnapshotName) -> String {
    format!("{}@{snap}", paths::jail_dataset(jail))
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Takes the snapshot of the jail's dataset and of any dataset under it, atomically.
pub fn create_argv(jail: &JailName, snap: &SnapshotName) -> Vec<String> {
    argv(&["zfs", "snapshot", "-r", &full_name(jail, snap)])
}

/// The jail dataset's snapshots, oldest first: `name`, `used` (bytes) and `creation`
/// (Unix seconds), TAB-separated, one per line.
pub fn list_argv(jail: &JailName) -> Vec<String> {
    argv(&[
        "zfs",
        "list",
        "-H",
        "-p",
        "-t",
        "snapshot",
        "-o",
        "name,used,creation",
        "-s",
        "creation",
        "-d",
        "1",
        &paths::jail_dataset(jail),
    ])
}

/// Returns the dataset to the snapshot; `-r` destroys the snapshots taken after it (ZFS
/// refuses otherwise).
pub fn rollback_argv(jail: &JailName, snap: &SnapshotName) -> Vec<String> {
    argv(&["zfs", "rollback", "-r", &full_name(jail, snap)])
}

/// Destroys the snapshot of the jail's dataset and of any dataset under it.
pub fn destroy_argv(jail: &JailName, snap: &SnapshotName) -> Vec<String> {
    argv(&["zfs", "destroy", "-r", &full_name(jail, snap)])
}

/// Whether the jail runs (`jls -j` exits 0).
pub fn jail_running_argv(jail: &JailName) -> Vec<String> {
    argv(&["jls", "-j", jail.as_str()])
}

/// Stops the jail with the jail.conf it was started with (as `jrun up`'s script does).
pub fn stop_jail_argv(jail: &JailName) -> Vec<String> {
    argv(&["jail", "-f", &paths::jail_conf(jail), "-r", jail.as_str()])
}

/// Reads [`list_argv`]'s output: only the snapshots of `jail`'s own dataset, in order.
pub fn parse_list(jail: &JailName, stdout: &str) -> Vec<Snapshot> {
    let prefix = format!("{}@", paths::jail_dataset(jail));
    stdout
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let name = f.next()?.strip_prefix(&prefix)?;
            let used_bytes = f.next()?.trim().parse().ok()?;
            let created = f.next()?.trim().parse().ok()?;
            Some(Snapshot {
                name: name.to_string(),
                used_bytes,
                created,
            })
        })
        .collect()
}

/// What a command run in the guest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl VmRuntime {
    /// Runs `argv` as root in the guest (`doas`), without a terminal, and returns what it
    /// printed and its exit code. Exit 255 is ssh's own failure: the VM was not reached.
    pub fn run_in_guest(&self, argv: &[String]) -> Result<GuestOutput, VmError> {
        if self.process().is_none() {
            return Err(VmError::NotRunning);
        }
        let mut remote = vec!["doas".to_string()];
        remote.extend(argv.iter().cloned());
        let ssh = self.ssh_target()?.command_argv(&remote, false);
        let out = Command::new(&ssh[0])
            .args(&ssh[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| VmError::Io {
                path: ssh[0].clone().into(),
                source,
            })?;
        let output = GuestOutput {
            code: out.status.code().unwrap_or(255),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        };
        if output.code == 255 {
            return Err(VmError::Guest {
                command: "ssh".into(),
                code: 255,
                stderr: format!("{}; is the VM running (`jrun start`)?", output.stderr),
            });
        }
        Ok(output)
    }

    /// [`Self::run_in_guest`], failing unless the command exits 0.
    pub fn run_in_guest_ok(&self, argv: &[String]) -> Result<String, VmError> {
        let out = self.run_in_guest(argv)?;
        if out.code != 0 {
            return Err(VmError::Guest {
                command: argv.join(" "),
                code: out.code,
                stderr: out.stderr,
            });
        }
        Ok(out.stdout)
    }

    /// The jail's snapshots, oldest first.
    pub fn snapshots(&self, jail: &JailName) -> Result<Vec<Snapshot>, VmError> {
        let out = self.run_in_guest_ok(&list_argv(jail))?;
        Ok(parse_list(jail, &out))
    }

    pub fn create_snapshot(&self, jail: &JailName, snap: &SnapshotName) -> Result<(), VmError> {
        self.run_in_guest_ok(&create_argv(jail, snap)).map(drop)
    }

    pub fn destroy_snapshot(&self, jail: &JailName, snap: &SnapshotName) -> Result<(), VmError> {
        self.run_in_guest_ok(&destroy_argv(jail, snap)).map(drop)
    }

    /// Stops the jail if it runs, then returns its dataset to `snap` (destroying later
    /// snapshots). The jail stays stopped: the caller brings it back as `jrun up` does.
    pub fn stop_and_roll_back(&self, jail: &JailName, snap: &SnapshotName) -> Result<(), VmError> {
        if self.run_in_guest(&jail_running_argv(jail))?.code == 0 {
            self.run_in_guest_ok(&stop_jail_argv(jail))?;
        }
        self.run_in_guest_ok(&rollback_argv(jail, snap)).map(drop)
    }
}

/// A size as `zfs list` shows it: `0B`, `512B`, `88K`, `1.20M`, `15.3G`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut unit = 0;
    let mut div = 1u64;
    while unit + 1 < UNITS.len() && bytes >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    if bytes.is_multiple_of(div) {
        return format!("{}{}", bytes / div, UNITS[unit]);
    }
    let v = bytes as f64 / div as f64;
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.decimals$}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail() -> JailName {
        JailName::new("web").unwrap()
    }

    fn snap(s: &str) -> SnapshotName {
        SnapshotName::new(s).unwrap()
    }

    #[test]
    fn names_zfs_accepts_and_nothing_else() {
        for ok in [
            "before-upgrade",
            "2026-03-19_00-38-14",
            "v1.2:rc3",
            "A",
            "9",
            &"x".repeat(MAX_NAME),
        ] {
            assert_eq!(SnapshotName::new(ok).unwrap().as_str(), ok);
        }
        assert_eq!(SnapshotName::new(""), Err(SnapshotNameError::Empty));
        assert!(matches!(
            SnapshotName::new(&"x".repeat(MAX_NAME + 1)),
            Err(SnapshotNameError::TooLong(_, 65))
        ));
        for (bad, c) in [
            ("a b", ' '),
            ("a/b", '/'),
            ("a@b", '@'),
            ("a;rm -rf /", ';'),
            ("$(id)", '$'),
            ("a'b", '\''),
            ("a\nb", '\n'),
            ("é", 'é'),
            ("a%b", '%'),
        ] {
            assert_eq!(
                SnapshotName::new(bad),
                Err(SnapshotNameError::BadChar(bad.into(), c)),
                "{bad:?}"
            );
        }
        for (bad, c) in [
            ("-r", '-'),
            (".", '.'),
            ("..", '.'),
            (":x", ':'),
            ("_x", '_'),
        ] {
            assert_eq!(
                SnapshotName::new(bad),
                Err(SnapshotNameError::BadStart(bad.into(), c))
            );
        }
        let err = SnapshotName::new("a b").unwrap_err().to_string();
        assert!(err.contains("letters, digits"), "{err}");
        assert!(snap("jrun-copy-api").is_reserved());
        assert!(!snap("jrunner").is_reserved());
    }

    #[test]
    fn commands_are_argv_on_the_jail_dataset() {
        let (j, s) = (jail(), snap("before"));
        assert_eq!(
            create_argv(&j, &s),
            ["zfs", "snapshot", "-r", "zroot/jrun/jails/web@before"]
        );
        assert_eq!(
            rollback_argv(&j, &s),
            ["zfs", "rollback", "-r", "zroot/jrun/jails/web@before"]
        );
        assert_eq!(
            destroy_argv(&j, &s),
            ["zfs", "destroy", "-r", "zroot/jrun/jails/web@before"]
        );
        assert_eq!(
            list_argv(&j),
            [
                "zfs",
                "list",
                "-H",
                "-p",
                "-t",
                "snapshot",
                "-o",
                "name,used,creation",
                "-s",
                "creation",
                "-d",
                "1",
                "zroot/jrun/jails/web"
            ]
        );
        assert_eq!(jail_running_argv(&j), ["jls", "-j", "web"]);
        assert_eq!(
            stop_jail_argv(&j),
            ["jail", "-f", "/etc/jail.conf.d/web.conf", "-r", "web"]
        );
    }

    #[test]
    fn the_list_keeps_the_jails_own_snapshots_in_order() {
        let out = "zroot/jrun/jails/web@first\t0\t1700000000\n\
                   zroot/jrun/jails/web@second\t90112\t1700000060\n\
                   zroot/jrun/jails/webby@other\t0\t1700000001\n\
                   zroot/jrun/jails/web/child@first\t0\t1700000000\n\
                   garbage line\n\
                   zroot/jrun/jails/web@broken\tlots\t1\n";
        assert_eq!(
            parse_list(&jail(), out),
            [
                Snapshot {
                    name: "first".into(),
                    used_bytes: 0,
                    created: 1_700_000_000
                },
                Snapshot {
                    name: "second".into(),
                    used_bytes: 90112,
                    created: 1_700_000_060
                },
            ]
        );
        assert!(parse_list(&jail(), "").is_empty());
    }

    #[test]
    fn sizes_read_as_zfs_writes_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1024), "1K");
        assert_eq!(human_size(90112), "88K");
        assert_eq!(human_size(1_258_291), "1.20M");
        assert_eq!(human_size(16_415_285_248), "15.3G");
        assert_eq!(human_size(200 * 1024 * 1024 + 1), "200M");
        assert_eq!(human_size(u64::MAX), "16384P");
    }
}
