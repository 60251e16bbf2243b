//! Request extractors whose every rejection is an [`ApiError`] in the
//! contract's format, naming the field at fault.

use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use tollgate_domain::ErrorKind;

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body. An empty body reads as `{}` (DELETE options are optional);
/// errors carry the path of the offending field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Bytes(bytes) = Bytes::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The raw request body, at most [`MAX_BODY_BYTES`]: 413 over the limit, 400
/// if it cannot be read, both in the error format (axum's own `Bytes`
/// rejection is plain text).
#[derive(Debug)]
pub struct Bytes(pub axum::body::Bytes);

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<S: Send + Sync> FromRequest<S> for Bytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        };
        // A declared length over the limit is refused before reading a byte.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        // Otherwise the body limit (`DefaultBodyLimit`) stops reading at the limit.
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Bytes)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::invalid("could not read the request body")
                }
            })
    }
}

/// Path parameters, percent-decoded. Every rejection is a 400 in the error
/// format naming the parameter: not UTF-8 once decoded, containing a control
/// character (NUL included), or not of the expected type.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(path_rejection)?;
        if let Some((name, _)) = raw.iter().find(|(_, v)| v.chars().any(char::is_control)) {
            return Err(ApiError::invalid(format!(
                "{name}: path parameter must not contain control characters"
            ))
            .with_metadata("field", name.as_str()));
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        Ok(Path(value))
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    let kind = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => e.into_kind(),
        other => {
            // The route and the handler disagree: a bug, not the caller's fault.
            tracing::error!(error = %other, "path parameters are missing");
            return ApiError::new(ErrorKind::Internal, "internal error; the server log has details");
        }
    };
    match kind {
        PathErrorKind::InvalidUtf8InPathParam { key } => ApiError::invalid(format!(
            "{key}: path parameter is not valid UTF-8 once percent-decoded"
        ))
        .with_metadata("field", key),
        PathErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => ApiError::invalid(format!("{key}: cannot parse {value:?} as {expected_type}"))
            .with_metadata("field", key),
        PathErrorKind::WrongNumberOfParameters { .. } | PathErrorKind::UnsupportedType { .. } => {
            tracing::error!(error = %kind, "a handler's path parameters do not match its route");
            ApiError::new(ErrorKind::Internal, "internal error; the server log has details")
        }
        other => ApiError::invalid(format!("invalid path parameter: {other}")),
    }
}

/// Parses a JSON document, reporting the path of a bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every request message is a JSON object; serde would otherwise also read
    // a struct from an array.
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("invalid JSON body: expected a JSON object"));
    }
    if let Some(field) = nul_field(text) {
        return Err(ApiError::invalid(format!(
            "{field}: must not contain NUL characters (\\u0000)"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if matches!(path.as_str(), "." | "?" | "") {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}")).with_metadata("field", path)
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The field path (`spec.labels.x`, `events[2].id`) of the first string or
/// object key in a JSON document that holds NUL, which no stored string may
/// (PostgreSQL's TEXT cannot; SQLite would store it). JSON can only write NUL
/// as the escape `\u0000`, so documents without that text are passed at
/// once; the rest are walked (an escaped backslash before `u0000` is no NUL).
fn nul_field(json: &[u8]) -> Option<String> {
    if !json.windows(6).any(|w| w == br"\u0000") {
        return None;
    }
    // Malformed JSON is left to the typed parse, which reports it precisely.
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    find_nul(&value, &mut String::new())
}

fn find_nul(value: &serde_json::Value, path: &mut String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(|| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_nul(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                let map_path = if path.is_empty() {
                    "request body"
                } else {
                    path.as_str()
                };
                return Some(format!("{map_path}: key {key:?}"));
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = find_nul(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Query parameters as a list, so that repeated keys
/// (`report_fields=a&report_fields=b`) are kept and unknown ones ignored.
#[derive(Debug, Default)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    /// The last value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order; comma-separated values are split too.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`); absent means `None`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(
                    ApiError::invalid(format!("{key}: expected true or false, got {v:?}"))
                        .with_metadata("field", key),
                ),
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // As in JSON bodies: no parameter, known or not, may carry NUL (%00).
        if let Some((key, _)) = params.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            let name = if key.contains('\0') {
                format!("query parameter {key:?}")
            } else {
                key.clone()
            };
            return Err(ApiError::invalid(format!(
                "{name}: must not contain NUL characters (%00)"
            )));
        }
        Ok(Self(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_comma_separated_params_are_kept() {
        let q = QueryParams(vec![
            ("report_fields".into(), "a".into()),
            ("report_fields".into(), "b,c".into()),
            ("other".into(), "x".into()),
        ]);
        assert_eq!(q.all("report_fields"), ["a", "b", "c"]);
        assert_eq!(q.get("other"), Some("x"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: i32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        let e = parse_json::<Outer>(br#"{"inner": {"n": "x"}}"#).unwrap_err();
        assert!(
            e.error.message.starts_with("inner.n: invalid type"),
            "{}",
            e.error.message
        );
        let e = parse_json::<Outer>(b"{").unwrap_err();
        assert!(
            e.error.message.starts_with("invalid JSON body"),
            "{}",
            e.error.message
        );
        let e = parse_json::<Outer>(br#"{"inner": {"n": 1}} x"#).unwrap_err();
        assert!(e.error.message.contains("trailing"), "{}", e.error.message);
    }

    #[test]
    fn nul_is_refused_anywhere_with_its_field_path() {
        let refused = |json: &str| {
            parse_json::<serde_json::Value>(json.as_bytes())
                .unwrap_err()
                .error
                .message
        };
        for (json, message) in [
            (
                r#"{"metadata": {"description": "a\u0000b"}}"#,
                r"metadata.description: must not contain NUL characters (\u0000)",
            ),
            (
                r#"{"events": [{"id": "ok"}, {"id": "x", "object_name": "\u0000"}]}"#,
                "events[1].object_name: must",
            ),
            (
                r#"{"metadata": {"labels": {"a\u0000": "b"}}}"#,
                r#"metadata.labels: key "a\0": must"#,
            ),
            (r#"{"k\u0000": 1}"#, r#"request body: key "k\0": must"#),
            (r#"{"a": [["\u0000"]]}"#, "a[0][0]: must"),
        ] {
            let got = refused(json);
            assert!(got.starts_with(message), "{json}: {got}");
        }
        // An escaped backslash followed by "u0000" is not NUL; nor is U+0001.
        let v: serde_json::Value = parse_json(br#"{"token": "tok-\\u0000", "x": "\u0001"}"#).unwrap();
        assert_eq!(v["token"], "tok-\\u0000");
        // Malformed documents are reported by the parser, as before.
        assert!(refused(r#"{"a": "\u0000"#).contains("EOF while parsing"));
    }
}
