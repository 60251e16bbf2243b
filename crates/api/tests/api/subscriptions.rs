//! `subscriptions/custom_list` (billing periods, trials, transitions) and
//! `addon/subscribe` / `addon/unsubscribe`.

use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    SUBSCRIBE, SUBSCRIPTIONS, UNSUBSCRIBE, addon_names, current_plan, initiate, subscriptions, to_team,
};
use crate::support::{START, TestApp, ts};

/// (start_date, end_date) of each previous billing period.
fn bounds(sub: &Value) -> Vec<(String, String)> {
    sub["previous_billing_periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start_date"].as_str().unwrap().to_owned(),
                p["end_date"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The add-ons of the tenant's current plan that are listed as included.
async fn included(app: &TestApp, tok: &str) -> Vec<String> {
    addon_names(&current_plan(app, tok).await, "included_addon_services")
}

#[tokio::test]
async fn a_new_tenant_has_one_current_subscription_in_any_of_its_namespaces() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let stored = app.store.subscriptions(&acme.id).await.unwrap();
        assert_eq!(stored.len(), 1);
        let expected = json!({"subscriptions": [{
            "name": stored[0].id,
            "plan_name": "Individual",
            "plan_object_name": "individual",
            "start_date": START,
            "current": true,
            "cancelled": false,
            "last_billing_period_start_date": START,
            "last_billing_period_end_date": "2026-12-20T10:00:00Z",
            "previous_billing_periods": []
        }]});
        assert_eq!(app.get(SUBSCRIPTIONS, &admin).await.ok(), &expected);
        // Subscriptions are the tenant's: every namespace answers the same.
        let in_shop = app
            .get("/api/web/namespaces/shop/subscriptions/custom_list", &admin)
            .await;
        assert_eq!(in_shop.ok(), &expected);
        let msg = app
            .get("/api/web/namespaces/nope/subscriptions/custom_list", &admin)
            .await
            .error(404, 5)
            .to_owned();
        assert!(msg.contains("nope"), "{msg}");
        // Readers may list; platform services may not.
        let monitor = app.token(&acme, Role::Monitor).await;
        assert_eq!(app.get(SUBSCRIPTIONS, &monitor).await.ok(), &expected);
        let platform = app.token(&acme, Role::Platform).await;
        app.get(SUBSCRIPTIONS, &platform).await.error(403, 7);
    })
    .await;
}

#[tokio::test]
async fn billing_periods_are_anchored_on_the_start_day_and_their_uids_are_stable() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2027-02-25T10:00:00Z"));
        let subs = subscriptions(&app, &admin, "").await;
        assert_eq!(subs.len(), 1);
        let sub = &subs[0];
        assert_eq!(
            bounds(sub),
            pairs(&[
                ("2026-11-20T10:00:00Z", "2026-12-20T10:00:00Z"),
                ("2026-12-20T10:00:00Z", "2027-01-20T10:00:00Z"),
                ("2027-01-20T10:00:00Z", "2027-02-20T10:00:00Z"),
            ])
        );
        assert_eq!(sub["last_billing_period_start_date"], "2027-02-20T10:00:00Z");
        assert_eq!(sub["last_billing_period_end_date"], "2027-03-20T10:00:00Z");
        assert_eq!(sub["start_date"], START);
        let mut uids = Vec::new();
        let names = ["inv-2026-11-0001", "inv-2026-12-0002", "inv-2027-01-0003"];
        for (p, name) in sub["previous_billing_periods"]
            .as_array()
            .unwrap()
            .iter()
            .zip(names)
        {
            // Whole periods: the internal bounds are the nominal ones.
            assert_eq!(p["internal_start_date"], p["start_date"], "{p}");
            assert_eq!(p["internal_end_date"], p["end_date"], "{p}");
            assert_eq!(p["trial"], false);
            // Each links its invoice, pending until a period close finalizes it.
            assert_eq!(p["invoices"], json!([name]), "{p}");
            assert_eq!(p["pending_invoice"], json!([name]), "{p}");
            assert_eq!(p["closed_invoice"], json!([]), "{p}");
            let uid = p["uid"].as_str().unwrap();
            uuid::Uuid::parse_str(uid).unwrap_or_else(|e| panic!("{uid}: {e}"));
            uids.push(uid.to_owned());
        }
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), 3, "each period has its own uid");
        // The same periods keep their uids, also once more periods exist.
        assert_eq!(&subscriptions(&app, &admin, "").await[0], sub);
        app.clock.advance(SignedDuration::from_hours(24 * 31));
        let later = subscriptions(&app, &admin, "").await;
        let later_periods = later[0]["previous_billing_periods"].as_array().unwrap();
        assert_eq!(later_periods.len(), 4);
        assert_eq!(
            &later_periods[..3],
            sub["previous_billing_periods"].as_array().unwrap().as_slice()
        );
        assert_eq!(later_periods[3]["start_date"], "2027-02-20T10:00:00Z");
        assert_eq!(later[0]["last_billing_period_start_date"], "2027-03-20T10:00:00Z");
    })
    .await;
}

#[tokio::test]
async fn a_plan_with_a_trial_starts_with_a_trial_period() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "team").await;
        let admin = app.token(&acme, Role::Admin).await;
        let subs = subscriptions(&app, &admin, "").await;
        assert_eq!(subs[0]["plan_object_name"], "team");
        assert_eq!(subs[0]["plan_name"], "Teams");
        assert_eq!(subs[0]["last_billing_period_start_date"], START);
        assert_eq!(
            subs[0]["last_billing_period_end_date"], "2026-12-04T10:00:00Z",
            "the trial lasts 14 days"
        );
        app.clock.advance(SignedDuration::from_hours(24 * 15));
        let subs = subscriptions(&app, &admin, "").await;
        let periods = subs[0]["previous_billing_periods"].as_array().unwrap();
        assert_eq!(periods.len(), 1);
        assert_eq!(periods[0]["trial"], true);
        assert_eq!(periods[0]["start_date"], START);
        assert_eq!(periods[0]["end_date"], "2026-12-04T10:00:00Z");
        // Paid periods are anchored on the end of the trial.
        assert_eq!(subs[0]["last_billing_period_start_date"], "2026-12-04T10:00:00Z");
        assert_eq!(subs[0]["last_billing_period_end_date"], "2027-01-04T10:00:00Z");
    })
    .await;
}

#[tokio::test]
async fn current_true_keeps_only_the_subscription_in_force_after_a_plan_transition() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.clock.advance(SignedDuration::from_hours(24 * 10));
        initiate(&app, &admin, to_team("tok-visa-4242")).await;
        app.clock.advance(SignedDuration::from_mins(5));
        assert_eq!(app.run_jobs().await, 1);
        let moved_at = "2026-11-30T10:05:00Z";
        app.clock.advance(SignedDuration::from_hours(1));

        let all = subscriptions(&app, &admin, "").await;
        assert_eq!(all.len(), 2);
        // Newest first.
        let (team, free) = (&all[0], &all[1]);
        assert_eq!(team["plan_object_name"], "team");
        assert_eq!(
            (&team["current"], &team["cancelled"], &team["cancellation_date"]),
            (&json!(true), &json!(false), &Value::Null)
        );
        assert!(
            team.get("cancellation_date").is_none(),
            "unset, so omitted: {team}"
        );
        assert_eq!(team["start_date"], moved_at);
        assert_eq!(free["plan_object_name"], "free");
        assert_eq!(free["plan_name"], "Free");
        assert_eq!(
            (&free["current"], &free["cancelled"], &free["cancellation_date"]),
            (&json!(false), &json!(true), &json!(moved_at))
        );
        assert_eq!(free["start_date"], START);
        assert_eq!(free["last_billing_period_end_date"], moved_at);
        assert_ne!(team["name"], free["name"]);

        for query in ["?current=true", "?current=1", "?current=TRUE"] {
            let current = subscriptions(&app, &admin, query).await;
            assert_eq!(current, std::slice::from_ref(team), "{query}");
        }
        for query in ["?current=false", "?current=0", "?current="] {
            assert_eq!(subscriptions(&app, &admin, query).await, all, "{query}");
        }
        let msg = app
            .get(&format!("{SUBSCRIPTIONS}?current=maybe"), &admin)
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("current:"), "{msg}");
    })
    .await;
}

#[tokio::test]
async fn an_allowed_addon_is_subscribed_once_and_unsubscribed_again() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let waap = json!({"f5xc_waap_standard": {}});
        assert_eq!(app.post(SUBSCRIBE, &admin, waap.clone()).await.ok(), &json!({}));
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard", "f5xc_waap_standard"]
        );
        // Repeating is harmless.
        assert_eq!(app.post(SUBSCRIBE, &admin, waap.clone()).await.ok(), &json!({}));
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard", "f5xc_waap_standard"]
        );
        // A second one; null fields count as absent.
        app.post(
            SUBSCRIBE,
            &admin,
            json!({"f5xc_web_app_scanning_standard": {}, "f5xc_waap_standard": null}),
        )
        .await
        .ok();
        let mut names = included(&app, &admin).await;
        names.sort();
        assert_eq!(
            names,
            [
                "f5xc_synthetic_monitoring_standard",
                "f5xc_waap_standard",
                "f5xc_web_app_scanning_standard"
            ]
        );

        assert_eq!(app.post(UNSUBSCRIBE, &admin, waap.clone()).await.ok(), &json!({}));
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            addon_names(&current, "included_addon_services"),
            [
                "f5xc_synthetic_monitoring_standard",
                "f5xc_web_app_scanning_standard"
            ]
        );
        assert!(addon_names(&current, "allowed_addon_services").contains(&"f5xc_waap_standard".to_owned()));
        // Unsubscribing again is harmless too.
        app.post(UNSUBSCRIBE, &admin, waap).await.ok();
        assert_eq!(
            included(&app, &admin).await,
            [
                "f5xc_synthetic_monitoring_standard",
                "f5xc_web_app_scanning_standard"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn an_addon_the_plan_does_not_offer_is_refused_with_403_naming_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for addon in ["f5xc_securemesh_advanced", "f5xc_appstack_standard"] {
            let msg = app
                .post(SUBSCRIBE, &admin, json!({ addon: {} }))
                .await
                .reason("ADDON_NOT_AVAILABLE")
                .error(403, 7)
                .to_owned();
            assert!(msg.contains(addon) && msg.contains("individual"), "{msg}");
        }
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"]
        );
    })
    .await;
}

#[tokio::test]
async fn an_included_addon_subscribes_as_a_no_op_and_cannot_be_unsubscribed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let synthetic = json!({"f5xc_synthetic_monitoring_standard": {}});
        assert_eq!(
            app.post(SUBSCRIBE, &admin, synthetic.clone()).await.ok(),
            &json!({})
        );
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"],
            "listed once"
        );
        let msg = app
            .post(UNSUBSCRIBE, &admin, synthetic)
            .await
            .reason("ADDON_INCLUDED")
            .error(409, 9)
            .to_owned();
        assert!(
            msg.contains("f5xc_synthetic_monitoring_standard") && msg.contains("included"),
            "{msg}"
        );
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"]
        );
    })
    .await;
}

#[tokio::test]
async fn addon_requests_must_choose_exactly_one_addon_as_an_object() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for path in [SUBSCRIBE, UNSUBSCRIBE] {
            let msg = app.post(path, &admin, json!({})).await.error(400, 3).to_owned();
            assert!(msg.starts_with("addon_choice:"), "{msg}");
            let msg = app
                .post(
                    path,
                    &admin,
                    json!({"f5xc_waap_standard": {}, "f5xc_web_app_scanning_standard": {}}),
                )
                .await
                .error(400, 3)
                .to_owned();
            assert!(
                msg.starts_with("addon_choice:")
                    && msg.contains("f5xc_waap_standard")
                    && msg.contains("f5xc_web_app_scanning_standard"),
                "{msg}"
            );
            for body in [
                json!({"f5xc_waap_standard": 1}),
                json!({"f5xc_waap_standard": []}),
                json!({"f5xc_waap_standard": "yes"}),
            ] {
                let msg = app.post(path, &admin, body).await.error(400, 3).to_owned();
                assert!(msg.contains("f5xc_waap_standard"), "{msg}");
            }
            // An add-on this contract does not know is an unknown field,
            // ignored like any other: what is missing is the one-of.
            let msg = app
                .post(path, &admin, json!({"f5xc_gold_standard": {}}))
                .await
                .error(400, 3)
                .to_owned();
            assert!(
                msg.starts_with("addon_choice: exactly one of") && msg.contains("f5xc_waap_standard"),
                "{msg}"
            );
            app.request(
                axum::http::Method::POST,
                path,
                Some(&admin),
                "[{\"f5xc_waap_standard\": {}}]",
                &[],
            )
            .await
            .error(400, 3);
        }
        // None of it changed anything.
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"]
        );
    })
    .await;
}

#[tokio::test]
async fn only_admin_and_billing_tokens_change_addons() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        let monitor = app.token(&acme, Role::Monitor).await;
        let platform = app.token(&acme, Role::Platform).await;
        let billing = app.token(&acme, Role::Billing).await;
        let waap = json!({"f5xc_waap_standard": {}});
        for other in [&monitor, &platform] {
            app.post(SUBSCRIBE, other, waap.clone()).await.error(403, 7);
        }
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"]
        );
        app.post(SUBSCRIBE, &billing, waap.clone()).await.ok();
        for other in [&monitor, &platform] {
            app.post(UNSUBSCRIBE, other, waap.clone()).await.error(403, 7);
        }
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard", "f5xc_waap_standard"]
        );
        app.post(UNSUBSCRIBE, &billing, waap).await.ok();
        assert_eq!(
            included(&app, &admin).await,
            ["f5xc_synthetic_monitoring_standard"]
        );
    })
    .await;
}

/// A finalized period links its invoice as closed; the open one as pending.
#[tokio::test]
async fn finalized_periods_link_their_closed_invoice() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts("2027-01-22T00:00:00Z"));
        assert_eq!(app.close_periods().await, 2);
        let subs = subscriptions(&app, &admin, "").await;
        let links: Vec<(Value, Value)> = subs[0]["previous_billing_periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["closed_invoice"].clone(), p["pending_invoice"].clone()))
            .collect();
        assert_eq!(
            links,
            [
                (json!(["inv-2026-11-0001"]), json!([])),
                (json!(["inv-2026-12-0002"]), json!([]))
            ]
        );
    })
    .await;
}
