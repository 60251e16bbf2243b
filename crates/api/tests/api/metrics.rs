//! `GET /metrics`: the Prometheus text format, counters that move with a
//! workload, bounded labels, and the optional bearer token.

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
use crate::usage_support::event;

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
