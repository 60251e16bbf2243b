//! The HTTP side of the Stripe provider: one request with Stripe's headers,
//! retries on 429, and what an answer means (an object, Stripe's refusal, or
//! an unknown outcome).

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::form::Form;

/// The API version every request is pinned to (`Stripe-Version`), so that
/// the shapes read here do not change with the account's default version.
pub const STRIPE_VERSION: &str = "2024-06-20";

/// Backoffs between retries never grow past this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Stripe's error object (`{"error": {...}}`), with the HTTP status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    /// `card_error`, `invalid_request_error`, `api_error`, …
    pub kind: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

impl ApiError {
    /// A card error: the card (or its bank) said no. Stripe answers them
    /// with 402 and `type=card_error`.
    pub fn is_card_error(&self) -> bool {
        self.status == 402 || self.kind.as_deref() == Some("card_error")
    }

    /// Whether the code (or the decline code) is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code) || self.decline_code.as_deref() == Some(code)
    }

    /// Stripe's message and codes, for a refusal: `No such token: 'tok_x'
    /// (code resource_missing, HTTP 404, request req_123)`.
    pub fn describe(&self) -> String {
        let mut out = match &self.message {
            Some(m) if !m.trim().is_empty() => m.trim().to_owned(),
            _ => "Stripe refused the request".to_owned(),
        };
        out.push_str(" (");
        if let Some(code) = &self.code {
            let _ = write!(out, "code {code}, ");
        }
        if let Some(decline) = &self.decline_code {
            let _ = write!(out, "decline code {decline}, ");
        }
        let _ = write!(out, "HTTP {}", self.status);
        if let Some(id) = &self.request_id {
            let _ = write!(out, ", request {id}");
        }
        out.push(')');
        out
    }

    /// Stripe's message and codes, for a decline: `Your card has
    /// insufficient funds. (card_declined: insufficient_funds)`.
    pub fn decline_reason(&self) -> String {
        decline_reason(
            self.message.as_deref(),
            self.code.as_deref(),
            self.decline_code.as_deref(),
        )
    }
}

/// `message (code: decline_code)`, whatever of it there is.
pub(crate) fn decline_reason(
    message: Option<&str>,
    code: Option<&str>,
    decline_code: Option<&str>,
) -> String {
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let codes = match (code, decline_code) {
        (Some(c), Some(d)) if c != d => format!("{c}: {d}"),
        (Some(c), _) => c.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => String::new(),
    };
    match (message, codes.is_empty()) {
        (Some(m), true) => m.to_owned(),
        (Some(m), false) => format!("{m} ({codes})"),
        (None, false) => format!("the card was declined ({codes})"),
        (None, true) => "the card was declined".to_owned(),
    }
}

/// Why a call gave no object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Stripe answered and refused (a 4xx that is an answer about this
    /// request: 400, 402, 404, …). It did not act.
    Api(ApiError),
    /// No usable answer: network error, timeout, 5xx, 429 past the retries,
    /// 401/403 (the key: the operator's to fix), 409 (a concurrent request
    /// with the same idempotency key), or an answer that could not be read.
    /// Stripe may or may not have acted.
    Unavailable(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

/// The connection to Stripe's API: base URL, key, and retry rules.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    secret_key: String,
    max_retries_on_429: u32,
    backoff_base: Duration,
    request_timeout: Duration,
}

impl Client {
    pub fn new(
        base: String,
        secret_key: String,
        request_timeout: Duration,
        max_retries_on_429: u32,
        backoff_base: Duration,
    ) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {secret_key}"))
            .map_err(|_| "the secret key has characters an HTTP header cannot carry".to_owned())?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert("Stripe-Version", HeaderValue::from_static(STRIPE_VERSION));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(10)))
            // Stripe's API does not redirect; a redirect would be someone else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            base,
            secret_key,
            max_retries_on_429,
            backoff_base,
            request_timeout,
        })
    }

    /// The API's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Removes the secret key from a text that came from elsewhere (Stripe's
    /// messages, transport errors): it never reaches an error or a log.
    pub fn redact(&self, text: &str) -> String {
        if self.secret_key.len() >= 4 && text.contains(&self.secret_key) {
            text.replace(&self.secret_key, "[redacted]")
        } else {
            text.to_owned()
        }
    }

    /// One call: `form` is the query of a GET and the body of a POST. A 429
    /// is retried (same request, same idempotency key) after
    /// `backoff_base × 2ⁿ`; nothing else is retried here: whether a failed
    /// request acted is for the caller to find out.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: &Form,
        idempotency_key: Option<&str>,
    ) -> Result<T, Failure> {
        let mut url = format!("{}{path}", self.base);
        let encoded = form.encode();
        if method == Method::Get && !encoded.is_empty() {
            url.push('?');
            url.push_str(&encoded);
        }
        let what = format!("{} {path}", method.as_str());
        let mut retries = 0;
        loop {
            let mut request = match method {
                Method::Get => self.http.get(&url),
                Method::Post => self
                    .http
                    .post(&url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(encoded.clone()),
            };
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => return Err(Failure::Unavailable(self.transport_error(&what, &e))),
            };
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => return Err(Failure::Unavailable(self.transport_error(&what, &e))),
            };
            tracing::debug!(request = %what, status, request_id = request_id.as_deref(), "stripe");
            if (200..300).contains(&status) {
                return serde_json::from_slice(&body).map_err(|e| {
                    Failure::Unavailable(format!(
                        "{what}: Stripe's answer (HTTP {status}) could not be read: {e}"
                    ))
                });
            }
            if status == 429 && retries < self.max_retries_on_429 {
                let wait = self
                    .backoff_base
                    .saturating_mul(2u32.saturating_pow(retries))
                    .min(MAX_BACKOFF);
                tracing::warn!(request = %what, retry = retries + 1, wait_ms = wait.as_millis() as u64, "stripe answered 429 Too Many Requests; retrying");
                tokio::time::sleep(wait).await;
                retries += 1;
                continue;
            }
            let error = self.api_error(status, request_id, &body);
            return Err(match status {
                429 => Failure::Unavailable(format!(
                    "{what}: Stripe still answered 429 Too Many Requests after {retries} retries: {}",
                    error.describe()
                )),
                401 | 403 => Failure::Unavailable(format!(
                    "{what}: Stripe refused the configured API key (check the stripe secret key): {}",
                    error.describe()
                )),
                409 => Failure::Unavailable(format!("{what}: {}", error.describe())),
                400..=499 => Failure::Api(error),
                _ => Failure::Unavailable(format!("{what}: Stripe failed: {}", error.describe())),
            });
        }
    }

    fn api_error(&self, status: u16, request_id: Option<String>, body: &[u8]) -> ApiError {
        let mut error = ApiError {
            status,
            request_id,
            ..ApiError::default()
        };
        if let Ok(ErrorBody { error: fields }) = serde_json::from_slice::<ErrorBody>(body) {
            error.kind = fields.kind;
            error.code = fields.code;
            error.decline_code = fields.decline_code;
            error.message = fields.message.map(|m| self.redact(&m));
        } else if !body.is_empty() {
            // Not Stripe's error object (a proxy's page?): a little of it.
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            error.message = Some(self.redact(text.trim()));
        }
        error
    }

    fn transport_error(&self, what: &str, e: &reqwest::Error) -> String {
        let mut text = if e.is_timeout() {
            format!(
                "{what}: no answer from Stripe within {:?} (timed out)",
                self.request_timeout
            )
        } else {
            format!("{what}: {e}")
        };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        self.redact(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_declines_read_like_stripe_said_them() {
        let e = ApiError {
            status: 404,
            kind: Some("invalid_request_error".into()),
            code: Some("resource_missing".into()),
            decline_code: None,
            message: Some("No such token: 'tok_nope'".into()),
            request_id: Some("req_123".into()),
        };
        assert_eq!(
            e.describe(),
            "No such token: 'tok_nope' (code resource_missing, HTTP 404, request req_123)"
        );
        assert!(!e.is_card_error());
        let e = ApiError {
            status: 402,
            kind: Some("card_error".into()),
            code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            message: Some("Your card has insufficient funds.".into()),
            request_id: None,
        };
        assert!(e.is_card_error());
        assert_eq!(
            e.decline_reason(),
            "Your card has insufficient funds. (card_declined: insufficient_funds)"
        );
        assert_eq!(
            e.describe(),
            "Your card has insufficient funds. (code card_declined, decline code insufficient_funds, HTTP 402)"
        );
        assert_eq!(decline_reason(None, None, None), "the card was declined");
        assert_eq!(
            decline_reason(
                Some("Your card was declined."),
                Some("card_declined"),
                Some("card_declined")
            ),
            "Your card was declined. (card_declined)"
        );
        assert_eq!(
            ApiError {
                status: 400,
                ..ApiError::default()
            }
            .describe(),
            "Stripe refused the request (HTTP 400)"
        );
    }

    #[test]
    fn the_key_is_redacted_from_foreign_text() {
        let c = Client::new(
            "http://127.0.0.1:1".into(),
            "sk_test_abcdef".into(),
            Duration::from_secs(1),
            0,
            Duration::from_millis(1),
        )
        .unwrap();
        assert_eq!(
            c.redact("Invalid API Key provided: sk_test_abcdef"),
            "Invalid API Key provided: [redacted]"
        );
        let e = c.api_error(401, None, br#"{"error":{"message":"bad key sk_test_abcdef"}}"#);
        assert_eq!(e.message.as_deref(), Some("bad key [redacted]"));
        let e = c.api_error(502, None, b"<html>Bad gateway sk_test_abcdef</html>");
        assert_eq!(e.message.as_deref(), Some("<html>Bad gateway [redacted]</html>"));
    }
}
