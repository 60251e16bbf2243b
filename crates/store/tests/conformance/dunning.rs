//! Dunning bookkeeping: when an invoice went OVERDUE, suspending its tenant
//! past a moment, lifting the suspension in the transaction that pays or
//! cancels the last such invoice, reinstating by hand, charging unpaid
//! invoices again, and reservations blocked while suspended.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::Reason;
use tollgate_domain::access::{NamespaceScope, Role};
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::quota::{KeyFamily, QuotaSpec};
use tollgate_store::{
    ChargeOutcome, ChargeRecord, NewToken, RoundEnd, Store, StoreError, UsageChange, UsageOp, UsageOutcome,
    UsageState,
};
use tollgate_testkit::each_backend;

use crate::invoicing::{LEASE, attempt, invoice};
use crate::{open, t, tenant};

/// Finalizes period `index` of the tenant as `name`, due at `at`.
async fn finalized(store: &dyn Store, tenant_id: &TenantId, name: &str, index: u32, at: Timestamp) {
    let inv = invoice(store, tenant_id, name, index, 2500).await;
    assert!(
        store
            .finalize_invoice(tenant_id, &inv, Some(at), "test", at)
            .await
            .unwrap()
    );
}

/// Runs one failed charge round of the tenant's due invoice `name` at `at`,
/// ending as `status`.
async fn failed_round(
    store: &dyn Store,
    tenant_id: &TenantId,
    name: &str,
    at: Timestamp,
    status: InvoiceStatus,
) {
    let claimed = store.claim_charge("w", at, at + LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.invoice.name.as_str(), name);
    let attempts = claimed.attempts + 1;
    let next = (status == InvoiceStatus::Issued).then(|| at + SignedDuration::from_hours(24));
    store
        .end_charge_round(
            tenant_id,
            &name.into(),
            "w",
            &RoundEnd {
                attempts,
                status,
                next_charge_at: next,
            },
            at,
        )
        .await
        .unwrap();
}

/// Charges the tenant's due invoice `name` at `at`, successfully.
async fn paid(store: &dyn Store, tenant_id: &TenantId, name: &str, at: Timestamp) {
    let claimed = store.claim_charge("w", at, at + LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.invoice.name.as_str(), name);
    let key = format!("{name}/{}", claimed.attempts + 1);
    let c = attempt(&key, name, claimed.attempts + 1, at);
    store.begin_charge(tenant_id, "w", &c).await.unwrap();
    let ok = ChargeRecord {
        outcome: ChargeOutcome::Succeeded,
        reference: Some(format!("ch-{name}")),
        ..c
    };
    store
        .settle_charge(tenant_id, "w", &ok, Some(InvoiceStatus::Paid), at)
        .await
        .unwrap();
}

async fn actions(store: &dyn Store, tenant_id: &TenantId, n: u32) -> Vec<(String, String)> {
    store
        .audit(Some(tenant_id), n)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect()
}

fn names(list: &[&str]) -> Vec<InvoiceName> {
    list.iter().map(|n| InvoiceName::new(*n)).collect()
}

#[tokio::test]
async fn an_invoice_overdue_past_the_moment_suspends_its_tenant_and_paying_it_lifts_that() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let issued = t("2026-12-02T00:00:00Z");
        let overdue = t("2026-12-09T00:00:00Z");
        finalized(&*store, &a.id, "inv-2026-11-0001", 0, issued).await;
        failed_round(&*store, &a.id, "inv-2026-11-0001", issued, InvoiceStatus::Issued).await;
        let first = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.overdue_at, None, "ISSUED while a round is left");
        store
            .schedule_charge(&a.id, &"inv-2026-11-0001".into(), "operator", overdue)
            .await
            .unwrap();
        failed_round(
            &*store,
            &a.id,
            "inv-2026-11-0001",
            overdue,
            InvoiceStatus::Overdue,
        )
        .await;
        let first = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.invoice.status, first.overdue_at),
            (InvoiceStatus::Overdue, Some(overdue))
        );

        // Not before the moment; bravo has nothing overdue.
        let just_before = overdue - SignedDuration::from_micros(1);
        assert!(
            store
                .suspension_candidates(just_before, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .suspend_tenant(&a.id, just_before, "tollgate/dunning", overdue)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.suspension_candidates(overdue, None, 10).await.unwrap(),
            std::slice::from_ref(&a.id)
        );
        assert!(
            store
                .suspension_candidates(overdue, Some(&a.id), 10)
                .await
                .unwrap()
                .is_empty(),
            "paged after acme"
        );
        let later = t("2026-12-23T00:00:00Z");
        let s = store
            .suspend_tenant(&a.id, overdue, "tollgate/dunning", later)
            .await
            .unwrap()
            .expect("suspended");
        assert_eq!(
            (s.since, s.by.as_str(), s.invoices.clone()),
            (later, "tollgate/dunning", names(&["inv-2026-11-0001"]))
        );
        // Once: suspended tenants are no candidates, and a second suspension is nothing.
        assert!(
            store
                .suspension_candidates(later, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .suspend_tenant(&a.id, later, "tollgate/dunning", later)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .suspend_tenant(&b.id, later, "tollgate/dunning", later)
                .await
                .unwrap(),
            None
        );
        // Read with the tenant, by name and with a token (the request's one read).
        assert_eq!(
            store.tenant_by_name("acme").await.unwrap().unwrap().suspension,
            Some(s.clone())
        );
        store
            .create_token(&NewToken {
                actor: "operator".into(),
                tenant_id: a.id.clone(),
                name: "platform".into(),
                role: Role::Platform,
                scope: NamespaceScope::All,
                digest: [3; 32],
                expires_at: None,
                now: later,
            })
            .await
            .unwrap();
        let (_, with_token) = store.token_by_digest(&[3; 32]).await.unwrap().unwrap();
        assert_eq!(with_token.suspension, Some(s.clone()));
        assert_eq!(store.tenant(&b.id).await.unwrap().unwrap().suspension, None);
        let unpaid = store.overdue_invoices(&a.id).await.unwrap();
        assert_eq!(
            unpaid
                .iter()
                .map(|i| (i.invoice.name.as_str(), i.overdue_at))
                .collect::<Vec<_>>(),
            [("inv-2026-11-0001", Some(overdue))]
        );
        let trail = store.audit(Some(&a.id), 2).await.unwrap();
        let entry = &trail[1]; // before the token's creation
        assert_eq!(
            (entry.action.as_str(), entry.actor.as_str(), entry.target.as_str()),
            ("tenant.suspended", "tollgate/dunning", "tenant/acme")
        );
        let after: serde_json::Value = serde_json::from_str(entry.after.as_deref().unwrap()).unwrap();
        assert_eq!(after["invoices"], serde_json::json!(["inv-2026-11-0001"]));
        assert_eq!(after["overdue"][0]["total_cents"], 2500);

        // Charged again and declined again: still OVERDUE since the first
        // time, still suspended.
        let retry = t("2026-12-24T00:00:00Z");
        assert_eq!(
            store
                .schedule_unpaid_charges(&a.id, "token/t1", retry)
                .await
                .unwrap(),
            names(&["inv-2026-11-0001"])
        );
        let due = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (due.invoice.status, due.next_charge_at, due.overdue_at),
            (InvoiceStatus::Issued, Some(retry), Some(overdue))
        );
        assert_eq!(
            actions(&*store, &a.id, 1).await,
            [("invoice.charge_scheduled".to_owned(), "token/t1".to_owned())]
        );
        assert_eq!(
            store.overdue_invoices(&a.id).await.unwrap().len(),
            1,
            "still counts while due"
        );
        failed_round(&*store, &a.id, "inv-2026-11-0001", retry, InvoiceStatus::Overdue).await;
        let again = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.invoice.status, again.overdue_at),
            (InvoiceStatus::Overdue, Some(overdue))
        );
        assert!(store.tenant(&a.id).await.unwrap().unwrap().suspension.is_some());

        // Paid: lifted in the same transaction, audited after the payment.
        let pay = t("2026-12-25T00:00:00Z");
        store
            .schedule_unpaid_charges(&a.id, "token/t1", pay)
            .await
            .unwrap();
        paid(&*store, &a.id, "inv-2026-11-0001", pay).await;
        assert_eq!(store.tenant(&a.id).await.unwrap().unwrap().suspension, None);
        assert!(store.overdue_invoices(&a.id).await.unwrap().is_empty());
        assert_eq!(
            actions(&*store, &a.id, 2).await,
            [
                (
                    "tenant.reinstated".to_owned(),
                    "tollgate/charge-worker".to_owned()
                ),
                ("invoice.paid".to_owned(), "tollgate/charge-worker".to_owned()),
            ]
        );
        let entry = &store.audit(Some(&a.id), 1).await.unwrap()[0];
        let after: serde_json::Value = serde_json::from_str(entry.after.as_deref().unwrap()).unwrap();
        assert_eq!(
            after,
            serde_json::json!({"reason": "paid", "invoice": "inv-2026-11-0001"})
        );
        let before: serde_json::Value = serde_json::from_str(entry.before.as_deref().unwrap()).unwrap();
        assert_eq!(before["invoices"], serde_json::json!(["inv-2026-11-0001"]));
        // A PAID invoice keeps when it went OVERDUE, but counts no more.
        let settled = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (settled.invoice.status, settled.overdue_at),
            (InvoiceStatus::Paid, Some(overdue))
        );
        assert!(
            store
                .suspension_candidates(pay, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn the_last_unpaid_invoice_lifts_a_suspension_and_cancelling_counts() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let issued = t("2026-12-02T00:00:00Z");
        let second = t("2027-01-02T00:00:00Z");
        finalized(&*store, &a.id, "inv-2026-11-0001", 0, issued).await;
        failed_round(&*store, &a.id, "inv-2026-11-0001", issued, InvoiceStatus::Overdue).await;
        finalized(&*store, &a.id, "inv-2026-12-0002", 1, second).await;
        failed_round(&*store, &a.id, "inv-2026-12-0002", second, InvoiceStatus::Overdue).await;
        let now = t("2027-01-20T00:00:00Z");
        // Only what is OVERDUE since the moment suspends.
        let s = store
            .suspend_tenant(&a.id, issued, "tollgate/dunning", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.invoices, names(&["inv-2026-11-0001"]));
        // Both count until paid: cancelling one leaves the suspension.
        assert_eq!(store.overdue_invoices(&a.id).await.unwrap().len(), 2);
        store
            .set_invoice_status(
                &a.id,
                &"inv-2026-11-0001".into(),
                InvoiceStatus::CANCELLABLE,
                InvoiceStatus::Cancelled,
                "operator",
                now,
            )
            .await
            .unwrap();
        assert!(store.tenant(&a.id).await.unwrap().unwrap().suspension.is_some());
        store
            .set_invoice_status(
                &a.id,
                &"inv-2026-12-0002".into(),
                InvoiceStatus::CANCELLABLE,
                InvoiceStatus::Cancelled,
                "operator",
                now,
            )
            .await
            .unwrap();
        assert_eq!(store.tenant(&a.id).await.unwrap().unwrap().suspension, None);
        let entry = &store.audit(Some(&a.id), 1).await.unwrap()[0];
        assert_eq!(
            (entry.action.as_str(), entry.actor.as_str()),
            ("tenant.reinstated", "operator")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(entry.after.as_deref().unwrap()).unwrap(),
            serde_json::json!({"reason": "cancelled", "invoice": "inv-2026-12-0002"})
        );
        // Paying or cancelling without a suspension writes nothing more.
        assert_eq!(
            store
                .audit(Some(&a.id), 50)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.action == "tenant.reinstated")
                .count(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_reinstatement_by_hand_forgives_what_is_overdue_until_the_next_invoice() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let issued = t("2026-12-02T00:00:00Z");
        finalized(&*store, &a.id, "inv-2026-11-0001", 0, issued).await;
        failed_round(&*store, &a.id, "inv-2026-11-0001", issued, InvoiceStatus::Overdue).await;
        assert!(matches!(
            store.reinstate_tenant(&a.id, "operator", issued).await,
            Err(StoreError::Conflict(Reason::TenantNotSuspended, _))
        ));
        let now = t("2026-12-20T00:00:00Z");
        store
            .suspend_tenant(&a.id, issued, "tollgate/dunning", now)
            .await
            .unwrap()
            .unwrap();
        let reinstated_at = t("2026-12-21T00:00:00Z");
        let after = store
            .reinstate_tenant(&a.id, "operator", reinstated_at)
            .await
            .unwrap();
        assert_eq!((after.name.as_str(), after.suspension), ("acme", None));
        assert_eq!(
            actions(&*store, &a.id, 1).await,
            [("tenant.reinstated".to_owned(), "operator".to_owned())]
        );
        // The forgiven invoice is still unpaid, but suspends no more.
        let later = t("2027-02-01T00:00:00Z");
        assert!(
            store
                .suspension_candidates(later, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .suspend_tenant(&a.id, later, "tollgate/dunning", later)
                .await
                .unwrap(),
            None
        );
        assert!(store.overdue_invoices(&a.id).await.unwrap().is_empty());
        let forgiven = store
            .invoice(&a.id, &"inv-2026-11-0001".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(forgiven.invoice.status, InvoiceStatus::Overdue);
        assert!(matches!(
            store.reinstate_tenant(&a.id, "operator", later).await,
            Err(StoreError::Conflict(Reason::TenantNotSuspended, _))
        ));
        // The next invoice to go OVERDUE does suspend, and names itself only.
        let second = t("2027-01-02T00:00:00Z");
        finalized(&*store, &a.id, "inv-2026-12-0002", 1, second).await;
        failed_round(&*store, &a.id, "inv-2026-12-0002", second, InvoiceStatus::Overdue).await;
        assert_eq!(
            store.suspension_candidates(second, None, 10).await.unwrap(),
            std::slice::from_ref(&a.id)
        );
        let s = store
            .suspend_tenant(&a.id, second, "tollgate/dunning", later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.invoices, names(&["inv-2026-12-0002"]));
        // Paying that one lifts it, the forgiven one notwithstanding.
        store
            .schedule_unpaid_charges(&a.id, "token/t1", later)
            .await
            .unwrap();
        // Both are due again; the first is charged first (oldest), and fails.
        failed_round(&*store, &a.id, "inv-2026-11-0001", later, InvoiceStatus::Overdue).await;
        paid(&*store, &a.id, "inv-2026-12-0002", later).await;
        assert_eq!(store.tenant(&a.id).await.unwrap().unwrap().suspension, None);
    })
    .await;
}

#[tokio::test]
async fn charging_again_takes_unpaid_invoices_no_one_holds() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let issued = t("2026-12-02T00:00:00Z");
        // An OVERDUE invoice, one ISSUED waiting for its next round, one ISSUED
        // due now, one PAID.
        finalized(&*store, &a.id, "inv-2026-09-0001", 0, issued).await;
        failed_round(&*store, &a.id, "inv-2026-09-0001", issued, InvoiceStatus::Overdue).await;
        finalized(&*store, &a.id, "inv-2026-10-0002", 1, issued).await;
        failed_round(&*store, &a.id, "inv-2026-10-0002", issued, InvoiceStatus::Issued).await;
        finalized(&*store, &a.id, "inv-2026-11-0003", 2, issued).await;
        paid(&*store, &a.id, "inv-2026-11-0003", issued).await;
        let now = t("2026-12-02T06:00:00Z");
        finalized(&*store, &a.id, "inv-2026-12-0004", 3, now).await;
        assert_eq!(
            store
                .schedule_unpaid_charges(&a.id, "token/t1", now)
                .await
                .unwrap(),
            names(&["inv-2026-09-0001", "inv-2026-10-0002"])
        );
        for name in ["inv-2026-09-0001", "inv-2026-10-0002", "inv-2026-12-0004"] {
            let i = store.invoice(&a.id, &name.into()).await.unwrap().unwrap();
            assert_eq!(
                (i.invoice.status, i.next_charge_at),
                (InvoiceStatus::Issued, Some(now)),
                "{name}"
            );
        }
        // One whose attempt is not settled (a worker stopped while asking the
        // provider) is left to the charge job, which settles it first.
        let held = store.claim_charge("w", now, now + LEASE).await.unwrap().unwrap();
        assert_eq!(held.invoice.name.as_str(), "inv-2026-09-0001");
        let unsettled = attempt("inv-2026-09-0001/2", "inv-2026-09-0001", held.attempts + 1, now);
        store.begin_charge(&a.id, "w", &unsettled).await.unwrap();
        store
            .end_charge_round(
                &a.id,
                &held.invoice.name,
                "w",
                &RoundEnd {
                    attempts: held.attempts + 1,
                    status: InvoiceStatus::Overdue,
                    next_charge_at: None,
                },
                now,
            )
            .await
            .unwrap();
        let later = now + SignedDuration::from_mins(1);
        assert!(
            store
                .schedule_unpaid_charges(&a.id, "token/t1", later)
                .await
                .unwrap()
                .is_empty(),
            "the others are due already"
        );
        let untouched = store.invoice(&a.id, &held.invoice.name).await.unwrap().unwrap();
        assert_eq!(
            (untouched.invoice.status, untouched.next_charge_at),
            (InvoiceStatus::Overdue, None)
        );
        // Nothing unpaid: nothing to do.
        let b = tenant(&*store, "bravo").await;
        assert!(
            store
                .schedule_unpaid_charges(&b.id, "token/t2", later)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn blocked_reservations_change_nothing_but_repeats_still_replay() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let spec = QuotaSpec::default();
        let ids: Vec<tollgate_domain::ids::RequestId> = ["r1", "r2"]
            .into_iter()
            .map(tollgate_domain::ids::RequestId::new)
            .collect();
        let reserve = |id: usize, blocked: bool| UsageChange {
            tenant_id: &a.id,
            family: KeyFamily::Object,
            key: "site",
            op: UsageOp::Reserve { amount: 1 },
            request_id: Some(&ids[id]),
            default_quota: &spec,
            now: t("2026-11-10T00:00:00Z"),
            block_reservations: blocked,
        };
        let first = store.change_usage(&reserve(0, false)).await.unwrap();
        let UsageOutcome::Applied(state) = first else {
            panic!("{first:?}");
        };
        assert_eq!(state.current, 1);
        assert_eq!(
            store.change_usage(&reserve(0, true)).await.unwrap(),
            UsageOutcome::Replayed(state)
        );
        assert_eq!(
            store.change_usage(&reserve(1, true)).await.unwrap(),
            UsageOutcome::Blocked
        );
        // Nothing was counted or remembered: once unblocked the same id counts.
        let used: Vec<i64> = store.usage(&a.id).await.unwrap().iter().map(|u| u.used).collect();
        assert_eq!(used, [1]);
        assert_eq!(
            store.change_usage(&reserve(1, false)).await.unwrap(),
            UsageOutcome::Applied(UsageState {
                limit: state.limit,
                current: 2
            })
        );
        // Releases and reconciliations are never blocked.
        let release = UsageChange {
            op: UsageOp::Release { amount: 1 },
            request_id: None,
            ..reserve(0, true)
        };
        assert!(matches!(
            store.change_usage(&release).await.unwrap(),
            UsageOutcome::Applied(UsageState { current: 1, .. })
        ));
    })
    .await;
}

/// A suspension racing the payment of the invoice it is for, through two
/// store handles: whichever commits second sees the other, so a PAID
/// invoice never leaves its tenant suspended.
#[tokio::test]
async fn a_suspension_and_the_payment_it_races_never_leave_a_paid_tenant_suspended() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let other = open(&db).await;
        let issued = t("2026-12-02T00:00:00Z");
        let pay = t("2026-12-30T00:00:00Z");
        let mut tenants = Vec::new();
        for i in 0..12 {
            let a = tenant(&*store, &format!("t{i}")).await;
            finalized(&*store, &a.id, "inv-2026-11-0001", 0, issued).await;
            failed_round(&*store, &a.id, "inv-2026-11-0001", issued, InvoiceStatus::Overdue).await;
            store
                .schedule_unpaid_charges(&a.id, "token/t", pay)
                .await
                .unwrap();
            tenants.push(a);
        }
        for _ in &tenants {
            let claimed = store.claim_charge("w", pay, pay + LEASE).await.unwrap().unwrap();
            let a = tenants.iter().find(|t| t.id == claimed.tenant_id).unwrap();
            let c = attempt(&format!("{}/2", a.id), "inv-2026-11-0001", 2, pay);
            store.begin_charge(&a.id, "w", &c).await.unwrap();
            let ok = ChargeRecord {
                outcome: ChargeOutcome::Succeeded,
                reference: Some("ch".into()),
                ..c
            };
            let (suspended, settled) = tokio::join!(
                other.suspend_tenant(&a.id, issued, "tollgate/dunning", pay),
                store.settle_charge(&a.id, "w", &ok, Some(InvoiceStatus::Paid), pay),
            );
            settled.unwrap();
            suspended.unwrap();
            let inv = store
                .invoice(&a.id, &"inv-2026-11-0001".into())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(inv.invoice.status, InvoiceStatus::Paid);
            assert_eq!(
                store.tenant(&a.id).await.unwrap().unwrap().suspension,
                None,
                "{}",
                a.name
            );
        }
    })
    .await;
}
