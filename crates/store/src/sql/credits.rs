//! Prepaid credits: grants and their append-only ledger
//! ([`CreditStore`](crate::CreditStore)). Part of the shared SQL
//! implementation (compiled per engine).
//!
//! Every ledger entry is written by [`entry_in`], in the transaction of the
//! change it records, after a conditional update of its grant's remaining
//! amount (`remaining + amount >= 0`), under the tenant's lock: a grant's
//! remaining amount is always the sum of its entries and never negative,
//! whatever runs at the same time on however many replicas. The unique
//! index `credit_ledger_once` makes an invoice's application (and its
//! return) happen once per grant.

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::credits::{self, Entry, EntryKind, Grant, NewGrant};
use tollgate_domain::currency::money;
use tollgate_domain::ids::TenantId;
use tollgate_domain::invoice::Invoice;
use tollgate_domain::webhook::EventType;

use super::webhooks::emit_in;
use super::{DbRow, LOCK_TENANT, SqlStore, Tx, audit_in, micros, opt_timestamp, timestamp};
use crate::{Actor, Result, StoreError};

#[async_trait::async_trait]
impl crate::CreditStore for SqlStore {
    async fn grant_credits(
        &self,
        tenant_id: &TenantId,
        grant: &NewGrant,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Grant> {
        let (tenant_id, g, actor) = (tenant_id.clone(), grant.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { grant_in(tx, &tenant_id, &g, &actor, now).await }))
            .await
    }

    async fn credit_grants(&self, tenant_id: &TenantId) -> Result<Vec<Grant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM credit_grants WHERE tenant_id = $1 ORDER BY granted_at, id"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(grant_from).collect()
    }

    async fn open_credit_grants(&self, tenant_id: &TenantId) -> Result<Vec<Grant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM credit_grants WHERE tenant_id = $1 AND remaining_cents > 0 ORDER BY granted_at, id LIMIT $2"
        ))
        .bind(tenant_id.as_str())
        .bind(credits::MAX_OPEN_GRANTS as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(grant_from).collect()
    }

    async fn credit_ledger(
        &self,
        tenant_id: &TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Entry>> {
        let rows = sqlx::query(
            "SELECT l.seq, l.grant_id, g.currency, l.kind, l.amount_cents, l.invoice, l.note, l.actor, l.at \
             FROM credit_ledger l JOIN credit_grants g ON g.id = l.grant_id \
             WHERE l.tenant_id = $1 AND ($2 IS NULL OR l.seq < $2) ORDER BY l.seq DESC LIMIT $3",
        )
        .bind(tenant_id.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(entry_from).collect()
    }

    async fn reverse_credits(
        &self,
        tenant_id: &TenantId,
        grant_id: &str,
        amount_cents: Option<i64>,
        reason: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Grant> {
        let (tenant_id, grant_id, reason, actor) = (
            tenant_id.clone(),
            grant_id.to_owned(),
            reason.to_owned(),
            actor.to_owned(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                reverse_in(tx, &tenant_id, &grant_id, amount_cents, &reason, &actor, now).await
            })
        })
        .await
    }

    async fn period_credits(
        &self,
        tenant_id: &TenantId,
        subscription_id: &str,
        period_index: u32,
    ) -> Result<i64> {
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(l.amount_cents) AS BIGINT) FROM invoices i JOIN credit_ledger l \
             ON l.tenant_id = i.tenant_id AND l.invoice = i.name AND l.kind = 'apply' \
             WHERE i.tenant_id = $1 AND i.subscription_id = $2 AND i.period_index = $3",
        )
        .bind(tenant_id.as_str())
        .bind(subscription_id)
        .bind(i64::from(period_index))
        .fetch_one(&self.read)
        .await?;
        Ok(-applied.unwrap_or(0))
    }

    async fn expire_credits(&self, now: Timestamp, limit: u32) -> Result<usize> {
        let rows = sqlx::query(concat!(
            "SELECT tenant_id, ",
            grant_columns!(),
            " FROM credit_grants WHERE remaining_cents > 0 AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
        ))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        let mut expired = 0;
        for row in &rows {
            let tenant_id = TenantId::new(row.try_get::<String, _>("tenant_id")?);
            let grant = grant_from(row)?;
            let done = self
                .write(move |tx| Box::pin(async move { expire_in(tx, &tenant_id, &grant, now).await }))
                .await?;
            expired += usize::from(done);
        }
        Ok(expired)
    }

    async fn low_balance_threshold(&self, tenant_id: &TenantId) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar(
                "SELECT low_balance_threshold_cents FROM credit_settings WHERE tenant_id = $1",
            )
            .bind(tenant_id.as_str())
            .fetch_optional(&self.read)
            .await?,
        )
    }

    async fn set_low_balance_threshold(
        &self,
        tenant_id: &TenantId,
        threshold_cents: Option<i64>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (tenant_id, actor) = (tenant_id.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                lock(tx, &tenant_id).await?;
                let before: Option<i64> = sqlx::query_scalar(
                    "SELECT low_balance_threshold_cents FROM credit_settings WHERE tenant_id = $1",
                )
                .bind(tenant_id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match threshold_cents {
                    Some(t) => {
                        sqlx::query(
                            "INSERT INTO credit_settings (tenant_id, low_balance_threshold_cents, updated_by, updated_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
                             low_balance_threshold_cents = excluded.low_balance_threshold_cents, \
                             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                        )
                        .bind(tenant_id.as_str())
                        .bind(t)
                        .bind(&actor)
                        .bind(micros(now))
                        .execute(&mut **tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM credit_settings WHERE tenant_id = $1")
                            .bind(tenant_id.as_str())
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                let json = |t: Option<i64>| serde_json::json!({ "low_balance_threshold_cents": t });
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &actor,
                    AuditAction::CreditsSettings,
                    "credits/settings",
                    Some(json(before)),
                    Some(json(threshold_cents)),
                    now,
                )
                .await
            })
        })
        .await
    }
}

macro_rules! grant_columns {
    () => {
        "id, currency, amount_cents, remaining_cents, priority, expires_at, reason, granted_by, granted_at"
    };
}
use grant_columns;

fn grant_from(row: &DbRow) -> Result<Grant> {
    Ok(Grant {
        id: row.try_get("id")?,
        currency: row.try_get("currency")?,
        amount_cents: row.try_get("amount_cents")?,
        remaining_cents: row.try_get("remaining_cents")?,
        priority: row.try_get("priority")?,
        expires_at: opt_timestamp("credit_grants.expires_at", row.try_get("expires_at")?)?,
        reason: row.try_get("reason")?,
        granted_by: row.try_get("granted_by")?,
        granted_at: timestamp("credit_grants.granted_at", row.try_get("granted_at")?)?,
    })
}

fn entry_from(row: &DbRow) -> Result<Entry> {
    let kind: String = row.try_get("kind")?;
    Ok(Entry {
        seq: row.try_get("seq")?,
        grant_id: row.try_get("grant_id")?,
        currency: row.try_get("currency")?,
        kind: EntryKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("credit_ledger.kind {kind:?}")))?,
        amount_cents: row.try_get("amount_cents")?,
        invoice: row.try_get("invoice")?,
        note: row.try_get("note")?,
        actor: row.try_get("actor")?,
        at: timestamp("credit_ledger.at", row.try_get("at")?)?,
    })
}

async fn lock(tx: &mut Tx, tenant_id: &TenantId) -> Result<()> {
    sqlx::query(LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("there is no tenant {tenant_id}")))?;
    Ok(())
}

async fn grant_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    g: &NewGrant,
    actor: &str,
    now: Timestamp,
) -> Result<Grant> {
    lock(tx, tenant_id).await?;
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM credit_grants WHERE tenant_id = $1 AND remaining_cents > 0")
            .bind(tenant_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
    if open >= credits::MAX_OPEN_GRANTS as i64 {
        return Err(StoreError::Conflict(
            Reason::CreditGrantLimit,
            format!(
                "tenant {tenant_id} already holds {open} grants with credits left, the most it may; \
                 reverse some or let them be used first"
            ),
        ));
    }
    let grant = Grant {
        id: format!("cg_{}", uuid::Uuid::new_v4().simple()),
        currency: g.currency.clone(),
        amount_cents: g.amount_cents,
        remaining_cents: 0,
        priority: g.priority,
        expires_at: g.expires_at,
        reason: g.reason.clone(),
        granted_by: actor.to_owned(),
        granted_at: now,
    };
    sqlx::query(
        "INSERT INTO credit_grants (id, tenant_id, currency, amount_cents, remaining_cents, priority, expires_at, \
         reason, granted_by, granted_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9)",
    )
    .bind(&grant.id)
    .bind(tenant_id.as_str())
    .bind(&grant.currency)
    .bind(grant.amount_cents)
    .bind(grant.priority)
    .bind(grant.expires_at.map(micros))
    .bind(&grant.reason)
    .bind(actor)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?;
    let remaining = entry_in(
        tx,
        tenant_id,
        &grant,
        EntryKind::Grant,
        grant.amount_cents,
        None,
        Some(&grant.reason),
        actor,
        now,
    )
    .await?;
    let grant = Grant {
        remaining_cents: remaining,
        ..grant
    };
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::CreditsGrant,
        &format!("credits/{}", grant.id),
        None,
        Some(grant_json(&grant)),
        now,
    )
    .await?;
    Ok(grant)
}

fn grant_json(g: &Grant) -> serde_json::Value {
    serde_json::json!({
        "currency": g.currency,
        "amount_cents": g.amount_cents,
        "remaining_cents": g.remaining_cents,
        "priority": g.priority,
        "expires_at": g.expires_at,
        "reason": g.reason,
    })
}

async fn grant_in_tx(tx: &mut Tx, tenant_id: &TenantId, grant_id: &str) -> Result<Option<Grant>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM credit_grants WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(grant_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(grant_from).transpose()
}

async fn reverse_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    grant_id: &str,
    amount_cents: Option<i64>,
    reason: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Grant> {
    lock(tx, tenant_id).await?;
    let grant = grant_in_tx(tx, tenant_id, grant_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("the tenant has no credit grant {grant_id:?}")))?;
    let amount = amount_cents.unwrap_or(grant.remaining_cents);
    if amount <= 0 || amount > grant.remaining_cents {
        return Err(StoreError::Conflict(
            Reason::CreditsExceedRemaining,
            format!(
                "grant {grant_id} has {} left; cannot take back {}",
                money(grant.remaining_cents, &grant.currency),
                match amount_cents {
                    Some(a) => money(a, &grant.currency),
                    None => "anything".to_owned(),
                }
            ),
        ));
    }
    let remaining = entry_in(
        tx,
        tenant_id,
        &grant,
        EntryKind::Reverse,
        -amount,
        None,
        Some(reason),
        actor,
        now,
    )
    .await?;
    let after = Grant {
        remaining_cents: remaining,
        ..grant.clone()
    };
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::CreditsReverse,
        &format!("credits/{grant_id}"),
        Some(grant_json(&grant)),
        Some(serde_json::json!({ "remaining_cents": remaining, "reversed_cents": amount, "reason": reason })),
        now,
    )
    .await?;
    Ok(after)
}

/// Writes off what is left of an expired grant; `false` when something
/// else took it first.
async fn expire_in(tx: &mut Tx, tenant_id: &TenantId, grant: &Grant, now: Timestamp) -> Result<bool> {
    lock(tx, tenant_id).await?;
    let Some(current) = grant_in_tx(tx, tenant_id, &grant.id).await? else {
        return Ok(false);
    };
    if !current.expired_with_balance(now) {
        return Ok(false);
    }
    let note = current
        .expires_at
        .map(|e| format!("expired at {e}"))
        .unwrap_or_default();
    entry_in(
        tx,
        tenant_id,
        &current,
        EntryKind::Expire,
        -current.remaining_cents,
        None,
        Some(&note),
        crate::CREDITS_ACTOR,
        now,
    )
    .await?;
    Ok(true)
}

/// Applies a finalized invoice's credits, in the transaction that stores
/// it: one `apply` entry per grant. A grant that no longer holds its amount
/// (taken, reversed or expired since the invoice was computed) fails the
/// whole finalization with a conflict, and the caller computes it again.
pub(super) async fn apply_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &Invoice,
    now: Timestamp,
) -> Result<()> {
    if invoice.credits.is_empty() {
        return Ok(());
    }
    lock(tx, tenant_id).await?;
    let before = balance_in(tx, tenant_id, &invoice.currency).await?;
    for c in &invoice.credits {
        let grant = grant_in_tx(tx, tenant_id, &c.grant).await?;
        let usable = grant
            .as_ref()
            .is_some_and(|g| g.usable(&invoice.currency, now) && g.remaining_cents >= c.amount_cents);
        let Some(grant) = grant.filter(|_| usable) else {
            return Err(StoreError::Conflict(
                Reason::CreditsExceedRemaining,
                format!(
                    "credit grant {} no longer holds {} for invoice {}",
                    c.grant,
                    money(c.amount_cents, &invoice.currency),
                    invoice.name
                ),
            ));
        };
        entry_in(
            tx,
            tenant_id,
            &grant,
            EntryKind::Apply,
            -c.amount_cents,
            Some(invoice.name.as_str()),
            None,
            crate::CREDITS_ACTOR,
            now,
        )
        .await?;
    }
    // One look at the threshold for the whole invoice: the balance it
    // started from and the one it left.
    let after = balance_in(tx, tenant_id, &invoice.currency).await?;
    low_balance_in(tx, tenant_id, &invoice.currency, before, after, now).await
}

/// The tenant's balance in `currency`: its grants' remaining amounts.
async fn balance_in(tx: &mut Tx, tenant_id: &TenantId, currency: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(remaining_cents), 0) AS BIGINT) FROM credit_grants WHERE tenant_id = $1 AND currency = $2",
    )
    .bind(tenant_id.as_str())
    .bind(currency)
    .fetch_one(&mut **tx)
    .await?)
}

/// Emits `credits.low_balance` when the balance went from at or above the
/// tenant's threshold to below it.
async fn low_balance_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    currency: &str,
    before: i64,
    after: i64,
    now: Timestamp,
) -> Result<()> {
    if after >= before {
        return Ok(());
    }
    let threshold: Option<i64> =
        sqlx::query_scalar("SELECT low_balance_threshold_cents FROM credit_settings WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(threshold) = threshold
        && credits::crosses_low(before, after, threshold)
    {
        let data = serde_json::json!({
            "currency": currency,
            "balance_cents": after.to_string(),
            "threshold_cents": threshold.to_string(),
        });
        emit_in(
            tx,
            tenant_id,
            EventType::CreditsLowBalance,
            &format!("credits/{currency}"),
            Some(data),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Gives back the credits that paid `invoice` (cancelled, or refunded in
/// full), in the caller's transaction: one `refund` entry per grant, once.
/// A grant that has expired since gets its amount back and the expiry job
/// writes it off again.
pub(super) async fn give_back_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &Invoice,
    actor: &str,
    now: Timestamp,
) -> Result<i64> {
    if invoice.credits.is_empty() {
        return Ok(0);
    }
    lock(tx, tenant_id).await?;
    let mut total = 0i64;
    for c in &invoice.credits {
        let given: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_ledger WHERE grant_id = $1 AND kind = 'refund' AND invoice = $2",
        )
        .bind(&c.grant)
        .bind(invoice.name.as_str())
        .fetch_one(&mut **tx)
        .await?;
        if given > 0 {
            continue;
        }
        let Some(grant) = grant_in_tx(tx, tenant_id, &c.grant).await? else {
            return Err(StoreError::Corrupt(format!(
                "invoice {} was paid by credit grant {}, which does not exist",
                invoice.name, c.grant
            )));
        };
        entry_in(
            tx,
            tenant_id,
            &grant,
            EntryKind::Refund,
            c.amount_cents,
            Some(invoice.name.as_str()),
            None,
            actor,
            now,
        )
        .await?;
        total += c.amount_cents;
    }
    Ok(total)
}

/// Appends one entry of `amount` (signed) to `grant`'s ledger and moves its
/// remaining amount by as much, never below zero (a conflict otherwise);
/// fires `credits.low_balance` when the tenant's balance in the grant's
/// currency crosses its threshold downwards. Returns the grant's remaining
/// amount after. The caller holds the tenant's lock.
#[allow(clippy::too_many_arguments)]
async fn entry_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    grant: &Grant,
    kind: EntryKind,
    amount: i64,
    invoice: Option<&str>,
    note: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<i64> {
    let moved = sqlx::query(
        "UPDATE credit_grants SET remaining_cents = remaining_cents + $1 \
         WHERE id = $2 AND tenant_id = $3 AND remaining_cents + $1 >= 0",
    )
    .bind(amount)
    .bind(&grant.id)
    .bind(tenant_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved != 1 {
        return Err(StoreError::Conflict(
            Reason::CreditsExceedRemaining,
            format!("credit grant {} does not hold {}", grant.id, -amount),
        ));
    }
    let inserted = sqlx::query(
        "INSERT INTO credit_ledger (tenant_id, grant_id, kind, amount_cents, invoice, note, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id.as_str())
    .bind(&grant.id)
    .bind(kind.as_str())
    .bind(amount)
    .bind(invoice)
    .bind(note)
    .bind(actor)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted != 1 {
        // Already applied (or given back) for this invoice: the whole
        // transaction is rolled back, so nothing is counted twice.
        return Err(StoreError::Conflict(
            Reason::CreditsExceedRemaining,
            format!(
                "credit grant {} already has a {kind} entry for invoice {}",
                grant.id,
                invoice.unwrap_or_default()
            ),
        ));
    }
    let remaining: i64 = sqlx::query_scalar("SELECT remaining_cents FROM credit_grants WHERE id = $1")
        .bind(&grant.id)
        .fetch_one(&mut **tx)
        .await?;
    // An invoice's application looks once, for all its entries (apply_in).
    if amount < 0 && kind != EntryKind::Apply {
        let after = balance_in(tx, tenant_id, &grant.currency).await?;
        low_balance_in(tx, tenant_id, &grant.currency, after - amount, after, now).await?;
    }
    Ok(remaining)
}
