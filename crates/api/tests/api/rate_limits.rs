//! `api_limits` are enforced per tenant on Tollgate's own operations.

use jiff::SignedDuration;
use serde_json::json;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, quota_body};

const GET_PROD: &str = "/api/web/namespaces/system/quotas/prod";

#[tokio::test]
async fn a_quota_objects_api_limit_throttles_that_operation_for_that_tenant() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, a) = app.admin("acme").await;
        let (_, b) = app.admin("bravo").await;
        app.create_quota(
            &a,
            json!({"metadata": {"name": "prod"}, "spec": {"api_limits": {
                "ves.io.schema.quota.API.Get": {"rate": 2, "burst": 3, "unit": "MINUTE"}
            }}}),
        )
        .await;
        app.create_quota(&b, quota_body("prod", 1)).await;
        for _ in 0..3 {
            app.get(GET_PROD, &a).await.ok();
        }
        let refused = app.get(GET_PROD, &a).await;
        let msg = refused.reason("RATE_LIMITED").error(429, 8);
        assert!(
            msg.starts_with("rate limit exceeded for ves.io.schema.quota.API.Get: 2 per minute"),
            "{msg}"
        );
        assert_eq!(refused.headers["retry-after"], "30");
        assert_eq!(
            refused.body["details"][0]["metadata"],
            json!({"operation": "ves.io.schema.quota.API.Get", "retry_after": "30"})
        );
        // Other operations and other tenants are not affected.
        app.get("/api/web/namespaces/system/quotas", &a).await.ok();
        for _ in 0..5 {
            app.get(GET_PROD, &b).await.ok();
        }
        // Two per minute: one token is back after 30 seconds.
        app.clock.advance(SignedDuration::from_secs(30));
        app.get(GET_PROD, &a).await.ok();
        app.get(GET_PROD, &a).await.error(429, 8);
        // Lifting the limit (rate -1) takes effect at once.
        app.put(
            GET_PROD,
            &a,
            json!({"spec": {"api_limits": {"ves.io.schema.quota.API.Get": {"rate": -1}}}}),
        )
        .await
        .ok();
        for _ in 0..20 {
            app.get(GET_PROD, &a).await.ok();
        }
    })
    .await;
}

#[tokio::test]
async fn the_default_quota_limits_writes() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, a) = app.admin("acme").await;
        // Default: 10 creates per second, bursts of 20.
        for i in 0..20 {
            app.create_quota(&a, json!({"metadata": {"name": format!("q{i}")}}))
                .await;
        }
        let refused = app
            .post(
                "/api/web/namespaces/system/quotas",
                &a,
                json!({"metadata": {"name": "q20"}}),
            )
            .await;
        refused.reason("RATE_LIMITED").error(429, 8);
        assert_eq!(refused.headers["retry-after"], "1");
        // The throttled create did not happen.
        app.get("/api/web/namespaces/system/quotas/q20", &a)
            .await
            .error(404, 5);
        app.clock.advance(SignedDuration::from_millis(100));
        app.create_quota(&a, json!({"metadata": {"name": "q20"}})).await;
    })
    .await;
}

/// Only requests that pass the role, scope and namespace checks spend the
/// tenant's tokens: callers who may not make a call cannot starve those who
/// may.
#[tokio::test]
async fn refused_callers_do_not_drain_the_tenants_bucket() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let monitor = app.token(&acme, tollgate_domain::access::Role::Monitor).await;
        let scoped = app
            .token_with(&acme, tollgate_domain::access::Role::Admin, &["shop"], None)
            .await;
        // Default: 10 creates per second, bursts of 20; 120 refused tries.
        for i in 0..120 {
            let body = json!({"metadata": {"name": format!("m{i}")}});
            app.post("/api/web/namespaces/system/quotas", &monitor, body.clone())
                .await
                .error(403, 7);
            app.post("/api/web/namespaces/system/quotas", &scoped, body)
                .await
                .error(403, 7);
        }
        // A namespace that does not exist is not charged either.
        for _ in 0..30 {
            app.get("/api/web/namespaces/nowhere/quota/usage", &admin)
                .await
                .error(404, 5);
        }
        // The admin still has the whole burst.
        for i in 0..20 {
            app.create_quota(&admin, json!({"metadata": {"name": format!("q{i}")}}))
                .await;
        }
        app.post(
            "/api/web/namespaces/system/quotas",
            &admin,
            json!({"metadata": {"name": "q20"}}),
        )
        .await
        .error(429, 8);
    })
    .await;
}

/// A limit that would refuse every call is refused, naming the field.
#[tokio::test]
async fn api_limits_that_would_disable_an_operation_are_refused() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let create = "ves.io.schema.quota.API.Create";
        let field = format!("spec.api_limits.{create}");
        for (limit, message) in [
            (
                json!({"rate": 0, "burst": 0}),
                format!("{field}.rate: must be -1 (unlimited) or between 1 and 2147483647, got 0"),
            ),
            (json!({"burst": 5}), format!("{field}.rate: must be -1")),
            (json!({"rate": "0", "unit": "DAY"}), format!("{field}.rate: ")),
            (json!({"rate": -2}), format!("{field}.rate: ")),
            (json!({"rate": 2147483648_i64}), format!("{field}.rate: ")),
            (
                json!({"rate": 1, "burst": -1}),
                format!("{field}.burst: must be 0 (the rate)"),
            ),
            (
                json!({"rate": 1, "burst": 2147483648_i64}),
                format!("{field}.burst: "),
            ),
            (
                json!({"rate": 1, "unit": "WEEK"}),
                format!("{field}.unit: unknown unit"),
            ),
        ] {
            let body = json!({"metadata": {"name": "lock"}, "spec": {"api_limits": {create: limit}}});
            let resp = app.post("/api/web/namespaces/system/quotas", &admin, body).await;
            let got = resp.error(400, 3);
            assert!(got.starts_with(&message), "{limit}: {got}");
        }
        app.get("/api/web/namespaces/system/quotas/lock", &admin)
            .await
            .error(404, 5);
        // The smallest limits that still admit calls are accepted.
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "slow"}, "spec": {"api_limits": {
                "ves.io.schema.quota.API.Get": {"rate": 1, "unit": "DAY"},
                "ves.io.schema.quota.API.List": {"rate": -1, "burst": 0}
            }}}),
        )
        .await;
        app.get("/api/web/namespaces/system/quotas/slow", &admin)
            .await
            .ok();
        let refused = app.get("/api/web/namespaces/system/quotas/slow", &admin).await;
        refused.error(429, 8);
        let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(wait <= 86_400, "{wait}");
    })
    .await;
}

/// A limit stored before limits were validated (rate 0) is ignored, with the
/// plan's default in force instead, rather than locking the tenant out.
#[tokio::test]
async fn an_invalid_limit_stored_earlier_is_ignored() {
    each_backend(|db| async move {
        use tollgate_domain::names::Name;
        use tollgate_domain::quota::{QuotaKey, QuotaObject, QuotaSpec};
        use tollgate_domain::rate_limit::{RateLimit, RateUnit};

        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let create = "ves.io.schema.quota.API.Create";
        let mut spec = QuotaSpec::default();
        spec.api_limits.insert(
            QuotaKey::parse("k", create).unwrap(),
            RateLimit {
                rate: 0,
                burst: 0,
                unit: RateUnit::Second,
            },
        );
        let now = crate::support::ts(crate::support::START);
        let object = QuotaObject {
            meta: tollgate_domain::object::ObjectMeta {
                namespace: Name::system(),
                name: Name::parse("n", "lock").unwrap(),
                uid: uuid::Uuid::new_v4().to_string(),
                labels: Default::default(),
                annotations: Default::default(),
                description: String::new(),
                disable: false,
                creator_class: "test".into(),
                creator_id: "test".into(),
                created_at: now,
                modified_at: now,
            },
            spec,
        };
        app.store
            .insert_quota(&acme.id, &object, "test")
            .await
            .expect("store a limit as an earlier version could");
        // The plan's default (10 per second, bursts of 20) applies.
        for i in 0..20 {
            app.create_quota(&admin, json!({"metadata": {"name": format!("q{i}")}}))
                .await;
        }
        let refused = app
            .post(
                "/api/web/namespaces/system/quotas",
                &admin,
                json!({"metadata": {"name": "q20"}}),
            )
            .await;
        refused.error(429, 8);
        assert_eq!(refused.headers["retry-after"], "1");
        let limits = app.get("/api/web/namespaces/system/quota/limits", &admin).await;
        assert_eq!(
            limits.ok()["apis"][create]["limit"]["rate"],
            10,
            "{}",
            limits.body
        );
        // Deleting the object through the API works too.
        app.clock.advance(SignedDuration::from_secs(1));
        app.delete("/api/web/namespaces/system/quotas/lock", &admin)
            .await
            .ok();
    })
    .await;
}

/// Both answer 429 with code 8; the reason tells a client whether to wait
/// (`RATE_LIMITED`, with `Retry-After`) or to free or raise quota
/// (`QUOTA_EXCEEDED`).
#[tokio::test]
async fn a_spent_rate_limit_and_an_exceeded_quota_have_different_reasons() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, a) = app.admin("acme").await;
        app.create_quota(
            &a,
            json!({"metadata": {"name": "q"}, "spec": {
                "object_limits": {"virtual_host": {"maximum": 1}},
                "api_limits": {"tollgate.quota.Reserve": {"rate": 3, "burst": 3, "unit": "MINUTE"}}
            }}),
        )
        .await;
        let reserve = "/api/web/namespaces/system/quota/reserve";
        let body = |id: &str| json!({"kind": "virtual_host", "amount": 1, "request_id": id});
        app.post(reserve, &a, body("r1")).await.ok();
        let over_quota = app.post(reserve, &a, body("r2")).await;
        over_quota.reason("QUOTA_EXCEEDED").error(429, 8);
        assert!(!over_quota.headers.contains_key("retry-after"));
        assert_eq!(over_quota.metadata("kind"), "virtual_host");
        app.post(reserve, &a, body("r3"))
            .await
            .reason("QUOTA_EXCEEDED")
            .error(429, 8);
        let throttled = app.post(reserve, &a, body("r4")).await;
        throttled.reason("RATE_LIMITED").error(429, 8);
        assert_eq!(throttled.headers["retry-after"], "20");
        assert_eq!(throttled.metadata("operation"), "tollgate.quota.Reserve");
        assert_eq!(throttled.metadata("retry_after"), "20");
    })
    .await;
}
