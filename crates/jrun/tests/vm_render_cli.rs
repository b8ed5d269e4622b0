//! `jrun render`: every file the FreeBSD guest would receive, for the realistic stack of
//! tests/fixtures/plan, written to a folder or printed for review.

mod local_env;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/plan/stack.ucl")
        .canonicalize()
        .unwrap()
}

fn jrun(home: &Path, args: &[&str]) -> Output {
    local_env::jrun()
        .args(args)
        .env_clear()
        .envs(local_env::LOCAL_ENV.iter().copied())
        .env("HOME", home)
        .env("JRUN_HOME", home.join("jrun"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(home)
        .output()
        .unwrap()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn writes_every_guest_file_for_review() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("review");
    let cfg = stack();
    let out = jrun(
        home.path(),
        &[
            "render",
            cfg.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(files_under(&out_dir).join("\n"));

    let script = std::fs::read_to_string(out_dir.join("provision.sh")).unwrap();
    let check = Command::new("sh")
        .arg("-n")
        .arg(out_dir.join("provision.sh"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for secret in [
        "provision.sh",
        "vm/yggdrasil-private.pem",
        "jails/api/yggdrasil-private.pem",
    ] {
        let mode = std::fs::metadata(out_dir.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
    // The stack's forwards reach pf; its records reach unbound; api is copied from python.
    let anchor = std::fs::read_to_string(out_dir.join("vm/forwards.pf")).unwrap();
    assert!(anchor.contains("port 8000 -> 10.17.89."));
    assert!(anchor.contains("port 6432 -> 10.17.89.20 port 5432"));
    let dns = std::fs::read_to_string(out_dir.join("vm/unbound-jrun.conf")).unwrap();
    assert!(dns.contains("\"postgres.local.jrun. 60 IN A 10.17.89.20\""));
    assert!(script.contains("zfs send 'zroot/jrun/jails/python@jrun-copy-api' | zfs receive -o mountpoint='/usr/local/jrun/jails/api' 'zroot/jrun/jails/api'"));

    // Keys are kept: a second render gives the same Yggdrasil configs.
    let again = home.path().join("again");
    assert!(jrun(
        home.path(),
        &[
            "render",
            cfg.to_str().unwrap(),
            "--out",
            again.to_str().unwrap()
        ]
    )
    .status
    .success());
    for f in [
        "vm/yggdrasil-private.pem",
        "jails/web/yggdrasil-private.pem",
        "provision.sh",
    ] {
        assert_eq!(
            std::fs::read(out_dir.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn prints_reviewable_files_without_keys() {
    let home = tempfile::tempdir().unwrap();
    let cfg = stack();
    let out = jrun(home.path(), &["render", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("==> vm/pf.conf (/etc/pf.conf) <=="));
    assert!(stdout.contains("==> jails/web/jail.conf (/etc/jail.conf.d/web.conf) <=="));
    assert!(!stdout.contains("PRIVATE KEY"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out DIR"));
}

#[test]
fn an_invalid_config_fails_before_anything_is_written() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("bad.ucl");
    std::fs::write(&cfg, "jail \"Bad Name\" { }\n").unwrap();
    let out_dir = home.path().join("review");
    let out = jrun(
        home.path(),
        &[
            "render",
            cfg.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(!out_dir.exists());
}

/// As in Jailrun, the VM's Yggdrasil node peers with the public relay's node unless
/// `JRUN_RELAY_PEER` says otherwise (`none`: nobody). Rendering only: nothing dials out.
#[test]
fn the_vm_node_peers_with_the_public_relay_node_by_default() {
    let home = tempfile::tempdir().unwrap();
    let cfg = stack();
    let render = |peer: Option<&str>, dir: &str| {
        let out_dir = home.path().join(dir);
        let mut cmd = local_env::jrun();
        cmd.args(["render", cfg.to_str().unwrap(), "--out"])
            .arg(&out_dir)
            .env("HOME", home.path())
            .env("JRUN_HOME", home.path().join("jrun"))
            .env_remove("JRUN_RELAY_PEER");
        if let Some(p) = peer {
            cmd.env("JRUN_RELAY_PEER", p);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(out_dir.join("vm/yggdrasil.conf")).unwrap()
    };
    let default = render(None, "default");
    assert!(
        default.contains("\"tcp://relay.jail.run:37100\""),
        "{default}"
    );
    let none = render(Some("none"), "none");
    assert!(!none.contains("relay.jail.run"), "{none}");
    let local = render(Some("tcp://127.0.0.1:37100"), "local");
    assert!(local.contains("\"tcp://127.0.0.1:37100\""), "{local}");
}
