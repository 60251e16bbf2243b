//! Prepaid credits: the operator grants them; finalization applies them
//! (highest priority first, then the soonest expiry; only in the invoice's
//! currency; before tax) and charges only the rest; the ledger is
//! append-only and adds up to the balance; expiry, reversal and the refund
//! of a cancelled invoice are entries; `credits.low_balance` fires once at
//! the tenant's threshold; nothing is applied twice by retries or replicas.
//! Amounts worked out by hand.

use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, card};
use crate::invoice_support::{attempts, pdf_text, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::{current, fixed_items, item};

const CREDITS: &str = "/api/web/namespaces/system/billing/credits";
const LEDGER: &str = "/api/web/namespaces/system/billing/credits/ledger";
const SETTINGS: &str = "/api/web/namespaces/system/billing/credits/settings";

fn grants_path(tenant: &str) -> String {
    format!("/api/operator/tenants/{tenant}/credits")
}

async fn grant(app: &TestApp, tenant: &str, body: Value) -> Value {
    app.operator(Method::POST, &grants_path(tenant), Some(body))
        .await
        .ok()
        .clone()
}

/// (kind, amount, invoice) of every ledger entry, oldest first.
async fn ledger(app: &TestApp, token: &str) -> Vec<(String, i64, String)> {
    let page = app.get(LEDGER, token).await;
    let mut out: Vec<(String, i64, String)> = page.ok()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount_cents"].as_str().unwrap().parse().unwrap(),
                e["invoice"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn balance(credits: &Value, currency: &str) -> i64 {
    credits["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == currency)
        .map_or(0, |b| b["balance_cents"].as_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn credits_pay_by_priority_then_expiry_before_tax_and_only_the_rest_is_charged() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on("acme", "individual").await;
        let admin = app.token(&acme, Role::Admin).await;
        let monitor = app.token(&acme, Role::Monitor).await;
        app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242"))
            .await
            .ok();
        app.clock.set(ts("2027-01-20T00:00:00Z"));

        // The tenant sets its threshold at 10.00; a monitor may not.
        app.put(SETTINGS, &monitor, json!({"low_balance_threshold": "10.00"}))
            .await
            .error(403, 7);
        let set = app
            .put(SETTINGS, &admin, json!({"low_balance_threshold": "10.00"}))
            .await;
        assert_eq!(set.ok(), &json!({"low_balance_threshold_cents": "1000"}));

        // Four grants; the fee of 25.00 is paid by C (priority 5, expires
        // first: 3.00), then A (priority 5, later: 10.00), then B (priority
        // 0: 8.00, all it has) = 21.00; the EUR grant pays nothing of a USD
        // invoice. 4.00 is left to charge.
        let a = grant(
            &app,
            "acme",
            json!({"amount": "10.00", "priority": 5, "expires_at": "2027-06-01T00:00:00Z", "reason": "Launch promotion"}),
        )
        .await;
        assert_eq!(
            (&a["currency"], &a["amount_cents"], &a["remaining_cents"], &a["priority"]),
            (&json!("USD"), &json!("1000"), &json!("1000"), &json!(5))
        );
        let b = grant(&app, "acme", json!({"amount": "8", "reason": "Prepaid top-up"})).await;
        let c = grant(
            &app,
            "acme",
            json!({"amount": "3.00", "priority": 5, "expires_at": "2027-03-01T00:00:00Z", "reason": "Apology"}),
        )
        .await;
        grant(
            &app,
            "acme",
            json!({"amount": "99.99", "currency": "EUR", "priority": 9, "reason": "Euro credits"}),
        )
        .await;
        let before = app.get(CREDITS, &monitor).await;
        assert_eq!(balance(before.ok(), "USD"), 2100);
        assert_eq!(balance(before.ok(), "EUR"), 9999);
        assert_eq!(before.ok()["currency"], "USD");
        assert_eq!(before.ok()["grants"].as_array().unwrap().len(), 4);

        // While the period is open, nothing is applied.
        let open = current(&app, &admin, "system", json!({})).await;
        assert_eq!(open["total_cost"], "2500");

        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        inv.check().unwrap();
        let paid: Vec<(&str, i64)> = inv
            .credits
            .iter()
            .map(|c| (c.grant.as_str(), c.amount_cents))
            .collect();
        assert_eq!(
            paid,
            [
                (c["id"].as_str().unwrap(), 300),
                (a["id"].as_str().unwrap(), 1000),
                (b["id"].as_str().unwrap(), 800)
            ]
        );
        assert_eq!(
            (inv.totals.subtotal, inv.totals.credits, inv.totals.total),
            (2500, 2100, 400)
        );
        assert_eq!(inv.status, InvoiceStatus::Issued);

        // Only the rest is charged.
        app.charge().await;
        let charged = attempts(&app, &acme, "inv-2027-01-0001").await;
        assert_eq!(charged.len(), 1);
        assert_eq!(charged[0].amount_cents, 400);
        assert_eq!(
            stored(&app, &acme, "inv-2027-01-0001").await.invoice.status,
            InvoiceStatus::Paid
        );

        // The period's bill says what its invoice says.
        let jan = current(
            &app,
            &admin,
            "system",
            json!({"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(
            fixed_items(&jan),
            [item("Individual plan", "2500"), item("Prepaid credits", "-2100")]
        );
        assert_eq!(jan["total_cost"], "400");

        // The PDF, the operator's view and the ledger show them.
        let pdf = pdf_text(&app, &admin, "inv-2027-01-0001").await;
        assert!(
            pdf.contains("Prepaid credits: Apology") && pdf.contains("-10.00 USD") && pdf.contains("4.00 USD"),
            "{pdf}"
        );
        let detail = app
            .operator(
                Method::GET,
                "/api/operator/tenants/acme/invoices/inv-2027-01-0001",
                None,
            )
            .await;
        assert_eq!(detail.ok()["credits_cents"], 2100);
        assert_eq!(detail.ok()["credits"][0]["description"], "Apology");
        let entries = ledger(&app, &monitor).await;
        let invoice = "inv-2027-01-0001".to_owned();
        assert_eq!(
            entries,
            [
                ("grant".into(), 1000, String::new()),
                ("grant".into(), 800, String::new()),
                ("grant".into(), 300, String::new()),
                ("grant".into(), 9999, String::new()),
                ("apply".into(), -300, invoice.clone()),
                ("apply".into(), -1000, invoice.clone()),
                ("apply".into(), -800, invoice.clone()),
            ]
        );
        let after = app.get(CREDITS, &admin).await;
        let usd: i64 = entries.iter().filter(|e| e.1 != 9999).map(|e| e.1).sum();
        assert_eq!(balance(after.ok(), "USD"), usd);
        assert_eq!(usd, 0);
        assert_eq!(balance(after.ok(), "EUR"), 9999);

        // The balance went from 21.00 to 0 in one finalization, below the
        // 10.00 threshold: one credits.low_balance event.
        let low: Vec<_> = app
            .store
            .webhook_events(&acme.id, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "credits.low_balance")
            .collect();
        assert_eq!(low.len(), 1, "{low:?}");
        let data: Value = serde_json::from_str(low[0].data.as_deref().unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"currency": "USD", "balance_cents": "0", "threshold_cents": "1000"})
        );
    })
    .await;
}

#[tokio::test]
async fn taxes_are_computed_on_what_the_credits_leave() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let text = format!(
            "{}\n[[taxes]]\nname = \"VAT\"\ncountry = \"DE\"\nrate = 19\n",
            tollgate_domain::catalog::BUILTIN_TOML.replacen("format = 1", "format = 2", 1)
        );
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on_catalog("acme", "individual", &text, "taxes.toml").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.post(
            PAYMENT_METHODS,
            &admin,
            json!({
                "token": "tok-visa-4242",
                "contact": {"address1": "1 Main St", "city": "Berlin", "country": "DE", "contact_type": "BILLING"},
                "role": "PAYMENT_METHOD_ROLE_PRIMARY",
                "namespace": "system"
            }),
        )
        .await
        .ok();
        // 25.00 − 10.01 of credits = 14.99; VAT 19 % = 2.8481 → 2.85;
        // total 17.84.
        grant(&app, "acme", json!({"amount": "10.01", "reason": "Prepaid"})).await;
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        inv.check().unwrap();
        assert_eq!(
            (inv.totals.credits, inv.totals.tax, inv.totals.total),
            (1001, 285, 1784)
        );
        assert_eq!(inv.taxes[0].taxable_cents, 1499);
        let jan = current(
            &app,
            &admin,
            "system",
            json!({"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(
            fixed_items(&jan),
            [
                item("Individual plan", "2500"),
                item("Prepaid credits", "-1001"),
                item("VAT 19 %", "285")
            ]
        );
        assert_eq!(jan["total_cost"], "1784");
    })
    .await;
}

#[tokio::test]
async fn expiry_reversal_and_a_cancelled_invoice_are_ledger_entries() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on("acme", "individual").await;
        let admin = app.token(&acme, Role::Admin).await;
        app.clock.set(ts("2027-01-10T00:00:00Z"));
        let soon = grant(
            &app,
            "acme",
            json!({"amount": "7.00", "expires_at": "2027-01-15T00:00:00Z", "reason": "Trial credits"}),
        )
        .await;
        let kept = grant(&app, "acme", json!({"amount": "20.00", "reason": "Prepaid"})).await;
        let kept_id = kept["id"].as_str().unwrap().to_owned();

        // Expired: written off by the job, and never applied.
        app.clock.set(ts("2027-01-16T00:00:00Z"));
        let ctx = app.job_context("test-worker", None);
        assert_eq!(tollgate_app::Job::CreditExpiry.run(&ctx).await.unwrap(), 1);
        assert_eq!(tollgate_app::Job::CreditExpiry.run(&ctx).await.unwrap(), 0);
        let after = app.get(CREDITS, &admin).await;
        assert_eq!(balance(after.ok(), "USD"), 2000);
        let g = after.ok()["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == soon["id"])
            .unwrap()
            .clone();
        assert_eq!(g["remaining_cents"], "0");

        // Reversal: part, then more than is left (refused), then an unknown grant.
        let reverse = |id: &str| format!("/api/operator/tenants/acme/credits/{id}/reverse");
        let r = app
            .operator(
                Method::POST,
                &reverse(&kept_id),
                Some(json!({"amount": "2.50", "reason": "Billing error"})),
            )
            .await;
        assert_eq!(r.ok()["remaining_cents"], "1750");
        let too_much = app
            .operator(
                Method::POST,
                &reverse(&kept_id),
                Some(json!({"amount": "20.00", "reason": "again"})),
            )
            .await;
        assert!(
            too_much
                .reason("CREDITS_EXCEED_REMAINING")
                .error(409, 9)
                .contains("17.50 USD left"),
            "{}",
            too_much.body
        );
        app.operator(Method::POST, &reverse("cg_nothing"), Some(json!({"reason": "x"})))
            .await
            .error(404, 5);
        app.operator(Method::POST, &reverse(&kept_id), Some(json!({"amount": "1.00"})))
            .await
            .error(400, 3);

        // January's invoice takes all 17.50 (25.00 due); cancelled, the
        // credits come back to their grant.
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        assert_eq!((inv.totals.credits, inv.totals.total), (1750, 750));
        app.operator(
            Method::POST,
            "/api/operator/tenants/acme/invoices/inv-2027-01-0001/cancel",
            None,
        )
        .await
        .ok();
        let entries = ledger(&app, &admin).await;
        let kinds: Vec<(&str, i64)> = entries.iter().map(|(k, a, _)| (k.as_str(), *a)).collect();
        assert_eq!(
            kinds,
            [
                ("grant", 700),
                ("grant", 2000),
                ("expire", -700),
                ("reverse", -250),
                ("apply", -1750),
                ("refund", 1750)
            ]
        );
        assert_eq!(entries[5].2, "inv-2027-01-0001");
        let after = app.get(CREDITS, &admin).await;
        assert_eq!(balance(after.ok(), "USD"), 1750);
        assert_eq!(
            balance(after.ok(), "USD"),
            entries.iter().map(|e| e.1).sum::<i64>()
        );
        // Audited: the grants and the reversal.
        let audit = app
            .operator(Method::GET, "/api/operator/audit?tenant=acme", None)
            .await;
        let actions: Vec<&str> = audit.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .filter(|a| a.starts_with("credits."))
            .collect();
        assert_eq!(actions.len(), 3, "{actions:?}");
    })
    .await;
}

#[tokio::test]
async fn bad_grants_are_refused_naming_the_field_and_change_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-10T00:00:00Z"));
        let acme = app.tenant_on("acme", "individual").await;
        let admin = app.token(&acme, Role::Admin).await;
        for (body, field) in [
            (json!({"amount": "abc", "reason": "x"}), "amount"),
            (json!({"amount": "0", "reason": "x"}), "amount"),
            (json!({"amount": "1.234", "reason": "x"}), "amount"),
            (
                json!({"amount": "1", "currency": "usd", "reason": "x"}),
                "currency",
            ),
            (
                json!({"amount": "1", "priority": 1001, "reason": "x"}),
                "priority",
            ),
            (
                json!({"amount": "1", "expires_at": "2027-01-01T00:00:00Z", "reason": "x"}),
                "expires_at",
            ),
            (
                json!({"amount": "1", "expires_at": "soon", "reason": "x"}),
                "expires_at",
            ),
            (json!({"amount": "1", "reason": "  "}), "reason"),
        ] {
            let r = app
                .operator(Method::POST, &grants_path("acme"), Some(body.clone()))
                .await;
            assert!(r.error(400, 3).starts_with(field), "{body}: {}", r.body);
        }
        app.operator(
            Method::POST,
            &grants_path("nobody"),
            Some(json!({"amount": "1", "reason": "x"})),
        )
        .await
        .error(404, 5);
        let none = app.get(CREDITS, &admin).await;
        assert_eq!(none.ok()["grants"], json!([]));
        assert_eq!(balance(none.ok(), "USD"), 0);
        assert!(ledger(&app, &admin).await.is_empty());
        // A read-only operator token cannot grant.
        let ro = app
            .operator(
                Method::POST,
                "/api/operator/operator-tokens",
                Some(json!({"name": "reader", "role": "operator-read"})),
            )
            .await;
        let secret = ro.ok()["secret"].as_str().unwrap().to_owned();
        app.operator_as(
            &secret,
            Method::POST,
            &grants_path("acme"),
            Some(json!({"amount": "1", "reason": "x"})),
        )
        .await
        .error(403, 7);
        app.get(&format!("{LEDGER}?limit=0"), &admin).await.error(400, 3);
        app.get(&format!("{LEDGER}?before=x"), &admin).await.error(400, 3);
        app.put(SETTINGS, &admin, json!({"low_balance_threshold": "-1"}))
            .await
            .error(400, 3);
        app.namespace(&acme, "web").await;
        app.get("/api/web/namespaces/web/billing/credits", &admin)
            .await
            .error(400, 3);
    })
    .await;
}

#[tokio::test]
async fn a_tenant_sees_nothing_of_another_tenants_credits() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on("acme", "individual").await;
        let globex = app.tenant_on("globex", "individual").await;
        let acme_admin = app.token(&acme, Role::Admin).await;
        let globex_admin = app.token(&globex, Role::Admin).await;
        let g = grant(&app, "acme", json!({"amount": "50.00", "reason": "Acme only"})).await;
        let mine = app.get(CREDITS, &acme_admin).await;
        assert_eq!(balance(mine.ok(), "USD"), 5000);
        let theirs = app.get(CREDITS, &globex_admin).await;
        assert_eq!(theirs.ok()["grants"], json!([]));
        assert_eq!(balance(theirs.ok(), "USD"), 0);
        assert!(ledger(&app, &globex_admin).await.is_empty());
        // Acme's grant is not globex's to reverse, even by the operator
        // through globex's path.
        app.operator(
            Method::POST,
            &format!(
                "/api/operator/tenants/globex/credits/{}/reverse",
                g["id"].as_str().unwrap()
            ),
            Some(json!({"reason": "wrong tenant"})),
        )
        .await
        .error(404, 5);
        // Globex's invoice is not paid with acme's credits.
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        app.close_periods().await;
        let inv = stored(&app, &globex, "inv-2027-01-0001").await.invoice;
        assert_eq!((inv.totals.credits, inv.totals.total), (0, 2500));
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        assert_eq!((inv.totals.credits, inv.totals.total), (2500, 0));
        assert_eq!(inv.status, InvoiceStatus::Paid);
    })
    .await;
}

#[tokio::test]
async fn replicas_closing_the_same_periods_at_once_apply_credits_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let mut tenants = Vec::new();
        for name in ["acme", "globex", "initech"] {
            tenants.push(app.tenant_on(name, "individual").await);
            grant(&app, name, json!({"amount": "30.00", "reason": "Prepaid"})).await;
        }
        // Three months closed by two replicas at once: each invoice takes
        // 25.00 while the 30.00 lasts (25.00, 5.00, nothing).
        for (month, (credits, total)) in
            ["2027-02-03", "2027-03-03", "2027-04-03"]
                .into_iter()
                .zip([(2500, 0), (500, 2000), (0, 2500)])
        {
            app.clock.set(ts(&format!("{month}T00:00:00Z")));
            let (one, two) = (
                app.job_context("replica-1", None),
                app.job_context("replica-2", None),
            );
            let now = ts(&format!("{month}T00:00:00Z"));
            let (a, b) = tokio::join!(
                tollgate_app::invoices::close_periods(&one, now),
                tollgate_app::invoices::close_periods(&two, now)
            );
            assert_eq!(a.unwrap() + b.unwrap(), 3, "{month}");
            for t in &tenants {
                let invoices = app.store.invoices(&t.id).await.unwrap();
                let latest = &invoices[0].invoice;
                latest.check().unwrap();
                assert_eq!(
                    (latest.totals.credits, latest.totals.total),
                    (credits, total),
                    "{month}"
                );
            }
        }
        for t in &tenants {
            let entries = app.store.credit_ledger(&t.id, None, 100).await.unwrap();
            let applied: i64 = entries
                .iter()
                .filter(|e| e.kind == tollgate_domain::credits::EntryKind::Apply)
                .map(|e| e.amount_cents)
                .sum();
            assert_eq!(applied, -3000);
            let grants = app.store.credit_grants(&t.id).await.unwrap();
            assert_eq!(grants[0].remaining_cents, 0);
            assert_eq!(
                entries.iter().map(|e| e.amount_cents).sum::<i64>(),
                grants[0].remaining_cents
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_stale_allocation_is_refused_whole_and_finalization_tries_again() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let acme = app.tenant_on("acme", "individual").await;
        let g = grant(&app, "acme", json!({"amount": "10.00", "reason": "Prepaid"})).await;
        let id = g["id"].as_str().unwrap().to_owned();
        app.clock.set(ts("2027-02-03T00:00:00Z"));
        let now = ts("2027-02-03T00:00:00Z");
        // An invoice computed when the grant held 10.00, stored after 4.00
        // of it was reversed: refused whole, nothing written.
        let versions = tollgate_app::catalogs::Versions::default();
        let book = tollgate_app::invoices::Book::open(app.store.as_ref(), &versions, &acme.id, now)
            .await
            .unwrap();
        let mut inv = book
            .compute(&book.periods[0], InvoiceStatus::Issued)
            .await
            .unwrap();
        tollgate_app::credits::apply(app.store.as_ref(), &acme.id, &mut inv, now)
            .await
            .unwrap();
        assert_eq!(inv.totals.credits, 1000);
        app.store
            .reverse_credits(&acme.id, &id, Some(400), "correction", "operator", now)
            .await
            .unwrap();
        let e = app
            .store
            .finalize_invoice(&acme.id, &inv, Some(now), "test", now)
            .await
            .unwrap_err();
        assert!(matches!(e, tollgate_store::StoreError::Conflict(..)), "{e:?}");
        assert!(app.store.invoices(&acme.id).await.unwrap().is_empty());
        // The job computes it again with what is left.
        assert_eq!(app.close_periods().await, 1);
        let inv = stored(&app, &acme, "inv-2027-01-0001").await.invoice;
        assert_eq!((inv.totals.credits, inv.totals.total), (600, 1900));
        // Finalizing the same invoice again writes nothing more.
        let mut again = inv.clone();
        again.status = InvoiceStatus::Issued;
        assert!(
            !app.store
                .finalize_invoice(&acme.id, &again, Some(now), "test", now)
                .await
                .unwrap()
        );
        let entries = app.store.credit_ledger(&acme.id, None, 100).await.unwrap();
        assert_eq!(entries.len(), 3, "grant, reverse, one apply: {entries:?}");
    })
    .await;
}
