//! The FreeBSD VM image: download (resumable, with progress), verify against the
//! release's `CHECKSUM.SHA512`, decompress `.xz` (in Rust), and grow to the disk size.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha512};

use crate::qemu::Arch;
use crate::spec::Release;

/// The FreeBSD release mirror.
pub const MIRROR: &str = "https://download.freebsd.org/releases/VM-IMAGES";

/// Which image, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// Ends without `/`, e.g. [`MIRROR`] (tests point it at a local server).
    pub mirror: String,
    pub release: Release,
    pub arch: Arch,
}

impl ImageSource {
    fn arch_dir(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// `FreeBSD-15.0-RELEASE-amd64-BASIC-CLOUDINIT-zfs.raw.xz`
    pub fn file_name(&self) -> String {
        format!(
            "FreeBSD-{}-{}-BASIC-CLOUDINIT-zfs.raw.xz",
            self.release,
            self.arch.freebsd_name()
        )
    }

    fn dir_url(&self) -> String {
        format!(
            "{}/{}/{}/Latest",
            self.mirror,
            self.release,
            self.arch_dir()
        )
    }

    pub fn image_url(&self) -> String {
        format!("{}/{}", self.dir_url(), self.file_name())
    }

    pub fn checksum_url(&self) -> String {
        format!("{}/CHECKSUM.SHA512", self.dir_url())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot download {url}: {cause}; check the network and JRUN_BSD_VERSION")]
    Http { url: String, cause: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url} does not list {file}; is JRUN_BSD_VERSION a published release?")]
    NoChecksum { url: String, file: String },
    #[error("{file} does not match CHECKSUM.SHA512 (expected {expected}, got {actual}); the download was deleted, run `jrun start` again")]
    Mismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("cannot decompress {path}: {cause}; the download was deleted, run `jrun start` again")]
    Xz { path: PathBuf, cause: String },
    #[error("{0:?} is not a disk size (expected e.g. 20G, 512M)")]
    Size(String),
}

/// Download progress: bytes so far and the total, when the server said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.into(),
        source,
    }
}

fn http(url: &str) -> impl FnOnce(reqwest::Error) -> ImageError + '_ {
    move |e| ImageError::Http {
        url: url.into(),
        cause: e.to_string(),
    }
}

fn client() -> Result<Client, ImageError> {
    Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| ImageError::Http {
            url: String::new(),
            cause: e.to_string(),
        })
}

/// Downloads `url` to `dest`, resuming from `dest` + `.part` if an earlier run stopped.
pub fn download(
    url: &str,
    dest: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImageError> {
    let part = dest.with_extension(format!(
        "{}.part",
        dest.extension()
            .and_then(|e| e.to_str())
            .unwrap_or("download")
    ));
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut req = client()?.get(url);
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().map_err(http(url))?;
    let status = resp.status();
    let (mut file, start) = match status {
        StatusCode::PARTIAL_CONTENT if content_range_start(&resp) == Some(have) => (
            OpenOptions::new()
                .append(true)
                .open(&part)
                .map_err(io(&part))?,
            have,
        ),
        s if s.is_success() => (File::create(&part).map_err(io(&part))?, 0),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // The part is already whole (or the file changed): start over next time.
            let _ = fs::remove_file(&part);
            return Err(ImageError::Http {
                url: url.into(),
                cause: format!("{status}; retry to download again"),
            });
        }
        s => {
            return Err(ImageError::Http {
                url: url.into(),
                cause: s.to_string(),
            })
        }
    };
    let total = resp.content_length().map(|n| n + start);
    let mut done = start;
    progress(Progress { done, total });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = resp.read(&mut buf).map_err(|e| ImageError::Http {
            url: url.into(),
            cause: format!("{e} after {done} bytes; run again to resume"),
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io(&part))?;
        done += n as u64;
        progress(Progress { done, total });
    }
    if let Some(t) = total {
        if done != t {
            return Err(ImageError::Http {
                url: url.into(),
                cause: format!("stopped at {done} of {t} bytes; run again to resume"),
            });
        }
    }
    file.sync_all().map_err(io(&part))?;
    fs::rename(&part, dest).map_err(io(dest))
}

fn content_range_start(resp: &reqwest::blocking::Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

/// The expected SHA-512 of `file` in a FreeBSD `CHECKSUM.SHA512` (`SHA512 (name) = hex`).
pub fn expected_sha512(checksums: &str, file: &str) -> Option<String> {
    checksums.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("SHA512 (")?;
        let (name, hash) = rest.split_once(") = ")?;
        let hash = hash.trim();
        (name == file && hash.len() == 128 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| hash.to_ascii_lowercase())
    })
}

/// The SHA-512 of a file, as lowercase hex.
pub fn sha512_file(path: &Path) -> Result<String, ImageError> {
    let mut f = BufReader::new(File::open(path).map_err(io(path))?);
    let mut h = Sha512::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Decompresses an `.xz` file into `dest` (written beside it, then renamed).
pub fn decompress_xz(src: &Path, dest: &Path) -> Result<(), ImageError> {
    let tmp = dest.with_extension("raw.tmp");
    let mut input = BufReader::new(File::open(src).map_err(io(src))?);
    let mut out = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
    if let Err(e) = lzma_rs::xz_decompress(&mut input, &mut out) {
        let _ = fs::remove_file(&tmp);
        return Err(ImageError::Xz {
            path: src.into(),
            cause: e.to_string(),
        });
    }
    out.flush().map_err(io(&tmp))?;
    drop(out);
    fs::rename(&tmp, dest).map_err(io(dest))
}

/// Parses `JRUN_QEMU_DISK_SIZE` (`20G`, `512M`, `1T`, plain bytes).
pub fn parse_size(s: &str) -> Result<u64, ImageError> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| ImageError::Size(s.into()))
}

/// Grows a raw disk to `size` bytes (sparse); never shrinks it.
pub fn grow(disk: &Path, size: u64) -> Result<(), ImageError> {
    let f = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(io(disk))?;
    let len = f.metadata().map_err(io(disk))?.len();
    if size > len {
        f.set_len(size).map_err(io(disk))?;
    }
    Ok(())
}

/// Fetches, verifies, decompresses and sizes the image into `dir`; returns the raw disk.
/// A download that does not match its checksum is deleted.
pub fn fetch(
    src: &ImageSource,
    dir: &Path,
    disk_size: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, ImageError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = src.file_name();
    let xz = dir.join(&name);
    let raw = dir.join(name.trim_end_matches(".xz"));
    if raw.exists() {
        grow(&raw, disk_size)?;
        return Ok(raw);
    }
    let sums_url = src.checksum_url();
    let sums = client()?
        .get(&sums_url)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .map_err(http(&sums_url))?;
    let expected = expected_sha512(&sums, &name).ok_or_else(|| ImageError::NoChecksum {
        url: sums_url.clone(),
        file: name.clone(),
    })?;
    if !xz.exists() {
        download(&src.image_url(), &xz, progress)?;
    }
    let actual = sha512_file(&xz)?;
    if actual != expected {
        let _ = fs::remove_file(&xz);
        return Err(ImageError::Mismatch {
            file: name,
            expected,
            actual,
        });
    }
    if let Err(e) = decompress_xz(&xz, &raw) {
        let _ = fs::remove_file(&xz);
        return Err(e);
    }
    let _ = fs::remove_file(&xz);
    grow(&raw, disk_size)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_mirror_layout() {
        let s = ImageSource {
            mirror: MIRROR.into(),
            release: Release::from_version("15.0").unwrap(),
            arch: Arch::X86_64,
        };
        assert_eq!(
            s.image_url(),
            "https://download.freebsd.org/releases/VM-IMAGES/15.0-RELEASE/amd64/Latest/FreeBSD-15.0-RELEASE-amd64-BASIC-CLOUDINIT-zfs.raw.xz"
        );
        let a = ImageSource {
            arch: Arch::Aarch64,
            ..s
        };
        assert_eq!(a.checksum_url(), "https://download.freebsd.org/releases/VM-IMAGES/15.0-RELEASE/aarch64/Latest/CHECKSUM.SHA512");
        assert!(a
            .image_url()
            .ends_with("FreeBSD-15.0-RELEASE-arm64-aarch64-BASIC-CLOUDINIT-zfs.raw.xz"));
    }

    #[test]
    fn checksum_lines() {
        let h = "a".repeat(128);
        let text = format!(
            "SHA512 (other.raw.xz) = {}\nSHA512 (x.raw.xz) = {h}\n",
            "b".repeat(128)
        );
        assert_eq!(expected_sha512(&text, "x.raw.xz"), Some(h));
        assert_eq!(
            expected_sha512("SHA512 (x.raw.xz) = zz\n", "x.raw.xz"),
            None
        );
        assert_eq!(expected_sha512(&text, "y"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "G", "-1G", "20X", "0"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
