//! Error answers: a status and a JSON body `{"error": …, "field": …}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jrun_mesh::protocol::{ErrorBody, MessageError};

/// An error answer of the relay.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An answer with `status` and a message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    /// 400 naming the bad field of a request body.
    pub fn bad_message(e: MessageError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: e.message,
                field: e.field,
            },
            retry_after: None,
        }
    }

    /// 404 for a code that is unknown, expired or used.
    pub fn no_pairing() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no pairing with this code: it expired or was already used",
        )
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
