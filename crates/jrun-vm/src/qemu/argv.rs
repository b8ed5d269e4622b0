//! The QEMU command line, built from typed parts. Paths and values go through
//! [`opt_escape`], QEMU's own escaping for `,` inside an option value.

use std::fmt;
use std::path::PathBuf;

use jrun_core::config::Proto;
use jrun_core::settings::{QemuAccel, Settings};

use crate::render::Share;

/// The guest architecture (the host's, since we accelerate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// `qemu-system-x86_64` or `qemu-system-aarch64`.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The name FreeBSD gives it in release paths (`amd64`, `arm64-aarch64`).
    pub fn freebsd_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64-aarch64",
        }
    }
}

/// Acceleration: the hypervisor of the host OS, with TCG as fallback, unless
/// `JRUN_QEMU_ACCEL` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    /// `kvm:tcg` (Linux).
    Kvm,
    /// `hvf:tcg` (macOS).
    Hvf,
    /// `tcg` (anything else, or when asked).
    Tcg,
    /// The validated list from `JRUN_QEMU_ACCEL`, as given (`tcg` where `/dev/kvm`
    /// exists but hangs guests).
    Chosen(QemuAccel),
}

impl Accel {
    /// What this host should use.
    pub fn for_host() -> Self {
        if cfg!(target_os = "linux") {
            Accel::Kvm
        } else if cfg!(target_os = "macos") {
            Accel::Hvf
        } else {
            Accel::Tcg
        }
    }

    /// `JRUN_QEMU_ACCEL` when set, otherwise what this host should use.
    pub fn from_settings(settings: &Settings) -> Self {
        settings
            .qemu_accel
            .clone()
            .map_or_else(Self::for_host, Accel::Chosen)
    }

    fn arg(&self) -> &str {
        match self {
            Accel::Kvm => "kvm:tcg",
            Accel::Hvf => "hvf:tcg",
            Accel::Tcg => "tcg",
            Accel::Chosen(list) => list.as_str(),
        }
    }
}

/// One `hostfwd`: host `127.0.0.1:<host_port>` reaches the guest's `<guest_port>`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct HostFwd {
    pub proto: Proto,
    pub host_port: u16,
    pub guest_port: u16,
}

impl fmt::Display for HostFwd {
    /// QEMU's rule syntax: `tcp:127.0.0.1:8080-:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:127.0.0.1:{}-:{}",
            self.proto, self.host_port, self.guest_port
        )
    }
}

impl HostFwd {
    /// What `hostfwd_remove` takes: `tcp:127.0.0.1:8080`.
    pub fn remove_spec(&self) -> String {
        format!("{}:127.0.0.1:{}", self.proto, self.host_port)
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// The FreeBSD image through UEFI, with the cloud-init seed as a second disk.
    Disk {
        firmware: PathBuf,
        /// A writable copy of the firmware's variable store, for split CODE/VARS firmware.
        vars: Option<PathBuf>,
        disk: PathBuf,
        seed: Option<PathBuf>,
    },
    /// A kernel and initramfs directly (the Linux test guest).
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayMode {
    #[default]
    Headless,
    Graphic,
    /// No window; the serial console on a socket beside the log (`console.sock`), which
    /// `jrun start --mode tty` attaches to the terminal.
    Tty,
}

/// Everything needed to start the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    pub arch: Arch,
    pub accel: Accel,
    /// QEMU's `-m` syntax (`4096M`, `256`).
    pub memory: String,
    pub cpus: u32,
    pub boot: Boot,
    /// The SSH forward first, then one per jail forward.
    pub hostfwds: Vec<HostFwd>,
    pub shares: Vec<Share>,
    pub qmp_socket: PathBuf,
    pub pidfile: PathBuf,
    /// Where the serial console goes when headless.
    pub serial_log: PathBuf,
    pub display: DisplayMode,
}

/// Where the serial console listens in [`DisplayMode::Tty`]: beside its log.
pub fn console_socket(serial_log: &std::path::Path) -> PathBuf {
    serial_log.with_file_name("console.sock")
}

/// The id of the user-mode network, which `hostfwd_add` names.
pub const NETDEV_ID: &str = "net0";

/// QEMU option values end at `,`; a literal comma is written `,,`.
pub fn opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

fn path(p: &std::path::Path) -> String {
    opt_escape(&p.to_string_lossy())
}

impl QemuSpec {
    /// The arguments after the binary name. The VM daemonizes and writes its pid file.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        let machine = match self.arch {
            Arch::X86_64 => "q35",
            Arch::Aarch64 => "virt",
        };
        push(&["-machine", &format!("{machine},accel={}", self.accel.arg())]);
        // aarch64 `virt` needs a CPU named; on x86_64 QEMU's default model is the one that
        // works everywhere (`host`/`max` can fail under nested KVM on MSRs the host lacks).
        if self.arch == Arch::Aarch64 {
            push(&["-cpu", "max"]);
        }
        push(&["-m", &self.memory, "-smp", &self.cpus.to_string()]);
        match &self.boot {
            Boot::Disk {
                firmware,
                vars,
                disk,
                seed,
            } => {
                push(&[
                    "-drive",
                    &format!("if=pflash,format=raw,readonly=on,file={}", path(firmware)),
                ]);
                if let Some(vars) = vars {
                    push(&[
                        "-drive",
                        &format!("if=pflash,format=raw,file={}", path(vars)),
                    ]);
                }
                push(&[
                    "-drive",
                    &format!("if=virtio,format=raw,cache=writeback,file={}", path(disk)),
                ]);
                if let Some(seed) = seed {
                    push(&[
                        "-drive",
                        &format!("if=virtio,format=raw,readonly=on,file={}", path(seed)),
                    ]);
                }
            }
            Boot::Kernel {
                kernel,
                initrd,
                append,
            } => {
                push(&[
                    "-kernel",
                    &kernel.to_string_lossy(),
                    "-initrd",
                    &initrd.to_string_lossy(),
                ]);
                push(&["-append", append]);
            }
        }
        let mut netdev = format!("user,id={NETDEV_ID}");
        for f in &self.hostfwds {
            netdev.push_str(&format!(",hostfwd={f}"));
        }
        push(&[
            "-netdev",
            &netdev,
            "-device",
            &format!("virtio-net-pci,netdev={NETDEV_ID}"),
        ]);
        // `security_model=none`, as the original: the guest sees the host's own owners and
        // modes (a service user in a jail reads a mounted folder as the host made it), where
        // `mapped-xattr` would keep guest-side owners in xattrs that host tools do not see.
        for s in &self.shares {
            push(&[
                "-virtfs",
                &format!(
                    "local,path={},mount_tag={},security_model=none,id={}",
                    path(&s.host),
                    s.tag,
                    s.tag
                ),
            ]);
        }
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", path(&self.qmp_socket)),
        ]);
        push(&["-pidfile", &self.pidfile.to_string_lossy()]);
        match self.display {
            DisplayMode::Headless => {
                push(&[
                    "-display",
                    "none",
                    "-serial",
                    &format!("file:{}", self.serial_log.to_string_lossy()),
                ]);
                push(&["-monitor", "none", "-daemonize"]);
            }
            DisplayMode::Graphic => push(&["-monitor", "none", "-daemonize"]),
            DisplayMode::Tty => {
                push(&[
                    "-display",
                    "none",
                    "-serial",
                    &format!(
                        "unix:{},server=on,wait=off",
                        path(&console_socket(&self.serial_log))
                    ),
                ]);
                push(&["-monitor", "none", "-daemonize"]);
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> QemuSpec {
        QemuSpec {
            arch: Arch::X86_64,
            accel: Accel::Kvm,
            memory: "4096M".into(),
            cpus: 2,
            boot: Boot::Disk {
                firmware: "/usr/share/OVMF/OVMF_CODE.fd".into(),
                vars: Some("/home/u/.jrun/efivars.fd".into()),
                disk: "/home/u/.jrun/disk,1.raw".into(),
                seed: Some("/home/u/.jrun/seed.iso".into()),
            },
            hostfwds: vec![
                HostFwd {
                    proto: Proto::Tcp,
                    host_port: 2222,
                    guest_port: 22,
                },
                HostFwd {
                    proto: Proto::Udp,
                    host_port: 9125,
                    guest_port: 9125,
                },
            ],
            shares: vec![Share {
                tag: "jrun0".into(),
                host: "/home/u/src".into(),
            }],
            qmp_socket: "/home/u/.jrun/qmp.sock".into(),
            pidfile: "/home/u/.jrun/qemu.pid".into(),
            serial_log: "/home/u/.jrun/serial.log".into(),
            display: DisplayMode::Headless,
        }
    }

    #[test]
    fn full_command_line() {
        let a = spec().argv().join(" ");
        assert_eq!(
            a,
            "-machine q35,accel=kvm:tcg -m 4096M -smp 2 \
             -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
             -drive if=pflash,format=raw,file=/home/u/.jrun/efivars.fd \
             -drive if=virtio,format=raw,cache=writeback,file=/home/u/.jrun/disk,,1.raw \
             -drive if=virtio,format=raw,readonly=on,file=/home/u/.jrun/seed.iso \
             -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:9125-:9125 \
             -device virtio-net-pci,netdev=net0 \
             -virtfs local,path=/home/u/src,mount_tag=jrun0,security_model=none,id=jrun0 \
             -qmp unix:/home/u/.jrun/qmp.sock,server=on,wait=off -pidfile /home/u/.jrun/qemu.pid \
             -display none -serial file:/home/u/.jrun/serial.log -monitor none -daemonize"
        );
    }

    #[test]
    fn tty_puts_the_console_on_a_socket() {
        let mut s = spec();
        s.display = DisplayMode::Tty;
        let a = s.argv().join(" ");
        assert!(
            a.contains("-display none -serial unix:/home/u/.jrun/console.sock,server=on,wait=off -monitor none -daemonize"),
            "{a}"
        );
    }

    #[test]
    fn tcg_and_graphic() {
        let mut s = spec();
        s.accel = Accel::Tcg;
        s.display = DisplayMode::Graphic;
        let a = s.argv();
        assert!(a.contains(&"q35,accel=tcg".to_string()));
        assert!(!a.contains(&"-cpu".to_string()));
        assert!(!a.contains(&"none".to_string()) || a.iter().filter(|x| *x == "none").count() == 1);
        assert!(!a.iter().any(|x| x.starts_with("file:")));
    }

    #[test]
    fn jrun_qemu_accel_replaces_the_platform_default() {
        let settings = |accel: Option<&str>| {
            let mut vars: std::collections::HashMap<String, String> =
                [("HOME".to_string(), "/home/u".to_string())].into();
            if let Some(a) = accel {
                vars.insert("JRUN_QEMU_ACCEL".into(), a.into());
            }
            Settings::from_vars(&vars).unwrap()
        };
        let machine = |accel: Accel| {
            let mut s = spec();
            s.accel = accel;
            let a = s.argv();
            let i = a.iter().position(|x| x == "-machine").unwrap();
            a[i + 1].clone()
        };
        // Unset: the platform's choice.
        assert_eq!(Accel::from_settings(&settings(None)), Accel::for_host());
        if cfg!(target_os = "linux") {
            assert_eq!(
                machine(Accel::from_settings(&settings(None))),
                "q35,accel=kvm:tcg"
            );
        }
        // Set: exactly that list, in that order, and nothing else changes.
        for (env, want) in [
            ("tcg", "q35,accel=tcg"),
            ("kvm", "q35,accel=kvm"),
            ("tcg:kvm", "q35,accel=tcg:kvm"),
        ] {
            let accel = Accel::from_settings(&settings(Some(env)));
            assert_eq!(machine(accel.clone()), want);
            let mut chosen = spec();
            chosen.accel = accel;
            let mut default = spec();
            default.accel = Accel::Kvm;
            let differ: Vec<_> = chosen
                .argv()
                .into_iter()
                .zip(default.argv())
                .filter(|(a, b)| a != b)
                .collect();
            assert_eq!(differ.len(), 1, "{env}: only -machine changes");
        }
    }

    #[test]
    fn hostfwd_specs() {
        let f = HostFwd {
            proto: Proto::Tcp,
            host_port: 8080,
            guest_port: 80,
        };
        assert_eq!(f.to_string(), "tcp:127.0.0.1:8080-:80");
        assert_eq!(f.remove_spec(), "tcp:127.0.0.1:8080");
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A small spec with every path under `dir`.
    pub fn spec_in(dir: &std::path::Path) -> QemuSpec {
        QemuSpec {
            arch: Arch::host(),
            accel: Accel::Tcg,
            memory: "64".into(),
            cpus: 1,
            boot: Boot::Kernel {
                kernel: dir.join("k"),
                initrd: dir.join("i"),
                append: String::new(),
            },
            hostfwds: vec![],
            shares: vec![],
            qmp_socket: dir.join("qmp.sock"),
            pidfile: dir.join("qemu.pid"),
            serial_log: dir.join("serial.log"),
            display: DisplayMode::Headless,
        }
    }
}
