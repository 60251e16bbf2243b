//! Health: the engine's name, and whether the database answers and takes
//! writes.

use tollgate_testkit::each_backend;

use crate::{open, t};

#[tokio::test]
async fn a_working_database_answers_and_is_ready() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let expected = if db.sqlite_dir().is_some() {
            "sqlite"
        } else {
            "postgres"
        };
        assert_eq!(store.backend(), expected);
        store.ping().await.unwrap();
        // The readiness probe writes its heartbeat each time.
        store.ready(t("2026-11-01T00:00:00Z")).await.unwrap();
        store.ready(t("2026-11-01T00:00:05Z")).await.unwrap();
        store.ping().await.unwrap();
    })
    .await;
}

/// A caller holding a concrete engine's store rather than `dyn Store`
/// brings the aggregate traits into scope with the prelude.
#[tokio::test]
async fn a_concrete_store_is_used_through_the_prelude() {
    use tollgate_store::prelude::*;
    each_backend(|db| async move {
        let now = t("2026-11-01T00:00:00Z");
        let options = tollgate_store::StoreOptions::default();
        match (db.sqlite_dir(), db.postgres_url()) {
            (Some(dir), _) => {
                let store = tollgate_store::sqlite::SqlStore::open(dir, &options)
                    .await
                    .unwrap();
                assert_eq!(store.backend(), "sqlite");
                store.ready(now).await.unwrap();
                assert!(store.tenants().await.unwrap().is_empty());
            }
            (None, Some(url)) => {
                let store = tollgate_store::postgres::SqlStore::open(url, &options)
                    .await
                    .unwrap();
                assert_eq!(store.backend(), "postgres");
                store.ready(now).await.unwrap();
                assert!(store.tenants().await.unwrap().is_empty());
            }
            (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
        }
    })
    .await;
}
