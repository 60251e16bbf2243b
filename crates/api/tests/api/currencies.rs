//! Currencies: a catalog priced in several currencies, a tenant's currency
//! set at creation and fixed while an invoice is unpaid, amounts in minor
//! units of ISO 4217 (whole yen for JPY) in current_usage, invoices, PDFs
//! and refunds. Amounts worked out by hand.

use axum::http::Method;
use serde_json::json;
use tollgate_domain::access::Role;
use tollgate_domain::tenant::Tenant;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, TRANSITION};
use crate::invoice_support::{assert_has, list_raw, pdf_text, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::{current, event, fixed_items, ingest_all, item, line};

/// The plans' own money is USD (the first currency); `pro` restates it in
/// EUR and JPY, with a graduated price in yen whose amount ends in a half.
pub const CATALOG: &str = r#"format = 2
currencies = ["USD", "EUR", "JPY"]
default_plan = "basic"

[[meters]]
metric_label = "requests"
usage_type = "Requests"
service = "LB"
unit = "request"
unit_billable = "request"
divisor = 1
aggregation = "sum"

[[plans]]
name = "basic"
title = "Basic"
usage_plan_type = "FREE"
tenant_type = "FREEMIUM"
flat_price_cents = 0
offered = true
transition = { method = "WIZARD" }

[[plans]]
name = "pro"
title = "Pro"
usage_plan_type = "INDIVIDUAL"
tenant_type = "FREEMIUM"
flat_price_cents = 2500
minimum_commitment_cents = 10000
offered = true
transition = { method = "WIZARD" }

[plans.prices.requests]
unit_price_cents = "60"
free_allowance = "5"

[plans.currencies.EUR]
flat_price_cents = 2300
minimum_commitment_cents = 9000

[plans.currencies.EUR.prices.requests]
unit_price_cents = "55"
free_allowance = "5"

[plans.currencies.JPY]
flat_price_cents = 3800
minimum_commitment_cents = 15000

[plans.currencies.JPY.prices.requests]
model = "graduated"
free_allowance = "5"
tiers = [
  { up_to = 1000, unit_price_cents = "0.5" },
  { unit_price_cents = "0.25", flat_amount_cents = "100" },
]
"#;

const TENANTS: &str = "/api/operator/tenants";

fn card_in(country: &str) -> serde_json::Value {
    json!({
        "token": "tok-visa-4242",
        "contact": {"address1": "1-1 Marunouchi", "city": "Tokyo", "country": country, "contact_type": "BILLING"},
        "role": "PAYMENT_METHOD_ROLE_PRIMARY",
        "namespace": "system"
    })
}

async fn create(app: &TestApp, body: serde_json::Value) -> Tenant {
    let name = body["name"].as_str().unwrap().to_owned();
    let resp = app.operator(Method::POST, TENANTS, Some(body)).await;
    resp.ok();
    app.store.tenant_by_name(&name).await.unwrap().unwrap()
}

/// 1239 requests on the pro plan: 5 free, 1234 chargeable.
/// - JPY: units 1–1000 at 0.5 yen = 500; units 1001–1234: 234 × 0.25 +
///   100 = 158.5; 658.5 rounds half up to 659 yen. The minimum of 15000
///   yen is not reached: a true-up of 15000 − 659 = 14341. With the fee of
///   3800: 3800 + 659 + 14341 = 18800 yen.
/// - USD: 1234 × 60 ¢ = 74040; the minimum (10000) is passed; with the fee
///   2500: 76540 cents.
#[tokio::test]
async fn a_yen_tenant_is_billed_in_whole_yen_from_creation_to_refund() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2026-12-20T00:00:00Z"));
        app.store
            .publish_catalog(CATALOG, "multi.toml", "operator", ts("2026-12-20T00:00:00Z"))
            .await
            .unwrap();
        app.clock.set(ts("2027-01-01T00:00:00Z"));

        // Creation: a currency the catalog prices; default its first.
        for (body, words) in [
            (json!({"name": "x1", "plan": "pro", "currency": "GBP"}), "currency: catalog version 2 does not price GBP; it prices USD, EUR, JPY"),
            (json!({"name": "x2", "plan": "pro", "currency": "yen"}), "currency: must be an ISO 4217 currency code"),
        ] {
            let resp = app.operator(Method::POST, TENANTS, Some(body)).await;
            assert!(resp.error(400, 3).contains(words), "{}", resp.body);
            assert_eq!(resp.metadata("field"), "currency");
        }
        let kyoto = create(&app, json!({"name": "kyoto", "plan": "pro", "currency": "JPY"})).await;
        let acme = create(&app, json!({"name": "acme", "plan": "pro"})).await;
        assert_eq!(kyoto.currency.as_deref(), Some("JPY"));
        assert_eq!(acme.currency.as_deref(), Some("USD"));
        let shown = app.operator(Method::GET, "/api/operator/tenants/kyoto", None).await;
        assert_eq!(shown.ok()["currency"], "JPY");

        app.clock.set(ts("2027-01-10T00:00:00Z"));
        let kyoto_admin = app.token(&kyoto, Role::Admin).await;
        let acme_admin = app.token(&acme, Role::Admin).await;
        for tok in [&kyoto_admin, &acme_admin] {
            app.post(PAYMENT_METHODS, tok, card_in("JP")).await.ok();
            let events = vec![
                event("r-1", "requests", "lb", 1000, "2027-01-05T10:00:00Z"),
                event("r-2", "requests", "lb", 200, "2027-01-06T10:00:00Z"),
                event("r-3", "requests", "lb", 39, "2027-01-07T10:00:00Z"),
            ];
            ingest_all(&app, tok, "system", events).await;
        }

        // current_usage: whole yen, the steps exact.
        app.clock.set(ts("2027-01-20T00:00:00Z"));
        let k = current(&app, &kyoto_admin, "system", json!({})).await;
        let requests = line(&k, "requests");
        assert_eq!((&requests["amount"], &requests["currency_code"]), (&json!("659"), &json!("JPY")));
        assert_eq!(
            requests["pricing"],
            json!({"model": "graduated", "steps": [
                {"from": "1", "to": "1000", "quantity": "1000", "unit_price_cents": "0.5", "flat_cents": "0", "amount_cents": "500"},
                {"from": "1001", "quantity": "234", "unit_price_cents": "0.25", "flat_cents": "100", "amount_cents": "158.5"}
            ]})
        );
        assert_eq!(
            fixed_items(&k),
            [item("Pro plan", "3800"), item("Minimum commitment (15000 JPY)", "14341")]
        );
        assert_eq!(k["total_cost"], "18800");
        let a = current(&app, &acme_admin, "system", json!({})).await;
        assert_eq!((&line(&a, "requests")["amount"], &a["total_cost"]), (&json!("74040"), &json!("76540")));
        assert_eq!(line(&a, "requests")["currency_code"], "USD");
        // The plans it may move to, with the fees in its currency.
        let plans = app.get("/api/web/namespaces/system/usage/meters", &kyoto_admin).await;
        let price = plans.ok()["items"][0]["price"].as_str().unwrap().to_owned();
        assert!(price.starts_with("graduated: 0.5 JPY per request for units 1 to 1000"), "{price}");

        // Finalized in yen; the PDF prints whole yen.
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &kyoto, "inv-2027-01-0001").await.invoice;
        inv.check().unwrap();
        assert_eq!((inv.currency.as_str(), inv.totals.total), ("JPY", 18800));
        let amounts: Vec<i64> = inv.lines.iter().map(|l| l.amount_cents).collect();
        assert_eq!(amounts, [3800, 659, 14341]);
        let usd = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        assert_eq!((usd.currency.as_str(), usd.totals.total), ("USD", 76540));
        let pdf = pdf_text(&app, &kyoto_admin, "inv-2027-01-0001").await;
        for needle in [
            "3800 JPY",
            "659 JPY",
            "Units 1 to 1000: 1000 × 0.5 JPY = 500 JPY",
            "Units 1001 and above: 234 × 0.25 JPY + 100 JPY = 158.5 JPY",
            "Minimum commitment of 15000 JPY: metered charges came to 659",
            "14341 JPY",
            "TOTAL 18800 JPY",
        ] {
            assert_has(&pdf, needle);
        }
        assert!(!pdf.contains("188.00") && !pdf.contains("USD"), "{pdf}");
        // The contract's invoice list: the total in minor units, whole yen.
        let list = list_raw(&app, &kyoto_admin, "").await;
        let listed = &list[0];
        assert_eq!((&listed["amount"], &listed["currency"]), (&json!("18800"), &json!("JPY")));

        // Unpaid: the currency is fixed.
        let currency = |t: &str| format!("/api/operator/tenants/{t}/currency");
        let locked = app
            .operator(Method::PUT, &currency("kyoto"), Some(json!({"currency": "EUR"})))
            .await;
        assert!(locked.error(409, 9).contains("inv-2027-01-0001"), "{}", locked.body);
        locked.reason("CURRENCY_LOCKED");

        // Paid, a refund is in whole yen: 12.34 is refused, naming the field.
        app.charge().await;
        let refund = |amount: &str| {
            json!({"amount": amount, "reason": "goodwill"})
        };
        let path = "/api/operator/tenants/kyoto/invoices/inv-2027-01-0001/refund";
        let bad = app.operator(Method::POST, path, Some(refund("12.34"))).await;
        assert!(
            bad.error(400, 3).starts_with("amount: has decimals, but JPY has no minor unit"),
            "{}",
            bad.body
        );
        assert_eq!(bad.metadata("field"), "amount");
        let done = app.operator(Method::POST, path, Some(refund("1500"))).await;
        let done = done.ok();
        assert_eq!(
            (&done["amount_cents"], &done["currency"], &done["remaining"]),
            (&json!(1500), &json!("JPY"), &json!("17300"))
        );
        assert_eq!(done["credit_note"]["amount"], "1500");
        let too_much = app.operator(Method::POST, path, Some(refund("20000"))).await;
        assert!(
            too_much.error(409, 9).contains("17300 JPY left to refund"),
            "{}",
            too_much.body
        );

        // Nothing unpaid: the operator may change it, to one the catalog prices.
        let gbp = app
            .operator(Method::PUT, &currency("kyoto"), Some(json!({"currency": "GBP"})))
            .await;
        assert!(gbp.error(400, 3).contains("does not price GBP"), "{}", gbp.body);
        app.operator(Method::PUT, &currency("nobody"), Some(json!({"currency": "EUR"})))
            .await
            .error(404, 5);
        let changed = app
            .operator(Method::PUT, &currency("kyoto"), Some(json!({"currency": "EUR"})))
            .await;
        assert_eq!(changed.ok()["currency"], "EUR");
        let audit = app.operator(Method::GET, "/api/operator/audit?tenant=kyoto", None).await;
        assert_eq!(audit.ok()["items"][0]["action"], "tenant.currency");
        // The open period is now in euros (no usage yet: the fee and the
        // minimum, 2300 + 9000); the finalized one stays in yen, and so does
        // current_usage of that period.
        let now = current(&app, &kyoto_admin, "system", json!({})).await;
        assert_eq!(now["total_cost"], "11300");
        assert_eq!(fixed_items(&now)[0], item("Pro plan", "2300"));
        let january = current(
            &app,
            &kyoto_admin,
            "system",
            json!({"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}),
        )
        .await;
        assert_eq!((&january["total_cost"], &line(&january, "requests")["currency_code"]), (&json!("18800"), &json!("JPY")));
        let pdf = pdf_text(&app, &kyoto_admin, "inv-2027-01-0001").await;
        assert_has(&pdf, "TOTAL 18800 JPY");

        // Tenant isolation: acme's invoices are its own, in dollars.
        let invoices = list_raw(&app, &acme_admin, "").await;
        assert!(invoices.iter().all(|i| i["currency"] == "USD"), "{invoices:?}");
        assert!(invoices.iter().any(|i| i["amount"] == "76540"), "{invoices:?}");
    })
    .await;
}

/// A catalog version that does not price a tenant's currency cannot become
/// its catalog: a plan transition to the latest is refused, and so is a
/// move. A fixed-amount coupon (in the catalog's first currency) cannot be
/// applied to a tenant in another one.
#[tokio::test]
async fn a_version_without_the_tenant_s_currency_is_refused_clearly() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        app.store
            .publish_catalog(CATALOG, "multi.toml", "operator", ts("2027-01-01T00:00:00Z"))
            .await
            .unwrap();
        let kyoto = create(&app, json!({"name": "kyoto", "currency": "JPY"})).await;
        assert_eq!(kyoto.plan.as_str(), "basic");
        // A fixed-amount coupon is in the catalog's first currency (USD):
        // refused for a yen tenant; a percentage applies to any currency.
        for body in [
            json!({"code": "five", "title": "Five off", "fixed_cents": 500}),
            json!({"code": "tenth", "title": "Ten percent", "percent": 10}),
        ] {
            app.operator(Method::POST, "/api/operator/coupons", Some(body))
                .await
                .ok();
        }
        let coupons = "/api/operator/tenants/kyoto/coupons";
        let fixed = app
            .operator(Method::POST, coupons, Some(json!({"code": "five"})))
            .await;
        assert!(
            fixed
                .error(400, 3)
                .contains("takes 5.00 USD off, and tenant kyoto is invoiced in JPY"),
            "{}",
            fixed.body
        );
        app.operator(Method::POST, coupons, Some(json!({"code": "tenth"})))
            .await
            .ok();
        let usd_only = CATALOG.replacen(
            "currencies = [\"USD\", \"EUR\", \"JPY\"]",
            "currencies = [\"USD\", \"EUR\"]",
            1,
        );
        let usd_only = {
            let cut = usd_only.find("[plans.currencies.JPY]").unwrap();
            usd_only[..cut].to_owned()
        };
        app.store
            .publish_catalog(&usd_only, "no-yen.toml", "operator", ts("2027-01-01T00:00:00Z"))
            .await
            .unwrap();
        let admin = app.token(&kyoto, Role::Admin).await;
        let resp = app
            .post(
                TRANSITION,
                &admin,
                json!({"namespace": "system", "new_plan": "pro"}),
            )
            .await;
        assert!(resp.error(409, 9).contains("not in JPY"), "{}", resp.body);
        resp.reason("CURRENCY_NOT_PRICED");
        let moved = app
            .operator(
                Method::POST,
                "/api/operator/catalog/moves",
                Some(json!({"tenants": ["kyoto"], "version": 3})),
            )
            .await;
        assert!(
            moved.error(400, 3).contains("does not price JPY"),
            "{}",
            moved.body
        );
    })
    .await;
}
