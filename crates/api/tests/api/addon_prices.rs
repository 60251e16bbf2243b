//! Priced add-ons (catalog format 2): a tenant pays an add-on's price for
//! the part of each billing period it was subscribed, worked out by hand.

use serde_json::json;
use tollgate_domain::access::Role;
use tollgate_domain::invoice::LineKind;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, SUBSCRIBE, UNSUBSCRIBE, card};
use crate::invoice_support::{billed_tenant, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::{current, fixed_items, item};

const WAAP: &str =
    "name = \"f5xc_waap_standard\"\ndisplay_name = \"Web App & API Protection\"\ntier = \"standard\"";

/// The built-in catalog with WAAP at 31.00 USD per period.
fn priced_catalog() -> String {
    let text = tollgate_domain::catalog::BUILTIN_TOML;
    assert!(
        text.contains(WAAP) && text.contains("format = 1"),
        "the built-in catalog moved"
    );
    text.replacen("format = 1", "format = 2", 1).replacen(
        WAAP,
        &format!("{WAAP}\nflat_price_cents = 3100"),
        1,
    )
}

#[tokio::test]
async fn an_addon_is_charged_for_the_days_it_was_subscribed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let text = priced_catalog();
        let version = app
            .store
            .publish_catalog(&text, "priced.toml", "operator", ts("2026-12-01T00:00:00Z"))
            .await
            .unwrap();
        let catalog = tollgate_domain::catalog::parse("priced.toml", &text).unwrap();
        // January 2027: 31 days, the individual plan's fee 25.00.
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app
            .tenant_on_version("acme", "individual", &catalog, version)
            .await;
        let admin = app.token(&acme, Role::Admin).await;
        app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242"))
            .await
            .ok();
        app.namespace(&acme, "shop").await;
        let (_, other) = billed_tenant(&app, "bravo", "individual", "2027-01-01T00:00:00Z", None).await;
        let waap = json!({"f5xc_waap_standard": {}});

        // The plan listing shows the price of an add-on it allows.
        let plans = app
            .get("/api/web/namespaces/system/usage_plans/current", &admin)
            .await;
        let plans = plans.ok().to_string();
        assert!(plans.contains(r#""price_cents":"3100""#), "{plans}");

        // Subscribed on the 11th, unsubscribed on the 21st: 10 of 31 days,
        // 3100 × 10 / 31 = 1000.
        app.clock.set(ts("2027-01-11T00:00:00Z"));
        app.post(SUBSCRIBE, &admin, waap.clone()).await.ok();
        app.clock.set(ts("2027-01-21T00:00:00Z"));
        app.post(UNSUBSCRIBE, &admin, waap.clone()).await.ok();
        app.clock.set(ts("2027-01-25T00:00:00Z"));
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            fixed_items(&bill),
            [
                item("Individual plan", "2500"),
                item("Web App & API Protection add-on", "1000")
            ]
        );
        assert_eq!(bill["total_cost"], "3500");
        // A namespace's usage alone carries no fixed charges; another tenant
        // pays only its own fee.
        assert!(fixed_items(&current(&app, &admin, "shop", json!({})).await).is_empty());
        assert_eq!(
            current(&app, &other, "system", json!({})).await["total_cost"],
            "2500"
        );

        // Again from the 31st: 11 of 31 days in all, 3100 × 11 / 31 = 1100.
        app.clock.set(ts("2027-01-31T00:00:00Z"));
        app.post(SUBSCRIBE, &admin, waap.clone()).await.ok();
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert!(app.close_periods().await >= 1);
        let jan = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        let lines: Vec<(LineKind, &str, i64)> = jan
            .lines
            .iter()
            .map(|l| (l.kind, l.description.as_str(), l.amount_cents))
            .collect();
        assert_eq!(
            lines,
            [
                (LineKind::Fee, "Individual plan", 2500),
                (
                    LineKind::Addon,
                    "Web App & API Protection add-on, prorated: 11 of 31 days",
                    1100
                ),
            ]
        );
        assert_eq!(jan.totals.total, 3600);

        // February: subscribed the whole period, the whole price.
        app.clock.set(ts("2027-02-10T00:00:00Z"));
        let feb = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            fixed_items(&feb),
            [
                item("Individual plan", "2500"),
                item("Web App & API Protection add-on", "3100")
            ]
        );
    })
    .await;
}

/// A tenant subscribed to a priced add-on pays every period, even on a plan
/// without a fee: it keeps a way to pay, as on a paid plan.
#[tokio::test]
async fn a_priced_addon_keeps_the_last_payment_method() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let fee = "usage_plan_type = \"INDIVIDUAL\"\ntenant_type = \"FREEMIUM\"\nflat_price_cents = 2500";
        let text = priced_catalog();
        assert_eq!(
            text.matches(fee).count(),
            1,
            "the built-in catalog's individual fee moved"
        );
        let text = text.replacen(fee, &fee.replace("2500", "0"), 1);
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app
            .tenant_on_catalog("acme", "individual", &text, "nofee.toml")
            .await;
        let admin = app.token(&acme, Role::Admin).await;
        // No fee, no add-on: the only method may go.
        let first = add_card(&app, &admin).await;
        app.delete(&crate::billing_support::method_path(&first), &admin)
            .await
            .ok();
        // With WAAP at 31.00 a period, it stays.
        let second = add_card(&app, &admin).await;
        app.post(SUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        app.delete(&crate::billing_support::method_path(&second), &admin)
            .await
            .reason("PAYMENT_METHOD_REQUIRED")
            .error(409, 9);
        app.post(UNSUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        app.delete(&crate::billing_support::method_path(&second), &admin)
            .await
            .ok();
    })
    .await;
}

async fn add_card(app: &TestApp, admin: &str) -> String {
    let created = app.post(PAYMENT_METHODS, admin, card("tok-visa-4242")).await;
    created.ok()["name"].as_str().unwrap().to_owned()
}
