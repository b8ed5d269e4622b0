//! The relay client: create a pairing, wait for the peer, or join one. Nothing the relay
//! says is trusted: statuses are checked, bodies bounded, rosters validated.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::protocol::{self, MessageError, PollStatus, Roster, MAX_ROSTER_JAILS};
use crate::PairCode;

/// The largest answer read from a relay; a valid one is far smaller.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The most characters of a relay's own words shown to the user.
const MAX_RELAY_TEXT_CHARS: usize = 200;

/// The longest a client waits for a peer to join (a longer deadline is cut to this).
pub const MAX_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why talking to the relay failed, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay URL is not an http(s) URL.
    #[error("{url:?} is not a relay URL (expected http:// or https://, e.g. set JRUN_RELAY)")]
    BadUrl {
        /// The refused URL.
        url: String,
    },
    /// No connection, or no answer in time.
    #[error("relay unreachable at {url}: {cause}")]
    Unreachable {
        /// The relay.
        url: String,
        /// What the HTTP client said.
        cause: String,
    },
    /// 404 for a code.
    #[error("code {code} expired or already used (if you did not mistype it, ask your peer for a new one)")]
    CodeGone {
        /// The code.
        code: PairCode,
    },
    /// 409: someone joined first.
    #[error("code {code} was already joined by someone else; if that was not your peer, someone may be guessing codes: create a new pairing")]
    AlreadyJoined {
        /// The code.
        code: PairCode,
    },
    /// 429/503: the relay asks us to come back later.
    #[error("the relay at {url} is busy ({message}); try again in {retry_after:?}")]
    Busy {
        /// The relay.
        url: String,
        /// Its explanation.
        message: String,
        /// How long it asked us to wait.
        retry_after: Duration,
    },
    /// Another error status.
    #[error("the relay at {url} refused the request ({status}): {message}")]
    Refused {
        /// The relay.
        url: String,
        /// The status.
        status: StatusCode,
        /// Its explanation.
        message: String,
    },
    /// An answer that breaks the protocol or carries an invalid roster.
    #[error("the relay at {url} sent an invalid answer ({cause}); nothing was changed")]
    Garbage {
        /// The relay.
        url: String,
        /// What is wrong with it.
        cause: String,
    },
    /// Nobody joined before the deadline.
    #[error("nobody joined pairing {code} within {waited:?}; the code is no longer worth sharing")]
    TimedOut {
        /// The code.
        code: PairCode,
        /// How long we waited.
        waited: Duration,
    },
    /// The wait was cancelled (Ctrl-C).
    #[error("waiting for pairing {code} was cancelled")]
    Cancelled {
        /// The code.
        code: PairCode,
    },
}

/// How [`RelayClient::wait_for_join`] polls.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Give up after this long.
    pub deadline: Duration,
    /// The first pause between polls; it doubles up to `max_interval`.
    pub first_interval: Duration,
    /// The longest pause between polls.
    pub max_interval: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            deadline: Duration::from_secs(600),
            first_interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(3),
        }
    }
}

/// A client of one relay.
#[derive(Debug, Clone)]
pub struct RelayClient {
    base: Url,
    http: reqwest::Client,
    max_jails: usize,
}

impl RelayClient {
    /// A client for the relay at `url` (e.g. `https://relay.example`).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl {
            url: url.to_string(),
        };
        let mut base = Url::parse(url).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(bad());
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("jrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                cause: e.to_string(),
            })?;
        Ok(RelayClient {
            base,
            http,
            max_jails: MAX_ROSTER_JAILS,
        })
    }

    /// The relay's URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// Creates a pairing for `roster` and returns its code.
    pub async fn create(&self, roster: &Roster) -> Result<PairCode, ClientError> {
        let response = self.post("pair", roster).await?;
        let body = self.answer(response, None).await?;
        let created = protocol::parse_created(&body).map_err(|e| self.garbage(e))?;
        Ok(created.code)
    }

    /// Asks once whether the peer joined. A `Joined` answer is final: the relay deleted
    /// the pairing.
    pub async fn poll(&self, code: &PairCode) -> Result<PollStatus, ClientError> {
        let url = self.endpoint(&format!("pair/{code}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        protocol::parse_poll(&body, self.max_jails).map_err(|e| self.garbage(e))
    }

    /// Polls until the peer joins, the deadline passes or `cancel` completes. Pauses grow
    /// from `first_interval` to `max_interval`; a busy relay's `Retry-After` is honoured.
    pub async fn wait_for_join(
        &self,
        code: &PairCode,
        options: &PollOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Roster, ClientError> {
        let started = Instant::now();
        let waited = options.deadline.min(MAX_DEADLINE);
        let deadline = started + waited;
        let mut interval = options.first_interval;
        tokio::pin!(cancel);
        loop {
            let pause = tokio::select! {
                () = &mut cancel => return Err(ClientError::Cancelled { code: code.clone() }),
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ClientError::TimedOut { code: code.clone(), waited })
                }
                answer = self.poll(code) => match answer {
                    Ok(PollStatus::Joined(roster)) => return Ok(roster),
                    Ok(PollStatus::Waiting) => interval,
                    Err(ClientError::Busy { retry_after, .. }) => retry_after.max(interval),
                    // A relay that restarts or a network that blips is no reason to give
                    // up a pairing that may still be joined.
                    Err(ClientError::Unreachable { .. }) => interval,
                    Err(e) => return Err(e),
                },
            };
            tokio::select! {
                () = &mut cancel => return Err(ClientError::Cancelled { code: code.clone() }),
                () = tokio::time::sleep_until(Instant::now().checked_add(pause).map_or(deadline, |t| t.min(deadline))) => {}
            }
            interval = interval.saturating_mul(2).min(options.max_interval);
        }
    }

    /// Joins the pairing `code` with `roster`; returns the creator's roster.
    pub async fn join(&self, code: &PairCode, roster: &Roster) -> Result<Roster, ClientError> {
        let response = self.post(&format!("pair/{code}"), roster).await?;
        let body = self.answer(response, Some(code)).await?;
        protocol::parse_roster(&body, self.max_jails).map_err(|e| self.garbage(e))
    }

    fn endpoint(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("paths built from validated codes are valid URLs")
    }

    async fn post(&self, path: &str, roster: &Roster) -> Result<Response, ClientError> {
        let body = serde_json::to_vec(roster).expect("rosters always serialise");
        self.http
            .post(self.endpoint(path))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// The body of a successful answer, or the error its status means.
    async fn answer(
        &self,
        mut response: Response,
        code: Option<&PairCode>,
    ) -> Result<Vec<u8>, ClientError> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(5), |s| Duration::from_secs(s.min(300)));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(
                    self.garbage_text(format!("an answer larger than {MAX_ANSWER_BYTES} bytes"))
                );
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        let message = error_message(status, &body);
        let url = self.base.to_string();
        Err(match (status, code) {
            (StatusCode::NOT_FOUND, Some(code)) => ClientError::CodeGone { code: code.clone() },
            (StatusCode::CONFLICT, Some(code)) => ClientError::AlreadyJoined { code: code.clone() },
            (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, _) => {
                ClientError::Busy {
                    url,
                    message,
                    retry_after,
                }
            }
            _ => ClientError::Refused {
                url,
                status,
                message,
            },
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        // reqwest's top-level message is vague ("error sending request"); its sources tell.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = format!("{cause}: {s}");
            source = s.source();
        }
        ClientError::Unreachable {
            url: self.base.to_string(),
            cause,
        }
    }

    fn garbage(&self, e: MessageError) -> ClientError {
        self.garbage_text(e.to_string())
    }

    fn garbage_text(&self, cause: String) -> ClientError {
        ClientError::Garbage {
            url: self.base.to_string(),
            cause: relay_text(&cause),
        }
    }
}

/// What an error answer says, fit for a terminal.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    protocol::parse_error(body)
        .map(|e| match e.field {
            Some(f) => format!("{}: {}", relay_text(&f), relay_text(&e.error)),
            None => relay_text(&e.error),
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string())
}

/// Text that came from the relay, made safe to print: control characters (escape
/// sequences could rewrite the terminal) are dropped and the length is capped.
fn relay_text(text: &str) -> String {
    let mut clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if let Some((cut, _)) = clean.char_indices().nth(MAX_RELAY_TEXT_CHARS) {
        clean.truncate(cut);
        clean.push('…');
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_words_lose_control_characters_and_are_capped() {
        let body = serde_json::json!({
            "error": format!("\u{1b}]0;pwned\u{7}\u{1b}[2Jbad\r\nthing\u{9b}31m{}", "x".repeat(300_000)),
            "field": "jails\u{1b}[1A",
        });
        let body = serde_json::to_vec(&body).unwrap();
        let message = error_message(StatusCode::BAD_REQUEST, &body);
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(
            message.starts_with("jails[1A: ]0;pwned[2Jbadthing31mxxx"),
            "{message:?}"
        );
        assert!(
            message.chars().count() <= 2 * MAX_RELAY_TEXT_CHARS + 4,
            "{}",
            message.len()
        );
        assert!(message.ends_with('…'));
        assert_eq!(relay_text("short é"), "short é");
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"not json"),
            "Bad Gateway"
        );
    }

    #[test]
    fn urls() {
        let c = RelayClient::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(c.endpoint("pair").as_str(), "http://127.0.0.1:8080/pair");
        let c = RelayClient::new("https://relay.test/base").unwrap();
        assert_eq!(
            c.endpoint("pair/1-a-b-c").as_str(),
            "https://relay.test/base/pair/1-a-b-c"
        );
        for bad in ["", "relay.test", "ftp://relay.test", "file:///etc/passwd"] {
            assert!(
                matches!(RelayClient::new(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }
}
