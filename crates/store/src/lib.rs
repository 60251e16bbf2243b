//! Tollgate's storage: the [`Store`] trait and its two engines.
//!
//! Both engines run the same SQL (`sql.rs`, compiled once per backend with that
//! backend's concrete sqlx types); only connection setup, migrations and the
//! statement that opens a write transaction differ. One conformance suite
//! (`tests/conformance`) runs against both.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use tollgate_domain::access::{NamespaceScope, Role};
use tollgate_domain::names::Name;
use tollgate_domain::quota::{KeyFamily, Limit, QuotaObject, QuotaSpec};
use tollgate_domain::tenant::{Namespace, Tenant, TenantType};
use tollgate_domain::token::ApiToken;
use tollgate_domain::{Error, ErrorKind};

mod migrations;
pub mod postgres;
pub mod sqlite;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request conflicts with stored state (e.g. a reused request id).
    #[error("{0}")]
    Conflict(String),
    /// Stored data that the code cannot read back: a bug or a manual edit.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(e),
            sqlx::Error::Database(ref db) if is_busy(db.code().as_deref()) => Self::Unavailable(e),
            other => Self::Database(other),
        }
    }
}

/// SQLite's BUSY/LOCKED codes: another writer held the lock past busy_timeout.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "262"))
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            StoreError::Conflict(_) => ErrorKind::FailedPrecondition,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) | StoreError::Database(_) | StoreError::Migrate(_) => ErrorKind::Internal,
        };
        // Internal details are logged by whoever turns this into a response;
        // the message of user-facing kinds is already user-facing.
        Error::new(kind, e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file `tollgate.db` in this directory (created if missing).
    SqliteDir(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// Opens the store at `location` and brings its schema up to date.
pub async fn open(location: &Location) -> Result<Arc<dyn Store>> {
    Ok(match location {
        Location::SqliteDir(dir) => Arc::new(sqlite::SqlStore::open(dir).await?),
        Location::Postgres(url) => Arc::new(postgres::SqlStore::open(url).await?),
    })
}

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: Name,
    pub tenant_type: TenantType,
    pub now: Timestamp,
}

/// A token to create; the caller generated the secret and passes its digest.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub scope: NamespaceScope,
    pub digest: [u8; 32],
    pub expires_at: Option<Timestamp>,
    pub now: Timestamp,
}

/// Current usage of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub family: KeyFamily,
    pub key: String,
    pub used: i64,
}

/// A change to a key's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOp {
    /// Add `amount` if the result stays within the limit.
    Reserve { amount: i64 },
    /// Subtract `amount`, not below zero.
    Release { amount: i64 },
    /// Set the absolute usage, whatever the limit.
    Reconcile { current: i64 },
}

impl UsageOp {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reserve { .. } => "reserve",
            Self::Release { .. } => "release",
            Self::Reconcile { .. } => "reconcile",
        }
    }

    fn amount(self) -> i64 {
        match self {
            Self::Reserve { amount } | Self::Release { amount } => amount,
            Self::Reconcile { current } => current,
        }
    }
}

/// A usage change request.
#[derive(Debug, Clone)]
pub struct UsageChange<'a> {
    pub tenant_id: &'a str,
    pub family: KeyFamily,
    pub key: &'a str,
    pub op: UsageOp,
    /// Idempotency key; a repeat of a successful request returns its answer.
    pub request_id: Option<&'a str>,
    /// The tenant's default quota (its plan's); quota objects override it.
    pub default_quota: &'a QuotaSpec,
    pub now: Timestamp,
}

/// Usage and limit of one key after (or instead of) a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageState {
    pub limit: Limit,
    pub current: i64,
}

/// What a usage change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOutcome {
    Applied(UsageState),
    /// The request id was seen before; this is the first answer, nothing changed.
    Replayed(UsageState),
    /// The reservation would pass the limit; nothing changed.
    Refused(UsageState),
}

/// Persistence for everything Tollgate keeps.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Creates a tenant and its `system` namespace.
    async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn tenants(&self) -> Result<Vec<Tenant>>;

    async fn create_namespace(&self, tenant_id: &str, name: &Name, now: Timestamp) -> Result<Namespace>;
    async fn namespaces(&self, tenant_id: &str) -> Result<Vec<Namespace>>;
    async fn namespace_exists(&self, tenant_id: &str, name: &str) -> Result<bool>;

    /// Creates a token; every scoped namespace must exist.
    async fn create_token(&self, new: &NewToken) -> Result<ApiToken>;
    /// Finds a token by the digest of its secret, whatever its state.
    async fn token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<ApiToken>>;
    async fn tokens(&self, tenant_id: &str) -> Result<Vec<ApiToken>>;
    /// Revokes a token of the tenant (by id); revoking twice is fine.
    async fn revoke_token(&self, tenant_id: &str, token_id: &str, now: Timestamp) -> Result<ApiToken>;

    /// Stores a new quota object; `AlreadyExists` if the name is taken.
    async fn insert_quota(&self, tenant_id: &str, quota: &QuotaObject) -> Result<()>;
    /// Replaces metadata and spec of an existing quota object, keeping its
    /// uid, creation time and creator; returns the stored object.
    async fn replace_quota(&self, tenant_id: &str, quota: &QuotaObject) -> Result<QuotaObject>;
    async fn quota(&self, tenant_id: &str, namespace: &str, name: &str) -> Result<Option<QuotaObject>>;
    async fn quotas(&self, tenant_id: &str, namespace: &str) -> Result<Vec<QuotaObject>>;
    async fn delete_quota(&self, tenant_id: &str, namespace: &str, name: &str) -> Result<()>;

    /// Current usage of every key the tenant has used.
    async fn usage(&self, tenant_id: &str) -> Result<Vec<UsageCount>>;
    /// Applies a usage change atomically against the effective limit.
    async fn change_usage(&self, change: &UsageChange<'_>) -> Result<UsageOutcome>;
}
