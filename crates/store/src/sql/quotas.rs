//! Quotas: quota objects, usage counts and their changes, and the
//! idempotency records of those changes ([`QuotaStore`](crate::QuotaStore)).
//! Part of the shared SQL implementation (compiled per engine).

use std::borrow::Cow;

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::ids::{RequestId, TenantId};
use tollgate_domain::object::ObjectMeta;
use tollgate_domain::quota::{
    DEFAULT_THRESHOLDS, KeyFamily, Limit, QuotaObject, QuotaSpec, ResourceAmount, effective_limit,
    thresholds_crossed,
};
use tollgate_domain::webhook::EventType;

use super::{Cols, DbRow, SqlStore, Tx, audit_in, json, micros, name, timestamp, to_json};
use crate::{Actor, Result, StoreError, UsageChange, UsageCount, UsageOp, UsageOutcome, UsageState};

/// The columns of a quota object, in the order `insert_quota` binds them.
macro_rules! quota_columns {
    () => {
        "namespace, name, uid, labels, annotations, description, disable, spec, \
         creator_class, creator_id, created_at, modified_at"
    };
}

fn quota_from(row: &DbRow) -> Result<QuotaObject> {
    Ok(QuotaObject {
        meta: ObjectMeta {
            namespace: name("quota_objects.namespace", row.try_get("namespace")?)?,
            name: name("quota_objects.name", row.try_get("name")?)?,
            uid: row.try_get("uid")?,
            labels: json("quota_objects.labels", row.try_get("labels")?)?,
            annotations: json("quota_objects.annotations", row.try_get("annotations")?)?,
            description: row.try_get("description")?,
            disable: row.try_get("disable")?,
            creator_class: row.try_get("creator_class")?,
            creator_id: row.try_get("creator_id")?,
            created_at: timestamp("quota_objects.created_at", row.try_get("created_at")?)?,
            modified_at: timestamp("quota_objects.modified_at", row.try_get("modified_at")?)?,
        },
        spec: crate::records::decode_quota_spec(row.try_get("spec")?)?,
    })
}

fn usage_count<R: Cols + ?Sized>(row: &R) -> Result<UsageCount> {
    Ok(UsageCount {
        family: family("quota_usage.family", &row.text("family")?)?,
        key: row.text("key")?,
        used: row.int("used")?,
    })
}

fn family(column: &str, text: &str) -> Result<KeyFamily> {
    KeyFamily::parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column}: unknown family {text:?}")))
}

#[async_trait::async_trait]
impl crate::QuotaStore for SqlStore {
    async fn insert_quota(&self, tenant_id: &TenantId, q: &QuotaObject, actor: Actor<'_>) -> Result<()> {
        let (tenant_id, q, actor) = (tenant_id.clone(), q.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { insert_quota_in(tx, &tenant_id, &q, &actor).await }))
            .await
    }

    async fn replace_quota(
        &self,
        tenant_id: &TenantId,
        q: &QuotaObject,
        actor: Actor<'_>,
    ) -> Result<QuotaObject> {
        let (tenant_id, q, actor) = (tenant_id.clone(), q.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { replace_quota_in(tx, &tenant_id, &q, &actor).await }))
            .await
    }

    async fn quota(&self, tenant_id: &TenantId, namespace: &str, name: &str) -> Result<Option<QuotaObject>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            quota_columns!(),
            " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
        ))
        .bind(tenant_id.as_str())
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(quota_from).transpose()
    }

    async fn quotas(&self, tenant_id: &TenantId, namespace: &str) -> Result<Vec<QuotaObject>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            quota_columns!(),
            " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 ORDER BY name"
        ))
        .bind(tenant_id.as_str())
        .bind(namespace)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(quota_from).collect()
    }

    async fn delete_quota(
        &self,
        tenant_id: &TenantId,
        namespace: &str,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (tenant_id, namespace, name, actor, now) = (
            tenant_id.clone(),
            namespace.to_owned(),
            name.to_owned(),
            actor.to_owned(),
            now,
        );
        self.write(move |tx| {
            Box::pin(async move { delete_quota_in(tx, &tenant_id, &namespace, &name, &actor, now).await })
        })
        .await
    }

    async fn usage(&self, tenant_id: &TenantId) -> Result<Vec<UsageCount>> {
        const SQL: &str =
            "SELECT family, key, used FROM quota_usage WHERE tenant_id = $1 ORDER BY family, key";
        if let Some(inline) = &self.inline {
            return inline.query_all(SQL, &[tenant_id.as_str()], |r| usage_count(r));
        }
        let rows = sqlx::query(SQL)
            .bind(tenant_id.as_str())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(usage_count).collect()
    }

    async fn change_usage(&self, c: &UsageChange<'_>) -> Result<UsageOutcome> {
        let owned = OwnedUsageChange {
            tenant_id: c.tenant_id.clone(),
            family: c.family,
            key: c.key.to_owned(),
            op: c.op,
            request_id: c.request_id.cloned(),
            default_quota: c.default_quota.clone(),
            now: c.now,
            block_reservations: c.block_reservations,
        };
        let owned = std::sync::Arc::new(owned);
        let cache = self.quota_specs.clone();
        let fast = {
            let (owned, cache) = (owned.clone(), cache.clone());
            Box::new(move |conn: &rusqlite::Connection| change_usage_fast(conn, &owned.borrowed(), &cache))
        };
        self.write_fast(fast, move |tx| {
            Box::pin(async move { change_usage_in(tx, &owned.borrowed(), &cache).await })
        })
        .await
    }

    async fn prune_quota_requests(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                // One small batch per transaction, oldest first, so that a
                // large backlog never holds the writer for long.
                let pruned = sqlx::query(
                    "DELETE FROM quota_requests WHERE (tenant_id, operation, request_id) IN \
                     (SELECT tenant_id, operation, request_id FROM quota_requests WHERE created_at < $1 \
                      ORDER BY created_at LIMIT $2)",
                )
                .bind(micros(before))
                .bind(i64::from(limit))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(pruned)
            })
        })
        .await
    }
}

/// Counts one more change to the tenant's quota objects (`tenants.quota_version`),
/// in the transaction that makes it.
async fn bump_quota_version(tx: &mut Tx, tenant_id: &TenantId) -> Result<()> {
    sqlx::query("UPDATE tenants SET quota_version = quota_version + 1 WHERE id = $1")
        .bind(tenant_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_quota_in(tx: &mut Tx, tenant_id: &TenantId, q: &QuotaObject, actor: Actor<'_>) -> Result<()> {
    let m = &q.meta;
    let inserted = sqlx::query(concat!(
        "INSERT INTO quota_objects (tenant_id, ",
        quota_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
    ))
    .bind(tenant_id.as_str())
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .bind(&m.uid)
    .bind(to_json(&m.labels)?)
    .bind(to_json(&m.annotations)?)
    .bind(&m.description)
    .bind(m.disable)
    .bind(crate::records::encode_quota_spec(&q.spec)?)
    .bind(&m.creator_class)
    .bind(&m.creator_id)
    .bind(micros(m.created_at))
    .bind(micros(m.modified_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(
            Reason::QuotaObjectExists,
            format!(
                "quota {:?} already exists in namespace {:?}",
                m.name.as_str(),
                m.namespace.as_str()
            ),
        ));
    }
    bump_quota_version(tx, tenant_id).await?;
    let target = format!("quota/{}", m.name);
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::QuotaCreate,
        &target,
        None,
        Some(quota_json(q)),
        m.created_at,
    )
    .await?;
    Ok(())
}

async fn replace_quota_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    q: &QuotaObject,
    actor: Actor<'_>,
) -> Result<QuotaObject> {
    let m = &q.meta;
    let before = sqlx::query(concat!(
        "SELECT ",
        quota_columns!(),
        " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
    ))
    .bind(tenant_id.as_str())
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(quota_from)
    .transpose()?
    .ok_or_else(|| quota_not_found(m.namespace.as_str(), m.name.as_str()))?;
    let updated = sqlx::query(
        "UPDATE quota_objects SET labels = $4, annotations = $5, description = $6, disable = $7, \
             spec = $8, modified_at = $9 WHERE tenant_id = $1 AND namespace = $2 AND name = $3",
    )
    .bind(tenant_id.as_str())
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .bind(to_json(&m.labels)?)
    .bind(to_json(&m.annotations)?)
    .bind(&m.description)
    .bind(m.disable)
    .bind(crate::records::encode_quota_spec(&q.spec)?)
    .bind(micros(m.modified_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(quota_not_found(m.namespace.as_str(), m.name.as_str()));
    }
    let row = sqlx::query(concat!(
        "SELECT ",
        quota_columns!(),
        " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
    ))
    .bind(tenant_id.as_str())
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let stored = quota_from(&row)?;
    bump_quota_version(tx, tenant_id).await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::QuotaReplace,
        &format!("quota/{}", m.name),
        Some(quota_json(&before)),
        Some(quota_json(&stored)),
        m.modified_at,
    )
    .await?;
    Ok(stored)
}

async fn delete_quota_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    namespace: &str,
    name: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<()> {
    let deleted = sqlx::query(concat!(
        "DELETE FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3 RETURNING ",
        quota_columns!()
    ))
    .bind(tenant_id.as_str())
    .bind(namespace)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(quota_from)
    .transpose()?
    .ok_or_else(|| quota_not_found(namespace, name))?;
    bump_quota_version(tx, tenant_id).await?;
    let target = format!("quota/{name}");
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::QuotaDelete,
        &target,
        Some(quota_json(&deleted)),
        None,
        now,
    )
    .await?;
    Ok(())
}

/// A usage change that owns its parts, for the writer.
struct OwnedUsageChange {
    tenant_id: TenantId,
    family: KeyFamily,
    key: String,
    op: UsageOp,
    request_id: Option<RequestId>,
    default_quota: QuotaSpec,
    now: Timestamp,
    block_reservations: bool,
}

impl OwnedUsageChange {
    fn borrowed(&self) -> UsageChange<'_> {
        UsageChange {
            tenant_id: &self.tenant_id,
            family: self.family,
            key: &self.key,
            op: self.op,
            request_id: self.request_id.as_ref(),
            default_quota: &self.default_quota,
            now: self.now,
            block_reservations: self.block_reservations,
        }
    }
}

/// A reservation: one conditional add (see [`apply_change`]). Binds: tenant,
/// family, key, amount, now, limit (negative: none), the family's cap, the
/// `quota_version` guard (negative: unchecked).
const RESERVE: &str = "INSERT INTO quota_usage (tenant_id, family, key, used, updated_at) \
     SELECT $1, $2, $3, $4, $5 WHERE ($8 < 0 OR (SELECT quota_version FROM tenants WHERE id = $1) = $8) \
     ON CONFLICT (tenant_id, family, key) DO UPDATE SET used = quota_usage.used + $4, updated_at = $5 \
     WHERE ($6 < 0 OR quota_usage.used + $4 <= $6) AND quota_usage.used <= $7 - $4 \
     AND ($8 < 0 OR (SELECT quota_version FROM tenants WHERE id = $1) = $8) \
     RETURNING used";

/// A release, down to zero at most. Binds: tenant, family, key, amount,
/// now, the `quota_version` guard (negative: unchecked).
const RELEASE: &str = "INSERT INTO quota_usage (tenant_id, family, key, used, updated_at) \
     SELECT $1, $2, $3, 0, $5 WHERE ($6 < 0 OR (SELECT quota_version FROM tenants WHERE id = $1) = $6) \
     ON CONFLICT (tenant_id, family, key) DO UPDATE SET \
     used = CASE WHEN quota_usage.used > $4 THEN quota_usage.used - $4 ELSE 0 END, updated_at = $5 \
     WHERE ($6 < 0 OR (SELECT quota_version FROM tenants WHERE id = $1) = $6) \
     RETURNING used";

/// Claims a request id with the change's answer (nothing if it was claimed
/// before).
const CLAIM: &str = "INSERT INTO quota_requests \
     (tenant_id, operation, request_id, family, key, amount, limit_value, current_value, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

/// SQLite's fast path of [`change_usage_in`] (see `sqlite::Fast`), on the
/// writer's connection: a reservation or a release whose tenant's specs are
/// cached, that applies under them, crosses no alert threshold and claims
/// its request id (if it has one). Any other case declines, for
/// `change_usage_in` to decide from the start; where this answers, it runs
/// the same statements as `change_usage_in` would, and answers the same.
fn change_usage_fast(
    conn: &rusqlite::Connection,
    c: &UsageChange<'_>,
    cache: &SpecCache,
) -> Result<Option<UsageOutcome>> {
    use crate::sqlite::dollars;
    use rusqlite::OptionalExtension;
    let reserve = matches!(c.op, UsageOp::Reserve { .. });
    if (c.block_reservations && reserve) || matches!(c.op, UsageOp::Reconcile { .. }) {
        return Ok(None);
    }
    let Some((version, specs)) = cache.get(c.tenant_id) else {
        return Ok(None);
    };
    let (limit, thresholds) = limit_of(c, &specs);
    let (tenant, family, key, amount, now, operation, raw_limit) = (
        c.tenant_id.as_str(),
        c.family.as_str(),
        c.key,
        c.op.amount(),
        micros(c.now),
        c.op.name(),
        limit.as_raw(),
    );
    let current: Option<i64> = if reserve {
        let max = c.family.max_usage();
        if (raw_limit >= 0 && amount > raw_limit) || amount > max {
            return Ok(None);
        }
        let binds = dollars(&[&tenant, &family, &key, &amount, &now, &raw_limit, &max, &version]);
        conn.prepare_cached(RESERVE)?
            .query_row(binds.as_slice(), |row| row.get(0))
            .optional()?
    } else {
        let binds = dollars(&[&tenant, &family, &key, &amount, &now, &version]);
        conn.prepare_cached(RELEASE)?
            .query_row(binds.as_slice(), |row| row.get(0))
            .optional()?
    };
    let Some(current) = current else { return Ok(None) };
    if reserve && !thresholds_crossed(current - amount, current, limit, &thresholds).is_empty() {
        return Ok(None);
    }
    if let Some(request_id) = c.request_id {
        let request_id = request_id.as_str();
        let binds = dollars(&[
            &tenant,
            &operation,
            &request_id,
            &family,
            &key,
            &amount,
            &raw_limit,
            &current,
            &now,
        ]);
        if conn.prepare_cached(CLAIM)?.execute(binds.as_slice())? == 0 {
            return Ok(None);
        }
    }
    Ok(Some(UsageOutcome::Applied(UsageState { limit, current })))
}

async fn change_usage_in(tx: &mut Tx, c: &UsageChange<'_>, cache: &SpecCache) -> Result<UsageOutcome> {
    let family = c.family.as_str();
    let amount = c.op.amount();

    if c.block_reservations && matches!(c.op, UsageOp::Reserve { .. }) {
        // Not a repeat: refused like a reservation past the limit. A repeat
        // still gets its first answer.
        if let Some(replayed) = claimed_answer(tx, c).await? {
            return Ok(replayed);
        }
        tx.discard();
        return Ok(UsageOutcome::Blocked);
    }

    // The limit comes from the tenant's quota objects as of a
    // `quota_version`: from the cache, or read in this transaction. Every
    // change below applies only while the tenant's `quota_version` is still
    // that one (checked in the same statement), so a cached limit never
    // decides after a quota object changed: the change then finds no row,
    // and is tried once more with the objects read afresh.
    let mut cached = match c.op {
        // A reconciliation reads the count first; it is rare.
        UsageOp::Reconcile { .. } => None,
        _ => cache.get(c.tenant_id),
    };
    loop {
        let fresh = cached.is_none();
        let (version, specs) = match cached.take() {
            Some(hit) => hit,
            None => {
                let read = read_specs(tx, c.tenant_id).await?;
                cache.put(c.tenant_id, read.clone());
                read
            }
        };
        let (limit, thresholds) = limit_of(c, &specs);
        // What the change checks `quota_version` against: none when the
        // specs were read in this transaction (as fresh as the change).
        let guard = if fresh { -1 } else { version };
        let Some((before, current)) = apply_change(tx, c, limit, guard).await? else {
            // Refused, or the quota objects changed since the cached ones.
            let row = sqlx::query(
                "SELECT (SELECT quota_version FROM tenants WHERE id = $1) AS version, \
                 (SELECT used FROM quota_usage WHERE tenant_id = $1 AND family = $2 AND key = $3) AS used",
            )
            .bind(c.tenant_id.as_str())
            .bind(family)
            .bind(c.key)
            .fetch_one(&mut **tx)
            .await?;
            let now_version: Option<i64> = row.try_get("version")?;
            if now_version != Some(version) && !fresh {
                cache.forget(c.tenant_id);
                continue;
            }
            // A repeat of a reservation that was granted gets its first
            // answer, though there is no room for it now.
            if let Some(replayed) = claimed_answer(tx, c).await? {
                return Ok(replayed);
            }
            let current: i64 = row.try_get::<Option<i64>, _>("used")?.unwrap_or(0);
            tx.discard();
            return Ok(UsageOutcome::Refused(UsageState { limit, current }));
        };
        if let Some(before) = before {
            thresholds_in(tx, c, before, current, limit, &thresholds).await?;
        }
        // The request id is claimed last, with its answer: one statement. A
        // claim made before (by an earlier request, or on PostgreSQL by a
        // concurrent one, which this insert waits for) wins: this change is
        // rolled back and the first answer returned.
        if let Some(request_id) = c.request_id {
            let claimed = sqlx::query(CLAIM)
                .bind(c.tenant_id.as_str())
                .bind(c.op.name())
                .bind(request_id.as_str())
                .bind(family)
                .bind(c.key)
                .bind(amount)
                .bind(limit.as_raw())
                .bind(current)
                .bind(micros(c.now))
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if claimed == 0 {
                tx.discard();
                return claimed_answer(tx, c).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("request_id {request_id:?} is claimed but not stored"))
                });
            }
        }
        return Ok(UsageOutcome::Applied(UsageState { limit, current }));
    }
}

/// Applies the change's usage statement under `limit`, while the tenant's
/// `quota_version` is `guard` (unchecked when negative): the key's usage
/// after it and, for a reservation or a reconciliation, before it (what
/// threshold events compare); `None` if nothing changed (refused, or the
/// version moved on).
async fn apply_change(
    tx: &mut Tx,
    c: &UsageChange<'_>,
    limit: Limit,
    guard: i64,
) -> Result<Option<(Option<i64>, i64)>> {
    let family = c.family.as_str();
    let amount = c.op.amount();
    let mut reconciled_from: Option<i64> = None;
    let updated: Option<DbRow> = match c.op {
        UsageOp::Reserve { .. } => {
            let max = c.family.max_usage();
            if (limit.as_raw() >= 0 && amount > limit.as_raw()) || amount > max {
                None
            } else {
                // A reservation is one conditional add: PostgreSQL
                // re-evaluates the DO UPDATE's WHERE on the latest row
                // version after a concurrent update commits, and
                // SQLite's write transactions are serial, so usage
                // cannot pass the limit under any interleaving. A key
                // without a row starts at the amount, checked against
                // the limit (and the family's cap) above.
                sqlx::query(RESERVE)
                    .bind(c.tenant_id.as_str())
                    .bind(family)
                    .bind(c.key)
                    .bind(amount)
                    .bind(micros(c.now))
                    .bind(limit.as_raw())
                    .bind(max)
                    .bind(guard)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        }
        UsageOp::Release { .. } => {
            sqlx::query(RELEASE)
                .bind(c.tenant_id.as_str())
                .bind(family)
                .bind(c.key)
                .bind(amount)
                .bind(micros(c.now))
                .bind(guard)
                .fetch_optional(&mut **tx)
                .await?
        }
        UsageOp::Reconcile { .. } => {
            // A reconciliation sets the count: what it was is read first
            // (the row is this transaction's to change until it ends).
            // Its limit was read in this transaction.
            sqlx::query(
                "INSERT INTO quota_usage (tenant_id, family, key, used, updated_at) VALUES ($1, $2, $3, 0, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(c.tenant_id.as_str())
            .bind(family)
            .bind(c.key)
            .bind(micros(c.now))
            .execute(&mut **tx)
            .await?;
            reconciled_from = Some(
                sqlx::query("SELECT used FROM quota_usage WHERE tenant_id = $1 AND family = $2 AND key = $3")
                    .bind(c.tenant_id.as_str())
                    .bind(family)
                    .bind(c.key)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("used")?,
            );
            sqlx::query(
                "UPDATE quota_usage SET used = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND family = $2 AND key = $3 RETURNING used",
            )
            .bind(c.tenant_id.as_str())
            .bind(family)
            .bind(c.key)
            .bind(amount)
            .bind(micros(c.now))
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    let Some(row) = updated else { return Ok(None) };
    let current: i64 = row.try_get("used")?;
    let before = match c.op {
        UsageOp::Reserve { amount } => Some(current - amount),
        UsageOp::Reconcile { .. } => reconciled_from,
        UsageOp::Release { .. } => None,
    };
    Ok(Some((before, current)))
}

/// The first answer to the change's request id, if it was claimed: a
/// repeat of the same change replays it; the same id for another change is
/// a conflict.
async fn claimed_answer(tx: &mut Tx, c: &UsageChange<'_>) -> Result<Option<UsageOutcome>> {
    let Some(request_id) = c.request_id else {
        return Ok(None);
    };
    let Some(row) = sqlx::query(
        "SELECT family, key, amount, limit_value, current_value FROM quota_requests \
         WHERE tenant_id = $1 AND operation = $2 AND request_id = $3",
    )
    .bind(c.tenant_id.as_str())
    .bind(c.op.name())
    .bind(request_id.as_str())
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let same = row.try_get::<String, _>("family")? == c.family.as_str()
        && row.try_get::<String, _>("key")? == c.key
        && row.try_get::<i64, _>("amount")? == c.op.amount();
    if !same {
        return Err(StoreError::Conflict(
            Reason::RequestIdReused,
            format!(
                "request_id {request_id:?} was already used for a different {}",
                c.op.name()
            ),
        ));
    }
    Ok(Some(UsageOutcome::Replayed(UsageState {
        limit: Limit::from_raw(row.try_get("limit_value")?),
        current: row.try_get("current_value")?,
    })))
}

/// A tenant's enabled quota objects' specs, parsed, and the `quota_version`
/// they are of.
type Specs = (i64, std::sync::Arc<[QuotaSpec]>);

/// Tenants' [`Specs`], so that a reservation need not read and parse its
/// tenant's quota objects: the version is checked in the change's own
/// statement (see [`change_usage_in`]), so an entry is never stale where it
/// decides. At most [`SPEC_CACHE_MOST`] tenants (then emptied).
#[derive(Debug, Default)]
pub(crate) struct SpecCache(std::sync::Mutex<std::collections::HashMap<TenantId, Specs>>);

const SPEC_CACHE_MOST: usize = 10_000;

impl SpecCache {
    fn get(&self, tenant_id: &TenantId) -> Option<Specs> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant_id)
            .cloned()
    }

    fn put(&self, tenant_id: &TenantId, specs: Specs) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= SPEC_CACHE_MOST && !map.contains_key(tenant_id) {
            map.clear();
        }
        map.insert(tenant_id.clone(), specs);
    }

    fn forget(&self, tenant_id: &TenantId) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant_id);
    }
}

/// The tenant's `quota_version` and its enabled quota objects' specs, in
/// one statement.
async fn read_specs(tx: &mut Tx, tenant_id: &TenantId) -> Result<Specs> {
    let rows = sqlx::query(
        "SELECT t.quota_version, q.spec FROM tenants t \
         LEFT JOIN quota_objects q ON q.tenant_id = t.id AND q.disable = $2 WHERE t.id = $1",
    )
    .bind(tenant_id.as_str())
    .bind(false)
    .fetch_all(&mut **tx)
    .await?;
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound(format!(
            "tenant {tenant_id:?} does not exist"
        )));
    };
    let version: i64 = first.try_get("quota_version")?;
    let specs = rows
        .iter()
        .filter_map(|row| row.try_get::<Option<String>, _>("spec").transpose())
        .map(|spec| crate::records::decode_quota_spec(&spec?))
        .collect::<Result<Vec<_>>>()?;
    Ok((version, specs.into()))
}

/// The effective limit of the change's key under `specs` (its tenant's
/// enabled quota objects), and the thresholds whose crossing is an event:
/// those of the quota objects that limit the key (together), else the
/// default ones.
fn limit_of(c: &UsageChange<'_>, specs: &[QuotaSpec]) -> (Limit, Cow<'static, [u8]>) {
    let mut overrides = Vec::new();
    let mut thresholds: Option<Vec<u8>> = None;
    for spec in specs {
        if let Some(limit) = spec.limit(c.family, c.key) {
            overrides.push(limit);
            if let Some(t) = &spec.alert_thresholds {
                let all = thresholds.get_or_insert_with(Vec::new);
                all.extend(t);
                all.sort_unstable();
                all.dedup();
            }
        }
    }
    let limit = effective_limit(c.default_quota.limit(c.family, c.key), &overrides);
    // The defaults borrowed: most reservations allocate nothing for them.
    (
        limit,
        thresholds.map_or(Cow::Borrowed(&DEFAULT_THRESHOLDS[..]), Cow::Owned),
    )
}

/// Emits `quota.threshold_crossed` for each threshold a change crossed.
async fn thresholds_in(
    tx: &mut Tx,
    c: &UsageChange<'_>,
    before: i64,
    after: i64,
    limit: Limit,
    thresholds: &[u8],
) -> Result<()> {
    for t in thresholds_crossed(before, after, limit, thresholds) {
        let (used, max) = match c.family {
            KeyFamily::Object => (serde_json::json!(after), serde_json::json!(limit.as_raw())),
            KeyFamily::Resource => (
                serde_json::json!(ResourceAmount::from_micros(after).to_f64()),
                serde_json::json!(ResourceAmount::from_micros(limit.as_raw()).to_f64()),
            ),
        };
        let data = serde_json::json!({
            "kind": match c.family { KeyFamily::Object => "object", KeyFamily::Resource => "resource" },
            "key": c.key,
            "threshold_percent": t,
            "used": used,
            "limit": max,
            "operation": c.op.name(),
            "at": c.now.to_string(),
        });
        let subject = format!("quota/{}/{}", c.family.as_str(), c.key);
        super::webhooks::emit_in(
            tx,
            c.tenant_id,
            EventType::QuotaThresholdCrossed,
            &subject,
            Some(data),
            c.now,
        )
        .await?;
    }
    Ok(())
}

/// What the audit trail records of a quota object: its limits as the API
/// shows them (`{"maximum": 2.5}` vCPU, not the stored millionths; `-1`
/// unlimited).
fn quota_json(q: &QuotaObject) -> serde_json::Value {
    use tollgate_domain::quota::ResourceAmount;
    let limits = |map: &std::collections::BTreeMap<_, Limit>, resource: bool| {
        map.iter()
            .map(|(key, limit): (&tollgate_domain::quota::QuotaKey, &Limit)| {
                let maximum = match *limit {
                    Limit::Unlimited => serde_json::json!(-1),
                    Limit::Max(m) if resource => serde_json::json!(ResourceAmount::from_micros(m).to_f64()),
                    Limit::Max(m) => serde_json::json!(m),
                };
                (key.as_str().to_owned(), serde_json::json!({ "maximum": maximum }))
            })
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "name": q.meta.name.as_str(),
        "labels": q.meta.labels,
        "description": q.meta.description,
        "disable": q.meta.disable,
        "spec": {
            "object_limits": limits(&q.spec.object_limits, false),
            "resource_limits": limits(&q.spec.resource_limits, true),
            "api_limits": q.spec.api_limits,
        },
    })
}

fn quota_not_found(namespace: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "quota {name:?} does not exist in namespace {namespace:?}"
    ))
}
