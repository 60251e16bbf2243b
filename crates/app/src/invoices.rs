//! Invoices: what they say (pending ones are computed, finalized ones are
//! stored), closing periods into finalized invoices, and charging them.
//!
//! **Period close.** A period ends; after the grace its invoice is computed
//! from the rollups and stored as ISSUED (PAID at once when there is nothing
//! to charge). The store keeps one invoice per (subscription, period), so
//! replicas closing the same period concurrently produce one invoice.
//!
//! **Which tenants.** Period close reads only the tenants that are due: the
//! store keeps, per tenant, the end of its earliest period without a
//! finalized invoice ([`BillingDue`]), and a tenant is due once that end is a
//! grace in the past. This module decides the date: after closing a
//! tenant's periods it stores the end of the next one still open
//! ([`next_due`]). The date may be early, never late: a new tenant starts at
//! the epoch ("work it out"; a backdated one is then due at once), and a plan
//! transition lowers it in its own transaction to the moment it closed the
//! subscription (the closed subscription's last period ends then). A close
//! writes its date only over the version it read, so it never raises a date
//! a transition lowered meanwhile.
//!
//! **Charging.** A due invoice is leased; each round tries the primary
//! method, then the secondary. Every attempt is written (PENDING) before the
//! provider is asked, with an idempotency key derived from the invoice, the
//! round and the method, and settled after. A crash in between leaves the
//! PENDING attempt; whoever takes the lease next asks the provider again with
//! the same key and gets the same answer, so nothing is charged twice.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::invoice::{self, Correction, Invoice, InvoiceStatus, LineKind, invoice_name};
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::subscription::{Period, Subscription};
use tollgate_domain::tenant::Tenant;
use tollgate_payments::{Charge, ProviderError};
use tollgate_store::{
    BillingDue, ChargeOutcome, ChargeRecord, ChargedMethod, RoundEnd, Store, StoreError, StoredInvoice,
};

use crate::JobContext;
use crate::bills;
use crate::catalogs::Versions;

/// How long a worker may hold an invoice while charging it.
pub const CHARGE_LEASE: SignedDuration = SignedDuration::from_mins(2);

/// Who finalizes invoices, in the audit trail.
pub const CLOSER: &str = "tollgate/period-close";

/// When invoices are finalized, how charges are retried, and when unpaid
/// ones suspend their tenant (see [`crate::dunning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSettings {
    /// How long after a period ends its invoice stays open for late usage.
    pub grace: SignedDuration,
    /// After the first attempt at finalization fails, the next rounds come at
    /// these delays after finalization; after the last one the invoice is OVERDUE.
    pub retry_delays: Vec<SignedDuration>,
    /// How long an invoice may stay OVERDUE before its tenant is suspended;
    /// `None`: never.
    pub suspend_after: Option<SignedDuration>,
}

impl Default for InvoiceSettings {
    fn default() -> Self {
        let day = SignedDuration::from_hours(24);
        Self {
            grace: day,
            retry_delays: vec![day, day * 3, day * 7],
            suspend_after: Some(tollgate_domain::dunning::DEFAULT_SUSPEND_AFTER),
        }
    }
}

/// One billing period of a tenant, with its invoice's name.
#[derive(Debug, Clone)]
pub struct TenantPeriod {
    pub subscription: Subscription,
    pub period: Period,
    pub name: String,
}

/// A tenant's billing periods that have started by `now`, in time order,
/// named by their position: `inv-YYYY-MM-NNNN`, NNNN counting from 1 over
/// all of the tenant's periods. Names never change, since periods are only
/// ever added after the last one (a plan change cuts the current one short).
pub fn tenant_periods(subscriptions: &[Subscription], now: Timestamp) -> Vec<TenantPeriod> {
    let mut periods: Vec<(Timestamp, Timestamp, &Subscription, Period)> = subscriptions
        .iter()
        .flat_map(|s| {
            s.periods_until(now)
                .into_iter()
                .filter(|p| p.actual_end > p.start)
                .map(move |p| (p.start, s.start, s, p))
        })
        .collect();
    periods.sort_by_key(|(start, sub_start, _, p)| (*start, *sub_start, p.index));
    periods
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, s, p))| TenantPeriod {
            subscription: s.clone(),
            period: p,
            name: invoice_name(p.start, u32::try_from(i + 1).unwrap_or(u32::MAX)),
        })
        .collect()
}

fn is_for(stored: &StoredInvoice, tp: &TenantPeriod) -> bool {
    stored.invoice.subscription_id == tp.subscription.id && stored.invoice.period_index == tp.period.index
}

/// One tenant's billing periods and finalized invoices, read once, from
/// which its invoices are computed.
pub struct Book<'a> {
    store: &'a dyn Store,
    versions: &'a Versions,
    tenant_id: &'a TenantId,
    /// The tenant's currency (`None`: from before currencies, its catalog's
    /// first), which invoices not yet finalized are in.
    pub currency: Option<String>,
    /// Oldest first, as the store lists them.
    pub subscriptions: Vec<Subscription>,
    pub periods: Vec<TenantPeriod>,
    /// Newest period first.
    pub finalized: Vec<StoredInvoice>,
}

impl<'a> Book<'a> {
    /// Reads the tenant's periods that have started by `now` and its finalized invoices.
    pub async fn open(
        store: &'a dyn Store,
        versions: &'a Versions,
        tenant_id: &'a TenantId,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let currency = store
            .tenant(tenant_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?
            .currency;
        let subscriptions = store.subscriptions(tenant_id).await?;
        Ok(Self {
            store,
            versions,
            tenant_id,
            currency,
            periods: tenant_periods(&subscriptions, now),
            subscriptions,
            finalized: store.invoices(tenant_id).await?,
        })
    }

    /// Reads the finalized invoices again (after finalizing one).
    pub async fn refresh(&mut self) -> Result<(), StoreError> {
        self.finalized = self.store.invoices(self.tenant_id).await?;
        Ok(())
    }

    pub fn is_finalized(&self, tp: &TenantPeriod) -> bool {
        self.finalized.iter().any(|f| is_for(f, tp))
    }

    /// The name of a period's invoice, and whether it is finalized.
    pub fn invoice_of(&self, subscription_id: &str, period_index: u32) -> Option<(&str, bool)> {
        self.periods
            .iter()
            .find(|tp| tp.subscription.id == subscription_id && tp.period.index == period_index)
            .map(|tp| (tp.name.as_str(), self.is_finalized(tp)))
    }

    /// Corrections for usage that reached finalized periods after they were
    /// finalized. Only the two latest finalized invoices before `before` can
    /// still change: usage older than the latest finalized period is refused
    /// at ingestion, and the one before covers events in flight while it was
    /// finalized. Each is re-rated in its own invoice's currency, and only
    /// one in `currency` (the invoice it goes on) is a correction: usage
    /// that reached a period invoiced in another currency before the
    /// tenant's currency changed is not billed.
    async fn corrections(&self, before: Timestamp, currency: &str) -> Result<Vec<Correction>, StoreError> {
        let mut out = Vec::new();
        let candidates = self
            .finalized
            .iter()
            .filter(|f| f.invoice.period_start < before)
            .take(2);
        for m in candidates {
            let Some(tp) = self.periods.iter().find(|tp| is_for(m, tp)) else {
                continue;
            };
            if m.invoice.currency != currency {
                continue;
            }
            let Some(catalog) = self
                .versions
                .in_currency(self.store, tp.subscription.catalog_version, currency)
                .await?
            else {
                continue;
            };
            let Some(plan) = catalog.plan(&tp.subscription.plan) else {
                continue;
            };
            let rerated = bills::period_bill(self.store, &catalog, plan, self.tenant_id, &tp.period)
                .await?
                .totals
                .subtotal;
            let own: i64 = m
                .invoice
                .lines
                .iter()
                .filter(|l| l.kind != LineKind::Adjustment)
                .map(|l| l.amount_cents)
                .sum();
            let adjusted: i64 = self
                .finalized
                .iter()
                .flat_map(|f| f.invoice.lines.iter())
                .filter(|l| {
                    l.kind == LineKind::Adjustment && l.adjusts.as_deref() == Some(m.invoice.name.as_str())
                })
                .map(|l| l.amount_cents)
                .sum();
            let delta = rerated.saturating_sub(own).saturating_sub(adjusted);
            if delta != 0 {
                out.push(Correction {
                    invoice: m.invoice.name.to_string(),
                    period_start: m.invoice.period_start,
                    period_end: m.invoice.period_end,
                    amount_cents: delta,
                });
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The invoice of one period as it stands: its bill, plus, on the next
    /// invoice to be finalized, corrections of earlier finalized invoices.
    pub async fn compute(&self, tp: &TenantPeriod, status: InvoiceStatus) -> Result<Invoice, StoreError> {
        let catalog = self
            .versions
            .for_tenant(
                self.store,
                tp.subscription.catalog_version,
                self.currency.as_deref(),
            )
            .await?;
        let plan = catalog.plan(&tp.subscription.plan).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "subscription {} is on plan {:?}, which catalog v{} does not have",
                tp.subscription.id, tp.subscription.plan, tp.subscription.catalog_version
            ))
        })?;
        let bill = bills::period_bill(self.store, &catalog, plan, self.tenant_id, &tp.period).await?;
        // Corrections go on the next invoice to be finalized, and only there.
        let next_to_finalize = self.periods.iter().find(|p| !self.is_finalized(p));
        let fixes = if next_to_finalize.is_some_and(|p| p.name == tp.name) {
            self.corrections(tp.period.start, &catalog.currency).await?
        } else {
            Vec::new()
        };
        Ok(invoice::build(
            tp.name.clone(),
            status,
            &tp.subscription.id,
            &catalog,
            plan,
            &tp.period,
            &bill,
            &fixes,
        ))
    }
}

/// Every invoice of a tenant, newest period first: finalized ones as stored,
/// the others (open periods, and closed ones in their grace) computed now as
/// PENDING.
pub async fn tenant_invoices(
    store: &dyn Store,
    versions: &Versions,
    tenant_id: &TenantId,
    now: Timestamp,
) -> Result<Vec<Invoice>, StoreError> {
    let book = Book::open(store, versions, tenant_id, now).await?;
    let mut out: Vec<Invoice> = book.finalized.iter().map(|f| f.invoice.clone()).collect();
    for tp in book.periods.iter().filter(|tp| !book.is_finalized(tp)) {
        out.push(book.compute(tp, InvoiceStatus::Pending).await?);
    }
    out.sort_by(|a, b| (b.period_start, &b.name).cmp(&(a.period_start, &a.name)));
    Ok(out)
}

/// One invoice of a tenant by name (finalized or pending).
pub async fn tenant_invoice(
    store: &dyn Store,
    versions: &Versions,
    tenant_id: &TenantId,
    name: &InvoiceName,
    now: Timestamp,
) -> Result<Option<Invoice>, StoreError> {
    let book = Book::open(store, versions, tenant_id, now).await?;
    if let Some(f) = book.finalized.iter().find(|f| f.invoice.name == *name) {
        return Ok(Some(f.invoice.clone()));
    }
    match book.periods.iter().find(|tp| tp.name == name.as_str()) {
        Some(tp) => book.compute(tp, InvoiceStatus::Pending).await.map(Some),
        None => Ok(None),
    }
}

/// Due tenants read per page.
const DUE_PAGE: u32 = 100;

/// What one period close did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodClose {
    /// Tenants whose periods it read: the due ones.
    pub tenants: usize,
    /// Invoices it stored.
    pub invoices: usize,
}

/// Makes due catalog moves take effect, then finalizes every period whose
/// grace is over at `now`; returns how many invoices this call stored. See
/// [`close_due_periods`] and [`crate::catalogs::apply_due_moves`].
pub async fn close_periods(ctx: &JobContext, now: Timestamp) -> Result<usize, StoreError> {
    // Moves to newer catalog versions that are due first: each ends a
    // subscription at a period boundary, whose period then closes here.
    let moved = crate::catalogs::apply_due_moves(ctx.store.as_ref(), &ctx.catalogs, now).await;
    let closed = close_due_periods(ctx, now).await.map(|done| done.invoices);
    match moved {
        Ok(n) => {
            if n > 0 {
                tracing::info!(tenants = n, "tenants moved to newer catalog versions");
            }
            closed
        }
        Err(e) => closed.and(Err(e)),
    }
}

/// Finalizes every period whose grace is over at `now`, reading only the
/// tenants that are due (their due date is a grace before `now` or earlier),
/// earliest first, a page at a time; then stores each one's next due date.
/// A tenant that fails is logged and skipped (its date stays, so the next
/// run tries it again); the error is returned after all others are done.
pub async fn close_due_periods(ctx: &JobContext, now: Timestamp) -> Result<PeriodClose, StoreError> {
    let store = ctx.store.as_ref();
    let before = now.checked_sub(ctx.invoicing.grace).unwrap_or(Timestamp::MIN);
    let mut done = PeriodClose::default();
    let mut failed = None;
    let mut after: Option<BillingDue> = None;
    loop {
        let page = store.due_tenants(before, after.as_ref(), DUE_PAGE).await?;
        for due in &page {
            done.tenants += 1;
            // One tenant's trouble (say, a plan missing from its catalog) must
            // not hold up everyone else's invoices.
            match close_due_tenant(ctx, due, now).await {
                Ok(n) => done.invoices += n,
                Err(e) => {
                    let name = match store.tenant(&due.tenant_id).await {
                        Ok(Some(t)) => t.name.to_string(),
                        _ => due.tenant_id.to_string(),
                    };
                    tracing::error!(tenant = %name, error = %e, "cannot close the tenant's billing periods");
                    failed = Some(e);
                }
            }
        }
        if page.len() < DUE_PAGE as usize {
            break;
        }
        after = page.last().cloned();
    }
    // Every other tenant was served; report the (last) failure.
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Closes a due tenant's periods and stores its next due date over the one
/// it was read with.
async fn close_due_tenant(ctx: &JobContext, due: &BillingDue, now: Timestamp) -> Result<usize, StoreError> {
    let (stored, next) = close_book(ctx, &due.tenant_id, now).await?;
    if next != due.due_at {
        // The invoices are stored whatever happens here: a date that cannot
        // be written stays early, and the next run works it out again.
        match ctx.store.set_billing_due(due, next).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(
                tenant = %due.tenant_id,
                "the tenant's billing changed during period close; it is looked at again on the next run"
            ),
            Err(e) => tracing::warn!(
                tenant = %due.tenant_id,
                error = %e,
                "cannot store when the tenant's next period closes; it is worked out again on the next run"
            ),
        }
    }
    Ok(stored)
}

/// When the tenant next has a period to close: the end of its earliest
/// period without a finalized invoice. Its current period is never
/// finalized, so there is one; failing that, `now` (looked at again after a
/// grace).
pub fn next_due(book: &Book<'_>, now: Timestamp) -> Timestamp {
    book.periods
        .iter()
        .filter(|tp| !book.is_finalized(tp))
        .map(|tp| tp.period.actual_end)
        .min()
        .unwrap_or(now)
}

/// Finalizes the due periods of one tenant, oldest first; returns how many
/// invoices it stored. It does not move the tenant's due date (a date left
/// early only costs a look).
pub async fn close_tenant_periods(
    ctx: &JobContext,
    tenant_id: &TenantId,
    now: Timestamp,
) -> Result<usize, StoreError> {
    close_book(ctx, tenant_id, now).await.map(|(stored, _)| stored)
}

/// Finalizes the due periods of one tenant, oldest first; returns how many
/// invoices it stored and its next due date after them.
async fn close_book(
    ctx: &JobContext,
    tenant_id: &TenantId,
    now: Timestamp,
) -> Result<(usize, Timestamp), StoreError> {
    let store = ctx.store.as_ref();
    let mut book = Book::open(store, &ctx.catalogs, tenant_id, now).await?;
    let mut stored = 0;
    let due: Vec<TenantPeriod> = book
        .periods
        .iter()
        .filter(|tp| tp.period.actual_end + ctx.invoicing.grace <= now)
        .cloned()
        .collect();
    for tp in &due {
        if book.is_finalized(tp) {
            continue;
        }
        let mut computed = book.compute(tp, InvoiceStatus::Issued).await?;
        computed.issued_at = Some(now);
        // The issuer is part of what was issued: a later change of company
        // details does not rewrite it.
        computed.issuer = Some(ctx.catalogs.issuer(store).await?);
        // Prepaid credits pay first; only the rest is charged. A grant that
        // changed between reading and storing (a reversal, another replica)
        // fails the finalization as a conflict: read the grants again.
        let mut attempts = 0;
        let (inv, finalized) = loop {
            let mut inv = computed.clone();
            crate::credits::apply(store, tenant_id, &mut inv, now).await?;
            let next_charge_at = if inv.totals.total > 0 {
                Some(now)
            } else {
                inv.status = InvoiceStatus::Paid;
                None
            };
            match store
                .finalize_invoice(tenant_id, &inv, next_charge_at, CLOSER, now)
                .await
            {
                Err(StoreError::Conflict(..)) if !inv.credits.is_empty() && attempts < 3 => attempts += 1,
                other => break (inv, other?),
            }
        };
        if finalized {
            stored += 1;
            tracing::info!(tenant = tenant_id.as_str(), invoice = %inv.name, total = inv.totals.total, "invoice finalized");
        }
        book.refresh().await?;
    }
    compact_distinct(store, tenant_id, &book).await?;
    Ok((stored, next_due(&book, now)))
}

/// Keeps the unique counts of periods no event can reach any more (they
/// end at or before the admission floor, the latest finalized period's
/// start) per period instead of per hour.
async fn compact_distinct(
    store: &dyn Store,
    tenant_id: &TenantId,
    book: &Book<'_>,
) -> Result<(), StoreError> {
    let Some(floor) = book.finalized.iter().map(|f| f.invoice.period_start).max() else {
        return Ok(());
    };
    let old: Vec<(Timestamp, Timestamp)> = book
        .periods
        .iter()
        .filter(|tp| tp.period.actual_end <= floor)
        .map(|tp| {
            tollgate_domain::metering::bucket_hours(
                tp.period.start,
                tp.period.actual_end,
                tollgate_domain::metering::Coverage::Period,
            )
        })
        .collect();
    if !old.is_empty() {
        store.compact_distinct(tenant_id, &old).await?;
    }
    Ok(())
}

/// Charges due invoices until none is left; returns how many rounds ran.
/// A round that fails schedules the next one; if that is already due (the
/// job ran late, or `--now` jumped ahead), it runs too, until the invoice is
/// paid or OVERDUE. An invoice the provider could not answer for stays
/// leased, so it is not picked again before its lease expires.
pub async fn charge_until_idle(ctx: &JobContext) -> Result<usize, StoreError> {
    let mut rounds = 0;
    while charge_once(ctx).await?.is_some() {
        rounds += 1;
    }
    Ok(rounds)
}

fn settled(
    mut c: ChargeRecord,
    outcome: ChargeOutcome,
    reason: Option<String>,
    reference: Option<String>,
) -> ChargeRecord {
    c.outcome = outcome;
    c.reason = reason;
    c.reference = reference;
    c
}

/// What asking the provider for a recorded attempt gave.
enum Asked {
    Paid,
    NotPaid,
    /// The provider could not answer; try again once the lease expires.
    Unavailable,
}

/// Asks the method's provider to charge a recorded (PENDING) attempt: when
/// the provider makes its payment in two steps, the payment is made first
/// and its reference written with the attempt before any money moves, then
/// completed; resuming the attempt completes that same payment.
async fn ask_provider(
    ctx: &JobContext,
    tenant_id: &TenantId,
    c: &mut ChargeRecord,
) -> Result<Charge, ProviderError> {
    let Some(method) = c.method.clone() else {
        return Err(ProviderError::Refused("no payment method".into()));
    };
    let Some(provider) = ctx.providers.get(&method.provider) else {
        return Err(ProviderError::Unavailable(format!(
            "payment method {} is held by the {:?} payment provider, which this process is not configured for \
             (configured: {})",
            method.name,
            method.provider,
            ctx.providers.names().join(", ")
        )));
    };
    let customer = if provider.keeps_customers() {
        ctx.store
            .provider_customer(tenant_id, provider.name())
            .await
            .map_err(|e| ProviderError::Unavailable(format!("cannot read the tenant's customer: {e}")))?
    } else {
        None
    };
    let description = format!("Tollgate invoice {} (attempt {})", c.invoice, c.attempt);
    let key = c.idempotency_key.clone();
    let currency = c.currency.clone();
    let mut request = tollgate_payments::ChargeRequest {
        token: &method.token,
        customer: customer.as_deref(),
        amount_cents: c.amount_cents,
        currency: &currency,
        idempotency_key: &key,
        reference: None,
        description: &description,
    };
    let reference = match c.reference.clone() {
        Some(r) => Some(r),
        None => {
            let prepared = provider.prepare(&request).await?;
            if let Some(reference) = &prepared {
                ctx.store
                    .set_charge_reference(tenant_id, &ctx.worker_id, c, reference)
                    .await
                    .map_err(|e| {
                        ProviderError::Unavailable(format!("cannot record the payment's reference: {e}"))
                    })?;
                c.reference = Some(reference.clone());
            }
            prepared
        }
    };
    request.reference = reference.as_deref();
    provider.charge(&request).await
}

async fn ask(ctx: &JobContext, tenant_id: &TenantId, mut c: ChargeRecord) -> Result<Asked, StoreError> {
    let now = ctx.clock.now();
    if c.method.is_none() {
        // An attempt without a method was settled FAILED when it was
        // recorded: there is no one to ask.
        return Ok(Asked::NotPaid);
    }
    let answer = ask_provider(ctx, tenant_id, &mut c).await;
    let reference = c.reference.clone();
    let (record, asked) = match answer {
        Ok(Charge::Succeeded { reference }) => (
            settled(c, ChargeOutcome::Succeeded, None, Some(reference)),
            Asked::Paid,
        ),
        Ok(Charge::Declined { reason }) => (
            settled(c, ChargeOutcome::Declined, Some(reason), reference),
            Asked::NotPaid,
        ),
        Ok(Charge::Processing { reference }) => {
            // Asked again after the lease, or settled by the provider's webhook.
            tracing::info!(tenant = tenant_id.as_str(), invoice = %c.invoice, reference, "payment processing; will ask again");
            return Ok(Asked::Unavailable);
        }
        Err(ProviderError::Refused(reason)) => (
            settled(c, ChargeOutcome::Failed, Some(reason), reference),
            Asked::NotPaid,
        ),
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(tenant = tenant_id.as_str(), invoice = %c.invoice, error = %e, "payment provider unavailable; will retry");
            return Ok(Asked::Unavailable);
        }
    };
    // The application decides where the invoice goes; the store writes it
    // under the lease.
    let moves_to = invoice::status_after_attempt(record.outcome == ChargeOutcome::Succeeded);
    ctx.store
        .settle_charge(tenant_id, &ctx.worker_id, &record, moves_to, now)
        .await?;
    metrics::counter!("tollgate_charge_attempts_total", "outcome" => record.outcome.as_str()).increment(1);
    tracing::info!(
        tenant = tenant_id.as_str(),
        invoice = %record.invoice,
        attempt = record.attempt,
        role = record.method.as_ref().map_or("-", |m| m.role.as_str()),
        outcome = record.outcome.as_str(),
        "charge attempt"
    );
    Ok(asked)
}

/// Claims one due invoice and runs its charge round. Returns its name.
pub async fn charge_once(ctx: &JobContext) -> Result<Option<InvoiceName>, StoreError> {
    let now = ctx.clock.now();
    let Some(stored) = ctx
        .store
        .claim_charge(&ctx.worker_id, now, now + CHARGE_LEASE)
        .await?
    else {
        return Ok(None);
    };
    charge_claimed(ctx, stored, now).await.map(Some)
}

/// What [`settle_now`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleNow {
    /// The invoice was leased and its unsettled attempts asked about (and
    /// the rest of a due round run).
    Done,
    /// A worker holds the invoice; it settles the attempts itself, or the
    /// next worker does once the lease expires.
    Held,
}

/// Settles an invoice's unsettled charge attempts now, as the charge job
/// would (a provider webhook said a payment finished): the invoice is leased,
/// the provider asked about each PENDING attempt by its reference, and a
/// round that is due continues. Nothing is taken from the webhook itself:
/// the provider's answer decides.
pub async fn settle_now(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &InvoiceName,
) -> Result<SettleNow, StoreError> {
    let now = ctx.clock.now();
    let Some(stored) = ctx
        .store
        .claim_invoice(tenant_id, name, &ctx.worker_id, now, now + CHARGE_LEASE)
        .await?
    else {
        return Ok(SettleNow::Held);
    };
    charge_claimed(ctx, stored, now).await?;
    Ok(SettleNow::Done)
}

/// Runs the charge round of an invoice `ctx.worker_id` has leased: first the
/// attempts left unsettled, then, if a round is due, primary then secondary.
async fn charge_claimed(
    ctx: &JobContext,
    stored: StoredInvoice,
    now: Timestamp,
) -> Result<InvoiceName, StoreError> {
    let (tenant_id, inv) = (&stored.tenant_id, &stored.invoice);
    let name = inv.name.clone();
    let charges = ctx.store.invoice_charges(tenant_id, &name).await?;

    // First, attempts a crash left unsettled: same key, same answer.
    for c in charges.iter().filter(|c| c.outcome == ChargeOutcome::Pending) {
        match ask(ctx, tenant_id, c.clone()).await? {
            Asked::Paid => return Ok(name),
            Asked::NotPaid => {}
            Asked::Unavailable => return Ok(name),
        }
    }
    let due = inv.status == InvoiceStatus::Issued && stored.next_charge_at.is_some_and(|at| at <= now);
    if !due {
        ctx.store.release_charge(tenant_id, &name, &ctx.worker_id).await?;
        return Ok(name);
    }

    let attempt = stored.attempts + 1;
    let methods = ctx.store.payment_methods(tenant_id).await?;
    let ordered: Vec<_> = [PaymentRole::Primary, PaymentRole::Secondary]
        .into_iter()
        .filter_map(|role| methods.iter().find(|m| m.role == role))
        .collect();
    let base = |method: Option<ChargedMethod>| ChargeRecord {
        idempotency_key: format!(
            "{tenant_id}/{name}/{attempt}/{}",
            method.as_ref().map_or("-", |m| m.name.as_str())
        ),
        invoice: name.clone(),
        attempt,
        method,
        amount_cents: inv.totals.total,
        currency: inv.currency.clone(),
        outcome: ChargeOutcome::Pending,
        reason: None,
        reference: None,
        started_at: now,
        settled_at: None,
    };
    if ordered.is_empty() {
        let mut c = base(None);
        c.outcome = ChargeOutcome::Failed;
        c.reason = Some("the tenant has no primary or secondary payment method".into());
        c.settled_at = Some(now);
        ctx.store.begin_charge(tenant_id, &ctx.worker_id, &c).await?;
    }
    for m in ordered {
        let c = base(Some(ChargedMethod {
            name: m.name.clone(),
            role: m.role,
            token: m.token.clone(),
            display: m.display.clone(),
            provider: m.provider.clone(),
        }));
        if charges
            .iter()
            .any(|done| done.idempotency_key == c.idempotency_key)
        {
            continue; // tried in this round before a crash, and settled above or before
        }
        ctx.store.begin_charge(tenant_id, &ctx.worker_id, &c).await?;
        match ask(ctx, tenant_id, c).await? {
            Asked::Paid => return Ok(name),
            Asked::NotPaid => {}
            Asked::Unavailable => return Ok(name),
        }
    }
    let issued_at = inv.issued_at.unwrap_or(now);
    let next = invoice::next_attempt(issued_at, attempt, &ctx.invoicing.retry_delays);
    let end = RoundEnd {
        attempts: attempt,
        status: invoice::status_after_round(next),
        next_charge_at: next,
    };
    ctx.store
        .end_charge_round(tenant_id, &name, &ctx.worker_id, &end, ctx.clock.now())
        .await?;
    if next.is_none() {
        tracing::warn!(tenant = tenant_id.as_str(), invoice = %name, attempts = attempt, "invoice overdue");
    }
    Ok(name)
}

/// What a PDF says about one charge attempt.
fn payment_line(c: &ChargeRecord) -> String {
    let at = c.settled_at.unwrap_or(c.started_at).strftime("%Y-%m-%d");
    let amount = tollgate_domain::currency::money(c.amount_cents, &c.currency);
    let to = match &c.method {
        None => String::new(),
        Some(m) => {
            let role = match m.role {
                PaymentRole::Primary => " (primary)",
                PaymentRole::Secondary => " (secondary)",
                PaymentRole::Normal => "",
            };
            format!(" to {}{role}", m.display)
        }
    };
    let outcome = match (c.outcome, c.reason.as_deref()) {
        (ChargeOutcome::Pending, _) => "in progress".to_owned(),
        (ChargeOutcome::Succeeded, _) => "paid".to_owned(),
        (ChargeOutcome::Refunded, _) => "paid, then refunded".to_owned(),
        (ChargeOutcome::Declined, r) => format!("declined ({})", r.unwrap_or("no reason given")),
        (ChargeOutcome::Failed, r) => format!("not charged ({})", r.unwrap_or("no reason given")),
    };
    format!("{at}  charge attempt {} of {amount}{to}: {outcome}", c.attempt)
}

/// Why an invoice PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot render the PDF: {0}")]
    Render(#[from] tollgate_pdf::PdfError),
    #[error("the PDF renderer stopped: {0}")]
    Join(String),
}

/// Renders one of a tenant's invoices (finalized or pending) as a PDF, with
/// its billing contact, charge attempts and refunds; `None` if it has no
/// invoice of that name.
pub async fn render_pdf(
    store: &dyn Store,
    versions: &Versions,
    tenant: &Tenant,
    name: &InvoiceName,
    now: Timestamp,
) -> Result<Option<Vec<u8>>, PdfError> {
    let Some(invoice) = tenant_invoice(store, versions, &tenant.id, name, now).await? else {
        return Ok(None);
    };
    let charges = store.invoice_charges(&tenant.id, name).await?;
    let mut payments: Vec<String> = charges.iter().map(payment_line).collect();
    let refunds = store.invoice_refunds(&tenant.id, name).await?;
    payments.extend(
        refunds
            .iter()
            .map(|r| crate::credit_notes::refund_line(r, &charges, false)),
    );
    let methods = store.payment_methods(&tenant.id).await?;
    let contact = methods
        .iter()
        .find(|m| m.role == PaymentRole::Primary)
        .or_else(|| methods.first())
        .map(|m| m.contact.clone());
    let tenant_name = tenant.name.to_string();
    let issuer = match &invoice.issuer {
        Some(issuer) => issuer.clone(),
        None => versions.issuer(store).await?,
    };
    // Rendering is CPU work (fonts, layout, compression): off the async
    // runtime's threads, so one PDF does not stall other requests.
    let pdf = tokio::task::spawn_blocking(move || {
        let doc = tollgate_pdf::InvoiceDocument {
            invoice: &invoice,
            tenant: &tenant_name,
            contact: contact.as_ref(),
            payments: &payments,
            issuer: &issuer,
        };
        tollgate_pdf::render(&doc)
    })
    .await
    .map_err(|e| PdfError::Join(e.to_string()))??;
    Ok(Some(pdf))
}

/// The operator's "charge now": an unpaid invoice (ISSUED, or OVERDUE after
/// every retry failed, e.g. once the customer fixed their card) becomes due
/// at once and the charge job runs, as the job loop would a moment later.
/// One more charge round (primary, then secondary), with its own idempotency
/// keys: never a repeat of an earlier attempt. Returns the invoice after.
pub async fn charge_now(
    ctx: &JobContext,
    tenant_id: &TenantId,
    name: &InvoiceName,
    actor: &str,
    now: Timestamp,
) -> Result<StoredInvoice, StoreError> {
    ctx.store.schedule_charge(tenant_id, name, actor, now).await?;
    charge_until_idle(ctx).await?;
    ctx.store
        .invoice(tenant_id, name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("invoice {name:?} does not exist")))
}

/// The operator cancels an unpaid finalized invoice (ISSUED or OVERDUE): it
/// is no longer charged. Refused (409) from any other status and while a
/// charge or a refund holds the invoice.
pub async fn cancel(
    store: &dyn Store,
    tenant_id: &TenantId,
    name: &InvoiceName,
    actor: &str,
    now: Timestamp,
) -> Result<StoredInvoice, StoreError> {
    store
        .set_invoice_status(
            tenant_id,
            name,
            InvoiceStatus::CANCELLABLE,
            InvoiceStatus::Cancelled,
            actor,
            now,
        )
        .await
}
