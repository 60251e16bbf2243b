//! The page shell (header, navigation, sign-out form), the answers every
//! page shares (HTML with security headers, redirects, error pages) and the
//! embedded stylesheet.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

const CSS: &str = include_str!("../assets/console.css");
/// No script, no other origin: the console's pages are plain HTML and CSS.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// Which console a page belongs to, for its navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Tenant,
    Operator,
}

/// A page of the console.
#[derive(Debug, Clone)]
pub struct Page {
    pub title: String,
    pub area: Area,
    /// The navigation entry that is this page (its path).
    pub current: &'static str,
    /// Who is signed in (shown in the header), with the session's CSRF
    /// token for the sign-out form; `None` on sign-in pages.
    pub signed_in: Option<(String, String)>,
}

impl Page {
    /// The page around `body`, as a response with the console's headers.
    pub fn render(&self, body: Markup) -> Response {
        let nav: &[(&str, &str)] = match self.area {
            Area::Tenant => &[
                ("/console/", "Overview"),
                ("/console/usage", "Usage"),
                ("/console/quotas", "Quotas"),
                ("/console/plans", "Plans"),
                ("/console/invoices", "Invoices"),
                ("/console/payment-methods", "Payment methods"),
                ("/console/webhooks", "Webhooks"),
                ("/console/alerts", "Alerts"),
            ],
            Area::Operator => &[
                ("/console/operator/", "Tenants"),
                ("/console/operator/approvals", "Approvals"),
                ("/console/operator/invoices", "Invoices"),
                ("/console/operator/catalog", "Catalog"),
                ("/console/operator/health", "Health"),
            ],
        };
        let sign_out = match self.area {
            Area::Tenant => "/console/sign-out",
            Area::Operator => "/console/operator/sign-out",
        };
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · Tollgate" }
                    link rel="stylesheet" href="/console/assets/console.css";
                    // No icon to fetch (the browser would ask for /favicon.ico).
                    link rel="icon" href="data:,";
                }
                body {
                    header {
                        span.brand { "Tollgate" @if self.area == Area::Operator { " operator" } }
                        @if let Some((who, csrf)) = &self.signed_in {
                            nav aria-label="Main" {
                                ul {
                                    @for (href, label) in nav {
                                        li {
                                            @if *href == self.current {
                                                a href=(href) aria-current="page" { (label) }
                                            } @else {
                                                a href=(href) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                            form.inline method="post" action=(sign_out) {
                                span.muted { (who) " " }
                                input type="hidden" name="csrf" value=(csrf);
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { h1 { (self.title) } (body) }
                }
            }
        };
        html_response(StatusCode::OK, markup)
    }

    /// The page with an error message instead of its content.
    pub fn error(&self, status: StatusCode, message: &str) -> Response {
        let mut r = self.render(html! { p.error role="alert" { (message) } });
        *r.status_mut() = status;
        r
    }
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 303 to `to`, optionally setting a cookie.
pub fn see_other(to: &str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A store failure as a page: logged, shown without its details.
pub fn internal(page: &Page, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console page failed");
    page.error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side; it was logged. Try again in a moment.",
    )
}

/// Amounts in minor units of `currency`, as people read them.
pub fn money(amount: i64, currency: &str) -> String {
    tollgate_domain::currency::money(amount, currency)
}

/// A use case's refusal as the page shows it: the status the API would
/// answer and its message (store failures are logged, not shown).
pub fn app_error(e: tollgate_app::AppError) -> (StatusCode, String) {
    use tollgate_store::StoreError;
    let (status, message) = match e {
        tollgate_app::AppError::Rule(rule) => {
            (tollgate_api::error::status_and_code(rule.kind).0, rule.message)
        }
        tollgate_app::AppError::Store(StoreError::NotFound(m)) => (StatusCode::NOT_FOUND, m),
        tollgate_app::AppError::Store(StoreError::Conflict(_, m) | StoreError::AlreadyExists(_, m)) => {
            (StatusCode::CONFLICT, m)
        }
        tollgate_app::AppError::Store(StoreError::Unavailable(e)) => {
            tracing::warn!(error = %e, "console: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot take the request right now; nothing was changed. Try again in a moment."
                    .to_owned(),
            )
        }
        tollgate_app::AppError::Store(e) => {
            tracing::error!(error = %e, "console page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; it was logged. Try again in a moment.".to_owned(),
            )
        }
    };
    (status, message)
}
