//! One conformance suite for every storage engine: each test runs on SQLite,
//! and on PostgreSQL when `TOLLGATE_TEST_POSTGRES_URL` is set.

mod quotas;
mod tenants;
mod usage;

use std::sync::Arc;

use jiff::Timestamp;
use tollgate_domain::names::Name;
use tollgate_domain::tenant::{Tenant, TenantType};
use tollgate_store::{Location, NewTenant, Store};
use tollgate_testkit::TestDatabase;

pub fn location(db: &TestDatabase) -> Location {
    match (db.sqlite_dir(), db.postgres_url()) {
        (Some(dir), _) => Location::SqliteDir(dir.to_path_buf()),
        (None, Some(url)) => Location::Postgres(url.to_owned()),
        (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
    }
}

pub async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    tollgate_store::open(&location(db)).await.expect("open store")
}

pub fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp literal")
}

pub fn name(s: &str) -> Name {
    Name::parse("name", s).expect("valid name")
}

pub async fn tenant(store: &dyn Store, n: &str) -> Tenant {
    store
        .create_tenant(&NewTenant {
            name: name(n),
            tenant_type: TenantType::Freemium,
            now: t("2026-11-01T00:00:00Z"),
        })
        .await
        .expect("create tenant")
}
