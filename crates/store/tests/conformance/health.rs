//! Health: the engine's name, whether the database answers and takes
//! writes, and what the metrics read: the pools and the jobs' backlog (the
//! oldest billing period due for closing, the oldest due charge round).

use jiff::SignedDuration;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_store::{BillingDue, ChargeOutcome, ChargeRecord};
use tollgate_testkit::each_backend;

use crate::invoicing::{LEASE, attempt, invoice};
use crate::{open, t, tenant};

#[tokio::test]
async fn a_working_database_answers_and_is_ready() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let expected = if db.sqlite_dir().is_some() {
            "sqlite"
        } else {
            "postgres"
        };
        assert_eq!(store.backend(), expected);
        store.ping().await.unwrap();
        // The readiness probe writes its heartbeat each time.
        store.ready(t("2026-11-01T00:00:00Z")).await.unwrap();
        store.ready(t("2026-11-01T00:00:05Z")).await.unwrap();
        store.ping().await.unwrap();
    })
    .await;
}

/// A caller holding a concrete engine's store rather than `dyn Store`
/// brings the aggregate traits into scope with the prelude.
#[tokio::test]
async fn a_concrete_store_is_used_through_the_prelude() {
    use tollgate_store::prelude::*;
    each_backend(|db| async move {
        let now = t("2026-11-01T00:00:00Z");
        let options = tollgate_store::StoreOptions::default();
        match (db.sqlite_dir(), db.postgres_url()) {
            (Some(dir), _) => {
                let store = tollgate_store::sqlite::SqlStore::open(dir, &options)
                    .await
                    .unwrap();
                assert_eq!(store.backend(), "sqlite");
                store.ready(now).await.unwrap();
                assert!(store.tenants().await.unwrap().is_empty());
            }
            (None, Some(url)) => {
                let store = tollgate_store::postgres::SqlStore::open(url, &options)
                    .await
                    .unwrap();
                assert_eq!(store.backend(), "postgres");
                store.ready(now).await.unwrap();
                assert!(store.tenants().await.unwrap().is_empty());
            }
            (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
        }
    })
    .await;
}

/// The pools are what the engine has: SQLite a read pool and its one
/// writer connection, PostgreSQL one pool for both.
#[tokio::test]
async fn the_pools_are_counted_without_a_query() {
    each_backend(|db| async move {
        let store = open(&db).await;
        store.ping().await.unwrap();
        let pools = store.pools();
        let names: Vec<&str> = pools.iter().map(|p| p.pool).collect();
        if db.sqlite_dir().is_some() {
            assert_eq!(names, ["read", "write"]);
            assert_eq!(pools[1].max, 1, "one writer connection");
        } else {
            assert_eq!(names, ["shared"]);
        }
        for p in &pools {
            assert!(p.max >= 1 && p.in_use + p.idle <= p.max, "{p:?}");
        }
        // The ping opened a connection (in use or, once sqlx has taken it
        // back, idle).
        assert!(pools[0].in_use + pools[0].idle >= 1, "{pools:?}");
    })
    .await;
}

/// The oldest period due for closing counts only known dates (a new
/// tenant's epoch is "work it out", not years of lag); the oldest due
/// charge only ISSUED invoices whose round is due, until the round settles.
#[tokio::test]
async fn the_oldest_due_period_and_charge_are_found() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        assert_eq!(store.oldest_due_period(now).await.unwrap(), None);
        assert_eq!(store.oldest_due_charge(now).await.unwrap(), None);

        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        assert_eq!(
            store.oldest_due_period(now).await.unwrap(),
            None,
            "epoch dates are not known yet"
        );
        let set = |id, at| {
            let store = store.clone();
            async move {
                let read: BillingDue = store.billing_due(id).await.unwrap().unwrap();
                assert!(store.set_billing_due(&read, t(at)).await.unwrap());
            }
        };
        set(&a.id, "2026-12-01T00:00:00Z").await;
        set(&b.id, "2026-11-20T00:00:00Z").await;
        let oldest = |before| {
            let store = store.clone();
            async move { store.oldest_due_period(t(before)).await.unwrap() }
        };
        assert_eq!(
            oldest("2026-12-02T00:00:00Z").await,
            Some(t("2026-11-20T00:00:00Z"))
        );
        assert_eq!(
            oldest("2026-11-20T00:00:00Z").await,
            Some(t("2026-11-20T00:00:00Z"))
        );
        assert_eq!(oldest("2026-11-19T23:59:59Z").await, None);
        // bravo closed: its next period is due on Dec 20.
        set(&b.id, "2026-12-20T00:00:00Z").await;
        assert_eq!(
            oldest("2026-12-02T00:00:00Z").await,
            Some(t("2026-12-01T00:00:00Z"))
        );

        // acme's round is due in an hour, bravo's two hours ago.
        let hour = SignedDuration::from_hours(1);
        let inv_a = invoice(&*store, &a.id, "inv-2026-11-0001", 0, 2500).await;
        let inv_b = invoice(&*store, &b.id, "inv-2026-11-0001", 0, 2500).await;
        store
            .finalize_invoice(&a.id, &inv_a, Some(now + hour), "test", now)
            .await
            .unwrap();
        store
            .finalize_invoice(&b.id, &inv_b, Some(now - hour * 2), "test", now)
            .await
            .unwrap();
        assert_eq!(store.oldest_due_charge(now).await.unwrap(), Some(now - hour * 2));
        assert_eq!(store.oldest_due_charge(now - hour * 3).await.unwrap(), None);
        assert_eq!(
            store.oldest_due_charge(now + hour).await.unwrap(),
            Some(now - hour * 2)
        );

        // Charging bravo's: leased, it is still waiting; paid, it is not.
        let claimed = store.claim_charge("w1", now, now + LEASE).await.unwrap().unwrap();
        assert_eq!(claimed.tenant_id, b.id);
        assert_eq!(store.oldest_due_charge(now).await.unwrap(), Some(now - hour * 2));
        let c = attempt("k-health", "inv-2026-11-0001", 1, now);
        store.begin_charge(&b.id, "w1", &c).await.unwrap();
        let paid = ChargeRecord {
            outcome: ChargeOutcome::Succeeded,
            ..c
        };
        store
            .settle_charge(&b.id, "w1", &paid, Some(InvoiceStatus::Paid), now)
            .await
            .unwrap();
        assert_eq!(store.oldest_due_charge(now).await.unwrap(), None);
        assert_eq!(
            store.oldest_due_charge(now + hour).await.unwrap(),
            Some(now + hour)
        );
    })
    .await;
}
