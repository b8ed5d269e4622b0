//! The relay client: create a pairing, wait for the peer, or join one. Nothing the relay
//! says is trusted: statuses are checked, bodies bounded, rosters validated, redirects
//! refused; plain `http://` is used only to this machine unless the user says otherwise.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::{Host, Url};

use crate::pair_v2::{self, Allocated, Message, Offer, Phase, Side, V2Code, V2Error};
use crate::protocol::CreatorToken;
use crate::protocol::{
    self, Created, MessageError, PollStatus, Roster, MAX_ROSTER_JAILS, TOKEN_OPT_IN_HEADER,
};
use crate::PairCode;

/// The largest answer read from a relay; a valid one is far smaller.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The most characters of a relay's own words shown to the user.
const MAX_RELAY_TEXT_CHARS: usize = 200;

/// How long a v2 request asks the relay to hold its answer for the peer's next message:
/// under `jrun relay`'s default cap, so that the relay, not a timeout, ends the wait.
pub const V2_WAIT: Duration = Duration::from_secs(25);

/// How long an answer may take beyond the wait the request asked for.
const ANSWER_TIME: Duration = Duration::from_secs(15);

/// The most messages a side sends in a pairing (`pake`, `confirm`, `roster`, `ack`), plus
/// an `abort`.
const MAX_PEER_MESSAGES: usize = 5;

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

    /// The relay's pairing v2 offer (`GET /v2`), if it speaks v2. A relay that does not
    /// know the route (Jailrun's, or an older jrun) answers an error status: `None`.
    pub async fn offers_v2(&self) -> Result<Option<Offer>, ClientError> {
        let response = self
            .http
            .get(self.endpoint("v2"))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match self.answer(response, None).await {
            Ok(body) => Ok(serde_json::from_slice::<Offer>(&body)
                .ok()
                .filter(|offer| offer.versions.contains(&2))),
            Err(ClientError::Refused { status, .. }) if status.is_client_error() => Ok(None),
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

    fn messages_url(&self, nameplate: u32, after: usize, wait: Duration) -> Url {
        self.endpoint(&format!(
            "v2/nameplate/{nameplate}/messages?after={after}&wait={}",
            wait.as_secs()
        ))
    }

    /// Posts this side's `messages` in one request (`code` names the pairing in errors)
    /// and returns side b's token, when this post claimed it, and the peer's messages from
    /// index `after` on — after the relay waited up to `wait` for one.
    pub async fn v2_post(
        &self,
        code: &PairCode,
        nameplate: u32,
        token: Option<&CreatorToken>,
        messages: &[Message],
        after: usize,
        wait: Duration,
    ) -> Result<(Option<CreatorToken>, Vec<Message>), ClientError> {
        let body = pair_v2::encode_messages(messages);
        let mut request = self
            .http
            .post(self.messages_url(nameplate, after, wait))
            .timeout(wait + ANSWER_TIME)
            .header(CONTENT_TYPE, HeaderValue::from_static(pair_v2::MEDIA_TYPE));
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, Self::bearer(t));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        pair_v2::parse_posted(&body, MAX_PEER_MESSAGES).map_err(|e| self.garbage(e))
    }

    /// The peer's messages of a v2 nameplate from index `after` on, once there is one or
    /// `wait` passed. Without a token (a joiner before its first post): side a's PAKE.
    pub async fn v2_messages(
        &self,
        code: &PairCode,
        nameplate: u32,
        token: Option<&CreatorToken>,
        after: usize,
        wait: Duration,
    ) -> Result<Vec<Message>, ClientError> {
        let mut request = self
            .http
            .get(self.messages_url(nameplate, after, wait))
            .timeout(wait + ANSWER_TIME);
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, Self::bearer(t));
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let body = self.answer(response, Some(code)).await?;
        pair_v2::parse_messages(&body, MAX_PEER_MESSAGES).map_err(|e| self.garbage(e))
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

/// One side's view of a v2 nameplate: sends this side's messages, waits for the peer's.
pub trait Mailbox {
    /// Sends this side's next `messages` in one request. With `wait`, the relay holds the
    /// answer until the peer sent more (for a while); what comes back is kept for
    /// [`Mailbox::receive`].
    fn send(
        &mut self,
        messages: Vec<(Phase, Vec<u8>)>,
        wait: bool,
    ) -> impl Future<Output = Result<(), ClientError>>;
    /// The peer's message of `phase`, once it arrived; [`V2Error::PeerAborted`] if the
    /// peer gave up first.
    fn receive(&mut self, phase: Phase) -> impl Future<Output = Result<Vec<u8>, ClientError>>;
}

/// A [`Mailbox`] on a relay over HTTP: each request waits at the relay for the peer's
/// next messages (long poll), so a pairing takes six requests when nothing goes wrong.
pub struct RelayMailbox<'a> {
    client: &'a RelayClient,
    code: PairCode,
    nameplate: u32,
    side: Side,
    token: Option<CreatorToken>,
    /// The peer's messages so far, in order; its length is the read cursor.
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
            inbox: Vec::new(),
            options,
            deadline,
        }
    }

    /// How long the next request may wait at the relay: [`V2_WAIT`], or what is left.
    fn wait(&self) -> Duration {
        V2_WAIT.min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// Keeps the peer's messages of an answer; a relay that hands this side its own (or,
    /// to a joiner that has not posted yet, anything but a's PAKE) breaks the protocol.
    fn take(&mut self, messages: Vec<Message>) -> Result<(), ClientError> {
        let peer = self.side.peer();
        let joining = self.token.is_none();
        if messages
            .iter()
            .any(|m| m.side != peer || (joining && m.phase != Phase::Pake))
        {
            return Err(self
                .client
                .garbage_text("the relay handed over a message that is not the peer's".into()));
        }
        if self.inbox.len() + messages.len() > MAX_PEER_MESSAGES {
            return Err(self.client.garbage_text("too many messages".into()));
        }
        self.inbox.extend(messages);
        Ok(())
    }
}

impl Mailbox for RelayMailbox<'_> {
    async fn send(
        &mut self,
        messages: Vec<(Phase, Vec<u8>)>,
        wait: bool,
    ) -> Result<(), ClientError> {
        let messages: Vec<Message> = messages
            .into_iter()
            .map(|(phase, body)| Message {
                side: self.side,
                phase,
                body,
            })
            .collect();
        let wait = if wait { self.wait() } else { Duration::ZERO };
        let (issued, peer) = self
            .client
            .v2_post(
                &self.code,
                self.nameplate,
                self.token.as_ref(),
                &messages,
                self.inbox.len(),
                wait,
            )
            .await?;
        if self.token.is_none() {
            self.token = Some(issued.ok_or_else(|| {
                self.client
                    .garbage_text("the relay handed out no token for side b".into())
            })?);
        }
        self.take(peer)
    }

    async fn receive(&mut self, phase: Phase) -> Result<Vec<u8>, ClientError> {
        let mut interval = self.options.first_interval;
        loop {
            for m in &self.inbox {
                if m.phase == phase {
                    return Ok(m.body.clone());
                }
                if m.phase == Phase::Abort {
                    return Err(V2Error::PeerAborted.into());
                }
                if m.phase.is_final() {
                    return Err(V2Error::Malformed(format!(
                        "the peer ended without sending its {phase:?} message"
                    ))
                    .into());
                }
            }
            if Instant::now() >= self.deadline {
                return Err(ClientError::TimedOut {
                    code: self.code.clone(),
                    waited: self.options.deadline,
                });
            }
            let wait = self.wait();
            let asked = Instant::now();
            let pause = match self
                .client
                .v2_messages(
                    &self.code,
                    self.nameplate,
                    self.token.as_ref(),
                    self.inbox.len(),
                    wait,
                )
                .await
            {
                // The relay's wait ran out: ask again at once.
                Ok(new) if !new.is_empty() || asked.elapsed() >= wait => {
                    self.take(new)?;
                    interval = self.options.first_interval;
                    continue;
                }
                // Empty before the wait ran out (a relay with a shorter cap, or one that
                // does not wait): pause as between polls rather than spin.
                Ok(_) => interval,
                Err(ClientError::Busy { retry_after, .. }) => retry_after.max(interval),
                // A relay that restarts or a network that blips is no reason to give up
                // a pairing that may still go through.
                Err(ClientError::Unreachable { .. }) => interval,
                Err(e) => return Err(e),
            };
            let wake = (Instant::now() + pause).min(self.deadline);
            tokio::time::sleep_until(wake).await;
            interval = interval.saturating_mul(2).min(self.options.max_interval);
        }
    }
}

/// Runs one side of a v2 pairing over `mailbox` (docs/pairing.md): the creator sends its
/// PAKE message, then its confirmation, sealed roster and ack together; the joiner its
/// PAKE message, confirmation and sealed roster together, then its ack. Returns the peer's
/// verified roster once the peer's ack verified. Whatever fails, this side tells the peer
/// it gave up (best effort, with its confirmation if the peer has not had it, so that the
/// peer too can tell a wrong code), so the peer stops too.
pub async fn exchange_v2(
    mailbox: &mut impl Mailbox,
    side: Side,
    code: &V2Code,
    jails: &[(crate::DnsLabel, crate::Identity)],
    max_jails: usize,
) -> Result<Roster, ClientError> {
    let mut unsent_confirm = None;
    let result = match side {
        Side::A => creator_steps(mailbox, code, jails, max_jails, &mut unsent_confirm).await,
        Side::B => joiner_steps(mailbox, code, jails, max_jails).await,
    };
    if let Err(e) = &result {
        // The peer's abort already ended the nameplate.
        if !matches!(e, ClientError::Pairing(V2Error::PeerAborted)) {
            let mut last: Vec<_> = unsent_confirm
                .map(|c| (Phase::Confirm, c))
                .into_iter()
                .collect();
            last.push((Phase::Abort, Vec::new()));
            let _ = mailbox.send(last, false).await;
        }
    }
    result
}

async fn creator_steps(
    mailbox: &mut impl Mailbox,
    code: &V2Code,
    jails: &[(crate::DnsLabel, crate::Identity)],
    max_jails: usize,
    unsent_confirm: &mut Option<Vec<u8>>,
) -> Result<Roster, ClientError> {
    let (mut session, pake) = pair_v2::Session::start(Side::A, code);
    mailbox.send(vec![(Phase::Pake, pake)], true).await?;
    let peer_pake = mailbox.receive(Phase::Pake).await?;
    let confirm = session.receive_pake(&peer_pake)?;
    *unsent_confirm = Some(confirm.clone());
    session.receive_confirm(&mailbox.receive(Phase::Confirm).await?)?;
    let roster = session.open_roster(&mailbox.receive(Phase::Roster).await?, max_jails)?;
    let sealed = session.seal_roster(jails)?;
    let ack = session.ack()?;
    *unsent_confirm = None;
    mailbox
        .send(
            vec![
                (Phase::Confirm, confirm),
                (Phase::Roster, sealed),
                (Phase::Ack, ack),
            ],
            true,
        )
        .await?;
    session.receive_ack(&mailbox.receive(Phase::Ack).await?)?;
    Ok(roster)
}

async fn joiner_steps(
    mailbox: &mut impl Mailbox,
    code: &V2Code,
    jails: &[(crate::DnsLabel, crate::Identity)],
    max_jails: usize,
) -> Result<Roster, ClientError> {
    let (mut session, pake) = pair_v2::Session::start(Side::B, code);
    let peer_pake = mailbox.receive(Phase::Pake).await?;
    let confirm = session.receive_pake(&peer_pake)?;
    let sealed = session.seal_roster(jails)?;
    mailbox
        .send(
            vec![
                (Phase::Pake, pake),
                (Phase::Confirm, confirm),
                (Phase::Roster, sealed),
            ],
            true,
        )
        .await?;
    session.receive_confirm(&mailbox.receive(Phase::Confirm).await?)?;
    let roster = session.open_roster(&mailbox.receive(Phase::Roster).await?, max_jails)?;
    session.receive_ack(&mailbox.receive(Phase::Ack).await?)?;
    mailbox
        .send(vec![(Phase::Ack, session.ack()?)], false)
        .await?;
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
