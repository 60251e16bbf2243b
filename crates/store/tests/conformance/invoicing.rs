//! Finalized invoices and charge attempts: one invoice per period, leases,
//! attempts recorded before and settled after the provider call, operator
//! status changes.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::Reason;
use tollgate_domain::ids::TenantId;
use tollgate_domain::invoice::{Invoice, InvoiceStatus};
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::rating::Totals;
use tollgate_store::{ChargeOutcome, ChargeRecord, ChargedMethod, RoundEnd, Store, StoreError};
use tollgate_testkit::each_backend;

use crate::{open, t, tenant};

/// A finalized invoice of `total` cents for period `index` of the tenant's
/// first subscription.
pub async fn invoice(store: &dyn Store, tenant_id: &TenantId, name: &str, index: u32, total: i64) -> Invoice {
    let sub = store.subscriptions(tenant_id).await.unwrap().remove(0);
    let period = sub.period(index);
    Invoice {
        name: name.into(),
        status: InvoiceStatus::Issued,
        subscription_id: sub.id,
        period_index: index,
        period_start: period.start,
        period_end: period.actual_end,
        plan: "individual".into(),
        plan_title: "Individual".into(),
        currency: "USD".into(),
        lines: vec![tollgate_domain::invoice::InvoiceLine {
            kind: tollgate_domain::invoice::LineKind::Fee,
            description: "Individual plan".into(),
            metric_label: None,
            quantity: 1.into(),
            unit: "period".into(),
            unit_price_cents: total.into(),
            free_quantity: 0.into(),
            amount_cents: total,
            adjusts: None,
            pricing: None,
        }],
        coupons: Vec::new(),
        taxes: Vec::new(),
        tax_note: None,
        credits: Vec::new(),
        totals: Totals {
            subtotal: total,
            discount: 0,
            credits: 0,
            tax: 0,
            total,
        },
        issued_at: Some(period.end),
        issuer: None,
    }
}

pub fn attempt(key: &str, invoice: &str, n: u32, at: Timestamp) -> ChargeRecord {
    ChargeRecord {
        idempotency_key: key.into(),
        invoice: invoice.into(),
        attempt: n,
        method: Some(ChargedMethod {
            name: "pm-1".into(),
            role: PaymentRole::Primary,
            token: "tok-visa-4242".into(),
            display: "test card ending 4242".into(),
            provider: "test".into(),
        }),
        amount_cents: 2500,
        currency: "USD".into(),
        outcome: ChargeOutcome::Pending,
        reason: None,
        reference: None,
        started_at: at,
        settled_at: None,
    }
}

pub const LEASE: SignedDuration = SignedDuration::from_mins(2);

#[tokio::test]
async fn each_period_is_finalized_once_and_never_changes() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        let first = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        assert!(
            store
                .finalize_invoice(&a.id, &first, Some(now), "test", now)
                .await
                .unwrap()
        );
        // The same period again, under another name or with other amounts: nothing.
        let mut again = invoice(&*store, &a.id, "inv-2026-11-0009", 0, 9999).await;
        assert!(
            !store
                .finalize_invoice(&a.id, &again, Some(now), "test", now)
                .await
                .unwrap()
        );
        again.name = "inv-2026-11-0001".into();
        assert!(
            !store
                .finalize_invoice(&a.id, &again, Some(now), "test", now)
                .await
                .unwrap()
        );
        let stored = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.invoice, first);
        assert_eq!((stored.attempts, stored.next_charge_at), (0, Some(now)));
        assert_eq!(
            store.latest_invoice_start(&a.id).await.unwrap(),
            Some(first.period_start)
        );
        // An invoice whose total is not its lines' sum is refused.
        let mut broken = invoice(&*store, &a.id, "inv-2026-12-0002", 1, 100).await;
        broken.totals.total = 50;
        assert!(matches!(
            store.finalize_invoice(&a.id, &broken, None, "test", now).await,
            Err(StoreError::Corrupt(_))
        ));
        // Another tenant sees none of it.
        let b = tenant(&*store, "globex").await;
        assert!(store.invoices(&b.id).await.unwrap().is_empty());
        assert!(
            store
                .invoice(&b.id, &"inv-2026-11-0001".into())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.latest_invoice_start(&b.id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_due_invoice_is_leased_by_one_worker_at_a_time() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        let inv = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        store
            .finalize_invoice(
                &a.id,
                &inv,
                Some(now + SignedDuration::from_hours(1)),
                "test",
                now,
            )
            .await
            .unwrap();
        assert!(
            store
                .claim_charge("w1", now, now + LEASE)
                .await
                .unwrap()
                .is_none(),
            "not due yet"
        );
        let later = now + SignedDuration::from_hours(1);
        let (x, y) = tokio::join!(
            store.claim_charge("w1", later, later + LEASE),
            other.claim_charge("w2", later, later + LEASE)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(
            x.is_some() != y.is_some(),
            "exactly one worker gets it: {x:?} {y:?}"
        );
        let (holder, stranger) = if x.is_some() { ("w1", "w2") } else { ("w2", "w1") };
        assert_eq!(x.or(y).unwrap().invoice.name, "inv-2026-11-0001");
        assert!(
            store
                .claim_charge("w3", later, later + LEASE)
                .await
                .unwrap()
                .is_none(),
            "a leased invoice is not claimable"
        );
        // Only the holder may record attempts.
        let c = attempt("k1", "inv-2026-11-0001", 1, later);
        assert!(matches!(
            store.begin_charge(&a.id, stranger, &c).await,
            Err(StoreError::Conflict(Reason::InvoiceLeaseLost, _))
        ));
        store.begin_charge(&a.id, holder, &c).await.unwrap();
        // Once the lease expires, the unsettled attempt makes it claimable by
        // another worker, and the old holder can no longer settle.
        let expired = later + LEASE + SignedDuration::from_secs(1);
        let taken = store.claim_charge("w9", expired, expired + LEASE).await.unwrap();
        assert!(
            taken.is_some(),
            "a pending attempt makes an expired lease claimable"
        );
        let done = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            ..c.clone()
        };
        assert!(matches!(
            store
                .settle_charge(&a.id, holder, &done, Some(InvoiceStatus::Paid), expired)
                .await,
            Err(StoreError::Conflict(Reason::InvoiceLeaseLost, _))
        ));
        store
            .settle_charge(&a.id, "w9", &done, Some(InvoiceStatus::Paid), expired)
            .await
            .unwrap();
        let paid = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(paid.invoice.status, InvoiceStatus::Paid);
    })
    .await;
}

#[tokio::test]
async fn attempts_settle_into_paid_or_the_next_round_or_overdue() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        for (i, name) in [(0, "inv-2026-11-0001"), (1, "inv-2026-12-0002")] {
            let inv = invoice(&*store, &a.id, name, i, 2500).await;
            store
                .finalize_invoice(&a.id, &inv, Some(now), "test", now)
                .await
                .unwrap();
        }
        // First invoice: declined, then a next round; then paid.
        let s = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        let name = s.invoice.name.clone();
        let c = attempt("a/1/pm-1", &name, 1, now);
        store.begin_charge(&a.id, "w", &c).await.unwrap();
        store.begin_charge(&a.id, "w", &c).await.unwrap(); // a repeat changes nothing
        let declined = ChargeRecord {
            outcome: ChargeOutcome::Declined,
            reason: Some("the card was declined".into()),
            ..c.clone()
        };
        store
            .settle_charge(&a.id, "w", &declined, None, now)
            .await
            .unwrap();
        let next = now + SignedDuration::from_hours(24);
        store
            .end_charge_round(
                &a.id,
                &name,
                "w",
                &RoundEnd {
                    attempts: 1,
                    status: InvoiceStatus::Issued,
                    next_charge_at: Some(next),
                },
                now,
            )
            .await
            .unwrap();
        let after = store.invoice(&a.id, &name).await.unwrap().unwrap();
        assert_eq!(
            (after.invoice.status, after.attempts, after.next_charge_at),
            (InvoiceStatus::Issued, 1, Some(next))
        );
        let charges = store.invoice_charges(&a.id, &name).await.unwrap();
        assert_eq!(charges.len(), 1);
        assert_eq!(
            (
                charges[0].outcome,
                charges[0].reason.as_deref(),
                charges[0].settled_at
            ),
            (ChargeOutcome::Declined, Some("the card was declined"), Some(now))
        );

        // The second invoice is due too; exhausting its rounds makes it OVERDUE.
        let s2 = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        assert_ne!(s2.invoice.name, name);
        store
            .end_charge_round(
                &a.id,
                &s2.invoice.name,
                "w",
                &RoundEnd {
                    attempts: 1,
                    status: InvoiceStatus::Overdue,
                    next_charge_at: None,
                },
                now,
            )
            .await
            .unwrap();
        let overdue = store.invoice(&a.id, &s2.invoice.name).await.unwrap().unwrap();
        assert_eq!(
            (overdue.invoice.status, overdue.next_charge_at),
            (InvoiceStatus::Overdue, None)
        );
        assert!(
            store
                .claim_charge("w", next, next + LEASE)
                .await
                .unwrap()
                .is_some_and(|s| s.invoice.name == name)
        );
        let c2 = attempt("a/2/pm-1", &name, 2, next);
        store.begin_charge(&a.id, "w", &c2).await.unwrap();
        let paid = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            reference: Some("ch_1".into()),
            ..c2
        };
        store
            .settle_charge(&a.id, "w", &paid, Some(InvoiceStatus::Paid), next)
            .await
            .unwrap();
        store
            .settle_charge(&a.id, "w", &paid, Some(InvoiceStatus::Paid), next)
            .await
            .ok(); // settled already: no change
        let done = store.invoice(&a.id, &name).await.unwrap().unwrap();
        assert_eq!(
            (done.invoice.status, done.next_charge_at),
            (InvoiceStatus::Paid, None)
        );
        let far = next + SignedDuration::from_hours(24 * 30);
        assert!(
            store.claim_charge("w", far, far + LEASE).await.unwrap().is_none(),
            "nothing left to charge"
        );
    })
    .await;
}

#[tokio::test]
async fn the_store_writes_the_status_its_caller_decided_and_only_under_the_lease() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        let inv = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        store
            .finalize_invoice(&a.id, &inv, Some(now), "test", now)
            .await
            .unwrap();
        let name = store
            .claim_charge("w", now, now + LEASE)
            .await
            .unwrap()
            .unwrap()
            .invoice
            .name;
        let c = attempt("k/1", &name, 1, now);
        store.begin_charge(&a.id, "w", &c).await.unwrap();
        // A successful attempt settled without a status: the store does not
        // infer PAID; the invoice stays as it was, still leased.
        let ok = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            reference: Some("ch_1".into()),
            ..c
        };
        store.settle_charge(&a.id, "w", &ok, None, now).await.unwrap();
        let after = store.invoice(&a.id, &name).await.unwrap().unwrap();
        assert_eq!(
            (after.invoice.status, after.next_charge_at, after.leased_until),
            (InvoiceStatus::Issued, Some(now), Some(now + LEASE))
        );
        // The round's end: written only by the lease holder, as decided.
        let end = RoundEnd {
            attempts: 1,
            status: InvoiceStatus::Overdue,
            next_charge_at: None,
        };
        assert!(matches!(
            store.end_charge_round(&a.id, &name, "stranger", &end, now).await,
            Err(StoreError::Conflict(Reason::InvoiceLeaseLost, _))
        ));
        assert_eq!(
            store.invoice(&a.id, &name).await.unwrap().unwrap().invoice.status,
            InvoiceStatus::Issued
        );
        store
            .end_charge_round(&a.id, &name, "w", &end, now)
            .await
            .unwrap();
        let after = store.invoice(&a.id, &name).await.unwrap().unwrap();
        assert_eq!(
            (after.invoice.status, after.attempts, after.leased_until),
            (InvoiceStatus::Overdue, 1, None)
        );
        let actions: Vec<String> = store
            .audit(Some(&a.id), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(actions.contains(&"invoice.charged".to_owned()), "{actions:?}");
        assert!(actions.contains(&"invoice.overdue".to_owned()), "{actions:?}");
    })
    .await;
}

#[tokio::test]
async fn the_operator_refunds_paid_and_cancels_unpaid_invoices_only() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        for (i, name) in [(0, "inv-2026-11-0001"), (1, "inv-2026-12-0002")] {
            let inv = invoice(&*store, &a.id, name, i, 2500).await;
            store
                .finalize_invoice(&a.id, &inv, Some(now), "test", now)
                .await
                .unwrap();
        }
        let s = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        let name = s.invoice.name.clone();
        // Leased: no status change while a charge may be in flight.
        assert!(matches!(
            store
                .set_invoice_status(
                    &a.id,
                    &name,
                    &[InvoiceStatus::Issued],
                    InvoiceStatus::Cancelled,
                    "operator",
                    now
                )
                .await,
            Err(StoreError::Conflict(Reason::InvoiceBeingCharged, _))
        ));
        let c = attempt("k/1", &name, 1, now);
        store.begin_charge(&a.id, "w", &c).await.unwrap();
        let ok = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            reference: Some("ch_1".into()),
            ..c
        };
        store
            .settle_charge(&a.id, "w", &ok, Some(InvoiceStatus::Paid), now)
            .await
            .unwrap();
        let cancel_paid = store
            .set_invoice_status(
                &a.id,
                &name,
                &[InvoiceStatus::Issued, InvoiceStatus::Overdue],
                InvoiceStatus::Cancelled,
                "operator",
                now,
            )
            .await;
        assert!(
            matches!(
                cancel_paid,
                Err(StoreError::Conflict(Reason::InvoiceWrongStatus, _))
            ),
            "{cancel_paid:?}"
        );
        // A refund is not a status change: it goes through the provider.
        let marked = store
            .set_invoice_status(
                &a.id,
                &name,
                &[InvoiceStatus::Paid],
                InvoiceStatus::Refunded,
                "operator",
                now,
            )
            .await;
        assert!(
            matches!(marked, Err(StoreError::Conflict(Reason::InvoiceWrongStatus, _))),
            "{marked:?}"
        );
        let r = store
            .begin_refund(
                &a.id,
                "op",
                &crate::refunds::refund_of(&name, &ok, now),
                InvoiceStatus::REFUNDABLE,
                now,
                now + LEASE,
            )
            .await
            .unwrap();
        let refunded = store
            .settle_refund(&a.id, "op", &crate::refunds::settled(&r, None), now)
            .await
            .unwrap();
        assert_eq!(refunded.invoice.status, InvoiceStatus::Refunded);
        let charges = store.invoice_charges(&a.id, &name).await.unwrap();
        assert_eq!(charges[0].outcome, ChargeOutcome::Refunded);

        let other = if name == "inv-2026-11-0001" {
            "inv-2026-12-0002"
        } else {
            "inv-2026-11-0001"
        };
        let cancelled = store
            .set_invoice_status(
                &a.id,
                &other.into(),
                &[InvoiceStatus::Issued],
                InvoiceStatus::Cancelled,
                "operator",
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            (cancelled.invoice.status, cancelled.next_charge_at),
            (InvoiceStatus::Cancelled, None)
        );
        assert!(
            store.claim_charge("w", now, now + LEASE).await.unwrap().is_none(),
            "cancelled: never charged"
        );
        assert!(matches!(
            store
                .set_invoice_status(
                    &a.id,
                    &"inv-1999-01-0001".into(),
                    &[InvoiceStatus::Issued],
                    InvoiceStatus::Cancelled,
                    "operator",
                    now
                )
                .await,
            Err(StoreError::NotFound(_))
        ));
        // The audit trail has every step.
        let actions: Vec<String> = store
            .audit(Some(&a.id), 50)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .filter(|a| a.starts_with("invoice."))
            .collect();
        for want in [
            "invoice.finalize",
            "invoice.paid",
            "invoice.refund",
            "invoice.cancelled",
        ] {
            assert!(
                actions.iter().any(|a| a == want),
                "{want} missing from {actions:?}"
            );
        }
    })
    .await;
}

/// A charge attempt whose worker lost its lease mid-call stays PENDING until
/// the next worker asks the provider again: until then the invoice can be
/// neither cancelled nor rescheduled, so that money the provider may have
/// taken never lands on a cancelled invoice.
#[tokio::test]
async fn an_unsettled_charge_attempt_blocks_cancel_and_charge_now() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-12-02T00:00:00Z");
        let inv = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        store
            .finalize_invoice(&a.id, &inv, Some(now), "test", now)
            .await
            .unwrap();
        let s = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        let name = s.invoice.name.clone();
        let c = attempt("k/1", &name, 1, now);
        store.begin_charge(&a.id, "w", &c).await.unwrap();
        // The worker's lease runs out before the provider answers.
        let later = now + LEASE + SignedDuration::from_secs(1);
        let cancel = store
            .set_invoice_status(
                &a.id,
                &name,
                &[InvoiceStatus::Issued],
                InvoiceStatus::Cancelled,
                "operator",
                later,
            )
            .await;
        assert!(
            matches!(&cancel, Err(StoreError::Conflict(Reason::InvoiceBeingCharged, m)) if m.contains("not known yet")),
            "{cancel:?}"
        );
        let charge_now = store.schedule_charge(&a.id, &name, "operator", later).await;
        assert!(
            matches!(&charge_now, Err(StoreError::Conflict(Reason::InvoiceBeingCharged, _))),
            "{charge_now:?}"
        );
        // The next worker settles it (the provider had taken the money): PAID.
        let s = store.claim_charge("w2", later, later + LEASE).await.unwrap().unwrap();
        assert_eq!(s.invoice.name, name);
        let ok = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            reference: Some("ch_1".into()),
            settled_at: Some(later),
            ..c
        };
        store
            .settle_charge(&a.id, "w2", &ok, Some(InvoiceStatus::Paid), later)
            .await
            .unwrap();
        let paid = store.invoice(&a.id, &name).await.unwrap().unwrap();
        assert_eq!(paid.invoice.status, InvoiceStatus::Paid);
    })
    .await;
}

#[tokio::test]
async fn a_prepared_payment_reference_is_recorded_under_the_lease_and_found_again() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let now = t("2026-12-02T00:00:00Z");
        let inv = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        store
            .finalize_invoice(&a.id, &inv, Some(now), "test", now)
            .await
            .unwrap();
        store.claim_charge("w1", now, now + LEASE).await.unwrap().unwrap();
        let mut c = attempt("k1", "inv-2026-11-0001", 1, now);
        c.method.as_mut().unwrap().provider = "stripe".into();
        store.begin_charge(&a.id, "w1", &c).await.unwrap();
        assert!(matches!(
            store.set_charge_reference(&a.id, "w2", &c, "pi_1").await,
            Err(StoreError::Conflict(Reason::InvoiceLeaseLost, _))
        ));
        store.set_charge_reference(&a.id, "w1", &c, "pi_1").await.unwrap();
        let (tenant_id, found) = store
            .charge_by_reference("stripe", "pi_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tenant_id, a.id);
        assert_eq!(found.idempotency_key, "k1");
        assert_eq!(found.reference.as_deref(), Some("pi_1"));
        assert_eq!(found.outcome, ChargeOutcome::Pending);
        assert_eq!(found.method.unwrap().provider, "stripe");
        assert!(store.charge_by_reference("test", "pi_1").await.unwrap().is_none());
        assert!(
            store
                .charge_by_reference("stripe", "pi_2")
                .await
                .unwrap()
                .is_none()
        );

        // One customer per tenant and provider; the first one stored wins.
        assert_eq!(store.provider_customer(&a.id, "stripe").await.unwrap(), None);
        let (x, y) = tokio::join!(
            store.add_provider_customer(&a.id, "stripe", "cus_1", now),
            store.add_provider_customer(&a.id, "stripe", "cus_2", now)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x, y, "both callers use the customer stored first");
        assert_eq!(store.provider_customer(&a.id, "stripe").await.unwrap(), Some(x));
        assert_eq!(store.provider_customer(&b.id, "stripe").await.unwrap(), None);

        // A webhook event is handled once.
        assert!(
            store
                .record_provider_event("stripe", "evt_1", "payment_intent.succeeded", now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .record_provider_event("stripe", "evt_1", "payment_intent.succeeded", now)
                .await
                .unwrap()
        );
        assert!(
            store
                .record_provider_event("test", "evt_1", "x", now)
                .await
                .unwrap()
        );
    })
    .await;
}
