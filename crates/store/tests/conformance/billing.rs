//! Billing: add-ons (subscriptions, payment methods and plan transitions
//! have files of their own: `payments.rs`, `transitions.rs`).

use tollgate_testkit::each_backend;

use crate::{open, t, tenant};

#[tokio::test]
async fn addons_are_idempotent_and_audited() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-05T00:00:00Z");
        assert!(
            store
                .set_addon(&a.id, &a.plan, "f5xc_waap_standard", true, "token-1", now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_addon(&a.id, &a.plan, "f5xc_waap_standard", true, "token-1", now)
                .await
                .unwrap()
        );
        assert!(
            store
                .set_addon(&a.id, &a.plan, "f5xc_appstack_standard", true, "token-1", now)
                .await
                .unwrap()
        );
        assert_eq!(
            store.addons(&a.id).await.unwrap(),
            ["f5xc_appstack_standard", "f5xc_waap_standard"]
        );
        assert!(
            store
                .set_addon(&a.id, &a.plan, "f5xc_waap_standard", false, "token-2", now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_addon(&a.id, &a.plan, "f5xc_waap_standard", false, "token-2", now)
                .await
                .unwrap()
        );
        assert_eq!(store.addons(&a.id).await.unwrap(), ["f5xc_appstack_standard"]);
        let trail = store.audit(Some(&a.id), 10).await.unwrap();
        let actions: Vec<(&str, &str)> = trail
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str()))
            .filter(|(a, _)| a.starts_with("addon"))
            .collect();
        assert_eq!(
            actions,
            [
                ("addon.unsubscribe", "token-2"),
                ("addon.subscribe", "token-1"),
                ("addon.subscribe", "token-1")
            ]
        );
        let b = tenant(&*store, "bravo").await;
        assert!(store.addons(&b.id).await.unwrap().is_empty());
        assert!(
            store
                .audit(Some(&b.id), 10)
                .await
                .unwrap()
                .iter()
                .all(|e| e.tenant_id.as_deref() == Some(b.id.as_str()))
        );
    })
    .await;
}
