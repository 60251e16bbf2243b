//! Invoices: the lifecycle (pending, finalized, charged), the list and the PDF.

use serde_json::json;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, card};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};

pub const INVOICES: &str = "/api/web/namespaces/system/usage/invoices/custom_list";
pub const PDF: &str = "/api/web/namespaces/system/usage/invoice_pdf";

/// A team tenant's first month: pending while open, finalized after the
/// grace, charged to its card, listed newest first, downloadable as a PDF.
#[tokio::test]
async fn a_month_is_invoiced_charged_and_listed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2026-11-01T00:00:00Z"));
        let tenant = app.tenant_on("acme", "individual").await;
        let admin = app.token(&tenant, tollgate_domain::access::Role::Admin).await;
        let created = app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242")).await;
        assert_eq!(created.status, 200, "{}", created.body);
        app.clock.set(ts("2026-11-15T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "e1",
                "lb_requests",
                "lb-a",
                7_000_000,
                "2026-11-10T10:00:00Z",
            )],
        )
        .await;
        let list = app.get(INVOICES, &admin).await;
        assert_eq!(list.status, 200, "{}", list.body);
        let first = &list.body["invoices"][0];
        assert_eq!(first["name"], "inv-2026-11-0001");
        assert_eq!(first["status"], "STATUS_PENDING");
        assert_eq!(first["active"], true);
        assert_eq!(first["amount"], "2620", "{first}");

        app.clock.set(ts("2026-12-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.close_periods().await, 0, "closing twice stores nothing");
        assert_eq!(app.charge().await, 1);
        let list = app.get(INVOICES, &admin).await;
        let names: Vec<_> = list.body["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_owned(),
                    i["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("inv-2026-12-0002".to_owned(), "STATUS_PENDING".to_owned()),
                ("inv-2026-11-0001".to_owned(), "STATUS_PAID".to_owned())
            ]
        );
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-visa-4242".to_owned(), 2620)]
        );
        let pdf = app.get(&format!("{PDF}?name=inv-2026-11-0001"), &admin).await;
        assert_eq!(pdf.status, 200, "{}", pdf.body);
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            pdf.body["pdf"].as_str().unwrap(),
        )
        .unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let missing = app.get(&format!("{PDF}?name=inv-1999-01-0001"), &admin).await;
        missing.error(404, 5);
        let _ = json!({});
    })
    .await;
}

/// The list's wire format: a paid, an issued (not charged yet) and a
/// pending invoice, newest first.
#[tokio::test]
async fn the_invoice_list_response() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = crate::invoice_support::billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "e1",
                "lb_requests",
                "lb-a",
                7_000_000,
                "2027-01-10T10:00:00Z",
            )],
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        app.close_periods().await;
        app.charge().await;
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        app.close_periods().await;
        let list = app.get(INVOICES, &admin).await;
        crate::snapshot!("invoice_list", list.ok());
    })
    .await;
}
