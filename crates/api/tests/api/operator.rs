//! The operator API: its credential, and the audit trail.

use axum::body::Body;
use axum::http::Method;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    OPERATOR_TRANSITIONS, PAYMENT_METHODS, SUBSCRIBE, actor_of, initiate, to_organization, to_team,
};
use crate::support::{OPERATOR_TOKEN, TestApp, quota_body};

const AUDIT: &str = "/api/operator/audit";

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let resp = app.operator(Method::GET, &format!("{AUDIT}{query}"), None).await;
    resp.ok()["items"].as_array().unwrap().clone()
}

fn actions(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_operator_api_requires_the_operator_credential() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_organization()).await;
        let approve = format!("{OPERATOR_TRANSITIONS}/{id}/approve");
        let reject = format!("{OPERATOR_TRANSITIONS}/{id}/reject");
        let calls = [
            (Method::GET, OPERATOR_TRANSITIONS.to_owned()),
            (Method::GET, format!("{AUDIT}?tenant=acme")),
            (Method::POST, approve.clone()),
            (Method::POST, reject.clone()),
        ];
        let bearer_admin = format!("Bearer {admin}");
        let api_token_admin = format!("APIToken {admin}");
        let api_token_operator = format!("APIToken {OPERATOR_TOKEN}");
        let wrong_credentials: [Option<&str>; 7] = [
            None,
            Some("Bearer wrong-secret"),
            Some("Bearer"),
            Some(&bearer_admin),
            Some(&api_token_admin),
            Some(&api_token_operator),
            Some("Basic b3BlcmF0b3I6c2VjcmV0"),
        ];
        for (method, path) in &calls {
            for auth in wrong_credentials {
                let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
                let resp = app
                    .request(method.clone(), path, None, Body::empty(), &headers)
                    .await;
                let msg = resp.error(401, 16);
                assert!(
                    msg.contains("operator") || msg.contains("Bearer"),
                    "{auth:?}: {msg}"
                );
            }
        }
        // A tenant's token is no operator credential in any form, and the
        // refused approvals and rejections did nothing.
        assert_eq!(app.transition_state(&id).await, "STATE_WAITING_FOR_APPROVAL");
        // The scheme is case-insensitive.
        let lower = format!("bearer {OPERATOR_TOKEN}");
        app.request(
            Method::GET,
            OPERATOR_TRANSITIONS,
            None,
            Body::empty(),
            &[("authorization", lower.as_str())],
        )
        .await
        .ok();
        // And the operator's own calls work.
        let approved = app.operator(Method::POST, &approve, None).await;
        assert_eq!(approved.ok()["state"], "STATE_CREATING");
        // The operator credential is not an API token either.
        app.request(
            Method::GET,
            "/api/web/namespaces/system/usage_plans/current",
            Some(OPERATOR_TOKEN),
            Body::empty(),
            &[],
        )
        .await
        .error(401, 16);
    })
    .await;
}

#[tokio::test]
async fn the_audit_trail_lists_a_tenants_changes_newest_first_naming_who_made_them() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let (_, bravo) = app.admin("bravo").await;
        let actor = actor_of(&app, &acme, Role::Admin).await;
        let step = || app.clock.advance(SignedDuration::from_mins(1));

        step();
        app.create_quota(&admin, quota_body("prod", 10)).await;
        step();
        app.post(SUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        // Repeating a subscription changes nothing and records nothing.
        app.post(SUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        step();
        let pm = app
            .post(PAYMENT_METHODS, &admin, json!({"token": "tok-visa-4242"}))
            .await
            .ok()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        step();
        let (id, _) = initiate(&app, &admin, to_team("tok-mc-5555")).await;
        step();
        app.run_jobs().await;
        // Another tenant's changes are not acme's.
        app.create_quota(&bravo, quota_body("other", 1)).await;
        // Refused requests leave no trace.
        app.post(PAYMENT_METHODS, &admin, json!({"token": "tok-invalid-1"}))
            .await
            .error(400, 3);

        let items = audit(&app, "?tenant=acme").await;
        assert_eq!(
            actions(&items),
            [
                "plan_transition.finish",
                "payment_method.create",
                "plan_transition.create",
                "payment_method.create",
                "addon.subscribe",
                "quota.create",
                "token.create",
                "tenant.create",
            ]
        );
        let worker = "tollgate/transition-worker";
        let actors: Vec<&str> = items.iter().map(|i| i["actor"].as_str().unwrap()).collect();
        assert_eq!(
            actors,
            [
                worker, worker, &actor, &actor, &actor, &actor, "operator", "operator"
            ]
        );
        assert!(items.iter().all(|i| i["tenant"] == "acme"), "{items:?}");
        let times: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
        assert_eq!(
            times,
            [
                "2026-11-20T10:05:00Z",
                "2026-11-20T10:05:00Z",
                "2026-11-20T10:04:00Z",
                "2026-11-20T10:03:00Z",
                "2026-11-20T10:02:00Z",
                "2026-11-20T10:01:00Z",
                "2026-11-20T10:00:00Z",
                "2026-11-20T10:00:00Z",
            ]
        );
        assert_eq!(items[0]["target"], format!("plan_transition/{id}"));
        assert_eq!(items[0]["before"]["plan"], "individual");
        assert_eq!(items[0]["after"]["plan"], "team");
        assert_eq!(items[2]["target"], format!("plan_transition/{id}"));
        assert_eq!(items[2]["after"]["to_plan"], "team");
        assert_eq!(items[3]["target"], format!("payment_method/{pm}"));
        assert_eq!(items[3]["before"], json!({}));
        assert_eq!(items[3]["after"], json!({ pm.as_str(): "PRIMARY" }));
        assert_eq!(items[4]["target"], "addon/f5xc_waap_standard");
        assert_eq!(
            (&items[4]["before"], &items[4]["after"]),
            (&json!({"subscribed": false}), &json!({"subscribed": true}))
        );
        assert_eq!(items[5]["target"], "quota/prod");
        assert_eq!(items[5]["before"], Value::Null);
        // Nothing of acme's payment tokens is in the trail.
        let all_text = serde_json::to_string(&items).unwrap();
        assert!(!all_text.contains("tok-"), "{all_text}");

        // limit keeps the newest.
        let two = audit(&app, "?tenant=acme&limit=2").await;
        assert_eq!(two, items[..2]);
        // Without a tenant: everyone's, the catalog's publication included.
        let everything = audit(&app, "?limit=1000").await;
        let everything_actions = actions(&everything);
        assert_eq!(everything_actions[0], "quota.create");
        assert_eq!(everything[0]["tenant"], "bravo");
        assert_eq!(everything_actions.last(), Some(&"catalog.publish"));
        assert_eq!(everything.last().unwrap()["tenant"], Value::Null);

        for bad in ["0", "1001", "-1", "ten"] {
            let msg = app
                .operator(Method::GET, &format!("{AUDIT}?tenant=acme&limit={bad}"), None)
                .await
                .error(400, 3)
                .to_owned();
            assert!(msg.starts_with("limit:"), "{bad}: {msg}");
        }
        let msg = app
            .operator(Method::GET, &format!("{AUDIT}?tenant=nobody"), None)
            .await
            .error(404, 5)
            .to_owned();
        assert!(msg.contains("nobody"), "{msg}");
    })
    .await;
}
