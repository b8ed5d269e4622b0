//! The instance's resolver: unbound inside the VM namespace on the bridge address.
//!
//! `unbound.conf` is written once at `start`; the record set lives in `records.conf`, which
//! the main file includes. A record change rewrites only that file (what a restarted unbound
//! serves) and hands the difference to the running unbound over its private control socket
//! (`local_datas_remove`, `local_datas`): no `unbound-checkconf` process and no reload, which
//! would stop answering while unbound re-reads everything. When that fails, the whole
//! config is checked and unbound reloaded from the file.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

use jrun_core::exec::{Cmd, Runner};
use jrun_core::net::{DnsRecords, RecordData, BRIDGE_IP, ROOT_ZONE, SUBNET, SUBNET_PREFIX};

/// How long a reload may take before the resolver is declared stuck.
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The files of one instance's resolver.
#[derive(Debug, Clone)]
pub struct UnboundFiles {
    pub dir: PathBuf,
}

impl UnboundFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        UnboundFiles { dir: dir.into() }
    }
    pub fn conf(&self) -> PathBuf {
        self.dir.join("unbound.conf")
    }
    pub fn records(&self) -> PathBuf {
        self.dir.join("records.conf")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The argv that runs unbound in the foreground with this config.
    pub fn command(&self) -> Vec<String> {
        vec![
            "unbound".into(),
            "-d".into(),
            "-p".into(),
            "-c".into(),
            self.conf().display().to_string(),
        ]
    }

    /// `unbound-checkconf` on the whole config (main file and records).
    pub fn check(&self, runner: &dyn Runner) -> Result<(), String> {
        runner
            .run(&Cmd::new([
                "unbound-checkconf".to_string(),
                self.conf().display().to_string(),
            ]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Makes a running unbound re-read its config, keeping its process, and returns once it
    /// serves again: `reload` answers before unbound has reopened its ports, and a query sent
    /// in that window (a jail's first, right after `jrun up`) would be lost.
    pub fn reload(&self) -> Result<(), String> {
        self.control("reload")?;
        let deadline = std::time::Instant::now() + RELOAD_WAIT;
        loop {
            match self.control("status") {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "unbound did not answer within {}s of its reload: {e}",
                        RELOAD_WAIT.as_secs()
                    ))
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    /// Sends `command` to unbound over its control socket and returns the answer, as
    /// `unbound-control` does but without its process (and its TLS library's start-up,
    /// most of a reload's cost): on a local socket with `control-use-cert: no` the
    /// protocol is plain text, `UBCT1 <command>` and a newline, then the answer until
    /// unbound closes the connection; an answer starting with `error` is a failure.
    fn control(&self, command: &str) -> Result<String, String> {
        self.control_with(command, &[])
    }

    /// [`Self::control`] for a command that reads lines after its own (`local_datas`):
    /// each line, then the end-of-transmission line `unbound-control` sends (`\x04`).
    fn control_with(&self, command: &str, lines: &[String]) -> Result<String, String> {
        use std::io::{Read, Write};
        let path = self.control_socket();
        let fail = |e: std::io::Error| format!("unbound control ({}): {e}", path.display());
        let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(fail)?;
        stream
            .set_read_timeout(Some(CONTROL_TIMEOUT))
            .map_err(fail)?;
        stream
            .set_write_timeout(Some(CONTROL_TIMEOUT))
            .map_err(fail)?;
        let mut request = format!("UBCT1 {command}\n");
        if !lines.is_empty() {
            for line in lines {
                request.push_str(line);
                request.push('\n');
            }
            request.push_str("\x04\n");
        }
        stream.write_all(request.as_bytes()).map_err(fail)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(fail)?;
        if answer.starts_with("error") || answer.is_empty() {
            return Err(format!(
                "unbound control: `{command}` answered {:?}",
                answer.trim()
            ));
        }
        Ok(answer)
    }
}

impl UnboundFiles {
    /// Makes the running unbound serve `new` instead of `old` (two renderings of
    /// [`render_records`]) without a reload: the names of records that went away are
    /// removed (which drops every record of a name, so a name that keeps some has them
    /// added back), then the new records are added. A name whose address changes is
    /// unanswered (NXDOMAIN) between the two commands, a moment instead of a reload's.
    pub fn apply_records(&self, old: &str, new: &str) -> Result<(), String> {
        let (remove, add) = record_changes(old, new);
        if !remove.is_empty() {
            let answer = self.control_with("local_datas_remove", &remove)?;
            expect_count(&answer, "removed", remove.len())?;
        }
        if !add.is_empty() {
            let answer = self.control_with("local_datas", &add)?;
            expect_count(&answer, "added", add.len())?;
        }
        Ok(())
    }
}

/// `Ok` when unbound's whole answer is `<verb> <count> datas`: it reports each line it
/// could not take on a line of its own before that count.
fn expect_count(answer: &str, verb: &str, count: usize) -> Result<(), String> {
    if answer.trim_end() == format!("{verb} {count} datas") {
        Ok(())
    } else {
        Err(format!(
            "unbound control: expected `{verb} {count} datas`, got {:?}",
            answer.trim()
        ))
    }
}

/// The records (as unbound's `local_data` takes them) of a records file.
fn records_of(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("local-data: \"")?.strip_suffix('"'))
        .collect()
}

/// What turns the records of `old` into those of `new`: the names to remove, then the
/// records to add.
fn record_changes(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let (old, new) = (records_of(old), records_of(new));
    let name = |rr: &str| rr.split(' ').next().unwrap_or_default().to_string();
    let removed: BTreeSet<String> = old.difference(&new).map(|rr| name(rr)).collect();
    let add = new
        .iter()
        .filter(|rr| !old.contains(*rr) || removed.contains(&name(rr)))
        .map(|rr| rr.to_string())
        .collect();
    (removed.into_iter().collect(), add)
}

/// How long one control command may take (a reload answers once it is done).
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The main config: serve the `jrun.` zone from local data (NXDOMAIN for anything else
/// under it), forward everything else to `upstream`, answer only the jail subnet.
pub fn render_conf(files: &UnboundFiles, upstream: SocketAddrV4) -> String {
    let dir = files.dir.display();
    let records = files.records();
    let records = records.display();
    let control = files.control_socket();
    format!(
        "# Written by jrun; replaced on every start.\n\
         server:\n\
         \x20 interface: {BRIDGE_IP}\n\
         \x20 port: 53\n\
         \x20 do-ip6: no\n\
         \x20 access-control: 0.0.0.0/0 refuse\n\
         \x20 access-control: {SUBNET}/{SUBNET_PREFIX} allow\n\
         \x20 access-control: 127.0.0.0/8 allow\n\
         \x20 username: \"\"\n\
         \x20 chroot: \"\"\n\
         \x20 directory: \"{dir}\"\n\
         \x20 pidfile: \"\"\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 module-config: \"iterator\"\n\
         \x20 do-not-query-localhost: no\n\
         \x20 local-zone: \"{ROOT_ZONE}.\" static\n\
         \x20 include: \"{records}\"\n\
         forward-zone:\n\
         \x20 name: \".\"\n\
         \x20 forward-addr: {}@{}\n\
         remote-control:\n\
         \x20 control-enable: yes\n\
         \x20 control-interface: \"{}\"\n\
         \x20 control-use-cert: no\n",
        upstream.ip(),
        upstream.port(),
        control.display(),
    )
}

/// The record set as `local-data` lines. Names and addresses come only from validated
/// types, so nothing here can inject a directive.
pub fn render_records(records: &DnsRecords) -> String {
    let mut out =
        String::from("# Written by jrun from the whole record set; replaced on every change.\n");
    for r in &records.0 {
        let (kind, data) = match r.data {
            RecordData::A(ip) => ("A", ip.to_string()),
            RecordData::Aaaa(a) => ("AAAA", a.to_string()),
        };
        // Writing to a String cannot fail. The quoted part is also what `local_datas`
        // takes, one record a line ([`record_changes`] reads it back).
        let _ = writeln!(out, "local-data: \"{}. 300 IN {kind} {data}\"", r.name);
    }
    out
}

/// Writes `contents` to `path` atomically, mode 0644 (unique temp file, fsync, rename,
/// fsync the folder: [`jrun_core::fs::write_atomic`]).
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    jrun_core::fs::write_atomic(path, contents.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::config::JailName;
    use jrun_core::exec::SystemRunner;
    use jrun_core::net::{DnsName, DnsRecord};
    use std::net::Ipv4Addr;

    fn records() -> DnsRecords {
        let mut set = DnsRecords::default();
        set.0.insert(DnsRecord {
            name: DnsName::Local(JailName::new("web").unwrap()),
            data: RecordData::A(Ipv4Addr::new(10, 17, 89, 10)),
        });
        set.0.insert(DnsRecord {
            name: DnsName::Peer {
                jail: JailName::new("db").unwrap(),
                code: "81-zephyr-night-climb".parse().unwrap(),
            },
            data: RecordData::Aaaa("200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap()),
        });
        set
    }

    #[test]
    fn write_atomic_ignores_a_planted_temp_link_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("records.conf");
        // The fixed temp name the old writer used.
        std::os::unix::fs::symlink(&victim, dir.path().join("records.tmp")).unwrap();
        write_atomic(&path, "local-data: x\n").unwrap();
        write_atomic(&path, "local-data: y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "local-data: y\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp."))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    /// A stand-in for unbound's control socket: answers each command with `answer` and
    /// records the request lines it got.
    fn fake_control(
        files: &UnboundFiles,
        answer: &'static str,
        count: usize,
    ) -> std::thread::JoinHandle<Vec<String>> {
        use std::io::{BufRead, Write};
        let listener = std::os::unix::net::UnixListener::bind(files.control_socket()).unwrap();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..count {
                let (stream, _) = listener.accept().unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&stream)
                    .read_line(&mut line)
                    .unwrap();
                got.push(line);
                (&stream).write_all(answer.as_bytes()).unwrap();
            }
            got
        })
    }

    #[test]
    fn reload_returns_once_unbound_answers_again() {
        let dir = tempfile::tempdir().unwrap();
        let files = UnboundFiles::new(dir.path());
        let server = fake_control(&files, "ok\n", 2);
        files.reload().unwrap();
        assert_eq!(server.join().unwrap(), ["UBCT1 reload\n", "UBCT1 status\n"]);

        // Refused: an error, and no status poll after the failed reload.
        let dir = tempfile::tempdir().unwrap();
        let files = UnboundFiles::new(dir.path());
        let server = fake_control(&files, "error command failed\n", 1);
        let err = files.reload().unwrap_err();
        assert!(err.contains("error command failed"), "{err}");
        assert_eq!(server.join().unwrap(), ["UBCT1 reload\n"]);
        let gone = UnboundFiles::new(dir.path().join("none"));
        assert!(gone.reload().is_err());
    }

    #[test]
    fn a_change_removes_the_names_that_lost_records_and_adds_what_they_keep() {
        let file = |rrs: &[&str]| {
            rrs.iter()
                .map(|rr| format!("local-data: \"{rr}\"\n"))
                .collect::<String>()
        };
        let a = "a.local.jrun. 300 IN A 10.17.89.10";
        let b = "b.local.jrun. 300 IN A 10.17.89.11";
        let b2 = "b.local.jrun. 300 IN A 10.17.89.12";
        let p = "db.81-zephyr-night-climb.jrun. 300 IN AAAA 200::1";
        let p2 = "db.81-zephyr-night-climb.jrun. 300 IN AAAA 200::2";
        // Added only: nothing removed.
        assert_eq!(
            record_changes(&file(&[a]), &file(&[a, b])),
            (vec![], vec![b.to_string()])
        );
        // Removed only.
        assert_eq!(
            record_changes(&file(&[a, b]), &file(&[a])),
            (vec!["b.local.jrun.".to_string()], vec![])
        );
        // A name whose record changes is removed and added again; one that loses one of
        // two records gets the other back.
        assert_eq!(
            record_changes(&file(&[a, b, p, p2]), &file(&[a, b2, p])),
            (
                vec![
                    "b.local.jrun.".to_string(),
                    "db.81-zephyr-night-climb.jrun.".to_string()
                ],
                vec![b2.to_string(), p.to_string()]
            )
        );
        // The header line is no record; an unchanged file is no change.
        let whole = render_records(&records());
        assert_eq!(record_changes(&whole, &whole), (vec![], vec![]));
        assert_eq!(records_of(&whole).len(), 2);
    }

    #[test]
    fn records_reach_unbound_as_lines_ended_like_unbound_control_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = UnboundFiles::new(dir.path());
        let old = "local-data: \"a.local.jrun. 300 IN A 10.17.89.10\"\n";
        let new = "local-data: \"b.local.jrun. 300 IN A 10.17.89.11\"\n";
        // The stand-in answers as unbound does: one count per command.
        let listener = std::os::unix::net::UnixListener::bind(files.control_socket()).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let mut got = Vec::new();
            for answer in ["removed 1 datas\n", "added 1 datas\n"] {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = std::io::BufReader::new(&stream);
                let mut lines = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let end = line == "\x04\n";
                    lines.push(line);
                    if end {
                        break;
                    }
                }
                got.push(lines.concat());
                (&stream).write_all(answer.as_bytes()).unwrap();
            }
            got
        });
        files.apply_records(old, new).unwrap();
        assert_eq!(
            server.join().unwrap(),
            [
                "UBCT1 local_datas_remove\na.local.jrun.\n\x04\n",
                "UBCT1 local_datas\nb.local.jrun. 300 IN A 10.17.89.11\n\x04\n",
            ]
        );
        // A line unbound could not take is a failure (the caller then reloads).
        assert!(expect_count("error for input line: x\nadded 0 datas\n", "added", 1).is_err());
        assert!(expect_count("added 2 datas\n", "added", 2).is_ok());
    }

    #[test]
    fn records_render_as_local_data() {
        assert_eq!(
            render_records(&records()),
            "# Written by jrun from the whole record set; replaced on every change.\n\
             local-data: \"web.local.jrun. 300 IN A 10.17.89.10\"\n\
             local-data: \"db.81-zephyr-night-climb.jrun. 300 IN AAAA 200:848a:604f:bb7e:4384:65db:8db6:6895\"\n"
        );
    }

    /// The rendered files pass unbound's own validator.
    #[test]
    fn rendered_config_passes_unbound_checkconf() {
        let dir = tempfile::tempdir().unwrap();
        let files = UnboundFiles::new(dir.path());
        let upstream = SocketAddrV4::new(Ipv4Addr::new(10, 17, 88, 1), 53);
        std::fs::write(files.conf(), render_conf(&files, upstream)).unwrap();
        std::fs::write(files.records(), render_records(&records())).unwrap();
        files.check(&SystemRunner).unwrap();
        // A broken record file is caught before any reload.
        std::fs::write(files.records(), "local-data: \"oops\n").unwrap();
        assert!(files.check(&SystemRunner).is_err());
    }
}
