//! Reading the audit trail, and the secrets replicas share
//! ([`AuditStore`](crate::AuditStore)). The trail is written by every
//! aggregate, inside its own transactions, through `audit_in` in `sql.rs`.
//! Part of the shared SQL implementation (compiled per engine).

use sqlx::Row;
use tollgate_domain::ids::TenantId;

use super::{SqlStore, timestamp};
use crate::{AuditEntry, Result};

#[async_trait::async_trait]
impl crate::AuditStore for SqlStore {
    async fn audit(&self, tenant_id: Option<&TenantId>, limit: u32) -> Result<Vec<AuditEntry>> {
        audit(self, tenant_id, limit).await
    }

    async fn secret(&self, name: &str) -> Result<String> {
        secret(self, name).await
    }
}

async fn audit(store: &SqlStore, tenant_id: Option<&TenantId>, limit: u32) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, at, actor, action, target, before, after FROM audit_log \
         WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY seq DESC LIMIT $2",
    )
    .bind(tenant_id.map(TenantId::as_str))
    .bind(i64::from(limit))
    .fetch_all(&store.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                tenant_id: r.try_get::<Option<String>, _>("tenant_id")?.map(TenantId::new),
                at: timestamp("audit_log.at", r.try_get("at")?)?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                before: r.try_get("before")?,
                after: r.try_get("after")?,
            })
        })
        .collect()
}

async fn secret(store: &SqlStore, name: &str) -> Result<String> {
    if let Some(row) = sqlx::query("SELECT value FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_optional(&store.read)
        .await?
    {
        return Ok(row.try_get("value")?);
    }
    let fresh = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let name = name.to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                let name = name.as_str();
                sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(name)
                    .bind(&fresh)
                    .execute(&mut **tx)
                    .await?;
                let value: String = sqlx::query("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("value")?;
                Ok(value)
            })
        })
        .await
}
