//! What every handler shares.

use std::sync::Arc;

use tollgate_domain::clock::Clock;
use tollgate_domain::quota::EffectiveQuota;
use tollgate_domain::tenant::Tenant;
use tollgate_store::Store;

use crate::catalogs::{Catalogs, TenantPlan};
use crate::error::ApiError;
use crate::rate_limit::ApiRateLimiter;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limiter: ApiRateLimiter,
    catalogs: Catalogs,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(Inner {
            store,
            clock,
            limiter: ApiRateLimiter::default(),
            catalogs: Catalogs::default(),
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

    pub fn catalogs(&self) -> &Catalogs {
        &self.0.catalogs
    }

    /// The plan a tenant is on.
    pub async fn tenant_plan(&self, tenant: &Tenant) -> Result<TenantPlan, ApiError> {
        self.catalogs().tenant_plan(self.store(), tenant).await
    }

    /// The limits in force for a tenant: its plan's default quota overlaid by
    /// its quota objects.
    pub async fn effective_quota(&self, tenant: &Tenant) -> Result<EffectiveQuota, ApiError> {
        let plan = self.tenant_plan(tenant).await?;
        let objects = self.store().quotas(&tenant.id, "system").await?;
        Ok(EffectiveQuota::compute(&plan.plan().default_quota, &objects))
    }
}
