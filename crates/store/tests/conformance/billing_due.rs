//! The billing due-date index (invoicing): when each tenant next has a
//! period to close. New tenants are due at once (the epoch: work it out),
//! pages come earliest first, a date moves only from the version it was read
//! at, and the migration makes every existing tenant due once.

use jiff::Timestamp;
use tollgate_domain::ids::TenantId;
use tollgate_store::{BillingDue, Store};
use tollgate_testkit::each_backend;

use crate::{open, raw_pool, t, tenant};

async fn due(store: &dyn Store, tenant_id: &TenantId) -> BillingDue {
    store
        .billing_due(tenant_id)
        .await
        .unwrap()
        .expect("every tenant has a due date")
}

fn ids(page: &[BillingDue]) -> Vec<&str> {
    page.iter().map(|d| d.tenant_id.as_str()).collect()
}

#[tokio::test]
async fn new_tenants_are_due_at_once_and_pages_come_earliest_first() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let mut made = Vec::new();
        for n in ["acme", "bravo", "charlie"] {
            made.push(tenant(&*store, n).await.id);
        }
        for id in &made {
            let d = due(&*store, id).await;
            assert_eq!((d.due_at, d.version), (Timestamp::UNIX_EPOCH, 0));
        }
        let mut by_id = made.clone();
        by_id.sort();
        let all = store
            .due_tenants(t("2026-11-10T00:00:00Z"), None, 10)
            .await
            .unwrap();
        assert_eq!(ids(&all), by_id, "equal dates come by tenant id");
        assert_eq!(
            store.billing_due(&TenantId::new("no-such-tenant")).await.unwrap(),
            None
        );

        // acme's first period closes on Dec 1, bravo's … on Nov 20.
        let (a, b, c) = (&made[0], &made[1], &made[2]);
        let read = due(&*store, a).await;
        assert!(
            store
                .set_billing_due(&read, t("2026-12-01T00:00:00Z"))
                .await
                .unwrap()
        );
        // The date it read is gone: a second writer from it changes nothing.
        assert!(
            !store
                .set_billing_due(&read, t("2027-01-01T00:00:00Z"))
                .await
                .unwrap()
        );
        let moved = due(&*store, a).await;
        assert_eq!((moved.due_at, moved.version), (t("2026-12-01T00:00:00Z"), 1));
        let read_b = due(&*store, b).await;
        store
            .set_billing_due(&read_b, t("2026-11-20T00:00:00Z"))
            .await
            .unwrap();

        let before = |at: &'static str| {
            let store = store.clone();
            async move { store.due_tenants(t(at), None, 10).await.unwrap() }
        };
        assert_eq!(ids(&before("2026-11-19T23:59:59Z").await), [c.as_str()]);
        assert_eq!(ids(&before("2026-11-20T00:00:00Z").await), [c.as_str(), b]);
        assert_eq!(ids(&before("2026-12-01T00:00:00Z").await), [c.as_str(), b, a]);

        // Pages of two, each after the last of the one before.
        let end = t("2027-01-01T00:00:00Z");
        let first = store.due_tenants(end, None, 2).await.unwrap();
        assert_eq!(ids(&first), [c.as_str(), b]);
        let second = store.due_tenants(end, first.last(), 2).await.unwrap();
        assert_eq!(ids(&second), [a.as_str()]);
        assert_eq!(second[0].due_at, t("2026-12-01T00:00:00Z"));
        assert!(store.due_tenants(end, second.last(), 2).await.unwrap().is_empty());
    })
    .await;
}

/// A database migrated from before the index: every tenant is due once, so
/// the first period close works each one out.
#[tokio::test]
async fn the_migration_makes_every_existing_tenant_due_once() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let read = due(&*store, &a.id).await;
        store
            .set_billing_due(&read, t("2026-12-01T00:00:00Z"))
            .await
            .unwrap();
        // Back to the schema before migration 9, then open again.
        let raw = raw_pool(&db).await;
        for sql in [
            "DROP TABLE billing_due",
            "DELETE FROM _sqlx_migrations WHERE version = 9",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&raw)
                .await
                .unwrap();
        }
        raw.close().await;
        let reopened = open(&db).await;
        for id in [&a.id, &b.id] {
            let d = due(&*reopened, id).await;
            assert_eq!((d.due_at, d.version), (Timestamp::UNIX_EPOCH, 0));
        }
        assert_eq!(
            reopened
                .due_tenants(t("2026-11-01T00:00:00Z"), None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    })
    .await;
}
