//! Invoice and credit note PDFs.
//!
//! [`render`] lays an [`Invoice`] out on A4 pages and writes a PDF with the
//! DejaVu Sans fonts embedded (subset to the glyphs used, with a ToUnicode
//! map so the text can be searched and copied); [`render_credit_note`] does
//! the same for a credit note, in the same frame. Money is never turned into
//! floating point: amounts (integer minor units) are formatted in their
//! currency's major units with
//! [`money`](tollgate_domain::currency::money) and prices with
//! [`format_price`](tollgate_domain::currency::format_price) (ISO 4217
//! decimals: 12.34 USD, 1500 JPY); only positions on the page are floats.

mod draw;
mod layout;
mod text;

#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use jiff::Timestamp;
use tollgate_domain::catalog::Issuer;
use tollgate_domain::contact::Contact;
use tollgate_domain::credit_note::CreditNoteLine;
use tollgate_domain::invoice::Invoice;

/// What goes on an invoice PDF besides the invoice itself.
#[derive(Debug, Clone, Copy)]
pub struct InvoiceDocument<'a> {
    pub invoice: &'a Invoice,
    /// Tenant name as shown (e.g. "acme").
    pub tenant: &'a str,
    /// The billing contact, if the tenant has one (address lines; print only
    /// non-empty fields).
    pub contact: Option<&'a Contact>,
    /// Payment status lines, newest last, e.g. "2026-12-04 charge of 25.00
    /// USD to test card ending 4242: declined (insufficient funds)". May be
    /// empty.
    pub payments: &'a [String],
    /// Who issues the invoice: name, address, tax id and email in the
    /// header, the name on every page.
    pub issuer: &'a Issuer,
}

/// Where a credit note's refund stands, as its badge says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditNoteState {
    /// Recorded; the payment provider has not confirmed the refund yet.
    Pending,
    /// The payment provider refunded the amount.
    Refunded,
    /// The payment provider refused: nothing was refunded.
    Failed,
}

impl CreditNoteState {
    /// What the badge says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Refund pending",
            Self::Refunded => "Refunded",
            Self::Failed => "Refund failed",
        }
    }
}

/// What goes on a credit note PDF.
#[derive(Debug, Clone, Copy)]
pub struct CreditNoteDocument<'a> {
    /// Its name, e.g. `cn-2027-02-0001`.
    pub name: &'a str,
    /// The invoice it credits (its name and period are shown).
    pub invoice: &'a Invoice,
    /// When it was made (its date).
    pub created_at: Timestamp,
    /// When the provider answered, if it has.
    pub settled_at: Option<Timestamp>,
    pub state: CreditNoteState,
    /// What it credits, in cents of `currency`; `lines` add up to it.
    pub amount_cents: i64,
    pub currency: &'a str,
    /// Why the money is given back.
    pub reason: &'a str,
    pub lines: &'a [CreditNoteLine],
    /// Tenant name as shown.
    pub tenant: &'a str,
    /// The billing contact, if the tenant has one.
    pub contact: Option<&'a Contact>,
    /// Where the refund stands, in lines, e.g. "2027-02-03 refund of 6.28
    /// USD to test card ending 4242: refunded (provider reference re_…)".
    pub refund: &'a [String],
    /// Who issued the invoice, and so the credit note.
    pub issuer: &'a Issuer,
}

/// Why a PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// An embedded font could not be read (a build problem, not bad input).
    #[error("the embedded font {0} could not be read")]
    Font(&'static str),
    /// The PDF writer failed.
    #[error("could not write the PDF: {0}")]
    Write(String),
}

/// Renders an invoice as a PDF document (A4, one or more pages).
pub fn render(doc: &InvoiceDocument<'_>) -> Result<Vec<u8>, PdfError> {
    render_sheet(&layout::Sheet::invoice(doc))
}

/// Renders a credit note as a PDF document (A4, one or more pages).
pub fn render_credit_note(doc: &CreditNoteDocument<'_>) -> Result<Vec<u8>, PdfError> {
    render_sheet(&layout::Sheet::credit_note(doc))
}

fn render_sheet(sheet: &layout::Sheet<'_>) -> Result<Vec<u8>, PdfError> {
    let fonts = text::Fonts::load()?;
    let pages = layout::layout_sheet(sheet, &fonts);
    let title = format!("{} {}", sheet.title, sheet.number);
    draw::draw(&title, &sheet.issuer.name, &fonts, &pages)
}
