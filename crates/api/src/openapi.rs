//! The OpenAPI document, generated from the handlers' annotations.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorInfo};
use crate::{
    health, metrics, operator, payment_methods, plans, quota, subscriptions, transitions, usage, webhooks,
};

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
        crate::credit_notes::list,
        crate::credit_notes::pdf,
        crate::credits::get,
        crate::credits::ledger,
        crate::credits::set_settings,
        crate::alerts::create,
        crate::alerts::list,
        crate::alerts::get,
        crate::alerts::delete,
        crate::webhook_endpoints::create,
        crate::webhook_endpoints::list,
        crate::webhook_endpoints::get,
        crate::webhook_endpoints::delete,
        crate::webhook_endpoints::rotate_secret,
        crate::webhook_endpoints::enable,
        crate::webhook_endpoints::deliveries,
        crate::webhook_endpoints::redeliver,
        operator::list_transitions,
        operator::approve,
        operator::reject,
        operator::cancel,
        operator::audit,
        operator::tenancy::create_tenant,
        operator::tenancy::list_tenants,
        operator::tenancy::get_tenant,
        operator::tenancy::reinstate_tenant,
        operator::tenancy::create_namespace,
        operator::tenancy::list_namespaces,
        operator::tenancy::create_token,
        operator::tenancy::list_tokens,
        operator::tenancy::revoke_token,
        operator::tenancy::create_operator_token,
        operator::tenancy::list_operator_tokens,
        operator::tenancy::revoke_operator_token,
        operator::billing::validate_catalog,
        operator::billing::publish_catalog,
        operator::billing::schedule_catalog_moves,
        operator::billing::list_catalog_moves,
        operator::billing::cancel_catalog_move,
        operator::tenancy::set_tenant_currency,
        operator::billing::get_tenant_tax,
        operator::billing::set_tenant_tax,
        operator::credits::grant,
        operator::credits::get,
        operator::credits::ledger,
        operator::credits::reverse,
        operator::billing::list_catalog_versions,
        operator::billing::get_catalog_version,
        operator::billing::create_coupon,
        operator::billing::list_coupons,
        operator::billing::apply_coupon,
        operator::billing::list_invoices,
        operator::billing::get_invoice,
        operator::billing::get_invoice_pdf,
        operator::billing::cancel_invoice,
        operator::billing::refund_invoice,
        operator::billing::charge_invoice,
        operator::billing::list_credit_notes,
        operator::billing::get_credit_note_pdf,
        operator::billing::run_job,
        crate::webhook_endpoints::operator_create,
        crate::webhook_endpoints::operator_list,
        crate::webhook_endpoints::operator_get,
        crate::webhook_endpoints::operator_delete,
        crate::webhook_endpoints::operator_rotate_secret,
        crate::webhook_endpoints::operator_enable,
        crate::webhook_endpoints::operator_deliveries,
        crate::webhook_endpoints::operator_redeliver,
        webhooks::stripe,
        metrics::serve,
        health::healthz,
        health::readyz,
    ),
    components(schemas(ErrorBody, ErrorInfo, webhooks::WebhookAnswer)),
    modifiers(&ApiTokenScheme, &CommonResponses)
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
                "`Bearer <operator token>`: a named operator token (`tollgate operator-token create`) \
                 or the bootstrap credential (TOLLGATE_OPERATOR_TOKEN of serve)",
            ))),
        );
    }
}

/// Who calls an operation, which decides the errors it shares with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// `/api/web/…`, `/api/data/…`: an API token; rate limited per tenant.
    Tenant,
    /// `/api/operator/…`: the operator credential.
    Operator,
    /// `/no_auth/…`: no credential, but the database.
    Public,
    /// `/healthz`, `/readyz`.
    Probe,
}

impl Audience {
    fn of(path: &str) -> Self {
        if path.starts_with("/api/web/") || path.starts_with("/api/data/") {
            Self::Tenant
        } else if path.starts_with("/api/operator/") {
            Self::Operator
        } else if path.starts_with("/no_auth/") {
            Self::Public
        } else {
            Self::Probe
        }
    }
}

/// One status an operation shares with others of its kind.
struct CommonStatus {
    status: u16,
    description: String,
    /// Documented `Retry-After` header.
    retry_after: bool,
}

/// The statuses an operation answers besides those particular to it (which
/// its handler documents): by who calls it, whether a namespace is in its
/// path and whether it reads a body. The one definition of the common
/// errors, so that no handler has to repeat them.
fn common_statuses(path: &str, has_body: bool) -> Vec<CommonStatus> {
    let status = |status, description: &str, retry_after| CommonStatus {
        status,
        description: description.to_owned(),
        retry_after,
    };
    let audience = Audience::of(path);
    let namespaced = audience == Audience::Tenant && path.contains("namespace}");
    let mut out = Vec::new();
    if namespaced {
        out.push(status(
            400,
            "The namespace in the path is not a valid name, or not `system` where the operation \
             lives only there.",
            false,
        ));
    }
    // Every path parameter is checked by `extract::Path`.
    if path.split('{').skip(1).any(|p| !p.starts_with("namespace}")) {
        out.push(status(
            400,
            "A path parameter is not valid UTF-8 once percent-decoded, or holds a control \
             character; the message names it.",
            false,
        ));
    }
    if has_body {
        out.push(status(
            400,
            "The body is not a JSON object of this operation's request, or a field in it is \
             invalid; the message names the field. Unknown fields are ignored.",
            false,
        ));
    }
    match audience {
        Audience::Tenant => {
            out.push(status(
                401,
                "No API token, or a malformed, unknown, expired or revoked one \
                 (`Authorization: APIToken <token>`).",
                false,
            ));
            out.push(status(
                403,
                "The token's role or namespace scope does not allow this operation here.",
                false,
            ));
        }
        Audience::Operator => {
            out.push(status(
                401,
                "No operator token, or a wrong or revoked one (`Authorization: Bearer <operator token>`).",
                false,
            ));
            out.push(status(
                403,
                "The operator API is disabled (no operator token exists and the server runs without \
                 TOLLGATE_OPERATOR_TOKEN), or an operator-read token asks for a change.",
                false,
            ));
        }
        Audience::Public | Audience::Probe => {}
    }
    if namespaced {
        out.push(status(404, "The namespace does not exist.", false));
    }
    if has_body {
        out.push(CommonStatus {
            status: 413,
            description: format!(
                "The body is larger than {} bytes.",
                crate::extract::MAX_BODY_BYTES
            ),
            retry_after: false,
        });
    }
    if audience == Audience::Tenant {
        out.push(status(
            429,
            "The tenant's API rate limit for this operation (`api_limits`) is used up; \
             retry after `Retry-After` seconds.",
            true,
        ));
    }
    out.push(status(
        500,
        "An internal error; the details are in the server log, never in the answer.",
        false,
    ));
    if audience != Audience::Probe {
        out.push(status(
            503,
            "The database cannot take the request now (unreachable, disk full, an I/O error, \
             locked, a lost connection); nothing was changed. Retry after `Retry-After` seconds: \
             these faults heal by themselves.",
            true,
        ));
    }
    out.push(CommonStatus {
        status: 504,
        description: format!(
            "The request took longer than {} seconds.",
            crate::REQUEST_TIMEOUT.as_secs()
        ),
        retry_after: false,
    });
    out
}

/// Adds [`common_statuses`] to every operation of the document, each with a
/// description and the error body; a status the handler documents already
/// keeps its own description, followed by the common one. A success without
/// a description gets the contract's.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                add_common_responses(path, op);
            }
        }
    }
}

fn add_common_responses(path: &str, op: &mut Operation) {
    let has_body = op.request_body.is_some();
    let responses = &mut op.responses.responses;
    for common in common_statuses(path, has_body) {
        let entry = responses
            .entry(common.status.to_string())
            .or_insert_with(|| RefOr::T(Response::new("")));
        let RefOr::T(response) = entry else {
            continue;
        };
        if response.description.is_empty() {
            response.description = common.description;
        } else if !response.description.contains(&common.description) {
            response.description = format!("{} {}", response.description, common.description);
        }
        response
            .content
            .entry("application/json".into())
            .or_insert_with(|| RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))));
        if common.retry_after {
            let mut header = Header::new(Object::with_type(Type::Integer));
            header.description = Some("Seconds to wait before retrying.".into());
            response.headers.insert("Retry-After".into(), RefOr::T(header));
        }
    }
    if let Some(RefOr::T(ok)) = responses.get_mut("200")
        && ok.description.is_empty()
    {
        ok.description = "A successful response.".into();
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

/// Every documented operation's id by method (upper case) and route
/// template, from the description itself (not its JSON, which takes
/// megabytes to build and parse).
pub fn operation_ids() -> std::collections::HashMap<(String, String), String> {
    let mut out = std::collections::HashMap::new();
    for (path, item) in ApiDoc::openapi().paths.paths {
        let operations = [
            ("GET", item.get),
            ("PUT", item.put),
            ("POST", item.post),
            ("DELETE", item.delete),
            ("OPTIONS", item.options),
            ("HEAD", item.head),
            ("PATCH", item.patch),
            ("TRACE", item.trace),
        ];
        for (method, operation) in operations {
            if let Some(id) = operation.and_then(|o| o.operation_id) {
                out.insert((method.to_owned(), path.clone()), id);
            }
        }
    }
    out
}

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
