//! Refunds: recorded PENDING under the invoice's lease (the charge lease)
//! before the provider is asked, settled after under a lease check; never
//! twice; an unsettled one resumed with the same key once its lease expires.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{ChargeOutcome, ChargeRecord, RefundRecord, RefundState, Store, StoreError};
use tollgate_testkit::each_backend;

use crate::invoicing::{LEASE, attempt, invoice};
use crate::{open, t, tenant};

const NAME: &str = "inv-2026-11-0001";

/// A PENDING refund of `charge`, as the application layer writes it.
pub fn refund_of(invoice: &str, charge: &ChargeRecord, at: Timestamp) -> RefundRecord {
    RefundRecord {
        idempotency_key: format!("refund/{}", charge.idempotency_key),
        invoice: invoice.into(),
        charge: charge.idempotency_key.clone(),
        reference: charge
            .reference
            .clone()
            .expect("a successful charge has a reference"),
        amount_cents: charge.amount_cents,
        currency: charge.currency.clone(),
        state: RefundState::Pending,
        reason: None,
        actor: "operator".into(),
        started_at: at,
        settled_at: None,
    }
}

/// `r` as the provider answered: refunded, or refused for `reason`.
pub fn settled(r: &RefundRecord, reason: Option<&str>) -> RefundRecord {
    RefundRecord {
        state: if reason.is_some() {
            RefundState::Failed
        } else {
            RefundState::Succeeded
        },
        reason: reason.map(str::to_owned),
        ..r.clone()
    }
}

/// acme with invoice [`NAME`] (2500 ¢) ISSUED and due at `now`.
async fn issued(store: &dyn Store, now: Timestamp) -> Tenant {
    let a = tenant(store, "acme").await;
    let inv = invoice(store, &a.id, NAME, 0, 2500).await;
    store
        .finalize_invoice(&a.id, &inv, Some(now), "test", now)
        .await
        .unwrap();
    a
}

/// Charges the invoice of [`issued`] successfully by worker `w`: it is PAID,
/// the lease released. Returns the successful attempt.
async fn pay(store: &dyn Store, a: &Tenant, now: Timestamp) -> ChargeRecord {
    store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
    let c = attempt(&format!("{}/{NAME}/1/pm-1", a.id), NAME, 1, now);
    store.begin_charge(&a.id, "w", &c).await.unwrap();
    let ok = ChargeRecord {
        outcome: ChargeOutcome::Succeeded,
        reference: Some("ch_0123".into()),
        ..c
    };
    store
        .settle_charge(&a.id, "w", &ok, Some(InvoiceStatus::Paid), now)
        .await
        .unwrap();
    ok
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, StoreError>, says: &str) {
    match r {
        Err(StoreError::Conflict(_, m)) if m.contains(says) => {}
        other => panic!("expected a conflict saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refund_is_refused_while_a_charge_holds_the_lease_and_changes_nothing() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        // A charge is in flight: leased by the charge worker, attempt PENDING.
        store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        let c = attempt(&format!("{}/{NAME}/1/pm-1", a.id), NAME, 1, now);
        store.begin_charge(&a.id, "w", &c).await.unwrap();
        let ok = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            reference: Some("ch_0123".into()),
            ..c
        };
        let r = refund_of(NAME, &ok, now);
        let during = now + SignedDuration::from_secs(30);
        assert_refused(
            store
                .begin_refund(&a.id, "op", &r, InvoiceStatus::REFUNDABLE, during, during + LEASE)
                .await,
            "being charged",
        );
        assert!(
            store
                .invoice_refunds(&a.id, &NAME.into())
                .await
                .unwrap()
                .is_empty()
        );
        // The charge worker still holds the lease and settles its attempt.
        store
            .settle_charge(&a.id, "w", &ok, Some(InvoiceStatus::Paid), during)
            .await
            .unwrap();
        let paid = store.invoice(&a.id, &NAME.into()).await.unwrap().unwrap();
        assert_eq!(
            (paid.invoice.status, paid.leased_until),
            (InvoiceStatus::Paid, None)
        );
        // Now the refund can start; a charge worker cannot claim the invoice.
        store
            .begin_refund(&a.id, "op", &r, InvoiceStatus::REFUNDABLE, during, during + LEASE)
            .await
            .unwrap();
        assert!(
            store
                .claim_charge("w2", during, during + LEASE)
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn a_refund_is_recorded_pending_then_settled_once() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;

        // Not PAID yet: refused, nothing written.
        let unpaid = {
            let c = attempt("x", NAME, 1, now);
            refund_of(
                NAME,
                &ChargeRecord {
                    reference: Some("ch_x".into()),
                    ..c
                },
                now,
            )
        };
        assert_refused(
            store
                .begin_refund(&a.id, "op", &unpaid, InvoiceStatus::REFUNDABLE, now, now + LEASE)
                .await,
            "is ISSUED",
        );
        let ok = pay(&*store, &a, now).await;
        // A charge that is not the successful one, or another reference: refused.
        let mut wrong = refund_of(NAME, &ok, now);
        wrong.reference = "ch_other".into();
        assert_refused(
            store
                .begin_refund(&a.id, "op", &wrong, InvoiceStatus::REFUNDABLE, now, now + LEASE)
                .await,
            "no successful charge",
        );
        let mut missing = refund_of(NAME, &ok, now);
        missing.invoice = "inv-1999-01-0001".into();
        assert!(matches!(
            store
                .begin_refund(&a.id, "op", &missing, InvoiceStatus::REFUNDABLE, now, now + LEASE)
                .await,
            Err(StoreError::NotFound(_))
        ));

        let r = refund_of(NAME, &ok, now);
        let stored = store
            .begin_refund(&a.id, "op", &r, InvoiceStatus::REFUNDABLE, now, now + LEASE)
            .await
            .unwrap();
        assert_eq!(stored, r);
        assert_eq!(stored.idempotency_key, format!("refund/{}", ok.idempotency_key));
        // Recorded before the provider is asked; the invoice is leased, still PAID.
        assert_eq!(
            store.invoice_refunds(&a.id, &NAME.into()).await.unwrap(),
            std::slice::from_ref(&r)
        );
        let leased = store.invoice(&a.id, &NAME.into()).await.unwrap().unwrap();
        assert_eq!(
            (leased.invoice.status, leased.leased_until),
            (InvoiceStatus::Paid, Some(now + LEASE))
        );
        // Only the lease holder settles.
        let later = now + SignedDuration::from_secs(5);
        assert_refused(
            store
                .settle_refund(&a.id, "stranger", &settled(&r, None), later)
                .await,
            "no longer leased",
        );
        let after = store
            .settle_refund(&a.id, "op", &settled(&r, None), later)
            .await
            .unwrap();
        assert_eq!(
            (after.invoice.status, after.leased_until, after.next_charge_at),
            (InvoiceStatus::Refunded, None, None)
        );
        assert_eq!(store.invoice(&a.id, &NAME.into()).await.unwrap().unwrap(), after);
        let refunds = store.invoice_refunds(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(
            refunds,
            [RefundRecord {
                settled_at: Some(later),
                ..settled(&r, None)
            }]
        );
        let charges = store.invoice_charges(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(charges[0].outcome, ChargeOutcome::Refunded);
        // Audited with the money and its unit, by who asked.
        let entry = store
            .audit(Some(&a.id), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.action == "invoice.refund")
            .expect("an invoice.refund entry");
        assert_eq!(
            (entry.actor.as_str(), entry.target.as_str(), entry.at),
            ("operator", "invoice/inv-2026-11-0001", later)
        );
        let before: serde_json::Value = serde_json::from_str(entry.before.as_deref().unwrap()).unwrap();
        let after_doc: serde_json::Value = serde_json::from_str(entry.after.as_deref().unwrap()).unwrap();
        assert_eq!(before["status"], "PAID");
        assert_eq!(after_doc["status"], "REFUNDED");
        assert_eq!(after_doc["amount_cents"], 2500);
        assert_eq!(after_doc["currency"], "USD");
        assert_eq!(after_doc["idempotency_key"], r.idempotency_key.as_str());

        // Never twice, whoever asks, with whatever key.
        let again = refund_of(NAME, &ok, later);
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "op2",
                    &again,
                    InvoiceStatus::REFUNDABLE,
                    later,
                    later + LEASE,
                )
                .await,
            "already refunded",
        );
        let mut other_key = again.clone();
        other_key.idempotency_key = "refund/another".into();
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "op2",
                    &other_key,
                    InvoiceStatus::REFUNDABLE,
                    later,
                    later + LEASE,
                )
                .await,
            "already refunded",
        );
        // Even for a caller that would take a REFUNDED invoice: the
        // SUCCEEDED refund refuses it.
        let far = later + LEASE;
        store
            .begin_refund(&a.id, "op3", &again, &[InvoiceStatus::Refunded], far, far + LEASE)
            .await
            .expect_err("already refunded");
        assert_eq!(store.invoice_refunds(&a.id, &NAME.into()).await.unwrap().len(), 1);
        let audited = store
            .audit(Some(&a.id), 50)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action.starts_with("invoice.refund"))
            .count();
        assert_eq!(audited, 1);
    })
    .await;
}

#[tokio::test]
async fn an_unsettled_refund_is_resumed_with_the_same_key_once_its_lease_expires() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        let ok = pay(&*store, &a, now).await;
        let first = refund_of(NAME, &ok, now);
        store
            .begin_refund(&a.id, "op1", &first, InvoiceStatus::REFUNDABLE, now, now + LEASE)
            .await
            .unwrap();
        // op1 asked the provider, then died before settling.

        // Within the lease: refused, as in progress.
        let soon = now + SignedDuration::from_secs(60);
        let retry = RefundRecord {
            actor: "operator-2".into(),
            started_at: soon,
            ..first.clone()
        };
        assert_refused(
            other
                .begin_refund(
                    &a.id,
                    "op2",
                    &retry,
                    InvoiceStatus::REFUNDABLE,
                    soon,
                    soon + LEASE,
                )
                .await,
            "in progress",
        );
        // After it: resumed, the refund as first recorded (same key), leased to op2.
        let expired = now + LEASE + SignedDuration::from_secs(1);
        let retry = RefundRecord {
            started_at: expired,
            ..retry
        };
        let resumed = other
            .begin_refund(
                &a.id,
                "op2",
                &retry,
                InvoiceStatus::REFUNDABLE,
                expired,
                expired + LEASE,
            )
            .await
            .unwrap();
        assert_eq!(resumed, first);
        // A refund under another key while one is pending: refused.
        let mut stray = retry.clone();
        stray.idempotency_key = "refund/stray".into();
        let later = expired + LEASE + SignedDuration::from_secs(1);
        assert_refused(
            other
                .begin_refund(
                    &a.id,
                    "op3",
                    &stray,
                    InvoiceStatus::REFUNDABLE,
                    later,
                    later + LEASE,
                )
                .await,
            "another refund pending",
        );
        // The dead worker cannot settle; the one holding the lease can.
        let done = settled(&resumed, None);
        assert_refused(
            store.settle_refund(&a.id, "op1", &done, expired).await,
            "no longer leased",
        );
        let after = other.settle_refund(&a.id, "op2", &done, expired).await.unwrap();
        assert_eq!(after.invoice.status, InvoiceStatus::Refunded);
        let refunds = store.invoice_refunds(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(
            (
                refunds[0].state,
                refunds[0].idempotency_key.as_str(),
                refunds[0].actor.as_str()
            ),
            (RefundState::Succeeded, first.idempotency_key.as_str(), "operator")
        );
    })
    .await;
}

#[tokio::test]
async fn a_refund_the_provider_refused_is_recorded_failed_and_may_be_tried_again() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        let ok = pay(&*store, &a, now).await;
        let r = refund_of(NAME, &ok, now);
        store
            .begin_refund(&a.id, "op", &r, InvoiceStatus::REFUNDABLE, now, now + LEASE)
            .await
            .unwrap();
        let after = store
            .settle_refund(&a.id, "op", &settled(&r, Some("no such charge")), now)
            .await
            .unwrap();
        assert_eq!(
            (after.invoice.status, after.leased_until),
            (InvoiceStatus::Paid, None)
        );
        let refunds = store.invoice_refunds(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(
            (refunds[0].state, refunds[0].reason.as_deref()),
            (RefundState::Failed, Some("no such charge"))
        );
        let charges = store.invoice_charges(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(charges[0].outcome, ChargeOutcome::Succeeded);
        assert!(
            store
                .audit(Some(&a.id), 10)
                .await
                .unwrap()
                .iter()
                .any(|e| e.action == "invoice.refund_failed")
        );
        // Tried again at once (the lease was released), under the same key.
        let later = now + SignedDuration::from_secs(10);
        let again = RefundRecord {
            started_at: later,
            ..r.clone()
        };
        let stored = store
            .begin_refund(
                &a.id,
                "op",
                &again,
                InvoiceStatus::REFUNDABLE,
                later,
                later + LEASE,
            )
            .await
            .unwrap();
        assert_eq!(
            (stored.state, stored.reason, stored.started_at),
            (RefundState::Pending, None, later)
        );
        store
            .settle_refund(&a.id, "op", &settled(&again, None), later)
            .await
            .unwrap();
        let refunds = store.invoice_refunds(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].state, RefundState::Succeeded);
    })
    .await;
}
