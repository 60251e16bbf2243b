//! Enforcement of `api_limits` on Tollgate's own operations: one token bucket
//! per tenant and operation, in this process.
//!
//! Limits come from the tenant's effective quota and are cached for
//! [`LIMITS_TTL`]; a quota write in this process drops the cache at once,
//! other replicas pick it up within the TTL. Several replicas each enforce
//! the limit on their own share of traffic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use tollgate_domain::ids::TenantId;

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::quota::IgnoredLimit;
use tollgate_domain::rate_limit::{Bucket, RateLimit};
use tollgate_domain::tenant::Tenant;
use tollgate_domain::{ErrorKind, Reason};

use crate::error::ApiError;
use crate::operations::Operation;
use crate::state::AppState;

/// How long a tenant's limits are reused before being read again.
pub const LIMITS_TTL: SignedDuration = SignedDuration::from_secs(5);

#[derive(Default)]
pub struct ApiRateLimiter {
    tenants: RwLock<HashMap<TenantId, Arc<Mutex<TenantBuckets>>>>,
}

#[derive(Default)]
struct TenantBuckets {
    limits: Option<(Timestamp, Arc<BTreeMap<String, RateLimit>>)>,
    buckets: HashMap<&'static str, Bucket>,
    /// The invalid limits last logged, so that each is logged once per
    /// process rather than at every reload.
    ignored: Vec<IgnoredLimit>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ApiRateLimiter {
    fn entry(&self, tenant_id: &TenantId) -> Arc<Mutex<TenantBuckets>> {
        if let Some(e) = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
        {
            return e.clone();
        }
        let mut map = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        map.entry(tenant_id.clone()).or_default().clone()
    }

    /// Takes a token for `op`, or refuses with 429 and `Retry-After`.
    pub async fn check(&self, state: &AppState, tenant: &Tenant, op: Operation) -> Result<(), ApiError> {
        let entry = self.entry(&tenant.id);
        let now = state.now();
        let cached = lock(&entry)
            .limits
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < LIMITS_TTL && *at <= now)
            .map(|(_, l)| l.clone());
        let limits = match cached {
            Some(l) => l,
            None => {
                let quota = state.effective_quota(tenant).await?;
                let fresh = Arc::new(quota.apis.clone());
                let mut guard = lock(&entry);
                guard.limits = Some((now, fresh.clone()));
                if guard.ignored != quota.ignored_api_limits {
                    // Stored before limits were validated; enforcing one
                    // could lock the tenant out for good.
                    for i in &quota.ignored_api_limits {
                        tracing::warn!(
                            tenant = %tenant.name,
                            quota = %i.source,
                            key = %i.key,
                            reason = %i.reason,
                            "ignoring an invalid api limit stored before limits were validated; \
                             replace or delete it (tollgate quota list / quota delete)"
                        );
                    }
                    guard.ignored = quota.ignored_api_limits.clone();
                }
                fresh
            }
        };
        let Some(limit) = limits.get(op.id()) else {
            return Ok(());
        };
        let mut guard = lock(&entry);
        let bucket = guard
            .buckets
            .entry(op.id())
            .or_insert_with(|| Bucket::full(limit, now));
        bucket.try_take(limit, now).map_err(|throttled| {
            let mut e = ApiError::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "rate limit exceeded for {}: {} per {} with burst {}",
                    op.id(),
                    limit.rate,
                    limit.unit.as_str().to_ascii_lowercase(),
                    limit.burst
                ),
            );
            // Never longer than the limit's unit: a token always comes back
            // within one.
            let retry_after = throttled
                .retry_after_ms
                .div_ceil(1000)
                .clamp(1, limit.unit.seconds());
            e.retry_after = Some(retry_after);
            e.with_reason(Reason::RateLimited)
                .with_metadata("operation", op.id())
                .with_metadata("retry_after", retry_after.to_string())
        })
    }

    /// Forgets a tenant's cached limits (after its quota objects changed).
    pub fn invalidate(&self, tenant_id: &TenantId) {
        if let Some(e) = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
        {
            lock(e).limits = None;
        }
    }
}
