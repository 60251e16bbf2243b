//! Operator API: catalogs, coupons, invoices across tenants, refunds and
//! their credit notes, and running jobs.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use tollgate_app::coupons::{self, CouponRequest};
use tollgate_app::refunds::{RefundAsk, refunded_cents};
use tollgate_app::{Job, credit_notes, invoices, tenancy};
use tollgate_domain::currency::format_minor;
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};

use crate::wire::usage::PricingItem;
use tollgate_domain::rating::Discount;
use tollgate_domain::{Error, ErrorKind, catalog};
use tollgate_store::{ChargeRecord, CouponDef, RefundRecord, RefundState, Store, StoredCatalog};
use utoipa::ToSchema;

use super::{Operator, OperatorAdmin};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::state::AppState;

// ------------------------------------------------------------------ catalogs

/// A catalog to validate or publish.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CatalogSource {
    /// The catalog's TOML text.
    #[serde(default)]
    pub source: String,
    /// A name for it in errors and the version list, e.g. a file name.
    pub source_name: Option<String>,
}

/// What a catalog holds, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogSummary {
    pub plans: usize,
    pub addons: usize,
    pub meters: usize,
    pub default_plan: String,
    pub currency: String,
}

fn summary(c: &catalog::Catalog) -> CatalogSummary {
    CatalogSummary {
        plans: c.plans.len(),
        addons: c.addons.len(),
        meters: c.meters.len(),
        default_plan: c.default_plan.clone(),
        currency: c.currency.clone(),
    }
}

fn source_name(body: &CatalogSource) -> String {
    body.source_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "catalog.toml".to_owned())
}

/// Checks a catalog without publishing it: the summary, or a 400 naming
/// the line and field at fault.
#[utoipa::path(
    post,
    path = "/api/operator/catalog/validate",
    operation_id = "tollgate.operator.ValidateCatalog",
    tag = "operator",
    request_body = CatalogSource,
    responses(
        (status = 200, body = CatalogSummary),
        (status = 400, body = ErrorBody, description = "The catalog is invalid: the message names the line and field.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn validate_catalog(
    _: Operator,
    JsonBody(body): JsonBody<CatalogSource>,
) -> Result<Json<CatalogSummary>, ApiError> {
    let c = catalog::parse_for_publish(&source_name(&body), &body.source).map_err(Error::from)?;
    Ok(Json(summary(&c)))
}

/// A published catalog version.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogVersion {
    pub version: i64,
    pub source_name: String,
    pub published: String,
    pub published_by: String,
    /// The TOML as published (in `catalog/versions/{version}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub source: Option<String>,
}

fn version_item(c: StoredCatalog, with_source: bool) -> CatalogVersion {
    CatalogVersion {
        version: c.version,
        source_name: c.source_name,
        published: c.published_at.to_string(),
        published_by: c.published_by,
        source: with_source.then_some(c.source),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogVersionList {
    pub items: Vec<CatalogVersion>,
}

/// Publishes a catalog as the next version: it is offered at once on every
/// server; tenants keep their plan's version until they change plan.
#[utoipa::path(
    post,
    path = "/api/operator/catalog/publish",
    operation_id = "tollgate.operator.PublishCatalog",
    tag = "operator",
    request_body = CatalogSource,
    responses(
        (status = 200, body = CatalogVersion),
        (status = 400, body = ErrorBody, description = "The catalog is invalid: the message names the line and field.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn publish_catalog(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CatalogSource>,
) -> Result<Json<CatalogVersion>, ApiError> {
    let name = source_name(&body);
    let version =
        tollgate_app::catalogs::publish(state.store(), &name, &body.source, op.actor(), state.now()).await?;
    let stored = state
        .store()
        .catalog(Some(version))
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "the published catalog cannot be read back"))?;
    Ok(Json(version_item(stored, false)))
}

/// Tenants to move to a newer catalog version of the plan each is on.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CatalogMoveRequest {
    /// The version to move to; the latest when absent.
    pub version: Option<i64>,
    /// These tenants, by name (or `plan`, not both).
    pub tenants: Option<Vec<String>>,
    /// Every tenant on this plan now (or `tenants`, not both).
    pub plan: Option<String>,
}

/// A tenant's pending move to a newer catalog version.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogMoveItem {
    pub tenant: String,
    pub from_version: i64,
    pub catalog_version: i64,
    /// When it takes effect: the start of the tenant's next billing period.
    pub effective_at: String,
    pub scheduled_by: String,
    pub scheduled_at: String,
}

/// A tenant left out, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogMoveSkipped {
    pub tenant: String,
    pub reason: String,
}

/// What a move request scheduled.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogMoveResult {
    pub scheduled: Vec<CatalogMoveItem>,
    pub skipped: Vec<CatalogMoveSkipped>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogMoveList {
    pub items: Vec<CatalogMoveItem>,
}

fn move_item(tenant: String, m: &tollgate_store::CatalogMove) -> CatalogMoveItem {
    CatalogMoveItem {
        tenant,
        from_version: m.from_version,
        catalog_version: m.catalog_version,
        effective_at: m.effective_at.to_string(),
        scheduled_by: m.created_by.clone(),
        scheduled_at: m.created_at.to_string(),
    }
}

/// Moves tenants to a newer catalog version of the plan each is on (one,
/// a list, or every tenant on a plan), at the start of each one's next
/// billing period; the current period stays billed at its version.
/// Replaces a tenant's pending move; audited (`catalog_move.schedule`).
#[utoipa::path(
    post,
    path = "/api/operator/catalog/moves",
    operation_id = "tollgate.operator.ScheduleCatalogMoves",
    tag = "operator",
    request_body = CatalogMoveRequest,
    responses(
        (status = 200, body = CatalogMoveResult),
        (status = 400, body = ErrorBody, description = "Neither or both of `tenants` and `plan`; a plan the version does not have (such tenants need a plan transition)."),
        (status = 404, body = ErrorBody, description = "No such tenant or catalog version."),
        (status = 409, body = ErrorBody, description = "A tenant changed plan meanwhile (`PLAN_CHANGED`); nothing was scheduled.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn schedule_catalog_moves(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CatalogMoveRequest>,
) -> Result<Json<CatalogMoveResult>, ApiError> {
    use tollgate_app::catalogs::{MoveSelection, schedule_moves};
    let selection = match (body.tenants, body.plan) {
        (Some(t), None) => MoveSelection::Tenants(t),
        (None, Some(p)) => MoveSelection::Plan(p),
        _ => return Err(Error::invalid("tenants, plan: name the tenants or a plan, not both").into()),
    };
    let plan = schedule_moves(
        state.store(),
        &state.catalogs().versions(),
        &selection,
        body.version,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(CatalogMoveResult {
        scheduled: plan
            .scheduled
            .iter()
            .map(|(n, m)| move_item(n.clone(), m))
            .collect(),
        skipped: plan
            .skipped
            .into_iter()
            .map(|s| CatalogMoveSkipped {
                tenant: s.tenant,
                reason: s.reason,
            })
            .collect(),
    }))
}

/// Pending moves to newer catalog versions, soonest first.
#[utoipa::path(
    get,
    path = "/api/operator/catalog/moves",
    operation_id = "tollgate.operator.ListCatalogMoves",
    tag = "operator",
    responses((status = 200, body = CatalogMoveList)),
    security(("OperatorToken" = []))
)]
pub async fn list_catalog_moves(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<CatalogMoveList>, ApiError> {
    let store = state.store();
    let mut items = Vec::new();
    for m in store.catalog_moves(None).await? {
        let name = match store.tenant(&m.tenant_id).await? {
            Some(t) => t.name.to_string(),
            None => continue,
        };
        items.push(move_item(name, &m));
    }
    Ok(Json(CatalogMoveList { items }))
}

/// Cancels a tenant's pending move; audited (`catalog_move.cancel`).
#[utoipa::path(
    delete,
    path = "/api/operator/catalog/moves/{tenant}",
    operation_id = "tollgate.operator.CancelCatalogMove",
    tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name")),
    responses(
        (status = 200, body = crate::wire::quota::Empty),
        (status = 404, body = ErrorBody, description = "No such tenant, or it has no pending move.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn cancel_catalog_move(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
) -> Result<Json<crate::wire::quota::Empty>, ApiError> {
    let t = state
        .store()
        .tenant_by_name(&tenant)
        .await?
        .ok_or_else(|| Error::not_found(format!("tenant {tenant:?} does not exist")))?;
    if !state
        .store()
        .cancel_catalog_move(&t.id, op.actor(), state.now())
        .await?
    {
        return Err(Error::not_found(format!("tenant {tenant:?} has no pending catalog move")).into());
    }
    Ok(Json(crate::wire::quota::Empty {}))
}

/// How a tenant is taxed.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct TaxTreatmentBody {
    /// `standard` (the rates of its billing address), `exempt`, or
    /// `reverse_charge` (a business that accounts for the tax itself).
    #[serde(default)]
    pub treatment: String,
    /// The customer's tax id (`reverse_charge` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tax_id: Option<String>,
}

fn treatment_body(t: &tollgate_domain::rating::TaxTreatment) -> TaxTreatmentBody {
    TaxTreatmentBody {
        treatment: t.as_str().to_owned(),
        tax_id: t.tax_id().map(str::to_owned),
    }
}

pub(crate) async fn tenant_named(
    state: &AppState,
    name: &str,
) -> Result<tollgate_domain::tenant::Tenant, ApiError> {
    Ok(state
        .store()
        .tenant_by_name(name)
        .await?
        .ok_or_else(|| Error::not_found(format!("tenant {name:?} does not exist")))?)
}

/// How a tenant is taxed.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/tax",
    operation_id = "tollgate.operator.GetTenantTax",
    tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name")),
    responses(
        (status = 200, body = TaxTreatmentBody),
        (status = 404, body = ErrorBody, description = "No such tenant.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_tenant_tax(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<TaxTreatmentBody>, ApiError> {
    let t = tenant_named(&state, &tenant).await?;
    Ok(Json(treatment_body(&state.store().tax_treatment(&t.id).await?)))
}

/// Sets how a tenant is taxed: by the rates of its billing address
/// (`standard`), `exempt`, or `reverse_charge` with its tax id (printed on
/// its invoices). Applies to invoices finalized from now on; audited
/// (`tenant.tax`).
#[utoipa::path(
    put,
    path = "/api/operator/tenants/{tenant}/tax",
    operation_id = "tollgate.operator.SetTenantTax",
    tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = TaxTreatmentBody,
    responses(
        (status = 200, body = TaxTreatmentBody),
        (status = 400, body = ErrorBody, description = "An unknown treatment, or a tax id missing (reverse charge) or out of place."),
        (status = 404, body = ErrorBody, description = "No such tenant.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn set_tenant_tax(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<TaxTreatmentBody>,
) -> Result<Json<TaxTreatmentBody>, ApiError> {
    let treatment = tollgate_domain::rating::TaxTreatment::parse(&body.treatment, body.tax_id.as_deref())?;
    let t = tenant_named(&state, &tenant).await?;
    state
        .store()
        .set_tax_treatment(&t.id, &treatment, op.actor(), state.now())
        .await?;
    Ok(Json(treatment_body(&treatment)))
}

/// Every published catalog version, oldest first (without their sources).
#[utoipa::path(
    get,
    path = "/api/operator/catalog/versions",
    operation_id = "tollgate.operator.ListCatalogVersions",
    tag = "operator",
    responses((status = 200, body = CatalogVersionList)),
    security(("OperatorToken" = []))
)]
pub async fn list_catalog_versions(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<CatalogVersionList>, ApiError> {
    let items = state
        .store()
        .catalogs()
        .await?
        .into_iter()
        .map(|c| version_item(c, false))
        .collect();
    Ok(Json(CatalogVersionList { items }))
}

/// One published catalog version with its source; `latest` names the newest.
#[utoipa::path(
    get,
    path = "/api/operator/catalog/versions/{version}",
    operation_id = "tollgate.operator.GetCatalogVersion",
    tag = "operator",
    params(("version" = String, Path, description = "A version number, or `latest`")),
    responses(
        (status = 200, body = CatalogVersion),
        (status = 400, body = ErrorBody, description = "The version is neither a number nor `latest`."),
        (status = 404, body = ErrorBody, description = "No catalog has this version.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_catalog_version(
    State(state): State<AppState>,
    _: Operator,
    Path(version): Path<String>,
) -> Result<Json<CatalogVersion>, ApiError> {
    let wanted = match version.as_str() {
        "latest" => None,
        v => Some(v.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("version: expected a number or \"latest\", got {v:?}"))
        })?),
    };
    let c = state
        .store()
        .catalog(wanted)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("catalog version {version} does not exist")))?;
    Ok(Json(version_item(c, true)))
}

// ------------------------------------------------------------------- coupons

/// A coupon definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponItem {
    pub code: String,
    pub title: String,
    /// A percentage of the subtotal, e.g. "12.5" (exclusive with `fixed_cents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub percent: Option<String>,
    /// A fixed amount off, in cents of the invoice's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fixed_cents: Option<i64>,
}

fn coupon_item(c: CouponDef) -> CouponItem {
    let (percent, fixed_cents) = match c.discount {
        Discount::Percent(bp) => (
            Some(rust_decimal::Decimal::new(bp, 2).normalize().to_string()),
            None,
        ),
        Discount::Fixed(cents) => (None, Some(cents)),
    };
    CouponItem {
        code: c.code,
        title: c.title,
        percent,
        fixed_cents,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponList {
    pub items: Vec<CouponItem>,
}

/// Body of a coupon definition: exactly one of `percent` and `fixed_cents`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateCoupon {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub title: String,
    /// 0.01 to 100 with at most two decimals, as a string ("12.5") or number.
    #[schema(value_type = Option<String>)]
    pub percent: Option<serde_json::Value>,
    /// More than zero.
    pub fixed_cents: Option<i64>,
}

fn percent(v: &serde_json::Value) -> Result<rust_decimal::Decimal, Error> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => {
            return Err(Error::invalid(format!(
                "percent: expected a decimal such as \"12.5\", got {v}"
            )));
        }
    };
    text.parse().map_err(|_| {
        Error::invalid(format!(
            "percent: expected a decimal such as \"12.5\", got {text:?}"
        ))
    })
}

/// Defines a coupon.
#[utoipa::path(
    post,
    path = "/api/operator/coupons",
    operation_id = "tollgate.operator.CreateCoupon",
    tag = "operator",
    request_body = CreateCoupon,
    responses(
        (status = 200, body = CouponItem),
        (status = 400, body = ErrorBody, description = "An invalid code or title, neither or both of `percent` and `fixed_cents`, or one out of range."),
        (status = 409, body = ErrorBody, description = "A coupon has this code.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn create_coupon(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CreateCoupon>,
) -> Result<Json<CouponItem>, ApiError> {
    let req = CouponRequest {
        code: body.code,
        title: body.title,
        percent: body.percent.as_ref().map(percent).transpose()?,
        fixed_cents: body.fixed_cents,
    };
    let def = coupons::create_coupon(state.store(), &req, op.actor(), state.now()).await?;
    Ok(Json(coupon_item(def)))
}

/// Every coupon definition, by code.
#[utoipa::path(
    get,
    path = "/api/operator/coupons",
    operation_id = "tollgate.operator.ListCoupons",
    tag = "operator",
    responses((status = 200, body = CouponList)),
    security(("OperatorToken" = []))
)]
pub async fn list_coupons(State(state): State<AppState>, _: Operator) -> Result<Json<CouponList>, ApiError> {
    let mut all = state.store().coupons().await?;
    all.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(Json(CouponList {
        items: all.into_iter().map(coupon_item).collect(),
    }))
}

/// Body of a coupon application.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApplyCoupon {
    #[serde(default)]
    pub code: String,
    /// Start of the periods it discounts (RFC 3339 or unix seconds); default: now.
    pub from: Option<String>,
    /// End (exclusive); default: forever.
    pub until: Option<String>,
}

/// What was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedCouponItem {
    pub tenant: String,
    pub code: String,
}

/// Applies a coupon to a tenant for the billing periods overlapping [from, until).
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/coupons",
    operation_id = "tollgate.operator.ApplyCoupon",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = ApplyCoupon,
    responses(
        (status = 200, body = AppliedCouponItem),
        (status = 400, body = ErrorBody, description = "An invalid `from` or `until`, or `until` not after `from`."),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or no coupon this code."),
        (status = 409, body = ErrorBody, description = "The coupon is applied to the tenant from this start already.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn apply_coupon(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<ApplyCoupon>,
) -> Result<Json<AppliedCouponItem>, ApiError> {
    let from = super::optional_time("from", body.from.as_deref())?;
    let until = super::optional_time("until", body.until.as_deref())?;
    let t = tenancy::tenant(state.store(), &tenant).await?;
    coupons::apply_coupon(
        state.store(),
        &state.catalogs().versions(),
        &t,
        &body.code,
        from,
        until,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(AppliedCouponItem {
        tenant: t.name.to_string(),
        code: body.code,
    }))
}

// ------------------------------------------------------------------ invoices

/// An invoice in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceItem {
    pub tenant: String,
    pub name: String,
    /// PENDING, ISSUED, PAID, OVERDUE, REFUNDED or CANCELLED.
    pub status: String,
    pub period_start: String,
    pub period_end: String,
    pub plan: String,
    pub currency: String,
    pub total_cents: i64,
    /// The total as people read it, e.g. "26.28".
    pub total: String,
    /// What its refunds gave back (SUCCEEDED credit notes), in cents: the
    /// total once it is REFUNDED, less while it is PAID and partly refunded.
    pub refunded_cents: i64,
    /// The same as people read it, e.g. "6.28".
    pub refunded: String,
    /// When it was finalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub issued: Option<String>,
}

fn invoice_item(tenant: &str, i: &Invoice, refunded_cents: i64) -> InvoiceItem {
    InvoiceItem {
        tenant: tenant.to_owned(),
        name: i.name.to_string(),
        status: i.status.as_str().to_owned(),
        period_start: i.period_start.to_string(),
        period_end: i.period_end.to_string(),
        plan: i.plan.clone(),
        currency: i.currency.clone(),
        total_cents: i.totals.total,
        total: format_minor(i.totals.total, &i.currency),
        refunded_cents,
        refunded: format_minor(refunded_cents, &i.currency),
        issued: i.issued_at.map(|t| t.to_string()),
    }
}

/// What each of a tenant's invoices has been refunded, in cents (invoices
/// without a SUCCEEDED credit note are absent): one read of its credit notes.
async fn refunded_by_invoice(
    store: &dyn Store,
    tenant_id: &TenantId,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut out = BTreeMap::new();
    for n in store.credit_notes(tenant_id).await? {
        if n.state == RefundState::Succeeded {
            let sum: &mut i64 = out.entry(n.invoice.into_string()).or_default();
            *sum = sum.saturating_add(n.amount_cents);
        }
    }
    Ok(out)
}

/// What one invoice has been refunded, in cents.
async fn refunded_of(store: &dyn Store, tenant_id: &TenantId, name: &InvoiceName) -> Result<i64, ApiError> {
    Ok(refunded_cents(&store.invoice_refunds(tenant_id, name).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceList {
    pub items: Vec<InvoiceItem>,
}

fn status_filter(query: &QueryParams) -> Result<Option<InvoiceStatus>, ApiError> {
    match query.get("status").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => InvoiceStatus::parse(&s.to_ascii_uppercase())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "status: unknown status {s:?}; use PENDING, ISSUED, PAID, OVERDUE, REFUNDED or CANCELLED"
                ))
            }),
    }
}

/// Invoices, oldest first: one tenant's (pending ones included), or the
/// finalized invoices of every tenant.
#[utoipa::path(
    get,
    path = "/api/operator/invoices",
    operation_id = "tollgate.operator.ListInvoices",
    tag = "operator",
    params(
        ("tenant" = Option<String>, Query, description = "Tenant name; every tenant's finalized invoices when absent"),
        ("status" = Option<String>, Query, description = "e.g. OVERDUE"),
    ),
    responses(
        (status = 200, body = InvoiceList),
        (status = 400, body = ErrorBody, description = "An unknown `status`."),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn list_invoices(
    State(state): State<AppState>,
    _: Operator,
    query: QueryParams,
) -> Result<Json<InvoiceList>, ApiError> {
    let status = status_filter(&query)?;
    let keep = |i: &Invoice| status.is_none_or(|s| i.status == s);
    let mut items = Vec::new();
    match query.get("tenant").filter(|t| !t.is_empty()) {
        Some(name) => {
            let t = tenancy::tenant(state.store(), name).await?;
            let versions = state.catalogs().versions();
            let refunded = refunded_by_invoice(state.store(), &t.id).await?;
            for i in invoices::tenant_invoices(state.store(), &versions, &t.id, state.now()).await? {
                if keep(&i) {
                    let cents = refunded.get(i.name.as_str()).copied().unwrap_or(0);
                    items.push(invoice_item(t.name.as_str(), &i, cents));
                }
            }
        }
        None => {
            for t in state.store().tenants().await? {
                let refunded = refunded_by_invoice(state.store(), &t.id).await?;
                for stored in state.store().invoices(&t.id).await? {
                    if keep(&stored.invoice) {
                        let cents = refunded.get(stored.invoice.name.as_str()).copied().unwrap_or(0);
                        items.push(invoice_item(t.name.as_str(), &stored.invoice, cents));
                    }
                }
            }
        }
    }
    Ok(Json(InvoiceList { items }))
}

/// One line of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineItem {
    /// fee, usage, adjustment, addon (an add-on's price), meter_fee (a
    /// meter's flat amount) or minimum (the true-up to the plan's minimum
    /// commitment).
    pub kind: String,
    pub description: String,
    /// Exact decimal.
    pub quantity: String,
    pub unit: String,
    /// Exact decimal, in cents.
    pub unit_price_cents: String,
    /// Free units deducted before pricing; exact decimal.
    pub free_quantity: String,
    pub amount_cents: i64,
    /// The steps of a tiered or package price (`unit_price_cents` is 0 then).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pricing: Option<PricingItem>,
}

/// A coupon as it discounted the invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountItem {
    pub title: String,
    pub terms: String,
}

/// One charge attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeItem {
    pub attempt: u32,
    pub at: String,
    /// PRIMARY or SECONDARY; absent when the tenant had no payment method.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role: Option<String>,
    /// How the payment method is shown, e.g. "test card ending 4242"; absent
    /// when the tenant had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub payment_method: Option<String>,
    pub amount_cents: i64,
    /// PENDING, SUCCEEDED, DECLINED, FAILED or REFUNDED.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    /// The payment provider that holds the method (`test`, `stripe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub provider: Option<String>,
    /// The provider's reference of the payment (a Stripe PaymentIntent `pi_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reference: Option<String>,
}

/// A dispute (chargeback) of the payment of an invoice, as the payment
/// provider reported it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeItem {
    pub provider: String,
    /// The provider's id of the dispute (`dp_…`).
    pub id: String,
    /// The disputed payment's reference.
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
    /// The provider's reason, e.g. `fraudulent`.
    pub reason: String,
    pub at: String,
}

fn charge_item(c: ChargeRecord) -> ChargeItem {
    ChargeItem {
        attempt: c.attempt,
        at: c.started_at.to_string(),
        role: c.method.as_ref().map(|m| m.role.as_str().to_owned()),
        provider: c.method.as_ref().map(|m| m.provider.clone()),
        payment_method: c.method.map(|m| m.display),
        amount_cents: c.amount_cents,
        outcome: c.outcome.as_str().to_owned(),
        reason: c.reason,
        reference: c.reference,
    }
}

/// One line of a credit note.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteLineItem {
    pub description: String,
    /// Exact decimal.
    pub quantity: String,
    pub unit: String,
    /// Exact decimal, in cents.
    pub unit_price_cents: String,
    pub amount_cents: i64,
}

/// A credit note: one refund of an invoice, whole or partial.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteItem {
    pub tenant: String,
    /// `cn-YYYY-MM-NNNN`, numbered per tenant.
    pub name: String,
    /// The invoice it credits.
    pub invoice: String,
    /// PENDING (recorded, the provider not answered yet), SUCCEEDED or
    /// FAILED (the provider refused; it counts for nothing).
    pub state: String,
    pub amount_cents: i64,
    /// The amount as people read it, e.g. "6.28".
    pub amount: String,
    pub currency: String,
    /// Why the money was given back.
    pub reason: String,
    pub lines: Vec<CreditNoteLineItem>,
    /// Who asked for the refund, as the audit trail names them.
    pub actor: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub settled_at: Option<String>,
    /// Sent to the payment provider: the same key never refunds twice.
    pub idempotency_key: String,
    /// The payment provider's id of the refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refund_reference: Option<String>,
    /// Why the payment provider refused it (FAILED).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub failure: Option<String>,
}

fn credit_note_item(tenant: &str, n: RefundRecord) -> CreditNoteItem {
    CreditNoteItem {
        tenant: tenant.to_owned(),
        name: n.credit_note,
        invoice: n.invoice.into_string(),
        state: n.state.as_str().to_owned(),
        amount_cents: n.amount_cents,
        amount: format_minor(n.amount_cents, &n.currency),
        currency: n.currency,
        reason: n.reason,
        lines: n
            .lines
            .into_iter()
            .map(|l| CreditNoteLineItem {
                description: l.description,
                quantity: l.quantity.normalize().to_string(),
                unit: l.unit,
                unit_price_cents: l.unit_price_cents.normalize().to_string(),
                amount_cents: l.amount_cents,
            })
            .collect(),
        actor: n.actor,
        created_at: n.started_at.to_string(),
        settled_at: n.settled_at.map(|t| t.to_string()),
        idempotency_key: n.idempotency_key,
        refund_reference: n.refund_reference,
        failure: n.failure,
    }
}

/// One tax of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxItem {
    pub name: String,
    /// Exact decimal.
    pub percent: String,
    pub taxable_cents: i64,
    pub amount_cents: i64,
}

/// Prepaid credits that paid part of an invoice (one per grant).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedCreditItem {
    pub grant: String,
    pub description: String,
    pub amount_cents: i64,
}

/// An invoice with its lines, taxes, charge attempts, disputes and refunds.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceDetail {
    #[serde(flatten)]
    pub invoice: InvoiceItem,
    pub plan_title: String,
    pub lines: Vec<InvoiceLineItem>,
    pub coupons: Vec<DiscountItem>,
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    /// The prepaid credits that paid part of it, applied before tax.
    pub credits_cents: i64,
    pub credits: Vec<AppliedCreditItem>,
    /// The sum of `taxes`; the total is subtotal − discount − credits + tax.
    pub tax_cents: i64,
    /// One per rate, on the total after discounts.
    pub taxes: Vec<TaxItem>,
    /// Why no tax is charged (exempt, reverse charge).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tax_note: Option<String>,
    /// Who issued it (finalized invoices issued since issuers are recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub issuer: Option<String>,
    pub charges: Vec<ChargeItem>,
    /// Disputes of its payment the provider reported (empty: none).
    pub disputes: Vec<DisputeItem>,
    /// Its refunds, oldest first.
    pub credit_notes: Vec<CreditNoteItem>,
}

/// One of a tenant's invoices, pending or finalized.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/invoices/{name}",
    operation_id = "tollgate.operator.GetInvoice",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Invoice name")),
    responses(
        (status = 200, body = InvoiceDetail),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no invoice of this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_invoice(
    State(state): State<AppState>,
    _: Operator,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InvoiceDetail>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let versions = state.catalogs().versions();
    let i = invoices::tenant_invoice(
        state.store(),
        &versions,
        &t.id,
        &InvoiceName::new(name.as_str()),
        state.now(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} has no invoice {name:?}")))?;
    let charges = state
        .store()
        .invoice_charges(&t.id, &InvoiceName::new(name.as_str()))
        .await?;
    let disputes = state
        .store()
        .invoice_disputes(&t.id, &InvoiceName::new(name.as_str()))
        .await?;
    let refunds = state
        .store()
        .invoice_refunds(&t.id, &InvoiceName::new(name.as_str()))
        .await?;
    Ok(Json(InvoiceDetail {
        invoice: invoice_item(t.name.as_str(), &i, refunded_cents(&refunds)),
        plan_title: i.plan_title.clone(),
        lines: i
            .lines
            .iter()
            .map(|l| InvoiceLineItem {
                kind: l.kind.as_str().to_owned(),
                description: l.description.clone(),
                quantity: l.quantity.normalize().to_string(),
                unit: l.unit.clone(),
                unit_price_cents: l.unit_price_cents.normalize().to_string(),
                free_quantity: l.free_quantity.normalize().to_string(),
                amount_cents: l.amount_cents,
                pricing: l.pricing.as_ref().map(|p| PricingItem::new(p.model, &p.steps)),
            })
            .collect(),
        coupons: i
            .coupons
            .iter()
            .map(|c| DiscountItem {
                title: c.title.clone(),
                terms: c.terms.clone(),
            })
            .collect(),
        subtotal_cents: i.totals.subtotal,
        discount_cents: i.totals.discount,
        credits_cents: i.totals.credits,
        credits: i
            .credits
            .iter()
            .map(|c| AppliedCreditItem {
                grant: c.grant.clone(),
                description: c.description.clone(),
                amount_cents: c.amount_cents,
            })
            .collect(),
        tax_cents: i.totals.tax,
        taxes: i
            .taxes
            .iter()
            .map(|t| TaxItem {
                name: t.name.clone(),
                percent: t.percent.normalize().to_string(),
                taxable_cents: t.taxable_cents,
                amount_cents: t.amount_cents,
            })
            .collect(),
        tax_note: i.tax_note.clone(),
        issuer: i.issuer.as_ref().map(|s| s.name.clone()),
        charges: charges.into_iter().map(charge_item).collect(),
        disputes: disputes
            .into_iter()
            .map(|d| DisputeItem {
                provider: d.provider,
                id: d.dispute_id,
                reference: d.reference,
                amount_cents: d.amount_cents,
                currency: d.currency,
                reason: d.reason,
                at: d.created_at.to_string(),
            })
            .collect(),
        credit_notes: refunds
            .into_iter()
            .map(|n| credit_note_item(t.name.as_str(), n))
            .collect(),
    }))
}

/// A PDF document (an invoice or a credit note).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePdf {
    /// The PDF, base64 (standard alphabet, padded).
    pub pdf: String,
}

/// One of a tenant's invoices as a PDF (the same bytes the tenant downloads).
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/invoices/{name}/pdf",
    operation_id = "tollgate.operator.GetInvoicePdf",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Invoice name")),
    responses(
        (status = 200, body = InvoicePdf),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no invoice of this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_invoice_pdf(
    State(state): State<AppState>,
    _: Operator,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InvoicePdf>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let versions = state.catalogs().versions();
    let bytes = match invoices::render_pdf(
        state.store(),
        &versions,
        &t,
        &InvoiceName::new(name.as_str()),
        state.now(),
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(invoices::PdfError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::new(ErrorKind::Internal, e.to_string())),
    }
    .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} has no invoice {name:?}")))?;
    Ok(Json(InvoicePdf {
        pdf: STANDARD.encode(bytes),
    }))
}

/// Cancels an unpaid finalized invoice (ISSUED or OVERDUE): it is no longer charged.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/invoices/{name}/cancel",
    operation_id = "tollgate.operator.CancelInvoice",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Invoice name")),
    responses(
        (status = 200, body = InvoiceItem),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no finalized invoice of this name."),
        (status = 409, body = ErrorBody, description = "The invoice is not ISSUED or OVERDUE.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn cancel_invoice(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InvoiceItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let after = invoices::cancel(
        state.store(),
        &t.id,
        &InvoiceName::new(name.as_str()),
        op.actor(),
        state.now(),
    )
    .await?;
    let refunded = refunded_of(state.store(), &t.id, &after.invoice.name).await?;
    state.dispatch_soon();
    Ok(Json(invoice_item(t.name.as_str(), &after.invoice, refunded)))
}

/// A refund just settled.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundItem {
    /// The invoice after it: REFUNDED once refunded in full, else PAID (with
    /// what is refunded so far).
    pub invoice: InvoiceItem,
    /// The refund's credit note.
    pub credit_note: CreditNoteItem,
    /// What this refund gave back, in cents.
    pub amount_cents: i64,
    pub currency: String,
    /// Sent to the payment provider: the same key never refunds twice.
    pub idempotency_key: String,
    /// What remains refundable of the invoice's charge, in cents.
    pub remaining_cents: i64,
    /// The same as people read it.
    pub remaining: String,
    /// Whether this call finished a refund an earlier one recorded but could
    /// not settle (the provider unreachable, a crash) instead of the one asked
    /// for: that one's amount and reason, under its key.
    pub resumed: bool,
}

/// What to refund.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefundRequest {
    /// In the invoice currency's major units as a string, e.g. "12.34" (at
    /// most two decimals, more than zero); absent: everything that remains.
    pub amount: Option<String>,
    /// Why the money is given back (required, at most 500 characters);
    /// printed on the credit note.
    pub reason: Option<String>,
}

/// Refunds all or part of a PAID invoice through the payment provider that
/// took the money, as a new numbered credit note. Recorded before the
/// provider is asked and settled after, under the invoice's lease: never
/// twice, never more than the charge took, refused while a charge holds the
/// invoice; an interrupted refund resumes with the same key (and is what
/// the next call finishes, instead of a new refund). The invoice stays PAID
/// until its refunds add up to its charge, then it is REFUNDED.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/invoices/{name}/refund",
    operation_id = "tollgate.operator.RefundInvoice",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Invoice name")),
    request_body = RefundRequest,
    responses(
        (status = 200, body = RefundItem),
        (status = 400, body = ErrorBody, description = "No `reason` (or one over 500 characters), or an `amount` that is not more than zero, has more decimals than the invoice's currency (none for JPY) or is not a number."),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no finalized invoice of this name."),
        (status = 409, body = ErrorBody, description = "The invoice is not PAID, is refunded in full already, has nothing to refund, the amount is more than what remains (the message says how much remains), the provider refused the refund, or a charge or another refund holds it now."),
        (status = 503, body = ErrorBody, description = "The payment provider cannot be reached; the refund stays recorded and resumes with the same key.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn refund_invoice(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((tenant, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<RefundRequest>,
) -> Result<Json<RefundItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let currency = RefundAsk::currency_of(state.store(), &t.id, &InvoiceName::new(name.as_str())).await?;
    let ask = RefundAsk::parse(
        body.amount.as_deref(),
        body.reason.as_deref().unwrap_or(""),
        &currency,
    )?;
    let ctx = state.job_context();
    let done = tollgate_app::refunds::refund_invoice(
        &ctx,
        &t.id,
        &InvoiceName::new(name.as_str()),
        &ask,
        op.actor(),
        state.now(),
    )
    .await?;
    let remaining = done.remaining_cents();
    state.dispatch_soon();
    Ok(Json(RefundItem {
        invoice: invoice_item(t.name.as_str(), &done.invoice.invoice, done.refunded_cents),
        amount_cents: done.refund.amount_cents,
        currency: done.refund.currency.clone(),
        idempotency_key: done.refund.idempotency_key.clone(),
        remaining_cents: remaining,
        remaining: format_minor(remaining, &done.refund.currency),
        resumed: done.resumed,
        credit_note: credit_note_item(t.name.as_str(), done.refund),
    }))
}

/// Charges an unpaid invoice now (ISSUED, or OVERDUE after every retry
/// failed): one more charge round, primary then secondary, as the charge job
/// runs it; the answer is the invoice after it (PAID, or still unpaid).
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/invoices/{name}/charge",
    operation_id = "tollgate.operator.ChargeInvoice",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Invoice name")),
    responses(
        (status = 200, body = InvoiceItem),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no finalized invoice of this name."),
        (status = 409, body = ErrorBody, description = "The invoice is not ISSUED or OVERDUE, or a charge or refund holds it now.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn charge_invoice(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InvoiceItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let ctx = state.job_context();
    let after = invoices::charge_now(&ctx, &t.id, &InvoiceName::new(name), op.actor(), state.now()).await?;
    let refunded = refunded_of(state.store(), &t.id, &after.invoice.name).await?;
    state.dispatch_soon();
    Ok(Json(invoice_item(t.name.as_str(), &after.invoice, refunded)))
}

/// A tenant's credit notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteList {
    pub items: Vec<CreditNoteItem>,
}

/// A tenant's credit notes (one per refund, whole or partial), newest first.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/credit-notes",
    operation_id = "tollgate.operator.ListCreditNotes",
    tag = "operator",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("invoice" = Option<String>, Query, description = "Only the credit notes of this invoice"),
    ),
    responses(
        (status = 200, body = CreditNoteList),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn list_credit_notes(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
    query: QueryParams,
) -> Result<Json<CreditNoteList>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let invoice = query.get("invoice").map(str::trim).filter(|i| !i.is_empty());
    let items = state
        .store()
        .credit_notes(&t.id)
        .await?
        .into_iter()
        .filter(|n| invoice.is_none_or(|i| n.invoice == i))
        .map(|n| credit_note_item(t.name.as_str(), n))
        .collect();
    Ok(Json(CreditNoteList { items }))
}

/// One of a tenant's credit notes as a PDF (the same bytes the tenant downloads).
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/credit-notes/{name}/pdf",
    operation_id = "tollgate.operator.GetCreditNotePdf",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Credit note name")),
    responses(
        (status = 200, body = InvoicePdf),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no credit note of this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_credit_note_pdf(
    State(state): State<AppState>,
    _: Operator,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InvoicePdf>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let versions = state.catalogs().versions();
    let bytes = match credit_notes::render_pdf(state.store(), &versions, &t, &name).await {
        Ok(bytes) => bytes,
        Err(invoices::PdfError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::new(ErrorKind::Internal, e.to_string())),
    }
    .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} has no credit note {name:?}")))?;
    Ok(Json(InvoicePdf {
        pdf: STANDARD.encode(bytes),
    }))
}

// ---------------------------------------------------------------------- jobs

/// What a job run did.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobRun {
    pub job: String,
    /// How much it did (transitions ended, invoices finalized, charge rounds, tenants suspended, ids pruned).
    pub done: usize,
    /// The same, in words.
    pub summary: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobRuns {
    pub items: Vec<JobRun>,
}

/// Runs a job now, until it has nothing left to do, with the server's clock
/// and settings: `transitions`, `credit-expiry`, `period-close`, `charge`, `suspend`, `prune`,
/// `purge-events`, `alerts`, `webhooks`, or `all`.
/// Jobs hold leases, so running one beside the job loop or another replica
/// does no work twice.
#[utoipa::path(
    post,
    path = "/api/operator/jobs/{job}/run",
    operation_id = "tollgate.operator.RunJob",
    tag = "operator",
    params(("job" = String, Path, description = "transitions, credit-expiry, period-close, charge, suspend, prune, purge-events, alerts, webhooks or all")),
    responses(
        (status = 200, body = JobRuns),
        (status = 404, body = ErrorBody, description = "No job has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn run_job(
    State(state): State<AppState>,
    _: OperatorAdmin,
    Path(job): Path<String>,
) -> Result<Json<JobRuns>, ApiError> {
    let jobs = match job.as_str() {
        "all" => Job::ALL.to_vec(),
        other => vec![Job::parse(other).ok_or_else(|| {
            ApiError::not_found(format!(
                "no job is named {other:?}; use transitions, credit-expiry, period-close, charge, suspend, prune, purge-events, alerts, webhooks or all"
            ))
        })?],
    };
    let ctx = state.job_context();
    let mut items = Vec::new();
    for job in jobs {
        let done = job.run(&ctx).await?;
        items.push(JobRun {
            job: job.as_str().to_owned(),
            done,
            summary: job.summary(done),
        });
    }
    Ok(Json(JobRuns { items }))
}
