//! The error model: one table from [`ErrorKind`] to HTTP status and gRPC code,
//! and one body shape, `{"code": n, "details": [ErrorInfo], "message": "…"}`,
//! whose one detail is a `google.rpc.ErrorInfo` carrying the error's
//! [`Reason`] (the table of reasons lives in the domain crate).

use std::any::Any;
use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_domain::{Error, ErrorKind, Reason};
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

/// The `@type` of the one detail of every error body.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// The `domain` of every [`ErrorInfo`]: reasons are Tollgate's own.
pub const ERROR_DOMAIN: &str = "tollgate";

/// The error body of every failed request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// gRPC status code.
    pub code: u16,
    /// Exactly one `google.rpc.ErrorInfo`: the machine-readable reason.
    #[schema(min_items = 1, max_items = 1)]
    pub details: Vec<ErrorInfo>,
    /// What went wrong, naming the field or object at fault.
    pub message: String,
}

impl ErrorBody {
    /// The body of `error`: its code, its reason and metadata, its message.
    pub fn of(error: &Error) -> Self {
        let (_, code) = status_and_code(error.kind);
        Self {
            code,
            details: vec![ErrorInfo {
                type_url: ERROR_INFO_TYPE,
                reason: error.reason.as_str(),
                domain: ERROR_DOMAIN,
                metadata: error.metadata.clone(),
            }],
            message: error.message.clone(),
        }
    }
}

/// A `google.rpc.ErrorInfo`: why a request failed, for programs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// Always `type.googleapis.com/google.rpc.ErrorInfo`.
    #[serde(rename = "@type")]
    #[schema(schema_with = type_url_schema)]
    pub type_url: &'static str,
    /// The error's [`Reason`], by its stable name.
    #[schema(schema_with = reason_schema)]
    pub reason: &'static str,
    /// Always `tollgate`.
    #[schema(schema_with = domain_schema)]
    pub domain: &'static str,
    /// Machine-readable facts about the failure (e.g. the quota key, its limit
    /// and usage; the operation and `retry_after` of a rate limit; the `field`
    /// at fault); may be empty.
    pub metadata: BTreeMap<String, String>,
}

fn constant_schema(value: &str, description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([value]))
        .description(Some(description))
        .build()
}

fn type_url_schema() -> utoipa::openapi::Object {
    constant_schema(
        ERROR_INFO_TYPE,
        "Always `type.googleapis.com/google.rpc.ErrorInfo`.",
    )
}

fn domain_schema() -> utoipa::openapi::Object {
    constant_schema(ERROR_DOMAIN, "Always `tollgate`.")
}

fn reason_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Reason::ALL.iter().map(|r| r.as_str())))
        .description(Some(
            "The stable, machine-readable reason (UPPER_SNAKE); one reason belongs to one status, \
             and every 409 and 429 names its case.",
        ))
        .build()
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

    /// The same error with a specific reason (a case of its kind).
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.error = self.error.with_reason(reason);
        self
    }

    /// The same error with one more machine-readable fact.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.error = self.error.with_metadata(key, value);
        self
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
        let (status, _) = status_and_code(self.error.kind);
        let mut response = (status, Json(ErrorBody::of(&self.error))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Checks that `body` is an error body as this module writes it for an answer
/// with `status`, and returns its reason: `code`, `details` and `message` and
/// nothing else; exactly one ErrorInfo with our `@type` and domain, string
/// metadata, and a documented reason whose kind has this status and code.
/// A 409 or a 429 never carries its kind's generic reason. The test suites of
/// every layer (handlers, the accept loop, the CLI's server) check with it.
pub fn check_error_body(status: u16, body: &serde_json::Value) -> Result<Reason, String> {
    // The sorted field names of an object (none for anything else).
    let fields = |v: &serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = v
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys().cloned())
            .collect();
        names.sort();
        names
    };
    if fields(body) != ["code", "details", "message"] {
        return Err(format!("not {{code, details, message}}: {body}"));
    }
    if !body["message"].is_string() {
        return Err(format!("message is not a string: {body}"));
    }
    let [info] = body["details"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(format!("details is not exactly one ErrorInfo: {body}"));
    };
    if fields(info) != ["@type", "domain", "metadata", "reason"] {
        return Err(format!(
            "details[0] is not {{@type, reason, domain, metadata}}: {body}"
        ));
    }
    if info["@type"] != ERROR_INFO_TYPE || info["domain"] != ERROR_DOMAIN {
        return Err(format!("details[0] has the wrong @type or domain: {body}"));
    }
    if !info["metadata"]
        .as_object()
        .is_some_and(|m| m.values().all(serde_json::Value::is_string))
    {
        return Err(format!("metadata is not a map of strings: {body}"));
    }
    let reason = info["reason"]
        .as_str()
        .and_then(Reason::parse)
        .ok_or_else(|| format!("not a documented reason: {body}"))?;
    let (want_status, want_code) = status_and_code(reason.kind());
    if (want_status.as_u16(), Some(u64::from(want_code))) != (status, body["code"].as_u64()) {
        return Err(format!(
            "reason {reason} is a {want_status} with code {want_code}, not {status} with this code: {body}"
        ));
    }
    let specific_only = matches!(
        reason.kind(),
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition | ErrorKind::ResourceExhausted
    );
    if specific_only && reason.is_default() {
        return Err(format!("a {status} must name its case, not {reason}: {body}"));
    }
    Ok(reason)
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

/// Unknown paths: `ROUTE_NOT_FOUND`, unlike a missing object's `NOT_FOUND`.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path())).with_reason(Reason::RouteNotFound)
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

    fn body_of(error: &Error) -> (u16, serde_json::Value) {
        let (status, _) = status_and_code(error.kind);
        let body = serde_json::to_value(ErrorBody::of(error)).unwrap();
        (status.as_u16(), body)
    }

    #[test]
    fn the_body_holds_one_error_info_with_the_reason_and_metadata() {
        let error = Error::new(ErrorKind::ResourceExhausted, "quota exceeded")
            .with_reason(Reason::QuotaExceeded)
            .with_metadata("limit", "4");
        let (status, body) = body_of(&error);
        assert_eq!(
            body,
            serde_json::json!({
                "code": 8,
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "QUOTA_EXCEEDED",
                    "domain": "tollgate",
                    "metadata": {"limit": "4"},
                }],
                "message": "quota exceeded",
            })
        );
        assert_eq!(check_error_body(status, &body), Ok(Reason::QuotaExceeded));
    }

    #[test]
    fn every_reason_makes_a_body_the_check_accepts_unless_it_is_generic_for_409_or_429() {
        for &reason in Reason::ALL {
            let (status, body) = body_of(&Error::new(reason.kind(), "x").with_reason(reason));
            let checked = check_error_body(status, &body);
            if reason.is_default() && matches!(status, 409 | 429) {
                assert!(checked.is_err(), "{reason}");
            } else {
                assert_eq!(checked, Ok(reason));
            }
        }
    }

    #[test]
    fn the_check_refuses_a_body_out_of_shape_or_at_odds_with_its_status() {
        let (_, good) = body_of(&Error::not_found("x"));
        assert_eq!(check_error_body(404, &good), Ok(Reason::NotFound));
        assert!(check_error_body(400, &good).is_err(), "status");
        let mut bad = good.clone();
        bad["code"] = 3.into();
        assert!(check_error_body(404, &bad).is_err(), "code");
        for (path, value) in [
            ("/details", serde_json::json!([])),
            ("/details/0/reason", "NOPE".into()),
            ("/details/0/domain", "google".into()),
            ("/details/0/@type", "ErrorInfo".into()),
            ("/details/0/metadata", serde_json::json!({"n": 1})),
        ] {
            let mut bad = good.clone();
            *bad.pointer_mut(path).unwrap() = value;
            assert!(check_error_body(404, &bad).is_err(), "{path}");
        }
    }
}
