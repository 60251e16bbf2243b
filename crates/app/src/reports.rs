//! Which rating a usage report's range gets: whether the range is one of the
//! tenant's billing periods, and which plan, fee and coupons rate it. The API
//! only translates requests and bills (`current_usage`, `usage_details`).

use std::sync::Arc;

use jiff::Timestamp;
use tollgate_domain::catalog::{Catalog, Plan};
use tollgate_domain::metering::{self, Coverage};
use tollgate_domain::rating::{self, Bill};
use tollgate_domain::subscription::{Period, Subscription};
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Store, StoreError};

use crate::bills;
use crate::catalogs::Versions;

/// A report's time range.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRange {
    /// As asked (or defaulted); what the report lines show.
    pub from: Timestamp,
    pub to: Timestamp,
    /// The billing period the range is, if it is exactly one (none given:
    /// the current one), with its subscription.
    pub period: Option<(Subscription, Period)>,
    /// Whether that period had ended when the range was resolved (it may
    /// have a finalized invoice, whose currency then rates it).
    pub ended: bool,
}

impl ReportRange {
    /// The tenant's range `from`..`to` as asked, each end defaulting to the
    /// current billing period's (or `now` without a current subscription);
    /// neither given is the current period itself. A range that is exactly
    /// one of the tenant's billing periods (from its start to its actual or
    /// nominal end) is that period. `subscriptions` are the tenant's.
    pub fn resolve(
        subscriptions: &[Subscription],
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let current = subscriptions.iter().find(|s| s.is_current());
        if from.is_none() && to.is_none() {
            let sub = current
                .ok_or_else(|| StoreError::Corrupt("the tenant has no current subscription".into()))?;
            let period = sub.period_at(now);
            return Ok(Self {
                from: period.start,
                to: period.end,
                period: Some((sub.clone(), period)),
                ended: false,
            });
        }
        let current = current.map(|s| s.period_at(now));
        let from = from.unwrap_or_else(|| current.map_or(now, |p| p.start));
        let to = to.unwrap_or_else(|| current.map_or(now, |p| p.end));
        let period = subscriptions.iter().find_map(|s| {
            s.periods_until(now)
                .into_iter()
                .find(|p| p.start == from && (p.actual_end == to || p.end == to))
                .map(|p| (s.clone(), p))
        });
        let ended = period.as_ref().is_some_and(|(_, p)| p.actual_end <= now);
        Ok(Self {
            from,
            to,
            period,
            ended,
        })
    }

    /// The time whose usage the range covers: a billing period's actual
    /// bounds (a period cut short ends at the cut, even when `to` named its
    /// nominal end), else `[from, to)`.
    pub fn span(&self) -> (Timestamp, Timestamp) {
        match &self.period {
            Some((_, p)) => (p.start, p.actual_end),
            None => (self.from, self.to),
        }
    }

    /// A billing period covers the hours that end in it, so that it agrees
    /// with `monthly_usage` and invoices; another range every hour it overlaps.
    pub fn coverage(&self) -> Coverage {
        if self.period.is_some() {
            Coverage::Period
        } else {
            Coverage::Overlap
        }
    }

    /// The bucket hours the range covers.
    pub fn hours(&self) -> (Timestamp, Timestamp) {
        let (from, to) = self.span();
        metering::bucket_hours(from, to, self.coverage())
    }
}

/// A report range's bill, with the catalog and plan that rated it.
#[derive(Debug, Clone)]
pub struct RangeBill {
    pub catalog: Arc<Catalog>,
    plan: usize,
    pub bill: Bill,
}

impl RangeBill {
    /// The plan that rated the range.
    pub fn plan(&self) -> &Plan {
        &self.catalog.plans[self.plan]
    }
}

/// Rates `range` for the whole tenant (`namespace` `None`) or one namespace.
/// A billing period is rated with the plan it was on, any other range with
/// the tenant's current plan. The whole tenant's billing period is exactly
/// what its invoice bills (prorated fee, coupons); any other range has no
/// fee, and coupons valid in it discount only the whole tenant's bill (a
/// namespace sees its usage alone).
pub async fn range_bill(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    range: &ReportRange,
    namespace: Option<&str>,
) -> Result<RangeBill, StoreError> {
    let (version, plan_name) = match &range.period {
        Some((sub, _)) => (sub.catalog_version, sub.plan.as_str()),
        None => (tenant.catalog_version, tenant.plan.as_str()),
    };
    // A period is rated in the currency its invoice was finalized in (so
    // that it still equals its invoice after the tenant's currency
    // changed); anything else in the tenant's currency.
    let finalized_in = match &range.period {
        Some((sub, period)) if range.ended => store
            .invoices(&tenant.id)
            .await?
            .into_iter()
            .find(|f| f.invoice.subscription_id == sub.id && f.invoice.period_index == period.index)
            .map(|f| f.invoice.currency),
        _ => None,
    };
    let catalog = match finalized_in {
        Some(currency) => match versions.in_currency(store, version, &currency).await? {
            Some(c) => c,
            None => {
                versions
                    .for_tenant(store, version, tenant.currency.as_deref())
                    .await?
            }
        },
        None => {
            versions
                .for_tenant(store, version, tenant.currency.as_deref())
                .await?
        }
    };
    let plan = catalog
        .plans
        .iter()
        .position(|p| p.name == plan_name)
        .ok_or_else(|| {
            StoreError::Corrupt(format!("plan {plan_name:?} is missing from catalog v{version}"))
        })?;
    let p = &catalog.plans[plan];
    let bill = match (&range.period, namespace) {
        // A finalized period's credits too, so that its bill is its invoice.
        (Some((sub, period)), None) => bills::period_bill(store, &catalog, p, &tenant.id, period)
            .await?
            .credited(store.period_credits(&tenant.id, &sub.id, period.index).await?),
        (_, namespace) => {
            let quantities = bills::quantities(
                store,
                &catalog,
                &tenant.id,
                namespace,
                range.span(),
                range.coverage(),
            )
            .await?;
            match namespace {
                // The whole tenant: coupons valid in the range, and taxes.
                None => {
                    let coupons = bills::coupons_for(
                        &store.tenant_coupons(&tenant.id).await?,
                        &catalog,
                        range.from,
                        range.to,
                    );
                    let tax = bills::tax_context(store, &catalog, &tenant.id, range.to).await?;
                    rating::bill(&catalog, p, &quantities, None, coupons).taxed(tax)
                }
                Some(_) => rating::bill(&catalog, p, &quantities, None, Vec::new()),
            }
        }
    };
    Ok(RangeBill { catalog, plan, bill })
}

#[cfg(test)]
mod tests {
    use tollgate_domain::catalog::Catalog;

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn subscription(start: &str) -> Subscription {
        let catalog = Catalog::builtin();
        Subscription::new(
            "sub-1".into(),
            "tenant-1".into(),
            catalog.plan("individual").unwrap(),
            1,
            t(start),
        )
    }

    #[test]
    fn no_range_is_the_current_period_and_an_exact_period_is_that_period() {
        let subs = [subscription("2026-01-01T00:00:00Z")];
        let now = t("2026-03-15T00:00:00Z");
        let current = ReportRange::resolve(&subs, None, None, now).unwrap();
        assert_eq!(
            (current.from, current.to),
            (t("2026-03-01T00:00:00Z"), t("2026-04-01T00:00:00Z"))
        );
        assert_eq!(current.coverage(), Coverage::Period);

        let february = ReportRange::resolve(
            &subs,
            Some(t("2026-02-01T00:00:00Z")),
            Some(t("2026-03-01T00:00:00Z")),
            now,
        )
        .unwrap();
        assert_eq!(february.period.as_ref().map(|(_, p)| p.index), Some(1));
        // Only `from`: up to the current period's end, not a period.
        let open = ReportRange::resolve(&subs, Some(t("2026-02-01T00:00:00Z")), None, now).unwrap();
        assert_eq!(open.to, t("2026-04-01T00:00:00Z"));
        assert!(open.period.is_none());
        assert_eq!(open.coverage(), Coverage::Overlap);
        // A range that is not a period's bounds is rated as a plain range.
        let odd = ReportRange::resolve(
            &subs,
            Some(t("2026-02-01T00:00:00Z")),
            Some(t("2026-02-15T00:00:00Z")),
            now,
        )
        .unwrap();
        assert!(odd.period.is_none());
        assert_eq!(odd.span(), (t("2026-02-01T00:00:00Z"), t("2026-02-15T00:00:00Z")));
    }

    #[test]
    fn without_a_current_subscription_only_an_explicit_range_resolves() {
        let mut ended = subscription("2026-01-01T00:00:00Z");
        ended.end = Some(t("2026-02-10T00:00:00Z"));
        let now = t("2026-03-15T00:00:00Z");
        assert!(matches!(
            ReportRange::resolve(std::slice::from_ref(&ended), None, None, now),
            Err(StoreError::Corrupt(_))
        ));
        let r = ReportRange::resolve(&[ended], Some(t("2026-03-01T00:00:00Z")), None, now).unwrap();
        assert_eq!(r.to, now);
    }
}
