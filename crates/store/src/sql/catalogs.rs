//! Catalogs: published versions, and the bootstrap of a database
//! ([`CatalogStore`](crate::CatalogStore)). Part of the shared SQL
//! implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::catalog;
use tollgate_domain::ids::TenantId;
use tollgate_domain::subscription::Subscription;

use tollgate_domain::Reason;

use super::{DbRow, LOCK_TENANT, SYSTEM, SqlStore, Tx, audit_in, micros, timestamp};
use crate::{Actor, CatalogMove, Result, StoreError, StoredCatalog};

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

    async fn schedule_catalog_moves(
        &self,
        moves: &[CatalogMove],
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (moves, actor) = (moves.to_vec(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                for mv in &moves {
                    schedule_move_in(tx, mv, &actor, now).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn cancel_catalog_move(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        let (tenant_id, actor) = (tenant_id.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let gone = sqlx::query(concat!(
                    "DELETE FROM catalog_moves WHERE tenant_id = $1 RETURNING ",
                    move_columns!()
                ))
                .bind(tenant_id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = gone else { return Ok(false) };
                let mv = move_from(&row)?;
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &actor,
                    AuditAction::CatalogMoveCancel,
                    &format!("subscription/{}", mv.subscription_id),
                    Some(move_json(&mv)),
                    None,
                    now,
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn catalog_moves(&self, tenant_id: Option<&TenantId>) -> Result<Vec<CatalogMove>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            move_columns!(),
            " FROM catalog_moves WHERE $1 IS NULL OR tenant_id = $1 ORDER BY effective_at, tenant_id"
        ))
        .bind(tenant_id.map(TenantId::as_str))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(move_from).collect()
    }

    async fn due_catalog_moves(&self, now: Timestamp, limit: i64) -> Result<Vec<CatalogMove>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            move_columns!(),
            " FROM catalog_moves WHERE effective_at <= $1 ORDER BY effective_at, tenant_id LIMIT $2"
        ))
        .bind(micros(now))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(move_from).collect()
    }

    async fn apply_catalog_move(
        &self,
        mv: &CatalogMove,
        subscription: &Subscription,
        now: Timestamp,
    ) -> Result<bool> {
        let (mv, sub) = (mv.clone(), subscription.clone());
        self.write(move |tx| Box::pin(async move { apply_move_in(tx, &mv, &sub, now).await }))
            .await
    }
}

macro_rules! move_columns {
    () => {
        "tenant_id, subscription_id, from_version, catalog_version, effective_at, created_by, created_at"
    };
}
use move_columns;

fn move_from(row: &DbRow) -> Result<CatalogMove> {
    Ok(CatalogMove {
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        subscription_id: row.try_get("subscription_id")?,
        from_version: row.try_get("from_version")?,
        catalog_version: row.try_get("catalog_version")?,
        effective_at: timestamp("catalog_moves.effective_at", row.try_get("effective_at")?)?,
        created_by: row.try_get("created_by")?,
        created_at: timestamp("catalog_moves.created_at", row.try_get("created_at")?)?,
    })
}

fn move_json(mv: &CatalogMove) -> serde_json::Value {
    serde_json::json!({
        "from_version": mv.from_version,
        "catalog_version": mv.catalog_version,
        "effective_at": mv.effective_at.to_string(),
    })
}

/// The tenant's current subscription id, under the tenant's lock.
async fn current_subscription_in(tx: &mut Tx, tenant_id: &TenantId) -> Result<Option<String>> {
    sqlx::query(LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    Ok(
        sqlx::query_scalar("SELECT id FROM subscriptions WHERE tenant_id = $1 AND end_at IS NULL")
            .bind(tenant_id.as_str())
            .fetch_optional(&mut **tx)
            .await?,
    )
}

async fn schedule_move_in(tx: &mut Tx, mv: &CatalogMove, actor: &str, now: Timestamp) -> Result<()> {
    if current_subscription_in(tx, &mv.tenant_id).await?.as_deref() != Some(mv.subscription_id.as_str()) {
        return Err(StoreError::Conflict(
            Reason::PlanChanged,
            "the tenant's subscription changed while its move was being scheduled; try again".into(),
        ));
    }
    let before = sqlx::query(concat!(
        "DELETE FROM catalog_moves WHERE tenant_id = $1 RETURNING ",
        move_columns!()
    ))
    .bind(mv.tenant_id.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| move_from(&row))
    .transpose()?;
    sqlx::query(
        "INSERT INTO catalog_moves (tenant_id, subscription_id, from_version, catalog_version, effective_at, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(mv.tenant_id.as_str())
    .bind(&mv.subscription_id)
    .bind(mv.from_version)
    .bind(mv.catalog_version)
    .bind(micros(mv.effective_at))
    .bind(actor)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?;
    audit_in(
        tx,
        Some(&mv.tenant_id),
        actor,
        AuditAction::CatalogMoveSchedule,
        &format!("subscription/{}", mv.subscription_id),
        before.as_ref().map(move_json),
        Some(move_json(mv)),
        now,
    )
    .await
}

async fn apply_move_in(tx: &mut Tx, mv: &CatalogMove, sub: &Subscription, now: Timestamp) -> Result<bool> {
    let current = current_subscription_in(tx, &mv.tenant_id).await?;
    let held = sqlx::query(
        "DELETE FROM catalog_moves WHERE tenant_id = $1 AND subscription_id = $2 AND catalog_version = $3 \
         AND effective_at = $4",
    )
    .bind(mv.tenant_id.as_str())
    .bind(&mv.subscription_id)
    .bind(mv.catalog_version)
    .bind(micros(mv.effective_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if held == 0 || current.as_deref() != Some(mv.subscription_id.as_str()) {
        // Cancelled, replaced, or the tenant moved plans since: nothing to do
        // (and a move for an old subscription is gone with the DELETE).
        return Ok(false);
    }
    sqlx::query("UPDATE subscriptions SET end_at = $2 WHERE id = $1 AND end_at IS NULL")
        .bind(&mv.subscription_id)
        .bind(micros(mv.effective_at))
        .execute(&mut **tx)
        .await?;
    super::invoicing::lower_billing_due_in(tx, &mv.tenant_id, mv.effective_at).await?;
    super::billing::insert_subscription(tx, sub).await?;
    sqlx::query("UPDATE tenants SET catalog_version = $2 WHERE id = $1")
        .bind(mv.tenant_id.as_str())
        .bind(mv.catalog_version)
        .execute(&mut **tx)
        .await?;
    audit_in(
        tx,
        Some(&mv.tenant_id),
        SYSTEM,
        AuditAction::CatalogMoveApply,
        &format!("subscription/{}", sub.id),
        Some(serde_json::json!({"subscription": mv.subscription_id, "catalog_version": mv.from_version})),
        Some(serde_json::json!({"subscription": sub.id, "catalog_version": sub.catalog_version, "plan": sub.plan})),
        now,
    )
    .await?;
    Ok(true)
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

/// Drops the tenant's pending catalog move for `subscription_id` (which is
/// ending), audited as a cancel by the system.
pub(super) async fn drop_catalog_move_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    subscription_id: &str,
    now: Timestamp,
) -> Result<()> {
    let gone = sqlx::query(concat!(
        "DELETE FROM catalog_moves WHERE tenant_id = $1 AND subscription_id = $2 RETURNING ",
        move_columns!()
    ))
    .bind(tenant_id.as_str())
    .bind(subscription_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = gone {
        let mv = move_from(&row)?;
        audit_in(
            tx,
            Some(tenant_id),
            SYSTEM,
            AuditAction::CatalogMoveCancel,
            &format!("subscription/{}", mv.subscription_id),
            Some(move_json(&mv)),
            Some(serde_json::json!({"reason": "the tenant changed plan"})),
            now,
        )
        .await?;
    }
    Ok(())
}
