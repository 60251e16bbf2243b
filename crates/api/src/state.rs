//! What every handler shares.

use std::sync::Arc;

use tollgate_domain::clock::Clock;
use tollgate_domain::quota::EffectiveQuota;
use tollgate_domain::tenant::Tenant;
use tollgate_payments::Providers;
use tollgate_store::Store;

use crate::catalogs::{Catalogs, TenantPlan};
use crate::error::ApiError;
use crate::rate_limit::ApiRateLimiter;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limiter: ApiRateLimiter,
    catalogs: Catalogs,
    providers: Providers,
    /// SHA-256 of the operator credential; the operator API is off without one.
    operator_digest: Option<[u8; 32]>,
    /// How far in the future a usage event's timestamp may be.
    max_event_skew: jiff::SignedDuration,
    /// Signs `hourly_breakdown_query` tokens; read from the store once.
    report_key: tokio::sync::OnceCell<Vec<u8>>,
    /// How jobs run when the operator API runs one.
    invoicing: tollgate_app::invoices::InvoiceSettings,
    retention: tollgate_app::maintenance::Retention,
    worker_id: String,
    stripe_webhook_secret: Option<String>,
    metrics_token: Option<String>,
    /// Delivering webhooks (settings, event data rendered by this crate).
    webhooks: tollgate_app::webhooks::Webhooks,
    /// The charge pass a request started in the background, if any.
    charging: std::sync::Mutex<Background>,
    /// The webhook dispatch a request started in the background, if any.
    dispatching: std::sync::Mutex<Background>,
    /// Each tenant's effective limits, with what they were computed from.
    effective: std::sync::Mutex<std::collections::HashMap<tollgate_domain::ids::TenantId, CachedQuota>>,
    /// Each tenant's last quota usage answer, with what it was rendered from.
    usage_answers: std::sync::Mutex<std::collections::HashMap<tollgate_domain::ids::TenantId, UsageAnswer>>,
}

/// A rendered quota usage answer and what it was rendered from: the
/// tenant's effective limits (the very `Arc` of [`CachedQuota`]) and its
/// usage rows as read for the request. An answer is served again only to a
/// request that read the same limits and the same rows, so it is exactly
/// what rendering again would give.
struct UsageAnswer {
    quota: Arc<EffectiveQuota>,
    usage: Vec<(tollgate_domain::quota::KeyFamily, String, i64)>,
    body: axum::body::Bytes,
}

/// A tenant's effective limits and what they were computed from: its quota
/// objects' version, its plan, catalog version and currency. Every request
/// reads these with the tenant (the same query as its token), so a cached
/// entry whose key still matches is exactly what computing again would give.
struct CachedQuota {
    key: (i64, i64, String, Option<String>),
    quota: Arc<EffectiveQuota>,
}

/// The most tenants whose effective limits are kept; past it the cache
/// starts again empty.
const EFFECTIVE_CACHE_MOST: usize = 50_000;

/// Which background pass a request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Charging unpaid invoices again (a new payment method), then dispatching.
    Charge,
    /// Dispatching webhook events the request emitted.
    Dispatch,
}

/// A background pass started by requests: at most one of each kind runs; a
/// request while it runs asks it to go round once more instead of starting
/// another.
#[derive(Default)]
pub(crate) struct Background {
    running: bool,
    again: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Optional parts of the state.
#[derive(Default)]
pub struct Options {
    /// The payment providers; the built-in test provider alone when absent.
    pub providers: Option<Providers>,
    /// The operator credential (`Authorization: Bearer <it>` on /api/operator).
    pub operator_token: Option<String>,
    /// How far in the future a usage event's timestamp may be (default 5 minutes).
    pub max_event_skew: Option<jiff::SignedDuration>,
    /// Invoice grace and charge retries, for jobs the operator API runs
    /// (the job loop's settings; defaults otherwise).
    pub invoicing: Option<tollgate_app::invoices::InvoiceSettings>,
    /// Idempotency window, for the prune job the operator API runs.
    pub retention: Option<tollgate_app::maintenance::Retention>,
    /// Names this process in job leases.
    pub worker_id: Option<String>,
    /// The signing secret of Stripe's webhook endpoint (`whsec_…`); the
    /// endpoint answers 404 without it.
    pub stripe_webhook_secret: Option<String>,
    /// The bearer token `GET /metrics` needs; open without one.
    pub metrics_token: Option<String>,
    /// Webhook delivery settings (private addresses, timeout, disabling).
    pub webhooks: Option<tollgate_app::webhooks::WebhookSettings>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::with_options(store, clock, Options::default())
    }

    pub fn with_options(store: Arc<dyn Store>, clock: Arc<dyn Clock>, options: Options) -> Self {
        let webhooks = options.webhooks.unwrap_or_default();
        Self(Arc::new_cyclic(|me| Inner {
            webhooks: tollgate_app::webhooks::Webhooks::new(
                webhooks,
                Arc::new(crate::events::EventData::new(me.clone())),
            ),
            store,
            clock,
            limiter: ApiRateLimiter::default(),
            catalogs: Catalogs::default(),
            providers: options.providers.unwrap_or_else(Providers::test),
            operator_digest: options
                .operator_token
                .filter(|t| !t.is_empty())
                .map(|t| tollgate_domain::token::digest(&t)),
            max_event_skew: options
                .max_event_skew
                .unwrap_or(tollgate_app::usage::DEFAULT_MAX_SKEW),
            report_key: tokio::sync::OnceCell::new(),
            invoicing: options.invoicing.unwrap_or_default(),
            retention: options.retention.unwrap_or_default(),
            worker_id: options.worker_id.unwrap_or_else(|| "tollgate-api".to_owned()),
            stripe_webhook_secret: options.stripe_webhook_secret.filter(|s| !s.is_empty()),
            metrics_token: options.metrics_token.filter(|s| !s.is_empty()),
            charging: std::sync::Mutex::default(),
            dispatching: std::sync::Mutex::default(),
            effective: std::sync::Mutex::default(),
            usage_answers: std::sync::Mutex::default(),
        }))
    }

    /// Runs the charge job in the background, now, without the caller
    /// waiting for the payment provider (the job loop would run it within
    /// its interval anyway): for invoices a request just made due. Several
    /// requests at once make one pass, run again once if asked meanwhile.
    /// The events the charges emit are dispatched after it.
    pub fn charge_soon(&self) {
        self.soon(Pass::Charge);
    }

    /// Dispatches the webhook events a request's change just emitted, in
    /// the background: their data is then the object as that change left
    /// it, not as a later one does (the job loop would dispatch them within
    /// its interval anyway). Coalesced like [`Self::charge_soon`].
    pub fn dispatch_soon(&self) {
        self.soon(Pass::Dispatch);
    }

    fn slot(&self, pass: Pass) -> &std::sync::Mutex<Background> {
        match pass {
            Pass::Charge => &self.0.charging,
            Pass::Dispatch => &self.0.dispatching,
        }
    }

    fn soon(&self, pass: Pass) {
        let mut slot = self.slot(pass).lock().unwrap_or_else(|e| e.into_inner());
        // A pass that ended while still "running" panicked: start another.
        let panicked = slot.task.as_ref().is_some_and(|t| t.is_finished());
        if slot.running && !panicked {
            slot.again = true;
            return;
        }
        slot.running = true;
        let state = self.clone();
        slot.task = Some(tokio::spawn(async move {
            loop {
                let ctx = state.job_context();
                if pass == Pass::Charge
                    && let Err(e) = tollgate_app::invoices::charge_until_idle(&ctx).await
                {
                    tracing::warn!(error = %e, "background charge failed; the job loop retries");
                }
                if let Err(e) = tollgate_app::webhooks::dispatch(&ctx).await {
                    tracing::warn!(error = %e, "background webhook dispatch failed; the job loop retries");
                }
                let mut slot = state.slot(pass).lock().unwrap_or_else(|e| e.into_inner());
                if slot.again {
                    slot.again = false;
                } else {
                    slot.running = false;
                    return;
                }
            }
        }));
    }

    /// Waits until no background charge pass ([`Self::charge_soon`]) runs.
    pub async fn charged(&self) {
        self.settled(Pass::Charge).await;
    }

    /// Waits until no background dispatch ([`Self::dispatch_soon`]) runs.
    pub async fn dispatched(&self) {
        self.settled(Pass::Dispatch).await;
    }

    async fn settled(&self, pass: Pass) {
        loop {
            let task = {
                let mut slot = self.slot(pass).lock().unwrap_or_else(|e| e.into_inner());
                slot.task.take()
            };
            match task {
                Some(task) => {
                    if let Err(e) = task.await {
                        // It panicked before saying it is done.
                        tracing::error!(error = %e, "background {pass:?} pass stopped");
                        let mut slot = self.slot(pass).lock().unwrap_or_else(|e| e.into_inner());
                        slot.running = false;
                        slot.again = false;
                    }
                }
                None => return,
            }
        }
    }

    /// What a job run through the operator API works with: the same store,
    /// clock, provider, catalogs and settings as the job loop.
    pub fn job_context(&self) -> tollgate_app::JobContext {
        tollgate_app::JobContext {
            store: self.0.store.clone(),
            clock: self.0.clock.clone(),
            providers: self.0.providers.clone(),
            worker_id: self.0.worker_id.clone(),
            catalogs: self.catalogs().versions(),
            invoicing: self.0.invoicing.clone(),
            retention: self.0.retention,
            webhooks: self.0.webhooks.clone(),
        }
    }

    /// Webhook delivery: its settings, and the renderer of events' data.
    pub fn webhooks(&self) -> &tollgate_app::webhooks::Webhooks {
        &self.0.webhooks
    }

    /// The state `EventData` holds weakly (it lives inside the state).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self(inner)
    }

    pub fn max_event_skew(&self) -> jiff::SignedDuration {
        self.0.max_event_skew
    }

    /// The key that signs report tokens, shared by replicas through the store.
    pub async fn report_key(&self) -> Result<&[u8], ApiError> {
        let key = self
            .0
            .report_key
            .get_or_try_init(|| async {
                Ok::<_, ApiError>(self.store().secret("report-token-key").await?.into_bytes())
            })
            .await?;
        Ok(key)
    }

    /// The bearer token `/metrics` needs, if any.
    pub fn metrics_token(&self) -> Option<&str> {
        self.0.metrics_token.as_deref()
    }

    /// The signing secret of Stripe's webhook endpoint, if it is on.
    pub fn stripe_webhook_secret(&self) -> Option<&str> {
        self.0.stripe_webhook_secret.as_deref()
    }

    pub fn providers(&self) -> &Providers {
        &self.0.providers
    }

    pub fn operator_digest(&self) -> Option<&[u8; 32]> {
        self.0.operator_digest.as_ref()
    }

    pub fn store(&self) -> &dyn Store {
        &*self.0.store
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.0.clock
    }

    /// The current time at the precision Tollgate stores (microseconds), so
    /// that what a write returns equals what a later read returns.
    pub fn now(&self) -> jiff::Timestamp {
        let now = self.clock().now();
        jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
    }

    pub fn limiter(&self) -> &ApiRateLimiter {
        &self.0.limiter
    }

    pub fn catalogs(&self) -> &Catalogs {
        &self.0.catalogs
    }

    /// The plan a tenant is on.
    pub async fn tenant_plan(&self, tenant: &Tenant) -> Result<TenantPlan, ApiError> {
        self.catalogs().tenant_plan(self.store(), tenant).await
    }

    /// The limits in force for a tenant: its plan's default quota overlaid by
    /// its quota objects. Cached per tenant, keyed by the tenant's
    /// `quota_version`, plan, catalog version and currency as read with it:
    /// no query while none of them changed, and never stale (a quota write
    /// on any replica changes the version the next request reads).
    pub async fn effective_quota(&self, tenant: &Tenant) -> Result<Arc<EffectiveQuota>, ApiError> {
        let key = (
            tenant.quota_version,
            tenant.catalog_version,
            tenant.plan.as_str().to_owned(),
            tenant.currency.clone(),
        );
        {
            let cache = self
                .0
                .effective
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache.get(&tenant.id).filter(|c| c.key == key) {
                return Ok(c.quota.clone());
            }
        }
        let plan = self.tenant_plan(tenant).await?;
        let objects = self.store().quotas(&tenant.id, "system").await?;
        let quota = Arc::new(EffectiveQuota::compute(&plan.plan().default_quota, &objects));
        let mut cache = self
            .0
            .effective
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= EFFECTIVE_CACHE_MOST && !cache.contains_key(&tenant.id) {
            cache.clear();
        }
        cache.insert(
            tenant.id.clone(),
            CachedQuota {
                key,
                quota: quota.clone(),
            },
        );
        Ok(quota)
    }

    /// The JSON body of the quota usage answer for `usage` under `quota`:
    /// the tenant's last one if it was rendered from the same limits and
    /// rows, else `render`'s, kept for the next request.
    pub fn usage_answer(
        &self,
        tenant: &tollgate_domain::ids::TenantId,
        quota: &Arc<EffectiveQuota>,
        usage: Vec<(tollgate_domain::quota::KeyFamily, String, i64)>,
        render: impl FnOnce(
            &EffectiveQuota,
            &[(tollgate_domain::quota::KeyFamily, String, i64)],
        ) -> Result<Vec<u8>, ApiError>,
    ) -> Result<axum::body::Bytes, ApiError> {
        let lock = || {
            self.0
                .usage_answers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(a) = lock().get(tenant)
            && Arc::ptr_eq(&a.quota, quota)
            && a.usage == usage
        {
            return Ok(a.body.clone());
        }
        let body = axum::body::Bytes::from(render(quota, &usage)?);
        let mut answers = lock();
        if answers.len() >= EFFECTIVE_CACHE_MOST && !answers.contains_key(tenant) {
            answers.clear();
        }
        answers.insert(
            tenant.clone(),
            UsageAnswer {
                quota: quota.clone(),
                usage,
                body: body.clone(),
            },
        );
        Ok(body)
    }
}
