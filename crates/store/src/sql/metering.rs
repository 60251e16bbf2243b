//! Metering: usage events and the hourly buckets and daily summaries kept
//! from them ([`MeteringStore`](crate::MeteringStore)). Part of the shared
//! SQL implementation (compiled per engine).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;
use tollgate_domain::ids::EventId;
use tollgate_domain::ids::TenantId;

use jiff::Timestamp;
use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row};
use tollgate_domain::audit::AuditAction;
use tollgate_domain::catalog::Aggregation;
use tollgate_domain::metering::{self, Bucket, BucketKey, ObjectKey, ObjectUsage, UsageEvent};
use tollgate_domain::names::Name;

use super::super::TEXT_LIST;
use super::{
    Cols, Db, DbRow, LOCK_TENANT, LOCK_TENANT_READ_MARK, SqlStore, Tx, audit_in, micros, opt_timestamp,
    timestamp,
};
use crate::{
    Actor, Aggregations, BucketFilter, DistinctBy, DistinctKey, EventRetention, ReplayStats, Result,
    StoreError, UsageFloor,
};

/// Most rows per multi-row statement (at most 11 parameters each, well under
/// both engines' limits).
const MAX_CHUNK: usize = 512;

/// Splits `items` into runs whose lengths are powers of two (largest first,
/// at most [`MAX_CHUNK`]). Each statement built from a run is prepared once
/// per connection and cached: with runs of any length, every batch size
/// would add its own (large) prepared statement to the connection's cache,
/// and memory would grow with the variety of batch sizes. Here there are at
/// most ten shapes per statement.
fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = MAX_CHUNK.min(1 << rest.len().ilog2());
        let (run, tail) = rest.split_at(len);
        rest = tail;
        Some(run)
    })
}
/// Events read per page during a replay.
const REPLAY_PAGE: i64 = 10_000;

fn decimal(column: &str, text: &str) -> Result<Decimal> {
    Decimal::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[async_trait::async_trait]
impl crate::MeteringStore for SqlStore {
    async fn ingest(
        &self,
        tenant_id: &TenantId,
        events: &[UsageEvent],
        aggregation: &Aggregations,
        now: Timestamp,
    ) -> Result<Vec<bool>> {
        ingest(self, tenant_id, events, aggregation, now).await
    }

    async fn buckets(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(BucketKey, Bucket)>> {
        buckets(self, tenant_id, filter).await
    }

    async fn object_usage(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(ObjectKey, ObjectUsage)>> {
        object_usage(self, tenant_id, filter).await
    }

    async fn daily_usage(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(Timestamp, ObjectKey, ObjectUsage)>> {
        daily_usage(self, tenant_id, filter).await
    }

    async fn compact_distinct(
        &self,
        tenant_id: &TenantId,
        periods: &[(Timestamp, Timestamp)],
    ) -> Result<u64> {
        let (tenant_id, periods) = (tenant_id.clone(), periods.to_vec());
        self.write(move |tx| Box::pin(async move { compact_distinct_in(tx, &tenant_id, &periods).await }))
            .await
    }

    async fn distinct_counts(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
        by: DistinctBy,
    ) -> Result<Vec<(DistinctKey, i64)>> {
        let group = match by {
            DistinctBy::Metric => "metric_label",
            DistinctBy::Object => "metric_label, namespace, object_name",
            DistinctBy::Hour => "metric_label, namespace, object_name, hour",
        };
        // Hourly rows in the range, and whole periods kept per period that
        // overlap it.
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {group}, COUNT(DISTINCT value) AS n FROM (\
             SELECT metric_label, namespace, object_name, hour, value FROM usage_distinct WHERE tenant_id = "
        ));
        q.push_bind(tenant_id.as_str());
        q.push(" AND hour >= ").push_bind(micros(filter.from));
        q.push(" AND hour < ").push_bind(micros(filter.to));
        push_distinct_filters(&mut q, filter);
        q.push(
            " UNION ALL SELECT metric_label, namespace, object_name, hour_start AS hour, value \
             FROM usage_distinct_periods WHERE tenant_id = ",
        );
        q.push_bind(tenant_id.as_str());
        q.push(" AND hour_start < ").push_bind(micros(filter.to));
        q.push(" AND hour_end > ").push_bind(micros(filter.from));
        push_distinct_filters(&mut q, filter);
        q.push(format!(") d GROUP BY {group} ORDER BY {group}"));
        let rows = q.build().fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let metric_label: String = r.try_get("metric_label")?;
                let object = match by {
                    DistinctBy::Metric => None,
                    _ => Some(ObjectKey {
                        namespace: r.try_get("namespace")?,
                        metric_label: metric_label.clone(),
                        object_name: r.try_get("object_name")?,
                    }),
                };
                let hour = match by {
                    DistinctBy::Hour => Some(timestamp("usage_distinct.hour", r.try_get("hour")?)?),
                    _ => None,
                };
                Ok((
                    DistinctKey {
                        metric_label,
                        object,
                        hour,
                    },
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect()
    }

    async fn usage_floor(&self, tenant_id: &TenantId) -> Result<UsageFloor> {
        let row = sqlx::query(
            "SELECT (SELECT MAX(period_start) FROM invoices WHERE tenant_id = $1) AS latest, \
             (SELECT events_purged_before FROM tenants WHERE id = $1) AS purged",
        )
        .bind(tenant_id.as_str())
        .fetch_one(&self.read)
        .await?;
        Ok(UsageFloor {
            latest_invoice_start: opt_timestamp("invoices.period_start", row.try_get("latest")?)?,
            events_purged_before: opt_timestamp("tenants.events_purged_before", row.try_get("purged")?)?,
        })
    }

    async fn event_retention(&self) -> Result<Vec<EventRetention>> {
        let rows = sqlx::query(
            "SELECT t.id, t.created_at, \
             (SELECT MAX(i.period_start) FROM invoices i WHERE i.tenant_id = t.id) AS latest, \
             (SELECT MIN(e.at) FROM usage_events e WHERE e.tenant_id = t.id) AS oldest \
             FROM tenants t ORDER BY t.id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRetention {
                    tenant_id: TenantId::new(r.try_get::<String, _>("id")?),
                    created_at: timestamp("tenants.created_at", r.try_get("created_at")?)?,
                    latest_invoice_start: opt_timestamp("invoices.period_start", r.try_get("latest")?)?,
                    oldest_event: opt_timestamp("usage_events.at", r.try_get("oldest")?)?,
                })
            })
            .collect()
    }

    async fn purge_events(&self, tenant_id: &TenantId, before: Timestamp, limit: u32) -> Result<u64> {
        // A whole hour: a replay rebuilds whole hours from the mark on.
        let (tenant_id, before) = (tenant_id.clone(), metering::hour_of(before));
        self.write(move |tx| {
            Box::pin(async move {
                // The mark first, in the same transaction: a replay or an
                // ingestion that sees any event gone also sees the mark.
                sqlx::query(
                    "UPDATE tenants SET events_purged_before = $2 WHERE id = $1 \
                     AND (events_purged_before IS NULL OR events_purged_before < $2)",
                )
                .bind(tenant_id.as_str())
                .bind(micros(before))
                .execute(&mut **tx)
                .await?;
                // Oldest first through (tenant_id, at, event_id): a small
                // batch per transaction, so the writer is held briefly.
                let purged = sqlx::query(
                    "DELETE FROM usage_events WHERE tenant_id = $1 AND (at, event_id) IN \
                     (SELECT at, event_id FROM usage_events WHERE tenant_id = $1 AND at < $2 \
                      ORDER BY at, event_id LIMIT $3)",
                )
                .bind(tenant_id.as_str())
                .bind(micros(before))
                .bind(i64::from(limit))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(purged)
            })
        })
        .await
    }

    async fn replay(
        &self,
        tenant_id: &TenantId,
        aggregation: &Aggregations,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ReplayStats> {
        replay(self, tenant_id, aggregation, actor, now).await
    }
}

async fn ingest(
    store: &SqlStore,
    tenant_id: &TenantId,
    events: &[UsageEvent],
    aggregation: &Aggregations,
    now: Timestamp,
) -> Result<Vec<bool>> {
    let (tenant_id, events, aggregation) = (tenant_id.clone(), events.to_vec(), aggregation.clone());
    // What the batch adds if each of its events is new, folded here, on the
    // caller's task: the writer, which every write waits for, then only
    // checks that they were.
    let firsts = first_occurrences(&events, i64::MIN);
    let folded = fold(&events, &firsts, &aggregation);
    store
        .write(move |tx| {
            Box::pin(
                async move { ingest_in(tx, &tenant_id, &events, (firsts, folded), &aggregation, now).await },
            )
        })
        .await
}

/// Whether each of `events` is the first of its id in the batch among those
/// at or after `floor` (later ones are duplicates; earlier ones are never
/// stored).
fn first_occurrences(events: &[UsageEvent], floor: i64) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(events.len());
    events
        .iter()
        .map(|e| micros(e.at) >= floor && seen.insert(e.id.as_str()))
        .collect()
}

/// The partial buckets of the events marked in `counted`.
type Partial = BTreeMap<BucketKey, (Bucket, Aggregation)>;

/// Folds the events marked in `counted` into partial buckets.
fn fold(events: &[UsageEvent], counted: &[bool], aggregation: &Aggregations) -> Partial {
    let mut partial = Partial::new();
    for (e, _) in events.iter().zip(counted).filter(|(_, counted)| **counted) {
        let agg = aggregation.of(&e.metric_label);
        let b = Bucket::of(e, agg);
        partial
            .entry(BucketKey::of(e))
            .and_modify(|(x, _)| *x = x.merge(&b, agg))
            .or_insert((b, agg));
    }
    partial
}

/// Stores the new ones of `events` and folds them into the rollups;
/// whether each event was stored now (a duplicate, or one stored before,
/// was not). `folded` is what [`fold`] makes of the batch's first
/// occurrences ([`first_occurrences`] with no floor), used as is when every
/// one of them was new.
async fn ingest_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    events: &[UsageEvent],
    folded: (Vec<bool>, Partial),
    aggregation: &Aggregations,
    now: Timestamp,
) -> Result<Vec<bool>> {
    // Serializes a tenant's ingestion so that read-merge-write of buckets is
    // safe, and with the deletion of its raw events.
    let purged: Option<i64> = sqlx::query_scalar(LOCK_TENANT_READ_MARK)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    // An event before the retention mark may have been stored and deleted:
    // it is not stored (again), so never counted twice. The caller's
    // admission floor refuses these; this closes the window between its
    // reading the floor and this transaction.
    let purged = purged.unwrap_or(i64::MIN);

    // The first occurrence of an id in the batch is the candidate; later ones are duplicates.
    let (firsts, folded) = folded;
    let below_mark;
    let candidate: &[bool] = if events.iter().any(|e| micros(e.at) < purged) {
        below_mark = first_occurrences(events, purged);
        &below_mark
    } else {
        &firsts
    };
    let candidates: Vec<&UsageEvent> = events
        .iter()
        .zip(candidate)
        .filter(|(_, c)| **c)
        .map(|(e, _)| e)
        .collect();
    let raw = super::super::with_raw_conn(tx, |conn| insert_each(conn, tenant_id, &candidates, now)).await?;
    let new_candidates: Vec<bool> = match raw {
        Some(new) => new,
        None => {
            let mut returned: HashSet<String> = HashSet::new();
            for chunk in chunks(&candidates) {
                let mut q = insert_events(tenant_id, chunk, now);
                q.push(" ON CONFLICT DO NOTHING RETURNING event_id");
                for row in q.build().fetch_all(&mut **tx).await? {
                    returned.insert(row.try_get("event_id")?);
                }
            }
            candidates
                .iter()
                .map(|e| returned.contains(e.id.as_str()))
                .collect()
        }
    };
    // Whether each event was stored now: its id's candidate, and new.
    let mut new_candidates = new_candidates.into_iter();
    let inserted: Vec<bool> = candidate
        .iter()
        .map(|c| *c && new_candidates.next().unwrap_or(false))
        .collect();

    if inserted.iter().any(|i| *i) {
        // The tenant's usage alerts see this batch at their next evaluation.
        super::alerts::mark_ingested_in(tx, tenant_id).await?;
    }

    // Fold the new events into partial buckets (folded before, unless some
    // were not new), then into the stored ones.
    let partial = if inserted == firsts {
        folded
    } else {
        fold(events, &inserted, aggregation)
    };
    // Unique-count meters: each new event's value, in its hour and object
    // (nothing to look at for a catalog without them).
    let distinct: BTreeSet<DistinctRow<'_>> = events
        .iter()
        .zip(&inserted)
        .filter(|_| aggregation.has_unique())
        .filter(|(_, inserted)| **inserted)
        .filter_map(|(e, _)| {
            let property = aggregation.unique_property(&e.metric_label)?;
            Some(DistinctRow {
                metric_label: &e.metric_label,
                hour: micros(metering::hour_of(e.at)),
                namespace: e.namespace.as_str(),
                object_name: &e.object_name,
                value: e.properties.get(property)?.as_str(),
            })
        })
        .collect();
    write_distinct(tx, tenant_id, &distinct.into_iter().collect::<Vec<_>>()).await?;
    // Every stored bucket of the hours touched: the ones merged into, and
    // the others of the same objects, whose hour totals the days need.
    let stored = read_hours(tx, tenant_id, &partial).await?;
    let merged: Vec<(&BucketKey, Bucket)> = partial
        .iter()
        .map(|(key, (bucket, agg))| match stored.get(key) {
            Some(s) => (key, s.merge(bucket, *agg)),
            None => (key, bucket.clone()),
        })
        .collect();
    write_buckets(tx, tenant_id, merged.iter().map(|(k, b)| (*k, b))).await?;
    let touched: BTreeSet<(ObjectKey, Timestamp)> =
        partial.keys().map(|k| (ObjectKey::of(k), k.hour)).collect();
    let before = metering::hour_totals(stored.iter());
    let mut after_buckets = stored.clone();
    after_buckets.extend(merged.into_iter().map(|(k, b)| (k.clone(), b)));
    let after = metering::hour_totals(after_buckets.iter());
    let changes: Vec<HourChange> = touched
        .into_iter()
        .map(|(object, hour)| HourChange {
            before: before.get(&(object.clone(), hour)).copied().unwrap_or_default(),
            after: after.get(&(object.clone(), hour)).copied().unwrap_or_default(),
            object,
            hour,
        })
        .collect();
    update_days(tx, tenant_id, &changes).await?;
    Ok(inserted)
}

/// The multi-row INSERT of `events` (without its conflict clause).
fn insert_events(tenant_id: &TenantId, events: &[&UsageEvent], now: Timestamp) -> QueryBuilder<Db> {
    let mut q = QueryBuilder::<Db>::new(
        "INSERT INTO usage_events (tenant_id, event_id, namespace, metric_label, object_name, deployment, \
         container, quantity, at, received_at, properties) ",
    );
    q.push_values(events, |mut b, e| {
        b.push_bind(tenant_id.as_str())
            .push_bind(e.id.as_str())
            .push_bind(e.namespace.as_str())
            .push_bind(&e.metric_label)
            .push_bind(&e.object_name)
            .push_bind(&e.deployment)
            .push_bind(&e.container)
            .push_bind(e.quantity.to_string())
            .push_bind(micros(e.at))
            .push_bind(micros(now))
            .push_bind(properties_text(&e.properties));
    });
    q
}

/// SQLite (see `with_raw_conn`): inserts each of `events` that is not
/// stored yet, one prepared statement step per event; whether each was new.
fn insert_each(
    conn: &rusqlite::Connection,
    tenant_id: &TenantId,
    events: &[&UsageEvent],
    now: Timestamp,
) -> Result<Vec<bool>> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO usage_events (tenant_id, event_id, namespace, metric_label, object_name, deployment, \
         container, quantity, at, received_at, properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT DO NOTHING",
    )?;
    events
        .iter()
        .map(|e| {
            let rows = insert.execute(rusqlite::params![
                tenant_id.as_str(),
                e.id.as_str(),
                e.namespace.as_str(),
                &e.metric_label,
                &e.object_name,
                &e.deployment,
                &e.container,
                e.quantity.to_string(),
                micros(e.at),
                micros(now),
                properties_text(&e.properties),
            ])?;
            Ok(rows == 1)
        })
        .collect()
}

/// Every stored bucket of the hours `wanted`'s keys are in (usually one or
/// two hours), in one query per run of hours (see [`chunks`]).
async fn read_hours<V>(
    tx: &mut Tx,
    tenant_id: &TenantId,
    wanted: &BTreeMap<BucketKey, V>,
) -> Result<BTreeMap<BucketKey, Bucket>> {
    let hours: BTreeSet<i64> = wanted.keys().map(|k| micros(k.hour)).collect();
    let pairs: BTreeSet<(i64, ObjectKey)> = wanted
        .keys()
        .map(|k| (micros(k.hour), ObjectKey::of(k)))
        .collect();
    let mut out = BTreeMap::new();
    let hours: Vec<i64> = hours.into_iter().collect();
    for chunk in chunks(&hours) {
        let mut q = QueryBuilder::<Db>::new(concat!(
            "SELECT hour, namespace, metric_label, object_name, deployment, container, quantity, latest_at, ",
            "latest_event, events FROM usage_hourly WHERE tenant_id = "
        ));
        q.push_bind(tenant_id.as_str()).push(" AND hour IN (");
        let mut list = q.separated(", ");
        for h in chunk {
            list.push_bind(*h);
        }
        q.push(")");
        only_pairs(&mut q, "hour", &pairs)?;
        for row in q.build().fetch_all(&mut **tx).await? {
            out.insert(key_from(&row)?, bucket_from(&row)?);
        }
    }
    Ok(out)
}

/// Narrows a read of buckets (`column` "hour") or day summaries ("day") to
/// the (time, object) pairs a batch touched, bound as one JSON list: what a
/// batch reads is bounded by what it touched, not by everything the tenant
/// stored in those hours or days (a batch spread over many hours and objects
/// would otherwise read their whole cross product, and memory would follow).
fn only_pairs(
    q: &mut QueryBuilder<Db>,
    column: &'static str,
    pairs: &BTreeSet<(i64, ObjectKey)>,
) -> Result<()> {
    // Namespaces are DNS labels and metric labels quota keys: neither holds
    // a '/', so the joined key is unambiguous.
    let keys: Vec<String> = pairs
        .iter()
        .map(|(at, o)| format!("{at}/{}/{}/{}", o.namespace, o.metric_label, o.object_name))
        .collect();
    let keys = serde_json::to_string(&keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    q.push(" AND CAST(")
        .push(column)
        .push(" AS TEXT) || '/' || namespace || '/' || metric_label || '/' || object_name IN ")
        .push(TEXT_LIST.0)
        .push_bind(keys)
        .push(TEXT_LIST.1);
    Ok(())
}

/// An object's total in one hour, before and after a batch.
struct HourChange {
    object: ObjectKey,
    hour: Timestamp,
    before: Decimal,
    after: Decimal,
}

/// A stored day summary.
type Day = (Timestamp, ObjectKey);

/// Folds hour totals that changed into their days' summaries. The sum moves
/// by the difference; the peak can only grow (hour totals of sum and max
/// meters never shrink; latest meters do not use the peak); the latest hour
/// is replaced by a later or the same hour.
async fn update_days(tx: &mut Tx, tenant_id: &TenantId, changes: &[HourChange]) -> Result<()> {
    let days: BTreeSet<Timestamp> = changes.iter().map(|c| metering::day_of(c.hour)).collect();
    let pairs: BTreeSet<(i64, ObjectKey)> = changes
        .iter()
        .map(|c| (micros(metering::day_of(c.hour)), c.object.clone()))
        .collect();
    let mut summaries: BTreeMap<Day, ObjectUsage> = BTreeMap::new();
    let days: Vec<i64> = days.into_iter().map(micros).collect();
    for chunk in chunks(&days) {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT day, namespace, metric_label, object_name, total, peak, last_hour, last_total FROM usage_daily \
             WHERE tenant_id = ",
        );
        q.push_bind(tenant_id.as_str()).push(" AND day IN (");
        let mut list = q.separated(", ");
        for d in chunk {
            list.push_bind(*d);
        }
        q.push(")");
        only_pairs(&mut q, "day", &pairs)?;
        for row in q.build().fetch_all(&mut **tx).await? {
            let (day, object, usage) = day_from(&row)?;
            summaries.insert((day, object), usage);
        }
    }
    let mut changed: BTreeMap<Day, ObjectUsage> = BTreeMap::new();
    for c in changes {
        let key = (metering::day_of(c.hour), c.object.clone());
        let entry = changed
            .entry(key.clone())
            .or_insert_with(|| summaries.get(&key).cloned().unwrap_or_default());
        entry.total = entry.total.saturating_sub(c.before).saturating_add(c.after);
        entry.peak = entry.peak.max(c.after);
        if entry.last.is_none_or(|(h, _)| c.hour >= h) {
            entry.last = Some((c.hour, c.after));
        }
    }
    write_days(tx, tenant_id, &changed).await
}

fn day_from<R: Cols + ?Sized>(row: &R) -> Result<(Timestamp, ObjectKey, ObjectUsage)> {
    let object = ObjectKey {
        namespace: row.text("namespace")?,
        metric_label: row.text("metric_label")?,
        object_name: row.text("object_name")?,
    };
    let usage = ObjectUsage {
        total: decimal("usage_daily.total", &row.text("total")?)?,
        peak: decimal("usage_daily.peak", &row.text("peak")?)?,
        last: Some((
            timestamp("usage_daily.last_hour", row.int("last_hour")?)?,
            decimal("usage_daily.last_total", &row.text("last_total")?)?,
        )),
    };
    Ok((timestamp("usage_daily.day", row.int("day")?)?, object, usage))
}

/// Inserts or overwrites day summaries, in multi-row statements.
async fn write_days(tx: &mut Tx, tenant_id: &TenantId, days: &BTreeMap<Day, ObjectUsage>) -> Result<()> {
    let rows: Vec<(&Day, &ObjectUsage, (Timestamp, Decimal))> = days
        .iter()
        .filter_map(|(k, u)| u.last.map(|last| (k, u, last)))
        .collect();
    for chunk in chunks(&rows) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO usage_daily (tenant_id, day, namespace, metric_label, object_name, total, peak, last_hour, \
             last_total) ",
        );
        q.push_values(
            chunk,
            |mut row, ((day, object), usage, (last_hour, last_total))| {
                row.push_bind(tenant_id.as_str())
                    .push_bind(micros(*day))
                    .push_bind(&object.namespace)
                    .push_bind(&object.metric_label)
                    .push_bind(&object.object_name)
                    .push_bind(usage.total.to_string())
                    .push_bind(usage.peak.to_string())
                    .push_bind(micros(*last_hour))
                    .push_bind(last_total.to_string());
            },
        );
        q.push(
            " ON CONFLICT (tenant_id, day, namespace, metric_label, object_name) DO UPDATE SET \
             total = excluded.total, peak = excluded.peak, last_hour = excluded.last_hour, \
             last_total = excluded.last_total",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The day summaries of a set of buckets.
fn summarize_days(buckets: &BTreeMap<BucketKey, Bucket>) -> BTreeMap<Day, ObjectUsage> {
    let mut out: BTreeMap<Day, ObjectUsage> = BTreeMap::new();
    for ((object, hour), total) in metering::hour_totals(buckets.iter()) {
        out.entry((metering::day_of(hour), object))
            .or_default()
            .merge(&ObjectUsage::hour(hour, total));
    }
    out
}

/// Rebuilds a tenant's day summaries from its hourly buckets, inside `tx`.
/// Rewrites the tenant's day summaries from the day of `from` (a whole
/// hour) on: `buckets` are every bucket from `from` on, and the day's hours
/// before `from`, kept as they were, are read back to complete it.
async fn rebuild_days(
    tx: &mut Tx,
    tenant_id: &TenantId,
    from: i64,
    mut buckets: BTreeMap<BucketKey, Bucket>,
) -> Result<()> {
    let first_day = if from == i64::MIN {
        i64::MIN
    } else {
        micros(metering::day_of(timestamp("usage_hourly.hour", from)?))
    };
    if first_day < from {
        let kept = sqlx::query(
            "SELECT hour, namespace, metric_label, object_name, deployment, container, quantity, latest_at, \
             latest_event, events FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2 AND hour < $3",
        )
        .bind(tenant_id.as_str())
        .bind(first_day)
        .bind(from)
        .fetch_all(&mut **tx)
        .await?;
        for row in &kept {
            buckets.insert(key_from(row)?, bucket_from(row)?);
        }
    }
    sqlx::query("DELETE FROM usage_daily WHERE tenant_id = $1 AND day >= $2")
        .bind(tenant_id.as_str())
        .bind(first_day)
        .execute(&mut **tx)
        .await?;
    write_days(tx, tenant_id, &summarize_days(&buckets)).await
}

/// Builds day summaries for usage stored before they existed (a one-off
/// task the migration leaves when the database already had usage).
pub(super) async fn build_daily_usage(store: &SqlStore) -> Result<()> {
    let pending: Option<String> =
        sqlx::query_scalar("SELECT task FROM maintenance WHERE task = 'build-daily-usage'")
            .fetch_optional(&store.read)
            .await?;
    if pending.is_none() {
        return Ok(());
    }
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM usage_hourly")
        .fetch_all(&store.read)
        .await?;
    for tenant_id in tenants.into_iter().map(TenantId::new) {
        store
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query(LOCK_TENANT)
                        .bind(tenant_id.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                    let rows = sqlx::query(
                        "SELECT hour, namespace, metric_label, object_name, deployment, container, quantity, \
                         latest_at, latest_event, events FROM usage_hourly WHERE tenant_id = $1",
                    )
                    .bind(tenant_id.as_str())
                    .fetch_all(&mut **tx)
                    .await?;
                    let buckets = rows
                        .iter()
                        .map(|r| Ok((key_from(r)?, bucket_from(r)?)))
                        .collect::<Result<BTreeMap<_, _>>>()?;
                    rebuild_days(tx, &tenant_id, i64::MIN, buckets).await
                })
            })
            .await?;
    }
    store
        .write(|tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM maintenance WHERE task = 'build-daily-usage'")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        })
        .await
}

/// Each object's usage over the bucket hours `[filter.from, filter.to)`:
/// whole days from their summaries, the hours at the edges from the buckets.
async fn object_usage(
    store: &SqlStore,
    tenant_id: &TenantId,
    f: &BucketFilter<'_>,
) -> Result<Vec<(ObjectKey, ObjectUsage)>> {
    // The days' usage, added up per object (the days are disjoint).
    let mut out: BTreeMap<ObjectKey, ObjectUsage> = BTreeMap::new();
    for (_, object, usage) in daily_usage(store, tenant_id, f).await? {
        out.entry(object).or_default().merge(&usage);
    }
    Ok(out.into_iter().collect())
}

async fn daily_usage(
    store: &SqlStore,
    tenant_id: &TenantId,
    f: &BucketFilter<'_>,
) -> Result<Vec<(Timestamp, ObjectKey, ObjectUsage)>> {
    let (days, edges) = metering::split_days(f.from, f.to);
    let mut out: BTreeMap<(Timestamp, ObjectKey), ObjectUsage> = BTreeMap::new();
    if let Some((d0, d1)) = days {
        const SQL: &str = "SELECT day, namespace, metric_label, object_name, total, peak, last_hour, last_total \
             FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day < $3 AND ($4 IS NULL OR namespace = $4) \
             AND ($5 IS NULL OR metric_label = $5) AND ($6 IS NULL OR object_name = $6)";
        let days = rollup_rows(store, SQL, tenant_id, (d0, d1), f, |r| day_from(r)).await?;
        for (day, object, usage) in days {
            out.entry((day, object)).or_default().merge(&usage);
        }
    }
    for (from, to) in edges {
        let hours = BucketFilter {
            from,
            to,
            ..f.clone()
        };
        let buckets = buckets(store, tenant_id, &hours).await?;
        for ((object, hour), total) in metering::hour_totals(buckets.iter().map(|(k, b)| (k, b))) {
            out.entry((metering::day_of(hour), object))
                .or_default()
                .merge(&ObjectUsage::hour(hour, total));
        }
    }
    Ok(out
        .into_iter()
        .map(|((day, object), usage)| (day, object, usage))
        .collect())
}

fn key_from<R: Cols + ?Sized>(r: &R) -> Result<BucketKey> {
    Ok(BucketKey {
        hour: timestamp("usage_hourly.hour", r.int("hour")?)?,
        namespace: r.text("namespace")?,
        metric_label: r.text("metric_label")?,
        object_name: r.text("object_name")?,
        deployment: r.text("deployment")?,
        container: r.text("container")?,
    })
}

fn bucket_from<R: Cols + ?Sized>(row: &R) -> Result<Bucket> {
    let latest_at = opt_timestamp("usage_hourly.latest_at", row.opt_int("latest_at")?)?;
    let latest_event = row.opt_text("latest_event")?;
    Ok(Bucket {
        quantity: decimal("usage_hourly.quantity", &row.text("quantity")?)?,
        latest: latest_at.zip(latest_event),
        events: row.int("events")?,
    })
}

/// Inserts or overwrites buckets, in multi-row statements.
async fn write_buckets<'a>(
    tx: &mut Tx,
    tenant_id: &TenantId,
    buckets: impl Iterator<Item = (&'a BucketKey, &'a Bucket)>,
) -> Result<()> {
    let buckets: Vec<_> = buckets.collect();
    for chunk in chunks(&buckets) {
        let mut q = QueryBuilder::<Db>::new(concat!(
            "INSERT INTO usage_hourly (tenant_id, hour, namespace, metric_label, object_name, deployment, ",
            "container, quantity, latest_at, latest_event, events) "
        ));
        q.push_values(chunk, |mut row, (k, b)| {
            row.push_bind(tenant_id.as_str())
                .push_bind(micros(k.hour))
                .push_bind(&k.namespace)
                .push_bind(&k.metric_label)
                .push_bind(&k.object_name)
                .push_bind(&k.deployment)
                .push_bind(&k.container)
                .push_bind(b.quantity.to_string())
                .push_bind(b.latest.as_ref().map(|(at, _)| micros(*at)))
                .push_bind(b.latest.as_ref().map(|(_, id)| id.clone()))
                .push_bind(b.events);
        });
        q.push(concat!(
            " ON CONFLICT (tenant_id, hour, namespace, metric_label, object_name, deployment, container) ",
            "DO UPDATE SET quantity = excluded.quantity, latest_at = excluded.latest_at, ",
            "latest_event = excluded.latest_event, events = excluded.events"
        ));
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn buckets(
    store: &SqlStore,
    tenant_id: &TenantId,
    f: &BucketFilter<'_>,
) -> Result<Vec<(BucketKey, Bucket)>> {
    const SQL: &str = "SELECT hour, namespace, metric_label, object_name, deployment, container, quantity, \
         latest_at, latest_event, events FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 \
         AND ($4 IS NULL OR namespace = $4) AND ($5 IS NULL OR metric_label = $5) \
         AND ($6 IS NULL OR object_name = $6) \
         ORDER BY hour, namespace, metric_label, object_name, deployment, container";
    rollup_rows(store, SQL, tenant_id, (f.from, f.to), f, |r| {
        Ok((key_from(r)?, bucket_from(r)?))
    })
    .await
}

/// The rows of a rollup read `sql` over `range`, binding the tenant, the
/// range and the filter's optional namespace, meter and object as `$1`…`$6`,
/// each decoded by `decode`: inline on SQLite (one hop to a blocking thread
/// instead of sqlx's hand-over of every row), through sqlx on PostgreSQL.
async fn rollup_rows<T: Send + 'static>(
    store: &SqlStore,
    sql: &'static str,
    tenant_id: &TenantId,
    (from, to): (Timestamp, Timestamp),
    f: &BucketFilter<'_>,
    decode: fn(&dyn Cols) -> Result<T>,
) -> Result<Vec<T>> {
    if let Some(inline) = &store.inline {
        use rusqlite::types::Value;
        let text = |v: Option<&str>| v.map_or(Value::Null, |v| Value::Text(v.to_owned()));
        let params = vec![
            Value::Text(tenant_id.as_str().to_owned()),
            Value::Integer(micros(from)),
            Value::Integer(micros(to)),
            text(f.namespace),
            text(f.metric_label),
            text(f.object_name),
        ];
        return inline.query_all_blocking(sql, params, move |r| decode(r)).await;
    }
    let rows = sqlx::query(sql)
        .bind(tenant_id.as_str())
        .bind(micros(from))
        .bind(micros(to))
        .bind(f.namespace)
        .bind(f.metric_label)
        .bind(f.object_name)
        .fetch_all(&store.read)
        .await?;
    rows.iter().map(|r| decode(r)).collect()
}

fn event_from(row: &DbRow) -> Result<UsageEvent> {
    let namespace: String = row.try_get("namespace")?;
    Ok(UsageEvent {
        id: EventId::new(row.try_get::<String, _>("event_id")?),
        namespace: Name::parse("usage_events.namespace", &namespace)
            .map_err(|e| StoreError::Corrupt(e.message))?,
        metric_label: row.try_get("metric_label")?,
        object_name: row.try_get("object_name")?,
        deployment: row.try_get("deployment")?,
        container: row.try_get("container")?,
        quantity: decimal("usage_events.quantity", row.try_get("quantity")?)?,
        at: timestamp("usage_events.at", row.try_get("at")?)?,
        properties: match row.try_get::<Option<String>, _>("properties")? {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("usage_events.properties: {e}")))?,
        },
    })
}

/// An event's properties as stored: a JSON object, or NULL for none.
fn properties_text(p: &BTreeMap<String, String>) -> Option<String> {
    (!p.is_empty()).then(|| serde_json::to_string(p).unwrap_or_default())
}

async fn replay(
    store: &SqlStore,
    tenant_id: &TenantId,
    aggregation: &Aggregations,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<ReplayStats> {
    let (tenant_id, aggregation, actor) = (tenant_id.clone(), aggregation.clone(), actor.to_owned());
    store
        .write(move |tx| Box::pin(async move { replay_in(tx, &tenant_id, &aggregation, &actor, now).await }))
        .await
}

fn push_distinct_filters(q: &mut QueryBuilder<Db>, filter: &BucketFilter<'_>) {
    if let Some(ns) = filter.namespace {
        q.push(" AND namespace = ").push_bind(ns);
    }
    if let Some(m) = filter.metric_label {
        q.push(" AND metric_label = ").push_bind(m);
    }
    if let Some(o) = filter.object_name {
        q.push(" AND object_name = ").push_bind(o);
    }
}

async fn compact_distinct_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    periods: &[(Timestamp, Timestamp)],
) -> Result<u64> {
    // Only periods that still have hourly rows: after the first time, this
    // reads one index entry and stops.
    let first: Option<i64> = sqlx::query_scalar("SELECT MIN(hour) FROM usage_distinct WHERE tenant_id = $1")
        .bind(tenant_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let Some(first) = first else { return Ok(0) };
    let mut moved = 0;
    for (start, end) in periods {
        let (start, end) = (micros(*start), micros(*end));
        if end <= first || end <= start {
            continue;
        }
        sqlx::query(
            "INSERT INTO usage_distinct_periods (tenant_id, metric_label, hour_start, hour_end, namespace, \
             object_name, value) SELECT DISTINCT tenant_id, metric_label, $2, $3, namespace, object_name, value \
             FROM usage_distinct WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id.as_str())
        .bind(start)
        .bind(end)
        .execute(&mut **tx)
        .await?;
        moved += sqlx::query("DELETE FROM usage_distinct WHERE tenant_id = $1 AND hour >= $2 AND hour < $3")
            .bind(tenant_id.as_str())
            .bind(start)
            .bind(end)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(moved)
}

/// One distinct value of a unique-count meter in an hour and object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DistinctRow<'a> {
    metric_label: &'a str,
    hour: i64,
    namespace: &'a str,
    object_name: &'a str,
    value: &'a str,
}

async fn write_distinct(tx: &mut Tx, tenant_id: &TenantId, rows: &[DistinctRow<'_>]) -> Result<()> {
    for chunk in chunks(rows) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO usage_distinct (tenant_id, metric_label, hour, namespace, object_name, value) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(tenant_id.as_str())
                .push_bind(r.metric_label)
                .push_bind(r.hour)
                .push_bind(r.namespace)
                .push_bind(r.object_name)
                .push_bind(r.value);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn replay_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    aggregation: &Aggregations,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<ReplayStats> {
    // Raw events before the retention mark are gone: the hours before it
    // keep their rollups, and only the hours from it on are rebuilt. The
    // mark is a whole hour (`purge_events` stores whole hours).
    let purged: Option<i64> = sqlx::query_scalar(LOCK_TENANT_READ_MARK)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    let from = purged.unwrap_or(i64::MIN);
    // The distinct values are rebuilt per hour from the raw events; period
    // close keeps old periods' per period again.
    for delete in [
        "DELETE FROM usage_distinct WHERE tenant_id = $1 AND hour >= $2",
        "DELETE FROM usage_distinct_periods WHERE tenant_id = $1 AND hour_start >= $2",
    ] {
        sqlx::query(delete)
            .bind(tenant_id.as_str())
            .bind(from)
            .execute(&mut **tx)
            .await?;
    }
    let mut buckets: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
    // (at, event_id) after the cursor: (from, "") starts at `from`, as no
    // event id is empty.
    let mut cursor: (i64, String) = (from, String::new());
    let mut events = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT event_id, namespace, metric_label, object_name, deployment, container, quantity, at, properties \
             FROM usage_events WHERE tenant_id = $1 AND (at > $2 OR (at = $2 AND event_id > $3)) \
             ORDER BY at, event_id LIMIT $4",
        )
        .bind(tenant_id.as_str())
        .bind(cursor.0)
        .bind(&cursor.1)
        .bind(REPLAY_PAGE)
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else { break };
        cursor = (last.try_get("at")?, last.try_get("event_id")?);
        let page: Vec<UsageEvent> = rows.iter().map(event_from).collect::<Result<_>>()?;
        let mut distinct = BTreeSet::new();
        for e in &page {
            let agg = aggregation.of(&e.metric_label);
            let b = Bucket::of(e, agg);
            buckets
                .entry(BucketKey::of(e))
                .and_modify(|x| *x = x.merge(&b, agg))
                .or_insert(b);
            events += 1;
            if let Some(value) = aggregation
                .unique_property(&e.metric_label)
                .and_then(|p| e.properties.get(p))
            {
                distinct.insert(DistinctRow {
                    metric_label: &e.metric_label,
                    hour: micros(metering::hour_of(e.at)),
                    namespace: e.namespace.as_str(),
                    object_name: &e.object_name,
                    value,
                });
            }
        }
        write_distinct(tx, tenant_id, &distinct.into_iter().collect::<Vec<_>>()).await?;
    }
    sqlx::query("DELETE FROM usage_hourly WHERE tenant_id = $1 AND hour >= $2")
        .bind(tenant_id.as_str())
        .bind(from)
        .execute(&mut **tx)
        .await?;
    write_buckets(tx, tenant_id, buckets.iter()).await?;
    let rebuilt = buckets.len() as u64;
    rebuild_days(tx, tenant_id, from, buckets).await?;
    let stats = ReplayStats {
        events,
        buckets: rebuilt,
        rebuilt_from: purged
            .map(|_| timestamp("tenants.events_purged_before", from))
            .transpose()?,
    };
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::UsageReplay,
        "usage/hourly",
        None,
        Some(match stats.rebuilt_from {
            None => serde_json::json!({"events": stats.events, "hourly_buckets": stats.buckets}),
            Some(from) => serde_json::json!({
                "events": stats.events,
                "hourly_buckets": stats.buckets,
                "rebuilt_from": from.to_string(),
            }),
        }),
        now,
    )
    .await?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_powers_of_two_that_cover_everything_in_order() {
        for n in 0..2100usize {
            let items: Vec<usize> = (0..n).collect();
            let runs: Vec<&[usize]> = chunks(&items).collect();
            assert_eq!(runs.concat(), items, "{n}");
            assert!(
                runs.iter()
                    .all(|r| r.len().is_power_of_two() && r.len() <= MAX_CHUNK),
                "{n}"
            );
        }
        let shapes: std::collections::BTreeSet<usize> = (1..5000usize)
            .flat_map(|n| chunks(&vec![0u8; n]).map(<[u8]>::len).collect::<Vec<_>>())
            .collect();
        assert_eq!(shapes.len(), 10, "{shapes:?}");
    }
}
