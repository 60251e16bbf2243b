//! Wire shapes of the invoice operations.

use serde::Serialize;
use utoipa::ToSchema;

/// `invoiceInvoiceType`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceType {
    /// Active invoices are not finalized and their amount can change.
    pub active: bool,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub amount: String,
    pub currency: String,
    pub name: String,
    pub period_end: String,
    pub period_start: String,
    /// `invoiceInvoiceStatus` name.
    pub status: String,
}

/// `invoiceListInvoicesRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListInvoicesRsp {
    pub invoices: Vec<InvoiceType>,
}

/// `invoiceDownloadInvoicePdfRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadInvoicePdfRsp {
    /// The PDF document, base64.
    pub pdf: String,
}
