//! Tollgate's storage: the [`Store`] trait (one trait per aggregate, see
//! `aggregates.rs`, brought into scope by [`prelude`]) and its two engines.
//!
//! Both engines run the same SQL (`sql.rs`, compiled once per backend with that
//! backend's concrete sqlx types); only connection setup, migrations and the
//! statement that opens a write transaction differ. One conformance suite
//! (`tests/conformance`) runs against both.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use tollgate_domain::access::{NamespaceScope, Role};
use tollgate_domain::contact::Contact;
use tollgate_domain::credit_note::CreditNoteLine;
use tollgate_domain::ids::{InvoiceName, RequestId, TenantId};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};
use tollgate_domain::names::Name;
use tollgate_domain::payment::{PaymentMethod, PaymentRole, RoleChange};
use tollgate_domain::quota::{KeyFamily, Limit, QuotaSpec};
use tollgate_domain::rating::Discount;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::TenantType;
use tollgate_domain::transition::{AddonChange, PlanTransition, TransitionState};
use tollgate_domain::{Error, ErrorKind, Reason};

mod aggregates;
mod cols;
pub mod fault;
pub mod faults;
mod health;
mod migrations;
pub mod postgres;
pub mod records;
pub mod sqlite;

pub use aggregates::{
    AlertStore, AuditStore, BillingStore, CatalogStore, ConsoleStore, CouponStore, CreditStore, DunningStore,
    HealthStore, InvoicingStore, MeteringStore, QuotaStore, Store, TenancyStore, WebhookStore,
};

/// The store's traits, for callers: `use tollgate_store::prelude::*` brings
/// every aggregate's methods into scope on an `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::aggregates::{
        AlertStore, AuditStore, BillingStore, CatalogStore, ConsoleStore, CouponStore, CreditStore,
        DunningStore, HealthStore, InvoicingStore, MeteringStore, QuotaStore, Store, TenancyStore,
        WebhookStore,
    };
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    /// An object with this name already exists; the reason names which kind
    /// of object (a case of [`ErrorKind::AlreadyExists`]).
    #[error("{1}")]
    AlreadyExists(Reason, String),
    /// The request conflicts with stored state (e.g. a reused request id); the
    /// reason says how (a case of [`ErrorKind::FailedPrecondition`]).
    #[error("{1}")]
    Conflict(Reason, String),
    /// Stored data that the code cannot read back: a bug or a manual edit.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database cannot take the request now (unreachable, full, an I/O
    /// error, locked past the busy timeout, a terminated connection): nothing
    /// was changed, and the same request may succeed once the cause is gone.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// An error of an inline SQLite read (see `sqlite::Inline`) that is not
    /// transient.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database could not take the request (a fault that heals),
    /// as opposed to a refusal or a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if fault::is_transient(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Database(e)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if fault::sqlite_code_is_transient(f.extended_code) => {
                Self::Unavailable(e.to_string())
            }
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => Self::Corrupt(e.to_string()),
            _ => Self::Sqlite(e),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let (kind, reason) = match &e {
            StoreError::NotFound(_) => (ErrorKind::NotFound, None),
            StoreError::AlreadyExists(reason, _) => (ErrorKind::AlreadyExists, Some(*reason)),
            StoreError::Conflict(reason, _) => (ErrorKind::FailedPrecondition, Some(*reason)),
            StoreError::Unavailable(_) => (ErrorKind::Unavailable, None),
            StoreError::Corrupt(_)
            | StoreError::Database(_)
            | StoreError::Sqlite(_)
            | StoreError::Migrate(_) => (ErrorKind::Internal, None),
        };
        // Internal details are logged by whoever turns this into a response;
        // the message of user-facing kinds is already user-facing.
        let error = Error::new(kind, e.to_string());
        match reason {
            Some(reason) => error.with_reason(reason),
            None => error,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file `tollgate.db` in this directory (created if missing).
    SqliteDir(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// When SQLite considers a commit done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is flushed to disk (fsync of the write-ahead log) before
    /// it is acknowledged: an acknowledged write survives power loss.
    #[default]
    Full,
    /// The log is flushed only at checkpoints: an acknowledged write survives
    /// a crash of the process, but a power loss or an operating-system crash
    /// can lose the latest acknowledged writes (the database stays consistent).
    Normal,
}

impl Synchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// SQLite's durability mode (PostgreSQL keeps `synchronous_commit = on`).
    pub sqlite_synchronous: Synchronous,
    /// Faults for the writer to meet (tests only).
    pub faults: Option<Arc<faults::FaultPlan>>,
    /// Refuse to create a SQLite database that does not exist yet
    /// ([`StoreError::NotFound`] naming its absolute path): operator commands
    /// pointed at the wrong directory must not answer from a new, empty one.
    pub must_exist: bool,
}

/// A boxed future, as write jobs return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The names of the tenants among `ids`, each looked up once (listings that
/// name the tenant of every row). A tenant that no longer exists is absent.
pub async fn tenant_names(
    store: &dyn Store,
    ids: &[&TenantId],
) -> Result<std::collections::HashMap<String, String>> {
    let mut names = std::collections::HashMap::new();
    for &id in ids {
        if !names.contains_key(id.as_str())
            && let Some(t) = store.tenant(id).await?
        {
            names.insert(id.to_string(), t.name.to_string());
        }
    }
    Ok(names)
}

/// Opens the store at `location` with the default options (durable SQLite
/// commits); see [`open_with`].
pub async fn open(location: &Location) -> Result<Arc<dyn Store>> {
    open_with(location, StoreOptions::default()).await
}

/// Opens the store at `location`, brings its schema up to date and makes sure
/// a catalog is published (the built-in one, as version 1, on a new database)
/// and every tenant has a current subscription.
pub async fn open_with(location: &Location, options: StoreOptions) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match location {
        Location::SqliteDir(dir) => Arc::new(sqlite::SqlStore::open(dir, &options).await?),
        Location::Postgres(url) => Arc::new(postgres::SqlStore::open(url, &options).await?),
    };
    store.bootstrap(Timestamp::now()).await?;
    Ok(store)
}

/// A tenant to create with its first subscription.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: Name,
    pub tenant_type: TenantType,
    /// The ISO 4217 currency it is priced and invoiced in (one its catalog
    /// prices).
    pub currency: String,
    /// The first subscription (its `tenant_id` is ignored).
    pub subscription: Subscription,
    /// When the tenant starts (backdated to import usage history).
    pub now: Timestamp,
    /// When the tenant is created: the audit entry's time (`now` may be in
    /// the past).
    pub recorded_at: Timestamp,
    /// Who creates it, for the audit trail.
    pub actor: String,
}

/// Who made a change, as the audit trail records it.
pub type Actor<'a> = &'a str;

/// Who writes the credits ledger's automatic entries (an invoice paid,
/// an expiry).
pub const CREDITS_ACTOR: &str = "tollgate/credits";

/// A published catalog as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCatalog {
    pub version: i64,
    /// The TOML as published.
    pub source: String,
    pub source_name: String,
    pub published_at: Timestamp,
    pub published_by: String,
}

/// A tenant's move to a newer catalog version of the plan it is on,
/// scheduled by an operator to take effect at the start of a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogMove {
    pub tenant_id: TenantId,
    /// The subscription the move replaces; a plan transition in between
    /// (another subscription) drops the move.
    pub subscription_id: String,
    pub from_version: i64,
    pub catalog_version: i64,
    /// When the subscription at the new version starts: the end of the
    /// period the move was scheduled in.
    pub effective_at: Timestamp,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub tenant_id: Option<TenantId>,
    pub at: Timestamp,
    pub actor: String,
    /// What was done, e.g. `payment_method.create`.
    pub action: String,
    /// What it was done to, e.g. `payment_method/pm-1a2b`.
    pub target: String,
    /// JSON of the object before and after (absent for creations/deletions).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A change to a tenant's payment methods.
#[derive(Debug, Clone)]
pub enum PaymentChange {
    /// A new method (its `role` is ignored; `requested` decides, see
    /// [`RoleChange::Create`]).
    Create {
        method: Box<PaymentMethod>,
        requested: Option<PaymentRole>,
    },
    /// A role change or deletion of an existing method.
    Role(RoleChange),
}

/// The aggregation of each metric (meters not listed sum).
pub use tollgate_domain::catalog::Aggregations;

/// Which hourly buckets to read.
#[derive(Debug, Clone, Default)]
pub struct BucketFilter<'a> {
    /// Only this namespace (`None`: the whole tenant).
    pub namespace: Option<&'a str>,
    pub metric_label: Option<&'a str>,
    pub object_name: Option<&'a str>,
    /// Hours starting in [from, to).
    pub from: Timestamp,
    pub to: Timestamp,
}

/// How [`MeteringStore::distinct_counts`](crate::MeteringStore::distinct_counts) groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistinctBy {
    /// Per metric, over the whole scope (the filter's namespace, or the tenant).
    Metric,
    /// Per metric and object.
    Object,
    /// Per metric, object and hour.
    Hour,
}

/// What a distinct count is of: the fields `DistinctBy` groups by are set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DistinctKey {
    pub metric_label: String,
    pub object: Option<tollgate_domain::metering::ObjectKey>,
    pub hour: Option<Timestamp>,
}

/// A coupon definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponDef {
    pub code: String,
    pub title: String,
    pub discount: Discount,
}

/// A coupon applied to a tenant for the periods overlapping [valid_from, valid_until).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCoupon {
    pub coupon: CouponDef,
    pub valid_from: Timestamp,
    pub valid_until: Option<Timestamp>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub events: u64,
    pub buckets: u64,
    /// The hours rebuilt start here: raw events before it were deleted by
    /// the retention job, and the rollups of those hours were kept as they
    /// were. `None`: every hour was rebuilt.
    pub rebuilt_from: Option<Timestamp>,
}

/// What bounds the events a tenant can still report, read in one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageFloor {
    /// The start of the latest finalized invoice's period.
    pub latest_invoice_start: Option<Timestamp>,
    /// Raw events before this time may have been deleted.
    pub events_purged_before: Option<Timestamp>,
}

/// One tenant's facts the raw-event retention job decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRetention {
    pub tenant_id: TenantId,
    pub created_at: Timestamp,
    /// The start of the latest finalized invoice's period.
    pub latest_invoice_start: Option<Timestamp>,
    /// The time of the tenant's oldest stored raw event.
    pub oldest_event: Option<Timestamp>,
}

/// A web console session: who signed in (a tenant's API token or an
/// operator credential, by digest), the form token, when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The digest of the cookie's secret.
    pub id_digest: String,
    pub kind: ConsoleKind,
    /// The digest of the API or operator token signed in with, or
    /// `operator` for the bootstrap credential.
    pub credential: String,
    /// What every state-changing form of the session carries.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Whose console a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    Tenant,
    Operator,
}

impl ConsoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Operator => "operator",
        }
    }
}

/// A finalized invoice as stored, with its charging bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvoice {
    pub tenant_id: TenantId,
    /// The finalized document; `status` is the current one.
    pub invoice: Invoice,
    /// Charge rounds completed (each tries the primary, then the secondary).
    pub attempts: u32,
    /// When the next charge round is due; `None` when nothing is left to charge.
    pub next_charge_at: Option<Timestamp>,
    /// Until when a worker holds the invoice's lease (charging or refunding
    /// it); `None` when no one ever did or the last holder released it.
    pub leased_until: Option<Timestamp>,
    /// When it first became OVERDUE (kept if it is charged again and stays
    /// unpaid); `None` if it never was. Dunning counts from here.
    pub overdue_at: Option<Timestamp>,
}

impl StoredInvoice {
    /// Whether a worker holds the invoice's lease at `now`.
    pub fn is_leased(&self, now: Timestamp) -> bool {
        self.leased_until.is_some_and(|until| until > now)
    }
}

/// Records how long a write job waited before it started running
/// (`tollgate_db_write_wait_seconds`): SQLite's writer queue, PostgreSQL's
/// wait for a pooled connection and `BEGIN`.
fn record_write_wait(waited: std::time::Duration) {
    metrics::histogram!("tollgate_db_write_wait_seconds").record(waited.as_secs_f64());
}

/// What an sqlx pool counts now.
fn pool_stats<DB: sqlx::Database>(pool: &'static str, of: &sqlx::Pool<DB>) -> PoolStats {
    let open = of.size();
    let idle = u32::try_from(of.num_idle()).unwrap_or(u32::MAX).min(open);
    PoolStats {
        pool,
        in_use: open - idle,
        idle,
        max: of.options().get_max_connections(),
    }
}

/// One connection pool of the store as it is now
/// ([`HealthStore::pools`]), for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `read` and `write` (SQLite: the read pool and the writer's one
    /// connection), or `shared` (PostgreSQL: reads and writes share one pool).
    pub pool: &'static str,
    /// Connections running a query or a transaction.
    pub in_use: u32,
    /// Connections open and waiting for work.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// When a tenant next has a billing period to close, as the due-date index
/// holds it (`billing_due`), read by [`InvoicingStore::due_tenants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingDue {
    pub tenant_id: TenantId,
    /// The end of the tenant's earliest period without a finalized invoice
    /// (its close is due a grace later), or the epoch when it is not known
    /// and must be worked out again (a new tenant, a migrated database). It
    /// may be earlier than that end, never later: a tenant is looked at too
    /// soon rather than too late.
    pub due_at: Timestamp,
    /// Moves with every change of the row, so that
    /// [`InvoicingStore::set_billing_due`] replaces only the date it read.
    pub version: i64,
}

/// What became of one charge attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Written before the provider was asked; settled after.
    Pending,
    Succeeded,
    Declined,
    /// Nothing could be charged (no payment method).
    Failed,
    /// Succeeded, then refunded by the operator.
    Refunded,
}

impl ChargeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Declined => "DECLINED",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Succeeded,
            Self::Declined,
            Self::Failed,
            Self::Refunded,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// The payment method a charge attempt went to, as it was then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedMethod {
    /// The payment method's name.
    pub name: String,
    pub role: PaymentRole,
    /// The payment provider's token.
    pub token: String,
    /// How people read it, e.g. "test card ending 4242".
    pub display: String,
    /// The payment provider that holds it (`test`, `stripe`): the charge and
    /// its refunds go there.
    pub provider: String,
}

/// One charge attempt of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRecord {
    /// Sent to the provider: the same key never charges twice.
    pub idempotency_key: String,
    pub invoice: InvoiceName,
    /// The charge round (1-based).
    pub attempt: u32,
    /// The payment method charged; `None` when the tenant had none (the
    /// attempt then FAILED without asking the provider).
    pub method: Option<ChargedMethod>,
    pub amount_cents: i64,
    pub currency: String,
    pub outcome: ChargeOutcome,
    pub reason: Option<String>,
    /// The provider's reference of a successful charge.
    pub reference: Option<String>,
    pub started_at: Timestamp,
    pub settled_at: Option<Timestamp>,
}

/// Where a refund (a credit note) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    /// Written before the provider was asked; settled after. Counts against
    /// what remains refundable, as the money may have moved.
    Pending,
    /// The provider refunded the amount: counts as refunded.
    Succeeded,
    /// The provider refused (its reason is kept); nothing was refunded, and
    /// it counts for nothing.
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// How an unsuccessful charge round ends, as the application decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundEnd {
    /// Charge rounds completed, this one included.
    pub attempts: u32,
    /// The invoice's status from now on (ISSUED, or OVERDUE after the last round).
    pub status: InvoiceStatus,
    /// When the next round is due; `None` when there is none.
    pub next_charge_at: Option<Timestamp>,
}

/// A refund of (part of) an invoice's successful charge: one credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    /// Sent to the provider: the same key never refunds twice
    /// (`refund/<charge key>/<credit note>`, or `refund/<charge key>` for
    /// refunds made before credit notes).
    pub idempotency_key: String,
    /// The credit note's name, `cn-YYYY-MM-NNNN`, unique per tenant.
    pub credit_note: String,
    pub invoice: InvoiceName,
    /// The idempotency key of the charge attempt refunded.
    pub charge: String,
    /// The provider's reference of that charge.
    pub reference: String,
    /// What this credit note gives back, in cents (more than zero).
    pub amount_cents: i64,
    pub currency: String,
    pub state: RefundState,
    /// Why the operator gave the money back (printed on the credit note).
    pub reason: String,
    /// What it credits; the lines add up to `amount_cents`.
    pub lines: Vec<CreditNoteLine>,
    /// Why the provider refused (FAILED).
    pub failure: Option<String>,
    /// The provider's id of the refund, once it refunded.
    pub refund_reference: Option<String>,
    /// Who asked for the refund, as the audit trail names them.
    pub actor: String,
    /// When it was made (the credit note's date).
    pub started_at: Timestamp,
    pub settled_at: Option<Timestamp>,
}

/// A dispute (chargeback) the payment provider reported against the charge
/// that paid an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub provider: String,
    /// The provider's id of the dispute (`dp_…`): one record per dispute.
    pub dispute_id: String,
    pub invoice: InvoiceName,
    /// The disputed payment's reference.
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
    /// The provider's reason, e.g. `fraudulent`.
    pub reason: String,
    pub created_at: Timestamp,
}

/// A refund to record as a new credit note
/// ([`InvoicingStore::begin_refund`]): the store numbers it and derives its
/// idempotency key from the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub invoice: InvoiceName,
    /// The idempotency key of the charge attempt refunded (the invoice's
    /// successful one).
    pub charge: String,
    /// The provider's reference of that charge.
    pub reference: String,
    /// More than zero, and at most what remains refundable of the charge.
    pub amount_cents: i64,
    pub currency: String,
    pub reason: String,
    /// Adding up to `amount_cents`.
    pub lines: Vec<CreditNoteLine>,
    pub actor: String,
    pub started_at: Timestamp,
    /// A refund made at the payment provider, outside Tollgate: the total
    /// the provider reports refunded of the charge. Under the lease this
    /// refund must be exactly what the books lack of it, else it is refused
    /// (`REFUND_IN_PROGRESS`, retry): a provider event handled twice at once
    /// is recorded once.
    pub provider_total: Option<i64>,
}

/// What [`InvoicingStore::begin_refund`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStart {
    /// A new credit note, written PENDING.
    New(NewRefund),
    /// The PENDING credit note an earlier refund of the invoice recorded but
    /// did not settle (a crash, an unreachable provider), asked again under
    /// its own key.
    Resume {
        invoice: InvoiceName,
        idempotency_key: String,
    },
}

impl RefundStart {
    /// The invoice refunded.
    pub fn invoice(&self) -> &InvoiceName {
        match self {
            Self::New(r) => &r.invoice,
            Self::Resume { invoice, .. } => invoice,
        }
    }
}

/// A plan transition leased by a worker.
#[derive(Debug, Clone)]
pub struct LeasedTransition {
    pub transition: PlanTransition,
    /// Which attempt this is (1 for the first lease).
    pub attempt: u32,
    /// Why the previous attempt could not finish, if one could not.
    pub last_error: Option<String>,
}

/// Which transitions to list.
#[derive(Debug, Clone, Default)]
pub struct TransitionFilter {
    pub tenant_id: Option<TenantId>,
    pub state: Option<TransitionState>,
}

/// Everything a finished plan transition changes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct TransitionOutcome {
    pub transition_id: String,
    /// The worker that holds the lease; the outcome is refused otherwise.
    pub lease_owner: String,
    pub tenant_id: TenantId,
    pub now: Timestamp,
    /// A payment method from the payload's token, made primary.
    pub payment_method: Option<PaymentMethod>,
    /// The subscription that replaces the current one (closed at `now`).
    pub subscription: Subscription,
    pub tenant_type: TenantType,
    pub domain: Option<String>,
    /// Replaces the tenant's contacts; `None` keeps them.
    pub contacts: Option<Vec<Contact>>,
    /// How the tenant's subscribed add-ons change; applied to the add-ons it
    /// has at commit time.
    pub addons: AddonChange,
}

/// A token to create; the caller generated the secret and passes its digest.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Who creates it, for the audit trail.
    pub actor: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub scope: NamespaceScope,
    pub digest: [u8; 32],
    pub expires_at: Option<Timestamp>,
    pub now: Timestamp,
}

/// A named operator token to store.
#[derive(Debug, Clone)]
pub struct NewOperatorToken {
    pub name: String,
    pub role: tollgate_domain::access::OperatorRole,
    pub digest: [u8; 32],
    pub actor: String,
    pub now: Timestamp,
}

/// Current usage of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub family: KeyFamily,
    pub key: String,
    pub used: i64,
}

/// A change to a key's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOp {
    /// Add `amount` if the result stays within the limit.
    Reserve { amount: i64 },
    /// Subtract `amount`, not below zero.
    Release { amount: i64 },
    /// Set the absolute usage, whatever the limit.
    Reconcile { current: i64 },
}

impl UsageOp {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reserve { .. } => "reserve",
            Self::Release { .. } => "release",
            Self::Reconcile { .. } => "reconcile",
        }
    }

    fn amount(self) -> i64 {
        match self {
            Self::Reserve { amount } | Self::Release { amount } => amount,
            Self::Reconcile { current } => current,
        }
    }
}

/// A usage change request.
#[derive(Debug, Clone)]
pub struct UsageChange<'a> {
    pub tenant_id: &'a TenantId,
    pub family: KeyFamily,
    pub key: &'a str,
    pub op: UsageOp,
    /// Idempotency key; a repeat of a successful request returns its answer.
    pub request_id: Option<&'a RequestId>,
    /// The tenant's default quota (its plan's); quota objects override it.
    pub default_quota: &'a QuotaSpec,
    pub now: Timestamp,
    /// Refuse a reservation ([`UsageOutcome::Blocked`]) unless it repeats an
    /// earlier one: the tenant is suspended (dunning). A repeat still gets
    /// its first answer, so a client retrying a reservation it made before
    /// the suspension learns that it holds it.
    pub block_reservations: bool,
}

/// Usage and limit of one key after (or instead of) a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageState {
    pub limit: Limit,
    pub current: i64,
}

/// What a usage change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOutcome {
    Applied(UsageState),
    /// The request id was seen before; this is the first answer, nothing changed.
    Replayed(UsageState),
    /// The reservation would pass the limit; nothing changed.
    Refused(UsageState),
    /// A new reservation while reservations are blocked
    /// ([`UsageChange::block_reservations`]); nothing changed.
    Blocked,
}

/// Who is asking for webhook endpoints: a tenant sees its own only; the
/// operator sees every endpoint (the operator's, for every tenant, and each
/// tenant's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointScope {
    Tenant(TenantId),
    Operator,
}

impl EndpointScope {
    /// The tenant the scope is limited to.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Tenant(t) => Some(t),
            Self::Operator => None,
        }
    }
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `ep_…`.
    pub id: String,
    /// `None`: the operator's, for every tenant's events.
    pub tenant_id: Option<TenantId>,
    pub url: String,
    /// Event type names; empty for every type.
    pub events: Vec<String>,
    pub description: String,
    /// The signing secret, `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(String, Timestamp)>,
    pub created_by: String,
    pub created_at: Timestamp,
    /// The first failed attempt since the last success.
    pub failing_since: Option<Timestamp>,
    /// When and why it was disabled (failing for too long).
    pub disabled: Option<(Timestamp, String)>,
}

impl WebhookEndpoint {
    /// The secrets that sign a delivery at `now`: the current one, and the
    /// previous one during a rotation's overlap.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<String> {
        let mut out = vec![self.secret.clone()];
        if let Some((previous, until)) = &self.previous_secret
            && now < *until
        {
            out.push(previous.clone());
        }
        out
    }

    /// Whether an event of type `t` goes to this endpoint.
    pub fn wants(&self, t: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == t)
    }
}

/// A webhook endpoint to create.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub tenant_id: Option<TenantId>,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub secret: String,
    /// The most endpoints one tenant (or the operator) may have.
    pub limit: u32,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// An attempt was answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// An event of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub seq: i64,
    /// `msg_…`: the `webhook-id` of every delivery of it.
    pub id: String,
    pub tenant_id: TenantId,
    /// The event type's name.
    pub event_type: String,
    /// What it is about, e.g. `invoice/inv-2026-11-0001`.
    pub subject: String,
    /// The payload's data (JSON), once known.
    pub data: Option<String>,
    pub created_at: Timestamp,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `dlv_…`.
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due (PENDING).
    pub next_attempt_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last answer.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A delivery leased for one attempt, with what the attempt sends.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery_id: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub endpoint: WebhookEndpoint,
    pub event: WebhookEvent,
}

/// What one attempt came to, and what follows it.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    /// Answered 2xx.
    pub delivered: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it failed (a non-2xx answer, a timeout, a refused connection…).
    pub error: Option<String>,
    /// When a failed delivery is attempted again; `None`: it is FAILED.
    pub retry_at: Option<Timestamp>,
    /// An endpoint failing since this moment or earlier (with no success
    /// since) is disabled by this failure.
    pub disable_if_failing_since: Timestamp,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecorded {
    pub status: DeliveryStatus,
    /// The endpoint was disabled by this failure.
    pub disabled_endpoint: bool,
}

/// Undelivered work: for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookQueue {
    /// PENDING deliveries.
    pub pending: u64,
    /// Events not yet dispatched to endpoints.
    pub undispatched: u64,
    /// When the oldest PENDING delivery was created.
    pub oldest: Option<Timestamp>,
}

/// A tenant's usage alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAlert {
    /// `al_…`.
    pub id: String,
    pub tenant_id: TenantId,
    /// Unique per tenant.
    pub name: String,
    /// `spend`, or a meter's metric label.
    pub metric: String,
    /// Only this namespace's usage.
    pub namespace: Option<String>,
    /// Cents for spend; the meter's billable quantity otherwise (a decimal).
    pub threshold: rust_decimal::Decimal,
    pub created_by: String,
    pub created_at: Timestamp,
    /// When it last fired: the period's start, the moment, and the value it saw.
    pub triggered: Option<AlertTrigger>,
    /// Batches ingested since it was made, and the count its last
    /// evaluation read (pending while `ingested > evaluated`).
    pub ingested: i64,
    pub evaluated: i64,
}

/// An alert's last firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTrigger {
    pub period_start: Timestamp,
    pub at: Timestamp,
    pub value: rust_decimal::Decimal,
}

/// An alert to create.
#[derive(Debug, Clone)]
pub struct NewUsageAlert {
    pub tenant_id: TenantId,
    pub name: String,
    pub metric: String,
    pub namespace: Option<String>,
    pub threshold: rust_decimal::Decimal,
    /// The most alerts one tenant may have.
    pub limit: u32,
}
