//! A tenant's plan: requesting a plan transition, subscribing to and
//! unsubscribing from add-ons. The API translates to and from these.

use jiff::Timestamp;
use tollgate_domain::catalog::Plan;
use tollgate_domain::tenant::Tenant;
use tollgate_domain::transition::{self, PlanTransition, TransitionPayload, TransitionState};
use tollgate_domain::{Error, ErrorKind, Reason};
use tollgate_store::Store;

use tollgate_payments::Providers;

use crate::AppError;
use crate::catalogs::Versions;

/// Requests a move to `new_plan` of the latest catalog. The target's flow
/// decides what the payload must carry (every missing field named in one
/// 400) and whether an operator must approve; a tenant has at most one open
/// transition (409 otherwise). The worker executes it.
#[allow(clippy::too_many_arguments)]
pub async fn request_transition(
    store: &dyn Store,
    catalogs: &Versions,
    providers: &Providers,
    tenant: &Tenant,
    new_plan: &str,
    payload: TransitionPayload,
    actor: &str,
    now: Timestamp,
) -> Result<PlanTransition, AppError> {
    if new_plan.is_empty() {
        return Err(Error::invalid("new_plan: is required").into());
    }
    let (version, catalog) = catalogs.latest(store).await?;
    let target = transition::validate_request(&catalog, &tenant.plan, new_plan, &payload)?;
    let currency = catalogs
        .get(store, tenant.catalog_version)
        .await?
        .currency_of(tenant.currency.as_deref())
        .to_owned();
    if !catalog.prices_in(&currency) {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "new_plan: the latest catalog (version {version}) prices in {}, not in {currency}, \
                 the tenant's currency",
                catalog.currencies.join(", ")
            ),
        )
        .with_reason(Reason::CurrencyNotPriced)
        .into());
    }
    if let Some(token) = payload
        .payment_provider_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        // A token the provider does not know is refused now, not when the
        // transition runs; one it knows is registered then.
        providers
            .default_provider()
            .check(token)
            .await
            .map_err(|e| crate::payment_methods::provider_error("payload.payment_provider_token", e))?;
    }
    let requires_manual_approval = target.transition.requires_manual_approval;
    let t = PlanTransition {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        from_plan: tenant.plan.to_string(),
        to_plan: new_plan.to_owned(),
        catalog_version: version,
        state: TransitionState::initial(requires_manual_approval),
        payload,
        requested_by: actor.to_owned(),
        created_at: now,
        updated_at: now,
        reason: None,
    };
    store.create_transition(&t, actor).await?;
    Ok(t)
}

/// Subscribes to (or unsubscribes from) an add-on of the tenant's `plan`:
/// an included add-on is always on (subscribing is a no-op, unsubscribing a
/// 409), one the plan does not allow cannot be subscribed (403), repeats
/// are harmless. The change applies only if the tenant is still on `plan`.
pub async fn change_addon(
    store: &dyn Store,
    tenant: &Tenant,
    plan: &Plan,
    addon: &str,
    subscribe: bool,
    actor: &str,
    now: Timestamp,
) -> Result<(), AppError> {
    if plan.included_addons.iter().any(|a| a == addon) {
        if !subscribe {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "{addon}: included in plan {:?}; it cannot be unsubscribed",
                    plan.name
                ),
            )
            .with_reason(Reason::AddonIncluded)
            .into());
        }
        return Ok(());
    }
    if subscribe && !plan.allowed_addons.iter().any(|a| a == addon) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{addon}: not available on plan {:?}; change plan to use it",
                plan.name
            ),
        )
        .with_reason(Reason::AddonNotAvailable)
        .into());
    }
    store
        .set_addon(&tenant.id, &tenant.plan, addon, subscribe, actor, now)
        .await?;
    Ok(())
}
