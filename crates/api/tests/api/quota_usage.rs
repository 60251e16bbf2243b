//! `quota/usage`, `quota/limits`, and the reserve / release / reconcile
//! extensions that enforce quotas.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::snapshot;
use crate::support::TestApp;

const USAGE: &str = "/api/web/namespaces/system/quota/usage";
const LIMITS: &str = "/api/web/namespaces/system/quota/limits";
const RESERVE: &str = "/api/web/namespaces/system/quota/reserve";
const RELEASE: &str = "/api/web/namespaces/system/quota/release";

fn reserve_body(kind: &str, amount: Value, id: &str) -> Value {
    json!({"kind": kind, "amount": amount, "request_id": id})
}

/// The deprecated maps say the same as the new ones.
#[track_caller]
fn assert_deprecated_maps_agree(report: &Value) {
    let objects = report["objects"].as_object().unwrap();
    let quota_usage = report["quota_usage"].as_object().unwrap();
    assert_eq!(objects.len(), quota_usage.len());
    for (k, v) in objects {
        assert_eq!(quota_usage[k]["limit"], v["limit"], "{k}");
        assert_eq!(quota_usage[k]["usage"], v["usage"], "{k}");
    }
    let resources = report["resources"].as_object().unwrap();
    let float_usage = report["float_quota_usage"].as_object().unwrap();
    assert_eq!(resources.len(), float_usage.len());
    for (k, v) in resources {
        assert_eq!(float_usage[k]["limit"], v["limit"], "{k}");
        assert_eq!(float_usage[k]["usage"], v["usage"], "{k}");
    }
    let apis = report["apis"].as_object().unwrap();
    let api_limits = report["api_limits"].as_object().unwrap();
    assert_eq!(apis.len(), api_limits.len());
    for (k, v) in apis {
        assert_eq!(&api_limits[k], &v["limit"], "{k}");
    }
}

#[tokio::test]
async fn a_new_tenant_sees_the_default_quota_with_zero_usage() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let usage = app.get(USAGE, &admin).await;
        snapshot!("usage_of_a_new_tenant", usage.ok());
        assert_deprecated_maps_agree(usage.ok());
        assert_eq!(
            usage.ok()["objects"]["virtual_host"]["display_name"],
            "Virtual Hosts"
        );
        // limits has the same shape and content.
        let limits = app.get(LIMITS, &admin).await;
        assert_eq!(limits.ok(), usage.ok());
        // Real clients copy request fields into the query string.
        app.get(&format!("{USAGE}?namespace=system"), &admin).await.ok();
    })
    .await;
}

#[tokio::test]
async fn quota_objects_change_the_reported_limits() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "a"}, "spec": {
                "object_limits": {"virtual_host": {"maximum": 3}, "custom_kind": {"maximum": -1}},
                "resource_limits": {"vcpu": {"maximum": 2.5}},
                "api_limits": {"ves.io.schema.quota.API.Get": {"rate": 5, "burst": 7, "unit": "MINUTE"}}
            }}),
        )
        .await;
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "b"}, "spec": {"object_limits": {"virtual_host": {"maximum": 2}}}}),
        )
        .await;
        let usage = app.get(USAGE, &admin).await;
        let u = usage.ok();
        assert_eq!(u["objects"]["virtual_host"]["limit"]["maximum"], 2, "the smallest wins");
        assert_eq!(u["objects"]["custom_kind"]["limit"]["maximum"], -1);
        assert_eq!(u["objects"]["custom_kind"]["display_name"], "custom_kind");
        assert_eq!(u["objects"]["origin_pool"]["limit"]["maximum"], 25, "the plan default still applies");
        assert_eq!(u["resources"]["vcpu"]["limit"]["maximum"], 2.5);
        assert_eq!(
            u["apis"]["ves.io.schema.quota.API.Get"]["limit"],
            json!({"rate": 5, "burst": 7, "unit": "MINUTE"})
        );
        assert_deprecated_maps_agree(u);
        // A disabled quota object no longer counts.
        app.put(
            "/api/web/namespaces/system/quotas/b",
            &admin,
            json!({"metadata": {"name": "b", "disable": true}, "spec": {"object_limits": {"virtual_host": {"maximum": 2}}}}),
        )
        .await
        .ok();
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["virtual_host"]["limit"]["maximum"], 3);
    })
    .await;
}

#[tokio::test]
async fn a_tenants_answer_is_rendered_again_whenever_its_limits_or_usage_change() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let (_, other) = app.admin("bravo").await;
        let first = app.get(USAGE, &admin).await.ok().clone();
        // Nothing changed: the same answer (the one rendered before).
        assert_eq!(app.get(USAGE, &admin).await.ok(), &first);
        assert_eq!(app.get(LIMITS, &admin).await.ok(), &first);
        // Usage changed.
        app.post(RESERVE, &admin, reserve_body("site", json!(2), "a"))
            .await
            .ok();
        let reserved = app.get(USAGE, &admin).await.ok().clone();
        assert_eq!(reserved["objects"]["site"]["usage"]["current"], 2);
        assert_eq!(
            app.get(LIMITS, &admin).await.ok()["objects"]["site"]["usage"]["current"],
            2
        );
        // Another tenant's answer is its own, before and after.
        let theirs = app.get(USAGE, &other).await.ok().clone();
        assert_eq!(theirs["objects"]["site"]["usage"]["current"], 0);
        assert_eq!(app.get(USAGE, &admin).await.ok(), &reserved);
        // Limits changed.
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "a"}, "spec": {"object_limits": {"site": {"maximum": 2}}}}),
        )
        .await;
        let limited = app.get(USAGE, &admin).await.ok().clone();
        assert_eq!(limited["objects"]["site"]["limit"]["maximum"], 2);
        assert_eq!(limited["objects"]["site"]["usage"]["current"], 2);
        assert_eq!(app.get(USAGE, &other).await.ok(), &theirs);
    })
    .await;
}

#[tokio::test]
async fn reservations_stop_at_the_limit_with_429_naming_key_limit_and_usage() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let platform = app.token(&acme, Role::Platform).await;
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "q"}, "spec": {"object_limits": {"virtual_host": {"maximum": 3}}}}),
        )
        .await;
        let first = app
            .post(RESERVE, &platform, reserve_body("virtual_host", json!(2), "r1"))
            .await;
        snapshot!("reserve_response", first.ok());
        let second = app
            .post(RESERVE, &platform, reserve_body("virtual_host", json!(1), "r2"))
            .await;
        assert_eq!(second.ok()["current"], 3);
        let refused = app
            .post(RESERVE, &platform, reserve_body("virtual_host", json!(1), "r3"))
            .await;
        assert_eq!(
            refused.reason("QUOTA_EXCEEDED").error(429, 8),
            "quota exceeded for object kind \"virtual_host\": limit 3, current usage 3, requested 1"
        );
        assert_eq!(
            refused.body["details"][0]["metadata"],
            json!({"kind": "virtual_host", "limit": "3", "current": "3", "requested": "1"})
        );
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["virtual_host"]["usage"]["current"], 3);
        assert_eq!(usage.ok()["quota_usage"]["virtual_host"]["usage"]["current"], 3);
        // Raising the limit lets the same request through.
        app.put(
            "/api/web/namespaces/system/quotas/q",
            &admin,
            json!({"spec": {"object_limits": {"virtual_host": {"maximum": 4}}}}),
        )
        .await
        .ok();
        let retried = app
            .post(RESERVE, &platform, reserve_body("virtual_host", json!(1), "r3"))
            .await;
        assert_eq!(retried.ok()["current"], 4);
        assert_eq!(retried.ok()["limit"], 4);
    })
    .await;
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_answer_and_changes_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let body = reserve_body("origin_pool", json!(2), "create-pool-7");
        let first = app.post(RESERVE, &admin, body.clone()).await;
        assert_eq!(first.ok()["replayed"], false);
        app.post(RESERVE, &admin, reserve_body("origin_pool", json!(1), "other"))
            .await
            .ok();
        let again = app.post(RESERVE, &admin, body).await;
        assert_eq!(again.ok()["replayed"], true);
        assert_eq!(again.ok()["current"], first.ok()["current"]);
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["origin_pool"]["usage"]["current"], 3);
        let msg = app
            .post(
                RESERVE,
                &admin,
                reserve_body("origin_pool", json!(5), "create-pool-7"),
            )
            .await
            .reason("REQUEST_ID_REUSED")
            .error(409, 9)
            .to_owned();
        assert!(
            msg.contains("create-pool-7") && msg.contains("different"),
            "{msg}"
        );
        // The same id may name the matching release.
        let release = app
            .post(
                RELEASE,
                &admin,
                reserve_body("origin_pool", json!(2), "create-pool-7"),
            )
            .await;
        assert_eq!(release.ok()["current"], 1);
        let release_again = app
            .post(
                RELEASE,
                &admin,
                reserve_body("origin_pool", json!(2), "create-pool-7"),
            )
            .await;
        assert_eq!(release_again.ok()["replayed"], true);
        // A release reusing the id for another amount is refused like a reservation.
        let other = app
            .post(
                RELEASE,
                &admin,
                reserve_body("origin_pool", json!(1), "create-pool-7"),
            )
            .await;
        assert!(
            other
                .reason("REQUEST_ID_REUSED")
                .error(409, 9)
                .contains("create-pool-7"),
            "{}",
            other.body
        );
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["origin_pool"]["usage"]["current"], 1);
    })
    .await;
}

#[tokio::test]
async fn release_stops_at_zero_and_reconcile_sets_the_truth() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.post(RESERVE, &admin, reserve_body("site", json!(2), "a"))
            .await
            .ok();
        let released = app
            .post(RELEASE, &admin, reserve_body("site", json!(5), "b"))
            .await;
        assert_eq!(released.ok()["current"], 0);
        let reconciled = app
            .put(USAGE, &admin, json!({"kind": "site", "current": 9}))
            .await;
        assert_eq!(
            reconciled.ok(),
            &json!({"kind": "site", "limit": 3, "current": 9, "replayed": false})
        );
        app.post(RESERVE, &admin, reserve_body("site", json!(1), "c"))
            .await
            .error(429, 8);
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["site"]["usage"]["current"], 9);
        app.put(USAGE, &admin, json!({"kind": "site", "current": 0}))
            .await
            .ok();
        app.put(USAGE, &admin, json!({"kind": "site", "current": -1}))
            .await
            .error(400, 3);
        app.put(USAGE, &admin, json!({"kind": "site"}))
            .await
            .error(400, 3);
    })
    .await;
}

#[tokio::test]
async fn resources_are_counted_in_exact_decimals() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "q"}, "spec": {"resource_limits": {"vcpu": {"maximum": 1}}}}),
        )
        .await;
        for i in 0..10 {
            let body = json!({"resource": "vcpu", "amount": 0.1, "request_id": format!("r{i}")});
            app.post(RESERVE, &admin, body).await.ok();
        }
        // Ten times 0.1 is exactly 1: no float drift lets an eleventh through.
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["resources"]["vcpu"]["usage"]["current"], 1.0);
        let body = json!({"resource": "vcpu", "amount": "0.000001", "request_id": "r10"});
        let refused = app.post(RESERVE, &admin, body).await;
        let msg = refused.reason("QUOTA_EXCEEDED").error(429, 8).to_owned();
        assert_eq!(
            msg,
            "quota exceeded for resource \"vcpu\": limit 1, current usage 1, requested 0.000001"
        );
        assert_eq!(
            refused.body["details"][0]["metadata"],
            json!({"resource": "vcpu", "limit": "1", "current": "1", "requested": "0.000001"})
        );
        let released = app
            .post(
                RELEASE,
                &admin,
                json!({"resource": "vcpu", "amount": "0.25", "request_id": "x"}),
            )
            .await;
        assert_eq!(
            released.ok(),
            &json!({"resource": "vcpu", "limit": 1.0, "current": 0.75, "request_id": "x", "replayed": false})
        );
    })
    .await;
}

#[tokio::test]
async fn reserve_validates_its_body() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let cases = [
            (
                json!({"kind": "site", "resource": "vcpu", "amount": 1, "request_id": "a"}),
                "kind, resource: give exactly one",
            ),
            (
                json!({"amount": 1, "request_id": "a"}),
                "kind, resource: one of them is required",
            ),
            (json!({"kind": "site", "request_id": "a"}), "amount: is required"),
            (
                json!({"kind": "site", "amount": 0, "request_id": "a"}),
                "amount: must be more than zero",
            ),
            (
                json!({"kind": "site", "amount": -1, "request_id": "a"}),
                "amount: must be more than zero",
            ),
            (
                json!({"kind": "site", "amount": 1.5, "request_id": "a"}),
                "amount: object counts are whole numbers",
            ),
            (
                json!({"kind": "site", "amount": 3000000000u64, "request_id": "a"}),
                "amount: at most",
            ),
            (
                json!({"kind": "site", "amount": "many", "request_id": "a"}),
                "amount: \"many\" is not a number",
            ),
            (json!({"kind": "site", "amount": 1}), "request_id: is required"),
            (
                json!({"kind": "site", "amount": 1, "request_id": "x".repeat(257)}),
                "request_id: must be at most 256",
            ),
            (
                json!({"kind": "bad kind", "amount": 1, "request_id": "a"}),
                "kind: key \"bad kind\" must match",
            ),
        ];
        for (body, expected) in cases {
            let msg = app
                .post(RESERVE, &admin, body.clone())
                .await
                .error(400, 3)
                .to_owned();
            assert!(
                msg.starts_with(expected),
                "{body}: expected {expected:?}, got {msg:?}"
            );
        }
        // Nothing was counted.
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["site"]["usage"]["current"], 0);
    })
    .await;
}

#[tokio::test]
async fn reservations_in_other_namespaces_count_against_the_tenant() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let shop_platform = app.token_with(&acme, Role::Platform, &["shop"], None).await;
        let resp = app
            .post(
                "/api/web/namespaces/shop/quota/reserve",
                &shop_platform,
                reserve_body("site", json!(1), "s1"),
            )
            .await;
        assert_eq!(resp.ok()["current"], 1);
        let usage = app.get("/api/web/namespaces/shop/quota/usage", &admin).await;
        assert_eq!(usage.ok()["objects"]["site"]["usage"]["current"], 1);
        app.post(
            "/api/web/namespaces/ghost/quota/reserve",
            &admin,
            reserve_body("site", json!(1), "g"),
        )
        .await
        .error(404, 5);
    })
    .await;
}

#[tokio::test]
async fn request_ids_are_remembered_for_the_idempotency_window_then_forgotten() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let ctx = app.job_context("pruner", None);
        let body = reserve_body("origin_pool", json!(1), "create-pool-1");
        assert_eq!(app.post(RESERVE, &admin, body.clone()).await.ok()["current"], 1);

        // Within the window (24 hours by default) the job keeps the record.
        app.clock.advance(jiff::SignedDuration::from_hours(23));
        let kept = tollgate_app::maintenance::prune(&ctx, usize::MAX).await.unwrap();
        assert_eq!(kept, 0);
        let replay = app.post(RESERVE, &admin, body.clone()).await;
        assert_eq!(
            (replay.ok()["replayed"].clone(), replay.ok()["current"].clone()),
            (json!(true), json!(1))
        );

        // After it, the record is gone and the same id is a new request.
        app.clock
            .advance(jiff::SignedDuration::from_hours(1) + jiff::SignedDuration::from_secs(1));
        let pruned = tollgate_app::maintenance::prune(&ctx, usize::MAX).await.unwrap();
        assert_eq!(pruned, 1);
        let again = app.post(RESERVE, &admin, body).await;
        assert_eq!(
            (again.ok()["replayed"].clone(), again.ok()["current"].clone()),
            (json!(false), json!(2))
        );
    })
    .await;
}

#[tokio::test]
async fn pruning_goes_in_batches_and_a_tick_does_a_bounded_amount() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = app.admin("acme").await;
        let now = tollgate_domain::clock::Clock::now(app.clock.as_ref());
        let default_quota = tollgate_domain::quota::QuotaSpec::default();
        for i in 0..2500 {
            let id = tollgate_domain::ids::RequestId::new(format!("r-{i}"));
            app.store
                .change_usage(&tollgate_store::UsageChange {
                    tenant_id: &acme.id,
                    family: tollgate_domain::quota::KeyFamily::Object,
                    key: "origin_pool",
                    op: tollgate_store::UsageOp::Reserve { amount: 1 },
                    request_id: Some(&id),
                    default_quota: &default_quota,
                    now,
                    block_reservations: false,
                })
                .await
                .unwrap();
        }
        app.clock.advance(jiff::SignedDuration::from_hours(25));
        let ctx = app.job_context("pruner", None);
        // Two batches of 1000 per call here; the rest on the next.
        assert_eq!(tollgate_app::maintenance::prune(&ctx, 2).await.unwrap(), 2000);
        assert_eq!(tollgate_app::maintenance::prune(&ctx, 2).await.unwrap(), 500);
        assert_eq!(tollgate_app::maintenance::prune(&ctx, 2).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_keys_total_is_capped_even_when_it_is_unlimited() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let max = i64::from(i32::MAX);
        // Many reservations of the largest amount one call may take.
        let first = app
            .post(RESERVE, &admin, reserve_body("widget", json!(max), "big-1"))
            .await;
        assert_eq!(first.ok()["current"], max);
        assert_eq!(first.ok()["limit"], -1);
        let over = app
            .post(RESERVE, &admin, reserve_body("widget", json!(1), "big-2"))
            .await;
        let msg = over.reason("QUOTA_EXCEEDED").error(429, 8);
        assert!(msg.contains("cannot count more than 2147483647"), "{msg}");
        assert_eq!(
            over.body["details"][0]["metadata"],
            json!({"kind": "widget", "limit": "-1", "current": "2147483647", "requested": "1",
                   "max_usage": "2147483647"})
        );
        // Resources too, in millionths: at most 10^9 units.
        let res =
            |amount: Value, id: &str| json!({"resource": "vcpu_hours", "amount": amount, "request_id": id});
        app.post(RESERVE, &admin, res(json!(1_000_000_000), "cpu-1"))
            .await
            .ok();
        let msg = app
            .post(RESERVE, &admin, res(json!(0.5), "cpu-2"))
            .await
            .error(429, 8)
            .to_owned();
        assert!(msg.contains("cannot count more than 1000000000"), "{msg}");
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["widget"]["usage"]["current"], max);
    })
    .await;
}

#[tokio::test]
async fn limits_follow_quota_changes_made_through_another_replica_at_once() {
    each_backend(|db| async move {
        use tower::ServiceExt;
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        assert_eq!(acme.quota_version, 0);
        // A second server on the same database: its own caches.
        let other_state = tollgate_api::state::AppState::with_options(
            app.store.clone(),
            app.clock.clone(),
            tollgate_api::state::Options::default(),
        );
        let other = tollgate_api::with_middleware(tollgate_api::routes().with_state(other_state));
        let send = |method: &str, body: Option<Value>| {
            let req = axum::http::Request::builder()
                .method(method)
                .uri("/api/web/namespaces/system/quotas")
                .header("authorization", format!("APIToken {admin}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
                .unwrap();
            other.clone().oneshot(req)
        };
        // This server has the limits (and keeps them while nothing changes).
        let before = app.get(USAGE, &admin).await;
        assert_eq!(before.ok()["objects"]["virtual_host"]["limit"]["maximum"], 25);
        assert_eq!(app.get(USAGE, &admin).await.ok(), before.ok());
        // The other server lowers a limit: the next answer here has it.
        let body = json!({"metadata": {"name": "tight"}, "spec": {"object_limits": {"virtual_host": {"maximum": 2}}}});
        assert_eq!(send("POST", Some(body)).await.unwrap().status(), 200);
        let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!(tenant.quota_version, 1, "each write to quota objects counts one");
        let after = app.get(USAGE, &admin).await;
        assert_eq!(after.ok()["objects"]["virtual_host"]["limit"]["maximum"], 2);
        // And it is enforced: a third virtual host is refused.
        for n in 0..2 {
            let ok = app.post(RESERVE, &admin, reserve_body("virtual_host", json!(1), &format!("r{n}"))).await;
            ok.ok();
        }
        let refused = app.post(RESERVE, &admin, reserve_body("virtual_host", json!(1), "r3")).await;
        assert_eq!(refused.status, 429, "{:?}", refused.body);
        // Deleted on the other server: the plan's default is back here.
        let req = axum::http::Request::builder()
            .method("DELETE")
            .uri("/api/web/namespaces/system/quotas/tight")
            .header("authorization", format!("APIToken {admin}"))
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(other.clone().oneshot(req).await.unwrap().status(), 200);
        assert_eq!(app.store.tenant_by_name("acme").await.unwrap().unwrap().quota_version, 2);
        assert_eq!(app.get(USAGE, &admin).await.ok()["objects"]["virtual_host"]["limit"]["maximum"], 25);
        // Another tenant's version does not move.
        let (_, _) = app.admin("globex").await;
        assert_eq!(app.store.tenant_by_name("globex").await.unwrap().unwrap().quota_version, 0);
    })
    .await;
}
