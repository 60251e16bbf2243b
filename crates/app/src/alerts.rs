//! Usage alerts: a tenant's threshold on its current billing period's spend
//! or on one meter's billable quantity (optionally one namespace's), fired
//! once per period as `usage.alert_triggered`.
//!
//! Evaluated as usage arrives, off the ingestion path: each stored batch
//! marks the tenant's alerts (one indexed UPDATE in the ingestion's
//! transaction, nothing for a tenant without alerts) and the alerts job,
//! every job-loop tick, rates the current period of the marked tenants once
//! per namespace asked for (as `current_usage` does) and fires the alerts
//! that are reached. An alert fires at most once per period: the store
//! records the period in the transaction that emits the event; it re-arms
//! when the next period starts.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_domain::Error;
use tollgate_domain::names::Name;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{NewUsageAlert, Store, StoreError, UsageAlert};

use crate::catalogs::Versions;
use crate::reports::{ReportRange, range_bill};
use crate::{AppError, JobContext};

/// The most alerts a tenant may have.
pub const MAX_ALERTS: u32 = 50;
/// The metric of an alert on spend.
pub const SPEND: &str = "spend";

/// An alert as a tenant asks for it.
#[derive(Debug, Clone, Default)]
pub struct AlertInput {
    pub name: String,
    /// `spend`, or a meter's metric label.
    pub metric: String,
    /// Cents for spend (a whole number); the meter's billable quantity.
    pub threshold: String,
    pub namespace: Option<String>,
}

fn invalid(field: &str, message: String) -> AppError {
    Error::invalid(format!("{field}: {message}"))
        .with_metadata("field", field)
        .into()
}

/// Creates an alert of `tenant`'s, checked against its plan's meters.
pub async fn create_alert(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    input: AlertInput,
    actor: &str,
    now: Timestamp,
) -> Result<UsageAlert, AppError> {
    let name = Name::parse("name", input.name.trim())?;
    let metric = input.metric.trim().to_owned();
    let catalog = versions.get(store, tenant.catalog_version).await?;
    if metric != SPEND && catalog.meter(&metric).is_none() {
        let meters: Vec<&str> = catalog.meters.iter().map(|m| m.metric_label.as_str()).collect();
        return Err(invalid(
            "metric",
            format!(
                "{metric:?} is neither spend nor a meter; one of spend, {}",
                meters.join(", ")
            ),
        ));
    }
    let raw = input.threshold.trim();
    let threshold = Decimal::from_str(raw)
        .ok()
        .filter(|t| *t > Decimal::ZERO)
        .ok_or_else(|| invalid("threshold", format!("{raw:?} is not a number above 0")))?
        .normalize();
    if metric == SPEND && (threshold.scale() > 0 || threshold > Decimal::from(i64::MAX)) {
        return Err(invalid(
            "threshold",
            format!(
                "{raw:?}: a spend threshold is a whole number of minor units of the tenant's currency (cents)"
            ),
        ));
    }
    let namespace = match input
        .namespace
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        None => None,
        Some(ns) => {
            let ns = Name::parse("namespace", ns)?;
            if !store.namespace_exists(&tenant.id, ns.as_str()).await? {
                return Err(Error::not_found(format!("namespace {:?} does not exist", ns.as_str())).into());
            }
            Some(ns.as_str().to_owned())
        }
    };
    let new = NewUsageAlert {
        tenant_id: tenant.id.clone(),
        name: name.as_str().to_owned(),
        metric,
        namespace,
        threshold,
        limit: MAX_ALERTS,
    };
    Ok(store.create_alert(&new, actor, now).await?)
}

/// Whether an alert has fired in the period that starts at `period_start`.
pub fn triggered_in(alert: &UsageAlert, period_start: Option<Timestamp>) -> bool {
    matches!((&alert.triggered, period_start), (Some(t), Some(p)) if t.period_start == p)
}

/// The tenant's current billing period's start, if it has one.
pub async fn current_period_start(
    store: &dyn Store,
    tenant: &Tenant,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let subscriptions = store.subscriptions(&tenant.id).await?;
    Ok(subscriptions
        .iter()
        .find(|s| s.is_current())
        .map(|s| s.period_at(now).start))
}

/// Evaluates the alerts of every tenant whose usage arrived since their
/// last evaluation; returns how many alerts fired.
pub async fn evaluate(ctx: &JobContext) -> Result<usize, StoreError> {
    let mut fired = 0;
    let mut done = std::collections::HashSet::new();
    loop {
        let tenants = ctx.store.tenants_with_pending_alerts(100).await?;
        let fresh: Vec<_> = tenants.into_iter().filter(|t| !done.contains(t)).collect();
        if fresh.is_empty() {
            return Ok(fired);
        }
        for tenant_id in fresh {
            fired += evaluate_tenant(ctx, &tenant_id).await?;
            done.insert(tenant_id);
        }
    }
}

async fn evaluate_tenant(
    ctx: &JobContext,
    tenant_id: &tollgate_domain::ids::TenantId,
) -> Result<usize, StoreError> {
    let store = ctx.store.as_ref();
    let now = ctx.clock.now();
    let alerts: Vec<UsageAlert> = store
        .alerts(tenant_id)
        .await?
        .into_iter()
        .filter(|a| a.ingested > a.evaluated)
        .collect();
    let Some(tenant) = store.tenant(tenant_id).await? else {
        return Ok(0);
    };
    let subscriptions = store.subscriptions(tenant_id).await?;
    let mut fired = 0;
    if subscriptions.iter().any(|s| s.is_current()) {
        let range = ReportRange::resolve(&subscriptions, None, None, now)?;
        let period_start = range.from;
        // One rating per namespace asked for (None: the whole tenant).
        let mut bills = BTreeMap::new();
        for alert in alerts.iter().filter(|a| !triggered_in(a, Some(period_start))) {
            if !bills.contains_key(&alert.namespace) {
                let bill =
                    range_bill(store, &ctx.catalogs, &tenant, &range, alert.namespace.as_deref()).await?;
                bills.insert(alert.namespace.clone(), bill);
            }
            let bill = &bills[&alert.namespace];
            let value = if alert.metric == SPEND {
                Decimal::from(bill.bill.totals.total)
            } else {
                bill.bill
                    .usage
                    .iter()
                    .find(|l| l.metric_label == alert.metric)
                    .map_or(Decimal::ZERO, |l| Decimal::from(l.quantity_billable))
            };
            if value < alert.threshold {
                continue;
            }
            let mut data = alert_json(alert, Some(period_start));
            data["state"] = "TRIGGERED".into();
            data["triggered_at"] = now.to_string().into();
            data["triggered_value"] = value.to_string().into();
            data["period_start"] = range.from.to_string().into();
            data["period_end"] = range.to.to_string().into();
            if alert.metric == SPEND {
                data["currency"] = bill.catalog.currency.clone().into();
            }
            if store
                .trigger_alert(tenant_id, &alert.id, period_start, value, data, now)
                .await?
            {
                fired += 1;
                metrics::counter!(crate::telemetry::ALERTS_TRIGGERED).increment(1);
            }
        }
    }
    for alert in &alerts {
        store
            .alert_evaluated(tenant_id, &alert.id, alert.ingested)
            .await?;
    }
    Ok(fired)
}

/// An alert as the API shows it (and as `usage.alert_triggered` carries
/// it): `state` is TRIGGERED when it fired in the period starting
/// `period_start` (the current one), else ARMED.
pub fn alert_json(a: &UsageAlert, period_start: Option<Timestamp>) -> serde_json::Value {
    let triggered = triggered_in(a, period_start);
    let mut v = serde_json::json!({
        "name": a.name,
        "metric": a.metric,
        "threshold": a.threshold.to_string(),
        "state": if triggered { "TRIGGERED" } else { "ARMED" },
        "created_at": a.created_at.to_string(),
    });
    if let Some(ns) = &a.namespace {
        v["namespace"] = ns.clone().into();
    }
    if let Some(t) = a.triggered.as_ref().filter(|_| triggered) {
        v["triggered_at"] = t.at.to_string().into();
        v["triggered_value"] = t.value.to_string().into();
    }
    v
}
