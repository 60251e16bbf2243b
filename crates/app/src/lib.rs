//! The application layer: one function per use case, shared by every entry
//! point (the HTTP API, the operator CLI, the job loop and, next, the
//! console), which only translate their input and the answer. Use cases own
//! their transactions (through the store), the authorization decisions that
//! are not HTTP's, auditing and idempotency.
//!
//! - Tenancy: [`tenancy`] (tenants, namespaces, API and operator tokens).
//! - Metering and reports: [`usage`] (ingestion), [`reports`], [`bills`].
//! - Billing: [`coupons`], [`invoices`] (period close, charging, PDFs),
//!   [`dunning`] (unpaid invoices: charging again, suspending, reinstating),
//!   [`refunds`] (partial and whole, each a credit note), [`credit_notes`]
//!   (their PDFs), [`credits`] (prepaid credits: grants, ledger, applied at
//!   finalization), [`transitions`] (the plan-transition worker).
//! - Telling the platform: [`webhooks`] (endpoints, the outbox's dispatch,
//!   signed deliveries with retries).
//! - Housekeeping: [`maintenance`]; [`Job`] names what may be run by hand.
//! - Metrics: [`telemetry`] (what the use cases and the jobs record).
//!
//! Background work takes its items from the database under a lease, so that
//! replicas never do the same work twice and work a crashed worker held is
//! taken over once its lease expires.

pub mod alerts;
pub mod bills;
pub mod catalogs;
pub mod coupons;
pub mod credit_notes;
pub mod credits;
pub mod dunning;
pub mod invoices;
pub mod maintenance;
pub mod payment_methods;
pub mod plans;
pub mod provider_events;
pub mod quotas;
pub mod refunds;
pub mod reports;
pub mod telemetry;
pub mod tenancy;
pub mod transitions;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use tollgate_domain::clock::Clock;
use tollgate_payments::Providers;
use tollgate_store::Store;

/// What the jobs need.
#[derive(Clone)]
pub struct JobContext {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The payment providers: new methods go to the default one, charges
    /// and refunds to the one that holds the method.
    pub providers: Providers,
    /// Names this process in leases, e.g. `hostname/pid`.
    pub worker_id: String,
    /// Parsed catalog versions.
    pub catalogs: Arc<catalogs::Versions>,
    pub invoicing: invoices::InvoiceSettings,
    pub retention: maintenance::Retention,
    /// Delivering webhooks: settings, event data, the HTTP client.
    pub webhooks: webhooks::Webhooks,
}

/// Runs every job until `shutdown` resolves, polling every `interval`; after
/// each tick, sets the lag gauges ([`telemetry::record_backlog`]). Each run
/// is recorded as [`Job::run`]'s are (one path: `Job::run_at`).
pub async fn run_forever(
    ctx: JobContext,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    let mut last_close: Option<jiff::Timestamp> = None;
    let mut last_suspend: Option<jiff::Timestamp> = None;
    let (mut last_purge, mut purge_backlog): (Option<jiff::Timestamp>, bool) = (None, false);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = Job::Transitions.run(&ctx).await {
            tracing::warn!(error = %e, "plan transition job failed; retrying on the next tick");
        }
        // Each job's events are dispatched (their data rendered) before the
        // next job changes the same objects: an invoice finalized and paid in
        // one tick tells of ISSUED, then of PAID.
        dispatch_events(&ctx).await;
        // Closing periods reads the due tenants only; once a minute is plenty.
        // Expired credits are written off first (finalization never uses
        // them either way).
        let now = ctx.clock.now();
        if last_close.is_none_or(|at| now.duration_since(at) >= CLOSE_EVERY) {
            if let Err(e) = Job::CreditExpiry.run_at(&ctx, now, usize::MAX).await {
                tracing::warn!(error = %e, "credit expiry failed; retrying on the next tick");
            }
            match Job::PeriodClose.run_at(&ctx, now, usize::MAX).await {
                Ok(_) => last_close = Some(now),
                Err(e) => tracing::warn!(error = %e, "period close failed; retrying on the next tick"),
            }
            dispatch_events(&ctx).await;
        }
        if let Err(e) = Job::Charge.run(&ctx).await {
            tracing::warn!(error = %e, "charge job failed; retrying on the next tick");
        }
        dispatch_events(&ctx).await;
        // After charging, so that an invoice just paid suspends no one; the
        // delay is days, so once a minute is plenty too.
        let now = ctx.clock.now();
        if last_suspend.is_none_or(|at| now.duration_since(at) >= CLOSE_EVERY) {
            match Job::Suspend.run_at(&ctx, now, usize::MAX).await {
                Ok(_) => last_suspend = Some(now),
                Err(e) => tracing::warn!(error = %e, "suspension job failed; retrying on the next tick"),
            }
        }
        if let Err(e) = Job::Alerts.run(&ctx).await {
            tracing::warn!(error = %e, "usage alert evaluation failed; retrying on the next tick");
        }
        // Last: the events the jobs above emitted go out on this tick.
        if let Err(e) = Job::Webhooks.run(&ctx).await {
            tracing::warn!(error = %e, "webhook delivery failed; retrying on the next tick");
        }
        match Job::Prune
            .run_bounded(&ctx, maintenance::PRUNE_BATCHES_PER_TICK)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "forgot expired quota request ids"),
            Err(e) => {
                tracing::warn!(error = %e, "pruning idempotency records failed; retrying on the next tick")
            }
        }
        // Raw events past retention: once a minute, or at once while the
        // last pass left a backlog.
        let now = ctx.clock.now();
        if purge_backlog || last_purge.is_none_or(|at| now.duration_since(at) >= CLOSE_EVERY) {
            match Job::PurgeEvents
                .run_at(&ctx, now, maintenance::PURGE_BATCHES_PER_TICK)
                .await
            {
                Ok(n) => {
                    last_purge = Some(now);
                    purge_backlog =
                        n >= maintenance::PURGE_BATCHES_PER_TICK * maintenance::PURGE_BATCH as usize;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting raw usage events failed; retrying on the next tick")
                }
            }
        }
        if let Err(e) = telemetry::record_backlog(&ctx).await {
            tracing::debug!(error = %e, "cannot read the jobs' backlog for the metrics");
        }
    }
}

async fn dispatch_events(ctx: &JobContext) {
    if let Err(e) = webhooks::dispatch(ctx).await {
        tracing::warn!(error = %e, "dispatching webhook events failed; retrying on the next tick");
    }
}

/// How often `run_forever` closes periods and looks for tenants to suspend.
pub const CLOSE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Why a use case failed: a rule it refused (with the domain's kind and a
/// message naming the field or object) or the store (whose internal errors
/// each entry point logs rather than shows).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Rule(#[from] tollgate_domain::Error),
    #[error(transparent)]
    Store(#[from] tollgate_store::StoreError),
}

/// A job an operator may run by hand (`tollgate jobs run`, the operator API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Execute approved plan transitions.
    Transitions,
    /// Finalize the invoices of periods whose grace is over.
    PeriodClose,
    /// Charge due invoices.
    Charge,
    /// Suspend tenants with an invoice OVERDUE for longer than the suspension delay.
    Suspend,
    /// Forget quota request ids older than the idempotency window (and
    /// ended console sessions).
    Prune,
    /// Delete raw usage events past their retention.
    PurgeEvents,
    /// Dispatch webhook events to their endpoints and deliver those due.
    Webhooks,
    /// Evaluate the usage alerts of tenants whose usage arrived since.
    Alerts,
    /// Write off what is left of expired credit grants.
    CreditExpiry,
}

impl Job {
    /// In the order `all` runs them.
    pub const ALL: [Job; 9] = [
        Job::Transitions,
        Job::CreditExpiry,
        Job::PeriodClose,
        Job::Charge,
        Job::Suspend,
        Job::Prune,
        Job::PurgeEvents,
        Job::Alerts,
        Job::Webhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transitions => "transitions",
            Self::PeriodClose => "period-close",
            Self::Charge => "charge",
            Self::Suspend => "suspend",
            Self::Prune => "prune",
            Self::PurgeEvents => "purge-events",
            Self::Webhooks => "webhooks",
            Self::Alerts => "alerts",
            Self::CreditExpiry => "credit-expiry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// What a count of this job's work means, e.g. "3 invoices finalized".
    pub fn summary(self, n: usize) -> String {
        let plural = |one: &str, many: &str| if n == 1 { one.to_owned() } else { many.to_owned() };
        match self {
            Self::Transitions => format!("{n} {} finished or failed", plural("transition", "transitions")),
            Self::PeriodClose => format!("{n} {} finalized", plural("invoice", "invoices")),
            Self::Charge => format!("{n} charge {}", plural("round", "rounds")),
            Self::Suspend => format!("{n} {} suspended", plural("tenant", "tenants")),
            Self::Prune => format!("{n} expired quota request {} forgotten", plural("id", "ids")),
            Self::PurgeEvents => format!(
                "{n} raw usage {} past retention deleted",
                plural("event", "events")
            ),
            Self::Webhooks => format!("{n} webhook delivery {} made", plural("attempt", "attempts")),
            Self::Alerts => format!("{n} usage {} triggered", plural("alert", "alerts")),
            Self::CreditExpiry => format!("{n} credit {} expired", plural("grant", "grants")),
        }
    }

    /// Runs the job until it has nothing left to do; returns how much it did.
    pub async fn run(self, ctx: &JobContext) -> Result<usize, tollgate_store::StoreError> {
        self.run_bounded(ctx, usize::MAX).await
    }

    /// [`Job::run`] with at most `batches` batches of pruning or deleting (the job
    /// loop prunes a few per tick).
    async fn run_bounded(
        self,
        ctx: &JobContext,
        batches: usize,
    ) -> Result<usize, tollgate_store::StoreError> {
        self.run_at(ctx, ctx.clock.now(), batches).await
    }

    /// Every run, by the loop or by hand, comes here and is recorded once
    /// (runs, failures, duration by job: [`telemetry`]). `now` is the time
    /// period close and suspension judge by.
    async fn run_at(
        self,
        ctx: &JobContext,
        now: jiff::Timestamp,
        batches: usize,
    ) -> Result<usize, tollgate_store::StoreError> {
        telemetry::timed_job(self, now, async {
            match self {
                Self::Transitions => transitions::run_until_idle(ctx).await,
                Self::PeriodClose => invoices::close_periods(ctx, now).await,
                Self::Charge => invoices::charge_until_idle(ctx).await,
                Self::Suspend => dunning::suspend_overdue(ctx, now).await,
                Self::Prune => maintenance::prune(ctx, batches)
                    .await
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                Self::PurgeEvents => maintenance::purge_events(ctx, batches)
                    .await
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                Self::Webhooks => webhooks::run_until_idle(ctx).await,
                Self::Alerts => alerts::evaluate(ctx).await,
                Self::CreditExpiry => credits::expire_due(ctx.store.as_ref(), now).await,
            }
        })
        .await
    }
}
