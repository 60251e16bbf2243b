//! Executes plan transitions in state CREATING.
//!
//! A transition is leased, its payment token registered with the provider
//! (the only external call), then everything it changes is applied in one
//! store transaction. A crash before that commit leaves the tenant untouched
//! and the lease expires; the next worker starts over. The provider call is
//! safe to repeat.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::transition::{AddonChange, PlanTransition};
use tollgate_payments::ProviderError;
use tollgate_store::{Store, StoreError, TransitionOutcome};

use crate::payment_methods::RegisterError;
use crate::{AppError, JobContext};

/// How long a worker may hold a transition before another may take it.
pub const LEASE: SignedDuration = SignedDuration::from_mins(2);

/// Attempts after which a transition that cannot finish ends FAILED.
pub const MAX_ATTEMPTS: u32 = 10;

/// Who the audit trail names for what the worker does (as the store names it).
const WORKER: &str = "tollgate/transition-worker";

/// How long to leave a transition alone after its `attempt`-th attempt could
/// not finish: 1 s, doubling, at most 10 minutes (about 17 minutes in all
/// before [`MAX_ATTEMPTS`] gives up).
pub fn backoff(attempt: u32) -> SignedDuration {
    let secs = 1i64 << attempt.saturating_sub(1).min(12);
    SignedDuration::from_secs(secs.min(600))
}

/// Runs transitions until none is waiting; returns how many ended.
pub async fn run_until_idle(ctx: &JobContext) -> Result<usize, StoreError> {
    let mut done = 0;
    while let Some(ended) = run_once(ctx).await? {
        if ended.is_some() {
            done += 1;
        }
    }
    Ok(done)
}

/// Claims and works on one transition, if one is waiting. `None`: nothing
/// to do; `Some(Some(id))`: it ended (finished or failed); `Some(None)`: it
/// could not finish now and is retried later.
pub async fn run_once(ctx: &JobContext) -> Result<Option<Option<String>>, StoreError> {
    let now = ctx.clock.now();
    let Some(leased) = ctx
        .store
        .claim_transition(&ctx.worker_id, now, now + LEASE)
        .await?
    else {
        return Ok(None);
    };
    let t = &leased.transition;
    let id = t.id.clone();
    if leased.attempt > MAX_ATTEMPTS {
        let reason = format!(
            "gave up after {MAX_ATTEMPTS} attempts; the last one failed with: {}",
            leased
                .last_error
                .as_deref()
                .unwrap_or("the worker stopped before finishing")
        );
        ctx.store
            .fail_transition(&id, &ctx.worker_id, &reason, ctx.clock.now())
            .await?;
        tracing::warn!(transition = %id, %reason, "plan transition failed");
        return Ok(Some(Some(id)));
    }
    let error = match outcome(ctx, t).await {
        Ok(Ok(outcome)) => match ctx.store.complete_transition(&outcome).await {
            Ok(()) => {
                tracing::info!(transition = %id, tenant = %t.tenant_id, to = %t.to_plan, "plan transition finished");
                if outcome.payment_method.is_some() {
                    // A new primary: unpaid invoices are charged with it
                    // (by the charge job, which runs next).
                    crate::dunning::charge_again(&*ctx.store, &t.tenant_id, WORKER, ctx.clock.now()).await;
                }
                return Ok(Some(Some(id)));
            }
            // Cancelled by the operator, or taken over by another worker.
            Err(StoreError::Conflict(_, why)) => {
                tracing::info!(transition = %id, %why, "plan transition no longer ours");
                return Ok(Some(None));
            }
            // The database is down: the lease expires and the next worker retries.
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => e.to_string(),
        },
        Ok(Err(reason)) => {
            ctx.store
                .fail_transition(&id, &ctx.worker_id, &reason, ctx.clock.now())
                .await?;
            tracing::info!(transition = %id, %reason, "plan transition failed");
            return Ok(Some(Some(id)));
        }
        Err(Retry::Provider(e)) => format!("payment provider unavailable: {e}"),
        Err(Retry::Store(e)) if e.is_unavailable() => return Err(e),
        Err(Retry::Store(e)) => e.to_string(),
    };
    let retry_at = ctx.clock.now() + backoff(leased.attempt);
    tracing::warn!(transition = %id, attempt = leased.attempt, %error, %retry_at, "plan transition could not finish; will retry");
    ctx.store
        .retry_transition(&id, &ctx.worker_id, &error, retry_at)
        .await?;
    Ok(Some(None))
}

/// Why a transition could not be worked on now (it is retried later).
enum Retry {
    Store(StoreError),
    Provider(String),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Everything the transition changes, or why it cannot happen.
async fn outcome(ctx: &JobContext, t: &PlanTransition) -> Result<Result<TransitionOutcome, String>, Retry> {
    let catalog = match ctx.catalogs.get(ctx.store.as_ref(), t.catalog_version).await {
        Ok(c) => c,
        // Missing or unreadable: no retry will help.
        Err(StoreError::Corrupt(reason)) => return Ok(Err(reason)),
        Err(e) => return Err(e.into()),
    };
    let Some(plan) = catalog.plan(&t.to_plan) else {
        return Ok(Err(format!(
            "plan {:?} is not in catalog v{}",
            t.to_plan, t.catalog_version
        )));
    };
    let Some(tenant) = ctx.store.tenant(&t.tenant_id).await? else {
        return Ok(Err("the tenant no longer exists".into()));
    };
    let history = ctx.store.subscriptions(&t.tenant_id).await?;
    let p = &t.payload;
    let payment_contact = p
        .payment_address
        .clone()
        .or_else(|| p.billing_address.clone())
        .unwrap_or_default();
    let payment_method = match p.payment_provider_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            let provider = ctx.providers.default_provider().as_ref();
            let registered = match crate::payment_methods::register(
                ctx.store.as_ref(),
                provider,
                &tenant,
                token,
                &payment_contact,
                ctx.clock.now(),
            )
            .await
            {
                Ok(r) => r,
                Err(RegisterError::Provider(refused @ ProviderError::Refused(_))) => {
                    return Ok(Err(refused.to_string()));
                }
                Err(RegisterError::Provider(ProviderError::Unavailable(e))) => {
                    return Err(Retry::Provider(e));
                }
                Err(RegisterError::Store(e)) => return Err(Retry::Store(e)),
            };
            Some(tollgate_payments::new_method(
                provider,
                registered,
                Contact {
                    contact_type: tollgate_domain::contact::ContactType::Payment,
                    ..payment_contact
                },
                PaymentRole::Primary,
                ctx.clock.now(),
            ))
        }
        None => None,
    };
    let now = ctx.clock.now();
    // The request's addresses replace the tenant's contacts; a request
    // without any keeps the ones it has.
    let contacts: Vec<Contact> = [&p.billing_address, &p.payment_address]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let contacts = (!contacts.is_empty()).then_some(contacts);
    let mut subscription = Subscription::new(
        uuid::Uuid::new_v4().to_string(),
        tenant.id.clone(),
        plan,
        t.catalog_version,
        now,
    );
    // A plan's trial is granted once per tenant.
    if history
        .iter()
        .any(|s| s.plan == plan.name && s.trial_end.is_some())
    {
        subscription = subscription.without_trial();
    }
    Ok(Ok(TransitionOutcome {
        transition_id: t.id.clone(),
        lease_owner: ctx.worker_id.clone(),
        tenant_id: tenant.id.clone(),
        now,
        payment_method,
        subscription,
        tenant_type: plan.tenant_type,
        domain: p.domain.clone().filter(|d| !d.is_empty()),
        contacts,
        addons: AddonChange::new(plan, p),
    }))
}

/// The operator approves a transition waiting for approval: it moves to
/// CREATING and the worker executes it.
pub async fn approve(
    store: &dyn Store,
    id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<PlanTransition, AppError> {
    Ok(store.decide_transition(id, true, None, actor, now).await?)
}

/// The operator rejects a transition waiting for approval, with a reason
/// (the operator's, at most 1024 characters, or a default).
pub async fn reject(
    store: &dyn Store,
    id: &str,
    reason: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<PlanTransition, AppError> {
    let reason = tollgate_domain::transition::rejection_reason(reason)?;
    Ok(store
        .decide_transition(id, false, Some(&reason), actor, now)
        .await?)
}

/// The operator cancels an open transition, whoever holds it: it fails with
/// the reason (the operator's, bounded like a rejection's, or a default
/// that says who did it) and nothing of it is applied.
pub async fn cancel(
    store: &dyn Store,
    id: &str,
    reason: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<PlanTransition, AppError> {
    let reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => "cancelled by the operator".to_owned(),
        Some(r) => tollgate_domain::transition::rejection_reason(Some(r))?,
    };
    Ok(store.cancel_transition(id, &reason, actor, now).await?)
}
