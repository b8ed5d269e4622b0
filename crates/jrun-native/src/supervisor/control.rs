//! The supervisor's control protocol: one JSON request line, one JSON response line, over
//! the unix socket `run/supervisor.sock` (mode 0600 under a root-owned run dir).

use std::io::{BufRead, BufReader, Write};
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

/// Reads one request line from a connection.
pub fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad request {line:?}: {e}"))
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
}
