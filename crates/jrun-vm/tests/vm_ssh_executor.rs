//! The SSH executor against a real `sshd` started here on 127.0.0.1 with generated keys:
//! a multi-step script runs over one connection, output streams while it runs, and a
//! failing step is reported with its jail and name.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jrun_core::config::JailName;
use jrun_vm::render::{Script, StepInfo, SCRIPT_PRELUDE};
use jrun_vm::ssh::{Progress, RemoteExec, ScriptError, SshExecutor, SshTarget};

/// An sshd for one test; killed (by its own pid) when dropped.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(st.success());
}

fn start_sshd(dir: &Path) -> Sshd {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), conf).unwrap();
    let log = dir.join("sshd.log");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-f"])
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("sshd (install openssh-server)");
    let start = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port, log }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn executor(sshd: &Sshd, dir: &Path) -> SshExecutor {
    SshExecutor {
        target: SshTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            user: whoami(),
            identity: dir.join("client_key"),
            known_hosts: dir.join("known_hosts"),
            control_path: None,
        },
        privilege: None,
    }
}

fn script(body: &str, steps: &[(Option<&str>, &str)]) -> Script {
    Script {
        text: format!("#!/bin/sh\n{SCRIPT_PRELUDE}{body}"),
        steps: steps
            .iter()
            .map(|(j, n)| StepInfo {
                jail: j.map(|j| JailName::new(j).unwrap()),
                name: n.to_string(),
            })
            .collect(),
    }
}

fn connections(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

#[test]
fn a_multi_step_script_runs_in_one_connection_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start_sshd(dir.path());
    let ex = executor(&sshd, dir.path());
    let marker = dir.path().join("done");
    let body = format!(
        "step 1\necho early\nsleep 2\nstep 2\nput_file {m} 600 'hello'\nstep 3\necho \"dirty=$jrun_dirty\"\n",
        m = jrun_vm::quote::sh_quote(marker.to_str().unwrap())
    );
    let s = script(
        &body,
        &[
            (None, "network"),
            (Some("web"), "configure"),
            (Some("web"), "start"),
        ],
    );

    let mut events: Vec<(Instant, String)> = vec![];
    ex.run_script(&s, &mut |p| {
        let text = match p {
            Progress::Step { number, of, info } => format!("step {number}/{of} {info}"),
            Progress::Output(l) => l.to_string(),
        };
        events.push((Instant::now(), text));
    })
    .unwrap();
    let done = Instant::now();

    let texts: Vec<&str> = events.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "step 1/3 vm: network",
            "early",
            "step 2/3 jail web: configure",
            "step 3/3 jail web: start",
            "dirty=1"
        ]
    );
    // "early" arrived while the script was still sleeping: output streams.
    assert!(done.duration_since(events[1].0) >= Duration::from_millis(1500));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "hello");
    assert_eq!(
        connections(&sshd.log),
        1,
        "one SSH connection for the whole script"
    );
}

/// A step that reads stdin gets nothing (the script is not its stdin), and a daemon the
/// script leaves behind holding its output does not keep `run_script` waiting forever.
#[test]
fn steps_cannot_read_the_script_and_a_lingering_daemon_does_not_hang_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start_sshd(dir.path());
    let ex = executor(&sshd, dir.path());
    let tag = std::process::id();
    let body = format!(
        "step 1\nleft=$(cat)\necho \"stdin gave [$left]\"\nstep 2\necho still-here\n(sleep 3{tag} &)\nprintf 'jrun-done\\n'\n"
    );
    let s = script(&body, &[(None, "read"), (None, "daemon")]);
    let mut lines = vec![];
    let started = Instant::now();
    ex.run_script(&s, &mut |p| {
        if let Progress::Output(l) = p {
            lines.push(l.to_string());
        }
    })
    .unwrap();
    let took = started.elapsed();
    let _ = Command::new("pkill")
        .args(["-f", &format!("sleep 3{tag}")])
        .status();
    assert_eq!(lines, ["stdin gave []", "still-here"]);
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_failing_step_is_reported_by_jail_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start_sshd(dir.path());
    let ex = executor(&sshd, dir.path());
    let body =
        "step 1\necho fine\nstep 2\necho 'pf: syntax error' >&2\nfalse\nstep 3\necho never\n";
    let s = script(
        body,
        &[
            (None, "network"),
            (Some("db"), "firewall"),
            (Some("db"), "start"),
        ],
    );
    let mut out = vec![];
    let err = ex
        .run_script(&s, &mut |p| {
            if let Progress::Output(l) = p {
                out.push(l.to_string());
            }
        })
        .unwrap_err();
    match &err {
        ScriptError::StepFailed { step, code, stderr } => {
            assert_eq!(step.jail.as_ref().map(|j| j.as_str()), Some("db"));
            assert_eq!(step.name, "firewall");
            assert_eq!(*code, 1);
            assert!(stderr.contains("pf: syntax error"));
        }
        other => panic!("expected a step failure, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "jail db: firewall failed (exit 1): pf: syntax error"
    );
    assert_eq!(out, ["fine"], "nothing after the failing step ran");
    assert_eq!(connections(&sshd.log), 1);
}

#[test]
fn an_unreachable_vm_is_a_connection_error() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("client_key"));
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ex = SshExecutor {
        target: SshTarget {
            host: "127.0.0.1".into(),
            port,
            user: whoami(),
            identity: dir.path().join("client_key"),
            known_hosts: dir.path().join("known_hosts"),
            control_path: None,
        },
        privilege: None,
    };
    let err = ex
        .run_script(&script("step 1\n", &[(None, "x")]), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, ScriptError::Connect { .. }), "{err:?}");
}
