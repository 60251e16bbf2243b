//! Credit notes (an extension beside the invoices): a tenant's refunds, each
//! a numbered credit note, listed and downloaded as PDFs.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tollgate_app::{credit_notes, invoices};
use tollgate_domain::ErrorKind;
use tollgate_store::RefundRecord;

use crate::auth::{Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, QueryParams};
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::credit_notes::{
    CreditNoteLineType, CreditNoteType, DownloadCreditNotePdfRsp, ListCreditNotesRsp,
};

pub(crate) fn wire(n: RefundRecord) -> CreditNoteType {
    CreditNoteType {
        name: n.credit_note,
        invoice: n.invoice.into_string(),
        amount: n.amount_cents.to_string(),
        currency: n.currency,
        reason: n.reason,
        state: n.state.as_str().to_owned(),
        created_at: n.started_at.to_string(),
        settled_at: n.settled_at.map(|t| t.to_string()),
        lines: n
            .lines
            .into_iter()
            .map(|l| CreditNoteLineType {
                description: l.description,
                quantity: l.quantity.normalize().to_string(),
                unit: l.unit,
                unit_price: l.unit_price_cents.normalize().to_string(),
                amount: l.amount_cents.to_string(),
            })
            .collect(),
    }
}

/// The tenant's credit notes, newest first: one per refund of one of its
/// invoices, whole or partial, with its lines and where the refund stands.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/billing/credit_notes",
    operation_id = "tollgate.billing.ListCreditNotes",
    tag = "invoices",
    params(
        ("namespace" = String, Path, description = "Must be system (credit notes are per tenant, like invoices)"),
        ("invoice" = Option<String>, Query, description = "Only the credit notes of this invoice"),
    ),
    responses((status = 200, body = ListCreditNotesRsp)),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<ListCreditNotesRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::ListCreditNotes, &ns).await?;
    require_system(&ns, "credit notes")?;
    let invoice = query.get("invoice").map(str::trim).filter(|i| !i.is_empty());
    let items = state
        .store()
        .credit_notes(auth.tenant_id())
        .await?
        .into_iter()
        .filter(|n| invoice.is_none_or(|i| n.invoice == i))
        .map(wire)
        .collect();
    Ok(Json(ListCreditNotesRsp { items }))
}

/// One credit note as a PDF document, base64.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/billing/credit_notes/{name}/pdf",
    operation_id = "tollgate.billing.DownloadCreditNotePdf",
    tag = "invoices",
    params(
        ("namespace" = String, Path, description = "Must be system"),
        ("name" = String, Path, description = "The credit note's name, e.g. cn-2027-02-0001"),
    ),
    responses(
        (status = 200, body = DownloadCreditNotePdfRsp),
        (status = 404, body = ErrorBody, description = "The tenant has no credit note of this name.")
    ),
    security(("APIToken" = []))
)]
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<DownloadCreditNotePdfRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller
        .authorize(&state, Operation::DownloadCreditNotePdf, &ns)
        .await?;
    require_system(&ns, "credit notes")?;
    let rendered =
        credit_notes::render_pdf(state.store(), &state.catalogs().versions(), &auth.tenant, &name).await;
    let bytes = match rendered {
        Ok(bytes) => bytes,
        Err(invoices::PdfError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::new(ErrorKind::Internal, e.to_string())),
    }
    .ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("credit note {name:?} does not exist"),
        )
    })?;
    Ok(Json(DownloadCreditNotePdfRsp {
        pdf: STANDARD.encode(bytes),
    }))
}
