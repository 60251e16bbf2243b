//! `usage_plans/custom_list` and `usage_plans/current`: the offered plans in
//! the caller's language, and the tenant's own plan with its add-ons.

use axum::body::Body;
use axum::http::Method as M;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::clock::Clock;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    CURRENT_PLAN, OPERATOR_TRANSITIONS, PLAN_LIST, SUBSCRIBE, addon_names, current_plan, initiate,
    to_organization, to_team,
};
use crate::snapshot;
use crate::support::{Resp, TestApp};

async fn list_in(app: &TestApp, tok: &str, accept_language: Option<&str>) -> Resp {
    let auth = format!("APIToken {tok}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(l) = accept_language {
        headers.push(("accept-language", l));
    }
    app.request(M::GET, PLAN_LIST, None, Body::empty(), &headers)
        .await
}

async fn current_in(app: &TestApp, tok: &str, accept_language: &str) -> Value {
    let auth = format!("APIToken {tok}");
    let headers = [
        ("authorization", auth.as_str()),
        ("accept-language", accept_language),
    ];
    app.request(M::GET, CURRENT_PLAN, None, Body::empty(), &headers)
        .await
        .ok()
        .clone()
}

/// The one localized list of a `custom_list` answer: its locale and plans.
fn only_list(body: &Value) -> (&str, &Vec<Value>) {
    let lists = body["usage_plans"].as_array().expect("usage_plans is a list");
    assert_eq!(lists.len(), 1, "{body}");
    (
        lists[0]["locale"].as_str().unwrap(),
        lists[0]["plans"].as_array().unwrap(),
    )
}

fn field<'a>(plans: &'a [Value], key: &str) -> Vec<&'a str> {
    plans.iter().map(|p| p[key].as_str().unwrap()).collect()
}

fn plan<'a>(plans: &'a [Value], name: &str) -> &'a Value {
    plans
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plan {name}"))
}

#[tokio::test]
async fn the_plan_list_offers_the_four_plans_in_catalog_order_with_their_full_shape() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let resp = list_in(&app, &admin, None).await;
        snapshot!("usage_plans_en_us", resp.ok());
        let (locale, plans) = only_list(resp.ok());
        assert_eq!(locale, "en-us");
        assert_eq!(
            field(plans, "name"),
            ["free", "individual", "team", "organization"]
        );
        assert_eq!(
            field(plans, "title"),
            ["Free", "Individual", "Teams", "Organization"]
        );
        for p in plans {
            assert_eq!(p["current"], true, "{}", p["name"]);
            assert_eq!(p["state"], "STATE_READY", "{}", p["name"]);
            assert_eq!(p["renewal_period_unit"], "PERIOD_MONTH", "{}", p["name"]);
            assert_eq!(p["default_quota"]["apigw_limits"], json!({}), "{}", p["name"]);
        }
        assert_eq!(
            field(plans, "usage_plan_type"),
            ["FREE", "INDIVIDUAL", "TEAM", "ORGANIZATION"]
        );
        assert_eq!(
            field(plans, "tenant_type"),
            ["FREEMIUM", "FREEMIUM", "ENTERPRISE", "ENTERPRISE"]
        );
        let prices: Vec<i64> = plans.iter().map(|p| p["flat_price"].as_i64().unwrap()).collect();
        assert_eq!(prices, [0, 2500, 30000, 250000], "prices are in cents");

        let free = plan(plans, "free");
        assert_eq!(free["billing_disabled"], true);
        assert_eq!(free["transition_flow"]["required_fields"], json!([]));

        let team = plan(plans, "team");
        assert_eq!(team["billing_disabled"], false);
        assert_eq!(team["trial_period"], 14);
        assert_eq!(team["trial_period_unit"], "PERIOD_DAY");
        assert_eq!(
            team["transition_flow"],
            json!({
                "method": "TRANSITION_METHOD_WIZARD",
                "required_fields": ["TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN"],
                "requires_manual_approval": false
            })
        );
        assert_eq!(
            addon_names(team, "included_addon_services"),
            [
                "f5xc_waap_standard",
                "f5xc_synthetic_monitoring_standard",
                "f5xc_content_delivery_network_standard"
            ]
        );
        assert_eq!(
            team["included_addon_services"][0],
            json!({"name": "f5xc_waap_standard", "display_name": "Web App & API Protection"})
        );
        assert!(addon_names(team, "allowed_addon_services").contains(&"f5xc_appstack_standard".to_owned()));
        assert_eq!(
            team["default_quota"]["object_limits"]["virtual_host"],
            json!({"maximum": 100})
        );
        assert_eq!(
            team["default_quota"]["api_limits"]["ves.io.schema.quota.API.Get"],
            json!({"rate": 200, "burst": 400, "unit": "SECOND"})
        );

        let org = plan(plans, "organization");
        assert_eq!(
            org["transition_flow"],
            json!({
                "method": "TRANSITION_METHOD_SUPPORT",
                "required_fields": ["TRANSITION_REQUIRED_FIELD_DOMAIN", "TRANSITION_REQUIRED_FIELD_CONTACTS"],
                "requires_manual_approval": true
            })
        );
        assert_eq!(
            org["default_quota"]["resource_limits"]["vcpu"],
            json!({"maximum": -1})
        );
    })
    .await;
}

#[tokio::test]
async fn accept_language_picks_the_locale_and_plans_without_a_translation_stay_english() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;

        let de = list_in(&app, &admin, Some("de-DE")).await;
        let (locale, plans) = only_list(de.ok());
        assert_eq!(locale, "de-de");
        assert_eq!(
            field(plans, "title"),
            ["Kostenlos", "Einzelperson", "Teams", "Organisation"]
        );
        assert_eq!(plan(plans, "free")["subtitle"], "Zum Ausprobieren");
        assert_eq!(
            plan(plans, "free")["description"],
            "Load Balancing und DNS für persönliche Projekte."
        );
        // Only the texts are translated.
        let en = list_in(&app, &admin, None).await;
        let (_, en_plans) = only_list(en.ok());
        for (d, e) in plans.iter().zip(en_plans) {
            for key in [
                "name",
                "flat_price",
                "included_addon_services",
                "default_quota",
                "transition_flow",
            ] {
                assert_eq!(d[key], e[key], "{key} of {}", e["name"]);
            }
        }

        // French exists for free and team only: the others keep their English texts.
        let fr = list_in(&app, &admin, Some("fr;q=0.9")).await;
        let (locale, plans) = only_list(fr.ok());
        assert_eq!(locale, "fr-fr");
        assert_eq!(
            field(plans, "title"),
            ["Gratuit", "Individual", "Équipes", "Organization"]
        );
        assert_eq!(plan(plans, "free")["subtitle"], "Pour essayer");
        assert_eq!(
            plan(plans, "individual")["subtitle"],
            "For developers and small sites"
        );

        // Unknown languages fall back to en-us; the most preferred known one wins.
        for (header, want) in [
            ("ja", "en-us"),
            ("ja, de;q=0.5", "de-de"),
            ("en-US, de;q=0.8", "en-us"),
            ("de;q=0.2, fr;q=0.8", "fr-fr"),
            ("de;q=0, ja", "en-us"),
        ] {
            let resp = list_in(&app, &admin, Some(header)).await;
            assert_eq!(only_list(resp.ok()).0, want, "Accept-Language: {header}");
        }
        let ja = list_in(&app, &admin, Some("ja")).await;
        assert_eq!(field(only_list(ja.ok()).1, "title")[0], "Free");

        // The current plan answers in the best locale of that plan alone.
        let current_de = current_in(&app, &admin, "de-DE").await;
        assert_eq!(current_de["locale"], "de-de");
        assert_eq!(current_de["plans"][0]["title"], "Einzelperson");
        let current_fr = current_in(&app, &admin, "fr-FR").await;
        assert_eq!(current_fr["locale"], "en-us", "individual has no French texts");
        assert_eq!(current_fr["plans"][0]["title"], "Individual");
    })
    .await;
}

#[tokio::test]
async fn the_current_plan_is_the_tenants_own_with_its_subscribed_addons_included() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let resp = app.get(CURRENT_PLAN, &admin).await;
        assert_eq!(resp.ok()["locale"], "en-us");
        let current = current_plan(&app, &admin).await;
        assert_eq!(current["name"], "individual");
        assert_eq!(current["current"], true);
        assert_eq!(current["state"], "STATE_READY");
        assert_eq!(current["flat_price"], 2500);
        // Without subscribed add-ons it is exactly the plan as listed, plus
        // the catalog version the tenant is on.
        assert_eq!(current["catalog_version"], 1);
        let mut listed = plan(only_list(list_in(&app, &admin, None).await.ok()).1, "individual").clone();
        listed["catalog_version"] = 1.into();
        assert_eq!(current, listed);
        assert_eq!(
            addon_names(&current, "included_addon_services"),
            ["f5xc_synthetic_monitoring_standard"]
        );
        assert_eq!(
            addon_names(&current, "allowed_addon_services"),
            [
                "f5xc_waap_standard",
                "f5xc_content_delivery_network_standard",
                "f5xc_web_app_scanning_standard"
            ]
        );

        app.post(SUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
            .await
            .ok();
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            current["included_addon_services"],
            json!([
                {"name": "f5xc_synthetic_monitoring_standard", "display_name": "Synthetic Monitoring"},
                {"name": "f5xc_waap_standard", "display_name": "Web App & API Protection"}
            ])
        );
        assert_eq!(
            addon_names(&current, "allowed_addon_services"),
            [
                "f5xc_content_delivery_network_standard",
                "f5xc_web_app_scanning_standard"
            ]
        );
        // The list of offered plans is the catalog's, whatever the tenant subscribed.
        let list = list_in(&app, &admin, None).await;
        let individual = plan(only_list(list.ok()).1, "individual");
        assert!(addon_names(individual, "allowed_addon_services").contains(&"f5xc_waap_standard".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn an_open_plan_transition_shows_as_transition_pending_on_the_tenants_plan() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (_, bravo) = app.admin("bravo").await;

        let (id, manual) = initiate(&app, &admin, to_organization()).await;
        assert!(manual);
        let current = current_plan(&app, &admin).await;
        assert_eq!(current["name"], "free");
        assert_eq!(current["state"], "STATE_TRANSITION_PENDING");
        let list = list_in(&app, &admin, None).await;
        let states = field(only_list(list.ok()).1, "state");
        assert_eq!(
            states,
            [
                "STATE_TRANSITION_PENDING",
                "STATE_READY",
                "STATE_READY",
                "STATE_READY"
            ]
        );
        // Another tenant's transition is not this one's.
        assert_eq!(current_plan(&app, &bravo).await["state"], "STATE_READY");

        // Rejected: ready again, still on free.
        app.operator(
            M::POST,
            &format!("{OPERATOR_TRANSITIONS}/{id}/reject"),
            Some(json!({"reason": "no"})),
        )
        .await
        .ok();
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            (current["name"].as_str(), current["state"].as_str()),
            (Some("free"), Some("STATE_READY"))
        );

        // A transition the worker runs is pending until it finishes.
        initiate(&app, &admin, to_team("tok-visa-4242")).await;
        assert_eq!(
            current_plan(&app, &admin).await["state"],
            "STATE_TRANSITION_PENDING"
        );
        assert_eq!(app.run_jobs().await, 1);
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            (current["name"].as_str(), current["state"].as_str()),
            (Some("team"), Some("STATE_READY"))
        );
    })
    .await;
}

#[tokio::test]
async fn monitor_and_billing_tokens_read_plans_and_platform_tokens_do_not() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = app.admin("acme").await;
        let monitor = app.token(&acme, Role::Monitor).await;
        let billing = app.token(&acme, Role::Billing).await;
        let platform = app.token(&acme, Role::Platform).await;
        for reader in [&monitor, &billing] {
            let list = app.get(PLAN_LIST, reader).await;
            assert_eq!(only_list(list.ok()).1.len(), 4);
            assert_eq!(current_plan(&app, reader).await["name"], "individual");
        }
        for path in [PLAN_LIST, CURRENT_PLAN] {
            let msg = app.get(path, &platform).await.error(403, 7).to_owned();
            assert!(msg.contains("platform"), "{msg}");
            app.request(M::GET, path, None, Body::empty(), &[])
                .await
                .error(401, 16);
        }
    })
    .await;
}

#[tokio::test]
async fn a_caller_preferring_any_english_gets_english_before_lower_ranked_languages() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        // The catalog's own texts are English: an English-speaking caller
        // whose region has no translation of its own still reads English, not
        // a language it ranked lower (RFC 4647 lookup: en-gb falls back to en).
        for header in ["en-GB, de;q=0.8", "en-AU, fr;q=0.5"] {
            let resp = list_in(&app, &admin, Some(header)).await;
            let (locale, plans) = only_list(resp.ok());
            assert_eq!(locale, "en-us", "Accept-Language: {header}");
            assert_eq!(field(plans, "title")[0], "Free", "Accept-Language: {header}");
            let current = current_in(&app, &admin, header).await;
            assert_eq!(current["locale"], "en-us", "Accept-Language: {header}");
            assert_eq!(
                current["plans"][0]["title"], "Individual",
                "Accept-Language: {header}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_catalog_is_offered_at_once_while_tenants_keep_the_version_they_subscribed_to() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let bravo = app.tenant_on("bravo", "free").await;
        let bravo_admin = app.token(&bravo, Role::Admin).await;
        let v2 = tollgate_domain::catalog::BUILTIN_TOML
            .replace("title = \"Individual\"", "title = \"Solo\"")
            .replace("flat_price_cents = 2500", "flat_price_cents = 2900");
        let version = app
            .store
            .publish_catalog(&v2, "v2.toml", "operator", app.clock.now())
            .await
            .unwrap();
        assert_eq!(version, 2);

        let list = list_in(&app, &admin, None).await;
        let individual = plan(only_list(list.ok()).1, "individual");
        assert_eq!(
            (individual["title"].as_str(), individual["flat_price"].as_i64()),
            (Some("Solo"), Some(2900))
        );
        // acme subscribed under version 1.
        let current = current_plan(&app, &admin).await;
        assert_eq!(
            (current["title"].as_str(), current["flat_price"].as_i64()),
            (Some("Individual"), Some(2500))
        );
        let subs = crate::billing_support::subscriptions(&app, &admin, "").await;
        assert_eq!(subs[0]["plan_name"], "Individual");

        // A move made now is to the plan as version 2 has it.
        initiate(
            &app,
            &bravo_admin,
            json!({"new_plan": "individual", "payload": {"payment_provider_token": "tok-visa-4242"}}),
        )
        .await;
        app.clock.advance(jiff::SignedDuration::from_mins(1));
        assert_eq!(app.run_jobs().await, 1);
        let current = current_plan(&app, &bravo_admin).await;
        assert_eq!(
            (current["title"].as_str(), current["flat_price"].as_i64()),
            (Some("Solo"), Some(2900))
        );
        let subs = crate::billing_support::subscriptions(&app, &bravo_admin, "").await;
        assert_eq!(subs[0]["plan_name"], "Solo");
        assert_eq!(subs[1]["plan_name"], "Free");
        assert_eq!(
            app.store
                .tenant_by_name("bravo")
                .await
                .unwrap()
                .unwrap()
                .catalog_version,
            2
        );
    })
    .await;
}
