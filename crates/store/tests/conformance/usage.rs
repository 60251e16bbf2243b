use std::sync::Arc;
use tollgate_domain::ids::TenantId;

use tollgate_domain::Reason;
use tollgate_domain::catalog::Catalog;
use tollgate_domain::quota::{KeyFamily, Limit, QuotaSpec};
use tollgate_store::{Store, StoreError, UsageChange, UsageCount, UsageOp, UsageOutcome, UsageState};
use tollgate_testkit::each_backend;

use crate::quotas::quota;
use crate::{open, t, tenant};

fn change<'a>(
    tenant: &'a TenantId,
    key: &'a str,
    op: UsageOp,
    request_id: Option<&'a str>,
    default: &'a QuotaSpec,
) -> UsageChange<'a> {
    UsageChange {
        tenant_id: tenant,
        family: KeyFamily::Object,
        key,
        op,
        // Leaked: a test's few ids live as long as the test binary.
        request_id: request_id.map(|r| &*Box::leak(Box::new(tollgate_domain::ids::RequestId::new(r)))),
        default_quota: default,
        now: t("2026-11-10T00:00:00Z"),
        block_reservations: false,
    }
}

fn state(limit: i64, current: i64) -> UsageState {
    UsageState {
        limit: Limit::from_raw(limit),
        current,
    }
}

#[tokio::test]
async fn reservations_stop_at_the_effective_limit() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let default = individual_quota(); // site: 3
        let reserve = |n, id| change(&a.id, "site", UsageOp::Reserve { amount: n }, Some(id), &default);
        assert_eq!(
            store.change_usage(&reserve(2, "r1")).await.unwrap(),
            UsageOutcome::Applied(state(3, 2))
        );
        assert_eq!(
            store.change_usage(&reserve(1, "r2")).await.unwrap(),
            UsageOutcome::Applied(state(3, 3))
        );
        assert_eq!(
            store.change_usage(&reserve(1, "r3")).await.unwrap(),
            UsageOutcome::Refused(state(3, 3))
        );
        // A refused request id is not consumed: once there is room it succeeds.
        store
            .change_usage(&change(
                &a.id,
                "site",
                UsageOp::Release { amount: 1 },
                Some("x1"),
                &default,
            ))
            .await
            .unwrap();
        assert_eq!(
            store.change_usage(&reserve(1, "r3")).await.unwrap(),
            UsageOutcome::Applied(state(3, 3))
        );
        assert_eq!(
            store.usage(&a.id).await.unwrap(),
            vec![UsageCount {
                family: KeyFamily::Object,
                key: "site".into(),
                used: 3
            }]
        );
    })
    .await;
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_answer_and_changes_nothing() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let default = individual_quota();
        let first = change(
            &a.id,
            "virtual_host",
            UsageOp::Reserve { amount: 2 },
            Some("req-1"),
            &default,
        );
        assert_eq!(
            store.change_usage(&first).await.unwrap(),
            UsageOutcome::Applied(state(25, 2))
        );
        store
            .change_usage(&change(
                &a.id,
                "virtual_host",
                UsageOp::Reserve { amount: 1 },
                Some("req-2"),
                &default,
            ))
            .await
            .unwrap();
        assert_eq!(
            store.change_usage(&first).await.unwrap(),
            UsageOutcome::Replayed(state(25, 2))
        );
        assert_eq!(store.usage(&a.id).await.unwrap()[0].used, 3);
        // The same id with a different request is a conflict, not a replay.
        let other = change(
            &a.id,
            "virtual_host",
            UsageOp::Reserve { amount: 5 },
            Some("req-1"),
            &default,
        );
        assert!(matches!(
            store.change_usage(&other).await,
            Err(StoreError::Conflict(Reason::RequestIdReused, _))
        ));
        // Ids are per operation: a release may reuse the reservation's id.
        let release = change(
            &a.id,
            "virtual_host",
            UsageOp::Release { amount: 2 },
            Some("req-1"),
            &default,
        );
        assert_eq!(
            store.change_usage(&release).await.unwrap(),
            UsageOutcome::Applied(state(25, 1))
        );
        assert_eq!(
            store.change_usage(&release).await.unwrap(),
            UsageOutcome::Replayed(state(25, 1))
        );
        assert_eq!(store.usage(&a.id).await.unwrap()[0].used, 1);
        // Ids are per tenant.
        let b = tenant(&*store, "bravo").await;
        let b_first = change(
            &b.id,
            "virtual_host",
            UsageOp::Reserve { amount: 2 },
            Some("req-1"),
            &default,
        );
        assert_eq!(
            store.change_usage(&b_first).await.unwrap(),
            UsageOutcome::Applied(state(25, 2))
        );
    })
    .await;
}

#[tokio::test]
async fn release_stops_at_zero_and_reconcile_sets_the_count() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let default = individual_quota();
        let release = change(&a.id, "site", UsageOp::Release { amount: 5 }, None, &default);
        assert_eq!(
            store.change_usage(&release).await.unwrap(),
            UsageOutcome::Applied(state(3, 0))
        );
        // Reconcile records the truth even past the limit; reservations then stop.
        let reconcile = change(&a.id, "site", UsageOp::Reconcile { current: 7 }, None, &default);
        assert_eq!(
            store.change_usage(&reconcile).await.unwrap(),
            UsageOutcome::Applied(state(3, 7))
        );
        let reserve = change(&a.id, "site", UsageOp::Reserve { amount: 1 }, None, &default);
        assert_eq!(
            store.change_usage(&reserve).await.unwrap(),
            UsageOutcome::Refused(state(3, 7))
        );
    })
    .await;
}

#[tokio::test]
async fn quota_objects_override_the_default_and_disabled_ones_do_not() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let default = individual_quota(); // virtual_host: 25
        let reserve = |n| {
            change(
                &a.id,
                "virtual_host",
                UsageOp::Reserve { amount: n },
                None,
                &default,
            )
        };
        store
            .insert_quota(&a.id, &quota("tight", 2), "test")
            .await
            .unwrap();
        store
            .insert_quota(&a.id, &quota("loose", 40), "test")
            .await
            .unwrap();
        assert_eq!(
            store.change_usage(&reserve(2)).await.unwrap(),
            UsageOutcome::Applied(state(2, 2))
        );
        assert_eq!(
            store.change_usage(&reserve(1)).await.unwrap(),
            UsageOutcome::Refused(state(2, 2))
        );
        let mut tight = quota("tight", 2);
        tight.meta.disable = true;
        store.replace_quota(&a.id, &tight, "test").await.unwrap();
        assert_eq!(
            store.change_usage(&reserve(30)).await.unwrap(),
            UsageOutcome::Applied(state(40, 32))
        );
        store
            .delete_quota(&a.id, "system", "loose", "test", t("2026-11-05T00:00:00Z"))
            .await
            .unwrap();
        // Back on the default of 25, already exceeded.
        assert_eq!(
            store.change_usage(&reserve(1)).await.unwrap(),
            UsageOutcome::Refused(state(25, 32))
        );
        // Resources use their own family; the only object setting vcpu (2.5)
        // is disabled, so the default of 16 applies.
        let vcpu = |micros| UsageChange {
            family: KeyFamily::Resource,
            ..change(&a.id, "vcpu", UsageOp::Reserve { amount: micros }, None, &default)
        };
        assert_eq!(
            store.change_usage(&vcpu(2_500_000)).await.unwrap(),
            UsageOutcome::Applied(state(16_000_000, 2_500_000))
        );
        assert_eq!(
            store.change_usage(&vcpu(13_500_001)).await.unwrap(),
            UsageOutcome::Refused(state(16_000_000, 2_500_000))
        );
        assert_eq!(
            store.change_usage(&vcpu(13_500_000)).await.unwrap(),
            UsageOutcome::Applied(state(16_000_000, 16_000_000))
        );
    })
    .await;
}

/// A store handle keeps the quota objects it last read, by the tenant's
/// quota version: a change made through another handle (another replica)
/// is enforced by the next reservation here, in either direction, and a
/// granted request id retried at the limit still gets its first answer.
#[tokio::test]
async fn limits_changed_through_another_handle_apply_to_the_next_change_at_once() {
    each_backend(|db| async move {
        let (here, there) = (open(&db).await, open(&db).await);
        let a = tenant(&*here, "acme").await;
        let default = individual_quota(); // virtual_host: 25
        let reserve = |n, id| {
            change(
                &a.id,
                "virtual_host",
                UsageOp::Reserve { amount: n },
                Some(id),
                &default,
            )
        };
        let release = |n| {
            change(
                &a.id,
                "virtual_host",
                UsageOp::Release { amount: n },
                None,
                &default,
            )
        };
        there.insert_quota(&a.id, &quota("q", 10), "test").await.unwrap();
        // `here` reads (and keeps) the objects with limit 10.
        assert_eq!(
            here.change_usage(&reserve(4, "r1")).await.unwrap(),
            UsageOutcome::Applied(state(10, 4))
        );
        // Lowered elsewhere to 4: refused here at once, with the new limit.
        there.replace_quota(&a.id, &quota("q", 4), "test").await.unwrap();
        assert_eq!(
            here.change_usage(&reserve(1, "r2")).await.unwrap(),
            UsageOutcome::Refused(state(4, 4))
        );
        // A granted id retried at the limit is replayed, not refused.
        assert_eq!(
            here.change_usage(&reserve(4, "r1")).await.unwrap(),
            UsageOutcome::Replayed(state(10, 4))
        );
        // Raised elsewhere past what a first check by the old limit would
        // allow (an amount above 4 by itself): granted here.
        there.replace_quota(&a.id, &quota("q", 20), "test").await.unwrap();
        assert_eq!(
            here.change_usage(&reserve(6, "r3")).await.unwrap(),
            UsageOutcome::Applied(state(20, 10))
        );
        // A release reports the limit in force.
        there
            .delete_quota(&a.id, "system", "q", "test", t("2026-11-05T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            here.change_usage(&release(1)).await.unwrap(),
            UsageOutcome::Applied(state(25, 9))
        );
        // The same id for another change is a conflict, and changes nothing.
        let err = here.change_usage(&reserve(2, "r3")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(Reason::RequestIdReused, _)),
            "{err:?}"
        );
        assert_eq!(
            here.change_usage(&release(0)).await.unwrap(),
            UsageOutcome::Applied(state(25, 9))
        );
    })
    .await;
}

/// Many concurrent reservations through several independent store handles
/// (on PostgreSQL: separate pools, as separate replicas would have) never
/// take usage past the limit, and every refusal saw a full quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_pass_the_limit() {
    each_backend(|db| async move {
        let stores: Vec<Arc<dyn Store>> = vec![open(&db).await, open(&db).await, open(&db).await];
        let a = tenant(&*stores[0], "acme").await;
        stores[0]
            .insert_quota(&a.id, &quota("limit", 37), "test")
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..120 {
            let store = stores[i % stores.len()].clone();
            let tenant_id = a.id.clone();
            tasks.push(tokio::spawn(async move {
                let default = individual_quota();
                let id = format!("req-{i}");
                let c = change(
                    &tenant_id,
                    "virtual_host",
                    UsageOp::Reserve { amount: 1 },
                    Some(&id),
                    &default,
                );
                store.change_usage(&c).await.unwrap()
            }));
        }
        let mut granted = 0;
        for task in tasks {
            match task.await.unwrap() {
                UsageOutcome::Applied(s) => {
                    assert!(s.current <= 37);
                    granted += 1;
                }
                UsageOutcome::Refused(s) => assert_eq!(s, state(37, 37)),
                UsageOutcome::Replayed(s) => panic!("unexpected replay {s:?}"),
                UsageOutcome::Blocked => panic!("nothing blocks these reservations"),
            }
        }
        assert_eq!(granted, 37);
        assert_eq!(stores[1].usage(&a.id).await.unwrap()[0].used, 37);
    })
    .await;
}

/// Idempotency records are forgotten oldest first, at most `limit` per
/// call; after that the same request id counts again.
#[tokio::test]
async fn expired_request_ids_are_pruned_oldest_first_in_batches() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let default = individual_quota();
        for (id, at) in [
            ("r1", "2026-11-10T00:00:00Z"),
            ("r2", "2026-11-10T01:00:00Z"),
            ("r3", "2026-11-10T02:00:00Z"),
        ] {
            let reserve = UsageChange {
                now: t(at),
                ..change(&a.id, "site", UsageOp::Reserve { amount: 1 }, Some(id), &default)
            };
            store.change_usage(&reserve).await.unwrap();
        }
        let before = t("2026-11-10T02:00:00Z");
        assert_eq!(store.prune_quota_requests(before, 1).await.unwrap(), 1);
        assert_eq!(store.prune_quota_requests(before, 10).await.unwrap(), 1);
        assert_eq!(store.prune_quota_requests(before, 10).await.unwrap(), 0);
        // r1 is forgotten: it is a new request, refused at the limit (3);
        // r3 is still remembered and replays its first answer.
        let again = |id| change(&a.id, "site", UsageOp::Reserve { amount: 1 }, Some(id), &default);
        assert_eq!(
            store.change_usage(&again("r1")).await.unwrap(),
            UsageOutcome::Refused(state(3, 3))
        );
        assert_eq!(
            store.change_usage(&again("r3")).await.unwrap(),
            UsageOutcome::Replayed(state(3, 3))
        );
    })
    .await;
}

/// The individual plan's default quota (site: 3, virtual_host: 25, vcpu: 16).
fn individual_quota() -> QuotaSpec {
    Catalog::builtin()
        .plan("individual")
        .unwrap()
        .default_quota
        .clone()
}
