//! Charging finalized invoices: primary then secondary, the retry schedule
//! and OVERDUE, a provider answer lost in a crash, and two replicas running
//! the jobs at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::SignedDuration;
use serde_json::json;
use tollgate_app::JobContext;
use tollgate_app::invoices::{charge_until_idle, close_periods};
use tollgate_domain::contact::Contact;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::payment::PaymentRole;
use tollgate_payments::{
    Charge, ChargeRequest, PaymentProvider, ProviderError, Providers, RefundRequest, Registered, TestProvider,
};
use tollgate_store::ChargeOutcome;
use tollgate_testkit::each_backend;

use crate::billing_support::{add_card, roles};
use crate::invoice_support::{
    assert_has, attempts, billed_tenant, entry, list, pdf_text, status, stored, usd,
};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};

const DAY: SignedDuration = SignedDuration::from_hours(24);
/// When the tenants' first period (January 2027) is finalized: its end plus the 1-day grace.
const CLOSE: &str = "2027-02-02T00:00:00Z";
const FIRST: &str = "inv-2027-01-0001";

/// Forwards to a [`TestProvider`]; `charge` can lose the provider's answer
/// (the charge happened, the caller hears "unavailable", as if the process
/// died in between), or not reach the provider at all, and counts how often
/// each idempotency key is asked.
struct Wrapped {
    inner: Arc<TestProvider>,
    /// Lose the answer of the next charge (once).
    lose_next_answer: AtomicBool,
    /// Lose the answer of this charge call (1-based; 0: none).
    lose_answer_of_call: AtomicUsize,
    /// Do not reach the provider for the next charge (once).
    fail_next_call: AtomicBool,
    calls: AtomicUsize,
    asked: Mutex<BTreeMap<String, usize>>,
}

impl Wrapped {
    fn new(inner: Arc<TestProvider>) -> Self {
        Self {
            inner,
            lose_next_answer: AtomicBool::new(false),
            lose_answer_of_call: AtomicUsize::new(0),
            fail_next_call: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            asked: Mutex::new(BTreeMap::new()),
        }
    }

    fn asked(&self) -> BTreeMap<String, usize> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Wrapped {
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
        *self
            .asked
            .lock()
            .unwrap()
            .entry(req.idempotency_key.to_owned())
            .or_default() += 1;
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_next_call.swap(false, Ordering::SeqCst) {
            return Err(ProviderError::Unavailable("connection refused".into()));
        }
        let answer = self.inner.charge(req).await;
        if self.lose_next_answer.swap(false, Ordering::SeqCst)
            || self.lose_answer_of_call.load(Ordering::SeqCst) == call
        {
            return Err(ProviderError::Unavailable(
                "connection reset after the request was sent".into(),
            ));
        }
        answer
    }

    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        self.inner.refund(req).await
    }
}

/// A job context of `worker` that charges through `provider`.
fn context_with(app: &TestApp, worker: &str, provider: Arc<Wrapped>) -> JobContext {
    let mut ctx = app.job_context(worker, None);
    ctx.providers = Providers::new(provider);
    ctx
}

#[tokio::test]
async fn a_declined_primary_is_followed_by_the_secondary_which_pays() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(&app, "acme", "individual", "2027-01-01T00:00:00Z", Some("tok-declined-0001")).await;
        let secondary = add_card(&app, &admin, "tok-ok-0002", Some(json!("PAYMENT_METHOD_ROLE_SECONDARY"))).await;

        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1, "one round: primary, then secondary");

        assert_eq!(status(&stored(&app, &acme, FIRST).await), InvoiceStatus::Paid);
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "STATUS_PAID");
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-ok-0002".to_owned(), 2500)],
            "exactly one successful charge, on the secondary"
        );
        // (In the order they were tried: see
        // `the_attempts_of_a_round_are_listed_in_the_order_they_were_made`.)
        let mut tried = attempts(&app, &acme, FIRST).await;
        tried.sort_by_key(|c| role(c) != PaymentRole::Primary);
        let summary: Vec<_> = tried
            .iter()
            .map(|c| (c.attempt, role(c), token(c), c.outcome, c.amount_cents))
            .collect();
        assert_eq!(
            summary,
            [
                (1, PaymentRole::Primary, "tok-declined-0001", ChargeOutcome::Declined, 2500),
                (1, PaymentRole::Secondary, "tok-ok-0002", ChargeOutcome::Succeeded, 2500),
            ]
        );
        assert_eq!(tried[1].method.as_ref().unwrap().name, secondary);
        assert_eq!(tried[1].idempotency_key, format!("{}/{FIRST}/1/{secondary}", acme.id));
        assert!(tried[1].reference.as_deref().is_some_and(|r| r.starts_with("ch_")), "{:?}", tried[1]);

        let text = pdf_text(&app, &admin, FIRST).await;
        assert_has(&text, "Paid");
        assert_has(
            &text,
            "2027-02-02 charge attempt 1 of 25.00 USD to test card ending 0001 (primary): declined (the card was declined)",
        );
        assert_has(&text, "2027-02-02 charge attempt 1 of 25.00 USD to test card ending 0002 (secondary): paid");

        // Nothing is charged again later.
        app.clock.set(ts(CLOSE) + DAY * 10);
        assert_eq!(app.charge().await, 0);
        assert_eq!(app.provider.successful_charges().len(), 1);
    })
    .await;
}

/// The primary is tried before the secondary, and the attempts (the store's
/// "oldest first", the PDF's payment lines) say so, whatever the methods'
/// generated names.
#[tokio::test]
async fn the_attempts_of_a_round_are_listed_in_the_order_they_were_made() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        // Method names are random: find a tenant whose secondary's name sorts
        // before its primary's (one in two does).
        let mut found = None;
        for i in 0..40 {
            let (t, admin) = billed_tenant(
                &app,
                &format!("t-{i}"),
                "individual",
                "2027-01-01T00:00:00Z",
                Some("tok-declined-0001"),
            )
            .await;
            let secondary = add_card(
                &app,
                &admin,
                "tok-ok-0002",
                Some(json!("PAYMENT_METHOD_ROLE_SECONDARY")),
            )
            .await;
            let methods = roles(&app, &admin).await;
            let primary = methods.iter().find(|(_, r)| r == "PRIMARY").unwrap().0.clone();
            if secondary < primary {
                found = Some((t, admin));
                break;
            }
        }
        let (acme, admin) = found.expect("a secondary named before its primary");
        app.clock.set(ts(CLOSE));
        app.close_periods().await;
        app.charge().await;
        let tried = attempts(&app, &acme, FIRST).await;
        let order: Vec<_> = tried.iter().map(|c| (role(c), c.outcome)).collect();
        assert_eq!(
            order,
            [
                (PaymentRole::Primary, ChargeOutcome::Declined),
                (PaymentRole::Secondary, ChargeOutcome::Succeeded)
            ],
            "invoice_charges is documented as oldest first"
        );
        let text = pdf_text(&app, &admin, FIRST).await;
        let declined = text.find("(primary): declined").expect("the primary's attempt");
        let paid = text.find("(secondary): paid").expect("the secondary's attempt");
        assert!(
            declined < paid,
            "the PDF lists the secondary's success before the primary's decline:\n{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_declined_card_is_retried_after_one_three_and_seven_days_then_the_invoice_is_overdue() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(&app, "acme", "individual", "2027-01-01T00:00:00Z", Some("tok-declined-4000")).await;
        let issued = ts(CLOSE);
        let hours = SignedDuration::from_hours;

        // (offset after finalization, rounds run, attempts so far, status)
        let schedule = [
            (hours(0), 1, 1, "STATUS_ISSUED"),
            (hours(12), 0, 1, "STATUS_ISSUED"),
            (hours(24) - SignedDuration::from_secs(1), 0, 1, "STATUS_ISSUED"),
            (hours(24), 1, 2, "STATUS_ISSUED"),
            (hours(48), 0, 2, "STATUS_ISSUED"),
            (hours(72), 1, 3, "STATUS_ISSUED"),
            (hours(24 * 6), 0, 3, "STATUS_ISSUED"),
            (hours(24 * 7), 1, 4, "OVERDUE"),
            (hours(24 * 30), 0, 4, "OVERDUE"),
        ];
        for (offset, rounds, tried, wire) in schedule {
            app.clock.set(issued + offset);
            if offset.is_zero() {
                assert_eq!(app.close_periods().await, 1);
            }
            assert_eq!(app.charge().await, rounds, "charging at +{offset}");
            let stored = stored(&app, &acme, FIRST).await;
            assert_eq!(stored.attempts, tried, "at +{offset}");
            let listed = list(&app, &admin).await;
            let e = entry(&listed, FIRST);
            assert_eq!((e.status.as_str(), e.active), (wire, false), "at +{offset}");
        }

        let stored = stored(&app, &acme, FIRST).await;
        assert_eq!(stored.invoice.status, InvoiceStatus::Overdue);
        assert_eq!(stored.next_charge_at, None, "nothing left to try");
        let tried = attempts(&app, &acme, FIRST).await;
        let when: Vec<_> = tried.iter().map(|c| (c.attempt, c.started_at.to_string(), c.outcome)).collect();
        assert_eq!(
            when,
            [
                (1, "2027-02-02T00:00:00Z".to_owned(), ChargeOutcome::Declined),
                (2, "2027-02-03T00:00:00Z".to_owned(), ChargeOutcome::Declined),
                (3, "2027-02-05T00:00:00Z".to_owned(), ChargeOutcome::Declined),
                (4, "2027-02-09T00:00:00Z".to_owned(), ChargeOutcome::Declined),
            ]
        );
        assert!(app.provider.successful_charges().is_empty());

        let text = pdf_text(&app, &admin, FIRST).await;
        assert_has(&text, "Overdue");
        for (n, day) in [(1, "02"), (2, "03"), (3, "05"), (4, "09")] {
            assert_has(
                &text,
                &format!(
                    "2027-02-{day} charge attempt {n} of 25.00 USD to test card ending 4000 (primary): declined (the card was declined)"
                ),
            );
        }
    })
    .await;
}

/// A charge job that runs late runs every round that is due by then.
#[tokio::test]
async fn a_late_charge_job_runs_every_due_round() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-4000"),
        )
        .await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        app.clock.set(ts(CLOSE) + DAY * 4);
        assert_eq!(
            app.charge().await,
            3,
            "the first round and the retries due at +1d and +3d"
        );
        let s = stored(&app, &acme, FIRST).await;
        assert_eq!((s.attempts, s.invoice.status), (3, InvoiceStatus::Issued));
        assert_eq!(s.next_charge_at, Some(ts(CLOSE) + DAY * 7));
    })
    .await;
}

/// Without a payment method nothing can be charged: each round is recorded
/// as failed, and the invoice ends OVERDUE on the same schedule.
#[tokio::test]
async fn without_a_payment_method_the_rounds_fail_and_the_invoice_is_overdue() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(&app, "acme", "individual", "2027-01-01T00:00:00Z", None).await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        for days in [0, 1, 3, 7] {
            app.clock.set(ts(CLOSE) + DAY * days);
            assert_eq!(app.charge().await, 1, "+{days}d");
        }
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "OVERDUE");
        let tried = attempts(&app, &acme, FIRST).await;
        assert_eq!(tried.len(), 4);
        assert!(
            tried
                .iter()
                .all(|c| c.outcome == ChargeOutcome::Failed && c.reason.is_some()),
            "{tried:#?}"
        );
        assert!(app.provider.successful_charges().is_empty());
    })
    .await;
}

/// An invoice whose total is zero is PAID when finalized and never charged.
#[tokio::test]
async fn an_invoice_a_coupon_covers_is_paid_without_a_charge() {
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
        let now = ts("2027-01-01T00:00:00Z");
        let def = tollgate_store::CouponDef {
            code: "FIRSTMONTH".into(),
            title: "First month free".into(),
            discount: tollgate_domain::rating::Discount::Percent(10_000),
        };
        app.store.create_coupon(&def, "operator", now).await.unwrap();
        app.store
            .apply_coupon(
                &acme.id,
                "FIRSTMONTH",
                now,
                Some(ts("2027-01-15T00:00:00Z")),
                "operator",
                now,
            )
            .await
            .unwrap();
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 0);
        let e = entry(&list(&app, &admin).await, FIRST).clone();
        assert_eq!((e.status.as_str(), e.amount.as_str()), ("STATUS_PAID", "0"));
        assert!(attempts(&app, &acme, FIRST).await.is_empty());
        assert!(app.provider.successful_charges().is_empty());
        let text = pdf_text(&app, &admin, FIRST).await;
        assert_has(&text, "Coupon: First month free (100 %)");
        assert_has(&text, &format!("TOTAL {}", usd(0)));
    })
    .await;
}

/// The provider charged, but the answer was lost (as if the process died
/// right after): the attempt stays PENDING and the invoice stays leased;
/// once the lease expires the next run asks again with the same key and
/// settles it. One charge, one attempt.
#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_settled_after_the_lease_without_charging_twice() {
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
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);

        let crashing = Arc::new(Wrapped::new(app.provider.clone()));
        crashing.lose_next_answer.store(true, Ordering::SeqCst);
        let ctx = context_with(&app, "replica-that-died", crashing.clone());
        charge_until_idle(&ctx).await.expect("charge");
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-visa-4242".to_owned(), 2500)]
        );
        let tried = attempts(&app, &acme, FIRST).await;
        assert_eq!(tried.len(), 1);
        assert_eq!(tried[0].outcome, ChargeOutcome::Pending);
        assert_eq!(status(&stored(&app, &acme, FIRST).await), InvoiceStatus::Issued);
        assert_has(
            &pdf_text(&app, &admin, FIRST).await,
            "charge attempt 1 of 25.00 USD to test card ending 4242 (primary): in progress",
        );

        // Still leased: nobody touches it.
        app.clock.set(ts(CLOSE) + SignedDuration::from_secs(119));
        assert_eq!(app.charge().await, 0, "the lease (2 minutes) still holds");

        app.clock.set(ts(CLOSE) + SignedDuration::from_secs(121));
        assert_eq!(app.charge().await, 1);
        assert_eq!(status(&stored(&app, &acme, FIRST).await), InvoiceStatus::Paid);
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-visa-4242".to_owned(), 2500)],
            "charged exactly once"
        );
        let after = attempts(&app, &acme, FIRST).await;
        assert_eq!(after.len(), 1, "{after:#?}");
        assert_eq!(after[0].idempotency_key, tried[0].idempotency_key);
        assert_eq!(after[0].outcome, ChargeOutcome::Succeeded);
        assert_eq!(
            after[0].settled_at,
            Some(ts(CLOSE) + SignedDuration::from_secs(121))
        );
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "STATUS_PAID");
        assert_eq!(app.charge().await, 0);
    })
    .await;
}

/// Primary declined, then the secondary's answer (a success) lost: after
/// the lease the pending attempt is settled with the same key; the round
/// is not run again, and the secondary is charged once.
#[tokio::test]
async fn a_lost_answer_from_the_secondary_is_settled_without_another_round() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-0001"),
        )
        .await;
        add_card(
            &app,
            &admin,
            "tok-ok-0002",
            Some(json!("PAYMENT_METHOD_ROLE_SECONDARY")),
        )
        .await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        let provider = Arc::new(Wrapped::new(app.provider.clone()));
        provider.lose_answer_of_call.store(2, Ordering::SeqCst);
        charge_until_idle(&context_with(&app, "replica-that-died", provider.clone()))
            .await
            .expect("charge");
        let outcomes = |tried: &[tollgate_store::ChargeRecord]| {
            let mut v: Vec<_> = tried.iter().map(|c| (c.attempt, role(c), c.outcome)).collect();
            v.sort_by_key(|(a, r, _)| (*a, *r != PaymentRole::Primary));
            v
        };
        assert_eq!(
            outcomes(&attempts(&app, &acme, FIRST).await),
            [
                (1, PaymentRole::Primary, ChargeOutcome::Declined),
                (1, PaymentRole::Secondary, ChargeOutcome::Pending),
            ]
        );
        app.clock.set(ts(CLOSE) + SignedDuration::from_mins(3));
        charge_until_idle(&context_with(&app, "replica-2", provider.clone()))
            .await
            .expect("charge");
        assert_eq!(
            outcomes(&attempts(&app, &acme, FIRST).await),
            [
                (1, PaymentRole::Primary, ChargeOutcome::Declined),
                (1, PaymentRole::Secondary, ChargeOutcome::Succeeded),
            ]
        );
        let s = stored(&app, &acme, FIRST).await;
        assert_eq!(s.invoice.status, InvoiceStatus::Paid);
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-ok-0002".to_owned(), 2500)]
        );
        // The primary was asked once, the secondary twice (same key).
        let mut asked: Vec<usize> = provider.asked().into_values().collect();
        asked.sort_unstable();
        assert_eq!(asked, [1, 2]);
    })
    .await;
}

/// The answer of the last retry (a decline) is lost: after the lease it is
/// settled, and the invoice is OVERDUE after four rounds, not five.
#[tokio::test]
async fn a_lost_decline_in_the_last_round_still_ends_overdue_after_four_rounds() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-4000"),
        )
        .await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        let provider = Arc::new(Wrapped::new(app.provider.clone()));
        let ctx = context_with(&app, "worker", provider.clone());
        for days in [0, 1, 3] {
            app.clock.set(ts(CLOSE) + DAY * days);
            assert_eq!(charge_until_idle(&ctx).await.unwrap(), 1);
        }
        provider.lose_next_answer.store(true, Ordering::SeqCst);
        app.clock.set(ts(CLOSE) + DAY * 7);
        charge_until_idle(&ctx).await.unwrap();
        assert_eq!(
            stored(&app, &acme, FIRST).await.invoice.status,
            InvoiceStatus::Issued
        );
        app.clock.set(ts(CLOSE) + DAY * 7 + SignedDuration::from_mins(3));
        charge_until_idle(&ctx).await.unwrap();
        let s = stored(&app, &acme, FIRST).await;
        assert_eq!(
            (s.invoice.status, s.attempts, s.next_charge_at),
            (InvoiceStatus::Overdue, 4, None)
        );
        let tried = attempts(&app, &acme, FIRST).await;
        assert_eq!(tried.len(), 4, "{tried:#?}");
        assert!(
            tried.iter().all(|c| c.outcome == ChargeOutcome::Declined),
            "{tried:#?}"
        );
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "OVERDUE");
    })
    .await;
}

/// The provider could not be reached at all: the attempt is asked again
/// after the lease, with the same key, and charges once.
#[tokio::test]
async fn an_unreachable_provider_is_asked_again_after_the_lease_with_the_same_key() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        let provider = Arc::new(Wrapped::new(app.provider.clone()));
        provider.fail_next_call.store(true, Ordering::SeqCst);
        let ctx = context_with(&app, "worker-1", provider.clone());
        charge_until_idle(&ctx).await.expect("charge");
        assert!(app.provider.successful_charges().is_empty());
        app.clock.set(ts(CLOSE) + SignedDuration::from_mins(3));
        charge_until_idle(&ctx).await.expect("charge");
        assert_eq!(
            app.provider.successful_charges(),
            [("tok-visa-4242".to_owned(), 2500)]
        );
        let key = format!("{}/{FIRST}/1/", acme.id);
        let asked = provider.asked();
        assert_eq!(asked.len(), 1, "{asked:?}");
        let (k, n) = asked.iter().next().unwrap();
        assert!(k.starts_with(&key), "{k}");
        assert_eq!(*n, 2);
        assert_eq!(status(&stored(&app, &acme, FIRST).await), InvoiceStatus::Paid);
    })
    .await;
}

/// One replica's jobs at the clock's time.
async fn replica(ctx: JobContext) -> (usize, usize) {
    let now = ctx.clock.now();
    let closed = close_periods(&ctx, now).await.expect("period close");
    let rounds = charge_until_idle(&ctx).await.expect("charge");
    (closed, rounds)
}

/// Two replicas (different worker ids) close periods and charge at the same
/// time, again and again, over five tenants and six months: one invoice per
/// period, each attempt asked of the provider once, each invoice paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_close_and_charge_each_invoice_exactly_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let cards: [(&str, Option<&str>); 5] = [
            ("tok-visa-1001", None),
            ("tok-visa-1002", None),
            ("tok-visa-1003", None),
            ("tok-declined-1004", Some("tok-ok-2004")),
            ("tok-declined-1005", None),
        ];
        let mut tenants = Vec::new();
        for (i, (primary, secondary)) in cards.iter().enumerate() {
            let (t, admin) = billed_tenant(
                &app,
                &format!("tenant-{i}"),
                "individual",
                "2027-01-01T00:00:00Z",
                Some(primary),
            )
            .await;
            if let Some(s) = secondary {
                add_card(&app, &admin, s, Some(json!("PAYMENT_METHOD_ROLE_SECONDARY"))).await;
            }
            tenants.push((t, admin));
        }
        let provider = Arc::new(Wrapped::new(app.provider.clone()));
        let a = context_with(&app, "replica-a", provider.clone());
        let b = context_with(&app, "replica-b", provider.clone());

        let months = [
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
            "2027-03-01T00:00:00Z",
            "2027-04-01T00:00:00Z",
            "2027-05-01T00:00:00Z",
            "2027-06-01T00:00:00Z",
        ];
        let mut closed = 0;
        for (m, start) in months.iter().enumerate() {
            app.clock.set(ts(start) + SignedDuration::from_hours(6));
            for (i, (_, admin)) in tenants.iter().enumerate() {
                let millions = 5 + i64::try_from(i + m).unwrap();
                let at = (ts(start) + SignedDuration::from_hours(2)).to_string();
                ingest_all(
                    &app,
                    admin,
                    "system",
                    vec![event(
                        &format!("u-{m}-{i}"),
                        "lb_requests",
                        "lb",
                        millions * 1_000_000,
                        at,
                    )],
                )
                .await;
            }
            if m == 0 {
                continue;
            }
            // The previous month closes at the start + 1 day; the declined
            // card's retries come at +1, +3 and +7 days after that.
            for days in [1, 2, 4, 8] {
                app.clock.set(ts(start) + DAY * days);
                for _ in 0..3 {
                    let (x, y) =
                        tokio::join!(tokio::spawn(replica(a.clone())), tokio::spawn(replica(b.clone())));
                    let ((ca, _), (cb, _)) = (x.unwrap(), y.unwrap());
                    closed += ca + cb;
                }
            }
            assert_eq!(
                closed,
                tenants.len() * m,
                "each tenant's period closed once by month {m}"
            );
        }

        let mut paid = Vec::new();
        for (i, (t, _)) in tenants.iter().enumerate() {
            let invoices = app.store.invoices(&t.id).await.unwrap();
            assert_eq!(invoices.len(), months.len() - 1, "{}", t.name);
            let periods: BTreeSet<_> = invoices.iter().map(|s| s.invoice.period_index).collect();
            assert_eq!(periods.len(), invoices.len(), "one invoice per period");
            for s in &invoices {
                s.invoice.check().unwrap();
                let tried = attempts(&app, t, &s.invoice.name).await;
                let ok: Vec<_> = tried
                    .iter()
                    .filter(|c| c.outcome == ChargeOutcome::Succeeded)
                    .collect();
                assert!(
                    tried.iter().all(|c| c.outcome != ChargeOutcome::Pending),
                    "{tried:#?}"
                );
                if i == 4 {
                    assert_eq!(s.invoice.status, InvoiceStatus::Overdue, "{}", s.invoice.name);
                    assert_eq!(tried.len(), 4, "four rounds of one card: {tried:#?}");
                    assert!(ok.is_empty());
                } else {
                    assert_eq!(s.invoice.status, InvoiceStatus::Paid, "{}", s.invoice.name);
                    assert_eq!(ok.len(), 1, "{tried:#?}");
                    assert_eq!(ok[0].amount_cents, s.invoice.totals.total);
                    paid.push((token(ok[0]).to_owned(), s.invoice.totals.total));
                }
            }
        }
        paid.sort();
        assert_eq!(
            app.provider.successful_charges(),
            paid,
            "each invoice charged once"
        );
        let twice: Vec<_> = provider.asked().into_iter().filter(|(_, n)| *n != 1).collect();
        assert!(
            twice.is_empty(),
            "attempts asked of the provider more than once: {twice:?}"
        );
    })
    .await;
}

/// The role of the method an attempt charged (every attempt here had one).
fn role(c: &tollgate_store::ChargeRecord) -> PaymentRole {
    c.method.as_ref().expect("a payment method").role
}

/// The provider token an attempt charged.
fn token(c: &tollgate_store::ChargeRecord) -> &str {
    &c.method.as_ref().expect("a payment method").token
}
