//! The stand-in guest (tests/common/standin.rs) boots the way jrun boots the FreeBSD cloud
//! image: `VmRuntime::start` downloads it from a local mirror (`.raw.xz` and
//! `CHECKSUM.SHA512`), grows it, makes the seed and boots it through OVMF under TCG; SSH
//! answers with jrun's key; a script runs through `doas` and its FreeBSD commands land in
//! the shim log; a `daemon` left holding the session does not hang the run; a pf forward
//! answers on its host port; `stop` ends it through the ACPI power button.
//!
//! Needs what standin.rs lists, plus `qemu-system-x86`, `ovmf`, `genisoimage` and the
//! OpenSSH client. A missing part fails the test, never skips it.

mod common;

use common::http::free_port;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jrun_core::config::Proto;
use jrun_core::exec::SystemRunner;
use jrun_core::settings::Settings;
use jrun_vm::qemu::launch::StopOutcome;
use jrun_vm::qemu::HostFwd;
use jrun_vm::render::{Script, StepInfo};
use jrun_vm::runtime::{Started, VmOptions, VmRuntime};
use jrun_vm::ssh::{Progress, RemoteExec};
use sha2::{Digest, Sha512};

fn settings(home: &std::path::Path, ssh_port: u16) -> Settings {
    let vars: HashMap<String, String> = [
        ("JRUN_HOME", home.to_str().unwrap().to_string()),
        ("JRUN_SSH_PORT", ssh_port.to_string()),
        ("JRUN_QEMU_MEMORY", "512M".into()),
        ("JRUN_QEMU_CPUS", "2".into()),
        // Larger than the image: the stand-in must boot after jrun grows its disk.
        ("JRUN_QEMU_DISK_SIZE", "256M".into()),
        ("JRUN_BSD_VERSION", "15.0".into()),
        // TCG runs on any host (a /dev/kvm can exist and still hang guests).
        ("JRUN_QEMU_ACCEL", "tcg".into()),
        // Nothing in a test reaches the internet.
        ("JRUN_RELAY_PEER", "none".into()),
        ("JRUN_RELAY", "http://127.0.0.1:9".into()),
        ("JRUN_BSD_MIRROR", "http://127.0.0.1:9".into()),
        ("JRUN_GITHUB_RAW", "http://127.0.0.1:9".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Settings::from_vars(&vars).unwrap()
}

/// Kills the VM (by the pid it recorded) if the test ends before `stop` did.
struct KillOnDrop(jrun_vm::runtime::VmPaths);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(vm) = jrun_vm::qemu::VmProcess::from_pidfile(&self.0.pidfile(), &self.0.qmp()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(vm.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `text` as root through jrun's executor; returns the lines it printed.
fn run(rt: &VmRuntime, text: &str, steps: &[&str]) -> Vec<String> {
    let script = Script {
        text: text.to_string(),
        steps: steps
            .iter()
            .map(|s| StepInfo {
                jail: None,
                name: s.to_string(),
            })
            .collect(),
    };
    let mut lines = Vec::new();
    let mut seen = 0;
    rt.executor()
        .unwrap()
        .run_script(&script, &mut |p| match p {
            Progress::Output(l) => lines.push(l.to_string()),
            Progress::Step { number, .. } => seen = seen.max(number),
        })
        .unwrap_or_else(|e| panic!("script failed: {e}\n{}", serial(rt)));
    assert_eq!(seen, steps.len(), "every step announced");
    lines
}

fn serial(rt: &VmRuntime) -> String {
    std::fs::read_to_string(rt.paths().serial_log()).unwrap_or_default()
}

fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn standin_boots_like_the_cloud_image_and_records_freebsd_commands() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let image = common::standin::build_image(dir.path());
    let raw = std::fs::read(&image).unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
    drop(raw);
    let name = "FreeBSD-15.0-RELEASE-amd64-BASIC-CLOUDINIT-zfs.raw.xz";
    let hex: String = Sha512::digest(&xz)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = common::http::serve(xz, format!("SHA512 ({name}) = {hex}\n"), None);
    let built = t0.elapsed();

    let home = dir.path().join("home");
    let opts = VmOptions {
        mirror: server.base.clone(),
        stop_deadline: Duration::from_secs(20),
        ssh_deadline: Duration::from_secs(90),
        ..VmOptions::default()
    };
    let rt = VmRuntime::new(&settings(&home, free_port()), Arc::new(SystemRunner), opts);
    // A jail forward, as `jrun up` makes them: host port P to the guest's P, where pf
    // (here the pfctl shim) redirects it.
    let web = free_port();
    let fwd = HostFwd {
        proto: Proto::Tcp,
        host_port: web,
        guest_port: web,
    };
    let _guard = KillOnDrop(rt.paths().clone());
    let started = rt.start(&[fwd], &[], &mut |_| {}).unwrap();
    assert!(matches!(started, Started::Started { .. }), "{started:?}");
    assert_eq!(
        std::fs::metadata(rt.paths().disk()).unwrap().len(),
        256 << 20,
        "grown to JRUN_QEMU_DISK_SIZE"
    );
    assert!(rt.paths().seed().exists());
    rt.wait_for_ssh()
        .unwrap_or_else(|e| panic!("{e}\n{}", serial(&rt)));
    let booted = t0.elapsed();
    assert!(
        serial(&rt).contains(common::standin::READY),
        "{}",
        serial(&rt)
    );

    // A script like jrun's: steps, FreeBSD commands, a daemon left holding the session.
    let script = format!(
        "set -eu\n\
         step() {{ printf 'jrun-step %s\\n' \"$1\"; }}\n\
         step 1\n\
         printf 'rdr pass on vtnet0 inet proto tcp from any to (vtnet0) port {web} -> 10.17.89.10 port 80\\n' > /tmp/x\n\
         pfctl -a jrun/forwards -f /tmp/x\n\
         sysrc -f /etc/rc.conf 'jail_list=web db'\n\
         step 2\n\
         for c in 'jls -j web' 'zfs list -H zroot/jails' 'pkg -j web info -e git' 'service jail status'; do\n\
         \x20   if $c >/dev/null 2>&1; then echo \"rc $c 0\"; else echo \"rc $c $?\"; fi\n\
         done\n\
         echo \"whoami $(id -u)\"\n\
         daemon -f -p /var/run/db.pid /usr/local/bin/db\n\
         daemon -p /var/run/web.pid /usr/local/bin/web\n\
         printf 'jrun-done\\n'\n"
    );
    let t = Instant::now();
    let out = run(&rt, &script, &["firewall", "jails"]);
    let ran = t.elapsed();
    // Held by the daemon, ssh is cut off after jrun-done (ssh.rs AFTER_DONE, 10 s).
    assert!(ran < Duration::from_secs(30), "{ran:?}");
    for want in [
        "rc jls -j web 1",
        "rc zfs list -H zroot/jails 1",
        "rc pkg -j web info -e git 1",
        "rc service jail status 1",
        "whoami 0",
    ] {
        assert!(out.iter().any(|l| l == want), "{want:?} in {out:?}");
    }

    // The shim log, read back over SSH: one TAB-separated line per call.
    let log = run(
        &rt,
        &format!("cat {}\nprintf 'jrun-done\\n'\n", common::standin::SHIM_LOG),
        &[],
    );
    for want in [
        "pfctl\t-a\tjrun/forwards\t-f\t/tmp/x",
        "sysrc\t-f\t/etc/rc.conf\tjail_list=web db",
        "jls\t-j\tweb",
        "daemon\t-f\t-p\t/var/run/db.pid\t/usr/local/bin/db",
        "daemon\t-p\t/var/run/web.pid\t/usr/local/bin/web",
    ] {
        assert!(log.iter().any(|l| l == want), "{want:?} in {log:?}");
    }
    // The forward answers on the host through QEMU's hostfwd.
    let page = http_get(web);
    assert!(page.ends_with(&format!("standin {web}\n")), "{page}");

    let outcome = rt.stop(&mut |_| {}).unwrap();
    assert_eq!(outcome, StopOutcome::PoweredDown, "{}", serial(&rt));
    assert!(serial(&rt).contains(common::standin::POWERDOWN));
    assert!(rt.process().is_none());
    eprintln!(
        "standin: image built and compressed in {built:?}, SSH up at {booted:?}, script {ran:?}, all {:?}",
        t0.elapsed()
    );
}
