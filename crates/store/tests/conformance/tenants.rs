//! Tenancy: tenants, namespaces, API tokens and operator tokens.

use tollgate_domain::Reason;
use tollgate_domain::access::{NamespaceScope, OperatorRole, Role};
use tollgate_domain::ids::TenantId;
use tollgate_domain::tenant::TenantType;
use tollgate_store::{NewOperatorToken, NewTenant, NewToken, StoreError};
use tollgate_testkit::each_backend;

use crate::{name, new_tenant, open, t, tenant};

#[tokio::test]
async fn a_tenant_is_created_with_its_system_namespace() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let acme = store
            .create_tenant(&NewTenant {
                actor: "operator".into(),
                tenant_type: TenantType::Enterprise,
                ..new_tenant("acme", "team", t("2026-11-02T10:00:00Z"))
            })
            .await
            .unwrap();
        assert_eq!(acme.tenant_type, TenantType::Enterprise);
        assert_eq!((acme.plan.as_str(), acme.catalog_version), ("team", 1));
        let subs = store.subscriptions(&acme.id).await.unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(
            (subs[0].plan.as_str(), subs[0].tenant_id.as_str()),
            ("team", acme.id.as_str())
        );
        assert_eq!(subs[0].trial_end, Some(t("2026-11-16T10:00:00Z")));
        assert_eq!(store.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
        let namespaces = store.namespaces(&acme.id).await.unwrap();
        assert_eq!(namespaces.len(), 1);
        assert_eq!(namespaces[0].name.as_str(), "system");
        assert_eq!(namespaces[0].created_at, t("2026-11-02T10:00:00Z"));
        assert!(store.namespace_exists(&acme.id, "system").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn tenant_names_are_unique_and_listed_in_order() {
    each_backend(|db| async move {
        let store = open(&db).await;
        tenant(&*store, "zeta").await;
        tenant(&*store, "alpha").await;
        let dup = store
            .create_tenant(&new_tenant("zeta", "free", t("2026-11-01T00:00:00Z")))
            .await;
        assert!(
            matches!(dup, Err(StoreError::AlreadyExists(Reason::TenantExists, _))),
            "{dup:?}"
        );
        let names: Vec<String> = store
            .tenants()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(store.tenant_by_name("nobody").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn namespaces_are_per_tenant() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "a-corp").await;
        let b = tenant(&*store, "b-corp").await;
        store
            .create_namespace(&a.id, &name("shop"), "operator", t("2026-11-03T00:00:00Z"))
            .await
            .unwrap();
        let dup = store
            .create_namespace(&a.id, &name("shop"), "operator", t("2026-11-03T00:00:00Z"))
            .await;
        assert!(
            matches!(dup, Err(StoreError::AlreadyExists(Reason::NamespaceExists, _))),
            "{dup:?}"
        );
        assert!(store.namespace_exists(&a.id, "shop").await.unwrap());
        assert!(!store.namespace_exists(&b.id, "shop").await.unwrap());
        // The same name in another tenant is a different namespace.
        store
            .create_namespace(&b.id, &name("shop"), "operator", t("2026-11-03T00:00:00Z"))
            .await
            .unwrap();
        let missing = store
            .create_namespace(
                &TenantId::new("no-such-tenant"),
                &name("x"),
                "operator",
                t("2026-11-03T00:00:00Z"),
            )
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    })
    .await;
}

#[tokio::test]
async fn tokens_are_found_by_digest_scoped_and_revocable() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        store
            .create_namespace(&a.id, &name("shop"), "operator", t("2026-11-01T00:00:00Z"))
            .await
            .unwrap();
        let new = NewToken {
            actor: "operator".into(),
            tenant_id: a.id.clone(),
            name: "ci".into(),
            role: Role::Platform,
            scope: NamespaceScope::Only(vec![name("shop")]),
            digest: [7; 32],
            expires_at: Some(t("2026-12-01T00:00:00Z")),
            now: t("2026-11-01T00:00:00Z"),
        };
        let token = store.create_token(&new).await.unwrap();
        assert_eq!(token.role, Role::Platform);
        assert_eq!(token.tenant_name.as_str(), "acme");
        assert_eq!(token.scope, NamespaceScope::Only(vec![name("shop")]));
        assert_eq!(token.expires_at, Some(t("2026-12-01T00:00:00Z")));
        let (found, found_tenant) = store.token_by_digest(&[7; 32]).await.unwrap().unwrap();
        assert_eq!(found, token);
        assert_eq!(
            (found_tenant.id.as_str(), found_tenant.plan.as_str()),
            (a.id.as_str(), "free")
        );
        assert_eq!(store.token_by_digest(&[8; 32]).await.unwrap(), None);

        let unscoped = store
            .create_token(&NewToken {
                actor: "operator".into(),
                digest: [9; 32],
                scope: NamespaceScope::All,
                ..new.clone()
            })
            .await
            .unwrap();
        assert_eq!(unscoped.scope, NamespaceScope::All);
        assert_eq!(store.tokens(&a.id).await.unwrap().len(), 2);

        let missing_ns = store
            .create_token(&NewToken {
                actor: "operator".into(),
                digest: [10; 32],
                scope: NamespaceScope::Only(vec![name("nope")]),
                ..new.clone()
            })
            .await;
        assert!(
            matches!(missing_ns, Err(StoreError::NotFound(_))),
            "{missing_ns:?}"
        );

        let revoked = store
            .revoke_token(&a.id, &token.id, "operator", t("2026-11-05T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(t("2026-11-05T00:00:00Z")));
        // Revoking again keeps the first revocation time.
        let again = store
            .revoke_token(&a.id, &token.id, "operator", t("2026-11-06T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(again.revoked_at, Some(t("2026-11-05T00:00:00Z")));
        assert!(!again.is_active(t("2026-11-05T00:00:01Z")));

        // Another tenant cannot revoke it, and does not see it.
        let b = tenant(&*store, "other").await;
        let foreign = store
            .revoke_token(&b.id, &unscoped.id, "operator", t("2026-11-05T00:00:00Z"))
            .await;
        assert!(matches!(foreign, Err(StoreError::NotFound(_))), "{foreign:?}");
        assert!(store.tokens(&b.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn operator_tokens_are_named_once_among_live_ones_found_by_digest_and_revocable() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let new = NewOperatorToken {
            name: "ci".into(),
            role: OperatorRole::Admin,
            digest: [1; 32],
            actor: "operator".into(),
            now: t("2026-11-01T00:00:00Z"),
        };
        let ci = store.create_operator_token(&new).await.unwrap();
        assert_eq!(
            (ci.name.as_str(), ci.role, ci.created_by.as_str(), ci.revoked_at),
            ("ci", OperatorRole::Admin, "operator", None)
        );
        assert_eq!(ci.created_at, t("2026-11-01T00:00:00Z"));
        let taken = store
            .create_operator_token(&NewOperatorToken {
                digest: [2; 32],
                ..new.clone()
            })
            .await;
        assert!(
            matches!(
                taken,
                Err(StoreError::AlreadyExists(Reason::OperatorTokenExists, _))
            ),
            "{taken:?}"
        );
        assert_eq!(
            store.operator_token_by_digest(&[1; 32]).await.unwrap(),
            Some(ci.clone())
        );
        assert_eq!(store.operator_token_by_digest(&[2; 32]).await.unwrap(), None);

        let revoked = store
            .revoke_operator_token("ci", "operator-token/root", t("2026-11-02T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(t("2026-11-02T00:00:00Z")));
        // Found by digest still (a revoked token is refused by its caller),
        // and there is no live token of that name left to revoke.
        assert_eq!(
            store.operator_token_by_digest(&[1; 32]).await.unwrap(),
            Some(revoked.clone())
        );
        let again = store
            .revoke_operator_token("ci", "operator", t("2026-11-03T00:00:00Z"))
            .await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");

        // A revoked token's name may be used again.
        let second = store
            .create_operator_token(&NewOperatorToken {
                role: OperatorRole::Read,
                digest: [3; 32],
                now: t("2026-11-04T00:00:00Z"),
                ..new.clone()
            })
            .await
            .unwrap();
        let listed: Vec<(String, Option<jiff::Timestamp>)> = store
            .operator_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.id, o.revoked_at))
            .collect();
        assert_eq!(
            listed,
            [
                (ci.id.clone(), Some(t("2026-11-02T00:00:00Z"))),
                (second.id.clone(), None)
            ]
        );

        // Audited without a tenant, never with the digest.
        let trail = store.audit(None, 10).await.unwrap();
        let entries: Vec<(&str, &str, &str)> = trail
            .iter()
            .filter(|e| e.action.starts_with("operator_token."))
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                ("operator_token.create", "operator", "operator-token/ci"),
                (
                    "operator_token.revoke",
                    "operator-token/root",
                    "operator-token/ci"
                ),
                ("operator_token.create", "operator", "operator-token/ci"),
            ]
        );
        assert!(
            trail
                .iter()
                .filter(|e| e.action.starts_with("operator_token."))
                .all(|e| e.tenant_id.is_none() && !e.after.as_deref().unwrap_or("").contains("digest"))
        );
    })
    .await;
}

/// Concurrent writes are committed together on SQLite (one transaction, one
/// savepoint per write): each still succeeds or fails alone, and a failure
/// leaves nothing of itself behind while its neighbours are kept.
#[tokio::test]
async fn concurrent_writes_succeed_or_fail_each_on_its_own() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "a-corp").await;
        let now = t("2026-11-03T00:00:00Z");
        store
            .create_namespace(&a.id, &name("taken"), "operator", now)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let (store, tenant_id) = (store.clone(), a.id.clone());
            tasks.spawn(async move {
                // Every third write fails: a name already taken, or a tenant
                // that does not exist.
                let (tenant_id, ns) = match i % 3 {
                    0 => (tenant_id, "taken".to_owned()),
                    1 => (TenantId::new("no-such-tenant"), format!("ns-{i}")),
                    _ => (tenant_id, format!("ns-{i}")),
                };
                (
                    i,
                    store
                        .create_namespace(&tenant_id, &name(&ns), "operator", now)
                        .await,
                )
            });
        }
        let mut created = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            match i % 3 {
                0 => assert!(
                    matches!(result, Err(StoreError::AlreadyExists(Reason::NamespaceExists, _))),
                    "{i}: {result:?}"
                ),
                1 => assert!(matches!(result, Err(StoreError::NotFound(_))), "{i}: {result:?}"),
                _ => created.push(result.unwrap_or_else(|e| panic!("{i}: {e}")).name.to_string()),
            }
        }
        created.sort();
        let mut stored: Vec<String> = store
            .namespaces(&a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.name.to_string())
            .filter(|n| n.starts_with("ns-"))
            .collect();
        stored.sort();
        assert_eq!(stored, created);
        assert_eq!(stored.len(), 20);
    })
    .await;
}

#[tokio::test]
async fn a_tenant_keeps_its_currency_while_an_invoice_is_unpaid() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let now = t("2026-12-02T00:00:00Z");
        let acme = store
            .create_tenant(&NewTenant {
                currency: "JPY".into(),
                ..new_tenant("acme", "individual", t("2026-11-02T10:00:00Z"))
            })
            .await
            .unwrap();
        assert_eq!(acme.currency.as_deref(), Some("JPY"));
        assert_eq!(
            store.tenant(&acme.id).await.unwrap().unwrap().currency.as_deref(),
            Some("JPY")
        );

        // An invoice in another currency than the tenant's is not issued
        // (its currency changed while it was computed).
        let usd = crate::invoicing::invoice(&*store, &acme.id, "inv-2026-11-0001", 0, 2500).await;
        let e = store
            .finalize_invoice(&acme.id, &usd, Some(now), "test", now)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(Reason::CurrencyLocked, _)),
            "{e:?}"
        );
        let yen = tollgate_domain::invoice::Invoice {
            currency: "JPY".into(),
            ..usd
        };
        assert!(
            store
                .finalize_invoice(&acme.id, &yen, Some(now), "test", now)
                .await
                .unwrap()
        );

        // ISSUED: the currency is fixed, and the refusal names the invoice.
        let e = store
            .set_tenant_currency(&acme.id, "EUR", "operator", now)
            .await
            .unwrap_err();
        match &e {
            StoreError::Conflict(Reason::CurrencyLocked, m) => {
                assert!(m.contains("inv-2026-11-0001") && m.contains("JPY"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.tenant(&acme.id).await.unwrap().unwrap().currency.as_deref(),
            Some("JPY")
        );

        // Cancelled (or paid), it may change, audited.
        store
            .set_invoice_status(
                &acme.id,
                &tollgate_domain::ids::InvoiceName::new("inv-2026-11-0001"),
                tollgate_domain::invoice::InvoiceStatus::CANCELLABLE,
                tollgate_domain::invoice::InvoiceStatus::Cancelled,
                "operator",
                now,
            )
            .await
            .unwrap();
        let after = store
            .set_tenant_currency(&acme.id, "EUR", "operator", now)
            .await
            .unwrap();
        assert_eq!(after.currency.as_deref(), Some("EUR"));
        assert_eq!(
            store.tenant(&acme.id).await.unwrap().unwrap().currency.as_deref(),
            Some("EUR")
        );
        let trail = store.audit(Some(&acme.id), 10).await.unwrap();
        let entry = trail
            .iter()
            .find(|e| e.action == "tenant.currency")
            .expect("audited");
        assert_eq!(entry.before.as_deref(), Some(r#"{"currency":"JPY"}"#));
        assert_eq!(entry.after.as_deref(), Some(r#"{"currency":"EUR"}"#));
        assert!(matches!(
            store
                .set_tenant_currency(&TenantId::new("nobody".to_owned()), "EUR", "operator", now)
                .await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn tenants_from_before_currencies_are_pinned_to_their_catalog_s_first() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let pool = crate::raw_pool(&db).await;
        sqlx::query("UPDATE tenants SET currency = NULL WHERE name = 'acme'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(store.tenant(&a.id).await.unwrap().unwrap().currency, None);
        assert_eq!(store.unpinned_currency_versions().await.unwrap(), [1]);
        assert_eq!(
            store.pin_tenant_currencies(2, "EUR").await.unwrap(),
            0,
            "another version"
        );
        assert_eq!(store.pin_tenant_currencies(1, "USD").await.unwrap(), 1);
        assert_eq!(
            store.unpinned_currency_versions().await.unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(
            store.tenant(&a.id).await.unwrap().unwrap().currency.as_deref(),
            Some("USD")
        );
        assert_eq!(
            store.pin_tenant_currencies(1, "EUR").await.unwrap(),
            0,
            "pinned once"
        );
    })
    .await;
}
