//! `jrun start` on the vm runtime, through the real CLI: the image comes from a local
//! mirror (`JRUN_BSD_MIRROR`), QEMU boots it. The image here is a blank disk with no OS,
//! so SSH never answers: `start` must show its progress, give up after
//! `JRUN_VM_BOOT_TIMEOUT` with the console's last lines, and leave no VM running.

mod local_env;

#[path = "../../jrun-vm/tests/common/http.rs"]
mod http;

use http::free_port;

fn jrun(home: &std::path::Path, mirror: &str, args: &[&str]) -> std::process::Output {
    local_env::jrun()
        .args(args)
        .env("JRUN_HOME", home)
        .env("JRUN_RUNTIME", "vm")
        .env("JRUN_BSD_MIRROR", mirror)
        .env("JRUN_SSH_PORT", free_port().to_string())
        .env("JRUN_QEMU_MEMORY", "256")
        .env("JRUN_QEMU_CPUS", "1")
        .env("JRUN_QEMU_DISK_SIZE", "64M")
        .env("JRUN_QEMU_ACCEL", "tcg")
        .env("JRUN_VM_BOOT_TIMEOUT", "4")
        .env("JRUN_RELAY", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

#[test]
fn start_downloads_boots_and_gives_up_cleanly_when_ssh_never_answers() {
    let home = tempfile::tempdir().unwrap();
    let server = http::serve_image(&vec![0u8; 1 << 20]);
    // JRUN_BSD_MIRROR is the download tree's root; the images are under releases/VM-IMAGES.
    let mirror = server.base.trim_end_matches("/VM-IMAGES").to_string();

    let out = jrun(home.path(), &mirror, &["start"]);
    // miette wraps and frames long messages: compare words, not layout.
    let err = String::from_utf8_lossy(&out.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("downloading the FreeBSD image"), "{err}");
    assert!(err.contains("booting (SSH on 127.0.0.1:"), "{err}");
    assert!(err.contains("did not answer on SSH"), "{err}");
    assert!(err.contains("within 4 s"), "{err}");
    assert!(err.contains("the VM was stopped"), "{err}");
    assert!(err.contains("JRUN_VM_BOOT_TIMEOUT"), "{err}");
    assert!(
        !server.ranges.lock().unwrap().is_empty(),
        "the image came from the mirror"
    );

    // Nothing keeps running; status says so, and the image is kept for the next start.
    let status = jrun(home.path(), &mirror, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["instance"]["running"], false, "{json}");
}
