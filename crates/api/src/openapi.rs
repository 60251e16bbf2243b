//! The OpenAPI document, generated from the handlers' annotations.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{health, operator, payment_methods, plans, quota, subscriptions, transitions, usage};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Billing, usage metering and quotas; wire-compatible with the F5 Distributed Cloud \
                       billing_and_usage API, plus Tollgate's extensions (tollgate.* operations)."
    ),
    paths(
        quota::create,
        quota::replace,
        quota::get,
        quota::list,
        quota::delete,
        quota::limits,
        quota::usage,
        quota::reserve,
        quota::release,
        quota::reconcile,
        plans::list,
        plans::current,
        subscriptions::list,
        subscriptions::subscribe,
        subscriptions::unsubscribe,
        payment_methods::create,
        payment_methods::list,
        payment_methods::delete,
        payment_methods::primary,
        payment_methods::secondary,
        payment_methods::swap,
        transitions::initiate,
        transitions::get,
        usage::ingest,
        usage::meters,
        usage::usage_details,
        usage::hourly_usage_details,
        usage::current_usage,
        usage::monthly_usage,
        usage::usage_summary,
        crate::invoices::list,
        crate::invoices::pdf,
        operator::list_transitions,
        operator::approve,
        operator::reject,
        operator::cancel,
        operator::audit,
        health::healthz,
        health::readyz,
    ),
    modifiers(&ApiTokenScheme)
)]
pub struct ApiDoc;

struct ApiTokenScheme;

impl Modify for ApiTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "APIToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`APIToken <token>`",
            ))),
        );
        components.add_security_scheme(
            "OperatorToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Bearer <operator token>` (TOLLGATE_OPERATOR_TOKEN of serve)",
            ))),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
