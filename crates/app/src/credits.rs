//! Prepaid credits: an operator grants them, a tenant sees its balance and
//! ledger and sets a low-balance threshold, finalization applies them
//! ([`apply`], from [`crate::invoices`]), the job loop expires them
//! ([`expire_due`]). The rules (which grants pay first, credits before tax)
//! are the domain's ([`tollgate_domain::credits`]); the store keeps the
//! ledger append-only and never negative.

use jiff::Timestamp;
use tollgate_domain::credit_note;
use tollgate_domain::credits::{self, Entry, Grant, NewGrant};
use tollgate_domain::invoice::{AppliedCredit, Invoice};
use tollgate_domain::tenant::Tenant;
use tollgate_domain::{Error, ids::TenantId};
use tollgate_store::{Store, StoreError};

use crate::AppError;
use crate::catalogs::Versions;

/// What an operator asks to grant, as the CLI and the API take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantAsk {
    /// In major units of the currency ("50.00").
    pub amount: String,
    /// ISO 4217; the tenant's currency when absent.
    pub currency: Option<String>,
    pub priority: Option<i64>,
    pub expires_at: Option<Timestamp>,
    pub reason: String,
}

/// The currency a tenant is billed in (its catalog's).
pub async fn tenant_currency(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
) -> Result<String, StoreError> {
    Ok(versions
        .get(store, tenant.catalog_version)
        .await?
        .currency
        .clone())
}

/// Grants credits to a tenant; audited `credits.grant`. Errors name the
/// field (InvalidArgument).
pub async fn grant(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    ask: &GrantAsk,
    actor: &str,
    now: Timestamp,
) -> Result<Grant, AppError> {
    let currency = match &ask.currency {
        Some(c) => c.trim().to_owned(),
        None => tenant_currency(store, versions, tenant).await?,
    };
    let amount = credit_note::parse_amount("amount", &ask.amount, &currency)?;
    let g = NewGrant::check(
        &currency,
        amount,
        ask.priority.unwrap_or(0),
        ask.expires_at,
        &ask.reason,
        now,
    )?;
    Ok(store.grant_credits(&tenant.id, &g, actor, now).await?)
}

/// Takes back all that is left of a grant, or `amount` (major units) of it;
/// audited `credits.reverse`.
#[allow(clippy::too_many_arguments)]
pub async fn reverse(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    grant_id: &str,
    amount: Option<&str>,
    reason: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Grant, AppError> {
    // The amount is in the grant's currency.
    let currency = match store
        .credit_grants(&tenant.id)
        .await?
        .into_iter()
        .find(|g| g.id == grant_id)
    {
        Some(g) => g.currency,
        None => tenant_currency(store, versions, tenant).await?,
    };
    let amount = amount
        .map(|a| credit_note::parse_amount("amount", a, &currency))
        .transpose()?;
    let reason = credits::check_reason("reason", reason)?;
    Ok(store
        .reverse_credits(&tenant.id, grant_id, amount, &reason, actor, now)
        .await?)
}

/// Sets or clears (`None`) the low-balance threshold, in major units of
/// the tenant's currency ("0" is allowed: fires when the balance runs out).
pub async fn set_threshold(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    threshold: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<Option<i64>, AppError> {
    let currency = tenant_currency(store, versions, tenant).await?;
    let cents = match threshold.map(str::trim) {
        None => None,
        Some(t) if !t.is_empty() && t.bytes().all(|b| b == b'0' || b == b'.') && t.starts_with('0') => {
            Some(0)
        }
        Some(t) => Some(credit_note::parse_amount("low_balance_threshold", t, &currency)?),
    };
    store
        .set_low_balance_threshold(&tenant.id, cents, actor, now)
        .await?;
    Ok(cents)
}

/// A tenant's credits: balance per currency, every grant, the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// (currency, balance), in currency order; the tenant's own currency
    /// is always there (0 without credits).
    pub balances: Vec<(String, i64)>,
    pub grants: Vec<Grant>,
    pub low_balance_threshold_cents: Option<i64>,
    pub currency: String,
}

pub async fn summary(store: &dyn Store, versions: &Versions, tenant: &Tenant) -> Result<Summary, StoreError> {
    let grants = store.credit_grants(&tenant.id).await?;
    let currency = tenant_currency(store, versions, tenant).await?;
    let mut balances = std::collections::BTreeMap::<String, i64>::new();
    balances.insert(currency.clone(), 0);
    for g in &grants {
        *balances.entry(g.currency.clone()).or_default() += g.remaining_cents;
    }
    Ok(Summary {
        balances: balances.into_iter().collect(),
        grants,
        low_balance_threshold_cents: store.low_balance_threshold(&tenant.id).await?,
        currency,
    })
}

/// Most ledger entries one page returns.
pub const MAX_PAGE: u32 = 500;

/// A page of the ledger, newest first: `limit` (1 to [`MAX_PAGE`], default
/// 100) entries older than entry `before`.
pub async fn ledger(
    store: &dyn Store,
    tenant_id: &TenantId,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<Vec<Entry>, AppError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            Error::invalid(format!("limit: must be from 1 to {MAX_PAGE}, got {limit}"))
                .with_metadata("field", "limit")
                .into(),
        );
    }
    Ok(store.credit_ledger(tenant_id, before, limit).await?)
}

/// Pays what it can of `invoice` (being finalized at `now`) with the
/// tenant's credits: reads its open grants, allocates by priority and
/// expiry, and applies them to the invoice (credits before tax). The store
/// writes the ledger entries with the invoice, or refuses when a grant
/// changed since (the caller computes again).
pub async fn apply(
    store: &dyn Store,
    tenant_id: &TenantId,
    invoice: &mut Invoice,
    now: Timestamp,
) -> Result<(), StoreError> {
    let base = invoice.totals.after_discount();
    if base <= 0 {
        return Ok(());
    }
    let grants = store.open_credit_grants(tenant_id).await?;
    if grants.is_empty() {
        return Ok(());
    }
    let allocations = credits::allocate(&grants, &invoice.currency, base, now);
    if allocations.is_empty() {
        return Ok(());
    }
    let applied = allocations
        .into_iter()
        .map(|a| {
            let description = grants
                .iter()
                .find(|g| g.id == a.grant_id)
                .map_or_else(String::new, |g| g.reason.clone());
            AppliedCredit {
                grant: a.grant_id,
                description,
                amount_cents: a.amount_cents,
            }
        })
        .collect();
    invoice.apply_credits(applied);
    Ok(())
}

/// Grants expired per store call.
const EXPIRE_BATCH: u32 = 100;

/// Writes off what is left of every grant expired at `now`; returns how
/// many.
pub async fn expire_due(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store.expire_credits(now, EXPIRE_BATCH).await?;
        total += n;
        if n < EXPIRE_BATCH as usize {
            return Ok(total);
        }
    }
}
