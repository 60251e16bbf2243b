//! Webhooks out: endpoints (the tenant's own, and the operator's for every
//! tenant), dispatching the outbox's events to them and delivering each,
//! signed as the Standard Webhooks specification says.
//!
//! Guarantees, and where each comes from:
//! - **No event lost, none invented.** Events are written by the store in
//!   the transaction of the change they tell of (the outbox). A change that
//!   rolls back leaves no event.
//! - **At least once, same id.** A delivery is PENDING until an attempt is
//!   answered 2xx; every attempt of it sends the same body and the event's id
//!   as `webhook-id` (receivers deduplicate on it). Failed attempts (a
//!   timeout, a refused connection, a non-2xx answer) are retried after
//!   [`RETRY_SCHEDULE`](tollgate_domain::webhook::RETRY_SCHEDULE); after the
//!   last, the delivery is FAILED (redeliver by hand).
//! - **In order per endpoint.** An endpoint's deliveries are attempted one at
//!   a time, oldest first: a delivery waiting for a retry holds back the later
//!   ones of its endpoint (not other endpoints').
//! - **Once per attempt across replicas.** A delivery is leased before its
//!   attempt (as charges are): another replica does not attempt it until the
//!   lease (the request timeout and a margin) expires.
//! - **Endpoints failing for days are disabled** (`--webhook-disable-after`,
//!   default 5 days with no success): audited `webhook_endpoint.disabled`,
//!   counted in `tollgate_webhook_endpoints_disabled_total`; enabling the
//!   endpoint again resumes its deliveries.
//! - **Safe to point anywhere.** A per-request timeout, at most
//!   [`MAX_RESPONSE_BYTES`] of an answer read, no redirects followed, no proxy
//!   from the environment, and no loopback, link-local or private address
//!   (checked on every resolution, so DNS cannot be used to reach one) unless
//!   the operator allows them (`--webhook-allow-private`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use tollgate_domain::ids::TenantId;
use tollgate_domain::webhook;
use tollgate_store::{
    DeliveryAttempt, DeliveryJob, DeliveryStatus, EndpointScope, NewWebhookEndpoint, Store, StoreError,
    WebhookEndpoint, WebhookEvent,
};

use crate::{AppError, JobContext};

/// What the operator decides about delivering webhooks.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback, link-local and private addresses (on-premises
    /// receivers, tests).
    pub allow_private: bool,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: SignedDuration,
    /// The most endpoints a tenant (or the operator) may have.
    pub endpoint_limit: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            disable_after: SignedDuration::from_hours(5 * 24),
            endpoint_limit: 16,
        }
    }
}

/// The most of an answer's body read (and kept, as text, up to
/// [`KEPT_ERROR_CHARS`]); the rest is not waited for.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a failed attempt's answer or error is kept to show.
pub const KEPT_ERROR_CHARS: usize = 512;
/// How many deliveries one worker attempts at once.
const CLAIM_BATCH: u32 = 32;
/// How many events one dispatch round reads.
const DISPATCH_BATCH: u32 = 100;
/// How long delivered (or failed) events and their deliveries are kept, to
/// be listed and redelivered; then the webhooks job forgets them.
pub const EVENT_RETENTION: SignedDuration = SignedDuration::from_hours(30 * 24);
/// Events one run of the webhooks job forgets at most.
const PRUNE_BATCH: u32 = 500;

/// The payload's `data` of an event the change did not write it for: the
/// object in the shape the API returns it (the API crate knows those).
#[async_trait::async_trait]
pub trait EventData: Send + Sync {
    /// The data of `event` as it stands now. A store failure is an error
    /// (dispatch is retried); an object that is gone is rendered as what is
    /// known of it, not an error.
    async fn data(&self, event: &WebhookEvent) -> Result<serde_json::Value, StoreError>;
}

/// Delivering webhooks: the settings, how events' data is rendered and the
/// HTTP client.
#[derive(Clone)]
pub struct Webhooks {
    pub settings: WebhookSettings,
    data: Arc<dyn EventData>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub fn new(settings: WebhookSettings, data: Arc<dyn EventData>) -> Self {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("Tollgate-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Self {
            settings,
            data,
            client: client.build().expect("a TLS backend is compiled in"),
        }
    }
}

/// Resolves host names to their public addresses only; a name with none is
/// an error, so that no delivery reaches a private address through DNS.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| webhook::is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private addresses need --webhook-allow-private)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What a new endpoint asks for.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: String,
    /// Event type names; empty for every type.
    pub events: Vec<String>,
    pub description: String,
}

/// A new signing secret, `whsec_` and 32 random bytes in base64.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    webhook::secret_from(&bytes)
}

/// Creates an endpoint for `tenant` (`None`: the operator's, for every
/// tenant). The answer carries its secret: the only time it is shown.
pub async fn create_endpoint(
    store: &dyn Store,
    hooks: &Webhooks,
    tenant: Option<TenantId>,
    input: EndpointInput,
    actor: &str,
    now: Timestamp,
) -> Result<WebhookEndpoint, AppError> {
    let url = webhook::endpoint_url("url", &input.url, hooks.settings.allow_private)?;
    let events = webhook::event_filter("events", &input.events)?;
    let description = input.description.trim().to_owned();
    if description.chars().count() > webhook::MAX_DESCRIPTION_LEN {
        return Err(tollgate_domain::Error::invalid(format!(
            "description: longer than {} characters",
            webhook::MAX_DESCRIPTION_LEN
        ))
        .with_metadata("field", "description")
        .into());
    }
    if description.chars().any(char::is_control) {
        return Err(
            tollgate_domain::Error::invalid("description: must not contain control characters")
                .with_metadata("field", "description")
                .into(),
        );
    }
    let new = NewWebhookEndpoint {
        tenant_id: tenant,
        url: url.to_string(),
        events: events.iter().map(|e| e.as_str().to_owned()).collect(),
        description,
        secret: new_secret(),
        limit: hooks.settings.endpoint_limit,
    };
    Ok(store.create_webhook_endpoint(&new, actor, now).await?)
}

/// Gives the endpoint a new secret; the old one keeps signing (beside it)
/// for [`webhook::ROTATION_OVERLAP`]. The answer carries the new secret.
pub async fn rotate_secret(
    store: &dyn Store,
    scope: &EndpointScope,
    id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<WebhookEndpoint, AppError> {
    let until = now + webhook::ROTATION_OVERLAP;
    Ok(store
        .rotate_webhook_secret(scope, id, &new_secret(), until, actor, now)
        .await?)
}

/// The body of every delivery of `event`: `{"id","type","timestamp","tenant","data"}`.
/// The same bytes on every attempt.
pub fn payload(event: &WebhookEvent) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"id\":{},\"type\":{},\"timestamp\":{},\"tenant\":{},\"data\":{}}}",
        text(&event.id),
        text(&event.event_type),
        text(&event.created_at.to_string()),
        text(event.tenant_id.as_str()),
        event.data.as_deref().unwrap_or("null"),
    )
}

/// Dispatches every event not yet dispatched to the endpoints that want it;
/// returns how many this worker dispatched.
pub async fn dispatch(ctx: &JobContext) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        let events = ctx.store.undispatched_webhook_events(DISPATCH_BATCH).await?;
        for event in &events {
            let data = match &event.data {
                Some(d) => d.clone(),
                None => match ctx.webhooks.data.data(event).await {
                    Ok(d) => d.to_string(),
                    // The database is away: dispatch again on the next run.
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    // An object that cannot be read back must not hold up
                    // every later event: it goes out saying so.
                    Err(e) => {
                        tracing::error!(event = %event.id, subject = %event.subject, error = %e,
                            "webhook event data could not be rendered; sent without it");
                        serde_json::json!({"subject": event.subject, "unavailable": true}).to_string()
                    }
                },
            };
            if ctx
                .store
                .dispatch_webhook_event(event.seq, &data, ctx.clock.now())
                .await?
                .is_some()
            {
                done += 1;
            }
        }
        if events.len() < DISPATCH_BATCH as usize {
            return Ok(done);
        }
    }
}

/// Makes one attempt of each due delivery (of each endpoint, its oldest);
/// returns how many attempts were made.
pub async fn deliver_due(ctx: &JobContext) -> Result<usize, StoreError> {
    let now = ctx.clock.now();
    let lease = SignedDuration::try_from(ctx.webhooks.settings.timeout)
        .unwrap_or(SignedDuration::from_secs(10))
        + SignedDuration::from_secs(60);
    let jobs = ctx
        .store
        .claim_webhook_deliveries(&ctx.worker_id, now, now + lease, CLAIM_BATCH)
        .await?;
    let n = jobs.len();
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let ctx = ctx.clone();
        set.spawn(async move { attempt(&ctx, job).await });
    }
    let mut first_error = None;
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recording a webhook attempt failed; retried after its lease");
                first_error.get_or_insert(e);
            }
            Err(e) => tracing::error!(error = %e, "a webhook attempt panicked"),
        }
    }
    match first_error {
        Some(e) if !matches!(e, StoreError::Conflict(..)) => Err(e),
        _ => Ok(n),
    }
}

/// Dispatches, then delivers until nothing is due; returns the attempts made.
pub async fn run_until_idle(ctx: &JobContext) -> Result<usize, StoreError> {
    dispatch(ctx).await?;
    let mut attempts = 0;
    loop {
        let n = deliver_due(ctx).await?;
        attempts += n;
        if n == 0 {
            break;
        }
        // An attempt may have made room for the next delivery of its endpoint.
        dispatch(ctx).await?;
    }
    let forgotten = ctx
        .store
        .prune_webhook_events(ctx.clock.now() - EVENT_RETENTION, PRUNE_BATCH)
        .await?;
    if forgotten > 0 {
        tracing::debug!(forgotten, "forgot webhook events past their retention");
    }
    record_queue(ctx).await;
    Ok(attempts)
}

/// Sets the queue gauges: PENDING deliveries, events not yet dispatched,
/// and the age of the oldest PENDING delivery.
pub async fn record_queue(ctx: &JobContext) {
    match ctx.store.webhook_queue().await {
        Ok(q) => {
            metrics::gauge!(crate::telemetry::WEBHOOK_QUEUE_DEPTH).set(q.pending as f64);
            metrics::gauge!(crate::telemetry::WEBHOOK_UNDISPATCHED).set(q.undispatched as f64);
            let age = q.oldest.map_or(0.0, |at| {
                ctx.clock.now().duration_since(at).as_secs_f64().max(0.0)
            });
            metrics::gauge!(crate::telemetry::WEBHOOK_OLDEST).set(age);
        }
        Err(e) => tracing::debug!(error = %e, "reading the webhook queue failed"),
    }
}

/// What one HTTP attempt came to.
struct Answer {
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
}

async fn attempt(ctx: &JobContext, job: DeliveryJob) -> Result<(), StoreError> {
    let now = ctx.clock.now();
    let answer = send(&ctx.webhooks, &job, now).await;
    let attempts = job.attempts + 1;
    let retry_at = if answer.delivered {
        None
    } else {
        webhook::retry_after(attempts).map(|d| ctx.clock.now() + d)
    };
    let record = DeliveryAttempt {
        delivered: answer.delivered,
        status: answer.status,
        error: answer.error.clone(),
        retry_at,
        disable_if_failing_since: now - ctx.webhooks.settings.disable_after,
    };
    let recorded = ctx
        .store
        .record_webhook_attempt(&job.delivery_id, &ctx.worker_id, &record, ctx.clock.now())
        .await?;
    let outcome = match recorded.status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Pending => "retrying",
        DeliveryStatus::Failed => "failed",
    };
    metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    if !answer.delivered {
        // By endpoint id, not URL: a URL may carry a secret in its query.
        crate::telemetry::record_failure(
            now,
            format!("webhook delivery to endpoint {}", job.endpoint.id),
            answer.error.clone().unwrap_or_else(|| match answer.status {
                Some(s) => format!("answered {s}"),
                None => "no answer".to_owned(),
            }),
        );
    }
    if recorded.disabled_endpoint {
        metrics::counter!(crate::telemetry::WEBHOOK_ENDPOINTS_DISABLED).increment(1);
        tracing::warn!(
            endpoint = %job.endpoint.id,
            tenant = job.endpoint.tenant_id.as_ref().map(TenantId::as_str),
            "webhook endpoint disabled: every attempt failed for longer than --webhook-disable-after"
        );
    } else if !answer.delivered {
        tracing::info!(
            endpoint = %job.endpoint.id,
            delivery = %job.delivery_id,
            attempt = attempts,
            error = answer.error.as_deref().unwrap_or(""),
            "webhook attempt failed"
        );
    }
    Ok(())
}

async fn send(hooks: &Webhooks, job: &DeliveryJob, now: Timestamp) -> Answer {
    let failed = |error: String| Answer {
        delivered: false,
        status: None,
        error: Some(error),
    };
    // Checked again: the operator may have turned private addresses off
    // since the endpoint was made.
    let url = match webhook::endpoint_url("url", &job.endpoint.url, hooks.settings.allow_private) {
        Ok(url) => url,
        Err(e) => return failed(e.message),
    };
    let body = payload(&job.event);
    let ts = now.as_second();
    let signature = webhook::signature_header(
        job.endpoint.signing_secrets(now).iter().map(String::as_str),
        &job.event.id,
        ts,
        body.as_bytes(),
    );
    let sent = hooks
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &job.event.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return failed(describe(&e)),
    };
    let status = response.status();
    // Read a bounded part of the answer (a receiver streaming forever is cut
    // off by the size cap or the request timeout).
    let mut read = Vec::new();
    while read.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - read.len())])
            }
            Ok(None) => break,
            Err(e) => {
                if status.is_success() {
                    break; // answered 2xx: the body does not matter
                }
                return Answer {
                    delivered: false,
                    status: Some(status.as_u16()),
                    error: Some(describe(&e)),
                };
            }
        }
    }
    if status.is_success() {
        return Answer {
            delivered: true,
            status: Some(status.as_u16()),
            error: None,
        };
    }
    let text: String = String::from_utf8_lossy(&read)
        .chars()
        .take(KEPT_ERROR_CHARS)
        .collect();
    let what = if status.is_redirection() {
        "redirects are not followed"
    } else {
        "not a 2xx answer"
    };
    Answer {
        delivered: false,
        status: Some(status.as_u16()),
        error: Some(format!("HTTP {} ({what}): {}", status.as_u16(), text.trim())),
    }
}

/// A transport error in words, with its causes (reqwest's top-level message
/// alone says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.chars().take(KEPT_ERROR_CHARS).collect()
}
