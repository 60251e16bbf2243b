//! Tollgate's HTTP API: the contract's operations and Tollgate's extensions.
//!
//! Only this crate knows HTTP and the JSON wire format. [`router`] lists every
//! route in one place; handlers live in one module per resource family.

pub mod alerts;
pub mod auth;
pub mod catalogs;
pub mod credit_notes;
pub mod credits;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod invoices;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod operator;
pub mod payment_methods;
pub mod plans;
pub mod quota;
pub mod rate_limit;
pub mod server;
pub mod state;
pub mod subscriptions;
pub mod transitions;
pub mod usage;
pub mod webhook_endpoints;
pub mod webhooks;
pub mod wire;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{delete, get, post, put};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use state::AppState;

/// Longest a request may take before it is answered with 504.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route Tollgate serves, with its middleware.
pub fn router(state: AppState) -> Router {
    with_middleware(routes().with_state(state))
}

/// Every route but `GET /metrics`, for `serve --metrics-listen`, which
/// serves the metrics on their own address ([`metrics::router`]); here that
/// path is then 404 like any unknown one.
pub fn router_without_metrics(state: AppState) -> Router {
    with_middleware(api_routes().with_state(state))
}

/// The API's routes (with `GET /metrics` or without it, for `serve
/// --metrics-listen`) and `extra` ones (the web console), behind the
/// middleware.
pub fn router_with(state: AppState, extra: Router<AppState>, metrics: bool) -> Router {
    metrics::warm();
    let routes = if metrics { routes() } else { api_routes() };
    with_middleware(routes.merge(extra).with_state(state))
}

/// The routes alone (tests add their own before applying the middleware).
pub fn routes() -> Router<AppState> {
    api_routes().route("/metrics", get(metrics::serve))
}

/// Every route but `/metrics`.
fn api_routes() -> Router<AppState> {
    Router::new()
        // quota objects (contract)
        .route(
            "/api/web/namespaces/{namespace}/quotas",
            post(quota::create).get(quota::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/quotas/{name}",
            get(quota::get).put(quota::replace).delete(quota::delete),
        )
        .route("/api/web/namespaces/{namespace}/quota/limits", get(quota::limits))
        // GET is the contract's usage report; PUT reconciles (extension)
        .route(
            "/api/web/namespaces/{namespace}/quota/usage",
            get(quota::usage).put(quota::reconcile),
        )
        // quota enforcement (extensions)
        .route(
            "/api/web/namespaces/{namespace}/quota/reserve",
            post(quota::reserve),
        )
        .route(
            "/api/web/namespaces/{namespace}/quota/release",
            post(quota::release),
        )
        // usage plans, subscriptions, add-ons (contract)
        .route(
            "/api/web/namespaces/system/usage_plans/custom_list",
            get(plans::list),
        )
        .route(
            "/api/web/namespaces/system/usage_plans/current",
            get(plans::current),
        )
        .route(
            "/api/web/namespaces/{namespace}/subscriptions/custom_list",
            get(subscriptions::list),
        )
        .route(
            "/api/web/namespaces/system/addon/subscribe",
            post(subscriptions::subscribe),
        )
        .route(
            "/api/web/namespaces/system/addon/unsubscribe",
            post(subscriptions::unsubscribe),
        )
        // payment methods (contract; GET lists them, an extension)
        .route(
            "/api/web/namespaces/{namespace}/billing/payment_methods",
            post(payment_methods::create).get(payment_methods::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/payment_methods/{name}",
            delete(payment_methods::delete),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/payment_method/{name}/primary",
            post(payment_methods::primary),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/payment_method/{name}/secondary",
            post(payment_methods::secondary),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/payment_method/{name}/swap-primary",
            post(payment_methods::swap),
        )
        // plan transitions (contract)
        .route(
            "/api/web/namespaces/{namespace}/billing/plan_transition",
            post(transitions::initiate),
        )
        .route(
            "/no_auth/namespaces/system/billing/plan_transition",
            get(transitions::get),
        )
        // metering: ingestion and meters (extensions), the five usage reports (contract)
        .route(
            "/api/data/namespaces/{namespace}/usage/events",
            post(usage::ingest),
        )
        .route("/api/web/namespaces/system/usage/meters", get(usage::meters))
        .route(
            "/api/web/namespaces/{namespace}/usage_details",
            post(usage::usage_details),
        )
        .route(
            "/api/web/namespaces/{namespace}/hourly_usage_details",
            post(usage::hourly_usage_details),
        )
        .route(
            "/api/web/namespaces/{namespace}/current_usage",
            post(usage::current_usage),
        )
        .route(
            "/api/web/namespaces/{namespace}/monthly_usage",
            post(usage::monthly_usage),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/credits",
            get(credits::get),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/credits/ledger",
            get(credits::ledger),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/credits/settings",
            put(credits::set_settings),
        )
        .route(
            "/api/data/namespaces/system/billing/usage_summary",
            post(usage::usage_summary),
        )
        // invoices (contract)
        .route(
            "/api/web/namespaces/{namespace}/usage/invoices/custom_list",
            get(invoices::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/usage/invoice_pdf",
            get(invoices::pdf),
        )
        // credit notes (extensions beside the invoices)
        .route(
            "/api/web/namespaces/{namespace}/billing/credit_notes",
            get(credit_notes::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/billing/credit_notes/{name}/pdf",
            get(credit_notes::pdf),
        )
        // usage alerts (extensions)
        .route(
            "/api/web/namespaces/{namespace}/alerts",
            post(alerts::create).get(alerts::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/alerts/{name}",
            get(alerts::get).delete(alerts::delete),
        )
        // webhook endpoints (extensions)
        .route(
            "/api/web/namespaces/{namespace}/webhooks",
            post(webhook_endpoints::create).get(webhook_endpoints::list),
        )
        .route(
            "/api/web/namespaces/{namespace}/webhooks/{id}",
            get(webhook_endpoints::get).delete(webhook_endpoints::delete),
        )
        .route(
            "/api/web/namespaces/{namespace}/webhooks/{id}/rotate_secret",
            post(webhook_endpoints::rotate_secret),
        )
        .route(
            "/api/web/namespaces/{namespace}/webhooks/{id}/enable",
            post(webhook_endpoints::enable),
        )
        .route(
            "/api/web/namespaces/{namespace}/webhooks/{id}/deliveries",
            get(webhook_endpoints::deliveries),
        )
        .route(
            "/api/web/namespaces/{namespace}/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhook_endpoints::redeliver),
        )
        .route(
            "/api/operator/webhooks",
            post(webhook_endpoints::operator_create).get(webhook_endpoints::operator_list),
        )
        .route(
            "/api/operator/webhooks/{id}",
            get(webhook_endpoints::operator_get).delete(webhook_endpoints::operator_delete),
        )
        .route(
            "/api/operator/webhooks/{id}/rotate_secret",
            post(webhook_endpoints::operator_rotate_secret),
        )
        .route(
            "/api/operator/webhooks/{id}/enable",
            post(webhook_endpoints::operator_enable),
        )
        .route(
            "/api/operator/webhooks/{id}/deliveries",
            get(webhook_endpoints::operator_deliveries),
        )
        .route(
            "/api/operator/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhook_endpoints::operator_redeliver),
        )
        // operator API (extension)
        .route("/api/operator/transitions", get(operator::list_transitions))
        .route("/api/operator/transitions/{id}/approve", post(operator::approve))
        .route("/api/operator/transitions/{id}/reject", post(operator::reject))
        .route("/api/operator/transitions/{id}/cancel", post(operator::cancel))
        .route("/api/operator/audit", get(operator::audit))
        .route(
            "/api/operator/tenants",
            get(operator::tenancy::list_tenants).post(operator::tenancy::create_tenant),
        )
        .route(
            "/api/operator/tenants/{tenant}",
            get(operator::tenancy::get_tenant),
        )
        .route(
            "/api/operator/tenants/{tenant}/reinstate",
            post(operator::tenancy::reinstate_tenant),
        )
        .route(
            "/api/operator/tenants/{tenant}/namespaces",
            get(operator::tenancy::list_namespaces).post(operator::tenancy::create_namespace),
        )
        .route(
            "/api/operator/tenants/{tenant}/tokens",
            get(operator::tenancy::list_tokens).post(operator::tenancy::create_token),
        )
        .route(
            "/api/operator/tenants/{tenant}/tokens/{id}/revoke",
            post(operator::tenancy::revoke_token),
        )
        .route(
            "/api/operator/operator-tokens",
            get(operator::tenancy::list_operator_tokens).post(operator::tenancy::create_operator_token),
        )
        .route(
            "/api/operator/operator-tokens/{name}/revoke",
            post(operator::tenancy::revoke_operator_token),
        )
        .route(
            "/api/operator/catalog/validate",
            post(operator::billing::validate_catalog),
        )
        .route(
            "/api/operator/catalog/publish",
            post(operator::billing::publish_catalog),
        )
        .route(
            "/api/operator/catalog/versions",
            get(operator::billing::list_catalog_versions),
        )
        .route(
            "/api/operator/catalog/moves",
            get(operator::billing::list_catalog_moves).post(operator::billing::schedule_catalog_moves),
        )
        .route(
            "/api/operator/tenants/{tenant}/currency",
            axum::routing::put(operator::tenancy::set_tenant_currency),
        )
        .route(
            "/api/operator/tenants/{tenant}/tax",
            get(operator::billing::get_tenant_tax).put(operator::billing::set_tenant_tax),
        )
        .route(
            "/api/operator/tenants/{tenant}/credits",
            get(operator::credits::get).post(operator::credits::grant),
        )
        .route(
            "/api/operator/tenants/{tenant}/credits/ledger",
            get(operator::credits::ledger),
        )
        .route(
            "/api/operator/tenants/{tenant}/credits/{grant}/reverse",
            post(operator::credits::reverse),
        )
        .route(
            "/api/operator/catalog/moves/{tenant}",
            axum::routing::delete(operator::billing::cancel_catalog_move),
        )
        .route(
            "/api/operator/catalog/versions/{version}",
            get(operator::billing::get_catalog_version),
        )
        .route(
            "/api/operator/coupons",
            get(operator::billing::list_coupons).post(operator::billing::create_coupon),
        )
        .route(
            "/api/operator/tenants/{tenant}/coupons",
            post(operator::billing::apply_coupon),
        )
        .route("/api/operator/invoices", get(operator::billing::list_invoices))
        .route(
            "/api/operator/tenants/{tenant}/invoices/{name}",
            get(operator::billing::get_invoice),
        )
        .route(
            "/api/operator/tenants/{tenant}/invoices/{name}/pdf",
            get(operator::billing::get_invoice_pdf),
        )
        .route(
            "/api/operator/tenants/{tenant}/invoices/{name}/cancel",
            post(operator::billing::cancel_invoice),
        )
        .route(
            "/api/operator/tenants/{tenant}/invoices/{name}/refund",
            post(operator::billing::refund_invoice),
        )
        .route(
            "/api/operator/tenants/{tenant}/invoices/{name}/charge",
            post(operator::billing::charge_invoice),
        )
        .route(
            "/api/operator/tenants/{tenant}/credit-notes",
            get(operator::billing::list_credit_notes),
        )
        .route(
            "/api/operator/tenants/{tenant}/credit-notes/{name}/pdf",
            get(operator::billing::get_credit_note_pdf),
        )
        .route("/api/operator/jobs/{job}/run", post(operator::billing::run_job))
        // payment provider webhooks (extension)
        .route("/webhooks/stripe", post(webhooks::stripe))
        // operations
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
}

/// The request id header, echoed on every response and carried by the log span.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id a client may choose.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `X-Request-Id` is kept: 1 to [`MAX_REQUEST_ID_LEN`]
/// characters of `A-Z a-z 0-9 . _ : -`. That fits UUIDs, ULIDs and common
/// trace ids, and is safe to log and echo verbatim; anything else is replaced
/// by a generated UUID.
pub fn is_usable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Removes a client's request id unless it is exactly one usable value, so
/// that one is generated instead.
fn drop_unusable_request_id(mut request: Request<axum::body::Body>) -> Request<axum::body::Body> {
    let mut ids = request.headers().get_all(X_REQUEST_ID).iter();
    let usable = matches!((ids.next(), ids.next()), (Some(id), None) if is_usable_request_id(id.as_bytes()));
    if !usable {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    request
}

/// Request ids, request logs, panic recovery, timeouts and the body limit, all
/// answering in the contract's error format.
pub fn with_middleware(router: Router) -> Router {
    // Inside the routing (each route's matched template is known), outside
    // the handlers: every answer is counted, errors and timeouts included.
    let router = router.layer(axum::middleware::from_fn(metrics::track));
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_unusable_request_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let request_id = req
                            .headers()
                            .get(X_REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = %request_id,
                        )
                    })
                    .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                    .on_response(DefaultOnResponse::new().level(Level::INFO))
                    .on_failure(DefaultOnFailure::new().level(Level::WARN)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(error::panic_response))
            .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
                if e.is::<tower::timeout::error::Elapsed>() {
                    ApiError::new(tollgate_domain::ErrorKind::DeadlineExceeded, "request timed out")
                } else {
                    tracing::error!(error = %e, "middleware failure");
                    ApiError::new(tollgate_domain::ErrorKind::Internal, "internal error")
                }
            }))
            .timeout(REQUEST_TIMEOUT)
            .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES)),
    )
}
