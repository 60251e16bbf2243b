//! Webhook endpoints (extensions): a tenant's, for its own events, under
//! `/api/web/namespaces/system/webhooks`, and the operator's, for every
//! tenant's (or one tenant's), under `/api/operator/webhooks`. What is
//! delivered and how is `tollgate_app::webhooks`'s.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_app::webhooks::{self, EndpointInput};
use tollgate_store::{EndpointScope, WebhookDelivery, WebhookEndpoint};
use utoipa::ToSchema;

use crate::auth::{Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::operations::Operation;
use crate::operator::{Operator, OperatorAdmin};
use crate::state::AppState;

/// A webhook endpoint to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateWebhookEndpointReq {
    /// Where events are POSTed: an http(s) URL, at most 2048 bytes; a
    /// public address unless the operator allows private ones.
    #[serde(default)]
    pub url: String,
    /// The event types wanted (see the README's list); empty or absent: every type.
    #[serde(default)]
    pub events: Vec<String>,
    /// What it is for, at most 256 characters.
    #[serde(default)]
    pub description: String,
    /// Operator API only: the tenant (by name) whose events it receives;
    /// absent: every tenant's.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointType {
    /// `ep_…`.
    pub id: String,
    pub url: String,
    /// The event types it receives; empty: every type.
    pub events: Vec<String>,
    pub description: String,
    /// The tenant whose events it receives (operator API; absent: every tenant's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tenant: Option<String>,
    pub created_at: String,
    pub created_by: String,
    /// Disabled after failing for longer than the operator allows; enable it
    /// to resume its deliveries.
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disabled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub failing_since: Option<String>,
    /// After a rotation: until when the previous secret also signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub previous_secret_until: Option<String>,
    /// The signing secret (`whsec_…`): in the answer to create and
    /// rotate_secret only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
}

/// Webhook endpoints, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListWebhookEndpointsRsp {
    pub items: Vec<WebhookEndpointType>,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryType {
    /// `dlv_…`.
    pub id: String,
    /// The event's id: the `webhook-id` header of every attempt.
    pub event_id: String,
    pub event_type: String,
    /// PENDING, DELIVERED or FAILED (every attempt failed).
    pub status: String,
    pub attempts: u32,
    /// When the next attempt is due (PENDING only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_error: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub finished_at: Option<String>,
}

/// An endpoint's deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListWebhookDeliveriesRsp {
    pub items: Vec<WebhookDeliveryType>,
}

fn endpoint(e: WebhookEndpoint, show_secret: bool, tenant: Option<String>) -> WebhookEndpointType {
    WebhookEndpointType {
        id: e.id,
        url: e.url,
        events: e.events,
        description: e.description,
        tenant,
        created_at: e.created_at.to_string(),
        created_by: e.created_by,
        disabled: e.disabled.is_some(),
        disabled_at: e.disabled.as_ref().map(|(at, _)| at.to_string()),
        disabled_reason: e.disabled.map(|(_, why)| why),
        failing_since: e.failing_since.map(|t| t.to_string()),
        previous_secret_until: e.previous_secret.as_ref().map(|(_, until)| until.to_string()),
        secret: show_secret.then_some(e.secret),
    }
}

fn delivery(d: WebhookDelivery) -> WebhookDeliveryType {
    let pending = d.status == tollgate_store::DeliveryStatus::Pending;
    WebhookDeliveryType {
        id: d.id,
        event_id: d.event_id,
        event_type: d.event_type,
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: pending.then(|| d.next_attempt_at.to_string()),
        last_attempt_at: d.last_attempt_at.map(|t| t.to_string()),
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at.to_string(),
        finished_at: d.finished_at.map(|t| t.to_string()),
    }
}

fn limit(query: &QueryParams) -> Result<u32, ApiError> {
    match query.get("limit").map(str::trim).filter(|l| !l.is_empty()) {
        None => Ok(100),
        Some(l) => match l.parse::<u32>() {
            Ok(n @ 1..=1000) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "limit: must be a whole number from 1 to 1000, got {l:?}"
            ))),
        },
    }
}

/// The tenant's scope, after checking the token may do `op` in `system`.
async fn tenant_scope(
    state: &AppState,
    caller: Caller,
    op: Operation,
    ns: &str,
) -> Result<(EndpointScope, String), ApiError> {
    let ns = namespace(ns)?;
    let auth = caller.authorize(state, op, &ns).await?;
    require_system(&ns, "webhook endpoints")?;
    Ok((EndpointScope::Tenant(auth.tenant_id().clone()), auth.actor()))
}

/// Creates a webhook endpoint for the tenant's events. The answer holds its
/// signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/webhooks",
    operation_id = "tollgate.webhooks.CreateEndpoint",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system")),
    request_body = CreateWebhookEndpointReq,
    responses(
        (status = 200, body = WebhookEndpointType),
        (status = 400, body = ErrorBody, description = "A bad `url` (`WEBHOOK_URL_REFUSED` for a private address), \
            an unknown event type, a long description, or `tenant` given."),
        (status = 409, body = ErrorBody, description = "The tenant has as many endpoints as it may (`WEBHOOK_ENDPOINT_LIMIT`).")
    ),
    security(("APIToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<CreateWebhookEndpointReq>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let (scope, actor) = tenant_scope(&state, caller, Operation::WebhookCreate, &ns).await?;
    if body.tenant.is_some() {
        return Err(ApiError::invalid(
            "tenant: only the operator names a tenant; a tenant's endpoint receives its own events",
        ));
    }
    let input = EndpointInput {
        url: body.url,
        events: body.events,
        description: body.description,
    };
    let e = webhooks::create_endpoint(
        state.store(),
        state.webhooks(),
        scope.tenant().cloned(),
        input,
        &actor,
        state.now(),
    )
    .await?;
    Ok(Json(endpoint(e, true, None)))
}

/// The tenant's webhook endpoints, oldest first (never their secrets).
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/webhooks",
    operation_id = "tollgate.webhooks.ListEndpoints",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system")),
    responses((status = 200, body = ListWebhookEndpointsRsp)),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<ListWebhookEndpointsRsp>, ApiError> {
    let (scope, _) = tenant_scope(&state, caller, Operation::WebhookList, &ns).await?;
    let items = state.store().webhook_endpoints(&scope, None).await?;
    Ok(Json(ListWebhookEndpointsRsp {
        items: items.into_iter().map(|e| endpoint(e, false, None)).collect(),
    }))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id:?}"))
}

/// One of the tenant's webhook endpoints.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}",
    operation_id = "tollgate.webhooks.GetEndpoint",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system"), ("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let (scope, _) = tenant_scope(&state, caller, Operation::WebhookGet, &ns).await?;
    let e = state
        .store()
        .webhook_endpoint(&scope, &id)
        .await?
        .ok_or_else(|| missing(&id))?;
    Ok(Json(endpoint(e, false, None)))
}

/// Deletes one of the tenant's webhook endpoints and its deliveries.
#[utoipa::path(
    delete,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}",
    operation_id = "tollgate.webhooks.DeleteEndpoint",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system"), ("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = crate::wire::quota::Empty), (status = 404, body = ErrorBody, description = "No such endpoint of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<crate::wire::quota::Empty>, ApiError> {
    let (scope, actor) = tenant_scope(&state, caller, Operation::WebhookDelete, &ns).await?;
    state
        .store()
        .delete_webhook_endpoint(&scope, &id, &actor, state.now())
        .await?;
    Ok(Json(crate::wire::quota::Empty {}))
}

/// Gives the endpoint a new signing secret (in the answer, shown once); the
/// previous one also signs for 24 hours, so that a receiver can switch
/// without losing an event.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}/rotate_secret",
    operation_id = "tollgate.webhooks.RotateSecret",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system"), ("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let (scope, actor) = tenant_scope(&state, caller, Operation::WebhookRotateSecret, &ns).await?;
    let e = webhooks::rotate_secret(state.store(), &scope, &id, &actor, state.now()).await?;
    Ok(Json(endpoint(e, true, None)))
}

/// Enables an endpoint Tollgate disabled; its pending deliveries are due now.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}/enable",
    operation_id = "tollgate.webhooks.EnableEndpoint",
    tag = "webhooks",
    params(("namespace" = String, Path, description = "Must be system"), ("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let (scope, actor) = tenant_scope(&state, caller, Operation::WebhookEnable, &ns).await?;
    let e = state
        .store()
        .enable_webhook_endpoint(&scope, &id, &actor, state.now())
        .await?;
    Ok(Json(endpoint(e, false, None)))
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}/deliveries",
    operation_id = "tollgate.webhooks.ListDeliveries",
    tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Must be system"),
        ("id" = String, Path, description = "ep_…"),
        ("limit" = Option<u32>, Query, description = "At most this many, 1 to 1000 (default 100)"),
    ),
    responses((status = 200, body = ListWebhookDeliveriesRsp), (status = 400, body = ErrorBody, description = "A bad `limit`."),
        (status = 404, body = ErrorBody, description = "No such endpoint of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Json<ListWebhookDeliveriesRsp>, ApiError> {
    let (scope, _) = tenant_scope(&state, caller, Operation::WebhookDeliveries, &ns).await?;
    let items = state
        .store()
        .webhook_deliveries(&scope, &id, limit(&query)?)
        .await?;
    Ok(Json(ListWebhookDeliveriesRsp {
        items: items.into_iter().map(delivery).collect(),
    }))
}

/// Sends a delivery's event to the endpoint again, as a new delivery with
/// the same event id, after the endpoint's deliveries made before it.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/webhooks/{id}/deliveries/{delivery}/redeliver",
    operation_id = "tollgate.webhooks.Redeliver",
    tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Must be system"),
        ("id" = String, Path, description = "ep_…"),
        ("delivery" = String, Path, description = "dlv_…"),
    ),
    responses((status = 200, body = WebhookDeliveryType), (status = 404, body = ErrorBody, description = "No such endpoint or delivery of the tenant's.")),
    security(("APIToken" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, id, delivery_id)): Path<(String, String, String)>,
) -> Result<Json<WebhookDeliveryType>, ApiError> {
    let (scope, actor) = tenant_scope(&state, caller, Operation::WebhookRedeliver, &ns).await?;
    let d = state
        .store()
        .redeliver_webhook(&scope, &id, &delivery_id, &actor, state.now())
        .await?;
    Ok(Json(delivery(d)))
}

// ---- operator ----

/// The tenant name of an endpoint, for the operator's view.
async fn tenant_name(state: &AppState, e: &WebhookEndpoint) -> Result<Option<String>, ApiError> {
    Ok(match &e.tenant_id {
        None => None,
        Some(id) => Some(
            state
                .store()
                .tenant(id)
                .await?
                .map_or_else(|| id.to_string(), |t| t.name.to_string()),
        ),
    })
}

async fn operator_view(
    state: &AppState,
    e: WebhookEndpoint,
    secret: bool,
) -> Result<WebhookEndpointType, ApiError> {
    let tenant = tenant_name(state, &e).await?;
    Ok(endpoint(e, secret, tenant))
}

/// Creates a webhook endpoint for every tenant's events, or (with `tenant`)
/// one tenant's. The answer holds its signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/operator/webhooks",
    operation_id = "tollgate.operator.CreateWebhookEndpoint",
    tag = "operator",
    request_body = CreateWebhookEndpointReq,
    responses(
        (status = 200, body = WebhookEndpointType),
        (status = 400, body = ErrorBody, description = "A bad `url` or event type."),
        (status = 404, body = ErrorBody, description = "No tenant has this name."),
        (status = 409, body = ErrorBody, description = "As many endpoints as allowed (`WEBHOOK_ENDPOINT_LIMIT`).")
    ),
    security(("OperatorToken" = []))
)]
pub async fn operator_create(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CreateWebhookEndpointReq>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let tenant = match body.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => Some(tollgate_app::tenancy::tenant(state.store(), name).await?.id),
        None => None,
    };
    let input = EndpointInput {
        url: body.url,
        events: body.events,
        description: body.description,
    };
    let e = webhooks::create_endpoint(
        state.store(),
        state.webhooks(),
        tenant,
        input,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(operator_view(&state, e, true).await?))
}

/// Every webhook endpoint, or (with `tenant`) one tenant's, oldest first.
#[utoipa::path(
    get,
    path = "/api/operator/webhooks",
    operation_id = "tollgate.operator.ListWebhookEndpoints",
    tag = "operator",
    params(("tenant" = Option<String>, Query, description = "Only this tenant's (by name)")),
    responses(
        (status = 200, body = ListWebhookEndpointsRsp),
        (status = 400, body = ErrorBody, description = "A malformed query string."),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn operator_list(
    State(state): State<AppState>,
    _: Operator,
    query: QueryParams,
) -> Result<Json<ListWebhookEndpointsRsp>, ApiError> {
    let tenant = match query.get("tenant").map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => Some(tollgate_app::tenancy::tenant(state.store(), name).await?.id),
        None => None,
    };
    // Each tenant's name read once, however many endpoints it has.
    let mut names: std::collections::HashMap<tollgate_domain::ids::TenantId, Option<String>> =
        std::collections::HashMap::new();
    let mut items = Vec::new();
    for e in state
        .store()
        .webhook_endpoints(&EndpointScope::Operator, tenant.as_ref())
        .await?
    {
        let name = match &e.tenant_id {
            Some(id) if names.contains_key(id) => names[id].clone(),
            Some(id) => {
                let name = tenant_name(&state, &e).await?;
                names.insert(id.clone(), name.clone());
                name
            }
            None => None,
        };
        items.push(endpoint(e, false, name));
    }
    Ok(Json(ListWebhookEndpointsRsp { items }))
}

/// One webhook endpoint.
#[utoipa::path(
    get,
    path = "/api/operator/webhooks/{id}",
    operation_id = "tollgate.operator.GetWebhookEndpoint",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint.")),
    security(("OperatorToken" = []))
)]
pub async fn operator_get(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let e = state
        .store()
        .webhook_endpoint(&EndpointScope::Operator, &id)
        .await?
        .ok_or_else(|| missing(&id))?;
    Ok(Json(operator_view(&state, e, false).await?))
}

/// Deletes a webhook endpoint and its deliveries.
#[utoipa::path(
    delete,
    path = "/api/operator/webhooks/{id}",
    operation_id = "tollgate.operator.DeleteWebhookEndpoint",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = crate::wire::quota::Empty), (status = 404, body = ErrorBody, description = "No such endpoint.")),
    security(("OperatorToken" = []))
)]
pub async fn operator_delete(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
) -> Result<Json<crate::wire::quota::Empty>, ApiError> {
    state
        .store()
        .delete_webhook_endpoint(&EndpointScope::Operator, &id, op.actor(), state.now())
        .await?;
    Ok(Json(crate::wire::quota::Empty {}))
}

/// Gives the endpoint a new signing secret (shown once); the previous one
/// also signs for 24 hours.
#[utoipa::path(
    post,
    path = "/api/operator/webhooks/{id}/rotate_secret",
    operation_id = "tollgate.operator.RotateWebhookSecret",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint.")),
    security(("OperatorToken" = []))
)]
pub async fn operator_rotate_secret(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let e = webhooks::rotate_secret(
        state.store(),
        &EndpointScope::Operator,
        &id,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(operator_view(&state, e, true).await?))
}

/// Enables an endpoint Tollgate disabled.
#[utoipa::path(
    post,
    path = "/api/operator/webhooks/{id}/enable",
    operation_id = "tollgate.operator.EnableWebhookEndpoint",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…")),
    responses((status = 200, body = WebhookEndpointType), (status = 404, body = ErrorBody, description = "No such endpoint.")),
    security(("OperatorToken" = []))
)]
pub async fn operator_enable(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointType>, ApiError> {
    let e = state
        .store()
        .enable_webhook_endpoint(&EndpointScope::Operator, &id, op.actor(), state.now())
        .await?;
    Ok(Json(operator_view(&state, e, false).await?))
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/operator/webhooks/{id}/deliveries",
    operation_id = "tollgate.operator.ListWebhookDeliveries",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…"), ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)")),
    responses(
        (status = 200, body = ListWebhookDeliveriesRsp),
        (status = 400, body = ErrorBody, description = "A bad `limit`, or a malformed query string."),
        (status = 404, body = ErrorBody, description = "No such endpoint.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn operator_deliveries(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Json<ListWebhookDeliveriesRsp>, ApiError> {
    let items = state
        .store()
        .webhook_deliveries(&EndpointScope::Operator, &id, limit(&query)?)
        .await?;
    Ok(Json(ListWebhookDeliveriesRsp {
        items: items.into_iter().map(delivery).collect(),
    }))
}

/// Sends a delivery's event to its endpoint again.
#[utoipa::path(
    post,
    path = "/api/operator/webhooks/{id}/deliveries/{delivery}/redeliver",
    operation_id = "tollgate.operator.RedeliverWebhook",
    tag = "operator",
    params(("id" = String, Path, description = "ep_…"), ("delivery" = String, Path, description = "dlv_…")),
    responses((status = 200, body = WebhookDeliveryType), (status = 404, body = ErrorBody, description = "No such endpoint or delivery.")),
    security(("OperatorToken" = []))
)]
pub async fn operator_redeliver(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<WebhookDeliveryType>, ApiError> {
    let d = state
        .store()
        .redeliver_webhook(
            &EndpointScope::Operator,
            &id,
            &delivery_id,
            op.actor(),
            state.now(),
        )
        .await?;
    Ok(Json(delivery(d)))
}
