//! The store's interface, one trait per aggregate, and [`Store`], which is
//! all of them.
//!
//! An aggregate here is a set of tables whose rules hold together: what one
//! write must see and change at once, under one transaction. The cut follows
//! what the methods touch:
//!
//! - [`TenancyStore`]: `tenants`, `namespaces`, `api_tokens`,
//!   `operator_tokens`. Who exists and who may act for them. A tenant is
//!   created with its `system` namespace, its first subscription and its
//!   billing due date (the epoch: "work it out") in one transaction: those
//!   rows are its birth, not later billing changes.
//! - [`QuotaStore`]: `quota_objects`, `quota_usage`, `quota_requests`. A
//!   usage change reads the enabled quota objects, claims its request id and
//!   moves the count in one transaction; pruning old request ids is the same
//!   table's housekeeping.
//! - [`CatalogStore`]: `catalogs` (immutable versions) and `bootstrap`, which
//!   publishes the built-in catalog on a new database and gives tenants from
//!   before plans a subscription to its default plan.
//! - [`BillingStore`]: `subscriptions`, `tenant_addons`, `payment_methods`,
//!   `plan_transitions`: what a tenant is subscribed to and pays with. These
//!   change together under the tenant's row lock (a completing transition
//!   closes the subscription, adds the next, makes a payment method primary
//!   and moves add-ons at once), so they are one aggregate.
//! - [`MeteringStore`]: `usage_events`, `usage_hourly`, `usage_daily`: raw
//!   events and the rollups kept from them in the same transaction.
//! - [`CouponStore`]: `coupons`, `tenant_coupons`. Separate from metering
//!   (where the SQL used to live): they share no table and no transaction
//!   with usage, and only rating reads them.
//! - [`InvoicingStore`]: `invoices`, `invoice_charges`, `invoice_refunds`
//!   (one lease per invoice, shared by charges and refunds; each refund a
//!   credit note numbered from `credit_note_sequences`) and
//!   `billing_due`, the index of when each tenant next has a period to close,
//!   so that period close reads only the tenants that are due. Its dates are
//!   the application's decision (`app::invoices`); the store keeps them, and
//!   lowers one where a write of another aggregate moves a period's end (a
//!   plan transition closing a subscription early).
//! - [`DunningStore`]: the suspension columns of `tenants`, decided from the
//!   invoices' `overdue_at`. Apart from invoicing because it writes the
//!   tenant's row (under its lock), and apart from tenancy because what it
//!   decides from is the invoices. Invoicing lifts a suspension in the same
//!   transaction that pays or cancels the tenant's last unpaid OVERDUE
//!   invoice.
//! - [`AuditStore`]: reading the audit trail, and the secrets replicas share.
//!   Every aggregate appends to the trail inside its own transactions; only
//!   reading it is a method of its own. Secrets, like the trail, belong to
//!   the deployment rather than to any tenant's aggregate.
//! - [`WebhookStore`]: `webhook_events` (the outbox), `webhook_endpoints`,
//!   `webhook_deliveries`. Every aggregate writes its events into the outbox
//!   inside its own transaction (as it appends to the audit trail: an
//!   audited change that is an event emits it there); dispatching an event
//!   to the endpoints that want it, and leasing and recording attempts, are
//!   this trait's.
//! - [`AlertStore`]: `usage_alerts`: a tenant's thresholds on its period's
//!   spend or a meter, which ingestion marks for evaluation (in its own
//!   transaction) and the alerts job fires, once per period, emitting
//!   `usage.alert_triggered` in the transaction that records the firing.
//! - [`HealthStore`]: which engine, whether it answers, whether it can take
//!   writes now (`heartbeat`), and what the metrics read about the store
//!   itself: its pools, and how far behind the jobs are (the oldest due
//!   period close and charge, one index lookup each).
//!
//! Every implementation shares one transaction type (the engine's `Tx`,
//! through `SqlStore::write`), so a write that crosses aggregates (a new
//! tenant's first subscription, a plan transition lowering the billing due
//! date, an audit entry) still commits once. Callers hold one handle, `Arc<dyn Store>`, and bring the methods
//! into scope with `use tollgate_store::prelude::*`.

use crate::{NewUsageAlert, UsageAlert};
use jiff::Timestamp;
use tollgate_domain::dunning::Suspension;
use tollgate_domain::ids::{InvoiceName, PlanName, TenantId};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};
use tollgate_domain::metering::{Bucket, BucketKey, ObjectKey, ObjectUsage, UsageEvent};
use tollgate_domain::names::Name;
use tollgate_domain::payment::PaymentMethod;
use tollgate_domain::quota::QuotaObject;
use tollgate_domain::rating::TaxTreatment;
use tollgate_domain::subscription::{AddonSpan, Subscription};
use tollgate_domain::tenant::{Namespace, Tenant};
use tollgate_domain::token::{ApiToken, OperatorToken};
use tollgate_domain::transition::PlanTransition;

use crate::{
    Actor, Aggregations, AppliedCoupon, AttemptRecorded, AuditEntry, BillingDue, BucketFilter, CatalogMove,
    ChargeRecord, CouponDef, DeliveryAttempt, DeliveryJob, Dispute, DistinctBy, DistinctKey, EndpointScope,
    EventRetention, LeasedTransition, NewOperatorToken, NewTenant, NewToken, NewWebhookEndpoint,
    PaymentChange, PoolStats, RefundRecord, RefundStart, ReplayStats, Result, RoundEnd, StoredCatalog,
    StoredInvoice, TransitionFilter, TransitionOutcome, UsageChange, UsageCount, UsageFloor, UsageOutcome,
    WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookQueue,
};

/// Persistence for everything Tollgate keeps: every aggregate's store. The
/// one handle callers hold is `Arc<dyn Store>`; anything that implements all
/// the aggregate traits is a `Store`.
pub trait Store:
    TenancyStore
    + QuotaStore
    + CatalogStore
    + BillingStore
    + MeteringStore
    + CouponStore
    + InvoicingStore
    + DunningStore
    + AuditStore
    + WebhookStore
    + AlertStore
    + CreditStore
    + ConsoleStore
    + HealthStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: TenancyStore
        + QuotaStore
        + CatalogStore
        + BillingStore
        + MeteringStore
        + CouponStore
        + InvoicingStore
        + DunningStore
        + AuditStore
        + WebhookStore
        + AlertStore
        + CreditStore
        + ConsoleStore
        + HealthStore
        + Send
        + Sync
        + 'static
{
}

/// Tenants, their namespaces, API tokens and operator tokens.
#[async_trait::async_trait]
pub trait TenancyStore: Send + Sync {
    /// Creates a tenant, its `system` namespace and its first subscription;
    /// its billing due date is the epoch (worked out by the next period close).
    async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    async fn tenants(&self) -> Result<Vec<Tenant>>;
    /// Sets the currency a tenant is invoiced in from now on, audited
    /// `tenant.currency`; refused (`CURRENCY_LOCKED`, naming them) while
    /// any of its invoices is ISSUED or OVERDUE, checked under the tenant's
    /// lock. Returns the tenant after.
    async fn set_tenant_currency(
        &self,
        tenant_id: &TenantId,
        currency: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Tenant>;
    /// The catalog versions of tenants without a currency (created before
    /// currencies, or by an older Tollgate sharing the database).
    async fn unpinned_currency_versions(&self) -> Result<Vec<i64>>;
    /// Gives the tenants on `catalog_version` without a currency that one
    /// (the version's first); returns how many.
    async fn pin_tenant_currencies(&self, catalog_version: i64, currency: &str) -> Result<u64>;

    async fn create_namespace(
        &self,
        tenant_id: &TenantId,
        name: &Name,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Namespace>;
    async fn namespaces(&self, tenant_id: &TenantId) -> Result<Vec<Namespace>>;
    async fn namespace_exists(&self, tenant_id: &TenantId, name: &str) -> Result<bool>;

    /// Creates a token; every scoped namespace must exist.
    async fn create_token(&self, new: &NewToken) -> Result<ApiToken>;
    /// Finds a token by the digest of its secret, whatever its state, with its
    /// tenant.
    async fn token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<(ApiToken, Tenant)>>;
    async fn tokens(&self, tenant_id: &TenantId) -> Result<Vec<ApiToken>>;
    /// Revokes a token of the tenant (by id); revoking twice is fine.
    async fn revoke_token(
        &self,
        tenant_id: &TenantId,
        token_id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ApiToken>;

    /// Stores a named operator token (audited); `AlreadyExists` if a live
    /// token has the name.
    async fn create_operator_token(&self, new: &NewOperatorToken) -> Result<OperatorToken>;
    /// The operator token with this secret digest, revoked or not.
    async fn operator_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<OperatorToken>>;
    /// Every operator token (revoked ones too), oldest first.
    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>>;
    /// Revokes the live operator token with this name (audited).
    async fn revoke_operator_token(
        &self,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<OperatorToken>;
}

/// Quota objects, usage counts and their changes, and the idempotency
/// records of those changes.
#[async_trait::async_trait]
pub trait QuotaStore: Send + Sync {
    /// Stores a new quota object; `AlreadyExists` if the name is taken.
    async fn insert_quota(&self, tenant_id: &TenantId, quota: &QuotaObject, actor: Actor<'_>) -> Result<()>;
    /// Replaces metadata and spec of an existing quota object, keeping its
    /// uid, creation time and creator; returns the stored object.
    async fn replace_quota(
        &self,
        tenant_id: &TenantId,
        quota: &QuotaObject,
        actor: Actor<'_>,
    ) -> Result<QuotaObject>;
    async fn quota(&self, tenant_id: &TenantId, namespace: &str, name: &str) -> Result<Option<QuotaObject>>;
    async fn quotas(&self, tenant_id: &TenantId, namespace: &str) -> Result<Vec<QuotaObject>>;
    async fn delete_quota(
        &self,
        tenant_id: &TenantId,
        namespace: &str,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;

    /// Current usage of every key the tenant has used.
    async fn usage(&self, tenant_id: &TenantId) -> Result<Vec<UsageCount>>;
    /// Applies a usage change atomically against the effective limit.
    async fn change_usage(&self, change: &UsageChange<'_>) -> Result<UsageOutcome>;

    /// Forgets idempotency records of quota requests made before `before`,
    /// at most `limit` of them; returns how many.
    async fn prune_quota_requests(&self, before: Timestamp, limit: u32) -> Result<u64>;
}

/// Published catalog versions.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync {
    /// Publishes the built-in catalog on a new database; idempotent.
    async fn bootstrap(&self, now: Timestamp) -> Result<()>;

    /// Tenants without a plan (created by a Tollgate from before plans), with
    /// when each was created, oldest first.
    async fn planless_tenants(&self) -> Result<Vec<(TenantId, Timestamp)>>;

    /// Gives a planless tenant its first subscription (`sub.tenant_id`), the
    /// tenant's plan and catalog version, and a billing due date of the epoch,
    /// audited; `false` (nothing changed) if the tenant has a plan by now.
    async fn adopt_planless_tenant(&self, sub: &Subscription, now: Timestamp) -> Result<bool>;

    /// Stores a catalog (already validated) as the next version.
    async fn publish_catalog(
        &self,
        source: &str,
        source_name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<i64>;
    /// A published catalog; `None` means the latest.
    async fn catalog(&self, version: Option<i64>) -> Result<Option<StoredCatalog>>;
    /// Every published version, oldest first.
    async fn catalogs(&self) -> Result<Vec<StoredCatalog>>;
    async fn latest_catalog_version(&self) -> Result<Option<i64>>;

    /// Schedules moves to newer catalog versions, all or none, each replacing
    /// the tenant's pending one, audited. A tenant whose current subscription
    /// is no longer the move's is a `Conflict` (`PLAN_CHANGED`).
    async fn schedule_catalog_moves(
        &self,
        moves: &[CatalogMove],
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;
    /// Cancels a tenant's pending move, audited; `false` if it had none.
    async fn cancel_catalog_move(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Pending moves, soonest first: every tenant's, or one tenant's.
    async fn catalog_moves(&self, tenant_id: Option<&TenantId>) -> Result<Vec<CatalogMove>>;
    /// Moves whose time has come by `now`, soonest first, at most `limit`.
    async fn due_catalog_moves(&self, now: Timestamp, limit: i64) -> Result<Vec<CatalogMove>>;
    /// Makes `mv` take effect, atomically: the subscription it replaces ends
    /// at `mv.effective_at`, `subscription` (the same plan at the new version,
    /// starting then) begins, the tenant is on the new version, the period
    /// that ended is due for period close, and the move is gone, audited.
    /// `false` (and the move is dropped) when the tenant has another
    /// subscription by now; `false` when the move was cancelled or replaced.
    async fn apply_catalog_move(
        &self,
        mv: &CatalogMove,
        subscription: &Subscription,
        now: Timestamp,
    ) -> Result<bool>;
}

/// What a tenant is subscribed to and pays with: subscriptions, add-ons,
/// payment methods and plan transitions.
#[async_trait::async_trait]
pub trait BillingStore: Send + Sync {
    /// The tenant's subscriptions, newest first (the current one first).
    async fn subscriptions(&self, tenant_id: &TenantId) -> Result<Vec<Subscription>>;

    /// Add-ons the tenant subscribed to (not those its plan includes).
    async fn addons(&self, tenant_id: &TenantId) -> Result<Vec<String>>;
    /// Subscribes or unsubscribes an add-on; returns whether anything changed.
    /// `plan` is the plan the change was checked against: if the tenant is on
    /// another one by now (a transition completed meanwhile), `Conflict`.
    async fn set_addon(
        &self,
        tenant_id: &TenantId,
        plan: &PlanName,
        addon: &str,
        subscribed: bool,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool>;

    /// How the tenant is taxed (`Standard` unless an operator said otherwise).
    async fn tax_treatment(&self, tenant_id: &TenantId) -> Result<TaxTreatment>;
    /// Sets how the tenant is taxed, audited (`tenant.tax`).
    async fn set_tax_treatment(
        &self,
        tenant_id: &TenantId,
        treatment: &TaxTreatment,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;

    /// When the tenant had each add-on it subscribed to (spans in add-on,
    /// then time order), for billing priced add-ons by the time subscribed.
    async fn addon_history(&self, tenant_id: &TenantId) -> Result<Vec<AddonSpan>>;

    /// The tenant's payment methods in creation order.
    async fn payment_methods(&self, tenant_id: &TenantId) -> Result<Vec<PaymentMethod>>;
    /// Applies a payment-method change under the role rules, atomically
    /// (never two primaries, even under concurrent calls); returns the methods after.
    async fn change_payment_methods(
        &self,
        tenant_id: &TenantId,
        change: &PaymentChange,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Vec<PaymentMethod>>;

    /// The payment provider's customer of the tenant (a Stripe Customer), if
    /// one was made.
    async fn provider_customer(&self, tenant_id: &TenantId, provider: &str) -> Result<Option<String>>;
    /// Stores the provider's customer of the tenant unless it has one
    /// already; returns the one stored (the first, when two were made at once).
    async fn add_provider_customer(
        &self,
        tenant_id: &TenantId,
        provider: &str,
        customer: &str,
        now: Timestamp,
    ) -> Result<String>;

    /// Records a new transition; `Conflict` if the tenant has an open one.
    async fn create_transition(&self, transition: &PlanTransition, actor: Actor<'_>) -> Result<()>;
    async fn transition(&self, id: &str) -> Result<Option<PlanTransition>>;
    async fn transitions(&self, filter: &TransitionFilter) -> Result<Vec<PlanTransition>>;
    /// Approves (→ CREATING) or rejects (→ FAILED) a transition waiting for approval.
    async fn decide_transition(
        &self,
        id: &str,
        approve: bool,
        reason: Option<&str>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition>;
    /// Leases the oldest CREATING transition that no live lease holds,
    /// counting the attempt.
    async fn claim_transition(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<LeasedTransition>>;
    /// Gives a leased transition back after an attempt that could not
    /// finish: records why, and leaves it alone until `retry_at`.
    async fn retry_transition(&self, id: &str, owner: &str, error: &str, retry_at: Timestamp) -> Result<()>;
    /// The operator ends an open transition (CREATING or
    /// WAITING_FOR_APPROVAL) as FAILED with `reason`, whoever holds it.
    async fn cancel_transition(
        &self,
        id: &str,
        reason: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition>;
    /// Applies a transition's outcome and marks it FINISHED, all in one
    /// transaction; `Conflict` if `owner` no longer holds it. The closed
    /// subscription's last period now ends at `outcome.now`: the tenant's
    /// billing due date is lowered to it if later.
    async fn complete_transition(&self, outcome: &TransitionOutcome) -> Result<()>;
    /// Marks a leased transition FAILED with a reason.
    async fn fail_transition(&self, id: &str, owner: &str, reason: &str, now: Timestamp) -> Result<()>;
}

/// Usage events and the hourly and daily rollups kept from them.
#[async_trait::async_trait]
pub trait MeteringStore: Send + Sync {
    /// Stores usage events and folds the new ones into the hourly buckets,
    /// in one transaction. An id stored before (or earlier in the batch) is a
    /// duplicate and counts nothing. Returns, per event, whether it was new.
    /// `aggregation` gives each meter's aggregation.
    async fn ingest(
        &self,
        tenant_id: &TenantId,
        events: &[UsageEvent],
        aggregation: &Aggregations,
        now: Timestamp,
    ) -> Result<Vec<bool>>;
    /// Hourly buckets, ordered by hour then key.
    async fn buckets(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(BucketKey, Bucket)>>;
    /// Each object's usage over the filter's bucket hours, ordered by object;
    /// read from daily summaries for whole days, hourly buckets for the rest.
    async fn object_usage(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(ObjectKey, ObjectUsage)>>;
    /// Each object's usage per UTC day over the filter's bucket hours,
    /// ordered by day then object: read from daily summaries for whole days,
    /// hourly buckets for the edge hours (each under its own day).
    async fn daily_usage(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(Timestamp, ObjectKey, ObjectUsage)>>;
    /// Keeps the distinct values of unique-count meters per period for the
    /// given periods (bucket hours `[start, end)`, which no event can reach
    /// any more): moves the tenant's hourly rows in them to per-period rows,
    /// in one transaction; idempotent. Returns the hourly rows moved.
    async fn compact_distinct(&self, tenant_id: &TenantId, periods: &[(Timestamp, Timestamp)])
    -> Result<u64>;
    /// Unique-count meters over the filter's hours: how many distinct values
    /// of each one's property were seen, per metric, object or hour (`by`).
    async fn distinct_counts(
        &self,
        tenant_id: &TenantId,
        filter: &BucketFilter<'_>,
        by: DistinctBy,
    ) -> Result<Vec<(DistinctKey, i64)>>;
    /// The start of the tenant's latest finalized period and how far its raw
    /// events were deleted: what admits an event.
    async fn usage_floor(&self, tenant_id: &TenantId) -> Result<UsageFloor>;
    /// Every tenant with what the raw-event retention job needs to decide
    /// whether it has events to delete (one query; each tenant's oldest
    /// event is one index lookup).
    async fn event_retention(&self) -> Result<Vec<EventRetention>>;
    /// Deletes at most `limit` of the tenant's raw events before `before`,
    /// oldest first, in one short transaction, which first records `before`
    /// as the tenant's `events_purged_before` (never lowering it). The caller
    /// guarantees no event before `before` can be admitted any more: once
    /// recorded, ingestion refuses them and a replay keeps the hours before
    /// it as they are. Returns how many went.
    async fn purge_events(&self, tenant_id: &TenantId, before: Timestamp, limit: u32) -> Result<u64>;
    /// Rebuilds a tenant's buckets from its raw events, in one transaction,
    /// audited as `usage.replay` by `actor` at `now`. Hours before the
    /// tenant's `events_purged_before` keep their rollups (their raw events
    /// are gone).
    async fn replay(
        &self,
        tenant_id: &TenantId,
        aggregation: &Aggregations,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ReplayStats>;
}

/// Coupon definitions and the coupons applied to tenants.
#[async_trait::async_trait]
pub trait CouponStore: Send + Sync {
    async fn create_coupon(&self, coupon: &CouponDef, actor: Actor<'_>, now: Timestamp) -> Result<()>;
    async fn coupons(&self) -> Result<Vec<CouponDef>>;
    async fn apply_coupon(
        &self,
        tenant_id: &TenantId,
        code: &str,
        valid_from: Timestamp,
        valid_until: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;
    async fn tenant_coupons(&self, tenant_id: &TenantId) -> Result<Vec<AppliedCoupon>>;
}

/// Web console sessions.
#[async_trait::async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn create_console_session(&self, session: &crate::ConsoleSession) -> Result<()>;
    /// The session with this id digest, unless it has ended at `now`.
    async fn console_session(&self, id_digest: &str, now: Timestamp)
    -> Result<Option<crate::ConsoleSession>>;
    /// Ends a session (sign-out); `false` when there was none.
    async fn delete_console_session(&self, id_digest: &str) -> Result<bool>;
    /// Forgets at most `limit` sessions that ended before `now`.
    async fn prune_console_sessions(&self, now: Timestamp, limit: u32) -> Result<u64>;
}

/// Prepaid credits: grants, their append-only ledger, the low-balance
/// threshold. Applying credits to an invoice happens inside
/// [`InvoicingStore::finalize_invoice`]; giving them back inside the
/// invoice's cancellation and full refund.
#[async_trait::async_trait]
pub trait CreditStore: Send + Sync {
    /// Grants credits (its `grant` entry written with it); audited
    /// `credits.grant`. Conflict when the tenant already holds
    /// [`credits::MAX_OPEN_GRANTS`](tollgate_domain::credits::MAX_OPEN_GRANTS)
    /// grants with something left; NotFound without the tenant.
    async fn grant_credits(
        &self,
        tenant_id: &TenantId,
        grant: &tollgate_domain::credits::NewGrant,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<tollgate_domain::credits::Grant>;
    /// Every grant of the tenant, oldest first.
    async fn credit_grants(&self, tenant_id: &TenantId) -> Result<Vec<tollgate_domain::credits::Grant>>;
    /// The grants with something left (what an invoice may be paid with),
    /// oldest first.
    async fn open_credit_grants(&self, tenant_id: &TenantId) -> Result<Vec<tollgate_domain::credits::Grant>>;
    /// The tenant's ledger, newest first: at most `limit` entries older than
    /// the entry `before` (its `seq`).
    async fn credit_ledger(
        &self,
        tenant_id: &TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<tollgate_domain::credits::Entry>>;
    /// Takes back `amount_cents` (all that is left when `None`) of a grant:
    /// a `reverse` entry; audited `credits.reverse`. NotFound without the
    /// grant; Conflict when it holds less.
    async fn reverse_credits(
        &self,
        tenant_id: &TenantId,
        grant_id: &str,
        amount_cents: Option<i64>,
        reason: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<tollgate_domain::credits::Grant>;
    /// The credits applied to the finalized invoice of a subscription's
    /// billing period (0 when none, or when it is not finalized).
    async fn period_credits(
        &self,
        tenant_id: &TenantId,
        subscription_id: &str,
        period_index: u32,
    ) -> Result<i64>;
    /// Writes off what is left of at most `limit` grants expired at `now`
    /// (an `expire` entry each); returns how many.
    async fn expire_credits(&self, now: Timestamp, limit: u32) -> Result<usize>;
    async fn low_balance_threshold(&self, tenant_id: &TenantId) -> Result<Option<i64>>;
    /// Sets (or clears) the threshold below which `credits.low_balance`
    /// fires; audited `credits.settings`.
    async fn set_low_balance_threshold(
        &self,
        tenant_id: &TenantId,
        threshold_cents: Option<i64>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;
}

/// Finalized invoices, their charge attempts and refunds, and when each
/// tenant next has a period to close.
#[async_trait::async_trait]
pub trait InvoicingStore: Send + Sync {
    /// Tenants due for period close by `before`: their due date is at or
    /// before it. Earliest first, then by tenant id; only those after `after`
    /// in that order (the last of the previous page), at most `limit`.
    async fn due_tenants(
        &self,
        before: Timestamp,
        after: Option<&BillingDue>,
        limit: u32,
    ) -> Result<Vec<BillingDue>>;
    /// A tenant's due date, if it has one.
    async fn billing_due(&self, tenant_id: &TenantId) -> Result<Option<BillingDue>>;
    /// Moves a tenant's due date to `at` if its row is still as `due` read
    /// it (same version); returns whether it did. A change in between (a plan
    /// transition lowering it, another replica's close) is kept instead.
    async fn set_billing_due(&self, due: &BillingDue, at: Timestamp) -> Result<bool>;

    /// Stores a finalized invoice; `false` (and nothing changes) if its
    /// period already has one, so that several replicas closing the same
    /// period produce one invoice. `next_charge_at` is when to charge it
    /// (`None`: nothing to charge).
    async fn finalize_invoice(
        &self,
        tenant_id: &TenantId,
        invoice: &Invoice,
        next_charge_at: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool>;
    /// A tenant's finalized invoices, newest period first.
    async fn invoices(&self, tenant_id: &TenantId) -> Result<Vec<StoredInvoice>>;
    /// Every tenant's invoices (with `status` only those), newest period
    /// first, then by tenant and name: `limit` of them after the first
    /// `offset`.
    async fn invoice_page(
        &self,
        status: Option<InvoiceStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<StoredInvoice>>;
    /// What each tenant owes: the sum of its unpaid (ISSUED or OVERDUE)
    /// invoices by currency, for tenants that owe something.
    async fn unpaid_totals(&self) -> Result<Vec<(TenantId, String, i64)>>;
    async fn invoice(&self, tenant_id: &TenantId, name: &InvoiceName) -> Result<Option<StoredInvoice>>;
    /// The start of the latest finalized invoice's period: usage before it
    /// can no longer be billed.
    async fn latest_invoice_start(&self, tenant_id: &TenantId) -> Result<Option<Timestamp>>;
    /// An invoice's charge attempts, oldest first.
    async fn invoice_charges(&self, tenant_id: &TenantId, invoice: &InvoiceName)
    -> Result<Vec<ChargeRecord>>;
    /// Leases an ISSUED invoice whose charge is due at `now` (or one with an
    /// unsettled attempt) that no live lease holds.
    async fn claim_charge(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<StoredInvoice>>;
    /// Records an attempt before the provider is asked (outcome PENDING);
    /// `Conflict` if `owner` no longer holds the invoice's lease.
    async fn begin_charge(&self, tenant_id: &TenantId, owner: &str, charge: &ChargeRecord) -> Result<()>;
    /// Writes the provider's reference of a PENDING attempt's payment, made
    /// before any money moves (a Stripe PaymentIntent), so that whoever
    /// resumes the attempt completes that payment instead of making another.
    /// `Conflict` if `owner` no longer holds the invoice's lease.
    async fn set_charge_reference(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        charge: &ChargeRecord,
        reference: &str,
    ) -> Result<()>;
    /// The charge attempt whose payment the provider knows by `reference`,
    /// with its tenant (a provider webhook names only the payment).
    async fn charge_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<(TenantId, ChargeRecord)>>;
    /// Leases one invoice for `owner` until `lease_until` (as `claim_charge`
    /// does for the next due one) if no live lease holds it; `None` when one
    /// does or there is no such invoice.
    async fn claim_invoice(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<StoredInvoice>>;
    /// Whether a provider webhook event was recorded as handled.
    async fn provider_event_seen(&self, provider: &str, event_id: &str) -> Result<bool>;
    /// Records a dispute of an invoice's charge with an audit entry, once per
    /// dispute id; returns whether it is new.
    async fn record_dispute(&self, tenant_id: &TenantId, dispute: &Dispute, now: Timestamp) -> Result<bool>;
    /// An invoice's disputes, oldest first.
    async fn invoice_disputes(&self, tenant_id: &TenantId, invoice: &InvoiceName) -> Result<Vec<Dispute>>;
    /// Records a provider webhook event as handled; `false` when it was
    /// recorded before (a redelivery), and then nothing changes.
    async fn record_provider_event(
        &self,
        provider: &str,
        event_id: &str,
        event_type: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Settles a PENDING attempt. With `invoice_status` (the caller's
    /// decision, PAID after a success) the invoice, if still ISSUED or
    /// OVERDUE, moves to it in the same transaction and its charging ends (no
    /// next round, lease released). `Conflict` if `owner` no longer holds the
    /// lease.
    async fn settle_charge(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        charge: &ChargeRecord,
        invoice_status: Option<InvoiceStatus>,
        now: Timestamp,
    ) -> Result<()>;
    /// Ends an unsuccessful charge round of an ISSUED invoice as the caller
    /// decided (`end`: rounds done, the status, the next round); a status
    /// change is audited. Releases the lease; `Conflict` if `owner` no
    /// longer holds it.
    async fn end_charge_round(
        &self,
        tenant_id: &TenantId,
        invoice: &InvoiceName,
        owner: &str,
        end: &RoundEnd,
        now: Timestamp,
    ) -> Result<()>;
    /// Releases a lease without changing anything (e.g. provider unavailable).
    async fn release_charge(&self, tenant_id: &TenantId, invoice: &InvoiceName, owner: &str) -> Result<()>;
    /// An invoice's refunds (its credit notes), oldest first.
    async fn invoice_refunds(&self, tenant_id: &TenantId, invoice: &InvoiceName)
    -> Result<Vec<RefundRecord>>;
    /// A tenant's credit notes, every invoice's, newest first.
    async fn credit_notes(&self, tenant_id: &TenantId) -> Result<Vec<RefundRecord>>;
    /// One of a tenant's credit notes, by name.
    async fn credit_note(&self, tenant_id: &TenantId, name: &str) -> Result<Option<RefundRecord>>;
    /// Records a refund before the provider is asked, in one transaction:
    /// takes the invoice's lease (the one charging takes) for `owner` until
    /// `lease_until`, then
    /// - [`RefundStart::New`]: numbers a new credit note (the tenant's next
    ///   number, named after the month of `started_at`), keys it
    ///   `refund/<charge key>/<credit note>` and writes it PENDING;
    /// - [`RefundStart::Resume`]: keeps the PENDING one with that key as it
    ///   was recorded.
    ///
    /// `Conflict`, and nothing changes, while anyone holds the lease at
    /// `now`, when another refund of the invoice is PENDING, when the
    /// invoice's status is not one of `from` (REFUNDED: nothing remains), when
    /// the refunded charge is not SUCCEEDED with `reference`, or when the
    /// amount is more than what remains of that charge: what it took less its
    /// SUCCEEDED and PENDING refunds. Returns the refund as stored.
    async fn begin_refund(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        refund: &RefundStart,
        from: &[InvoiceStatus],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<RefundRecord>;
    /// Settles a PENDING refund with `refund.state` (SUCCEEDED or FAILED),
    /// `refund.failure` and `refund.refund_reference`, in one transaction
    /// that first checks `owner` still holds the lease (`Conflict`
    /// otherwise). Once the invoice's SUCCEEDED refunds add up to what its
    /// charge took, the charge becomes REFUNDED and the invoice REFUNDED;
    /// before that (a partial refund) both stay as they are. Either way it is
    /// audited as `refund.actor` and the lease released. Returns the invoice
    /// after.
    async fn settle_refund(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        refund: &RefundRecord,
        now: Timestamp,
    ) -> Result<StoredInvoice>;
    /// The operator's status change (cancel): allowed only from one of
    /// `from` (`Conflict` otherwise) and while no one holds the lease; stops
    /// charging. A refund is not a status change (it goes through the payment
    /// provider: `begin_refund`, `settle_refund`): `to` REFUNDED is refused.
    /// Returns the invoice after.
    async fn set_invoice_status(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        from: &[InvoiceStatus],
        to: InvoiceStatus,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<StoredInvoice>;
    /// The operator's "charge now": an ISSUED or OVERDUE invoice that no one
    /// holds becomes ISSUED and due at `now`, so that the next charge round
    /// (one more attempt, counted like the others) takes it; audited.
    /// `Conflict` from any other status or while leased.
    async fn schedule_charge(
        &self,
        tenant_id: &TenantId,
        name: &InvoiceName,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<StoredInvoice>;
}

/// Dunning: tenants suspended for invoices left unpaid (the suspension on the
/// tenant's row, decided from the invoices' `overdue_at`).
///
/// An invoice *counts* while it is unpaid (ISSUED or OVERDUE), has been
/// OVERDUE (`overdue_at` set when its last scheduled round failed, kept if
/// it is charged again), and went OVERDUE after the tenant's last
/// reinstatement by hand. A tenant is suspended for counting invoices OVERDUE
/// since a moment; paying or cancelling its last counting invoice lifts the
/// suspension in that same transaction (`settle_charge`, `set_invoice_status`).
#[async_trait::async_trait]
pub trait DunningStore: Send + Sync {
    /// Tenants that are not suspended and have a counting invoice OVERDUE
    /// since `overdue_before` or earlier, by tenant id, only those after
    /// `after`, at most `limit`.
    async fn suspension_candidates(
        &self,
        overdue_before: Timestamp,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantId>>;
    /// Suspends the tenant for its counting invoices OVERDUE since
    /// `overdue_before` or earlier, checked again under the tenant's lock;
    /// audited as `tenant.suspended` with the invoices. `None`, and nothing
    /// changes, when it is suspended already or has no such invoice (paid
    /// meanwhile).
    async fn suspend_tenant(
        &self,
        tenant_id: &TenantId,
        overdue_before: Timestamp,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Option<Suspension>>;
    /// The operator lifts a suspension by hand, audited as
    /// `tenant.reinstated`: the invoices OVERDUE by `now` no longer count
    /// (the next invoice to go OVERDUE does). `Conflict`
    /// (`TENANT_NOT_SUSPENDED`) when it is not suspended. Returns the tenant after.
    async fn reinstate_tenant(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Tenant>;
    /// The tenant's counting invoices, oldest period first.
    async fn overdue_invoices(&self, tenant_id: &TenantId) -> Result<Vec<StoredInvoice>>;
    /// Charges the tenant's unpaid invoices again (after a payment-method
    /// change): each OVERDUE invoice, and each ISSUED one waiting for a later
    /// round, that no one holds and that has no unsettled attempt becomes
    /// ISSUED and due at `now`, audited as `invoice.charge_scheduled` by
    /// `actor`, as the operator's charge-now does; the others are left as
    /// they are. One transaction; returns the names of those it scheduled.
    async fn schedule_unpaid_charges(
        &self,
        tenant_id: &TenantId,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Vec<InvoiceName>>;
}

/// The audit trail, and secrets shared by replicas.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// The audit trail, newest first; `None` for every tenant.
    async fn audit(&self, tenant_id: Option<&TenantId>, limit: u32) -> Result<Vec<AuditEntry>>;

    /// A secret shared by replicas, created on first use.
    async fn secret(&self, name: &str) -> Result<String>;
}

/// Webhooks out: endpoints, the outbox's dispatch and leased deliveries.
///
/// Every method taking an [`EndpointScope`] finds only what the scope sees:
/// a tenant's scope never reads or changes another tenant's endpoint, or
/// the operator's (`NotFound`, as if it did not exist).
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates an endpoint, audited as `webhook_endpoint.create`.
    /// `Conflict` (`WEBHOOK_ENDPOINT_LIMIT`) when its owner has `limit`
    /// endpoints already.
    async fn create_webhook_endpoint(
        &self,
        e: &NewWebhookEndpoint,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint>;
    /// The endpoints the scope sees, oldest first; the operator may ask for
    /// one tenant's (`tenant`), which are that tenant's own.
    async fn webhook_endpoints(
        &self,
        scope: &EndpointScope,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookEndpoint>>;
    async fn webhook_endpoint(&self, scope: &EndpointScope, id: &str) -> Result<Option<WebhookEndpoint>>;
    /// Deletes an endpoint and its deliveries, audited. `NotFound`.
    async fn delete_webhook_endpoint(
        &self,
        scope: &EndpointScope,
        id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;
    /// Replaces the secret; the old one keeps signing until
    /// `previous_until`. Audited (without the secrets). `NotFound`.
    async fn rotate_webhook_secret(
        &self,
        scope: &EndpointScope,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint>;
    /// Enables a disabled endpoint again (its pending deliveries resume, due
    /// now), audited. `NotFound`.
    async fn enable_webhook_endpoint(
        &self,
        scope: &EndpointScope,
        id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint>;
    /// An endpoint's deliveries, newest first, at most `limit`. `NotFound`
    /// for an endpoint the scope does not see.
    async fn webhook_deliveries(
        &self,
        scope: &EndpointScope,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Delivers a delivery's event to its endpoint again: a new delivery
    /// (same event, same `webhook-id`), due now, after the endpoint's
    /// deliveries made before it. Audited. `NotFound`.
    async fn redeliver_webhook(
        &self,
        scope: &EndpointScope,
        endpoint_id: &str,
        delivery_id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookDelivery>;
    /// Events not yet dispatched, oldest first, at most `limit`.
    async fn undispatched_webhook_events(&self, limit: u32) -> Result<Vec<WebhookEvent>>;
    /// Dispatches an event: writes its data and a PENDING delivery, due at
    /// `now`, for each enabled endpoint that wants it (the tenant's own and
    /// the operator's). Once: `None` when it was dispatched already (by
    /// another replica); else how many deliveries were made.
    async fn dispatch_webhook_event(&self, seq: i64, data: &str, now: Timestamp) -> Result<Option<usize>>;
    /// Leases up to `limit` due deliveries for `owner` until `lease_until`:
    /// of each enabled endpoint only its oldest PENDING delivery (so that
    /// an endpoint receives its events in order), and only if it is due and
    /// no live lease holds it.
    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>>;
    /// Records an attempt of a delivery `owner` holds, and releases it.
    /// A failure disables the endpoint when it has failed since
    /// `disable_if_failing_since` (audited `webhook_endpoint.disabled`).
    /// `Conflict` when the lease was lost (the attempt is not recorded;
    /// another worker's attempt is).
    async fn record_webhook_attempt(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &DeliveryAttempt,
        now: Timestamp,
    ) -> Result<AttemptRecorded>;
    /// Undelivered work, for metrics.
    async fn webhook_queue(&self) -> Result<WebhookQueue>;
    /// Forgets up to `limit` events that were over before `before`:
    /// dispatched before it, with no PENDING delivery and none finished
    /// since; their deliveries go with them. Returns how many events went.
    async fn prune_webhook_events(&self, before: Timestamp, limit: u32) -> Result<u64>;
    /// A tenant's events, newest first (tests and the operator's view).
    async fn webhook_events(&self, tenant_id: &TenantId, limit: u32) -> Result<Vec<WebhookEvent>>;
}

/// Usage alerts.
#[async_trait::async_trait]
pub trait AlertStore: Send + Sync {
    /// Creates an alert, audited `alert.create`, pending evaluation.
    /// `AlreadyExists` (`ALERT_EXISTS`) for a name the tenant uses;
    /// `Conflict` (`ALERT_LIMIT`) when it has `limit` alerts already.
    async fn create_alert(&self, a: &NewUsageAlert, actor: Actor<'_>, now: Timestamp) -> Result<UsageAlert>;
    /// The tenant's alerts, by name.
    async fn alerts(&self, tenant_id: &TenantId) -> Result<Vec<UsageAlert>>;
    /// Deletes an alert, audited. `NotFound`.
    async fn delete_alert(
        &self,
        tenant_id: &TenantId,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()>;
    /// Tenants with alerts pending evaluation (usage ingested since), at most `limit`.
    async fn tenants_with_pending_alerts(&self, limit: u32) -> Result<Vec<TenantId>>;
    /// Records that the alert fired in the period starting `period_start`
    /// (seeing `value`) and emits `usage.alert_triggered` with `data`, in one
    /// transaction; once per period: `false`, and nothing changes, when it
    /// fired in that period already.
    async fn trigger_alert(
        &self,
        tenant_id: &TenantId,
        id: &str,
        period_start: Timestamp,
        value: rust_decimal::Decimal,
        data: serde_json::Value,
        now: Timestamp,
    ) -> Result<bool>;
    /// The alert was evaluated having read `ingested` (what
    /// [`UsageAlert::ingested`] was): batches ingested since stay pending.
    async fn alert_evaluated(&self, tenant_id: &TenantId, id: &str, ingested: i64) -> Result<()>;
}

/// Which engine, and whether it answers and takes writes.
#[async_trait::async_trait]
pub trait HealthStore: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Whether the database can take writes now: a trivial write commits,
    /// there is room to grow, and no write failed with a fault just now.
    async fn ready(&self, now: Timestamp) -> Result<()>;

    /// The connection pools as they are now (no query: what the pools
    /// count), for the metrics.
    fn pools(&self) -> Vec<PoolStats>;

    /// The earliest billing period end that period close should have
    /// finalized by now: the smallest known due date (see [`BillingDue`];
    /// the epoch, "not known yet", is left out) at or before `before`
    /// (`now` less the invoice grace); `None` when no tenant is due. One
    /// index lookup (`billing_due_at`), cheap enough for every job tick.
    async fn oldest_due_period(&self, before: Timestamp) -> Result<Option<Timestamp>>;

    /// When the earliest charge round due at `now` came due: the smallest
    /// `next_charge_at` of an ISSUED invoice at or before `now` (charging
    /// leases and clears it as rounds end); `None` when no charge is due.
    /// One index lookup (`invoices_due`).
    async fn oldest_due_charge(&self, now: Timestamp) -> Result<Option<Timestamp>>;
}
