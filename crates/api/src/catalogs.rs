//! Published catalogs, parsed once per version and shared.
//!
//! Versions are immutable, so each is read and parsed once. The number of the
//! latest version is read from the database each time it is needed (plan
//! listings and transition requests, not hot paths), so a catalog published
//! with the CLI or through another replica takes effect at once.

use std::sync::Arc;

use tollgate_app::catalogs::Versions;
use tollgate_domain::catalog::{Catalog, Plan};
use tollgate_domain::tenant::Tenant;
use tollgate_store::Store;

use crate::error::ApiError;

#[derive(Default)]
pub struct Catalogs {
    versions: Arc<Versions>,
}

/// A tenant's plan: the catalog version of its subscription, and the plan in it.
#[derive(Clone)]
pub struct TenantPlan {
    pub catalog: Arc<Catalog>,
    pub version: i64,
    index: usize,
}

impl TenantPlan {
    pub fn plan(&self) -> &Plan {
        &self.catalog.plans[self.index]
    }
}

impl Catalogs {
    /// Catalog `version`, parsed.
    pub async fn version(&self, store: &dyn Store, version: i64) -> Result<Arc<Catalog>, ApiError> {
        Ok(self.versions.get(store, version).await?)
    }

    /// The parsed-version cache, shared with the jobs.
    pub fn versions(&self) -> Arc<Versions> {
        self.versions.clone()
    }

    /// The latest published catalog and its version.
    pub async fn latest(&self, store: &dyn Store) -> Result<(i64, Arc<Catalog>), ApiError> {
        Ok(self.versions.latest(store).await?)
    }

    /// The plan a tenant is on, in the catalog version of its subscription
    /// as it prices the tenant's currency (fees, prices and add-ons in it).
    pub async fn tenant_plan(&self, store: &dyn Store, tenant: &Tenant) -> Result<TenantPlan, ApiError> {
        let catalog = self
            .versions
            .for_tenant(store, tenant.catalog_version, tenant.currency.as_deref())
            .await?;
        let index = catalog
            .plans
            .iter()
            .position(|p| p.name == tenant.plan)
            .ok_or_else(|| {
                internal(format!(
                    "tenant {} is on plan {:?}, which catalog v{} does not have",
                    tenant.name, tenant.plan, tenant.catalog_version
                ))
            })?;
        Ok(TenantPlan {
            catalog,
            version: tenant.catalog_version,
            index,
        })
    }
}

fn internal(detail: String) -> ApiError {
    tracing::error!(%detail, "catalog failure");
    ApiError::new(
        tollgate_domain::ErrorKind::Internal,
        "internal error; the server log has details",
    )
}
