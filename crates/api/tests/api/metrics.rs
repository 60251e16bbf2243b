//! `GET /metrics`: the Prometheus text format, counters that move with a
//! workload (requests, usage events, quota changes by outcome, ingestion
//! and report latency, job runs), the lag and pool gauges, bounded labels,
//! and the optional bearer token.

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::json;
use tollgate_api::AppState;
use tollgate_api::state::Options;
use tollgate_domain::access::Role;
use tollgate_domain::clock::Clock;
use tollgate_testkit::each_backend;
use tower::ServiceExt;

use crate::support::{TestApp, quota_body};
use crate::usage_support::{event, report};

/// The value of the sample `name{labels}` (labels in the rendered order), 0 if absent.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn scrape(router: &axum::Router, bearer: Option<&str>) -> (u16, String) {
    let mut req = Request::builder().method(Method::GET).uri("/metrics");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_scrape_after_a_workload_shows_the_counters_move_with_bounded_labels() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (tenant, admin) = app.admin("metrics-acme").await;
        let platform = app.token(&tenant, Role::Platform).await;
        let (_, before) = scrape(&app.router, None).await;
        let reserve = "tollgate_http_requests_total{operation=\"tollgate.quota.Reserve\",method=\"POST\",status=\"200\"}";
        let unmatched = "tollgate_http_requests_total{operation=\"unmatched\",method=\"GET\",status=\"404\"}";
        let accepted = "tollgate_usage_events_total{outcome=\"accepted\"}";
        let rejected = "tollgate_usage_events_total{outcome=\"rejected\"}";

        app.create_quota(&admin, quota_body("q", 10)).await;
        for i in 0..3 {
            let r = app
                .post(
                    "/api/web/namespaces/system/quota/reserve",
                    &platform,
                    json!({"kind": "virtual_host", "amount": 1, "request_id": format!("r-{i}")}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        let at = app.clock.now().to_string();
        let r = app
            .post(
                "/api/data/namespaces/system/usage/events",
                &admin,
                json!({"events": [
                    event("m-1", "lb_requests", "lb", 5, at.as_str()),
                    event("m-2", "no_such_meter", "lb", 1, at.as_str())
                ]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        app.get("/no/such/path/metrics-acme", &admin).await;

        let (status, after) = scrape(&app.router, None).await;
        assert_eq!(status, 200);
        // Other tests share the process's recorder: at least this test's own.
        assert!(sample(&after, reserve) >= sample(&before, reserve) + 3.0, "{after}");
        assert!(sample(&after, unmatched) >= sample(&before, unmatched) + 1.0, "{after}");
        assert!(sample(&after, accepted) >= sample(&before, accepted) + 1.0, "{after}");
        assert!(sample(&after, rejected) >= sample(&before, rejected) + 1.0, "{after}");
        assert!(after.contains("# TYPE tollgate_http_request_duration_seconds histogram"), "{after}");
        assert!(
            after.contains("tollgate_http_request_duration_seconds_bucket{operation=\"tollgate.quota.Reserve\",le=\"0.001\"}"),
            "{after}"
        );
        assert!(after.contains("tollgate_build_info{version=\""), "{after}");
        // Bounded labels: no tenant, no raw path, no token.
        for leak in ["metrics-acme", "/no/such/path", tenant.id.as_str(), admin.as_str()] {
            assert!(!after.contains(leak), "{leak} in the metrics");
        }
    })
    .await;
}

#[tokio::test]
async fn with_a_metrics_token_only_its_bearer_may_scrape() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let state = AppState::with_options(
            app.store.clone(),
            app.clock.clone(),
            Options {
                metrics_token: Some("scrape-secret".into()),
                ..Options::default()
            },
        );
        let router = tollgate_api::router(state);
        let (status, body) = scrape(&router, None).await;
        assert_eq!(status, 401, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["details"][0]["reason"], "UNAUTHENTICATED", "{body}");
        assert_eq!(scrape(&router, Some("wrong")).await.0, 401);
        let (status, body) = scrape(&router, Some("scrape-secret")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("tollgate_build_info"), "{body}");
    })
    .await;
}

/// Every quota change outcome, one ingestion, the five reports and a run of
/// every job by hand each move their series; the pool gauges are there.
#[tokio::test]
async fn quota_changes_reports_and_job_runs_are_counted() {
    each_backend(|db| async move {
        let sqlite = db.sqlite_dir().is_some();
        let app = TestApp::new(db).await;
        let (tenant, admin) = app.admin("metrics-work").await;
        let platform = app.token(&tenant, Role::Platform).await;
        let (_, before) = scrape(&app.router, None).await;

        app.create_quota(&admin, quota_body("q", 2)).await;
        let quota = |op: &str| format!("/api/web/namespaces/system/quota/{op}");
        let reserve = |id: &str| json!({"kind": "virtual_host", "amount": 1, "request_id": id});
        for (id, status) in [("r-1", 200), ("r-2", 200), ("r-1", 200), ("r-3", 429)] {
            let r = app.post(&quota("reserve"), &platform, reserve(id)).await;
            assert_eq!(r.status, status, "{id}: {:?}", r.body);
        }
        let r = app
            .post(
                &quota("release"),
                &platform,
                json!({"kind": "virtual_host", "amount": 1, "request_id": "x-1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = app
            .put(
                &quota("usage"),
                &admin,
                json!({"kind": "virtual_host", "current": 0}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);

        let at = app.clock.now().to_string();
        let r = app
            .post(
                "/api/data/namespaces/system/usage/events",
                &admin,
                json!({"events": [event("w-1", "lb_requests", "lb", 5, at.as_str())]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let details = app
            .post(&report("system", "usage_details"), &admin, json!({}))
            .await;
        let query = details.ok()["usage_items"][0]["hourly_breakdown_query"]
            .as_str()
            .expect("a line with its hourly query")
            .to_owned();
        for (path, body) in [
            (report("system", "hourly_usage_details"), json!({"query": query})),
            (report("system", "current_usage"), json!({})),
            (report("system", "monthly_usage"), json!({})),
            (
                "/api/data/namespaces/system/billing/usage_summary".to_owned(),
                json!({}),
            ),
        ] {
            let r = app.post(&path, &admin, body).await;
            assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        }
        let r = app
            .operator(Method::POST, "/api/operator/jobs/all/run", None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);

        let (_, after) = scrape(&app.router, None).await;
        let moved = |series: &str, by: f64| {
            assert!(
                sample(&after, series) >= sample(&before, series) + by,
                "{series} did not move by {by}:\n{after}"
            );
        };
        for (outcome, n) in [
            ("granted", 2.0),
            ("replayed", 1.0),
            ("refused", 1.0),
            ("released", 1.0),
            ("reconciled", 1.0),
        ] {
            moved(
                &format!("tollgate_quota_reservations_total{{outcome=\"{outcome}\"}}"),
                n,
            );
        }
        moved("tollgate_ingest_duration_seconds_count", 1.0);
        for r in ["usage_details", "hourly", "current_usage", "monthly", "summary"] {
            moved(
                &format!("tollgate_report_duration_seconds_count{{report=\"{r}\"}}"),
                1.0,
            );
        }
        for job in tollgate_app::Job::ALL {
            let job = job.as_str();
            moved(&format!("tollgate_job_runs_total{{job=\"{job}\"}}"), 1.0);
            moved(
                &format!("tollgate_job_duration_seconds_count{{job=\"{job}\"}}"),
                1.0,
            );
            // Registered at zero: an alert on failures has a series to read.
            assert!(
                after.contains(&format!("tollgate_job_failures_total{{job=\"{job}\"}} ")),
                "{after}"
            );
        }
        assert!(
            after.contains("tollgate_db_write_wait_seconds_bucket{le=\"0.0001\"}"),
            "{after}"
        );
        let pools: &[&str] = if sqlite { &["read", "write"] } else { &["shared"] };
        for pool in pools {
            let max = sample(
                &after,
                &format!("tollgate_db_pool_max_connections{{pool=\"{pool}\"}}"),
            );
            assert!(max >= 1.0, "{pool}: {after}");
            for state in ["in_use", "idle"] {
                let series = format!("tollgate_db_pool_connections{{pool=\"{pool}\",state=\"{state}\"}}");
                assert!(after.contains(&format!("{series} ")), "{series}: {after}");
            }
        }
        assert!(
            after.contains("# HELP tollgate_quota_reservations_total "),
            "{after}"
        );
        for leak in ["metrics-work", tenant.id.as_str()] {
            assert!(!after.contains(leak), "{leak} in the metrics");
        }
    })
    .await;
}

/// The lag gauges: how long the oldest period due for closing and the
/// oldest due charge round have waited, as the job loop sets them each tick.
#[tokio::test]
async fn the_lag_gauges_say_how_long_due_work_has_waited() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (tenant, _) = app.admin("metrics-lag").await;
        let ctx = app.job_context("metrics-lag", None);
        let gauges = || async {
            tollgate_app::telemetry::record_backlog(&ctx).await.unwrap();
            let (_, text) = scrape(&app.router, None).await;
            (
                sample(&text, "tollgate_job_oldest_due_period_seconds"),
                sample(&text, "tollgate_job_oldest_due_charge_seconds"),
            )
        };
        // A new tenant's date is worked out by the first close.
        assert_eq!(gauges().await, (0.0, 0.0));
        app.close_periods().await;
        let due = app
            .store
            .billing_due(&tenant.id)
            .await
            .unwrap()
            .expect("a due date")
            .due_at;
        assert!(due > app.clock.now(), "the first period's end");
        // 90 minutes past the period's end and its day of grace.
        let grace = ctx.invoicing.grace;
        app.clock.set(due + grace + jiff::SignedDuration::from_mins(90));
        assert_eq!(gauges().await, (5400.0, 0.0));
        // Closed: its invoice's first round is due at once; half an hour on, unrun.
        assert_eq!(app.close_periods().await, 1);
        app.clock.advance(jiff::SignedDuration::from_mins(30));
        assert_eq!(gauges().await, (0.0, 1800.0));
        // Charged (no payment method: a failed round, retried in a day).
        app.charge().await;
        assert_eq!(gauges().await, (0.0, 0.0));
    })
    .await;
}
