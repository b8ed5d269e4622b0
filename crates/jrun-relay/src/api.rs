//! The HTTP API: parse (pure, from `jrun_mesh::protocol`), then act on the store.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jrun_mesh::pair_v2::{self, Allocated, Offer};
use jrun_mesh::protocol::{
    self, Created, CreatorToken, PollAnswer, PollStatus, Roster, TOKEN_OPT_IN_HEADER,
};
use jrun_mesh::PairCode;
use tracing::{debug, info};

use crate::mailbox::{Mailboxes, PostError, ReadError, Stored};

use crate::api_error::ApiError;
use crate::rate_limit::{client_key, LookupBudget, RequestLimits};
use crate::store::{JoinError, Store, StoreError};
use crate::RelayConfig;

/// What every handler shares.
pub struct AppState {
    pub config: RelayConfig,
    pub store: Store,
    /// Pairing v2's nameplates.
    pub mailboxes: Mailboxes,
    /// Requests per client and per network.
    pub limits: RequestLimits,
    /// Failed code lookups, relay-wide.
    pub lookups: LookupBudget,
}

/// The relay's routes, every one of them (`/healthz` and unknown paths too) inside the
/// rate limits, with JSON answers for every error.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pair", post(create))
        .route("/pair/{code}", get(poll).post(join))
        .route("/v2", get(offer))
        .route("/v2/nameplate", post(allocate))
        .route(
            "/v2/nameplate/{n}/messages",
            get(messages).post(post_message),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .with_state(state)
}

/// Who sent a request: the peer address or, from a trusted proxy, the address it
/// forwarded. The limits then count it per client and per network (see `rate_limit`).
fn client_of(config: &RelayConfig, request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if config.is_trusted_proxy(peer) {
        forwarded_for(request.headers()).unwrap_or(peer)
    } else {
        peer
    }
}

/// The last hop of `X-Forwarded-For`: the address our proxy saw.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

async fn rate_limit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let client = client_of(&state.config, &request);
    match state.limits.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // Not a warning: an abuser would flood the log with it.
            debug!(%client, "rate limited");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from your address; slow down",
            )
            .retry_after(wait)
            .into_response()
        }
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; the relay serves POST /pair, GET and POST /pair/{code}, GET /v2, POST /v2/nameplate, GET and POST /v2/nameplate/{n}/messages, GET /healthz",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// The code of a `/pair/{code}` path; a malformed code is simply an unknown one (`None`).
fn code_of(path: Result<Path<String>, PathRejection>) -> Option<PairCode> {
    let Ok(Path(text)) = path else {
        return None;
    };
    text.parse().ok()
}

/// The creator token of an `Authorization: Bearer <token>` header, if any.
fn bearer_token(headers: &HeaderMap) -> Option<CreatorToken> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    CreatorToken::from_bearer(value)
}

/// Takes a token of the relay-wide lookup budget (given back if the lookup finds its
/// pairing); when it is spent, every lookup is refused alike, live code or not.
fn spend_lookup(state: &AppState) -> Result<(), ApiError> {
    state.lookups.take().map_err(|wait| {
        debug!("failed-lookup budget spent");
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "the relay has answered too many lookups of unknown codes; try again shortly",
        )
        .retry_after(wait)
    })
}

/// Reads a body of media type `mime` (`what` names it in the error) within the size and
/// time limits.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    (mime, what): (&str, &str),
) -> Result<Bytes, ApiError> {
    let is_mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime));
    if !is_mime {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send {what} as Content-Type: {mime}"),
        ));
    }
    let max = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(body, max).collect();
    match tokio::time::timeout(state.config.read_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took too long to arrive",
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn read_roster(state: &AppState, request: Request) -> Result<Roster, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(
        state,
        &parts.headers,
        body,
        ("application/json", "the roster"),
    )
    .await?;
    protocol::parse_roster(&bytes, state.config.max_roster_jails).map_err(ApiError::bad_message)
}

async fn create(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<Created>, ApiError> {
    let client = client_key(client_of(&state.config, &request));
    // jrun's clients ask for a creator token; Jailrun's do not, and get the seed's answer.
    let wants_token = request
        .headers()
        .get(TOKEN_OPT_IN_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    let roster = read_roster(&state, request).await?;
    let jails = roster.jails.len();
    let created = state
        .store
        .create_with(client, roster, wants_token)
        .map_err(store_error)?;
    // Codes and tokens are never logged: a log reader could otherwise join or collect.
    info!(%client, jails, token = wants_token, "pairing created");
    Ok(Json(created))
}

/// `GET /pair/{code}`. Unknown, expired and used codes, and a pairing made with a creator
/// token polled without it or with another, all get the very same 404: a poll tells a
/// guesser nothing about which codes are live, and a stranger's poll changes nothing.
async fn poll(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<PollAnswer>, ApiError> {
    let code = code_of(path);
    let token = bearer_token(&headers);
    // A creator with its token is no guesser (128 random bits): its polls go on even
    // while the failed-lookup budget is spent.
    let authorized = match (&code, &token) {
        (Some(code), Some(token)) => state.store.holds_token(code, token),
        _ => false,
    };
    if !authorized {
        spend_lookup(&state)?;
    }
    let status = code
        .and_then(|code| state.store.poll_with(&code, token.as_ref()))
        .ok_or_else(ApiError::no_pairing)?;
    if !authorized {
        state.lookups.refund();
    }
    match status {
        PollStatus::Waiting => Ok(Json(PollAnswer {
            joined: false,
            jails: None,
        })),
        PollStatus::Joined(roster) => {
            info!(jails = roster.jails.len(), "pairing collected");
            Ok(Json(PollAnswer {
                joined: true,
                jails: Some(roster.jails),
            }))
        }
    }
}

async fn join(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Json<Roster>, ApiError> {
    let client = client_of(&state.config, &request);
    let code = code_of(path);
    let roster = read_roster(&state, request).await?;
    let jails = roster.jails.len();
    spend_lookup(&state)?;
    let code = code.ok_or_else(ApiError::no_pairing)?;
    let creators = state.store.join(&code, roster).map_err(|e| match e {
        JoinError::NotFound => ApiError::no_pairing(),
        JoinError::AlreadyJoined => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        JoinError::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(Duration::from_secs(60)),
    })?;
    state.lookups.refund();
    info!(%client, jails, "pairing joined");
    Ok(Json(Roster::clone(&creators)))
}

/// `GET /v2`: the versions beyond v1 this relay speaks (a v1-only relay answers 404), and
/// its body limit, which a client checks its roster against before sending it.
async fn offer(State(state): State<Arc<AppState>>) -> Json<Offer> {
    Json(Offer {
        versions: vec![2],
        max_body_bytes: Some(state.config.max_body_bytes),
    })
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(Duration::from_secs(60)),
        StoreError::ClientFull => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            .retry_after(Duration::from_secs(60)),
        StoreError::Rng => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /v2/nameplate`: a nameplate and side a's token. The words are the creator's own.
async fn allocate(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<Allocated>, ApiError> {
    let client = client_key(client_of(&state.config, &request));
    let (nameplate, token) = state.mailboxes.allocate(client).map_err(store_error)?;
    // Nameplates and tokens are never logged.
    info!(%client, "v2 nameplate allocated");
    Ok(Json(Allocated { nameplate, token }))
}

fn nameplate_of(path: Result<Path<String>, PathRejection>) -> Option<u32> {
    let Ok(Path(text)) = path else {
        return None;
    };
    if text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse()
        .ok()
        .filter(|n| (pair_v2::NAMEPLATE_MIN..=pair_v2::NAMEPLATE_MAX).contains(n))
}

fn v2_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no pairing with this nameplate: it expired or ended",
    )
}

/// `after=K` (the peer's messages the client already holds) and `wait=S` (how long to
/// wait for one more, capped by `--max-wait`) of a query.
fn cursor_and_wait(state: &AppState, query: Option<&str>) -> Result<(usize, Duration), ApiError> {
    let param = |name: &str| {
        query
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let number = |name: &str| {
        param(name)
            .map_or(Ok(0), |v| v.parse::<u64>())
            .map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("{name}= must be a number"))
            })
    };
    let after = usize::try_from(number("after")?).unwrap_or(usize::MAX);
    let wait = Duration::from_secs(number("wait")?).min(state.config.max_wait);
    Ok((after, wait))
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::NotFound | ReadError::Unadmitted => v2_gone(),
        ReadError::Claimed => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        ReadError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(Duration::from_secs(1)),
    }
}

/// `POST /v2/nameplate/{n}/messages?after=K&wait=S`: appends one side's messages, then
/// answers the peer's from index K on, waiting up to S seconds for one if there is none
/// (at once, without waiting, when too many requests wait already). A post without one of
/// the nameplate's tokens (a joiner claiming side b, or a guess) spends a lookup first.
async fn post_message(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let nameplate = nameplate_of(path);
    let token = bearer_token(request.headers());
    let (after, wait) = cursor_and_wait(&state, request.uri().query())?;
    let (parts, body) = request.into_parts();
    let media = (pair_v2::MEDIA_TYPE, "the messages");
    let bytes = read_body(&state, &parts.headers, body, media).await?;
    // Kept for as long as the nameplate lives: its own allocation, not a slice of the
    // connection's read buffer, so that the memory budget counts what it holds.
    let bytes = Bytes::from(bytes.to_vec());
    let frames = pair_v2::parse_post(&bytes).map_err(ApiError::bad_message)?;
    let batch = Stored::from_frames(&bytes, &frames);
    let mut admitted = false;
    if token.is_none() || nameplate.is_none() {
        spend_lookup(&state)?;
        admitted = true;
    }
    let nameplate = nameplate.ok_or_else(v2_gone)?;
    let posted = loop {
        let posting = state
            .mailboxes
            .post(nameplate, token.as_ref(), &batch, admitted, after);
        match posting {
            Err(PostError::Unadmitted) => {
                spend_lookup(&state)?;
                admitted = true;
            }
            Err(e) => return Err(post_error(e)),
            Ok(posted) => break posted,
        }
    };
    if admitted {
        state.lookups.refund();
    }
    debug!(phases = ?frames.iter().map(|f| f.phase).collect::<Vec<_>>(), "v2 messages");
    let messages = state.mailboxes.answer(posted.answer, wait).await;
    Ok(v2_answer(posted.token.as_ref(), &messages))
}

fn post_error(e: PostError) -> ApiError {
    match e {
        PostError::NotFound | PostError::Unadmitted => v2_gone(),
        PostError::Conflict => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        PostError::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(Duration::from_secs(60)),
    }
}

/// `GET /v2/nameplate/{n}/messages?after=K&wait=S`: the peer's messages from index K on,
/// waiting up to S seconds for one. Without a token: side a's PAKE message, while side b
/// is unclaimed (what a joiner needs before its first post); that lookup, and one with a
/// token that is not the nameplate's, spends a lookup.
async fn messages(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let nameplate = nameplate_of(path);
    let token = bearer_token(request.headers());
    let (after, wait) = cursor_and_wait(&state, request.uri().query())?;
    let mut admitted = false;
    if token.is_none() || nameplate.is_none() {
        spend_lookup(&state)?;
        admitted = true;
    }
    let nameplate = nameplate.ok_or_else(v2_gone)?;
    let list = loop {
        let fetching = state
            .mailboxes
            .fetch(nameplate, token.as_ref(), admitted, after, wait);
        match fetching.await {
            Err(ReadError::Unadmitted) => {
                spend_lookup(&state)?;
                admitted = true;
            }
            Err(e) => return Err(read_error(e)),
            Ok(list) => break list,
        }
    };
    // A joiner's lookup found its nameplate (a wrong one fails above, unrefunded).
    if admitted {
        state.lookups.refund();
    }
    Ok(v2_answer(None, &list))
}

/// The frames as they were posted, after the token field.
fn v2_answer(token: Option<&CreatorToken>, list: &[Stored]) -> Response {
    let body = pair_v2::encode_answer(token, list.iter().map(|m| &m.wire[..]));
    (
        [(header::CONTENT_TYPE, pair_v2::MEDIA_TYPE)],
        Bytes::from(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_takes_the_last_hop() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.2".parse().unwrap(),
        );
        assert_eq!(forwarded_for(&h), Some("198.51.100.2".parse().unwrap()));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_for(&h), None);
    }
}
