//! Console sessions: a random secret in an HttpOnly, SameSite=Strict cookie
//! (Secure when the request came over TLS), only its digest stored; a CSRF
//! token per session that every state-changing form carries; a same-origin
//! check on every POST. The credential a session was signed in with is
//! checked again on every request, so revoking it ends the session.

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE_NAME: &str = "tollgate_console";
/// How long a session lasts after sign-in.
pub const LIFETIME: SignedDuration = SignedDuration::from_hours(8);

/// 32 random bytes, URL-safe base64 (a session secret or a CSRF token).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a secret: its SHA-256, hex.
pub fn digest_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a hex digest.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Whether the request reached us over TLS (directly, or through a proxy
/// that says so): the cookie is then `Secure`.
pub fn is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(secret: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={secret}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session secret the request's cookies carry.
pub fn read_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// What a state-changing form without the session's CSRF token, or sent
/// from another origin, is answered: `None` when it is neither.
pub fn forged(headers: &HeaderMap, expected: &str, given: Option<&str>) -> Option<(StatusCode, String)> {
    (!same_origin(headers) || !csrf_ok(expected, given)).then(|| {
        (
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again.".to_owned(),
        )
    })
}

/// Whether a form's CSRF token is the session's (constant time).
pub fn csrf_ok(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| g.len() == expected.len() && bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
}

/// Whether a state-changing request comes from the console's own pages: an
/// `Origin` header, when the browser sends one, names this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = set_cookie("abc", false);
        assert_eq!(
            plain,
            "tollgate_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=28800"
        );
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        let mut h = HeaderMap::new();
        assert!(!is_tls(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_tls(&h));
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; tollgate_console=s3cret; b=2"),
        );
        assert_eq!(read_cookie(&h).as_deref(), Some("s3cret"));
        let mut none = HeaderMap::new();
        none.insert(COOKIE, HeaderValue::from_static("tollgate_console="));
        assert_eq!(read_cookie(&none), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let t = random_secret();
        assert_eq!(t.len(), 43);
        assert!(csrf_ok(&t, Some(&t)));
        assert!(!csrf_ok(&t, None));
        assert!(!csrf_ok(&t, Some("")));
        assert!(!csrf_ok(&t, Some(&random_secret())));
        assert!(!csrf_ok(&t, Some(&t[..42])));
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no Origin: a non-browser client");
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn a_forged_form_is_refused_with_403_and_a_clear_message() {
        let t = random_secret();
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(forged(&h, &t, Some(&t)), None);
        let (status, message) = forged(&h, &t, None).unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(message.contains("reload the page"), "{message}");
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(
            forged(&h, &t, Some(&t)).is_some(),
            "the right token from another site"
        );
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = digest_hex("x");
        assert_eq!(d.len(), 64);
        assert_eq!(hex(&unhex32(&d).unwrap()), d);
        assert_eq!(unhex32("zz"), None);
    }
}
