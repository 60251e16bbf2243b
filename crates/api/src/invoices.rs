//! Invoices: the list (finalized ones as stored, pending ones computed from
//! usage) and PDF downloads.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tollgate_app::invoices;
use tollgate_domain::ErrorKind;
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::invoice::Invoice;

use crate::auth::{Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::extract::QueryParams;
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::invoices::{DownloadInvoicePdfRsp, InvoiceType, ListInvoicesRsp};

pub(crate) fn wire(i: &Invoice) -> InvoiceType {
    InvoiceType {
        active: i.active(),
        amount: i.totals.total.to_string(),
        currency: i.currency.clone(),
        name: i.name.to_string(),
        period_end: i.period_end.to_string(),
        period_start: i.period_start.to_string(),
        status: crate::wire::enums::invoice_status(i.status).to_owned(),
    }
}

/// The tenant's invoices, newest period first: finalized ones, and the
/// pending invoice of each period not finalized yet (its amount follows usage).
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/usage/invoices/custom_list",
    operation_id = "ves.io.schema.usage.invoice.CustomAPI.ListInvoices",
    tag = "invoices",
    params(
        ("namespace" = String, Path, description = "Must be system (invoices are per tenant)"),
        ("limit" = Option<i32>, Query, description = "At most this many, newest first (0 or absent: all)"),
    ),
    responses(
        (status = 200, body = ListInvoicesRsp),
        (status = 400, body = ErrorBody, description = "`limit` is not a whole number from 0 to 2147483647.")
    ),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<ListInvoicesRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::ListInvoices, &ns).await?;
    require_system(&ns, "invoices")?;
    let limit = match query.get("limit").map(str::trim).filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.parse::<i32>() {
            Ok(0) => None,
            Ok(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => {
                return Err(ApiError::invalid(format!(
                    "limit: must be a whole number from 0 to 2147483647, got {l:?}"
                )));
            }
        },
    };
    let all = invoices::tenant_invoices(
        state.store(),
        &state.catalogs().versions(),
        auth.tenant_id(),
        state.now(),
    )
    .await?;
    let invoices = all.iter().take(limit.unwrap_or(usize::MAX)).map(wire).collect();
    Ok(Json(ListInvoicesRsp { invoices }))
}

/// One invoice as a PDF document, base64.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/usage/invoice_pdf",
    operation_id = "ves.io.schema.usage.invoice.CustomAPI.DownloadInvoicePdf",
    tag = "invoices",
    params(
        ("namespace" = String, Path, description = "Must be system (invoices are per tenant)"),
        ("name" = String, Query, description = "The invoice's name, e.g. inv-2026-11-0001"),
    ),
    responses(
        (status = 200, body = DownloadInvoicePdfRsp),
        (status = 400, body = ErrorBody, description = "No `name`."),
        (status = 404, body = ErrorBody, description = "The tenant has no invoice of this name.")
    ),
    security(("APIToken" = []))
)]
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<DownloadInvoicePdfRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller
        .authorize(&state, Operation::DownloadInvoicePdf, &ns)
        .await?;
    require_system(&ns, "invoices")?;
    let name = query
        .get("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("name: is required"))?;
    let rendered = invoices::render_pdf(
        state.store(),
        &state.catalogs().versions(),
        &auth.tenant,
        &InvoiceName::new(name),
        state.now(),
    )
    .await;
    let bytes = match rendered {
        Ok(bytes) => bytes,
        Err(invoices::PdfError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Err(ApiError::new(ErrorKind::Internal, e.to_string()));
        }
    }
    .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("invoice {name:?} does not exist")))?;
    Ok(Json(DownloadInvoicePdfRsp {
        pdf: STANDARD.encode(bytes),
    }))
}
