//! `POST /api/data/namespaces/{ns}/usage/events`: per-event results in input
//! order, exactly-once by event id (per tenant), per-event rejections, batch
//! limits, roles and namespace scopes.

use std::collections::HashMap;

use axum::http::Method;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::send_on;
use crate::snapshot;
use crate::support::{TestApp, ts};
use crate::usage_support::{
    current, detail, details, event, event_dc, events_path, ingest, ingest_all, num, unix,
};

/// The tenants of these tests are created at the harness's start
/// (2026-11-20T10:00:00Z); the clock then moves to 13:00 so that there is
/// some history to report.
const NOW: &str = "2026-11-20T13:00:00Z";

/// (id, status, reason) of each result, in order.
fn outcomes(resp: &Value) -> Vec<(String, String, Option<String>)> {
    resp["results"]
        .as_array()
        .expect("results is a list")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r.get("reason").map(|x| x.as_str().unwrap().to_owned()),
            )
        })
        .collect()
}

fn ok(id: &str, status: &str) -> (String, String, Option<String>) {
    (id.to_owned(), status.to_owned(), None)
}

fn rejected(id: &str, reason: &str) -> (String, String, Option<String>) {
    (id.to_owned(), "REJECTED".to_owned(), Some(reason.to_owned()))
}

#[tokio::test]
async fn a_batch_is_accepted_in_order_and_resending_it_changes_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts(NOW));

        let batch = vec![
            event("e-3", "lb_requests", "lb-a", 1500, "2026-11-20T12:45:00Z"),
            event("e-1", "lb_requests", "lb-a", 1000, "2026-11-20T10:15:00Z"),
            event_dc(
                "e-2",
                "site_vcpus",
                "site-1",
                4,
                "2026-11-20T11:30:00Z",
                "d1",
                "c1",
            ),
        ];
        let first = ingest(&app, &platform, "shop", batch.clone()).await;
        snapshot!("usage_ingest_accepted", &first);
        assert_eq!(
            (&first["accepted"], &first["duplicates"], &first["rejected"]),
            (&json!(3), &json!(0), &json!(0))
        );
        assert_eq!(
            outcomes(&first),
            [
                ok("e-3", "ACCEPTED"),
                ok("e-1", "ACCEPTED"),
                ok("e-2", "ACCEPTED")
            ],
            "one result per event, in input order"
        );
        let before = details(&app, &admin, "system", json!({})).await;
        assert_eq!(
            num(&detail(&before, "shop", "lb_requests", "lb-a")["quantity"]),
            2500.0
        );
        let bill_before = current(&app, &admin, "system", json!({})).await;

        // Re-sending the batch (a retry after a lost answer) counts nothing twice.
        app.clock.advance(SignedDuration::from_mins(1));
        let again = ingest(&app, &platform, "shop", batch).await;
        assert_eq!(
            (&again["accepted"], &again["duplicates"], &again["rejected"]),
            (&json!(0), &json!(3), &json!(0))
        );
        assert_eq!(
            outcomes(&again),
            [
                ok("e-3", "DUPLICATE"),
                ok("e-1", "DUPLICATE"),
                ok("e-2", "DUPLICATE")
            ]
        );
        assert_eq!(details(&app, &admin, "system", json!({})).await, before);
        assert_eq!(current(&app, &admin, "system", json!({})).await, bill_before);
    })
    .await;
}

#[tokio::test]
async fn an_id_seen_before_in_the_batch_or_in_another_namespace_is_a_duplicate() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&acme, "lab").await;
        app.clock.set(ts(NOW));

        let resp = ingest(
            &app,
            &admin,
            "shop",
            vec![
                event("x", "lb_requests", "lb-a", 10, "2026-11-20T11:00:00Z"),
                event("y", "lb_requests", "lb-a", 20, "2026-11-20T11:00:00Z"),
                // The same id again, even with another quantity: the first wins.
                event("x", "lb_requests", "lb-a", 999, "2026-11-20T12:00:00Z"),
            ],
        )
        .await;
        assert_eq!(
            outcomes(&resp),
            [ok("x", "ACCEPTED"), ok("y", "ACCEPTED"), ok("x", "DUPLICATE")]
        );
        assert_eq!((&resp["accepted"], &resp["duplicates"]), (&json!(2), &json!(1)));
        // Ids are unique per tenant, not per namespace.
        let lab = ingest(
            &app,
            &admin,
            "lab",
            vec![event("y", "lb_requests", "lb-a", 5, "2026-11-20T11:00:00Z")],
        )
        .await;
        assert_eq!(outcomes(&lab), [ok("y", "DUPLICATE")]);

        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(items.len(), 1, "{items:#?}");
        assert_eq!(
            num(&detail(&items, "shop", "lb_requests", "lb-a")["quantity"]),
            30.0
        );
    })
    .await;
}

#[tokio::test]
async fn bad_events_are_rejected_with_a_reason_and_the_rest_is_accepted() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts(NOW));

        let at = "2026-11-20T11:00:00Z";
        let mut no_id = event("", "lb_requests", "lb-a", 1, at);
        no_id.as_object_mut().unwrap().remove("id");
        let mut no_quantity = event("no-q", "lb_requests", "lb-a", 1, at);
        no_quantity.as_object_mut().unwrap().remove("quantity");
        let mut no_time = event("no-t", "lb_requests", "lb-a", 1, at);
        no_time.as_object_mut().unwrap().remove("timestamp");
        let mut no_metric = event("no-m", "lb_requests", "lb-a", 1, at);
        no_metric.as_object_mut().unwrap().remove("metric_label");
        let batch = vec![
            event("good-1", "lb_requests", "lb-a", 100, at),
            event("beer", "beer", "lb-a", 1, at),
            event("neg", "lb_requests", "lb-a", -1, at),
            event("nan", "lb_requests", "lb-a", "NaN", at),
            event("inf", "lb_requests", "lb-a", "Infinity", at),
            event("good-2", "lb_requests", "lb-a", 200, at),
            // now is 13:00; reporters may be up to 5 minutes ahead.
            event("future", "lb_requests", "lb-a", 1, "2026-11-20T13:05:01Z"),
            event("skewed", "lb_requests", "lb-a", 1000, "2026-11-20T13:05:00Z"),
            // The tenant started at 10:00.
            event("early", "lb_requests", "lb-a", 1, "2026-11-20T09:59:59Z"),
            event("at-start", "lb_requests", "lb-a", 10000, "2026-11-20T10:00:00Z"),
            event("text", "lb_requests", "lb-a", 1, "yesterday"),
            no_id,
            no_quantity,
            no_time,
            no_metric,
        ];
        let resp = ingest(&app, &platform, "system", batch).await;
        assert_eq!(
            outcomes(&resp),
            [
                ok("good-1", "ACCEPTED"),
                rejected("beer", "metric_label: unknown metric \"beer\""),
                rejected("neg", "quantity: must not be negative, got -1"),
                rejected("nan", "quantity: \"NaN\" is not a finite number"),
                rejected("inf", "quantity: \"Infinity\" is not a finite number"),
                ok("good-2", "ACCEPTED"),
                rejected(
                    "future",
                    "timestamp: 2026-11-20T13:05:01Z is in the future (now 2026-11-20T13:00:00Z)"
                ),
                ok("skewed", "ACCEPTED"),
                rejected(
                    "early",
                    "timestamp: 2026-11-20T09:59:59Z is before 2026-11-20T10:00:00Z, the earliest time this \
                     tenant can still report"
                ),
                ok("at-start", "ACCEPTED"),
                rejected(
                    "text",
                    "timestamp: \"yesterday\" is not an RFC 3339 time or unix seconds"
                ),
                rejected("", "id: is required"),
                rejected("no-q", "quantity: is required"),
                rejected("no-t", "timestamp: is required"),
                rejected("no-m", "metric_label: is required"),
            ]
        );
        assert_eq!(
            (&resp["accepted"], &resp["duplicates"], &resp["rejected"]),
            (&json!(4), &json!(0), &json!(11))
        );
        // Only the accepted events count: 100 + 200 + 1000 + 10000.
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(items.len(), 1, "{items:#?}");
        assert_eq!(num(&items[0]["quantity"]), 11300.0);

        // A rejected event was not stored: corrected, its id is accepted.
        let fixed = ingest(
            &app,
            &platform,
            "system",
            vec![event("neg", "lb_requests", "lb-a", 1, at)],
        )
        .await;
        assert_eq!(outcomes(&fixed), [ok("neg", "ACCEPTED")]);
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(num(&items[0]["quantity"]), 11301.0);
    })
    .await;
}

#[tokio::test]
async fn quantities_and_timestamps_may_be_numbers_or_strings() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts(NOW));

        let eleven = unix("2026-11-20T11:00:00Z");
        let twelve = unix("2026-11-20T12:00:00Z");
        let resp = ingest(
            &app,
            &admin,
            "system",
            vec![
                event("s", "lb_requests", "lb-a", "12.5", "2026-11-20T11:10:00Z"),
                event("n", "lb_requests", "lb-a", 12.5, "2026-11-20T11:20:00Z"),
                // Unix seconds, as a JSON number and as a string.
                event("u", "lb_requests", "lb-a", 1, eleven + 60),
                event("us", "lb_requests", "lb-a", "2", (twelve + 1).to_string()),
                // Exponent notation and an RFC 3339 time with an offset.
                event("e", "lb_requests", "lb-b", "1e3", "2026-11-20T13:30:00+01:00"),
            ],
        )
        .await;
        assert_eq!(resp["accepted"], 5, "{resp}");

        let hourly = |items: &[Value], object: &str| {
            detail(items, "system", "lb_requests", object)["hourly_breakdown_query"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(
            num(&detail(&items, "system", "lb_requests", "lb-a")["quantity"]),
            28.0
        );
        assert_eq!(
            num(&detail(&items, "system", "lb_requests", "lb-b")["quantity"]),
            1000.0
        );
        let query = hourly(&items, "lb-a");
        let hours = app
            .post(
                "/api/web/namespaces/system/hourly_usage_details",
                &admin,
                json!({ "query": query }),
            )
            .await;
        let hours: Vec<(String, f64)> = hours.ok()["hourly_usage_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["start_timestamp"].as_str().unwrap().to_owned(),
                    num(&h["quantity"]),
                )
            })
            .collect();
        assert_eq!(
            hours,
            [
                ("2026-11-20T11:00:00Z".to_owned(), 26.0),
                ("2026-11-20T12:00:00Z".to_owned(), 2.0)
            ],
            "12.5 + 12.5 + 1 at 11:xx, 2 at 12:00:01"
        );
        let query = hourly(&items, "lb-b");
        let hours = app
            .post(
                "/api/web/namespaces/system/hourly_usage_details",
                &admin,
                json!({ "query": query }),
            )
            .await;
        assert_eq!(
            hours.ok()["hourly_usage_items"][0]["start_timestamp"],
            "2026-11-20T12:00:00Z",
            "13:30+01:00 is 12:30 UTC"
        );
    })
    .await;
}

#[tokio::test]
async fn a_batch_holds_1_to_1000_events() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts(NOW));
        let path = events_path("system");

        let empty = app.post(&path, &admin, json!({"events": []})).await;
        assert_eq!(
            empty.error(400, 3),
            "events: send 1 to 1000 events per request, got 0"
        );
        app.post(&path, &admin, json!({})).await.error(400, 3);

        let batch = |n: usize, prefix: &str| -> Vec<Value> {
            (0..n)
                .map(|i| {
                    event(
                        &format!("{prefix}-{i}"),
                        "lb_requests",
                        "lb-a",
                        1,
                        "2026-11-20T12:00:00Z",
                    )
                })
                .collect()
        };
        let too_many = app
            .post(&path, &admin, json!({"events": batch(1001, "big")}))
            .await;
        let msg = too_many.error(400, 3);
        assert!(msg.contains("1000") && msg.contains("1001"), "{msg}");
        // Nothing of a refused batch was stored.
        assert_eq!(
            details(&app, &admin, "system", json!({})).await,
            Vec::<Value>::new()
        );

        ingest_all(&app, &admin, "system", batch(1000, "max")).await;
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(num(&items[0]["quantity"]), 1000.0);
    })
    .await;
}

#[tokio::test]
async fn platform_and_admin_tokens_report_usage_in_their_namespaces() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&acme, "lab").await;
        app.clock.set(ts(NOW));
        let one = |id: &str| json!({"events": [event(id, "lb_requests", "lb-a", 1, "2026-11-20T12:00:00Z")]});

        for role in [Role::Monitor, Role::Billing] {
            let tok = app.token(&acme, role).await;
            app.post(&events_path("shop"), &tok, one("m")).await.error(403, 7);
        }
        let platform = app.token(&acme, Role::Platform).await;
        app.post(&events_path("shop"), &platform, one("p")).await.ok();
        app.post(&events_path("system"), &admin, one("a")).await.ok();

        // A namespace that does not exist.
        let missing = app.post(&events_path("nowhere"), &platform, one("n")).await;
        assert_eq!(missing.error(404, 5), "namespace \"nowhere\" not found");

        // A token scoped to shop reports there and nowhere else.
        let scoped = app.token_with(&acme, Role::Platform, &["shop"], None).await;
        let resp = app.post(&events_path("shop"), &scoped, one("s")).await;
        assert_eq!(resp.ok()["accepted"], 1);
        app.post(&events_path("system"), &scoped, one("s2"))
            .await
            .error(403, 7);
        app.post(&events_path("lab"), &scoped, one("s3"))
            .await
            .error(403, 7);

        let items = details(&app, &admin, "system", json!({})).await;
        let total: f64 = items.iter().map(|i| num(&i["quantity"])).sum();
        assert_eq!(total, 3.0, "p, a and s: {items:#?}");
    })
    .await;
}

#[tokio::test]
async fn event_ids_are_unique_per_tenant_only() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, a) = app.admin("acme").await;
        let (bravo, b) = app.admin("bravo").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&bravo, "shop").await;
        app.clock.set(ts(NOW));

        let batch = |q: i64| {
            vec![
                event("shared-1", "lb_requests", "lb-a", q, "2026-11-20T11:00:00Z"),
                event("shared-2", "lb_requests", "lb-a", q, "2026-11-20T12:00:00Z"),
            ]
        };
        let ra = ingest(&app, &a, "shop", batch(7)).await;
        let rb = ingest(&app, &b, "shop", batch(100)).await;
        assert_eq!(ra["accepted"], 2);
        assert_eq!(rb["accepted"], 2, "B may use ids A used: {rb}");
        let da = details(&app, &a, "system", json!({})).await;
        let db_ = details(&app, &b, "system", json!({})).await;
        assert_eq!(num(&detail(&da, "shop", "lb_requests", "lb-a")["quantity"]), 14.0);
        assert_eq!(
            num(&detail(&db_, "shop", "lb_requests", "lb-a")["quantity"]),
            200.0
        );
        // And each tenant's retries are still duplicates of its own.
        let again = ingest(&app, &b, "shop", batch(100)).await;
        assert_eq!(again["duplicates"], 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_count_each_event_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts(NOW));
        // Six reporters send the same 100 events at once (a retry storm),
        // each with 20 events of its own, all into the same few buckets.
        let shared: Vec<Value> = (0..100)
            .map(|i| {
                let at = format!("2026-11-20T1{}:{:02}:00Z", i % 3, i % 60);
                event(&format!("s-{i}"), "lb_requests", "lb-a", 1, at)
            })
            .collect();
        let tasks: Vec<_> = (0..6)
            .map(|k| {
                let mut events = shared.clone();
                events.extend((0..20).map(|i| {
                    event(
                        &format!("u-{k}-{i}"),
                        "lb_requests",
                        "lb-a",
                        10,
                        "2026-11-20T11:30:00Z",
                    )
                }));
                if k % 2 == 1 {
                    events.reverse();
                }
                tokio::spawn(send_on(
                    app.router.clone(),
                    Method::POST,
                    events_path("system"),
                    platform.clone(),
                    Some(json!({ "events": events })),
                ))
            })
            .collect();
        let mut accepted: HashMap<String, usize> = HashMap::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, 200, "{body}");
            for r in body["results"].as_array().unwrap() {
                if r["status"] == "ACCEPTED" {
                    *accepted.entry(r["id"].as_str().unwrap().to_owned()).or_default() += 1;
                } else {
                    assert_eq!(r["status"], "DUPLICATE", "{r}");
                }
            }
        }
        assert_eq!(accepted.len(), 100 + 6 * 20);
        assert!(
            accepted.values().all(|n| *n == 1),
            "each event accepted once: {accepted:?}"
        );
        let items = details(&app, &admin, "system", json!({})).await;
        assert_eq!(num(&items[0]["quantity"]), 100.0 + 6.0 * 20.0 * 10.0);
    })
    .await;
}
