//! Each jail's private mount namespace, and how every process of a jail enters it.
//!
//! The namespace is made once per jail with `unshare --mount=<file> --propagation slave`
//! (host mounts and unmounts reach the jail later too, so it never pins a host mount the
//! host has since taken away; the jail's own binds stay out of the host),
//! which keeps it alive by bind-mounting its nsfs file at `run/mntns/<jail>` (that folder is
//! itself a private bind mount, as `unshare` requires). Inside it jrun binds the jail's
//! resolver (`/etc/netns/<ns>/resolv.conf` on `/etc/resolv.conf`, as `ip netns exec` does)
//! and the config's `mount`s. Nothing is mounted in the host's own namespace apart from those
//! two holders, and `remove`/`teardown` take them away again.
//!
//! Every process of the jail (services, health checks, setup steps, `jrun cmd`) runs as
//! `nsenter --net=/run/netns/<ns> --mount=<file> -- env --chdir=<dir> -- <argv>` (`env`, not
//! nsenter's `--wd`, which opens the folder before entering and so lands in the host's one).

use std::path::{Path, PathBuf};

use jrun_core::config::{JailName, Mount};
use jrun_core::exec::{Cmd, Runner};

use crate::names::Layout;

/// The folder holding every jail's namespace file.
pub fn mntns_dir(layout: &Layout) -> PathBuf {
    layout.run_dir().join("mntns")
}

/// The bind-mounted nsfs file that keeps `jail`'s mount namespace alive.
pub fn mntns_file(layout: &Layout, jail: &JailName) -> PathBuf {
    mntns_dir(layout).join(jail.as_str())
}

/// One mount in place, with the folders jrun had to create for its mount point (jails share
/// the host's root, so they exist on the host too; they are removed again with the mount).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Mounted {
    mount: Mount,
    created: Vec<PathBuf>,
}

/// What is mounted in the jail's namespace (so a later `up` converges, not repeats).
fn record_file(layout: &Layout, jail: &JailName) -> PathBuf {
    mntns_dir(layout).join(format!("{jail}.mounts.json"))
}

/// The argv that runs `argv` inside the jail (its network and mount namespaces) in `dir`.
pub fn jail_argv(layout: &Layout, jail: &JailName, dir: &str, argv: &[String]) -> Vec<String> {
    let mut v = vec![
        "nsenter".to_string(),
        format!("--net=/run/netns/{}", layout.jail_ns(jail)),
        format!("--mount={}", mntns_file(layout, jail).display()),
        "--".to_string(),
        "env".to_string(),
        format!("--chdir={dir}"),
        "--".to_string(),
    ];
    v.extend(argv.iter().cloned());
    v
}

/// The argv that runs `argv` in `dir` for a process that is already inside the jail's
/// namespaces (the supervisor entered them itself, to run it as a user).
pub fn in_jail_argv(dir: &str, argv: &[String]) -> Vec<String> {
    let mut v = vec![
        "env".to_string(),
        format!("--chdir={dir}"),
        "--".to_string(),
    ];
    v.extend(argv.iter().cloned());
    v
}

/// An identity of the jail's namespaces (their inodes): it changes when either is rebuilt.
pub fn generation(layout: &Layout, jail: &JailName) -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.ino());
    format!(
        "{}:{}",
        ino(&Path::new("/run/netns").join(layout.jail_ns(jail))),
        ino(&mntns_file(layout, jail))
    )
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run(runner: &dyn Runner, argv: &[&str]) -> Result<(), String> {
    runner
        .run(&Cmd::new(argv.iter().copied()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Creates the jail's mount namespace if it does not exist yet, with the jail's resolver.
pub fn ensure(layout: &Layout, jail: &JailName) -> Result<(), String> {
    let dir = mntns_dir(layout);
    let file = mntns_file(layout, jail);
    if is_mount_point(&file) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    {
        // Jails deploy side by side: two first ones must not both bind the holder (a
        // second bind would stack on the first and outlive the instance's teardown).
        static HOLDER: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _holder = HOLDER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !is_mount_point(&dir) {
            // `mount --bind <dir> <dir>` then `mount --make-private <dir>`, without the two
            // processes (the first `up` of an instance pays for them).
            use nix::mount::{mount, MsFlags};
            mount(
                Some(dir.as_path()),
                &dir,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .and_then(|()| {
                mount(
                    None::<&str>,
                    &dir,
                    None::<&str>,
                    MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
            })
            .map_err(|e| format!("cannot make {} a private mount: {e}", dir.display()))?;
        }
    }
    std::fs::write(&file, b"").map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    let _ = std::fs::remove_file(record_file(layout, jail));
    let resolv = crate::names::Layout::etc_netns(&layout.jail_ns(jail)).join("resolv.conf");
    if let Err(e) = make_namespace(&file, &resolv) {
        // A namespace without the jail's resolver must not count as made on the next try.
        let _ = nix::mount::umount(&file);
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    Ok(())
}

/// What `unshare --mount=<file> --propagation slave` and then `nsenter --mount=<file> mount
/// --bind <resolv> /etc/resolv.conf` do, without the two processes: a thread unshares its
/// mount namespace, makes it a slave of the host's and binds the resolver; meanwhile this
/// thread, still in the host's namespace, binds the new namespace's file on `file`.
fn make_namespace(file: &Path, resolv: &Path) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    let (made_tx, made_rx) = std::sync::mpsc::channel::<Result<i32, String>>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let resolv = resolv.to_path_buf();
    let inner = std::thread::spawn(move || {
        let made = (|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot unshare a mount namespace: {e}"))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .map_err(|e| format!("cannot make the jail's mounts slaves of the host's: {e}"))?;
            mount(
                Some(resolv.as_path()),
                "/etc/resolv.conf",
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("cannot bind {} on /etc/resolv.conf: {e}", resolv.display()))?;
            Ok(nix::unistd::gettid().as_raw())
        })();
        let _ = made_tx.send(made);
        // Alive until the namespace is held by its file.
        let _ = held_rx.recv();
    });
    let result = made_rx
        .recv()
        .map_err(|_| "the mount namespace thread died".to_string())
        .and_then(|made| made)
        .and_then(|tid| {
            let own = format!("/proc/self/task/{tid}/ns/mnt");
            mount(
                Some(own.as_str()),
                file,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("cannot hold the mount namespace at {}: {e}", file.display()))
        });
    let _ = held_tx.send(());
    let _ = inner.join();
    result
}

/// Fails naming the first mount (of a jail the plan changes) whose host folder is missing,
/// so `up` refuses the config before anything changes.
pub fn check_host_folders(plan: &jrun_core::plan::Plan) -> Result<(), String> {
    for jp in plan.jails.iter().filter(|j| !j.actions.is_empty()) {
        check_mounts(&jp.jail.mounts).map_err(|e| format!("jail `{}`: {e}", jp.name()))?;
    }
    Ok(())
}

fn check_mounts(mounts: &[Mount]) -> Result<(), String> {
    for m in mounts {
        if !m.host.is_dir() {
            return Err(format!(
                "mount `{}`: the host folder {} does not exist; create it or fix `host` in the config",
                m.name,
                m.host.display()
            ));
        }
    }
    Ok(())
}

/// Converges the jail's `mount`s: binds new ones (parents first), unmounts removed or
/// changed ones (children first). A host folder that does not exist is an error naming it
/// (nothing is created on the host side). The record is rewritten after every step, so a
/// failure part-way leaves it true to what is mounted.
pub fn apply_mounts(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &JailName,
    mounts: &[Mount],
) -> Result<(), String> {
    check_mounts(mounts)?;
    let record = record_file(layout, jail);
    let mut now = read_record(&record);
    let save = |now: &Vec<Mounted>| {
        let text = serde_json::to_string(now).expect("plain data serialises");
        crate::unbound::write_atomic(&record, &text)
            .map_err(|e| format!("cannot write {}: {e}", record.display()))
    };
    let mnt = format!("--mount={}", mntns_file(layout, jail).display());
    let mut gone: Vec<Mounted> = now
        .iter()
        .filter(|o| !mounts.contains(&o.mount))
        .cloned()
        .collect();
    gone.sort_by_key(|o| std::cmp::Reverse(depth(&o.mount.jail)));
    for o in gone {
        let target = o.mount.jail.to_string_lossy();
        // Lazy: a service may still have files open there; it sees the jail's own folder next.
        match run(runner, &["nsenter", &mnt, "--", "umount", "-l", &target]) {
            Ok(()) => {}
            // Already gone (unmounted by hand, or a record left by a failed run): done.
            Err(e) if e.contains("not mounted") || e.contains("no mount point") => {}
            Err(e) => {
                return Err(format!(
                    "mount `{}`: cannot unmount {target}: {e}",
                    o.mount.name
                ))
            }
        }
        remove_created(&o.created);
        now.retain(|n| n != &o);
        save(&now)?;
    }
    let mut new: Vec<&Mount> = mounts
        .iter()
        .filter(|m| !now.iter().any(|n| &n.mount == *m))
        .collect();
    new.sort_by_key(|m| depth(&m.jail));
    for m in new {
        let created = missing_ancestors(&m.jail);
        let (host, target) = (m.host.to_string_lossy(), m.jail.to_string_lossy());
        let made = run(
            runner,
            &["nsenter", &mnt, "--", "mkdir", "-p", "--", &target],
        )
        .and_then(|()| {
            run(
                runner,
                &[
                    "nsenter", &mnt, "--", "mount", "--bind", "--", &host, &target,
                ],
            )
        });
        if let Err(e) = made {
            remove_created(&created);
            return Err(format!("mount `{}` ({host} on {target}): {e}", m.name));
        }
        now.push(Mounted {
            mount: m.clone(),
            created,
        });
        save(&now)?;
    }
    save(&now)
}

/// How many components `path` has (a parent sorts before its children).
fn depth(path: &Path) -> usize {
    path.components().count()
}

fn read_record(path: &Path) -> Vec<Mounted> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// `path` and its ancestors that do not exist, deepest first.
fn missing_ancestors(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .take_while(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Removes folders jrun created for mount points, deepest first; only empty ones go.
fn remove_created(created: &[PathBuf]) {
    for dir in created {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Drops the jail's mount namespace (its mounts go with it once no process holds it) and
/// the mount point folders jrun created.
pub fn remove(layout: &Layout, jail: &JailName) -> Result<(), String> {
    let file = mntns_file(layout, jail);
    if is_mount_point(&file) {
        nix::mount::umount(&file).map_err(|e| format!("cannot unmount {}: {e}", file.display()))?;
    }
    let _ = std::fs::remove_file(&file);
    let record = record_file(layout, jail);
    for m in read_record(&record) {
        remove_created(&m.created);
    }
    let _ = std::fs::remove_file(record);
    Ok(())
}

/// Drops every jail's mount namespace and the holder folder (instance stop).
pub fn teardown(runner: &dyn Runner, layout: &Layout) -> Vec<String> {
    let dir = mntns_dir(layout);
    let mut errors = Vec::new();
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for p in entries.iter().filter(|p| is_mount_point(p)) {
        if let Err(err) = run(runner, &["umount", &p.to_string_lossy()]) {
            errors.push(err);
        }
    }
    for p in entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".mounts.json"))
    {
        for m in read_record(p) {
            remove_created(&m.created);
        }
    }
    if is_mount_point(&dir) {
        if let Err(err) = run(runner, &["umount", &dir.to_string_lossy()]) {
            errors.push(err);
        }
    }
    errors
}

/// Runs `argv` inside the jail attached to this terminal (`jrun cmd`); a jail deployed before
/// it had a mount namespace falls back to its network namespace alone.
pub fn exec_attached(
    layout: &Layout,
    jail: &JailName,
    argv: &[String],
) -> std::io::Result<std::process::ExitStatus> {
    let full = if is_mount_point(&mntns_file(layout, jail)) {
        jail_argv(layout, jail, "/", argv)
    } else {
        let mut v = vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            layout.jail_ns(jail),
        ];
        v.extend(argv.iter().cloned());
        v
    };
    std::process::Command::new(&full[0])
        .args(&full[1..])
        .status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::exec::RecordingRunner;

    #[test]
    fn created_mount_points_are_listed_deepest_first_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/c");
        let missing = missing_ancestors(&target);
        assert_eq!(
            missing,
            [target.clone(), dir.path().join("a/b"), dir.path().join("a")]
        );
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(dir.path().join("a/keep.txt"), "x").unwrap();
        remove_created(&missing);
        assert!(!dir.path().join("a/b").exists());
        assert!(dir.path().join("a/keep.txt").exists());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn jail_argv_enters_both_namespaces() {
        let layout = Layout::new(Path::new("/tmp/jrun-home-x"));
        let jail = JailName::new("web").unwrap();
        let argv = jail_argv(
            &layout,
            &jail,
            "/srv",
            &["/bin/sh".into(), "-c".into(), "x".into()],
        );
        assert_eq!(argv[0], "nsenter");
        assert_eq!(
            argv[1],
            format!("--net=/run/netns/{}", layout.jail_ns(&jail))
        );
        assert_eq!(argv[2], "--mount=/tmp/jrun-home-x/run/mntns/web");
        assert_eq!(
            &argv[3..],
            ["--", "env", "--chdir=/srv", "--", "/bin/sh", "-c", "x"]
        );
    }

    #[test]
    fn a_missing_host_folder_is_named_and_nothing_runs() {
        let runner = RecordingRunner::new();
        let layout = Layout::new(Path::new("/tmp/jrun-home-y"));
        let jail = JailName::new("web").unwrap();
        let m = Mount {
            name: "site".into(),
            host: PathBuf::from("/nonexistent/jrun/site"),
            jail: PathBuf::from("/srv/site"),
        };
        let err = apply_mounts(&runner, &layout, &jail, &[m]).unwrap_err();
        assert!(err.contains("mount `site`"), "{err}");
        assert!(
            err.contains("/nonexistent/jrun/site does not exist"),
            "{err}"
        );
        assert!(runner.calls().is_empty());
    }

    fn mount(name: &str, host: &Path, jail: &Path) -> Mount {
        Mount {
            name: name.into(),
            host: host.to_path_buf(),
            jail: jail.to_path_buf(),
        }
    }

    #[test]
    fn a_failure_part_way_keeps_the_record_of_what_was_mounted_parents_first() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        std::fs::create_dir_all(mntns_dir(&layout)).unwrap();
        let jail = JailName::new("web").unwrap();
        let host = home.path();
        let top = home.path().join("j/a");
        let child = home.path().join("j/a/b");
        let other = home.path().join("j/y/x/w");
        let runner = RecordingRunner::new();
        let mnt = format!("--mount={}", mntns_file(&layout, &jail).display());
        let z = other.to_string_lossy().to_string();
        runner.fail(
            &[
                "nsenter",
                &mnt,
                "--",
                "mount",
                "--bind",
                "--",
                &host.to_string_lossy(),
                &z,
            ],
            "boom",
        );
        let mounts = [
            mount("child", host, &child),
            mount("top", host, &top),
            mount("other", host, &other),
        ];
        let err = apply_mounts(&runner, &layout, &jail, &mounts).unwrap_err();
        assert!(err.contains("mount `other`"), "{err}");
        let binds: Vec<String> = runner
            .calls()
            .into_iter()
            .filter(|c| c.contains(&"--bind".to_string()))
            .map(|c| c.last().unwrap().clone())
            .collect();
        assert_eq!(binds[..2], [top.to_string_lossy(), child.to_string_lossy()]);
        let recorded: Vec<String> = read_record(&record_file(&layout, &jail))
            .into_iter()
            .map(|m| m.mount.name)
            .collect();
        assert_eq!(recorded, ["top", "child"]);

        // Removing both: children unmount first; one already gone by hand counts as done.
        let runner = RecordingRunner::new();
        let t = top.to_string_lossy().to_string();
        runner.fail(
            &["nsenter", &mnt, "--", "umount", "-l", &t],
            "umount: not mounted.",
        );
        apply_mounts(&runner, &layout, &jail, &[]).unwrap();
        let unmounts: Vec<String> = runner
            .calls()
            .into_iter()
            .map(|c| c.last().unwrap().clone())
            .collect();
        assert_eq!(unmounts, [child.to_string_lossy(), top.to_string_lossy()]);
        assert!(read_record(&record_file(&layout, &jail)).is_empty());
    }

    #[test]
    fn a_resolver_bind_that_fails_undoes_the_namespace() {
        // Real (root): the jail's resolv.conf is missing, so binding it fails inside the new
        // namespace; nothing of the namespace may stay.
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path());
        let jail = JailName::new("web").unwrap();
        let err = ensure(&layout, &jail).unwrap_err();
        assert!(err.contains("resolv.conf"), "{err}");
        let file = mntns_file(&layout, &jail);
        assert!(!file.exists(), "{} left behind", file.display());
        assert!(!is_mount_point(&file));
        // The folder holding the namespaces was made a mount of its own, as `stop` expects
        // (and undoes).
        let dir = mntns_dir(&layout);
        assert!(is_mount_point(&dir));
        nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
}
