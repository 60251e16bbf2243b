//! What every handler shares.

use std::sync::Arc;

use tollgate_domain::clock::Clock;
use tollgate_domain::quota::{EffectiveQuota, QuotaSpec, builtin_default_quota};
use tollgate_store::Store;

use crate::error::ApiError;
use crate::rate_limit::ApiRateLimiter;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limiter: ApiRateLimiter,
    default_quota: QuotaSpec,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(Inner {
            store,
            clock,
            limiter: ApiRateLimiter::default(),
            default_quota: builtin_default_quota(),
        }))
    }

    pub fn store(&self) -> &dyn Store {
        &*self.0.store
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.0.clock
    }

    /// The current time at the precision Tollgate stores (microseconds), so
    /// that what a write returns equals what a later read returns.
    pub fn now(&self) -> jiff::Timestamp {
        let now = self.clock().now();
        jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
    }

    pub fn limiter(&self) -> &ApiRateLimiter {
        &self.0.limiter
    }

    /// The default quota of a tenant (until plans define one, the built-in).
    pub fn default_quota(&self, _tenant_id: &str) -> &QuotaSpec {
        &self.0.default_quota
    }

    /// The limits in force for a tenant.
    pub async fn effective_quota(&self, tenant_id: &str) -> Result<EffectiveQuota, ApiError> {
        let objects = self.store().quotas(tenant_id, "system").await?;
        Ok(EffectiveQuota::compute(self.default_quota(tenant_id), &objects))
    }
}
