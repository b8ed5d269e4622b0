//! Relays written in the tests: a tiny HTTP server on 127.0.0.1 whose answers a test
//! chooses, one request per connection, each connection on its own thread (pairing v2's
//! requests wait at the relay for the peer's, so two are in flight at once); it may pass
//! requests on to a real relay ([`forward`]) and change them, or the answers, on the way.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a stub answers: a status line's tail (`200 OK`) and a JSON body.
pub type Answer = (&'static str, String);

/// What a [`HttpStub::serve`] handler answers, and what [`forward`] returns: a status
/// line's tail, the `Content-Type` and the body.
pub type Reply = (String, String, Vec<u8>);

/// One request as a stub read it (or an answer as [`forward`] read it).
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST /v2/nameplate HTTP/1.1` (`HTTP/1.1 200 OK` for an answer), without the line
    /// end.
    pub line: String,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path of the request line (with its query).
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server on loopback calling `handler(request line, body)` for each request;
/// stopped when dropped.
pub struct HttpStub {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpStub {
    pub fn start(handler: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Self {
        HttpStub::serve(move |request: &Request| {
            let (status, body) = handler(&request.line, &String::from_utf8_lossy(&request.body));
            let json = "application/json".to_string();
            (status.to_string(), json, body.into_bytes())
        })
    }

    /// A stub whose handler sees the whole request and may answer any status and body.
    pub fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let handler = Arc::new(handler);
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
                let handler = handler.clone();
                std::thread::spawn(move || serve_one(stream, &*handler));
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

/// Reads one HTTP/1.1 message: start line, headers, and its `Content-Length` body.
fn read_message(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut start = String::new();
    reader.read_line(&mut start)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        line: start.trim_end().to_string(),
        headers,
        body,
    })
}

fn serve_one(stream: TcpStream, handler: &impl Fn(&Request) -> Reply) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let (status, content_type, reply) = handler(&read_message(&mut reader)?);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.len()
    )?;
    stream.write_all(&reply)
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

/// Passes `request` on to the HTTP server at `upstream` (`http://127.0.0.1:<port>`) with
/// `body` instead of its own, keeping its method, path, `Content-Type` and
/// `Authorization`; returns the answer's status line tail (`404 Not Found`), type and body.
pub fn forward(upstream: &str, request: &Request, body: &[u8]) -> Reply {
    let host = upstream.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    // Longer than any wait a pairing v2 request asks the relay for.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{}\r\nhost: {host}\r\n", request.line);
    for name in ["content-type", "authorization"] {
        if let Some(v) = request.header(name) {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let answer = read_message(&mut BufReader::new(stream)).unwrap();
    let status = answer
        .line
        .split_once(' ')
        .map_or("", |(_, s)| s)
        .to_string();
    let content_type = answer
        .header("content-type")
        .unwrap_or("application/json")
        .to_string();
    (status, content_type, answer.body)
}
