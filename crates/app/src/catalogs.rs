//! Published catalog versions, parsed once and shared. Versions are
//! immutable, so a parsed version is cached forever.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tollgate_domain::catalog::{self, Catalog, Issuer};
use tollgate_store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct Versions {
    parsed: RwLock<HashMap<i64, Arc<Catalog>>>,
}

impl Versions {
    /// Catalog `version`, parsed.
    pub async fn get(&self, store: &dyn Store, version: i64) -> Result<Arc<Catalog>, StoreError> {
        if let Some(c) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&version)
        {
            return Ok(c.clone());
        }
        let stored = store
            .catalog(Some(version))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("catalog version {version} is missing")))?;
        let parsed = catalog::parse(&format!("catalog v{version}"), &stored.source)
            .map_err(|e| StoreError::Corrupt(format!("stored catalog v{version} does not parse: {e}")))?;
        let parsed = Arc::new(parsed);
        self.parsed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(version, parsed.clone());
        Ok(parsed)
    }

    /// The latest catalog, parsed.
    /// (The version is read first, then that version: a publish in between
    /// cannot pair one version's number with another's plans.)
    pub async fn latest(&self, store: &dyn Store) -> Result<(i64, Arc<Catalog>), StoreError> {
        let version = store
            .latest_catalog_version()
            .await?
            .ok_or_else(|| StoreError::Corrupt("no catalog is published".into()))?;
        Ok((version, self.get(store, version).await?))
    }

    /// Who issues invoices now: the latest catalog's issuer.
    pub async fn issuer(&self, store: &dyn Store) -> Result<Issuer, StoreError> {
        Ok(self
            .latest(store)
            .await?
            .1
            .issuer
            .clone()
            .unwrap_or_else(Issuer::unnamed))
    }
}

/// Publishes a catalog as the next version, after every rule a new catalog
/// must meet (`catalog::parse_for_publish`; errors name the line and field).
/// It takes effect at once on every replica.
pub async fn publish(
    store: &dyn Store,
    source_name: &str,
    source: &str,
    actor: &str,
    now: jiff::Timestamp,
) -> Result<i64, crate::AppError> {
    catalog::parse_for_publish(source_name, source).map_err(tollgate_domain::Error::from)?;
    Ok(store.publish_catalog(source, source_name, actor, now).await?)
}

/// Gives every tenant without a plan (created by a Tollgate from before
/// plans) a first subscription to the latest catalog's default plan,
/// starting when the tenant was created. Every entry point runs it after
/// opening the database (the CLI's `open`, hence `serve` too); idempotent.
/// Returns how many tenants it adopted.
pub async fn adopt_planless_tenants(
    store: &dyn Store,
    versions: &Versions,
    now: jiff::Timestamp,
) -> Result<usize, crate::AppError> {
    let planless = store.planless_tenants().await?;
    if planless.is_empty() {
        return Ok(0);
    }
    let (version, catalog) = versions.latest(store).await?;
    let plan = catalog
        .plan(&catalog.default_plan)
        .ok_or_else(|| tollgate_domain::Error::internal("the catalog's default plan is missing"))?;
    let mut adopted = 0;
    for (tenant_id, created_at) in planless {
        let sub = tollgate_domain::subscription::Subscription::new(
            uuid::Uuid::new_v4().to_string(),
            tenant_id,
            plan,
            version,
            created_at,
        );
        if store.adopt_planless_tenant(&sub, now).await? {
            adopted += 1;
        }
    }
    Ok(adopted)
}
