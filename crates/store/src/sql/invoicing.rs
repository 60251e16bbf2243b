//! Invoicing: finalized invoices, their charge attempts and refunds
//! ([`InvoicingStore`](crate::InvoicingStore)). Which status an invoice moves
//! to is the caller's decision; this writes it under the lease. Part of the
//! shared SQL implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::credit_note;
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::webhook::EventType;

use super::webhooks::emit_in;
use super::{DbRow, SqlStore, Tx, audit_in, micros, opt_timestamp, timestamp};
use crate::{
    Actor, BillingDue, ChargeOutcome, ChargeRecord, ChargedMethod, Dispute, RefundRecord, RefundStart,
    RefundState, Result, RoundEnd, StoreError, StoredInvoice,
};

macro_rules! invoice_columns {
    () => {
        "tenant_id, name, status, document, attempts, next_charge_at, lease_until, overdue_at"
    };
}

fn due_from(row: &DbRow) -> Result<BillingDue> {
    Ok(BillingDue {
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        due_at: timestamp("billing_due.due_at", row.try_get("due_at")?)?,
        version: row.try_get("version")?,
    })
}

/// Lowers a tenant's billing due date to `at` if it is later (creating it
/// at `at` if the tenant has none), inside another aggregate's write that
/// moved the end of one of its periods: a new tenant (the epoch: work it
/// out), a subscription given by the bootstrap, one closed by a plan
/// transition. The version moves either way, so a period close that read
/// the row before this write cannot overwrite it with a date computed from
/// the periods as they were.
pub(super) async fn lower_billing_due_in(tx: &mut Tx, tenant_id: &TenantId, at: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO billing_due (tenant_id, due_at, version) VALUES ($1, $2, 0) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = billing_due.version + 1, \
         due_at = CASE WHEN billing_due.due_at > excluded.due_at THEN excluded.due_at ELSE billing_due.due_at END",
    )
    .bind(tenant_id.as_str())
    .bind(micros(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

macro_rules! charge_columns {
    () => {
        "idempotency_key, invoice, attempt, payment_method, role, token, display, amount, currency, outcome, \
         reason, reference, started_at, settled_at, provider"
    };
}

/// A refund (credit note) with what it needs to be read: the invoice's
/// document where the refund has no lines of its own (made before credit
/// notes, when every refund was of the whole invoice).
macro_rules! refund_select {
    () => {
        "SELECT r.idempotency_key, r.credit_note, r.invoice, r.charge, r.reference, r.amount, r.currency, \
         r.state, r.reason, r.credit_reason, r.lines, r.refund_reference, r.actor, r.started_at, r.settled_at, \
         CASE WHEN r.lines IS NULL THEN i.document END AS invoice_document \
         FROM invoice_refunds r JOIN invoices i ON i.tenant_id = r.tenant_id AND i.name = r.invoice"
    };
}

pub(super) fn invoice_from(row: &DbRow) -> Result<StoredInvoice> {
    let document: String = row.try_get("document")?;
    let mut invoice: Invoice = crate::records::decode_invoice(&document)?;
    let status: String = row.try_get("status")?;
    invoice.status = InvoiceStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("invoices.status: {status:?}")))?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(StoredInvoice {
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        invoice,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt("invoices.attempts".into()))?,
        next_charge_at: opt_timestamp("invoices.next_charge_at", row.try_get("next_charge_at")?)?,
        leased_until: opt_timestamp("invoices.lease_until", row.try_get("lease_until")?)?,
        overdue_at: opt_timestamp("invoices.overdue_at", row.try_get("overdue_at")?)?,
    })
}

fn refund_from(row: &DbRow) -> Result<RefundRecord> {
    let state: String = row.try_get("state")?;
    let amount_cents: i64 = row.try_get("amount")?;
    let lines = match row.try_get::<Option<String>, _>("lines")? {
        Some(doc) => crate::records::decode_credit_note_lines(&doc)?,
        // Made before credit notes: a refund of the whole invoice.
        None => {
            let doc: Option<String> = row.try_get("invoice_document")?;
            let doc = doc.ok_or_else(|| StoreError::Corrupt("invoice_refunds.lines: no invoice".into()))?;
            credit_note::lines(&crate::records::decode_invoice(&doc)?, amount_cents)
        }
    };
    Ok(RefundRecord {
        idempotency_key: row.try_get("idempotency_key")?,
        credit_note: row.try_get("credit_note")?,
        invoice: InvoiceName::new(row.try_get::<String, _>("invoice")?),
        charge: row.try_get("charge")?,
        reference: row.try_get("reference")?,
        amount_cents,
        currency: row.try_get("currency")?,
        state: RefundState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("invoice_refunds.state: {state:?}")))?,
        reason: row.try_get("credit_reason")?,
        lines,
        failure: row.try_get("reason")?,
        refund_reference: row.try_get("refund_reference")?,
        actor: row.try_get("actor")?,
        started_at: timestamp("invoice_refunds.started_at", row.try_get("started_at")?)?,
        settled_at: opt_timestamp("invoice_refunds.settled_at", row.try_get("settled_at")?)?,
    })
}

fn charge_from(row: &DbRow) -> Result<ChargeRecord> {
    let role: String = row.try_get("role")?;
    let outcome: String = row.try_get("outcome")?;
    let attempt: i64 = row.try_get("attempt")?;
    Ok(ChargeRecord {
        idempotency_key: row.try_get("idempotency_key")?,
        invoice: InvoiceName::new(row.try_get::<String, _>("invoice")?),
        attempt: u32::try_from(attempt).map_err(|_| StoreError::Corrupt("invoice_charges.attempt".into()))?,
        // The row keeps '' in its NOT NULL columns for an attempt without a method.
        method: {
            let name: String = row.try_get("payment_method")?;
            if name.is_empty() {
                None
            } else {
                Some(ChargedMethod {
                    name,
                    role: PaymentRole::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("invoice_charges.role: {role:?}")))?,
                    token: row.try_get("token")?,
                    display: row.try_get("display")?,
                    provider: row.try_get("provider")?,
                })
            }
        },
        amount_cents: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        outcome: ChargeOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("invoice_charges.outcome: {outcome:?}")))?,
        reason: row.try_get("reason")?,
        reference: row.try_get("reference")?,
        started_at: timestamp("invoice_charges.started_at", row.try_get("started_at")?)?,
        settled_at: opt_timestamp("invoice_charges.settled_at", row.try_get("settled_at")?)?,
    })
}

/// What the audit trail records of an invoice; money in integer cents of
/// `currency`, named so.
fn summary(i: &Invoice) -> serde_json::Value {
    serde_json::json!({
        "status": i.status.as_str(),
        "total_cents": i.totals.total,
        "currency": i.currency,
        "period_start": i.period_start,
        "period_end": i.period_end,
    })
}

#[async_trait::async_trait]
impl crate::InvoicingStore for SqlStore {
    async fn due_tenants(
        &self,
        before: Timestamp,
        after: Option<&BillingDue>,
        limit: u32,
    ) -> Result<Vec<BillingDue>> {
        let rows = sqlx::query(
            "SELECT tenant_id, due_at, version FROM billing_due WHERE due_at <= $1 \
             AND ($2 IS NULL OR due_at > $2 OR (due_at = $2 AND tenant_id > $3)) \
             ORDER BY due_at, tenant_id LIMIT $4",
        )
        .bind(micros(before))
        .bind(after.map(|a| micros(a.due_at)))
        .bind(after.map(|a| a.tenant_id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(due_from).collect()
    }

    async fn billing_due(&self, tenant_id: &TenantId) -> Result<Option<BillingDue>> {
        let row = sqlx::query("SELECT tenant_id, due_at, version FROM billing_due WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(due_from).transpose()
    }

    async fn set_billing_due(&self, due: &BillingDue, at: Timestamp) -> Result<bool> {
        let (tenant_id, version) = (due.tenant_id.clone(), due.version);
        self.write(move |tx| {
            Box::pin(async move {
                let moved = sqlx::query(
                    "UPDATE billing_due SET due_at = $3, version = version + 1 \
                     WHERE tenant_id = $1 AND version = $2",
                )
                .bind(tenant_id.as_str())
                .bind(version)
                .bind(micros(at))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(moved > 0)
            })
        })
        .await
    }

    async fn finalize_invoice(
        &self,
        tenant_id: &TenantId,
        invoice: &Invoice,
        next_charge_at: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        finalize_invoice(self, tenant_id, invoice, next_charge_at, actor, now).await
    }

    async fn invoices(&self, tenant_id: &TenantId) -> Result<Vec<StoredInvoice>> {
        invoices(self, tenant_id).await
    }

    async fn invoice(&self, tenant_id: &TenantId, name: &InvoiceName) -> Result<Option<StoredInvoice>> {
        invoice(self, tenant_id, name).await
    }

    async fn invoice_page(
        &self,
        status: Option<InvoiceStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<StoredInvoice>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            invoice_columns!(),
            " FROM invoices WHERE ($1 IS NULL OR status = $1)",
            " ORDER BY period_start DESC, tenant_id, name LIMIT $2 OFFSET $3"
        ))
        .bind(status.map(InvoiceStatus::as_str))
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(invoice_from).collect()
    }

    async fn unpaid_totals(&self) -> Result<Vec<(TenantId, String, i64)>> {
        let rows = sqlx::query(
            "SELECT tenant_id, currency, CAST(SUM(total) AS BIGINT) AS owed FROM invoices \
             WHERE status IN ('ISSUED', 'OVERDUE') GROUP BY tenant_id, currency ORDER BY tenant_id, currency",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    TenantId::new(r.try_get::<String, _>("tenant_id")?),
                    r.try_get::<String, _>("currency")?,
                    r.try_get::<i64, _>("owed")?,
                ))
            })
            .collect()
    }

    async fn latest_invoice_start(&self, tenant_id: &TenantId) -> Result<Option<Timestamp>> {
        latest_invoice_start(self, tenant_id).await
    }

    async fn invoice_charges(
        &self,
        tenant_id: &TenantId,
        invoice: &InvoiceName,
    ) -> Result<Vec<ChargeRecord>> {
        invoice_charges(self, tenant_id, invoice).await
    }

    async fn claim_charge(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<StoredInvoice>> {
        claim_charge(self, owner, now, lease_until).await
    }

    async fn begin_charge(&self, tenant_id: &TenantId, owner: &str, charge: &ChargeRecord) -> Result<()> {
        begin_charge(self, tenant_id, owner, charge).await
    }

    async fn set_charge_reference(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        charge: &ChargeRecord,
        reference: &str,
    ) -> Result<()> {
        let (tenant_id, owner, c, reference) = (
            tenant_id.clone(),
            owner.to_owned(),
            charge.clone(),
            reference.to_owned(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                hold(tx, &tenant_id, &c.invoice, &owner).await?;
                sqlx::query(
                    "UPDATE invoice_charges SET reference = $1 \
                     WHERE tenant_id = $2 AND idempotency_key = $3 AND outcome = 'PENDING'",
                )
                .bind(&reference)
                .bind(tenant_id.as_str())
                .bind(&c.idempotency_key)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn charge_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<(TenantId, ChargeRecord)>> {
        let row = sqlx::query(concat!(
            "SELECT tenant_id, ",
            charge_columns!(),
            " FROM invoice_charges WHERE provider = $1 AND reference = $2 ORDER BY started_at LIMIT 1"
        ))
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok((
                TenantId::new(row.try_get::<String, _>("tenant_id")?),
                charge_from(&row)?,
            ))
        })
        .transpose()
    }

    async fn claim_invoice(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<StoredInvoice>> {
        let (tenant_id, name, owner) = (tenant_id.clone(), name.clone(), owner.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                lease_in(tx, tenant_id.as_str(), name.as_str(), &owner, now, lease_until).await
            })
        })
        .await
    }

    async fn provider_event_seen(&self, provider: &str, event_id: &str) -> Result<bool> {
        let seen: Option<String> =
            sqlx::query_scalar("SELECT event_id FROM provider_events WHERE provider = $1 AND event_id = $2")
                .bind(provider)
                .bind(event_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(seen.is_some())
    }

    async fn record_dispute(&self, tenant_id: &TenantId, d: &Dispute, now: Timestamp) -> Result<bool> {
        let (tenant_id, d) = (tenant_id.clone(), d.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let inserted = sqlx::query(
                    "INSERT INTO invoice_disputes (provider, dispute_id, tenant_id, invoice, reference, amount, \
                     currency, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (provider, dispute_id) DO NOTHING",
                )
                .bind(&d.provider)
                .bind(&d.dispute_id)
                .bind(tenant_id.as_str())
                .bind(d.invoice.as_str())
                .bind(&d.reference)
                .bind(d.amount_cents)
                .bind(&d.currency)
                .bind(&d.reason)
                .bind(micros(d.created_at))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &format!("{}/webhook", d.provider),
                    AuditAction::InvoiceDisputed,
                    &format!("invoice/{}", d.invoice),
                    None,
                    Some(serde_json::json!({
                        "dispute": d.dispute_id,
                        "reference": d.reference,
                        "amount_cents": d.amount_cents,
                        "currency": d.currency,
                        "reason": d.reason,
                    })),
                    now,
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn invoice_disputes(&self, tenant_id: &TenantId, invoice: &InvoiceName) -> Result<Vec<Dispute>> {
        let rows = sqlx::query(
            "SELECT provider, dispute_id, invoice, reference, amount, currency, reason, created_at \
             FROM invoice_disputes WHERE tenant_id = $1 AND invoice = $2 ORDER BY created_at, dispute_id",
        )
        .bind(tenant_id.as_str())
        .bind(invoice.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Dispute {
                    provider: row.try_get("provider")?,
                    dispute_id: row.try_get("dispute_id")?,
                    invoice: InvoiceName::new(row.try_get::<String, _>("invoice")?),
                    reference: row.try_get("reference")?,
                    amount_cents: row.try_get("amount")?,
                    currency: row.try_get("currency")?,
                    reason: row.try_get("reason")?,
                    created_at: timestamp("invoice_disputes.created_at", row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    async fn record_provider_event(
        &self,
        provider: &str,
        event_id: &str,
        event_type: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (provider, event_id, event_type) =
            (provider.to_owned(), event_id.to_owned(), event_type.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let inserted = sqlx::query(
                    "INSERT INTO provider_events (provider, event_id, type, received_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (provider, event_id) DO NOTHING",
                )
                .bind(&provider)
                .bind(&event_id)
                .bind(&event_type)
                .bind(micros(now))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            })
        })
        .await
    }

    async fn settle_charge(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        charge: &ChargeRecord,
        invoice_status: Option<InvoiceStatus>,
        now: Timestamp,
    ) -> Result<()> {
        settle_charge(self, tenant_id, owner, charge, invoice_status, now).await
    }

    async fn end_charge_round(
        &self,
        tenant_id: &TenantId,
        invoice: &InvoiceName,
        owner: &str,
        end: &RoundEnd,
        now: Timestamp,
    ) -> Result<()> {
        end_charge_round(self, tenant_id, invoice, owner, end, now).await
    }

    async fn release_charge(&self, tenant_id: &TenantId, invoice: &InvoiceName, owner: &str) -> Result<()> {
        release_charge(self, tenant_id, invoice, owner).await
    }

    async fn invoice_refunds(
        &self,
        tenant_id: &TenantId,
        invoice: &InvoiceName,
    ) -> Result<Vec<RefundRecord>> {
        invoice_refunds(self, tenant_id, invoice).await
    }

    async fn credit_notes(&self, tenant_id: &TenantId) -> Result<Vec<RefundRecord>> {
        let rows = sqlx::query(concat!(
            refund_select!(),
            " WHERE r.tenant_id = $1 ORDER BY r.started_at DESC, r.credit_note DESC"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(refund_from).collect()
    }

    async fn credit_note(&self, tenant_id: &TenantId, name: &str) -> Result<Option<RefundRecord>> {
        let row = sqlx::query(concat!(
            refund_select!(),
            " WHERE r.tenant_id = $1 AND r.credit_note = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(refund_from).transpose()
    }

    async fn begin_refund(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        refund: &RefundStart,
        from: &[InvoiceStatus],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<RefundRecord> {
        begin_refund(self, tenant_id, owner, refund, from, now, lease_until).await
    }

    async fn settle_refund(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        refund: &RefundRecord,
        now: Timestamp,
    ) -> Result<StoredInvoice> {
        settle_refund(self, tenant_id, owner, refund, now).await
    }

    async fn set_invoice_status(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        from: &[InvoiceStatus],
        to: InvoiceStatus,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<StoredInvoice> {
        set_invoice_status(self, tenant_id, name, from, to, actor, now).await
    }

    async fn schedule_charge(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<StoredInvoice> {
        let (tenant_id, name, actor) = (tenant_id.to_owned(), name.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { schedule_charge_in(tx, &tenant_id, &name, &actor, now).await })
        })
        .await
    }
}

pub(super) async fn schedule_charge_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    name: &InvoiceName,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<StoredInvoice> {
    let change = OperatorChange {
        from: &[InvoiceStatus::Issued, InvoiceStatus::Overdue],
        to: InvoiceStatus::Issued,
        next_charge_at: Some(now),
        action: AuditAction::InvoiceChargeScheduled,
        doing: "be charged".to_owned(),
    };
    operator_change_in(tx, tenant_id, name, &change, actor, now).await
}

/// Who the audit trail names for what the charge job does.
const CHARGE_WORKER: &str = "tollgate/charge-worker";

/// A status change the operator asks for (cancel, charge now).
struct OperatorChange<'a> {
    /// The statuses it may start from.
    from: &'a [InvoiceStatus],
    to: InvoiceStatus,
    next_charge_at: Option<Timestamp>,
    action: AuditAction,
    /// What the refusal says only `from` invoices can do ("be charged").
    doing: String,
}

/// Applies an operator's status change: only from `from`, never while the
/// invoice is leased or a charge attempt is unsettled; audited.
async fn operator_change_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    name: &InvoiceName,
    change: &OperatorChange<'_>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<StoredInvoice> {
    let before = invoice_in(tx, tenant_id, name).await?;
    let status = before.invoice.status;
    if !change.from.contains(&status) {
        return Err(refused(
            Reason::InvoiceWrongStatus,
            format!(
                "invoice {name:?} is {status}; only {} invoices can {}",
                change
                    .from
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                change.doing
            ),
        ));
    }
    if before.is_leased(now) {
        return Err(refused(
            Reason::InvoiceBeingCharged,
            format!("invoice {name:?} is being charged or refunded right now; try again in a minute"),
        ));
    }
    refuse_unsettled_charge(tx, tenant_id, name).await?;
    sqlx::query(
        "UPDATE invoices SET status = $1, next_charge_at = $2, updated_at = $3 WHERE tenant_id = $4 AND name = $5",
    )
    .bind(change.to.as_str())
    .bind(change.next_charge_at.map(micros))
    .bind(micros(now))
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .execute(&mut **tx)
    .await?;
    let mut after = before.clone();
    after.invoice.status = change.to;
    after.next_charge_at = change.next_charge_at;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        change.action,
        &format!("invoice/{name}"),
        Some(summary(&before.invoice)),
        Some(summary(&after.invoice)),
        now,
    )
    .await?;
    if change.to == InvoiceStatus::Cancelled {
        // The prepaid credits that paid part of it come back.
        super::credits::give_back_in(tx, tenant_id, &before.invoice, actor, now).await?;
        // Cancelling the last unpaid OVERDUE invoice lifts a suspension, now.
        super::dunning::lift_in(tx, tenant_id, name, "cancelled", actor, now).await?;
    }
    Ok(after)
}

async fn finalize_invoice(
    store: &SqlStore,
    tenant_id: &TenantId,
    invoice: &Invoice,
    next_charge_at: Option<Timestamp>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<bool> {
    invoice.check().map_err(StoreError::Corrupt)?;
    let document = crate::records::encode_invoice(invoice)?;
    let (tenant_id, invoice, actor) = (tenant_id.clone(), invoice.clone(), actor.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                finalize_invoice_in(tx, &tenant_id, &invoice, document, next_charge_at, &actor, now).await
            })
        })
        .await
}

async fn finalize_invoice_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &Invoice,
    document: String,
    next_charge_at: Option<Timestamp>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<bool> {
    // Under the tenant's lock, as a change of its currency checks for unpaid
    // invoices: an invoice computed before such a change is not issued in
    // the old currency after it (period close computes it again).
    sqlx::query(super::LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    let currency: Option<Option<String>> = sqlx::query_scalar("SELECT currency FROM tenants WHERE id = $1")
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(Some(currency)) = currency
        && currency != invoice.currency
    {
        return Err(StoreError::Conflict(
            Reason::CurrencyLocked,
            format!(
                "invoice {} is in {}, but the tenant's currency is now {currency}; it is computed again",
                invoice.name, invoice.currency
            ),
        ));
    }
    let inserted = sqlx::query(
        "INSERT INTO invoices (tenant_id, name, subscription_id, period_index, period_start, period_end, status, \
         total, currency, document, issued_at, attempts, next_charge_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $11) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id.as_str())
    .bind(invoice.name.as_str())
    .bind(&invoice.subscription_id)
    .bind(i64::from(invoice.period_index))
    .bind(micros(invoice.period_start))
    .bind(micros(invoice.period_end))
    .bind(invoice.status.as_str())
    .bind(invoice.totals.total)
    .bind(&invoice.currency)
    .bind(document)
    .bind(micros(invoice.issued_at.unwrap_or(now)))
    .bind(next_charge_at.map(micros))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    super::credits::apply_in(tx, tenant_id, invoice, now).await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::InvoiceFinalize,
        &format!("invoice/{}", invoice.name),
        None,
        Some(summary(invoice)),
        now,
    )
    .await?;
    Ok(true)
}

async fn invoices(store: &SqlStore, tenant_id: &TenantId) -> Result<Vec<StoredInvoice>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        invoice_columns!(),
        " FROM invoices WHERE tenant_id = $1 ORDER BY period_start DESC, name DESC"
    ))
    .bind(tenant_id.as_str())
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(invoice_from).collect()
}

async fn invoice(
    store: &SqlStore,
    tenant_id: &TenantId,
    name: &InvoiceName,
) -> Result<Option<StoredInvoice>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        invoice_columns!(),
        " FROM invoices WHERE tenant_id = $1 AND name = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .fetch_optional(&store.read)
    .await?;
    row.as_ref().map(invoice_from).transpose()
}

async fn latest_invoice_start(store: &SqlStore, tenant_id: &TenantId) -> Result<Option<Timestamp>> {
    let latest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(period_start) FROM invoices WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_one(&store.read)
            .await?;
    opt_timestamp("invoices.period_start", latest)
}

async fn invoice_charges(
    store: &SqlStore,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
) -> Result<Vec<ChargeRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        charge_columns!(),
        " FROM invoice_charges WHERE tenant_id = $1 AND invoice = $2 \
         ORDER BY attempt, started_at, CASE role WHEN 'PRIMARY' THEN 0 WHEN 'SECONDARY' THEN 1 ELSE 2 END, \
         idempotency_key"
    ))
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(charge_from).collect()
}

async fn claim_charge(
    store: &SqlStore,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<StoredInvoice>> {
    let (owner, now, lease_until) = (owner.to_owned(), now, lease_until);
    store
        .write(move |tx| Box::pin(async move { claim_charge_in(tx, &owner, now, lease_until).await }))
        .await
}

async fn claim_charge_in(
    tx: &mut Tx,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<StoredInvoice>> {
    // Due rounds, and invoices with an attempt left unsettled by a crash.
    let candidate = sqlx::query(
        "SELECT tenant_id, name FROM invoices WHERE (lease_until IS NULL OR lease_until <= $1) AND ( \
           (status = 'ISSUED' AND next_charge_at IS NOT NULL AND next_charge_at <= $1) \
           OR EXISTS (SELECT 1 FROM invoice_charges c WHERE c.tenant_id = invoices.tenant_id \
                      AND c.invoice = invoices.name AND c.outcome = 'PENDING')) \
         ORDER BY next_charge_at, tenant_id, name LIMIT 1",
    )
    .bind(micros(now))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(candidate) = candidate else {
        return Ok(None);
    };
    let (tenant_id, name): (String, String) = (candidate.try_get("tenant_id")?, candidate.try_get("name")?);
    lease_in(tx, &tenant_id, &name, owner, now, lease_until).await
}

/// Leases invoice `name` of the tenant for `owner` until `lease_until`
/// unless a live lease holds it at `now`; the invoice after, or `None`.
async fn lease_in(
    tx: &mut Tx,
    tenant_id: &str,
    name: &str,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<StoredInvoice>> {
    let row = sqlx::query(concat!(
        "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE tenant_id = $3 AND name = $4 \
         AND (lease_until IS NULL OR lease_until <= $5) RETURNING ",
        invoice_columns!()
    ))
    .bind(owner)
    .bind(micros(lease_until))
    .bind(tenant_id)
    .bind(name)
    .bind(micros(now))
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(invoice_from).transpose()
}

/// Checks, inside `tx`, that `owner` holds the invoice's lease.
async fn hold(tx: &mut Tx, tenant_id: &TenantId, invoice: &InvoiceName, owner: &str) -> Result<()> {
    let held: Option<String> = sqlx::query_scalar(
        "SELECT name FROM invoices WHERE tenant_id = $1 AND name = $2 AND lease_owner = $3",
    )
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(
            Reason::InvoiceLeaseLost,
            format!("invoice {invoice:?} is no longer leased by {owner:?}"),
        )),
    }
}

async fn begin_charge(store: &SqlStore, tenant_id: &TenantId, owner: &str, c: &ChargeRecord) -> Result<()> {
    let (tenant_id, owner, c) = (tenant_id.clone(), owner.to_owned(), c.clone());
    store
        .write(move |tx| Box::pin(async move { begin_charge_in(tx, &tenant_id, &owner, &c).await }))
        .await
}

async fn begin_charge_in(tx: &mut Tx, tenant_id: &TenantId, owner: &str, c: &ChargeRecord) -> Result<()> {
    hold(tx, tenant_id, &c.invoice, owner).await?;
    sqlx::query(concat!(
        "INSERT INTO invoice_charges (tenant_id, ",
        charge_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING"
    ))
    .bind(tenant_id.as_str())
    .bind(&c.idempotency_key)
    .bind(c.invoice.as_str())
    .bind(i64::from(c.attempt))
    .bind(c.method.as_ref().map_or("", |m| m.name.as_str()))
    .bind(c.method.as_ref().map_or(PaymentRole::Normal, |m| m.role).as_str())
    .bind(c.method.as_ref().map_or("", |m| m.token.as_str()))
    .bind(c.method.as_ref().map_or("", |m| m.display.as_str()))
    .bind(c.amount_cents)
    .bind(&c.currency)
    .bind(c.outcome.as_str())
    .bind(&c.reason)
    .bind(&c.reference)
    .bind(micros(c.started_at))
    .bind(c.settled_at.map(micros))
    .bind(c.method.as_ref().map_or("", |m| m.provider.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn settle_charge(
    store: &SqlStore,
    tenant_id: &TenantId,
    owner: &str,
    c: &ChargeRecord,
    invoice_status: Option<InvoiceStatus>,
    now: Timestamp,
) -> Result<()> {
    let (tenant_id, owner, c) = (tenant_id.clone(), owner.to_owned(), c.clone());
    store
        .write(move |tx| {
            Box::pin(async move { settle_charge_in(tx, &tenant_id, &owner, &c, invoice_status, now).await })
        })
        .await
}

async fn settle_charge_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    owner: &str,
    c: &ChargeRecord,
    invoice_status: Option<InvoiceStatus>,
    now: Timestamp,
) -> Result<()> {
    hold(tx, tenant_id, &c.invoice, owner).await?;
    let settled = sqlx::query(
        "UPDATE invoice_charges SET outcome = $1, reason = $2, reference = $3, settled_at = $4 \
         WHERE tenant_id = $5 AND idempotency_key = $6 AND outcome = 'PENDING'",
    )
    .bind(c.outcome.as_str())
    .bind(&c.reason)
    .bind(&c.reference)
    .bind(micros(now))
    .bind(tenant_id.as_str())
    .bind(&c.idempotency_key)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if settled == 0 {
        // Settled before: nothing to do (the provider's answer is the same).
        return Ok(());
    }
    let mut paid = false;
    let action = match invoice_status {
        Some(to) => {
            // Only an invoice being charged moves: one the operator
            // cancelled after this worker's lease expired stays cancelled.
            let moved = sqlx::query(
                "UPDATE invoices SET status = $1, next_charge_at = NULL, lease_owner = NULL, lease_until = NULL, \
                 updated_at = $2 WHERE tenant_id = $3 AND name = $4 AND status IN ('ISSUED', 'OVERDUE')",
            )
            .bind(to.as_str())
            .bind(micros(now))
            .bind(tenant_id.as_str())
            .bind(c.invoice.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            paid = moved > 0 && to == InvoiceStatus::Paid;
            AuditAction::invoice_status(to)
        }
        None if c.outcome == ChargeOutcome::Succeeded => AuditAction::InvoiceCharged,
        None => AuditAction::InvoiceChargeFailed,
    };
    audit_in(
        tx,
        Some(tenant_id),
        CHARGE_WORKER,
        action,
        &format!("invoice/{}", c.invoice),
        None,
        Some(serde_json::json!({
            "attempt": c.attempt,
            "payment_method": c.method.as_ref().map(|m| m.name.as_str()),
            "role": c.method.as_ref().map(|m| m.role.as_str()),
            "amount_cents": c.amount_cents,
            "currency": c.currency,
            "outcome": c.outcome.as_str(),
            "reason": c.reason,
            "reference": c.reference,
            "idempotency_key": c.idempotency_key,
        })),
        now,
    )
    .await?;
    if matches!(c.outcome, ChargeOutcome::Declined | ChargeOutcome::Failed) {
        let target = format!("invoice/{}", c.invoice);
        emit_in(tx, tenant_id, EventType::InvoicePaymentFailed, &target, None, now).await?;
    }
    if paid {
        // Paying the last unpaid OVERDUE invoice lifts a suspension, now.
        super::dunning::lift_in(tx, tenant_id, &c.invoice, "paid", CHARGE_WORKER, now).await?;
    }
    Ok(())
}

async fn end_charge_round(
    store: &SqlStore,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
    owner: &str,
    end: &RoundEnd,
    now: Timestamp,
) -> Result<()> {
    let (tenant_id, invoice, owner, end) = (tenant_id.clone(), invoice.clone(), owner.to_owned(), *end);
    store
        .write(move |tx| {
            Box::pin(async move { end_charge_round_in(tx, &tenant_id, &invoice, &owner, &end, now).await })
        })
        .await
}

async fn end_charge_round_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
    owner: &str,
    end: &RoundEnd,
    now: Timestamp,
) -> Result<()> {
    hold(tx, tenant_id, invoice, owner).await?;
    // The first time it goes OVERDUE is kept: charging it again (after a
    // payment-method change, or the operator's charge-now) does not restart
    // the suspension delay.
    let ended = sqlx::query(
        "UPDATE invoices SET status = $1, attempts = $2, next_charge_at = $3, lease_owner = NULL, lease_until = NULL, \
         updated_at = $4, overdue_at = CASE WHEN $1 = 'OVERDUE' THEN COALESCE(overdue_at, $4) ELSE overdue_at END \
         WHERE tenant_id = $5 AND name = $6 AND status = 'ISSUED'",
    )
    .bind(end.status.as_str())
    .bind(i64::from(end.attempts))
    .bind(end.next_charge_at.map(micros))
    .bind(micros(now))
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // The invoice was ISSUED: a new status is a change, audited.
    if ended > 0 && end.status != InvoiceStatus::Issued {
        audit_in(
            tx,
            Some(tenant_id),
            CHARGE_WORKER,
            AuditAction::invoice_status(end.status),
            &format!("invoice/{invoice}"),
            None,
            Some(serde_json::json!({"status": end.status.as_str(), "attempts": end.attempts})),
            now,
        )
        .await?;
    }
    Ok(())
}

async fn release_charge(
    store: &SqlStore,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
    owner: &str,
) -> Result<()> {
    let (tenant_id, invoice, owner) = (tenant_id.clone(), invoice.clone(), owner.to_owned());
    store
        .write(move |tx| Box::pin(async move { release_charge_in(tx, &tenant_id, &invoice, &owner).await }))
        .await
}

async fn release_charge_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
    owner: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE invoices SET lease_owner = NULL, lease_until = NULL WHERE tenant_id = $1 AND name = $2 \
         AND lease_owner = $3",
    )
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_invoice_status(
    store: &SqlStore,
    tenant_id: &TenantId,
    name: &InvoiceName,
    from: &[InvoiceStatus],
    to: InvoiceStatus,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<StoredInvoice> {
    let (tenant_id, name, from, to, actor, now) = (
        tenant_id.clone(),
        name.to_owned(),
        from.to_vec(),
        to,
        actor.to_owned(),
        now,
    );
    store
        .write(move |tx| {
            Box::pin(
                async move { set_invoice_status_in(tx, &tenant_id, &name, &from, to, &actor, now).await },
            )
        })
        .await
}

async fn set_invoice_status_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    name: &InvoiceName,
    from: &[InvoiceStatus],
    to: InvoiceStatus,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<StoredInvoice> {
    if to == InvoiceStatus::Refunded {
        return Err(refused(
            Reason::InvoiceWrongStatus,
            format!(
                "invoice {name:?} cannot just be marked {to}: a refund goes through the payment provider"
            ),
        ));
    }
    let change = OperatorChange {
        from,
        to,
        next_charge_at: None,
        action: AuditAction::invoice_status(to),
        doing: format!("become {to}"),
    };
    operator_change_in(tx, tenant_id, name, &change, actor, now).await
}

/// Refuses a status change while a charge attempt of the invoice is not
/// settled: its worker may have lost its lease while the provider took the
/// money, and the next worker asks the provider again under the same key.
/// Cancelling in between would leave money taken on a cancelled invoice;
/// once the attempt is settled (by its worker or the next), the invoice is
/// PAID or may be cancelled.
async fn refuse_unsettled_charge(tx: &mut Tx, tenant_id: &TenantId, name: &InvoiceName) -> Result<()> {
    let pending = sqlx::query(
        "SELECT 1 FROM invoice_charges WHERE tenant_id = $1 AND invoice = $2 AND outcome = 'PENDING' LIMIT 1",
    )
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    if pending.is_some() {
        return Err(refused(
            Reason::InvoiceBeingCharged,
            format!(
                "invoice {name:?} has a charge attempt whose outcome is not known yet (the provider may \
                 have taken the money); the charge job settles it, try again after that"
            ),
        ));
    }
    Ok(())
}

/// A refusal: the request conflicts with the stored state (409).
fn refused(reason: Reason, message: String) -> StoreError {
    StoreError::Conflict(reason, message)
}

async fn invoice_refunds(
    store: &SqlStore,
    tenant_id: &TenantId,
    invoice: &InvoiceName,
) -> Result<Vec<RefundRecord>> {
    let rows = sqlx::query(concat!(
        refund_select!(),
        " WHERE r.tenant_id = $1 AND r.invoice = $2 ORDER BY r.started_at, r.credit_note"
    ))
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(refund_from).collect()
}

async fn begin_refund(
    store: &SqlStore,
    tenant_id: &TenantId,
    owner: &str,
    refund: &RefundStart,
    from: &[InvoiceStatus],
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<RefundRecord> {
    let (tenant_id, owner, refund, from) =
        (tenant_id.clone(), owner.to_owned(), refund.clone(), from.to_vec());
    store
        .write(move |tx| {
            Box::pin(async move {
                begin_refund_in(tx, &tenant_id, &owner, &refund, &from, now, lease_until).await
            })
        })
        .await
}

async fn refunds_in(tx: &mut Tx, tenant_id: &TenantId, invoice: &InvoiceName) -> Result<Vec<RefundRecord>> {
    let rows = sqlx::query(concat!(
        refund_select!(),
        " WHERE r.tenant_id = $1 AND r.invoice = $2 ORDER BY r.started_at, r.credit_note"
    ))
    .bind(tenant_id.as_str())
    .bind(invoice.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(refund_from).collect()
}

/// What the refunds of `charge` have taken of it: the SUCCEEDED ones, and
/// the PENDING ones (their money may have moved). FAILED ones took nothing.
fn taken(refunds: &[RefundRecord], charge: &str) -> (i64, i64) {
    let sum = |state: RefundState| {
        refunds
            .iter()
            .filter(|r| r.charge == charge && r.state == state)
            .fold(0i64, |a, r| a.saturating_add(r.amount_cents))
    };
    (sum(RefundState::Succeeded), sum(RefundState::Pending))
}

async fn begin_refund_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    owner: &str,
    start: &RefundStart,
    from: &[InvoiceStatus],
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<RefundRecord> {
    let name = start.invoice();
    // The lease first, as a conditional write: of two concurrent takers
    // (a charge worker, another refund), one gets it and the other sees it
    // held (PostgreSQL re-evaluates the condition on the newest row). So the
    // refunds read below cannot change before this transaction commits.
    let row = sqlx::query(concat!(
        "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE tenant_id = $3 AND name = $4 \
         AND (lease_until IS NULL OR lease_until <= $5) RETURNING ",
        invoice_columns!()
    ))
    .bind(owner)
    .bind(micros(lease_until))
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .bind(micros(now))
    .fetch_optional(&mut **tx)
    .await?;
    let refunds = refunds_in(tx, tenant_id, name).await?;
    let pending = refunds.iter().find(|r| r.state == RefundState::Pending);
    let Some(row) = row else {
        let held: Option<Option<i64>> =
            sqlx::query_scalar("SELECT lease_until FROM invoices WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id.as_str())
                .bind(name.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        let Some(until) = held else {
            return Err(StoreError::NotFound(format!("invoice {name:?} does not exist")));
        };
        let until = opt_timestamp("invoices.lease_until", until)?.unwrap_or(now);
        return Err(match pending {
            Some(p) => refused(
                Reason::RefundInProgress,
                format!(
                    "a refund of invoice {name:?} ({}) is in progress (or was interrupted); try again after {until}",
                    p.credit_note
                ),
            ),
            None => refused(
                Reason::InvoiceBeingCharged,
                format!("invoice {name:?} is being charged right now; try again after {until}"),
            ),
        });
    };
    let invoice = invoice_from(&row)?;
    let new = match start {
        RefundStart::Resume { idempotency_key, .. } => {
            return match pending {
                // Resumed: the refund as first recorded, under the same key.
                Some(p) if &p.idempotency_key == idempotency_key => Ok(p.clone()),
                Some(p) => Err(refused(
                    Reason::RefundInProgress,
                    format!(
                        "invoice {name:?} has another refund pending ({}, key {:?})",
                        p.credit_note, p.idempotency_key
                    ),
                )),
                None => Err(refused(
                    Reason::RefundInProgress,
                    format!("the refund {idempotency_key:?} of invoice {name:?} is no longer pending"),
                )),
            };
        }
        RefundStart::New(new) => new,
    };
    if let Some(p) = pending {
        return Err(refused(
            Reason::RefundInProgress,
            format!(
                "invoice {name:?} has a refund that was interrupted ({}, {}); it must be finished first",
                p.credit_note,
                credit_note::money(p.amount_cents, &p.currency)
            ),
        ));
    }
    let status = invoice.invoice.status;
    if status == InvoiceStatus::Refunded {
        return Err(refused(
            Reason::InvoiceAlreadyRefunded,
            format!(
                "invoice {name:?} is already refunded in full ({}): nothing remains to refund",
                refunds
                    .iter()
                    .filter(|r| r.state == RefundState::Succeeded)
                    .map(|r| format!("{} by {}", r.credit_note, r.actor))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if !from.contains(&status) {
        return Err(refused(
            Reason::InvoiceWrongStatus,
            format!(
                "invoice {name:?} is {status}; only {} invoices can be refunded",
                from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            ),
        ));
    }
    let charge: Option<(String, Option<String>, i64, String)> = sqlx::query_as(
        "SELECT outcome, reference, amount, currency FROM invoice_charges WHERE tenant_id = $1 \
         AND idempotency_key = $2 AND invoice = $3",
    )
    .bind(tenant_id.as_str())
    .bind(&new.charge)
    .bind(name.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let (paid, currency) = match charge {
        Some((outcome, Some(reference), paid, currency))
            if outcome == ChargeOutcome::Succeeded.as_str() && reference == new.reference =>
        {
            (paid, currency)
        }
        _ => {
            return Err(refused(
                Reason::NothingToRefund,
                format!(
                    "invoice {name:?} has no successful charge {:?} with reference {:?} to refund",
                    new.charge, new.reference
                ),
            ));
        }
    };
    if new.currency != currency {
        return Err(refused(
            Reason::NothingToRefund,
            format!("invoice {name:?} was paid in {currency}, not {}", new.currency),
        ));
    }
    let (refunded, in_flight) = taken(&refunds, &new.charge);
    if let Some(total) = new.provider_total {
        let unrecorded = total.saturating_sub(refunded).saturating_sub(in_flight);
        if unrecorded != new.amount_cents {
            return Err(refused(
                Reason::RefundInProgress,
                format!(
                    "invoice {name:?}: the provider reports {} refunded and the books now lack {}, not {}; \
                     the provider's refund was recorded meanwhile, or is to be compared again",
                    credit_note::money(total, &currency),
                    credit_note::money(unrecorded.max(0), &currency),
                    credit_note::money(new.amount_cents, &currency),
                ),
            ));
        }
    }
    let remaining = paid.saturating_sub(refunded).saturating_sub(in_flight);
    if new.amount_cents <= 0 || new.amount_cents > remaining {
        return Err(refused(
            Reason::RefundExceedsRemaining,
            format!(
                "invoice {name:?} has {} left to refund ({} paid, {} refunded); {} is {}",
                credit_note::money(remaining, &currency),
                credit_note::money(paid, &currency),
                credit_note::money(refunded.saturating_add(in_flight), &currency),
                credit_note::money(new.amount_cents, &currency),
                if new.amount_cents <= 0 {
                    "not more than zero"
                } else {
                    "more than that"
                }
            ),
        ));
    }
    credit_note::check(&new.lines, new.amount_cents)
        .map_err(|e| StoreError::Corrupt(format!("the credit note of invoice {name:?}: {e}")))?;
    // The tenant's next number, in this transaction: concurrent refunds of
    // the tenant's invoices wait for each other here (the row's lock), so no
    // number is given twice, and a refund rolled back gives its number back.
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO credit_note_sequences (tenant_id, last) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last = credit_note_sequences.last + 1 RETURNING last",
    )
    .bind(tenant_id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let number =
        u64::try_from(number).map_err(|_| StoreError::Corrupt("credit_note_sequences.last".into()))?;
    let credit_note = credit_note::credit_note_name(new.started_at, number);
    let record = RefundRecord {
        idempotency_key: credit_note::refund_key(&new.charge, &credit_note),
        credit_note,
        invoice: new.invoice.clone(),
        charge: new.charge.clone(),
        reference: new.reference.clone(),
        amount_cents: new.amount_cents,
        currency: new.currency.clone(),
        state: RefundState::Pending,
        reason: new.reason.clone(),
        lines: new.lines.clone(),
        failure: None,
        refund_reference: None,
        actor: new.actor.clone(),
        started_at: new.started_at,
        settled_at: None,
    };
    let inserted = sqlx::query(
        "INSERT INTO invoice_refunds (tenant_id, idempotency_key, credit_note, invoice, charge, reference, \
         amount, currency, state, reason, credit_reason, lines, refund_reference, actor, started_at, settled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', NULL, $9, $10, NULL, $11, $12, NULL) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(tenant_id.as_str())
    .bind(&record.idempotency_key)
    .bind(&record.credit_note)
    .bind(name.as_str())
    .bind(&record.charge)
    .bind(&record.reference)
    .bind(record.amount_cents)
    .bind(&record.currency)
    .bind(&record.reason)
    .bind(crate::records::encode_credit_note_lines(&record.lines)?)
    .bind(&record.actor)
    .bind(micros(record.started_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // The key names the tenant's charge and a number never given twice:
        // no honest request meets it.
        return Err(refused(
            Reason::RefundKeyReused,
            format!("the refund key {:?} is already used", record.idempotency_key),
        ));
    }
    Ok(record)
}

async fn settle_refund(
    store: &SqlStore,
    tenant_id: &TenantId,
    owner: &str,
    refund: &RefundRecord,
    now: Timestamp,
) -> Result<StoredInvoice> {
    let (tenant_id, owner, refund) = (tenant_id.clone(), owner.to_owned(), refund.clone());
    store
        .write(move |tx| {
            Box::pin(async move { settle_refund_in(tx, &tenant_id, &owner, &refund, now).await })
        })
        .await
}

async fn settle_refund_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    owner: &str,
    r: &RefundRecord,
    now: Timestamp,
) -> Result<StoredInvoice> {
    let name = &r.invoice;
    if r.state == RefundState::Pending {
        return Err(StoreError::Corrupt(format!(
            "refund {:?} settled as PENDING",
            r.idempotency_key
        )));
    }
    hold(tx, tenant_id, name, owner).await?;
    let before = invoice_in(tx, tenant_id, name).await?;
    let settled = sqlx::query(
        "UPDATE invoice_refunds SET state = $1, reason = $2, refund_reference = $3, settled_at = $4 \
         WHERE tenant_id = $5 AND idempotency_key = $6 AND invoice = $7 AND state = 'PENDING'",
    )
    .bind(r.state.as_str())
    .bind(&r.failure)
    .bind(&r.refund_reference)
    .bind(micros(now))
    .bind(tenant_id.as_str())
    .bind(&r.idempotency_key)
    .bind(name.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if settled > 0 {
        let succeeded = r.state == RefundState::Succeeded;
        let paid: i64 = sqlx::query_scalar(
            "SELECT amount FROM invoice_charges WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(tenant_id.as_str())
        .bind(&r.charge)
        .fetch_one(&mut **tx)
        .await?;
        let (refunded, _) = taken(&refunds_in(tx, tenant_id, name).await?, &r.charge);
        // Refunded in full: the charge and the invoice say so. Before that
        // (a partial refund) the invoice stays PAID.
        let whole = succeeded && refunded >= paid;
        if whole {
            sqlx::query(
                "UPDATE invoice_charges SET outcome = 'REFUNDED', settled_at = $1 \
                 WHERE tenant_id = $2 AND idempotency_key = $3 AND outcome = 'SUCCEEDED'",
            )
            .bind(micros(now))
            .bind(tenant_id.as_str())
            .bind(&r.charge)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE invoices SET status = 'REFUNDED', next_charge_at = NULL, updated_at = $1 \
                 WHERE tenant_id = $2 AND name = $3",
            )
            .bind(micros(now))
            .bind(tenant_id.as_str())
            .bind(name.as_str())
            .execute(&mut **tx)
            .await?;
            // Refunded in full: the prepaid credits that paid the rest of it
            // come back too.
            super::credits::give_back_in(tx, tenant_id, &before.invoice, &r.actor, now).await?;
        }
        let mut after = summary(&before.invoice);
        if whole {
            after["status"] = InvoiceStatus::Refunded.as_str().into();
        }
        after["credit_note"] = r.credit_note.clone().into();
        after["credit_note_reason"] = r.reason.clone().into();
        after["amount_cents"] = r.amount_cents.into();
        after["refunded_cents"] = refunded.into();
        after["refunded_charge"] = r.charge.clone().into();
        after["reference"] = r.reference.clone().into();
        after["idempotency_key"] = r.idempotency_key.clone().into();
        if let Some(reference) = &r.refund_reference {
            after["refund_reference"] = reference.clone().into();
        }
        if let Some(failure) = &r.failure {
            after["reason"] = failure.clone().into();
        }
        audit_in(
            tx,
            Some(tenant_id),
            &r.actor,
            if succeeded {
                AuditAction::InvoiceRefund
            } else {
                AuditAction::InvoiceRefundFailed
            },
            &format!("invoice/{name}"),
            Some(summary(&before.invoice)),
            Some(after),
            now,
        )
        .await?;
        if succeeded {
            let cn = format!("credit_note/{}", r.credit_note);
            emit_in(tx, tenant_id, EventType::CreditNoteCreated, &cn, None, now).await?;
        }
        if whole {
            let target = format!("invoice/{name}");
            emit_in(tx, tenant_id, EventType::InvoiceRefunded, &target, None, now).await?;
        }
    }
    // Settled before (nothing to do: the provider's answer is the same) or now.
    sqlx::query(
        "UPDATE invoices SET lease_owner = NULL, lease_until = NULL WHERE tenant_id = $1 AND name = $2 \
         AND lease_owner = $3",
    )
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    invoice_in(tx, tenant_id, name).await
}

/// An invoice read inside `tx`; `NotFound` if there is none.
async fn invoice_in(tx: &mut Tx, tenant_id: &TenantId, name: &InvoiceName) -> Result<StoredInvoice> {
    let row = sqlx::query(concat!(
        "SELECT ",
        invoice_columns!(),
        " FROM invoices WHERE tenant_id = $1 AND name = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(name.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("invoice {name:?} does not exist")))?;
    invoice_from(&row)
}
