//! A tiny local HTTP server for image tests: serves one `.raw.xz` (with `Range`
//! support) and a `CHECKSUM.SHA512`; it can cut the first image response short.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

pub struct Server {
    /// The mirror URL to give `ImageSource`.
    pub base: String,
    /// The Range header (or "-") of every image request.
    pub ranges: Arc<Mutex<Vec<String>>>,
}

/// Serves `xz` and a checksum file; the first image response stops after `cut` bytes.
pub fn serve(xz: Vec<u8>, checksum: String, cut: Option<usize>) -> Server {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let base = format!("http://{}/VM-IMAGES", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(vec![]));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let mut cut = cut;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut range = None;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            if path.ends_with("CHECKSUM.SHA512") {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{checksum}",
                    checksum.len()
                );
                continue;
            }
            if !path.ends_with(".raw.xz") {
                let _ = write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            }
            seen.lock()
                .unwrap()
                .push(range.map_or("-".to_string(), |n| n.to_string()));
            let start = range.unwrap_or(0);
            let body = &xz[start..];
            let head = match range {
                Some(n) => format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len(),
                    xz.len() - 1,
                    xz.len()
                ),
                None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()),
            };
            let _ = s.write_all(head.as_bytes());
            match cut.take() {
                Some(n) => {
                    let _ = s.write_all(&body[..n]);
                    let _ = s.flush();
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
                None => {
                    let _ = s.write_all(body);
                }
            }
        }
    });
    Server { base, ranges }
}

/// Serves `raw` as FreeBSD 15.0's amd64 cloud image: xz-compressed, with its SHA-512 in
/// `CHECKSUM.SHA512`, as the release mirror publishes them.
pub fn serve_image(raw: &[u8]) -> Server {
    use sha2::{Digest, Sha512};
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
    let name = "FreeBSD-15.0-RELEASE-amd64-BASIC-CLOUDINIT-zfs.raw.xz";
    let hex: String = Sha512::digest(&xz)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serve(xz, format!("SHA512 ({name}) = {hex}\n"), None)
}

/// A port on 127.0.0.1 free right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
