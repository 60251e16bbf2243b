//! Lays an invoice out on A4 pages as a list of drawing operations per page.
//!
//! Coordinates are points from the page's top-left corner, y downwards; a
//! text's y is its baseline.

use rust_decimal::Decimal;
use tollgate_domain::contact::Contact;
use tollgate_domain::invoice::{InvoiceLine, InvoiceStatus, format_cents, format_price};

use crate::InvoiceDocument;
use crate::text::{Face, Fonts, clean};

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

struct Layout<'a> {
    fonts: &'a Fonts,
    doc: &'a InvoiceDocument<'a>,
    pages: Vec<Vec<Op>>,
    /// The page drawn on.
    page: usize,
    /// The top of the free space on the current page.
    y: f32,
}

/// Lays out the whole document.
pub(crate) fn layout(doc: &InvoiceDocument<'_>, fonts: &Fonts) -> Vec<Vec<Op>> {
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
    l.payments();
    l.footers();
    l.pages
}

fn money(cents: i64, currency: &str) -> String {
    format!("{} {currency}", format_cents(cents))
}

fn price(cents: Decimal, currency: &str) -> String {
    format!("{} {currency}", format_price(cents))
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
        let title = format!("Invoice {} (continued)", self.doc.invoice.name);
        let title = self
            .fonts
            .truncate(Face::Regular, &clean(&title), 9.0, WIDTH / 2.0);
        self.text_right(RIGHT, base, Face::Regular, 9.0, MUTED, &title);
        self.hline(LEFT, RIGHT, base + 10.0, 0.75, RULE);
        self.y = base + 26.0;
    }

    /// Issuer, "Invoice", the invoice's name and its status.
    fn header(&mut self) {
        let inv = self.doc.invoice;
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
        self.text_right(RIGHT, base, Face::Bold, 20.0, INK, "Invoice");
        let name = self
            .fonts
            .truncate(Face::Regular, &clean(&inv.name), 10.5, WIDTH * 0.4);
        self.text_right(RIGHT, base + 18.0, Face::Regular, 10.5, MUTED, &name);

        // The status as a badge under the name.
        let label = inv.status.label();
        let (bg, fg) = status_colors(inv.status);
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

    /// "Billed to" on the left, the invoice's details on the right.
    fn parties(&mut self) {
        let inv = self.doc.invoice;
        let top = self.y;

        // Left: tenant and address.
        let left_w = 230.0;
        let mut y = top + 6.0;
        self.text(LEFT, y, Face::Bold, SMALL, MUTED, "BILLED TO");
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
        self.text(x, y, Face::Bold, SMALL, MUTED, "INVOICE DETAILS");
        y += 3.0;
        let mut rows = vec![
            ("Invoice number", clean(&inv.name)),
            (
                "Billing period",
                format!("{} – {} (UTC)", date(inv.period_start), date(inv.period_end)),
            ),
            ("Plan", clean(&inv.plan_title)),
        ];
        if let Some(issued) = inv.issued_at {
            rows.push(("Issued", date(issued)));
        }
        rows.push(("Currency", clean(&inv.currency)));
        for (label, value) in rows {
            y += 14.0;
            self.text(x, y, Face::Regular, BODY, MUTED, label);
            let label_w = self.fonts.width(Face::Regular, label, BODY);
            let max = RIGHT - x - label_w - 12.0;
            let value = self.fonts.truncate(Face::Regular, &value, BODY, max);
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

    /// One row per invoice line; the header is repeated on every page.
    fn table(&mut self) {
        let inv = self.doc.invoice;
        let cap = self.fonts.face(Face::Regular).cap_height * BODY;
        if !self.fits(TABLE_HEAD_H + 2.0 * LEADING) {
            self.new_page();
        }
        self.table_header();
        if inv.lines.is_empty() {
            let y = self.y + ROW_PAD + cap;
            self.text(
                col::DESC_X,
                y,
                Face::Regular,
                BODY,
                MUTED,
                "No charges in this period.",
            );
            self.y = y + ROW_PAD;
            self.hline(LEFT, RIGHT, self.y, 0.5, LIGHT_RULE);
        }
        for line in &inv.lines {
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

    fn row_cells(&self, line: &InvoiceLine) -> Cells {
        let currency = &self.doc.invoice.currency;
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
            price: price(line.unit_price_cents, currency),
            amount: money(line.amount_cents, currency),
        }
    }

    /// Subtotal, coupons, discount and total, right-aligned under the table
    /// and kept together on one page.
    fn totals(&mut self) {
        let inv = self.doc.invoice;
        let currency = clean(&inv.currency);
        let t = inv.totals;
        let show_discount = !inv.coupons.is_empty() || t.discount != 0;
        let row = 18.0;
        let coupon_row = 14.0;
        let total_h = 28.0;
        let mut height = 12.0 + row + total_h + 6.0;
        if show_discount {
            height += row + inv.coupons.len() as f32 * coupon_row;
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
        let y = self.y + (row + cap * size) / 2.0;
        self.text(label_x, y, Face::Regular, size, INK, "Subtotal");
        self.number(
            col::AMOUNT_R,
            y,
            Face::Regular,
            size,
            w / 2.0,
            &money(t.subtotal, &currency),
        );
        self.y += row;

        if show_discount {
            for coupon in &inv.coupons {
                let text = format!("Coupon: {} ({})", clean(&coupon.title), clean(&coupon.terms));
                let text = self.fonts.truncate(Face::Regular, &text, 8.5, w - 2.0 * col::PAD);
                let y = self.y + (coupon_row + cap * 8.5) / 2.0;
                self.text(label_x, y, Face::Regular, 8.5, MUTED, &text);
                self.y += coupon_row;
            }
            let y = self.y + (row + cap * size) / 2.0;
            self.text(label_x, y, Face::Regular, size, INK, "Discount");
            self.number(
                col::AMOUNT_R,
                y,
                Face::Regular,
                size,
                w / 2.0,
                &money(-t.discount, &currency),
            );
            self.y += row;
        }

        self.y += 6.0;
        self.rect(x, self.y, w, total_h, 3.0, ACCENT);
        let size = 11.0;
        let y = self.centered_baseline(self.y, total_h, Face::Bold, size);
        self.text(label_x, y, Face::Bold, size, WHITE, "TOTAL");
        let total = money(t.total, &currency);
        let size = self
            .fonts
            .shrink_to_fit(Face::Bold, &total, size, MIN_SIZE, w - 60.0);
        self.text_right(col::AMOUNT_R, y, Face::Bold, size, WHITE, &total);
        self.y += total_h;
    }

    /// The payment attempts, or a note that there were none.
    fn payments(&mut self) {
        let heading_h = 24.0;
        self.y += 30.0;
        if !self.fits(heading_h + LEADING + 4.0) {
            self.new_page();
        }
        let y = self.y + 11.0;
        self.text(LEFT, y, Face::Bold, 11.0, INK, "Payments");
        self.hline(LEFT, RIGHT, y + 7.0, 0.75, RULE);
        self.y += heading_h;

        let cap = self.fonts.face(Face::Regular).cap_height * BODY;
        if self.doc.payments.is_empty() {
            self.text(
                LEFT,
                self.y + cap,
                Face::Regular,
                BODY,
                MUTED,
                "No payment attempts yet.",
            );
            self.y += LEADING;
            return;
        }
        let indent = 12.0;
        for payment in self.doc.payments {
            let lines = self
                .fonts
                .wrap(Face::Regular, &clean(payment), BODY, WIDTH - indent, usize::MAX);
            for (i, line) in lines.iter().enumerate() {
                if !self.fits(LEADING) {
                    self.new_page();
                }
                let y = self.y + cap;
                if i == 0 {
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
        let inv = self.doc.invoice;
        let left = format!(
            "{} · Invoice {} · {}",
            clean(&self.doc.issuer.name),
            clean(&inv.name),
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
}

impl Cells {
    /// How many text lines the row needs.
    fn lines(&self) -> usize {
        self.description
            .len()
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
        let fonts = Fonts::load().unwrap();
        let pages = layout(doc, &fonts);
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
            total: 0,
        };
        assert_clean_layout(&doc(&inv, None, &[], "empty"));
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
