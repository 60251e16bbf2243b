//! Payment methods: create from a provider token, the list (an extension),
//! primary / secondary / swap-primary, delete, and who may do it.

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    PAYMENT_METHODS, add_card, assert_is_method_name, card, expect_roles, method_path, role_path, roles,
    send_on,
};
use crate::support::TestApp;

#[tokio::test]
async fn a_payment_method_is_created_from_a_provider_token_and_listed_without_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let created = app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242")).await;
        let name = created.ok()["name"].as_str().unwrap().to_owned();
        assert_eq!(created.ok(), &json!({"name": name}));
        assert_is_method_name(&name);

        let list = app.get(PAYMENT_METHODS, &admin).await;
        assert_eq!(
            list.ok(),
            &json!({"items": [{
                "name": name,
                "role": "PAYMENT_METHOD_ROLE_PRIMARY",
                "display": "test card ending 4242",
                "contact": {
                    "contact_type": "BILLING",
                    "address1": "1 Main St",
                    "address2": "",
                    "city": "Paris",
                    "state": "",
                    "state_code": "",
                    "county": "",
                    "zip_code": "",
                    "country": "FR",
                    "phone_number": ""
                },
                "created": "2026-11-20T10:00:00Z"
            }]})
        );
        assert!(
            !list.body.to_string().contains("tok-visa"),
            "the token is never shown: {}",
            list.body
        );
        // Registering a card charges nothing.
        assert_eq!(app.provider.successful_charges(), []);

        // Another card gets another name; without a contact, a MAILING one.
        let second = app
            .post(PAYMENT_METHODS, &admin, json!({"token": "tok-mc-5555"}))
            .await;
        let second_name = second.ok()["name"].as_str().unwrap();
        assert_ne!(second_name, name);
        let list = app.get(PAYMENT_METHODS, &admin).await;
        let other = list.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == second_name)
            .unwrap()
            .clone();
        assert_eq!(other["role"], "PAYMENT_METHOD_ROLE_NORMAL");
        assert_eq!(other["display"], "test card ending 5555");
        assert_eq!(other["contact"]["contact_type"], "MAILING");
    })
    .await;
}

#[tokio::test]
async fn the_first_method_is_primary_whatever_role_is_requested_and_later_roles_displace() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let a = add_card(
            &app,
            &admin,
            "tok-a-0001",
            Some(json!("PAYMENT_METHOD_ROLE_SECONDARY")),
        )
        .await;
        assert_eq!(roles(&app, &admin).await, expect_roles(&[(&a, "PRIMARY")]));
        let b = add_card(&app, &admin, "tok-b-0002", None).await;
        // A role by number, as proto3 JSON allows ("2" and 2 are SECONDARY).
        let c = add_card(&app, &admin, "tok-c-0003", Some(json!("2"))).await;
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "PRIMARY"), (&b, "NORMAL"), (&c, "SECONDARY")])
        );
        let d = add_card(&app, &admin, "tok-d-0004", Some(json!(2))).await;
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "PRIMARY"), (&b, "NORMAL"), (&c, "NORMAL"), (&d, "SECONDARY")])
        );
        let e = add_card(&app, &admin, "tok-e-0005", Some(json!(1))).await;
        let f = add_card(
            &app,
            &admin,
            "tok-f-0006",
            Some(json!("PAYMENT_METHOD_ROLE_UNKNOWN")),
        )
        .await;
        let g = add_card(&app, &admin, "tok-g-0007", Some(json!(0))).await;
        let h = add_card(&app, &admin, "tok-h-0008", Some(json!("3"))).await;
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[
                (&a, "NORMAL"),
                (&b, "NORMAL"),
                (&c, "NORMAL"),
                (&d, "SECONDARY"),
                (&e, "PRIMARY"),
                (&f, "NORMAL"),
                (&g, "NORMAL"),
                (&h, "NORMAL"),
            ])
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_create_requests_are_refused_naming_the_field_and_store_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let with = |patch: Value| {
            let mut body = card("tok-visa-4242");
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let cases = [
            (with(json!({"token": "tok-invalid-1"})), "token:"),
            (with(json!({"token": "4242424242424242"})), "token:"),
            (with(json!({"token": ""})), "token: is required"),
            (with(json!({"token": "   "})), "token: is required"),
            (json!({"contact": {"city": "Paris"}}), "token: is required"),
            (with(json!({"token": "tok-".repeat(300)})), "token:"),
            (with(json!({"role": "BOSS"})), "role:"),
            (with(json!({"role": 7})), "role:"),
            (with(json!({"namespace": "shop"})), "namespace:"),
            (
                with(json!({"contact": {"contact_type": "HOME"}})),
                "contact.contact_type",
            ),
            (
                with(json!({"contact": {"city": "x".repeat(300)}})),
                "contact.city",
            ),
        ];
        for (body, field) in cases {
            let msg = app
                .post(PAYMENT_METHODS, &admin, body.clone())
                .await
                .error(400, 3)
                .to_owned();
            assert!(msg.contains(field), "{body}: {msg}");
        }
        // Payment methods live in system only.
        let msg = app
            .post(
                "/api/web/namespaces/shop/billing/payment_methods",
                &admin,
                card("tok-visa-4242"),
            )
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("namespace:"), "{msg}");
        app.get("/api/web/namespaces/shop/billing/payment_methods", &admin)
            .await
            .error(400, 3);
        app.post(
            "/api/web/namespaces/nope/billing/payment_methods",
            &admin,
            card("tok-visa-4242"),
        )
        .await
        .error(404, 5);
        assert_eq!(roles(&app, &admin).await, []);
        assert!(app.store.payment_methods(&acme.id).await.unwrap().is_empty());
        // A field the contract does not have is ignored, like any unknown
        // field; a card number sent by mistake is kept nowhere.
        let created = app
            .post(
                PAYMENT_METHODS,
                &admin,
                with(json!({"card_number": "4242424242424242"})),
            )
            .await;
        created.ok();
        let listed = app.get(PAYMENT_METHODS, &admin).await;
        for body in [&created.body, &listed.body] {
            assert!(!body.to_string().contains("4242424242424242"), "{body}");
        }
        let stored = app.store.payment_methods(&acme.id).await.unwrap();
        assert!(!format!("{stored:?}").contains("4242424242424242"), "{stored:?}");
    })
    .await;
}

#[tokio::test]
async fn primary_secondary_and_swap_primary_move_the_roles() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let a = add_card(&app, &admin, "tok-a-0001", None).await;
        let b = add_card(&app, &admin, "tok-b-0002", None).await;
        let c = add_card(&app, &admin, "tok-c-0003", None).await;
        let call = |name: &str, what: &str, body: Value| {
            let path = role_path(name, what);
            let app = &app;
            let admin = &admin;
            async move { app.post(&path, admin, body).await }
        };

        let done = call(&b, "secondary", json!({"name": b, "namespace": "system"})).await;
        assert_eq!(done.ok(), &json!({}));
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "PRIMARY"), (&b, "SECONDARY"), (&c, "NORMAL")])
        );
        assert_eq!(call(&c, "primary", json!({})).await.ok(), &json!({}));
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "SECONDARY"), (&c, "PRIMARY")])
        );
        // Swapping by the primary's name…
        call(&c, "swap-primary", json!({"name": c})).await.ok();
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "PRIMARY"), (&c, "SECONDARY")])
        );
        // …or by the secondary's, with no body at all.
        app.request(
            Method::POST,
            &role_path(&c, "swap-primary"),
            Some(&admin),
            Body::empty(),
            &[],
        )
        .await
        .ok();
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "SECONDARY"), (&c, "PRIMARY")])
        );
        // Repeating a role call changes nothing.
        call(&c, "primary", json!({})).await.ok();
        call(&b, "secondary", json!({})).await.ok();
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "SECONDARY"), (&c, "PRIMARY")])
        );
        // The primary made secondary hands primary to the secondary.
        call(&c, "secondary", json!({})).await.ok();
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "PRIMARY"), (&c, "SECONDARY")])
        );
        // A normal method is neither side of a swap.
        let msg = call(&a, "swap-primary", json!({}))
            .await
            .reason("PAYMENT_METHOD_NOT_PRIMARY_OR_SECONDARY")
            .error(409, 9)
            .to_owned();
        assert!(msg.contains(&a), "{msg}");
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&a, "NORMAL"), (&b, "PRIMARY"), (&c, "SECONDARY")])
        );
    })
    .await;
}

#[tokio::test]
async fn role_calls_refuse_unknown_names_mismatched_bodies_and_impossible_changes() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let a = add_card(&app, &admin, "tok-a-0001", None).await;
        let ghost = "pm-000000000000";
        for what in ["primary", "secondary", "swap-primary"] {
            let msg = app
                .post(&role_path(ghost, what), &admin, json!({}))
                .await
                .error(404, 5)
                .to_owned();
            assert!(msg.contains(ghost), "{msg}");
            let msg = app
                .post(&role_path(&a, what), &admin, json!({"name": ghost}))
                .await
                .error(400, 3)
                .to_owned();
            assert!(
                msg.starts_with("name:") && msg.contains(ghost) && msg.contains(&a),
                "{msg}"
            );
            let msg = app
                .post(&role_path(&a, what), &admin, json!({"namespace": "shop"}))
                .await
                .error(400, 3)
                .to_owned();
            assert!(msg.starts_with("namespace:"), "{msg}");
            // An unknown field is ignored: the answer is the one without it.
            let plain = app.post(&role_path(&a, what), &admin, json!({})).await;
            let extra = app
                .post(&role_path(&a, what), &admin, json!({"color": "red"}))
                .await;
            assert_eq!((extra.status, &extra.body), (plain.status, &plain.body), "{what}");
            app.post(
                &format!("/api/web/namespaces/shop/billing/payment_method/{a}/{what}"),
                &admin,
                json!({}),
            )
            .await
            .error(400, 3);
        }
        app.delete(&method_path(ghost), &admin).await.error(404, 5);

        // With one method there is nothing to swap with, and it must stay primary.
        let msg = app
            .post(&role_path(&a, "swap-primary"), &admin, json!({}))
            .await
            .reason("NO_SECONDARY_PAYMENT_METHOD")
            .error(409, 9)
            .to_owned();
        assert!(msg.contains("secondary"), "{msg}");
        let msg = app
            .post(&role_path(&a, "secondary"), &admin, json!({"name": a}))
            .await
            .reason("ONLY_PAYMENT_METHOD")
            .error(409, 9)
            .to_owned();
        assert!(msg.contains("only one"), "{msg}");
        assert_eq!(roles(&app, &admin).await, expect_roles(&[(&a, "PRIMARY")]));
    })
    .await;
}

#[tokio::test]
async fn deleting_the_primary_promotes_a_successor_and_the_last_method_of_a_paid_plan_stays() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let a = add_card(&app, &admin, "tok-a-0001", None).await;
        let b = add_card(&app, &admin, "tok-b-0002", None).await;
        let c = add_card(
            &app,
            &admin,
            "tok-c-0003",
            Some(json!("PAYMENT_METHOD_ROLE_SECONDARY")),
        )
        .await;

        assert_eq!(app.delete(&method_path(&a), &admin).await.ok(), &json!({}));
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&b, "NORMAL"), (&c, "PRIMARY")]),
            "the secondary succeeds the primary"
        );
        app.delete(&method_path(&c), &admin).await.ok();
        assert_eq!(
            roles(&app, &admin).await,
            expect_roles(&[(&b, "PRIMARY")]),
            "without a secondary, the oldest other method succeeds"
        );
        // Individual costs 25.00 a month: its only method stays.
        let msg = app
            .delete(&method_path(&b), &admin)
            .await
            .reason("PAYMENT_METHOD_REQUIRED")
            .error(409, 9)
            .to_owned();
        assert!(msg.contains(&b) && msg.contains("paid"), "{msg}");
        assert_eq!(roles(&app, &admin).await, expect_roles(&[(&b, "PRIMARY")]));
        // Deleting a method that is neither primary nor the last one is plain.
        let d = add_card(&app, &admin, "tok-d-0004", None).await;
        app.delete(&method_path(&d), &admin).await.ok();
        assert_eq!(roles(&app, &admin).await, expect_roles(&[(&b, "PRIMARY")]));
        app.delete(&method_path(&d), &admin).await.error(404, 5);

        // On the free plan the last method may go.
        let zeta = app.tenant_on("zeta", "free").await;
        let zeta_admin = app.token(&zeta, Role::Admin).await;
        let z = add_card(&app, &zeta_admin, "tok-z-0009", None).await;
        assert_eq!(app.delete(&method_path(&z), &zeta_admin).await.ok(), &json!({}));
        assert_eq!(roles(&app, &zeta_admin).await, []);
        assert_eq!(roles(&app, &admin).await, expect_roles(&[(&b, "PRIMARY")]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_role_changes_and_creates_leave_exactly_one_primary() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let mut names = Vec::new();
        for i in 0..20 {
            names.push(add_card(&app, &admin, &format!("tok-card-{i:04}"), None).await);
        }
        let tasks: Vec<_> = names
            .iter()
            .map(|n| {
                tokio::spawn(send_on(
                    app.router.clone(),
                    Method::POST,
                    role_path(n, "primary"),
                    admin.clone(),
                    Some(json!({"name": n})),
                ))
            })
            .collect();
        for done in futures::future::join_all(tasks).await {
            let (status, body) = done.unwrap();
            assert_eq!((status, body), (200, json!({})));
        }
        let after = roles(&app, &admin).await;
        assert_eq!(after.len(), 20);
        assert_eq!(
            after.iter().filter(|(_, r)| r == "PRIMARY").count(),
            1,
            "{after:?}"
        );
        assert_eq!(
            after.iter().filter(|(_, r)| r == "SECONDARY").count(),
            0,
            "{after:?}"
        );

        // Concurrent first methods of a new tenant: still exactly one primary.
        let (_, bravo) = app.admin("bravo").await;
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                tokio::spawn(send_on(
                    app.router.clone(),
                    Method::POST,
                    PAYMENT_METHODS.to_owned(),
                    bravo.clone(),
                    Some(card(&format!("tok-new-{i:04}"))),
                ))
            })
            .collect();
        for done in futures::future::join_all(tasks).await {
            let (status, body) = done.unwrap();
            assert_eq!(status, 200, "{body}");
        }
        let after = roles(&app, &bravo).await;
        assert_eq!(after.len(), 10);
        assert_eq!(
            after.iter().filter(|(_, r)| r == "PRIMARY").count(),
            1,
            "{after:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn billing_tokens_manage_payment_methods_and_monitor_and_platform_tokens_cannot() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = app.admin("acme").await;
        let billing = app.token(&acme, Role::Billing).await;
        let monitor = app.token(&acme, Role::Monitor).await;
        let platform = app.token(&acme, Role::Platform).await;
        let a = add_card(&app, &billing, "tok-a-0001", None).await;
        let b = add_card(&app, &billing, "tok-b-0002", None).await;
        app.post(&role_path(&b, "primary"), &billing, json!({}))
            .await
            .ok();
        app.post(&role_path(&a, "secondary"), &billing, json!({}))
            .await
            .ok();
        app.post(&role_path(&a, "swap-primary"), &billing, json!({}))
            .await
            .ok();
        let before = expect_roles(&[(&a, "PRIMARY"), (&b, "SECONDARY")]);
        assert_eq!(roles(&app, &billing).await, before);

        // Monitors read the list but change nothing.
        assert_eq!(roles(&app, &monitor).await, before);
        for other in [&monitor, &platform] {
            let msg = app
                .post(PAYMENT_METHODS, other, card("tok-visa-4242"))
                .await
                .error(403, 7)
                .to_owned();
            assert!(msg.contains("may not"), "{msg}");
            for what in ["primary", "secondary", "swap-primary"] {
                app.post(&role_path(&b, what), other, json!({}))
                    .await
                    .error(403, 7);
            }
            app.delete(&method_path(&b), other).await.error(403, 7);
        }
        app.get(PAYMENT_METHODS, &platform).await.error(403, 7);
        assert_eq!(roles(&app, &billing).await, before);

        app.delete(&method_path(&b), &billing).await.ok();
        assert_eq!(roles(&app, &billing).await, expect_roles(&[(&a, "PRIMARY")]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deletes_never_leave_a_paid_tenant_without_a_payment_method() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let mut names = Vec::new();
        for i in 0..6 {
            names.push(add_card(&app, &admin, &format!("tok-card-{i:04}"), None).await);
        }
        let tasks: Vec<_> = names
            .iter()
            .map(|n| {
                tokio::spawn(send_on(
                    app.router.clone(),
                    Method::DELETE,
                    method_path(n),
                    admin.clone(),
                    None,
                ))
            })
            .collect();
        let mut statuses = Vec::new();
        for done in futures::future::join_all(tasks).await {
            let (status, body) = done.unwrap();
            if status != 200 {
                assert_eq!((status, &body["code"]), (409, &json!(9)), "{body}");
                assert_eq!(body["details"][0]["reason"], "PAYMENT_METHOD_REQUIRED", "{body}");
            }
            statuses.push(status);
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
        let left = roles(&app, &admin).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].1, "PRIMARY");
    })
    .await;
}
