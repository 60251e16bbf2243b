//! Catalogs: the built-in catalog on a new database, published versions, and
//! the bootstrap that gives tenants from before plans a subscription.

use tollgate_domain::catalog::{BUILTIN_TOML, Catalog};
use tollgate_testkit::each_backend;

use crate::{open, raw_pool, t, tenant};

#[tokio::test]
async fn a_new_database_has_the_builtin_catalog_as_version_1() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let v1 = store.catalog(None).await.unwrap().unwrap();
        assert_eq!((v1.version, v1.source_name.as_str()), (1, "builtin"));
        assert_eq!(v1.source, BUILTIN_TOML);
        // Opening again publishes nothing more.
        let again = open(&db).await;
        assert_eq!(again.latest_catalog_version().await.unwrap(), Some(1));
        let publishes = store.audit(None, 10).await.unwrap();
        assert_eq!(
            publishes.iter().filter(|e| e.action == "catalog.publish").count(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn publishing_adds_versions_and_keeps_old_ones() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let v2 = store
            .publish_catalog(
                "format = 1 # v2",
                "mine.toml",
                "operator",
                t("2026-11-03T00:00:00Z"),
            )
            .await
            .unwrap();
        let v3 = store
            .publish_catalog("# v3", "mine.toml", "operator", t("2026-11-04T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!((v2, v3), (2, 3));
        assert_eq!(store.catalog(None).await.unwrap().unwrap().version, 3);
        let old = store.catalog(Some(2)).await.unwrap().unwrap();
        assert_eq!(
            (old.source.as_str(), old.published_by.as_str()),
            ("format = 1 # v2", "operator")
        );
        assert_eq!(store.catalog(Some(9)).await.unwrap(), None);
        let all: Vec<i64> = store
            .catalogs()
            .await
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(all, [1, 2, 3], "every version, oldest first");
        let audit = store.audit(None, 10).await.unwrap();
        assert_eq!(audit[0].action, "catalog.publish");
        assert_eq!(audit[0].target, "catalog/3");
        assert_eq!(audit[0].tenant_id, None);
    })
    .await;
}

#[tokio::test]
async fn tenants_from_before_plans_are_listed_and_adopted_once() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let acme = tenant(&*store, "acme").await;
        // Simulate a tenant created by an older Tollgate, with no plan.
        let raw = raw_pool(&db).await;
        for sql in [
            "DELETE FROM subscriptions",
            "UPDATE tenants SET plan = NULL, catalog_version = NULL",
            // A due date from before it lost its subscription.
            "UPDATE billing_due SET due_at = 4102444800000000",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&raw)
                .await
                .unwrap();
        }
        let reopened = open(&db).await;
        // Opening changes nothing: which plan they get is the application's
        // decision (`app::catalogs::adopt_planless_tenants`).
        let planless = reopened.planless_tenants().await.unwrap();
        assert_eq!(planless, vec![(acme.id.clone(), acme.created_at)]);
        let plan = Catalog::builtin().plan("free").unwrap().clone();
        let sub = tollgate_domain::subscription::Subscription::new(
            "sub-adopted".into(),
            acme.id.clone(),
            &plan,
            1,
            acme.created_at,
        );
        let now = t("2026-11-05T00:00:00Z");
        assert!(reopened.adopt_planless_tenant(&sub, now).await.unwrap());
        assert!(
            !reopened.adopt_planless_tenant(&sub, now).await.unwrap(),
            "adopted once"
        );
        assert!(reopened.planless_tenants().await.unwrap().is_empty());
        let fixed = reopened.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!((fixed.plan.as_str(), fixed.catalog_version), ("free", 1));
        let subs = reopened.subscriptions(&acme.id).await.unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(
            subs[0].start, acme.created_at,
            "the subscription starts when the tenant did"
        );
        // Its periods are new: the next period close works them out.
        let due = reopened.billing_due(&acme.id).await.unwrap().unwrap();
        assert_eq!(due.due_at, jiff::Timestamp::UNIX_EPOCH);
    })
    .await;
}
