//! The operator API beyond approvals and the audit trail: operator tokens
//! and their roles, tenants, namespaces, API tokens, catalogs, coupons,
//! invoices across tenants and jobs. Each endpoint: its success shape, its
//! errors, and who may call it.

use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::invoice_support::billed_tenant;
use crate::support::{OPERATOR_TOKEN, TestApp, ts};
use crate::usage_support::{event, ingest_all};

const TENANTS: &str = "/api/operator/tenants";
const OPERATOR_TOKENS: &str = "/api/operator/operator-tokens";
const LIMITS: &str = "/api/web/namespaces/system/quota/limits";

/// Every operator route that changes something, with a body that would succeed.
fn writes() -> Vec<(Method, String, Value)> {
    vec![
        (Method::POST, TENANTS.into(), json!({"name": "newco"})),
        (
            Method::POST,
            format!("{TENANTS}/acme/namespaces"),
            json!({"name": "shop"}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/tokens"),
            json!({"role": "monitor"}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/tokens/some-id/revoke"),
            json!({}),
        ),
        (
            Method::POST,
            OPERATOR_TOKENS.into(),
            json!({"name": "ci", "role": "operator-read"}),
        ),
        (Method::POST, format!("{OPERATOR_TOKENS}/ci/revoke"), json!({})),
        (
            Method::POST,
            "/api/operator/catalog/publish".into(),
            json!({"source": tollgate_domain::catalog::BUILTIN_TOML}),
        ),
        (
            Method::POST,
            "/api/operator/coupons".into(),
            json!({"code": "spring", "title": "Spring", "percent": "10"}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/coupons"),
            json!({"code": "spring"}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/invoices/inv-2026-11-0001/cancel"),
            json!({}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/invoices/inv-2026-11-0001/refund"),
            json!({"amount": "1.00", "reason": "goodwill"}),
        ),
        (
            Method::POST,
            format!("{TENANTS}/acme/invoices/inv-2026-11-0001/charge"),
            json!({}),
        ),
        (Method::POST, "/api/operator/jobs/all/run".into(), json!({})),
        (
            Method::POST,
            "/api/operator/transitions/some-id/approve".into(),
            json!({}),
        ),
        (
            Method::POST,
            "/api/operator/transitions/some-id/reject".into(),
            json!({}),
        ),
        (
            Method::POST,
            "/api/operator/transitions/some-id/cancel".into(),
            json!({}),
        ),
    ]
}

/// Every operator route that only reads.
fn reads() -> Vec<String> {
    vec![
        TENANTS.into(),
        format!("{TENANTS}/acme"),
        format!("{TENANTS}/acme/namespaces"),
        format!("{TENANTS}/acme/tokens"),
        OPERATOR_TOKENS.into(),
        "/api/operator/catalog/versions".into(),
        "/api/operator/catalog/versions/latest".into(),
        "/api/operator/coupons".into(),
        "/api/operator/invoices".into(),
        "/api/operator/invoices?tenant=acme".into(),
        format!("{TENANTS}/acme/invoices/inv-2026-11-0001"),
        format!("{TENANTS}/acme/invoices/inv-2026-11-0001/pdf"),
        format!("{TENANTS}/acme/credit-notes"),
        format!("{TENANTS}/acme/credit-notes/cn-2026-11-0001/pdf"),
        "/api/operator/transitions".into(),
        "/api/operator/audit".into(),
    ]
}

async fn create_operator_token(app: &TestApp, name: &str, role: &str) -> String {
    let resp = app
        .operator(
            Method::POST,
            OPERATOR_TOKENS,
            Some(json!({"name": name, "role": role})),
        )
        .await;
    let body = resp.ok();
    assert_eq!(body["token"]["name"], name);
    assert_eq!(body["token"]["role"], role);
    assert_eq!(body["token"]["status"], "active");
    assert_eq!(body["token"]["created_by"], "operator");
    body["secret"]
        .as_str()
        .expect("the secret is shown once")
        .to_owned()
}

async fn audit_actors(app: &TestApp) -> Vec<(String, String)> {
    let resp = app
        .operator(Method::GET, "/api/operator/audit?limit=1000", None)
        .await;
    resp.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_owned(),
                i["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn operator_tokens_have_roles_are_audited_and_stop_working_when_revoked() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.tenant_on("acme", "free").await;
        let admin = create_operator_token(&app, "deploy-bot", "operator-admin").await;
        let reader = create_operator_token(&app, "dashboard", "operator-read").await;
        assert!(admin.starts_with("tg_") && admin != reader);

        // The reader reads everything and changes nothing.
        for path in reads() {
            let resp = app.operator_as(&reader, Method::GET, &path, None).await;
            assert!(
                resp.status == 200 || resp.status == 404,
                "{path}: {} {}",
                resp.status,
                resp.body
            );
        }
        for (method, path, body) in writes() {
            let resp = app.operator_as(&reader, method, &path, Some(body)).await;
            let msg = resp.error(403, 7);
            assert!(
                msg.contains("operator-read") && msg.contains("operator-admin"),
                "{path}: {msg}"
            );
        }
        assert_eq!(
            app.store.tenants().await.unwrap().len(),
            1,
            "a refused write changed nothing"
        );

        // The admin token changes things, and the audit trail names it.
        let created = app
            .operator_as(&admin, Method::POST, TENANTS, Some(json!({"name": "globex"})))
            .await;
        assert_eq!(created.ok()["name"], "globex");
        let actors = audit_actors(&app).await;
        assert!(
            actors.contains(&("tenant.create".into(), "operator-token/deploy-bot".into())),
            "{actors:?}"
        );
        assert!(actors.contains(&("operator_token.create".into(), "operator".into())));

        // Names are unique among live tokens; names and roles are checked.
        let dup = app
            .operator(
                Method::POST,
                OPERATOR_TOKENS,
                Some(json!({"name": "dashboard", "role": "operator-admin"})),
            )
            .await;
        assert!(dup.error(409, 6).contains("dashboard"));
        let bad_role = app
            .operator(
                Method::POST,
                OPERATOR_TOKENS,
                Some(json!({"name": "x", "role": "admin"})),
            )
            .await;
        assert!(bad_role.error(400, 3).contains("operator-admin or operator-read"));
        let bad_name = app
            .operator(
                Method::POST,
                OPERATOR_TOKENS,
                Some(json!({"name": "Not A Label", "role": "operator-read"})),
            )
            .await;
        bad_name.error(400, 3);

        // The list shows no secret.
        let list = app.operator(Method::GET, OPERATOR_TOKENS, None).await;
        let text = list.ok().to_string();
        assert!(!text.contains(&admin) && !text.contains(&reader), "{text}");
        assert_eq!(list.body["items"].as_array().unwrap().len(), 2);

        // Revoked: 401 at once, listed as revoked, audited; the name is free again.
        let revoked = app
            .operator_as(
                &admin,
                Method::POST,
                &format!("{OPERATOR_TOKENS}/dashboard/revoke"),
                None,
            )
            .await;
        assert_eq!(revoked.ok()["status"], "revoked");
        let refused = app.operator_as(&reader, Method::GET, TENANTS, None).await;
        assert!(refused.error(401, 16).contains("revoked"));
        let again = app
            .operator_as(
                &admin,
                Method::POST,
                &format!("{OPERATOR_TOKENS}/dashboard/revoke"),
                None,
            )
            .await;
        again.error(404, 5);
        create_operator_token(&app, "dashboard", "operator-read").await;
        assert!(
            audit_actors(&app)
                .await
                .contains(&("operator_token.revoke".into(), "operator-token/deploy-bot".into()))
        );

        // A tenant's API token is no operator credential.
        let tenant_admin = app
            .token(
                &app.store.tenant_by_name("acme").await.unwrap().unwrap(),
                Role::Admin,
            )
            .await;
        let resp = app.operator_as(&tenant_admin, Method::GET, TENANTS, None).await;
        resp.error(401, 16);
    })
    .await;
}

#[tokio::test]
async fn without_any_operator_credential_the_operator_api_is_off_until_a_token_exists() {
    each_backend(|db| async move {
        let app = TestApp::without_operator_credential(db).await;
        let off = app.operator_as("tg_whatever", Method::GET, TENANTS, None).await;
        assert!(off.error(403, 7).contains("disabled"));
        let off = app
            .request(Method::GET, TENANTS, None, axum::body::Body::empty(), &[])
            .await;
        off.error(403, 7);
        // The CLI creates the first token (here through the same use case).
        let issued = tollgate_app::tenancy::create_operator_token(
            &*app.store,
            "first",
            "operator-admin",
            "operator",
            ts("2026-11-20T10:00:00Z"),
        )
        .await
        .unwrap();
        app.operator_as(&issued.secret, Method::GET, TENANTS, None)
            .await
            .ok();
        let wrong = app.operator_as("tg_whatever", Method::GET, TENANTS, None).await;
        wrong.error(401, 16);
    })
    .await;
}

#[tokio::test]
async fn tenants_namespaces_and_tokens_are_managed_over_http() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let created = app
            .operator(
                Method::POST,
                TENANTS,
                Some(json!({"name": "acme", "plan": "individual", "since": "2026-09-01T00:00:00Z"})),
            )
            .await;
        let t = created.ok();
        assert_eq!(t["name"], "acme");
        assert_eq!(t["plan"], "individual");
        assert_eq!(t["type"], "FREEMIUM");
        assert_eq!(t["created"], "2026-09-01T00:00:00Z");
        assert_eq!(t["catalog_version"], 1);

        for (body, status, needle) in [
            (json!({"name": "acme"}), 409, "already exists"),
            (json!({"name": "Bad Name"}), 400, "name"),
            (json!({"name": "x1", "plan": "gold"}), 400, "plan"),
            (json!({"name": "x2", "type": "HUGE"}), 400, "HUGE"),
            (json!({"name": "x3", "since": "2999-01-01T00:00:00Z"}), 400, "since: is in the future"),
            (json!({"name": "x4", "since": "1960-01-01T00:00:00Z"}), 400, "since: must not be before"),
            (json!({"name": "x5", "since": "yesterday"}), 400, "since"),
        ] {
            let resp = app.operator(Method::POST, TENANTS, Some(body.clone())).await;
            let msg = resp.error(status, if status == 409 { 6 } else { 3 });
            assert!(msg.contains(needle), "{body}: {msg}");
        }
        assert_eq!(app.store.tenants().await.unwrap().len(), 1, "refusals created nothing");

        let list = app.operator(Method::GET, TENANTS, None).await;
        assert_eq!(list.ok()["items"][0]["name"], "acme");

        // Namespaces.
        let ns = app
            .operator(Method::POST, &format!("{TENANTS}/acme/namespaces"), Some(json!({"name": "shop"})))
            .await;
        assert_eq!(ns.ok()["name"], "shop");
        let dup = app
            .operator(Method::POST, &format!("{TENANTS}/acme/namespaces"), Some(json!({"name": "shop"})))
            .await;
        dup.error(409, 6);
        app.operator(Method::POST, &format!("{TENANTS}/acme/namespaces"), Some(json!({"name": "-x"})))
            .await
            .error(400, 3);
        app.operator(Method::POST, &format!("{TENANTS}/nobody/namespaces"), Some(json!({"name": "shop"})))
            .await
            .error(404, 5);
        let names: Vec<Value> = app
            .operator(Method::GET, &format!("{TENANTS}/acme/namespaces"), None)
            .await
            .ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].clone())
            .collect();
        assert_eq!(names, [json!("shop"), json!("system")]);
        let detail = app.operator(Method::GET, &format!("{TENANTS}/acme"), None).await;
        let detail = detail.ok();
        assert_eq!(detail["plan"], "individual");
        assert_eq!(detail["namespaces"].as_array().unwrap().len(), 2);
        assert_eq!(detail["addons"], json!([]));
        app.operator(Method::GET, &format!("{TENANTS}/nobody"), None)
            .await
            .error(404, 5);

        // A token made over HTTP works on the tenant API, scoped as asked,
        // and stops working when revoked.
        let made = app
            .operator(
                Method::POST,
                &format!("{TENANTS}/acme/tokens"),
                Some(json!({"role": "monitor", "namespaces": ["shop"], "name": "grafana", "expires_in": "86400s"})),
            )
            .await;
        let made = made.ok().clone();
        let secret = made["secret"].as_str().unwrap().to_owned();
        assert_eq!(made["token"]["namespaces"], json!(["shop"]));
        assert_eq!(made["token"]["expires"], "2026-11-21T10:00:00Z");
        app.get("/api/web/namespaces/shop/quota/limits", &secret).await.ok();
        app.get(LIMITS, &secret).await.error(403, 7);
        let id = made["token"]["id"].as_str().unwrap().to_owned();
        let listed = app.operator(Method::GET, &format!("{TENANTS}/acme/tokens"), None).await;
        assert!(!listed.ok().to_string().contains(&secret));
        assert_eq!(listed.body["items"][0]["status"], "active");
        let revoked = app
            .operator(Method::POST, &format!("{TENANTS}/acme/tokens/{id}/revoke"), None)
            .await;
        assert_eq!(revoked.ok()["status"], "revoked");
        app.get("/api/web/namespaces/shop/quota/limits", &secret)
            .await
            .error(401, 16);
        app.operator(Method::POST, &format!("{TENANTS}/acme/tokens/nope/revoke"), None)
            .await
            .error(404, 5);

        for (body, needle) in [
            (json!({"role": "root"}), "role"),
            (json!({"role": "admin", "namespaces": ["Bad"]}), "namespaces"),
            (json!({"role": "admin", "expires_in": "soon"}), "expires_in"),
            (json!({"role": "admin", "expires_in": -5}), "expires_in"),
        ] {
            let resp = app
                .operator(Method::POST, &format!("{TENANTS}/acme/tokens"), Some(body.clone()))
                .await;
            assert!(resp.error(400, 3).contains(needle), "{body}");
        }
        app.operator(
            Method::POST,
            &format!("{TENANTS}/acme/tokens"),
            Some(json!({"role": "admin", "namespaces": ["ghost"]})),
        )
        .await
        .error(404, 5);

        // The audit trail names the operator for each change.
        let actions: Vec<(String, String)> = audit_actors(&app).await;
        for action in ["tenant.create", "namespace.create", "token.create", "token.revoke"] {
            assert!(
                actions.contains(&(action.to_owned(), "operator".to_owned())),
                "{action}: {actions:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn catalogs_are_validated_published_and_listed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let valid = app
            .operator(
                Method::POST,
                "/api/operator/catalog/validate",
                Some(json!({"source": tollgate_domain::catalog::BUILTIN_TOML})),
            )
            .await;
        let v = valid.ok();
        assert_eq!(v["default_plan"], "free");
        assert_eq!(v["currency"], "USD");
        let broken =
            tollgate_domain::catalog::BUILTIN_TOML.replacen("currency = \"USD\"", "currency = \"usd\"", 1);
        for path in ["/api/operator/catalog/validate", "/api/operator/catalog/publish"] {
            let resp = app
                .operator(
                    Method::POST,
                    path,
                    Some(json!({"source": broken, "source_name": "mine.toml"})),
                )
                .await;
            let msg = resp.error(400, 3);
            assert!(msg.contains("mine.toml:") && msg.contains("currency"), "{msg}");
        }
        let v2 = tollgate_domain::catalog::BUILTIN_TOML.replace("title = \"Individual\"", "title = \"Solo\"");
        let published = app
            .operator(
                Method::POST,
                "/api/operator/catalog/publish",
                Some(json!({"source": v2, "source_name": "v2.toml"})),
            )
            .await;
        let p = published.ok();
        assert_eq!(p["version"], 2);
        assert_eq!(p["source_name"], "v2.toml");
        assert_eq!(p["published_by"], "operator");
        assert!(p.get("source").is_none());

        let list = app
            .operator(Method::GET, "/api/operator/catalog/versions", None)
            .await;
        let versions: Vec<i64> = list.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, [1, 2]);
        let latest = app
            .operator(Method::GET, "/api/operator/catalog/versions/latest", None)
            .await;
        assert_eq!(latest.ok()["version"], 2);
        assert!(latest.body["source"].as_str().unwrap().contains("\"Solo\""));
        let first = app
            .operator(Method::GET, "/api/operator/catalog/versions/1", None)
            .await;
        assert_eq!(first.ok()["source_name"], "builtin");
        app.operator(Method::GET, "/api/operator/catalog/versions/9", None)
            .await
            .error(404, 5);
        app.operator(Method::GET, "/api/operator/catalog/versions/newest", None)
            .await
            .error(400, 3);
        // The new version is offered at once.
        let tenant = app.tenant_on("acme", "free").await;
        let admin = app.token(&tenant, Role::Admin).await;
        let plans = app
            .get("/api/web/namespaces/system/usage_plans/custom_list", &admin)
            .await;
        assert!(plans.ok().to_string().contains("Solo"));
    })
    .await;
}

#[tokio::test]
async fn coupons_are_defined_listed_and_applied() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.tenant_on("acme", "individual").await;
        let pct = app
            .operator(
                Method::POST,
                "/api/operator/coupons",
                Some(json!({"code": "launch", "title": "Launch", "percent": "12.5"})),
            )
            .await;
        assert_eq!(pct.ok()["percent"], "12.5");
        let fixed = app
            .operator(
                Method::POST,
                "/api/operator/coupons",
                Some(json!({"code": "goodwill", "title": "Goodwill", "fixed_cents": 500})),
            )
            .await;
        assert_eq!(fixed.ok()["fixed_cents"], 500);
        for (body, status) in [
            (json!({"code": "launch", "title": "Again", "percent": 5}), 409),
            (
                json!({"code": "both", "title": "T", "percent": 5, "fixed_cents": 5}),
                400,
            ),
            (json!({"code": "none", "title": "T"}), 400),
            (json!({"code": "big", "title": "T", "percent": "100.5"}), 400),
            (json!({"code": "neg", "title": "T", "fixed_cents": -1}), 400),
            (json!({"code": "Bad Code", "title": "T", "percent": 5}), 400),
            (json!({"code": "word", "title": "T", "percent": "ten"}), 400),
        ] {
            let resp = app
                .operator(Method::POST, "/api/operator/coupons", Some(body.clone()))
                .await;
            assert_eq!(resp.status, status, "{body}: {}", resp.body);
        }
        let list = app.operator(Method::GET, "/api/operator/coupons", None).await;
        let codes: Vec<&str> = list.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["goodwill", "launch"]);

        let applied = app
            .operator(
                Method::POST,
                &format!("{TENANTS}/acme/coupons"),
                Some(json!({"code": "launch", "from": "2026-11-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(applied.ok()["code"], "launch");
        app.operator(
            Method::POST,
            &format!("{TENANTS}/acme/coupons"),
            Some(json!({"code": "launch", "from": "2026-11-01T00:00:00Z"})),
        )
        .await
        .reason("COUPON_ALREADY_APPLIED")
        .error(409, 6);
        let acme = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!(app.store.tenant_coupons(&acme.id).await.unwrap().len(), 1);
        app.operator(
            Method::POST,
            &format!("{TENANTS}/acme/coupons"),
            Some(json!({"code": "nope"})),
        )
        .await
        .error(404, 5);
        app.operator(
            Method::POST,
            &format!("{TENANTS}/acme/coupons"),
            Some(json!({"code": "launch", "from": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"})),
        )
        .await
        .error(400, 3);
        app.operator(
            Method::POST,
            &format!("{TENANTS}/ghost/coupons"),
            Some(json!({"code": "launch"})),
        )
        .await
        .error(404, 5);
    })
    .await;
}

#[tokio::test]
async fn invoices_across_tenants_are_listed_shown_rendered_and_cancelled_and_jobs_run_over_http() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let (_, globex_admin) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-1"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![event(
                "e1",
                "lb_requests",
                "lb-a",
                7_000_000,
                "2027-01-10T10:00:00Z",
            )],
        )
        .await;
        let _ = globex_admin;

        // Pending invoices show for one tenant; none is finalized yet.
        let pending = app
            .operator(Method::GET, "/api/operator/invoices?tenant=acme", None)
            .await;
        assert_eq!(pending.ok()["items"][0]["status"], "PENDING");
        let all = app.operator(Method::GET, "/api/operator/invoices", None).await;
        assert_eq!(all.ok()["items"], json!([]));

        // Jobs run over HTTP: period close, then charging.
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        let ran = app
            .operator(Method::POST, "/api/operator/jobs/period-close/run", None)
            .await;
        assert_eq!(
            ran.ok()["items"],
            json!([{"job": "period-close", "done": 2, "summary": "2 invoices finalized"}])
        );
        let ran = app
            .operator(Method::POST, "/api/operator/jobs/all/run", None)
            .await;
        let jobs: Vec<&str> = ran.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job"].as_str().unwrap())
            .collect();
        assert_eq!(
            jobs,
            [
                "transitions",
                "credit-expiry",
                "period-close",
                "charge",
                "suspend",
                "prune",
                "purge-events",
                "alerts",
                "webhooks"
            ]
        );
        app.operator(Method::POST, "/api/operator/jobs/backup/run", None)
            .await
            .error(404, 5);

        let all = app.operator(Method::GET, "/api/operator/invoices", None).await;
        let rows: Vec<(String, String)> = all.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["tenant"].as_str().unwrap().to_owned(),
                    i["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("acme".to_owned(), "PAID".to_owned()),
                ("globex".to_owned(), "ISSUED".to_owned())
            ]
        );
        let issued = app
            .operator(Method::GET, "/api/operator/invoices?status=issued", None)
            .await;
        assert_eq!(issued.ok()["items"].as_array().unwrap().len(), 1);
        app.operator(Method::GET, "/api/operator/invoices?status=LOST", None)
            .await
            .error(400, 3);
        app.operator(Method::GET, "/api/operator/invoices?tenant=ghost", None)
            .await
            .error(404, 5);

        let name = "inv-2027-01-0001";
        let detail = app
            .operator(Method::GET, &format!("{TENANTS}/acme/invoices/{name}"), None)
            .await;
        let d = detail.ok();
        assert_eq!(d["status"], "PAID");
        assert_eq!(d["issuer"], "Tollgate");
        let line_total: i64 = d["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["amount_cents"].as_i64().unwrap())
            .sum();
        assert_eq!(line_total, d["subtotal_cents"].as_i64().unwrap());
        assert_eq!(
            d["total_cents"].as_i64().unwrap(),
            d["subtotal_cents"].as_i64().unwrap() - d["discount_cents"].as_i64().unwrap()
        );
        assert_eq!(d["charges"][0]["outcome"], "SUCCEEDED");
        app.operator(
            Method::GET,
            &format!("{TENANTS}/acme/invoices/inv-1999-01-0001"),
            None,
        )
        .await
        .error(404, 5);

        // The operator's PDF is the tenant's PDF.
        let op_pdf = app
            .operator(Method::GET, &format!("{TENANTS}/acme/invoices/{name}/pdf"), None)
            .await;
        let tenant_pdf = app
            .get(
                &format!("/api/web/namespaces/system/usage/invoice_pdf?name={name}"),
                &admin,
            )
            .await;
        assert_eq!(op_pdf.ok()["pdf"], tenant_pdf.ok()["pdf"]);

        // Cancel: only unpaid invoices.
        app.operator(
            Method::POST,
            &format!("{TENANTS}/acme/invoices/{name}/cancel"),
            None,
        )
        .await
        .error(409, 9);
        let cancelled = app
            .operator(
                Method::POST,
                &format!("{TENANTS}/globex/invoices/{name}/cancel"),
                None,
            )
            .await;
        assert_eq!(cancelled.ok()["status"], "CANCELLED");
        app.operator(
            Method::POST,
            &format!("{TENANTS}/globex/invoices/inv-1999-01-0001/cancel"),
            None,
        )
        .await
        .error(404, 5);
        let audit = audit_actors(&app).await;
        assert!(
            audit
                .iter()
                .any(|(a, who)| a.starts_with("invoice.") && who == "operator"),
            "{audit:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_bootstrap_credential_still_works() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.operator_as(OPERATOR_TOKEN, Method::GET, TENANTS, None)
            .await
            .ok();
    })
    .await;
}

/// "Charge now": an unpaid invoice gets one more charge round at once; after
/// the customer fixed their card it is paid; a paid or cancelled one is 409.
#[tokio::test]
async fn the_operator_charges_an_unpaid_invoice_now() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (globex, _) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-1"),
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let name = "inv-2027-01-0001";
        let charge = format!("{TENANTS}/globex/invoices/{name}/charge");

        // Declined again: still unpaid, one more attempt recorded.
        let again = app.operator(Method::POST, &charge, None).await;
        assert_eq!(again.ok()["status"], "ISSUED");
        let attempts = app.store.invoice_charges(&globex.id, &name.into()).await.unwrap();
        assert_eq!(attempts.len(), 2, "{attempts:?}");

        // The customer's card is fixed where no payment-method change of
        // Tollgate sees it (through the API, a new primary charges unpaid
        // invoices by itself: tests/api/dunning.rs): charged now, it pays.
        let now = tollgate_domain::clock::Clock::now(app.clock.as_ref());
        let contact = tollgate_domain::contact::Contact::default();
        let registered = tollgate_payments::PaymentProvider::register(
            app.provider.as_ref(),
            "tok-visa-4242",
            None,
            &contact,
        )
        .await
        .unwrap();
        let method = tollgate_payments::new_method(
            app.provider.as_ref(),
            registered,
            contact,
            tollgate_domain::payment::PaymentRole::Normal,
            now,
        );
        let fixed = tollgate_store::PaymentChange::Create {
            method: Box::new(method),
            requested: Some(tollgate_domain::payment::PaymentRole::Primary),
        };
        app.store
            .change_payment_methods(&globex.id, &fixed, "test", now)
            .await
            .unwrap();
        let paid = app.operator(Method::POST, &charge, None).await;
        assert_eq!(paid.ok()["status"], "PAID");
        assert_eq!(app.provider.successful_charges().len(), 1);

        app.operator(Method::POST, &charge, None)
            .await
            .reason("INVOICE_WRONG_STATUS")
            .error(409, 9);
        app.operator(
            Method::POST,
            &format!("{TENANTS}/globex/invoices/inv-1999-01-0001/charge"),
            None,
        )
        .await
        .error(404, 5);
        assert!(
            audit_actors(&app)
                .await
                .contains(&("invoice.charge_scheduled".into(), "operator".into()))
        );
    })
    .await;
}
