//! A token of tenant B gets nothing of tenant A's, by any route.

use serde_json::json;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, quota_body};

#[tokio::test]
async fn tenant_b_sees_and_changes_nothing_of_tenant_a() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, a) = app.admin("acme").await;
        let (_, b) = app.admin("bravo").await;
        app.namespace(&acme, "shop").await;
        let created = app.create_quota(&a, quota_body("secret", 2)).await;
        app.post(
            "/api/web/namespaces/system/quota/reserve",
            &a,
            json!({"kind": "virtual_host", "amount": 2, "request_id": "a-1"}),
        )
        .await
        .ok();

        let q = "/api/web/namespaces/system/quotas/secret";
        for format in [
            "",
            "?response_format=1",
            "?response_format=2",
            "?response_format=3",
            "?response_format=5",
        ] {
            app.get(&format!("{q}{format}"), &b).await.error(404, 5);
        }
        app.put(q, &b, quota_body("secret", 999)).await.error(404, 5);
        app.delete(q, &b).await.error(404, 5);
        assert_eq!(
            app.get("/api/web/namespaces/system/quotas", &b).await.ok()["items"],
            json!([])
        );
        // A's namespaces don't exist for B.
        for path in [
            "/api/web/namespaces/shop/quota/usage",
            "/api/web/namespaces/shop/quota/limits",
        ] {
            app.get(path, &b).await.error(404, 5);
        }
        app.post(
            "/api/web/namespaces/shop/quota/reserve",
            &b,
            json!({"kind": "virtual_host", "amount": 1, "request_id": "x"}),
        )
        .await
        .error(404, 5);

        // B's usage and limits don't show A's objects or counts.
        let b_usage = app.get("/api/web/namespaces/system/quota/usage", &b).await;
        assert_eq!(b_usage.ok()["objects"]["virtual_host"]["limit"]["maximum"], 25);
        assert_eq!(b_usage.ok()["objects"]["virtual_host"]["usage"]["current"], 0);
        // B's reservations, even with A's request id, don't touch A's counts.
        let b_res = app
            .post(
                "/api/web/namespaces/system/quota/reserve",
                &b,
                json!({"kind": "virtual_host", "amount": 5, "request_id": "a-1"}),
            )
            .await;
        assert_eq!(b_res.ok()["replayed"], false);
        // B may use the same object name: it is B's own.
        app.create_quota(&b, quota_body("secret", 7)).await;

        // A is unchanged.
        let a_get = app.get(q, &a).await;
        assert_eq!(
            a_get.ok()["system_metadata"]["uid"],
            created["system_metadata"]["uid"]
        );
        assert_eq!(a_get.ok()["spec"]["object_limits"]["virtual_host"]["maximum"], 2);
        let a_usage = app.get("/api/web/namespaces/system/quota/usage", &a).await;
        assert_eq!(a_usage.ok()["objects"]["virtual_host"]["usage"]["current"], 2);
    })
    .await;
}
