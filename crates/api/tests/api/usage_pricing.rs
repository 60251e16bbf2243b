//! Catalog format 2 through the API: graduated, volume and package prices,
//! meters' flat amounts and a plan's minimum commitment, as `meters`,
//! `current_usage`, `monthly_usage`, finalized invoices (operator detail,
//! PDF, credit note) and a plan change or trial show them; and an auditor
//! that recomputes the bills from the raw events and the catalog text with
//! its own arithmetic.

use std::collections::BTreeMap;

use axum::http::Method;
use jiff::SignedDuration;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::rating::Discount;
use tollgate_domain::tenant::Tenant;
use tollgate_store::CouponDef;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, card};
use crate::invoice_support::{assert_has, pdf_text, stored};
use crate::support::{START, TestApp, ts};
use crate::usage_rating::{Raw, generate, model as counts};
use crate::usage_support::{Lcg, current, event, events_path, ingest_all, month, monthly};

// ------------------------------------------------------------------ catalog

/// The individual plan's prices in the built-in catalog (format 1), which
/// [`catalog_v2`] replaces.
const BUILTIN_INDIVIDUAL_PRICES: &str = r#"[plans.prices.lb_requests]
unit_price_cents = "60"
free_allowance = "5"

[plans.prices.lb_data_transfer]
unit_price_cents = "8"
free_allowance = "100"

[plans.prices.waap_requests]
unit_price_cents = "150"
free_allowance = "1"

[plans.prices.cdn_data_transfer]
unit_price_cents = "4.5"

[plans.prices.synthetic_checks]
unit_price_cents = "0.25"
free_allowance = "50"

[plans.prices.dns_queries]
unit_price_cents = "40"
free_allowance = "1"
"#;

/// The individual plan's prices in version 2: every model, fractional
/// prices, tier flat amounts and two meters' flat amounts.
const INDIVIDUAL_PRICES: &str = r#"[plans.prices.lb_requests]
model = "graduated"
free_allowance = "5"
flat_amount_cents = 1000
tiers = [
  { up_to = 10, unit_price_cents = "60" },
  { up_to = 50, unit_price_cents = "40", flat_amount_cents = "100" },
  { unit_price_cents = "25" },
]

[plans.prices.lb_data_transfer]
model = "volume"
free_allowance = "100"
tiers = [
  { up_to = 100, unit_price_cents = "8" },
  { up_to = 1000, unit_price_cents = "6", flat_amount_cents = "50" },
  { unit_price_cents = "4" },
]

[plans.prices.waap_requests]
unit_price_cents = "150"
free_allowance = "1"

[plans.prices.cdn_data_transfer]
model = "package"
free_allowance = "2"
package_size = 10
package_price_cents = "125.5"

[plans.prices.synthetic_checks]
model = "graduated"
free_allowance = "50"
tiers = [
  { up_to = 10, unit_price_cents = "0.25" },
  { unit_price_cents = "0.125", flat_amount_cents = "0.5" },
]

[plans.prices.dns_queries]
unit_price_cents = "40"
free_allowance = "1"
flat_amount_cents = 250
"#;

/// The built-in catalog as format 2: the individual plan priced by
/// [`INDIVIDUAL_PRICES`] with a minimum commitment of 100.00 USD; the team
/// plan with a minimum of 500.00 USD and a flat amount of 7.00 USD on
/// lb_requests (both waived during its 14-day trial). Panics if the
/// built-in catalog moved, so that these tests break loudly.
fn catalog_v2() -> String {
    let mut text = tollgate_domain::catalog::BUILTIN_TOML.to_owned();
    let team_lb = "[plans.prices.lb_requests]\nunit_price_cents = \"50\"\nfree_allowance = \"50\"\n";
    for (from, to) in [
        ("\nformat = 1\n", "\nformat = 2\n".to_owned()),
        (
            "flat_price_cents = 2500\n",
            "flat_price_cents = 2500\nminimum_commitment_cents = 10000\n".to_owned(),
        ),
        (
            "flat_price_cents = 30000\n",
            "flat_price_cents = 30000\nminimum_commitment_cents = 50000\n".to_owned(),
        ),
        (BUILTIN_INDIVIDUAL_PRICES, INDIVIDUAL_PRICES.to_owned()),
        (team_lb, format!("{team_lb}flat_amount_cents = 700\n")),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the built-in catalog moved: {from:?} is not in it exactly once"
        );
        text = text.replace(from, &to);
    }
    text
}

/// Publishes [`catalog_v2`] through the operator API (every rule a new
/// catalog must meet); it is version 2.
async fn publish_v2(app: &TestApp) {
    let resp = app
        .operator(
            Method::POST,
            "/api/operator/catalog/publish",
            Some(json!({"source": catalog_v2(), "source_name": "priced.toml"})),
        )
        .await;
    assert_eq!(resp.ok()["version"], 2);
}

/// A tenant created through the operator API now, on the individual plan
/// of the latest catalog (version 2), with an admin token.
///
/// (`TestApp::tenant_on` would not do: it writes catalog version 1.)
async fn priced_tenant(app: &TestApp, name: &str) -> (Tenant, String) {
    let resp = app
        .operator(
            Method::POST,
            "/api/operator/tenants",
            Some(json!({"name": name, "plan": "individual"})),
        )
        .await;
    let t = resp.ok();
    assert_eq!(
        (&t["plan"], &t["catalog_version"]),
        (&json!("individual"), &json!(2))
    );
    let tenant = app
        .store
        .tenant_by_name(name)
        .await
        .expect("read tenant")
        .expect("the tenant exists");
    let admin = app.token(&tenant, Role::Admin).await;
    (tenant, admin)
}

/// Publishes version 2 and creates acme (at START) on it with namespace shop.
async fn acme(app: &TestApp) -> (Tenant, String) {
    publish_v2(app).await;
    let (acme, admin) = priced_tenant(app, "acme").await;
    app.namespace(&acme, "shop").await;
    (acme, admin)
}

// ------------------------------------------------------------------ readers

/// The usage items (not fixed) of a `current_usage` response.
fn usage_items(bill: &Value) -> Vec<&Value> {
    bill["usage_items"]
        .as_array()
        .expect("usage_items is a list")
        .iter()
        .filter(|i| i["fixed"] == false)
        .collect()
}

/// The usage item of `metric` (its flat amount is a fixed item of its own).
#[track_caller]
fn usage_line<'a>(bill: &'a Value, metric: &str) -> &'a Value {
    let found: Vec<&Value> = usage_items(bill)
        .into_iter()
        .filter(|i| i["metric_labels"] == json!([metric]))
        .collect();
    assert_eq!(found.len(), 1, "one usage line of {metric} in {bill:#}");
    found[0]
}

/// (metric, quantity_billable, amount) of the usage items.
fn rated(bill: &Value) -> Vec<(String, String, String)> {
    usage_items(bill)
        .iter()
        .map(|i| {
            (
                i["metric_labels"][0].as_str().unwrap().to_owned(),
                i["quantity_billable"].as_str().unwrap().to_owned(),
                i["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn r(metric: &str, billable: &str, amount: &str) -> (String, String, String) {
    (metric.to_owned(), billable.to_owned(), amount.to_owned())
}

/// (usage_type, metric_labels, amount) of the fixed items, sorted, after
/// checking what every fixed item has in common.
fn fixed_items(bill: &Value) -> Vec<(String, Value, String)> {
    let mut out: Vec<(String, Value, String)> = bill["usage_items"]
        .as_array()
        .expect("usage_items is a list")
        .iter()
        .filter(|i| i["fixed"] == true)
        .map(|i| {
            assert_eq!(
                (
                    &i["quantity_billable"],
                    &i["unit_name_billable"],
                    &i["currency_code"]
                ),
                (&json!("1"), &json!("period"), &json!("USD")),
                "{i}"
            );
            assert!(i.get("pricing").is_none(), "a fixed item has no pricing: {i}");
            (
                i["usage_type"].as_str().unwrap().to_owned(),
                i["metric_labels"].clone(),
                i["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort_by_key(|(t, l, a)| (t.clone(), l.to_string(), a.clone()));
    out
}

fn f(usage_type: &str, labels: &[&str], amount: i64) -> (String, Value, String) {
    (usage_type.to_owned(), json!(labels), amount.to_string())
}

/// The sum of every item's amount.
fn items_sum(bill: &Value) -> i64 {
    bill["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount"].as_str().unwrap().parse::<i64>().unwrap())
        .sum()
}

/// A tier step as `pricing.steps` has it.
fn tier(from: i64, to: Option<i64>, quantity: &str, unit: &str, flat: &str, amount: &str) -> Value {
    let mut step = json!({
        "from": from.to_string(),
        "quantity": quantity,
        "unit_price_cents": unit,
        "flat_cents": flat,
        "amount_cents": amount,
    });
    if let Some(to) = to {
        step["to"] = json!(to.to_string());
    }
    step
}

/// The packages step as `pricing.steps` has it.
fn packages(size: &str, quantity: &str, unit: &str, amount: &str) -> Value {
    json!({
        "package_size": size,
        "quantity": quantity,
        "unit_price_cents": unit,
        "flat_cents": "0",
        "amount_cents": amount,
    })
}

fn pricing(model: &str, steps: Vec<Value>) -> Value {
    json!({"model": model, "steps": steps})
}

async fn coupon(app: &TestApp, tenant: &Tenant, code: &str, percent: i64) {
    let now = ts(START);
    let def = CouponDef {
        code: code.into(),
        title: code.into(),
        discount: Discount::Percent(percent),
    };
    app.store
        .create_coupon(&def, "operator", now)
        .await
        .expect("create coupon");
    app.store
        .apply_coupon(&tenant.id, code, now, None, "operator", now)
        .await
        .expect("apply coupon");
}

// ---------------------------------------------------------------- the tests

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
async fn meters_list_each_price_model_its_tiers_packages_and_flat_amount() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        // A tenant of version 1 keeps its per-unit prices after the publish.
        let (_, old) = app.admin("old").await;
        let (_, admin) = acme(&app).await;

        let list = app.get(crate::usage_support::METERS, &admin).await.ok().clone();
        let models: Vec<(&str, &str)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["metric_label"].as_str().unwrap(),
                    m["price_model"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            models,
            [
                ("lb_requests", "graduated"),
                ("lb_data_transfer", "volume"),
                // Not priced by individual: free, per unit.
                ("lb_hours", "per_unit"),
                ("waap_requests", "per_unit"),
                ("cdn_data_transfer", "package"),
                ("synthetic_checks", "graduated"),
                ("dns_queries", "per_unit"),
                ("site_vcpus", "per_unit"),
            ]
        );
        assert_eq!(
            meter(&list, "lb_requests"),
            &json!({
                "metric_label": "lb_requests",
                "usage_type": "HTTP Load Balancer Requests",
                "service": "Load Balancing",
                "unit": "request",
                "unit_billable": "million requests",
                "aggregation": "sum",
                // A tiered price's unit price is its first tier's.
                "unit_price_cents": "60",
                "price": "graduated: 0.60 USD per million requests for units 1 to 10, \
                          0.40 USD per million requests + 1.00 USD for units 11 to 50, \
                          0.25 USD per million requests above 50; plus 10.00 USD per period",
                "unit_price": "60",
                "currency_code": "USD",
                "free_allowance": "5",
                "price_model": "graduated",
                "tiers": [
                    {"up_to": "10", "unit_price_cents": "60", "flat_amount_cents": "0"},
                    {"up_to": "50", "unit_price_cents": "40", "flat_amount_cents": "100"},
                    {"unit_price_cents": "25", "flat_amount_cents": "0"},
                ],
                "flat_amount_cents": "1000"
            })
        );
        let volume = meter(&list, "lb_data_transfer");
        assert_eq!(
            (
                &volume["tiers"],
                &volume["unit_price_cents"],
                &volume["free_allowance"],
                &volume["flat_amount_cents"]
            ),
            (
                &json!([
                    {"up_to": "100", "unit_price_cents": "8", "flat_amount_cents": "0"},
                    {"up_to": "1000", "unit_price_cents": "6", "flat_amount_cents": "50"},
                    {"unit_price_cents": "4", "flat_amount_cents": "0"},
                ]),
                &json!("8"),
                &json!("100"),
                &json!("0")
            )
        );
        assert_eq!(
            volume["price"],
            "volume (every unit at the tier the total reaches): 0.08 USD per GB for units 1 to 100, \
             0.06 USD per GB + 0.50 USD for units 101 to 1000, 0.04 USD per GB above 1000"
        );
        assert!(volume.get("package_size").is_none(), "{volume}");
        // Package: 125.5 ¢ per 10 GB = 12.55 ¢ per GB for the first unit.
        assert_eq!(
            meter(&list, "cdn_data_transfer"),
            &json!({
                "metric_label": "cdn_data_transfer",
                "usage_type": "CDN Data Transfer",
                "service": "Content Delivery Network",
                "unit": "byte",
                "unit_billable": "GB",
                "aggregation": "sum",
                "unit_price_cents": "12.55",
                "price": "1.255 USD per 10 GB (a part counts whole)",
                "unit_price": "12.55",
                "currency_code": "USD",
                "free_allowance": "2",
                "price_model": "package",
                "tiers": [],
                "package_size": "10",
                "package_price_cents": "125.5",
                "flat_amount_cents": "0"
            })
        );
        let synthetic = meter(&list, "synthetic_checks");
        assert_eq!(
            (&synthetic["tiers"], &synthetic["unit_price_cents"]),
            (
                &json!([
                    {"up_to": "10", "unit_price_cents": "0.25", "flat_amount_cents": "0"},
                    {"unit_price_cents": "0.125", "flat_amount_cents": "0.5"},
                ]),
                &json!("0.25")
            )
        );
        let dns = meter(&list, "dns_queries");
        assert_eq!(
            (
                &dns["price_model"],
                &dns["unit_price_cents"],
                &dns["tiers"],
                &dns["flat_amount_cents"],
                &dns["price"]
            ),
            (
                &json!("per_unit"),
                &json!("40"),
                &json!([]),
                &json!("250"),
                &json!("0.40 USD per million queries; plus 2.50 USD per period")
            )
        );
        assert!(dns.get("package_size").is_none() && dns.get("package_price_cents").is_none());
        let unpriced = meter(&list, "site_vcpus");
        assert_eq!(
            (&unpriced["unit_price_cents"], &unpriced["flat_amount_cents"]),
            (&json!("0"), &json!("0"))
        );

        // The tenant of version 1 still sees the built-in per-unit prices.
        let old_list = app.get(crate::usage_support::METERS, &old).await.ok().clone();
        let lb = meter(&old_list, "lb_requests");
        assert_eq!(
            (
                &lb["price_model"],
                &lb["unit_price_cents"],
                &lb["tiers"],
                &lb["flat_amount_cents"]
            ),
            (&json!("per_unit"), &json!("60"), &json!([]), &json!("0"))
        );
    })
    .await;
}

/// acme's usage reported by 2026-11-25, in its first period
/// [11-20 10:00, 12-20 10:00):
///
/// | ns     | metric            | quantity                 |
/// |--------|-------------------|--------------------------|
/// | shop   | lb_requests       | 15 000 000               |
/// | shop   | lb_data_transfer  | 200 GB                   |
/// | system | lb_requests       | 1 500 000                |
/// | system | lb_data_transfer  | 1.5 GB                   |
/// | system | cdn_data_transfer | 23.000000001 GB          |
/// | system | synthetic_checks  | 61 999                   |
async fn usage_below_the_minimum(app: &TestApp, admin: &str) {
    app.clock.set(ts("2026-11-25T00:00:00Z"));
    ingest_all(
        app,
        admin,
        "shop",
        vec![
            event("a1", "lb_requests", "lb-a", 15_000_000, "2026-11-21T08:00:00Z"),
            event(
                "a2",
                "lb_data_transfer",
                "lb-a",
                200_000_000_000_i64,
                "2026-11-21T09:00:00Z",
            ),
        ],
    )
    .await;
    ingest_all(
        app,
        admin,
        "system",
        vec![
            event("a3", "lb_requests", "lb-b", 1_500_000, "2026-11-22T09:30:00Z"),
            event(
                "a4",
                "lb_data_transfer",
                "lb-b",
                1_500_000_000,
                "2026-11-22T10:00:00Z",
            ),
            event(
                "a5",
                "cdn_data_transfer",
                "cdn-1",
                "23000000001",
                "2026-11-23T01:00:00Z",
            ),
            event("a6", "synthetic_checks", "chk-1", 61_999, "2026-11-23T02:00:00Z"),
        ],
    )
    .await;
}

/// The steps of the usage of [`usage_below_the_minimum`], tenant-wide.
fn steps_below_the_minimum() -> [(&'static str, Value); 4] {
    [
        (
            "cdn_data_transfer",
            pricing("package", vec![packages("10", "3", "125.5", "376.5")]),
        ),
        (
            "lb_data_transfer",
            pricing("volume", vec![tier(101, Some(1000), "101", "6", "50", "656")]),
        ),
        (
            "lb_requests",
            pricing(
                "graduated",
                vec![
                    tier(1, Some(10), "10", "60", "0", "600"),
                    tier(11, Some(50), "1", "40", "100", "140"),
                ],
            ),
        ),
        (
            "synthetic_checks",
            pricing(
                "graduated",
                vec![
                    tier(1, Some(10), "10", "0.25", "0", "2.5"),
                    tier(11, None, "1", "0.125", "0.5", "0.625"),
                ],
            ),
        ),
    ]
}

#[tokio::test]
async fn current_usage_prices_tiers_packages_flat_amounts_and_the_minimum_by_hand() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = acme(&app).await;
        usage_below_the_minimum(&app, &admin).await;

        // The whole tenant, by hand:
        // cdn_data_transfer: 23.000000001 GB → 23; 2 free → 21 chargeable;
        //   packages of 10 GB: ⌈21 / 10⌉ = 3 (a partial one) × 125.5 ¢ =
        //   376.5 → 377 ¢ (half up).
        // lb_data_transfer: 201.5 GB → 201; 100 free → 101 chargeable, one
        //   past the first volume tier (up to 100): all 101 at 6 ¢ + 50 ¢
        //   flat = 656 ¢.
        // lb_requests: 16.5 million → 16; 5 free → 11 chargeable, one past
        //   the first graduated tier: 10 × 60 = 600, then 1 × 40 + 100 flat
        //   = 140 → 740 ¢.
        // synthetic_checks: 61.999 thousand → 61; 50 free → 11: 10 × 0.25 =
        //   2.5, then 1 × 0.125 + 0.5 flat = 0.625; 3.125 → 3 ¢ (rounding
        //   each step would give 3 + 1 = 4).
        // Usage 377 + 656 + 740 + 3 = 1776 ¢. Meters' flat amounts: dns_queries
        // 250 (no usage: charged all the same) + lb_requests 1000 = 1250 ¢.
        // 1776 + 1250 = 3026 < 10000: a true-up of 6974 ¢. Fee 2500 ¢.
        // Total 2500 + 1250 + 1776 + 6974 = 12500 ¢ (fee + minimum).
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            rated(&bill),
            [
                r("cdn_data_transfer", "23", "377"),
                r("lb_data_transfer", "201", "656"),
                r("lb_requests", "16", "740"),
                r("synthetic_checks", "61", "3"),
            ]
        );
        for (metric, want) in steps_below_the_minimum() {
            assert_eq!(usage_line(&bill, metric)["pricing"], want, "{metric}");
        }
        assert_eq!(
            fixed_items(&bill),
            [
                f("DNS Queries: flat amount", &["dns_queries"], 250),
                f("HTTP Load Balancer Requests: flat amount", &["lb_requests"], 1000),
                f("Individual plan", &[], 2500),
                f("Minimum commitment (100.00 USD)", &[], 6974),
            ]
        );
        assert_eq!(
            (&bill["discount"], &bill["total_cost"]),
            (&json!("0"), &json!("12500"))
        );
        assert_eq!(items_sum(&bill), 12500);
        for item in bill["usage_items"].as_array().unwrap() {
            assert_eq!(
                (&item["start_timestamp"], &item["end_timestamp"]),
                (&json!("2026-11-20T10:00:00Z"), &json!("2026-12-20T10:00:00Z")),
                "{item}"
            );
        }

        // shop alone, with the whole allowance and no fixed charges: exactly
        // on the tier boundaries.
        // lb_requests 15 million → 15; 10 chargeable = the first tier's last
        //   unit: 10 × 60 = 600 ¢, one step.
        // lb_data_transfer 200 GB; 100 chargeable = the first volume tier's
        //   last unit: 100 × 8 = 800 ¢.
        let shop = current(&app, &admin, "shop", json!({})).await;
        assert_eq!(
            rated(&shop),
            [r("lb_data_transfer", "200", "800"), r("lb_requests", "15", "600")]
        );
        assert_eq!(
            usage_line(&shop, "lb_requests")["pricing"],
            pricing("graduated", vec![tier(1, Some(10), "10", "60", "0", "600")])
        );
        assert_eq!(
            usage_line(&shop, "lb_data_transfer")["pricing"],
            pricing("volume", vec![tier(1, Some(100), "100", "8", "0", "800")])
        );
        assert_eq!(fixed_items(&shop), []);
        assert_eq!(shop["total_cost"], "1400");

        // More usage: the true-up disappears.
        app.clock.set(ts("2026-11-26T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("b1", "lb_requests", "lb-b", 60_000_000, "2026-11-25T10:00:00Z"),
                event(
                    "b2",
                    "lb_data_transfer",
                    "lb-b",
                    899_000_000_000_i64,
                    "2026-11-25T11:00:00Z",
                ),
                event("b3", "dns_queries", "zone-1", 3_500_000, "2026-11-25T12:00:00Z"),
            ],
        )
        .await;
        // lb_requests: 76.5 million → 76; 71 chargeable: 600 + (40 × 40 +
        //   100) + 21 × 25 = 600 + 1700 + 525 = 2825 ¢.
        // lb_data_transfer: 1100.5 GB → 1100; 1000 chargeable, the second
        //   tier's last unit: 1000 × 6 + 50 = 6050 ¢.
        // dns_queries: 3.5 million → 3; 1 free; 2 × 40 = 80 ¢ (per unit: no
        //   pricing).
        // Usage 377 + 80 + 6050 + 2825 + 3 = 9335; + 1250 flat = 10585 ≥
        // 10000: no true-up. Total 2500 + 10585 = 13085 ¢.
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            rated(&bill),
            [
                r("cdn_data_transfer", "23", "377"),
                r("dns_queries", "3", "80"),
                r("lb_data_transfer", "1100", "6050"),
                r("lb_requests", "76", "2825"),
                r("synthetic_checks", "61", "3"),
            ]
        );
        assert_eq!(
            usage_line(&bill, "lb_requests")["pricing"],
            pricing(
                "graduated",
                vec![
                    tier(1, Some(10), "10", "60", "0", "600"),
                    tier(11, Some(50), "40", "40", "100", "1700"),
                    tier(51, None, "21", "25", "0", "525"),
                ]
            )
        );
        assert_eq!(
            usage_line(&bill, "lb_data_transfer")["pricing"],
            pricing("volume", vec![tier(101, Some(1000), "1000", "6", "50", "6050")])
        );
        assert!(
            usage_line(&bill, "dns_queries").get("pricing").is_none(),
            "a per-unit line has no pricing: {bill:#}"
        );
        assert_eq!(
            fixed_items(&bill),
            [
                f("DNS Queries: flat amount", &["dns_queries"], 250),
                f("HTTP Load Balancer Requests: flat amount", &["lb_requests"], 1000),
                f("Individual plan", &[], 2500),
            ]
        );
        assert_eq!(bill["total_cost"], "13085");
        assert_eq!(items_sum(&bill), 13085);

        // One more GB: 1001 chargeable falls into the last volume tier, every
        // unit at 4 ¢: 4004 ¢, less than before. Usage 377 + 80 + 4004 +
        // 2825 + 3 = 7289; + 1250 = 8539 < 10000: a true-up of 1461 ¢ again.
        // Total 2500 + 10000 = 12500 ¢.
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "c1",
                "lb_data_transfer",
                "lb-b",
                1_000_000_000,
                "2026-11-25T13:00:00Z",
            )],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            usage_line(&bill, "lb_data_transfer")["pricing"],
            pricing("volume", vec![tier(1001, None, "1001", "4", "0", "4004")])
        );
        assert_eq!(usage_line(&bill, "lb_data_transfer")["amount"], "4004");
        assert_eq!(
            fixed_items(&bill).last(),
            Some(&f("Minimum commitment (100.00 USD)", &[], 1461))
        );
        assert_eq!(bill["total_cost"], "12500");
    })
    .await;
}

const FIRST: &str = "inv-2026-11-0001";

#[tokio::test]
async fn a_finalized_invoice_keeps_each_lines_kind_and_steps_and_its_pdf_shows_them() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = acme(&app).await;
        let added = app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242")).await;
        assert_eq!(added.status, 200, "{}", added.body);
        usage_below_the_minimum(&app, &admin).await;
        // As worked out in current_usage_prices_…_by_hand: 12500 ¢.
        app.clock.set(ts("2026-12-20T09:59:59Z"));
        let last_look = current(&app, &admin, "system", json!({})).await;
        assert_eq!(last_look["total_cost"], "12500");

        // The period ends at 12-20 10:00; the grace (1 day) at 12-21 10:00.
        app.clock.set(ts("2026-12-21T10:00:01Z"));
        assert_eq!(app.close_periods().await, 1);
        let inv = stored(&app, &acme, FIRST).await.invoice;
        assert_eq!(inv.totals.total, 12500);
        assert_eq!(inv.check(), Ok(()));

        let detail = app
            .operator(
                Method::GET,
                &format!("/api/operator/tenants/acme/invoices/{FIRST}"),
                None,
            )
            .await;
        let d = detail.ok();
        assert_eq!(
            (
                &d["status"],
                &d["total_cents"],
                &d["subtotal_cents"],
                &d["discount_cents"]
            ),
            (&json!("ISSUED"), &json!(12500), &json!(12500), &json!(0))
        );
        let line = |kind: &str,
                    description: &str,
                    quantity: &str,
                    unit: &str,
                    price: &str,
                    free: &str,
                    amount: i64| {
            json!({"kind": kind, "description": description, "quantity": quantity, "unit": unit,
                   "unit_price_cents": price, "free_quantity": free, "amount_cents": amount})
        };
        let with = |mut l: Value, p: Value| {
            l["pricing"] = p;
            l
        };
        let [cdn, lb_data, lb_requests, synthetic] = steps_below_the_minimum().map(|(_, p)| p);
        // Fee, meters' flat amounts, usage (tiered lines: no unit price, the
        // steps instead), the true-up to the minimum.
        assert_eq!(
            d["lines"],
            json!([
                line("fee", "Individual plan", "1", "period", "2500", "0", 2500),
                line(
                    "meter_fee",
                    "DNS Queries: flat amount",
                    "1",
                    "period",
                    "250",
                    "0",
                    250
                ),
                line(
                    "meter_fee",
                    "HTTP Load Balancer Requests: flat amount",
                    "1",
                    "period",
                    "1000",
                    "0",
                    1000
                ),
                with(line("usage", "CDN Data Transfer", "23", "GB", "0", "2", 377), cdn),
                with(
                    line(
                        "usage",
                        "Load Balancer Data Transfer",
                        "201",
                        "GB",
                        "0",
                        "100",
                        656
                    ),
                    lb_data
                ),
                with(
                    line(
                        "usage",
                        "HTTP Load Balancer Requests",
                        "16",
                        "million requests",
                        "0",
                        "5",
                        740
                    ),
                    lb_requests
                ),
                with(
                    line(
                        "usage",
                        "Synthetic Monitoring Checks",
                        "61",
                        "thousand checks",
                        "0",
                        "50",
                        3
                    ),
                    synthetic
                ),
                line(
                    "minimum",
                    "Minimum commitment of 100.00 USD: metered charges came to 30.26",
                    "1",
                    "period",
                    "6974",
                    "0",
                    6974
                ),
            ])
        );

        // The period's total everywhere: current_usage of the period (asked
        // by its bounds now that it is past), monthly_usage, the list.
        let period = current(
            &app,
            &admin,
            "system",
            json!({"from": "2026-11-20T10:00:00Z", "to": "2026-12-20T10:00:00Z"}),
        )
        .await;
        assert_eq!(period, last_look);
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z", "12500")]
        );
        let listed = crate::invoice_support::list(&app, &admin).await;
        assert_eq!(crate::invoice_support::entry(&listed, FIRST).amount, "12500");

        // The PDF: the model in the unit price column, each step under its line.
        let text = pdf_text(&app, &admin, FIRST).await;
        // Row by row (description, its steps, quantity, unit, unit price
        // column, amount), as the PDF reads back.
        for row in [
            "Individual plan 1 period 25.00 USD 25.00 USD",
            "DNS Queries: flat amount 1 period 2.50 USD 2.50 USD",
            "HTTP Load Balancer Requests: flat amount 1 period 10.00 USD 10.00 USD",
            "CDN Data Transfer Packages of 10: 3 × 1.255 USD = 3.765 USD 23 (2 free) GB package 3.77 USD",
            "Load Balancer Data Transfer Units 101 to 1000: 101 × 0.06 USD + 0.50 USD = 6.56 USD \
             201 (100 free) GB volume 6.56 USD",
            "HTTP Load Balancer Requests Units 1 to 10: 10 × 0.60 USD = 6.00 USD \
             Units 11 to 50: 1 × 0.40 USD + 1.00 USD = 1.40 USD 16 (5 free) million requests graduated 7.40 USD",
            "Synthetic Monitoring Checks Units 1 to 10: 10 × 0.0025 USD = 0.025 USD \
             Units 11 and above: 1 × 0.00125 USD + 0.005 USD = 0.00625 USD \
             61 (50 free) thousand checks graduated 0.03 USD",
            "Minimum commitment of 100.00 USD: metered charges came to 30.26 1 period 69.74 USD 69.74 USD",
            "Subtotal 125.00 USD TOTAL 125.00 USD",
        ] {
            assert_has(&text, row);
        }
        assert_eq!(
            text.matches("Units 1 to 10:").count(),
            2,
            "lb_requests and synthetic_checks: {text}"
        );

        // Paid, then refunded whole: a tiered line is credited as one line
        // of its amount.
        assert_eq!(app.charge().await, 1);
        let refund = app
            .operator(
                Method::POST,
                &format!("/api/operator/tenants/acme/invoices/{FIRST}/refund"),
                Some(json!({"reason": "Goodwill"})),
            )
            .await;
        let r = refund.ok();
        assert_eq!(r["invoice"]["status"], "REFUNDED");
        let cn = |description: &str, quantity: &str, unit: &str, price: &str, amount: i64| {
            json!({"description": description, "quantity": quantity, "unit": unit,
                   "unit_price_cents": price, "amount_cents": amount})
        };
        assert_eq!(
            r["credit_note"]["lines"],
            json!([
                cn("Individual plan", "1", "period", "2500", 2500),
                cn("DNS Queries: flat amount", "1", "period", "250", 250),
                cn(
                    "HTTP Load Balancer Requests: flat amount",
                    "1",
                    "period",
                    "1000",
                    1000
                ),
                cn("CDN Data Transfer: 23 GB, package price", "1", "line", "377", 377),
                cn(
                    "Load Balancer Data Transfer: 201 GB, volume price",
                    "1",
                    "line",
                    "656",
                    656
                ),
                cn(
                    "HTTP Load Balancer Requests: 16 million requests, graduated price",
                    "1",
                    "line",
                    "740",
                    740
                ),
                cn(
                    "Synthetic Monitoring Checks: 61 thousand checks, graduated price",
                    "1",
                    "line",
                    "3",
                    3
                ),
                cn(
                    "Minimum commitment of 100.00 USD: metered charges came to 30.26",
                    "1",
                    "period",
                    "6974",
                    6974
                ),
            ])
        );
        assert_eq!(r["credit_note"]["amount_cents"], 12500);
    })
    .await;
}

#[tokio::test]
async fn a_plan_change_prorates_flat_amounts_and_the_minimum_and_a_trial_waives_them() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = acme(&app).await;
        app.clock.set(ts("2026-11-22T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "i1",
                "lb_requests",
                "lb-a",
                16_500_000,
                "2026-11-21T00:00:00Z",
            )],
        )
        .await;
        // Move to team 7 days into the 30-day period.
        app.clock.set(ts("2026-11-27T10:00:00Z"));
        app.post(
            "/api/web/namespaces/system/billing/plan_transition",
            &admin,
            json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}}),
        )
        .await
        .ok();
        assert_eq!(app.run_jobs().await, 1);

        // Individual, [11-20 10:00, 11-27 10:00) = 7 of 30 days, by hand:
        // fee 2500 × 7/30 = 583.33 → 583; flat amounts dns_queries 250 × 7/30
        // = 58.33 → 58 and lb_requests 1000 × 7/30 = 233.33 → 233; minimum
        // 10000 × 7/30 = 2333.33 → 2333. Usage: 16 million requests → 740
        // (10 × 60 + 1 × 40 + 100). 740 + 58 + 233 = 1031 < 2333: true-up
        // 1302. Total 583 + 58 + 233 + 740 + 1302 = 2916 (= 583 + 2333).
        app.clock.set(ts("2026-11-28T00:00:00Z"));
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2026-11-20T10:00:00Z", "2026-11-27T10:00:00Z", "2916")]
        );
        for to in ["2026-11-27T10:00:00Z", "2026-12-20T10:00:00Z"] {
            let closed = current(
                &app,
                &admin,
                "system",
                json!({"from": "2026-11-20T10:00:00Z", "to": to}),
            )
            .await;
            assert_eq!(rated(&closed), [r("lb_requests", "16", "740")], "to {to}");
            assert_eq!(
                fixed_items(&closed),
                [
                    f("DNS Queries: flat amount", &["dns_queries"], 58),
                    f("HTTP Load Balancer Requests: flat amount", &["lb_requests"], 233),
                    f("Individual plan", &[], 583),
                    f("Minimum commitment (23.33 USD)", &[], 1302),
                ],
                "to {to}"
            );
            assert_eq!(closed["total_cost"], "2916", "to {to}");
        }
        // Its invoice, finalized after the grace, says the same.
        app.clock.set(ts("2026-11-28T10:00:01Z"));
        assert_eq!(app.close_periods().await, 1);
        let inv = stored(&app, &acme, FIRST).await.invoice;
        let lines: Vec<(&str, &str, i64)> = inv
            .lines
            .iter()
            .map(|l| (l.kind.as_str(), l.description.as_str(), l.amount_cents))
            .collect();
        assert_eq!(
            lines,
            [
                ("fee", "Individual plan, prorated: 7 of 30 days", 583),
                ("meter_fee", "DNS Queries: flat amount, prorated", 58),
                (
                    "meter_fee",
                    "HTTP Load Balancer Requests: flat amount, prorated",
                    233
                ),
                ("usage", "HTTP Load Balancer Requests", 740),
                (
                    "minimum",
                    "Minimum commitment of 23.33 USD: metered charges came to 10.31",
                    1302
                ),
            ]
        );
        assert_eq!(inv.totals.total, 2916);

        // Team's 14-day trial [11-27 10:00, 12-11 10:00): no fee, no flat
        // amount, no minimum. 60 million requests: (60 − 50) × 50 = 500 ¢.
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "t1",
                "lb_requests",
                "lb-a",
                60_000_000,
                "2026-11-27T12:00:00Z",
            )],
        )
        .await;
        let trial = current(&app, &admin, "system", json!({})).await;
        assert_eq!(rated(&trial), [r("lb_requests", "60", "500")]);
        assert!(
            usage_line(&trial, "lb_requests").get("pricing").is_none(),
            "team prices per unit: {trial:#}"
        );
        assert_eq!(fixed_items(&trial), []);
        assert_eq!(trial["total_cost"], "500");

        // The first paid period [12-11 10:00, 01-11 10:00), without usage:
        // fee 30000, flat amount 700, minimum 50000 − 700 = 49300 → 80000 ¢.
        app.clock.set(ts("2026-12-12T00:00:00Z"));
        let paid = current(&app, &admin, "system", json!({})).await;
        assert_eq!(rated(&paid), []);
        assert_eq!(
            fixed_items(&paid),
            [
                f("HTTP Load Balancer Requests: flat amount", &["lb_requests"], 700),
                f("Minimum commitment (500.00 USD)", &[], 49300),
                f("Teams plan", &[], 30000),
            ]
        );
        assert_eq!(paid["total_cost"], "80000");
        assert_eq!(
            monthly(&app, &admin).await,
            [
                month("2026-11-27T10:00:00Z", "2026-12-11T10:00:00Z", "500"),
                month("2026-11-20T10:00:00Z", "2026-11-27T10:00:00Z", "2916"),
            ]
        );
    })
    .await;
}

// ------------------------------------------------------------------ auditor

/// The auditor's pricing model, written from the catalog text (read with a
/// TOML reader of its own) and the contract, not from the production code.
mod priced {
    use super::*;
    use rust_decimal::RoundingStrategy;
    use rust_decimal::prelude::ToPrimitive;

    #[derive(Debug)]
    pub struct Tier {
        pub up_to: Option<Decimal>,
        pub unit: Decimal,
        pub flat: Decimal,
    }

    #[derive(Debug)]
    pub enum Model {
        PerUnit(Decimal),
        Graduated(Vec<Tier>),
        Volume(Vec<Tier>),
        Package { size: Decimal, price: Decimal },
    }

    #[derive(Debug)]
    pub struct Price {
        pub model: Model,
        pub free: Decimal,
        pub flat_cents: i64,
    }

    #[derive(Debug)]
    pub struct Plan {
        pub title: String,
        pub fee: i64,
        pub minimum: i64,
        pub prices: BTreeMap<String, Price>,
        /// metric → (usage type, divisor)
        pub meters: BTreeMap<String, (String, Decimal)>,
    }

    fn number(v: &toml::Value) -> Decimal {
        match v {
            toml::Value::Integer(i) => Decimal::from(*i),
            toml::Value::String(s) => s.parse().expect("a decimal"),
            other => panic!("not an exact number: {other:?}"),
        }
    }

    fn tiers(v: &toml::Value) -> Vec<Tier> {
        v.as_array()
            .expect("tiers is a list")
            .iter()
            .map(|t| Tier {
                up_to: t.get("up_to").map(number),
                unit: number(&t["unit_price_cents"]),
                flat: t.get("flat_amount_cents").map_or(Decimal::ZERO, number),
            })
            .collect()
    }

    /// The plan `name` of a catalog's text.
    pub fn plan(text: &str, name: &str) -> Plan {
        let doc: toml::Table = toml::from_str(text).expect("the catalog is TOML");
        let meters = doc["meters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["metric_label"].as_str().unwrap().to_owned(),
                    (
                        m["usage_type"].as_str().unwrap().to_owned(),
                        number(&m["divisor"]),
                    ),
                )
            })
            .collect();
        let p = doc["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .expect("the plan is in the catalog");
        let prices = p["prices"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(metric, price)| {
                let model = match price.get("model").and_then(|m| m.as_str()).unwrap_or("per_unit") {
                    "per_unit" => Model::PerUnit(number(&price["unit_price_cents"])),
                    "graduated" => Model::Graduated(tiers(&price["tiers"])),
                    "volume" => Model::Volume(tiers(&price["tiers"])),
                    "package" => Model::Package {
                        size: number(&price["package_size"]),
                        price: number(&price["package_price_cents"]),
                    },
                    other => panic!("unknown model {other}"),
                };
                let p = Price {
                    model,
                    free: price.get("free_allowance").map_or(Decimal::ZERO, number),
                    flat_cents: price
                        .get("flat_amount_cents")
                        .map_or(0, |v| v.as_integer().unwrap()),
                };
                (metric.clone(), p)
            })
            .collect();
        Plan {
            title: p["title"].as_str().unwrap().to_owned(),
            fee: p["flat_price_cents"].as_integer().unwrap(),
            minimum: p
                .get("minimum_commitment_cents")
                .map_or(0, |v| v.as_integer().unwrap()),
            prices,
            meters,
        }
    }

    pub fn half_up(d: Decimal) -> i64 {
        d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .unwrap()
    }

    fn s(d: Decimal) -> String {
        d.normalize().to_string()
    }

    /// A tier step: units `first..=last` (no `last`: and above).
    fn step(first: Decimal, last: Option<Decimal>, n: Decimal, t: &Tier) -> (Decimal, Value) {
        let amount = n * t.unit + t.flat;
        let mut v = json!({"from": s(first), "quantity": s(n), "unit_price_cents": s(t.unit),
                           "flat_cents": s(t.flat), "amount_cents": s(amount)});
        if let Some(last) = last {
            v["to"] = json!(s(last));
        }
        (amount, v)
    }

    /// The amount (rounded once, half up) and the pricing of `billable`
    /// units under `price`: the free allowance first, then the model.
    pub fn line(price: &Price, billable: i64) -> (i64, Option<Value>) {
        let units = (Decimal::from(billable) - price.free).max(Decimal::ZERO);
        let (exact, model, steps): (Decimal, &str, Vec<Value>) = match &price.model {
            Model::PerUnit(unit) => return (half_up(units * unit), None),
            Model::Graduated(tiers) => {
                // Each tier takes the units between the previous tier's end
                // and its own; its flat amount once it takes any.
                let (mut exact, mut steps, mut start) = (Decimal::ZERO, Vec::new(), Decimal::ZERO);
                for t in tiers {
                    let end = t.up_to.unwrap_or(Decimal::MAX);
                    let n = units.min(end) - start;
                    if n > Decimal::ZERO {
                        let (a, v) = step(start + Decimal::ONE, t.up_to, n, t);
                        exact += a;
                        steps.push(v);
                    }
                    start = end;
                    if start >= units {
                        break;
                    }
                }
                (exact, "graduated", steps)
            }
            Model::Volume(tiers) => {
                if units.is_zero() {
                    (Decimal::ZERO, "volume", Vec::new())
                } else {
                    // The first tier whose end the total does not pass.
                    let i = tiers
                        .iter()
                        .position(|t| t.up_to.is_none_or(|u| units <= u))
                        .unwrap();
                    let first = if i == 0 {
                        Decimal::ONE
                    } else {
                        tiers[i - 1].up_to.unwrap() + Decimal::ONE
                    };
                    let (a, v) = step(first, tiers[i].up_to, units, &tiers[i]);
                    (a, "volume", vec![v])
                }
            }
            Model::Package { size, price } => {
                if units.is_zero() {
                    (Decimal::ZERO, "package", Vec::new())
                } else {
                    // Whole units: ⌈units / size⌉ with integers.
                    let (u, z) = (units.to_i64().unwrap(), size.to_i64().unwrap());
                    let n = Decimal::from((u + z - 1) / z);
                    let a = n * price;
                    let v = json!({"package_size": s(*size), "quantity": s(n),
                                   "unit_price_cents": s(*price), "flat_cents": "0", "amount_cents": s(a)});
                    (a, "package", vec![v])
                }
            }
        };
        (half_up(exact), Some(json!({"model": model, "steps": steps})))
    }

    /// The contract's billable quantity: 0 < x < 1 → 1, else rounded down.
    pub fn billable(quantity: Decimal, divisor: Decimal) -> i64 {
        let x = quantity / divisor;
        if x.is_zero() {
            0
        } else if x < Decimal::ONE {
            1
        } else {
            x.floor().to_i64().unwrap()
        }
    }
}

/// What the auditor expects of a `current_usage` response.
struct Expected {
    /// (metric, billable, amount, pricing or null), by metric.
    lines: Vec<(String, String, String, Value)>,
    /// Sorted like [`fixed_items`].
    fixed: Vec<(String, Value, String)>,
    discount: i64,
    total: i64,
    /// Whether a true-up to the minimum is among the fixed items.
    trued_up: bool,
}

/// The bill of `events` under `plan`: with the period's fixed charges
/// (whole period) or without, and a percentage coupon (0.01 % units).
fn expect(plan: &priced::Plan, events: &[&Raw], fixed: bool, percent: i64) -> Expected {
    let mut lines = Vec::new();
    let mut usage = 0;
    for (metric, q) in counts::metrics(events) {
        let (_, divisor) = &plan.meters[&metric];
        let b = priced::billable(q, *divisor);
        let (amount, pricing) = match plan.prices.get(&metric) {
            Some(p) => priced::line(p, b),
            None => (0, None),
        };
        usage += amount;
        lines.push((
            metric,
            b.to_string(),
            amount.to_string(),
            pricing.unwrap_or(Value::Null),
        ));
    }
    let mut subtotal = usage;
    let mut out = Vec::new();
    let mut trued_up = false;
    if fixed {
        subtotal += plan.fee;
        out.push(f(&format!("{} plan", plan.title), &[], plan.fee));
        let mut flats = 0;
        for (metric, p) in plan.prices.iter().filter(|(_, p)| p.flat_cents > 0) {
            flats += p.flat_cents;
            let name = format!("{}: flat amount", plan.meters[metric].0);
            out.push(f(&name, &[metric.as_str()], p.flat_cents));
        }
        subtotal += flats;
        if usage + flats < plan.minimum {
            let m = plan.minimum;
            let name = format!("Minimum commitment ({}.{:02} USD)", m / 100, m % 100);
            out.push(f(&name, &[], m - usage - flats));
            subtotal += m - usage - flats;
            trued_up = true;
        }
    }
    out.sort_by_key(|(t, l, a)| (t.clone(), l.to_string(), a.clone()));
    let discount = priced::half_up(Decimal::from(subtotal) * Decimal::from(percent) / Decimal::from(10_000));
    Expected {
        lines,
        fixed: out,
        discount,
        total: subtotal - discount,
        trued_up,
    }
}

#[track_caller]
fn check(bill: &Value, want: &Expected, what: &str) {
    let got: Vec<(String, String, String, Value)> = usage_items(bill)
        .iter()
        .map(|i| {
            (
                i["metric_labels"][0].as_str().unwrap().to_owned(),
                i["quantity_billable"].as_str().unwrap().to_owned(),
                i["amount"].as_str().unwrap().to_owned(),
                i.get("pricing").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(got, want.lines, "{what}: usage lines");
    assert_eq!(fixed_items(bill), want.fixed, "{what}: fixed items");
    assert_eq!(bill["discount"], want.discount.to_string(), "{what}: {bill:#}");
    assert_eq!(bill["total_cost"], want.total.to_string(), "{what}: {bill:#}");
}

#[tokio::test]
async fn an_auditor_recomputes_tiered_package_and_fixed_charges_from_the_raw_events() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = acme(&app).await;
        app.namespace(&acme, "lab").await;
        let platform = app.token(&acme, Role::Platform).await;
        coupon(&app, &acme, "AUDIT", 1235).await;
        let plan = priced::plan(&catalog_v2(), "individual");
        assert_eq!((plan.fee, plan.minimum, plan.prices.len()), (2500, 10000, 6));
        // Every metric the generator draws has a meter in the text.
        assert!(
            crate::usage_rating::METERS
                .iter()
                .all(|m| plan.meters.contains_key(m.0))
        );

        let start = ts(START);
        app.clock.set(start + SignedDuration::from_hours(24 * 6));
        let mut rng = Lcg::new(0x9121_7e57);
        let mut events = generate(&mut rng, 400, start, 6);
        rng.shuffle(&mut events);

        // Two checkpoints: after a few events (under the minimum) and after
        // all of them.
        let mut sent = 0;
        let mut trued_up = Vec::new();
        for upto in [30, events.len()] {
            for ns in ["system", "shop", "lab"] {
                let batch: Vec<Value> = events[sent..upto]
                    .iter()
                    .filter(|e| e.ns == ns)
                    .map(|e| e.json.clone())
                    .collect();
                if batch.is_empty() {
                    continue;
                }
                let n = batch.len();
                let resp = app
                    .post(&events_path(ns), &platform, json!({"events": batch}))
                    .await;
                assert_eq!(resp.ok()["accepted"], n, "{}", resp.body);
            }
            sent = upto;
            let counted: Vec<&Raw> = events[..sent].iter().collect();

            // The whole tenant: usage, the period's fixed charges, the coupon.
            let want = expect(&plan, &counted, true, 1235);
            check(
                &current(&app, &admin, "system", json!({})).await,
                &want,
                &format!("tenant after {sent}"),
            );
            trued_up.push(want.trued_up);
            // One namespace: its usage alone, no fixed charges, no coupon.
            let shop: Vec<&Raw> = counted.iter().copied().filter(|e| e.ns == "shop").collect();
            check(
                &current(&app, &admin, "shop", json!({})).await,
                &expect(&plan, &shop, false, 0),
                &format!("shop after {sent}"),
            );
            // A range (the first two days): no fixed charges, the coupon.
            let to = start + SignedDuration::from_hours(48);
            let early: Vec<&Raw> = counted.iter().copied().filter(|e| e.at < to).collect();
            let ranged = current(
                &app,
                &admin,
                "system",
                json!({"from": start.to_string(), "to": to.to_string()}),
            )
            .await;
            check(
                &ranged,
                &expect(&plan, &early, false, 1235),
                &format!("range after {sent}"),
            );
        }
        assert_eq!(
            trued_up,
            [true, false],
            "the checkpoints cover a bill under its minimum and one above"
        );

        // Every model and every tier of the graduated lb_requests were used.
        let bill = current(&app, &admin, "system", json!({})).await;
        let models: Vec<&str> = usage_items(&bill)
            .iter()
            .filter_map(|i| i.get("pricing").map(|p| p["model"].as_str().unwrap()))
            .collect();
        for m in ["graduated", "volume", "package"] {
            assert!(models.contains(&m), "{m} in {models:?}");
        }
        assert_eq!(
            usage_line(&bill, "lb_requests")["pricing"]["steps"]
                .as_array()
                .unwrap()
                .len(),
            3,
            "{bill:#}"
        );

        // Finalized with prepaid credits: they pay what the coupon leaves
        // (this catalog has no taxes), up to what the grants hold; only the
        // rest is due.
        let all: Vec<&Raw> = events.iter().collect();
        let want = expect(&plan, &all, true, 1235);
        let held = 3000 + 1234;
        for (amount, priority) in [("30.00", 1), ("12.34", 0)] {
            app.operator(
                Method::POST,
                "/api/operator/tenants/acme/credits",
                Some(json!({"amount": amount, "priority": priority, "reason": "audit"})),
            )
            .await
            .ok();
        }
        app.clock.set(start + SignedDuration::from_hours(24 * 40));
        assert_eq!(app.close_periods().await, 1);
        let inv = &app.store.invoices(&acme.id).await.unwrap()[0].invoice;
        inv.check().unwrap();
        let credits = want.total.min(held);
        assert_eq!(
            (inv.totals.discount, inv.totals.credits, inv.totals.total),
            (want.discount, credits, want.total - credits)
        );
        // The higher priority grant paid first.
        assert_eq!(inv.credits[0].amount_cents, credits.min(3000));
    })
    .await;
}
