//! Plan transitions: one open per tenant, decisions, leases, and an atomic
//! completion that either fully happens or leaves the tenant as it was.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::Reason;
use tollgate_domain::catalog::Catalog;
use tollgate_domain::ids::TenantId;
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::TenantType;
use tollgate_domain::transition::{AddonChange, PlanTransition, TransitionPayload, TransitionState};
use tollgate_store::{StoreError, TransitionFilter, TransitionOutcome};
use tollgate_testkit::each_backend;

use crate::payments::method;
use crate::{open, t, tenant};

fn transition(tenant_id: &TenantId, to: &str, state: TransitionState, at: Timestamp) -> PlanTransition {
    PlanTransition {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.clone(),
        from_plan: "free".into(),
        to_plan: to.into(),
        catalog_version: 1,
        state,
        payload: TransitionPayload {
            payment_provider_token: Some("tok-visa".into()),
            ..Default::default()
        },
        requested_by: "token-1".into(),
        created_at: at,
        updated_at: at,
        reason: None,
    }
}

fn outcome(tr: &PlanTransition, owner: &str, now: Timestamp) -> TransitionOutcome {
    let plan = Catalog::builtin().plan(&tr.to_plan).unwrap().clone();
    TransitionOutcome {
        transition_id: tr.id.clone(),
        lease_owner: owner.into(),
        tenant_id: tr.tenant_id.clone(),
        now,
        payment_method: Some(method("pm-visa")),
        subscription: Subscription::new(
            uuid::Uuid::new_v4().to_string(),
            tr.tenant_id.clone(),
            &plan,
            1,
            now,
        ),
        tenant_type: plan.tenant_type,
        domain: Some("acme.com".into()),
        contacts: None,
        addons: AddonChange {
            allowed: plan.allowed_addons.clone(),
            subscribe: vec!["f5xc_appstack_standard".into()],
            unsubscribe: Vec::new(),
        },
    }
}

#[tokio::test]
async fn one_open_transition_per_tenant() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let now = t("2026-11-05T00:00:00Z");
        let first = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&first, "token-1").await.unwrap();
        let second = store
            .create_transition(
                &transition(&a.id, "individual", TransitionState::WaitingForApproval, now),
                "token-1",
            )
            .await;
        assert!(
            matches!(
                second,
                Err(StoreError::Conflict(Reason::TransitionAlreadyOpen, _))
            ),
            "{second:?}"
        );
        store
            .create_transition(
                &transition(&b.id, "team", TransitionState::Creating, now),
                "token-2",
            )
            .await
            .unwrap();
        assert_eq!(store.transition(&first.id).await.unwrap(), Some(first.clone()));
        let only_a = store
            .transitions(&TransitionFilter {
                tenant_id: Some(a.id.clone()),
                state: None,
            })
            .await
            .unwrap();
        assert_eq!(only_a, vec![first.clone()]);
        let creating = store
            .transitions(&TransitionFilter {
                tenant_id: None,
                state: Some(TransitionState::Creating),
            })
            .await
            .unwrap();
        assert_eq!(creating.len(), 2);
        // Once it ends, a new one may start.
        let lease = now + SignedDuration::from_mins(5);
        let claimed = store
            .claim_transition("w1", now, lease)
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        store
            .fail_transition(&claimed.id, "w1", "card declined", now)
            .await
            .unwrap();
        let failed = store.transition(&claimed.id).await.unwrap().unwrap();
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (TransitionState::Failed, Some("card declined"))
        );
        store
            .create_transition(
                &transition(&claimed.tenant_id, "individual", TransitionState::Creating, now),
                "t",
            )
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn approval_moves_waiting_transitions_only() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-05T00:00:00Z");
        let waiting = transition(&a.id, "organization", TransitionState::WaitingForApproval, now);
        store.create_transition(&waiting, "token-1").await.unwrap();
        // Nothing to claim while it waits.
        assert_eq!(
            store
                .claim_transition("w1", now, now + SignedDuration::from_mins(5))
                .await
                .unwrap()
                .map(|l| l.transition),
            None
        );
        let approved = store
            .decide_transition(&waiting.id, true, None, "operator", now)
            .await
            .unwrap();
        assert_eq!(approved.state, TransitionState::Creating);
        let again = store
            .decide_transition(&waiting.id, false, Some("no"), "operator", now)
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(Reason::TransitionWrongState, ref m)) if m.contains("is being executed, not waiting for approval")),
            "{again:?}"
        );
        let missing = store.decide_transition("nope", true, None, "operator", now).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))));
        let b = tenant(&*store, "bravo").await;
        let rejected_one = transition(&b.id, "organization", TransitionState::WaitingForApproval, now);
        store.create_transition(&rejected_one, "token-2").await.unwrap();
        let rejected = store
            .decide_transition(
                &rejected_one.id,
                false,
                Some("domain not verified"),
                "operator",
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            (rejected.state, rejected.reason.as_deref()),
            (TransitionState::Failed, Some("domain not verified"))
        );
        let trail = store.audit(Some(&b.id), 10).await.unwrap();
        assert_eq!(
            (trail[0].action.as_str(), trail[0].actor.as_str()),
            ("plan_transition.reject", "operator")
        );
    })
    .await;
}

#[tokio::test]
async fn completing_a_transition_changes_everything_at_once() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        store
            .set_addon(
                &a.id,
                &a.plan,
                "f5xc_synthetic_monitoring_standard",
                true,
                "t",
                t("2026-11-02T00:00:00Z"),
            )
            .await
            .unwrap();
        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        let claimed = store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        assert_eq!(claimed.id, tr.id);
        let done_at = t("2026-11-05T00:01:00Z");
        store
            .complete_transition(&outcome(&tr, "w1", done_at))
            .await
            .unwrap();

        let after = store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!(
            (after.plan.as_str(), after.tenant_type, after.domain.as_deref()),
            ("team", TenantType::Enterprise, Some("acme.com"))
        );
        let subs = store.subscriptions(&a.id).await.unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].plan.as_str(), subs[0].end), ("team", None));
        assert_eq!((subs[1].plan.as_str(), subs[1].end), ("free", Some(done_at)));
        let methods = store.payment_methods(&a.id).await.unwrap();
        assert_eq!(
            (methods[0].name.as_str(), methods[0].role),
            ("pm-visa", PaymentRole::Primary)
        );
        assert_eq!(store.addons(&a.id).await.unwrap(), ["f5xc_appstack_standard"]);
        assert_eq!(
            store.transition(&tr.id).await.unwrap().unwrap().state,
            TransitionState::Finished
        );
        // A finished transition cannot be completed twice.
        let twice = store.complete_transition(&outcome(&tr, "w1", done_at)).await;
        assert!(
            matches!(twice, Err(StoreError::Conflict(Reason::TransitionLeaseLost, _))),
            "{twice:?}"
        );
    })
    .await;
}

/// The closed subscription's last period now ends when the transition
/// completed: the tenant's due date comes down to it (never up), and a period
/// close that read the date before cannot put it back.
#[tokio::test]
async fn completing_a_transition_lowers_the_billing_due_date() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        // The first period close worked out Dec 1 (the end of November).
        let read = store.billing_due(&a.id).await.unwrap().unwrap();
        assert!(
            store
                .set_billing_due(&read, t("2026-12-01T00:00:00Z"))
                .await
                .unwrap()
        );
        let stale = store.billing_due(&a.id).await.unwrap().unwrap();

        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .unwrap();
        let done_at = t("2026-11-05T00:01:00Z");
        store
            .complete_transition(&outcome(&tr, "w1", done_at))
            .await
            .unwrap();
        let lowered = store.billing_due(&a.id).await.unwrap().unwrap();
        assert_eq!(lowered.due_at, done_at);
        assert!(
            !store
                .set_billing_due(&stale, t("2026-12-01T00:00:00Z"))
                .await
                .unwrap(),
            "a close that read the date before the transition loses"
        );
        assert_eq!(store.billing_due(&a.id).await.unwrap(), Some(lowered.clone()));

        // An earlier date stays (here: not worked out yet), but its version
        // moves all the same.
        let b = tenant(&*store, "bravo").await;
        let stale = store.billing_due(&b.id).await.unwrap().unwrap();
        let tr = transition(&b.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .unwrap();
        store
            .complete_transition(&outcome(&tr, "w1", done_at))
            .await
            .unwrap();
        let kept = store.billing_due(&b.id).await.unwrap().unwrap();
        assert_eq!(kept.due_at, jiff::Timestamp::UNIX_EPOCH);
        assert!(kept.version > stale.version);
        assert!(
            !store
                .set_billing_due(&stale, t("2026-12-01T00:00:00Z"))
                .await
                .unwrap()
        );
    })
    .await;
}

/// A completion that fails part-way (here: the new subscription's id is taken)
/// leaves the tenant exactly as it was and the transition claimable again.
#[tokio::test]
async fn a_failed_completion_leaves_the_tenant_as_it_was() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let before_subs = store.subscriptions(&a.id).await.unwrap();
        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        let mut broken = outcome(&tr, "w1", now);
        broken.subscription.id = before_subs[0].id.clone();
        let due_before = store.billing_due(&a.id).await.unwrap();
        assert!(store.complete_transition(&broken).await.is_err());

        let unchanged = store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!(unchanged, a);
        assert_eq!(store.subscriptions(&a.id).await.unwrap(), before_subs);
        assert!(store.payment_methods(&a.id).await.unwrap().is_empty());
        assert_eq!(store.billing_due(&a.id).await.unwrap(), due_before);
        assert_eq!(
            store.transition(&tr.id).await.unwrap().unwrap().state,
            TransitionState::Creating
        );
    })
    .await;
}

/// A worker that stops after claiming (a crash) holds a lease that expires;
/// another worker then takes the transition over and the first can no longer
/// complete it.
#[tokio::test]
async fn an_expired_lease_lets_another_worker_finish() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        let lease = SignedDuration::from_mins(5);
        store
            .claim_transition("crashed", now, now + lease)
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        let during = now + SignedDuration::from_mins(1);
        assert_eq!(
            store
                .claim_transition("w2", during, during + lease)
                .await
                .unwrap()
                .map(|l| l.transition),
            None,
            "the lease is live"
        );
        let later = now + SignedDuration::from_mins(6);
        let taken = store
            .claim_transition("w2", later, later + lease)
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        assert_eq!(taken.id, tr.id);
        let stale = store.complete_transition(&outcome(&tr, "crashed", later)).await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(Reason::TransitionLeaseLost, _))),
            "{stale:?}"
        );
        store
            .complete_transition(&outcome(&tr, "w2", later))
            .await
            .unwrap();
        assert_eq!(store.tenant_by_name("acme").await.unwrap().unwrap().plan, "team");
    })
    .await;
}

/// An add-on subscribed after the worker computed its outcome, but before it
/// committed, is kept when the new plan allows it.
#[tokio::test]
async fn an_addon_subscribed_during_a_transition_is_kept() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        let outcome = outcome(&tr, "w1", now);
        // Meanwhile, on the old plan, the tenant subscribes an add-on the team plan also allows.
        store
            .set_addon(
                &a.id,
                &a.plan,
                "f5xc_web_app_scanning_standard",
                true,
                "token-1",
                now,
            )
            .await
            .unwrap();
        store.complete_transition(&outcome).await.unwrap();
        assert_eq!(
            store.addons(&a.id).await.unwrap(),
            ["f5xc_appstack_standard", "f5xc_web_app_scanning_standard"]
        );
    })
    .await;
}

/// An add-on change checked against the old plan, arriving after a
/// transition completed, is refused rather than applied to the new plan.
#[tokio::test]
async fn an_addon_change_checked_against_a_plan_the_tenant_left_is_refused() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-05T00:00:00Z");
        let tr = transition(&a.id, "team", TransitionState::Creating, now);
        store.create_transition(&tr, "token-1").await.unwrap();
        store
            .claim_transition("w1", now, now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .map(|l| l.transition)
            .unwrap();
        store.complete_transition(&outcome(&tr, "w1", now)).await.unwrap();
        let before = store.addons(&a.id).await.unwrap();
        let stale = store
            .set_addon(
                &a.id,
                &a.plan,
                "f5xc_web_app_scanning_standard",
                true,
                "token-1",
                now,
            )
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(Reason::PlanChanged, _))),
            "{stale:?}"
        );
        assert_eq!(store.addons(&a.id).await.unwrap(), before, "nothing changed");
        assert!(
            store
                .set_addon(
                    &a.id,
                    &"team".into(),
                    "f5xc_web_app_scanning_standard",
                    true,
                    "token-1",
                    now
                )
                .await
                .unwrap()
        );
    })
    .await;
}
