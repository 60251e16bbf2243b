//! Usage alerts (extensions) under `/api/web/namespaces/system/alerts`: a
//! tenant's thresholds on its current period's spend or one meter, fired
//! once per period as `usage.alert_triggered` (`tollgate_app::alerts`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_app::alerts::{self, AlertInput};
use tollgate_store::UsageAlert;
use utoipa::ToSchema;

use crate::auth::{Authorized, Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::operations::Operation;
use crate::state::AppState;

/// A usage alert to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateAlertReq {
    /// A DNS label, unique among the tenant's alerts.
    #[serde(default)]
    pub name: String,
    /// `spend` (the current period's total, in cents) or a meter's metric label.
    #[serde(default)]
    pub metric: String,
    /// Cents for spend (a whole number, as a string or a number); the
    /// meter's billable quantity (a decimal) otherwise. Reached (≥): the
    /// alert fires, once per billing period.
    #[serde(default)]
    pub threshold: Option<serde_json::Value>,
    /// Only this namespace's usage (spend then has no plan fee and no coupons).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A usage alert and where it stands in the current billing period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageAlertType {
    pub name: String,
    pub metric: String,
    pub threshold: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub namespace: Option<String>,
    /// TRIGGERED when it fired in the current period, else ARMED.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub triggered_at: Option<String>,
    /// What it saw when it fired (cents, or the meter's billable quantity).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub triggered_value: Option<String>,
    pub created_at: String,
}

/// The tenant's alerts, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListAlertsRsp {
    pub items: Vec<UsageAlertType>,
}

async fn scope(state: &AppState, caller: Caller, op: Operation, ns: &str) -> Result<Authorized, ApiError> {
    let ns = namespace(ns)?;
    let auth = caller.authorize(state, op, &ns).await?;
    require_system(&ns, "usage alerts")?;
    Ok(auth)
}

async fn wire(
    state: &AppState,
    auth: &Authorized,
    alerts: Vec<UsageAlert>,
) -> Result<Vec<UsageAlertType>, ApiError> {
    let period = alerts::current_period_start(state.store(), &auth.tenant, state.now()).await?;
    alerts
        .iter()
        .map(|a| {
            serde_json::from_value(alerts::alert_json(a, period))
                .map_err(|e| ApiError::from(tollgate_domain::Error::internal(e.to_string())))
        })
        .collect()
}

/// Creates a usage alert on the current period's spend or one meter.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/alerts",
    operation_id = "tollgate.alerts.CreateAlert",
    tag = "alerts",
    params(("namespace" = String, Path, description = "Must be system")),
    request_body = CreateAlertReq,
    responses(
        (status = 200, body = UsageAlertType),
        (status = 400, body = ErrorBody, description = "A bad name, metric, threshold or namespace."),
        (status = 404, body = ErrorBody, description = "No such namespace."),
        (status = 409, body = ErrorBody, description = "The name is taken (`ALERT_EXISTS`) or the tenant has 50 alerts (`ALERT_LIMIT`).")
    ),
    security(("APIToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<CreateAlertReq>,
) -> Result<Json<UsageAlertType>, ApiError> {
    let auth = scope(&state, caller, Operation::AlertCreate, &ns).await?;
    let threshold = match body.threshold {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => return Err(ApiError::invalid(format!("threshold: {other} is not a number"))),
    };
    let input = AlertInput {
        name: body.name,
        metric: body.metric,
        threshold,
        namespace: body.namespace,
    };
    let versions = state.catalogs().versions();
    let alert = alerts::create_alert(
        state.store(),
        &versions,
        &auth.tenant,
        input,
        &auth.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(wire(&state, &auth, vec![alert]).await?.remove(0)))
}

/// The tenant's usage alerts and their state in the current period.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/alerts",
    operation_id = "tollgate.alerts.ListAlerts",
    tag = "alerts",
    params(("namespace" = String, Path, description = "Must be system")),
    responses((status = 200, body = ListAlertsRsp)),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<ListAlertsRsp>, ApiError> {
    let auth = scope(&state, caller, Operation::AlertList, &ns).await?;
    let all = state.store().alerts(auth.tenant_id()).await?;
    Ok(Json(ListAlertsRsp {
        items: wire(&state, &auth, all).await?,
    }))
}

/// One usage alert.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/alerts/{name}",
    operation_id = "tollgate.alerts.GetAlert",
    tag = "alerts",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path, description = "The alert's name")),
    responses((status = 200, body = UsageAlertType), (status = 404, body = ErrorBody, description = "No alert of this name.")),
    security(("APIToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<UsageAlertType>, ApiError> {
    let auth = scope(&state, caller, Operation::AlertGet, &ns).await?;
    let found: Vec<UsageAlert> = state
        .store()
        .alerts(auth.tenant_id())
        .await?
        .into_iter()
        .filter(|a| a.name == name)
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!("no alert named {name:?}")));
    }
    Ok(Json(wire(&state, &auth, found).await?.remove(0)))
}

/// Deletes a usage alert.
#[utoipa::path(
    delete,
    path = "/api/web/namespaces/{namespace}/alerts/{name}",
    operation_id = "tollgate.alerts.DeleteAlert",
    tag = "alerts",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path, description = "The alert's name")),
    responses((status = 200, body = crate::wire::quota::Empty), (status = 404, body = ErrorBody, description = "No alert of this name.")),
    security(("APIToken" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<crate::wire::quota::Empty>, ApiError> {
    let auth = scope(&state, caller, Operation::AlertDelete, &ns).await?;
    state
        .store()
        .delete_alert(auth.tenant_id(), &name, &auth.actor(), state.now())
        .await?;
    Ok(Json(crate::wire::quota::Empty {}))
}
