//! Coupons: definitions (one per code) and coupons applied to tenants.

use tollgate_domain::Reason;
use tollgate_domain::rating::Discount;
use tollgate_store::{CouponDef, StoreError};
use tollgate_testkit::each_backend;

use crate::{open, t, tenant};

#[tokio::test]
async fn coupons_are_defined_once_and_applied_per_tenant() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-20T00:00:00Z");
        let welcome = CouponDef {
            code: "welcome".into(),
            title: "Welcome 10%".into(),
            discount: Discount::Percent(1000),
        };
        store.create_coupon(&welcome, "operator", now).await.unwrap();
        let dup = store.create_coupon(&welcome, "operator", now).await;
        assert!(matches!(
            dup,
            Err(StoreError::AlreadyExists(Reason::CouponExists, _))
        ));
        let five = CouponDef {
            code: "five".into(),
            title: "$5 off".into(),
            discount: Discount::Fixed(500),
        };
        store.create_coupon(&five, "operator", now).await.unwrap();
        assert_eq!(store.coupons().await.unwrap(), [five.clone(), welcome.clone()]);
        store
            .apply_coupon(
                &a.id,
                "welcome",
                now,
                Some(t("2027-01-01T00:00:00Z")),
                "operator",
                now,
            )
            .await
            .unwrap();
        let missing = store
            .apply_coupon(&a.id, "nope", now, None, "operator", now)
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))));
        let applied = store.tenant_coupons(&a.id).await.unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(
            (applied[0].coupon.clone(), applied[0].valid_until),
            (welcome, Some(t("2027-01-01T00:00:00Z")))
        );
        let b = tenant(&*store, "bravo").await;
        assert!(store.tenant_coupons(&b.id).await.unwrap().is_empty());
    })
    .await;
}
