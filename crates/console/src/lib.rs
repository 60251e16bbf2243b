//! Tollgate's web console: server-rendered HTML (maud) under `/console/`
//! for a tenant's users and `/console/operator/` for the operator, served by
//! `tollgate serve` beside the API. Pages call the application layer and the
//! store as the API's handlers do (never the HTTP API through loopback),
//! and enforce the same roles and scopes: a session is as strong as the
//! token it was signed in with, which every request checks again.
//!
//! Every asset is embedded (one stylesheet, no script): the console works
//! offline and under a strict Content-Security-Policy.

mod alerts;
mod operator;
mod operator_catalog;
mod operator_invoices;
mod pages;
mod payment_methods;
mod plans;
pub mod session;
mod tenant;
mod usage;
mod webhooks;

use axum::Router;
use axum::routing::{get, post};
use tollgate_api::state::AppState;

pub use pages::Page;

/// Every console route, to merge into the API's router before its
/// middleware.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { axum::response::Redirect::permanent("/console/") }),
        )
        .route("/console/", get(tenant::overview))
        .route(
            "/console/sign-in",
            get(tenant::sign_in_form).post(tenant::sign_in),
        )
        .route("/console/sign-out", post(tenant::sign_out))
        .route("/console/usage", get(usage::page))
        .route("/console/usage.csv", get(usage::csv))
        .route("/console/quotas", get(tenant::quotas))
        .route("/console/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/console/webhooks/{id}/{change}", post(webhooks::change))
        .route(
            "/console/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/console/alerts", get(alerts::list).post(alerts::create))
        .route("/console/alerts/{name}/delete", post(alerts::delete))
        .route("/console/plans", get(plans::page))
        .route("/console/plans/transition", post(plans::transition))
        .route("/console/addons/{addon}/{change}", post(plans::addon))
        .route(
            "/console/payment-methods",
            get(payment_methods::list).post(payment_methods::add),
        )
        .route(
            "/console/payment-methods/{name}/{change}",
            post(payment_methods::change),
        )
        .route("/console/invoices", get(tenant::invoices))
        .route("/console/invoices/{name}", get(tenant::invoice))
        .route("/console/invoices/{name}/pdf", get(tenant::invoice_pdf))
        .route("/console/credit-notes/{name}/pdf", get(tenant::credit_note_pdf))
        .route("/console/assets/console.css", get(pages::stylesheet))
        .route(
            "/console/operator",
            get(|| async { axum::response::Redirect::permanent("/console/operator/") }),
        )
        .route("/console/operator/", get(operator::tenants))
        .route(
            "/console/operator/sign-in",
            get(operator::sign_in_form).post(operator::sign_in),
        )
        .route("/console/operator/sign-out", post(tenant::sign_out))
        .route("/console/operator/tenants", post(operator::create_tenant))
        .route("/console/operator/tenants/{name}", get(operator::tenant))
        .route(
            "/console/operator/tenants/{name}/tokens",
            post(operator::create_token),
        )
        .route("/console/operator/approvals", get(operator::approvals))
        .route("/console/operator/invoices", get(operator_invoices::list))
        .route("/console/operator/health", get(operator::health))
        .route("/console/operator/catalog", get(operator_catalog::page))
        .route("/console/operator/catalog/diff", get(operator_catalog::diff))
        .route("/console/operator/catalog/upload", post(operator_catalog::upload))
        .route(
            "/console/operator/catalog/versions/{version}",
            get(operator_catalog::version),
        )
        .route(
            "/console/operator/catalog/versions/{version}/source",
            get(operator_catalog::source),
        )
        .route(
            "/console/operator/invoices/{tenant}/{name}/{action}",
            post(operator_invoices::act),
        )
        .route(
            "/console/operator/approvals/{id}/{decision}",
            post(operator::decide),
        )
}
