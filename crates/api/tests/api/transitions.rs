//! Plan transitions: requested through the contract, run by the transition
//! job, approved or rejected by the operator, observed without a token.

use axum::body::Body;
use axum::http::Method;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::tenant::TenantType;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    OPERATOR_TRANSITIONS, PAYMENT_METHODS, SUBSCRIBE, TRANSITION, actor_of, addon_names, current_plan,
    initiate, only_method, roles, send_on, subscriptions, to_organization, to_team,
};
use crate::support::{Resp, TestApp, ts};

const USAGE: &str = "/api/web/namespaces/system/quota/usage";

async fn no_auth(app: &TestApp, query: &str) -> Resp {
    app.request(
        Method::GET,
        &format!("/no_auth/namespaces/system/billing/plan_transition{query}"),
        None,
        Body::empty(),
        &[],
    )
    .await
}

/// The operator's view of the transitions matching `query`.
async fn operator_list(app: &TestApp, query: &str) -> Vec<Value> {
    let resp = app
        .operator(Method::GET, &format!("{OPERATOR_TRANSITIONS}{query}"), None)
        .await;
    resp.ok()["items"].as_array().unwrap().clone()
}

async fn decide(app: &TestApp, id: &str, decision: &str, body: Option<Value>) -> Resp {
    app.operator(
        Method::POST,
        &format!("{OPERATOR_TRANSITIONS}/{id}/{decision}"),
        body,
    )
    .await
}

async fn stored_tenant(app: &TestApp, name: &str) -> tollgate_domain::tenant::Tenant {
    app.store.tenant_by_name(name).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_upgrade_from_free_runs_in_the_background_and_moves_the_tenant() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.post(
            SUBSCRIBE,
            &admin,
            json!({"f5xc_synthetic_monitoring_standard": {}}),
        )
        .await
        .ok();
        app.clock.advance(SignedDuration::from_hours(24));

        let resp = app
            .post(
                TRANSITION,
                &admin,
                json!({
                    "namespace": "system",
                    "new_plan": "team",
                    "payload": {
                        "payment_provider_token": "tok-visa-4242",
                        "subscribe_addon_services": ["f5xc_appstack_standard"]
                    }
                }),
            )
            .await;
        let id = resp.ok()["id"].as_str().unwrap().to_owned();
        assert_eq!(resp.ok(), &json!({"id": id, "requires_manual_approval": false}));
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        assert_eq!(app.transition_state(&id).await, "STATE_CREATING");
        // Nothing moved yet.
        assert_eq!(current_plan(&app, &admin).await["name"], "free");
        assert_eq!(roles(&app, &admin).await, []);

        app.clock.advance(SignedDuration::from_mins(1));
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");
        assert_eq!(
            app.run_jobs().await,
            0,
            "a finished transition does not run again"
        );

        let current = current_plan(&app, &admin).await;
        assert_eq!(current["name"], "team");
        assert_eq!(current["state"], "STATE_READY");
        assert_eq!(
            addon_names(&current, "included_addon_services"),
            [
                "f5xc_waap_standard",
                "f5xc_synthetic_monitoring_standard",
                "f5xc_content_delivery_network_standard",
                "f5xc_appstack_standard"
            ],
            "the plan's add-ons, then the requested one"
        );
        assert!(
            !addon_names(&current, "allowed_addon_services").contains(&"f5xc_appstack_standard".to_owned())
        );
        assert_eq!(
            app.store.addons(&acme.id).await.unwrap(),
            ["f5xc_appstack_standard"],
            "add-ons the new plan includes are no longer subscribed separately"
        );

        let usage = app.get(USAGE, &admin).await;
        assert_eq!(usage.ok()["objects"]["virtual_host"]["limit"]["maximum"], 100);
        assert_eq!(usage.ok()["objects"]["site"]["limit"]["maximum"], 10);

        let moved_at = "2026-11-21T10:01:00Z";
        let subs = subscriptions(&app, &admin, "").await;
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0]["plan_object_name"], "team");
        assert_eq!(subs[0]["current"], true);
        assert_eq!(subs[0]["start_date"], moved_at);
        assert_eq!(
            subs[0]["last_billing_period_end_date"], "2026-12-05T10:01:00Z",
            "team's trial"
        );
        assert_eq!(subs[1]["plan_object_name"], "free");
        assert_eq!(subs[1]["cancelled"], true);
        assert_eq!(subs[1]["cancellation_date"], moved_at);

        let method = only_method(&app, &admin).await;
        assert_eq!(method["role"], "PAYMENT_METHOD_ROLE_PRIMARY");
        assert_eq!(method["display"], "test card ending 4242");
        assert_eq!(method["contact"]["contact_type"], "PAYMENT");
        assert_eq!(method["created"], moved_at);

        let tenant = stored_tenant(&app, "acme").await;
        assert_eq!(
            (tenant.plan.as_str(), tenant.tenant_type),
            ("team", TenantType::Enterprise)
        );
    })
    .await;
}

#[tokio::test]
async fn requests_missing_what_the_target_plan_needs_are_refused_naming_every_field() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.namespace(&acme, "shop").await;
        let team = |payload: Value| json!({"namespace": "system", "new_plan": "team", "payload": payload});
        let cases = [
            (json!({"new_plan": "team"}), vec!["payload.payment_provider_token"]),
            (team(json!({})), vec!["payload.payment_provider_token"]),
            (team(json!({"payment_provider_token": ""})), vec!["payload.payment_provider_token"]),
            (team(json!({"payment_provider_token": "  "})), vec!["payload.payment_provider_token"]),
            (
                json!({"new_plan": "organization"}),
                vec!["payload.domain", "payload.billing_address"],
            ),
            (
                json!({"new_plan": "organization", "payload": {"domain": "acme.com", "billing_address": {"city": "Seattle"}}}),
                vec!["payload.billing_address.address1"],
            ),
            (
                json!({"new_plan": "organization", "payload": {
                    "domain": "not a host",
                    "billing_address": {"address1": "1 Main St", "city": "Seattle", "country": "US"}
                }}),
                vec!["payload.domain"],
            ),
            (json!({"new_plan": "gold"}), vec!["new_plan", "gold"]),
            (json!({"new_plan": "free"}), vec!["new_plan", "already"]),
            (json!({"new_plan": ""}), vec!["new_plan: is required"]),
            (json!({"payload": {}}), vec!["new_plan: is required"]),
            (
                json!({"new_plan": "team", "namespace": "shop", "payload": {"payment_provider_token": "tok-1"}}),
                vec!["namespace:"],
            ),
            (
                team(json!({"payment_provider_token": "tok-1", "subscribe_addon_services": ["f5xc_big_ip_irule_standard"]})),
                vec!["payload.subscribe_addon_services", "f5xc_big_ip_irule_standard"],
            ),
            (
                team(json!({"payment_provider_token": "tok-1", "unsubscribe_addon_services": ["f5xc_waap_standard"]})),
                vec!["payload.unsubscribe_addon_services", "included"],
            ),
            (
                team(json!({"payment_provider_token": "tok-1", "deletion_reason": "REASON_BOREDOM"})),
                vec!["payload.deletion_reason"],
            ),
        ];
        for (body, fields) in cases {
            let msg = app.post(TRANSITION, &admin, body.clone()).await.error(400, 3).to_owned();
            for f in fields {
                assert!(msg.contains(f), "{body}: {msg:?} should name {f}");
            }
        }
        // Plan transitions live in system only.
        let msg = app
            .post(
                "/api/web/namespaces/shop/billing/plan_transition",
                &admin,
                to_team("tok-visa-4242"),
            )
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("namespace:"), "{msg}");
        // Only admin and billing tokens may ask.
        for role in [Role::Monitor, Role::Platform] {
            let other = app.token(&acme, role).await;
            app.post(TRANSITION, &other, to_team("tok-visa-4242"))
                .await
                .error(403, 7);
        }
        // Nothing was recorded, nothing is pending.
        assert_eq!(operator_list(&app, "?tenant=acme").await, Vec::<Value>::new());
        assert_eq!(current_plan(&app, &admin).await["state"], "STATE_READY");
        assert_eq!(app.run_jobs().await, 0);
        // A billing token may.
        let billing = app.token(&acme, Role::Billing).await;
        initiate(&app, &billing, to_team("tok-visa-4242")).await;
    })
    .await;
}

#[tokio::test]
async fn only_one_transition_may_be_open_at_a_time() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (first, _) = initiate(&app, &admin, to_team("tok-visa-4242")).await;
        for body in [
            to_team("tok-visa-4242"),
            to_organization(),
            json!({"new_plan": "individual", "payload": {"payment_provider_token": "tok-1"}}),
        ] {
            let msg = app
                .post(TRANSITION, &admin, body)
                .await
                .reason("TRANSITION_ALREADY_OPEN")
                .error(409, 9)
                .to_owned();
            assert!(msg.contains("open"), "{msg}");
        }
        assert_eq!(operator_list(&app, "?tenant=acme").await.len(), 1);
        app.clock.advance(SignedDuration::from_mins(1));
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(app.transition_state(&first).await, "STATE_FINISHED");
        // Once it ended, the next may start: back down to free.
        let (second, manual) = initiate(&app, &admin, json!({"new_plan": "free"})).await;
        assert!(!manual);
        assert_ne!(first, second);
        app.run_jobs().await;
        assert_eq!(current_plan(&app, &admin).await["name"], "free");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_open_only_one_transition() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let body = if i % 2 == 0 {
                    to_team("tok-visa-4242")
                } else {
                    to_organization()
                };
                tokio::spawn(send_on(
                    app.router.clone(),
                    Method::POST,
                    TRANSITION.to_owned(),
                    admin.clone(),
                    Some(body),
                ))
            })
            .collect();
        let mut accepted = Vec::new();
        for done in futures::future::join_all(tasks).await {
            let (status, body) = done.unwrap();
            match status {
                200 => accepted.push(body["id"].as_str().unwrap().to_owned()),
                _ => assert_eq!(
                    (status, &body["code"], &body["details"][0]["reason"]),
                    (409, &json!(9), &json!("TRANSITION_ALREADY_OPEN")),
                    "{body}"
                ),
            }
        }
        assert_eq!(accepted.len(), 1, "{accepted:?}");
        let items = operator_list(&app, "?tenant=acme").await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], accepted[0].as_str());
    })
    .await;
}

#[tokio::test]
async fn a_token_the_provider_refuses_fails_the_transition_and_changes_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        // A token the provider does not know is refused with the request,
        // naming the field; no transition is recorded.
        let answer = app.post(TRANSITION, &admin, to_team("tok-invalid-x")).await;
        let refused = answer.error(400, 3);
        assert!(
            refused.starts_with("payload.payment_provider_token: refused by the payment provider"),
            "{refused}"
        );
        assert!(operator_list(&app, "?tenant=acme").await.is_empty());
        // One it knows is registered by the worker, which may still refuse it
        // (a card declined when attached).
        let (id, _) = initiate(&app, &admin, to_team("tok-unattachable-x")).await;
        assert_eq!(app.transition_state(&id).await, "STATE_CREATING");
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(app.transition_state(&id).await, "STATE_FAILED");

        let current = current_plan(&app, &admin).await;
        assert_eq!(
            (current["name"].as_str(), current["state"].as_str()),
            (Some("free"), Some("STATE_READY"))
        );
        assert_eq!(subscriptions(&app, &admin, "").await.len(), 1);
        assert_eq!(roles(&app, &admin).await, []);
        let tenant = stored_tenant(&app, "acme").await;
        assert_eq!(
            (tenant.plan.as_str(), tenant.tenant_type),
            ("free", TenantType::Freemium)
        );
        let items = operator_list(&app, "?tenant=acme").await;
        assert_eq!(items[0]["state"], "STATE_FAILED");
        let reason = items[0]["reason"].as_str().unwrap();
        assert!(reason.contains("declined when it was attached"), "{reason}");
        // A failed transition is closed: the tenant may try again.
        let (retry, _) = initiate(&app, &admin, to_team("tok-visa-4242")).await;
        app.run_jobs().await;
        assert_eq!(app.transition_state(&retry).await, "STATE_FINISHED");
        assert_eq!(app.transition_state(&id).await, "STATE_FAILED");
    })
    .await;
}

#[tokio::test]
async fn a_card_that_declines_charges_is_accepted_at_registration() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_team("tok-declined-1")).await;
        app.run_jobs().await;
        assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");
        assert_eq!(current_plan(&app, &admin).await["name"], "team");
        let method = only_method(&app, &admin).await;
        assert_eq!(method["role"], "PAYMENT_METHOD_ROLE_PRIMARY");
        assert_eq!(app.provider.successful_charges(), []);
    })
    .await;
}

#[tokio::test]
async fn the_new_payment_method_of_a_transition_becomes_primary() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let old = app
            .post(PAYMENT_METHODS, &admin, json!({"token": "tok-old-1111"}))
            .await
            .ok()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        app.clock.advance(SignedDuration::from_secs(1));
        initiate(&app, &admin, to_team("tok-new-2222")).await;
        app.run_jobs().await;
        let after = roles(&app, &admin).await;
        assert_eq!(after.len(), 2);
        assert_eq!(after[0], (old, "NORMAL".to_owned()));
        assert_eq!(after[1].1, "PRIMARY");
        let methods = app.store.payment_methods(&acme.id).await.unwrap();
        assert_eq!(methods[1].token, "tok-new-2222");
    })
    .await;
}

#[tokio::test]
async fn an_organization_upgrade_waits_for_the_operator_to_approve_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let actor = actor_of(&app, &acme, Role::Admin).await;
        let (id, manual) = initiate(&app, &admin, to_organization()).await;
        assert!(manual);
        assert_eq!(app.transition_state(&id).await, "STATE_WAITING_FOR_APPROVAL");
        assert_eq!(app.run_jobs().await, 0, "the worker leaves it alone");
        assert_eq!(app.transition_state(&id).await, "STATE_WAITING_FOR_APPROVAL");
        assert_eq!(
            current_plan(&app, &admin).await["state"],
            "STATE_TRANSITION_PENDING"
        );

        let waiting = operator_list(&app, "?state=WAITING_FOR_APPROVAL").await;
        assert_eq!(
            waiting,
            [json!({
                "id": id,
                "tenant": "acme",
                "from_plan": "free",
                "to_plan": "organization",
                "state": "STATE_WAITING_FOR_APPROVAL",
                "requested_by": actor,
                "created": "2026-11-20T10:00:00Z",
                "updated": "2026-11-20T10:00:00Z",
                "domain": "acme.com"
            })]
        );
        assert_eq!(
            operator_list(&app, "?state=STATE_WAITING_FOR_APPROVAL").await,
            waiting
        );

        app.clock.advance(SignedDuration::from_hours(2));
        let approved = decide(&app, &id, "approve", None).await;
        assert_eq!(approved.ok()["state"], "STATE_CREATING");
        assert_eq!(approved.ok()["updated"], "2026-11-20T12:00:00Z");
        assert_eq!(app.transition_state(&id).await, "STATE_CREATING");
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");

        let current = current_plan(&app, &admin).await;
        assert_eq!(current["name"], "organization");
        assert_eq!(current["tenant_type"], "ENTERPRISE");
        let tenant = stored_tenant(&app, "acme").await;
        assert_eq!(tenant.tenant_type, TenantType::Enterprise);
        assert_eq!(tenant.domain.as_deref(), Some("acme.com"));
        let subs = subscriptions(&app, &admin, "?current=true").await;
        assert_eq!(subs[0]["plan_object_name"], "organization");
        assert_eq!(subs[0]["start_date"], "2026-11-20T12:00:00Z");

        // Decided once only.
        let msg = decide(&app, &id, "approve", None)
            .await
            .reason("TRANSITION_WRONG_STATE")
            .error(409, 9)
            .to_owned();
        assert!(msg.contains("is finished, not waiting for approval"), "{msg}");
        decide(&app, &id, "reject", Some(json!({"reason": "late"})))
            .await
            .reason("TRANSITION_WRONG_STATE")
            .error(409, 9);
        assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");
        for unknown in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
            decide(&app, &unknown, "approve", None).await.error(404, 5);
            decide(&app, &unknown, "reject", None).await.error(404, 5);
        }

        assert_eq!(
            operator_list(&app, "?state=WAITING_FOR_APPROVAL").await,
            Vec::<Value>::new()
        );
        let finished = operator_list(&app, "?state=FINISHED&tenant=acme").await;
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0]["id"], id.as_str());
        let msg = app
            .operator(Method::GET, &format!("{OPERATOR_TRANSITIONS}?state=DONE"), None)
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("state:"), "{msg}");
        app.operator(
            Method::GET,
            &format!("{OPERATOR_TRANSITIONS}?tenant=nobody"),
            None,
        )
        .await
        .error(404, 5);
    })
    .await;
}

#[tokio::test]
async fn a_rejected_transition_fails_with_the_operators_reason() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_organization()).await;
        let too_long = json!({"reason": "x".repeat(1025)});
        decide(&app, &id, "reject", Some(too_long)).await.error(400, 3);
        assert_eq!(app.transition_state(&id).await, "STATE_WAITING_FOR_APPROVAL");
        let rejected = decide(
            &app,
            &id,
            "reject",
            Some(json!({"reason": "domain not verified"})),
        )
        .await;
        assert_eq!(rejected.ok()["state"], "STATE_FAILED");
        assert_eq!(rejected.ok()["reason"], "domain not verified");
        assert_eq!(app.transition_state(&id).await, "STATE_FAILED");
        let items = operator_list(&app, "?tenant=acme").await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["reason"], "domain not verified");
        assert_eq!(items[0]["state"], "STATE_FAILED");
        assert_eq!(app.run_jobs().await, 0);
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            (current["name"].as_str(), current["state"].as_str()),
            (Some("free"), Some("STATE_READY"))
        );
        assert_eq!(stored_tenant(&app, "acme").await.domain, None);
        decide(&app, &id, "approve", None).await.error(409, 9);

        // Without a reason the operator is still named as the cause.
        app.clock.advance(SignedDuration::from_secs(1));
        let (again, _) = initiate(&app, &admin, to_organization()).await;
        let rejected = decide(&app, &again, "reject", None).await;
        assert_eq!(rejected.ok()["reason"], "rejected by the operator");
    })
    .await;
}

#[tokio::test]
async fn no_auth_reveals_only_the_state_and_only_for_a_known_id() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_organization()).await;
        assert_eq!(
            no_auth(&app, &format!("?id={id}")).await.ok(),
            &json!({"state": "STATE_WAITING_FOR_APPROVAL"})
        );
        // Upper case names the same id.
        let upper = id.to_uppercase();
        assert_eq!(
            no_auth(&app, &format!("?id={upper}")).await.ok(),
            &json!({"state": "STATE_WAITING_FOR_APPROVAL"})
        );
        let unknown = uuid::Uuid::new_v4();
        let msg = no_auth(&app, &format!("?id={unknown}"))
            .await
            .error(404, 5)
            .to_owned();
        assert!(msg.contains(&unknown.to_string()), "{msg}");
        no_auth(&app, "?id=not-a-uuid").await.error(404, 5);
        for query in ["", "?id=", "?other=1"] {
            let msg = no_auth(&app, query).await.error(400, 3).to_owned();
            assert!(msg.starts_with("id:"), "{query}: {msg}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_downgrade_records_the_deletion_reason_and_feedback() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "team").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.post(SUBSCRIBE, &admin, json!({"f5xc_appstack_standard": {}}))
            .await
            .ok();
        let (id, manual) = initiate(
            &app,
            &admin,
            json!({"namespace": "system", "new_plan": "free", "payload": {
                "deletion_reason": "REASON_NOT_JUSTIFY_COSTS",
                "deletion_feedback": "too pricey"
            }}),
        )
        .await;
        assert!(!manual);
        let items = operator_list(&app, "?tenant=acme").await;
        assert_eq!(items[0]["id"], id.as_str());
        assert_eq!(items[0]["from_plan"], "team");
        assert_eq!(items[0]["to_plan"], "free");
        assert_eq!(items[0]["deletion_reason"], "REASON_NOT_JUSTIFY_COSTS");
        assert_eq!(items[0]["deletion_feedback"], "too pricey");
        app.clock.advance(SignedDuration::from_mins(1));
        app.run_jobs().await;
        assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");
        let current = current_plan(&app, &admin).await;
        assert_eq!(current["name"], "free");
        assert_eq!(
            current["included_addon_services"],
            json!([]),
            "free does not allow AppStack"
        );
        assert_eq!(app.store.addons(&acme.id).await.unwrap(), Vec::<String>::new());
        assert_eq!(
            stored_tenant(&app, "acme").await.tenant_type,
            TenantType::Freemium
        );
        // Still there once finished.
        let items = operator_list(&app, "?tenant=acme").await;
        assert_eq!(items[0]["deletion_feedback"], "too pricey");

        // The reason by its number.
        let bravo = app.tenant_on("bravo", "team").await;
        let bravo_admin = app.token(&bravo, Role::Admin).await;
        initiate(
            &app,
            &bravo_admin,
            json!({"new_plan": "free", "payload": {"deletion_reason": 3}}),
        )
        .await;
        let items = operator_list(&app, "?tenant=bravo").await;
        assert_eq!(items[0]["deletion_reason"], "REASON_NOT_JUSTIFY_COSTS");
        assert_eq!(items[0]["deletion_feedback"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn a_transition_in_a_short_month_prorates_the_last_period_of_the_old_plan() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-31T12:00:00Z"));
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2027-03-15T12:00:00Z"));
        initiate(&app, &admin, to_team("tok-visa-4242")).await;
        assert_eq!(app.run_jobs().await, 1);

        let subs = subscriptions(&app, &admin, "").await;
        let (team, individual) = (&subs[0], &subs[1]);
        assert_eq!(individual["start_date"], "2027-01-31T12:00:00Z");
        assert_eq!(individual["cancellation_date"], "2027-03-15T12:00:00Z");
        // Jan 31 + 1 month is Feb 28; the one after starts Feb 28 and would
        // end Mar 31, but the subscription ended on Mar 15.
        let previous = individual["previous_billing_periods"].as_array().unwrap();
        assert_eq!(previous.len(), 1);
        assert_eq!(previous[0]["start_date"], "2027-01-31T12:00:00Z");
        assert_eq!(previous[0]["end_date"], "2027-02-28T12:00:00Z");
        assert_eq!(previous[0]["internal_end_date"], "2027-02-28T12:00:00Z");
        assert_eq!(
            individual["last_billing_period_start_date"],
            "2027-02-28T12:00:00Z"
        );
        assert_eq!(individual["last_billing_period_end_date"], "2027-03-15T12:00:00Z");
        assert_eq!(team["start_date"], "2027-03-15T12:00:00Z");
        assert_eq!(team["last_billing_period_end_date"], "2027-03-29T12:00:00Z");

        // Time passing changes nothing of the closed subscription.
        app.clock.set(ts("2027-05-01T00:00:00Z"));
        let later = subscriptions(&app, &admin, "").await;
        assert_eq!(&later[1], individual);
        let team_periods = later[0]["previous_billing_periods"].as_array().unwrap();
        let team_bounds: Vec<(&str, &str, bool)> = team_periods
            .iter()
            .map(|p| {
                (
                    p["start_date"].as_str().unwrap(),
                    p["end_date"].as_str().unwrap(),
                    p["trial"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            team_bounds,
            [
                ("2027-03-15T12:00:00Z", "2027-03-29T12:00:00Z", true),
                ("2027-03-29T12:00:00Z", "2027-04-29T12:00:00Z", false),
            ]
        );
        assert_eq!(later[0]["last_billing_period_start_date"], "2027-04-29T12:00:00Z");
        assert_eq!(later[0]["last_billing_period_end_date"], "2027-05-29T12:00:00Z");
    })
    .await;
}

#[tokio::test]
async fn a_subscription_started_on_a_leap_day_keeps_its_anchor() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2028-02-29T12:00:00Z"));
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2029-03-10T00:00:00Z"));
        let subs = subscriptions(&app, &admin, "").await;
        let previous = subs[0]["previous_billing_periods"].as_array().unwrap();
        let starts: Vec<&str> = previous
            .iter()
            .map(|p| p["start_date"].as_str().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "2028-02-29T12:00:00Z",
                "2028-03-29T12:00:00Z",
                "2028-04-29T12:00:00Z",
                "2028-05-29T12:00:00Z",
                "2028-06-29T12:00:00Z",
                "2028-07-29T12:00:00Z",
                "2028-08-29T12:00:00Z",
                "2028-09-29T12:00:00Z",
                "2028-10-29T12:00:00Z",
                "2028-11-29T12:00:00Z",
                "2028-12-29T12:00:00Z",
                "2029-01-29T12:00:00Z",
            ]
        );
        for w in previous.windows(2) {
            assert_eq!(w[0]["end_date"], w[1]["start_date"]);
        }
        assert_eq!(previous[11]["end_date"], "2029-02-28T12:00:00Z");
        assert_eq!(subs[0]["last_billing_period_start_date"], "2029-02-28T12:00:00Z");
        assert_eq!(subs[0]["last_billing_period_end_date"], "2029-03-29T12:00:00Z");
    })
    .await;
}

/// A plan's trial is granted once: going back to a plan the tenant already
/// tried starts a subscription without one.
#[tokio::test]
async fn a_plans_trial_is_granted_only_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let hop = |body: Value| {
            let (app, admin) = (&app, &admin);
            async move {
                app.clock.advance(SignedDuration::from_hours(1));
                let (id, _) = initiate(app, admin, body).await;
                assert_eq!(app.run_jobs().await, 1);
                assert_eq!(app.transition_state(&id).await, "STATE_FINISHED");
            }
        };
        hop(to_team("tok-visa-4242")).await;
        let first = subscriptions(&app, &admin, "?current=true").await;
        assert_eq!(
            first[0]["last_billing_period_end_date"], "2026-12-04T11:00:00Z",
            "14-day trial"
        );
        hop(json!({"new_plan": "free", "payload": {}})).await;
        hop(to_team("tok-visa-4242")).await;
        let again = subscriptions(&app, &admin, "?current=true").await;
        assert_eq!(again[0]["plan_object_name"], "team");
        // No trial: the first period is a whole month from the start.
        assert_eq!(again[0]["start_date"], "2026-11-20T13:00:00Z");
        assert_eq!(again[0]["last_billing_period_end_date"], "2026-12-20T13:00:00Z");
    })
    .await;
}
