//! The SQL implementation of [`Store`](crate::Store), shared by both engines.
//!
//! This file is compiled twice, as `sqlite::sql` and `postgres::sql`, each time
//! with that engine's concrete `Db` type and constants from its parent module.
//! Queries use `$N` placeholders, which both engines accept.
//!
//! Each aggregate (see `aggregates.rs`) has a child module under `sql/` with
//! its `impl crate::XStore for SqlStore` and its SQL: `tenancy`, `quotas`,
//! `catalogs`, `billing`, `metering`, `coupons`, `invoicing`, `dunning`,
//! `audit`, `webhooks` and `health`. This file keeps what they share: the store and its `write`,
//! time and name decoding, hex digests, and `audit_in`, through which every
//! aggregate appends to the audit trail inside its own transaction.

use jiff::Timestamp;
use sqlx::Pool;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::ids::TenantId;
use tollgate_domain::names::Name;
use tollgate_domain::webhook::EventType;

use super::{BACKEND, Db, LOCK_TENANT, LOCK_TENANT_READ_MARK, Tx, Writer};
use crate::{Result, StoreError};

#[path = "sql/alerts.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod alerts;
#[path = "sql/audit.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod audit;
#[path = "sql/billing.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod billing;
#[path = "sql/catalogs.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod catalogs;
#[path = "sql/console.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod console;
#[path = "sql/coupons.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod coupons;
#[path = "sql/credits.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod credits;
#[path = "sql/dunning.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod dunning;
#[path = "sql/health.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod health;
#[path = "sql/invoicing.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod invoicing;
#[path = "sql/metering.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod metering;
#[path = "sql/quotas.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod quotas;
#[path = "sql/tenancy.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod tenancy;
#[path = "sql/webhooks.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod webhooks;

type DbRow = <Db as sqlx::Database>::Row;
pub(crate) use crate::cols::Cols;

impl SqlStore {
    /// One-off work after the migrations that SQL alone cannot do.
    pub(crate) async fn after_migrations(&self) -> Result<()> {
        metering::build_daily_usage(self).await
    }
}

/// A store on one database. Writes go through the engine's `Writer` (for
/// SQLite one connection that commits concurrent writers together); reads
/// through `read`.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) read: Pool<Db>,
    pub(super) writer: Writer,
    /// Tenants' parsed quota objects by `quota_version`, for reservations.
    pub(super) quota_specs: std::sync::Arc<quotas::SpecCache>,
    /// Inline reads for the hot paths, on SQLite (always `None` on
    /// PostgreSQL).
    pub(super) inline: Option<std::sync::Arc<crate::sqlite::Inline>>,
}

impl SqlStore {
    /// Runs `f` in a write transaction; answers once it is committed (or
    /// rolled back, on an error or [`Tx::discard`]). `f` owns what it needs:
    /// the engine may run it on another task, after the caller is gone.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> crate::BoxFuture<'t, Result<T>> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// [`write`](Self::write) with a fast path for SQLite's writer (see
    /// `sqlite::Fast`); PostgreSQL runs `f` alone.
    pub(crate) async fn write_fast<T, F>(&self, fast: crate::sqlite::Fast<T>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> crate::BoxFuture<'t, Result<T>> + Send + 'static,
    {
        self.writer.run_fast(Some(fast), f).await
    }
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn timestamp(column: &str, micros: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn opt_timestamp(column: &str, micros: Option<i64>) -> Result<Option<Timestamp>> {
    micros.map(|m| timestamp(column, m)).transpose()
}

fn name(column: &str, value: &str) -> Result<Name> {
    Name::parse(column, value).map_err(|e| StoreError::Corrupt(e.message))
}

fn json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(column: &str, text: &str) -> Result<[u8; 32]> {
    let bad = || StoreError::Corrupt(format!("{column}: not 64 hex digits"));
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Who the audit trail names for changes Tollgate makes by itself.
const SYSTEM: &str = "tollgate";

/// Appends to the audit trail inside a transaction; a change of a tenant's
/// that is an event ([`EventType::for_audit`]) is written into the webhook
/// outbox in the same transaction.
#[allow(clippy::too_many_arguments)]
async fn audit_in(
    tx: &mut Tx,
    tenant_id: Option<&TenantId>,
    actor: &str,
    action: AuditAction,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(tenant_id.map(TenantId::as_str))
    .bind(micros(at))
    .bind(actor)
    .bind(action.as_str())
    .bind(target)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .execute(&mut **tx)
    .await?;
    if let Some(tenant_id) = tenant_id {
        for &event in EventType::for_audit(action) {
            webhooks::emit_in(tx, tenant_id, event, target, None, at).await?;
        }
    }
    Ok(())
}
