//! Metering: usage ingestion (beyond the contract), the five usage reports,
//! and the meters of the caller's plan (beyond the contract).

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tollgate_app::bills;
use tollgate_app::reports::{self, ReportRange};
use tollgate_app::telemetry::Report;
use tollgate_app::usage::{self, EventOutcome, Reported, Tally};
use tollgate_domain::catalog::{Aggregation, Catalog, ModelKind, Plan, PriceModel};
use tollgate_domain::invoice::{InvoiceStatus, describe_price};
use tollgate_domain::metering::{self, Coverage, RawEvent};
use tollgate_domain::names::Name;
use tollgate_domain::rating::{Bill, Discount};
use tollgate_domain::{Error, ErrorKind};
use tollgate_store::{BucketFilter, DistinctBy};

use crate::auth::{Authorized, Caller, namespace};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::extract::Path;
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::usage::*;

/// Most events one ingestion request may carry.
pub const MAX_BATCH: usize = usage::MAX_BATCH;
/// Longest range a report may cover.
const MAX_RANGE: SignedDuration = SignedDuration::from_hours(24 * 400);

fn f64_of(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::MAX)
}

/// Ingests a batch of usage events. Each event is accepted, acknowledged as a
/// duplicate (its id was stored before: it is not counted again), or
/// rejected with a reason; one bad event does not stop the rest.
#[utoipa::path(
    post,
    path = "/api/data/namespaces/{namespace}/usage/events",
    operation_id = "tollgate.usage.IngestEvents",
    tag = "metering",
    params(("namespace" = String, Path, description = "Namespace the usage occurred in")),
    request_body = IngestRequest,
    responses(
        (status = 200, body = IngestResponse),
        (status = 400, body = ErrorBody,
            description = "Not a batch of 1 to 1000 events (a bad event is rejected in the answer, not with \
                           400).")
    ),
    security(("APIToken" = []))
)]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<IngestRequest>,
) -> Result<Json<IngestResponse>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::IngestEvents, &ns).await?;
    let events = body
        .events
        .ok_or_else(|| ApiError::invalid("events: is required"))?;
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "events: send 1 to {MAX_BATCH} events per request, got {}",
            events.len()
        )));
    }
    let plan = state.tenant_plan(&auth.tenant).await?;
    let reported: Vec<Reported> = events
        .into_iter()
        .map(|e| Reported {
            namespace: ns.clone(),
            event: RawEvent {
                id: e.id,
                metric_label: e.metric_label,
                object_name: e.object_name,
                quantity: e.quantity.map(|q| q.0),
                timestamp: e.timestamp.map(|t| t.text()),
                deployment: e.deployment,
                container: e.container,
                properties: usage::raw_properties(e.properties.unwrap_or_default()),
            },
        })
        .collect();
    let outcomes = usage::ingest(
        state.store(),
        &auth.tenant,
        &plan.catalog,
        state.max_event_skew(),
        state.now(),
        &reported,
    )
    .await?;
    let tally = Tally::of(&outcomes);
    let results = reported
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (status, reason) = match outcome {
                EventOutcome::Accepted => ("ACCEPTED", None),
                EventOutcome::Duplicate => ("DUPLICATE", None),
                EventOutcome::Rejected(reason) => ("REJECTED", Some(reason)),
            };
            EventResult {
                id: r.event.id.unwrap_or_default(),
                status,
                reason,
            }
        })
        .collect();
    Ok(Json(IngestResponse {
        accepted: tally.accepted,
        duplicates: tally.duplicates,
        rejected: tally.rejected,
        results,
    }))
}

/// The report's scope: `None` (the whole tenant) for `system`, else the namespace.
fn scope(ns: &Name) -> Option<&str> {
    (!ns.is_system()).then_some(ns.as_str())
}

/// The body's `namespace` must be `system` (the contract's constant) or the path's.
fn body_namespace(given: Option<&str>, ns: &Name) -> Result<(), ApiError> {
    match given {
        None | Some("") | Some("system") => Ok(()),
        Some(g) if g == ns.as_str() => Ok(()),
        Some(other) => Err(ApiError::invalid(format!(
            "namespace: {other:?} does not match the namespace in the path {:?}",
            ns.as_str()
        ))),
    }
}

fn parse_time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    metering::parse_time(s).map_err(|why| ApiError::invalid(format!("{field}: {why}")))
}

/// Checks a report range; `fields` names its ends in errors.
fn check_range(fields: &str, from: Timestamp, to: Timestamp) -> Result<(), ApiError> {
    if from >= to {
        return Err(ApiError::invalid(format!("{fields}: {from} is not before {to}")));
    }
    if to.duration_since(from) > MAX_RANGE {
        return Err(ApiError::invalid(format!(
            "{fields}: a report covers at most 400 days"
        )));
    }
    Ok(())
}

/// `from`/`to` of a request (empty = absent), parsed, then resolved by the
/// application layer: defaulting to the current billing period, and a range
/// that is exactly one of the tenant's billing periods is that period.
async fn range(
    state: &AppState,
    auth: &Authorized,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<ReportRange, ApiError> {
    let parse = |field: &str, s: Option<&str>| {
        s.filter(|s| !s.is_empty())
            .map(|s| parse_time(field, s))
            .transpose()
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    let subscriptions = state.store().subscriptions(auth.tenant_id()).await?;
    let r = ReportRange::resolve(&subscriptions, from, to, state.now())?;
    check_range("from, to", r.from, r.to)?;
    Ok(r)
}

/// What `hourly_breakdown_query` carries, signed so that it cannot be forged
/// or moved to another tenant.
#[derive(Debug, Serialize, Deserialize)]
struct BreakdownQuery {
    tenant: String,
    namespace: String,
    metric_label: String,
    object_name: String,
    from: i64,
    to: i64,
    sig: String,
}

type HmacSha256 = Hmac<Sha256>;

fn signature(key: &[u8], q: &BreakdownQuery) -> Result<String, ApiError> {
    let mut mac =
        HmacSha256::new_from_slice(key).map_err(|_| ApiError::new(ErrorKind::Internal, "bad report key"))?;
    for part in [&q.tenant, &q.namespace, &q.metric_label, &q.object_name] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.update(&q.from.to_be_bytes());
    mac.update(&q.to.to_be_bytes());
    Ok(mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Lists usage per namespace × metric × object over a range (default: the
/// current billing period); `system` covers the whole tenant.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/usage_details",
    operation_id = "ves.io.schema.usage.CustomAggregatedUsageAPI.ListUsageDetails",
    tag = "usage reports",
    params(("namespace" = String, Path, description = "system for the whole tenant, or one namespace")),
    request_body = RangeRequest,
    responses(
        (status = 200, body = ListUsageDetailsResp),
        (status = 400, body = ErrorBody,
            description = "Invalid `from`/`to` (not a time, not in order, over 400 days) or a body \
                           `namespace` other than the path's.")
    ),
    security(("APIToken" = []))
)]
pub async fn usage_details(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<RangeRequest>,
) -> Result<Json<ListUsageDetailsResp>, ApiError> {
    let _timer = Report::UsageDetails.timer();
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::ListUsageDetails, &ns).await?;
    body_namespace(body.namespace.as_deref(), &ns)?;
    let r = range(&state, &auth, body.from.as_deref(), body.to.as_deref()).await?;
    let (from, to) = (r.from, r.to);
    let (first_hour, end_hour) = r.hours();
    let plan = state.tenant_plan(&auth.tenant).await?;
    let filter = BucketFilter {
        namespace: scope(&ns),
        from: first_hour,
        to: end_hour,
        ..Default::default()
    };
    let objects = state.store().object_usage(auth.tenant_id(), &filter).await?;
    // Unique-count meters: each object's distinct values over the range.
    let distinct: std::collections::BTreeMap<tollgate_domain::metering::ObjectKey, i64> = if plan
        .catalog
        .meters
        .iter()
        .any(|m| m.aggregation == Aggregation::UniqueCount)
    {
        state
            .store()
            .distinct_counts(auth.tenant_id(), &filter, DistinctBy::Object)
            .await?
            .into_iter()
            .filter_map(|(k, n)| Some((k.object?, n)))
            .collect()
    } else {
        Default::default()
    };
    let key = state.report_key().await?;
    let mut usage_items = Vec::with_capacity(objects.len());
    for (line, usage) in &objects {
        let (namespace, metric, object) = (
            line.namespace.as_str(),
            line.metric_label.as_str(),
            line.object_name.as_str(),
        );
        let meter = plan.catalog.meter(metric);
        let aggregation = plan.catalog.aggregation(metric);
        let mut q = BreakdownQuery {
            tenant: auth.tenant_id().to_string(),
            namespace: namespace.to_owned(),
            metric_label: metric.to_owned(),
            object_name: object.to_owned(),
            from: first_hour.as_microsecond(),
            to: end_hour.as_microsecond(),
            sig: String::new(),
        };
        q.sig = signature(key, &q)?;
        let token = serde_json::to_vec(&q).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        usage_items.push(UsageItem {
            namespace: namespace.to_owned(),
            metric_label: metric.to_owned(),
            object_name: object.to_owned(),
            usage_type: meter.map_or_else(|| metric.to_owned(), |m| m.usage_type.clone()),
            unit_name: meter.map_or_else(String::new, |m| m.unit.clone()),
            quantity: if aggregation == Aggregation::UniqueCount {
                distinct.get(line).copied().unwrap_or(0) as f64
            } else {
                f64_of(usage.quantity(aggregation))
            },
            start_timestamp: from.to_string(),
            end_timestamp: to.to_string(),
            hourly_breakdown_query: URL_SAFE_NO_PAD.encode(token),
            hourly_breakdown: Vec::new(),
        });
    }
    Ok(Json(ListUsageDetailsResp { usage_items }))
}

/// The hourly items behind one `usage_details` line, from its
/// `hourly_breakdown_query`.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/hourly_usage_details",
    operation_id = "ves.io.schema.usage.CustomAggregatedUsageAPI.ListHourlyUsageDetails",
    tag = "usage reports",
    params(("namespace" = String, Path)),
    request_body = HourlyRequest,
    responses(
        (status = 200, body = ListHourlyUsageDetailsResp),
        (status = 400, body = ErrorBody, description = "A missing, malformed or altered `query`."),
        (status = 403, body = ErrorBody, description = "The query belongs to another tenant or namespace.")
    ),
    security(("APIToken" = []))
)]
pub async fn hourly_usage_details(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<HourlyRequest>,
) -> Result<Json<ListHourlyUsageDetailsResp>, ApiError> {
    let _timer = Report::Hourly.timer();
    let ns = namespace(&ns)?;
    let auth = caller
        .authorize(&state, Operation::ListHourlyUsageDetails, &ns)
        .await?;
    body_namespace(body.namespace.as_deref(), &ns)?;
    let token = body
        .query
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::invalid("query: is required"))?;
    let invalid = || {
        ApiError::invalid("query: not an hourly_breakdown_query from usage_details (malformed or altered)")
    };
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| invalid())?;
    let q: BreakdownQuery = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let expected = signature(state.report_key().await?, &q)?;
    let signed = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), q.sig.as_bytes());
    if !bool::from(signed) {
        return Err(invalid());
    }
    if q.tenant != auth.tenant_id().as_str() {
        return Err(Error::permission_denied("query: belongs to another tenant").into());
    }
    if !ns.is_system() && q.namespace != ns.as_str() {
        return Err(Error::permission_denied(format!(
            "query: is about namespace {:?}, not {:?}",
            q.namespace,
            ns.as_str()
        ))
        .into());
    }
    let from = Timestamp::from_microsecond(q.from).map_err(|_| invalid())?;
    let to = Timestamp::from_microsecond(q.to).map_err(|_| invalid())?;
    let plan = state.tenant_plan(&auth.tenant).await?;
    let unit = plan
        .catalog
        .meter(&q.metric_label)
        .map_or_else(String::new, |m| m.unit.clone());
    let filter = BucketFilter {
        namespace: Some(&q.namespace),
        metric_label: Some(&q.metric_label),
        object_name: Some(&q.object_name),
        from,
        to,
    };
    let hour_end = |h: Timestamp| {
        h.saturating_add(SignedDuration::from_hours(1))
            .unwrap_or(Timestamp::MAX)
            .to_string()
    };
    if plan.catalog.aggregation(&q.metric_label) == Aggregation::UniqueCount {
        // One item per hour: the distinct values seen in it (deployments
        // and containers are not told apart: a value counts once).
        let hourly_usage_items = state
            .store()
            .distinct_counts(auth.tenant_id(), &filter, DistinctBy::Hour)
            .await?
            .into_iter()
            .filter_map(|(k, n)| {
                let hour = k.hour?;
                Some(HourlyItem {
                    start_timestamp: hour.to_string(),
                    end_timestamp: hour_end(hour),
                    quantity: n as f64,
                    unit_name: unit.clone(),
                    deployment: String::new(),
                    container: String::new(),
                })
            })
            .collect();
        return Ok(Json(ListHourlyUsageDetailsResp { hourly_usage_items }));
    }
    let hourly_usage_items = state
        .store()
        .buckets(auth.tenant_id(), &filter)
        .await?
        .into_iter()
        .map(|(k, b)| HourlyItem {
            start_timestamp: k.hour.to_string(),
            end_timestamp: k
                .hour
                .saturating_add(SignedDuration::from_hours(1))
                .unwrap_or(Timestamp::MAX)
                .to_string(),
            quantity: f64_of(b.quantity),
            unit_name: unit.clone(),
            deployment: k.deployment,
            container: k.container,
        })
        .collect();
    Ok(Json(ListHourlyUsageDetailsResp { hourly_usage_items }))
}

fn coupon_type(c: &tollgate_domain::rating::Coupon) -> CouponType {
    let (discount_type, discount_amount) = match c.discount {
        Discount::Fixed(cents) => ("DISCOUNT_TYPE_FIXED_AMOUNT", cents),
        Discount::Percent(bp) => ("DISCOUNT_TYPE_PERCENTAGE", bp),
    };
    CouponType {
        title: c.title.clone(),
        discount_type: discount_type.to_owned(),
        discount_amount,
    }
}

/// The lines of a bill over [from, to).
fn bill_items(
    catalog: &Catalog,
    plan: &Plan,
    bill: &Bill,
    from: Timestamp,
    to: Timestamp,
) -> Vec<CalculatedUsageItem> {
    let mut out: Vec<CalculatedUsageItem> = bill
        .usage
        .iter()
        .filter_map(|line| {
            let meter = catalog.meter(&line.metric_label)?;
            Some(CalculatedUsageItem {
                usage_type: meter.usage_type.clone(),
                metric_labels: vec![line.metric_label.clone()],
                quantity: f64_of(line.quantity),
                unit_name: meter.unit.clone(),
                quantity_billable: line.quantity_billable.to_string(),
                unit_name_billable: meter.unit_billable.clone(),
                amount: line.amount_cents.to_string(),
                currency_code: catalog.currency.clone(),
                start_timestamp: from.to_string(),
                end_timestamp: to.to_string(),
                fixed: false,
                status: if line.quantity.is_zero() {
                    "STATUS_NO_DATA"
                } else {
                    "STATUS_ACTIVE"
                }
                .to_owned(),
                pricing: plan
                    .prices
                    .get(&line.metric_label)
                    .filter(|p| p.unit_price_cents().is_none())
                    .map(|p| PricingItem::new(p.model.kind(), &line.steps)),
            })
        })
        .collect();
    let fixed = |usage_type: String, metric_labels: Vec<String>, cents: i64| CalculatedUsageItem {
        usage_type,
        metric_labels,
        quantity: 1.0,
        unit_name: "period".into(),
        quantity_billable: "1".into(),
        unit_name_billable: "period".into(),
        amount: cents.to_string(),
        currency_code: catalog.currency.clone(),
        start_timestamp: from.to_string(),
        end_timestamp: to.to_string(),
        fixed: true,
        status: "STATUS_ACTIVE".into(),
        pricing: None,
    };
    if let Some(fee) = bill.fee_cents {
        out.push(fixed(format!("{} plan", plan.title), Vec::new(), fee));
    }
    for f in &bill.addon_fees {
        let name = catalog
            .addon(&f.addon)
            .map_or(f.addon.as_str(), |a| a.display_name.as_str());
        out.push(fixed(format!("{name} add-on"), Vec::new(), f.amount_cents));
    }
    for f in &bill.meter_fees {
        let name = catalog
            .meter(&f.metric_label)
            .map_or(f.metric_label.as_str(), |m| m.usage_type.as_str());
        out.push(fixed(
            format!("{name}: flat amount"),
            vec![f.metric_label.clone()],
            f.amount_cents,
        ));
    }
    if let Some(t) = bill.true_up {
        out.push(fixed(
            format!(
                "Minimum commitment ({})",
                tollgate_domain::currency::money(t.minimum_cents, &catalog.currency)
            ),
            Vec::new(),
            t.amount_cents,
        ));
    }
    // Prepaid credits a finalized period's invoice was paid with (before
    // tax), then taxes on what remains: the items less the discount add up
    // to total_cost.
    if bill.totals.credits != 0 {
        out.push(fixed(
            "Prepaid credits".to_owned(),
            Vec::new(),
            -bill.totals.credits,
        ));
    }
    for t in &bill.taxes {
        out.push(fixed(
            format!("{} {} %", t.name, t.percent.normalize()),
            Vec::new(),
            t.amount_cents,
        ));
    }
    out
}

/// Rated usage for the current billing period (or `from`/`to`) with the
/// plan's prices: usage lines, the flat fee (`fixed: true`), coupons,
/// discount and total, in cents. A namespace other than `system` shows only
/// its usage, without fee or coupons.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/current_usage",
    operation_id = "ves.io.schema.usage.CustomCalculatedUsageAPI.ListCurrentUsage",
    tag = "usage reports",
    params(("namespace" = String, Path, description = "system for the whole tenant, or one namespace")),
    request_body = RangeRequest,
    responses(
        (status = 200, body = ListCurrentUsageResp),
        (status = 400, body = ErrorBody,
            description = "Invalid `from`/`to` (not a time, not in order, over 400 days) or a body \
                           `namespace` other than the path's.")
    ),
    security(("APIToken" = []))
)]
pub async fn current_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<RangeRequest>,
) -> Result<Json<ListCurrentUsageResp>, ApiError> {
    let _timer = Report::CurrentUsage.timer();
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::ListCurrentUsage, &ns).await?;
    body_namespace(body.namespace.as_deref(), &ns)?;
    let r = range(&state, &auth, body.from.as_deref(), body.to.as_deref()).await?;
    let (from, to) = (r.from, r.to);
    let versions = state.catalogs().versions();
    let rated = reports::range_bill(state.store(), &versions, &auth.tenant, &r, scope(&ns)).await?;
    let (catalog, bill) = (&rated.catalog, &rated.bill);
    Ok(Json(ListCurrentUsageResp {
        usage_items: bill_items(catalog, rated.plan(), bill, from, to),
        coupons: bill.coupons.iter().map(coupon_type).collect(),
        discount: bill.totals.discount.to_string(),
        total_cost: bill.totals.total.to_string(),
    }))
}

/// One line per past billing period, newest first: what it cost in total
/// (flat fee, rated usage, coupons), with the prices of the plan it was on.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/monthly_usage",
    operation_id = "ves.io.schema.usage.CustomCalculatedUsageAPI.ListMonthlyUsage",
    tag = "usage reports",
    params(("namespace" = String, Path, description = "Must be system (bills are per tenant)")),
    request_body = MonthlyRequest,
    responses(
        (status = 200, body = ListMonthlyUsageResp),
        (status = 400, body = ErrorBody, description = "A body `namespace` other than the path's.")
    ),
    security(("APIToken" = []))
)]
pub async fn monthly_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<MonthlyRequest>,
) -> Result<Json<ListMonthlyUsageResp>, ApiError> {
    let _timer = Report::Monthly.timer();
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::ListMonthlyUsage, &ns).await?;
    crate::auth::require_system(&ns, "monthly bills")?;
    body_namespace(body.namespace.as_deref(), &ns)?;
    let now = state.now();
    // Each past period's line is its invoice's total: as finalized, or as the
    // pending invoice would be finalized now (adjustments included), so the
    // two always agree.
    let versions = state.catalogs().versions();
    let book = tollgate_app::invoices::Book::open(state.store(), &versions, auth.tenant_id(), now).await?;
    let mut items = Vec::new();
    for tp in book.periods.iter().filter(|tp| tp.period.actual_end <= now) {
        let invoice = match book.finalized.iter().find(|f| f.invoice.name == tp.name) {
            Some(f) => f.invoice.clone(),
            None => book.compute(tp, InvoiceStatus::Pending).await?,
        };
        items.push((
            tp.period.start,
            MonthlyUsageType {
                start_timestamp: tp.period.start.to_string(),
                end_timestamp: tp.period.actual_end.to_string(),
                amount: invoice.totals.total.to_string(),
                currency_code: invoice.currency,
            },
        ));
    }
    items.sort_by_key(|(start, _)| std::cmp::Reverse(*start));
    Ok(Json(ListMonthlyUsageResp {
        monthly_usage_items: items.into_iter().map(|(_, i)| i).collect(),
    }))
}

/// Usage per service and usage type over a window (default: the last 6 hours),
/// with the billing value (usage ÷ the meter's division factor).
#[utoipa::path(
    post,
    path = "/api/data/namespaces/system/billing/usage_summary",
    operation_id = "ves.io.schema.billing.CustomPublicAPI.BillingUsageSummary",
    tag = "usage reports",
    request_body = UsageSummaryRequest,
    responses(
        (status = 200, body = BillingUsageSummaryResponse),
        (status = 400, body = ErrorBody,
            description = "Invalid `start_time`/`end_time` (not a time, not in order, over 400 days).")
    ),
    security(("APIToken" = []))
)]
pub async fn usage_summary(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UsageSummaryRequest>,
) -> Result<Json<BillingUsageSummaryResponse>, ApiError> {
    let _timer = Report::Summary.timer();
    let auth = caller
        .authorize(&state, Operation::BillingUsageSummary, &Name::system())
        .await?;
    let six_hours = SignedDuration::from_hours(6);
    let given = |t: Option<TimeInput>, field: &str| -> Result<Option<Timestamp>, ApiError> {
        t.map(|t| t.text())
            .filter(|t| !t.is_empty())
            .map(|t| parse_time(field, &t))
            .transpose()
    };
    let start = given(body.start_time, "start_time")?;
    let end = given(body.end_time, "end_time")?;
    // Parsed times are within the supported range, which leaves room for
    // six hours on either side; checked all the same.
    let shift = |field: &str, at: Timestamp, by: SignedDuration| {
        at.checked_add(by)
            .map_err(|_| ApiError::invalid(format!("{field}: {at} is too close to the end of time")))
    };
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, shift("start_time", s, six_hours)?),
        (None, Some(e)) => (shift("end_time", e, -six_hours)?, e),
        (None, None) => {
            let now = state.now();
            (shift("now", now, -six_hours)?, now)
        }
    };
    if start > end {
        return Err(ApiError::invalid(format!(
            "start_time, end_time: {start} is after {end}"
        )));
    }
    // An empty window is checked as one second long.
    check_range(
        "start_time, end_time",
        start,
        end.max(shift("start_time", start, SignedDuration::from_secs(1))?),
    )?;
    let plan = state.tenant_plan(&auth.tenant).await?;
    let quantities = bills::quantities(
        state.store(),
        &plan.catalog,
        auth.tenant_id(),
        None,
        (start, end),
        Coverage::Overlap,
    )
    .await?;
    let usage_summary_items = plan
        .catalog
        .meters
        .iter()
        .filter_map(|m| {
            let q = *quantities.get(&m.metric_label)?;
            Some(UsageSummaryItem {
                name: m.usage_type.clone(),
                service: m.service.clone(),
                usage_metric_data: UsageMetricData {
                    unit: m.unit.clone(),
                    metric_value: MetricValue {
                        timestamp: end.as_second() as f64,
                        value: q.normalize().to_string(),
                    },
                },
                billing_metric_data: BillingMetricData {
                    unit: m.unit_billable.clone(),
                    value: q
                        .checked_div(m.divisor)
                        .unwrap_or_default()
                        .normalize()
                        .to_string(),
                },
            })
        })
        .collect();
    Ok(Json(BillingUsageSummaryResponse { usage_summary_items }))
}

/// The meters of the caller's plan and their prices (beyond the contract).
#[utoipa::path(
    get,
    path = "/api/web/namespaces/system/usage/meters",
    operation_id = "tollgate.usage.ListMeters",
    tag = "metering",
    responses((status = 200, body = MeterList)),
    security(("APIToken" = []))
)]
pub async fn meters(State(state): State<AppState>, caller: Caller) -> Result<Json<MeterList>, ApiError> {
    let auth = caller
        .authorize(&state, Operation::ListMeters, &Name::system())
        .await?;
    let plan = state.tenant_plan(&auth.tenant).await?;
    let items = plan
        .catalog
        .meters
        .iter()
        .map(|m| {
            let price = plan.plan().prices.get(&m.metric_label);
            let cents = price.map_or(Decimal::ZERO, |p| p.first_unit_cents()).normalize();
            let currency = &plan.catalog.currency;
            let (tiers, package) = match price.map(|p| &p.model) {
                Some(PriceModel::Graduated(t) | PriceModel::Volume(t)) => (
                    t.iter()
                        .map(|t| TierItem {
                            up_to: t.up_to.map(|u| u.normalize().to_string()),
                            unit_price_cents: t.unit_price_cents.normalize().to_string(),
                            flat_amount_cents: t.flat_cents.normalize().to_string(),
                        })
                        .collect(),
                    None,
                ),
                Some(PriceModel::Package { size, price_cents }) => (
                    Vec::new(),
                    Some((size.normalize().to_string(), price_cents.normalize().to_string())),
                ),
                _ => (Vec::new(), None),
            };
            MeterItem {
                metric_label: m.metric_label.clone(),
                usage_type: m.usage_type.clone(),
                service: m.service.clone(),
                unit: m.unit.clone(),
                unit_billable: m.unit_billable.clone(),
                aggregation: m.aggregation.as_str().to_owned(),
                property: m.property.clone(),
                unit_price_cents: cents.to_string(),
                price: match price {
                    Some(p) => describe_price(p, currency, &m.unit_billable),
                    None => format!("0.00 {currency} per {}", m.unit_billable),
                },
                unit_price: cents.to_string(),
                currency_code: currency.clone(),
                free_allowance: price
                    .map_or(Decimal::ZERO, |p| p.free_allowance)
                    .normalize()
                    .to_string(),
                price_model: price
                    .map_or(ModelKind::PerUnit, |p| p.model.kind())
                    .as_str()
                    .to_owned(),
                tiers,
                package_size: package.as_ref().map(|p| p.0.clone()),
                package_price_cents: package.map(|p| p.1),
                flat_amount_cents: price.map_or(0, |p| p.flat_cents).to_string(),
            }
        })
        .collect();
    Ok(Json(MeterList { items }))
}
