//! Authentication (401) and authorization (403).

use axum::body::Body;
use axum::http::Method;
use jiff::SignedDuration;
use serde_json::json;
use tollgate_domain::access::Role;
use tollgate_domain::clock::Clock;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, quota_body};

const QUOTAS: &str = "/api/web/namespaces/system/quotas";
const USAGE: &str = "/api/web/namespaces/system/quota/usage";
const RESERVE: &str = "/api/web/namespaces/system/quota/reserve";

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let call = |headers: Vec<(&'static str, String)>| {
            let app = &app;
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                app.request(Method::GET, USAGE, None, Body::empty(), &h).await
            }
        };
        let msg = call(vec![]).await.error(401, 16).to_owned();
        assert!(msg.contains("APIToken"), "{msg}");
        call(vec![("authorization", format!("Bearer {admin}"))])
            .await
            .error(401, 16);
        call(vec![("authorization", "APIToken".into())])
            .await
            .error(401, 16);
        call(vec![("authorization", "APIToken not-a-token".into())])
            .await
            .error(401, 16);
        let unknown = tollgate_domain::token::format_secret([9; 32]);
        assert_eq!(
            call(vec![("authorization", format!("APIToken {unknown}"))])
                .await
                .error(401, 16),
            "invalid API token"
        );
        // The scheme is case-insensitive, as HTTP says.
        call(vec![("authorization", format!("apitoken {admin}"))])
            .await
            .ok();

        let expiring = app
            .token_with(
                &acme,
                Role::Admin,
                &[],
                Some(app.clock.now() + SignedDuration::from_hours(1)),
            )
            .await;
        app.get(USAGE, &expiring).await.ok();
        app.clock.advance(SignedDuration::from_hours(1));
        assert_eq!(
            app.get(USAGE, &expiring).await.error(401, 16),
            "API token has expired"
        );

        let tokens = app.store.tokens(&acme.id).await.unwrap();
        let admin_id = &tokens.iter().find(|t| t.expires_at.is_none()).unwrap().id;
        app.store
            .revoke_token(&acme.id, admin_id, "operator", app.clock.now())
            .await
            .unwrap();
        assert_eq!(
            app.get(USAGE, &admin).await.error(401, 16),
            "API token has been revoked"
        );
    })
    .await;
}

#[tokio::test]
async fn each_role_may_do_only_its_part() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.create_quota(&admin, quota_body("prod", 10)).await;
        let monitor = app.token(&acme, Role::Monitor).await;
        let billing = app.token(&acme, Role::Billing).await;
        let platform = app.token(&acme, Role::Platform).await;
        let reserve = json!({"kind": "site", "amount": 1, "request_id": "r"});

        // Readers read.
        for reader in [&monitor, &billing] {
            app.get(USAGE, reader).await.ok();
            app.get(&format!("{QUOTAS}/prod"), reader).await.ok();
            app.get(QUOTAS, reader).await.ok();
            app.get("/api/web/namespaces/system/quota/limits", reader)
                .await
                .ok();
        }
        // Only admins change quota objects.
        for other in [&monitor, &billing, &platform] {
            let msg = app
                .post(QUOTAS, other, quota_body("new", 1))
                .await
                .error(403, 7)
                .to_owned();
            assert!(msg.contains("may not perform"), "{msg}");
            app.put(&format!("{QUOTAS}/prod"), other, quota_body("prod", 1))
                .await
                .error(403, 7);
            app.delete(&format!("{QUOTAS}/prod"), other).await.error(403, 7);
        }
        // Platform services only report usage; readers don't.
        app.post(RESERVE, &platform, reserve.clone()).await.ok();
        app.get(USAGE, &platform).await.error(403, 7);
        app.get(&format!("{QUOTAS}/prod"), &platform).await.error(403, 7);
        for reader in [&monitor, &billing] {
            app.post(RESERVE, reader, reserve.clone()).await.error(403, 7);
            app.put(USAGE, reader, json!({"kind": "site", "current": 0}))
                .await
                .error(403, 7);
        }
        // Nothing the refused calls tried happened.
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["site"]["usage"]["current"], 1);
        assert_eq!(
            app.get(QUOTAS, &admin).await.ok()["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_namespace_scoped_token_works_only_in_its_namespaces() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        app.namespace(&acme, "blog").await;
        let shop_admin = app.token_with(&acme, Role::Admin, &["shop"], None).await;
        app.get("/api/web/namespaces/shop/quota/usage", &shop_admin)
            .await
            .ok();
        let msg = app
            .get("/api/web/namespaces/blog/quota/usage", &shop_admin)
            .await
            .error(403, 7)
            .to_owned();
        assert!(msg.contains("\"blog\""), "{msg}");
        app.get(USAGE, &shop_admin).await.error(403, 7);
        app.post(QUOTAS, &shop_admin, quota_body("q", 1))
            .await
            .error(403, 7);
    })
    .await;
}
