//! `jrun snapshot create|list|rollback|delete`: ZFS snapshots of a jail's files, as
//! Jailrun's `jrun snapshot` takes them (vm runtime; the native runtime has none).

use std::process::ExitCode;

use jrun_core::config::JailName;
use jrun_core::state::{JailState, LockWait, State, StateStore};
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

use crate::progress::Progress;
use crate::runtimes::{self, human_size, Snapshot, SnapshotName};
use crate::time_fmt;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A snapshot records a jail's whole filesystem at one instant (ZFS, copy-on-write): taking
one is instant and costs nothing until the jail's files change. Snapshots live on the
VM's disk beside the jail: they are not backups, and they go with the jail (`jrun down`)
or when `jrun up` builds it again (a new release, base or address).

Examples:
  jrun snapshot create db before-upgrade   # a named snapshot of jail `db`
  jrun snapshot create db                  # named by the UTC time: 2026-03-19_00-38-14
  jrun snapshot list db                    # name, space used, when it was taken
  jrun snapshot rollback db before-upgrade # stop db, return to it, start db again
  jrun snapshot delete db before-upgrade -y

Snapshots need the vm runtime: on the native runtime jails share the host's filesystem,
and every `jrun snapshot` command exits with status 3.")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Take a snapshot of a jail's files, while it runs (no downtime).
    #[command(after_help = "\
Examples:
  jrun snapshot create db                  # named by the UTC time, e.g. 2026-03-19_00-38-14
  jrun snapshot create db before-upgrade

A name is 1 to 64 letters, digits, '-', '_', '.' and ':', starting with a letter or a
digit; names starting with `jrun-` are jrun's own.")]
    Create {
        /// The jail to snapshot.
        jail: String,
        /// The snapshot's name (default: the UTC time, YYYY-MM-DD_HH-MM-SS).
        name: Option<SnapshotName>,
    },
    /// List a jail's snapshots, oldest first: name, space used, when it was taken.
    #[command(after_help = "\
`used` is the space only that snapshot holds: what changed in the jail since it was
taken (0B: nothing did).

Example:
  jrun snapshot list db --json")]
    List {
        /// The jail whose snapshots to list.
        jail: String,
        /// Print JSON for scripts (`used_bytes`, `created` in Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Return a jail to a snapshot: stop it, roll back, start it and its services again.
    #[command(after_help = "\
ZFS keeps one line of history: rolling back to a snapshot destroys every snapshot taken
after it (the confirmation names them). The jail's files go back; the files jrun writes
into it (services, firewall, addresses) are written again as the current config has them.
Processes and memory are not captured: the jail starts as after a power cut.

Example:
  jrun snapshot rollback db before-upgrade")]
    Rollback {
        /// The jail to roll back.
        jail: String,
        /// The snapshot to return to (`jrun snapshot list <jail>` shows them).
        name: SnapshotName,
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Delete one of a jail's snapshots; the jail itself is untouched.
    #[command(after_help = "\
Example:
  jrun snapshot delete db before-upgrade -y")]
    Delete {
        /// The jail the snapshot belongs to.
        jail: String,
        /// The snapshot to delete.
        name: SnapshotName,
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
}

#[derive(Debug, Serialize)]
struct JsonList<'a> {
    jail: &'a str,
    snapshots: &'a [Snapshot],
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    // Before anything else: natively no jail has a snapshot to look for.
    selected.require_snapshots()?;
    let store = StateStore::new(&settings.home);
    match args.command {
        Command::Create { jail, name } => {
            let name = match name {
                Some(n) if n.is_reserved() => {
                    return Err(miette!(
                        help = "choose another name",
                        "snapshot names starting with `{}` are jrun's own",
                        runtimes::SNAPSHOT_RESERVED_PREFIX
                    ))
                }
                Some(n) => n,
                None => default_name()?,
            };
            let lock = store.lock(LockWait::No).into_diagnostic()?;
            let jail = deployed_jail(&lock.state, &jail)?;
            let existing = selected.snapshots(&jail.name)?;
            if existing.iter().any(|s| s.name == name.as_str()) {
                return Err(miette!(
                    help = format!(
                        "choose another name, or delete it first: jrun snapshot delete {} {name}",
                        jail.name
                    ),
                    "jail `{}` already has a snapshot named `{name}`",
                    jail.name
                ));
            }
            selected.create_snapshot(&jail.name, &name)?;
            println!(
                "jrun: snapshot `{name}` of jail `{j}` taken; `jrun snapshot rollback {j} {name}` returns to it.",
                j = jail.name
            );
        }
        Command::List { jail, json } => {
            let state = store.read().into_diagnostic()?;
            let jail = deployed_jail(&state, &jail)?;
            let snaps = selected.snapshots(&jail.name)?;
            if json {
                let out = JsonList {
                    jail: jail.name.as_str(),
                    snapshots: &snaps,
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("plain data")
                );
            } else if snaps.is_empty() {
                println!(
                    "jail `{j}` has no snapshots; `jrun snapshot create {j}` takes one.",
                    j = jail.name
                );
            } else {
                print!("{}", table(&snaps));
            }
        }
        Command::Rollback { jail, name, yes } => {
            let mut lock = store.lock(LockWait::No).into_diagnostic()?;
            let jail = deployed_jail(&lock.state, &jail)?.name.clone();
            let snaps = selected.snapshots(&jail)?;
            let later = later_than(&snaps, &jail, &name)?;
            selected.check_rollback(&settings, &lock.state)?;
            if !yes && !super::purge::confirm(&rollback_question(&jail, &name, &later))? {
                eprintln!("jrun: nothing changed.");
                return Ok(ExitCode::from(1));
            }
            let mut progress = Progress::new(false);
            selected.rollback_snapshot(&settings, &mut lock, &jail, &name, &mut progress)?;
            let gone = match later.len() {
                0 => String::new(),
                n => format!(
                    " ({n} later snapshot{} destroyed)",
                    if n == 1 { "" } else { "s" }
                ),
            };
            println!("jrun: jail `{jail}` rolled back to `{name}` and running{gone}.");
        }
        Command::Delete { jail, name, yes } => {
            let lock = store.lock(LockWait::No).into_diagnostic()?;
            let jail = deployed_jail(&lock.state, &jail)?.name.clone();
            let snaps = selected.snapshots(&jail)?;
            later_than(&snaps, &jail, &name)?;
            if !yes
                && !super::purge::confirm(&format!(
                    "Delete snapshot `{name}` of jail `{jail}`? It cannot be brought back."
                ))?
            {
                eprintln!("jrun: nothing deleted.");
                return Ok(ExitCode::from(1));
            }
            selected.delete_snapshot(&jail, &name)?;
            println!("jrun: snapshot `{name}` of jail `{jail}` deleted.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The UTC time as Jailrun names snapshots: `2026-03-19_00-38-14`.
fn default_name() -> miette::Result<SnapshotName> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .into_diagnostic()?
        .as_secs();
    SnapshotName::new(&time_fmt::utc_stamp(now)).into_diagnostic()
}

/// The recorded jail named `name`, deployed (a jail whose `up` did not finish may have no
/// dataset, or a half-built one).
fn deployed_jail<'a>(state: &'a State, name: &str) -> miette::Result<&'a JailState> {
    let known = || {
        if state.jails.is_empty() {
            "there are no jails; `jrun up <config>` deploys some".to_string()
        } else {
            let names: Vec<&str> = state.jails.keys().map(|j| j.as_str()).collect();
            format!("the jails are: {}", names.join(", "))
        }
    };
    let unknown = || miette!(help = known(), "there is no jail named {name:?}");
    let jail_name = JailName::new(name).map_err(|_| unknown())?;
    let jail = state.jails.get(&jail_name).ok_or_else(unknown)?;
    if !jail.deployed {
        return Err(miette!(
            help = "`jrun up <config>` deploys it; `jrun status` shows the jails",
            "jail `{jail_name}` is not deployed (its last `jrun up` did not finish)"
        ));
    }
    Ok(jail)
}

/// The snapshots taken after `name`; an error when the jail has no snapshot `name`.
fn later_than<'a>(
    snaps: &'a [Snapshot],
    jail: &JailName,
    name: &SnapshotName,
) -> miette::Result<Vec<&'a str>> {
    let Some(at) = snaps.iter().position(|s| s.name == name.as_str()) else {
        let help = if snaps.is_empty() {
            format!("jail `{jail}` has no snapshots; `jrun snapshot create {jail}` takes one")
        } else {
            let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
            format!("its snapshots are: {}", names.join(", "))
        };
        return Err(miette!(
            help = help,
            "jail `{jail}` has no snapshot named `{name}`"
        ));
    };
    Ok(snaps[at + 1..].iter().map(|s| s.name.as_str()).collect())
}

fn rollback_question(jail: &JailName, name: &SnapshotName, later: &[&str]) -> String {
    let destroyed = match later {
        [] => String::new(),
        [one] => format!(" It also destroys the later snapshot `{one}`."),
        many => format!(
            " It also destroys the {} later snapshots: {}.",
            many.len(),
            many.join(", ")
        ),
    };
    format!(
        "Roll jail `{jail}` back to snapshot `{name}`? This stops the jail, discards every change made since, and starts it again.{destroyed}"
    )
}

/// `name  used  created`, as Jailrun prints it, with dates in UTC.
fn table(snaps: &[Snapshot]) -> String {
    let rows: Vec<[String; 3]> = snaps
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                human_size(s.used_bytes),
                time_fmt::utc_seconds(s.created),
            ]
        })
        .collect();
    let header = ["name", "used", "created"].map(String::from);
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| format!("{:<w0$}   {:<w1$}   {}\n", r[0], r[1], r[2]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, used: u64, created: u64) -> Snapshot {
        Snapshot {
            name: name.into(),
            used_bytes: used,
            created,
        }
    }

    #[test]
    fn the_table_lines_up() {
        let t = table(&[
            snap("before-upgrade", 0, 1_700_000_000),
            snap("2023-11-14_22-14-20", 90112, 1_700_000_060),
        ]);
        assert_eq!(
            t,
            "name                  used   created\n\
             before-upgrade        0B     2023-11-14 22:13:20 UTC\n\
             2023-11-14_22-14-20   88K    2023-11-14 22:14:20 UTC\n"
        );
    }

    #[test]
    fn later_snapshots_are_named_and_unknown_ones_refused() {
        let jail = JailName::new("db").unwrap();
        let snaps = [snap("a", 0, 1), snap("b", 0, 2), snap("c", 0, 3)];
        let name = |s| SnapshotName::new(s).unwrap();
        assert_eq!(later_than(&snaps, &jail, &name("a")).unwrap(), ["b", "c"]);
        assert!(later_than(&snaps, &jail, &name("c")).unwrap().is_empty());
        let err = later_than(&snaps, &jail, &name("zz")).unwrap_err();
        assert_eq!(err.to_string(), "jail `db` has no snapshot named `zz`");
        assert_eq!(
            err.help().unwrap().to_string(),
            "its snapshots are: a, b, c"
        );
        let q = rollback_question(&jail, &name("a"), &["b", "c"]);
        assert!(q.contains("destroys the 2 later snapshots: b, c."), "{q}");
        let q = rollback_question(&jail, &name("c"), &[]);
        assert!(!q.contains("destroys"), "{q}");
    }

    #[test]
    fn only_deployed_jails_known_by_name() {
        let mut state = State::default();
        let err = deployed_jail(&state, "web").unwrap_err();
        assert!(err.help().unwrap().to_string().contains("no jails"));
        for (name, deployed) in [("web", true), ("db", false)] {
            // Through serde: any field added later has its default.
            let j: JailState = serde_json::from_value(serde_json::json!({
                "name": name,
                "ip": "10.17.89.10",
                "deployed": deployed,
            }))
            .unwrap();
            state.jails.insert(j.name.clone(), j);
        }
        assert_eq!(deployed_jail(&state, "web").unwrap().name.as_str(), "web");
        let err = deployed_jail(&state, "nope").unwrap_err();
        assert_eq!(err.to_string(), "there is no jail named \"nope\"");
        assert_eq!(err.help().unwrap().to_string(), "the jails are: db, web");
        // Not even a valid jail name: the same answer.
        let err = deployed_jail(&state, "../x").unwrap_err();
        assert!(err.to_string().contains("no jail named"), "{err}");
        let err = deployed_jail(&state, "db").unwrap_err();
        assert!(err.to_string().contains("not deployed"), "{err}");
    }
}
