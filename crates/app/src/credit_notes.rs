//! Credit notes as tenants, operators and invoices show them: what each
//! refund says in words, and the credit note PDF (rendered off the async
//! runtime, as invoice PDFs are).

use tollgate_domain::credit_note::money;
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::tenant::Tenant;
use tollgate_pdf::CreditNoteState;
use tollgate_store::{ChargeRecord, RefundRecord, RefundState, Store, StoreError};

use crate::catalogs::Versions;
use crate::invoices::PdfError;

/// The state a credit note's PDF shows.
pub fn pdf_state(state: RefundState) -> CreditNoteState {
    match state {
        RefundState::Pending => CreditNoteState::Pending,
        RefundState::Succeeded => CreditNoteState::Refunded,
        RefundState::Failed => CreditNoteState::Failed,
    }
}

/// What a PDF says about one refund, e.g. "2027-02-03  refund
/// cn-2027-02-0001 of 6.28 USD to test card ending 4242: refunded". `charges`
/// are the invoice's charge attempts (the one refunded names the payment
/// method); with `reference`, the provider's refund id is added.
pub fn refund_line(r: &RefundRecord, charges: &[ChargeRecord], reference: bool) -> String {
    let at = r.settled_at.unwrap_or(r.started_at).strftime("%Y-%m-%d");
    let to = charges
        .iter()
        .find(|c| c.idempotency_key == r.charge)
        .and_then(|c| c.method.as_ref())
        .map(|m| format!(" to {}", m.display))
        .unwrap_or_default();
    let outcome = match r.state {
        RefundState::Pending => "in progress".to_owned(),
        RefundState::Succeeded => "refunded".to_owned(),
        RefundState::Failed => format!(
            "refused ({}); nothing was refunded",
            r.failure.as_deref().unwrap_or("no reason given")
        ),
    };
    let reference = match (&r.refund_reference, reference) {
        (Some(id), true) => format!(" (provider reference {id})"),
        _ => String::new(),
    };
    format!(
        "{at}  refund {} of {}{to}: {outcome}{reference}",
        r.credit_note,
        money(r.amount_cents, &r.currency)
    )
}

/// Renders one of a tenant's credit notes as a PDF: issuer (the invoice's),
/// tenant and billing contact, number and date, the invoice it credits, its
/// lines, amount, reason and where its refund stands. `None` if the tenant
/// has no credit note of that name.
pub async fn render_pdf(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    name: &str,
) -> Result<Option<Vec<u8>>, PdfError> {
    let Some(note) = store.credit_note(&tenant.id, name).await? else {
        return Ok(None);
    };
    let invoice = store
        .invoice(&tenant.id, &note.invoice)
        .await?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "credit note {name:?} credits invoice {:?}, which does not exist",
                note.invoice
            ))
        })?
        .invoice;
    let charges = store.invoice_charges(&tenant.id, &note.invoice).await?;
    let refund = vec![refund_line(&note, &charges, true)];
    let methods = store.payment_methods(&tenant.id).await?;
    let contact = methods
        .iter()
        .find(|m| m.role == PaymentRole::Primary)
        .or_else(|| methods.first())
        .map(|m| m.contact.clone());
    let issuer = match &invoice.issuer {
        Some(issuer) => issuer.clone(),
        None => versions.issuer(store).await?,
    };
    let tenant_name = tenant.name.to_string();
    // CPU work (fonts, layout, compression): off the async runtime's threads.
    let pdf = tokio::task::spawn_blocking(move || {
        tollgate_pdf::render_credit_note(&tollgate_pdf::CreditNoteDocument {
            name: &note.credit_note,
            invoice: &invoice,
            created_at: note.started_at,
            settled_at: note.settled_at,
            state: pdf_state(note.state),
            amount_cents: note.amount_cents,
            currency: &note.currency,
            reason: &note.reason,
            lines: &note.lines,
            tenant: &tenant_name,
            contact: contact.as_ref(),
            refund: &refund,
            issuer: &issuer,
        })
    })
    .await
    .map_err(|e| PdfError::Join(e.to_string()))??;
    Ok(Some(pdf))
}
