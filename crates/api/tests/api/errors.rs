//! The error model outside any one operation: routing, bodies, panics.

use axum::body::Body;
use axum::http::Method;
use axum::routing::get;
use tollgate_testkit::each_backend;

use crate::support::TestApp;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_format() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let resp = app.get("/api/web/namespaces/system/nothing", &admin).await;
        assert_eq!(
            resp.reason("ROUTE_NOT_FOUND").error(404, 5),
            "no route for GET /api/web/namespaces/system/nothing"
        );
        assert_eq!(resp.headers["content-type"], "application/json");
        let resp = app
            .request(
                Method::PATCH,
                "/api/web/namespaces/system/quotas",
                Some(&admin),
                Body::empty(),
                &[],
            )
            .await;
        assert_eq!(
            resp.reason("METHOD_NOT_ALLOWED").error(405, 12),
            "method PATCH is not allowed on /api/web/namespaces/system/quotas"
        );
        // Without a token, an unknown route is still a 404, not a 401.
        app.request(Method::GET, "/nope", None, Body::empty(), &[])
            .await
            .reason("ROUTE_NOT_FOUND")
            .error(404, 5);
        // A missing object on a known route is NOT_FOUND, not ROUTE_NOT_FOUND.
        app.get("/api/web/namespaces/system/quotas/nothing", &admin)
            .await
            .reason("NOT_FOUND")
            .error(404, 5);
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let huge = format!(
            "{{\"metadata\":{{\"name\":\"q\",\"description\":\"{}\"}}}}",
            "x".repeat(2 * 1024 * 1024)
        );
        let resp = app
            .request(
                Method::POST,
                "/api/web/namespaces/system/quotas",
                Some(&admin),
                huge,
                &[],
            )
            .await;
        // No Content-Length here: the body limit stops reading at 1 MiB.
        assert_eq!(
            resp.reason("PAYLOAD_TOO_LARGE").error(413, 3),
            "request body is larger than 1048576 bytes"
        );
        assert_eq!(resp.headers["content-type"], "application/json");
    })
    .await;
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_in_the_error_format() {
    each_backend(|db| async move {
        let app = TestApp::with_routes(db, |r| {
            r.route(
                "/boom",
                get(|| async { panic!("deliberate test panic") as &'static str }),
            )
        })
        .await;
        let resp = app.request(Method::GET, "/boom", None, Body::empty(), &[]).await;
        let msg = resp.reason("INTERNAL").error(500, 13);
        assert!(!msg.contains("deliberate"), "panic details must not leak: {msg}");
        // The server keeps serving.
        app.request(Method::GET, "/healthz", None, Body::empty(), &[])
            .await
            .ok();
    })
    .await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let ok = app
            .request(Method::GET, "/healthz", None, Body::empty(), &[])
            .await;
        let id = ok.headers["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        // A caller's own request id is kept.
        let mine = app
            .request(
                Method::GET,
                "/nope",
                None,
                Body::empty(),
                &[("x-request-id", "trace-42")],
            )
            .await;
        assert_eq!(mine.headers["x-request-id"], "trace-42");
    })
    .await;
}

#[tokio::test]
async fn health_and_readiness() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let backend = app.store.backend();
        let h = app
            .request(Method::GET, "/healthz", None, Body::empty(), &[])
            .await;
        assert_eq!(h.ok(), &serde_json::json!({"status": "ok"}));
        let r = app
            .request(Method::GET, "/readyz", None, Body::empty(), &[])
            .await;
        assert_eq!(
            r.ok(),
            &serde_json::json!({"status": "ready", "database": backend})
        );
    })
    .await;
}
