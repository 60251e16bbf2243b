//! Dunning: tenants suspended for invoices left unpaid
//! ([`DunningStore`](crate::DunningStore)). The suspension is on the tenant's
//! row (read with every token); it is decided from the invoices'
//! `overdue_at`. Every write here takes the tenant's lock first, and
//! [`lift_in`] takes it too, inside the invoicing transaction that pays or
//! cancels an invoice: so a suspension and the payment of the last invoice it
//! was for cannot cross (whichever commits second sees the other). Part of
//! the shared SQL implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::dunning::Suspension;
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::tenant::Tenant;

use super::invoicing::{invoice_from, schedule_charge_in};
use super::tenancy::tenant_in;
use super::{LOCK_TENANT, SqlStore, Tx, audit_in, micros, opt_timestamp, to_json};
use crate::{Actor, Result, StoreError, StoredInvoice};

/// The columns of an invoice `i`, as `invoice_from` reads them.
macro_rules! invoice_columns {
    () => {
        "i.tenant_id, i.name, i.status, i.document, i.attempts, i.next_charge_at, i.lease_until, i.overdue_at"
    };
}

/// Whether invoice `i` of tenant `n` counts for dunning: unpaid, OVERDUE at
/// some point, and OVERDUE after the tenant's last reinstatement by hand.
macro_rules! counts {
    () => {
        "i.status IN ('ISSUED', 'OVERDUE') AND i.overdue_at IS NOT NULL \
         AND (n.dunning_waived_at IS NULL OR i.overdue_at > n.dunning_waived_at)"
    };
}

/// What the trail and the refusal say of a suspension's state.
fn suspension_json(s: &Suspension) -> serde_json::Value {
    serde_json::json!({
        "suspended_at": s.since.to_string(),
        "suspended_by": s.by,
        "invoices": s.invoices.iter().map(InvoiceName::as_str).collect::<Vec<_>>(),
    })
}

/// Takes the tenant's lock and reads its name and suspension; `NotFound` if
/// there is no such tenant.
async fn locked(tx: &mut Tx, tenant_id: &TenantId) -> Result<(String, Option<Suspension>)> {
    sqlx::query(LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    let tenant = tenant_in(tx, tenant_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    Ok((tenant.name.to_string(), tenant.suspension))
}

/// Clears the suspension columns of the tenant's row.
async fn clear_in(tx: &mut Tx, tenant_id: &TenantId) -> Result<()> {
    sqlx::query(
        "UPDATE tenants SET suspended_at = NULL, suspended_by = NULL, suspended_for = NULL WHERE id = $1",
    )
    .bind(tenant_id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inside the transaction that paid (`why` "paid") or cancelled
/// ("cancelled") `invoice`: lifts the tenant's suspension if no counting
/// invoice is left, audited as `tenant.reinstated` by `actor`.
pub(super) async fn lift_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
    why: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<()> {
    let (name, suspension) = locked(tx, tenant_id).await?;
    let Some(suspension) = suspension else {
        return Ok(());
    };
    let left: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM invoices i JOIN tenants n ON n.id = i.tenant_id WHERE i.tenant_id = $1 AND ",
        counts!()
    ))
    .bind(tenant_id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    if left > 0 {
        return Ok(());
    }
    clear_in(tx, tenant_id).await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::TenantReinstated,
        &format!("tenant/{name}"),
        Some(suspension_json(&suspension)),
        Some(serde_json::json!({"reason": why, "invoice": invoice.as_str()})),
        now,
    )
    .await
}

#[async_trait::async_trait]
impl crate::DunningStore for SqlStore {
    async fn suspension_candidates(
        &self,
        overdue_before: Timestamp,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantId>> {
        let ids: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT DISTINCT n.id FROM invoices i JOIN tenants n ON n.id = i.tenant_id \
             WHERE n.suspended_at IS NULL AND i.overdue_at <= $1 AND ($2 IS NULL OR n.id > $2) AND ",
            counts!(),
            " ORDER BY n.id LIMIT $3"
        ))
        .bind(micros(overdue_before))
        .bind(after.map(TenantId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(TenantId::new).collect())
    }

    async fn suspend_tenant(
        &self,
        tenant_id: &TenantId,
        overdue_before: Timestamp,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Option<Suspension>> {
        let (tenant_id, actor) = (tenant_id.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { suspend_tenant_in(tx, &tenant_id, overdue_before, &actor, now).await })
        })
        .await
    }

    async fn reinstate_tenant(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Tenant> {
        let (tenant_id, actor) = (tenant_id.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { reinstate_tenant_in(tx, &tenant_id, &actor, now).await }))
            .await
    }

    async fn overdue_invoices(&self, tenant_id: &TenantId) -> Result<Vec<StoredInvoice>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            invoice_columns!(),
            " FROM invoices i JOIN tenants n ON n.id = i.tenant_id WHERE i.tenant_id = $1 AND ",
            counts!(),
            " ORDER BY i.period_start, i.name"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(invoice_from).collect()
    }

    async fn schedule_unpaid_charges(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Vec<InvoiceName>> {
        let (tenant_id, actor) = (tenant_id.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { schedule_unpaid_charges_in(tx, &tenant_id, &actor, now).await })
        })
        .await
    }
}

async fn suspend_tenant_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    overdue_before: Timestamp,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<Option<Suspension>> {
    let (name, suspension) = locked(tx, tenant_id).await?;
    if suspension.is_some() {
        return Ok(None);
    }
    let rows = sqlx::query(concat!(
        "SELECT i.name, i.overdue_at, i.total, i.currency FROM invoices i JOIN tenants n ON n.id = i.tenant_id \
         WHERE i.tenant_id = $1 AND i.overdue_at <= $2 AND ",
        counts!(),
        " ORDER BY i.period_start, i.name"
    ))
    .bind(tenant_id.as_str())
    .bind(micros(overdue_before))
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut invoices = Vec::with_capacity(rows.len());
    let mut details = Vec::with_capacity(rows.len());
    for row in &rows {
        let invoice: String = row.try_get("name")?;
        let overdue_at = opt_timestamp("invoices.overdue_at", row.try_get("overdue_at")?)?;
        let total: i64 = row.try_get("total")?;
        let currency: String = row.try_get("currency")?;
        details.push(serde_json::json!({
            "invoice": invoice,
            "total_cents": total,
            "currency": currency,
            "overdue_since": overdue_at.map(|t| t.to_string()),
        }));
        invoices.push(InvoiceName::new(invoice));
    }
    let names: Vec<&str> = invoices.iter().map(InvoiceName::as_str).collect();
    sqlx::query(
        "UPDATE tenants SET suspended_at = $1, suspended_by = $2, suspended_for = $3 \
         WHERE id = $4 AND suspended_at IS NULL",
    )
    .bind(micros(now))
    .bind(actor)
    .bind(to_json(&names)?)
    .bind(tenant_id.as_str())
    .execute(&mut **tx)
    .await?;
    let suspension = Suspension {
        since: now,
        by: actor.to_owned(),
        invoices,
    };
    let mut after = suspension_json(&suspension);
    after["overdue"] = details.into();
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::TenantSuspended,
        &format!("tenant/{name}"),
        None,
        Some(after),
        now,
    )
    .await?;
    Ok(Some(suspension))
}

async fn reinstate_tenant_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<Tenant> {
    let (name, suspension) = locked(tx, tenant_id).await?;
    let Some(suspension) = suspension else {
        return Err(StoreError::Conflict(
            Reason::TenantNotSuspended,
            format!("tenant {name} is not suspended"),
        ));
    };
    clear_in(tx, tenant_id).await?;
    // What is OVERDUE by now is forgiven for dunning (still unpaid, still
    // charged when the tenant changes its payment methods).
    sqlx::query("UPDATE tenants SET dunning_waived_at = $1 WHERE id = $2")
        .bind(micros(now))
        .bind(tenant_id.as_str())
        .execute(&mut **tx)
        .await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::TenantReinstated,
        &format!("tenant/{name}"),
        Some(suspension_json(&suspension)),
        Some(serde_json::json!({"reason": "operator", "waived_overdue_until": now.to_string()})),
        now,
    )
    .await?;
    tenant_in(tx, tenant_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {name} does not exist")))
}

async fn schedule_unpaid_charges_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<Vec<InvoiceName>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM invoices WHERE tenant_id = $1 AND (status = 'OVERDUE' \
         OR (status = 'ISSUED' AND (next_charge_at IS NULL OR next_charge_at > $2))) \
         ORDER BY period_start, name",
    )
    .bind(tenant_id.as_str())
    .bind(micros(now))
    .fetch_all(&mut **tx)
    .await?;
    let mut scheduled = Vec::new();
    for name in names.into_iter().map(InvoiceName::new) {
        match schedule_charge_in(tx, tenant_id, &name, actor, now).await {
            Ok(_) => scheduled.push(name),
            // Held by a charge or a refund, or an attempt is unsettled: the
            // charge job gets to it (or has) anyway.
            Err(StoreError::Conflict(..)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(scheduled)
}
