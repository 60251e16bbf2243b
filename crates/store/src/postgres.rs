//! The PostgreSQL engine, for production and for several replicas sharing one
//! database.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::Result;

pub(crate) type Db = sqlx::Postgres;
pub(crate) const BACKEND: &str = "postgres";
/// READ COMMITTED is enough: every check-and-change is one conditional UPDATE.
pub(crate) const BEGIN_WRITE: &str = "BEGIN";

/// Serializes a tenant's billing changes (payment-method roles) across
/// connections and replicas: the row lock is held until commit.
pub(crate) const LOCK_TENANT: &str = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE";

#[path = "sql.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "compiled once per engine with that engine's concrete types"
)]
mod sql;
pub use sql::SqlStore;

fn migrator() -> sqlx::migrate::Migrator {
    crate::migrations::migrator(&[
        (
            1,
            "foundation",
            include_str!("../migrations/postgres/0001_foundation.sql"),
        ),
        (
            2,
            "billing",
            include_str!("../migrations/postgres/0002_billing.sql"),
        ),
        (
            3,
            "metering",
            include_str!("../migrations/postgres/0003_metering.sql"),
        ),
        (
            4,
            "invoicing",
            include_str!("../migrations/postgres/0004_invoicing.sql"),
        ),
        (
            5,
            "daily usage",
            include_str!("../migrations/postgres/0005_daily_usage.sql"),
        ),
    ])
}

impl SqlStore {
    /// Connects to `url` and migrates the database (migrations take an
    /// advisory lock, so replicas starting together apply them once).
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrator().run(&pool).await?;
        let store = Self {
            read: pool.clone(),
            write: pool,
        };
        store.after_migrations().await?;
        Ok(store)
    }
}
