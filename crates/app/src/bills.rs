//! Bills of billing periods and time ranges, from hourly buckets: the one
//! computation behind `current_usage`, `monthly_usage` and invoices.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_domain::catalog::{Aggregation, Catalog, Plan};
use tollgate_domain::ids::TenantId;
use tollgate_domain::metering::{self, Coverage};
use tollgate_domain::rating::{self, Bill, Coupon};
use tollgate_domain::subscription::{AddonSpan, Period};
use tollgate_store::{AppliedCoupon, BucketFilter, DistinctBy, Store, StoreError};

/// Each metric's quantity in [from, to) (mapped onto hours by `coverage`),
/// for the whole tenant or one namespace.
pub async fn quantities(
    store: &dyn Store,
    catalog: &Catalog,
    tenant_id: &TenantId,
    namespace: Option<&str>,
    (from, to): (Timestamp, Timestamp),
    coverage: Coverage,
) -> Result<BTreeMap<String, Decimal>, StoreError> {
    let (from, to) = metering::bucket_hours(from, to, coverage);
    let filter = BucketFilter {
        namespace,
        from,
        to,
        ..Default::default()
    };
    let objects = store.object_usage(tenant_id, &filter).await?;
    let mut out =
        metering::metric_quantities(|m| catalog.aggregation(m), objects.iter().map(|(k, u)| (k, u)));
    // A unique count is of distinct values over the whole range and scope,
    // not a sum over objects or hours.
    if catalog
        .meters
        .iter()
        .any(|m| m.aggregation == Aggregation::UniqueCount)
    {
        for (k, n) in store
            .distinct_counts(tenant_id, &filter, DistinctBy::Metric)
            .await?
        {
            if catalog.aggregation(&k.metric_label) == Aggregation::UniqueCount {
                out.insert(k.metric_label, Decimal::from(n));
            }
        }
    }
    Ok(out)
}

/// The coupons that apply to a period or range rated with `catalog`: those
/// valid at some point in it. A fixed-amount coupon is an amount in the
/// catalog's first currency, so it discounts only bills in that currency
/// (percentages discount any).
pub fn coupons_for(
    applied: &[AppliedCoupon],
    catalog: &Catalog,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Coupon> {
    let first = catalog.currency_of(None) == catalog.currency;
    applied
        .iter()
        .filter(|c| c.valid_from < to && c.valid_until.is_none_or(|u| u > from))
        .filter(|c| first || !matches!(c.coupon.discount, rating::Discount::Fixed(_)))
        .map(|c| Coupon {
            title: c.coupon.title.clone(),
            discount: c.coupon.discount,
        })
        .collect()
}

/// What of a period's fixed charges its bill covers: the share of the
/// period the subscription covered (fee, meters' flat amounts, minimum
/// commitment) and how long each add-on was subscribed in it; none on
/// trial.
pub fn fixed_of(period: &Period, addons: &[AddonSpan]) -> Option<rating::Fixed> {
    if period.trial {
        return None;
    }
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    for span in addons {
        let secs = span.secs_within(period.start, period.actual_end);
        if secs > 0 {
            *used.entry(span.addon.clone()).or_default() += secs;
        }
    }
    Some(rating::Fixed {
        share: rating::Share {
            used_secs: period.actual_end.duration_since(period.start).as_secs(),
            length_secs: period.end.duration_since(period.start).as_secs(),
        },
        addons: used.into_iter().collect(),
    })
}

/// The bill of one billing period of a subscription to `plan`.
pub async fn period_bill(
    store: &dyn Store,
    catalog: &Catalog,
    plan: &Plan,
    tenant_id: &TenantId,
    period: &Period,
) -> Result<Bill, StoreError> {
    let range = (period.start, period.actual_end);
    let q = quantities(store, catalog, tenant_id, None, range, Coverage::Period).await?;
    let applied = store.tenant_coupons(tenant_id).await?;
    let coupons = coupons_for(&applied, catalog, period.start, period.actual_end);
    // Add-on history is read only when some add-on has a price.
    let addons = if catalog.addons.iter().any(|a| a.flat_price_cents > 0) {
        store.addon_history(tenant_id).await?
    } else {
        Vec::new()
    };
    let tax = tax_context(store, catalog, tenant_id, period.actual_end).await?;
    Ok(rating::bill(catalog, plan, &q, fixed_of(period, &addons).as_ref(), coupons).taxed(tax))
}

/// What taxes a tenant's bill at `at`: the catalog's rates in force then for
/// the billing address (the primary payment method's country, and state
/// code or state), and how the tenant is taxed. A catalog without taxes
/// taxes nothing (and prints no note).
pub async fn tax_context(
    store: &dyn Store,
    catalog: &Catalog,
    tenant_id: &TenantId,
    at: Timestamp,
) -> Result<rating::TaxContext, StoreError> {
    if catalog.taxes.is_empty() {
        return Ok(rating::TaxContext::default());
    }
    let treatment = store.tax_treatment(tenant_id).await?;
    let address = store
        .payment_methods(tenant_id)
        .await?
        .into_iter()
        .find(|m| m.role == tollgate_domain::payment::PaymentRole::Primary)
        .map(|m| m.contact);
    let rates = match &address {
        None => Vec::new(),
        Some(c) => {
            let region = if c.state_code.trim().is_empty() {
                &c.state
            } else {
                &c.state_code
            };
            catalog
                .tax_rates(&c.country, region, at)
                .into_iter()
                .map(|r| (r.name.clone(), r.percent))
                .collect()
        }
    };
    Ok(rating::TaxContext { rates, treatment })
}
