//! Quota usage: reserving, releasing and reconciling against the effective
//! limits, exactly once per request id.

use jiff::Timestamp;
use tollgate_domain::names::Name;
use tollgate_domain::quota::{self, KeyFamily, QuotaObject, QuotaSpec};
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Store, StoreError, UsageChange, UsageOp, UsageOutcome, UsageState};

use crate::AppError;

/// What a usage change did: the key's state after it, and whether it was
/// the first answer to this request id replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub state: UsageState,
    pub replayed: bool,
}

/// Applies one usage change of `key` for the tenant, whose plan's default
/// quota is `default_quota`. A reservation past the limit changes nothing
/// and is a 429 (`QUOTA_EXCEEDED`, with the limit and usage as metadata);
/// a new one by a suspended tenant is a 403 (`TENANT_SUSPENDED`, naming
/// its unpaid invoices), while a repeat still gets its first answer.
/// Releases and reconciliations go on while suspended: they report what
/// exists.
#[allow(clippy::too_many_arguments)]
pub async fn change_usage(
    store: &dyn Store,
    tenant: &Tenant,
    default_quota: &QuotaSpec,
    family: KeyFamily,
    key: &str,
    op: UsageOp,
    request_id: Option<&tollgate_domain::ids::RequestId>,
    now: Timestamp,
) -> Result<Changed, AppError> {
    let change = UsageChange {
        tenant_id: &tenant.id,
        family,
        key,
        op,
        request_id,
        default_quota,
        now,
        // Known from the tenant's row, which the request read already.
        block_reservations: tenant.suspension.is_some(),
    };
    let outcome = store.change_usage(&change).await;
    record(op, &outcome);
    match outcome? {
        UsageOutcome::Applied(state) => Ok(Changed {
            state,
            replayed: false,
        }),
        UsageOutcome::Replayed(state) => Ok(Changed {
            state,
            replayed: true,
        }),
        UsageOutcome::Blocked => Err(crate::dunning::reservation_refused(store, tenant).await),
        UsageOutcome::Refused(s) => {
            let requested = match op {
                UsageOp::Reserve { amount } => amount,
                _ => 0,
            };
            Err(quota::refusal(family, key, s.limit, s.current, requested).into())
        }
    }
}

/// Counts the change by outcome (`tollgate_quota_reservations_total`).
fn record(op: UsageOp, outcome: &Result<UsageOutcome, StoreError>) {
    use crate::telemetry::UsageChangeOutcome as O;
    let o = match (outcome, op) {
        (Err(_), _) => O::Error,
        (Ok(UsageOutcome::Replayed(_)), _) => O::Replayed,
        (Ok(UsageOutcome::Refused(_)), _) => O::Refused,
        (Ok(UsageOutcome::Blocked), _) => O::Suspended,
        (Ok(UsageOutcome::Applied(_)), UsageOp::Reserve { .. }) => O::Granted,
        (Ok(UsageOutcome::Applied(_)), UsageOp::Release { .. }) => O::Released,
        (Ok(UsageOutcome::Applied(_)), UsageOp::Reconcile { .. }) => O::Reconciled,
    };
    o.record();
}

/// Creates a quota object (validated by the domain when it was built);
/// `AlreadyExists` if the namespace has one of this name. Quota objects
/// live in `system` only.
pub async fn create(
    store: &dyn Store,
    tenant: &Tenant,
    quota: &QuotaObject,
    actor: &str,
) -> Result<(), AppError> {
    system_only(&quota.meta.namespace)?;
    Ok(store.insert_quota(&tenant.id, quota, actor).await?)
}

/// Replaces a quota object's metadata and spec, keeping its identity and
/// creation; `NotFound` if it does not exist.
pub async fn replace(
    store: &dyn Store,
    tenant: &Tenant,
    quota: &QuotaObject,
    actor: &str,
) -> Result<QuotaObject, AppError> {
    system_only(&quota.meta.namespace)?;
    Ok(store.replace_quota(&tenant.id, quota, actor).await?)
}

/// Deletes a quota object (its usage is the tenant's and stays); `NotFound`
/// if it does not exist. Used by the API and by `tollgate quota delete`
/// (e.g. for an object whose API limit locks the tenant out).
pub async fn delete(
    store: &dyn Store,
    tenant: &Tenant,
    namespace: &Name,
    name: &Name,
    actor: &str,
    now: Timestamp,
) -> Result<(), AppError> {
    system_only(namespace)?;
    Ok(store
        .delete_quota(&tenant.id, namespace.as_str(), name.as_str(), actor, now)
        .await?)
}

/// Quota objects live in namespace `system` only (the quota is the tenant's).
fn system_only(namespace: &Name) -> Result<(), tollgate_domain::Error> {
    if namespace.is_system() {
        Ok(())
    } else {
        Err(tollgate_domain::Error::invalid(format!(
            "namespace: quota objects live in namespace \"system\", not {:?}",
            namespace.as_str()
        )))
    }
}
