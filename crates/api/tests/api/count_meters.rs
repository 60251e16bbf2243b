//! Count meters (catalog format 2): a meter that counts events, whatever
//! their quantities, exactly once per event id.

use serde_json::json;
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{
    METERS, catalog_with_meter, current, detail, details, event, events_path, ingest, ingest_all, line,
};

const METER: &str = r#"[[meters]]
metric_label = "api_calls"
usage_type = "API Calls"
service = "API Gateway"
unit = "call"
unit_billable = "call"
divisor = 1
aggregation = "count"

"#;

/// The built-in catalog with a count meter priced 2 ¢ per call on the
/// individual plan, 1 call free.
fn catalog() -> String {
    catalog_with_meter(
        METER,
        "[plans.prices.api_calls]\nunit_price_cents = 2\nfree_allowance = 1",
    )
}

#[tokio::test]
async fn a_count_meter_counts_each_event_once_whatever_its_quantity() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on_catalog("acme", "individual", &catalog(), "count.toml").await;
        let admin = app.token(&acme, Role::Admin).await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts("2027-01-05T00:00:00Z"));

        let meters = app.get(METERS, &admin).await;
        let m = meters.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric_label"] == "api_calls")
            .unwrap()
            .clone();
        assert_eq!((&m["aggregation"], &m["unit_price_cents"]), (&json!("count"), &json!("2")));

        // Quantities are ignored (and may be left out); a re-sent id is not
        // counted again.
        let mut no_quantity = event("c-3", "api_calls", "gw", 0, "2027-01-02T10:20:00Z");
        no_quantity.as_object_mut().unwrap().remove("quantity");
        ingest_all(
            &app,
            &platform,
            "system",
            vec![
                event("c-1", "api_calls", "gw", 999, "2027-01-02T10:00:00Z"),
                event("c-2", "api_calls", "gw", "0.5", "2027-01-02T10:10:00Z"),
                no_quantity,
                event("c-4", "api_calls", "gw", 1, "2027-01-03T08:00:00Z"),
            ],
        )
        .await;
        let again = ingest(
            &app,
            &platform,
            "system",
            vec![event("c-1", "api_calls", "gw", 999, "2027-01-02T10:00:00Z")],
        )
        .await;
        assert_eq!(again["duplicates"], 1);
        // Without a quantity, a sum meter still refuses the event.
        let refused = app
            .post(
                &events_path("system"),
                &platform,
                json!({"events": [{"id": "s-1", "metric_label": "lb_requests", "object_name": "lb", "timestamp": "2027-01-02T10:00:00Z"}]}),
            )
            .await;
        assert_eq!(refused.ok()["results"][0]["reason"], "quantity: is required");

        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(detail(&items, "system", "api_calls", "gw")["quantity"], 4.0);
        // 4 calls, 1 free, 3 × 2 ¢ = 6 ¢.
        let bill = current(&app, &admin, "system", json!({})).await;
        let calls = line(&bill, "api_calls");
        assert_eq!((&calls["quantity_billable"], &calls["amount"]), (&json!("4"), &json!("6")));
        assert_eq!(bill["total_cost"], "2506", "the 25.00 fee and 6 ¢");
        // The hourly breakdown counts 3 calls in one hour and 1 in another.
        let hours = app
            .post(
                "/api/web/namespaces/system/hourly_usage_details",
                &admin,
                json!({"query": detail(&items, "system", "api_calls", "gw")["hourly_breakdown_query"]}),
            )
            .await;
        let quantities: Vec<f64> = hours.ok()["hourly_usage_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["quantity"].as_f64().unwrap())
            .collect();
        assert_eq!(quantities, [3.0, 1.0]);
    })
    .await;
}
