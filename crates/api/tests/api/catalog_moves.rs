//! Moving tenants to a newer catalog version of their plan: scheduled by an
//! operator, effective at the start of each tenant's next billing period,
//! the current period billed at the version it started on.

use axum::http::Method;
use serde_json::json;
use tollgate_testkit::each_backend;

use crate::invoice_support::{billed_tenant, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::current;

const MOVES: &str = "/api/operator/catalog/moves";
const CURRENT_PLAN: &str = "/api/web/namespaces/system/usage_plans/current";

/// Version 2 of the built-in catalog: the individual plan costs 30.00.
fn v2() -> String {
    let text = tollgate_domain::catalog::BUILTIN_TOML;
    let fee = "usage_plan_type = \"INDIVIDUAL\"\ntenant_type = \"FREEMIUM\"\nflat_price_cents = 2500";
    assert_eq!(
        text.matches(fee).count(),
        1,
        "the built-in catalog's individual fee moved"
    );
    text.replacen(fee, &fee.replace("2500", "3000"), 1)
}

fn fee_of(bill: &serde_json::Value) -> String {
    bill["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["fixed"] == true)
        .map(|i| i["amount"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_moved_tenant_pays_the_new_version_from_its_next_period() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        // Periods from the 10th: January's runs to February 10.
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-10T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let (_, bravo) = billed_tenant(
            &app,
            "bravo",
            "individual",
            "2027-01-10T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let published = app
            .operator(
                Method::POST,
                "/api/operator/catalog/publish",
                Some(json!({"source": v2(), "source_name": "v2.toml"})),
            )
            .await;
        assert_eq!(published.ok()["version"], 2);

        app.clock.set(ts("2027-01-15T00:00:00Z"));
        let moved = app
            .operator(
                Method::POST,
                MOVES,
                Some(json!({"version": 2, "tenants": ["acme"]})),
            )
            .await;
        let moved = moved.ok();
        assert_eq!(moved["skipped"], json!([]));
        let item = &moved["scheduled"][0];
        assert_eq!(
            (
                &item["tenant"],
                &item["from_version"],
                &item["catalog_version"],
                &item["effective_at"]
            ),
            (
                &json!("acme"),
                &json!(1),
                &json!(2),
                &json!("2027-02-10T00:00:00Z")
            )
        );
        assert_eq!(item["scheduled_by"], "operator");
        let list = app.operator(Method::GET, MOVES, None).await;
        assert_eq!(list.ok()["items"].as_array().unwrap().len(), 1);

        // Until then, the tenant sees its version and the pending one; its
        // current period keeps the old price. Bravo has nothing pending.
        let plan = app.get(CURRENT_PLAN, &admin).await;
        let plan = plan.ok();
        let current_plan = &plan["plans"][0];
        assert_eq!(
            (
                &current_plan["catalog_version"],
                &current_plan["next_catalog_version"],
                &current_plan["next_catalog_version_at"]
            ),
            (&json!(1), &json!(2), &json!("2027-02-10T00:00:00Z"))
        );
        assert_eq!(plan["plans"][0]["flat_price"], 2500);
        let other = app.get(CURRENT_PLAN, &bravo).await;
        assert!(
            other.ok()["plans"][0].get("next_catalog_version").is_none(),
            "{}",
            other.body
        );
        assert_eq!(fee_of(&current(&app, &admin, "system", json!({})).await), "2500");

        // The period ends; the move takes effect with period close, and
        // January's invoice is at January's price.
        app.clock.set(ts("2027-02-12T00:00:00Z"));
        app.close_periods().await;
        let jan = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        assert_eq!(jan.totals.total, 2500);
        let plan = app.get(CURRENT_PLAN, &admin).await;
        let plan = plan.ok();
        assert_eq!(plan["plans"][0]["catalog_version"], 2);
        assert!(plan["plans"][0].get("next_catalog_version").is_none());
        assert_eq!(plan["plans"][0]["flat_price"], 3000);
        let feb = current(&app, &admin, "system", json!({})).await;
        assert_eq!(fee_of(&feb), "3000");
        assert_eq!(feb["usage_items"][0]["start_timestamp"], "2027-02-10T00:00:00Z");
        assert_eq!(fee_of(&current(&app, &bravo, "system", json!({})).await), "2500");
        assert!(
            app.operator(Method::GET, MOVES, None).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let audit = app
            .operator(Method::GET, "/api/operator/audit?tenant=acme", None)
            .await;
        let actions: Vec<&str> = audit.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .filter(|a| a.starts_with("catalog_move"))
            .collect();
        assert_eq!(actions, ["catalog_move.apply", "catalog_move.schedule"]);

        // Every tenant on a plan: bravo is scheduled, acme skipped (already
        // on the latest version, the default).
        let by_plan = app
            .operator(Method::POST, MOVES, Some(json!({"plan": "individual"})))
            .await;
        let by_plan = by_plan.ok();
        assert_eq!(by_plan["scheduled"][0]["tenant"], "bravo");
        assert_eq!(by_plan["scheduled"].as_array().unwrap().len(), 1);
        assert_eq!(
            by_plan["skipped"],
            json!([{"tenant": "acme", "reason": "already on catalog version 2"}])
        );
        // Cancelled: gone; cancelling again is a 404.
        app.operator(Method::DELETE, &format!("{MOVES}/bravo"), None)
            .await
            .ok();
        app.operator(Method::DELETE, &format!("{MOVES}/bravo"), None)
            .await
            .error(404, 5);
        assert!(
            app.operator(Method::GET, MOVES, None).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_move_request_must_name_tenants_or_a_plan_the_version_has() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-10T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let gone = tollgate_domain::catalog::BUILTIN_TOML.replacen("name = \"team\"", "name = \"teams\"", 1);
        app.operator(
            Method::POST,
            "/api/operator/catalog/publish",
            Some(json!({"source": gone})),
        )
        .await
        .ok();
        for (body, status, code, words) in [
            (json!({}), 400, 3, "tenants, plan"),
            (
                json!({"tenants": ["acme"], "plan": "individual"}),
                400,
                3,
                "not both",
            ),
            (json!({"tenants": []}), 400, 3, "at least one"),
            (
                json!({"version": 9, "tenants": ["acme"]}),
                404,
                5,
                "no catalog version 9",
            ),
            (json!({"tenants": ["nobody"]}), 404, 5, "nobody"),
            (json!({"plan": "team"}), 400, 3, "has no plan \"team\""),
        ] {
            let resp = app.operator(Method::POST, MOVES, Some(body.clone())).await;
            let msg = resp.error(status, code);
            assert!(msg.contains(words), "{body}: {msg}");
        }
        assert!(
            app.operator(Method::GET, MOVES, None).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // A tenant's token is not an operator's.
        let (_, admin) = billed_tenant(&app, "bravo", "individual", "2027-01-10T00:00:00Z", None).await;
        let resp = app.post(MOVES, &admin, json!({"tenants": ["acme"]})).await;
        assert!(resp.status == 401 || resp.status == 403, "{}", resp.body);
    })
    .await;
}

/// A plan transition replaces the subscription a move was for: the move is
/// dropped (audited as a cancel), never applied to the new plan.
#[tokio::test]
async fn a_plan_transition_drops_a_pending_move() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) =
            billed_tenant(&app, "acme", "individual", "2027-01-10T00:00:00Z", Some("tok-visa-4242")).await;
        app.operator(Method::POST, "/api/operator/catalog/publish", Some(json!({"source": v2()})))
            .await
            .ok();
        app.clock.set(ts("2027-01-15T00:00:00Z"));
        app.operator(Method::POST, MOVES, Some(json!({"tenants": ["acme"]}))).await.ok();
        let resp = app
            .post(
                crate::billing_support::TRANSITION,
                &admin,
                json!({"namespace": "system", "new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}}),
            )
            .await;
        resp.ok();
        app.clock.set(ts("2027-01-15T00:01:00Z"));
        assert_eq!(app.run_jobs().await, 1);
        assert!(app.operator(Method::GET, MOVES, None).await.ok()["items"].as_array().unwrap().is_empty());
        let plan = app.get(CURRENT_PLAN, &admin).await;
        let plan = &plan.ok()["plans"][0];
        // The new subscription is at the latest version already.
        assert_eq!((&plan["name"], &plan["catalog_version"]), (&json!("team"), &json!(2)));
        assert!(plan.get("next_catalog_version").is_none());
        let audit = app.operator(Method::GET, "/api/operator/audit?tenant=acme", None).await;
        let actions: Vec<&str> = audit.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .filter(|a| a.starts_with("catalog_move"))
            .collect();
        assert_eq!(actions, ["catalog_move.cancel", "catalog_move.schedule"]);
        // Nothing is due at the old boundary any more.
        app.clock.set(ts("2027-02-12T00:00:00Z"));
        app.close_periods().await;
        assert_eq!(app.get(CURRENT_PLAN, &admin).await.ok()["plans"][0]["name"], "team");
    })
    .await;
}
