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
