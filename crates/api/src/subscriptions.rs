//! Subscriptions and add-ons.

use axum::Json;
use axum::extract::State;
use tollgate_domain::names::Name;
use tollgate_domain::subscription::Period;

use crate::auth::{Caller, namespace};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::extract::{JsonBody, QueryParams};
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::billing::{AddonRequest, ListSubscriptionsRsp, PeriodType, SubscriptionType};
use crate::wire::quota::Empty;
use tollgate_app::invoices::Book;

/// A stable uid for a billing period: derived from its subscription and index.
fn period_uid(subscription_id: &str, index: u32) -> String {
    let base = uuid::Uuid::parse_str(subscription_id).unwrap_or(uuid::Uuid::NAMESPACE_OID);
    uuid::Uuid::new_v5(&base, &index.to_be_bytes()).to_string()
}

fn period(subscription_id: &str, p: &Period, book: &Book<'_>) -> PeriodType {
    let invoice = book.invoice_of(subscription_id, p.index);
    let names = |finalized: bool| -> Vec<String> {
        invoice
            .filter(|(_, closed)| *closed == finalized)
            .map(|(name, _)| name.to_owned())
            .into_iter()
            .collect()
    };
    PeriodType {
        uid: period_uid(subscription_id, p.index),
        start_date: p.start.to_string(),
        end_date: p.end.to_string(),
        internal_start_date: p.start.to_string(),
        internal_end_date: p.actual_end.to_string(),
        trial: p.trial,
        invoices: invoice.map(|(name, _)| name.to_owned()).into_iter().collect(),
        pending_invoice: names(false),
        closed_invoice: names(true),
    }
}

/// The tenant's subscriptions, newest first; `current=true` keeps only the one
/// in force. The last (current) billing period is summarized, earlier ones listed.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/subscriptions/custom_list",
    operation_id = "ves.io.schema.usage.subscription.CustomAPI.ListSubscriptions",
    tag = "subscriptions",
    params(
        ("namespace" = String, Path, description = "Namespace (subscriptions are per tenant)"),
        ("current" = Option<bool>, Query, description = "Only the subscription in force"),
    ),
    responses(
        (status = 200, body = ListSubscriptionsRsp),
        (status = 400, body = ErrorBody, description = "`current` is not true or false.")
    ),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<ListSubscriptionsRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller
        .authorize(&state, Operation::ListSubscriptions, &ns)
        .await?;
    let only_current = query.bool("current")?.unwrap_or(false);
    Ok(Json(
        subscriptions_of(&state, auth.tenant_id(), only_current).await?,
    ))
}

/// The tenant's subscriptions as the list answers them.
pub(crate) async fn subscriptions_of(
    state: &AppState,
    tenant_id: &tollgate_domain::ids::TenantId,
    only_current: bool,
) -> Result<ListSubscriptionsRsp, tollgate_store::StoreError> {
    let now = state.now();
    let versions = state.catalogs().versions();
    let book = Book::open(state.store(), &versions, tenant_id, now).await?;
    let mut out = Vec::new();
    for sub in &book.subscriptions {
        if only_current && !sub.is_current() {
            continue;
        }
        let catalog = versions.get(state.store(), sub.catalog_version).await?;
        let title = catalog
            .plan(&sub.plan)
            .map_or_else(|| sub.plan.clone(), |p| p.title.clone());
        let periods = sub.periods_until(now);
        let (last, previous) = match periods.split_last() {
            Some((last, previous)) => (*last, previous),
            None => (sub.period(0), &[][..]),
        };
        out.push(SubscriptionType {
            name: sub.id.clone(),
            plan_name: title,
            plan_object_name: sub.plan.clone(),
            start_date: sub.start.to_string(),
            current: sub.is_current(),
            cancelled: !sub.is_current(),
            cancellation_date: sub.end.map(|e| e.to_string()),
            last_billing_period_start_date: last.start.to_string(),
            last_billing_period_end_date: last.actual_end.to_string(),
            previous_billing_periods: previous.iter().map(|p| period(&sub.id, p, &book)).collect(),
        });
    }
    Ok(ListSubscriptionsRsp { subscriptions: out })
}

/// Subscribes the tenant to an add-on its plan allows; repeating is harmless.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/system/addon/subscribe",
    operation_id = "ves.io.schema.subscription.CustomAPI.Subscribe",
    tag = "subscriptions",
    request_body = AddonRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "Not exactly one of the add-on fields (`addon_choice`), or one that is not an \
                           object."),
        (status = 403, body = ErrorBody, description = "The tenant's plan does not offer this add-on."),
        (status = 409, body = ErrorBody,
            description = "The tenant's plan changed while the add-on was being changed; retry.")
    ),
    security(("APIToken" = []))
)]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<AddonRequest>,
) -> Result<Json<Empty>, ApiError> {
    change_addon(state, caller, body, true).await
}

/// Unsubscribes the tenant from an add-on; add-ons included in the plan
/// cannot be removed. Repeating is harmless.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/system/addon/unsubscribe",
    operation_id = "ves.io.schema.subscription.CustomAPI.Unsubscribe",
    tag = "subscriptions",
    request_body = AddonRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "Not exactly one of the add-on fields (`addon_choice`), or one that is not an \
                           object."),
        (status = 409, body = ErrorBody,
            description = "The add-on is included in the tenant's plan, or the plan changed while the add-on \
                           was being changed.")
    ),
    security(("APIToken" = []))
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<AddonRequest>,
) -> Result<Json<Empty>, ApiError> {
    change_addon(state, caller, body, false).await
}

async fn change_addon(
    state: AppState,
    caller: Caller,
    body: AddonRequest,
    subscribe: bool,
) -> Result<Json<Empty>, ApiError> {
    let op = if subscribe {
        Operation::AddonSubscribe
    } else {
        Operation::AddonUnsubscribe
    };
    let auth = caller.authorize(&state, op, &Name::system()).await?;
    let addon = body.choice()?;
    let tenant_plan = state.tenant_plan(&auth.tenant).await?;
    tollgate_app::plans::change_addon(
        state.store(),
        &auth.tenant,
        tenant_plan.plan(),
        addon,
        subscribe,
        &auth.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(Empty {}))
}
