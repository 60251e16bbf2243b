//! NUL characters are refused in every string of every request, the same on
//! SQLite and PostgreSQL (whose TEXT cannot hold them), with a 400 naming the
//! field; names and tokens refuse the other control characters too.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, TRANSITION};
use crate::support::TestApp;
use crate::usage_support::events_path;

const QUOTAS: &str = "/api/web/namespaces/system/quotas";

#[tokio::test]
async fn nul_in_any_json_string_or_key_is_a_400_naming_the_field() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let platform = app.token(&acme, Role::Platform).await;
        let quota = |meta: Value| json!({"metadata": meta});
        let events = events_path("system");
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            (
                QUOTAS,
                &admin,
                quota(json!({"name": "q", "description": "prod\u{0}"})),
                "metadata.description",
            ),
            (
                QUOTAS,
                &admin,
                quota(json!({"name": "q", "annotations": {"note": "\u{0}"}})),
                "metadata.annotations.note",
            ),
            (
                QUOTAS,
                &admin,
                quota(json!({"name": "q", "labels": {"env\u{0}": "prod"}})),
                "metadata.labels: key \"env\\0\"",
            ),
            (
                QUOTAS,
                &admin,
                quota(json!({"name": "q\u{0}"})),
                "metadata.name",
            ),
            (
                QUOTAS,
                &admin,
                json!({"metadata": {"name": "q"}, "spec": {"api_limits": {"x.y": {"rate": 1, "unit": "\u{0}"}}}}),
                "spec.api_limits.x.y.unit",
            ),
            (
                PAYMENT_METHODS,
                &admin,
                json!({"token": "tok-visa-4242\u{0}"}),
                "token",
            ),
            (
                PAYMENT_METHODS,
                &admin,
                json!({"token": "tok-visa-4242", "contact": {"city": "Se\u{0}attle"}}),
                "contact.city",
            ),
            (
                TRANSITION,
                &admin,
                json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-\u{0}"}}),
                "payload.payment_provider_token",
            ),
            (
                &events,
                &platform,
                json!({"events": [
                    {"id": "ok", "metric_label": "lb_requests", "quantity": 1, "timestamp": "2026-11-20T10:00:00Z"},
                    {"id": "e\u{0}", "metric_label": "lb_requests", "quantity": 1, "timestamp": "2026-11-20T10:00:00Z"}
                ]}),
                "events[1].id",
            ),
            (
                "/api/web/namespaces/system/quota/reserve",
                &platform,
                json!({"kind": "virtual_host", "amount": 1, "request_id": "r\u{0}"}),
                "request_id",
            ),
        ];
        for (path, token, body, field) in cases {
            let resp = app.post(path, token, body.clone()).await;
            let message = resp.error(400, 3);
            assert_eq!(
                message,
                format!("{field}: must not contain NUL characters (\\u0000)"),
                "{path} {body}"
            );
        }
        // Nothing was stored.
        assert_eq!(app.get(QUOTAS, &admin).await.ok()["items"], json!([]));
        let methods = app.get(PAYMENT_METHODS, &admin).await;
        assert_eq!(methods.ok()["items"], json!([]), "{}", methods.body);
        // An escaped backslash before "u0000" is text, not NUL.
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "q", "description": "C:\\u0000 is not a NUL"}}),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn nul_in_any_query_parameter_is_a_400_naming_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for (query, named) in [
            ("label_filter=env%00", "label_filter"),
            ("report_fields=%00", "report_fields"),
            ("unknown=a%00b", "unknown"),
            ("a%00b=1", "query parameter \"a\\0b\""),
        ] {
            let resp = app.get(&format!("{QUOTAS}?{query}"), &admin).await;
            assert_eq!(
                resp.error(400, 3),
                format!("{named}: must not contain NUL characters (%00)"),
                "{query}"
            );
        }
        let pdf = app
            .get("/api/web/namespaces/system/usage/invoice_pdf?name=inv%00", &admin)
            .await;
        assert_eq!(pdf.error(400, 3), "name: must not contain NUL characters (%00)");
    })
    .await;
}

#[tokio::test]
async fn names_and_tokens_refuse_control_characters_free_text_keeps_line_breaks() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let platform = app.token(&acme, Role::Platform).await;
        for (path, token, body, expected) in [
            (
                PAYMENT_METHODS,
                &admin,
                json!({"token": "tok-visa\u{7}"}),
                "token: must not contain control characters, found U+0007 at character 9",
            ),
            (
                PAYMENT_METHODS,
                &admin,
                json!({"token": "tok-visa", "contact": {"address1": "Main St\n1"}}),
                "contact.address1: must not contain control characters, found U+000A",
            ),
            (
                TRANSITION,
                &admin,
                json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-\u{1b}[2J"}}),
                "payload.payment_provider_token: must not contain control characters, found U+001B",
            ),
            (
                QUOTAS,
                &admin,
                json!({"metadata": {"name": "q", "annotations": {"a\tb": "x"}}}),
                "metadata.annotations: must not contain control characters, found U+0009",
            ),
            (
                QUOTAS,
                &admin,
                json!({"metadata": {"name": "q", "description": "beep\u{7}"}}),
                "metadata.description: must not contain control characters, found U+0007",
            ),
        ] {
            let resp = app.post(path, token, body.clone()).await;
            let message = resp.error(400, 3);
            assert!(message.starts_with(expected), "{body}: {message}");
        }
        // Event ids, objects, deployments and containers: a per-event reason.
        let resp = app
            .post(
                &events_path("system"),
                &platform,
                json!({"events": [
                    {"id": "a\u{1}", "metric_label": "lb_requests", "quantity": 1, "timestamp": "2026-11-20T10:00:00Z"},
                    {"id": "b", "metric_label": "lb_requests", "object_name": "lb\n", "quantity": 1, "timestamp": "2026-11-20T10:00:00Z", "container": "c\u{7f}"}
                ]}),
            )
            .await;
        let results = resp.ok()["results"].clone();
        assert_eq!(results[0]["status"], "REJECTED", "{results}");
        assert!(results[0]["reason"].as_str().unwrap().starts_with("id: "));
        assert_eq!(results[1]["status"], "REJECTED", "{results}");
        // Free text may span lines.
        app.create_quota(
            &admin,
            json!({"metadata": {"name": "q", "description": "two\r\nlines\tand a tab",
                "annotations": {"note": "a\nb"}}}),
        )
        .await;
    })
    .await;
}
