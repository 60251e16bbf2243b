//! `tollgate bench year`: a year of usage for many tenants, month by month,
//! with the job loop's work in between (periods finalized, raw events past
//! retention deleted). It reports how the database grows, whether ingestion
//! slows as it does, how long each deletion batch holds the writer, and the
//! reports' latency at the end.
//!
//! It runs in this process, on the application layer (the code behind the
//! HTTP handlers and the job loop) with the clock moved month by month:
//! a year cannot pass in real time, and the HTTP layer is measured by the
//! other suites.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, ToSpan};
use sqlx::{Connection, Row};
use tollgate_app::usage::Reported;
use tollgate_app::{Job, JobContext};
use tollgate_domain::clock::{Clock, ManualClock};
use tollgate_domain::metering::RawEvent;
use tollgate_domain::names::Name;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Location, Store};

use crate::bench::{Harness, Latency};

/// Options of `tollgate bench year`.
#[derive(Debug, clap::Args)]
pub struct YearArgs {
    /// Tenants reporting usage.
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Events each tenant reports per month (in batches of at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub events_per_month: usize,
    /// Months of usage.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(2..=120))]
    pub months: u32,
}

/// Concurrent ingestion tasks (as `bench ingest`'s connections).
const WORKERS: usize = 4;
/// Tenants whose reports are timed at the end, and times each.
const REPORT_TENANTS: usize = 10;
const REPORT_QUERIES: usize = 5;

/// A month's figures.
struct Month {
    label: String,
    events: usize,
    rate: f64,
    purged: u64,
    batches: Vec<Duration>,
    raw_left: i64,
    size: Size,
}

/// What the database takes on disk.
struct Size {
    /// The database (SQLite: the file and its WAL; PostgreSQL: the database).
    total: u64,
    /// SQLite: pages in use (the rest of the file is free pages, reused
    /// before the file grows); PostgreSQL: the raw events table with its
    /// indexes.
    detail: u64,
}

/// What the year suite measured, for the goals table.
pub(crate) struct YearFigures {
    pub tenants: usize,
    pub months: u32,
    pub ingested: usize,
    pub first_rate: f64,
    pub last_rate: f64,
    /// The database at the end.
    pub size: u64,
    /// Deletion batches, if there were any.
    pub purge: Option<Latency>,
    /// The reports over the last month, at the end.
    pub current: Latency,
    pub details: Latency,
}

pub async fn run(h: &Harness, args: &YearArgs) -> Result<YearFigures> {
    if args.tenants == 0 || args.events_per_month == 0 {
        bail!("--tenants and --events-per-month must be more than zero");
    }
    let store = tollgate_store::open(&h.location)
        .await
        .context("cannot open the bench database")?;
    let this_month = Timestamp::now()
        .to_zoned_datetime(TimeZone::UTC)
        .date()
        .first_of_month();
    let first = this_month
        .checked_sub(Span::new().months(i64::from(args.months)))
        .context("--months reaches too far back")?;
    let start = month_start(first, 0)?;
    let clock = Arc::new(ManualClock::new(start + SignedDuration::from_hours(1)));
    let ctx = context(store.clone(), clock.clone());
    println!(
        "year: {} tenants x {} events a month for {} months from {first}, {} (raw events kept: until finalized)",
        args.tenants,
        args.events_per_month,
        args.months,
        h.backend()
    );
    let tenants = create_tenants(&*store, &ctx, &h.tenant, args.tenants, start).await?;

    let mut months = Vec::new();
    let mut kept: i64 = 0;
    for m in 0..args.months {
        let (from, to) = (month_start(first, m)?, month_start(first, m + 1)?);
        // Reported during the month; all of it before the month ends.
        let now = to - SignedDuration::from_hours(1);
        let started = Instant::now();
        ingest_month(&*store, &ctx, &tenants, from, now, m, args.events_per_month).await?;
        let elapsed = started.elapsed();
        let events = tenants.len() * args.events_per_month;
        kept += events as i64;
        // The job loop after the month: its period finalized once the grace
        // (a day) is over, then the raw events no event can reach any more.
        let close_at = to + SignedDuration::from_hours(25);
        clock.set(close_at);
        Job::PeriodClose.run(&ctx).await.context("period close")?;
        let (purged, batches) = purge(&ctx).await?;
        kept -= purged as i64;
        let size = size(&h.location).await?;
        let month = Month {
            label: from
                .to_zoned_datetime(TimeZone::UTC)
                .date()
                .strftime("%Y-%m")
                .to_string(),
            events,
            rate: events as f64 / elapsed.as_secs_f64(),
            purged,
            batches,
            raw_left: kept,
            size,
        };
        print_month(&month, h.backend());
        months.push(month);
    }
    let counted = raw_events(&h.location, &h.tenant).await?;
    if counted != kept {
        bail!("{counted} raw events are stored, but {kept} should be (ingested minus deleted)");
    }
    let (first_rate, last_rate) = (months[0].rate, months[months.len() - 1].rate);
    println!(
        "year ingestion: first month {first_rate:.0} events/s, last month {last_rate:.0} events/s (last / first: {:.2})",
        last_rate / first_rate
    );
    let all: Vec<Duration> = months.iter().flat_map(|m| m.batches.iter().copied()).collect();
    let purge = (!all.is_empty()).then(|| Latency::of_durations(&all));
    if let Some(l) = purge {
        println!(
            "year retention: {} deletion batches of at most {} events, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            all.len(),
            tollgate_app::maintenance::PURGE_BATCH,
            l.p50,
            l.p99,
            l.max,
        );
    }
    let ingested = args.months as usize * tenants.len() * args.events_per_month;
    println!(
        "year storage: {ingested} events ingested, {kept} raw events kept; database {}",
        describe(&months[months.len() - 1].size, h.backend())
    );
    let last = (
        month_start(first, args.months - 1)?,
        month_start(first, args.months)?,
    );
    let (current, details) = reports(&*store, &ctx, &tenants, last).await?;
    Ok(YearFigures {
        tenants: tenants.len(),
        months: args.months,
        ingested,
        first_rate,
        last_rate,
        size: months[months.len() - 1].size.total,
        purge,
        current,
        details,
    })
}

fn month_start(first: Date, m: u32) -> Result<Timestamp> {
    let date = first.checked_add(i64::from(m).months())?;
    Ok(TimeZone::UTC.to_timestamp(date.at(0, 0, 0, 0))?)
}

fn context(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> JobContext {
    let clock: Arc<dyn Clock> = clock;
    let webhooks = tollgate_api::events::standalone(store.clone(), clock.clone(), Default::default());
    JobContext {
        store,
        clock,
        providers: tollgate_payments::Providers::test(),
        worker_id: "bench-year".into(),
        catalogs: Default::default(),
        invoicing: Default::default(),
        retention: Default::default(),
        webhooks,
    }
}

async fn create_tenants(
    store: &dyn Store,
    ctx: &JobContext,
    prefix: &str,
    n: usize,
    since: Timestamp,
) -> Result<Vec<Tenant>> {
    let now = ctx.clock.now();
    let mut tenants = Vec::with_capacity(n);
    for i in 0..n {
        let req = tollgate_app::tenancy::TenantRequest {
            name: format!("{prefix}-{i}"),
            plan: None,
            tenant_type: None,
            since: Some(since),
            currency: None,
        };
        let tenant = tollgate_app::tenancy::create_tenant(store, &ctx.catalogs, &req, "bench", now)
            .await
            .map_err(|e| anyhow::anyhow!("tenant create: {e}"))?;
        tenants.push(tenant);
    }
    Ok(tenants)
}

/// Every tenant's events of month `m`, spread over its first 27 days, by
/// [`WORKERS`] tasks taking tenants in turn.
async fn ingest_month(
    store: &dyn Store,
    ctx: &JobContext,
    tenants: &[Tenant],
    from: Timestamp,
    now: Timestamp,
    m: u32,
    per_month: usize,
) -> Result<()> {
    let (version, _) = ctx.catalogs.latest(store).await?;
    let catalog = ctx.catalogs.get(store, version).await?;
    let next = AtomicUsize::new(0);
    let span = SignedDuration::from_hours(24 * crate::bench_ingest::DAYS).as_micros();
    let work = (0..WORKERS).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(tenant) = tenants.get(i) else {
                return Ok(());
            };
            let events: Vec<Reported> = (0..per_month)
                .map(|e| {
                    let offset = i64::try_from(span * e as i128 / per_month as i128).unwrap_or(0);
                    let at = from + SignedDuration::from_micros(offset);
                    let (metric, scale) = crate::bench_ingest::METERS[e % crate::bench_ingest::METERS.len()];
                    Reported {
                        namespace: Name::system(),
                        event: RawEvent {
                            id: Some(format!("m{m}-e{e}")),
                            metric_label: Some(metric.into()),
                            object_name: Some(format!("obj-{}", (e / 4) % 5)),
                            quantity: Some(((e as i64 % 7 + 1) * scale).to_string()),
                            timestamp: Some(at.to_string()),
                            ..Default::default()
                        },
                    }
                })
                .collect();
            for batch in events.chunks(crate::bench_ingest::BATCH) {
                let outcomes = tollgate_app::usage::ingest(
                    store,
                    tenant,
                    &catalog,
                    tollgate_app::usage::DEFAULT_MAX_SKEW,
                    now,
                    batch,
                )
                .await?;
                let tally = tollgate_app::usage::Tally::of(&outcomes);
                if tally.accepted != batch.len() {
                    bail!("tenant {}: {tally:?} of a batch of {}", tenant.name, batch.len());
                }
            }
        }
    });
    futures::future::try_join_all(work).await?;
    Ok(())
}

/// The `purge-events` job, unbounded, each batch timed: how long one held
/// the writer.
async fn purge(ctx: &JobContext) -> Result<(u64, Vec<Duration>)> {
    let mut batches = Vec::new();
    let purged =
        tollgate_app::maintenance::purge_events_timed(ctx, usize::MAX, |took| batches.push(took)).await?;
    Ok((purged, batches))
}

async fn size(location: &Location) -> Result<Size> {
    match location {
        Location::SqliteDir(dir) => {
            let file = dir.join(tollgate_store::sqlite::FILE_NAME);
            let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            let wal = file.with_extension("db-wal");
            let options = tollgate_store::sqlite::connect_options(dir, tollgate_store::Synchronous::Full)?;
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            let page: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&mut conn)
                .await?;
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut conn)
                .await?;
            let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                .fetch_one(&mut conn)
                .await?;
            conn.close().await?;
            Ok(Size {
                total: len(&file) + len(&wal),
                detail: u64::try_from((pages - free) * page).unwrap_or(0),
            })
        }
        Location::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let row = sqlx::query(
                "SELECT pg_database_size(current_database()) AS total, pg_total_relation_size('usage_events') AS events",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            Ok(Size {
                total: u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or(0),
                detail: u64::try_from(row.try_get::<i64, _>("events")?).unwrap_or(0),
            })
        }
    }
}

/// Raw events stored for this run's tenants.
async fn raw_events(location: &Location, prefix: &str) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM usage_events e JOIN tenants t ON t.id = e.tenant_id WHERE t.name LIKE $1";
    let pattern = format!("{prefix}-%");
    Ok(match location {
        Location::SqliteDir(dir) => {
            let options = tollgate_store::sqlite::connect_options(dir, tollgate_store::Synchronous::Full)?;
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            sqlx::query_scalar(sql).bind(pattern).fetch_one(&mut conn).await?
        }
        Location::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query_scalar(sql).bind(pattern).fetch_one(&mut conn).await?
        }
    })
}

fn describe(size: &Size, backend: &str) -> String {
    match backend {
        "sqlite" => format!("{} (pages in use {})", mb(size.total), mb(size.detail)),
        _ => format!("{} (raw events table {})", mb(size.total), mb(size.detail)),
    }
}

fn print_month(m: &Month, backend: &str) {
    let batches = if m.batches.is_empty() {
        String::new()
    } else {
        format!(
            " in {} batches (max {:.1} ms)",
            m.batches.len(),
            Latency::of_durations(&m.batches).max
        )
    };
    println!(
        "year month {}: ingested {} events at {:.0}/s; deleted {}{batches}; raw events kept {}; database {}",
        m.label,
        m.events,
        m.rate,
        m.purged,
        m.raw_left,
        describe(&m.size, backend)
    );
}

/// `current_usage` (the period rated) and `usage_details` (each object's
/// usage) over the last month, of a few tenants, as their handlers compute
/// them.
async fn reports(
    store: &dyn Store,
    ctx: &JobContext,
    tenants: &[Tenant],
    (from, to): (Timestamp, Timestamp),
) -> Result<(Latency, Latency)> {
    let now = ctx.clock.now();
    let mut current = Vec::new();
    let mut details = Vec::new();
    for tenant in tenants.iter().take(REPORT_TENANTS) {
        let tenant = store
            .tenant(&tenant.id)
            .await?
            .context("a bench tenant is missing")?;
        for _ in 0..REPORT_QUERIES {
            let started = Instant::now();
            let subscriptions = store.subscriptions(&tenant.id).await?;
            let range =
                tollgate_app::reports::ReportRange::resolve(&subscriptions, Some(from), Some(to), now)?;
            tollgate_app::reports::range_bill(store, &ctx.catalogs, &tenant, &range, None).await?;
            current.push(started.elapsed());
            let started = Instant::now();
            let filter = tollgate_store::BucketFilter {
                from,
                to,
                ..Default::default()
            };
            store.object_usage(&tenant.id, &filter).await?;
            details.push(started.elapsed());
        }
    }
    let (current, details) = (Latency::of_durations(&current), Latency::of_durations(&details));
    for (name, l) in [("current_usage", current), ("usage_details", details)] {
        println!(
            "year reports at the end, over the last month: {name} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50, l.p99, l.max
        );
    }
    Ok((current, details))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
