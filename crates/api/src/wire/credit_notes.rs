//! Wire shapes of the credit note extension (beyond the contract): money as
//! the contract's invoices write it, cents as an int64 string.

use serde::Serialize;
use utoipa::ToSchema;

/// One line of a credit note.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteLineType {
    pub description: String,
    /// Exact decimal.
    pub quantity: String,
    pub unit: String,
    /// Exact decimal, in cents.
    pub unit_price: String,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub amount: String,
}

/// A credit note: what one refund of an invoice gave back.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteType {
    /// `cn-YYYY-MM-NNNN`.
    pub name: String,
    /// The invoice it credits.
    pub invoice: String,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string, like an invoice's `amount`.
    pub amount: String,
    pub currency: String,
    /// Why the money is given back.
    pub reason: String,
    /// PENDING (the refund is on its way), SUCCEEDED (refunded) or FAILED
    /// (the payment provider refused it: nothing was refunded).
    pub state: String,
    pub created_at: String,
    /// When the payment provider answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub settled_at: Option<String>,
    /// What it credits; the amounts add up to `amount`.
    pub lines: Vec<CreditNoteLineType>,
}

/// `GET billing/credit_notes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListCreditNotesRsp {
    /// Newest first.
    pub items: Vec<CreditNoteType>,
}

/// `GET billing/credit_notes/{name}/pdf`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadCreditNotePdfRsp {
    /// The PDF document, base64 (standard alphabet, padded).
    pub pdf: String,
}
