//! Payment methods: role rules enforced in one transaction, never two
//! primaries even under concurrent calls.

use std::sync::Arc;
use tollgate_domain::ids::TenantId;

use tollgate_domain::Reason;
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::{PaymentMethod, PaymentRole, RoleChange};
use tollgate_store::{PaymentChange, Store, StoreError};
use tollgate_testkit::each_backend;

use crate::{open, t, tenant};

pub fn method(name: &str) -> PaymentMethod {
    PaymentMethod {
        name: name.into(),
        role: PaymentRole::Normal,
        provider: "test".into(),
        token: format!("tok-{name}"),
        display: format!("test card {name}"),
        contact: Contact {
            city: "Lyon".into(),
            ..Contact::default()
        },
        created_at: t("2026-11-01T00:00:00Z"),
    }
}

async fn create(
    store: &dyn Store,
    tenant: &TenantId,
    name: &str,
    requested: Option<PaymentRole>,
    minute: u32,
) -> Vec<PaymentMethod> {
    let now = t(&format!("2026-11-05T00:{minute:02}:00Z"));
    store
        .change_payment_methods(
            tenant,
            &PaymentChange::Create {
                method: Box::new(method(name)),
                requested,
            },
            "token-1",
            now,
        )
        .await
        .unwrap()
}

fn roles(methods: &[PaymentMethod]) -> Vec<(&str, PaymentRole)> {
    methods.iter().map(|m| (m.name.as_str(), m.role)).collect()
}

#[tokio::test]
async fn roles_follow_the_rules_and_are_stored() {
    use PaymentRole::*;
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        assert_eq!(
            roles(&create(&*store, &a.id, "pm-a", Some(Secondary), 1).await),
            [("pm-a", Primary)]
        );
        create(&*store, &a.id, "pm-b", None, 2).await;
        let after = create(&*store, &a.id, "pm-c", Some(Secondary), 3).await;
        assert_eq!(
            roles(&after),
            [("pm-a", Primary), ("pm-b", Normal), ("pm-c", Secondary)]
        );
        let change = |c: RoleChange| {
            let store = store.clone();
            let id = a.id.clone();
            async move {
                store
                    .change_payment_methods(
                        &id,
                        &PaymentChange::Role(c),
                        "token-1",
                        t("2026-11-06T00:00:00Z"),
                    )
                    .await
            }
        };
        let swapped = change(RoleChange::Swap("pm-c".into())).await.unwrap();
        assert_eq!(
            roles(&swapped),
            [("pm-a", Secondary), ("pm-b", Normal), ("pm-c", Primary)]
        );
        let primary_b = change(RoleChange::MakePrimary("pm-b".into())).await.unwrap();
        assert_eq!(
            roles(&primary_b),
            [("pm-a", Secondary), ("pm-b", Primary), ("pm-c", Normal)]
        );
        let deleted = change(RoleChange::Delete {
            name: "pm-b".into(),
            on_paid_plan: true,
        })
        .await
        .unwrap();
        assert_eq!(roles(&deleted), [("pm-a", Primary), ("pm-c", Normal)]);
        assert_eq!(
            roles(&store.payment_methods(&a.id).await.unwrap()),
            roles(&deleted)
        );
        // Refusals change nothing.
        let missing = change(RoleChange::MakePrimary("pm-zz".into())).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
        let no_secondary = change(RoleChange::Swap("pm-a".into())).await;
        assert!(
            matches!(
                no_secondary,
                Err(StoreError::Conflict(Reason::NoSecondaryPaymentMethod, _))
            ),
            "{no_secondary:?}"
        );
        let dup = store
            .change_payment_methods(
                &a.id,
                &PaymentChange::Create {
                    method: Box::new(method("pm-a")),
                    requested: None,
                },
                "x",
                t("2026-11-07T00:00:00Z"),
            )
            .await;
        assert!(
            matches!(
                dup,
                Err(StoreError::AlreadyExists(Reason::PaymentMethodExists, _))
            ),
            "{dup:?}"
        );
        assert_eq!(
            roles(&store.payment_methods(&a.id).await.unwrap()),
            roles(&deleted)
        );
        // Stored data comes back whole.
        let stored = &store.payment_methods(&a.id).await.unwrap()[0];
        assert_eq!(
            (stored.token.as_str(), stored.contact.city.as_str()),
            ("tok-pm-a", "Lyon")
        );
        let trail = store.audit(Some(&a.id), 20).await.unwrap();
        assert_eq!(
            trail
                .iter()
                .filter(|e| e.action.starts_with("payment_method."))
                .count(),
            6
        );
    })
    .await;
}

/// Concurrent role changes through separate store handles (separate pools,
/// as replicas have) never leave two primaries or two secondaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_role_changes_keep_one_primary() {
    each_backend(|db| async move {
        let stores: Vec<Arc<dyn Store>> = vec![open(&db).await, open(&db).await];
        let a = tenant(&*stores[0], "acme").await;
        let names = ["pm-1", "pm-2", "pm-3", "pm-4", "pm-5"];
        for (i, n) in names.iter().enumerate() {
            create(&*stores[0], &a.id, n, None, i as u32).await;
        }
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = stores[i % 2].clone();
            let id = a.id.clone();
            let name = names[i % names.len()].to_string();
            tasks.push(tokio::spawn(async move {
                let change = match i % 3 {
                    0 => RoleChange::MakePrimary(name),
                    1 => RoleChange::MakeSecondary(name),
                    _ => RoleChange::Swap(name),
                };
                // Refusals (e.g. no secondary to swap) are fine; errors are not.
                match store
                    .change_payment_methods(&id, &PaymentChange::Role(change), "t", t("2026-11-06T00:00:00Z"))
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(..)) => {}
                    Err(e) => panic!("{e}"),
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let methods = stores[1].payment_methods(&a.id).await.unwrap();
        assert_eq!(
            methods.iter().filter(|m| m.role == PaymentRole::Primary).count(),
            1,
            "{:?}",
            roles(&methods)
        );
        assert!(
            methods
                .iter()
                .filter(|m| m.role == PaymentRole::Secondary)
                .count()
                <= 1
        );
    })
    .await;
}
