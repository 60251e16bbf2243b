//! `usage_details` and `hourly_usage_details`: lines per namespace × metric ×
//! object over a range, the signed `hourly_breakdown_query`, and the hourly
//! buckets behind a line.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{current, detail, details, event, event_dc, ingest_all, line, num, report};

const TAMPERED: &str = "query: not an hourly_breakdown_query from usage_details (malformed or altered)";

/// The first billing period of a tenant created at the harness's start.
const PERIOD: (&str, &str) = ("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z");

fn snapshot_redacted(name: &str, value: &Value) {
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!(name, value, { ".**.hourly_breakdown_query" => "[query]" });
    });
}

/// acme with namespaces shop and lab, an admin token, and a day of usage:
///
/// | ns     | metric            | object | qty | at    | deployment/container |
/// |--------|-------------------|--------|-----|-------|----------------------|
/// | shop   | lb_requests       | lb-a   | 100 | 10:10 | d1/c1                |
/// | shop   | lb_requests       | lb-a   | 250 | 11:20 | d1/c2                |
/// | shop   | lb_requests       | lb-a   |  50 | 11:40 | d2/c1                |
/// | shop   | lb_requests       | lb-b   |  40 | 12:00 |                      |
/// | lab    | lb_requests       | lb-a   |   7 | 13:00 |                      |
/// | shop   | cdn_data_transfer | cdn-1  | 1e3 | 14:00 |                      |
/// | system | synthetic_checks  | chk-1  |   3 | 15:00 |                      |
async fn a_day_of_usage(app: &TestApp) -> String {
    let (acme, admin) = app.admin("acme").await;
    app.namespace(&acme, "shop").await;
    app.namespace(&acme, "lab").await;
    let platform = app.token(&acme, Role::Platform).await;
    app.clock.set(ts("2026-11-21T00:00:00Z"));
    let day = |hm: &str| format!("2026-11-20T{hm}:00Z");
    ingest_all(
        app,
        &platform,
        "shop",
        vec![
            // Out of order on purpose.
            event("s5", "cdn_data_transfer", "cdn-1", 1000, day("14:00")),
            event_dc("s2", "lb_requests", "lb-a", 250, day("11:20"), "d1", "c2"),
            event_dc("s1", "lb_requests", "lb-a", 100, day("10:10"), "d1", "c1"),
            event("s4", "lb_requests", "lb-b", 40, day("12:00")),
            event_dc("s3", "lb_requests", "lb-a", 50, day("11:40"), "d2", "c1"),
        ],
    )
    .await;
    ingest_all(
        app,
        &platform,
        "lab",
        vec![event("l1", "lb_requests", "lb-a", 7, day("13:00"))],
    )
    .await;
    ingest_all(
        app,
        &platform,
        "system",
        vec![event("y1", "synthetic_checks", "chk-1", 3, day("15:00"))],
    )
    .await;
    admin
}

/// The hourly items of a `usage_details` line as (start, deployment, container, quantity).
async fn hours_of(app: &TestApp, tok: &str, ns: &str, item: &Value) -> Vec<(String, String, String, f64)> {
    let resp = app
        .post(
            &report(ns, "hourly_usage_details"),
            tok,
            json!({"query": item["hourly_breakdown_query"]}),
        )
        .await;
    resp.ok()["hourly_usage_items"]
        .as_array()
        .expect("hourly_usage_items is a list")
        .iter()
        .map(|h| {
            let start = ts(h["start_timestamp"].as_str().unwrap());
            let end = ts(h["end_timestamp"].as_str().unwrap());
            assert_eq!(end - SignedDuration::from_hours(1), start, "one hour: {h}");
            assert_eq!(start.as_second() % 3600, 0, "on the hour: {h}");
            assert_eq!(h["unit_name"], item["unit_name"], "{h}");
            (
                start.to_string(),
                h["deployment"].as_str().unwrap().to_owned(),
                h["container"].as_str().unwrap().to_owned(),
                num(&h["quantity"]),
            )
        })
        .collect()
}

fn hour(start: &str, d: &str, c: &str, q: f64) -> (String, String, String, f64) {
    (start.to_owned(), d.to_owned(), c.to_owned(), q)
}

#[tokio::test]
async fn usage_details_has_a_line_per_namespace_metric_and_object() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = a_day_of_usage(&app).await;

        let resp = app
            .post(&report("system", "usage_details"), &admin, json!({}))
            .await;
        snapshot_redacted("usage_details_system", resp.ok());
        let items = resp.ok()["usage_items"].as_array().unwrap();
        let lines: Vec<(&str, &str, &str, f64)> = items
            .iter()
            .map(|i| {
                (
                    i["namespace"].as_str().unwrap(),
                    i["metric_label"].as_str().unwrap(),
                    i["object_name"].as_str().unwrap(),
                    num(&i["quantity"]),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("lab", "lb_requests", "lb-a", 7.0),
                ("shop", "cdn_data_transfer", "cdn-1", 1000.0),
                ("shop", "lb_requests", "lb-a", 400.0),
                ("shop", "lb_requests", "lb-b", 40.0),
                ("system", "synthetic_checks", "chk-1", 3.0),
            ],
            "sorted by namespace, metric, object; lb-a of lab and of shop are two objects"
        );
        for i in items {
            // Without from/to: the current billing period.
            assert_eq!(
                (
                    i["start_timestamp"].as_str().unwrap(),
                    i["end_timestamp"].as_str().unwrap()
                ),
                PERIOD
            );
            assert!(!i["hourly_breakdown_query"].as_str().unwrap().is_empty(), "{i}");
            assert_eq!(i["hourly_breakdown"], json!([]), "{i}");
        }
        let lb = detail(items, "shop", "lb_requests", "lb-a");
        assert_eq!(
            (&lb["usage_type"], &lb["unit_name"]),
            (&json!("HTTP Load Balancer Requests"), &json!("request"))
        );
        let cdn = detail(items, "shop", "cdn_data_transfer", "cdn-1");
        assert_eq!(
            (&cdn["usage_type"], &cdn["unit_name"]),
            (&json!("CDN Data Transfer"), &json!("byte"))
        );

        // A namespace sees its own lines only; the lines are the same.
        let shop = details(&app, &admin, "shop", json!({})).await;
        let shop_items: Vec<&Value> = items.iter().filter(|i| i["namespace"] == "shop").collect();
        assert_eq!(shop.iter().collect::<Vec<_>>(), shop_items);
        let lab = details(&app, &admin, "lab", json!({"namespace": "lab"})).await;
        assert_eq!(lab.len(), 1);
        assert_eq!(num(&lab[0]["quantity"]), 7.0);
        // A monitor token reads reports too.
        let monitor = app
            .token(
                &app.store.tenant_by_name("acme").await.unwrap().unwrap(),
                Role::Monitor,
            )
            .await;
        assert_eq!(details(&app, &monitor, "shop", json!({})).await.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn usage_details_covers_the_requested_range() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = a_day_of_usage(&app).await;

        let (from, to) = ("2026-11-20T11:00:00Z", "2026-11-20T13:00:00Z");
        let items = details(&app, &admin, "system", json!({"from": from, "to": to})).await;
        let lines: Vec<(&str, &str, f64)> = items
            .iter()
            .map(|i| {
                assert_eq!(i["start_timestamp"], from);
                assert_eq!(i["end_timestamp"], to);
                (
                    i["namespace"].as_str().unwrap(),
                    i["object_name"].as_str().unwrap(),
                    num(&i["quantity"]),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [("shop", "lb-a", 300.0), ("shop", "lb-b", 40.0)],
            "11:00 to 13:00 holds 250 + 50 of lb-a and the 40 of lb-b; 13:00 is excluded"
        );
        // The hourly items of a ranged line stay in the range.
        let lb_a = detail(&items, "shop", "lb_requests", "lb-a");
        assert_eq!(
            hours_of(&app, &admin, "system", lb_a).await,
            [
                hour("2026-11-20T11:00:00Z", "d1", "c2", 250.0),
                hour("2026-11-20T11:00:00Z", "d2", "c1", 50.0)
            ]
        );

        // Only `from`: up to the end of the current period.
        let items = details(&app, &admin, "system", json!({"from": "2026-11-20T14:00:00Z"})).await;
        assert_eq!(items.len(), 2, "cdn at 14:00 and synthetic checks at 15:00");
        assert_eq!(items[0]["end_timestamp"], PERIOD.1);
        // Only `to`: from the start of the current period.
        let items = details(&app, &admin, "system", json!({"to": "2026-11-20T11:00:00Z"})).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["start_timestamp"], PERIOD.0);
        assert_eq!(num(&items[0]["quantity"]), 100.0);
        // Empty strings are absent fields.
        let items = details(&app, &admin, "system", json!({"from": "", "to": ""})).await;
        assert_eq!(items.len(), 5);
        // Nothing in the range: no lines.
        let items = details(
            &app,
            &admin,
            "system",
            json!({"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}),
        )
        .await;
        assert_eq!(items, Vec::<Value>::new());
    })
    .await;
}

#[tokio::test]
async fn a_max_meter_reports_the_peak_hour_with_deployments_and_containers_added_up() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.clock.set(ts("2026-11-20T16:00:00Z"));
        let at = |hm: &str| format!("2026-11-20T{hm}:00Z");
        let vcpus = |id: &str, object: &str, q: i64, hm: &str, d: &str, c: &str| {
            event_dc(id, "site_vcpus", object, q, at(hm), d, c)
        };
        // Hour 12 first, then hour 10, then a late sample of hour 10.
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![
                vcpus("v5", "site-1", 2, "12:10", "d1", "c1"),
                vcpus("v6", "site-1", 5, "12:20", "d2", "c1"),
                vcpus("v7", "site-2", 3, "11:00", "d1", "c1"),
            ],
        )
        .await;
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![
                vcpus("v1", "site-1", 4, "10:05", "d1", "c1"),
                vcpus("v3", "site-1", 3, "10:30", "d1", "c2"),
                vcpus("v4", "site-1", 8, "11:10", "d1", "c1"),
            ],
        )
        .await;
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![vcpus("v2", "site-1", 6, "10:50", "d1", "c1")],
        )
        .await;

        // site-1 per hour: 10:00 → max(4, 6) of d1/c1 + 3 of d1/c2 = 9;
        // 11:00 → 8; 12:00 → 2 + 5 = 7. The peak hour is 10:00, 9 vCPUs
        // (not 8, the largest sample, nor 13, every sample of 10:00 added up).
        let items = details(&app, &admin, "shop", json!({})).await;
        let site1 = detail(&items, "shop", "site_vcpus", "site-1");
        assert_eq!(num(&site1["quantity"]), 9.0);
        assert_eq!(site1["usage_type"], "Customer Edge vCPUs");
        assert_eq!(site1["unit_name"], "vCPU");
        assert_eq!(
            num(&detail(&items, "shop", "site_vcpus", "site-2")["quantity"]),
            3.0
        );
        assert_eq!(
            hours_of(&app, &admin, "shop", site1).await,
            [
                hour("2026-11-20T10:00:00Z", "d1", "c1", 6.0),
                hour("2026-11-20T10:00:00Z", "d1", "c2", 3.0),
                hour("2026-11-20T11:00:00Z", "d1", "c1", 8.0),
                hour("2026-11-20T12:00:00Z", "d1", "c1", 2.0),
                hour("2026-11-20T12:00:00Z", "d2", "c1", 5.0),
            ]
        );
        // A range without the 10:00 hour peaks at 11:00.
        let later = details(
            &app,
            &admin,
            "shop",
            json!({"from": "2026-11-20T11:00:00Z", "to": "2026-11-20T16:00:00Z"}),
        )
        .await;
        assert_eq!(
            num(&detail(&later, "shop", "site_vcpus", "site-1")["quantity"]),
            8.0
        );
        // The metric's quantity in current_usage is the objects' peaks added up.
        let bill = current(&app, &admin, "system", json!({})).await;
        let line = line(&bill, "site_vcpus");
        assert_eq!(num(&line["quantity"]), 12.0);
        assert_eq!(line["quantity_billable"], "12");
        assert_eq!(line["amount"], "0", "individual does not price site vCPUs");
    })
    .await;
}

#[tokio::test]
async fn hourly_items_add_up_to_their_line_with_late_and_out_of_order_events() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = a_day_of_usage(&app).await;
        // A day later, late events arrive for the first hours (within the period).
        app.clock.advance(SignedDuration::from_hours(24));
        ingest_all(
            &app,
            &admin,
            "shop",
            vec![
                event_dc(
                    "late-2",
                    "lb_requests",
                    "lb-a",
                    20,
                    "2026-11-20T11:59:59Z",
                    "d2",
                    "c1",
                ),
                event_dc(
                    "late-1",
                    "lb_requests",
                    "lb-a",
                    5,
                    "2026-11-20T10:45:00Z",
                    "d1",
                    "c1",
                ),
                event_dc(
                    "new",
                    "lb_requests",
                    "lb-a",
                    1,
                    "2026-11-21T23:00:00Z",
                    "d1",
                    "c1",
                ),
            ],
        )
        .await;

        let items = details(&app, &admin, "system", json!({})).await;
        let lb_a = detail(&items, "shop", "lb_requests", "lb-a");
        assert_eq!(num(&lb_a["quantity"]), 426.0, "400 + 20 + 5 + 1");
        let hours = hours_of(&app, &admin, "system", lb_a).await;
        assert_eq!(
            hours,
            [
                hour("2026-11-20T10:00:00Z", "d1", "c1", 105.0),
                hour("2026-11-20T11:00:00Z", "d1", "c2", 250.0),
                hour("2026-11-20T11:00:00Z", "d2", "c1", 70.0),
                hour("2026-11-21T23:00:00Z", "d1", "c1", 1.0),
            ]
        );
        let sum: f64 = hours.iter().map(|h| h.3).sum();
        assert_eq!(sum, num(&lb_a["quantity"]));
        // Every line's hourly items add up to it (all sum meters here).
        for item in &items {
            let sum: f64 = hours_of(&app, &admin, "system", item)
                .await
                .iter()
                .map(|h| h.3)
                .sum();
            assert_eq!(sum, num(&item["quantity"]), "{item}");
        }
        // A line of shop's own report works in shop and in system.
        let shop = details(&app, &admin, "shop", json!({})).await;
        let shop_lb_a = detail(&shop, "shop", "lb_requests", "lb-a");
        assert_eq!(hours_of(&app, &admin, "shop", shop_lb_a).await, hours);
        assert_eq!(hours_of(&app, &admin, "system", shop_lb_a).await, hours);
    })
    .await;
}

#[tokio::test]
async fn hourly_breakdown_queries_cannot_be_altered_or_used_elsewhere() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = a_day_of_usage(&app).await;
        let (_, bravo) = app.admin("bravo").await;
        let hourly = report("system", "hourly_usage_details");
        let items = details(&app, &admin, "system", json!({})).await;
        let lb_a = detail(&items, "shop", "lb_requests", "lb-a");
        let query = lb_a["hourly_breakdown_query"].as_str().unwrap().to_owned();
        app.post(&hourly, &admin, json!({"query": query})).await.ok();

        // One character changed anywhere.
        for at in [
            0,
            7,
            query.len() / 3,
            query.len() / 2,
            query.len() - 20,
            query.len() - 1,
        ] {
            let mut bytes = query.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let resp = app.post(&hourly, &admin, json!({"query": tampered})).await;
            assert_eq!(resp.error(400, 3), TAMPERED, "changed at {at}");
        }
        // A well-formed token with another range (a forged signature).
        let mut decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&query).unwrap()).unwrap();
        decoded["from"] = json!(0);
        let forged = URL_SAFE_NO_PAD.encode(decoded.to_string());
        app.post(&hourly, &admin, json!({"query": forged}))
            .await
            .error(400, 3);
        for garbage in ["not base64!", "e30", "%%%"] {
            app.post(&hourly, &admin, json!({"query": garbage}))
                .await
                .error(400, 3);
        }
        // Missing or empty.
        for body in [json!({}), json!({"query": ""}), json!({"namespace": "system"})] {
            let resp = app.post(&hourly, &admin, body).await;
            assert_eq!(resp.error(400, 3), "query: is required");
        }
        // Another tenant cannot use it.
        let resp = app.post(&hourly, &bravo, json!({"query": query})).await;
        assert_eq!(resp.error(403, 7), "query: belongs to another tenant");
        // Nor another namespace of the same tenant.
        let lab_line = detail(&items, "lab", "lb_requests", "lb-a");
        let resp = app
            .post(
                &report("shop", "hourly_usage_details"),
                &admin,
                json!({"query": lab_line["hourly_breakdown_query"]}),
            )
            .await;
        resp.error(403, 7);
        // A platform token reads no reports.
        let acme = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        let platform = app.token(&acme, Role::Platform).await;
        app.post(&hourly, &platform, json!({"query": query}))
            .await
            .error(403, 7);
        app.post(&report("system", "usage_details"), &platform, json!({}))
            .await
            .error(403, 7);
    })
    .await;
}

#[tokio::test]
async fn report_ranges_and_bodies_are_checked() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let admin = a_day_of_usage(&app).await;
        for name in ["usage_details", "current_usage"] {
            let path = report("system", name);
            let same = app
                .post(
                    &path,
                    &admin,
                    json!({"from": "2026-11-20T12:00:00Z", "to": "2026-11-20T12:00:00Z"}),
                )
                .await;
            assert_eq!(
                same.error(400, 3),
                "from, to: 2026-11-20T12:00:00Z is not before 2026-11-20T12:00:00Z"
            );
            app.post(
                &path,
                &admin,
                json!({"from": "2026-11-20T13:00:00Z", "to": "2026-11-20T12:00:00Z"}),
            )
            .await
            .error(400, 3);
            let bad = app
                .post(
                    &path,
                    &admin,
                    json!({"from": "yesterday", "to": "2026-11-20T12:00:00Z"}),
                )
                .await;
            assert_eq!(
                bad.error(400, 3),
                "from: \"yesterday\" is not an RFC 3339 time or unix seconds"
            );
            let bad_to = app.post(&path, &admin, json!({"to": "2026-13-40"})).await;
            assert!(bad_to.error(400, 3).starts_with("to: "), "{}", bad_to.body);
            let long = app
                .post(
                    &path,
                    &admin,
                    json!({"from": "2026-01-01T00:00:00Z", "to": "2027-03-01T00:00:00Z"}),
                )
                .await;
            assert_eq!(long.error(400, 3), "from, to: a report covers at most 400 days");
            // The body's namespace is system or the path's.
            let other = app.post(&path, &admin, json!({"namespace": "shop"})).await;
            other.error(400, 3);
            // Unknown fields are ignored: the answer is the one without them.
            let plain = app.post(&path, &admin, json!({})).await;
            let extra = app
                .post(&path, &admin, json!({"since": "2026-11-20T12:00:00Z"}))
                .await;
            assert_eq!(extra.ok(), plain.ok());
            // Unix seconds work as well as RFC 3339.
            let from = ts("2026-11-20T10:00:00Z").as_second().to_string();
            let to = ts("2026-11-20T12:00:00Z").as_second().to_string();
            app.post(&path, &admin, json!({"from": from, "to": to}))
                .await
                .ok();
        }
        let items = details(
            &app,
            &admin,
            "shop",
            json!({"from": ts("2026-11-20T10:00:00Z").as_second().to_string(),
                   "to": ts("2026-11-20T11:00:00Z").as_second().to_string()}),
        )
        .await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["start_timestamp"], "2026-11-20T10:00:00Z");
        assert_eq!(num(&items[0]["quantity"]), 100.0);
        // An unknown namespace.
        app.post(&report("nowhere", "usage_details"), &admin, json!({}))
            .await
            .error(404, 5);
    })
    .await;
}

/// A tenant created at 10:30 reports usage at 10:45 and 11:15, both in its
/// first billing period [2026-11-20T10:30, 2026-12-20T10:30): every report of
/// that period must include both.
#[tokio::test]
async fn usage_in_the_first_partial_hour_of_a_tenant_is_reported_and_billed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2026-11-20T10:30:00Z"));
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2026-11-20T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event(
                    "first-hour",
                    "lb_requests",
                    "lb-a",
                    6_000_000,
                    "2026-11-20T10:45:00Z",
                ),
                event(
                    "second-hour",
                    "lb_requests",
                    "lb-a",
                    1_000_000,
                    "2026-11-20T11:15:00Z",
                ),
            ],
        )
        .await;
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(items.len(), 1, "{items:#?}");
        assert_eq!(items[0]["start_timestamp"], "2026-11-20T10:30:00Z");
        let reported = num(&items[0]["quantity"]);
        let bill = current(&app, &admin, "system", json!({})).await;
        let billed = (
            line(&bill, "lb_requests")["amount"].clone(),
            bill["total_cost"].clone(),
        );
        app.clock.set(ts("2026-12-21T00:00:00Z"));
        let months = crate::usage_support::monthly(&app, &admin).await;
        // 7 million requests, 5 free: 2 × 60 ¢ = 120 ¢, plus the 2500 ¢ fee.
        assert_eq!(
            (reported, billed, months),
            (
                7_000_000.0,
                (json!("120"), json!("2620")),
                vec![crate::usage_support::month(
                    "2026-11-20T10:30:00Z",
                    "2026-12-20T10:30:00Z",
                    "2620"
                )]
            ),
            "(usage_details quantity, (current_usage amount, total), monthly_usage): \
             the event at 10:45 must not be lost"
        );
    })
    .await;
}

/// Billing periods partition the hours: the hour holding a period boundary
/// (10:00–11:00 on 2026-12-20 for periods anchored at 10:30) belongs to the
/// period in which it ends, so every event is billed exactly once.
#[tokio::test]
async fn the_hour_holding_a_period_boundary_is_billed_once_in_the_later_period() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2026-11-20T10:30:00Z"));
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2026-12-20T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                event("before", "lb_requests", "lb-a", 6_000_000, "2026-12-20T09:59:00Z"),
                event(
                    "boundary",
                    "lb_requests",
                    "lb-a",
                    8_000_000,
                    "2026-12-20T10:15:00Z",
                ),
            ],
        )
        .await;
        let months = crate::usage_support::monthly(&app, &admin).await;
        let bill = current(&app, &admin, "system", json!({})).await;
        // Period 1: 6 M requests, 5 M free: 60 ¢ + 2500 ¢ fee.
        // Period 2: 8 M requests: 3 × 60 ¢ + 2500 ¢ fee.
        assert_eq!(
            (months, bill["total_cost"].clone()),
            (
                vec![crate::usage_support::month(
                    "2026-11-20T10:30:00Z",
                    "2026-12-20T10:30:00Z",
                    "2560"
                )],
                json!("2680")
            )
        );
        // An explicit range covers every hour it overlaps.
        let items = details(
            &app,
            &admin,
            "system",
            json!({"from": "2026-12-20T10:20:00Z", "to": "2026-12-20T10:40:00Z"}),
        )
        .await;
        assert_eq!(
            num(&detail(&items, "system", "lb_requests", "lb-a")["quantity"]),
            8_000_000.0
        );
    })
    .await;
}
