//! Prepaid credits (an extension beside invoices): a tenant's balance,
//! grants and ledger, and its low-balance threshold; the operator grants and
//! reverses them (`operator::credits`). Amounts are proto3 int64 strings in
//! minor units (`*_cents`), as everywhere in the API; amounts a caller sends
//! are in major units ("50.00"), as refunds take them.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_app::credits;
use tollgate_domain::credits::{Entry, Grant};
use tollgate_domain::tenant::Tenant;
use utoipa::ToSchema;

use crate::auth::{Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::operations::Operation;
use crate::state::AppState;

/// A grant of prepaid credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditGrantType {
    pub id: String,
    pub currency: String,
    /// What was granted, in minor units.
    pub amount_cents: String,
    /// What is left of it.
    pub remaining_cents: String,
    /// Higher is used first.
    pub priority: i64,
    /// When what is left of it expires (none: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub expires_at: Option<String>,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: String,
}

pub(crate) fn grant_type(g: &Grant) -> CreditGrantType {
    CreditGrantType {
        id: g.id.clone(),
        currency: g.currency.clone(),
        amount_cents: g.amount_cents.to_string(),
        remaining_cents: g.remaining_cents.to_string(),
        priority: g.priority,
        expires_at: g.expires_at.map(|t| t.to_string()),
        reason: g.reason.clone(),
        granted_by: g.granted_by.clone(),
        granted_at: g.granted_at.to_string(),
    }
}

/// A balance in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditBalanceType {
    pub currency: String,
    pub balance_cents: String,
}

/// A tenant's credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsRsp {
    /// The currency the tenant is billed in.
    pub currency: String,
    /// The balance per currency (the tenant's own is always there): the sum
    /// of its grants' remaining amounts, and of its ledger's entries.
    pub balances: Vec<CreditBalanceType>,
    /// Below this balance (minor units) `credits.low_balance` fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub low_balance_threshold_cents: Option<String>,
    /// Every grant, oldest first.
    pub grants: Vec<CreditGrantType>,
}

pub(crate) fn credits_rsp(s: credits::Summary) -> CreditsRsp {
    CreditsRsp {
        currency: s.currency,
        balances: s
            .balances
            .into_iter()
            .map(|(currency, b)| CreditBalanceType {
                currency,
                balance_cents: b.to_string(),
            })
            .collect(),
        low_balance_threshold_cents: s.low_balance_threshold_cents.map(|t| t.to_string()),
        grants: s.grants.iter().map(grant_type).collect(),
    }
}

/// One entry of the credits ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditEntryType {
    /// The ledger's order; pass the last one's as `before` for the next page.
    pub seq: String,
    pub grant: String,
    pub currency: String,
    /// `grant`, `apply`, `expire`, `refund` or `reverse`.
    pub kind: String,
    /// Signed, minor units: positive for `grant` and `refund`.
    pub amount_cents: String,
    /// The invoice an `apply` paid or a `refund` came back from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub invoice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub note: Option<String>,
    pub actor: String,
    pub at: String,
}

/// A page of the ledger, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditLedgerRsp {
    pub entries: Vec<CreditEntryType>,
}

fn entry_type(e: Entry) -> CreditEntryType {
    CreditEntryType {
        seq: e.seq.to_string(),
        grant: e.grant_id,
        currency: e.currency,
        kind: e.kind.as_str().to_owned(),
        amount_cents: e.amount_cents.to_string(),
        invoice: e.invoice,
        note: e.note,
        actor: e.actor,
        at: e.at.to_string(),
    }
}

pub(crate) async fn ledger_rsp(
    state: &AppState,
    tenant: &Tenant,
    query: &QueryParams,
) -> Result<CreditLedgerRsp, ApiError> {
    let before = match query.get("before").map(str::trim).filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("before: must be an entry's seq, got {b:?}")))?,
        ),
    };
    let limit = match query.get("limit").map(str::trim).filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(l.parse::<u32>().map_err(|_| {
            ApiError::invalid(format!(
                "limit: must be a whole number from 1 to {}, got {l:?}",
                credits::MAX_PAGE
            ))
        })?),
    };
    let entries = credits::ledger(state.store(), &tenant.id, before, limit).await?;
    Ok(CreditLedgerRsp {
        entries: entries.into_iter().map(entry_type).collect(),
    })
}

/// The tenant's prepaid credits: balance per currency, every grant with
/// what is left of it, and the low-balance threshold.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/billing/credits",
    operation_id = "tollgate.billing.GetCredits",
    tag = "invoices",
    params(("namespace" = String, Path, description = "Must be system (credits are per tenant)")),
    responses(
        (status = 200, body = CreditsRsp),
        (status = 400, body = ErrorBody, description = "A namespace other than system.")
    ),
    security(("APIToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<CreditsRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::CreditsGet, &ns).await?;
    require_system(&ns, "credits")?;
    let versions = state.catalogs().versions();
    let s = credits::summary(state.store(), &versions, &auth.tenant).await?;
    Ok(Json(credits_rsp(s)))
}

/// The tenant's credits ledger, newest first: every grant, application to
/// an invoice, expiry, refund back to credits and reversal. Its entries add
/// up to the balance.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/billing/credits/ledger",
    operation_id = "tollgate.billing.ListCreditLedger",
    tag = "invoices",
    params(
        ("namespace" = String, Path, description = "Must be system"),
        ("before" = Option<String>, Query, description = "Only entries older than this seq (the next page)"),
        ("limit" = Option<u32>, Query, description = "At most this many entries (default 100, max 500)"),
    ),
    responses(
        (status = 200, body = CreditLedgerRsp),
        (status = 400, body = ErrorBody, description = "A bad `before` or `limit`, or a namespace other than system.")
    ),
    security(("APIToken" = []))
)]
pub async fn ledger(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<CreditLedgerRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::CreditsLedger, &ns).await?;
    require_system(&ns, "credits")?;
    Ok(Json(ledger_rsp(&state, &auth.tenant, &query).await?))
}

/// The low-balance threshold.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreditSettingsReq {
    /// In major units of the tenant's currency ("10.00"); `credits.low_balance`
    /// fires when an entry takes the balance below it. Absent: no threshold.
    #[serde(default)]
    pub low_balance_threshold: Option<String>,
}

/// The threshold as set.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditSettingsRsp {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub low_balance_threshold_cents: Option<String>,
}

/// Sets (or clears) the tenant's low-balance threshold; audited
/// (`credits.settings`).
#[utoipa::path(
    put,
    path = "/api/web/namespaces/{namespace}/billing/credits/settings",
    operation_id = "tollgate.billing.SetCreditSettings",
    tag = "invoices",
    params(("namespace" = String, Path, description = "Must be system")),
    request_body = CreditSettingsReq,
    responses(
        (status = 200, body = CreditSettingsRsp),
        (status = 400, body = ErrorBody, description = "A threshold that is not an amount, or a namespace other than system.")
    ),
    security(("APIToken" = []))
)]
pub async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<CreditSettingsReq>,
) -> Result<Json<CreditSettingsRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::CreditsSettings, &ns).await?;
    require_system(&ns, "credits")?;
    let actor = auth.actor();
    let versions = state.catalogs().versions();
    let set = credits::set_threshold(
        state.store(),
        &versions,
        &auth.tenant,
        body.low_balance_threshold.as_deref(),
        &actor,
        state.now(),
    )
    .await?;
    Ok(Json(CreditSettingsRsp {
        low_balance_threshold_cents: set.map(|t| t.to_string()),
    }))
}
