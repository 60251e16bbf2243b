//! Provider webhooks (Stripe's `POST /webhooks/stripe`): what a verified
//! event changes.
//!
//! A webhook only hurries what Tollgate learns anyway. A payment's outcome is
//! never taken from the event: the invoice is leased and the provider asked
//! about the attempt by its reference, exactly as the charge job does after
//! a lost answer ([`invoices::settle_now`]); if a worker holds the invoice,
//! it (or the next one) settles it. A dispute is recorded against the
//! invoice its payment paid, once per dispute. Refunds made at the provider
//! without Tollgate (its dashboard) are recorded as credit notes
//! ([`refunds::record_provider_refund`]). An event is handled once:
//! its id is recorded after it was handled, and a redelivery (Stripe
//! delivers at least once) finds it and changes nothing.

use tollgate_domain::Error;
use tollgate_domain::ids::InvoiceName;
use tollgate_payments::ProviderEvent;
use tollgate_store::{Dispute, RefundState};

use crate::JobContext;
use crate::invoices::{self, SettleNow};
use crate::refunds::{self, ProviderRefund};

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Handled before (a redelivery): nothing changed.
    Duplicate,
    /// A type Tollgate does not act on.
    Ignored,
    /// About a payment Tollgate did not make (another system on the same
    /// provider account).
    Unknown,
    /// The payment's attempt was settled before: nothing to do.
    AlreadySettled { invoice: InvoiceName },
    /// The invoice's unsettled attempts were asked about and settled.
    Settled { invoice: InvoiceName },
    /// A worker holds the invoice and settles it.
    Held { invoice: InvoiceName },
    /// A dispute was recorded against the invoice (or had been).
    Disputed { invoice: InvoiceName },
    /// Refunds reported: `unrecorded_cents` of them were not made by
    /// Tollgate (e.g. from the provider's dashboard), recorded as
    /// `credit_note` when the invoice's books allow it.
    Refunded {
        invoice: InvoiceName,
        unrecorded_cents: i64,
        credit_note: Option<String>,
    },
}

impl Handled {
    /// The invoice the event was about, when Tollgate knows it.
    pub fn invoice(&self) -> Option<&InvoiceName> {
        match self {
            Self::AlreadySettled { invoice }
            | Self::Settled { invoice }
            | Self::Held { invoice }
            | Self::Disputed { invoice }
            | Self::Refunded { invoice, .. } => Some(invoice),
            Self::Duplicate | Self::Ignored | Self::Unknown => None,
        }
    }

    /// The credit note that records a refund made at the provider.
    pub fn credit_note(&self) -> Option<&str> {
        match self {
            Self::Refunded { credit_note, .. } => credit_note.as_deref(),
            _ => None,
        }
    }

    /// A short word for logs and the webhook's answer.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Unknown => "unknown_payment",
            Self::AlreadySettled { .. } => "already_settled",
            Self::Settled { .. } => "settled",
            Self::Held { .. } => "held_by_worker",
            Self::Disputed { .. } => "disputed",
            Self::Refunded { .. } => "refunded",
        }
    }
}

/// Handles a verified event of `provider` (see the module).
pub async fn handle(
    ctx: &JobContext,
    provider: &str,
    event_id: &str,
    event_type: &str,
    event: ProviderEvent,
) -> Result<Handled, Error> {
    let store = ctx.store.as_ref();
    if store.provider_event_seen(provider, event_id).await? {
        return Ok(Handled::Duplicate);
    }
    let handled = match event {
        ProviderEvent::Ignored => Handled::Ignored,
        ProviderEvent::PaymentSettled { reference } => {
            match store.charge_by_reference(provider, &reference).await? {
                None => Handled::Unknown,
                Some((tenant_id, charge)) => {
                    let invoice = charge.invoice.clone();
                    if charge.outcome != tollgate_store::ChargeOutcome::Pending {
                        Handled::AlreadySettled { invoice }
                    } else {
                        match invoices::settle_now(ctx, &tenant_id, &invoice).await? {
                            SettleNow::Done => Handled::Settled { invoice },
                            SettleNow::Held => Handled::Held { invoice },
                        }
                    }
                }
            }
        }
        ProviderEvent::Disputed {
            reference,
            dispute_id,
            amount_cents,
            currency,
            reason,
        } => match store.charge_by_reference(provider, &reference).await? {
            None => Handled::Unknown,
            Some((tenant_id, charge)) => {
                let dispute = Dispute {
                    provider: provider.to_owned(),
                    dispute_id,
                    invoice: charge.invoice.clone(),
                    reference,
                    amount_cents,
                    currency,
                    reason,
                    created_at: ctx.clock.now(),
                };
                if store
                    .record_dispute(&tenant_id, &dispute, ctx.clock.now())
                    .await?
                {
                    tracing::warn!(
                        tenant = tenant_id.as_str(),
                        invoice = %dispute.invoice,
                        dispute = dispute.dispute_id,
                        reason = dispute.reason,
                        "the customer disputed the payment of an invoice"
                    );
                }
                Handled::Disputed {
                    invoice: charge.invoice,
                }
            }
        },
        ProviderEvent::Refunded {
            reference,
            amount_refunded,
            latest_refund,
        } => match store.charge_by_reference(provider, &reference).await? {
            None => Handled::Unknown,
            Some((tenant_id, charge)) => {
                let refunds = store.invoice_refunds(&tenant_id, &charge.invoice).await?;
                // Pending ones are Tollgate's, settled by their own resume.
                let recorded: i64 = refunds
                    .iter()
                    .filter(|r| r.charge == charge.idempotency_key && r.state != RefundState::Failed)
                    .map(|r| r.amount_cents)
                    .sum();
                let unrecorded_cents = amount_refunded.saturating_sub(recorded).max(0);
                let mut credit_note = None;
                if unrecorded_cents > 0 {
                    // Refunded outside Tollgate (the provider's dashboard):
                    // recorded as a credit note, so the invoice says so.
                    let at_provider = latest_refund.unwrap_or_else(|| format!("{provider}:{event_id}"));
                    match refunds::record_provider_refund(
                        ctx,
                        &tenant_id,
                        &charge.invoice,
                        unrecorded_cents,
                        amount_refunded,
                        &at_provider,
                        &format!("{provider}/webhook"),
                    )
                    .await?
                    {
                        ProviderRefund::Recorded(note) => credit_note = Some(note.credit_note),
                        ProviderRefund::Refused(why) => tracing::error!(
                            tenant = tenant_id.as_str(),
                            invoice = %charge.invoice,
                            reference,
                            amount_refunded,
                            recorded,
                            why,
                            "the payment provider reports refunds Tollgate did not make and cannot record; \
                             reconcile the invoice by hand"
                        ),
                    }
                }
                Handled::Refunded {
                    invoice: charge.invoice,
                    unrecorded_cents,
                    credit_note,
                }
            }
        },
    };
    store
        .record_provider_event(provider, event_id, event_type, ctx.clock.now())
        .await?;
    tracing::info!(
        provider,
        event = event_id,
        r#type = event_type,
        outcome = handled.as_str(),
        "provider webhook"
    );
    Ok(handled)
}
