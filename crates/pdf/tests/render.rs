//! Renders invoices and reads the PDFs back with a PDF parser (pdf-extract,
//! on lopdf): the text must be extractable and complete. `TOLLGATE_PDF_SAMPLE=FILE`
//! keeps the full sample invoice there, to look at (e.g. `pdftoppm -png`).

mod support;

use pdf_extract::{Document, Object};
use rust_decimal::Decimal;
use tollgate_domain::currency::{format_minor, format_price};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};
use tollgate_pdf::{InvoiceDocument, render};

static ISSUER: std::sync::LazyLock<tollgate_domain::catalog::Issuer> =
    std::sync::LazyLock::new(support::sample_issuer);

fn doc<'a>(
    invoice: &'a Invoice,
    contact: Option<&'a tollgate_domain::contact::Contact>,
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

/// Whitespace collapsed to single spaces: wrapped text reads as one line.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text_of(pdf: &[u8]) -> String {
    normalize(&pdf_extract::extract_text_from_mem(pdf).unwrap())
}

fn assert_has(text: &str, needle: &str) {
    let needle = normalize(needle);
    assert!(text.contains(&needle), "{needle:?} not found in:\n{text}");
}

fn usd(cents: i64) -> String {
    format!("{} USD", format_minor(cents, "USD"))
}

fn quantity(q: Decimal) -> String {
    q.normalize().to_string()
}

#[test]
fn everything_on_the_invoice_is_extractable_text() {
    let inv = support::sample_invoice(InvoiceStatus::Overdue);
    let contact = support::sample_contact();
    let payments = support::sample_payments();
    let pdf = render(&doc(&inv, Some(&contact), &payments, "acme")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    if let Some(path) = std::env::var_os("TOLLGATE_PDF_SAMPLE") {
        std::fs::write(path, &pdf).unwrap();
    }
    let text = text_of(&pdf);

    for needle in [
        "Tollgate Billing GmbH",
        "Friedrichstraße 123",
        "10117 Berlin",
        "Tax ID: DE123456789",
        "billing@tollgate.example",
        "Invoice",
        "inv-2026-12-0003",
        "Overdue",
        "BILLED TO",
        "acme",
        "Acme Corporation",
        "1200 Market Street, Suite 400",
        "San Francisco, CA 94103",
        "United States",
        "+1 415 555 0100",
        "Billing period 2026-12-01 – 2026-12-16 (UTC)",
        "Plan Teams",
        "Issued 2026-12-19",
        "Description Quantity Unit Unit price Amount",
    ] {
        assert_has(&text, needle);
    }
    assert_has(&text, inv.status.label());

    assert_eq!(inv.lines.len(), 7, "{:?}", inv.lines);
    for line in &inv.lines {
        assert_has(&text, &line.description);
        assert_has(&text, &line.unit);
        assert_has(&text, &quantity(line.quantity));
        assert_has(
            &text,
            &format!("{} USD", format_price(line.unit_price_cents, "USD")),
        );
        assert_has(&text, &usd(line.amount_cents));
        if !line.free_quantity.is_zero() {
            assert_has(&text, &format!("({} free)", quantity(line.free_quantity)));
        }
    }
    // Sub-cent prices keep their precision.
    assert_has(&text, "0.035 USD");
    assert_has(&text, "(50 free)");

    let t = inv.totals;
    assert!(t.discount > 0);
    assert_has(&text, &format!("Subtotal {}", usd(t.subtotal)));
    assert_has(&text, "Coupon: Welcome (10 %)");
    assert_has(&text, "Coupon: Loyalty credit (5.00 USD)");
    assert_has(&text, &format!("Discount {}", usd(-t.discount)));
    assert_has(&text, &format!("TOTAL {}", usd(t.total)));

    assert_has(&text, "Payments");
    for p in &payments {
        assert_has(&text, p);
    }
    assert!(!text.contains("No payment attempts yet."));
    assert_has(&text, "Page 1 of 1");
}

#[test]
fn without_payments_or_contact_the_invoice_says_so() {
    let inv = support::sample_invoice(InvoiceStatus::Pending);
    let pdf = render(&doc(&inv, None, &[], "initech")).unwrap();
    let text = text_of(&pdf);
    assert_has(&text, "Pending (period open)");
    assert_has(&text, "initech");
    assert_has(&text, "Payments No payment attempts yet.");
    // Not issued yet: no issued date.
    assert!(!text.contains("Issued 20"), "{text}");
}

/// Amounts are minor units of the invoice's currency and print with its
/// ISO 4217 decimals: whole yen, no decimal point.
#[test]
fn a_yen_invoice_prints_whole_yen() {
    let mut inv = support::sample_invoice(InvoiceStatus::Issued);
    inv.currency = "JPY".into();
    // The sample's coupon terms were written for dollars.
    for c in &mut inv.coupons {
        c.terms = c.terms.replace("5.00 USD", "500 JPY");
    }
    let pdf = render(&doc(&inv, None, &[], "acme")).unwrap();
    let text = text_of(&pdf);
    for line in &inv.lines {
        assert_has(&text, &format!("{} JPY", format_minor(line.amount_cents, "JPY")));
        assert!(!format_minor(line.amount_cents, "JPY").contains('.'));
    }
    let t = inv.totals;
    assert_has(&text, &format!("Subtotal {} JPY", t.subtotal));
    assert_has(&text, &format!("TOTAL {} JPY", t.total));
    assert!(!text.contains(" USD"), "{text}");
    // Not the same amounts read as cents.
    assert!(
        !text.contains(&format!("{} JPY", format_minor(t.total, "USD"))),
        "{text}"
    );
}

#[test]
fn eighty_lines_flow_onto_several_pages_with_the_header_repeated() {
    let inv = support::long_invoice(80);
    let payments = ["2027-02-04 charge of 1171.80 USD to test card ending 4242: succeeded".to_string()];
    let pdf = render(&doc(&inv, None, &payments, "globex")).unwrap();

    let pages: Vec<String> = pdf_extract::extract_text_from_mem_by_pages(&pdf)
        .unwrap()
        .iter()
        .map(|p| normalize(p))
        .collect();
    let n = pages.len();
    assert!(n > 1, "{n} page(s)");
    assert_eq!(Document::load_mem(&pdf).unwrap().get_pages().len(), n);
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Page {} of {n}", i + 1)),
            "page {i}: {page}"
        );
        if page.contains("Line ") {
            assert!(
                page.contains("Description Quantity Unit Unit price Amount"),
                "page {i} has rows but no table header: {page}"
            );
        }
        if i > 0 {
            assert!(page.contains("Invoice inv-2027-01-0042 (continued)"), "page {i}");
        }
    }
    let last = &pages[n - 1];
    assert!(
        last.contains("Line 80: adjustment for usage reported late"),
        "{last}"
    );
    assert!(
        last.contains(&format!("TOTAL {}", usd(inv.totals.total))),
        "{last}"
    );
    assert!(last.contains(&payments[0]), "{last}");

    let text = pages.join(" ");
    for line in &inv.lines {
        // Long descriptions are cut after four lines; their start is there.
        let start: String = line.description.chars().take(40).collect();
        assert_has(&text, &start);
        assert_has(&text, &usd(line.amount_cents));
    }
    // A description too long for four lines ends in an ellipsis.
    assert!(text.contains('…'));
}

#[test]
fn the_fonts_are_embedded_subset_and_mapped_to_unicode() {
    let inv = support::sample_invoice(InvoiceStatus::Paid);
    let pdf = render(&doc(&inv, None, &[], "acme")).unwrap();
    // The two TrueType files are 1.4 MB; subset, the whole PDF is small.
    assert!(pdf.len() < 60_000, "{} bytes", pdf.len());

    let document = Document::load_mem(&pdf).unwrap();
    let mut type0 = Vec::new();
    let mut font_files = 0;
    for object in document.objects.values() {
        let Ok(dict) = object.as_dict() else { continue };
        let is = |key: &[u8], value: &[u8]| dict.get(key).and_then(Object::as_name).is_ok_and(|n| n == value);
        if is(b"Type", b"Font") && is(b"Subtype", b"Type0") {
            let base = dict.get(b"BaseFont").and_then(Object::as_name).unwrap();
            type0.push(String::from_utf8_lossy(base).into_owned());
            assert!(dict.get(b"ToUnicode").is_ok(), "{base:?} has no ToUnicode map");
        }
        if is(b"Type", b"FontDescriptor") {
            assert!(dict.get(b"FontFile2").is_ok(), "a font is not embedded");
            font_files += 1;
        }
    }
    assert_eq!(type0.len(), 2, "{type0:?}");
    // Subset fonts are named "ABCDEF+Name".
    for name in ["+DejaVuSans", "+DejaVuSans-Bold"] {
        assert!(type0.iter().any(|f| f.ends_with(name)), "{name} not in {type0:?}");
    }
    assert_eq!(font_files, 2);
}

#[test]
fn rendering_is_deterministic() {
    let inv = support::sample_invoice(InvoiceStatus::Issued);
    let payments = support::sample_payments();
    let a = render(&doc(&inv, None, &payments, "acme")).unwrap();
    let b = render(&doc(&inv, None, &payments, "acme")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn everything_on_a_credit_note_is_extractable_text() {
    use tollgate_pdf::{CreditNoteDocument, CreditNoteState, render_credit_note};

    let inv = support::sample_invoice(InvoiceStatus::Paid);
    let contact = support::sample_contact();
    let refund = [
        "2027-01-05 refund of 20.00 USD to test card ending 4242: refunded (provider reference re_42)"
            .to_string(),
    ];
    let lines = tollgate_domain::credit_note::lines(&inv, 2000);
    let pdf = render_credit_note(&CreditNoteDocument {
        name: "cn-2027-01-0007",
        invoice: &inv,
        created_at: support::t("2027-01-05T10:00:00Z"),
        settled_at: Some(support::t("2027-01-06T09:00:00Z")),
        state: CreditNoteState::Refunded,
        amount_cents: 2000,
        currency: "USD",
        reason: "Outage on 2026-12-03:\nfour hours without service.",
        lines: &lines,
        tenant: "acme",
        contact: Some(&contact),
        refund: &refund,
        issuer: &ISSUER,
    })
    .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = text_of(&pdf);
    for needle in [
        "Tollgate Billing GmbH",
        "Tax ID: DE123456789",
        "Credit note",
        "cn-2027-01-0007",
        "Refunded",
        "CREDITED TO",
        "acme",
        "Acme Corporation",
        "CREDIT NOTE DETAILS",
        "Credit note number cn-2027-01-0007",
        "Date 2027-01-05",
        "Credits invoice inv-2026-12-0003",
        "Billing period 2026-12-01 – 2026-12-16 (UTC)",
        "Refunded 2027-01-06",
        "Description Quantity Unit Unit price Amount",
        "Partial refund of invoice inv-2026-12-0003",
        "TOTAL CREDITED 20.00 USD",
        "Reason",
        "Outage on 2026-12-03:",
        "four hours without service.",
        "Refund",
        &refund[0],
        "Credit note cn-2027-01-0007 · acme",
        "Page 1 of 1",
    ] {
        assert_has(&text, needle);
    }

    // Pending, not refunded yet: no refund date, and it says so.
    let whole = tollgate_domain::credit_note::lines(&inv, inv.totals.total);
    let pdf = render_credit_note(&CreditNoteDocument {
        name: "cn-2027-01-0008",
        invoice: &inv,
        created_at: support::t("2027-01-05T10:00:00Z"),
        settled_at: None,
        state: CreditNoteState::Pending,
        amount_cents: inv.totals.total,
        currency: "USD",
        reason: "The customer left.",
        lines: &whole,
        tenant: "acme",
        contact: None,
        refund: &[],
        issuer: &ISSUER,
    })
    .unwrap();
    let text = text_of(&pdf);
    assert_has(&text, "Refund pending");
    assert_has(&text, "Not refunded yet.");
    assert!(!text.contains("Refunded 20"), "{text}");
    for line in &inv.lines {
        assert_has(&text, &line.description);
    }
    assert_has(&text, "Discount: Welcome (10 %), Loyalty credit (5.00 USD)");
    assert_has(&text, &format!("TOTAL CREDITED {}", usd(inv.totals.total)));
}
