//! A tiny Linux test guest from Debian's packages: the installed kernel, a busybox
//! initramfs built here (newc cpio, written in Rust), and an init that serves HTTP on
//! ports 80 and 81 and powers off when the ACPI power button is pressed.
//!
//! CI needs: `linux-image-cloud-amd64` (or `linux-image-amd64`), `busybox-static`,
//! `qemu-system-x86`. A missing part is a test failure, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Modules the guest needs: virtio PCI and net, the ACPI button and evdev to see it.
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "button", "evdev"];

pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/modules/$m" || echo "insmod $m failed"; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /www80 /www81
echo boot-forward > /www80/index.html
echo live-forward > /www81/index.html
httpd -p 80 -h /www80
httpd -p 81 -h /www81
sleep 1
for d in /sys/class/input/input*; do
    if grep -q "Power Button" "$d/name" 2>/dev/null; then
        for e in "$d"/event*; do
            ev="${e##*/}"
            (head -c 24 "/dev/input/$ev" >/dev/null && echo JRUN-GUEST-POWERDOWN && poweroff -f) &
        done
    fi
done
echo JRUN-GUEST-READY
while true; do sleep 60; done
"#;

/// Builds the guest into `dir`; panics (fails the test) with what to install if it can't.
pub fn build(dir: &Path) -> Guest {
    let kernel = newest_kernel().expect(
        "no kernel with modules in /boot and /lib/modules: install linux-image-cloud-amd64 (or linux-image-amd64)",
    );
    let version = kernel
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let mod_dir = Path::new("/lib/modules").join(&version);
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox is missing: install busybox-static");
    assert!(
        is_static(&busybox),
        "/bin/busybox is dynamically linked: install busybox-static"
    );

    let order = module_order(&mod_dir, MODULES);
    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "modules", "www80", "www81"] {
        cpio.dir(d);
    }
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, INIT.as_bytes());
    let mut names = String::new();
    for rel in &order {
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        cpio.file(
            &format!("modules/{name}"),
            0o644,
            &std::fs::read(mod_dir.join(rel)).unwrap(),
        );
        names.push_str(name);
        names.push('\n');
    }
    cpio.file("modules.order", 0o644, names.as_bytes());
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, cpio.finish()).unwrap();
    Guest { kernel, initrd }
}

pub fn newest_kernel() -> Option<PathBuf> {
    let mut ks: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
                && Path::new("/lib/modules")
                    .join(
                        p.file_name()
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .trim_start_matches("vmlinuz-"),
                    )
                    .join("modules.dep")
                    .is_file()
        })
        .collect();
    ks.sort();
    ks.pop()
}

pub fn is_static(elf: &[u8]) -> bool {
    // A static executable has no PT_INTERP program header; the interpreter path would
    // otherwise appear near the start of the file.
    !elf[..elf.len().min(4096)]
        .windows(14)
        .any(|w| w == b"/lib64/ld-linu")
}

/// Module paths (relative to the module dir) for `wanted`, dependencies before dependants.
pub fn module_order(mod_dir: &Path, wanted: &[&str]) -> Vec<String> {
    let dep = std::fs::read_to_string(mod_dir.join("modules.dep")).expect("modules.dep");
    let table: BTreeMap<String, Vec<String>> = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                m.to_string(),
                deps.split_whitespace().map(String::from).collect(),
            )
        })
        .collect();
    let builtin = std::fs::read_to_string(mod_dir.join("modules.builtin")).unwrap_or_default();
    fn visit(m: &str, table: &BTreeMap<String, Vec<String>>, out: &mut Vec<String>) {
        if out.iter().any(|o| o == m) {
            return;
        }
        for d in table.get(m).into_iter().flatten() {
            visit(d, table, out);
        }
        out.push(m.to_string());
    }
    let mut out = Vec::new();
    for name in wanted {
        let stem = |k: &str| {
            Path::new(k)
                .file_name()
                .and_then(|s| s.to_str())
                .map(|s| s.split('.').next().unwrap_or(s).replace('-', "_"))
        };
        match table.keys().find(|k| stem(k).as_deref() == Some(*name)) {
            Some(m) => visit(&m.clone(), &table, &mut out),
            // Built into this kernel: nothing to load.
            None if builtin.lines().any(|l| stem(l).as_deref() == Some(*name)) => {}
            None => panic!("kernel module {name} not found in {}", mod_dir.display()),
        }
    }
    out
}

/// A newc cpio archive writer: enough for an initramfs.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    pub fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}
