//! Dunning: what happens when invoices stay unpaid.
//!
//! The timeline (defaults): a period ends; a day later (the grace) its
//! invoice is finalized and charged; declined, it is retried 1, 3 and 7 days
//! after finalization ([`InvoiceSettings`](crate::invoices::InvoiceSettings)),
//! then it is OVERDUE (the store keeps when). Whenever the tenant gets a new
//! primary or secondary payment method, its unpaid invoices are charged
//! again at once ([`charge_again`]); so does the operator's charge-now. An
//! invoice OVERDUE for longer than the suspension delay (14 days) suspends
//! its tenant ([`suspend_overdue`], a job): quota reservations are refused
//! (403, `TENANT_SUSPENDED`) while reads, usage reports, payments and payment-method
//! changes go on. Paying or cancelling the last such invoice lifts the
//! suspension in the same transaction (the store does, in `settle_charge`
//! and `set_invoice_status`); the operator may lift it by hand
//! ([`reinstate`]), which holds until another invoice goes OVERDUE and
//! stays so past the delay. A refused reservation says why with
//! [`reservation_refused`].

use jiff::Timestamp;
use tollgate_domain::dunning::{self, Suspension, Unpaid};
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Store, StoreError};

use crate::{AppError, JobContext};

/// Who suspends tenants, in the audit trail.
pub const SUSPENDER: &str = "tollgate/dunning";

/// Tenants looked at per page by [`suspend_overdue`].
const PAGE: u32 = 100;

/// Suspends every tenant that has an invoice OVERDUE for longer than the
/// suspension delay at `now` (none when the delay is off); returns how many
/// it suspended. A tenant that cannot be suspended is logged and skipped;
/// the last error is returned after the others are done.
pub async fn suspend_overdue(ctx: &JobContext, now: Timestamp) -> Result<usize, StoreError> {
    let Some(delay) = ctx.invoicing.suspend_after else {
        return Ok(0);
    };
    let overdue_before = now.checked_sub(delay).unwrap_or(Timestamp::MIN);
    let store = ctx.store.as_ref();
    let mut suspended = 0;
    let mut failed = None;
    let mut after: Option<TenantId> = None;
    loop {
        let page = store
            .suspension_candidates(overdue_before, after.as_ref(), PAGE)
            .await?;
        for tenant_id in &page {
            match store
                .suspend_tenant(tenant_id, overdue_before, SUSPENDER, now)
                .await
            {
                Ok(Some(s)) => {
                    suspended += 1;
                    let invoices: Vec<&str> = s.invoices.iter().map(InvoiceName::as_str).collect();
                    tracing::warn!(
                        tenant = tenant_id.as_str(),
                        invoices = invoices.join(","),
                        "tenant suspended for unpaid invoices"
                    );
                }
                // Paid, cancelled or suspended meanwhile.
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tenant = tenant_id.as_str(), error = %e, "cannot suspend the tenant");
                    failed = Some(e);
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
        after = page.last().cloned();
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(suspended),
    }
}

/// The operator lifts a tenant's suspension by hand (audited); the invoices
/// OVERDUE by now no longer suspend it, the next one to go OVERDUE does once
/// past the delay. Refused (409, `TENANT_NOT_SUSPENDED`) when it is not
/// suspended. Returns the tenant after.
pub async fn reinstate(
    store: &dyn Store,
    tenant: &Tenant,
    actor: &str,
    now: Timestamp,
) -> Result<Tenant, AppError> {
    Ok(store.reinstate_tenant(&tenant.id, actor, now).await?)
}

/// Why a suspended tenant's new quota reservation is refused: the 403
/// (`TENANT_SUSPENDED`) naming the invoices it has left unpaid now and what
/// they add up to (or a store error reading them). The reservation path
/// learns of the suspension from the tenant's row, which the request read
/// already; only a refusal reads more.
pub async fn reservation_refused(store: &dyn Store, tenant: &Tenant) -> AppError {
    let Some(suspension) = &tenant.suspension else {
        return tollgate_domain::Error::internal(format!(
            "a reservation of tenant {} was blocked, but it is not suspended",
            tenant.name
        ))
        .into();
    };
    match refusal(store, tenant, suspension).await {
        Ok(e) => e.into(),
        Err(e) => e.into(),
    }
}

/// The refusal of a suspended tenant's reservation, naming the invoices it
/// has left unpaid now and what they add up to.
async fn refusal(
    store: &dyn Store,
    tenant: &Tenant,
    suspension: &Suspension,
) -> Result<tollgate_domain::Error, StoreError> {
    let unpaid: Vec<Unpaid> = store
        .overdue_invoices(&tenant.id)
        .await?
        .into_iter()
        .map(|i| Unpaid {
            total_cents: i.invoice.totals.total,
            currency: i.invoice.currency.clone(),
            overdue_since: i.overdue_at.unwrap_or(suspension.since),
            name: i.invoice.name,
        })
        .collect();
    Ok(dunning::refusal(tenant.name.as_str(), suspension, &unpaid))
}

/// Charges the tenant's unpaid invoices again (OVERDUE ones, and ISSUED
/// ones waiting for a later retry): they become due now, audited with
/// `actor`, and the next charge pass takes them. Called after a change that
/// gives a charge round a new method to try. Never fails the change that
/// called it: a store error is logged and nothing is scheduled (the
/// schedule, or the operator's charge-now, still applies). Returns the
/// names it made due.
pub async fn charge_again(
    store: &dyn Store,
    tenant_id: &TenantId,
    actor: &str,
    now: Timestamp,
) -> Vec<InvoiceName> {
    match store.schedule_unpaid_charges(tenant_id, actor, now).await {
        Ok(names) => {
            if !names.is_empty() {
                let list: Vec<&str> = names.iter().map(InvoiceName::as_str).collect();
                tracing::info!(
                    tenant = tenant_id.as_str(),
                    invoices = list.join(","),
                    "unpaid invoices charged again after a payment-method change"
                );
            }
            names
        }
        Err(e) => {
            tracing::warn!(
                tenant = tenant_id.as_str(),
                error = %e,
                "cannot charge the unpaid invoices again after a payment-method change; they keep their schedule"
            );
            Vec::new()
        }
    }
}
