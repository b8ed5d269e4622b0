//! QEMU for real: a tiny Linux guest booted by jrun's own launcher. Proves that the
//! boot-time hostfwd reaches the guest, a forward added through QMP reaches it without a
//! reboot, a removed one stops, and `stop` powers the guest down through ACPI.

mod common;

use common::http::free_port;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use jrun_core::config::Proto;
use jrun_vm::qemu::launch::StopOutcome;
use jrun_vm::qemu::{Accel, Arch, Boot, DisplayMode, HostFwd, Qemu, QemuSpec, VmProcess};

/// Kills the VM if the test ends before it stopped.
struct Kill(VmProcess);

impl Drop for Kill {
    fn drop(&mut self) {
        if self.0.is_alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The body of `GET /` on 127.0.0.1:port, if something answered.
fn http_get(port: u16) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(2))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: guest\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
}

fn wait_for_body(port: u16, want: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if http_get(port).as_deref() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

fn count(log: &Path, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(what)
        .count()
}

/// Boots with KVM when it runs the guest kernel; otherwise (no /dev/kvm, or a nested
/// KVM that hangs the kernel, as on some CI hosts) with TCG.
fn boot(spec: &mut QemuSpec) -> (VmProcess, Kill) {
    let kvm_present = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm_present {
        spec.accel = Accel::Kvm;
        let vm = Qemu::launch(spec, None).expect("QEMU starts (install qemu-system-x86)");
        let guard = Kill(vm.clone());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if count(&spec.serial_log, "Linux version") > 0 {
                eprintln!("booting with KVM");
                return (vm, guard);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("KVM did not run the guest kernel within 20 s; using TCG");
        drop(guard);
        while vm.is_alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    spec.accel = Accel::Tcg;
    let vm = Qemu::launch(spec, None).expect("QEMU starts (install qemu-system-x86)");
    let guard = Kill(vm.clone());
    (vm, guard)
}

#[test]
fn guest_boots_forwards_live_and_powers_down() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::guest::build(dir.path());
    let (boot_port, live_port) = (free_port(), free_port());
    let mut spec = QemuSpec {
        arch: Arch::host(),
        accel: Accel::Kvm,
        memory: "256".into(),
        cpus: 1,
        boot: Boot::Kernel {
            kernel: guest.kernel,
            initrd: guest.initrd,
            append: "console=ttyS0 panic=-1".into(),
        },
        hostfwds: vec![HostFwd {
            proto: Proto::Tcp,
            host_port: boot_port,
            guest_port: 80,
        }],
        shares: vec![],
        qmp_socket: dir.path().join("qmp.sock"),
        pidfile: dir.path().join("qemu.pid"),
        serial_log: dir.path().join("serial.log"),
        display: DisplayMode::Headless,
    };
    let (vm, _guard) = boot(&mut spec);
    let log = &spec.serial_log;

    // The boot-time forward reaches the guest's HTTP server.
    let booted = wait_for_body(boot_port, "boot-forward", Duration::from_secs(180));
    assert!(
        booted,
        "guest never answered on the boot-time forward; serial log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let start = Instant::now();
    while count(log, "JRUN-GUEST-READY") == 0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        count(log, "JRUN-GUEST-READY"),
        1,
        "the guest's init finished once"
    );

    // No forward yet on the second port.
    assert_eq!(http_get(live_port), None);

    // Added live through QMP: it reaches the guest, and the guest did not reboot.
    let live = HostFwd {
        proto: Proto::Tcp,
        host_port: live_port,
        guest_port: 81,
    };
    let mut qmp = vm.qmp().unwrap();
    qmp.hostfwd_add(&live).unwrap();
    assert!(wait_for_body(
        live_port,
        "live-forward",
        Duration::from_secs(20)
    ));
    assert_eq!(
        count(log, "JRUN-GUEST-READY"),
        1,
        "the guest did not restart"
    );

    // Removed: the port no longer reaches it; the boot-time one still does.
    qmp.hostfwd_remove(&live).unwrap();
    assert_eq!(http_get(live_port), None);
    assert_eq!(http_get(boot_port).as_deref(), Some("boot-forward"));
    // Removing twice is an error QEMU reports.
    assert!(qmp.hostfwd_remove(&live).is_err());
    drop(qmp);

    // Graceful stop: ACPI power button, the guest powers itself off within the deadline.
    let mut ticks = 0;
    let outcome = vm.stop(Duration::from_secs(60), |_| ticks += 1).unwrap();
    assert_eq!(
        outcome,
        StopOutcome::PoweredDown,
        "serial log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert_eq!(count(log, "JRUN-GUEST-POWERDOWN"), 1);
    assert!(!vm.is_alive());
    assert!(!spec.pidfile.exists());
}
