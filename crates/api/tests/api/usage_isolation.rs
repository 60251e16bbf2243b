//! Tenant B sees none of tenant A's usage in any report, cannot use A's
//! report tokens, and A's namespaces do not exist for B.

use serde_json::json;
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{
    SUMMARY, current, details, event, events_path, fee_lines, ingest, ingest_all, metrics_of, month, monthly,
    num, report,
};

#[tokio::test]
async fn tenant_b_sees_nothing_of_tenant_as_usage() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, a) = app.admin("acme").await;
        let (bravo, b) = app.admin("bravo").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&acme, "secret").await;
        // B has a shop of its own.
        app.namespace(&bravo, "shop").await;
        app.clock.set(ts("2026-11-20T16:00:00Z"));
        ingest_all(
            &app,
            &a,
            "shop",
            vec![
                event("a1", "lb_requests", "lb-a", 50_000_000, "2026-11-20T12:00:00Z"),
                event(
                    "a2",
                    "cdn_data_transfer",
                    "cdn",
                    7_000_000_000_i64,
                    "2026-11-20T13:00:00Z",
                ),
            ],
        )
        .await;
        ingest_all(
            &app,
            &a,
            "secret",
            vec![event("a3", "lb_requests", "lb-s", 1, "2026-11-20T14:00:00Z")],
        )
        .await;

        // usage_details: nothing, for system and for B's own shop.
        for ns in ["system", "shop"] {
            assert_eq!(
                details(&app, &b, ns, json!({})).await,
                Vec::<serde_json::Value>::new(),
                "{ns}"
            );
        }
        // current_usage: B's fee only, and nothing in B's shop.
        let bill = current(&app, &b, "system", json!({})).await;
        assert_eq!(metrics_of(&bill), Vec::<String>::new());
        assert_eq!(fee_lines(&bill).len(), 1);
        assert_eq!(bill["total_cost"], "2500");
        let shop = current(&app, &b, "shop", json!({})).await;
        assert_eq!(shop["usage_items"], json!([]));
        assert_eq!(shop["total_cost"], "0");
        // usage_summary: nothing.
        let summary = app.post(SUMMARY, &b, json!({})).await;
        assert_eq!(summary.ok()["usage_summary_items"], json!([]));
        // A sees its own.
        let a_summary = app.post(SUMMARY, &a, json!({})).await;
        assert_eq!(a_summary.ok()["usage_summary_items"].as_array().unwrap().len(), 2);

        // A's namespace that B does not have: 404 on every route.
        for name in [
            "usage_details",
            "current_usage",
            "hourly_usage_details",
            "monthly_usage",
        ] {
            let resp = app.post(&report("secret", name), &b, json!({})).await;
            assert_eq!(resp.error(404, 5), "namespace \"secret\" not found", "{name}");
        }
        let resp = app
            .post(
                &events_path("secret"),
                &b,
                json!({"events": [event("b1", "lb_requests", "x", 1, "2026-11-20T15:00:00Z")]}),
            )
            .await;
        resp.error(404, 5);

        // A's report tokens: refused for B, in system and in B's shop.
        let a_items = details(&app, &a, "system", json!({})).await;
        assert_eq!(a_items.len(), 3);
        for item in &a_items {
            for ns in ["system", "shop"] {
                let resp = app
                    .post(
                        &report(ns, "hourly_usage_details"),
                        &b,
                        json!({"query": item["hourly_breakdown_query"]}),
                    )
                    .await;
                resp.error(403, 7);
            }
        }
        // B's events with A's ids count for B and change nothing for A.
        let resp = ingest(
            &app,
            &b,
            "shop",
            vec![event("a1", "lb_requests", "lb-a", 3, "2026-11-20T15:00:00Z")],
        )
        .await;
        assert_eq!(resp["accepted"], 1);
        let again = details(&app, &a, "system", json!({})).await;
        assert_eq!(again, a_items);
        let b_items = details(&app, &b, "system", json!({})).await;
        assert_eq!(b_items.len(), 1);
        assert_eq!(num(&b_items[0]["quantity"]), 3.0);

        // monthly_usage after the first period: each tenant its own bill.
        // A: 50 000 001 requests (shop and secret) → 50 billable; (50 − 5) × 60 = 2700 ¢;
        // 7 GB of CDN → 7 × 4.5 = 31.5 → 32 ¢; total 2700 + 32 + 2500 = 5232 ¢.
        // B: 3 requests → 1 billable, 5 free → 0 ¢; total 2500 ¢.
        app.clock.set(ts("2026-12-21T00:00:00Z"));
        let (start, end) = ("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z");
        assert_eq!(monthly(&app, &a).await, [month(start, end, "5232")]);
        assert_eq!(monthly(&app, &b).await, [month(start, end, "2500")]);
        // Nor do B's other roles see more.
        let monitor = app.token(&bravo, Role::Monitor).await;
        assert_eq!(monthly(&app, &monitor).await, [month(start, end, "2500")]);
    })
    .await;
}
