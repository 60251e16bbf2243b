//! The embedded SQLite engine: one file in the data directory, WAL mode, so
//! that the server and the operator CLI can use it at the same time.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Result, StoreError};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) const BACKEND: &str = "sqlite";
/// Takes the write lock up front: a deferred transaction that reads before it
/// writes fails with SQLITE_BUSY when another connection wrote in between,
/// whatever the busy timeout.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Serializes a tenant's billing changes; `BEGIN IMMEDIATE` already
/// serializes every writer, so this only checks that the tenant exists.
pub(crate) const LOCK_TENANT: &str = "SELECT id FROM tenants WHERE id = $1";

#[path = "sql.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "compiled once per engine with that engine's concrete types"
)]
mod sql;
pub use sql::SqlStore;

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "tollgate.db";

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn migrator() -> sqlx::migrate::Migrator {
    crate::migrations::migrator(&[
        (
            1,
            "foundation",
            include_str!("../migrations/sqlite/0001_foundation.sql"),
        ),
        (
            2,
            "billing",
            include_str!("../migrations/sqlite/0002_billing.sql"),
        ),
        (
            3,
            "metering",
            include_str!("../migrations/sqlite/0003_metering.sql"),
        ),
        (
            4,
            "invoicing",
            include_str!("../migrations/sqlite/0004_invoicing.sql"),
        ),
        (
            5,
            "daily usage",
            include_str!("../migrations/sqlite/0005_daily_usage.sql"),
        ),
    ])
}

/// How every connection to `dir/tollgate.db` is made: WAL, `synchronous =
/// NORMAL`, a busy timeout so that processes sharing the file wait for each
/// other, foreign keys on.
pub fn connect_options(dir: &Path) -> Result<SqliteConnectOptions> {
    let url = format!("sqlite://{}", dir.join(FILE_NAME).display());
    Ok(SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

impl SqlStore {
    /// Opens (creating if needed) `dir/tollgate.db` and migrates it.
    pub async fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        let options = connect_options(dir)?;
        // One writer connection: writers in this process queue in the pool
        // rather than spin on the file lock.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        migrator().run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await?;
        let store = Self { read, write };
        store.after_migrations().await?;
        Ok(store)
    }
}
