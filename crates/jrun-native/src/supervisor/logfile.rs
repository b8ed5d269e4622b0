//! A service's log: its stdout and stderr arrive on a pipe, a thread appends them to
//! `logs/<jail>/<exec>.log` and rotates the file when it passes the size limit (the
//! service keeps writing to the pipe, so rotation never loses its file descriptor).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Rotated generations kept besides the live file (`.log.1`, `.log.2`).
const KEEP: u32 = 2;

/// An append-only file that rotates itself.
pub struct RotatingLog {
    path: PathBuf,
    max: u64,
    file: File,
    size: u64,
}

/// Opens `path` to append, creating it 0600 (and its folder 0700) when missing. Neither the
/// file nor its folder may be a symbolic link: root appends here, and a planted link
/// would turn that into a write to any file.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; refusing to write logs through it",
                    dir.display()
                )))
            }
            Ok(_) => {}
            Err(_) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?,
        }
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

impl RotatingLog {
    pub fn open(path: &Path, max: u64) -> io::Result<Self> {
        let file = open_private_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max: max.max(1),
            file,
            size,
        })
    }

    /// Appends `bytes`, rotating first when they would take the file past the limit.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(generation(&self.path, n), generation(&self.path, n + 1));
        }
        std::fs::rename(&self.path, generation(&self.path, 1))?;
        self.file = open_private_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// `<log>.<n>`.
pub fn generation(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Copies everything from `pipe` into `log` until every writer has closed it.
pub fn pump(mut pipe: impl Read, mut log: RotatingLog) {
    let mut buf = vec![0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = log.write(&buf[..n]) {
                    tracing::warn!(log = %log.path.display(), error = %e, "cannot write a service log");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

pub use jrun_core::services::log_tail as tail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_links_are_not_followed_and_logs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep\n").unwrap();
        // A planted link in place of the log.
        std::fs::create_dir(dir.path().join("web")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("web/http.log")).unwrap();
        assert!(RotatingLog::open(&dir.path().join("web/http.log"), 100).is_err());
        // A planted link in place of the jail's log folder.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("db")).unwrap();
        assert!(RotatingLog::open(&dir.path().join("db/x.log"), 100).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        // A new log is the owner's alone, in a folder of its own.
        let fresh = dir.path().join("api/http.log");
        RotatingLog::open(&fresh, 100).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(mode(fresh.parent().unwrap()) & 0o077, 0);
    }

    #[test]
    fn rotates_at_the_limit_and_keeps_two_generations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web").join("http.log");
        let mut log = RotatingLog::open(&path, 10).unwrap();
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            log.write(line.as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "dddddd\n");
        assert_eq!(
            std::fs::read_to_string(generation(&path, 1)).unwrap(),
            "cccccc\n"
        );
        assert_eq!(
            std::fs::read_to_string(generation(&path, 2)).unwrap(),
            "bbbbbb\n"
        );
        assert!(!generation(&path, 3).exists());
    }

    #[test]
    fn pump_copies_until_the_writer_closes_and_tail_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let log = RotatingLog::open(&path, 1 << 20).unwrap();
        let t = std::thread::spawn(move || pump(reader, log));
        writer.write_all(b"one\ntwo\nthree\n").unwrap();
        drop(writer);
        t.join().unwrap();
        assert_eq!(tail(&path, 2), vec!["two", "three"]);
        assert!(tail(&dir.path().join("none.log"), 5).is_empty());
    }
}
