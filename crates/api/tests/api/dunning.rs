//! Dunning: an invoice OVERDUE past the suspension delay suspends its
//! tenant (reservations refused, the rest working), a new card charges it
//! again without the request waiting for the provider, paying or
//! cancelling lifts the suspension at once, and the operator can lift it.

use std::sync::Arc;

use axum::http::Method;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tollgate_app::Job;
use tollgate_app::invoices::InvoiceSettings;
use tollgate_domain::access::Role;
use tollgate_domain::contact::Contact;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::tenant::Tenant;
use tollgate_payments::{
    Charge, ChargeRequest, PaymentProvider, ProviderError, RefundRequest, Registered, TestProvider,
};
use tollgate_testkit::each_backend;

use crate::billing_support::{PAYMENT_METHODS, add_card, card, role_path};
use crate::invoice_support::{attempts, billed_tenant, entry, list, stored};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};

const DAY: SignedDuration = SignedDuration::from_hours(24);
/// When the first period (January 2027) is finalized and first charged.
const CLOSE: &str = "2027-02-02T00:00:00Z";
/// Its last retry (+7 days) fails: OVERDUE from then on.
const OVERDUE: &str = "2027-02-09T00:00:00Z";
/// Fourteen days later (the default delay) the tenant is suspended.
const SUSPEND: &str = "2027-02-23T00:00:00Z";
const FIRST: &str = "inv-2027-01-0001";
const RESERVE: &str = "/api/web/namespaces/system/quota/reserve";
const RELEASE: &str = "/api/web/namespaces/system/quota/release";
const USAGE: &str = "/api/web/namespaces/system/quota/usage";

fn reserve(id: &str) -> Value {
    json!({"kind": "virtual_host", "amount": 1, "request_id": id})
}

fn now(app: &TestApp) -> Timestamp {
    tollgate_domain::clock::Clock::now(app.clock.as_ref())
}

/// acme on `individual` from 2027-01-01 with a card that declines, a
/// platform token and one reservation made in January; its first invoice
/// is OVERDUE after the last retry, at [`OVERDUE`] (the clock is left there).
async fn overdue_tenant(app: &TestApp) -> (Tenant, String, String) {
    let (acme, admin) = billed_tenant(
        app,
        "acme",
        "individual",
        "2027-01-01T00:00:00Z",
        Some("tok-declined-4000"),
    )
    .await;
    let platform = app.token(&acme, Role::Platform).await;
    app.clock.set(ts("2027-01-15T00:00:00Z"));
    app.post(RESERVE, &platform, reserve("before")).await.ok();
    app.clock.set(ts(CLOSE));
    assert_eq!(app.close_periods().await, 1);
    for days in [0, 1, 3, 7] {
        app.clock.set(ts(CLOSE) + DAY * days);
        assert_eq!(app.charge().await, 1, "+{days}d");
    }
    let s = stored(app, &acme, FIRST).await;
    assert_eq!(
        (s.invoice.status, s.overdue_at),
        (InvoiceStatus::Overdue, Some(ts(OVERDUE)))
    );
    (acme, admin, platform)
}

/// Runs the suspension job at the test clock's time; returns how many
/// tenants it suspended.
async fn suspend(app: &TestApp) -> usize {
    Job::Suspend
        .run(&app.job_context("test-worker", None))
        .await
        .expect("suspension job")
}

async fn suspended(app: &TestApp, tenant: &Tenant) -> bool {
    app.store
        .tenant(&tenant.id)
        .await
        .unwrap()
        .unwrap()
        .suspension
        .is_some()
}

/// The tenant's audit trail as (action, actor), oldest first, from `from` on.
async fn trail(app: &TestApp, tenant: &Tenant, actions: &[&str]) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = app
        .store
        .audit(Some(&tenant.id), 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| actions.contains(&e.action.as_str()))
        .map(|e| (e.action, e.actor))
        .collect();
    entries.reverse();
    entries
}

/// Asserts that a reservation is refused because the tenant is suspended
/// for `invoices` (and nothing is reserved).
#[track_caller]
fn assert_refused(resp: &crate::support::Resp, invoices: &str) {
    let message = resp.error(403, 7).to_owned();
    resp.reason("TENANT_SUSPENDED");
    assert_eq!(resp.metadata("invoices"), invoices, "{}", resp.body);
    for name in invoices.split(',') {
        assert!(message.contains(name), "{message}");
    }
    assert!(message.starts_with("tenant acme is suspended since"), "{message}");
}

/// Forwards to the test provider, but holds every charge until the test
/// lets it go: the request that started it must have answered by then.
struct Held {
    inner: Arc<TestProvider>,
    gate: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl PaymentProvider for Held {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn register(
        &self,
        token: &str,
        customer: Option<&str>,
        contact: &Contact,
    ) -> Result<Registered, ProviderError> {
        self.inner.register(token, customer, contact).await
    }

    async fn charge(&self, req: &ChargeRequest<'_>) -> Result<Charge, ProviderError> {
        let _pass = self.gate.acquire().await.expect("the gate stays open");
        self.inner.charge(req).await
    }

    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        self.inner.refund(req).await
    }
}

#[tokio::test]
async fn overdue_past_the_delay_suspends_reservations_and_a_good_card_lifts_it_at_once() {
    each_backend(|db| async move {
        let gate = Arc::new(Semaphore::new(0));
        let held = gate.clone();
        let app = TestApp::with_provider(db, move |inner| Arc::new(Held { inner, gate: held })).await;
        let (acme, admin, platform) = overdue_tenant(&app).await;

        // Not before the delay is over.
        app.clock.set(ts(SUSPEND) - SignedDuration::from_secs(1));
        assert_eq!(suspend(&app).await, 0);
        assert!(!suspended(&app, &acme).await);
        app.post(RESERVE, &platform, reserve("r1")).await.ok();

        app.clock.set(ts(SUSPEND));
        assert_eq!(suspend(&app).await, 1);
        assert_eq!(suspend(&app).await, 0, "once");
        assert!(suspended(&app, &acme).await);

        // Reservations are refused, naming the invoice and the amount.
        let refused = app.post(RESERVE, &platform, reserve("r2")).await;
        assert_refused(&refused, FIRST);
        assert_eq!(refused.metadata("amount_cents"), "2500");
        assert_eq!(refused.metadata("currency"), "USD");
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap()
                .contains("inv-2027-01-0001 (25.00 USD, overdue since 2027-02-09)"),
            "{}",
            refused.body
        );
        // The admin's too; a repeat of a reservation made before still
        // answers as the first time.
        assert_refused(&app.post(RESERVE, &admin, reserve("r3")).await, FIRST);
        let again = app.post(RESERVE, &platform, reserve("r1")).await;
        assert_eq!(again.ok()["replayed"], true, "{}", again.body);

        // Everything else goes on: reads, releases, usage reports, invoices.
        let usage = app.get(USAGE, &admin).await;
        assert_eq!(
            usage.ok()["objects"]["virtual_host"]["usage"]["current"],
            2,
            "{}",
            usage.body
        );
        app.post(
            RELEASE,
            &platform,
            json!({"kind": "virtual_host", "amount": 1, "request_id": "d1"}),
        )
        .await
        .ok();
        let at = now(&app).to_string();
        ingest_all(
            &app,
            &platform,
            "system",
            vec![event("e1", "lb_requests", "lb-web", 5, at.as_str())],
        )
        .await;
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "OVERDUE");
        app.get(PAYMENT_METHODS, &admin).await.ok();

        // The operator sees it.
        let shown = app
            .operator(Method::GET, "/api/operator/tenants/acme", None)
            .await;
        let suspension = &shown.ok()["suspended"];
        assert_eq!(
            (&suspension["by"], &suspension["invoices"], &suspension["since"]),
            (&json!("tollgate/dunning"), &json!([FIRST]), &json!(SUSPEND)),
            "{}",
            shown.body
        );

        // A good card as the new primary: the request answers while the
        // charge it started is still with the provider.
        app.clock.advance(SignedDuration::from_hours(2));
        let at = now(&app);
        let added = app.post(PAYMENT_METHODS, &admin, card("tok-visa-4242")).await;
        added.ok();
        let due = stored(&app, &acme, FIRST).await;
        assert_eq!(
            (due.invoice.status, due.next_charge_at),
            (InvoiceStatus::Issued, Some(at)),
            "charged again now"
        );
        assert!(suspended(&app, &acme).await, "not paid yet");
        assert!(app.provider.successful_charges().is_empty());
        gate.add_permits(100);
        app.state.charged().await;

        // Paid: reinstated at once.
        let paid = stored(&app, &acme, FIRST).await;
        assert_eq!(paid.invoice.status, InvoiceStatus::Paid);
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-visa-4242".to_owned(), 2500)]
        );
        assert!(!suspended(&app, &acme).await);
        let reserved = app.post(RESERVE, &platform, reserve("r2")).await;
        assert_eq!(reserved.ok()["current"], 2, "{}", reserved.body);
        let shown = app
            .operator(Method::GET, "/api/operator/tenants/acme", None)
            .await;
        assert!(shown.ok().get("suspended").is_none(), "{}", shown.body);

        let token_actor = trail(&app, &acme, &["invoice.charge_scheduled"]).await[0]
            .1
            .clone();
        assert!(token_actor.starts_with("token/"), "{token_actor}");
        assert_eq!(
            trail(
                &app,
                &acme,
                &[
                    "invoice.overdue",
                    "tenant.suspended",
                    "invoice.charge_scheduled",
                    "invoice.paid",
                    "tenant.reinstated"
                ]
            )
            .await,
            [
                ("invoice.overdue", "tollgate/charge-worker"),
                ("tenant.suspended", "tollgate/dunning"),
                ("invoice.charge_scheduled", token_actor.as_str()),
                ("invoice.paid", "tollgate/charge-worker"),
                ("tenant.reinstated", "tollgate/charge-worker"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    })
    .await;
}

#[tokio::test]
async fn a_declined_new_card_leaves_it_suspended_and_a_new_secondary_pays() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin, platform) = overdue_tenant(&app).await;
        app.clock.set(ts(SUSPEND) + DAY);
        assert_eq!(suspend(&app).await, 1);

        // Another card that declines, as the primary: one more round, declined.
        add_card(&app, &admin, "tok-declined-5555", None).await; // NORMAL: nothing to retry with
        let s = stored(&app, &acme, FIRST).await;
        assert_eq!(
            (s.invoice.status, s.next_charge_at),
            (InvoiceStatus::Overdue, None)
        );
        let declined = add_card(
            &app,
            &admin,
            "tok-declined-6666",
            Some(json!("PAYMENT_METHOD_ROLE_PRIMARY")),
        )
        .await;
        app.state.charged().await;
        let s = stored(&app, &acme, FIRST).await;
        assert_eq!(
            (s.invoice.status, s.attempts, s.overdue_at),
            (InvoiceStatus::Overdue, 5, Some(ts(OVERDUE))),
            "OVERDUE since the first time"
        );
        let last = attempts(&app, &acme, FIRST).await.pop().unwrap();
        assert_eq!((last.attempt, last.method.unwrap().name), (5, declined.clone()));
        assert!(suspended(&app, &acme).await);
        assert_refused(&app.post(RESERVE, &platform, reserve("r1")).await, FIRST);
        // The suspension job leaves it as it is.
        app.clock.advance(DAY);
        assert_eq!(suspend(&app).await, 0);

        // A good card as a NORMAL method, then made secondary: charged again,
        // the primary declines, the secondary pays.
        let good = add_card(&app, &admin, "tok-visa-4242", None).await;
        assert_eq!(stored(&app, &acme, FIRST).await.next_charge_at, None);
        app.post(&role_path(&good, "secondary"), &admin, json!({}))
            .await
            .ok();
        app.state.charged().await;
        assert_eq!(
            stored(&app, &acme, FIRST).await.invoice.status,
            InvoiceStatus::Paid
        );
        assert!(!suspended(&app, &acme).await);
        app.post(RESERVE, &platform, reserve("r1")).await.ok();
    })
    .await;
}

#[tokio::test]
async fn the_operator_reinstates_by_hand_until_the_next_invoice_and_cancelling_lifts_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _admin, platform) = overdue_tenant(&app).await;
        app.clock.set(ts(SUSPEND));
        // Off: no one is suspended.
        let off = InvoiceSettings {
            suspend_after: None,
            ..InvoiceSettings::default()
        };
        assert_eq!(
            Job::Suspend
                .run(&app.job_context("test-worker", Some(off)))
                .await
                .unwrap(),
            0
        );
        assert!(!suspended(&app, &acme).await);
        assert_eq!(suspend(&app).await, 1);

        let reinstate = "/api/operator/tenants/acme/reinstate";
        let after = app.operator(Method::POST, reinstate, None).await;
        let body = after.ok();
        assert_eq!(body["name"], "acme");
        assert!(body.get("suspended").is_none(), "{body}");
        app.post(RESERVE, &platform, reserve("r1")).await.ok();
        let again = app.operator(Method::POST, reinstate, None).await;
        again.error(409, 9);
        again.reason("TENANT_NOT_SUSPENDED");
        let reinstated = trail(&app, &acme, &["tenant.reinstated"]).await;
        assert_eq!(
            reinstated,
            [("tenant.reinstated".to_owned(), "operator".to_owned())]
        );

        // The invoice stays unpaid, but suspends no more...
        app.clock.set(ts("2027-03-01T12:00:00Z"));
        assert_eq!(suspend(&app).await, 0);
        assert_eq!(
            stored(&app, &acme, FIRST).await.invoice.status,
            InvoiceStatus::Overdue
        );
        // ...until the next one is OVERDUE past the delay.
        let second = "inv-2027-02-0002";
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        for days in [0, 1, 3, 7] {
            app.clock.set(ts("2027-03-02T00:00:00Z") + DAY * days);
            assert_eq!(app.charge().await, 1, "+{days}d");
        }
        app.clock
            .set(ts("2027-03-23T00:00:00Z") - SignedDuration::from_secs(1));
        assert_eq!(suspend(&app).await, 0);
        app.clock.set(ts("2027-03-23T00:00:00Z"));
        assert_eq!(suspend(&app).await, 1);
        assert_refused(&app.post(RESERVE, &platform, reserve("r2")).await, second);

        // The operator cancels it: lifted at once.
        let cancelled = app
            .operator(
                Method::POST,
                &format!("/api/operator/tenants/acme/invoices/{second}/cancel"),
                None,
            )
            .await;
        assert_eq!(cancelled.ok()["status"], "CANCELLED");
        assert!(!suspended(&app, &acme).await);
        app.post(RESERVE, &platform, reserve("r2")).await.ok();
        assert_eq!(
            trail(&app, &acme, &["tenant.suspended", "tenant.reinstated"]).await,
            [
                ("tenant.suspended", "tollgate/dunning"),
                ("tenant.reinstated", "operator"),
                ("tenant.suspended", "tollgate/dunning"),
                ("tenant.reinstated", "operator"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let last = app.store.audit(Some(&acme.id), 1).await.unwrap().remove(0);
        assert_eq!(
            serde_json::from_str::<Value>(last.after.as_deref().unwrap()).unwrap(),
            json!({"reason": "cancelled", "invoice": second})
        );
    })
    .await;
}

/// A plan transition that brings a payment token makes it the primary: the
/// unpaid invoices are charged with it by the next charge pass.
#[tokio::test]
async fn a_plan_transition_with_a_new_card_charges_the_overdue_invoice() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin, platform) = overdue_tenant(&app).await;
        app.clock.set(ts(SUSPEND));
        assert_eq!(suspend(&app).await, 1);
        let asked = app
            .post(
                crate::billing_support::TRANSITION,
                &admin,
                json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}}),
            )
            .await;
        asked.ok();
        assert_eq!(app.run_jobs().await, 1);
        let due = stored(&app, &acme, FIRST).await;
        assert_eq!(
            (due.invoice.status, due.next_charge_at),
            (InvoiceStatus::Issued, Some(ts(SUSPEND)))
        );
        assert_eq!(
            trail(&app, &acme, &["invoice.charge_scheduled"]).await,
            [(
                "invoice.charge_scheduled".to_owned(),
                "tollgate/transition-worker".to_owned()
            )]
        );
        assert_eq!(app.charge().await, 1);
        assert_eq!(
            stored(&app, &acme, FIRST).await.invoice.status,
            InvoiceStatus::Paid
        );
        assert!(!suspended(&app, &acme).await);
        app.post(RESERVE, &platform, reserve("r1")).await.ok();
    })
    .await;
}
