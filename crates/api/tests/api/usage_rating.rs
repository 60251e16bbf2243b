//! `current_usage` and `monthly_usage`: rated usage, the plan's flat fee,
//! coupons and totals, billing periods at month ends and leap days, and an
//! auditor that recomputes a bill from raw events with its own model.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::rating::Discount;
use tollgate_domain::tenant::Tenant;
use tollgate_store::CouponDef;
use tollgate_testkit::each_backend;

use crate::support::{START, TestApp, ts};
use crate::usage_support::{
    Lcg, current, detail, details, event, event_dc, events_path, fee_lines, ingest_all, line, metrics_of,
    month, monthly, num, report,
};

/// The individual plan's first billing period for a tenant created at START.
const PERIOD: (&str, &str) = ("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z");

async fn coupon(
    app: &TestApp,
    tenant: &Tenant,
    code: &str,
    title: &str,
    discount: Discount,
    from: &str,
    until: Option<&str>,
) {
    let now = ts(START);
    let def = CouponDef {
        code: code.into(),
        title: title.into(),
        discount,
    };
    app.store
        .create_coupon(&def, "operator", now)
        .await
        .expect("create coupon");
    app.store
        .apply_coupon(&tenant.id, code, ts(from), until.map(ts), "operator", now)
        .await
        .expect("apply coupon");
}

/// acme (individual, created at START) with namespace shop and this usage,
/// reported on 2026-11-25:
///
/// | ns     | metric            | object | quantity          |
/// |--------|-------------------|--------|-------------------|
/// | shop   | lb_requests       | lb-a   | 40 000 000 (11-21)|
/// | system | lb_requests       | lb-b   | 33 400 000 (11-22)|
/// | shop   | lb_data_transfer  | lb-a   | 100 GB (11-21) + 50.5 GB (11-23) |
/// | system | cdn_data_transfer | cdn-1  | 3 bytes           |
/// | system | synthetic_checks  | chk-1  | 52 999            |
/// | shop   | dns_queries       | zone-1 | 500 000           |
/// | shop   | site_vcpus        | site-1 | 4                 |
async fn golden_usage(app: &TestApp) -> (Tenant, String) {
    let (acme, admin) = app.admin("acme").await;
    app.namespace(&acme, "shop").await;
    app.clock.set(ts("2026-11-25T00:00:00Z"));
    ingest_all(
        app,
        &admin,
        "shop",
        vec![
            event("g1", "lb_requests", "lb-a", 40_000_000, "2026-11-21T08:00:00Z"),
            event(
                "g3",
                "lb_data_transfer",
                "lb-a",
                "100000000000",
                "2026-11-21T08:00:00Z",
            ),
            event(
                "g4",
                "lb_data_transfer",
                "lb-a",
                "50500000000",
                "2026-11-23T12:00:00Z",
            ),
            event("g7", "dns_queries", "zone-1", 500_000, "2026-11-24T03:00:00Z"),
            event("g8", "site_vcpus", "site-1", 4, "2026-11-24T04:00:00Z"),
        ],
    )
    .await;
    ingest_all(
        app,
        &admin,
        "system",
        vec![
            event("g2", "lb_requests", "lb-b", 33_400_000, "2026-11-22T09:30:00Z"),
            event("g5", "cdn_data_transfer", "cdn-1", 3, "2026-11-24T01:00:00Z"),
            event("g6", "synthetic_checks", "chk-1", 52_999, "2026-11-24T02:00:00Z"),
        ],
    )
    .await;
    (acme, admin)
}

/// (metric, quantity_billable, amount) of the usage lines.
fn rated(bill: &Value) -> Vec<(String, String, String)> {
    bill["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["fixed"] == false)
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

#[tokio::test]
async fn current_usage_rates_each_metric_as_worked_out_by_hand() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = golden_usage(&app).await;

        let bill = current(&app, &admin, "system", json!({})).await;
        crate::snapshot!("current_usage_individual", &bill);
        // Individual plan, by hand:
        // cdn_data_transfer: 3 bytes = 3e-9 GB, 0 < x < 1 → 1 GB; no allowance; 1 × 4.5 ¢ = 4.5 → 5 ¢ (half up).
        // dns_queries: 500 000 = 0.5 million → 1; 1 free → 0 ¢.
        // lb_data_transfer: 150.5 GB → 150; 100 free; 50 × 8 ¢ = 400 ¢.
        // lb_requests: 73.4 million → 73; 5 free; 68 × 60 ¢ = 4080 ¢.
        // site_vcpus: peak 4 → 4; not priced by individual → 0 ¢.
        // synthetic_checks: 52 999 = 52.999 thousand → 52; 50 free; 2 × 0.25 ¢ = 0.5 → 1 ¢ (half up).
        // Flat fee 2500 ¢. Total 5 + 0 + 400 + 4080 + 0 + 1 + 2500 = 6986 ¢.
        assert_eq!(
            rated(&bill),
            [
                r("cdn_data_transfer", "1", "5"),
                r("dns_queries", "1", "0"),
                r("lb_data_transfer", "150", "400"),
                r("lb_requests", "73", "4080"),
                r("site_vcpus", "4", "0"),
                r("synthetic_checks", "52", "1"),
            ]
        );
        assert_eq!(
            (&bill["discount"], &bill["total_cost"]),
            (&json!("0"), &json!("6986"))
        );
        assert_eq!(bill["coupons"], json!([]));
        let lb = line(&bill, "lb_requests");
        assert_eq!(num(&lb["quantity"]), 73_400_000.0);
        assert_eq!(
            (&lb["usage_type"], &lb["unit_name"], &lb["unit_name_billable"]),
            (
                &json!("HTTP Load Balancer Requests"),
                &json!("request"),
                &json!("million requests")
            )
        );
        assert_eq!(
            num(&line(&bill, "lb_data_transfer")["quantity"]),
            150_500_000_000.0
        );
        assert_eq!(line(&bill, "lb_data_transfer")["unit_name_billable"], "GB");
        for item in bill["usage_items"].as_array().unwrap() {
            assert_eq!(item["currency_code"], "USD", "{item}");
            assert_eq!(item["status"], "STATUS_ACTIVE", "{item}");
            assert_eq!(
                (
                    item["start_timestamp"].as_str().unwrap(),
                    item["end_timestamp"].as_str().unwrap()
                ),
                PERIOD
            );
        }
        let fee = fee_lines(&bill);
        assert_eq!(fee.len(), 1);
        assert_eq!(
            (
                &fee[0]["amount"],
                &fee[0]["quantity_billable"],
                &fee[0]["metric_labels"]
            ),
            (&json!("2500"), &json!("1"), &json!([]))
        );
        // The total is the lines' amounts minus the discount.
        let sum: i64 = bill["usage_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["amount"].as_str().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(sum.to_string(), bill["total_cost"].as_str().unwrap());

        // shop alone: its usage without the fee (and with the whole allowance).
        // lb_requests 40 million → (40 − 5) × 60 = 2100; lb_data_transfer 400; dns and vCPUs 0.
        let shop = current(&app, &admin, "shop", json!({})).await;
        assert_eq!(
            rated(&shop),
            [
                r("dns_queries", "1", "0"),
                r("lb_data_transfer", "150", "400"),
                r("lb_requests", "40", "2100"),
                r("site_vcpus", "4", "0"),
            ]
        );
        assert!(fee_lines(&shop).is_empty());
        assert_eq!(
            (&shop["discount"], &shop["total_cost"]),
            (&json!("0"), &json!("2500"))
        );

        // An explicit range has no fee: 11-21 holds 40 million requests and
        // 100 GB (all free) → 2100 ¢.
        let (from, to) = ("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z");
        let day = current(&app, &admin, "system", json!({"from": from, "to": to})).await;
        assert_eq!(
            rated(&day),
            [r("lb_data_transfer", "100", "0"), r("lb_requests", "40", "2100")]
        );
        assert!(fee_lines(&day).is_empty());
        assert_eq!(day["total_cost"], "2100");
        assert_eq!(line(&day, "lb_requests")["start_timestamp"], from);
        assert_eq!(line(&day, "lb_requests")["end_timestamp"], to);
        // The body may name the namespace of the path.
        assert_eq!(
            current(&app, &admin, "system", json!({"namespace": "system"})).await,
            bill
        );
    })
    .await;
}

#[tokio::test]
async fn a_tenant_without_usage_owes_the_flat_fee() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(metrics_of(&bill), Vec::<String>::new());
        let fee = fee_lines(&bill);
        assert_eq!(fee.len(), 1);
        assert_eq!(fee[0]["amount"], "2500");
        assert_eq!(fee[0]["usage_type"], "Individual plan");
        assert_eq!(bill["total_cost"], "2500");
        // A free tenant owes nothing.
        let free = app.tenant_on("freebie", "free").await;
        let tok = app.token(&free, Role::Billing).await;
        let bill = current(&app, &tok, "system", json!({})).await;
        assert_eq!(bill["usage_items"], json!([]));
        assert_eq!(bill["total_cost"], "0");
    })
    .await;
}

#[tokio::test]
async fn a_team_tenant_pays_no_fee_during_its_trial() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let beta = app.tenant_on("beta", "team").await;
        let admin = app.token(&beta, Role::Admin).await;
        app.clock.set(ts("2026-11-22T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("t1", "lb_requests", "lb-a", 73_400_000, "2026-11-21T00:00:00Z"),
                event_dc(
                    "t2",
                    "site_vcpus",
                    "site-1",
                    6,
                    "2026-11-21T05:00:00Z",
                    "d1",
                    "c1",
                ),
                event_dc(
                    "t3",
                    "site_vcpus",
                    "site-1",
                    4,
                    "2026-11-21T05:10:00Z",
                    "d2",
                    "c1",
                ),
                event_dc(
                    "t4",
                    "site_vcpus",
                    "site-1",
                    9,
                    "2026-11-21T06:00:00Z",
                    "d1",
                    "c1",
                ),
            ],
        )
        .await;
        // Team, by hand: lb_requests 73 − 50 free = 23 × 50 ¢ = 1150 ¢;
        // site_vcpus peak hour 05:00 with 6 + 4 = 10 vCPUs; 8 free; 2 × 1500 ¢ = 3000 ¢.
        // The 14-day trial [11-20 10:00, 12-04 10:00) has no fee: total 4150 ¢.
        let bill = current(&app, &admin, "system", json!({})).await;
        assert!(fee_lines(&bill).is_empty(), "{bill:#}");
        assert_eq!(
            rated(&bill),
            [r("lb_requests", "73", "1150"), r("site_vcpus", "10", "3000")]
        );
        assert_eq!(bill["total_cost"], "4150");
        let lb = line(&bill, "lb_requests");
        assert_eq!(
            (
                lb["start_timestamp"].as_str().unwrap(),
                lb["end_timestamp"].as_str().unwrap()
            ),
            ("2026-11-20T10:00:00Z", "2026-12-04T10:00:00Z")
        );

        // After the trial: the first paid period, with the 30000 ¢ fee.
        app.clock.set(ts("2026-12-05T10:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "t5",
                "lb_requests",
                "lb-a",
                1_000_000,
                "2026-12-05T09:00:00Z",
            )],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(rated(&bill), [r("lb_requests", "1", "0")]);
        let fee = fee_lines(&bill);
        assert_eq!(fee.len(), 1, "{bill:#}");
        assert_eq!(fee[0]["amount"], "30000");
        assert_eq!(fee[0]["usage_type"], "Teams plan");
        assert_eq!(
            (
                fee[0]["start_timestamp"].as_str().unwrap(),
                fee[0]["end_timestamp"].as_str().unwrap()
            ),
            ("2026-12-04T10:00:00Z", "2027-01-04T10:00:00Z")
        );
        assert_eq!(bill["total_cost"], "30000");
        // The trial is a past period now.
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2026-11-20T10:00:00Z", "2026-12-04T10:00:00Z", "4150")]
        );
    })
    .await;
}

#[tokio::test]
async fn coupons_discount_the_total_but_never_below_zero() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = golden_usage(&app).await;
        // Coupons outside the period do not apply: one starts with the next
        // period, one ended when the tenant started.
        coupon(&app, &acme, "LATER", "later", Discount::Percent(5000), PERIOD.1, None).await;
        coupon(
            &app,
            &acme,
            "OLD",
            "old",
            Discount::Fixed(100),
            "2026-11-01T00:00:00Z",
            Some(PERIOD.0),
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            (&bill["coupons"], &bill["discount"], &bill["total_cost"]),
            (&json!([]), &json!("0"), &json!("6986"))
        );

        // 10 % of 6986 = 698.6 → 699; total 6287.
        coupon(&app, &acme, "TENOFF", "10 % off", Discount::Percent(1000), PERIOD.0, None).await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            bill["coupons"],
            json!([{"title": "10 % off", "discount_type": "DISCOUNT_TYPE_PERCENTAGE", "discount_amount": 1000}])
        );
        assert_eq!((&bill["discount"], &bill["total_cost"]), (&json!("699"), &json!("6287")));
        // The lines are unchanged by coupons.
        assert_eq!(line(&bill, "lb_requests")["amount"], "4080");

        // Plus 5 $ fixed: 699 + 500 = 1199; total 5787.
        coupon(
            &app,
            &acme,
            "FIVE",
            "5 dollars off",
            Discount::Fixed(500),
            "2026-11-22T00:00:00Z",
            Some("2026-11-23T00:00:00Z"),
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(
            bill["coupons"],
            json!([
                {"title": "10 % off", "discount_type": "DISCOUNT_TYPE_PERCENTAGE", "discount_amount": 1000},
                {"title": "5 dollars off", "discount_type": "DISCOUNT_TYPE_FIXED_AMOUNT", "discount_amount": 500},
            ])
        );
        assert_eq!((&bill["discount"], &bill["total_cost"]), (&json!("1199"), &json!("5787")));

        // A namespace's report has no coupons.
        let shop = current(&app, &admin, "shop", json!({})).await;
        assert_eq!((&shop["coupons"], &shop["discount"]), (&json!([]), &json!("0")));

        // A huge fixed coupon takes the total to zero, not below.
        coupon(&app, &acme, "HUGE", "huge", Discount::Fixed(1_000_000), PERIOD.0, None).await;
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(bill["coupons"].as_array().unwrap().len(), 3);
        assert_eq!((&bill["discount"], &bill["total_cost"]), (&json!("6986"), &json!("0")));
    })
    .await;
}

#[tokio::test]
async fn billing_periods_end_on_the_anchor_day_clamped_to_month_end() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-31T00:00:00Z"));
        let (_, admin) = app.admin("acme").await;
        // Periods: [01-31, 02-28), [02-28, 03-31), [03-31, 04-30).
        app.clock.set(ts("2027-02-27T13:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "feb27",
                "lb_requests",
                "lb-a",
                20_000_000,
                "2027-02-27T12:00:00Z",
            )],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        // (20 − 5) × 60 = 900 ¢ + 2500 ¢.
        assert_eq!(rated(&bill), [r("lb_requests", "20", "900")]);
        assert_eq!(bill["total_cost"], "3400");
        assert_eq!(
            (
                fee_lines(&bill)[0]["start_timestamp"].as_str().unwrap(),
                fee_lines(&bill)[0]["end_timestamp"].as_str().unwrap()
            ),
            ("2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z")
        );

        app.clock.set(ts("2027-02-28T13:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("feb28", "lb_requests", "lb-a", 8_000_000, "2027-02-28T12:00:00Z"),
                // Late, for the last hour of the first period.
                event(
                    "feb27-late",
                    "lb_requests",
                    "lb-a",
                    1_000_000,
                    "2027-02-27T23:30:00Z",
                ),
            ],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        // Only 02-28's event: (8 − 5) × 60 = 180 ¢ + 2500 ¢.
        assert_eq!(rated(&bill), [r("lb_requests", "8", "180")]);
        assert_eq!(num(&line(&bill, "lb_requests")["quantity"]), 8_000_000.0);
        assert_eq!(bill["total_cost"], "2680");
        assert_eq!(
            (
                fee_lines(&bill)[0]["start_timestamp"].as_str().unwrap(),
                fee_lines(&bill)[0]["end_timestamp"].as_str().unwrap()
            ),
            ("2027-02-28T00:00:00Z", "2027-03-31T00:00:00Z")
        );
        // The first period, now closed, got the late event: (21 − 5) × 60 = 960 ¢ + 2500 ¢.
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z", "3460")]
        );
        let first = current(
            &app,
            &admin,
            "system",
            json!({"from": "2027-01-31T00:00:00Z", "to": "2027-02-28T00:00:00Z"}),
        )
        .await;
        assert_eq!(rated(&first), [r("lb_requests", "21", "960")]);
        assert_eq!(
            first["total_cost"], "3460",
            "a range that is exactly a billing period is billed as that period, fee included"
        );
        let not_a_period = current(
            &app,
            &admin,
            "system",
            json!({"from": "2027-01-31T00:00:00Z", "to": "2027-02-27T00:00:00Z"}),
        )
        .await;
        assert!(fee_lines(&not_a_period).is_empty(), "no fee for another range");

        // March ends on the 31st again.
        app.clock.set(ts("2027-03-31T00:00:00Z"));
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(fee_lines(&bill)[0]["start_timestamp"], "2027-03-31T00:00:00Z");
        assert_eq!(fee_lines(&bill)[0]["end_timestamp"], "2027-04-30T00:00:00Z");
        assert_eq!(
            monthly(&app, &admin).await,
            [
                month("2027-02-28T00:00:00Z", "2027-03-31T00:00:00Z", "2680"),
                month("2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z", "3460"),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_tenant_created_on_a_leap_day_is_billed_on_the_29th_or_the_last_day() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2028-02-29T00:00:00Z"));
        let (_, admin) = app.admin("leap").await;
        let period_at = |at: &'static str| {
            let app = &app;
            let admin = admin.clone();
            async move {
                app.clock.set(ts(at));
                let bill = current(app, &admin, "system", json!({})).await;
                let fee = fee_lines(&bill)[0].clone();
                (
                    fee["start_timestamp"].as_str().unwrap().to_owned(),
                    fee["end_timestamp"].as_str().unwrap().to_owned(),
                )
            }
        };
        let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            period_at("2028-03-28T23:59:59Z").await,
            p("2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z")
        );
        assert_eq!(
            period_at("2028-03-29T00:00:00Z").await,
            p("2028-03-29T00:00:00Z", "2028-04-29T00:00:00Z")
        );
        assert_eq!(
            period_at("2029-02-27T12:00:00Z").await,
            p("2029-01-29T00:00:00Z", "2029-02-28T00:00:00Z"),
            "2029 has no February 29th: the period ends on the 28th"
        );
        assert_eq!(
            period_at("2029-02-28T02:00:00Z").await,
            p("2029-02-28T00:00:00Z", "2029-03-29T00:00:00Z")
        );
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event(
                    "before",
                    "lb_requests",
                    "lb-a",
                    10_000_000,
                    "2029-02-27T23:00:00Z",
                ),
                event("after", "lb_requests", "lb-a", 7_000_000, "2029-02-28T01:00:00Z"),
            ],
        )
        .await;
        // The current period has 7 million requests: (7 − 5) × 60 = 120 ¢ + 2500 ¢.
        let bill = current(&app, &admin, "system", json!({})).await;
        assert_eq!(rated(&bill), [r("lb_requests", "7", "120")]);
        assert_eq!(bill["total_cost"], "2620");
        // Twelve past periods, newest first; the newest has 10 million
        // requests: (10 − 5) × 60 = 300 ¢ + 2500 ¢.
        let months = monthly(&app, &admin).await;
        let starts = [
            "2029-01-29",
            "2028-12-29",
            "2028-11-29",
            "2028-10-29",
            "2028-09-29",
            "2028-08-29",
            "2028-07-29",
            "2028-06-29",
            "2028-05-29",
            "2028-04-29",
            "2028-03-29",
            "2028-02-29",
        ];
        let ends = std::iter::once("2029-02-28").chain(starts.iter().copied().take(11));
        let expected: Vec<_> = starts
            .iter()
            .zip(ends)
            .enumerate()
            .map(|(i, (s, e))| {
                month(
                    &format!("{s}T00:00:00Z"),
                    &format!("{e}T00:00:00Z"),
                    if i == 0 { "2800" } else { "2500" },
                )
            })
            .collect();
        assert_eq!(months, expected);
        assert_eq!(
            period_at("2029-03-29T00:00:00Z").await,
            p("2029-03-29T00:00:00Z", "2029-04-29T00:00:00Z")
        );
    })
    .await;
}

#[tokio::test]
async fn monthly_usage_lists_past_periods_newest_first_at_what_current_usage_said() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        assert_eq!(
            monthly(&app, &admin).await,
            Vec::<(String, String, String)>::new(),
            "no period has ended yet"
        );
        let shop = app
            .post(&report("shop", "monthly_usage"), &admin, json!({}))
            .await;
        assert_eq!(
            shop.error(400, 3),
            "namespace: monthly bills live in namespace \"system\", not \"shop\""
        );
        app.post(
            &report("system", "monthly_usage"),
            &admin,
            json!({"namespace": "shop"}),
        )
        .await
        .error(400, 3);

        // Nov 20 – Dec 20: 10 million requests → (10 − 5) × 60 = 300 ¢ + 2500 ¢ = 2800 ¢.
        app.clock.set(ts("2026-11-26T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![event(
                "m1",
                "lb_requests",
                "lb-a",
                10_000_000,
                "2026-11-25T00:00:00Z",
            )],
        )
        .await;
        app.clock.set(ts("2026-12-20T09:59:59Z"));
        let first = current(&app, &admin, "system", json!({})).await["total_cost"].clone();
        assert_eq!(first, "2800");

        // Dec 20 – Jan 20: 250 GB → (250 − 100) × 8 = 1200 ¢ + 2500 ¢ = 3700 ¢,
        // minus a 10 % coupon of this period only: 3330 ¢.
        coupon(
            &app,
            &acme,
            "DEC",
            "December",
            Discount::Percent(1000),
            "2026-12-20T10:00:00Z",
            Some("2027-01-20T10:00:00Z"),
        )
        .await;
        app.clock.set(ts("2026-12-25T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "m2",
                "lb_data_transfer",
                "lb-a",
                250_000_000_000_i64,
                "2026-12-24T00:00:00Z",
            )],
        )
        .await;
        app.clock.set(ts("2027-01-20T09:00:00Z"));
        let second = current(&app, &admin, "system", json!({})).await;
        assert_eq!(second["discount"], "370");
        let second = second["total_cost"].clone();
        assert_eq!(second, "3330");

        // Jan 20 – Feb 20: 1.5 GB of CDN → 1 × 4.5 = 4.5 → 5 ¢ + 2500 ¢ = 2505 ¢.
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![event(
                "m3",
                "cdn_data_transfer",
                "cdn-1",
                1_500_000_000,
                "2027-02-01T00:00:00Z",
            )],
        )
        .await;
        app.clock.set(ts("2027-02-20T09:59:00Z"));
        let third = current(&app, &admin, "system", json!({})).await["total_cost"].clone();
        assert_eq!(third, "2505");
        assert_eq!(
            monthly(&app, &admin).await.len(),
            2,
            "the third period has not ended"
        );

        app.clock.set(ts("2027-02-21T00:00:00Z"));
        let months = monthly(&app, &admin).await;
        assert_eq!(
            months,
            [
                month("2027-01-20T10:00:00Z", "2027-02-20T10:00:00Z", "2505"),
                month("2026-12-20T10:00:00Z", "2027-01-20T10:00:00Z", "3330"),
                month("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z", "2800"),
            ]
        );
        // Each month is what current_usage said while it was current.
        let amounts: Vec<&str> = months.iter().map(|m| m.2.as_str()).collect();
        assert_eq!(
            amounts,
            [
                third.as_str().unwrap(),
                second.as_str().unwrap(),
                first.as_str().unwrap()
            ]
        );
        // Read-only roles see it too.
        let monitor = app.token(&acme, Role::Monitor).await;
        assert_eq!(monthly(&app, &monitor).await, months);
    })
    .await;
}

#[tokio::test]
async fn a_plan_change_closes_the_period_with_a_prorated_fee() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2026-11-22T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "i1",
                "lb_requests",
                "lb-a",
                10_000_000,
                "2026-11-21T00:00:00Z",
            )],
        )
        .await;
        // Move to team 6 days into the 30-day period.
        app.clock.set(ts("2026-11-26T10:00:00Z"));
        app.post(
            "/api/web/namespaces/system/billing/plan_transition",
            &admin,
            json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}}),
        )
        .await
        .ok();
        assert_eq!(app.run_jobs().await, 1);

        // Individual, [11-20 10:00, 11-26 10:00): 10 million requests →
        // (10 − 5) × 60 = 300 ¢; the fee for 6 of 30 days: 2500 × 6/30 = 500 ¢.
        app.clock.set(ts("2026-11-27T00:00:00Z"));
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2026-11-20T10:00:00Z", "2026-11-26T10:00:00Z", "800")]
        );
        // The current report is team's trial, without the earlier usage.
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "t1",
                "lb_requests",
                "lb-a",
                60_000_000,
                "2026-11-26T12:00:00Z",
            )],
        )
        .await;
        let bill = current(&app, &admin, "system", json!({})).await;
        // Team: (60 − 50) × 50 = 500 ¢; no fee in the trial.
        assert_eq!(rated(&bill), [r("lb_requests", "60", "500")]);
        assert!(fee_lines(&bill).is_empty());
        assert_eq!(bill["total_cost"], "500");
        assert_eq!(
            line(&bill, "lb_requests")["start_timestamp"],
            "2026-11-26T10:00:00Z"
        );
        // The cut-short period asked for by its nominal bounds is that period:
        // it ends at the cut, so team's usage after it is not in it.
        for to in ["2026-11-26T10:00:00Z", "2026-12-20T10:00:00Z"] {
            let closed = current(
                &app,
                &admin,
                "system",
                json!({"from": "2026-11-20T10:00:00Z", "to": to}),
            )
            .await;
            assert_eq!(rated(&closed), [r("lb_requests", "10", "300")], "to {to}");
            assert_eq!(closed["total_cost"], "800", "to {to}");
        }
    })
    .await;
}

// ------------------------------------------------------------------ auditor

/// Every meter of the built-in catalog: (metric, divisor, is a max meter).
pub(crate) const METERS: [(&str, i64, bool); 8] = [
    ("lb_requests", 1_000_000, false),
    ("lb_data_transfer", 1_000_000_000, false),
    ("lb_hours", 3600, false),
    ("waap_requests", 1_000_000, false),
    ("cdn_data_transfer", 1_000_000_000, false),
    ("synthetic_checks", 1000, false),
    ("dns_queries", 1_000_000, false),
    ("site_vcpus", 1, true),
];

/// The individual plan's prices, copied by hand from the catalog:
/// (metric, cents per billable unit, free billable units).
const INDIVIDUAL_PRICES: [(&str, &str, &str); 6] = [
    ("lb_requests", "60", "5"),
    ("lb_data_transfer", "8", "100"),
    ("waap_requests", "150", "1"),
    ("cdn_data_transfer", "4.5", "0"),
    ("synthetic_checks", "0.25", "50"),
    ("dns_queries", "40", "1"),
];

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A usage event as the auditor keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) id: String,
    pub(crate) ns: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) object: String,
    pub(crate) deployment: &'static str,
    pub(crate) container: &'static str,
    pub(crate) quantity: Decimal,
    pub(crate) at: Timestamp,
    /// As sent.
    pub(crate) json: Value,
}

/// The auditor's rating model, written from the contract and the catalog,
/// not from the production code (shared with `usage_pricing`'s auditor).
pub(crate) mod model {
    use super::*;

    pub fn hour(at: Timestamp) -> i64 {
        at.as_second().div_euclid(3600)
    }

    /// Quantity of each (namespace, metric, object): sums for sum meters;
    /// for max meters, the peak hour, an hour being its deployments' and
    /// containers' (each the max of its samples) added up.
    pub fn objects(events: &[&Raw]) -> BTreeMap<(String, String, String), Decimal> {
        let mut sums: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
        type Sample = (String, String, String, i64, String, String);
        let mut samples: BTreeMap<Sample, Decimal> = BTreeMap::new();
        for e in events {
            let key = (e.ns.to_owned(), e.metric.to_owned(), e.object.clone());
            let is_max = METERS.iter().any(|m| m.0 == e.metric && m.2);
            if is_max {
                let s = (
                    key.0,
                    key.1,
                    key.2,
                    hour(e.at),
                    e.deployment.to_owned(),
                    e.container.to_owned(),
                );
                let v = samples.entry(s).or_insert(e.quantity);
                *v = (*v).max(e.quantity);
            } else {
                *sums.entry(key).or_default() += e.quantity;
            }
        }
        let mut hours: BTreeMap<(String, String, String, i64), Decimal> = BTreeMap::new();
        for ((ns, metric, object, h, _, _), q) in samples {
            *hours.entry((ns, metric, object, h)).or_default() += q;
        }
        for ((ns, metric, object, _), q) in hours {
            let v = sums.entry((ns, metric, object)).or_insert(q);
            *v = (*v).max(q);
        }
        sums
    }

    /// Each metric's quantity: its objects' added up.
    pub fn metrics(events: &[&Raw]) -> BTreeMap<String, Decimal> {
        let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
        for ((_, metric, _), q) in objects(events) {
            *out.entry(metric).or_default() += q;
        }
        out
    }

    pub fn half_up(d: Decimal) -> i64 {
        d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .unwrap()
    }

    /// The contract's billable quantity: 0 < x < 1 → 1, else rounded down.
    pub fn billable(quantity: Decimal, divisor: i64) -> i64 {
        let x = quantity / Decimal::from(divisor);
        if x.is_zero() {
            0
        } else if x < Decimal::ONE {
            1
        } else {
            x.floor().to_i64().unwrap()
        }
    }

    /// (billable, cents) of a metric's quantity under the individual plan.
    pub fn rate(metric: &str, quantity: Decimal) -> (i64, i64) {
        let divisor = METERS.iter().find(|m| m.0 == metric).unwrap().1;
        let b = billable(quantity, divisor);
        let cents = match INDIVIDUAL_PRICES.iter().find(|p| p.0 == metric) {
            None => 0,
            Some((_, price, free)) => {
                let chargeable = (Decimal::from(b) - dec(free)).max(Decimal::ZERO);
                half_up(chargeable * dec(price))
            }
        };
        (b, cents)
    }
}

/// Generates `n` events of acme over [start, start + days).
pub(crate) fn generate(rng: &mut Lcg, n: usize, start: Timestamp, days: i64) -> Vec<Raw> {
    let namespaces = ["system", "shop", "lab"];
    let deployments = ["", "d1", "d2"];
    let containers = ["", "c1", "c2"];
    (0..n)
        .map(|i| {
            let (metric, _, is_max) = *rng.pick(&METERS);
            let ns = *rng.pick(&namespaces);
            let object = format!("{metric}-{}", rng.below(3));
            let at = if is_max {
                // Samples crowd into few hours so that buckets collide.
                start + SignedDuration::from_secs((rng.below(30) * 3600 + rng.below(3600)) as i64)
            } else {
                start + SignedDuration::from_secs(rng.below((days * 86_400) as u64) as i64)
            };
            let text = match metric {
                "lb_requests" => rng.below(4_000_000).to_string(),
                "waap_requests" => rng.below(300_000).to_string(),
                "lb_hours" => rng.below(7200).to_string(),
                "lb_data_transfer" => format!("{}.{:03}", rng.below(60_000_000_000), rng.below(1000)),
                "cdn_data_transfer" => format!("{}.{}", rng.below(3_000_000_000), rng.below(10)),
                "synthetic_checks" => rng.below(5000).to_string(),
                "dns_queries" => rng.below(200_000).to_string(),
                _ => (1 + rng.below(16)).to_string(),
            };
            let quantity = dec(&text);
            // Integers go as JSON numbers or strings; decimals as strings.
            let q = if text.contains('.') || rng.below(2) == 0 {
                json!(text)
            } else {
                json!(text.parse::<u64>().unwrap())
            };
            let stamp = if rng.below(3) == 0 {
                json!(at.as_second())
            } else {
                json!(at.to_string())
            };
            let id = format!("ev-{i:04}-{}", rng.below(1_000_000));
            let (deployment, container) = (*rng.pick(&deployments), *rng.pick(&containers));
            let json = event_dc(&id, metric, &object, q, stamp, deployment, container);
            Raw {
                id,
                ns,
                metric,
                object,
                deployment,
                container,
                quantity,
                at,
                json,
            }
        })
        .collect()
}

#[tokio::test]
async fn an_auditor_recomputes_current_usage_from_the_raw_events() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&acme, "lab").await;
        let platform = app.token(&acme, Role::Platform).await;
        coupon(
            &app,
            &acme,
            "AUDIT",
            "12.35 %",
            Discount::Percent(1235),
            PERIOD.0,
            None,
        )
        .await;
        let start = ts(START);
        app.clock.set(start + SignedDuration::from_hours(24 * 6));
        let mut rng = Lcg::new(0x7011_6a7e);
        let mut events = generate(&mut rng, 400, start, 6);
        rng.shuffle(&mut events);

        // Send in random batches of one namespace each, re-sending some
        // events (identical, or with another quantity: the first one sent
        // counts) and repeating some within a batch.
        let mut sent: Vec<Raw> = Vec::new();
        let mut counted: Vec<Raw> = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        let mut pending = events.clone();
        let mut batches = 0;
        while !pending.is_empty() {
            let ns = pending[0].ns;
            let size = 1 + rng.below(40) as usize;
            let mut batch: Vec<Raw> = Vec::new();
            let mut rest = Vec::new();
            for e in pending.drain(..) {
                if e.ns == ns && batch.len() < size {
                    batch.push(e);
                } else {
                    rest.push(e);
                }
            }
            pending = rest;
            let extra = rng.below(4);
            for _ in 0..extra {
                let pool: Vec<&Raw> = sent.iter().chain(batch.iter()).filter(|e| e.ns == ns).collect();
                if pool.is_empty() {
                    break;
                }
                let mut dup = (*rng.pick(&pool)).clone();
                if rng.below(3) == 0 {
                    dup.quantity += Decimal::ONE;
                    dup.json["quantity"] = json!(dup.quantity.to_string());
                }
                let at = rng.below(batch.len() as u64 + 1) as usize;
                // A repeat within the batch must come after its first copy.
                let first = batch.iter().position(|e| e.id == dup.id).map_or(0, |p| p + 1);
                batch.insert(at.max(first), dup);
            }
            let mut fresh = 0;
            for e in &batch {
                if ids.insert(e.id.clone()) {
                    counted.push(e.clone());
                    fresh += 1;
                }
            }
            let body = json!({"events": batch.iter().map(|e| e.json.clone()).collect::<Vec<_>>()});
            let resp = app.post(&events_path(ns), &platform, body).await;
            let resp = resp.ok();
            assert_eq!(resp["accepted"], fresh, "{resp}");
            assert_eq!(resp["duplicates"], batch.len() - fresh, "{resp}");
            assert_eq!(resp["rejected"], 0, "{resp}");
            sent.extend(batch);
            batches += 1;
        }
        assert!(
            batches > 10 && sent.len() > 400,
            "{batches} batches, {} sent",
            sent.len()
        );
        assert_eq!(counted.len(), 400);

        // usage_details: every object's quantity.
        let all: Vec<&Raw> = counted.iter().collect();
        let objects = model::objects(&all);
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(items.len(), objects.len());
        for ((ns, metric, object), q) in &objects {
            let got = num(&detail(&items, ns, metric, object)["quantity"]);
            let want = q.to_f64().unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{ns}/{metric}/{object}: {got} vs {q}"
            );
        }

        // current_usage of the whole tenant: lines, fee, coupon, total.
        let check = |bill: &Value, events: &[&Raw], fee: i64, percent: i64| {
            let mut subtotal = fee;
            let mut want_lines = Vec::new();
            for (metric, q) in model::metrics(events) {
                let (b, cents) = model::rate(&metric, q);
                subtotal += cents;
                want_lines.push(r(&metric, &b.to_string(), &cents.to_string()));
                let got = num(&line(bill, &metric)["quantity"]);
                let want = q.to_f64().unwrap();
                assert!((got - want).abs() <= want.abs() * 1e-12, "{metric}: {got} vs {q}");
            }
            assert_eq!(rated(bill), want_lines);
            let discount =
                model::half_up(Decimal::from(subtotal) * Decimal::from(percent) / Decimal::from(10_000));
            assert_eq!(bill["discount"], discount.to_string(), "{bill:#}");
            assert_eq!(bill["total_cost"], (subtotal - discount).to_string(), "{bill:#}");
        };
        let bill = current(&app, &admin, "system", json!({})).await;
        check(&bill, &all, 2500, 1235);
        // One namespace: its events only, no fee, no coupon.
        let shop: Vec<&Raw> = counted.iter().filter(|e| e.ns == "shop").collect();
        check(&current(&app, &admin, "shop", json!({})).await, &shop, 0, 0);
        // A range: the first two days (from/to on the hour), no fee.
        let to = start + SignedDuration::from_hours(48);
        let early: Vec<&Raw> = counted.iter().filter(|e| e.at < to).collect();
        let ranged = current(
            &app,
            &admin,
            "system",
            json!({"from": start.to_string(), "to": to.to_string()}),
        )
        .await;
        check(&ranged, &early, 0, 1235);

        // Re-sending everything changes nothing.
        for chunk in sent.chunks(250) {
            for ns in ["system", "shop", "lab"] {
                let batch: Vec<Value> = chunk
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
                assert_eq!(resp.ok()["duplicates"], n);
            }
        }
        assert_eq!(current(&app, &admin, "system", json!({})).await, bill);
    })
    .await;
}

/// A reporter sending an absurd quantity (by bug or malice) must not make
/// the other events of its batch fail: the absurd event may be rejected or
/// counted, but the answer is a 200 with the ordinary event accepted.
#[tokio::test]
async fn an_absurd_quantity_does_not_fail_the_rest_of_a_batch() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2026-11-20T13:00:00Z"));
        let first = app
            .post(
                &events_path("system"),
                &admin,
                json!({"events": [event("huge-1", "lb_requests", "lb-a", "1e28", "2026-11-20T11:00:00Z")]}),
            )
            .await;
        assert_eq!(first.status, 200, "{}", first.body);
        // The same hourly bucket again, with an ordinary event in the batch.
        let max = Decimal::MAX.to_string();
        let second = app
            .post(
                &events_path("system"),
                &admin,
                json!({"events": [
                    event("huge-2", "lb_requests", "lb-a", max.as_str(), "2026-11-20T11:10:00Z"),
                    event("ok", "lb_requests", "lb-b", 1000, "2026-11-20T11:20:00Z"),
                ]}),
            )
            .await;
        assert_eq!(second.status, 200, "the batch is not lost: {}", second.body);
        assert_eq!(second.body["results"][1]["status"], "ACCEPTED", "{}", second.body);
    })
    .await;
}

/// Absurd quantities, each alone in its bucket, must not break the bills:
/// every report answers 200 and no total is negative. Tenant "one" has a
/// single event of 10^28 requests (10^22 billable, far more cents than an
/// i64 holds); tenant "two" has two objects of 10^28 and of the largest
/// decimal, whose sum does not fit a decimal.
#[tokio::test]
async fn absurd_quantities_do_not_break_the_reports() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, one) = app.admin("one").await;
        let (_, two) = app.admin("two").await;
        app.clock.set(ts("2026-11-20T13:00:00Z"));
        let max = Decimal::MAX.to_string();
        for (tok, id, object, q) in [
            (&one, "huge-1", "lb-a", "1e28"),
            (&two, "huge-1", "lb-a", "1e28"),
            (&two, "huge-2", "lb-b", max.as_str()),
        ] {
            let resp = app
                .post(
                    &events_path("system"),
                    tok,
                    json!({"events": [event(id, "lb_requests", object, q, "2026-11-20T11:00:00Z")]}),
                )
                .await;
            assert_eq!(resp.status, 200, "{}", resp.body);
        }
        let mut answers = Vec::new();
        for (tenant, tok) in [("one", &one), ("two", &two)] {
            for name in ["usage_details", "current_usage"] {
                let resp = app.post(&report("system", name), tok, json!({})).await;
                answers.push((tenant, name, resp.status, resp.body["total_cost"].clone()));
            }
            let summary = app.post(crate::usage_support::SUMMARY, tok, json!({})).await;
            answers.push((tenant, "usage_summary", summary.status, Value::Null));
        }
        app.clock.set(ts("2026-12-21T00:00:00Z"));
        for (tenant, tok) in [("one", &one), ("two", &two)] {
            let months = app.post(&report("system", "monthly_usage"), tok, json!({})).await;
            let amount = months.body["monthly_usage_items"][0]["amount"].clone();
            answers.push((tenant, "monthly_usage", months.status, amount));
        }
        let broken: Vec<_> = answers
            .iter()
            .filter(|(_, _, status, total)| {
                *status != 200
                    || total
                        .as_str()
                        .is_some_and(|t| t.parse::<i64>().map_or(true, |t| t < 0))
            })
            .collect();
        assert!(
            broken.is_empty(),
            "(tenant, report, status, total) that broke: {broken:?}"
        );
    })
    .await;
}
