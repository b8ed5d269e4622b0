//! Rendered files checked by the real tools: `sh -n`, `unbound-checkconf`,
//! `yggdrasil -normaliseconf`; and the provisioning script run against recording stubs.

mod common;

use std::process::Command;

use jrun_vm::render::{render_all, unbound_include, GuestFile};
use jrun_vm::spec::YggVersion;

fn sh_n(text: &str, what: &str) {
    let out = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(text)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: sh -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_generated_script_parses() {
    let r = render_all(&common::stack(YggVersion::V0_5), &common::sources()).unwrap();
    sh_n(&r.script.text, "provision.sh");
    let scripts: Vec<&GuestFile> = r
        .files
        .iter()
        .filter(|f| f.content.starts_with("#!/bin/sh"))
        .collect();
    assert_eq!(
        scripts.len(),
        4,
        "one rc script per jail, and the VM's shares"
    );
    for f in &scripts {
        sh_n(&f.content, &f.review_path);
        shellcheck(&f.content, &f.review_path);
    }
    shellcheck(&r.script.text, "provision.sh");
    let files = jrun_vm::render::guest_files(&common::stack(YggVersion::V0_5)).unwrap();
    let pairing = jrun_vm::render::pairing_script(&common::stack(YggVersion::V0_5), &files);
    sh_n(&pairing.text, "pairing.sh");
    shellcheck(&pairing.text, "pairing.sh");
}

/// `shellcheck -s sh` (Debian's package) finds no error and no warning. Infos and
/// style notes are left to it; the rc scripts source FreeBSD's /etc/rc.subr, which is
/// not here (SC1091), and use variables rc.subr reads (SC2034).
fn shellcheck(text: &str, what: &str) {
    use std::io::Write;
    let mut child = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning", "-e", "SC1091,SC2034", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("shellcheck is installed (scripts/install-deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn unbound_accepts_the_include() {
    let spec = common::stack(YggVersion::V0_5);
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("jrun.conf");
    std::fs::write(&inc, unbound_include(&spec.dns, &spec.upstream_dns)).unwrap();
    // The shape of FreeBSD's local-unbound-setup config, minus its chroot.
    let main = format!(
        "server:\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    auto-trust-anchor-file: \"\"\ninclude: \"{i}\"\n",
        d = dir.path().display(),
        i = inc.display()
    );
    let conf = dir.path().join("unbound.conf");
    std::fs::write(&conf, main).unwrap();
    let out = Command::new("unbound-checkconf")
        .arg(&conf)
        .output()
        .expect("unbound-checkconf is installed");
    assert!(
        out.status.success(),
        "unbound-checkconf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It parsed our records: checkconf can print a resolved option back.
    let zones = Command::new("unbound-checkconf")
        .arg("-o")
        .arg("access-control")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(zones.status.success());
}

#[test]
fn installed_yggdrasil_accepts_its_configs() {
    let version = Command::new("yggdrasil")
        .arg("-genconf")
        .output()
        .expect("yggdrasil is installed");
    let genconf = String::from_utf8_lossy(&version.stdout);
    let v = if genconf.contains("PrivateKeyPath") {
        YggVersion::V0_5
    } else {
        YggVersion::V0_4
    };
    let r = render_all(&common::stack(v), &common::sources()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for f in r
        .files
        .iter()
        .filter(|f| f.review_path.ends_with("yggdrasil.conf"))
    {
        let mut text = f.content.clone();
        if v == YggVersion::V0_5 {
            // Point the key at a real file for the check.
            let pem = r
                .files
                .iter()
                .find(|k| {
                    k.secret
                        && k.guest_path.replace("private.pem", "")
                            == f.guest_path.replace("yggdrasil.conf", "yggdrasil/")
                })
                .unwrap();
            let key = dir.path().join(format!("{checked}.pem"));
            std::fs::write(&key, &pem.content).unwrap();
            text = text.replace(jrun_vm::render::YGG_KEY_PATH, key.to_str().unwrap());
        }
        let p = dir.path().join(format!("{checked}.conf"));
        std::fs::write(&p, &text).unwrap();
        let out = Command::new("yggdrasil")
            .arg("-useconffile")
            .arg(&p)
            .arg("-normaliseconf")
            .arg("-json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.review_path,
            String::from_utf8_lossy(&out.stderr)
        );
        let norm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mine: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "Peers",
            "Listen",
            "IfName",
            "AdminListen",
            "MulticastInterfaces",
        ] {
            assert_eq!(
                norm[key], mine[key],
                "{}: {key} survives normalisation",
                f.review_path
            );
        }
        // The key it derives its address from is the one jrun holds.
        let addr = Command::new("yggdrasil")
            .arg("-useconffile")
            .arg(&p)
            .arg("-address")
            .output()
            .unwrap();
        assert!(addr.status.success());
        assert!(String::from_utf8_lossy(&addr.stdout)
            .trim()
            .starts_with('2'));
        checked += 1;
    }
    assert_eq!(checked, 4);
}

fn at_call(calls: &[Vec<String>], want: &[&str]) -> Option<usize> {
    calls.iter().position(|c| c == want)
}

#[test]
fn the_script_installs_exactly_the_rendered_files() {
    let spec = common::stack(YggVersion::V0_5);
    let r = render_all(&spec, &common::sources()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = common::sandbox::run(&r.script.text, dir.path());
    let installed = run.files_map();
    for f in &r.files {
        assert_eq!(
            installed.get(&f.guest_path),
            Some(&f.content),
            "{}",
            f.guest_path
        );
    }
    // Every step was announced, in order, and the script finished.
    let announced: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("jrun-step "))
        .collect();
    let expected: Vec<String> = (1..=r.script.steps.len()).map(|n| n.to_string()).collect();
    assert_eq!(announced, expected);
    assert!(run.stdout.ends_with("jrun-done\n"));
    // New jails are created from their release, the clone from its base, and started.
    let start = |n: &str| -> Vec<String> {
        ["jail", "-f", &format!("/etc/jail.conf.d/{n}.conf"), "-c", n]
            .map(String::from)
            .to_vec()
    };
    assert!(run.calls.contains(&start("web")), "{:?}", run.calls);
    // The copy of a base is a full one (send | receive), never a clone tied to it.
    assert!(run
        .calls
        .iter()
        .any(|c| c.starts_with(&["zfs".into(), "receive".into()])
            && c.last().unwrap() == "zroot/jrun/jails/worker"));
    assert!(!run
        .calls
        .iter()
        .any(|c| c.starts_with(&["zfs".into(), "clone".into()])));
    assert!(run
        .calls
        .iter()
        .any(|c| c[0] == "fetch" && c[3].contains("14.3-RELEASE")));
    // The setup of a new jail runs with its vars as one argument each.
    assert!(run.calls.iter().any(|c| c.starts_with(&[
        "jexec".into(),
        "postgres".into(),
        "env".into(),
        "-i".into(),
    ]) && c.contains(&"PG_VERSION=17".to_string())
        && c.last().unwrap() == "cd '/var/jrun/setup/0' && exec /bin/sh './postgres.sh'"));
    // An ansible step (web's hub playbook) checks for ansible-core in the running jail
    // (here the stub answers "installed"), brings its folder, and runs against the jail
    // itself.
    let ansible_check = at_call(
        &run.calls,
        &[
            "jexec",
            "web",
            "test",
            "-x",
            "/usr/local/bin/ansible-playbook",
        ],
    );
    let ansible_run = run.calls.iter().position(|c| c.len() > 2 && c[..2] == ["jexec", "web"]
        && c.last().unwrap() == "cd '/var/jrun/setup/0' && exec ansible-playbook -i localhost, -c local './playbook.yml' -e @'/var/jrun/setup/0.vars.json'"
        && c.contains(&"ANSIBLE_NOCOLOR=1".to_string()));
    assert!(
        ansible_check.is_some() && ansible_run > ansible_check,
        "{:?}",
        run.calls
    );
    assert_eq!(
        installed
            .get("/usr/local/jrun/jails/web/var/jrun/setup/0/templates/nginx.conf.j2")
            .map(String::as_str),
        Some("server { listen {{ NGINX_LISTEN_PORT }}; }\n")
    );
    // A jail's packages go in only through the running jail (`pkg -j`), after it started
    // and its firewall is up; never by its root folder (`pkg -c`, chroot), where the
    // jail's own /bin/sh would run as VM root.
    let at = |want: &[&str]| run.calls.iter().position(|c| c == want);
    assert!(
        at(&["pkg", "install", "-y", "yggdrasil"]).is_some(),
        "the VM's node"
    );
    for j in &spec.jails {
        let n = j.name.as_str();
        let install = at(&["pkg", "-j", n, "install", "-y", "yggdrasil"])
            .unwrap_or_else(|| panic!("{n}: no `pkg -j {n} install`"));
        assert_eq!(
            at(&["pkg", "-j", n, "info", "-e", "yggdrasil"]),
            Some(install - 1)
        );
        let conf = format!("/etc/jail.conf.d/{n}.conf");
        let started = at(&["jail", "-f", &conf, "-c", n]).unwrap();
        let firewalled = at(&["jexec", n, "pfctl", "-f", "/etc/pf.conf"]).unwrap();
        assert!(started < firewalled && firewalled < install, "{n}: order");
        assert!(at(&["jexec", n, "service", "yggdrasil", "status"]) > Some(install));
        // Jailrun's jails have python3.13; services and playbooks rely on it.
        let python = at(&["pkg", "-j", n, "install", "-y", "python313"])
            .unwrap_or_else(|| panic!("{n}: no python313"));
        assert!(
            python > firewalled,
            "{n}: python313 goes in through the running jail"
        );
    }
    let root_dir = jrun_vm::paths::JAILS_DIR;
    for c in run.calls.iter().filter(|c| c[0] == "pkg") {
        assert!(!c.contains(&"-c".to_string()), "{c:?}");
        assert!(!c.iter().any(|a| a.contains(root_dir)), "{c:?}");
    }
    // Nothing enters a jail's root from outside (`pkg -c`, `chroot ROOT`): the only chroot
    // is an exec's health check as its `user` (`chroot -u USER … / /bin/sh -c`), which the
    // jail's own rc script runs inside the jail, to the jail's own root.
    assert!(!r.script.text.contains("pkg -c"));
    for l in r.script.text.lines().filter(|l| l.contains("chroot")) {
        assert!(
            l.contains("chroot -u ") && l.contains(" / /bin/sh -c "),
            "{l}"
        );
    }
    // The removed jail's config goes (its dataset too, when it exists).
    assert!(run
        .calls
        .iter()
        .any(|c| c.starts_with(&["rm".into(), "-f".into()])
            && c[2] == "/etc/jail.conf.d/oldjail.conf"));
}

#[test]
fn a_pairing_changes_only_records_and_mesh_firewalls() {
    let mut spec = common::stack(YggVersion::V0_5);
    // A pairing was dropped: its records and addresses go.
    spec.dns
        .0
        .retain(|r| !r.name.to_string().contains("7-amber-river-stone"));
    for j in &mut spec.jails {
        j.firewall.mesh_peers.remove(&common::ygg(common::PEER_C));
    }
    let files = jrun_vm::render::guest_files(&spec).unwrap();
    let script = jrun_vm::render::pairing_script(&spec, &files);
    sh_n(&script.text, "pairing script");
    let dir = tempfile::tempdir().unwrap();
    let run = common::sandbox::run(&script.text, dir.path());
    let installed: Vec<&str> = run.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        installed,
        [
            "/var/unbound/conf.d/jrun.conf",
            "/usr/local/jrun/jails/postgres/etc/pf.conf",
            "/usr/local/jrun/jails/web/etc/pf.conf",
            "/usr/local/jrun/jails/worker/etc/pf.conf"
        ]
    );
    let map = run.files_map();
    assert!(!map["/var/unbound/conf.d/jrun.conf"].contains("7-amber-river-stone"));
    assert!(!map["/usr/local/jrun/jails/web/etc/pf.conf"].contains(common::PEER_C));
    assert!(map["/usr/local/jrun/jails/web/etc/pf.conf"].contains(common::PEER_A));
    let steps: Vec<String> = script.steps.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        steps,
        [
            "vm: dns",
            "jail postgres: mesh firewall",
            "jail web: mesh firewall",
            "jail worker: mesh firewall"
        ]
    );
}

/// A jail that planted a link where jrun writes (its `/etc`, or `/etc/pf.conf`) must not
/// make VM root write outside the jail: the pairing script stops at that jail's step and
/// the link's target is untouched; jails without links get their file, written for real.
#[test]
fn a_jail_planted_link_does_not_redirect_a_write() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let spec = common::stack(YggVersion::V0_5);
    let files = jrun_vm::render::guest_files(&spec).unwrap();
    let script = jrun_vm::render::pairing_script(&spec, &files);
    let steps: Vec<String> = script.steps.iter().map(|s| s.to_string()).collect();

    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("loader.conf");
    std::fs::write(&victim, "precious\n").unwrap();
    let pf = |j: &str| {
        files
            .iter()
            .find(|f| f.guest_path == format!("/usr/local/jrun/jails/{j}/etc/pf.conf"))
            .unwrap()
            .content
            .clone()
    };

    // 1. postgres (the first jail) made its /etc/pf.conf a link to the VM's file.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("jails/postgres/etc");
    std::fs::create_dir_all(&etc).unwrap();
    symlink(&victim, etc.join("pf.conf")).unwrap();
    let out = common::sandbox::run_real_jail_writes(&script.text, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the write through a link is refused");
    let failed = steps
        .iter()
        .position(|s| s == "jail postgres: mesh firewall")
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("jrun-failed {failed} ")),
        "{stderr}"
    );
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(etc.join("pf.conf"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_dir(&etc).unwrap().count(),
        1,
        "no temp file left"
    );

    // 2. web made its whole /etc a link to a VM folder; postgres and worker are clean.
    let dir = tempfile::tempdir().unwrap();
    let jails = dir.path().join("jails");
    for j in ["postgres", "web", "worker"] {
        std::fs::create_dir_all(jails.join(j)).unwrap();
    }
    symlink(outside.path(), jails.join("web/etc")).unwrap();
    let out = common::sandbox::run_real_jail_writes(&script.text, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let failed = steps
        .iter()
        .position(|s| s == "jail web: mesh firewall")
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("jrun-failed {failed} ")),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["loader.conf"],
        "nothing written into the link's target"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // The jail before it was written for real, with its mode.
    let written = jails.join("postgres/etc/pf.conf");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), pf("postgres"));
    let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
    let rendered = files
        .iter()
        .find(|f| f.guest_path.ends_with("/postgres/etc/pf.conf"))
        .unwrap();
    assert_eq!(mode, rendered.mode);

    // 3. Without links every jail's file lands (each jail root exists: its dataset).
    let dir = tempfile::tempdir().unwrap();
    for j in ["postgres", "web", "worker"] {
        std::fs::create_dir_all(dir.path().join("jails").join(j)).unwrap();
    }
    let out = common::sandbox::run_real_jail_writes(&script.text, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for j in ["postgres", "web", "worker"] {
        let p = dir.path().join(format!("jails/{j}/etc/pf.conf"));
        assert_eq!(std::fs::read_to_string(p).unwrap(), pf(j));
    }
}

mod pf_model;

/// The VM's pf.conf, asked through a model of pf's rule evaluation (`pf_model`): a jail
/// reaches the resolver and the mesh listener on the bridge address, and the world, but
/// neither QEMU's user network (10.0.2.2 is the host's 127.0.0.1, 10.0.2.3 its resolver)
/// nor any other port of the VM's own addresses (its sshd, a base forward's target). The
/// host still reaches the VM's sshd and base forwards; NAT and the forwards anchor stay.
#[test]
fn jails_cannot_reach_qemu_host_or_vm_services() {
    use pf_model::{Packet, Ruleset, Verdict, Vm};
    use std::net::Ipv4Addr;
    let r = render_all(&common::stack(YggVersion::V0_5), &common::sources()).unwrap();
    let conf = &r
        .files
        .iter()
        .find(|f| f.guest_path == "/etc/pf.conf")
        .unwrap()
        .content;
    let rules = Ruleset::parse(conf);
    let vm = Vm::jrun_guest();
    let jail = Ipv4Addr::new(10, 17, 89, 10);
    let from_jail = |proto, dst: [u8; 4], dport| {
        Packet::inbound(
            "bridge0",
            proto,
            jail.into(),
            Ipv4Addr::from(dst).into(),
            dport,
        )
    };
    let from_host = |dport| {
        Packet::inbound(
            "vtnet0",
            "tcp",
            Ipv4Addr::new(10, 0, 2, 2).into(),
            Ipv4Addr::new(10, 0, 2, 15).into(),
            dport,
        )
    };
    let expect = [
        // QEMU's user network: the host's loopback services, its resolver, the VM's side.
        (from_jail("tcp", [10, 0, 2, 2], 5432), Verdict::Block),
        (from_jail("tcp", [10, 0, 2, 2], 8080), Verdict::Block),
        (from_jail("udp", [10, 0, 2, 3], 53), Verdict::Block),
        (from_jail("tcp", [10, 0, 2, 15], 22), Verdict::Block),
        (from_jail("tcp", [10, 0, 2, 15], 9100), Verdict::Block),
        // The VM's bridge address: sshd, a base forward's target, the mesh node's admin.
        (from_jail("tcp", [10, 17, 89, 1], 22), Verdict::Block),
        (from_jail("tcp", [10, 17, 89, 1], 9100), Verdict::Block),
        (from_jail("udp", [10, 17, 89, 1], 19001), Verdict::Block),
        (from_jail("tcp", [127, 0, 0, 1], 22), Verdict::Block),
        // What jails need: the resolver, the mesh listener, the world.
        (from_jail("udp", [10, 17, 89, 1], 53), Verdict::Pass),
        (from_jail("tcp", [10, 17, 89, 1], 53), Verdict::Pass),
        (from_jail("tcp", [10, 17, 89, 1], 19001), Verdict::Pass),
        (from_jail("tcp", [1, 1, 1, 1], 443), Verdict::Pass),
        (from_jail("udp", [9, 9, 9, 9], 53), Verdict::Pass),
        // The host: SSH and the base forward in, nothing else.
        (from_host(22), Verdict::Pass),
        (from_host(9100), Verdict::Pass),
        (from_host(5432), Verdict::Block),
    ];
    for (p, want) in expect {
        let (got, rule) = rules.decide(&vm, &p);
        assert_eq!(got, want, "{p:?} decided by {rule:?}\n{conf}");
    }
    // Jail traffic still leaves through NAT, and forwards through the anchor.
    assert!(conf.contains("nat on $ext_if inet from $jail_net to any -> ($ext_if)\n"));
    assert!(conf.contains("rdr-anchor \"jrun/forwards\"\n"));
    // The block is `quick` and names the dynamic `(self)`, not the load-time `self`.
    assert!(
        conf.contains("block in quick on $jail_if from $jail_net to { (self), 10.0.2.0/24 }\n"),
        "{conf}"
    );
}

/// The model itself, on rulesets written for it, against pf.conf(5): the last matching
/// rule decides unless a matching rule is `quick`; an address restricts a rule to its
/// family, also negated; tables hold either family, and `pfctl -T replace` changes them;
/// `set skip` interfaces are not filtered; what pfctl would refuse, or what the model does
/// not know, is refused.
#[test]
fn the_pf_model_follows_pf_conf_5() {
    use pf_model::{Packet, Ruleset, Verdict, Vm};
    use std::net::IpAddr;
    let vm = Vm {
        interfaces: vec![("em0", "192.0.2.1".parse().unwrap())],
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let tcp = |src: &str, port| Packet::inbound("em0", "tcp", ip(src), ip("192.0.2.1"), port);
    let tcp6 = |src: &str, port| Packet::inbound("em0", "tcp", ip(src), ip("2001:db8::1"), port);
    let decide = |conf: &str, p: Packet| Ruleset::parse(conf).decide(&vm, &p).0;
    use Verdict::{Block, Pass};

    let last = "block in all\npass in proto tcp to any port { 22, 80 }\n";
    assert_eq!(decide(last, tcp("198.51.100.7", 22)), Pass);
    assert_eq!(decide(last, tcp("198.51.100.7", 23)), Block);
    let quick = "block in quick all\npass in proto tcp to any port 22\n";
    assert_eq!(decide(quick, tcp("198.51.100.7", 22)), Block);
    assert_eq!(decide("", tcp("198.51.100.7", 22)), Pass);
    // Direction and interface.
    assert_eq!(decide("block out all\n", tcp("198.51.100.7", 22)), Pass);
    assert_eq!(
        decide("block in on em1 all\n", tcp("198.51.100.7", 22)),
        Pass
    );
    assert_eq!(
        decide("set skip on em0\nblock all\n", tcp("198.51.100.7", 22)),
        Pass
    );

    // An IPv4 address (also negated) makes an inet rule; `any` and tables match both.
    let v4 = "block in all\npass in from 10.0.0.0/8\n";
    assert_eq!(decide(v4, tcp("10.1.2.3", 22)), Pass);
    assert_eq!(decide(v4, tcp6("2001:db8::5", 22)), Block);
    let not_v4 = "block in all\npass in from ! 10.0.0.0/8\n";
    assert_eq!(decide(not_v4, tcp("192.0.2.9", 22)), Pass);
    assert_eq!(decide(not_v4, tcp6("2001:db8::5", 22)), Block);
    assert_eq!(decide("block in inet6 all\n", tcp("10.1.2.3", 22)), Pass);
    let table = "table <t> persist { 2001:db8::/32 10.1.0.0/16, 192.0.2.77 }\n\
                 block in all\npass in proto tcp from <t> to any port 22\n";
    assert_eq!(decide(table, tcp6("2001:db8:ffff::5", 22)), Pass);
    assert_eq!(decide(table, tcp6("2001:db9::5", 22)), Block);
    assert_eq!(decide(table, tcp("10.1.200.3", 22)), Pass);
    assert_eq!(decide(table, tcp("192.0.2.77", 22)), Pass);
    assert_eq!(decide(table, tcp("192.0.2.78", 22)), Block);
    assert_eq!(decide(table, tcp("10.1.200.3", 23)), Block);
    let mut replaced = Ruleset::parse(table);
    replaced.replace_table("t", &["2001:db9::/32"]);
    assert_eq!(replaced.decide(&vm, &tcp6("2001:db9::5", 22)).0, Pass);
    assert_eq!(replaced.decide(&vm, &tcp6("2001:db8::5", 22)).0, Block);
    // A table no line defines is empty (pfctl creates it).
    assert_eq!(
        decide("block in all\npass in from <none>\n", tcp("10.1.2.3", 22)),
        Block
    );
    // ICMPv6 types.
    let ping = "block in all\npass in inet6 proto icmp6 icmp6-type echoreq\n";
    let icmp = |kind| Packet::icmp6_in("em0", ip("2001:db8::5"), ip("2001:db8::1"), kind);
    assert_eq!(decide(ping, icmp("echoreq")), Pass);
    assert_eq!(decide(ping, icmp("routeradv")), Block);
    assert_eq!(decide(ping, tcp6("2001:db8::5", 22)), Block);

    for refused in [
        "pass in from any to any port 22",
        "pass in proto icmp6 from any to any port 22",
        "pass in proto tcp from any to any port ssh",
        "pass in proto tcp from any port 1024 to any",
        "pass in proto tcp from any to any port 1024:2048",
        "pass in proto icmp6 icmp6-type echoreq",
        "pass in proto sctp all",
        "pass in all label \"x\"",
        "pass in log all",
        "pass in on ! em0 all",
        "pass in from example.org",
        "pass in all keep state (max 10)",
        "pass in proto tcp all flags S/SAFR",
        "block return in all",
        "antispoof for em0",
        "anchor \"x\"",
        "set block-policy return",
        "table <t> { ! 10.0.0.1 }",
        "table <t> file \"/etc/t\"",
        "pass in from { 10.0.0.1 \\",
    ] {
        let result = std::panic::catch_unwind(|| Ruleset::parse(refused));
        assert!(result.is_err(), "the model read {refused:?}");
    }
}

const PEERS: [&str; 2] = ["200:1111:2222:3333:4444:5555:6666:7777", "201:abcd::1"];
/// Not in the table: a neighbour of a peer's address, another node, a /64 subnet address.
const STRANGERS: [&str; 3] = [
    "200:1111:2222:3333:4444:5555:6666:7778",
    "203::9",
    "300:1111:2222:3333::1",
];
const JAIL_YGG: &str = "202:aaaa:bbbb::1";
const JAIL_V4: &str = "10.17.89.10";
const JAIL_LINK_LOCAL: &str = "fe80::3b";
/// The ports and protocols every rendering is probed on.
const PROBES: [(&str, u16); 12] = [
    ("tcp", 22),
    ("tcp", 53),
    ("tcp", 80),
    ("tcp", 443),
    ("tcp", 5432),
    ("tcp", 8080),
    ("udp", 53),
    ("udp", 80),
    ("udp", 5432),
    ("udp", 51820),
    ("tcp", 65535),
    ("udp", 1),
];

/// A vm jail as its pf sees it: the mesh interface, its epair on the VM's bridge, lo0.
fn jail_machine() -> pf_model::Vm {
    pf_model::Vm {
        interfaces: vec![
            ("ygg0", JAIL_YGG.parse().unwrap()),
            ("epair3b", JAIL_V4.parse().unwrap()),
            ("epair3b", JAIL_LINK_LOCAL.parse().unwrap()),
            ("lo0", "127.0.0.1".parse().unwrap()),
            ("lo0", "::1".parse().unwrap()),
        ],
    }
}

/// `mesh { allow }` as (protocol, port) pairs; `None`: no allow list.
type MeshAllow<'a> = Option<&'a [(jrun_core::config::Proto, u16)]>;

fn jail_firewall(peers: &[&str], allow: MeshAllow<'_>) -> jrun_core::net::JailFirewall {
    use jrun_core::config::{JailName, MeshPort};
    let mut fw = jrun_core::net::JailFirewall::new(
        JailName::new("web").unwrap(),
        peers.iter().map(|p| p.parse().unwrap()),
    );
    fw.mesh_allow = allow.map(|ports| {
        ports
            .iter()
            .map(|(proto, port)| MeshPort::new(*proto, *port).unwrap())
            .collect()
    });
    fw
}

/// Asks the model what a jail's ruleset does with mesh traffic: a peer reaches exactly
/// `open` (every port when `None`) and may ping; nobody else reaches anything on ygg0, nor
/// does IPv4 there; traffic on the epair (IPv4 and IPv6), out of the jail and on lo0 passes.
fn check_jail_rules(rules: &pf_model::Ruleset, conf: &str, open: Option<&[(&str, u16)]>) {
    use pf_model::{Packet, Verdict};
    use std::net::IpAddr;
    let vm = jail_machine();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let check = |p: Packet, want: Verdict| {
        let (got, rule) = rules.decide(&vm, &p);
        assert_eq!(got, want, "{p:?} decided by {rule:?}\n{conf}");
    };
    for (proto, port) in PROBES {
        let reachable = open.is_none_or(|o| o.contains(&(proto, port)));
        for peer in PEERS {
            let p = Packet::inbound("ygg0", proto, ip(peer), ip(JAIL_YGG), port);
            check(
                p,
                if reachable {
                    Verdict::Pass
                } else {
                    Verdict::Block
                },
            );
        }
        for stranger in STRANGERS {
            let p = Packet::inbound("ygg0", proto, ip(stranger), ip(JAIL_YGG), port);
            check(p, Verdict::Block);
            // Off the mesh interface the jail's pf does not judge by peer (the VM does).
            let p = Packet::inbound("epair3b", proto, ip(stranger), ip(JAIL_YGG), port);
            check(p, Verdict::Pass);
            // The jail's own connections to anyone on the mesh.
            let p = Packet::inbound("ygg0", proto, ip(JAIL_YGG), ip(stranger), port).outbound();
            check(p, Verdict::Pass);
        }
        // IPv4 on the mesh interface, even from the bridge network.
        let p = Packet::inbound("ygg0", proto, ip("10.17.89.1"), ip(JAIL_V4), port);
        check(p, Verdict::Block);
        // The jail's own bridge interface: IPv4 from the VM and the world, IPv6 link-local.
        for src in ["10.17.89.1", "10.17.89.11", "198.51.100.7"] {
            check(
                Packet::inbound("epair3b", proto, ip(src), ip(JAIL_V4), port),
                Verdict::Pass,
            );
        }
        check(
            Packet::inbound("epair3b", proto, ip("fe80::1"), ip(JAIL_LINK_LOCAL), port),
            Verdict::Pass,
        );
        check(
            Packet::inbound("epair3b", proto, ip(JAIL_V4), ip("198.51.100.7"), port).outbound(),
            Verdict::Pass,
        );
        check(
            Packet::inbound("lo0", proto, ip("::1"), ip("::1"), port),
            Verdict::Pass,
        );
    }
    for peer in PEERS {
        check(
            Packet::icmp6_in("ygg0", ip(peer), ip(JAIL_YGG), "echoreq"),
            Verdict::Pass,
        );
    }
    for stranger in STRANGERS {
        check(
            Packet::icmp6_in("ygg0", ip(stranger), ip(JAIL_YGG), "echoreq"),
            Verdict::Block,
        );
    }
}

/// Issue 15: a vm jail's pf.conf, asked through the pf model, admits on the mesh interface
/// only the addresses in `<mesh_peers>` and, with `mesh { allow }`, only to those ports —
/// with the table as rendered and as `jrun pair` replaces it live — and leaves the jail's
/// bridge interface, its outgoing traffic and lo0 alone.
#[test]
fn jail_pf_admits_exactly_the_peers_to_the_allowed_ports() {
    use jrun_core::config::Proto::{Tcp, Udp};
    use jrun_vm::render::jail_pf_conf;
    use pf_model::Ruleset;
    // A jail's `mesh { allow }`, and what a peer should then reach (`None`: all).
    type Case = (MeshAllow<'static>, Option<&'static [(&'static str, u16)]>);
    let cases: [Case; 3] = [
        (None, None),
        // allow = [80, "5432/tcp"];
        (
            Some(&[(Tcp, 80), (Tcp, 5432)]),
            Some(&[("tcp", 80), ("tcp", 5432)]),
        ),
        // allow = ["53/udp", 80, "51820/udp"];
        (
            Some(&[(Udp, 53), (Tcp, 80), (Udp, 51820)]),
            Some(&[("udp", 53), ("tcp", 80), ("udp", 51820)]),
        ),
    ];
    for (allow, open) in cases {
        // The table as rendered.
        let conf = jail_pf_conf(&jail_firewall(&PEERS, allow));
        check_jail_rules(&Ruleset::parse(&conf), &conf, open);
        // Rendered before any pairing, then filled live (`pfctl -t mesh_peers -T replace`).
        let conf = jail_pf_conf(&jail_firewall(&[], allow));
        let mut rules = Ruleset::parse(&conf);
        let vm = jail_machine();
        let p = pf_model::Packet::inbound(
            "ygg0",
            "tcp",
            PEERS[0].parse().unwrap(),
            JAIL_YGG.parse().unwrap(),
            80,
        );
        assert_eq!(rules.decide(&vm, &p).0, pf_model::Verdict::Block, "{conf}");
        rules.replace_table("mesh_peers", &PEERS);
        check_jail_rules(&rules, &conf, open);
    }
}

/// Security review finding 12: a jail's `base.txz` is downloaded to a temporary name,
/// checked against the release's MANIFEST and only then renamed. A download that does not
/// match, or that was cut short, is removed and the step fails; a copy an older jrun left
/// (no MANIFEST beside it, maybe truncated) or one that changed since is fetched again; a
/// checked copy is reused without downloading.
#[test]
fn a_base_txz_that_does_not_match_its_manifest_is_removed_and_the_step_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let dist = dir.path().join("releases/14.3-RELEASE");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::create_dir_all(&dist).unwrap();
    let good = b"the real base system\n".repeat(1000);
    let sha = |b: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let manifest = |digest: &str| {
        format!("base-dbg.txz\t{}\t1\tbase_dbg\t\"Base debug\"\toff\nbase.txz\t{digest}\t26936\tbase\t\"Base system (MANDATORY)\"\ton\n", "0".repeat(64))
    };
    let leftovers = || {
        let mut v: Vec<String> = std::fs::read_dir(&dist)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let run = || common::sandbox::run_fetch_base(dir.path(), &mirror, "14.3-RELEASE", &dist);

    // 1. The mirror serves a base.txz that is not the one its MANIFEST lists.
    std::fs::write(mirror.join("base.txz"), b"something else").unwrap();
    std::fs::write(mirror.join("MANIFEST"), manifest(&sha(&good))).unwrap();
    let (out, fetched) = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("jrun-failed 7 1"), "{stderr}");
    assert!(stderr.contains("but the MANIFEST lists"), "{stderr}");
    assert!(!stdout.contains("after-fetch"), "{stdout}");
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    assert!(
        fetched[0].ends_with("/14.3-RELEASE/MANIFEST"),
        "{fetched:?}"
    );
    assert!(
        fetched[1].ends_with("/14.3-RELEASE/base.txz"),
        "{fetched:?}"
    );

    // 2. A download cut short fails the step and leaves nothing to reuse.
    std::fs::write(mirror.join("base.txz"), &good).unwrap();
    std::fs::write(mirror.join("cut"), b"").unwrap();
    let (out, _) = run();
    assert!(!out.status.success());
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    std::fs::remove_file(mirror.join("cut")).unwrap();

    // 3. A truncated base.txz an older jrun left (no MANIFEST beside it) is fetched again.
    std::fs::write(dist.join("base.txz"), &good[..100]).unwrap();
    let (out, fetched) = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("after-fetch"));
    assert_eq!(std::fs::read(dist.join("base.txz")).unwrap(), good);
    assert_eq!(leftovers(), ["MANIFEST", "base.txz"]);
    assert_eq!(fetched.len(), 2);

    // 4. A checked copy is reused without a download.
    let (out, fetched) = run();
    assert!(out.status.success());
    assert!(fetched.is_empty(), "{fetched:?}");

    // 5. A kept copy that no longer matches its MANIFEST is replaced.
    std::fs::write(dist.join("base.txz"), b"bit rot").unwrap();
    let (out, fetched) = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fetched.len(), 2);
    assert_eq!(std::fs::read(dist.join("base.txz")).unwrap(), good);
}

/// `exec { … user = … }` on the vm runtime: daemon(8) `-u` runs the service as the user
/// (a numeric uid is named by the jail's id(1), daemon takes names only); the health loop
/// stays root (it reads the child's pid file) and runs each check through chroot(8) with
/// the user's uid, its primary group and no other group. The rc script stays valid sh.
#[test]
fn vm_exec_user_runs_the_service_and_its_check_as_that_user() {
    use jrun_core::config::ExecUser;
    let spec = common::stack(YggVersion::V0_5);
    let mut web = spec
        .jails
        .iter()
        .find(|j| j.name.as_str() == "web")
        .unwrap()
        .clone();
    for (user, flag) in [("www", "-u 'www'"), ("1001", "-u \"$(id -nu 1001)\"")] {
        web.execs[0].user = Some(ExecUser::new(user).unwrap());
        let rc = jrun_vm::render::services_rc(&web).unwrap();
        let service = rc
            .lines()
            .find(|l| l.contains("/var/run/jrun/child0.pid"))
            .unwrap();
        assert!(
            service.contains(&format!("{flag} /usr/bin/env ")),
            "{service}"
        );
        let check = &rc[rc.find("/var/run/jrun/health0.pid").unwrap()..];
        let daemon = check.lines().next().unwrap();
        assert!(
            !daemon.contains(" -u "),
            "the loop itself stays root: {daemon}"
        );
        assert!(
            check.contains(&format!("gid=$(id -g '\\''{user}'\\'') || exit 1")),
            "{check}"
        );
        assert!(
            check.contains(&format!(
                "timeout 2 chroot -u '\\''{user}'\\'' -g \"$gid\" -G \"$gid\" / /bin/sh -c "
            )),
            "{check}"
        );
        sh_n(&rc, "jrun_services");
        shellcheck(&rc, "jrun_services");
    }
    // Without a user, neither appears.
    web.execs[0].user = None;
    let rc = jrun_vm::render::services_rc(&web).unwrap();
    assert!(!rc.contains(" -u ") && !rc.contains("chroot"), "{rc}");
}
