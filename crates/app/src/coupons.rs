//! Coupon use cases: define a coupon, apply it to a tenant.

use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_domain::Error;
use tollgate_domain::names::Name;
use tollgate_domain::rating::Discount;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{CouponDef, Store};

use crate::AppError;

/// What defining a coupon takes: exactly one of `percent` and `fixed_cents`.
#[derive(Debug, Clone, Default)]
pub struct CouponRequest {
    pub code: String,
    pub title: String,
    /// 0.01 to 100, at most two decimals.
    pub percent: Option<Decimal>,
    /// More than zero.
    pub fixed_cents: Option<i64>,
}

/// The discount a request asks for.
pub fn discount(percent: Option<Decimal>, fixed_cents: Option<i64>) -> Result<Discount, Error> {
    match (percent, fixed_cents) {
        (Some(p), None) => {
            let bp = p
                .checked_mul(Decimal::from(100))
                .map(|bp| bp.normalize())
                .filter(|bp| bp.scale() == 0 && *bp > Decimal::ZERO && *bp <= Decimal::from(10_000))
                .and_then(|bp| i64::try_from(bp).ok())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "percent: between 0.01 and 100 with at most two decimals, got {p}"
                    ))
                })?;
            Ok(Discount::Percent(bp))
        }
        (None, Some(c)) if c > 0 => Ok(Discount::Fixed(c)),
        (None, Some(c)) => Err(Error::invalid(format!(
            "fixed_cents: must be more than zero, got {c}"
        ))),
        (Some(_), Some(_)) => Err(Error::invalid("give either percent or fixed_cents, not both")),
        (None, None) => Err(Error::invalid("give percent or fixed_cents")),
    }
}

/// Defines a coupon (codes are unique and never change).
pub async fn create_coupon(
    store: &dyn Store,
    req: &CouponRequest,
    actor: &str,
    now: Timestamp,
) -> Result<CouponDef, AppError> {
    Name::parse("code", &req.code)?;
    let title = tollgate_domain::rating::coupon_title("title", &req.title)?;
    let def = CouponDef {
        code: req.code.clone(),
        title,
        discount: discount(req.percent, req.fixed_cents)?,
    };
    store.create_coupon(&def, actor, now).await?;
    Ok(def)
}

/// Applies a coupon to a tenant for the billing periods overlapping
/// [from, until); `from` defaults to `now`, `until` to forever. A
/// fixed-amount coupon is in its catalog's first currency: it is refused for
/// a tenant invoiced in another one (it would discount nothing).
#[allow(clippy::too_many_arguments)]
pub async fn apply_coupon(
    store: &dyn Store,
    versions: &crate::catalogs::Versions,
    tenant: &Tenant,
    code: &str,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
    actor: &str,
    now: Timestamp,
) -> Result<(), AppError> {
    let from = from.unwrap_or(now);
    if until.is_some_and(|u| u <= from) {
        return Err(Error::invalid("until: must be after from").into());
    }
    let catalog = versions.get(store, tenant.catalog_version).await?;
    let first = catalog.currency_of(None);
    let currency = catalog.currency_of(tenant.currency.as_deref());
    if currency != first
        && let Some(c) = store.coupons().await?.into_iter().find(|c| c.code == code)
        && let tollgate_domain::rating::Discount::Fixed(cents) = c.discount
    {
        return Err(Error::invalid(format!(
            "code: coupon {code:?} takes {} off, and tenant {} is invoiced in {currency}; a fixed \
             amount is in the catalog's first currency, so use a percentage coupon",
            tollgate_domain::currency::money(cents, first),
            tenant.name
        ))
        .with_metadata("field", "code")
        .into());
    }
    store
        .apply_coupon(&tenant.id, code, from, until, actor, now)
        .await?;
    Ok(())
}
