//! Usage plans: the offered plans and the tenant's current plan.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;
use tollgate_domain::names::Name;
use tollgate_store::TransitionFilter;

use crate::auth::{Authorized, Caller};
use crate::error::ApiError;
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::billing::{ListUsagePlansRsp, LocalizedPlan, PlanInternal, PlanView};

/// The locales the caller prefers, from `Accept-Language`.
fn accept_language(headers: &HeaderMap) -> Vec<String> {
    headers
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(crate::wire::enums::preferred_locales)
        .unwrap_or_default()
}

/// Whether the tenant has a plan transition in progress.
async fn transition_pending(state: &AppState, auth: &Authorized) -> Result<bool, ApiError> {
    let filter = TransitionFilter {
        tenant_id: Some(auth.tenant_id().clone()),
        state: None,
    };
    Ok(state
        .store()
        .transitions(&filter)
        .await?
        .iter()
        .any(|t| t.state.is_open()))
}

/// The plans offered to customers, in the caller's language (Accept-Language,
/// falling back to en-us).
#[utoipa::path(
    get,
    path = "/api/web/namespaces/system/usage_plans/custom_list",
    operation_id = "ves.io.schema.usage.plan.CustomAPI.ListUsagePlans",
    tag = "usage plans",
    params(("Accept-Language" = Option<String>, Header, description = "e.g. de-DE, fr;q=0.8")),
    responses((status = 200, body = ListUsagePlansRsp)),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<ListUsagePlansRsp>, ApiError> {
    let auth = caller
        .authorize(&state, Operation::ListUsagePlans, &Name::system())
        .await?;
    let (version, latest) = state.catalogs().latest(state.store()).await?;
    // Fees and add-on prices in the tenant's currency, where the latest
    // catalog prices it (a transition to it needs that anyway).
    let currency = state
        .catalogs()
        .version(state.store(), auth.tenant.catalog_version)
        .await?
        .currency_of(auth.tenant.currency.as_deref())
        .to_owned();
    let catalog = state
        .catalogs()
        .versions()
        .in_currency(state.store(), version, &currency)
        .await?
        .unwrap_or(latest);
    let locale = catalog.locale_for(&accept_language(&headers));
    let pending = transition_pending(&state, &auth).await?;
    let plans = catalog
        .plans
        .iter()
        .filter(|p| p.offered)
        .map(|p| {
            PlanInternal::new(PlanView {
                catalog: &catalog,
                plan: p,
                texts: p.texts_in(&locale),
                current: true,
                transition_pending: pending && p.name == auth.tenant.plan,
                subscribed: &[],
            })
        })
        .collect();
    Ok(Json(ListUsagePlansRsp {
        usage_plans: vec![LocalizedPlan { locale, plans }],
    }))
}

/// The tenant's current plan (at the catalog version it subscribed to), with
/// its subscribed add-ons listed as included.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/system/usage_plans/current",
    operation_id = "ves.io.schema.usage.plan.CustomAPI.GetCurrentPlan",
    tag = "usage plans",
    params(("Accept-Language" = Option<String>, Header, description = "e.g. de-DE, fr;q=0.8")),
    responses((status = 200, body = LocalizedPlan)),
    security(("APIToken" = []))
)]
pub async fn current(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<LocalizedPlan>, ApiError> {
    let auth = caller
        .authorize(&state, Operation::GetCurrentPlan, &Name::system())
        .await?;
    let tenant_plan = state.tenant_plan(&auth.tenant).await?;
    let plan = tenant_plan.plan();
    let (locale, texts) = plan.texts_for(&accept_language(&headers));
    let subscribed = state.store().addons(auth.tenant_id()).await?;
    let pending = transition_pending(&state, &auth).await?;
    let view = PlanInternal::new(PlanView {
        catalog: &tenant_plan.catalog,
        plan,
        texts,
        current: true,
        transition_pending: pending,
        subscribed: &subscribed,
    });
    let next = state
        .store()
        .catalog_moves(Some(auth.tenant_id()))
        .await?
        .into_iter()
        .next();
    let mut view = view;
    view.catalog_version = Some(auth.tenant.catalog_version);
    view.next_catalog_version = next.as_ref().map(|m| m.catalog_version);
    view.next_catalog_version_at = next.map(|m| m.effective_at.to_string());
    Ok(Json(LocalizedPlan {
        locale,
        plans: vec![view],
    }))
}
