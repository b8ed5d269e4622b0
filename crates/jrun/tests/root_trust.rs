//! What root trusts (security review, findings 1, 2 and 7): as root, jrun refuses a home
//! another user owns, can write or can rename, and anything planted in it; reads `./.env`
//! only when root owns it and nobody else can write it; and keeps the supervisor's socket,
//! `run/` and `logs/` private whatever the caller's umask.

mod local_env;
mod native_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

const NOBODY: u32 = 65534;

fn require_root() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("these tests are about what root trusts; CI runs them as root");
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

fn jrun_in(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    local_env::jrun()
        .args(args)
        .current_dir(cwd)
        .env("JRUN_HOME", home)
        .env("JRUN_RUNTIME", "vm")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .replace("\n  │ ", " ")
        .replace("\n  │", " ")
}

/// A root-owned, private scratch folder: the place a home may live.
fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn home_owned_by_another_user_is_refused() {
    require_root();
    let d = scratch();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    chown(&home, NOBODY);
    let o = jrun_in(&home, d.path(), &["status"]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("refusing JRUN_HOME") && e.contains("owned by uid 65534"),
        "{e}"
    );
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
}

#[test]
fn home_under_a_folder_another_user_owns_is_refused() {
    require_root();
    let d = scratch();
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let home = theirs.join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&theirs, NOBODY);
    let o = jrun_in(&home, d.path(), &["status"]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("above it") && e.contains("uid 65534"), "{e}");
}

#[test]
fn run_folder_writable_by_others_is_refused() {
    require_root();
    let d = scratch();
    let home = d.path().join("home");
    std::fs::create_dir_all(home.join("run")).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = jrun_in(&home, d.path(), &["status"]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("/run is writable by others"), "{e}");
}

#[test]
fn a_planted_spec_link_is_refused() {
    require_root();
    let d = scratch();
    let home = d.path().join("home");
    std::fs::create_dir_all(home.join("run")).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.join("run/services.json")).unwrap();
    let o = jrun_in(&home, d.path(), &["status"]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("services.json is a symbolic link"), "{e}");
}

#[test]
fn dotenv_not_owned_by_root_is_ignored() {
    require_root();
    let d = scratch();
    let home = d.path().join("home");
    // A .env that would break every command if it were read.
    let dotenv = d.path().join(".env");
    std::fs::write(&dotenv, "JRUN_RUNTIME=not-a-runtime\n").unwrap();
    chown(&dotenv, NOBODY);
    let run = || {
        local_env::jrun()
            .args(["status"])
            .current_dir(d.path())
            .env("JRUN_HOME", &home)
            .env_remove("JRUN_RUNTIME")
            .output()
            .unwrap()
    };
    let o = run();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("ignored .env: it is owned by uid 65534"), "{e}");

    // Root's own, writable by root alone: read.
    chown(&dotenv, 0);
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = stderr(&run());
    assert!(e.contains("JRUN_RUNTIME=\"not-a-runtime\""), "{e}");

    // Root's but writable by its group: ignored again.
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o664)).unwrap();
    let o = run();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("others can write it"), "{}", stderr(&o));
}

#[test]
fn supervisor_socket_and_folders_are_private_under_umask_000() {
    require_root();
    let inst = native_support::Instance::new(false);
    let start = inst.command(&["start"]);
    let argv: Vec<String> = std::iter::once(start.get_program())
        .chain(start.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = start
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let o = std::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$@\"", "sh"])
        .args(&argv)
        .envs(envs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o777;
    let home = inst.home.path();
    let socket = std::fs::read_dir(home.join("run"))
        .unwrap()
        .flatten()
        .find(|e| e.file_type().unwrap().is_socket())
        .map(|e| e.path())
        .expect("the control socket");
    use std::os::unix::fs::FileTypeExt;
    assert_eq!(mode(&socket) & 0o077, 0, "{}", socket.display());
    assert_eq!(mode(&home.join("run")), 0o700);
    assert_eq!(mode(&home.join("logs")), 0o700);
    let log = home.join("logs/supervisor.log");
    assert_eq!(mode(&log) & 0o077, 0, "{}", log.display());
    // Nobody but root can connect.
    let nobody_connects = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["python3", "-c"])
        .arg(format!(
            "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?})",
            socket.display().to_string()
        ))
        .output()
        .unwrap();
    assert!(!nobody_connects.status.success(), "nobody could connect");
    assert!(String::from_utf8_lossy(&nobody_connects.stderr).contains("Permission denied"));
}
