//! Prometheus metrics: `GET /metrics` in the text exposition format, on
//! the API's address, or on one of its own with `serve --metrics-listen`
//! ([`router`]; the API's router then has none). With `--metrics-token`
//! only its bearer may read them.
//!
//! The process has one recorder (the `metrics` facade's global one,
//! [`handle`]), installed on first use; every crate records through the
//! facade (`metrics::counter!`), the API renders. Labels are bounded: an
//! operation id from `/openapi.json` (or the route template, never a raw
//! path), a status code, an outcome, job, report or pool from a closed set;
//! never a tenant, an invoice name or an id. Series of closed label sets
//! are registered at zero, so alerts and rates have them before they move.
//!
//! Every metric (histograms: 0.5 ms–10 s buckets unless said):
//! - `tollgate_http_requests_total{operation,method,status}` and
//!   `tollgate_http_request_duration_seconds{operation}` (histogram), by
//!   the middleware [`track`];
//! - `tollgate_usage_events_total{outcome}`: accepted, duplicate, rejected
//!   (`app::usage`); `tollgate_ingest_duration_seconds`: one ingestion batch;
//! - `tollgate_quota_reservations_total{outcome}`: every quota usage change,
//!   granted, refused, suspended, replayed, released, reconciled, error
//!   (`app::quotas`);
//! - `tollgate_report_duration_seconds{report}`: current_usage,
//!   usage_details, hourly, monthly, summary (the handlers in `usage.rs`);
//! - `tollgate_charge_attempts_total{outcome}`: SUCCEEDED, DECLINED, FAILED
//!   (`app::invoices`);
//! - `tollgate_webhook_deliveries_total{outcome}` (delivered, retrying,
//!   failed), `tollgate_webhook_endpoints_disabled_total`, and the gauges
//!   `tollgate_webhook_queue_depth`, `tollgate_webhook_undispatched_events`,
//!   `tollgate_webhook_oldest_undelivered_seconds` (`app::webhooks`);
//! - `tollgate_alerts_triggered_total` (`app::alerts`);
//! - `tollgate_job_runs_total{job}`, `tollgate_job_failures_total{job}`,
//!   `tollgate_job_duration_seconds{job}` (histogram, 1 ms–10 min): every
//!   run of transitions, period-close, charge, suspend, prune, alerts, webhooks, by the job
//!   loop or by hand (`app::Job`);
//! - `tollgate_job_oldest_due_period_seconds`,
//!   `tollgate_job_oldest_due_charge_seconds`: how long the oldest period
//!   due for closing (end + grace) and the oldest due charge round have
//!   waited, 0 if none; set by the job loop each tick (absent without one);
//! - `tollgate_db_pool_connections{pool,state}` (state `in_use`, `idle`) and
//!   `tollgate_db_pool_max_connections{pool}`: pool `read` and `write` on
//!   SQLite (the writer's one connection), `shared` on PostgreSQL; set from
//!   the store's pools when `/metrics` is read ([`serve`]);
//! - `tollgate_db_write_wait_seconds` (histogram, 50 µs–10 s): how long a
//!   write job waited before it started (`tollgate_store`);
//! - `tollgate_build_info{version}`: always 1.
//!
//! `app::telemetry` holds the names and closed sets of what the
//! application records. `deploy/` has example alerting rules and a Grafana
//! dashboard over these (a CLI test finds each name they use in a scrape).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tollgate_app::telemetry;
use tollgate_domain::{ErrorKind, Reason};

use crate::error::ApiError;
use crate::state::AppState;

/// Latency buckets, in seconds: 0.5 ms to 10 s (requests, ingestion,
/// reports).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A background job run: 1 ms (nothing to do) to 10 min (a month's close
/// of many tenants, a long charge pass).
const JOB_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// A write waiting to start: 50 µs (an idle writer) to 10 s (a lock or a
/// pool exhausted).
const WRITE_WAIT_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// The process's recorder, installed on first use. `None` if another
/// recorder was installed first (then nothing is rendered here).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let full = |name: &str| Matcher::Full(name.to_owned());
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(full(telemetry::JOB_DURATION), JOB_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(full(telemetry::DB_WRITE_WAIT), WRITE_WAIT_BUCKETS))
                .expect("non-empty buckets");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    metrics::gauge!("tollgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Help texts of every metric; the series of closed label sets at zero.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by operation id, method and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by operation id."
    );
    describe_gauge!("tollgate_build_info", "The running version (always 1).");
    telemetry::describe();
}

const HTTP_REQUESTS: &str = "tollgate_http_requests_total";
const HTTP_DURATION: &str = "tollgate_http_request_duration_seconds";

/// Operation ids by method and route template, from the API description.
/// Built with the router ([`warm`]), so that the memory building it takes
/// is freed and trimmed before the first request, not held after it.
fn operations() -> &'static HashMap<(String, String), String> {
    static OPS: OnceLock<HashMap<(String, String), String>> = OnceLock::new();
    OPS.get_or_init(crate::openapi::operation_ids)
}

/// Builds what the metrics layer looks up on every request.
pub(crate) fn warm() {
    operations();
}

/// The bounded name of what a request asked for: its operation id, else its
/// route template, else `unmatched` (no route: never the raw path). A
/// documented operation's id is borrowed from the map: no allocation on
/// the hot path beyond the lookup key.
fn operation(method: &str, matched: Option<&str>) -> SharedString {
    match matched {
        Some(path) => match operations().get(&(method.to_owned(), path.to_owned())) {
            Some(id) => SharedString::const_str(id.as_str()),
            None => SharedString::from(path.to_owned()),
        },
        None => SharedString::const_str("unmatched"),
    }
}

/// Counts and times every request (middleware, inside the routing).
pub async fn track(req: Request, next: Next) -> Response {
    if handle().is_none() {
        return next.run(req).await;
    }
    let method = SharedString::from(req.method().as_str().to_owned());
    let op = operation(
        &method,
        req.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
    );
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "operation" => op.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "operation" => op).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: every metric in the Prometheus text format. With a
/// metrics token configured (`--metrics-token`), only `Authorization: Bearer
/// <it>` may read it.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "tollgate.Metrics",
    tag = "operations",
    responses(
        (status = 200, content_type = "text/plain", body = String,
            description = "Every metric, in the Prometheus text exposition format 0.0.4."),
        (status = 401, body = crate::error::ErrorBody,
            description = "The server has a metrics token and the request does not carry it.")
    )
)]
pub async fn serve(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(expected) = state.metrics_token() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool = subtle::ConstantTimeEq::ct_eq(
            &tollgate_domain::token::digest(given)[..],
            &tollgate_domain::token::digest(expected)[..],
        )
        .into();
        if !same {
            return Err(ApiError::new(
                ErrorKind::Unauthenticated,
                "the metrics need `Authorization: Bearer <metrics token>`",
            )
            .with_reason(Reason::Unauthenticated));
        }
    }
    // The pool gauges are as of the scrape.
    telemetry::record_pools(state.store());
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response())
}

/// `GET /metrics` alone, for `serve --metrics-listen`: the same handler and
/// token rule on an address of its own (the API's router then has no
/// `/metrics`: [`crate::router_without_metrics`]); any other path is 404.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .fallback(crate::error::no_route)
        .method_not_allowed_fallback(crate::error::no_method)
        .with_state(state)
}
