//! The HTTP API: parse (pure, from `jrun_mesh::protocol`), then act on the store.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jrun_mesh::protocol::{self, Created, PollAnswer, PollStatus, Roster};
use jrun_mesh::PairCode;
use tracing::{info, warn};

use crate::api_error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::store::{JoinError, Store, StoreError};
use crate::RelayConfig;

/// What every handler shares.
pub struct AppState {
    pub config: RelayConfig,
    pub store: Store,
    pub limiter: RateLimiter,
}

/// The relay's routes, with rate limiting and JSON answers for every error.
pub fn router(state: Arc<AppState>) -> Router {
    let limited = Router::new()
        .route("/pair", post(create))
        .route("/pair/{code}", get(poll).post(join))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(limited)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Who sent a request, as the limits count clients: the peer address (or, behind a local
/// proxy, the address it forwarded), with IPv6 clients counted per /64 since one host
/// commonly holds a whole /64.
fn client_of(config: &RelayConfig, request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = if config.behind_proxy && peer.is_loopback() {
        forwarded_for(request.headers()).unwrap_or(peer)
    } else {
        peer
    };
    client_key(client)
}

/// The last hop of `X-Forwarded-For`: the address our proxy saw.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

/// The unit limits count: an IPv4 address, or the /64 of an IPv6 address.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

async fn rate_limit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let client = client_of(&state.config, &request);
    match state.limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            warn!(%client, "rate limited");
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
        "no such endpoint; the relay serves POST /pair, GET and POST /pair/{code}, GET /healthz",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// The code of a `/pair/{code}` path; a malformed code is simply an unknown one.
fn code_of(path: Result<Path<String>, PathRejection>) -> Result<PairCode, ApiError> {
    let Ok(Path(text)) = path else {
        return Err(ApiError::no_pairing());
    };
    text.parse().map_err(|_| ApiError::no_pairing())
}

/// Reads a JSON body within the size and time limits.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the roster as Content-Type: application/json",
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
    let bytes = read_body(state, &parts.headers, body).await?;
    protocol::parse_roster(&bytes, state.config.max_roster_jails).map_err(ApiError::bad_message)
}

async fn create(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<Created>, ApiError> {
    let client = client_of(&state.config, &request);
    let roster = read_roster(&state, request).await?;
    let jails = roster.jails.len();
    let code = state.store.create(client, roster).map_err(|e| match e {
        StoreError::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(std::time::Duration::from_secs(60)),
        StoreError::ClientFull => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            .retry_after(std::time::Duration::from_secs(60)),
        StoreError::Rng => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    info!(%client, %code, jails, "pairing created");
    Ok(Json(Created::from(code)))
}

async fn poll(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PollAnswer>, ApiError> {
    let code = code_of(path)?;
    match state.store.poll(&code).ok_or_else(ApiError::no_pairing)? {
        PollStatus::Waiting => Ok(Json(PollAnswer {
            joined: false,
            jails: None,
        })),
        PollStatus::Joined(roster) => {
            info!(%code, jails = roster.jails.len(), "pairing collected");
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
    let code = code_of(path)?;
    let roster = read_roster(&state, request).await?;
    let jails = roster.jails.len();
    let creators = state.store.join(&code, roster).map_err(|e| match e {
        JoinError::NotFound => ApiError::no_pairing(),
        JoinError::AlreadyJoined => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        JoinError::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .retry_after(std::time::Duration::from_secs(60)),
    })?;
    info!(%client, %code, jails, "pairing joined");
    Ok(Json(Roster::clone(&creators)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_per_ipv4_address_and_ipv6_64() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::ffff"), "2001:db8:1:2::");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
    }

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
