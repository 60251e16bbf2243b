//! A token of tenant B gets nothing of tenant A's billing: payment methods,
//! subscriptions, add-ons and plan transitions.

use serde_json::json;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    PAYMENT_METHODS, SUBSCRIBE, UNSUBSCRIBE, add_card, addon_names, current_plan, expect_roles, initiate,
    method_path, role_path, roles, subscriptions, to_organization, to_team,
};
use crate::support::TestApp;

#[tokio::test]
async fn tenant_b_sees_and_changes_nothing_of_tenant_as_billing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, a) = app.admin("acme").await;
        let (_, b) = app.admin("bravo").await;
        app.namespace(&acme, "shop").await;
        let a1 = add_card(&app, &a, "tok-a-1111", None).await;
        let a2 = add_card(
            &app,
            &a,
            "tok-a-2222",
            Some(json!("PAYMENT_METHOD_ROLE_SECONDARY")),
        )
        .await;
        app.post(SUBSCRIBE, &a, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        let (a_transition, _) = initiate(&app, &a, to_organization()).await;
        let a_methods = expect_roles(&[(&a1, "PRIMARY"), (&a2, "SECONDARY")]);
        let a_subs = subscriptions(&app, &a, "").await;

        // Payment methods: B's list is its own (empty); A's names are unknown to B.
        assert_eq!(roles(&app, &b).await, []);
        for name in [&a1, &a2] {
            for what in ["primary", "secondary", "swap-primary"] {
                app.post(&role_path(name, what), &b, json!({}))
                    .await
                    .error(404, 5);
            }
            app.delete(&method_path(name), &b).await.error(404, 5);
        }
        // B's own first method is primary: A's primary is not B's.
        let b1 = add_card(&app, &b, "tok-b-3333", None).await;
        assert_eq!(roles(&app, &b).await, expect_roles(&[(&b1, "PRIMARY")]));
        app.post(&role_path(&a2, "primary"), &b, json!({"name": a2}))
            .await
            .error(404, 5);

        // Subscriptions: B sees only its own; A's namespaces don't exist for B.
        let b_subs = subscriptions(&app, &b, "").await;
        assert_eq!(b_subs.len(), 1);
        assert_ne!(b_subs[0]["name"], a_subs[0]["name"]);
        app.get("/api/web/namespaces/shop/subscriptions/custom_list", &b)
            .await
            .error(404, 5);

        // Add-ons: A's subscription is not B's, and B's unsubscribe doesn't touch A's.
        let b_plan = current_plan(&app, &b).await;
        assert_eq!(
            addon_names(&b_plan, "included_addon_services"),
            ["f5xc_synthetic_monitoring_standard"]
        );
        app.post(UNSUBSCRIBE, &b, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();

        // Transitions: A's open transition shows nowhere in B's answers and
        // doesn't block B's own.
        assert_eq!(b_plan["state"], "STATE_READY");
        let (b_transition, _) = initiate(&app, &b, to_team("tok-b-4444")).await;
        assert_ne!(b_transition, a_transition);
        // Without a token, A's id reveals its state and nothing else.
        let state = app.transition_state(&a_transition).await;
        assert_eq!(state, "STATE_WAITING_FOR_APPROVAL");
        app.run_jobs().await;
        assert_eq!(app.transition_state(&b_transition).await, "STATE_FINISHED");
        assert_eq!(
            app.transition_state(&a_transition).await,
            "STATE_WAITING_FOR_APPROVAL"
        );
        assert_eq!(current_plan(&app, &b).await["name"], "team");

        // A is unchanged.
        assert_eq!(roles(&app, &a).await, a_methods);
        assert_eq!(subscriptions(&app, &a, "").await, a_subs);
        let a_plan = current_plan(&app, &a).await;
        assert_eq!(a_plan["name"], "individual");
        assert_eq!(a_plan["state"], "STATE_TRANSITION_PENDING");
        assert_eq!(
            addon_names(&a_plan, "included_addon_services"),
            ["f5xc_synthetic_monitoring_standard", "f5xc_waap_standard"]
        );
        // B's move to team registered B's card with B only.
        let b_roles = roles(&app, &b).await;
        assert_eq!(b_roles.len(), 2);
        let list = app.get(PAYMENT_METHODS, &a).await;
        assert!(!list.body.to_string().contains(&b1), "{}", list.body);
    })
    .await;
}
