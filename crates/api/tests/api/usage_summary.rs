//! `POST /api/data/namespaces/system/billing/usage_summary`: usage per meter
//! over a window (default: the last 6 hours) with the billing value.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{SUMMARY, event, event_dc, ingest_all, num, unix};

/// acme (created 2026-11-20T10:00Z, namespace shop) at 20:00 the same day:
///
/// | metric           | ns/object       | qty          | at    |
/// |------------------|-----------------|--------------|-------|
/// | lb_requests      | system/lb-a     | 1000         | 12:10 |
/// | lb_requests      | shop/lb-b       | 2000         | 15:30 |
/// | lb_requests      | system/lb-a     | 500          | 19:10 |
/// | lb_data_transfer | shop/lb-b       | 2.5 GB       | 16:00 |
/// | site_vcpus       | shop/site-1     | 4 (d1/c1)    | 15:00 |
/// | site_vcpus       | shop/site-1     | 3 (d1/c2)    | 15:20 |
/// | site_vcpus       | shop/site-1     | 5 (d1/c1)    | 17:00 |
/// | site_vcpus       | shop/site-2     | 2            | 16:00 |
async fn an_afternoon_of_usage(app: &TestApp) -> String {
    let (acme, admin) = app.admin("acme").await;
    app.namespace(&acme, "shop").await;
    app.clock.set(ts("2026-11-20T20:00:00Z"));
    let at = |hm: &str| format!("2026-11-20T{hm}:00Z");
    ingest_all(
        app,
        &admin,
        "system",
        vec![
            event("a1", "lb_requests", "lb-a", 1000, at("12:10")),
            event("a3", "lb_requests", "lb-a", 500, at("19:10")),
        ],
    )
    .await;
    ingest_all(
        app,
        &admin,
        "shop",
        vec![
            event("a2", "lb_requests", "lb-b", 2000, at("15:30")),
            event("b1", "lb_data_transfer", "lb-b", 2_500_000_000_i64, at("16:00")),
            event_dc("c1", "site_vcpus", "site-1", 4, at("15:00"), "d1", "c1"),
            event_dc("c2", "site_vcpus", "site-1", 3, at("15:20"), "d1", "c2"),
            event_dc("c3", "site_vcpus", "site-1", 5, at("17:00"), "d1", "c1"),
            event("c4", "site_vcpus", "site-2", 2, at("16:00")),
        ],
    )
    .await;
    admin
}

/// The items as (name, usage value, billing value), checking the timestamp.
#[track_caller]
fn summary(resp: &Value, end: &str) -> Vec<(String, String, String)> {
    resp["usage_summary_items"]
        .as_array()
        .expect("usage_summary_items is a list")
        .iter()
        .map(|i| {
            assert_eq!(
                num(&i["usage_metric_data"]["metric_value"]["timestamp"]),
                unix(end) as f64,
                "the window's end in unix seconds: {i}"
            );
            (
                i["name"].as_str().unwrap().to_owned(),
                i["usage_metric_data"]["metric_value"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                i["billing_metric_data"]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn s(name: &str, usage: &str, billing: &str) -> (String, String, String) {
    (name.to_owned(), usage.to_owned(), billing.to_owned())
}

#[tokio::test]
async fn the_default_window_is_the_last_six_hours() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = an_afternoon_of_usage(&app).await;
        let resp = app.post(SUMMARY, &admin, json!({})).await;
        crate::snapshot!("usage_summary_default", resp.ok());
        // 14:00 to 20:00: not the 1000 requests of 12:10.
        assert_eq!(
            summary(resp.ok(), "2026-11-20T20:00:00Z"),
            [
                // 2000 + 500 requests = 0.0025 million.
                s("HTTP Load Balancer Requests", "2500", "0.0025"),
                s("Load Balancer Data Transfer", "2500000000", "2.5"),
                // site-1 peaks at 15:00 with 4 + 3; site-2 has 2.
                s("Customer Edge vCPUs", "9", "9"),
            ]
        );
        let first = &resp.ok()["usage_summary_items"][0];
        assert_eq!(first["service"], "Load Balancing");
        assert_eq!(first["usage_metric_data"]["unit"], "request");
        assert_eq!(first["billing_metric_data"]["unit"], "million requests");
        // Read-only tokens may ask; platform tokens may not.
        let acme = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        let monitor = app.token(&acme, Role::Monitor).await;
        assert_eq!(app.post(SUMMARY, &monitor, json!({})).await.ok(), resp.ok());
        let platform = app.token(&acme, Role::Platform).await;
        app.post(SUMMARY, &platform, json!({})).await.error(403, 7);
    })
    .await;
}

#[tokio::test]
async fn a_window_is_given_by_its_start_its_end_or_both() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = an_afternoon_of_usage(&app).await;

        // Only the start: six hours from it, 12:00 to 18:00.
        let resp = app
            .post(SUMMARY, &admin, json!({"start_time": "2026-11-20T12:00:00Z"}))
            .await;
        assert_eq!(
            summary(resp.ok(), "2026-11-20T18:00:00Z"),
            [
                s("HTTP Load Balancer Requests", "3000", "0.003"),
                s("Load Balancer Data Transfer", "2500000000", "2.5"),
                s("Customer Edge vCPUs", "9", "9"),
            ]
        );
        // Only the end: six hours up to it, 10:00 to 16:00 (16:00 excluded).
        let resp = app
            .post(SUMMARY, &admin, json!({"end_time": "2026-11-20T16:00:00Z"}))
            .await;
        assert_eq!(
            summary(resp.ok(), "2026-11-20T16:00:00Z"),
            [
                s("HTTP Load Balancer Requests", "3000", "0.003"),
                s("Customer Edge vCPUs", "7", "7"),
            ]
        );
        // Both, as unix seconds in a number and in a string: 12:00 to 13:00.
        let resp = app
            .post(
                SUMMARY,
                &admin,
                json!({"start_time": unix("2026-11-20T12:00:00Z"),
                       "end_time": unix("2026-11-20T13:00:00Z").to_string()}),
            )
            .await;
        assert_eq!(
            summary(resp.ok(), "2026-11-20T13:00:00Z"),
            [s("HTTP Load Balancer Requests", "1000", "0.001")]
        );
        // RFC 3339 with an offset: 17:00 to 20:00 UTC.
        let resp = app
            .post(
                SUMMARY,
                &admin,
                json!({"start_time": "2026-11-20T18:00:00+01:00", "end_time": "2026-11-20T21:00:00+01:00"}),
            )
            .await;
        assert_eq!(
            summary(resp.ok(), "2026-11-20T20:00:00Z"),
            [
                s("HTTP Load Balancer Requests", "500", "0.0005"),
                s("Customer Edge vCPUs", "5", "5"),
            ]
        );
        // A window without usage has no items.
        let resp = app
            .post(
                SUMMARY,
                &admin,
                json!({"start_time": "2026-11-20T00:00:00Z", "end_time": "2026-11-20T06:00:00Z"}),
            )
            .await;
        assert_eq!(resp.ok()["usage_summary_items"], json!([]));
        // Empty strings are absent fields.
        let resp = app
            .post(SUMMARY, &admin, json!({"start_time": "", "end_time": ""}))
            .await;
        assert_eq!(
            summary(resp.ok(), "2026-11-20T20:00:00Z")[0],
            s("HTTP Load Balancer Requests", "2500", "0.0025")
        );
    })
    .await;
}

#[tokio::test]
async fn bad_windows_are_refused() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = an_afternoon_of_usage(&app).await;
        let backwards = app
            .post(
                SUMMARY,
                &admin,
                json!({"start_time": "2026-11-20T18:00:00Z", "end_time": "2026-11-20T12:00:00Z"}),
            )
            .await;
        assert_eq!(
            backwards.error(400, 3),
            "start_time, end_time: 2026-11-20T18:00:00Z is after 2026-11-20T12:00:00Z"
        );
        let bad = app
            .post(SUMMARY, &admin, json!({"start_time": "yesterday"}))
            .await;
        assert_eq!(
            bad.error(400, 3),
            "start_time: \"yesterday\" is not an RFC 3339 time or unix seconds"
        );
        let bad = app
            .post(SUMMARY, &admin, json!({"end_time": "2026-11-20 25:00"}))
            .await;
        assert!(bad.error(400, 3).starts_with("end_time: "), "{}", bad.body);
        app.post(SUMMARY, &admin, json!({"start_time": true}))
            .await
            .error(400, 3);
        // An unknown field is ignored: the default window answers.
        let plain = app.post(SUMMARY, &admin, json!({})).await;
        let extra = app.post(SUMMARY, &admin, json!({"window": "1h"})).await;
        assert_eq!(extra.ok(), plain.ok());
        let long = app
            .post(
                SUMMARY,
                &admin,
                json!({"start_time": "2025-01-01T00:00:00Z", "end_time": "2026-11-20T00:00:00Z"}),
            )
            .await;
        long.error(400, 3);
    })
    .await;
}

/// A usage value is an exact decimal written like the billing value: without
/// trailing zeros, however the quantity was split across objects.
#[tokio::test]
async fn usage_values_are_written_without_trailing_zeros() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.clock.set(ts("2026-11-20T20:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("h1", "lb_hours", "lb-a", "1800.5", "2026-11-20T14:30:00Z"),
                event("h2", "lb_hours", "lb-b", "1799.5", "2026-11-20T14:40:00Z"),
                event("r1", "lb_requests", "lb-a", "1.5", "2026-11-20T15:00:00Z"),
                event("r2", "lb_requests", "lb-b", "2.5", "2026-11-20T15:00:00Z"),
            ],
        )
        .await;
        let resp = app.post(SUMMARY, &admin, json!({})).await;
        // lb_hours: 1800.5 + 1799.5 = 3600 seconds = 1 hour; lb_requests: 1.5 + 2.5 = 4.
        assert_eq!(
            summary(resp.ok(), "2026-11-20T20:00:00Z"),
            [
                s("HTTP Load Balancer Requests", "4", "0.000004"),
                s("Load Balancer Hours", "3600", "1"),
            ]
        );
    })
    .await;
}
