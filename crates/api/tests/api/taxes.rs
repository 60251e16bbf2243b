//! Taxes (catalog format 2): rates by country and region with effective
//! dates, decided by the billing address (the primary payment method's);
//! exempt and reverse-charged tenants; one half-up rounding per rate on the
//! total after discounts; in current_usage, invoices, PDFs and credit notes.
//! Amounts worked out by hand.

use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::catalog::Catalog;
use tollgate_testkit::each_backend;

use crate::billing_support::PAYMENT_METHODS;
use crate::invoice_support::{pdf_text, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::{current, fixed_items, item};

const TAXES: &str = r#"
[[taxes]]
name = "VAT"
country = "DE"
rate = 19
until = 2027-07-01

[[taxes]]
name = "VAT"
country = "DE"
rate = 16
from = 2027-07-01

[[taxes]]
name = "State sales tax"
country = "US"
region = "CA"
rate = 6

[[taxes]]
name = "County tax"
country = "US"
region = "CA"
rate = "1.25"
"#;

fn catalog() -> String {
    let text = tollgate_domain::catalog::BUILTIN_TOML;
    assert!(text.contains("format = 1"), "the built-in catalog moved");
    format!("{}\n{TAXES}", text.replacen("format = 1", "format = 2", 1))
}

fn card_in(country: &str, state_code: &str) -> Value {
    json!({
        "token": "tok-visa-4242",
        "contact": {"address1": "1 Main St", "city": "Somewhere", "country": country,
                    "state_code": state_code, "contact_type": "BILLING"},
        "role": "PAYMENT_METHOD_ROLE_PRIMARY",
        "namespace": "system"
    })
}

async fn tenant(
    app: &TestApp,
    name: &str,
    catalog: &Catalog,
    version: i64,
    card: Value,
) -> (tollgate_domain::tenant::Tenant, String) {
    let t = app.tenant_on_version(name, "individual", catalog, version).await;
    let admin = app.token(&t, Role::Admin).await;
    app.post(PAYMENT_METHODS, &admin, card).await.ok();
    (t, admin)
}

#[tokio::test]
async fn taxes_follow_the_billing_address_and_the_tenants_treatment() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let text = catalog();
        let version = app
            .store
            .publish_catalog(&text, "taxes.toml", "operator", ts("2026-12-01T00:00:00Z"))
            .await
            .unwrap();
        let parsed = tollgate_domain::catalog::parse("taxes.toml", &text).unwrap();
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let (acme, acme_admin) = tenant(&app, "acme", &parsed, version, card_in("DE", "")).await;
        let (_, bravo_admin) = tenant(&app, "bravo", &parsed, version, card_in("US", "CA")).await;
        let (cargo, cargo_admin) = tenant(&app, "cargo", &parsed, version, card_in("DE", "")).await;
        let (_, delta_admin) = tenant(&app, "delta", &parsed, version, card_in("FR", "")).await;
        let tax_path = |t: &str| format!("/api/operator/tenants/{t}/tax");
        let set = app
            .operator(
                Method::PUT,
                &tax_path("cargo"),
                Some(json!({"treatment": "reverse_charge", "tax_id": "DE999999999"})),
            )
            .await;
        assert_eq!(
            set.ok(),
            &json!({"treatment": "reverse_charge", "tax_id": "DE999999999"})
        );
        assert_eq!(
            app.operator(Method::GET, &tax_path("acme"), None).await.ok(),
            &json!({"treatment": "standard"})
        );
        for (body, words) in [
            (json!({"treatment": "reverse_charge"}), "tax_id: is required"),
            (
                json!({"treatment": "exempt", "tax_id": "X"}),
                "only a reverse charge",
            ),
            (json!({"treatment": "zero"}), "is not one of"),
        ] {
            let resp = app.operator(Method::PUT, &tax_path("acme"), Some(body)).await;
            assert!(resp.error(400, 3).contains(words), "{}", resp.body);
        }
        app.operator(
            Method::PUT,
            &tax_path("nobody"),
            Some(json!({"treatment": "exempt"})),
        )
        .await
        .error(404, 5);

        app.clock.set(ts("2027-01-20T00:00:00Z"));
        // Germany: 19 % of the 25.00 fee = 4.75.
        let a = current(&app, &acme_admin, "system", json!({})).await;
        assert_eq!(
            fixed_items(&a),
            [item("Individual plan", "2500"), item("VAT 19 %", "475")]
        );
        assert_eq!((&a["discount"], &a["total_cost"]), (&json!("0"), &json!("2975")));
        // California: 6 % = 1.50 and 1.25 % = 0.3125 → 0.31, rounded per rate.
        let b = current(&app, &bravo_admin, "system", json!({})).await;
        assert_eq!(
            fixed_items(&b),
            [
                item("Individual plan", "2500"),
                item("State sales tax 6 %", "150"),
                item("County tax 1.25 %", "31")
            ]
        );
        assert_eq!(b["total_cost"], "2681");
        // Reverse charge, and a country without rates: no tax.
        assert_eq!(
            current(&app, &cargo_admin, "system", json!({})).await["total_cost"],
            "2500"
        );
        assert_eq!(
            current(&app, &delta_admin, "system", json!({})).await["total_cost"],
            "2500"
        );

        // Finalized: the invoice keeps its taxes; the PDF shows them.
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        inv.check().unwrap();
        assert_eq!(
            (inv.totals.subtotal, inv.totals.tax, inv.totals.total),
            (2500, 475, 2975)
        );
        assert_eq!(inv.taxes.len(), 1);
        let pdf = pdf_text(&app, &acme_admin, "inv-2027-01-0001").await;
        assert!(pdf.contains("VAT 19 %") && pdf.contains("29.75 USD"), "{pdf}");
        let detail = app
            .operator(
                Method::GET,
                "/api/operator/tenants/acme/invoices/inv-2027-01-0001",
                None,
            )
            .await;
        let detail = detail.ok();
        assert_eq!(detail["tax_cents"], 475);
        assert_eq!(
            detail["taxes"],
            json!([{"name": "VAT", "percent": "19", "taxable_cents": 2500, "amount_cents": 475}])
        );
        let rc = stored(&app, &cargo, "inv-2027-01-0001").await.invoice;
        assert_eq!((rc.totals.tax, rc.totals.total), (0, 2500));
        assert!(
            rc.tax_note.as_deref().unwrap().contains("DE999999999"),
            "{:?}",
            rc.tax_note
        );
        let pdf = pdf_text(&app, &cargo_admin, "inv-2027-01-0001").await;
        assert!(
            pdf.contains("Reverse charge") && pdf.contains("DE999999999"),
            "{pdf}"
        );

        // Charged with the tax; a partial refund gives the tax back in
        // proportion: 10.00 of 29.75 → VAT 4.75 × 10/29.75 = 1.596… → 1.60.
        app.charge().await;
        let refund = app
            .operator(
                Method::POST,
                "/api/operator/tenants/acme/invoices/inv-2027-01-0001/refund",
                Some(json!({"amount": "10.00", "reason": "goodwill"})),
            )
            .await;
        let lines = refund.ok()["credit_note"]["lines"].clone();
        let got: Vec<(&str, i64)> = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["description"].as_str().unwrap(),
                    l["amount_cents"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Partial refund of invoice inv-2027-01-0001", 840),
                ("VAT 19 % refunded", 160)
            ]
        );

        // July: the new German rate, 16 % = 4.00.
        app.clock.set(ts("2027-07-10T00:00:00Z"));
        let july = current(&app, &acme_admin, "system", json!({})).await;
        assert!(fixed_items(&july).contains(&item("VAT 16 %", "400")), "{july}");
    })
    .await;
}
