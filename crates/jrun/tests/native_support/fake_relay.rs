//! Relays written in the tests: a tiny HTTP server on 127.0.0.1 whose answers a test
//! chooses, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a stub answers: a status line's tail (`200 OK`) and a JSON body.
pub type Answer = (&'static str, String);

/// An HTTP server on loopback calling `handler(request line, body)` for each request;
/// stopped when dropped.
pub struct HttpStub {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpStub {
    pub fn start(handler: impl Fn(&str, &str) -> Answer + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let _ = serve_one(stream, &handler);
            }
        });
        HttpStub {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    stream: std::net::TcpStream,
    handler: &impl Fn(&str, &str) -> Answer,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, reply) = handler(&request_line, &String::from_utf8_lossy(&body));
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    )
}

/// A v1 relay whose "peer" is always `roster_body`: a creator's poll finds it joined, a
/// join gets it back.
pub fn fixed_roster(roster_body: String) -> HttpStub {
    HttpStub::start(move |request_line, _| {
        let reply = if request_line.starts_with("POST /pair ") {
            r#"{"code":"5-hostile-relay-test"}"#.to_string()
        } else if request_line.starts_with("GET ") {
            roster_body.replacen("{\"jails\"", "{\"joined\":true,\"jails\"", 1)
        } else {
            roster_body.clone()
        };
        ("200 OK", reply)
    })
}
