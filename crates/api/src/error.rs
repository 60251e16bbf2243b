//! The error model: one table from [`ErrorKind`] to HTTP status and gRPC code,
//! and one body shape, `{"code": n, "details": [], "message": "…"}`.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_domain::{Error, ErrorKind};
use tollgate_store::StoreError;

/// The one place that decides an error's HTTP status and gRPC code.
pub const fn status_and_code(kind: ErrorKind) -> (StatusCode, u16) {
    match kind {
        ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, 3),
        ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 3),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, 16),
        ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, 7),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, 5),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, 6),
        ErrorKind::FailedPrecondition => (StatusCode::CONFLICT, 9),
        ErrorKind::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, 8),
        ErrorKind::Unimplemented => (StatusCode::METHOD_NOT_ALLOWED, 12),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 13),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 14),
        ErrorKind::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, 4),
    }
}

/// `Retry-After` of a 503 answered because the database could not take the
/// request: faults heal by themselves (a fresh connection, freed space).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// The error body of every failed request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// gRPC status code.
    pub code: u16,
    /// Always empty; kept for wire compatibility.
    pub details: Vec<serde_json::Value>,
    /// What went wrong, naming the field or object at fault.
    pub message: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    /// Seconds after which a throttled request may be retried.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::new(kind, message).into()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.error.kind
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let error = Error::from(e);
        // Database details stay in the log; clients get a stable message.
        match error.kind {
            ErrorKind::Internal => {
                tracing::error!(error = %error.message, "storage failure");
                Self::new(ErrorKind::Internal, "internal error; the server log has details")
            }
            ErrorKind::Unavailable => {
                tracing::warn!(error = %error.message, "storage unavailable");
                let mut e = Self::new(
                    ErrorKind::Unavailable,
                    "the database cannot take this request now; nothing was changed, retry later",
                );
                e.retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECS);
                e
            }
            _ => error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(self.error.kind);
        let body = ErrorBody {
            code,
            details: Vec::new(),
            message: self.error.message,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Turns a panic in a handler into a 500 in the error format and a log line.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %detail, "handler panicked");
    ApiError::new(ErrorKind::Internal, "internal error; the server log has details").into_response()
}

/// Unknown paths.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Known paths with an unserved method.
pub async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorKind::Unimplemented,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_the_documented_status_and_code() {
        let table = [
            (ErrorKind::InvalidArgument, 400, 3),
            (ErrorKind::PayloadTooLarge, 413, 3),
            (ErrorKind::Unauthenticated, 401, 16),
            (ErrorKind::PermissionDenied, 403, 7),
            (ErrorKind::NotFound, 404, 5),
            (ErrorKind::AlreadyExists, 409, 6),
            (ErrorKind::FailedPrecondition, 409, 9),
            (ErrorKind::ResourceExhausted, 429, 8),
            (ErrorKind::Unimplemented, 405, 12),
            (ErrorKind::Internal, 500, 13),
            (ErrorKind::Unavailable, 503, 14),
            (ErrorKind::DeadlineExceeded, 504, 4),
        ];
        for (kind, status, code) in table {
            let (s, c) = status_and_code(kind);
            assert_eq!((s.as_u16(), c), (status, code), "{kind:?}");
        }
    }
}
