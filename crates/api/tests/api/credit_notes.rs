//! Refunds through the operator API, partial and whole, each a numbered
//! credit note; what is refused (and that a refusal writes nothing); the
//! credit notes tenants list and download as PDFs, who may read them, and
//! tenants never seeing each other's.

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::tenant::Tenant;
use tollgate_testkit::each_backend;

use crate::invoice_support::{assert_has, billed_tenant, entry, list, normalize, pdf_text, stored};
use crate::support::{TestApp, ts};

pub const CREDIT_NOTES: &str = "/api/web/namespaces/system/billing/credit_notes";
const TENANTS: &str = "/api/operator/tenants";
/// When January 2027's invoice is finalized (and charged).
const CLOSE: &str = "2027-02-02T00:00:00Z";
const FIRST: &str = "inv-2027-01-0001";

/// `tenant` on `individual` (2500 ¢ a month) from 2027-01-01 with a card;
/// January finalized and paid at [`CLOSE`]. Returns it and an admin token.
async fn paid(app: &TestApp, tenant: &str) -> (Tenant, String) {
    let (t, admin) = billed_tenant(
        app,
        tenant,
        "individual",
        "2027-01-01T00:00:00Z",
        Some("tok-ok-4242"),
    )
    .await;
    app.clock.set(ts(CLOSE));
    app.close_periods().await;
    app.charge().await;
    assert_eq!(entry(&list(app, &admin).await, FIRST).status, "STATUS_PAID");
    (t, admin)
}

fn refund_path(tenant: &str, invoice: &str) -> String {
    format!("{TENANTS}/{tenant}/invoices/{invoice}/refund")
}

async fn refund(app: &TestApp, tenant: &str, body: Value) -> crate::support::Resp {
    app.operator(Method::POST, &refund_path(tenant, FIRST), Some(body))
        .await
}

/// The tenant's credit notes as listed through its API.
async fn credit_notes(app: &TestApp, tok: &str, query: &str) -> Vec<Value> {
    let resp = app.get(&format!("{CREDIT_NOTES}{query}"), tok).await;
    let body = resp.ok();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["items"].as_array().expect("items is a list").clone()
}

/// The text of credit note `name`'s PDF, downloaded with `tok`.
async fn credit_note_text(app: &TestApp, tok: &str, name: &str) -> String {
    let resp = app.get(&format!("{CREDIT_NOTES}/{name}/pdf"), tok).await;
    let body = resp.ok();
    assert_eq!(body.as_object().unwrap().len(), 1, "only the pdf field: {body}");
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["pdf"].as_str().expect("pdf is a string"),
    )
    .expect("standard base64");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    normalize(&pdf_extract::extract_text_from_mem(&bytes).expect("a readable PDF"))
}

#[tokio::test]
async fn a_partial_then_a_full_refund_leave_the_invoice_paid_then_refunded() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = paid(&app, "acme").await;
        let charge = stored(&app, &acme, FIRST).await;
        assert_eq!(charge.invoice.totals.total, 2500);

        // 6.28 of 25.00: a credit note; the invoice stays PAID.
        app.clock.set(ts("2027-02-03T10:00:00Z"));
        let first = refund(
            &app,
            "acme",
            json!({"amount": "6.28", "reason": "Outage on 2027-01-12"}),
        )
        .await;
        let r = first.ok();
        assert_eq!(r["invoice"]["status"], "PAID");
        assert_eq!(
            (&r["invoice"]["refunded_cents"], &r["invoice"]["refunded"]),
            (&json!(628), &json!("6.28"))
        );
        assert_eq!(
            (&r["remaining_cents"], &r["remaining"]),
            (&json!(1872), &json!("18.72"))
        );
        assert_eq!(
            (&r["amount_cents"], &r["currency"], &r["resumed"]),
            (&json!(628), &json!("USD"), &json!(false))
        );
        let cn = &r["credit_note"];
        assert_eq!(cn["name"], "cn-2027-02-0001");
        assert_eq!(cn["invoice"], FIRST);
        assert_eq!(cn["state"], "SUCCEEDED");
        assert_eq!(
            (&cn["amount_cents"], &cn["amount"]),
            (&json!(628), &json!("6.28"))
        );
        assert_eq!(cn["reason"], "Outage on 2027-01-12");
        assert_eq!(cn["actor"], "operator");
        assert_eq!(cn["created_at"], "2027-02-03T10:00:00Z");
        assert!(
            cn["refund_reference"].as_str().unwrap().starts_with("re_"),
            "{cn}"
        );
        assert_eq!(
            cn["lines"],
            json!([{"description": "Partial refund of invoice inv-2027-01-0001", "quantity": "1",
                    "unit": "refund", "unit_price_cents": "628", "amount_cents": 628}])
        );
        assert_eq!(r["idempotency_key"], cn["idempotency_key"]);
        assert!(
            cn["idempotency_key"]
                .as_str()
                .unwrap()
                .ends_with("/cn-2027-02-0001"),
            "{cn}"
        );
        assert!(cn.get("failure").is_none(), "{cn}");
        // The contract's list: still PAID, its shape unchanged.
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "STATUS_PAID");

        // The rest (no amount: everything that remains): REFUNDED.
        app.clock.set(ts("2027-02-04T10:00:00Z"));
        let second = refund(&app, "acme", json!({"reason": "The customer left"})).await;
        let r = second.ok();
        assert_eq!(r["invoice"]["status"], "REFUNDED");
        assert_eq!(r["invoice"]["refunded"], "25.00");
        assert_eq!(
            (&r["remaining_cents"], &r["amount_cents"]),
            (&json!(0), &json!(1872))
        );
        assert_eq!(r["credit_note"]["name"], "cn-2027-02-0002");
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "STATUS_REFUNDED");
        // Both went to the provider, adding up to what it took.
        let refunded: Vec<i64> = app.provider.refunds().iter().map(|(_, a)| *a).collect();
        assert_eq!(refunded.iter().sum::<i64>(), 2500, "{refunded:?}");

        // REFUNDED: nothing remains, whatever is asked.
        for body in [
            json!({"reason": "again"}),
            json!({"amount": "0.01", "reason": "again"}),
        ] {
            let msg = refund(&app, "acme", body)
                .await
                .reason("INVOICE_ALREADY_REFUNDED")
                .error(409, 9)
                .to_owned();
            assert!(msg.contains("nothing remains"), "{msg}");
        }

        // The operator's views: the invoice with what is refunded and its
        // credit notes, the tenant's credit notes, the list of invoices.
        let detail = app
            .operator(Method::GET, &format!("{TENANTS}/acme/invoices/{FIRST}"), None)
            .await;
        let d = detail.ok();
        assert_eq!(
            (&d["status"], &d["refunded_cents"]),
            (&json!("REFUNDED"), &json!(2500))
        );
        let names: Vec<&str> = d["credit_notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["cn-2027-02-0001", "cn-2027-02-0002"], "oldest first");
        let all = app
            .operator(Method::GET, &format!("{TENANTS}/acme/credit-notes"), None)
            .await;
        let names: Vec<&str> = all.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["cn-2027-02-0002", "cn-2027-02-0001"], "newest first");
        let of_other = app
            .operator(
                Method::GET,
                &format!("{TENANTS}/acme/credit-notes?invoice=inv-2027-02-0002"),
                None,
            )
            .await;
        assert_eq!(of_other.ok()["items"], json!([]));
        let invoices = app
            .operator(Method::GET, "/api/operator/invoices?tenant=acme", None)
            .await;
        let row = invoices.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == FIRST)
            .cloned()
            .unwrap();
        assert_eq!(
            (&row["refunded_cents"], &row["refunded"]),
            (&json!(2500), &json!("25.00"))
        );
        // The operator's PDF is the tenant's.
        let op_pdf = app
            .operator(
                Method::GET,
                &format!("{TENANTS}/acme/credit-notes/cn-2027-02-0001/pdf"),
                None,
            )
            .await;
        let tenant_pdf = app
            .get(&format!("{CREDIT_NOTES}/cn-2027-02-0001/pdf"), &admin)
            .await;
        assert_eq!(op_pdf.ok()["pdf"], tenant_pdf.ok()["pdf"]);
        app.operator(
            Method::GET,
            &format!("{TENANTS}/acme/credit-notes/cn-1999-01-0001/pdf"),
            None,
        )
        .await
        .error(404, 5);
        app.operator(Method::GET, &format!("{TENANTS}/ghost/credit-notes"), None)
            .await
            .error(404, 5);

        // Audited: each credit note with its amount.
        let audit = app
            .operator(Method::GET, "/api/operator/audit?tenant=acme&limit=100", None)
            .await;
        let refunds: Vec<(Value, Value)> = audit.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "invoice.refund")
            .map(|e| {
                (
                    e["after"]["credit_note"].clone(),
                    e["after"]["amount_cents"].clone(),
                )
            })
            .collect();
        assert_eq!(
            refunds,
            [
                (json!("cn-2027-02-0002"), json!(1872)),
                (json!("cn-2027-02-0001"), json!(628))
            ]
        );

        // The invoice's PDF tells both refunds.
        let text = pdf_text(&app, &admin, FIRST).await;
        assert_has(
            &text,
            "refund cn-2027-02-0001 of 6.28 USD to test card ending 4242: refunded",
        );
        assert_has(
            &text,
            "refund cn-2027-02-0002 of 18.72 USD to test card ending 4242: refunded",
        );
    })
    .await;
}

#[tokio::test]
async fn a_refund_above_what_remains_or_with_a_bad_amount_is_refused_and_writes_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = paid(&app, "acme").await;
        refund(&app, "acme", json!({"amount": "20.00", "reason": "goodwill"}))
            .await
            .ok();

        // More than the 5.00 left: 409, saying how much remains.
        let audit_len = |app: &TestApp| {
            let store = app.store.clone();
            let id = acme.id.clone();
            async move { store.audit(Some(&id), 1000).await.unwrap().len() }
        };
        let before = audit_len(&app).await;
        for amount in ["5.01", "25.00", "999999999999999.99"] {
            let resp = refund(&app, "acme", json!({"amount": amount, "reason": "too much"})).await;
            let msg = resp.reason("REFUND_EXCEEDS_REMAINING").error(409, 9);
            assert!(
                msg.contains("has 5.00 USD left to refund (25.00 USD paid, 20.00 USD refunded)"),
                "{amount}: {msg}"
            );
            assert_eq!(resp.metadata("remaining_cents"), "500");
        }
        // Bad amounts and reasons: 400 naming the field.
        for (body, field) in [
            (json!({"amount": "0", "reason": "x"}), "amount"),
            (json!({"amount": "-1.00", "reason": "x"}), "amount"),
            (json!({"amount": "1.234", "reason": "x"}), "amount"),
            (json!({"amount": "abc", "reason": "x"}), "amount"),
            (json!({"amount": "", "reason": "x"}), "amount"),
            (json!({"amount": 1.5, "reason": "x"}), "amount"),
            (json!({"amount": "1.50"}), "reason"),
            (json!({"amount": "1.50", "reason": "   "}), "reason"),
            (json!({"amount": "1.50", "reason": "r".repeat(501)}), "reason"),
            (json!({"amount": "1.50", "reason": "a\u{7}b"}), "reason"),
            (json!({}), "reason"),
        ] {
            let resp = refund(&app, "acme", body.clone()).await;
            let msg = resp.error(400, 3);
            assert!(msg.starts_with(&format!("{field}: ")), "{body}: {msg}");
            assert_eq!(resp.metadata("field"), field, "{body}");
        }
        let resp = app
            .request(
                Method::POST,
                &refund_path("acme", FIRST),
                None,
                Body::empty(),
                &[(
                    "authorization",
                    &format!("Bearer {}", crate::support::OPERATOR_TOKEN),
                )],
            )
            .await;
        assert!(resp.error(400, 3).starts_with("reason: "));
        // Nothing was written or asked: one credit note, one provider
        // refund, the invoice not leased, no audit entry.
        let notes = app.store.credit_notes(&acme.id).await.unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(app.provider.refunds().len(), 1);
        assert_eq!(stored(&app, &acme, FIRST).await.leased_until, None);
        assert_eq!(audit_len(&app).await, before);

        // Not finalized, no such tenant.
        let pending = app
            .operator(
                Method::POST,
                &refund_path("acme", "inv-2027-02-0002"),
                Some(json!({"reason": "x"})),
            )
            .await;
        assert!(pending.error(404, 5).contains("no finalized invoice"));
        app.operator(
            Method::POST,
            &refund_path("ghost", FIRST),
            Some(json!({"reason": "x"})),
        )
        .await
        .error(404, 5);
        // An ISSUED invoice.
        let (_, _) = billed_tenant(&app, "globex", "individual", "2027-01-01T00:00:00Z", None).await;
        app.clock.set(ts(CLOSE));
        app.close_periods().await;
        app.operator(
            Method::POST,
            &refund_path("globex", FIRST),
            Some(json!({"reason": "x"})),
        )
        .await
        .reason("INVOICE_WRONG_STATUS")
        .error(409, 9);
    })
    .await;
}

#[tokio::test]
async fn tenants_list_their_credit_notes_and_read_them_as_pdfs() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = paid(&app, "acme").await;
        app.namespace(&acme, "shop").await;
        assert!(credit_notes(&app, &admin, "").await.is_empty());
        app.clock.set(ts("2027-02-03T10:00:00Z"));
        refund(
            &app,
            "acme",
            json!({"amount": "6.28", "reason": "Outage on 2027-01-12:\nfour hours down"}),
        )
        .await
        .ok();
        app.clock.set(ts("2027-02-04T10:00:00Z"));
        refund(&app, "acme", json!({"reason": "The customer left"}))
            .await
            .ok();

        let items = credit_notes(&app, &admin, "").await;
        assert_eq!(items.len(), 2);
        let newest = &items[0];
        let mut keys: Vec<&String> = newest.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "amount",
                "created_at",
                "currency",
                "invoice",
                "lines",
                "name",
                "reason",
                "settled_at",
                "state"
            ]
        );
        assert_eq!(newest["name"], "cn-2027-02-0002");
        assert_eq!(newest["invoice"], FIRST);
        assert_eq!(
            newest["amount"], "1872",
            "cents as a string, like an invoice's amount"
        );
        assert_eq!(
            (&newest["currency"], &newest["state"]),
            (&json!("USD"), &json!("SUCCEEDED"))
        );
        assert_eq!(newest["reason"], "The customer left");
        assert_eq!(newest["created_at"], "2027-02-04T10:00:00Z");
        assert_eq!(
            newest["lines"],
            json!([{"description": "Partial refund of invoice inv-2027-01-0001", "quantity": "1",
                    "unit": "refund", "unit_price": "1872", "amount": "1872"}])
        );
        assert_eq!(items[1]["name"], "cn-2027-02-0001");
        assert_eq!(items[1]["reason"], "Outage on 2027-01-12:\nfour hours down");
        assert_eq!(
            credit_notes(&app, &admin, &format!("?invoice={FIRST}")).await,
            items
        );
        assert!(
            credit_notes(&app, &admin, "?invoice=inv-2027-02-0002")
                .await
                .is_empty()
        );

        // The PDF: number, date, the invoice credited, lines, amount, reason, state.
        let text = credit_note_text(&app, &admin, "cn-2027-02-0001").await;
        for needle in [
            "Credit note",
            "cn-2027-02-0001",
            "Refunded",
            "CREDITED TO acme",
            "1 Main St",
            "Credit note number cn-2027-02-0001",
            "Date 2027-02-03",
            "Credits invoice inv-2027-01-0001",
            "Partial refund of invoice inv-2027-01-0001",
            "TOTAL CREDITED 6.28 USD",
            "Reason Outage on 2027-01-12: four hours down",
            "refund cn-2027-02-0001 of 6.28 USD to test card ending 4242: refunded (provider reference re_",
        ] {
            assert_has(&text, needle);
        }

        // Every role that reads invoices reads credit notes; a platform
        // token, or one scoped to another namespace, does not.
        for role in [Role::Monitor, Role::Billing] {
            let tok = app.token(&acme, role).await;
            assert_eq!(credit_notes(&app, &tok, "").await, items, "{role}");
            assert_eq!(
                credit_note_text(&app, &tok, "cn-2027-02-0002").await,
                credit_note_text(&app, &admin, "cn-2027-02-0002").await
            );
        }
        let platform = app.token(&acme, Role::Platform).await;
        let scoped = app.token_with(&acme, Role::Monitor, &["shop"], None).await;
        for tok in [&platform, &scoped] {
            app.get(CREDIT_NOTES, tok).await.error(403, 7);
            app.get(&format!("{CREDIT_NOTES}/cn-2027-02-0001/pdf"), tok)
                .await
                .error(403, 7);
        }
        // Without a token: 401. Outside system: 400. No such one: 404.
        app.request(Method::GET, CREDIT_NOTES, None, Body::empty(), &[])
            .await
            .error(401, 16);
        for path in [
            "/api/web/namespaces/shop/billing/credit_notes",
            "/api/web/namespaces/shop/billing/credit_notes/cn-2027-02-0001/pdf",
        ] {
            assert!(
                app.get(path, &admin).await.error(400, 3).contains("system"),
                "{path}"
            );
        }
        for name in ["cn-2027-02-0003", "cn-1999-01-0001", "nope", "CN-2027-02-0001"] {
            let msg = app
                .get(&format!("{CREDIT_NOTES}/{name}/pdf"), &admin)
                .await
                .error(404, 5)
                .to_owned();
            assert!(msg.contains(name), "{msg}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_credit_notes_even_under_the_same_name() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, acme_tok) = paid(&app, "acme").await;
        let (_, globex_tok) = paid(&app, "globex").await;
        let (_, initech_tok) = billed_tenant(
            &app,
            "initech",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-ok-1"),
        )
        .await;
        app.clock.set(ts("2027-02-03T10:00:00Z"));
        refund(&app, "acme", json!({"amount": "1.00", "reason": "acme's reason"}))
            .await
            .ok();
        app.operator(
            Method::POST,
            &refund_path("globex", FIRST),
            Some(json!({"amount": "2.00", "reason": "globex's reason"})),
        )
        .await
        .ok();

        // Both are cn-2027-02-0001, each its own tenant's.
        let acme_notes = credit_notes(&app, &acme_tok, "").await;
        let globex_notes = credit_notes(&app, &globex_tok, "").await;
        assert_eq!((acme_notes.len(), globex_notes.len()), (1, 1));
        assert_eq!(acme_notes[0]["name"], globex_notes[0]["name"]);
        assert_eq!(
            (&acme_notes[0]["amount"], &globex_notes[0]["amount"]),
            (&json!("100"), &json!("200"))
        );
        let acme_pdf = credit_note_text(&app, &acme_tok, "cn-2027-02-0001").await;
        let globex_pdf = credit_note_text(&app, &globex_tok, "cn-2027-02-0001").await;
        assert_has(&acme_pdf, "acme's reason");
        assert!(!acme_pdf.contains("globex"), "{acme_pdf}");
        assert_has(&globex_pdf, "globex's reason");
        assert!(!globex_pdf.contains("acme"), "{globex_pdf}");
        // A tenant without credit notes sees none and gets 404 by name.
        assert!(credit_notes(&app, &initech_tok, "").await.is_empty());
        app.get(&format!("{CREDIT_NOTES}/cn-2027-02-0001/pdf"), &initech_tok)
            .await
            .error(404, 5);
        assert!(
            credit_notes(&app, &initech_tok, &format!("?invoice={FIRST}"))
                .await
                .is_empty()
        );
        // A second acme refund is acme's 2nd, whatever globex did.
        refund(&app, "acme", json!({"amount": "1.00", "reason": "more"}))
            .await
            .ok();
        assert_eq!(
            app.store.credit_notes(&acme.id).await.unwrap()[0].credit_note,
            "cn-2027-02-0002"
        );
        app.get(&format!("{CREDIT_NOTES}/cn-2027-02-0002/pdf"), &globex_tok)
            .await
            .error(404, 5);
    })
    .await;
}
