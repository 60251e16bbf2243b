//! Refunds: the successful charge of a PAID invoice given back through the
//! payment provider, leased and recorded the way charging is.
//!
//! In one store transaction the invoice's lease is taken (the lease the
//! charge job takes, so a charge and a refund never overlap) and the refund is
//! written PENDING with the idempotency key `refund/<charge key>`; then the
//! provider is asked with that key; then the refund is settled in one
//! transaction that first re-checks the lease: refund SUCCEEDED, charge
//! REFUNDED, invoice REFUNDED, audit entry, lease released. A crash between
//! the provider call and the settlement leaves the refund PENDING; refunding
//! the invoice again once the lease has expired asks the provider again with
//! the same key, which answers as the first time without refunding twice.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::Error;
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_payments::ProviderError;
use tollgate_store::{ChargeOutcome, ChargeRecord, RefundRecord, RefundState, StoredInvoice};

use crate::JobContext;
use crate::invoices::CHARGE_LEASE;

/// How long a refund holds the invoice: as long as a charge does.
pub const REFUND_LEASE: SignedDuration = CHARGE_LEASE;

/// What a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    /// The invoice after the refund (REFUNDED).
    pub invoice: StoredInvoice,
    /// The refund as settled (SUCCEEDED).
    pub refund: RefundRecord,
    /// Whether this call finished a refund that an earlier one recorded but
    /// could not settle (provider unreachable, a crash).
    pub resumed: bool,
}

/// What to do about a refund request, decided from what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Record this new refund, then ask the provider.
    Start(RefundRecord),
    /// Ask the provider again about this PENDING refund, with its key.
    Resume(RefundRecord),
}

/// The idempotency key of the refund of the charge attempt `charge_key`.
pub fn refund_key(charge_key: &str) -> String {
    format!("refund/{charge_key}")
}

/// Decides what a refund of `stored` asked by `actor` at `now` does, given
/// the invoice's refunds and charge attempts; an error is the refusal
/// (FailedPrecondition) with its reason. Refused: an invoice refunded
/// before, one a worker holds (a charge in progress, or a refund not settled
/// whose lease has not expired), one that is not PAID or has no successful
/// charge with a provider reference.
pub fn plan(
    stored: &StoredInvoice,
    refunds: &[RefundRecord],
    charges: &[ChargeRecord],
    actor: &str,
    now: Timestamp,
) -> Result<Plan, Error> {
    let name = &stored.invoice.name;
    if let Some(done) = refunds.iter().find(|r| r.state == RefundState::Succeeded) {
        return Err(Error::precondition(format!(
            "invoice {name} is already refunded ({}: {} by {})",
            InvoiceStatus::Refunded,
            done.settled_at.unwrap_or(done.started_at),
            done.actor
        )));
    }
    let pending = refunds.iter().find(|r| r.state == RefundState::Pending);
    if let Some(until) = stored.leased_until.filter(|_| stored.is_leased(now)) {
        return Err(Error::precondition(match pending {
            Some(_) => format!(
                "a refund of invoice {name} is in progress (or was interrupted); try again after {until}"
            ),
            None => format!("invoice {name} is being charged right now; try again after {until}"),
        }));
    }
    if let Some(p) = pending {
        return Ok(Plan::Resume(p.clone()));
    }
    let status = stored.invoice.status;
    if !InvoiceStatus::REFUNDABLE.contains(&status) {
        return Err(Error::precondition(format!(
            "invoice {name} is {status}; only PAID invoices can be refunded"
        )));
    }
    let paid = charges
        .iter()
        .find(|c| c.outcome == ChargeOutcome::Succeeded)
        .ok_or_else(|| Error::precondition(format!("invoice {name} has no successful charge to refund")))?;
    let reference = paid.reference.clone().ok_or_else(|| {
        Error::precondition(format!(
            "the charge that paid {name} has no provider reference to refund"
        ))
    })?;
    Ok(Plan::Start(RefundRecord {
        idempotency_key: refund_key(&paid.idempotency_key),
        invoice: name.clone(),
        charge: paid.idempotency_key.clone(),
        reference,
        amount_cents: paid.amount_cents,
        currency: paid.currency.clone(),
        state: RefundState::Pending,
        reason: None,
        actor: actor.to_owned(),
        started_at: now,
        settled_at: None,
    }))
}

/// Refunds invoice `name` of the tenant in full through `ctx.provider`,
/// recorded before and settled after the provider call (see the module).
///
/// Errors: NotFound without a finalized invoice of that name;
/// FailedPrecondition when [`plan`] refuses, when the provider refuses (the
/// refund is recorded FAILED with its reason and may be tried again), or
/// when the lease was lost; Unavailable when the provider cannot be reached
/// (the refund stays PENDING and is resumed by the next refund once the lease
/// has expired) or the database is unavailable.
pub async fn refund_invoice(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &InvoiceName,
    actor: &str,
    now: Timestamp,
) -> Result<RefundOutcome, Error> {
    let store = ctx.store.as_ref();
    let stored = store
        .invoice(tenant_id, name)
        .await?
        .ok_or_else(|| Error::not_found(format!("there is no finalized invoice {name:?}")))?;
    let refunds = store.invoice_refunds(tenant_id, name).await?;
    let charges = store.invoice_charges(tenant_id, name).await?;
    let (refund, resumed) = match plan(&stored, &refunds, &charges, actor, now)? {
        Plan::Start(r) => (r, false),
        Plan::Resume(r) => (r, true),
    };
    let lease_until = now + REFUND_LEASE;
    let mut refund = store
        .begin_refund(
            tenant_id,
            &ctx.worker_id,
            &refund,
            InvoiceStatus::REFUNDABLE,
            now,
            lease_until,
        )
        .await?;
    // The provider that took the charge refunds it, whatever the default is now.
    let provider_name = charges
        .iter()
        .find(|c| c.idempotency_key == refund.charge)
        .and_then(|c| c.method.as_ref())
        .map_or("test", |m| m.provider.as_str());
    let answer = match ctx.providers.get(provider_name) {
        Some(provider) => {
            provider
                .refund(&tollgate_payments::RefundRequest {
                    reference: &refund.reference,
                    amount_cents: refund.amount_cents,
                    idempotency_key: &refund.idempotency_key,
                })
                .await
        }
        None => Err(ProviderError::Unavailable(format!(
            "the charge was taken by the {provider_name:?} payment provider, which this process is not configured for"
        ))),
    };
    let refused = match answer {
        Ok(_) => None,
        Err(ProviderError::Refused(reason)) => Some(reason),
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(tenant = tenant_id.as_str(), invoice = name.as_str(), error = %e, "payment provider unavailable; the refund stays pending");
            return Err(Error::unavailable(format!(
                "the payment provider could not be reached ({e}); the refund of invoice {name} is recorded \
                 as pending: refund it again after {lease_until} to finish it (the provider refunds it once)"
            )));
        }
    };
    refund.state = if refused.is_some() {
        RefundState::Failed
    } else {
        RefundState::Succeeded
    };
    refund.reason = refused.clone();
    let settled_at = ctx.clock.now();
    let invoice = store
        .settle_refund(tenant_id, &ctx.worker_id, &refund, settled_at)
        .await?;
    tracing::info!(
        tenant = tenant_id.as_str(),
        invoice = name.as_str(),
        state = refund.state.as_str(),
        resumed,
        "refund"
    );
    if let Some(reason) = refused {
        return Err(Error::precondition(format!(
            "the payment provider refused to refund invoice {name}: {reason}"
        )));
    }
    refund.settled_at = Some(settled_at);
    Ok(RefundOutcome {
        invoice,
        refund,
        resumed,
    })
}
