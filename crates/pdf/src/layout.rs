//! Lays an invoice or a credit note out on A4 pages as a list of drawing
//! operations per page. Both are a [`Sheet`]: a header with the issuer and
//! the document's number and state, the parties, a table of lines, totals
//! and sections of notes (an invoice's payments; a credit note's reason and
//! refund).
//!
//! Coordinates are points from the page's top-left corner, y downwards; a
//! text's y is its baseline.

use rust_decimal::Decimal;
use tollgate_domain::catalog::Issuer;
use tollgate_domain::contact::Contact;
use tollgate_domain::invoice::{InvoiceStatus, describe_step};

use crate::text::{Face, Fonts, clean};
use crate::{CreditNoteDocument, CreditNoteState, InvoiceDocument};

pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
const LEFT: f32 = 50.0;
const RIGHT: f32 = PAGE_W - 50.0;
const WIDTH: f32 = RIGHT - LEFT;
const TOP: f32 = 48.0;
/// Content ends above this; the footer is below.
const BOTTOM: f32 = PAGE_H - 66.0;
const FOOTER_RULE: f32 = PAGE_H - 46.0;
const FOOTER_BASELINE: f32 = PAGE_H - 32.0;

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Color(pub u8, pub u8, pub u8);

const INK: Color = Color(0x1f, 0x29, 0x37);
const MUTED: Color = Color(0x6b, 0x72, 0x80);
const HEAD_INK: Color = Color(0x37, 0x41, 0x51);
const ACCENT: Color = Color(0x1e, 0x3a, 0x5f);
const RULE: Color = Color(0xd1, 0xd5, 0xdb);
const LIGHT_RULE: Color = Color(0xe5, 0xe7, 0xeb);
const HEAD_BG: Color = Color(0xf1, 0xf3, 0xf6);
const WHITE: Color = Color(0xff, 0xff, 0xff);

/// One drawing operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Text {
        x: f32,
        y: f32,
        face: Face,
        size: f32,
        color: Color,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        radius: f32,
        color: Color,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
        color: Color,
    },
}

/// The line table's columns (widths 190, 55, 90, 75 and the rest): where
/// each cell's text goes.
mod col {
    use super::{LEFT, RIGHT};
    /// Inner padding of a cell.
    pub const PAD: f32 = 6.0;
    pub const DESC_X: f32 = LEFT + PAD;
    pub const DESC_W: f32 = 190.0 - 2.0 * PAD;
    /// Right edge of the quantity text.
    pub const QTY_R: f32 = LEFT + 245.0 - PAD;
    pub const QTY_W: f32 = 55.0 - 2.0 * PAD;
    pub const UNIT_X: f32 = LEFT + 245.0 + PAD;
    pub const UNIT_W: f32 = 90.0 - 2.0 * PAD;
    pub const PRICE_R: f32 = LEFT + 410.0 - PAD;
    pub const PRICE_W: f32 = 75.0 - 2.0 * PAD;
    pub const AMOUNT_R: f32 = RIGHT - PAD;
    pub const AMOUNT_W: f32 = RIGHT - (LEFT + 410.0) - 2.0 * PAD;
}

const BODY: f32 = 9.0;
const SMALL: f32 = 7.5;
const LEADING: f32 = 12.0;
const ROW_PAD: f32 = 7.0;
const TABLE_HEAD_H: f32 = 22.0;
const MAX_DESC_LINES: usize = 4;
/// Numbers too wide for their column are set smaller, down to this size.
const MIN_SIZE: f32 = 4.0;

/// One row of the line table.
pub(crate) struct Row {
    pub description: String,
    pub quantity: Decimal,
    /// Free units deducted before pricing (shown under the quantity).
    pub free_quantity: Decimal,
    pub unit: String,
    pub unit_price_cents: Decimal,
    pub amount_cents: i64,
    /// A tiered or package line: the model, shown instead of a unit price,
    /// and one small line per step under the description.
    pub pricing: Option<(&'static str, Vec<String>)>,
}

/// A row above the total box.
pub(crate) enum Sum {
    /// A label and an amount (subtotal, discount, a tax).
    Amount(String, i64),
    /// A smaller note (a coupon).
    Note(String),
}

/// A section under the totals: a heading and paragraphs.
pub(crate) struct Section {
    pub heading: &'static str,
    pub paragraphs: Vec<String>,
    /// Shown when there are no paragraphs.
    pub empty: &'static str,
    /// Paragraphs are bullet points.
    pub bullets: bool,
}

/// What a page shows, whatever the document.
pub(crate) struct Sheet<'a> {
    pub issuer: &'a Issuer,
    pub tenant: &'a str,
    pub contact: Option<&'a Contact>,
    /// "Invoice", "Credit note".
    pub title: &'static str,
    /// The document's name.
    pub number: String,
    /// The state badge: label, background and text colours.
    pub badge: (&'static str, Color, Color),
    /// "BILLED TO", "CREDITED TO".
    pub party_heading: &'static str,
    /// "INVOICE DETAILS", …
    pub details_heading: &'static str,
    pub details: Vec<(&'static str, String)>,
    pub currency: String,
    pub rows: Vec<Row>,
    /// Shown when there are no rows.
    pub no_rows: &'static str,
    pub sums: Vec<Sum>,
    /// "TOTAL", "TOTAL CREDITED".
    pub total_label: &'static str,
    pub total_cents: i64,
    pub sections: Vec<Section>,
}

impl<'a> Sheet<'a> {
    /// An invoice: its lines, subtotal, coupons, discount and total, and its
    /// payments.
    pub(crate) fn invoice(doc: &InvoiceDocument<'a>) -> Self {
        let inv = doc.invoice;
        let (bg, fg) = status_colors(inv.status);
        let mut details = vec![
            ("Invoice number", clean(&inv.name)),
            (
                "Billing period",
                format!("{} – {} (UTC)", date(inv.period_start), date(inv.period_end)),
            ),
            ("Plan", clean(&inv.plan_title)),
        ];
        if let Some(issued) = inv.issued_at {
            details.push(("Issued", date(issued)));
        }
        details.push(("Currency", clean(&inv.currency)));
        let t = inv.totals;
        let mut sums = vec![Sum::Amount("Subtotal".into(), t.subtotal)];
        if !inv.coupons.is_empty() || t.discount != 0 {
            for coupon in &inv.coupons {
                sums.push(Sum::Note(format!(
                    "Coupon: {} ({})",
                    clean(&coupon.title),
                    clean(&coupon.terms)
                )));
            }
            sums.push(Sum::Amount("Discount".into(), -t.discount));
        }
        // Prepaid credits pay before tax: one row per grant that paid.
        for credit in &inv.credits {
            sums.push(Sum::Amount(
                format!("Prepaid credits: {}", clean(&credit.description)),
                -credit.amount_cents,
            ));
        }
        for tax in &inv.taxes {
            sums.push(Sum::Amount(
                format!("{} {} %", clean(&tax.name), tax.percent.normalize()),
                tax.amount_cents,
            ));
        }
        if let Some(note) = &inv.tax_note {
            sums.push(Sum::Note(clean(note)));
        }
        Sheet {
            issuer: doc.issuer,
            tenant: doc.tenant,
            contact: doc.contact,
            title: "Invoice",
            number: inv.name.to_string(),
            badge: (inv.status.label(), bg, fg),
            party_heading: "BILLED TO",
            details_heading: "INVOICE DETAILS",
            details,
            currency: inv.currency.clone(),
            rows: inv
                .lines
                .iter()
                .map(|l| Row {
                    description: l.description.clone(),
                    quantity: l.quantity,
                    free_quantity: l.free_quantity,
                    unit: l.unit.clone(),
                    unit_price_cents: l.unit_price_cents,
                    amount_cents: l.amount_cents,
                    pricing: l.pricing.as_ref().map(|p| {
                        (
                            p.model.as_str(),
                            p.steps.iter().map(|s| describe_step(s, &inv.currency)).collect(),
                        )
                    }),
                })
                .collect(),
            no_rows: "No charges in this period.",
            sums,
            total_label: "TOTAL",
            total_cents: t.total,
            sections: vec![Section {
                heading: "Payments",
                paragraphs: doc.payments.to_vec(),
                empty: "No payment attempts yet.",
                bullets: true,
            }],
        }
    }

    /// A credit note: the invoice it credits, its lines and amount, why, and
    /// where its refund stands.
    pub(crate) fn credit_note(doc: &CreditNoteDocument<'a>) -> Self {
        let inv = doc.invoice;
        let (bg, fg) = credit_colors(doc.state);
        let mut details = vec![
            ("Credit note number", clean(doc.name)),
            ("Date", date(doc.created_at)),
            ("Credits invoice", clean(&inv.name)),
            (
                "Billing period",
                format!("{} – {} (UTC)", date(inv.period_start), date(inv.period_end)),
            ),
        ];
        if let (CreditNoteState::Refunded, Some(at)) = (doc.state, doc.settled_at) {
            details.push(("Refunded", date(at)));
        }
        details.push(("Currency", clean(doc.currency)));
        Sheet {
            issuer: doc.issuer,
            tenant: doc.tenant,
            contact: doc.contact,
            title: "Credit note",
            number: doc.name.to_owned(),
            badge: (doc.state.label(), bg, fg),
            party_heading: "CREDITED TO",
            details_heading: "CREDIT NOTE DETAILS",
            details,
            currency: doc.currency.to_owned(),
            rows: doc
                .lines
                .iter()
                .map(|l| Row {
                    description: l.description.clone(),
                    quantity: l.quantity,
                    free_quantity: Decimal::ZERO,
                    unit: l.unit.clone(),
                    unit_price_cents: l.unit_price_cents,
                    amount_cents: l.amount_cents,
                    pricing: None,
                })
                .collect(),
            no_rows: "Nothing credited.",
            sums: Vec::new(),
            total_label: "TOTAL CREDITED",
            total_cents: doc.amount_cents,
            sections: vec![
                Section {
                    heading: "Reason",
                    paragraphs: doc
                        .reason
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    empty: "No reason given.",
                    bullets: false,
                },
                Section {
                    heading: "Refund",
                    paragraphs: doc.refund.to_vec(),
                    empty: "Not refunded yet.",
                    bullets: true,
                },
            ],
        }
    }
}

struct Layout<'a> {
    fonts: &'a Fonts,
    doc: &'a Sheet<'a>,
    pages: Vec<Vec<Op>>,
    /// The page drawn on.
    page: usize,
    /// The top of the free space on the current page.
    y: f32,
}

/// Lays out an invoice.
#[cfg(test)]
pub(crate) fn layout(doc: &InvoiceDocument<'_>, fonts: &Fonts) -> Vec<Vec<Op>> {
    layout_sheet(&Sheet::invoice(doc), fonts)
}

/// Lays out the whole document.
pub(crate) fn layout_sheet(doc: &Sheet<'_>, fonts: &Fonts) -> Vec<Vec<Op>> {
    let mut l = Layout {
        fonts,
        doc,
        pages: vec![Vec::new()],
        page: 0,
        y: TOP,
    };
    l.header();
    l.parties();
    l.table();
    l.totals();
    for section in &doc.sections {
        l.section(section);
    }
    l.footers();
    l.pages
}

/// An amount in minor units, in the currency's major units (ISO 4217
/// decimals: none for JPY): "12.34 USD", "1500 JPY".
fn money(cents: i64, currency: &str) -> String {
    tollgate_domain::currency::money(cents, currency)
}

fn price(cents: Decimal, currency: &str) -> String {
    format!(
        "{} {currency}",
        tollgate_domain::currency::format_price(cents, currency)
    )
}

fn quantity(q: Decimal) -> String {
    q.normalize().to_string()
}

fn date(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d").to_string()
}

/// The badge colours (background, text) of a status.
fn status_colors(status: InvoiceStatus) -> (Color, Color) {
    match status {
        InvoiceStatus::Pending => (Color(0xdb, 0xea, 0xfe), Color(0x1e, 0x40, 0xaf)),
        InvoiceStatus::Issued => (Color(0xfe, 0xf3, 0xc7), Color(0x92, 0x40, 0x0e)),
        InvoiceStatus::Paid => (Color(0xd1, 0xfa, 0xe5), Color(0x06, 0x5f, 0x46)),
        InvoiceStatus::Overdue => (Color(0xfe, 0xe2, 0xe2), Color(0x99, 0x1b, 0x1b)),
        InvoiceStatus::Refunded => (Color(0xed, 0xe9, 0xfe), Color(0x5b, 0x21, 0xb6)),
        InvoiceStatus::Cancelled => (Color(0xe5, 0xe7, 0xeb), Color(0x37, 0x41, 0x51)),
    }
}

/// The badge colours of a credit note's state: those of a refunded, an
/// issued and an overdue invoice.
fn credit_colors(state: CreditNoteState) -> (Color, Color) {
    match state {
        CreditNoteState::Refunded => status_colors(InvoiceStatus::Refunded),
        CreditNoteState::Pending => status_colors(InvoiceStatus::Issued),
        CreditNoteState::Failed => status_colors(InvoiceStatus::Overdue),
    }
}

/// The address lines of a contact, only the non-empty fields.
fn address_lines(c: &Contact) -> Vec<String> {
    let mut lines = Vec::new();
    let mut push = |s: String| {
        let s = clean(&s).trim().to_owned();
        if !s.is_empty() {
            lines.push(s);
        }
    };
    push(c.address1.clone());
    push(c.address2.clone());
    // "City, State ZIP", using the state's code when there is no name.
    let state = if c.state.trim().is_empty() {
        c.state_code.trim()
    } else {
        c.state.trim()
    };
    let mut region = String::from(c.city.trim());
    if !state.is_empty() {
        if !region.is_empty() {
            region.push_str(", ");
        }
        region.push_str(state);
    }
    if !c.zip_code.trim().is_empty() {
        if !region.is_empty() {
            region.push(' ');
        }
        region.push_str(c.zip_code.trim());
    }
    push(region);
    push(c.county.clone());
    push(c.country.clone());
    if !c.phone_number.trim().is_empty() {
        push(format!("Phone: {}", c.phone_number.trim()));
    }
    lines
}

impl Layout<'_> {
    fn ops(&mut self) -> &mut Vec<Op> {
        &mut self.pages[self.page]
    }

    fn text(&mut self, x: f32, y: f32, face: Face, size: f32, color: Color, text: &str) {
        let text = clean(text);
        if text.trim().is_empty() {
            return;
        }
        self.ops().push(Op::Text {
            x,
            y,
            face,
            size,
            color,
            text,
        });
    }

    /// Text whose right edge is at `right`.
    fn text_right(&mut self, right: f32, y: f32, face: Face, size: f32, color: Color, text: &str) {
        let w = self.fonts.width(face, &clean(text), size);
        self.text(right - w, y, face, size, color, text);
    }

    /// Right-aligned text in a cell `max` points wide, shrunk to fit (numbers
    /// are never cut).
    fn number(&mut self, right: f32, y: f32, face: Face, size: f32, max: f32, text: &str) {
        let size = self.fonts.shrink_to_fit(face, text, size, MIN_SIZE, max);
        self.text_right(right, y, face, size, INK, text);
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, radius: f32, color: Color) {
        self.ops().push(Op::Rect {
            x,
            y,
            w,
            h,
            radius,
            color,
        });
    }

    fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, color: Color) {
        self.ops().push(Op::Line {
            x1,
            y1: y,
            x2,
            y2: y,
            width,
            color,
        });
    }

    /// Baseline that puts text of `size` visually centred in a box.
    fn centered_baseline(&self, top: f32, height: f32, face: Face, size: f32) -> f32 {
        top + (height + self.fonts.face(face).cap_height * size) / 2.0
    }

    fn fits(&self, height: f32) -> bool {
        self.y + height <= BOTTOM
    }

    /// Starts a new page with a short running header.
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.page = self.pages.len() - 1;
        let base = TOP + 10.0;
        let issuer = self
            .fonts
            .truncate(Face::Bold, &clean(&self.doc.issuer.name), 11.0, WIDTH / 2.0);
        self.text(LEFT, base, Face::Bold, 11.0, ACCENT, &issuer);
        let title = format!("{} {} (continued)", self.doc.title, self.doc.number);
        let title = self
            .fonts
            .truncate(Face::Regular, &clean(&title), 9.0, WIDTH / 2.0);
        self.text_right(RIGHT, base, Face::Regular, 9.0, MUTED, &title);
        self.hline(LEFT, RIGHT, base + 10.0, 0.75, RULE);
        self.y = base + 26.0;
    }

    /// Issuer, the title ("Invoice"), the document's name and its state.
    fn header(&mut self) {
        let base = TOP + 16.0;
        let issuer = self
            .fonts
            .truncate(Face::Bold, &clean(&self.doc.issuer.name), 20.0, WIDTH * 0.55);
        self.text(LEFT, base, Face::Bold, 20.0, ACCENT, &issuer);
        // The issuer's address, tax id and email under its name.
        let i = self.doc.issuer;
        let details = i
            .address
            .iter()
            .cloned()
            .chain(i.tax_id.as_ref().map(|t| format!("Tax ID: {t}")))
            .chain(i.email.clone());
        let mut detail_y = base + 16.0;
        for line in details {
            let line = self
                .fonts
                .truncate(Face::Regular, &clean(&line), SMALL, WIDTH * 0.55);
            self.text(LEFT, detail_y, Face::Regular, SMALL, MUTED, &line);
            detail_y += SMALL + 3.0;
        }
        self.text_right(RIGHT, base, Face::Bold, 20.0, INK, self.doc.title);
        let name = self
            .fonts
            .truncate(Face::Regular, &clean(&self.doc.number), 10.5, WIDTH * 0.4);
        self.text_right(RIGHT, base + 18.0, Face::Regular, 10.5, MUTED, &name);

        // The state as a badge under the name.
        let (label, bg, fg) = self.doc.badge;
        let size = 8.5;
        let w = self.fonts.width(Face::Bold, label, size) + 16.0;
        let (top, h) = (base + 28.0, 18.0);
        self.rect(RIGHT - w, top, w, h, 9.0, bg);
        let y = self.centered_baseline(top, h, Face::Bold, size);
        self.text(RIGHT - w + 8.0, y, Face::Bold, size, fg, label);

        self.y = (top + h + 14.0).max(detail_y + 6.0);
        self.hline(LEFT, RIGHT, self.y, 0.75, RULE);
        self.y += 22.0;
    }

    /// "Billed to" on the left, the document's details on the right.
    fn parties(&mut self) {
        let top = self.y;

        // Left: tenant and address.
        let left_w = 230.0;
        let mut y = top + 6.0;
        self.text(LEFT, y, Face::Bold, SMALL, MUTED, self.doc.party_heading);
        y += 17.0;
        let tenant = self
            .fonts
            .truncate(Face::Bold, &clean(self.doc.tenant), 11.0, left_w);
        self.text(LEFT, y, Face::Bold, 11.0, INK, &tenant);
        y += 4.0;
        let lines = self.doc.contact.map(address_lines).unwrap_or_default();
        for line in &lines {
            for part in self.fonts.wrap(Face::Regular, line, BODY, left_w, 2) {
                y += 12.5;
                self.text(LEFT, y, Face::Regular, BODY, INK, &part);
            }
        }
        let left_bottom = y;

        // Right: label / value rows, values right-aligned.
        let x = LEFT + 280.0;
        let mut y = top + 6.0;
        self.text(x, y, Face::Bold, SMALL, MUTED, self.doc.details_heading);
        y += 3.0;
        for (label, value) in &self.doc.details {
            let label = *label;
            y += 14.0;
            self.text(x, y, Face::Regular, BODY, MUTED, label);
            let label_w = self.fonts.width(Face::Regular, label, BODY);
            let max = RIGHT - x - label_w - 12.0;
            let value = self.fonts.truncate(Face::Regular, value, BODY, max);
            self.text_right(RIGHT, y, Face::Regular, BODY, INK, &value);
        }
        self.y = left_bottom.max(y) + 26.0;
    }

    fn table_header(&mut self) {
        let top = self.y;
        self.rect(LEFT, top, WIDTH, TABLE_HEAD_H, 0.0, HEAD_BG);
        let size = 8.0;
        let y = self.centered_baseline(top, TABLE_HEAD_H, Face::Bold, size);
        self.text(col::DESC_X, y, Face::Bold, size, HEAD_INK, "Description");
        self.text_right(col::QTY_R, y, Face::Bold, size, HEAD_INK, "Quantity");
        self.text(col::UNIT_X, y, Face::Bold, size, HEAD_INK, "Unit");
        self.text_right(col::PRICE_R, y, Face::Bold, size, HEAD_INK, "Unit price");
        self.text_right(col::AMOUNT_R, y, Face::Bold, size, HEAD_INK, "Amount");
        self.y = top + TABLE_HEAD_H;
    }

    /// One row per line; the header is repeated on every page.
    fn table(&mut self) {
        let doc = self.doc;
        let cap = self.fonts.face(Face::Regular).cap_height * BODY;
        if !self.fits(TABLE_HEAD_H + 2.0 * LEADING) {
            self.new_page();
        }
        self.table_header();
        if doc.rows.is_empty() {
            let y = self.y + ROW_PAD + cap;
            self.text(col::DESC_X, y, Face::Regular, BODY, MUTED, doc.no_rows);
            self.y = y + ROW_PAD;
            self.hline(LEFT, RIGHT, self.y, 0.5, LIGHT_RULE);
        }
        for line in &doc.rows {
            let cells = self.row_cells(line);
            let height = 2.0 * ROW_PAD + cap + (cells.lines() - 1) as f32 * LEADING;
            if !self.fits(height) {
                self.new_page();
                self.table_header();
            }
            let base = self.y + ROW_PAD + cap;
            for (i, part) in cells.description.iter().enumerate() {
                let y = base + i as f32 * LEADING;
                self.text(col::DESC_X, y, Face::Regular, BODY, INK, part);
            }
            for (i, step) in cells.steps.iter().enumerate() {
                let y = base + (cells.description.len() + i) as f32 * LEADING;
                self.text(col::DESC_X, y, Face::Regular, SMALL, MUTED, step);
            }
            self.number(col::QTY_R, base, Face::Regular, BODY, col::QTY_W, &cells.quantity);
            if let Some(free) = &cells.free {
                let size = self
                    .fonts
                    .shrink_to_fit(Face::Regular, free, SMALL, MIN_SIZE, col::QTY_W);
                self.text_right(col::QTY_R, base + LEADING, Face::Regular, size, MUTED, free);
            }
            for (i, part) in cells.unit.iter().enumerate() {
                let y = base + i as f32 * LEADING;
                self.text(col::UNIT_X, y, Face::Regular, BODY, INK, part);
            }
            self.number(
                col::PRICE_R,
                base,
                Face::Regular,
                BODY,
                col::PRICE_W,
                &cells.price,
            );
            self.number(
                col::AMOUNT_R,
                base,
                Face::Regular,
                BODY,
                col::AMOUNT_W,
                &cells.amount,
            );
            self.y += height;
            self.hline(LEFT, RIGHT, self.y, 0.5, LIGHT_RULE);
        }
    }

    fn row_cells(&self, line: &Row) -> Cells {
        let currency = &self.doc.currency;
        Cells {
            description: self.fonts.wrap(
                Face::Regular,
                &clean(&line.description),
                BODY,
                col::DESC_W,
                MAX_DESC_LINES,
            ),
            quantity: quantity(line.quantity),
            free: (!line.free_quantity.is_zero()).then(|| format!("({} free)", quantity(line.free_quantity))),
            unit: self
                .fonts
                .wrap(Face::Regular, &clean(&line.unit), BODY, col::UNIT_W, 2),
            price: match &line.pricing {
                Some((model, _)) => (*model).to_owned(),
                None => price(line.unit_price_cents, currency),
            },
            amount: money(line.amount_cents, currency),
            steps: line.pricing.as_ref().map_or_else(Vec::new, |(_, steps)| {
                steps
                    .iter()
                    .flat_map(|s| self.fonts.wrap(Face::Regular, &clean(s), SMALL, col::DESC_W, 3))
                    .collect()
            }),
        }
    }

    /// The sums (subtotal, coupons, discount) and the total, right-aligned
    /// under the table and kept together on one page.
    fn totals(&mut self) {
        let doc = self.doc;
        let currency = clean(&doc.currency);
        let row = 18.0;
        let coupon_row = 14.0;
        let total_h = 28.0;
        let mut height = 12.0 + total_h + 6.0;
        for sum in &doc.sums {
            height += match sum {
                Sum::Amount(..) => row,
                Sum::Note(_) => coupon_row,
            };
        }
        if !self.fits(height) {
            self.new_page();
        }
        let x = RIGHT - 250.0;
        let label_x = x + col::PAD;
        let w = RIGHT - x;
        let cap = self.fonts.face(Face::Regular).cap_height;
        self.y += 12.0;

        let size = 9.5;
        for sum in &doc.sums {
            match sum {
                Sum::Amount(label, cents) => {
                    let y = self.y + (row + cap * size) / 2.0;
                    // A long label (a credit grant's reason) stops short of the amount.
                    let label = self
                        .fonts
                        .truncate(Face::Regular, label, size, w / 2.0 - col::PAD);
                    self.text(label_x, y, Face::Regular, size, INK, &label);
                    self.number(
                        col::AMOUNT_R,
                        y,
                        Face::Regular,
                        size,
                        w / 2.0,
                        &money(*cents, &currency),
                    );
                    self.y += row;
                }
                Sum::Note(text) => {
                    let text = self.fonts.truncate(Face::Regular, text, 8.5, w - 2.0 * col::PAD);
                    let y = self.y + (coupon_row + cap * 8.5) / 2.0;
                    self.text(label_x, y, Face::Regular, 8.5, MUTED, &text);
                    self.y += coupon_row;
                }
            }
        }

        self.y += 6.0;
        self.rect(x, self.y, w, total_h, 3.0, ACCENT);
        let size = 11.0;
        let y = self.centered_baseline(self.y, total_h, Face::Bold, size);
        self.text(label_x, y, Face::Bold, size, WHITE, doc.total_label);
        let label_w = self.fonts.width(Face::Bold, doc.total_label, size);
        let total = money(doc.total_cents, &currency);
        let size =
            self.fonts
                .shrink_to_fit(Face::Bold, &total, size, MIN_SIZE, w - (label_w + 24.0).max(60.0));
        self.text_right(col::AMOUNT_R, y, Face::Bold, size, WHITE, &total);
        self.y += total_h;
    }

    /// A section: its heading and paragraphs (bullet points or plain), or
    /// its note when it has none.
    fn section(&mut self, section: &Section) {
        let heading_h = 24.0;
        self.y += 30.0;
        if !self.fits(heading_h + LEADING + 4.0) {
            self.new_page();
        }
        let y = self.y + 11.0;
        self.text(LEFT, y, Face::Bold, 11.0, INK, section.heading);
        self.hline(LEFT, RIGHT, y + 7.0, 0.75, RULE);
        self.y += heading_h;

        let cap = self.fonts.face(Face::Regular).cap_height * BODY;
        if section.paragraphs.is_empty() {
            self.text(LEFT, self.y + cap, Face::Regular, BODY, MUTED, section.empty);
            self.y += LEADING;
            return;
        }
        let indent = if section.bullets { 12.0 } else { 0.0 };
        for paragraph in &section.paragraphs {
            let lines = self
                .fonts
                .wrap(Face::Regular, &clean(paragraph), BODY, WIDTH - indent, usize::MAX);
            for (i, line) in lines.iter().enumerate() {
                if !self.fits(LEADING) {
                    self.new_page();
                }
                let y = self.y + cap;
                if i == 0 && section.bullets {
                    self.text(LEFT + 2.0, y, Face::Regular, BODY, MUTED, "•");
                }
                self.text(LEFT + indent, y, Face::Regular, BODY, INK, line);
                self.y += LEADING;
            }
            self.y += 3.0;
        }
    }

    /// Footer on every page: who and what, and the page number.
    fn footers(&mut self) {
        let count = self.pages.len();
        let left = format!(
            "{} · {} {} · {}",
            clean(&self.doc.issuer.name),
            self.doc.title,
            clean(&self.doc.number),
            clean(self.doc.tenant)
        );
        let left = self.fonts.truncate(Face::Regular, &left, SMALL, WIDTH - 80.0);
        for i in 0..count {
            let page = format!("Page {} of {count}", i + 1);
            self.page = i;
            self.hline(LEFT, RIGHT, FOOTER_RULE, 0.5, LIGHT_RULE);
            self.text(LEFT, FOOTER_BASELINE, Face::Regular, SMALL, MUTED, &left);
            self.text_right(RIGHT, FOOTER_BASELINE, Face::Regular, SMALL, MUTED, &page);
        }
    }
}

/// The text of one table row.
struct Cells {
    description: Vec<String>,
    quantity: String,
    free: Option<String>,
    unit: Vec<String>,
    price: String,
    amount: String,
    /// The steps of a tiered or package price, under the description.
    steps: Vec<String>,
}

impl Cells {
    /// How many text lines the row needs.
    fn lines(&self) -> usize {
        (self.description.len() + self.steps.len())
            .max(self.unit.len())
            .max(if self.free.is_some() { 2 } else { 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support as support;
    use tollgate_domain::invoice::Invoice;

    /// A text's box on its page: left, right, top (cap height) and bottom
    /// (descender).
    #[derive(Debug)]
    struct TextBox {
        page: usize,
        x0: f32,
        x1: f32,
        y0: f32,
        y1: f32,
        text: String,
    }

    fn boxes(fonts: &Fonts, pages: &[Vec<Op>]) -> Vec<TextBox> {
        let mut out = Vec::new();
        for (page, ops) in pages.iter().enumerate() {
            for op in ops {
                if let Op::Text {
                    x,
                    y,
                    face,
                    size,
                    text,
                    ..
                } = op
                {
                    let w = fonts.width(*face, text.trim_end(), *size);
                    out.push(TextBox {
                        page,
                        x0: *x,
                        x1: x + w,
                        y0: y - fonts.face(*face).cap_height * size,
                        y1: y + 0.2 * size,
                        text: text.clone(),
                    });
                }
            }
        }
        out
    }

    static ISSUER: std::sync::LazyLock<tollgate_domain::catalog::Issuer> =
        std::sync::LazyLock::new(crate::test_support::sample_issuer);

    fn doc<'a>(
        invoice: &'a Invoice,
        contact: Option<&'a Contact>,
        payments: &'a [String],
        tenant: &'a str,
    ) -> InvoiceDocument<'a> {
        InvoiceDocument {
            invoice,
            tenant,
            contact,
            payments,
            issuer: &ISSUER,
        }
    }

    /// Every text stays inside the margins, body text above the footer, and
    /// no two texts overlap.
    fn assert_clean_layout(doc: &InvoiceDocument<'_>) -> Vec<Vec<Op>> {
        assert_clean_sheet(&Sheet::invoice(doc))
    }

    fn assert_clean_sheet(sheet: &Sheet<'_>) -> Vec<Vec<Op>> {
        let fonts = Fonts::load().unwrap();
        let pages = layout_sheet(sheet, &fonts);
        let all = boxes(&fonts, &pages);
        for b in &all {
            assert!(
                b.x0 >= LEFT - 0.01 && b.x1 <= RIGHT + 0.01,
                "outside the margins: {b:?}"
            );
            assert!(b.y0 >= TOP - 0.01, "above the top margin: {b:?}");
            assert!(
                b.y1 <= BOTTOM || (b.y0 > FOOTER_RULE && b.y1 < PAGE_H - 20.0),
                "runs into the footer: {b:?}"
            );
        }
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let overlap = a.page == b.page && a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
                assert!(!overlap, "texts overlap:\n{a:?}\n{b:?}");
            }
        }
        pages
    }

    /// Right edges of the texts equal to `text` that end between `lo` and `hi`.
    fn right_edges(fonts: &Fonts, pages: &[Vec<Op>], text: &str, lo: f32, hi: f32) -> Vec<f32> {
        boxes(fonts, pages)
            .into_iter()
            .filter(|b| b.text == text && b.x1 > lo && b.x1 <= hi)
            .map(|b| b.x1)
            .collect()
    }

    #[test]
    fn money_columns_are_right_aligned_to_the_point() {
        let inv = support::sample_invoice(InvoiceStatus::Issued);
        let fonts = Fonts::load().unwrap();
        let pages = layout(&doc(&inv, None, &[], "acme"), &fonts);
        let close = |edges: Vec<f32>, right: f32, what: &str| {
            assert!(!edges.is_empty(), "{what} not drawn");
            for e in edges {
                assert!((e - right).abs() < 0.01, "{what} ends at {e}, not {right}");
            }
        };
        // Each column's texts end within its cell; they must end exactly at
        // the column's right edge.
        let amount_col = (col::PRICE_R + col::PAD, RIGHT);
        let price_col = (col::UNIT_X, col::PRICE_R + col::PAD);
        let qty_col = (col::DESC_X + col::DESC_W, col::UNIT_X);
        for line in &inv.lines {
            let amount = money(line.amount_cents, "USD");
            let edges = right_edges(&fonts, &pages, &amount, amount_col.0, amount_col.1);
            close(edges, col::AMOUNT_R, &amount);
            let price = price(line.unit_price_cents, "USD");
            let edges = right_edges(&fonts, &pages, &price, price_col.0, price_col.1);
            close(edges, col::PRICE_R, &price);
            let qty = quantity(line.quantity);
            let edges = right_edges(&fonts, &pages, &qty, qty_col.0, qty_col.1);
            close(edges, col::QTY_R, &qty);
        }
        let t = inv.totals;
        for (what, cents) in [
            ("subtotal", t.subtotal),
            ("discount", -t.discount),
            ("total", t.total),
        ] {
            let edges = right_edges(&fonts, &pages, &money(cents, "USD"), amount_col.0, amount_col.1);
            close(edges, col::AMOUNT_R, what);
        }
    }

    #[test]
    fn the_sample_invoice_is_laid_out_cleanly_on_one_page() {
        let inv = support::sample_invoice(InvoiceStatus::Overdue);
        let contact = support::sample_contact();
        let payments = support::sample_payments();
        let pages = assert_clean_layout(&doc(&inv, Some(&contact), &payments, "acme"));
        assert_eq!(pages.len(), 1);
    }

    #[test]
    fn many_lines_flow_onto_pages_that_each_repeat_the_table_header() {
        let inv = support::long_invoice(80);
        let payments = support::sample_payments();
        let pages = assert_clean_layout(&doc(&inv, None, &payments, "globex"));
        assert!(pages.len() > 1);
        let fonts = Fonts::load().unwrap();
        let all = boxes(&fonts, &pages);
        for page in 0..pages.len() {
            let on_page = |t: &str| all.iter().any(|b| b.page == page && b.text.starts_with(t));
            if on_page("Line ") {
                assert!(on_page("Description") && on_page("Unit price"), "page {page}");
            }
            assert!(on_page(&format!("Page {} of {}", page + 1, pages.len())));
        }
        let last = all.iter().find(|b| b.text.starts_with("Line 80:")).unwrap();
        assert_eq!(last.page, pages.len() - 1);
    }

    #[test]
    fn extreme_values_are_shrunk_truncated_or_wrapped_never_spilled() {
        let mut inv = support::extreme_invoice();
        let contact = support::extreme_contact();
        let payments = vec!["p".repeat(2000), "short one".into()];
        let tenant = "t".repeat(256);
        assert_clean_layout(&doc(&inv, Some(&contact), &payments, &tenant));

        inv.lines.clear();
        inv.coupons.clear();
        inv.totals = tollgate_domain::rating::Totals {
            subtotal: 0,
            discount: 0,
            credits: 0,
            tax: 0,
            total: 0,
        };
        assert_clean_layout(&doc(&inv, None, &[], "empty"));
    }

    fn credit_note<'a>(
        invoice: &'a Invoice,
        lines: &'a [tollgate_domain::credit_note::CreditNoteLine],
        reason: &'a str,
        refund: &'a [String],
        contact: Option<&'a Contact>,
        tenant: &'a str,
    ) -> CreditNoteDocument<'a> {
        CreditNoteDocument {
            name: "cn-2027-01-0007",
            invoice,
            created_at: "2027-01-05T10:00:00Z".parse().unwrap(),
            settled_at: Some("2027-01-05T10:00:01Z".parse().unwrap()),
            state: CreditNoteState::Refunded,
            amount_cents: lines.iter().map(|l| l.amount_cents).sum(),
            currency: "USD",
            reason,
            lines,
            tenant,
            contact,
            refund,
            issuer: &ISSUER,
        }
    }

    #[test]
    fn credit_notes_are_laid_out_cleanly_whole_partial_and_extreme() {
        let inv = support::sample_invoice(InvoiceStatus::Paid);
        let contact = support::sample_contact();
        let refund = vec!["2027-01-05 refund of 10.00 USD to test card ending 4242: refunded".to_string()];
        // Whole: the invoice's lines and its discount.
        let whole = tollgate_domain::credit_note::lines(&inv, inv.totals.total);
        let doc = credit_note(
            &inv,
            &whole,
            "The customer left.",
            &refund,
            Some(&contact),
            "acme",
        );
        assert_eq!(assert_clean_sheet(&Sheet::credit_note(&doc)).len(), 1);
        // Partial, with a reason of several lines.
        let partial = tollgate_domain::credit_note::lines(&inv, 1000);
        let doc = credit_note(
            &inv,
            &partial,
            "Outage on the 3rd.\nGoodwill.",
            &refund,
            None,
            "acme",
        );
        let pages = assert_clean_sheet(&Sheet::credit_note(&doc));
        let fonts = Fonts::load().unwrap();
        let texts: Vec<String> = boxes(&fonts, &pages).into_iter().map(|b| b.text).collect();
        for want in [
            "Credit note",
            "cn-2027-01-0007",
            "CREDITED TO",
            "Credits invoice",
            "TOTAL CREDITED",
            "Reason",
            "Outage on the 3rd.",
            "Goodwill.",
            "Refund",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
        }
        // Extreme: a long reason, a long tenant, many lines.
        let long = support::long_invoice(80);
        let many = tollgate_domain::credit_note::lines(&long, long.totals.total);
        let reason = "r".repeat(500);
        let tenant = "t".repeat(256);
        let refund = vec!["p".repeat(2000)];
        let doc = credit_note(&long, &many, &reason, &refund, Some(&contact), &tenant);
        assert!(assert_clean_sheet(&Sheet::credit_note(&doc)).len() > 1);
    }

    #[test]
    fn only_non_empty_contact_fields_are_printed() {
        let c = Contact {
            address1: "Main St 1".into(),
            city: "Berlin".into(),
            zip_code: "10115".into(),
            country: "Germany".into(),
            ..Contact::default()
        };
        assert_eq!(address_lines(&c), ["Main St 1", "Berlin 10115", "Germany"]);
        let c = Contact {
            city: "Springfield".into(),
            state_code: "IL".into(),
            zip_code: "62704".into(),
            phone_number: " ".into(),
            ..Contact::default()
        };
        assert_eq!(address_lines(&c), ["Springfield, IL 62704"]);
        assert!(address_lines(&Contact::default()).is_empty());
    }
}
