//! Refunding a paid invoice through the application layer
//! (`app::refunds::refund_invoice`): through the configured provider, each
//! refund a credit note of its own, never more than was paid, never during a
//! charge; a refund interrupted after the provider call (crash, lost answer,
//! unreachable provider) is resumed with the same key and the money moves
//! once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jiff::SignedDuration;
use tokio::sync::Notify;
use tollgate_app::JobContext;
use tollgate_app::refunds::{REFUND_LEASE, RefundAsk, RefundOutcome, refund_invoice};
use tollgate_domain::contact::Contact;
use tollgate_domain::ids::TenantId;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::{Error, ErrorKind};
use tollgate_payments::{
    Charge, ChargeRequest, PaymentProvider, ProviderError, RefundRequest, Registered, TestProvider,
};
use tollgate_store::{ChargeOutcome, RefundState};
use tollgate_testkit::each_backend;

use crate::invoice_support::{assert_has, attempts, billed_tenant, entry, list, pdf_text, status, stored};
use crate::support::{TestApp, ts};

/// When January 2027's invoice is finalized (and charged).
const CLOSE: &str = "2027-02-02T00:00:00Z";
const FIRST: &str = "inv-2027-01-0001";

/// What the next refund call does besides asking the test provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Answers as the provider does.
    Normal,
    /// Does not reach the provider: unavailable.
    Unreachable,
    /// Refunds, then the answer is lost: unavailable.
    LoseAnswer,
    /// Refunds, then never answers (the caller is killed meanwhile).
    Hang,
    /// The provider refuses.
    Refuse,
}

/// Forwards to a [`TestProvider`]; counts how often each refund key is asked
/// and can misbehave on the next refund call.
struct Counting {
    inner: Arc<TestProvider>,
    next: Mutex<Next>,
    asked: Mutex<BTreeMap<String, usize>>,
    /// Signalled when a hanging refund has reached the provider.
    reached: Notify,
    hung: AtomicBool,
}

impl Counting {
    fn new(inner: Arc<TestProvider>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            next: Mutex::new(Next::Normal),
            asked: Mutex::new(BTreeMap::new()),
            reached: Notify::new(),
            hung: AtomicBool::new(false),
        })
    }

    fn then(&self, next: Next) {
        *self.next.lock().unwrap() = next;
    }

    fn asked(&self) -> BTreeMap<String, usize> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Counting {
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
        self.inner.charge(req).await
    }

    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        let idempotency_key = req.idempotency_key;
        *self
            .asked
            .lock()
            .unwrap()
            .entry(idempotency_key.to_owned())
            .or_default() += 1;
        let next = std::mem::replace(&mut *self.next.lock().unwrap(), Next::Normal);
        match next {
            Next::Normal => self.inner.refund(req).await,
            Next::Unreachable => Err(ProviderError::Unavailable("connection refused".into())),
            Next::LoseAnswer => {
                self.inner.refund(req).await?;
                Err(ProviderError::Unavailable(
                    "connection reset after the request was sent".into(),
                ))
            }
            Next::Hang => {
                self.inner.refund(req).await?;
                self.hung.store(true, Ordering::SeqCst);
                self.reached.notify_one();
                std::future::pending().await
            }
            Next::Refuse => Err(ProviderError::Refused("the charge is too old to refund".into())),
        }
    }
}

/// acme on `individual` (2500 ¢ a month) with a card; January 2027 finalized
/// and paid at [`CLOSE`].
async fn paid(app: &TestApp) -> (tollgate_domain::tenant::Tenant, String) {
    let (acme, admin) = billed_tenant(
        app,
        "acme",
        "individual",
        "2027-01-01T00:00:00Z",
        Some("tok-ok-4242"),
    )
    .await;
    app.clock.set(ts(CLOSE));
    assert_eq!(app.close_periods().await, 1);
    assert_eq!(app.charge().await, 1);
    assert_eq!(status(&stored(app, &acme, FIRST).await), InvoiceStatus::Paid);
    (acme, admin)
}

/// A job context of `worker` whose provider is `provider`.
fn context(app: &TestApp, worker: &str, provider: &Arc<Counting>) -> JobContext {
    let mut ctx = app.job_context(worker, None);
    ctx.providers = tollgate_payments::Providers::new(provider.clone());
    ctx
}

/// Refunds everything that remains of invoice `name`.
async fn refund(ctx: &JobContext, tenant_id: &TenantId, name: &str) -> Result<RefundOutcome, Error> {
    let ask = RefundAsk {
        amount_cents: None,
        reason: "the customer cancelled".into(),
    };
    refund_invoice(ctx, tenant_id, &name.into(), &ask, "operator", ctx.clock.now()).await
}

/// Refunds `cents` of invoice `name`.
async fn refund_part(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &str,
    cents: i64,
) -> Result<RefundOutcome, Error> {
    let ask = RefundAsk {
        amount_cents: Some(cents),
        reason: format!("goodwill: {cents} cents"),
    };
    refund_invoice(ctx, tenant_id, &name.into(), &ask, "operator", ctx.clock.now()).await
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, Error>, kind: ErrorKind, says: &str) {
    match r {
        Err(e) if e.kind == kind && e.message.contains(says) => {}
        other => panic!("expected {kind:?} saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_paid_invoice_is_refunded_in_full_once_through_the_provider() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = paid(&app).await;
        let provider = Counting::new(app.provider.clone());
        let ctx = context(&app, "operator-1", &provider);
        let charge = attempts(&app, &acme, FIRST).await.remove(0);
        let reference = charge.reference.clone().unwrap();

        let done = refund(&ctx, &acme.id, FIRST).await.unwrap();
        assert_eq!(done.invoice.invoice.status, InvoiceStatus::Refunded);
        assert!(!done.resumed);
        assert_eq!(
            (done.paid_cents, done.refunded_cents, done.remaining_cents()),
            (2500, 2500, 0)
        );
        assert_eq!(done.refund.credit_note, "cn-2027-02-0001");
        assert_eq!(done.refund.reason, "the customer cancelled");
        assert!(
            done.refund
                .refund_reference
                .as_deref()
                .is_some_and(|r| r.starts_with("re_")),
            "the provider's refund id is kept: {:?}",
            done.refund.refund_reference
        );
        // The whole invoice: its lines.
        let inv = stored(&app, &acme, FIRST).await.invoice;
        assert_eq!(done.refund.lines, tollgate_domain::credit_note::lines(&inv, 2500));
        assert_eq!(done.refund.lines[0].description, inv.lines[0].description);
        let key = format!("refund/{}/cn-2027-02-0001", charge.idempotency_key);
        assert_eq!(
            (
                done.refund.idempotency_key.as_str(),
                done.refund.state,
                done.refund.amount_cents,
                done.refund.currency.as_str(),
                done.refund.charge.as_str(),
                done.refund.actor.as_str(),
            ),
            (
                key.as_str(),
                RefundState::Succeeded,
                2500,
                "USD",
                charge.idempotency_key.as_str(),
                "operator"
            )
        );
        assert_eq!(app.provider.refunds(), [(reference.clone(), 2500)]);
        assert_eq!(provider.asked(), BTreeMap::from([(key.clone(), 1)]));
        assert_eq!(
            attempts(&app, &acme, FIRST).await[0].outcome,
            ChargeOutcome::Refunded
        );
        assert_eq!(entry(&list(&app, &admin).await, FIRST).status, "STATUS_REFUNDED");
        let text = pdf_text(&app, &admin, FIRST).await;
        assert_has(&text, "paid, then refunded");
        assert_has(
            &text,
            "refund cn-2027-02-0001 of 25.00 USD to test card ending 4242: refunded",
        );

        // Never twice, whatever amount: refused before the provider is asked.
        app.clock.advance(SignedDuration::from_hours(1));
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::FailedPrecondition,
            "already refunded in full",
        );
        assert_refused(
            refund_part(&ctx, &acme.id, FIRST, 1).await,
            ErrorKind::FailedPrecondition,
            "nothing remains to refund",
        );
        assert_eq!(provider.asked(), BTreeMap::from([(key, 1)]));
        assert_eq!(app.provider.refunds().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_refund_is_refused_during_a_charge_and_for_invoices_not_paid() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-ok-4242"),
        )
        .await;
        app.clock.set(ts(CLOSE));
        assert_eq!(app.close_periods().await, 1);
        let provider = Counting::new(app.provider.clone());
        let ctx = context(&app, "operator-1", &provider);
        // ISSUED, nothing charged yet.
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::FailedPrecondition,
            "is ISSUED; only PAID",
        );
        // A charge worker holds the invoice.
        let now = ts(CLOSE);
        let leased = app
            .store
            .claim_charge("charger", now, now + REFUND_LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(leased.invoice.name, FIRST);
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::FailedPrecondition,
            "being charged right now",
        );
        // No such invoice; a pending (not finalized) one.
        assert_refused(
            refund(&ctx, &acme.id, "inv-1999-01-0001").await,
            ErrorKind::NotFound,
            "inv-1999-01-0001",
        );
        assert_refused(
            refund(&ctx, &acme.id, "inv-2027-02-0002").await,
            ErrorKind::NotFound,
            "no finalized invoice",
        );
        assert!(provider.asked().is_empty(), "the provider is never asked");
        assert!(
            app.store
                .invoice_refunds(&acme.id, &FIRST.into())
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_crash_after_the_provider_refunded_is_resumed_with_the_same_key_and_refunds_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = paid(&app).await;
        let provider = Counting::new(app.provider.clone());

        // The first refund reaches the provider, which refunds; the process
        // dies before the refund is settled.
        provider.then(Next::Hang);
        let doomed = {
            let ctx = context(&app, "operator-1", &provider);
            let tenant = acme.id.clone();
            tokio::spawn(async move { refund_part(&ctx, &tenant, FIRST, 1000).await })
        };
        provider.reached.notified().await;
        assert!(provider.hung.load(Ordering::SeqCst));
        doomed.abort();
        assert!(doomed.await.unwrap_err().is_cancelled());
        assert_eq!(app.provider.refunds().len(), 1, "the money moved");
        let pending = app.store.invoice_refunds(&acme.id, &FIRST.into()).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].state, RefundState::Pending);
        assert_eq!(status(&stored(&app, &acme, FIRST).await), InvoiceStatus::Paid);

        // Another operator, while the dead one's lease lasts: refused.
        let ctx = context(&app, "operator-2", &provider);
        app.clock.advance(SignedDuration::from_secs(30));
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::FailedPrecondition,
            "in progress",
        );
        // After it: whatever is asked, the interrupted refund is resumed
        // with the same key and amount; the provider answers as the first
        // time without refunding again.
        app.clock.advance(REFUND_LEASE);
        let done = refund(&ctx, &acme.id, FIRST).await.unwrap();
        assert!(done.resumed);
        assert_eq!(done.invoice.invoice.status, InvoiceStatus::Paid, "1000 of 2500");
        assert_eq!(done.refund.idempotency_key, pending[0].idempotency_key);
        assert_eq!((done.refund.amount_cents, done.refunded_cents), (1000, 1000));
        assert_eq!(
            provider.asked(),
            BTreeMap::from([(pending[0].idempotency_key.clone(), 2)]),
            "asked twice, with one key"
        );
        assert_eq!(app.provider.refunds().len(), 1, "refunded exactly once");
        let refunds = app.store.invoice_refunds(&acme.id, &FIRST.into()).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].state, RefundState::Succeeded);
        // Now the rest, as a credit note of its own.
        let rest = refund(&ctx, &acme.id, FIRST).await.unwrap();
        assert!(!rest.resumed);
        assert_eq!(
            (rest.refund.credit_note.as_str(), rest.refund.amount_cents),
            ("cn-2027-02-0002", 1500)
        );
        assert_eq!(rest.invoice.invoice.status, InvoiceStatus::Refunded);
        let amounts: Vec<i64> = app.provider.refunds().iter().map(|(_, a)| *a).collect();
        assert_eq!(amounts.iter().sum::<i64>(), 2500, "{amounts:?}");
        let audited: Vec<_> = app
            .store
            .audit(Some(&acme.id), 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "invoice.refund")
            .collect();
        assert_eq!(audited.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_lost_answer_or_an_unreachable_provider_leaves_the_refund_pending_until_resumed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = paid(&app).await;
        let provider = Counting::new(app.provider.clone());
        let ctx = context(&app, "operator-1", &provider);

        provider.then(Next::Unreachable);
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::Unavailable,
            "recorded as pending",
        );
        assert!(app.provider.refunds().is_empty());
        let pending = app.store.invoice_refunds(&acme.id, &FIRST.into()).await.unwrap();
        assert_eq!(pending[0].state, RefundState::Pending);

        // Resumed after the lease; this time the refund happens but its
        // answer is lost.
        app.clock.advance(REFUND_LEASE + SignedDuration::from_secs(1));
        provider.then(Next::LoseAnswer);
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::Unavailable,
            "recorded as pending",
        );
        assert_eq!(app.provider.refunds().len(), 1);
        app.clock.advance(REFUND_LEASE + SignedDuration::from_secs(1));
        let done = refund(&ctx, &acme.id, FIRST).await.unwrap();
        assert!(done.resumed);
        assert_eq!(done.invoice.invoice.status, InvoiceStatus::Refunded);
        assert_eq!(app.provider.refunds().len(), 1, "refunded exactly once");
        assert_eq!(
            provider.asked().into_values().collect::<Vec<_>>(),
            [3],
            "one key, asked three times"
        );
    })
    .await;
}

#[tokio::test]
async fn a_refund_the_provider_refuses_is_recorded_failed_counts_for_nothing_and_can_be_made_again() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = paid(&app).await;
        let provider = Counting::new(app.provider.clone());
        let ctx = context(&app, "operator-1", &provider);

        provider.then(Next::Refuse);
        assert_refused(
            refund(&ctx, &acme.id, FIRST).await,
            ErrorKind::FailedPrecondition,
            "refused to refund invoice inv-2027-01-0001: the charge is too old to refund \
             (credit note cn-2027-02-0001 is recorded as FAILED)",
        );
        let after = stored(&app, &acme, FIRST).await;
        assert_eq!((status(&after), after.leased_until), (InvoiceStatus::Paid, None));
        let refunds = app.store.invoice_refunds(&acme.id, &FIRST.into()).await.unwrap();
        assert_eq!(
            (refunds[0].state, refunds[0].failure.as_deref()),
            (RefundState::Failed, Some("the charge is too old to refund"))
        );
        // At once (the lease was released), the whole amount (the FAILED one
        // took nothing), as a new credit note under a new key.
        let done = refund(&ctx, &acme.id, FIRST).await.unwrap();
        assert!(!done.resumed);
        assert_eq!(done.refund.credit_note, "cn-2027-02-0002");
        assert_eq!(done.refund.amount_cents, 2500);
        assert_eq!(done.invoice.invoice.status, InvoiceStatus::Refunded);
        assert_eq!(app.provider.refunds().len(), 1);
        assert_eq!(provider.asked().len(), 2, "two credit notes, two keys");
    })
    .await;
}
