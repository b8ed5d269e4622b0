//! `jrun snapshot create|list|rollback|delete` through the real CLI, against the stand-in
//! guest (crates/jrun-vm/tests/common/standin.rs), whose `zfs` shim keeps snapshots as
//! copies of a dataset's folder and refuses to roll back a dataset whose jail runs. A file
//! written in the jail comes back with a rollback; the guest's commands are read back from
//! the shim log. On the native runtime every `snapshot` command exits 3.

mod local_env;
mod standin_flow;

// The vm runtime's test support, shared as files (standin.rs reaches guest.rs as
// `super::guest`, hence both at the root).
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/guest.rs"]
mod guest;
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../jrun-vm/tests/common/standin.rs"]
mod standin;

use http::free_port;
use std::path::Path;

use standin_flow::Flow;

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stack.ucl");
    std::fs::write(
        &path,
        "jail \"web\" {\n  exec { http { cmd = \"python3 -m http.server 8080\"; } }\n}\n",
    )
    .unwrap();
    path
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Position of the first call equal to `call` (fields joined by spaces) in `calls`.
fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c.replace('\t', " ") == call)
        .unwrap_or_else(|| panic!("no call `{call}` in:\n{}", calls.join("\n")))
}

#[test]
fn snapshots_create_list_roll_back_and_delete_in_the_stand_in() {
    let work = tempfile::tempdir().unwrap();
    let image = standin::build_image(work.path());
    let server = http::serve_image(&std::fs::read(&image).unwrap());
    let mirror = server.base.trim_end_matches("/VM-IMAGES").to_string();
    let flow = Flow::new(&[
        ("JRUN_RUNTIME", "vm".into()),
        ("JRUN_BSD_MIRROR", mirror),
        ("JRUN_SSH_PORT", free_port().to_string()),
        ("JRUN_QEMU_MEMORY", "512M".into()),
        ("JRUN_QEMU_CPUS", "2".into()),
        ("JRUN_QEMU_DISK_SIZE", "256M".into()),
        ("JRUN_QEMU_ACCEL", "tcg".into()),
        ("JRUN_VM_BOOT_TIMEOUT", "180".into()),
    ]);

    // Before the VM runs, jails are known from the state only: none yet.
    let err = flow.fails(&["snapshot", "list", "web"], 1);
    assert!(err.contains("there is no jail named \"web\""), "{err}");

    flow.ok(&["start"]);
    flow.ok(&["up", config(work.path()).to_str().unwrap()]);
    let root = "/usr/local/jrun/jails/web";
    flow.guest(&format!("echo v1 > {root}/data.txt"));
    let mark = flow.calls_since(0).len();

    // list, create (named and by the time), list again.
    let out = flow.ok(&["snapshot", "list", "web"]);
    assert!(out.contains("jail `web` has no snapshots"), "{out}");
    let out = flow.ok(&["snapshot", "create", "web", "before"]);
    assert!(
        out.contains("snapshot `before` of jail `web` taken")
            && out.contains("jrun snapshot rollback web before"),
        "{out}"
    );
    let out = flow.ok(&["snapshot", "create", "web"]);
    let stamp = out
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let shape: Vec<usize> = stamp.split(['-', '_']).map(str::len).collect();
    assert_eq!(
        shape,
        [4, 2, 2, 2, 2, 2],
        "a UTC time as Jailrun names it: {stamp}"
    );
    let list = flow.jsonl(&["snapshot", "list", "web", "--json"]);
    assert_eq!(list["jail"], "web");
    assert_eq!(names(&list), ["before", stamp.as_str()]);
    assert_eq!(list["snapshots"][0]["used_bytes"], 12288);
    assert!(list["snapshots"][0]["created"].as_u64().unwrap() > 1_600_000_000);
    let table = flow.ok(&["snapshot", "list", "web"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("name") && lines[0].contains("used") && lines[0].contains("created"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("before ") && lines[1].contains("12K") && lines[1].ends_with("UTC"),
        "{table}"
    );

    // Refusals, before anything reaches the guest.
    let err = flow.fails(&["snapshot", "create", "web", "before"], 1);
    assert!(
        err.contains("already has a snapshot named `before`"),
        "{err}"
    );
    let err = flow.fails(&["snapshot", "create", "web", "a;id"], 2);
    assert!(err.contains("letters, digits"), "{err}");
    let err = flow.fails(&["snapshot", "create", "web", "jrun-copy-x"], 1);
    assert!(err.contains("jrun's own"), "{err}");
    let err = flow.fails(&["snapshot", "create", "nope"], 1);
    assert!(
        err.contains("no jail named \"nope\"") && err.contains("the jails are: web"),
        "{err}"
    );
    let err = flow.fails(&["snapshot", "rollback", "web", "never"], 1);
    assert!(
        err.contains("jail `web` has no snapshot named `never`")
            && err.contains(&format!("its snapshots are: before, {stamp}")),
        "{err}"
    );

    // Rollback: without a terminal and without -y, nothing changes.
    flow.guest(&format!("echo v2 > {root}/data.txt"));
    let err = flow.fails(&["snapshot", "rollback", "web", "before"], 1);
    assert!(
        err.contains("no terminal to confirm on")
            && err.contains("pass -y")
            && err.contains(&format!("destroys the later snapshot `{stamp}`")),
        "{err}"
    );
    assert_eq!(flow.guest(&format!("cat {root}/data.txt")), ["v2"]);
    let before_rollback = flow.calls_since(0).len();
    let out = flow.ok(&["snapshot", "rollback", "web", "before", "-y"]);
    assert!(
        out.contains("jail `web` rolled back to `before` and running (1 later snapshot destroyed)"),
        "{out}"
    );
    assert_eq!(flow.guest(&format!("cat {root}/data.txt")), ["v1"]);
    assert_eq!(
        flow.guest("jls -j web && echo running || echo stopped"),
        ["running"]
    );
    assert_eq!(
        names(&flow.jsonl(&["snapshot", "list", "web", "--json"])),
        ["before"]
    );
    // Stopped, rolled back, started again by an `up` script of the recorded jails.
    let calls = flow.calls_since(before_rollback);
    let stop = position(&calls, "jail -f /etc/jail.conf.d/web.conf -r web");
    let rollback = position(&calls, "zfs rollback -r zroot/jrun/jails/web@before");
    let start = position(&calls, "jail -f /etc/jail.conf.d/web.conf -c web");
    assert!(stop < rollback && rollback < start, "{calls:#?}");

    // Delete: refused without -y, then done; the jail is untouched.
    let err = flow.fails(&["snapshot", "delete", "web", "before"], 1);
    assert!(
        err.contains("Delete snapshot `before` of jail `web`?"),
        "{err}"
    );
    let out = flow.ok(&["snapshot", "delete", "web", "before", "-y"]);
    assert!(
        out.contains("snapshot `before` of jail `web` deleted"),
        "{out}"
    );
    assert!(names(&flow.jsonl(&["snapshot", "list", "web", "--json"])).is_empty());
    let err = flow.fails(&["snapshot", "delete", "web", "before", "-y"], 1);
    assert!(err.contains("has no snapshots"), "{err}");
    assert_eq!(
        flow.guest("jls -j web && echo running || echo stopped"),
        ["running"]
    );

    // Every snapshot call the commands made, in order (the rollback's `up` script only
    // checks that the datasets exist: `zfs list -H <dataset>`).
    let zfs: Vec<String> = flow
        .calls_since(mark)
        .iter()
        .map(|c| c.replace('\t', " "))
        .filter(|c| c.starts_with("zfs ") && (c.contains("web@") || c.contains("-t snapshot")))
        .collect();
    let list =
        "zfs list -H -p -t snapshot -o name,used,creation -s creation -d 1 zroot/jrun/jails/web";
    let expected: Vec<String> = [
        list.to_string(),
        list.into(),
        "zfs snapshot -r zroot/jrun/jails/web@before".into(),
        list.into(),
        format!("zfs snapshot -r zroot/jrun/jails/web@{stamp}"),
        list.into(),
        list.into(),
        list.into(),
        list.into(),
        list.into(),
        list.into(),
        "zfs rollback -r zroot/jrun/jails/web@before".into(),
        list.into(),
        list.into(),
        list.into(),
        "zfs destroy -r zroot/jrun/jails/web@before".into(),
        list.into(),
        list.into(),
    ]
    .into_iter()
    .collect();
    assert_eq!(zfs, expected);

    // A stopped VM: said so.
    flow.ok(&["stop"]);
    let err = flow.fails(&["snapshot", "list", "web"], 1);
    assert!(err.contains("the VM is not running"), "{err}");
}

#[test]
fn the_native_runtime_has_no_snapshots() {
    let flow = Flow::new(&[("JRUN_RUNTIME", "native".into())]);
    for args in [
        &["snapshot", "create", "web"][..],
        &["snapshot", "create", "web", "before"],
        &["snapshot", "list", "web", "--json"],
        &["snapshot", "rollback", "web", "before", "-y"],
        &["snapshot", "delete", "web", "before"],
    ] {
        let err = flow.fails(args, 3);
        assert!(
            err.contains("the native runtime has no snapshots")
                && err.contains("share the host's filesystem")
                && err.contains("JRUN_RUNTIME=vm"),
            "{args:?}: {err}"
        );
    }
    // Nothing was created for it.
    assert!(!flow.home.path().join("state.json").exists());
}
