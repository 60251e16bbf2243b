//! What the application layer records for `GET /metrics`, through the
//! `metrics` facade (the API installs the one recorder; without it, as in
//! the operator CLI, recording does nothing). Every label comes from a
//! closed set named here: a job, a report, an outcome; never a tenant, an
//! invoice or an id.
//!
//! - `tollgate_quota_reservations_total{outcome}`: every quota usage change
//!   ([`crate::quotas::change_usage`]) by [`UsageChangeOutcome`].
//! - `tollgate_ingest_duration_seconds`: one ingestion batch
//!   ([`crate::usage::ingest`]), rules, store and all.
//! - `tollgate_report_duration_seconds{report}`: one usage report, by
//!   [`Report`] (the API's handlers hold a [`Report::timer`]).
//! - `tollgate_job_runs_total{job}`, `tollgate_job_failures_total{job}`,
//!   `tollgate_job_duration_seconds{job}`: every run of a [`Job`], by the
//!   job loop or by hand (both go through [`Job::run`]'s one path).
//! - `tollgate_job_oldest_due_period_seconds`,
//!   `tollgate_job_oldest_due_charge_seconds`: how far behind the jobs are,
//!   set by the job loop once a tick ([`record_backlog`]); absent in a
//!   process that runs no job loop (`serve --no-jobs`).
//! - `tollgate_db_pool_connections{pool,state}`,
//!   `tollgate_db_pool_max_connections{pool}`: set from the store's pools by
//!   [`record_pools`], which `GET /metrics` calls before rendering (so they
//!   are as of the scrape, with or without a job loop).
//!
//! - `tollgate_webhook_deliveries_total{outcome}` (delivered, retrying,
//!   failed), `tollgate_webhook_endpoints_disabled_total`, and the gauges
//!   `tollgate_webhook_queue_depth`, `tollgate_webhook_undispatched_events`,
//!   `tollgate_webhook_oldest_undelivered_seconds`: [`crate::webhooks`].
//! - `tollgate_alerts_triggered_total`: [`crate::alerts`].
//!
//! The store records `tollgate_db_write_wait_seconds` itself; usage events
//! and charge attempts are counted where they happen (`usage`, `invoices`).
//! [`describe`] gives each metric its help text and registers every series
//! of a closed label set at zero, so that a rate or an alert over a series
//! that has not moved yet has something to read.

use std::time::Instant;

use jiff::Timestamp;
use tollgate_store::{Store, StoreError};

use crate::{Job, JobContext};

pub const QUOTA_RESERVATIONS: &str = "tollgate_quota_reservations_total";
pub const INGEST_DURATION: &str = "tollgate_ingest_duration_seconds";
pub const REPORT_DURATION: &str = "tollgate_report_duration_seconds";
pub const JOB_RUNS: &str = "tollgate_job_runs_total";
pub const JOB_FAILURES: &str = "tollgate_job_failures_total";
pub const JOB_DURATION: &str = "tollgate_job_duration_seconds";
pub const OLDEST_DUE_PERIOD: &str = "tollgate_job_oldest_due_period_seconds";
pub const OLDEST_DUE_CHARGE: &str = "tollgate_job_oldest_due_charge_seconds";
pub const POOL_CONNECTIONS: &str = "tollgate_db_pool_connections";
pub const POOL_MAX_CONNECTIONS: &str = "tollgate_db_pool_max_connections";
/// Recorded by the store (`tollgate_store`), described here.
pub const DB_WRITE_WAIT: &str = "tollgate_db_write_wait_seconds";
/// Recorded by [`crate::usage::ingest`].
pub const USAGE_EVENTS: &str = "tollgate_usage_events_total";
/// Recorded by [`crate::invoices`]' charging.
pub const CHARGE_ATTEMPTS: &str = "tollgate_charge_attempts_total";
/// Usage alerts triggered.
pub const ALERTS_TRIGGERED: &str = "tollgate_alerts_triggered_total";
/// Webhook delivery attempts by outcome: delivered, retrying, failed.
pub const WEBHOOK_DELIVERIES: &str = "tollgate_webhook_deliveries_total";
/// Endpoints disabled after failing for longer than `--webhook-disable-after`.
pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "tollgate_webhook_endpoints_disabled_total";
/// PENDING webhook deliveries.
pub const WEBHOOK_QUEUE_DEPTH: &str = "tollgate_webhook_queue_depth";
/// Webhook events not yet dispatched to endpoints.
pub const WEBHOOK_UNDISPATCHED: &str = "tollgate_webhook_undispatched_events";
/// Age of the oldest PENDING webhook delivery, in seconds (0: none).
pub const WEBHOOK_OLDEST: &str = "tollgate_webhook_oldest_undelivered_seconds";

/// What became of one quota usage change: label `outcome` of
/// `tollgate_quota_reservations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageChangeOutcome {
    /// A reservation within the limit, applied.
    Granted,
    /// A reservation past the limit (429 `QUOTA_EXCEEDED`); nothing changed.
    Refused,
    /// A new reservation by a suspended tenant (403 `TENANT_SUSPENDED`).
    Suspended,
    /// A repeated `request_id` (any operation): its first answer again.
    Replayed,
    /// A release, applied.
    Released,
    /// A reconciliation, applied.
    Reconciled,
    /// The store failed (the request was answered 5xx); nothing changed.
    Error,
}

impl UsageChangeOutcome {
    pub const ALL: [Self; 7] = [
        Self::Granted,
        Self::Refused,
        Self::Suspended,
        Self::Replayed,
        Self::Released,
        Self::Reconciled,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Suspended => "suspended",
            Self::Replayed => "replayed",
            Self::Released => "released",
            Self::Reconciled => "reconciled",
            Self::Error => "error",
        }
    }

    pub(crate) fn record(self) {
        metrics::counter!(QUOTA_RESERVATIONS, "outcome" => self.as_str()).increment(1);
    }
}

/// A usage report: label `report` of `tollgate_report_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `ListCurrentUsage`: the rated usage of a range (default: this period).
    CurrentUsage,
    /// `ListUsageDetails`: usage per namespace × metric × object.
    UsageDetails,
    /// `ListHourlyUsageDetails`: hourly series.
    Hourly,
    /// `ListMonthlyUsage`: each past billing period's total.
    Monthly,
    /// `BillingUsageSummary`: usage per service and type over a window.
    Summary,
}

impl Report {
    pub const ALL: [Self; 5] = [
        Self::CurrentUsage,
        Self::UsageDetails,
        Self::Hourly,
        Self::Monthly,
        Self::Summary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CurrentUsage => "current_usage",
            Self::UsageDetails => "usage_details",
            Self::Hourly => "hourly",
            Self::Monthly => "monthly",
            Self::Summary => "summary",
        }
    }

    /// Times the report until the timer is dropped (answered or failed).
    pub fn timer(self) -> Timer {
        Timer::new(metrics::histogram!(REPORT_DURATION, "report" => self.as_str()))
    }
}

/// Records the time from its creation to its drop in a histogram, so that
/// every way out of a function (`?` included) is timed.
#[must_use = "the time is recorded when the timer is dropped"]
pub struct Timer {
    histogram: metrics::Histogram,
    started: Instant,
}

impl Timer {
    fn new(histogram: metrics::Histogram) -> Self {
        Self {
            histogram,
            started: Instant::now(),
        }
    }

    /// The time of one ingestion batch.
    pub(crate) fn ingest() -> Self {
        Self::new(metrics::histogram!(INGEST_DURATION))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed().as_secs_f64());
    }
}

/// Runs one job's work and records it: a run, a failure if it failed, its
/// duration. The one place both the job loop and a run by hand go through.
/// Also counts it in [`recent`], with the error of a failure, at `now`.
pub(crate) async fn timed_job<T>(
    job: Job,
    now: Timestamp,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = work.await;
    let name = job.as_str();
    metrics::counter!(JOB_RUNS, "job" => name).increment(1);
    if result.is_err() {
        metrics::counter!(JOB_FAILURES, "job" => name).increment(1);
    }
    {
        let mut r = lock_recent();
        let counts = r.jobs.entry(name).or_default();
        counts.runs += 1;
        if result.is_err() {
            counts.failures += 1;
        }
    }
    if let Err(e) = &result {
        record_failure(now, format!("job {name}"), e.to_string());
    }
    metrics::histogram!(JOB_DURATION, "job" => name).record(started.elapsed().as_secs_f64());
    result
}

/// How many recent failures [`recent`] keeps (the oldest go first).
pub const RECENT_FAILURES: usize = 20;

/// Something that failed in this process: a job run or a webhook attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub at: Timestamp,
    /// "job period-close", "webhook delivery to <endpoint>"…
    pub what: String,
    pub error: String,
}

/// Runs and failures of one job in this process since it started: the
/// same counts as `tollgate_job_runs_total` and `tollgate_job_failures_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub runs: u64,
    pub failures: u64,
}

#[derive(Debug, Default)]
struct Recent {
    failures: std::collections::VecDeque<Failure>,
    jobs: std::collections::BTreeMap<&'static str, JobCounts>,
}

static RECENT: std::sync::LazyLock<std::sync::Mutex<Recent>> = std::sync::LazyLock::new(Default::default);

fn lock_recent() -> std::sync::MutexGuard<'static, Recent> {
    // A panic while holding it leaves counts, never a broken invariant.
    RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps a failure among the [`RECENT_FAILURES`] latest of this process
/// (what the operator console's Health page lists; the metrics count them).
pub fn record_failure(at: Timestamp, what: String, error: String) {
    let mut r = lock_recent();
    if r.failures.len() == RECENT_FAILURES {
        r.failures.pop_front();
    }
    r.failures.push_back(Failure { at, what, error });
}

/// This process's latest failures, newest first, and each job's runs and
/// failures since it started (by job name).
pub fn recent() -> (Vec<Failure>, Vec<(&'static str, JobCounts)>) {
    let r = lock_recent();
    (
        r.failures.iter().rev().cloned().collect(),
        r.jobs.iter().map(|(k, v)| (*k, *v)).collect(),
    )
}

/// Sets the lag gauges from the store (two index lookups): how long ago
/// the oldest billing period that period close should have finalized by
/// now became due (its end plus the grace), and how long ago the oldest
/// due charge round became due; 0 when nothing is waiting.
pub async fn record_backlog(ctx: &JobContext) -> Result<(), StoreError> {
    let now = ctx.clock.now();
    let before = now.checked_sub(ctx.invoicing.grace).unwrap_or(Timestamp::MIN);
    let period = ctx.store.oldest_due_period(before).await?;
    let charge = ctx.store.oldest_due_charge(now).await?;
    metrics::gauge!(OLDEST_DUE_PERIOD).set(age(before, period));
    metrics::gauge!(OLDEST_DUE_CHARGE).set(age(now, charge));
    Ok(())
}

/// Seconds from `since` to `now`, 0 without one (or one in the future).
fn age(now: Timestamp, since: Option<Timestamp>) -> f64 {
    since.map_or(0.0, |at| now.duration_since(at).as_secs_f64().max(0.0))
}

/// Sets the pool gauges from what the store's pools count now (no query).
pub fn record_pools(store: &dyn Store) {
    for p in store.pools() {
        metrics::gauge!(POOL_CONNECTIONS, "pool" => p.pool, "state" => "in_use").set(f64::from(p.in_use));
        metrics::gauge!(POOL_CONNECTIONS, "pool" => p.pool, "state" => "idle").set(f64::from(p.idle));
        metrics::gauge!(POOL_MAX_CONNECTIONS, "pool" => p.pool).set(f64::from(p.max));
    }
}

/// Describes every metric recorded outside the API and registers each
/// series of a closed label set at zero. Call once, after installing the
/// recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        QUOTA_RESERVATIONS,
        "Quota usage changes (reserve, release, reconcile) by outcome."
    );
    describe_histogram!(INGEST_DURATION, Unit::Seconds, "Time to ingest one usage batch.");
    describe_histogram!(REPORT_DURATION, Unit::Seconds, "Time to answer one usage report.");
    describe_counter!(JOB_RUNS, "Background job runs (the job loop's and by hand).");
    describe_counter!(JOB_FAILURES, "Background job runs that failed.");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Time of one background job run.");
    describe_gauge!(
        OLDEST_DUE_PERIOD,
        Unit::Seconds,
        "How long the oldest billing period due for closing (end + grace) has waited; 0 if none."
    );
    describe_gauge!(
        OLDEST_DUE_CHARGE,
        Unit::Seconds,
        "How long the oldest due invoice charge round has waited; 0 if none."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections by pool and state (in_use, idle)."
    );
    describe_gauge!(POOL_MAX_CONNECTIONS, "Most connections each database pool opens.");
    describe_histogram!(
        DB_WRITE_WAIT,
        Unit::Seconds,
        "Time a database write waited before it started running."
    );
    describe_counter!(USAGE_EVENTS, "Usage events ingested, by outcome.");
    describe_counter!(CHARGE_ATTEMPTS, "Invoice charge attempts, by outcome.");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts, by outcome (delivered, retrying, failed)."
    );
    describe_counter!(
        WEBHOOK_ENDPOINTS_DISABLED,
        "Webhook endpoints disabled after failing for longer than --webhook-disable-after."
    );
    describe_gauge!(WEBHOOK_QUEUE_DEPTH, "Webhook deliveries waiting for an attempt.");
    describe_gauge!(
        WEBHOOK_UNDISPATCHED,
        "Webhook events not yet dispatched to endpoints."
    );
    describe_gauge!(
        WEBHOOK_OLDEST,
        Unit::Seconds,
        "Age of the oldest webhook delivery waiting for an attempt (0: none)."
    );
    for outcome in ["delivered", "retrying", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    metrics::counter!(WEBHOOK_ENDPOINTS_DISABLED).increment(0);
    describe_counter!(
        ALERTS_TRIGGERED,
        "Usage alerts triggered (each at most once per billing period)."
    );
    metrics::counter!(ALERTS_TRIGGERED).increment(0);
    for gauge in [WEBHOOK_QUEUE_DEPTH, WEBHOOK_UNDISPATCHED, WEBHOOK_OLDEST] {
        metrics::gauge!(gauge).set(0.0);
    }

    for o in UsageChangeOutcome::ALL {
        metrics::counter!(QUOTA_RESERVATIONS, "outcome" => o.as_str()).increment(0);
    }
    for job in Job::ALL {
        metrics::counter!(JOB_RUNS, "job" => job.as_str()).increment(0);
        metrics::counter!(JOB_FAILURES, "job" => job.as_str()).increment(0);
    }
    for outcome in ["accepted", "duplicate", "rejected"] {
        metrics::counter!(USAGE_EVENTS, "outcome" => outcome).increment(0);
    }
    for outcome in [
        tollgate_store::ChargeOutcome::Succeeded,
        tollgate_store::ChargeOutcome::Declined,
        tollgate_store::ChargeOutcome::Failed,
    ] {
        metrics::counter!(CHARGE_ATTEMPTS, "outcome" => outcome.as_str()).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn job_runs_and_failures_are_counted_and_the_latest_failures_kept() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let before = recent()
            .1
            .into_iter()
            .find(|(j, _)| *j == "alerts")
            .map(|(_, c)| c);
        let before = before.unwrap_or_default();
        timed_job(Job::Alerts, at, async { Ok::<_, StoreError>(1) })
            .await
            .unwrap();
        let failed = timed_job(Job::Alerts, at, async {
            Err::<(), _>(StoreError::Unavailable("the disk is full".into()))
        })
        .await;
        assert!(failed.is_err());
        let (failures, jobs) = recent();
        let counts = jobs.into_iter().find(|(j, _)| *j == "alerts").unwrap().1;
        assert_eq!(counts.runs, before.runs + 2);
        assert_eq!(counts.failures, before.failures + 1);
        assert!(
            failures
                .iter()
                .any(|f| f.what == "job alerts" && f.error.contains("the disk is full") && f.at == at),
            "{failures:?}"
        );
        // Only the latest are kept, newest first.
        for n in 0..RECENT_FAILURES + 5 {
            record_failure(at, format!("test {n}"), "x".into());
        }
        let (failures, _) = recent();
        assert!(failures.len() <= RECENT_FAILURES);
        assert_eq!(failures[0].what, format!("test {}", RECENT_FAILURES + 4));
    }
}
