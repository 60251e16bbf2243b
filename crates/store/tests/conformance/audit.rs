//! The audit trail as read back (every aggregate writes it inside its own
//! transactions; their files check what they record), and secrets shared by
//! replicas.

use tollgate_testkit::each_backend;

use crate::{name, open, t, tenant};

#[tokio::test]
async fn the_trail_is_newest_first_limited_and_filtered_by_tenant() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let now = t("2026-11-03T00:00:00Z");
        store
            .create_namespace(&a.id, &name("shop"), "token/1", now)
            .await
            .unwrap();
        let of_a = store.audit(Some(&a.id), 10).await.unwrap();
        let actions: Vec<(&str, &str)> = of_a
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("namespace.create", "namespace/shop"),
                ("tenant.create", "tenant/acme")
            ]
        );
        assert_eq!((of_a[0].actor.as_str(), of_a[0].at), ("token/1", now));
        assert!(of_a.iter().all(|e| e.tenant_id.as_deref() == Some(a.id.as_str())));
        assert_eq!(of_a[0].before, None);
        let after: serde_json::Value = serde_json::from_str(of_a[0].after.as_deref().unwrap()).unwrap();
        assert_eq!(after["name"], "shop");

        let latest = store.audit(Some(&a.id), 1).await.unwrap();
        assert_eq!(latest, of_a[..1]);

        // Every tenant, and entries of no tenant (the built-in catalog).
        let all = store.audit(None, 100).await.unwrap();
        let seen: Vec<(Option<&str>, &str)> = all
            .iter()
            .map(|e| (e.tenant_id.as_deref(), e.action.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (Some(a.id.as_str()), "namespace.create"),
                (Some(b.id.as_str()), "tenant.create"),
                (Some(a.id.as_str()), "tenant.create"),
                (None, "catalog.publish"),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_secret_is_made_once_and_shared_by_every_handle() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let s1 = store.secret("report-key").await.unwrap();
        assert_eq!(s1.len(), 64);
        assert_eq!(open(&db).await.secret("report-key").await.unwrap(), s1);
    })
    .await;
}
