//! The supervisor's control protocol: one JSON request line, one JSON response line, over
//! the unix socket `run/supervisor.sock` (mode 0600 under a root-owned run dir).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::children::ChildStatus;
use super::services::ServiceStatus;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Re-read `supervision.json` and converge; answers once listeners are bound.
    Reload,
    Status,
    /// Start again the failed services of these jails (answers with the ones revived).
    Revive(Vec<String>),
    /// Stop every child and listener, then exit.
    Shutdown,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    /// The jails' services (`exec`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
    /// What a reload could not start, item by item, so a caller looks only at its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// The forwards whose listener is bound right now (a `status` answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<super::spec::ForwardSpec>,
}

/// One item a reload could not bring up: a service (`<jail>/<exec>`), a child (its name) or
/// a forward (`forward <proto>/<listen>`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub key: String,
    pub error: String,
}

impl Response {
    /// The answer to a reload: whole-reload trouble (`Err`) or the items that failed.
    pub fn reloaded(result: Result<Vec<Failure>, String>) -> Self {
        match result {
            Ok(failures) => Response {
                ok: failures.is_empty(),
                error: (!failures.is_empty()).then(|| join(&failures)),
                failures,
                ..Default::default()
            },
            Err(e) => Response {
                ok: false,
                error: Some(e),
                ..Default::default()
            },
        }
    }

    /// This reload's trouble for the services of `jail` only: a failure elsewhere (another
    /// jail's service, a forward that cannot bind) is not the caller's.
    pub fn jail_error(&self, jail: &str) -> Option<String> {
        let prefix = format!("{jail}/");
        self.items_error(|key| key.starts_with(&prefix))
    }

    /// This reload's trouble for the items `mine` picks out by key (or the whole reload's,
    /// when it failed as a whole).
    pub fn items_error(&self, mine: impl Fn(&str) -> bool) -> Option<String> {
        if self.ok {
            return None;
        }
        if self.failures.is_empty() {
            return Some(self.error.clone().unwrap_or_default());
        }
        let own: Vec<Failure> = self
            .failures
            .iter()
            .filter(|f| mine(&f.key))
            .cloned()
            .collect();
        (!own.is_empty()).then(|| join(&own))
    }
}

/// The key a reload failure of `spec`'s listener has.
pub fn forward_key(spec: &super::spec::ForwardSpec) -> String {
    format!("forward {}/{}", spec.proto, spec.listen)
}

fn join(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.key, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends one request and waits for its answer.
pub fn request(socket: &Path, req: &Request) -> Result<Response, String> {
    let fail = |e: std::io::Error| format!("supervisor socket {}: {e}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(fail)?;
    let mut line = serde_json::to_string(req).expect("plain data serialises");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(fail)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(fail)?;
    serde_json::from_str(&answer)
        .map_err(|e| format!("supervisor answered {answer:?}, which is not a response: {e}"))
}

/// The longest request line read; requests are a few bytes, so anything longer is garbage.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long the supervisor's single loop waits for a client's request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads one request line from an accepted connection, bounded in size and time: a client
/// that sends nothing (or no newline) costs the supervisor's loop at most a second.
pub fn read_request(stream: &UnixStream) -> Result<Request, String> {
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST))
        .read_line(&mut line)
        .map_err(|e| format!("no request line: {e}"))?;
    serde_json::from_str(&line).map_err(|e| {
        let shown: String = line.chars().take(200).collect();
        format!("bad request {shown:?}: {e}")
    })
}

pub fn write_response(mut stream: &UnixStream, resp: &Response) {
    let mut line = serde_json::to_string(resp).expect("plain data serialises");
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            serde_json::to_string(&Request::Reload).unwrap(),
            "\"reload\""
        );
        let r: Response = serde_json::from_str(r#"{"ok":false,"error":"port busy"}"#).unwrap();
        assert_eq!(r.error.as_deref(), Some("port busy"));
    }

    #[test]
    fn a_silent_or_endless_client_is_cut_off() {
        let (client, server) = UnixStream::pair().unwrap();
        let started = std::time::Instant::now();
        let err = read_request(&server).unwrap_err();
        assert!(err.contains("no request line"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        // No newline, more than the limit: read up to the limit, then refused.
        let writer = std::thread::spawn(move || {
            let mut c = client;
            let chunk = vec![b'x'; 16 * 1024];
            for _ in 0..64 {
                if c.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let err = read_request(&server).unwrap_err();
        assert!(err.starts_with("bad request"), "{err}");
        assert!(err.len() < 1000);
        drop(server);
        writer.join().unwrap();
    }

    fn failure(key: &str, error: &str) -> Failure {
        Failure {
            key: key.into(),
            error: error.into(),
        }
    }

    #[test]
    fn a_jail_hears_only_its_own_reload_failures() {
        let r = Response::reloaded(Ok(vec![
            failure("forward tcp/127.0.0.1:8080", "address in use"),
            failure("api/web", "no such file"),
            failure("apix/web", "other"),
        ]));
        assert!(!r.ok);
        assert_eq!(r.jail_error("db"), None);
        assert_eq!(
            r.jail_error("api").as_deref(),
            Some("api/web: no such file")
        );
        assert!(r
            .error
            .as_deref()
            .unwrap()
            .contains("forward tcp/127.0.0.1:8080"));
        let clean = Response::reloaded(Ok(Vec::new()));
        assert!(clean.ok && clean.jail_error("api").is_none());
        assert_eq!(
            r.items_error(|k| k == "forward tcp/127.0.0.1:8080")
                .as_deref(),
            Some("forward tcp/127.0.0.1:8080: address in use")
        );
        assert_eq!(r.items_error(|k| k == "ygg-web"), None);
        let broken = Response::reloaded(Err("bad services.json".into()));
        assert_eq!(
            broken.jail_error("api").as_deref(),
            Some("bad services.json")
        );
    }
}
