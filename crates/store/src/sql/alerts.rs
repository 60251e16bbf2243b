//! Usage alerts ([`AlertStore`](crate::AlertStore)): a tenant's thresholds,
//! marked by ingestion (`mark_ingested_in`, inside the ingestion's
//! transaction) and fired by the alerts job. Part of the shared SQL
//! implementation (compiled per engine).

use std::str::FromStr;

use jiff::Timestamp;
use rust_decimal::Decimal;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::ids::TenantId;
use tollgate_domain::webhook::EventType;

use super::{DbRow, SqlStore, Tx, audit_in, micros, opt_timestamp, timestamp};
use crate::{Actor, AlertTrigger, NewUsageAlert, Result, StoreError, UsageAlert};

macro_rules! alert_columns {
    () => {
        "id, tenant_id, name, metric, namespace, threshold, created_by, created_at, ingested, evaluated, \
         triggered_period, triggered_at, triggered_value"
    };
}

#[async_trait::async_trait]
impl crate::AlertStore for SqlStore {
    async fn create_alert(&self, a: &NewUsageAlert, actor: Actor<'_>, now: Timestamp) -> Result<UsageAlert> {
        let (a, actor) = (a.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_alerts WHERE tenant_id = $1")
                    .bind(a.tenant_id.as_str())
                    .fetch_one(&mut **tx)
                    .await?;
                if count >= i64::from(a.limit) {
                    return Err(StoreError::Conflict(
                        Reason::AlertLimit,
                        format!("the tenant has {count} usage alerts, the most it may have ({}); delete one first", a.limit),
                    ));
                }
                let id = format!("al_{}", uuid::Uuid::new_v4().simple());
                let inserted = sqlx::query(
                    "INSERT INTO usage_alerts (id, tenant_id, name, metric, namespace, threshold, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(a.tenant_id.as_str())
                .bind(&a.name)
                .bind(&a.metric)
                .bind(a.namespace.as_deref())
                .bind(a.threshold.to_string())
                .bind(&actor)
                .bind(micros(now))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(
                        Reason::AlertExists,
                        format!("the tenant already has an alert named {:?}", a.name),
                    ));
                }
                let row = sqlx::query(concat!("SELECT ", alert_columns!(), " FROM usage_alerts WHERE id = $1"))
                    .bind(&id)
                    .fetch_one(&mut **tx)
                    .await?;
                let alert = alert_from(&row)?;
                audit_in(
                    tx,
                    Some(&a.tenant_id),
                    &actor,
                    AuditAction::AlertCreate,
                    &format!("alert/{}", a.name),
                    None,
                    Some(alert_json(&alert)),
                    now,
                )
                .await?;
                Ok(alert)
            })
        })
        .await
    }

    async fn alerts(&self, tenant_id: &TenantId) -> Result<Vec<UsageAlert>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM usage_alerts WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    async fn delete_alert(
        &self,
        tenant_id: &TenantId,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (tenant_id, name, actor) = (tenant_id.clone(), name.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let row = sqlx::query(concat!(
                    "DELETE FROM usage_alerts WHERE tenant_id = $1 AND name = $2 RETURNING ",
                    alert_columns!()
                ))
                .bind(tenant_id.as_str())
                .bind(&name)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound(format!("no alert named {name:?}")));
                };
                let alert = alert_from(&row)?;
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &actor,
                    AuditAction::AlertDelete,
                    &format!("alert/{name}"),
                    Some(alert_json(&alert)),
                    None,
                    now,
                )
                .await
            })
        })
        .await
    }

    async fn tenants_with_pending_alerts(&self, limit: u32) -> Result<Vec<TenantId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT tenant_id FROM usage_alerts WHERE ingested > evaluated ORDER BY tenant_id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(TenantId::new).collect())
    }

    async fn trigger_alert(
        &self,
        tenant_id: &TenantId,
        id: &str,
        period_start: Timestamp,
        value: Decimal,
        data: serde_json::Value,
        now: Timestamp,
    ) -> Result<bool> {
        let (tenant_id, id) = (tenant_id.clone(), id.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let fired = sqlx::query(
                    "UPDATE usage_alerts SET triggered_period = $1, triggered_at = $2, triggered_value = $3 \
                     WHERE tenant_id = $4 AND id = $5 AND (triggered_period IS NULL OR triggered_period <> $1)",
                )
                .bind(micros(period_start))
                .bind(micros(now))
                .bind(value.to_string())
                .bind(tenant_id.as_str())
                .bind(&id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    > 0;
                if fired {
                    let subject = format!("alert/{id}");
                    super::webhooks::emit_in(tx, &tenant_id, EventType::UsageAlertTriggered, &subject, Some(data), now)
                        .await?;
                }
                Ok(fired)
            })
        })
        .await
    }

    async fn alert_evaluated(&self, tenant_id: &TenantId, id: &str, ingested: i64) -> Result<()> {
        let (tenant_id, id) = (tenant_id.clone(), id.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE usage_alerts SET evaluated = $1 WHERE tenant_id = $2 AND id = $3 AND evaluated < $1",
                )
                .bind(ingested)
                .bind(tenant_id.as_str())
                .bind(&id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }
}

/// Marks the tenant's alerts for evaluation: usage was just ingested (in
/// the ingestion's transaction; nothing to do for a tenant without alerts).
pub(super) async fn mark_ingested_in(tx: &mut Tx, tenant_id: &TenantId) -> Result<()> {
    sqlx::query("UPDATE usage_alerts SET ingested = ingested + 1 WHERE tenant_id = $1")
        .bind(tenant_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn decimal(column: &str, text: &str) -> Result<Decimal> {
    Decimal::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn alert_from(r: &DbRow) -> Result<UsageAlert> {
    let period = opt_timestamp("usage_alerts.triggered_period", r.try_get("triggered_period")?)?;
    let at = opt_timestamp("usage_alerts.triggered_at", r.try_get("triggered_at")?)?;
    let value: Option<String> = r.try_get("triggered_value")?;
    let triggered = match (period, at, value) {
        (Some(period_start), Some(at), Some(v)) => Some(AlertTrigger {
            period_start,
            at,
            value: decimal("usage_alerts.triggered_value", &v)?,
        }),
        _ => None,
    };
    Ok(UsageAlert {
        id: r.try_get("id")?,
        tenant_id: TenantId::new(r.try_get::<String, _>("tenant_id")?),
        name: r.try_get("name")?,
        metric: r.try_get("metric")?,
        namespace: r.try_get("namespace")?,
        threshold: decimal("usage_alerts.threshold", &r.try_get::<String, _>("threshold")?)?,
        created_by: r.try_get("created_by")?,
        created_at: timestamp("usage_alerts.created_at", r.try_get("created_at")?)?,
        triggered,
        ingested: r.try_get("ingested")?,
        evaluated: r.try_get("evaluated")?,
    })
}

fn alert_json(a: &UsageAlert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "name": a.name,
        "metric": a.metric,
        "namespace": a.namespace,
        "threshold": a.threshold.to_string(),
    })
}
