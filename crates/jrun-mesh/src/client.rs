//! The relay client: create a pairing, wait for the peer, or join one. Nothing the relay
//! says is trusted: statuses are checked, bodies bounded, rosters validated, redirects
//! refused; plain `http://` is used only to this machine unless the user says otherwise.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::{Host, Url};

use crate::pair_v2::{self, Allocated, Message, Offer, Phase, Posted, Side, V2Code, V2Error};
use crate::protocol::CreatorToken;
use crate::protocol::{
    self, Created, MessageError, PollStatus, Roster, MAX_ROSTER_JAILS, TOKEN_OPT_IN_HEADER,
};
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
    /// A plain `http://` relay on another machine, without the user's consent.
    #[error("refusing the relay {url}: plain http:// to another machine lets anyone on the way read and rewrite both rosters; use an https:// relay, or pass --insecure-relay (JRUN_RELAY_INSECURE=1) to accept that risk")]
    InsecureUrl {
        /// The refused URL.
        url: String,
    },
    /// The relay answered with a redirect, which is never followed.
    #[error("the relay at {url} answered {status} redirecting to {location}; jrun follows no redirects (point JRUN_RELAY at the relay itself if you trust the new address); nothing was changed")]
    Redirected {
        /// The relay.
        url: String,
        /// The 3xx status.
        status: StatusCode,
        /// Where it pointed (cleaned for the terminal), or `(none)`.
        location: String,
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
    /// Pairing v2 failed: wrong code, tampering, a bad roster entry.
    #[error(transparent)]
    Pairing(#[from] V2Error),
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

/// What a [`RelayClient`] accepts beyond the safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// Accept a plain `http://` relay on another machine (`--insecure-relay`,
    /// `JRUN_RELAY_INSECURE=1`). Loopback relays are always accepted.
    pub insecure_http: bool,
}

/// A client of one relay.
#[derive(Debug, Clone)]
pub struct RelayClient {
    base: Url,
    http: reqwest::Client,
    max_jails: usize,
}

impl RelayClient {
    /// A client for the relay at `url` (e.g. `https://relay.example`), with the safe
    /// defaults: `http://` only to this machine.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        RelayClient::with_options(url, ClientOptions::default())
    }

    /// A client for the relay at `url`. Checks the URL before anything touches the
    /// network: a refused URL sends nothing anywhere.
    pub fn with_options(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl {
            url: url.to_string(),
        };
        let mut base = Url::parse(url).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(bad());
        }
        if base.scheme() == "http" && !is_loopback(&base) && !options.insecure_http {
            return Err(ClientError::InsecureUrl {
                url: url.to_string(),
            });
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("jrun/", env!("CARGO_PKG_VERSION")))
            // A redirect could send the roster, or root's request, anywhere (internal
            // endpoints, https to http): a 3xx is an error instead.
            .redirect(reqwest::redirect::Policy::none())
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

    /// Creates a pairing for `roster` and returns its code, with the creator token when
    /// the relay issues one (jrun's relay does; Jailrun's does not).
    pub async fn create(&self, roster: &Roster) -> Result<Created, ClientError> {
        let response = self.post("pair", roster, true).await?;
        let body = self.answer(response, None).await?;
        protocol::parse_created(&body).map_err(|e| self.garbage(e))
    }

    /// Asks once whether the peer joined, presenting the creator token if there is one.
    /// A `Joined` answer is final: the relay deleted the pairing.
    pub async fn poll(&self, pairing: &Created) -> Result<PollStatus, ClientError> {
        let code = &pairing.code;
        let url = self.endpoint(&format!("pair/{code}"));
        let mut request = self.http.get(url);
        if let Some(token) = &pairing.token {
            let value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
                .expect("a token is hex digits");
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        protocol::parse_poll(&body, self.max_jails).map_err(|e| self.garbage(e))
    }

    /// Polls until the peer joins, the deadline passes or `cancel` completes. Pauses grow
    /// from `first_interval` to `max_interval`; a busy relay's `Retry-After` is honoured.
    pub async fn wait_for_join(
        &self,
        pairing: &Created,
        options: &PollOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Roster, ClientError> {
        let code = &pairing.code;
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
                answer = self.poll(pairing) => match answer {
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
        let response = self.post(&format!("pair/{code}"), roster, false).await?;
        let body = self.answer(response, Some(code)).await?;
        protocol::parse_roster(&body, self.max_jails).map_err(|e| self.garbage(e))
    }

    /// Whether the relay speaks pairing v2 (`GET /v2`). A relay that does not know the
    /// route (Jailrun's, or an older jrun) answers an error status: `false`.
    pub async fn offers_v2(&self) -> Result<bool, ClientError> {
        let response = self
            .http
            .get(self.endpoint("v2"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match self.answer(response, None).await {
            Ok(body) => Ok(serde_json::from_slice::<Offer>(&body)
                .is_ok_and(|offer| offer.versions.contains(&2))),
            Err(ClientError::Refused { status, .. }) if status.is_client_error() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/nameplate`.
    pub async fn v2_allocate(&self) -> Result<Allocated, ClientError> {
        let response = self
            .http
            .post(self.endpoint("v2/nameplate"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, None).await?;
        let allocated: Allocated = serde_json::from_slice(&body)
            .map_err(|e| self.garbage_text(format!("nameplate answer: {e}")))?;
        if !(pair_v2::NAMEPLATE_MIN..=pair_v2::NAMEPLATE_MAX).contains(&allocated.nameplate) {
            return Err(
                self.garbage_text(format!("nameplate {} out of range", allocated.nameplate))
            );
        }
        Ok(allocated)
    }

    fn bearer(token: &CreatorToken) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {}", token.as_str())).expect("a token is hex digits")
    }

    /// Posts one v2 message; `code` names the pairing in errors.
    pub async fn v2_post(
        &self,
        code: &PairCode,
        nameplate: u32,
        token: Option<&CreatorToken>,
        message: &Message,
    ) -> Result<Posted, ClientError> {
        let body = serde_json::to_vec(&message.to_wire()).expect("messages serialise");
        let mut request = self
            .http
            .post(self.endpoint(&format!("v2/nameplate/{nameplate}/messages")))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, Self::bearer(t));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        serde_json::from_slice(&body).map_err(|e| self.garbage_text(format!("post answer: {e}")))
    }

    /// The messages of a v2 nameplate from index `after` on.
    pub async fn v2_messages(
        &self,
        code: &PairCode,
        nameplate: u32,
        token: &CreatorToken,
        after: usize,
    ) -> Result<Vec<Message>, ClientError> {
        let response = self
            .http
            .get(self.endpoint(&format!("v2/nameplate/{nameplate}/messages?after={after}")))
            .header(AUTHORIZATION, Self::bearer(token))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        pair_v2::parse_messages(&body, 12).map_err(|e| self.garbage(e))
    }

    fn endpoint(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("paths built from validated codes are valid URLs")
    }

    async fn post(
        &self,
        path: &str,
        roster: &Roster,
        want_token: bool,
    ) -> Result<Response, ClientError> {
        let body = serde_json::to_vec(roster).expect("rosters always serialise");
        let mut request = self
            .http
            .post(self.endpoint(path))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if want_token {
            request = request.header(TOKEN_OPT_IN_HEADER, HeaderValue::from_static("1"));
        }
        request
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
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .map(|v| relay_text(&String::from_utf8_lossy(v.as_bytes())))
                .unwrap_or_else(|| "(none)".to_string());
            return Err(ClientError::Redirected {
                url: self.base.to_string(),
                status,
                location,
            });
        }
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

/// One side's view of a v2 nameplate: posts this side's messages, waits for the peer's.
pub trait Mailbox {
    /// Posts this side's message of `phase`.
    fn post(
        &mut self,
        phase: Phase,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), ClientError>>;
    /// Waits for the peer's message of `phase`; [`V2Error::PeerAborted`] if the peer gave up.
    fn receive(&mut self, phase: Phase) -> impl Future<Output = Result<Vec<u8>, ClientError>>;
}

/// A [`Mailbox`] on a relay over HTTP, polling for the peer's messages.
pub struct RelayMailbox<'a> {
    client: &'a RelayClient,
    code: PairCode,
    nameplate: u32,
    side: Side,
    token: Option<CreatorToken>,
    cursor: usize,
    inbox: Vec<Message>,
    options: PollOptions,
    deadline: Instant,
}

impl<'a> RelayMailbox<'a> {
    /// Allocates a nameplate and draws the code's words here: returns the code to share
    /// and side a's mailbox.
    pub async fn create(
        client: &'a RelayClient,
        options: PollOptions,
    ) -> Result<(V2Code, RelayMailbox<'a>), ClientError> {
        let allocated = client.v2_allocate().await?;
        let code = V2Code::random(allocated.nameplate).map_err(|e| ClientError::Unreachable {
            url: client.base.to_string(),
            cause: format!("the OS random number generator failed: {e}"),
        })?;
        let mailbox = RelayMailbox::new(client, &code, Side::A, Some(allocated.token), options);
        Ok((code, mailbox))
    }

    /// Side b's mailbox for a code the peer gave; side b is claimed by its first post.
    pub fn join(client: &'a RelayClient, code: &V2Code, options: PollOptions) -> Self {
        RelayMailbox::new(client, code, Side::B, None, options)
    }

    fn new(
        client: &'a RelayClient,
        code: &V2Code,
        side: Side,
        token: Option<CreatorToken>,
        options: PollOptions,
    ) -> Self {
        let deadline = Instant::now() + options.deadline.min(MAX_DEADLINE);
        RelayMailbox {
            client,
            code: code.code(),
            nameplate: code.nameplate(),
            side,
            token,
            cursor: 0,
            inbox: Vec::new(),
            options,
            deadline,
        }
    }
}

impl Mailbox for RelayMailbox<'_> {
    async fn post(&mut self, phase: Phase, body: Vec<u8>) -> Result<(), ClientError> {
        let message = Message {
            side: self.side,
            phase,
            body,
        };
        let posted = self
            .client
            .v2_post(&self.code, self.nameplate, self.token.as_ref(), &message)
            .await?;
        if self.token.is_none() {
            self.token = Some(posted.token.ok_or_else(|| {
                self.client
                    .garbage_text("the relay handed out no token for side b".into())
            })?);
        }
        Ok(())
    }

    async fn receive(&mut self, phase: Phase) -> Result<Vec<u8>, ClientError> {
        let peer = self.side.peer();
        let mut interval = self.options.first_interval;
        loop {
            for m in self.inbox.iter().filter(|m| m.side == peer) {
                if m.phase == phase {
                    return Ok(m.body.clone());
                }
                if m.phase == Phase::Abort {
                    return Err(V2Error::PeerAborted.into());
                }
                if m.phase == Phase::Done {
                    return Err(V2Error::Malformed(format!(
                        "the peer ended without sending its {phase:?} message"
                    ))
                    .into());
                }
            }
            let token = self.token.clone().ok_or(V2Error::OutOfOrder)?;
            let pause = match self
                .client
                .v2_messages(&self.code, self.nameplate, &token, self.cursor)
                .await
            {
                Ok(new) if !new.is_empty() => {
                    self.cursor += new.len();
                    self.inbox.extend(new);
                    continue;
                }
                Ok(_) => interval,
                Err(ClientError::Busy { retry_after, .. }) => retry_after.max(interval),
                Err(ClientError::Unreachable { .. }) => interval,
                Err(e) => return Err(e),
            };
            if Instant::now() + pause >= self.deadline {
                return Err(ClientError::TimedOut {
                    code: self.code.clone(),
                    waited: self.options.deadline,
                });
            }
            tokio::time::sleep(pause).await;
            interval = interval.saturating_mul(2).min(self.options.max_interval);
        }
    }
}

/// Runs one side of a v2 pairing over `mailbox`: PAKE, key confirmation, sealed signed
/// rosters, acknowledgements. Returns the peer's verified roster. Whatever fails, this
/// side tells the peer it gave up (best effort), so the peer stops too.
pub async fn exchange_v2(
    mailbox: &mut impl Mailbox,
    side: Side,
    code: &V2Code,
    jails: &[(crate::DnsLabel, crate::Identity)],
    max_jails: usize,
) -> Result<Roster, ClientError> {
    let result = exchange_steps(mailbox, side, code, jails, max_jails).await;
    let end = if result.is_ok() {
        Phase::Done
    } else {
        Phase::Abort
    };
    // The relay forgets the nameplate once both sides ended; a lost "end" only waits
    // for the TTL.
    let _ = mailbox.post(end, Vec::new()).await;
    result
}

async fn exchange_steps(
    mailbox: &mut impl Mailbox,
    side: Side,
    code: &V2Code,
    jails: &[(crate::DnsLabel, crate::Identity)],
    max_jails: usize,
) -> Result<Roster, ClientError> {
    let (mut session, pake) = pair_v2::Session::start(side, code);
    mailbox.post(Phase::Pake, pake).await?;
    let peer_pake = mailbox.receive(Phase::Pake).await?;
    let confirm = session.receive_pake(&peer_pake)?;
    mailbox.post(Phase::Confirm, confirm).await?;
    let peer_confirm = mailbox.receive(Phase::Confirm).await?;
    session.receive_confirm(&peer_confirm)?;
    let sealed = session.seal_roster(jails)?;
    mailbox.post(Phase::Roster, sealed).await?;
    let peer_roster = mailbox.receive(Phase::Roster).await?;
    let roster = session.open_roster(&peer_roster, max_jails)?;
    mailbox.post(Phase::Ack, session.ack()?).await?;
    let peer_ack = mailbox.receive(Phase::Ack).await?;
    session.receive_ack(&peer_ack)?;
    Ok(roster)
}

/// Whether the URL's host is this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
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
        for bad in [
            "",
            "relay.test",
            "ftp://relay.test",
            "file:///etc/passwd",
            "http://",
        ] {
            assert!(
                matches!(RelayClient::new(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn http_relay_off_loopback_is_refused() {
        // Constructing a client does no I/O at all: the refusal comes before any
        // connection could be made (192.0.2.1 is TEST-NET-1 and is never contacted).
        for url in [
            "http://192.0.2.1",
            "http://192.0.2.1:8080/base",
            "http://relay.example.org",
            "http://[2001:db8::1]",
            "http://localhost.example.org",
            "http://128.0.0.1",
        ] {
            let err = RelayClient::new(url).unwrap_err();
            assert!(
                matches!(err, ClientError::InsecureUrl { .. }),
                "{url}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains("--insecure-relay") && text.contains("JRUN_RELAY_INSECURE"),
                "{text}"
            );
            // With the user's consent it is accepted (still without connecting).
            let options = ClientOptions {
                insecure_http: true,
            };
            assert!(RelayClient::with_options(url, options).is_ok(), "{url}");
        }
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]",
            "https://192.0.2.1",
            "https://relay.example.org",
        ] {
            assert!(RelayClient::new(url).is_ok(), "{url}");
        }
    }
}
