//! The invoice endpoints' errors, who may read invoices, and tenants never
//! seeing each other's invoices (not even under the same name).

use axum::body::Body;
use axum::http::Method;
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::invoice_support::{assert_has, billed_tenant, list, list_raw, names, pdf_bytes, pdf_text, usd};
use crate::invoices::{INVOICES, PDF};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};

#[tokio::test]
async fn bad_requests_are_refused_with_the_contract_errors() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.namespace(&acme, "shop").await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        app.close_periods().await;

        // Invoices live in system.
        for path in [
            "/api/web/namespaces/shop/usage/invoices/custom_list",
            "/api/web/namespaces/shop/usage/invoice_pdf?name=inv-2027-01-0001",
        ] {
            let resp = app.get(path, &admin).await;
            let msg = resp.error(400, 3);
            assert!(msg.contains("system"), "{path}: {msg}");
        }

        for limit in ["-1", "abc", "1.5", "2147483648", "1e3", "0x10", "%20-3"] {
            let resp = app.get(&format!("{INVOICES}?limit={limit}"), &admin).await;
            let msg = resp.error(400, 3);
            assert!(msg.contains("limit"), "{limit}: {msg}");
        }
        let at_most = list_raw(&app, &admin, "?limit=2147483647").await;
        assert_eq!(at_most.len(), 2);

        for query in ["", "?name=", "?name=%20%20", "?other=inv-2027-01-0001"] {
            let resp = app.get(&format!("{PDF}{query}"), &admin).await;
            let msg = resp.error(400, 3);
            assert!(msg.contains("name"), "{query:?}: {msg}");
        }
        for name in [
            "inv-1999-01-0001",
            "inv-2027-01-0002",
            "inv-2027-03-0003",
            "nope",
            "INV-2027-01-0001",
        ] {
            let resp = app.get(&format!("{PDF}?name={name}"), &admin).await;
            let msg = resp.error(404, 5);
            assert!(msg.contains(name), "{name}: {msg}");
        }

        // Without a token: 401.
        for path in [INVOICES.to_owned(), format!("{PDF}?name=inv-2027-01-0001")] {
            app.request(Method::GET, &path, None, Body::empty(), &[])
                .await
                .error(401, 16);
        }
    })
    .await;
}

#[tokio::test]
async fn readers_may_read_invoices_and_a_platform_token_may_not() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.namespace(&acme, "shop").await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        app.close_periods().await;
        app.charge().await;
        let expected = list(&app, &admin).await;
        assert_eq!(names(&expected), ["inv-2027-02-0002", "inv-2027-01-0001"]);
        let pdf = pdf_bytes(&app, &admin, "inv-2027-01-0001").await;
        for role in [Role::Monitor, Role::Billing] {
            let tok = app.token(&acme, role).await;
            assert_eq!(list(&app, &tok).await, expected, "{role}");
            assert_eq!(pdf_bytes(&app, &tok, "inv-2027-01-0001").await, pdf, "{role}");
        }
        let platform = app.token(&acme, Role::Platform).await;
        app.get(INVOICES, &platform).await.error(403, 7);
        app.get(&format!("{PDF}?name=inv-2027-01-0001"), &platform)
            .await
            .error(403, 7);
        // A token scoped to a namespace does not reach system.
        let scoped = app.token_with(&acme, Role::Monitor, &["shop"], None).await;
        app.get(INVOICES, &scoped).await.error(403, 7);
        app.get(&format!("{PDF}?name=inv-2027-01-0001"), &scoped)
            .await
            .error(403, 7);
    })
    .await;
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_invoices_even_under_the_same_name() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        // acme and globex start the same day (same invoice names); initech a
        // month later.
        let (_, acme) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-acme-1111"),
        )
        .await;
        let (_, globex) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-globex-2222"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &acme,
            "system",
            vec![event(
                "a1",
                "lb_requests",
                "lb",
                15_000_000,
                "2027-01-10T10:00:00Z",
            )],
        )
        .await;
        ingest_all(
            &app,
            &globex,
            "system",
            vec![event(
                "g1",
                "lb_requests",
                "lb",
                7_000_000,
                "2027-01-10T10:00:00Z",
            )],
        )
        .await;
        let (_, initech) = billed_tenant(
            &app,
            "initech",
            "individual",
            "2027-02-01T00:00:00Z",
            Some("tok-initech-3333"),
        )
        .await;
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 2 + 2 + 1);
        app.charge().await;

        let a = list(&app, &acme).await;
        let g = list(&app, &globex).await;
        let i = list(&app, &initech).await;
        assert_eq!(
            names(&a),
            ["inv-2027-03-0003", "inv-2027-02-0002", "inv-2027-01-0001"]
        );
        assert_eq!(names(&g), names(&a));
        assert_eq!(names(&i), ["inv-2027-03-0002", "inv-2027-02-0001"]);
        // January: acme 15 million → 600 ¢, globex 7 million → 120 ¢.
        assert_eq!(a[2].amount, "3100");
        assert_eq!(g[2].amount, "2620");

        // The same name, each tenant's own document.
        let for_acme = pdf_text(&app, &acme, "inv-2027-01-0001").await;
        let for_globex = pdf_text(&app, &globex, "inv-2027-01-0001").await;
        assert_has(&for_acme, "acme");
        assert_has(&for_acme, &format!("TOTAL {}", usd(3100)));
        assert_has(&for_acme, "test card ending 1111");
        assert_has(&for_globex, "globex");
        assert_has(&for_globex, &format!("TOTAL {}", usd(2620)));
        assert_has(&for_globex, "test card ending 2222");
        assert!(
            !for_globex.contains("acme") && !for_globex.contains("1111"),
            "{for_globex}"
        );

        // Names only the other tenants have: not found, finalized or pending.
        for name in ["inv-2027-01-0001", "inv-2027-02-0002", "inv-2027-03-0003"] {
            app.get(&format!("{PDF}?name={name}"), &initech)
                .await
                .error(404, 5);
        }
        for name in ["inv-2027-02-0001", "inv-2027-03-0002"] {
            app.get(&format!("{PDF}?name={name}"), &acme).await.error(404, 5);
            app.get(&format!("{PDF}?name={name}"), &globex)
                .await
                .error(404, 5);
        }
    })
    .await;
}
