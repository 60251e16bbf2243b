//! `GET /api/web/namespaces/system/usage/meters`: the meters of the caller's
//! plan and their prices.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{METERS, current, event, ingest_all, line};

/// (metric_label, unit_price, free_allowance) of each meter, in order.
fn prices(list: &Value) -> Vec<(String, String, String)> {
    list["items"]
        .as_array()
        .expect("items is a list")
        .iter()
        .map(|m| {
            assert_eq!(m["currency_code"], "USD", "{m}");
            (
                m["metric_label"].as_str().unwrap().to_owned(),
                {
                    let cents = m["unit_price_cents"].as_str().unwrap();
                    assert_eq!(m["unit_price"], cents, "the old name carries the same price");
                    cents.to_owned()
                },
                m["free_allowance"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn p(metric: &str, price: &str, free: &str) -> (String, String, String) {
    (metric.to_owned(), price.to_owned(), free.to_owned())
}

#[track_caller]
fn meter<'a>(list: &'a Value, metric: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric_label"] == metric)
        .unwrap_or_else(|| panic!("no meter {metric} in {list}"))
}

#[tokio::test]
async fn meters_show_the_prices_of_the_callers_plan() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let resp = app.get(METERS, &admin).await;
        crate::snapshot!("meters_individual", resp.ok());
        let list = resp.ok();
        assert_eq!(
            prices(list),
            [
                p("lb_requests", "60", "5"),
                p("lb_data_transfer", "8", "100"),
                // Not priced by individual: free.
                p("lb_hours", "0", "0"),
                p("waap_requests", "150", "1"),
                p("cdn_data_transfer", "4.5", "0"),
                p("synthetic_checks", "0.25", "50"),
                p("dns_queries", "40", "1"),
                p("site_vcpus", "0", "0"),
            ]
        );
        let lb = meter(list, "lb_requests");
        assert_eq!(
            lb,
            &json!({
                "metric_label": "lb_requests",
                "usage_type": "HTTP Load Balancer Requests",
                "service": "Load Balancing",
                "unit": "request",
                "unit_billable": "million requests",
                "aggregation": "sum",
                "unit_price_cents": "60",
                "price": "0.60 USD per million requests",
                "unit_price": "60",
                "currency_code": "USD",
                "free_allowance": "5",
                "price_model": "per_unit",
                "tiers": [],
                "flat_amount_cents": "0"
            })
        );
        assert_eq!(meter(list, "site_vcpus")["aggregation"], "max");
        // Fractions of a cent stay exact in the price people read.
        for m in list["items"].as_array().unwrap() {
            let cents: rust_decimal::Decimal = m["unit_price_cents"].as_str().unwrap().parse().unwrap();
            let shown = m["price"].as_str().unwrap();
            let (amount, rest) = shown.split_once(' ').unwrap();
            let amount: rust_decimal::Decimal = amount.parse().unwrap();
            assert_eq!(amount * rust_decimal::Decimal::ONE_HUNDRED, cents, "{shown}");
            assert_eq!(rest, format!("USD per {}", m["unit_billable"].as_str().unwrap()));
        }
        assert_eq!(meter(list, "lb_data_transfer")["unit_billable"], "GB");

        // Any role that reads may list them; a platform token may not.
        for role in [Role::Monitor, Role::Billing] {
            let tok = app.token(&acme, role).await;
            assert_eq!(app.get(METERS, &tok).await.ok(), list);
        }
        let platform = app.token(&acme, Role::Platform).await;
        app.get(METERS, &platform).await.error(403, 7);
        // A token scoped to a namespace does not reach system.
        app.namespace(&acme, "shop").await;
        let scoped = app.token_with(&acme, Role::Monitor, &["shop"], None).await;
        app.get(METERS, &scoped).await.error(403, 7);
    })
    .await;
}

#[tokio::test]
async fn the_free_plan_prices_nothing_and_a_transition_changes_the_prices() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let free = app.tenant_on("freebie", "free").await;
        let admin = app.token(&free, Role::Admin).await;
        let list = app.get(METERS, &admin).await.ok().clone();
        let mut expected: Vec<_> = [
            "lb_requests",
            "lb_data_transfer",
            "lb_hours",
            "waap_requests",
            "cdn_data_transfer",
            "synthetic_checks",
            "dns_queries",
            "site_vcpus",
        ]
        .iter()
        .map(|m| p(m, "0", "0"))
        .collect();
        expected[0] = p("lb_requests", "0", "1");
        assert_eq!(prices(&list), expected);

        // Upgrade to team.
        app.clock.set(ts("2026-11-21T10:00:00Z"));
        app.post(
            "/api/web/namespaces/system/billing/plan_transition",
            &admin,
            json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}}),
        )
        .await
        .ok();
        assert_eq!(
            prices(app.get(METERS, &admin).await.ok()),
            expected,
            "nothing changes before the transition runs"
        );
        assert_eq!(app.run_jobs().await, 1);
        let team = app.get(METERS, &admin).await.ok().clone();
        assert_eq!(
            prices(&team),
            [
                p("lb_requests", "50", "50"),
                p("lb_data_transfer", "6", "1000"),
                p("lb_hours", "2.5", "7440"),
                p("waap_requests", "120", "20"),
                p("cdn_data_transfer", "3.5", "500"),
                p("synthetic_checks", "0.2", "500"),
                p("dns_queries", "35", "10"),
                p("site_vcpus", "1500", "8"),
            ]
        );

        // current_usage charges what meters say: 73.4 million requests →
        // 73 billable; (73 − 50) × 50 = 1150 ¢.
        app.clock.set(ts("2026-11-22T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "r1",
                "lb_requests",
                "lb-a",
                73_400_000,
                "2026-11-21T12:00:00Z",
            )],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        let lb = meter(&team, "lb_requests");
        let price: i64 = lb["unit_price"].as_str().unwrap().parse().unwrap();
        let free_units: i64 = lb["free_allowance"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            line(&bill, "lb_requests")["amount"],
            ((73 - free_units) * price).to_string()
        );
        assert_eq!(line(&bill, "lb_requests")["amount"], "1150");
    })
    .await;
}
