//! Refunds: all or part of a PAID invoice's successful charge given back
//! through the payment provider that took it, each refund a numbered credit
//! note, leased and recorded the way charging is.
//!
//! In one store transaction the invoice's lease is taken (the lease the
//! charge job takes, so a charge and a refund never overlap), what remains
//! refundable is checked (what the charge took, less the SUCCEEDED and
//! PENDING refunds), the tenant's next credit note number is taken and the
//! refund is written PENDING with the idempotency key
//! `refund/<charge key>/<credit note>`; then the provider is asked with that
//! key; then the refund is settled in one transaction that first re-checks
//! the lease: the credit note SUCCEEDED with the provider's refund id (and,
//! once the refunds add up to the charge, the charge and the invoice
//! REFUNDED), audit entry, lease released. A crash between the provider call
//! and the settlement leaves the credit note PENDING; refunding the invoice
//! again once the lease has expired asks the provider again with the same
//! key (and the same amount), which answers as the first time without
//! refunding twice. A refusal by the provider settles it FAILED: it counts
//! for nothing, and the operator may refund again (a new credit note).

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::credit_note::{self, money};
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::{Error, Reason};
use tollgate_payments::ProviderError;
use tollgate_store::{
    ChargeOutcome, ChargeRecord, NewRefund, RefundRecord, RefundStart, RefundState, StoredInvoice,
};

use crate::JobContext;
use crate::invoices::CHARGE_LEASE;

/// How long a refund holds the invoice: as long as a charge does.
pub const REFUND_LEASE: SignedDuration = CHARGE_LEASE;

/// What the operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAsk {
    /// In minor units of the invoice's currency; `None`: everything that remains.
    pub amount_cents: Option<i64>,
    /// Why (required; printed on the credit note).
    pub reason: String,
}

impl RefundAsk {
    /// Reads an ask as the CLI and the API take it: `amount` in major units
    /// of the invoice's `currency` ("12.34" USD, "1500" JPY; see
    /// [`credit_note::parse_amount`]) or absent, `reason` required
    /// ([`credit_note::check_reason`]). Errors name the field.
    pub fn parse(amount: Option<&str>, reason: &str, currency: &str) -> Result<Self, Error> {
        let reason = credit_note::check_reason("reason", reason)?;
        Ok(Self {
            amount_cents: amount
                .map(|a| credit_note::parse_amount("amount", a, currency))
                .transpose()?,
            reason,
        })
    }

    /// The currency a refund of invoice `name` of the tenant is asked in:
    /// the invoice's (USD's decimals if there is no such invoice; the refund
    /// then answers that it does not exist).
    pub async fn currency_of(
        store: &dyn tollgate_store::Store,
        tenant_id: &tollgate_domain::ids::TenantId,
        name: &tollgate_domain::ids::InvoiceName,
    ) -> Result<String, tollgate_store::StoreError> {
        Ok(store
            .invoice(tenant_id, name)
            .await?
            .map_or_else(|| "USD".to_owned(), |i| i.invoice.currency))
    }
}

/// What a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    /// The invoice after the refund: REFUNDED once refunded in full, PAID
    /// before that.
    pub invoice: StoredInvoice,
    /// The refund's credit note as settled (SUCCEEDED).
    pub refund: RefundRecord,
    /// Whether this call finished a refund that an earlier one recorded but
    /// could not settle (provider unreachable, a crash) instead of making the
    /// one asked for.
    pub resumed: bool,
    /// What the invoice's charge took, in cents.
    pub paid_cents: i64,
    /// What is refunded of it now (every SUCCEEDED credit note), in cents.
    pub refunded_cents: i64,
}

impl RefundOutcome {
    /// What remains refundable, in cents.
    pub fn remaining_cents(&self) -> i64 {
        self.paid_cents.saturating_sub(self.refunded_cents)
    }
}

/// What to do about a refund request, decided from what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Record this new credit note, then ask the provider.
    Start(NewRefund),
    /// Ask the provider again about this PENDING credit note, with its key.
    Resume(RefundRecord),
}

/// What an invoice's refunds have given back: the SUCCEEDED ones, in cents.
/// PENDING ones are not refunded (yet), FAILED ones never.
pub fn refunded_cents(refunds: &[RefundRecord]) -> i64 {
    refunds
        .iter()
        .filter(|r| r.state == RefundState::Succeeded)
        .fold(0i64, |a, r| a.saturating_add(r.amount_cents))
}

fn refused(reason: Reason, message: String) -> Error {
    Error::precondition(message).with_reason(reason)
}

/// Decides what a refund of `stored` asked by `actor` at `now` does, given
/// the invoice's refunds and charge attempts; an error is the refusal
/// (FailedPrecondition) with its reason. Refused: an invoice a worker holds
/// (a charge in progress, or a refund not settled whose lease has not
/// expired), one refunded in full, one that is not PAID or has no
/// successful charge with a provider reference, an amount above what
/// remains. A PENDING refund whose lease expired is resumed instead of
/// making the one asked for.
pub fn plan(
    stored: &StoredInvoice,
    refunds: &[RefundRecord],
    charges: &[ChargeRecord],
    ask: &RefundAsk,
    actor: &str,
    now: Timestamp,
) -> Result<Plan, Error> {
    let name = &stored.invoice.name;
    let pending = refunds.iter().find(|r| r.state == RefundState::Pending);
    if let Some(until) = stored.leased_until.filter(|_| stored.is_leased(now)) {
        return Err(match pending {
            Some(p) => refused(
                Reason::RefundInProgress,
                format!(
                    "a refund of invoice {name} ({}) is in progress (or was interrupted); try again after {until}",
                    p.credit_note
                ),
            ),
            None => refused(
                Reason::InvoiceBeingCharged,
                format!("invoice {name} is being charged right now; try again after {until}"),
            ),
        });
    }
    if let Some(p) = pending {
        return Ok(Plan::Resume(p.clone()));
    }
    let status = stored.invoice.status;
    if status == InvoiceStatus::Refunded {
        let notes: Vec<String> = refunds
            .iter()
            .filter(|r| r.state == RefundState::Succeeded)
            .map(|r| format!("{} by {}", r.credit_note, r.actor))
            .collect();
        return Err(refused(
            Reason::InvoiceAlreadyRefunded,
            format!(
                "invoice {name} is already refunded in full ({}: {}): nothing remains to refund",
                InvoiceStatus::Refunded,
                notes.join(", ")
            ),
        ));
    }
    if !InvoiceStatus::REFUNDABLE.contains(&status) {
        return Err(refused(
            Reason::InvoiceWrongStatus,
            format!("invoice {name} is {status}; only PAID invoices can be refunded"),
        ));
    }
    let paid = charges
        .iter()
        .find(|c| c.outcome == ChargeOutcome::Succeeded)
        .ok_or_else(|| {
            refused(
                Reason::NothingToRefund,
                format!("invoice {name} has no successful charge to refund"),
            )
        })?;
    let reference = paid.reference.clone().ok_or_else(|| {
        refused(
            Reason::NothingToRefund,
            format!("the charge that paid {name} has no provider reference to refund"),
        )
    })?;
    let currency = &paid.currency;
    let refunded = refunded_cents(refunds);
    let remaining = paid.amount_cents.saturating_sub(refunded);
    let amount = ask.amount_cents.unwrap_or(remaining);
    if amount <= 0 || amount > remaining {
        let asked = match ask.amount_cents {
            Some(a) => format!("; {} is more than that", money(a, currency)),
            None => String::new(),
        };
        return Err(refused(
            Reason::RefundExceedsRemaining,
            format!(
                "invoice {name} has {} left to refund ({} paid, {} refunded){asked}",
                money(remaining, currency),
                money(paid.amount_cents, currency),
                money(refunded, currency),
            ),
        )
        .with_metadata("remaining_cents", remaining.to_string()));
    }
    Ok(Plan::Start(NewRefund {
        invoice: name.clone(),
        charge: paid.idempotency_key.clone(),
        reference,
        amount_cents: amount,
        currency: currency.clone(),
        reason: ask.reason.clone(),
        lines: credit_note::lines(&stored.invoice, amount),
        actor: actor.to_owned(),
        started_at: now,
        provider_total: None,
    }))
}

/// Refunds `ask` of invoice `name` of the tenant through the payment
/// provider that took its charge, as one new credit note recorded before and
/// settled after the provider call (see the module), or finishes the
/// interrupted one it finds.
///
/// Errors: NotFound without a finalized invoice of that name;
/// FailedPrecondition when [`plan`] refuses or the store does (more than
/// remains; the invoice taken meanwhile), when the provider refuses (the
/// credit note is recorded FAILED with its reason and counts for nothing),
/// or when the lease was lost; Unavailable when the provider cannot be
/// reached (the credit note stays PENDING and is resumed by the next refund
/// of the invoice once the lease has expired) or the database is
/// unavailable.
pub async fn refund_invoice(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &InvoiceName,
    ask: &RefundAsk,
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
    let (start, resumed) = match plan(&stored, &refunds, &charges, ask, actor, now)? {
        Plan::Start(r) => (RefundStart::New(r), false),
        Plan::Resume(r) => (
            RefundStart::Resume {
                invoice: r.invoice,
                idempotency_key: r.idempotency_key,
            },
            true,
        ),
    };
    let lease_until = now + REFUND_LEASE;
    let mut refund = store
        .begin_refund(
            tenant_id,
            &ctx.worker_id,
            &start,
            InvoiceStatus::REFUNDABLE,
            now,
            lease_until,
        )
        .await?;
    // The provider that took the charge refunds it, whatever the default is now.
    let charge = charges.iter().find(|c| c.idempotency_key == refund.charge);
    let provider_name = charge
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
    let refused_because = match answer {
        Ok(reference) => {
            refund.refund_reference = Some(reference);
            None
        }
        Err(ProviderError::Refused(reason)) => Some(reason),
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(tenant = tenant_id.as_str(), invoice = name.as_str(), credit_note = refund.credit_note.as_str(), error = %e, "payment provider unavailable; the refund stays pending");
            return Err(Error::unavailable(format!(
                "the payment provider could not be reached ({e}); the refund of invoice {name} ({}, {}) is \
                 recorded as pending: refund the invoice again after {lease_until} to finish it (the provider \
                 refunds it once)",
                refund.credit_note,
                money(refund.amount_cents, &refund.currency)
            )));
        }
    };
    refund.state = if refused_because.is_some() {
        RefundState::Failed
    } else {
        RefundState::Succeeded
    };
    refund.failure = refused_because.clone();
    let settled_at = ctx.clock.now();
    let invoice = store
        .settle_refund(tenant_id, &ctx.worker_id, &refund, settled_at)
        .await?;
    tracing::info!(
        tenant = tenant_id.as_str(),
        invoice = name.as_str(),
        credit_note = refund.credit_note.as_str(),
        amount_cents = refund.amount_cents,
        state = refund.state.as_str(),
        resumed,
        "refund"
    );
    if let Some(reason) = refused_because {
        return Err(refused(
            Reason::RefundRefused,
            format!(
                "the payment provider refused to refund invoice {name}: {reason} (credit note {} is recorded as FAILED)",
                refund.credit_note
            ),
        ));
    }
    refund.settled_at = Some(settled_at);
    let after = store.invoice_refunds(tenant_id, name).await?;
    Ok(RefundOutcome {
        invoice,
        refund,
        resumed,
        paid_cents: charge.map_or(0, |c| c.amount_cents),
        refunded_cents: refunded_cents(&after),
    })
}

/// What [`record_provider_refund`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderRefund {
    /// Recorded as this SUCCEEDED credit note.
    Recorded(Box<RefundRecord>),
    /// Not recorded, for good (the invoice is not PAID, or the amount is
    /// above what remains by Tollgate's books): said in the log for the
    /// operator to reconcile.
    Refused(String),
}

/// Records a refund the payment provider made without Tollgate (from its
/// dashboard) as a SUCCEEDED credit note of `amount_cents`, so that the
/// invoice says what was given back: numbered and leased like every refund,
/// but the provider is not asked (it did it already). Under the lease the
/// store checks that `amount_cents` is still what the books lack of
/// `provider_total` (the provider's refunded total), so the same event
/// handled twice at once records it once. `Err` only when trying
/// again later may succeed (a charge or a refund holds the invoice, the
/// database is unavailable): a webhook then answers an error and the
/// provider sends the event again.
pub async fn record_provider_refund(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &InvoiceName,
    amount_cents: i64,
    provider_total: i64,
    refund_reference: &str,
    actor: &str,
) -> Result<ProviderRefund, Error> {
    let store = ctx.store.as_ref();
    let now = ctx.clock.now();
    let Some(stored) = store.invoice(tenant_id, name).await? else {
        return Ok(ProviderRefund::Refused(format!(
            "there is no finalized invoice {name:?}"
        )));
    };
    let refunds = store.invoice_refunds(tenant_id, name).await?;
    let charges = store.invoice_charges(tenant_id, name).await?;
    let ask = RefundAsk {
        amount_cents: Some(amount_cents),
        reason: format!("Refunded at the payment provider, outside Tollgate (refund {refund_reference})"),
    };
    let new = match plan(&stored, &refunds, &charges, &ask, actor, now) {
        // Checked again under the lease against the provider's total.
        Ok(Plan::Start(new)) => NewRefund {
            provider_total: Some(provider_total),
            ..new
        },
        Ok(Plan::Resume(pending)) => {
            // Tollgate's own refund is unsettled: once it is, the books are
            // compared again (the provider sends the event again).
            return Err(refused(
                Reason::RefundInProgress,
                format!(
                    "a refund of invoice {name} ({}) is unsettled; the provider's refund is recorded after it",
                    pending.credit_note
                ),
            ));
        }
        Err(e) if matches!(e.reason, Reason::RefundInProgress | Reason::InvoiceBeingCharged) => {
            return Err(e);
        }
        Err(e) => return Ok(ProviderRefund::Refused(e.message)),
    };
    let mut refund = store
        .begin_refund(
            tenant_id,
            &ctx.worker_id,
            &RefundStart::New(new),
            InvoiceStatus::REFUNDABLE,
            now,
            now + REFUND_LEASE,
        )
        .await?;
    refund.state = RefundState::Succeeded;
    refund.refund_reference = Some(refund_reference.to_owned());
    store
        .settle_refund(tenant_id, &ctx.worker_id, &refund, ctx.clock.now())
        .await?;
    tracing::warn!(
        tenant = tenant_id.as_str(),
        invoice = name.as_str(),
        credit_note = refund.credit_note.as_str(),
        amount_cents,
        refund_reference,
        "a refund made at the payment provider, outside Tollgate, is recorded as a credit note"
    );
    Ok(ProviderRefund::Recorded(Box::new(refund)))
}
