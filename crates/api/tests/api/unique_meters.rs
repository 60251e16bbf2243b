//! Unique-count meters (catalog format 2): the distinct values of an event
//! property over a range, counted exactly for any range and scope, once per
//! event id, and rebuilt the same by replay.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{
    METERS, catalog_with_meter, current, detail, details, events_path, ingest, ingest_all, line,
};

const METER: &str = r#"[[meters]]
metric_label = "active_users"
usage_type = "Active Users"
service = "Identity"
unit = "user"
unit_billable = "user"
divisor = 1
aggregation = "unique_count"
property = "user_id"

"#;

/// The built-in catalog with a unique count of `user_id` priced 1.00 per
/// user on the individual plan, 2 users free.
fn catalog() -> String {
    catalog_with_meter(
        METER,
        "[plans.prices.active_users]\nunit_price_cents = 100\nfree_allowance = 2",
    )
}

/// The meters' aggregations of [`catalog`], as replay takes them.
fn aggregations() -> tollgate_domain::catalog::Aggregations {
    tollgate_domain::catalog::parse("unique.toml", &catalog())
        .unwrap()
        .aggregations()
}

fn seen(id: &str, object: &str, user: &str, at: &str) -> Value {
    json!({"id": id, "metric_label": "active_users", "object_name": object, "timestamp": at,
           "properties": {"user_id": user, "plan": "pro"}})
}

#[tokio::test]
async fn a_unique_count_counts_distinct_values_across_hours_objects_and_namespaces() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app
            .tenant_on_catalog("acme", "individual", &catalog(), "unique.toml")
            .await;
        app.namespace(&acme, "shop").await;
        let admin = app.token(&acme, Role::Admin).await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts("2027-01-05T00:00:00Z"));

        let meters = app.get(METERS, &admin).await;
        let m = meters.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric_label"] == "active_users")
            .unwrap()
            .clone();
        assert_eq!(
            (&m["aggregation"], &m["property"]),
            (&json!("unique_count"), &json!("user_id"))
        );

        // system: alice twice in one hour and again the next day, bob, on
        // two objects; shop: alice again and carol.
        ingest_all(
            &app,
            &platform,
            "system",
            vec![
                seen("u-1", "app", "alice", "2027-01-02T10:00:00Z"),
                seen("u-2", "app", "alice", "2027-01-02T10:30:00Z"),
                seen("u-3", "app", "bob", "2027-01-02T10:45:00Z"),
                seen("u-4", "app", "alice", "2027-01-03T09:00:00Z"),
                seen("u-5", "api", "bob", "2027-01-03T09:30:00Z"),
            ],
        )
        .await;
        ingest_all(
            &app,
            &platform,
            "shop",
            vec![
                seen("u-6", "app", "alice", "2027-01-02T11:00:00Z"),
                seen("u-7", "app", "carol", "2027-01-02T11:10:00Z"),
            ],
        )
        .await;
        // A re-sent id with another user is a duplicate: not counted.
        let again = ingest(
            &app,
            &platform,
            "system",
            vec![seen("u-3", "app", "dave", "2027-01-02T10:45:00Z")],
        )
        .await;
        assert_eq!(again["duplicates"], 1);
        // Without the property, the event is refused with the reason.
        let refused = app
            .post(
                &events_path("system"),
                &platform,
                json!({"events": [{"id": "u-8", "metric_label": "active_users", "object_name": "app",
                                   "timestamp": "2027-01-02T10:00:00Z", "properties": {"plan": "pro"}}]}),
            )
            .await;
        let reason = refused.ok()["results"][0]["reason"].as_str().unwrap().to_owned();
        assert!(reason.starts_with("properties.user_id: is required"), "{reason}");
        // Property values must be strings; names are checked.
        for props in [json!({"user_id": 7}), json!({"user id": "x"})] {
            let resp = app
                .post(
                    &events_path("system"),
                    &platform,
                    json!({"events": [{"id": "u-9", "metric_label": "active_users", "object_name": "app",
                                       "timestamp": "2027-01-02T10:00:00Z", "properties": props}]}),
                )
                .await;
            assert_eq!(resp.ok()["rejected"], 1, "{}", resp.body);
        }

        check(&app, &admin).await;

        // Replay rebuilds the distinct values from the stored events.
        let stats = app
            .store
            .replay(&acme.id, &aggregations(), "operator", ts("2027-01-05T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stats.events, 7);
        check(&app, &admin).await;
    })
    .await;
}

/// Once no event can reach a period any more (it ends before the latest
/// finalized period's start), its distinct values are kept per period: its
/// invoice and a report over it are unchanged, and a range inside it counts
/// the whole period's values.
#[tokio::test]
async fn old_periods_keep_their_unique_counts_per_period() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app
            .tenant_on_catalog("acme", "individual", &catalog(), "unique.toml")
            .await;
        let admin = app.token(&acme, Role::Admin).await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts("2027-01-20T00:00:00Z"));
        ingest_all(
            &app,
            &platform,
            "system",
            vec![
                seen("j-1", "app", "alice", "2027-01-02T10:00:00Z"),
                seen("j-2", "app", "bob", "2027-01-02T10:45:00Z"),
                seen("j-3", "app", "carol", "2027-01-10T09:00:00Z"),
            ],
        )
        .await;
        let jan = json!({"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"});
        let jan_2 = json!({"from": "2027-01-02T00:00:00Z", "to": "2027-01-03T00:00:00Z"});
        let users = |bill: &Value| {
            line(bill, "active_users")["quantity_billable"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(users(&current(&app, &admin, "system", jan_2.clone()).await), "2");

        // February: alice and dave. January is finalized on Feb 2 (still
        // adjustable), February on Mar 2; then January is kept per period.
        app.clock.set(ts("2027-02-10T00:00:00Z"));
        ingest_all(
            &app,
            &platform,
            "system",
            vec![
                seen("f-1", "app", "alice", "2027-02-05T10:00:00Z"),
                seen("f-2", "app", "dave", "2027-02-06T10:00:00Z"),
            ],
        )
        .await;
        app.clock.set(ts("2027-03-03T00:00:00Z"));
        app.close_periods().await;
        let invoice = crate::invoice_support::stored(&app, &acme, "inv-2027-01-0001")
            .await
            .invoice;
        let line_of = |inv: &tollgate_domain::invoice::Invoice| {
            inv.lines
                .iter()
                .find(|l| l.metric_label.as_deref() == Some("active_users"))
                .map(|l| (l.quantity, l.amount_cents))
        };
        // 3 users, 2 free: 1.00.
        assert_eq!(line_of(&invoice), Some((3.into(), 100)));

        assert_eq!(users(&current(&app, &admin, "system", jan.clone()).await), "3");
        // Inside the period: the whole period's values now.
        assert_eq!(users(&current(&app, &admin, "system", jan_2).await), "3");
        let feb = json!({"from": "2027-02-01T00:00:00Z", "to": "2027-03-01T00:00:00Z"});
        assert_eq!(users(&current(&app, &admin, "system", feb).await), "2");
        let items = details(&app, &admin, "system", jan).await;
        let hours = app
            .post(
                "/api/web/namespaces/system/hourly_usage_details",
                &admin,
                json!({"query": detail(&items, "system", "active_users", "app")["hourly_breakdown_query"]}),
            )
            .await;
        assert_eq!(
            hours.ok()["hourly_usage_items"],
            json!([{"start_timestamp": "2027-01-01T00:00:00Z", "end_timestamp": "2027-01-01T01:00:00Z",
                    "quantity": 3.0, "unit_name": "user", "deployment": "", "container": ""}])
        );
        // Closing again changes nothing; replay rebuilds the hours, and the
        // tenant's next period close keeps them per period again.
        app.close_periods().await;
        app.store
            .replay(&acme.id, &aggregations(), "operator", ts("2027-03-03T00:00:00Z"))
            .await
            .unwrap();
        let jan_2 = json!({"from": "2027-01-02T00:00:00Z", "to": "2027-01-03T00:00:00Z"});
        assert_eq!(users(&current(&app, &admin, "system", jan_2.clone()).await), "2");
        // (Period close visits the tenant again when its next period ends.)
        app.clock.set(ts("2027-04-03T00:00:00Z"));
        app.close_periods().await;
        assert_eq!(users(&current(&app, &admin, "system", jan_2).await), "3");
    })
    .await;
}

async fn check(app: &TestApp, admin: &str) {
    // Per object: app saw alice and bob in system, alice and carol in
    // shop; api saw bob.
    let items = details(app, admin, "system", json!({})).await;
    assert_eq!(detail(&items, "system", "active_users", "app")["quantity"], 2.0);
    assert_eq!(detail(&items, "system", "active_users", "api")["quantity"], 1.0);
    assert_eq!(detail(&items, "shop", "active_users", "app")["quantity"], 2.0);
    // The tenant: alice, bob, carol = 3 users, 2 free, 1.00.
    let bill = current(app, admin, "system", json!({})).await;
    let users = line(&bill, "active_users");
    assert_eq!(
        (&users["quantity_billable"], &users["amount"]),
        (&json!("3"), &json!("100"))
    );
    // One namespace: shop saw alice and carol.
    let shop = current(app, admin, "shop", json!({})).await;
    assert_eq!(line(&shop, "active_users")["quantity_billable"], "2");
    // A range: January 3 only: alice and bob.
    let day = current(
        app,
        admin,
        "system",
        json!({"from": "2027-01-03T00:00:00Z", "to": "2027-01-04T00:00:00Z"}),
    )
    .await;
    assert_eq!(line(&day, "active_users")["quantity_billable"], "2");
    // Hour by hour for system/app: 10:00 alice and bob, next day 09:00 alice.
    let hours = app
        .post(
            "/api/web/namespaces/system/hourly_usage_details",
            admin,
            json!({"query": detail(&items, "system", "active_users", "app")["hourly_breakdown_query"]}),
        )
        .await;
    let got: Vec<(String, f64)> = hours.ok()["hourly_usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["start_timestamp"].as_str().unwrap().to_owned(),
                h["quantity"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2027-01-02T10:00:00Z".to_owned(), 2.0),
            ("2027-01-03T09:00:00Z".to_owned(), 1.0)
        ]
    );
}
