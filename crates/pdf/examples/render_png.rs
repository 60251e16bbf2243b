//! Renders sample invoices to PDF and their pages to PNG, to look at the
//! layout:
//!
//! ```sh
//! cargo run -p tollgate-pdf --features render-png --example render_png -- /tmp/tollgate-pdf
//! ```
//!
//! Writes `sample.pdf`, `long.pdf`, `extreme.pdf`, `bare.pdf` and one `NAME-pN.png` per page
//! into the directory given (default `/tmp/tollgate-pdf`). Uses the
//! pure-Rust `hayro` rasterizer (a dev-dependency only).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings, render};
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_pdf::InvoiceDocument;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/tollgate-pdf".to_string());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();

    let contact = support::sample_contact();
    let payments = support::sample_payments();
    let sample = support::sample_invoice(InvoiceStatus::Overdue);
    write(
        dir,
        "sample",
        &InvoiceDocument {
            invoice: &sample,
            tenant: "acme",
            contact: Some(&contact),
            payments: &payments,
            issuer: "Tollgate",
        },
    );

    let long = support::long_invoice(80);
    let long_payments = ["2027-02-04 charge of 1171.80 USD to test card ending 4242: succeeded".to_string()];
    write(
        dir,
        "long",
        &InvoiceDocument {
            invoice: &long,
            tenant: "globex-international-holdings",
            contact: None,
            payments: &long_payments,
            issuer: "Tollgate",
        },
    );

    let extreme = support::extreme_invoice();
    let extreme_contact = support::extreme_contact();
    let extreme_payments = ["p".repeat(2000), "short one".into()];
    write(
        dir,
        "extreme",
        &InvoiceDocument {
            invoice: &extreme,
            tenant: &"t".repeat(256),
            contact: Some(&extreme_contact),
            payments: &extreme_payments,
            issuer: "Tollgate",
        },
    );

    let pending = support::sample_invoice(InvoiceStatus::Pending);
    write(
        dir,
        "bare",
        &InvoiceDocument {
            invoice: &pending,
            tenant: "initech",
            contact: None,
            payments: &[],
            issuer: "Tollgate",
        },
    );
}

fn write(dir: &Path, name: &str, doc: &InvoiceDocument<'_>) {
    let bytes = tollgate_pdf::render(doc).unwrap();
    let pdf_path = dir.join(format!("{name}.pdf"));
    std::fs::write(&pdf_path, &bytes).unwrap();
    println!("{} ({} bytes)", pdf_path.display(), bytes.len());

    let pdf = Pdf::new(bytes).unwrap();
    let cache = RenderCache::new();
    let settings = InterpreterSettings::default();
    let pixmap = PixmapSettings {
        x_scale: 1.5,
        y_scale: 1.5,
        bg_color: WHITE,
    };
    for (i, page) in pdf.pages().iter().enumerate() {
        let image = render(page, &cache, &settings, &RenderSettings::default(), &pixmap);
        let path = dir.join(format!("{name}-p{}.png", i + 1));
        std::fs::write(&path, image.into_png().unwrap()).unwrap();
        println!("{}", path.display());
    }
}
