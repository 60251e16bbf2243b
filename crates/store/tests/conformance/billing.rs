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

/// The history of add-ons: a span per time subscribed, closed when
/// unsubscribed, reopened when subscribed again at the very moment it
/// closed; another tenant's never shows.
#[tokio::test]
async fn addon_history_keeps_a_span_per_subscription() {
    use tollgate_domain::subscription::AddonSpan;
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        let set = |on: bool, at: &'static str| {
            let store = store.clone();
            let (id, plan) = (a.id.clone(), a.plan.clone());
            async move {
                store
                    .set_addon(&id, &plan, "f5xc_waap_standard", on, "token-1", t(at))
                    .await
                    .unwrap()
            }
        };
        assert!(set(true, "2026-11-05T00:00:00Z").await);
        assert!(
            !set(true, "2026-11-06T00:00:00Z").await,
            "already subscribed: no new span"
        );
        assert!(set(false, "2026-11-10T00:00:00Z").await);
        // Off and on again at one instant: one span, not two.
        assert!(set(true, "2026-11-12T00:00:00Z").await);
        assert!(set(false, "2026-11-15T00:00:00Z").await);
        assert!(set(true, "2026-11-15T00:00:00Z").await);
        store
            .set_addon(
                &b.id,
                &b.plan,
                "f5xc_appstack_standard",
                true,
                "token-9",
                t("2026-11-01T00:00:00Z"),
            )
            .await
            .unwrap();
        let span = |start: &str, end: Option<&str>| AddonSpan {
            addon: "f5xc_waap_standard".into(),
            start: t(start),
            end: end.map(t),
        };
        assert_eq!(
            store.addon_history(&a.id).await.unwrap(),
            [
                span("2026-11-05T00:00:00Z", Some("2026-11-10T00:00:00Z")),
                span("2026-11-12T00:00:00Z", None),
            ]
        );
        let spans = store.addon_history(&a.id).await.unwrap();
        // 2 days of the first span and 3 of the second fall in [Nov 8, Nov 15).
        let secs: i64 = spans
            .iter()
            .map(|s| s.secs_within(t("2026-11-08T00:00:00Z"), t("2026-11-15T00:00:00Z")))
            .sum();
        assert_eq!(secs, 5 * 86_400);
        assert_eq!(store.addon_history(&b.id).await.unwrap().len(), 1);
    })
    .await;
}
