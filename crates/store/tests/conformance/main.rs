//! One conformance suite for every storage engine: each test runs on SQLite,
//! and on PostgreSQL when `TOLLGATE_TEST_POSTGRES_URL` is set (`each_backend`).
//!
//! One or more files per aggregate (see the store's `aggregates.rs`):
//! tenancy `tenants`; quotas `quotas`, `usage`; catalogs `catalogs`; billing
//! `billing` (add-ons), `payments`, `transitions`; metering `metering`;
//! coupons `coupons`; invoicing `invoicing`, `refunds`, `billing_due`; dunning
//! `dunning`; audit `audit`;
//! health `health`. `golden` reads back every stored document format.

mod audit;
mod billing;
mod billing_due;
mod catalogs;
mod coupons;
mod credits;
mod dunning;
mod golden;
mod health;
mod invoicing;
mod metering;
mod payments;
mod quotas;
mod refunds;
mod tenants;
mod transitions;
mod usage;

use std::sync::Arc;
use tollgate_domain::ids::TenantId;

use jiff::Timestamp;
use tollgate_domain::catalog::Catalog;
use tollgate_domain::names::Name;
use tollgate_domain::subscription::Subscription;
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

/// A new tenant's first subscription: `plan` of the built-in catalog (version 1).
pub fn first_subscription(plan: &str, start: Timestamp) -> Subscription {
    let catalog = Catalog::builtin();
    Subscription::new(
        uuid::Uuid::new_v4().to_string(),
        TenantId::new(String::new()),
        catalog.plan(plan).unwrap(),
        1,
        start,
    )
}

pub fn new_tenant(n: &str, plan: &str, now: Timestamp) -> NewTenant {
    NewTenant {
        actor: "operator".into(),
        name: name(n),
        tenant_type: TenantType::Freemium,
        currency: "USD".into(),
        subscription: first_subscription(plan, now),
        now,
        recorded_at: now,
    }
}

pub async fn tenant(store: &dyn Store, n: &str) -> Tenant {
    store
        .create_tenant(&new_tenant(n, "free", t("2026-11-01T00:00:00Z")))
        .await
        .expect("create tenant")
}

/// A plain connection pool on the test database, to set up states the
/// store's API cannot make (rows as an older Tollgate left them).
pub async fn raw_pool(db: &tollgate_testkit::TestDatabase) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match location(db) {
        tollgate_store::Location::SqliteDir(dir) => format!("sqlite://{}", dir.join("tollgate.db").display()),
        tollgate_store::Location::Postgres(url) => url,
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}
