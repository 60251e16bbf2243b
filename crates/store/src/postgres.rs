//! The PostgreSQL engine, for production and for several replicas sharing one
//! database.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use crate::faults::{Fault, FaultPlan};
use crate::health::Health;
use crate::{BoxFuture, Result, StoreOptions};

pub(crate) type Db = sqlx::Postgres;
pub(crate) const BACKEND: &str = "postgres";

/// Opens and closes a subquery over a bound JSON array of strings, one row
/// per string.
pub(crate) const TEXT_LIST: (&str, &str) = ("(SELECT json_array_elements_text(CAST(", " AS json)))");

/// Serializes a tenant's billing changes (payment-method roles) across
/// connections and replicas: the row lock is held until commit.
pub(crate) const LOCK_TENANT: &str = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE";
/// [`LOCK_TENANT`] that also reads how far the tenant's raw events were
/// deleted (ingestion and replay need it).
pub(crate) const LOCK_TENANT_READ_MARK: &str =
    "SELECT events_purged_before FROM tenants WHERE id = $1 FOR UPDATE";

#[path = "sql.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "compiled once per engine with that engine's concrete types"
)]
mod sql;
pub use sql::SqlStore;

/// PostgreSQL connections are no SQLite handles: `None`, without running
/// `f` (the caller takes its sqlx path). See the SQLite engine's.
pub(crate) async fn with_raw_conn<T>(
    _tx: &mut Tx,
    _f: impl FnOnce(&rusqlite::Connection) -> crate::Result<T>,
) -> crate::Result<Option<T>> {
    Ok(None)
}

fn migrator() -> sqlx::migrate::Migrator {
    crate::migrations::Engine::Postgres.migrator()
}

impl SqlStore {
    /// Connects to `url` and migrates the database (migrations take an
    /// advisory lock, so replicas starting together apply them once).
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrator().run(&pool).await?;
        let store = Self {
            read: pool.clone(),
            writer: Writer {
                pool,
                health: Arc::new(Health::default()),
                faults: options.faults.clone().unwrap_or_default(),
            },
            quota_specs: Default::default(),
            inline: None,
        };
        store.after_migrations().await?;
        Ok(store)
    }
}

/// A write job's view of the database: its own transaction (READ COMMITTED
/// is enough: every check-and-change is one conditional UPDATE).
pub(crate) struct Tx {
    inner: sqlx::Transaction<'static, Db>,
    discard: bool,
}

impl Tx {
    /// Rolls the job's changes back although it returns `Ok`.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

/// Runs write jobs, each in its own transaction on a pooled connection:
/// PostgreSQL commits concurrent transactions together by itself. A job
/// that fails is rolled back when its transaction is dropped; a connection
/// that broke is discarded by the pool, which tests connections before
/// handing them out.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    pool: PgPool,
    pub(crate) health: Arc<Health>,
    faults: Arc<FaultPlan>,
}

impl Writer {
    /// [`run`](Self::run): the fast path is SQLite's alone.
    pub(crate) async fn run_fast<T, F>(&self, _fast: Option<crate::sqlite::Fast<T>>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        self.run(f).await
    }

    /// Runs `f` in a write transaction and answers once it is committed.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let queued = std::time::Instant::now();
        let result = async {
            let mut tx = Tx {
                inner: self.pool.begin().await?,
                discard: false,
            };
            // Waiting for a pooled connection (and BEGIN) is this engine's queue.
            crate::record_write_wait(queued.elapsed());
            let value = f(&mut tx).await?;
            match self.faults.current() {
                None => {}
                // After the job's statements, before its commit.
                Some(Fault::DiskFull) => {
                    sqlx::raw_sql(
                        "DO $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' \
                         USING ERRCODE = 'disk_full'; END $$",
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Some(Fault::ConnectionLost { .. }) => {
                    sqlx::raw_sql("SELECT pg_terminate_backend(pg_backend_pid())")
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if tx.discard {
                tx.inner.rollback().await?;
            } else {
                tx.inner.commit().await?;
            }
            Ok::<T, crate::StoreError>(value)
        }
        .await;
        match &result {
            Ok(_) => self.health.committed(),
            Err(e) if e.is_unavailable() => self.health.fault(&e.to_string()),
            Err(_) => {}
        }
        result
    }

    /// Reads and writes share one pool (`shared`).
    pub(crate) fn pools(&self, _read: &PgPool) -> Vec<crate::PoolStats> {
        vec![crate::pool_stats("shared", &self.pool)]
    }

    /// PostgreSQL manages its own space; a full disk shows as a failed write.
    pub(crate) async fn capacity_problem(&self, _tx: &mut Tx) -> Result<Option<String>> {
        Ok(None)
    }
}
