//! Catalogs: published versions, and the bootstrap of a database
//! ([`CatalogStore`](crate::CatalogStore)). Part of the shared SQL
//! implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::catalog;
use tollgate_domain::ids::TenantId;
use tollgate_domain::subscription::Subscription;

use super::{DbRow, SYSTEM, SqlStore, Tx, audit_in, micros, timestamp};
use crate::{Actor, Result, StoredCatalog};

#[async_trait::async_trait]
impl crate::CatalogStore for SqlStore {
    async fn bootstrap(&self, now: Timestamp) -> Result<()> {
        bootstrap(self, now).await
    }

    async fn planless_tenants(&self) -> Result<Vec<(TenantId, Timestamp)>> {
        planless_tenants(self).await
    }

    async fn adopt_planless_tenant(&self, sub: &Subscription, now: Timestamp) -> Result<bool> {
        let sub = sub.clone();
        self.write(move |tx| Box::pin(async move { adopt_planless_tenant_in(tx, &sub, now).await }))
            .await
    }

    async fn publish_catalog(
        &self,
        source: &str,
        source_name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<i64> {
        publish_catalog(self, source, source_name, actor, now).await
    }

    async fn catalog(&self, version: Option<i64>) -> Result<Option<StoredCatalog>> {
        catalog(self, version).await
    }

    async fn catalogs(&self) -> Result<Vec<StoredCatalog>> {
        let rows = sqlx::query(
            "SELECT version, source, source_name, published_at, published_by FROM catalogs ORDER BY version",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(catalog_from).collect()
    }

    async fn latest_catalog_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM catalogs")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("v")?)
    }
}

async fn bootstrap(store: &SqlStore, now: Timestamp) -> Result<()> {
    store
        .write(move |tx| Box::pin(async move { bootstrap_in(tx, now).await }))
        .await
}

async fn bootstrap_in(tx: &mut Tx, now: Timestamp) -> Result<()> {
    let published = sqlx::query(
        "INSERT INTO catalogs (version, source, source_name, published_at, published_by) \
         SELECT 1, $1, 'builtin', $2, $3 WHERE NOT EXISTS (SELECT 1 FROM catalogs)",
    )
    .bind(catalog::BUILTIN_TOML)
    .bind(micros(now))
    .bind(SYSTEM)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if published > 0 {
        let after = serde_json::json!({"version": 1, "source_name": "builtin"});
        audit_in(
            tx,
            None,
            SYSTEM,
            AuditAction::CatalogPublish,
            "catalog/1",
            None,
            Some(after),
            now,
        )
        .await?;
    }
    Ok(())
}

async fn planless_tenants(store: &SqlStore) -> Result<Vec<(TenantId, Timestamp)>> {
    let rows = sqlx::query("SELECT id, created_at FROM tenants WHERE plan IS NULL ORDER BY created_at, id")
        .fetch_all(&store.read)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                TenantId::new(row.try_get::<String, _>("id")?),
                timestamp("tenants.created_at", row.try_get("created_at")?)?,
            ))
        })
        .collect()
}

async fn adopt_planless_tenant_in(tx: &mut Tx, sub: &Subscription, now: Timestamp) -> Result<bool> {
    // Claim the tenant first: a concurrent adoption then skips it.
    let claimed =
        sqlx::query("UPDATE tenants SET plan = $2, catalog_version = $3 WHERE id = $1 AND plan IS NULL")
            .bind(sub.tenant_id.as_str())
            .bind(&sub.plan)
            .bind(sub.catalog_version)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if claimed == 0 {
        return Ok(false);
    }
    super::billing::insert_subscription(tx, sub).await?;
    super::invoicing::lower_billing_due_in(tx, &sub.tenant_id, Timestamp::UNIX_EPOCH).await?;
    let after = serde_json::json!({"plan": sub.plan, "catalog_version": sub.catalog_version});
    audit_in(
        tx,
        Some(&sub.tenant_id),
        SYSTEM,
        AuditAction::SubscriptionCreate,
        &format!("subscription/{}", sub.id),
        None,
        Some(after),
        now,
    )
    .await?;
    Ok(true)
}

fn catalog_from(row: &DbRow) -> Result<StoredCatalog> {
    Ok(StoredCatalog {
        version: row.try_get("version")?,
        source: row.try_get("source")?,
        source_name: row.try_get("source_name")?,
        published_at: timestamp("catalogs.published_at", row.try_get("published_at")?)?,
        published_by: row.try_get("published_by")?,
    })
}

async fn publish_catalog(
    store: &SqlStore,
    source: &str,
    source_name: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<i64> {
    let (source, source_name, actor, now) =
        (source.to_owned(), source_name.to_owned(), actor.to_owned(), now);
    store
        .write(move |tx| {
            Box::pin(async move { publish_catalog_in(tx, &source, &source_name, &actor, now).await })
        })
        .await
}

async fn publish_catalog_in(
    tx: &mut Tx,
    source: &str,
    source_name: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<i64> {
    let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM catalogs")
        .fetch_one(&mut **tx)
        .await?
        .try_get("v")?;
    sqlx::query(
        "INSERT INTO catalogs (version, source, source_name, published_at, published_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(version)
    .bind(source)
    .bind(source_name)
    .bind(micros(now))
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    let after = serde_json::json!({"version": version, "source_name": source_name});
    audit_in(
        tx,
        None,
        actor,
        AuditAction::CatalogPublish,
        &format!("catalog/{version}"),
        None,
        Some(after),
        now,
    )
    .await?;
    Ok(version)
}

async fn catalog(store: &SqlStore, version: Option<i64>) -> Result<Option<StoredCatalog>> {
    let row = match version {
        Some(v) => {
            sqlx::query(
                "SELECT version, source, source_name, published_at, published_by FROM catalogs WHERE version = $1",
            )
            .bind(v)
            .fetch_optional(&store.read)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT version, source, source_name, published_at, published_by FROM catalogs \
                 ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(&store.read)
            .await?
        }
    };
    row.as_ref().map(catalog_from).transpose()
}
