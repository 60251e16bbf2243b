//! Invoice PDFs.
//!
//! [`render`] lays an [`Invoice`] out on A4 pages and writes a PDF with the
//! DejaVu Sans fonts embedded (subset to the glyphs used, with a ToUnicode
//! map so the text can be searched and copied). Money is never turned into
//! floating point: amounts are formatted with
//! [`format_cents`](tollgate_domain::invoice::format_cents) and prices with
//! [`format_price`](tollgate_domain::invoice::format_price); only positions on
//! the page are floats.

mod draw;
mod layout;
mod text;

#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use tollgate_domain::catalog::Issuer;
use tollgate_domain::contact::Contact;
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
    let fonts = text::Fonts::load()?;
    let pages = layout::layout(doc, &fonts);
    draw::draw(doc, &fonts, &pages)
}
