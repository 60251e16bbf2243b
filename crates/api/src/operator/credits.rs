//! Operator API: grant a tenant prepaid credits, see its credits and ledger,
//! take back what is left of a grant.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tollgate_app::credits::{self, GrantAsk};
use utoipa::ToSchema;

use super::billing::tenant_named;
use super::{Operator, OperatorAdmin};
use crate::credits::{CreditGrantType, CreditLedgerRsp, CreditsRsp, credits_rsp, grant_type, ledger_rsp};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::state::AppState;

/// Credits to grant.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GrantCreditsReq {
    /// In major units of `currency`, e.g. "50.00".
    #[serde(default)]
    pub amount: String,
    /// ISO 4217; default: the tenant's currency. Credits pay only invoices
    /// in their currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// 0 to 1000 (default 0); higher is used first, then the soonest expiry.
    #[serde(default)]
    pub priority: Option<i64>,
    /// RFC 3339; what is left then expires. Absent: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Why (required; the tenant sees it in its ledger and on invoices).
    #[serde(default)]
    pub reason: String,
}

/// Grants a tenant prepaid credits: they pay its invoices as they are
/// finalized, before anything is charged; audited (`credits.grant`).
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/credits",
    operation_id = "tollgate.operator.GrantCredits",
    tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = GrantCreditsReq,
    responses(
        (status = 200, body = CreditGrantType),
        (status = 400, body = ErrorBody, description = "A bad amount, currency, priority, expiry or a missing reason (the field is named)."),
        (status = 404, body = ErrorBody, description = "No such tenant.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn grant(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<GrantCreditsReq>,
) -> Result<Json<CreditGrantType>, ApiError> {
    let expires_at = match body
        .expires_at
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(e) => Some(
            tollgate_domain::metering::parse_time(e)
                .map_err(|why| ApiError::invalid(format!("expires_at: {why}")))?,
        ),
    };
    let t = tenant_named(&state, &tenant).await?;
    let versions = state.catalogs().versions();
    let ask = GrantAsk {
        amount: body.amount,
        currency: body.currency,
        priority: body.priority,
        expires_at,
        reason: body.reason,
    };
    let g = credits::grant(state.store(), &versions, &t, &ask, op.actor(), state.now()).await?;
    Ok(Json(grant_type(&g)))
}

/// A tenant's credits: balances, grants, threshold.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/credits",
    operation_id = "tollgate.operator.GetCredits",
    tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name")),
    responses(
        (status = 200, body = CreditsRsp),
        (status = 404, body = ErrorBody, description = "No such tenant.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<CreditsRsp>, ApiError> {
    let t = tenant_named(&state, &tenant).await?;
    let versions = state.catalogs().versions();
    Ok(Json(credits_rsp(
        credits::summary(state.store(), &versions, &t).await?,
    )))
}

/// A tenant's credits ledger, newest first.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/credits/ledger",
    operation_id = "tollgate.operator.ListCreditLedger",
    tag = "operator",
    params(
        ("tenant" = String, Path, description = "The tenant's name"),
        ("before" = Option<String>, Query, description = "Only entries older than this seq (the next page)"),
        ("limit" = Option<u32>, Query, description = "At most this many entries (default 100, max 500)"),
    ),
    responses(
        (status = 200, body = CreditLedgerRsp),
        (status = 400, body = ErrorBody, description = "A bad `before` or `limit`."),
        (status = 404, body = ErrorBody, description = "No such tenant.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn ledger(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
    query: QueryParams,
) -> Result<Json<CreditLedgerRsp>, ApiError> {
    let t = tenant_named(&state, &tenant).await?;
    Ok(Json(ledger_rsp(&state, &t, &query).await?))
}

/// What to take back of a grant.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReverseCreditsReq {
    /// In major units; absent: all that is left.
    #[serde(default)]
    pub amount: Option<String>,
    /// Why (required; the tenant sees it in its ledger).
    #[serde(default)]
    pub reason: String,
}

/// Takes back what is left of a grant, or part of it (a `reverse` entry);
/// audited (`credits.reverse`).
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/credits/{grant}/reverse",
    operation_id = "tollgate.operator.ReverseCredits",
    tag = "operator",
    params(
        ("tenant" = String, Path, description = "The tenant's name"),
        ("grant" = String, Path, description = "The grant's id"),
    ),
    request_body = ReverseCreditsReq,
    responses(
        (status = 200, body = CreditGrantType),
        (status = 400, body = ErrorBody, description = "A bad amount or a missing reason."),
        (status = 404, body = ErrorBody, description = "No such tenant, or no such grant of it."),
        (status = 409, body = ErrorBody, description = "More than the grant has left (FAILED_PRECONDITION).")
    ),
    security(("OperatorToken" = []))
)]
pub async fn reverse(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((tenant, grant)): Path<(String, String)>,
    JsonBody(body): JsonBody<ReverseCreditsReq>,
) -> Result<Json<CreditGrantType>, ApiError> {
    let t = tenant_named(&state, &tenant).await?;
    let versions = state.catalogs().versions();
    let g = credits::reverse(
        state.store(),
        &versions,
        &t,
        &grant,
        body.amount.as_deref(),
        &body.reason,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(grant_type(&g)))
}
