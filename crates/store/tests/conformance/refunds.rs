//! Refunds, each a numbered credit note: recorded PENDING under the
//! invoice's lease (the charge lease) before the provider is asked, settled
//! after under a lease check; whole or partial, never more than the charge
//! took (less what SUCCEEDED and PENDING refunds took); numbered per tenant,
//! never twice; an unsettled one resumed with the same key once its lease
//! expires; a FAILED one counts for nothing.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use tollgate_domain::Reason;
use tollgate_domain::credit_note::CreditNoteLine;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{
    ChargeOutcome, ChargeRecord, NewRefund, RefundRecord, RefundStart, RefundState, Store, StoreError,
};
use tollgate_testkit::each_backend;

use crate::invoicing::{LEASE, attempt, invoice};
use crate::{open, raw_pool, t, tenant};

const NAME: &str = "inv-2026-11-0001";

/// A new credit note of `amount` cents of `charge`, as the application
/// layer asks for one (one partial line).
pub fn partial(invoice: &str, charge: &ChargeRecord, amount: i64, at: Timestamp) -> RefundStart {
    RefundStart::New(NewRefund {
        invoice: invoice.into(),
        charge: charge.idempotency_key.clone(),
        reference: charge
            .reference
            .clone()
            .expect("a successful charge has a reference"),
        amount_cents: amount,
        currency: charge.currency.clone(),
        reason: format!("goodwill: {amount} cents"),
        lines: vec![CreditNoteLine {
            description: format!("Partial refund of invoice {invoice}"),
            quantity: Decimal::ONE,
            unit: "refund".into(),
            unit_price_cents: Decimal::from(amount),
            amount_cents: amount,
        }],
        actor: "operator".into(),
        started_at: at,
        provider_total: None,
    })
}

/// A new credit note of everything `charge` took.
pub fn refund_of(invoice: &str, charge: &ChargeRecord, at: Timestamp) -> RefundStart {
    let RefundStart::New(mut r) = partial(invoice, charge, charge.amount_cents, at) else {
        unreachable!()
    };
    r.reason = "the customer cancelled".into();
    r.lines = vec![CreditNoteLine {
        description: "Individual plan".into(),
        quantity: Decimal::ONE,
        unit: "period".into(),
        unit_price_cents: Decimal::from(charge.amount_cents),
        amount_cents: charge.amount_cents,
    }];
    RefundStart::New(r)
}

/// `r` as the provider answered: refunded (with the provider's refund id),
/// or refused for `failure`.
pub fn settled(r: &RefundRecord, failure: Option<&str>) -> RefundRecord {
    RefundRecord {
        state: if failure.is_some() {
            RefundState::Failed
        } else {
            RefundState::Succeeded
        },
        failure: failure.map(str::to_owned),
        refund_reference: failure.is_none().then(|| format!("re_{}", r.credit_note)),
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

/// Charges the only due invoice, `name`, successfully by worker `w`: it is
/// PAID, the lease released. Returns the successful attempt.
async fn pay_invoice(store: &dyn Store, a: &Tenant, name: &str, now: Timestamp) -> ChargeRecord {
    let claimed = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.invoice.name, name);
    let c = attempt(&format!("{}/{name}/1/pm-1", a.id), name, 1, now);
    store.begin_charge(&a.id, "w", &c).await.unwrap();
    let ok = ChargeRecord {
        outcome: ChargeOutcome::Succeeded,
        reference: Some(format!("ch_{name}")),
        ..c
    };
    store
        .settle_charge(&a.id, "w", &ok, Some(InvoiceStatus::Paid), now)
        .await
        .unwrap();
    ok
}

async fn pay(store: &dyn Store, a: &Tenant, now: Timestamp) -> ChargeRecord {
    pay_invoice(store, a, NAME, now).await
}

async fn begin(store: &dyn Store, a: &Tenant, owner: &str, r: &RefundStart, at: Timestamp) -> RefundRecord {
    store
        .begin_refund(&a.id, owner, r, InvoiceStatus::REFUNDABLE, at, at + LEASE)
        .await
        .unwrap()
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, StoreError>, reason: Reason, says: &str) {
    match r {
        Err(StoreError::Conflict(why, m)) if why == reason && m.contains(says) => {}
        other => panic!("expected a {reason} conflict saying {says:?}, got {other:?}"),
    }
}

async fn status(store: &dyn Store, a: &Tenant, name: &str) -> InvoiceStatus {
    store
        .invoice(&a.id, &name.into())
        .await
        .unwrap()
        .unwrap()
        .invoice
        .status
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
            Reason::InvoiceBeingCharged,
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
        // Now the refund can start, and is the tenant's first credit note
        // (the refused one took no number); a charge worker cannot claim the
        // invoice meanwhile.
        let stored = begin(&*store, &a, "op", &r, during).await;
        assert_eq!(stored.credit_note, "cn-2026-12-0001");
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
async fn a_whole_refund_is_one_credit_note_recorded_pending_then_settled_once() {
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
            Reason::InvoiceWrongStatus,
            "is ISSUED",
        );
        let ok = pay(&*store, &a, now).await;
        // A charge that is not the successful one, or another reference: refused.
        let RefundStart::New(mut wrong) = refund_of(NAME, &ok, now) else {
            unreachable!()
        };
        wrong.reference = "ch_other".into();
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "op",
                    &RefundStart::New(wrong),
                    InvoiceStatus::REFUNDABLE,
                    now,
                    now + LEASE,
                )
                .await,
            Reason::NothingToRefund,
            "no successful charge",
        );
        let RefundStart::New(mut missing) = refund_of(NAME, &ok, now) else {
            unreachable!()
        };
        missing.invoice = "inv-1999-01-0001".into();
        assert!(matches!(
            store
                .begin_refund(
                    &a.id,
                    "op",
                    &RefundStart::New(missing),
                    InvoiceStatus::REFUNDABLE,
                    now,
                    now + LEASE
                )
                .await,
            Err(StoreError::NotFound(_))
        ));

        let stored = begin(&*store, &a, "op", &refund_of(NAME, &ok, now), now).await;
        assert_eq!(stored.credit_note, "cn-2026-12-0001");
        assert_eq!(
            stored.idempotency_key,
            format!("refund/{}/cn-2026-12-0001", ok.idempotency_key)
        );
        assert_eq!(
            (
                stored.state,
                stored.amount_cents,
                stored.currency.as_str(),
                stored.reason.as_str(),
                stored.lines.len(),
                stored.failure.as_deref(),
                stored.refund_reference.as_deref(),
                stored.started_at,
                stored.settled_at,
            ),
            (
                RefundState::Pending,
                2500,
                "USD",
                "the customer cancelled",
                1,
                None,
                None,
                now,
                None
            )
        );
        // Recorded before the provider is asked; the invoice is leased, still PAID.
        assert_eq!(
            store.invoice_refunds(&a.id, &NAME.into()).await.unwrap(),
            std::slice::from_ref(&stored)
        );
        assert_eq!(
            store.credit_note(&a.id, "cn-2026-12-0001").await.unwrap(),
            Some(stored.clone())
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
                .settle_refund(&a.id, "stranger", &settled(&stored, None), later)
                .await,
            Reason::InvoiceLeaseLost,
            "no longer leased",
        );
        let after = store
            .settle_refund(&a.id, "op", &settled(&stored, None), later)
            .await
            .unwrap();
        assert_eq!(
            (after.invoice.status, after.leased_until, after.next_charge_at),
            (InvoiceStatus::Refunded, None, None)
        );
        assert_eq!(store.invoice(&a.id, &NAME.into()).await.unwrap().unwrap(), after);
        let done = RefundRecord {
            settled_at: Some(later),
            ..settled(&stored, None)
        };
        assert_eq!(
            store.invoice_refunds(&a.id, &NAME.into()).await.unwrap(),
            std::slice::from_ref(&done)
        );
        assert_eq!(
            store.credit_notes(&a.id).await.unwrap(),
            std::slice::from_ref(&done)
        );
        assert_eq!(done.refund_reference.as_deref(), Some("re_cn-2026-12-0001"));
        let charges = store.invoice_charges(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(charges[0].outcome, ChargeOutcome::Refunded);
        // Audited with the credit note, the money and its unit, by who asked.
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
        assert_eq!(after_doc["credit_note"], "cn-2026-12-0001");
        assert_eq!(after_doc["credit_note_reason"], "the customer cancelled");
        assert_eq!(after_doc["amount_cents"], 2500);
        assert_eq!(after_doc["refunded_cents"], 2500);
        assert_eq!(after_doc["currency"], "USD");
        assert_eq!(after_doc["refund_reference"], "re_cn-2026-12-0001");
        assert_eq!(after_doc["idempotency_key"], done.idempotency_key.as_str());

        // Never twice, whoever asks, for whatever amount: nothing remains.
        for start in [refund_of(NAME, &ok, later), partial(NAME, &ok, 1, later)] {
            assert_refused(
                store
                    .begin_refund(
                        &a.id,
                        "op2",
                        &start,
                        InvoiceStatus::REFUNDABLE,
                        later,
                        later + LEASE,
                    )
                    .await,
                Reason::InvoiceAlreadyRefunded,
                "nothing remains",
            );
        }
        // Even for a caller that would take a REFUNDED invoice.
        let far = later + LEASE;
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "op3",
                    &refund_of(NAME, &ok, far),
                    &[InvoiceStatus::Refunded],
                    far,
                    far + LEASE,
                )
                .await,
            Reason::InvoiceAlreadyRefunded,
            "already refunded in full",
        );
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
async fn partial_refunds_keep_the_invoice_paid_until_they_add_up_to_the_charge() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        let ok = pay(&*store, &a, now).await;

        // 1000 of 2500: PAID still, the charge SUCCEEDED still.
        let first = begin(&*store, &a, "op", &partial(NAME, &ok, 1000, now), now).await;
        assert_eq!(first.credit_note, "cn-2026-12-0001");
        let after = store
            .settle_refund(&a.id, "op", &settled(&first, None), now)
            .await
            .unwrap();
        assert_eq!(after.invoice.status, InvoiceStatus::Paid);
        assert_eq!(
            store.invoice_charges(&a.id, &NAME.into()).await.unwrap()[0].outcome,
            ChargeOutcome::Succeeded
        );

        // More than the 1500 left: refused, naming what remains; nothing
        // written, no number taken, the lease not kept.
        let t1 = now + SignedDuration::from_secs(10);
        for amount in [1501, 2500, i64::MAX] {
            assert_refused(
                store
                    .begin_refund(
                        &a.id,
                        "op",
                        &partial(NAME, &ok, amount, t1),
                        InvoiceStatus::REFUNDABLE,
                        t1,
                        t1 + LEASE,
                    )
                    .await,
                Reason::RefundExceedsRemaining,
                "has 15.00 USD left to refund (25.00 USD paid, 10.00 USD refunded)",
            );
        }
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "op",
                    &partial(NAME, &ok, 0, t1),
                    InvoiceStatus::REFUNDABLE,
                    t1,
                    t1 + LEASE,
                )
                .await,
            Reason::RefundExceedsRemaining,
            "not more than zero",
        );
        assert_eq!(store.invoice_refunds(&a.id, &NAME.into()).await.unwrap().len(), 1);
        let held = store.invoice(&a.id, &NAME.into()).await.unwrap().unwrap();
        assert_eq!(held.leased_until, None);

        // 1000 more (PAID), then the last 500 (REFUNDED); numbers in order.
        let second = begin(&*store, &a, "op", &partial(NAME, &ok, 1000, t1), t1).await;
        assert_eq!(second.credit_note, "cn-2026-12-0002");
        store
            .settle_refund(&a.id, "op", &settled(&second, None), t1)
            .await
            .unwrap();
        assert_eq!(status(&*store, &a, NAME).await, InvoiceStatus::Paid);
        let t2 = t1 + SignedDuration::from_secs(10);
        let last = begin(&*store, &a, "op", &partial(NAME, &ok, 500, t2), t2).await;
        assert_eq!(last.credit_note, "cn-2026-12-0003");
        let after = store
            .settle_refund(&a.id, "op", &settled(&last, None), t2)
            .await
            .unwrap();
        assert_eq!(after.invoice.status, InvoiceStatus::Refunded);
        assert_eq!(
            store.invoice_charges(&a.id, &NAME.into()).await.unwrap()[0].outcome,
            ChargeOutcome::Refunded
        );
        let notes = store.credit_notes(&a.id).await.unwrap();
        assert_eq!(
            notes.iter().map(|n| n.credit_note.as_str()).collect::<Vec<_>>(),
            ["cn-2026-12-0003", "cn-2026-12-0002", "cn-2026-12-0001"],
            "newest first"
        );
        assert_eq!(notes.iter().map(|n| n.amount_cents).sum::<i64>(), 2500);
        // Each audited with its amount and what is refunded so far.
        let refunded: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = store
            .audit(Some(&a.id), 50)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "invoice.refund")
            .map(|e| {
                let after: serde_json::Value = serde_json::from_str(e.after.as_deref().unwrap()).unwrap();
                (
                    after["credit_note"].clone(),
                    after["amount_cents"].clone(),
                    after["refunded_cents"].clone(),
                )
            })
            .collect();
        assert_eq!(refunded.len(), 3);
        for want in [
            ("cn-2026-12-0001", 1000, 1000),
            ("cn-2026-12-0002", 1000, 2000),
            ("cn-2026-12-0003", 500, 2500),
        ] {
            assert!(
                refunded.contains(&(want.0.into(), want.1.into(), want.2.into())),
                "{want:?} not in {refunded:?}"
            );
        }
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
        let first = begin(&*store, &a, "op1", &partial(NAME, &ok, 2000, now), now).await;
        // op1 asked the provider, then died before settling.
        let resume = RefundStart::Resume {
            invoice: NAME.into(),
            idempotency_key: first.idempotency_key.clone(),
        };

        // Within the lease: refused, as in progress, whatever is asked.
        let soon = now + SignedDuration::from_secs(60);
        for start in [&resume, &partial(NAME, &ok, 100, soon)] {
            assert_refused(
                other
                    .begin_refund(&a.id, "op2", start, InvoiceStatus::REFUNDABLE, soon, soon + LEASE)
                    .await,
                Reason::RefundInProgress,
                "cn-2026-12-0001) is in progress",
            );
        }
        // After it: a new refund is refused while the interrupted one is
        // unsettled (it counts against what remains, and must be finished).
        let expired = now + LEASE + SignedDuration::from_secs(1);
        assert_refused(
            other
                .begin_refund(
                    &a.id,
                    "op2",
                    &partial(NAME, &ok, 100, expired),
                    InvoiceStatus::REFUNDABLE,
                    expired,
                    expired + LEASE,
                )
                .await,
            Reason::RefundInProgress,
            "was interrupted (cn-2026-12-0001, 20.00 USD)",
        );
        // Resumed: the refund as first recorded (same key, same amount),
        // leased to op2.
        let resumed = begin(&*other, &a, "op2", &resume, expired).await;
        assert_eq!(resumed, first);
        // A resume under another key while one is pending: refused.
        let later = expired + LEASE + SignedDuration::from_secs(1);
        assert_refused(
            other
                .begin_refund(
                    &a.id,
                    "op3",
                    &RefundStart::Resume {
                        invoice: NAME.into(),
                        idempotency_key: "refund/stray".into(),
                    },
                    InvoiceStatus::REFUNDABLE,
                    later,
                    later + LEASE,
                )
                .await,
            Reason::RefundInProgress,
            "another refund pending",
        );
        // The dead worker cannot settle. op2's lease has expired by now (op3's
        // refusal took nothing): op2 resumes again, same key, and settles.
        let done = settled(&resumed, None);
        assert_refused(
            store.settle_refund(&a.id, "op1", &done, expired).await,
            Reason::InvoiceLeaseLost,
            "no longer leased",
        );
        let again = begin(&*other, &a, "op2", &resume, later).await;
        assert_eq!(again, first);
        let after = other.settle_refund(&a.id, "op2", &done, later).await.unwrap();
        assert_eq!(after.invoice.status, InvoiceStatus::Paid, "2000 of 2500");
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
        // Settled: nothing to resume any more.
        let end = later + SignedDuration::from_secs(1);
        assert_refused(
            other
                .begin_refund(&a.id, "op2", &resume, InvoiceStatus::REFUNDABLE, end, end + LEASE)
                .await,
            Reason::RefundInProgress,
            "no longer pending",
        );
    })
    .await;
}

#[tokio::test]
async fn a_refund_the_provider_refused_is_recorded_failed_and_counts_for_nothing() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        let ok = pay(&*store, &a, now).await;
        let r = begin(&*store, &a, "op", &refund_of(NAME, &ok, now), now).await;
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
            (
                refunds[0].state,
                refunds[0].failure.as_deref(),
                refunds[0].refund_reference.as_deref()
            ),
            (RefundState::Failed, Some("no such charge"), None)
        );
        let charges = store.invoice_charges(&a.id, &NAME.into()).await.unwrap();
        assert_eq!(charges[0].outcome, ChargeOutcome::Succeeded);
        let failed = store
            .audit(Some(&a.id), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.action == "invoice.refund_failed")
            .expect("an invoice.refund_failed entry");
        let doc: serde_json::Value = serde_json::from_str(failed.after.as_deref().unwrap()).unwrap();
        assert_eq!(
            (&doc["credit_note"], &doc["reason"], &doc["refunded_cents"]),
            (
                &serde_json::json!("cn-2026-12-0001"),
                &serde_json::json!("no such charge"),
                &serde_json::json!(0)
            )
        );
        // Tried again at once (the lease was released), for the whole
        // amount: the FAILED one took nothing. A new credit note, a new key;
        // the FAILED one keeps its number.
        let later = now + SignedDuration::from_secs(10);
        let again = begin(&*store, &a, "op", &refund_of(NAME, &ok, later), later).await;
        assert_eq!(
            (again.credit_note.as_str(), again.state, again.amount_cents),
            ("cn-2026-12-0002", RefundState::Pending, 2500)
        );
        assert_ne!(again.idempotency_key, r.idempotency_key);
        let after = store
            .settle_refund(&a.id, "op", &settled(&again, None), later)
            .await
            .unwrap();
        assert_eq!(after.invoice.status, InvoiceStatus::Refunded);
        let states: Vec<(String, RefundState)> = store
            .invoice_refunds(&a.id, &NAME.into())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.credit_note, r.state))
            .collect();
        assert_eq!(
            states,
            [
                ("cn-2026-12-0001".to_owned(), RefundState::Failed),
                ("cn-2026-12-0002".to_owned(), RefundState::Succeeded)
            ]
        );
    })
    .await;
}

/// Refunds of one tenant's invoices at once, through several handles (and
/// pools): every credit note gets a number of its own, with no gap; and
/// refunds of one invoice at once never take more than its charge did.
#[tokio::test]
async fn refunds_at_once_never_share_a_number_or_exceed_what_was_paid() {
    each_backend(|db| async move {
        let handles = [open(&db).await, open(&db).await, open(&db).await];
        let store = &handles[0];
        let now = t("2026-12-02T00:00:00Z");
        let a = tenant(&**store, "acme").await;
        const INVOICES: u32 = 6;
        let mut charges = Vec::new();
        for i in 0..INVOICES {
            let name = format!("inv-2026-{:02}-{:04}", 11 + i % 2, i + 1);
            let inv = invoice(&**store, &a.id, &name, i, 2500).await;
            store
                .finalize_invoice(&a.id, &inv, Some(now), "test", now)
                .await
                .unwrap();
            charges.push((name.clone(), pay_invoice(&**store, &a, &name, now).await));
        }

        // Round 1: per invoice, three refunds of 1500 of its 2500 at once.
        let round = |at: Timestamp| {
            let mut tasks = Vec::new();
            for (i, (name, ok)) in charges.iter().enumerate() {
                for k in 0..3 {
                    let store = handles[(i + k) % handles.len()].clone();
                    let (tenant, name, start) = (a.id.clone(), name.clone(), partial(name, ok, 1500, at));
                    tasks.push(tokio::spawn(async move {
                        let owner = format!("op-{name}-{k}");
                        let r = store
                            .begin_refund(&tenant, &owner, &start, InvoiceStatus::REFUNDABLE, at, at + LEASE)
                            .await;
                        (owner, r)
                    }));
                }
            }
            tasks
        };
        let mut begun = Vec::new();
        for task in round(now) {
            match task.await.unwrap() {
                (owner, Ok(r)) => begun.push((owner, r)),
                (_, Err(StoreError::Conflict(Reason::InvoiceBeingCharged | Reason::RefundInProgress, _))) => {
                }
                (_, other) => panic!("{other:?}"),
            }
        }
        // One per invoice (the lease), each with a number of its own.
        assert_eq!(begun.len(), INVOICES as usize, "{begun:?}");
        let invoices: BTreeSet<String> = begun.iter().map(|(_, r)| r.invoice.to_string()).collect();
        assert_eq!(invoices.len(), INVOICES as usize);
        let numbers: BTreeSet<String> = begun.iter().map(|(_, r)| r.credit_note.clone()).collect();
        let expected: BTreeSet<String> = (1..=INVOICES).map(|n| format!("cn-2026-12-{n:04}")).collect();
        assert_eq!(numbers, expected);
        for (owner, r) in &begun {
            store
                .settle_refund(&a.id, owner, &settled(r, None), now)
                .await
                .unwrap();
        }

        // Round 2: 1500 more of each is more than the 1000 left: all refused.
        let later = now + SignedDuration::from_secs(10);
        for task in round(later) {
            match task.await.unwrap() {
                (_, Err(StoreError::Conflict(_, _))) => {}
                (_, other) => panic!("expected a refusal, got {other:?}"),
            }
        }
        let notes = store.credit_notes(&a.id).await.unwrap();
        assert_eq!(notes.len(), INVOICES as usize);
        for (name, _) in &charges {
            let refunded: i64 = notes
                .iter()
                .filter(|n| n.invoice == name.as_str())
                .map(|n| n.amount_cents)
                .sum();
            assert_eq!(refunded, 1500, "{name}");
            assert_eq!(status(&**store, &a, name).await, InvoiceStatus::Paid);
        }
        // The next credit note takes the next number.
        let (name, ok) = &charges[0];
        let next = begin(&**store, &a, "op", &partial(name, ok, 1000, later), later).await;
        assert_eq!(next.credit_note, format!("cn-2026-12-{:04}", INVOICES + 1));
        // Another tenant counts from 1.
        let b = tenant(&**store, "bravo").await;
        let inv = invoice(&**store, &b.id, NAME, 0, 2500).await;
        store
            .finalize_invoice(&b.id, &inv, Some(later), "test", later)
            .await
            .unwrap();
        let ok = pay_invoice(&**store, &b, NAME, later).await;
        let first = begin(&**store, &b, "op", &partial(NAME, &ok, 100, later), later).await;
        assert_eq!(first.credit_note, "cn-2026-12-0001");
        assert_eq!(store.credit_note(&b.id, &next.credit_note).await.unwrap(), None);
    })
    .await;
}

/// A database migrated from before credit notes: its refunds (all of whole
/// invoices) become credit notes numbered per tenant in the order they were
/// made, with the invoice's lines, and new refunds number on from there.
#[tokio::test]
async fn the_migration_makes_earlier_refunds_credit_notes_in_the_order_they_were_made() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let mut made = Vec::new();
        for (tenant, i, at) in [
            (&a, 0, "2026-12-02T00:00:00Z"),
            (&b, 0, "2026-12-20T00:00:00Z"),
            (&a, 1, "2027-01-05T00:00:00Z"),
        ] {
            let now = t(at);
            let name = format!("inv-x-{i:04}");
            let inv = invoice(&*store, &tenant.id, &name, i, 2500).await;
            store
                .finalize_invoice(&tenant.id, &inv, Some(now), "test", now)
                .await
                .unwrap();
            let ok = pay_invoice(&*store, tenant, &name, now).await;
            let r = begin(&*store, tenant, "op", &refund_of(&name, &ok, now), now).await;
            store
                .settle_refund(&tenant.id, "op", &settled(&r, None), now)
                .await
                .unwrap();
            made.push((tenant.id.clone(), name, now));
        }
        // Back to the schema before migration 11 (refunds as it left them),
        // then open again.
        let raw = raw_pool(&db).await;
        for sql in [
            "DROP INDEX invoice_refunds_credit_note",
            "DROP TABLE credit_note_sequences",
            "ALTER TABLE invoice_refunds DROP COLUMN credit_note",
            "ALTER TABLE invoice_refunds DROP COLUMN credit_reason",
            "ALTER TABLE invoice_refunds DROP COLUMN lines",
            "ALTER TABLE invoice_refunds DROP COLUMN refund_reference",
            "DELETE FROM _sqlx_migrations WHERE version = 11",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&raw)
                .await
                .unwrap();
        }
        raw.close().await;
        let reopened = open(&db).await;
        let names = |notes: Vec<RefundRecord>| {
            notes
                .into_iter()
                .map(|n| (n.credit_note, n.invoice.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(reopened.credit_notes(&a.id).await.unwrap()),
            [
                ("cn-2027-01-0002".to_owned(), "inv-x-0001".to_owned()),
                ("cn-2026-12-0001".to_owned(), "inv-x-0000".to_owned())
            ]
        );
        assert_eq!(
            names(reopened.credit_notes(&b.id).await.unwrap()),
            [("cn-2026-12-0001".to_owned(), "inv-x-0000".to_owned())]
        );
        let old = reopened
            .credit_note(&a.id, "cn-2026-12-0001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                old.state,
                old.amount_cents,
                old.reason.as_str(),
                old.refund_reference.as_deref()
            ),
            (
                RefundState::Succeeded,
                2500,
                "Refund of invoice inv-x-0000 (made before credit notes had reasons)",
                None
            )
        );
        // Its lines: the invoice's (a refund of the whole invoice).
        let invoice = reopened
            .invoice(&a.id, &"inv-x-0000".into())
            .await
            .unwrap()
            .unwrap()
            .invoice;
        assert_eq!(
            old.lines,
            tollgate_domain::credit_note::lines(&invoice, invoice.totals.total)
        );
        assert_eq!(old.lines[0].description, "Individual plan");
        // New ones number on.
        let now = t("2027-02-01T00:00:00Z");
        let inv = invoice_for(&*reopened, &a, 2, now).await;
        let ok = pay_invoice(&*reopened, &a, &inv, now).await;
        let next = begin(&*reopened, &a, "op", &partial(&inv, &ok, 100, now), now).await;
        assert_eq!(next.credit_note, "cn-2027-02-0003");
    })
    .await;
}

/// Finalizes period `index` of the tenant as `inv-x-NNNN`, due at `now`.
async fn invoice_for(store: &dyn Store, a: &Tenant, index: u32, now: Timestamp) -> String {
    let name = format!("inv-x-{index:04}");
    let inv = invoice(store, &a.id, &name, index, 2500).await;
    store
        .finalize_invoice(&a.id, &inv, Some(now), "test", now)
        .await
        .unwrap();
    name
}

/// A refund made at the provider is recorded for what the books lack of the
/// provider's total, checked under the lease: the same provider event
/// handled twice at once (both having read the books before either wrote)
/// records it once.
#[tokio::test]
async fn a_provider_refund_is_recorded_once_when_two_handlers_race() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let a = issued(&*store, now).await;
        let ok = pay(&*store, &a, now).await;
        let at_provider = |amount: i64, total: i64| {
            let RefundStart::New(mut r) = partial(NAME, &ok, amount, now) else {
                unreachable!()
            };
            r.provider_total = Some(total);
            RefundStart::New(r)
        };
        // Both handlers read "500 refunded, none recorded": the first records it.
        let first = begin(&*store, &a, "webhook-1", &at_provider(500, 500), now).await;
        store
            .settle_refund(&a.id, "webhook-1", &settled(&first, None), now)
            .await
            .unwrap();
        // The second finds it recorded: refused, nothing written.
        let t1 = now + SignedDuration::from_secs(1);
        assert_refused(
            store
                .begin_refund(
                    &a.id,
                    "webhook-2",
                    &at_provider(500, 500),
                    InvoiceStatus::REFUNDABLE,
                    t1,
                    t1 + LEASE,
                )
                .await,
            Reason::RefundInProgress,
            "the books now lack 0.00 USD, not 5.00 USD",
        );
        assert_eq!(store.credit_notes(&a.id).await.unwrap().len(), 1);
        // A second refund at the provider (800 in all) is recorded for the 300 it adds.
        let second = begin(&*store, &a, "webhook-3", &at_provider(300, 800), t1).await;
        assert_eq!(second.amount_cents, 300);
    })
    .await;
}
