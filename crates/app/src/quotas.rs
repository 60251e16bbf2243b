//! Quota usage: reserving, releasing and reconciling against the effective
//! limits, exactly once per request id.

use jiff::Timestamp;
use tollgate_domain::quota::{self, KeyFamily, QuotaSpec};
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Store, UsageChange, UsageOp, UsageOutcome, UsageState};

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
/// and is a 429 (`QUOTA_EXCEEDED`, with the limit and usage as metadata).
#[allow(clippy::too_many_arguments)]
pub async fn change_usage(
    store: &dyn Store,
    tenant: &Tenant,
    default_quota: &QuotaSpec,
    family: KeyFamily,
    key: &str,
    op: UsageOp,
    request_id: Option<&str>,
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
    };
    match store.change_usage(&change).await? {
        UsageOutcome::Applied(state) => Ok(Changed {
            state,
            replayed: false,
        }),
        UsageOutcome::Replayed(state) => Ok(Changed {
            state,
            replayed: true,
        }),
        UsageOutcome::Refused(s) => {
            let requested = match op {
                UsageOp::Reserve { amount } => amount,
                _ => 0,
            };
            Err(quota::refusal(family, key, s.limit, s.current, requested).into())
        }
    }
}
