//! The invoice PDF through the API, parsed back with a PDF reader: what it
//! must say, for a paid invoice with a coupon and for a pending one.

use tollgate_domain::clock::Clock;
use tollgate_domain::currency::format_price;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::rating::Discount;
use tollgate_store::CouponDef;
use tollgate_testkit::each_backend;

use crate::invoice_support::{assert_has, billed_tenant, pdf_bytes, pdf_text, stored, usd};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};

const NAME: &str = "inv-2027-01-0001";

#[tokio::test]
async fn the_pdf_says_who_what_how_much_and_whether_it_was_paid() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (globex, admin) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let now = ts("2027-01-01T00:00:00Z");
        let def = CouponDef {
            code: "WELCOME".into(),
            title: "Welcome".into(),
            discount: Discount::Percent(1000),
        };
        app.store.create_coupon(&def, "operator", now).await.unwrap();
        app.store
            .apply_coupon(&globex.id, "WELCOME", now, None, "operator", now)
            .await
            .unwrap();
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("e1", "lb_requests", "lb-a", 7_000_000, "2027-01-10T10:00:00Z"),
                event("e2", "cdn_data_transfer", "cdn-1", 3, "2027-01-10T11:00:00Z"),
            ],
        )
        .await;

        // Pending: no issue date, no payment yet.
        let pending = pdf_text(&app, &admin, NAME).await;
        assert_has(&pending, "Pending (period open)");
        assert_has(&pending, "Payments No payment attempts yet.");
        assert!(!pending.contains("Issued 20"), "{pending}");

        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let inv = stored(&app, &globex, NAME).await.invoice;
        assert_eq!(inv.status, InvoiceStatus::Paid);

        let text = pdf_text(&app, &admin, NAME).await;
        for needle in [
            "Tollgate",
            "Invoice",
            NAME,
            "globex",
            "BILLED TO",
            "1 Main St",
            "Paris",
            "Invoice number inv-2027-01-0001",
            "Billing period 2027-01-01 – 2027-02-01 (UTC)",
            "Plan Individual",
            "Issued 2027-02-02",
            "Currency USD",
            "Description Quantity Unit Unit price Amount",
        ] {
            assert_has(&text, needle);
        }
        assert_has(&text, InvoiceStatus::Paid.label());

        // By hand: the fee 2500 ¢; 7 million requests → 2 beyond the 5 free
        // × 60 ¢ = 120 ¢; 3 bytes of CDN → 1 GB × 4.5 ¢ = 5 ¢ (half up).
        // Subtotal 2625 ¢, 10 % = 262.5 → 263 ¢ off, total 2362 ¢.
        let expected = [
            ("CDN Data Transfer", 5),
            ("HTTP Load Balancer Requests", 120),
            ("Individual plan", 2500),
        ];
        let mut lines: Vec<_> = inv
            .lines
            .iter()
            .map(|l| (l.description.as_str(), l.amount_cents))
            .collect();
        lines.sort_unstable();
        assert_eq!(lines, expected);
        for line in &inv.lines {
            assert_has(&text, &line.description);
            assert_has(&text, &usd(line.amount_cents));
            assert_has(
                &text,
                &format!("{} USD", format_price(line.unit_price_cents, "USD")),
            );
        }
        assert_has(&text, "0.045 USD");
        assert_has(&text, "(5 free)");
        assert_has(&text, &format!("Subtotal {}", usd(2625)));
        assert_has(&text, "Coupon: Welcome (10 %)");
        assert_has(&text, &format!("Discount {}", usd(-263)));
        assert_has(&text, &format!("TOTAL {}", usd(2362)));
        assert_has(
            &text,
            "2027-02-02 charge attempt 1 of 23.62 USD to test card ending 4242 (primary): paid",
        );
        assert!(!text.contains("No payment attempts yet."), "{text}");
        assert_has(&text, "Page 1 of 1");

        // The same invoice renders to the same bytes.
        assert_eq!(
            pdf_bytes(&app, &admin, NAME).await,
            pdf_bytes(&app, &admin, NAME).await
        );
    })
    .await;
}

/// The issuer is configuration (the catalog's `[issuer]`): a pending invoice
/// shows the latest catalog's, a finalized one keeps the issuer it was
/// finalized with, whatever is published later.
#[tokio::test]
async fn the_issuer_comes_from_the_catalog_and_is_fixed_at_finalization() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (globex, admin) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let publish = |name: &str, tax: &str| {
            tollgate_domain::catalog::BUILTIN_TOML.replace(
                "[issuer]\nname = \"Tollgate\"\naddress = []",
                &format!(
                    "[issuer]\nname = \"{name}\"\naddress = [\"Friedrichstraße 123\", \"10117 Berlin\"]\ntax_id = \"{tax}\"\nemail = \"billing@example.com\""
                ),
            )
        };
        let v2 = publish("Globex Billing GmbH", "DE111111111");
        assert!(v2.contains("DE111111111"), "the built-in catalog's issuer table moved");
        app.store
            .publish_catalog(&v2, "v2.toml", "operator", app.clock.now())
            .await
            .unwrap();

        let pending = pdf_text(&app, &admin, NAME).await;
        for needle in [
            "Globex Billing GmbH",
            "Friedrichstraße 123",
            "10117 Berlin",
            "Tax ID: DE111111111",
            "billing@example.com",
        ] {
            assert_has(&pending, needle);
        }

        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let issued = stored(&app, &globex, NAME).await.invoice;
        assert_eq!(
            issued.issuer.as_ref().map(|i| i.name.as_str()),
            Some("Globex Billing GmbH")
        );

        // The company moves; the issued invoice still says what it said.
        let v3 = publish("Globex Holdings AG", "CHE-222.222.222");
        app.store
            .publish_catalog(&v3, "v3.toml", "operator", app.clock.now())
            .await
            .unwrap();
        let text = pdf_text(&app, &admin, NAME).await;
        assert_has(&text, "Globex Billing GmbH");
        assert_has(&text, "Tax ID: DE111111111");
        assert!(!text.contains("Globex Holdings AG"), "{text}");
        // The next (pending) invoice shows the new issuer.
        let next = pdf_text(&app, &admin, "inv-2027-02-0002").await;
        assert_has(&next, "Globex Holdings AG");
    })
    .await;
}
