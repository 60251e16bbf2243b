//! Coupons: definitions and the coupons applied to tenants
//! ([`CouponStore`](crate::CouponStore)). Part of the shared SQL
//! implementation (compiled per engine).

use jiff::Timestamp;
use rust_decimal::Decimal;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::ids::TenantId;
use tollgate_domain::rating::Discount;

use super::{DbRow, SqlStore, Tx, audit_in, micros, opt_timestamp, timestamp};
use crate::{Actor, AppliedCoupon, CouponDef, Result, StoreError};

#[async_trait::async_trait]
impl crate::CouponStore for SqlStore {
    async fn create_coupon(&self, coupon: &CouponDef, actor: Actor<'_>, now: Timestamp) -> Result<()> {
        create_coupon(self, coupon, actor, now).await
    }

    async fn coupons(&self) -> Result<Vec<CouponDef>> {
        coupons(self).await
    }

    async fn apply_coupon(
        &self,
        tenant_id: &TenantId,
        code: &str,
        valid_from: Timestamp,
        valid_until: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        apply_coupon(self, tenant_id, code, valid_from, valid_until, actor, now).await
    }

    async fn tenant_coupons(&self, tenant_id: &TenantId) -> Result<Vec<AppliedCoupon>> {
        tenant_coupons(self, tenant_id).await
    }
}

fn discount_parts(d: Discount) -> (&'static str, i64) {
    match d {
        Discount::Fixed(c) => ("FIXED", c),
        Discount::Percent(bp) => ("PERCENT", bp),
    }
}

fn coupon_from(row: &DbRow) -> Result<CouponDef> {
    let kind: String = row.try_get("discount_type")?;
    let amount: i64 = row.try_get("amount")?;
    let discount = match kind.as_str() {
        "FIXED" => Discount::Fixed(amount),
        "PERCENT" => Discount::Percent(amount),
        other => return Err(StoreError::Corrupt(format!("coupons.discount_type {other:?}"))),
    };
    Ok(CouponDef {
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        discount,
    })
}

async fn create_coupon(store: &SqlStore, c: &CouponDef, actor: Actor<'_>, now: Timestamp) -> Result<()> {
    let (kind, amount) = discount_parts(c.discount);
    let (c, actor) = (c.clone(), actor.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                let (c, actor) = (&c, actor.as_str());
                let inserted = sqlx::query(
        "INSERT INTO coupons (code, title, discount_type, amount, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&c.code)
    .bind(&c.title)
    .bind(kind)
    .bind(amount)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(Reason::CouponExists, format!(
                        "coupon {:?} already exists",
                        c.code
                    )));
                }
                // In the units the CLI takes (`--percent 10`, `--fixed-cents 500`).
                let after = match c.discount {
                    Discount::Percent(bp) => {
                        serde_json::json!({"title": c.title, "percent": Decimal::new(bp, 2).normalize().to_string()})
                    }
                    Discount::Fixed(cents) => serde_json::json!({"title": c.title, "fixed_cents": cents}),
                };
                audit_in(
                    tx,
                    None,
                    actor,
                    AuditAction::CouponCreate,
                    &format!("coupon/{}", c.code),
                    None,
                    Some(after),
                    now,
                )
                .await?;
                Ok(())
            })
        })
        .await
}

async fn coupons(store: &SqlStore) -> Result<Vec<CouponDef>> {
    let rows = sqlx::query("SELECT code, title, discount_type, amount FROM coupons ORDER BY code")
        .fetch_all(&store.read)
        .await?;
    rows.iter().map(coupon_from).collect()
}

async fn apply_coupon(
    store: &SqlStore,
    tenant_id: &TenantId,
    code: &str,
    valid_from: Timestamp,
    valid_until: Option<Timestamp>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<()> {
    let (tenant_id, code, valid_from, valid_until, actor, now) = (
        tenant_id.clone(),
        code.to_owned(),
        valid_from,
        valid_until,
        actor.to_owned(),
        now,
    );
    store
        .write(move |tx| {
            Box::pin(async move {
                apply_coupon_in(tx, &tenant_id, &code, valid_from, valid_until, &actor, now).await
            })
        })
        .await
}

async fn apply_coupon_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    code: &str,
    valid_from: Timestamp,
    valid_until: Option<Timestamp>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<()> {
    let exists = sqlx::query("SELECT 1 FROM coupons WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("coupon {code:?} does not exist")));
    }
    let inserted = sqlx::query(
        "INSERT INTO tenant_coupons (tenant_id, code, valid_from, valid_until, applied_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id.as_str())
    .bind(code)
    .bind(micros(valid_from))
    .bind(valid_until.map(micros))
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(
            Reason::CouponAlreadyApplied,
            format!("coupon {code:?} is already applied from {valid_from}"),
        ));
    }
    let after = serde_json::json!({"valid_from": valid_from.to_string(), "valid_until": valid_until.map(|t| t.to_string())});
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::CouponApply,
        &format!("coupon/{code}"),
        None,
        Some(after),
        now,
    )
    .await?;
    Ok(())
}

async fn tenant_coupons(store: &SqlStore, tenant_id: &TenantId) -> Result<Vec<AppliedCoupon>> {
    let rows = sqlx::query(
        "SELECT c.code, c.title, c.discount_type, c.amount, t.valid_from, t.valid_until FROM tenant_coupons t \
         JOIN coupons c ON c.code = t.code WHERE t.tenant_id = $1 ORDER BY t.valid_from, c.code",
    )
    .bind(tenant_id.as_str())
    .fetch_all(&store.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AppliedCoupon {
                coupon: coupon_from(r)?,
                valid_from: timestamp("tenant_coupons.valid_from", r.try_get("valid_from")?)?,
                valid_until: opt_timestamp("tenant_coupons.valid_until", r.try_get("valid_until")?)?,
            })
        })
        .collect()
}
