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

/// A move to a newer catalog version: scheduled (replacing a pending one,
/// audited), listed, cancelled; applied once at its time (the old
/// subscription ends at the boundary, one at the new version starts, the
/// tenant is on it); and dropped when the tenant changed subscription since.
#[tokio::test]
async fn catalog_moves_are_scheduled_applied_once_and_dropped_after_a_plan_change() {
    use tollgate_domain::subscription::Subscription;
    use tollgate_store::CatalogMove;
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-11-10T00:00:00Z");
        let v2 = store
            .publish_catalog(BUILTIN_TOML, "v2.toml", "op", now)
            .await
            .unwrap();
        let v3 = store
            .publish_catalog(BUILTIN_TOML, "v3.toml", "op", now)
            .await
            .unwrap();
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let sub_a = store.subscriptions(&a.id).await.unwrap().remove(0);
        let sub_b = store.subscriptions(&b.id).await.unwrap().remove(0);
        let boundary = t("2026-12-01T00:00:00Z");
        let mv = |tenant: &tollgate_domain::tenant::Tenant, sub: &Subscription, version| CatalogMove {
            tenant_id: tenant.id.clone(),
            subscription_id: sub.id.clone(),
            from_version: 1,
            catalog_version: version,
            effective_at: boundary,
            created_by: "op".into(),
            created_at: now,
        };
        store
            .schedule_catalog_moves(&[mv(&a, &sub_a, v2), mv(&b, &sub_b, v2)], "op", now)
            .await
            .unwrap();
        // Scheduling again replaces the pending move.
        store
            .schedule_catalog_moves(&[mv(&a, &sub_a, v3)], "op", now)
            .await
            .unwrap();
        let pending = store.catalog_moves(None).await.unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            store.catalog_moves(Some(&a.id)).await.unwrap(),
            [mv(&a, &sub_a, v3)]
        );
        // A stale subscription id is refused, and nothing is stored.
        let stale = CatalogMove {
            subscription_id: "not-the-current-one".into(),
            ..mv(&b, &sub_b, v3)
        };
        let e = store
            .schedule_catalog_moves(&[stale], "op", now)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("subscription changed"), "{e}");
        assert_eq!(
            store.catalog_moves(Some(&b.id)).await.unwrap(),
            [mv(&b, &sub_b, v2)]
        );

        // Not due before the boundary.
        assert!(
            store
                .due_catalog_moves(t("2026-11-30T23:59:59Z"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let due = store.due_catalog_moves(boundary, 10).await.unwrap();
        assert_eq!(due.len(), 2);

        // Applying acme's: the old subscription ends at the boundary, the new
        // one starts there at v3, once.
        let catalog = Catalog::builtin();
        let next = Subscription::new(
            "sub-v3".into(),
            a.id.clone(),
            catalog.plan("free").unwrap(),
            v3,
            boundary,
        );
        let applied_at = t("2026-12-01T00:05:00Z");
        let m = store.catalog_moves(Some(&a.id)).await.unwrap().remove(0);
        assert!(store.apply_catalog_move(&m, &next, applied_at).await.unwrap());
        assert!(
            !store.apply_catalog_move(&m, &next, applied_at).await.unwrap(),
            "once"
        );
        let subs = store.subscriptions(&a.id).await.unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            (subs[0].id.as_str(), subs[0].catalog_version, subs[0].end),
            ("sub-v3", v3, None)
        );
        assert_eq!(subs[1].end, Some(boundary));
        assert_eq!(store.tenant(&a.id).await.unwrap().unwrap().catalog_version, v3);
        assert!(store.catalog_moves(Some(&a.id)).await.unwrap().is_empty());

        // Bravo changed subscription since its move was scheduled (here,
        // straight in the database, as a plan transition would): the move is
        // dropped, not applied.
        let pool = raw_pool(&db).await;
        sqlx::query("UPDATE subscriptions SET id = 'replaced' WHERE tenant_id = $1")
            .bind(b.id.as_str())
            .execute(&pool)
            .await
            .unwrap();
        let m = store.catalog_moves(Some(&b.id)).await.unwrap().remove(0);
        let other = Subscription::new(
            "sub-b".into(),
            b.id.clone(),
            catalog.plan("free").unwrap(),
            v2,
            boundary,
        );
        assert!(!store.apply_catalog_move(&m, &other, applied_at).await.unwrap());
        assert!(store.catalog_moves(None).await.unwrap().is_empty());
        assert_eq!(store.tenant(&b.id).await.unwrap().unwrap().catalog_version, 1);

        // Cancel: audited; nothing to cancel is `false`.
        store
            .schedule_catalog_moves(
                &[CatalogMove {
                    subscription_id: "replaced".into(),
                    ..mv(&b, &sub_b, v2)
                }],
                "op",
                now,
            )
            .await
            .unwrap();
        assert!(store.cancel_catalog_move(&b.id, "op-2", now).await.unwrap());
        assert!(!store.cancel_catalog_move(&b.id, "op-2", now).await.unwrap());
        let actions: Vec<String> = store
            .audit(Some(&a.id), 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.action.as_str().to_owned())
            .filter(|a| a.starts_with("catalog_move"))
            .collect();
        assert_eq!(
            actions,
            [
                "catalog_move.apply",
                "catalog_move.schedule",
                "catalog_move.schedule"
            ]
        );
        let b_actions: Vec<String> = store
            .audit(Some(&b.id), 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.action.as_str().to_owned())
            .filter(|a| a.starts_with("catalog_move"))
            .collect();
        assert_eq!(
            b_actions,
            [
                "catalog_move.cancel",
                "catalog_move.schedule",
                "catalog_move.schedule"
            ]
        );
    })
    .await;
}
