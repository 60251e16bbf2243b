use std::collections::BTreeMap;

use tollgate_domain::Reason;
use tollgate_domain::object::ObjectMeta;
use tollgate_domain::quota::{Limit, QuotaKey, QuotaObject, QuotaSpec};
use tollgate_domain::rate_limit::{RateLimit, RateUnit};
use tollgate_store::StoreError;
use tollgate_testkit::each_backend;

use crate::{name, open, t, tenant};

pub fn quota(n: &str, vhosts: i64) -> QuotaObject {
    let mut spec = QuotaSpec::default();
    spec.object_limits
        .insert(QuotaKey::parse("k", "virtual_host").unwrap(), Limit::Max(vhosts));
    spec.resource_limits
        .insert(QuotaKey::parse("k", "vcpu").unwrap(), Limit::Max(2_500_000));
    spec.api_limits.insert(
        QuotaKey::parse("k", "ves.io.schema.quota.API.Get").unwrap(),
        RateLimit::new("k", 10, 20, RateUnit::Minute).unwrap(),
    );
    QuotaObject {
        meta: ObjectMeta {
            namespace: name("system"),
            name: name(n),
            uid: uuid::Uuid::new_v4().to_string(),
            labels: BTreeMap::from([("env".into(), "prod".into())]),
            annotations: BTreeMap::from([("note".into(), "x".into())]),
            description: "limits for production".into(),
            disable: false,
            creator_class: "tollgate".into(),
            creator_id: "token-1".into(),
            created_at: t("2026-11-01T00:00:00Z"),
            modified_at: t("2026-11-01T00:00:00Z"),
        },
        spec,
    }
}

#[tokio::test]
async fn quota_objects_roundtrip_exactly() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let q = quota("prod", 10);
        store.insert_quota(&a.id, &q, "test").await.unwrap();
        assert_eq!(
            store.quota(&a.id, "system", "prod").await.unwrap(),
            Some(q.clone())
        );
        assert_eq!(store.quotas(&a.id, "system").await.unwrap(), vec![q.clone()]);
        let dup = store.insert_quota(&a.id, &quota("prod", 1), "test").await;
        assert!(
            matches!(dup, Err(StoreError::AlreadyExists(Reason::QuotaObjectExists, _))),
            "{dup:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn replace_keeps_identity_and_creation() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let original = quota("prod", 10);
        store.insert_quota(&a.id, &original, "test").await.unwrap();
        let mut changed = quota("prod", 3);
        changed.meta.uid = "ignored".into();
        changed.meta.creator_id = "someone-else".into();
        changed.meta.created_at = t("2030-01-01T00:00:00Z");
        changed.meta.modified_at = t("2026-11-09T00:00:00Z");
        changed.meta.disable = true;
        let stored = store.replace_quota(&a.id, &changed, "test").await.unwrap();
        assert_eq!(stored.meta.uid, original.meta.uid);
        assert_eq!(stored.meta.creator_id, original.meta.creator_id);
        assert_eq!(stored.meta.created_at, original.meta.created_at);
        assert_eq!(stored.meta.modified_at, t("2026-11-09T00:00:00Z"));
        assert!(stored.meta.disable);
        assert_eq!(stored.spec, changed.spec);
        let missing = store.replace_quota(&a.id, &quota("nope", 1), "test").await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    })
    .await;
}

#[tokio::test]
async fn delete_removes_only_the_named_object_of_the_tenant() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        store
            .insert_quota(&a.id, &quota("prod", 1), "test")
            .await
            .unwrap();
        store.insert_quota(&a.id, &quota("dev", 1), "test").await.unwrap();
        store
            .insert_quota(&b.id, &quota("prod", 1), "test")
            .await
            .unwrap();
        store
            .delete_quota(&a.id, "system", "prod", "test", t("2026-11-05T00:00:00Z"))
            .await
            .unwrap();
        let again = store
            .delete_quota(&a.id, "system", "prod", "test", t("2026-11-05T00:00:00Z"))
            .await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
        let left: Vec<String> = store
            .quotas(&a.id, "system")
            .await
            .unwrap()
            .iter()
            .map(|q| q.meta.name.to_string())
            .collect();
        assert_eq!(left, ["dev"]);
        assert!(store.quota(&b.id, "system", "prod").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn tenants_never_see_each_others_quotas() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let b = tenant(&*store, "bravo").await;
        store
            .insert_quota(&a.id, &quota("secret", 1), "test")
            .await
            .unwrap();
        assert_eq!(store.quota(&b.id, "system", "secret").await.unwrap(), None);
        assert!(store.quotas(&b.id, "system").await.unwrap().is_empty());
        let replace = store.replace_quota(&b.id, &quota("secret", 9), "test").await;
        assert!(matches!(replace, Err(StoreError::NotFound(_))));
        let delete = store
            .delete_quota(&b.id, "system", "secret", "test", t("2026-11-05T00:00:00Z"))
            .await;
        assert!(matches!(delete, Err(StoreError::NotFound(_))));
        assert!(store.quota(&a.id, "system", "secret").await.unwrap().is_some());
    })
    .await;
}
