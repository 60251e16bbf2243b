//! What every invoice keeps, over months of varied usage and a coupon: its
//! total is its lines' sum minus the discount; its usage lines are what
//! `current_usage` reports for its period; `monthly_usage` and the pending
//! invoice agree with it.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::invoice::LineKind;
use tollgate_domain::rating::Discount;
use tollgate_store::CouponDef;
use tollgate_testkit::each_backend;

use crate::invoice_support::{billed_tenant, list};
use crate::support::{TestApp, ts};
use crate::usage_support::{Lcg, current, event, fee_lines, ingest_all, month, monthly};

/// Metrics of the individual plan and the largest quantity of one event (in
/// the meter's unit), so that some months cross the free allowances.
const METRICS: [(&str, u64); 6] = [
    ("lb_requests", 4_000_000),
    ("lb_data_transfer", 40_000_000_000),
    ("waap_requests", 900_000),
    ("cdn_data_transfer", 3_000_000_000),
    ("synthetic_checks", 12_000),
    ("dns_queries", 700_000),
];

const MONTHS: [(&str, &str); 5] = [
    ("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
    ("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"),
    ("2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z"),
    ("2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z"),
    ("2027-05-01T00:00:00Z", "2027-06-01T00:00:00Z"),
];

/// metric → (quantity_billable, amount) of the usage lines of a `current_usage` response.
fn usage_lines(bill: &Value) -> BTreeMap<String, (String, String)> {
    bill["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["fixed"] == false)
        .map(|i| {
            (
                i["metric_labels"][0].as_str().unwrap().to_owned(),
                (
                    i["quantity_billable"].as_str().unwrap().to_owned(),
                    i["amount"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn invoices_add_up_and_agree_with_current_and_monthly_usage() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (initech, admin) = billed_tenant(
            &app,
            "initech",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        // 10 % off the periods overlapping March and April.
        let def = CouponDef {
            code: "SPRING".into(),
            title: "Spring".into(),
            discount: Discount::Percent(1000),
        };
        let now = ts("2027-01-01T00:00:00Z");
        app.store.create_coupon(&def, "operator", now).await.unwrap();
        app.store
            .apply_coupon(
                &initech.id,
                "SPRING",
                ts("2027-03-01T00:00:00Z"),
                Some(ts("2027-05-01T00:00:00Z")),
                "operator",
                now,
            )
            .await
            .unwrap();

        let mut rng = Lcg::new(20_270_101);
        for (m, (start, end)) in MONTHS.iter().enumerate() {
            let (start, end) = (ts(start), ts(end));
            let span = end.duration_since(start).as_secs() - 1200;
            let mut events = Vec::new();
            for k in 0..14 {
                let (metric, max) = *rng.pick(&METRICS);
                // The first and last events sit in the period's first and last hours.
                let at = match k {
                    0 => start + SignedDuration::from_mins(10),
                    1 => end - SignedDuration::from_mins(10),
                    _ => {
                        start
                            + SignedDuration::from_secs(600 + i64::try_from(rng.below(span as u64)).unwrap())
                    }
                };
                let quantity = 1 + rng.below(max);
                events.push(event(
                    &format!("m{m}-e{k}"),
                    metric,
                    "obj",
                    json!(quantity.to_string()),
                    at.to_string(),
                ));
            }
            app.clock.set(end - SignedDuration::from_mins(5));
            ingest_all(&app, &admin, "system", events).await;

            // The current period's bill is its pending invoice.
            let bill = current(&app, &admin, "system", json!({})).await;
            let pending = list(&app, &admin).await[0].clone();
            assert_eq!(pending.period_start, start.to_string());
            assert_eq!(
                bill["total_cost"].as_str().unwrap(),
                pending.amount,
                "month {m}: {bill:#}"
            );

            app.clock.set(end + SignedDuration::from_hours(24));
            assert_eq!(app.close_periods().await, 1);
            assert_eq!(app.charge().await, 1);
            let after = list(&app, &admin).await;
            let finalized = after
                .iter()
                .find(|e| e.period_start == start.to_string())
                .unwrap();
            assert_eq!(
                finalized.amount, pending.amount,
                "month {m}: finalized as it was pending"
            );
        }

        let invoices = app.store.invoices(&initech.id).await.unwrap();
        assert_eq!(invoices.len(), MONTHS.len());
        let listed = list(&app, &admin).await;
        for s in &invoices {
            let inv = &s.invoice;
            inv.check().unwrap_or_else(|e| panic!("{e}"));
            let subtotal: i64 = inv.lines.iter().map(|l| l.amount_cents).sum();
            assert_eq!(inv.totals.subtotal, subtotal, "{}", inv.name);
            assert_eq!(
                inv.totals.total,
                inv.totals.subtotal - inv.totals.discount,
                "{}",
                inv.name
            );
            let discounted = ["inv-2027-03-0003", "inv-2027-04-0004"].contains(&inv.name.as_str());
            // 10 %, rounded half up, of the whole subtotal.
            let discount = if discounted { (subtotal + 5) / 10 } else { 0 };
            assert_eq!(inv.totals.discount, discount, "{}", inv.name);
            assert_eq!(inv.coupons.len(), usize::from(discounted), "{}", inv.name);
            let fee: i64 = inv
                .lines
                .iter()
                .filter(|l| l.kind == LineKind::Fee)
                .map(|l| l.amount_cents)
                .sum();
            assert_eq!(fee, 2500, "{}", inv.name);
            assert!(inv.lines.iter().all(|l| l.kind != LineKind::Adjustment));
            let e = listed.iter().find(|e| e.name == inv.name).unwrap();
            assert_eq!(e.amount, inv.totals.total.to_string());

            // current_usage over the invoice's period rates the same usage lines.
            let bill = current(
                &app,
                &admin,
                "system",
                json!({"from": inv.period_start.to_string(), "to": inv.period_end.to_string()}),
            )
            .await;
            let invoiced: BTreeMap<String, (String, String)> = inv
                .lines
                .iter()
                .filter(|l| l.kind == LineKind::Usage)
                .map(|l| {
                    (
                        l.metric_label.clone().unwrap(),
                        (l.quantity.to_string(), l.amount_cents.to_string()),
                    )
                })
                .collect();
            assert_eq!(usage_lines(&bill), invoiced, "{}", inv.name);
            let usage: i64 = inv
                .lines
                .iter()
                .filter(|l| l.kind == LineKind::Usage)
                .map(|l| l.amount_cents)
                .sum();
            // The range is exactly the period: if the report shows the fee,
            // it is the invoice's, and the whole bill is the invoice's;
            // without it, the usage alone (and no coupon to compare) is.
            let reported_fee: i64 = fee_lines(&bill)
                .iter()
                .map(|f| f["amount"].as_str().unwrap().parse::<i64>().unwrap())
                .sum();
            let total_cost = bill["total_cost"].as_str().unwrap().to_owned();
            if reported_fee != 0 {
                assert_eq!(reported_fee, fee, "{}: {bill:#}", inv.name);
                assert_eq!(total_cost, inv.totals.total.to_string(), "{}: {bill:#}", inv.name);
            } else if !discounted {
                assert_eq!(
                    total_cost,
                    (inv.totals.total - fee).to_string(),
                    "{}: {bill:#}",
                    inv.name
                );
            }
            let sum: i64 = usage_lines(&bill)
                .values()
                .map(|(_, a)| a.parse::<i64>().unwrap())
                .sum();
            assert_eq!(sum, usage, "{}", inv.name);
        }

        // monthly_usage: one line per finalized period, its invoice's total.
        let months: Vec<_> = listed
            .iter()
            .filter(|e| !e.active)
            .map(|e| month(&e.period_start, &e.period_end, &e.amount))
            .collect();
        assert_eq!(months.len(), MONTHS.len());
        assert_eq!(monthly(&app, &admin).await, months);
        // Some months cost more than the fee, so the usage was rated.
        assert!(invoices.iter().any(|s| s.invoice.totals.subtotal > 2500));
        let charged: i64 = app.provider.successful_charges().iter().map(|(_, a)| a).sum();
        assert_eq!(
            charged,
            invoices.iter().map(|s| s.invoice.totals.total).sum::<i64>()
        );
    })
    .await;
}
