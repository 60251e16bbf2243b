//! The SQL implementation of [`Store`](crate::Store), shared by both engines.
//!
//! This file is compiled twice, as `sqlite::sql` and `postgres::sql`, each time
//! with that engine's concrete `Db` type and constants from its parent module.
//! Queries use `$N` placeholders, which both engines accept.

use jiff::Timestamp;
use sqlx::{Pool, Row};
use tollgate_domain::Reason;
use tollgate_domain::access::{NamespaceScope, Role};
use tollgate_domain::metering::{Bucket, BucketKey, ObjectKey, ObjectUsage, UsageEvent};
use tollgate_domain::names::Name;
use tollgate_domain::object::ObjectMeta;
use tollgate_domain::payment::PaymentMethod;
use tollgate_domain::quota::{KeyFamily, Limit, QuotaObject, QuotaSpec, effective_limit};
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::{Namespace, Tenant, TenantType};
use tollgate_domain::token::{ApiToken, OperatorToken};
use tollgate_domain::transition::PlanTransition;

use super::{BACKEND, Db, LOCK_TENANT, Tx, Writer};
use crate::{
    Actor, Aggregations, AppliedCoupon, AuditEntry, BucketFilter, ChargeRecord, CouponDef, LeasedTransition,
    NewTenant, NewToken, PaymentChange, RefundRecord, ReplayStats, Result, RoundEnd, StoreError,
    StoredCatalog, StoredInvoice, TransitionFilter, TransitionOutcome, UsageChange, UsageCount, UsageOp,
    UsageOutcome, UsageState,
};
use tollgate_domain::invoice::{Invoice, InvoiceStatus};

#[path = "sql/billing.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod billing;
#[path = "sql/invoicing.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod invoicing;
#[path = "sql/metering.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod metering;
#[path = "sql/operators.rs"]
#[allow(clippy::duplicate_mod, reason = "part of sql.rs, compiled once per engine")]
mod operators;

type DbRow = <Db as sqlx::Database>::Row;

impl SqlStore {
    /// One-off work after the migrations that SQL alone cannot do.
    pub(crate) async fn after_migrations(&self) -> Result<()> {
        metering::build_daily_usage(self).await
    }
}

/// A store on one database. Writes go through the engine's `Writer` (for
/// SQLite one connection that commits concurrent writers together); reads
/// through `read`.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) read: Pool<Db>,
    pub(super) writer: Writer,
}

impl SqlStore {
    /// Runs `f` in a write transaction; answers once it is committed (or
    /// rolled back, on an error or [`Tx::discard`]). `f` owns what it needs:
    /// the engine may run it on another task, after the caller is gone.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> crate::BoxFuture<'t, Result<T>> + Send + 'static,
    {
        self.writer.run(f).await
    }
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn timestamp(column: &str, micros: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn opt_timestamp(column: &str, micros: Option<i64>) -> Result<Option<Timestamp>> {
    micros.map(|m| timestamp(column, m)).transpose()
}

fn name(column: &str, value: &str) -> Result<Name> {
    Name::parse(column, value).map_err(|e| StoreError::Corrupt(e.message))
}

fn json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(column: &str, text: &str) -> Result<[u8; 32]> {
    let bad = || StoreError::Corrupt(format!("{column}: not 64 hex digits"));
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The columns of a tenant, in the order [`tenant_from`] reads them.
macro_rules! tenant_columns {
    () => {
        "n.id AS tenant_id, n.name AS tenant_name, n.tenant_type AS tenant_type, \
         n.created_at AS tenant_created_at, n.plan AS tenant_plan, \
         n.catalog_version AS tenant_catalog_version, n.domain AS tenant_domain"
    };
}

fn tenant_from(row: &DbRow) -> Result<Tenant> {
    let tenant_type: String = row.try_get("tenant_type")?;
    let plan: Option<String> = row.try_get("tenant_plan")?;
    let version: Option<i64> = row.try_get("tenant_catalog_version")?;
    let (Some(plan), Some(catalog_version)) = (plan, version) else {
        return Err(StoreError::Corrupt(
            "tenant without a plan; open the store to bootstrap it".into(),
        ));
    };
    Ok(Tenant {
        id: row.try_get("tenant_id")?,
        name: name("tenants.name", row.try_get("tenant_name")?)?,
        tenant_type: TenantType::parse(&tenant_type).map_err(|e| StoreError::Corrupt(e.message))?,
        created_at: timestamp("tenants.created_at", row.try_get("tenant_created_at")?)?,
        plan,
        catalog_version,
        domain: row.try_get("tenant_domain")?,
    })
}

fn namespace_from(row: &DbRow) -> Result<Namespace> {
    Ok(Namespace {
        tenant_id: row.try_get("tenant_id")?,
        name: name("namespaces.name", row.try_get("name")?)?,
        uid: row.try_get("uid")?,
        created_at: timestamp("namespaces.created_at", row.try_get("created_at")?)?,
    })
}

/// `SELECT … FROM api_tokens t JOIN tenants n` followed by the given clauses.
macro_rules! select_tokens {
    ($($rest:literal),*) => {
        concat!(
            "SELECT t.id, t.name, t.role, t.namespaces, t.digest, t.created_at, t.expires_at, t.revoked_at, ",
            tenant_columns!(),
            " FROM api_tokens t JOIN tenants n ON n.id = t.tenant_id ",
            $($rest),*
        )
    };
}

fn token_from(row: &DbRow) -> Result<ApiToken> {
    let role: String = row.try_get("role")?;
    let namespaces: Vec<String> = json("api_tokens.namespaces", row.try_get("namespaces")?)?;
    let scope = NamespaceScope::from_names("api_tokens.namespaces", &namespaces)
        .map_err(|e| StoreError::Corrupt(e.message))?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        tenant_name: name("tenants.name", row.try_get("tenant_name")?)?,
        name: row.try_get("name")?,
        role: Role::parse(&role).map_err(|e| StoreError::Corrupt(e.message))?,
        scope,
        digest: unhex("api_tokens.digest", row.try_get("digest")?)?,
        created_at: timestamp("api_tokens.created_at", row.try_get("created_at")?)?,
        expires_at: opt_timestamp("api_tokens.expires_at", row.try_get("expires_at")?)?,
        revoked_at: opt_timestamp("api_tokens.revoked_at", row.try_get("revoked_at")?)?,
    })
}

/// The columns of a quota object, in the order `insert_quota` binds them.
macro_rules! quota_columns {
    () => {
        "namespace, name, uid, labels, annotations, description, disable, spec, \
         creator_class, creator_id, created_at, modified_at"
    };
}

fn quota_from(row: &DbRow) -> Result<QuotaObject> {
    Ok(QuotaObject {
        meta: ObjectMeta {
            namespace: name("quota_objects.namespace", row.try_get("namespace")?)?,
            name: name("quota_objects.name", row.try_get("name")?)?,
            uid: row.try_get("uid")?,
            labels: json("quota_objects.labels", row.try_get("labels")?)?,
            annotations: json("quota_objects.annotations", row.try_get("annotations")?)?,
            description: row.try_get("description")?,
            disable: row.try_get("disable")?,
            creator_class: row.try_get("creator_class")?,
            creator_id: row.try_get("creator_id")?,
            created_at: timestamp("quota_objects.created_at", row.try_get("created_at")?)?,
            modified_at: timestamp("quota_objects.modified_at", row.try_get("modified_at")?)?,
        },
        spec: crate::records::decode_quota_spec(row.try_get("spec")?)?,
    })
}

fn family(column: &str, text: &str) -> Result<KeyFamily> {
    KeyFamily::parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column}: unknown family {text:?}")))
}

#[async_trait::async_trait]
impl crate::TenancyStore for SqlStore {
    async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { create_tenant_in(tx, &new).await }))
            .await
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants n WHERE n.name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants n WHERE n.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants n ORDER BY n.name"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    async fn create_namespace(
        &self,
        tenant_id: &str,
        name: &Name,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Namespace> {
        let (tenant_id, name, actor) = (tenant_id.to_owned(), name.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { create_namespace_in(tx, &tenant_id, &name, &actor, now).await })
        })
        .await
    }

    async fn namespaces(&self, tenant_id: &str) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, uid, created_at FROM namespaces WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(namespace_from).collect()
    }

    async fn namespace_exists(&self, tenant_id: &str, name: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM namespaces WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    async fn create_token(&self, new: &NewToken) -> Result<ApiToken> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { create_token_in(tx, &new).await }))
            .await
    }

    async fn token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<(ApiToken, Tenant)>> {
        let row = sqlx::query(select_tokens!("WHERE t.digest = $1"))
            .bind(hex(digest))
            .fetch_optional(&self.read)
            .await?;
        row.as_ref()
            .map(|r| Ok((token_from(r)?, tenant_from(r)?)))
            .transpose()
    }

    async fn tokens(&self, tenant_id: &str) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(select_tokens!(
            "WHERE t.tenant_id = $1 ORDER BY t.created_at, t.id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(
        &self,
        tenant_id: &str,
        token_id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ApiToken> {
        let (tenant_id, token_id, actor) = (tenant_id.to_owned(), token_id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { revoke_token_in(tx, &tenant_id, &token_id, &actor, now).await })
        })
        .await
    }

    async fn create_operator_token(&self, new: &crate::NewOperatorToken) -> Result<OperatorToken> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { operators::create_operator_token_in(tx, &new).await }))
            .await
    }

    async fn operator_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<OperatorToken>> {
        operators::operator_token_by_digest(self, digest).await
    }

    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>> {
        operators::operator_tokens(self).await
    }

    async fn revoke_operator_token(
        &self,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<OperatorToken> {
        let (name, actor) = (name.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { operators::revoke_operator_token_in(tx, &name, &actor, now).await })
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::QuotaStore for SqlStore {
    async fn insert_quota(&self, tenant_id: &str, q: &QuotaObject, actor: Actor<'_>) -> Result<()> {
        let (tenant_id, q, actor) = (tenant_id.to_owned(), q.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { insert_quota_in(tx, &tenant_id, &q, &actor).await }))
            .await
    }

    async fn replace_quota(&self, tenant_id: &str, q: &QuotaObject, actor: Actor<'_>) -> Result<QuotaObject> {
        let (tenant_id, q, actor) = (tenant_id.to_owned(), q.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { replace_quota_in(tx, &tenant_id, &q, &actor).await }))
            .await
    }

    async fn quota(&self, tenant_id: &str, namespace: &str, name: &str) -> Result<Option<QuotaObject>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            quota_columns!(),
            " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
        ))
        .bind(tenant_id)
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(quota_from).transpose()
    }

    async fn quotas(&self, tenant_id: &str, namespace: &str) -> Result<Vec<QuotaObject>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            quota_columns!(),
            " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 ORDER BY name"
        ))
        .bind(tenant_id)
        .bind(namespace)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(quota_from).collect()
    }

    async fn delete_quota(
        &self,
        tenant_id: &str,
        namespace: &str,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (tenant_id, namespace, name, actor, now) = (
            tenant_id.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
            actor.to_owned(),
            now,
        );
        self.write(move |tx| {
            Box::pin(async move { delete_quota_in(tx, &tenant_id, &namespace, &name, &actor, now).await })
        })
        .await
    }

    async fn usage(&self, tenant_id: &str) -> Result<Vec<UsageCount>> {
        let rows = sqlx::query(
            "SELECT family, key, used FROM quota_usage WHERE tenant_id = $1 ORDER BY family, key",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageCount {
                    family: family("quota_usage.family", row.try_get("family")?)?,
                    key: row.try_get("key")?,
                    used: row.try_get("used")?,
                })
            })
            .collect()
    }

    async fn change_usage(&self, c: &UsageChange<'_>) -> Result<UsageOutcome> {
        let owned = OwnedUsageChange {
            tenant_id: c.tenant_id.to_owned(),
            family: c.family,
            key: c.key.to_owned(),
            op: c.op,
            request_id: c.request_id.map(str::to_owned),
            default_quota: c.default_quota.clone(),
            now: c.now,
        };
        self.write(move |tx| {
            Box::pin(async move {
                let c = UsageChange {
                    tenant_id: &owned.tenant_id,
                    family: owned.family,
                    key: &owned.key,
                    op: owned.op,
                    request_id: owned.request_id.as_deref(),
                    default_quota: &owned.default_quota,
                    now: owned.now,
                };
                change_usage_in(tx, &c).await
            })
        })
        .await
    }

    async fn prune_quota_requests(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                // One small batch per transaction, oldest first, so that a
                // large backlog never holds the writer for long.
                let pruned = sqlx::query(
                    "DELETE FROM quota_requests WHERE (tenant_id, operation, request_id) IN \
                     (SELECT tenant_id, operation, request_id FROM quota_requests WHERE created_at < $1 \
                      ORDER BY created_at LIMIT $2)",
                )
                .bind(micros(before))
                .bind(i64::from(limit))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(pruned)
            })
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::CatalogStore for SqlStore {
    async fn bootstrap(&self, now: Timestamp) -> Result<()> {
        billing::bootstrap(self, now).await
    }

    async fn publish_catalog(
        &self,
        source: &str,
        source_name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<i64> {
        billing::publish_catalog(self, source, source_name, actor, now).await
    }

    async fn catalog(&self, version: Option<i64>) -> Result<Option<StoredCatalog>> {
        billing::catalog(self, version).await
    }

    async fn latest_catalog_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM catalogs")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("v")?)
    }
}

#[async_trait::async_trait]
impl crate::BillingStore for SqlStore {
    async fn subscriptions(&self, tenant_id: &str) -> Result<Vec<Subscription>> {
        billing::subscriptions(self, tenant_id).await
    }

    async fn addons(&self, tenant_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT addon FROM tenant_addons WHERE tenant_id = $1 ORDER BY addon")
            .bind(tenant_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("addon")?)).collect()
    }

    async fn set_addon(
        &self,
        tenant_id: &str,
        plan: &str,
        addon: &str,
        subscribed: bool,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        billing::set_addon(self, tenant_id, plan, addon, subscribed, actor, now).await
    }

    async fn payment_methods(&self, tenant_id: &str) -> Result<Vec<PaymentMethod>> {
        billing::payment_methods(&self.read, tenant_id).await
    }

    async fn change_payment_methods(
        &self,
        tenant_id: &str,
        change: &PaymentChange,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Vec<PaymentMethod>> {
        let (tenant_id, change, actor, now) = (tenant_id.to_owned(), change.clone(), actor.to_owned(), now);
        self.write(move |tx| {
            Box::pin(async move { change_payment_methods_in(tx, &tenant_id, &change, &actor, now).await })
        })
        .await
    }

    async fn create_transition(&self, transition: &PlanTransition, actor: Actor<'_>) -> Result<()> {
        billing::create_transition(self, transition, actor).await
    }

    async fn transition(&self, id: &str) -> Result<Option<PlanTransition>> {
        billing::transition(&self.read, id).await
    }

    async fn transitions(&self, filter: &TransitionFilter) -> Result<Vec<PlanTransition>> {
        billing::transitions(self, filter).await
    }

    async fn decide_transition(
        &self,
        id: &str,
        approve: bool,
        reason: Option<&str>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition> {
        billing::decide_transition(self, id, approve, reason, actor, now).await
    }

    async fn claim_transition(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<LeasedTransition>> {
        billing::claim_transition(self, owner, now, lease_until).await
    }

    async fn retry_transition(&self, id: &str, owner: &str, error: &str, retry_at: Timestamp) -> Result<()> {
        billing::retry_transition(self, id, owner, error, retry_at).await
    }

    async fn cancel_transition(
        &self,
        id: &str,
        reason: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition> {
        billing::cancel_transition(self, id, reason, actor, now).await
    }

    async fn complete_transition(&self, outcome: &TransitionOutcome) -> Result<()> {
        billing::complete_transition(self, outcome).await
    }

    async fn fail_transition(&self, id: &str, owner: &str, reason: &str, now: Timestamp) -> Result<()> {
        billing::fail_transition(self, id, owner, reason, now).await
    }
}

#[async_trait::async_trait]
impl crate::MeteringStore for SqlStore {
    async fn ingest(
        &self,
        tenant_id: &str,
        events: &[UsageEvent],
        aggregation: &Aggregations,
        now: Timestamp,
    ) -> Result<Vec<bool>> {
        metering::ingest(self, tenant_id, events, aggregation, now).await
    }

    async fn buckets(&self, tenant_id: &str, filter: &BucketFilter<'_>) -> Result<Vec<(BucketKey, Bucket)>> {
        metering::buckets(self, tenant_id, filter).await
    }

    async fn object_usage(
        &self,
        tenant_id: &str,
        filter: &BucketFilter<'_>,
    ) -> Result<Vec<(ObjectKey, ObjectUsage)>> {
        metering::object_usage(self, tenant_id, filter).await
    }

    async fn replay(
        &self,
        tenant_id: &str,
        aggregation: &Aggregations,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ReplayStats> {
        metering::replay(self, tenant_id, aggregation, actor, now).await
    }
}

#[async_trait::async_trait]
impl crate::CouponStore for SqlStore {
    async fn create_coupon(&self, coupon: &CouponDef, actor: Actor<'_>, now: Timestamp) -> Result<()> {
        metering::create_coupon(self, coupon, actor, now).await
    }

    async fn coupons(&self) -> Result<Vec<CouponDef>> {
        metering::coupons(self).await
    }

    async fn apply_coupon(
        &self,
        tenant_id: &str,
        code: &str,
        valid_from: Timestamp,
        valid_until: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        metering::apply_coupon(self, tenant_id, code, valid_from, valid_until, actor, now).await
    }

    async fn tenant_coupons(&self, tenant_id: &str) -> Result<Vec<AppliedCoupon>> {
        metering::tenant_coupons(self, tenant_id).await
    }
}

#[async_trait::async_trait]
impl crate::InvoicingStore for SqlStore {
    async fn finalize_invoice(
        &self,
        tenant_id: &str,
        invoice: &Invoice,
        next_charge_at: Option<Timestamp>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        invoicing::finalize_invoice(self, tenant_id, invoice, next_charge_at, actor, now).await
    }

    async fn invoices(&self, tenant_id: &str) -> Result<Vec<StoredInvoice>> {
        invoicing::invoices(self, tenant_id).await
    }

    async fn invoice(&self, tenant_id: &str, name: &str) -> Result<Option<StoredInvoice>> {
        invoicing::invoice(self, tenant_id, name).await
    }

    async fn latest_invoice_start(&self, tenant_id: &str) -> Result<Option<Timestamp>> {
        invoicing::latest_invoice_start(self, tenant_id).await
    }

    async fn invoice_charges(&self, tenant_id: &str, invoice: &str) -> Result<Vec<ChargeRecord>> {
        invoicing::invoice_charges(self, tenant_id, invoice).await
    }

    async fn claim_charge(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<StoredInvoice>> {
        invoicing::claim_charge(self, owner, now, lease_until).await
    }

    async fn begin_charge(&self, tenant_id: &str, owner: &str, charge: &ChargeRecord) -> Result<()> {
        invoicing::begin_charge(self, tenant_id, owner, charge).await
    }

    async fn settle_charge(
        &self,
        tenant_id: &str,
        owner: &str,
        charge: &ChargeRecord,
        invoice_status: Option<InvoiceStatus>,
        now: Timestamp,
    ) -> Result<()> {
        invoicing::settle_charge(self, tenant_id, owner, charge, invoice_status, now).await
    }

    async fn end_charge_round(
        &self,
        tenant_id: &str,
        invoice: &str,
        owner: &str,
        end: &RoundEnd,
        now: Timestamp,
    ) -> Result<()> {
        invoicing::end_charge_round(self, tenant_id, invoice, owner, end, now).await
    }

    async fn release_charge(&self, tenant_id: &str, invoice: &str, owner: &str) -> Result<()> {
        invoicing::release_charge(self, tenant_id, invoice, owner).await
    }

    async fn invoice_refunds(&self, tenant_id: &str, invoice: &str) -> Result<Vec<RefundRecord>> {
        invoicing::invoice_refunds(self, tenant_id, invoice).await
    }

    async fn begin_refund(
        &self,
        tenant_id: &str,
        owner: &str,
        refund: &RefundRecord,
        from: &[InvoiceStatus],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<RefundRecord> {
        invoicing::begin_refund(self, tenant_id, owner, refund, from, now, lease_until).await
    }

    async fn settle_refund(
        &self,
        tenant_id: &str,
        owner: &str,
        refund: &RefundRecord,
        now: Timestamp,
    ) -> Result<StoredInvoice> {
        invoicing::settle_refund(self, tenant_id, owner, refund, now).await
    }

    async fn set_invoice_status(
        &self,
        tenant_id: &str,
        name: &str,
        from: &[InvoiceStatus],
        to: InvoiceStatus,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<StoredInvoice> {
        invoicing::set_invoice_status(self, tenant_id, name, from, to, actor, now).await
    }
}

#[async_trait::async_trait]
impl crate::AuditStore for SqlStore {
    async fn audit(&self, tenant_id: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>> {
        billing::audit(self, tenant_id, limit).await
    }

    async fn secret(&self, name: &str) -> Result<String> {
        metering::secret(self, name).await
    }
}

#[async_trait::async_trait]
impl crate::HealthStore for SqlStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn ready(&self, now: Timestamp) -> Result<()> {
        // First: the probe's own commit would clear the memory of a fault
        // that real writes just met.
        if let Some(fault) = self.writer.health.recent_fault() {
            return Err(StoreError::Unavailable(fault));
        }
        let writer = self.writer.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )
                .bind(micros(now))
                .execute(&mut **tx)
                .await?;
                match writer.capacity_problem(tx).await? {
                    Some(problem) => Err(StoreError::Unavailable(problem)),
                    None => Ok(()),
                }
            })
        })
        .await
    }
}

async fn create_tenant_in(tx: &mut Tx, new: &NewTenant) -> Result<Tenant> {
    let sub = &new.subscription;
    let tenant = Tenant {
        id: uuid::Uuid::new_v4().to_string(),
        name: new.name.clone(),
        tenant_type: new.tenant_type,
        created_at: new.now,
        plan: sub.plan.clone(),
        catalog_version: sub.catalog_version,
        domain: None,
    };
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, name, tenant_type, created_at, plan, catalog_version) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&tenant.id)
    .bind(tenant.name.as_str())
    .bind(tenant.tenant_type.as_str())
    .bind(micros(new.now))
    .bind(&tenant.plan)
    .bind(tenant.catalog_version)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(
            Reason::TenantExists,
            format!("tenant {:?} already exists", new.name.as_str()),
        ));
    }
    insert_namespace(tx, &tenant.id, &Name::system(), new.now).await?;
    let subscription = Subscription {
        tenant_id: tenant.id.clone(),
        ..sub.clone()
    };
    billing::insert_subscription(tx, &subscription).await?;
    audit_in(
        tx,
        Some(&tenant.id),
        &new.actor,
        "tenant.create",
        &format!("tenant/{}", tenant.name),
        None,
        Some(serde_json::json!({
            "plan": tenant.plan,
            "tenant_type": tenant.tenant_type.as_str(),
            "since": new.now.to_string(),
        })),
        new.recorded_at,
    )
    .await?;
    Ok(tenant)
}

async fn create_namespace_in(
    tx: &mut Tx,
    tenant_id: &str,
    name: &Name,
    actor: &str,
    now: Timestamp,
) -> Result<Namespace> {
    let ns = insert_namespace(tx, tenant_id, name, now).await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        "namespace.create",
        &format!("namespace/{}", ns.name),
        None,
        Some(serde_json::json!({"name": ns.name.as_str(), "uid": ns.uid})),
        now,
    )
    .await?;
    Ok(ns)
}

/// What the audit trail records of a token: never its secret or digest.
fn token_json(t: &ApiToken) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "namespaces": match &t.scope {
            NamespaceScope::All => serde_json::json!("*"),
            NamespaceScope::Only(list) => serde_json::json!(list.iter().map(Name::as_str).collect::<Vec<_>>()),
        },
        "expires_at": t.expires_at.map(|e| e.to_string()),
        "revoked_at": t.revoked_at.map(|e| e.to_string()),
    })
}

async fn create_token_in(tx: &mut Tx, new: &NewToken) -> Result<ApiToken> {
    let id = uuid::Uuid::new_v4().to_string();
    let scoped: Vec<&str> = match &new.scope {
        NamespaceScope::All => Vec::new(),
        NamespaceScope::Only(list) => list.iter().map(Name::as_str).collect(),
    };
    for ns in &scoped {
        let exists = sqlx::query("SELECT 1 FROM namespaces WHERE tenant_id = $1 AND name = $2")
            .bind(&new.tenant_id)
            .bind(*ns)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("namespace {ns:?} does not exist")));
        }
    }
    sqlx::query(
        "INSERT INTO api_tokens (id, tenant_id, name, role, namespaces, digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&new.tenant_id)
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(to_json(&scoped)?)
    .bind(hex(&new.digest))
    .bind(micros(new.now))
    .bind(new.expires_at.map(micros))
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(select_tokens!("WHERE t.id = $1"))
        .bind(&id)
        .fetch_one(&mut **tx)
        .await?;
    let token = token_from(&row)?;
    audit_in(
        tx,
        Some(&new.tenant_id),
        &new.actor,
        "token.create",
        &format!("token/{id}"),
        None,
        Some(token_json(&token)),
        new.now,
    )
    .await?;
    Ok(token)
}

async fn revoke_token_in(
    tx: &mut Tx,
    tenant_id: &str,
    token_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<ApiToken> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id)
    .bind(token_id)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let row = sqlx::query(select_tokens!("WHERE t.tenant_id = $1 AND t.id = $2"))
        .bind(tenant_id)
        .bind(token_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {token_id:?} does not exist")))?;
    let token = token_from(&row)?;
    if revoked > 0 {
        audit_in(
            tx,
            Some(tenant_id),
            actor,
            "token.revoke",
            &format!("token/{token_id}"),
            None,
            Some(token_json(&token)),
            now,
        )
        .await?;
    }
    Ok(token)
}

async fn insert_quota_in(tx: &mut Tx, tenant_id: &str, q: &QuotaObject, actor: Actor<'_>) -> Result<()> {
    let m = &q.meta;
    let inserted = sqlx::query(concat!(
        "INSERT INTO quota_objects (tenant_id, ",
        quota_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
    ))
    .bind(tenant_id)
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .bind(&m.uid)
    .bind(to_json(&m.labels)?)
    .bind(to_json(&m.annotations)?)
    .bind(&m.description)
    .bind(m.disable)
    .bind(crate::records::encode_quota_spec(&q.spec)?)
    .bind(&m.creator_class)
    .bind(&m.creator_id)
    .bind(micros(m.created_at))
    .bind(micros(m.modified_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(
            Reason::QuotaObjectExists,
            format!(
                "quota {:?} already exists in namespace {:?}",
                m.name.as_str(),
                m.namespace.as_str()
            ),
        ));
    }
    let target = format!("quota/{}", m.name);
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        "quota.create",
        &target,
        None,
        Some(quota_json(q)),
        m.created_at,
    )
    .await?;
    Ok(())
}

async fn replace_quota_in(
    tx: &mut Tx,
    tenant_id: &str,
    q: &QuotaObject,
    actor: Actor<'_>,
) -> Result<QuotaObject> {
    let m = &q.meta;
    let before = sqlx::query(concat!(
        "SELECT ",
        quota_columns!(),
        " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
    ))
    .bind(tenant_id)
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(quota_from)
    .transpose()?
    .ok_or_else(|| quota_not_found(m.namespace.as_str(), m.name.as_str()))?;
    let updated = sqlx::query(
        "UPDATE quota_objects SET labels = $4, annotations = $5, description = $6, disable = $7, \
             spec = $8, modified_at = $9 WHERE tenant_id = $1 AND namespace = $2 AND name = $3",
    )
    .bind(tenant_id)
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .bind(to_json(&m.labels)?)
    .bind(to_json(&m.annotations)?)
    .bind(&m.description)
    .bind(m.disable)
    .bind(crate::records::encode_quota_spec(&q.spec)?)
    .bind(micros(m.modified_at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(quota_not_found(m.namespace.as_str(), m.name.as_str()));
    }
    let row = sqlx::query(concat!(
        "SELECT ",
        quota_columns!(),
        " FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3"
    ))
    .bind(tenant_id)
    .bind(m.namespace.as_str())
    .bind(m.name.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let stored = quota_from(&row)?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        "quota.replace",
        &format!("quota/{}", m.name),
        Some(quota_json(&before)),
        Some(quota_json(&stored)),
        m.modified_at,
    )
    .await?;
    Ok(stored)
}

async fn delete_quota_in(
    tx: &mut Tx,
    tenant_id: &str,
    namespace: &str,
    name: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<()> {
    let deleted = sqlx::query(concat!(
        "DELETE FROM quota_objects WHERE tenant_id = $1 AND namespace = $2 AND name = $3 RETURNING ",
        quota_columns!()
    ))
    .bind(tenant_id)
    .bind(namespace)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(quota_from)
    .transpose()?
    .ok_or_else(|| quota_not_found(namespace, name))?;
    let target = format!("quota/{name}");
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        "quota.delete",
        &target,
        Some(quota_json(&deleted)),
        None,
        now,
    )
    .await?;
    Ok(())
}

async fn change_payment_methods_in(
    tx: &mut Tx,
    tenant_id: &str,
    change: &PaymentChange,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<Vec<PaymentMethod>> {
    let after = billing::change_payment_methods_in(tx, tenant_id, change, actor, now).await?;
    Ok(after)
}

/// A usage change that owns its parts, for the writer.
struct OwnedUsageChange {
    tenant_id: String,
    family: KeyFamily,
    key: String,
    op: UsageOp,
    request_id: Option<String>,
    default_quota: QuotaSpec,
    now: Timestamp,
}

async fn change_usage_in(tx: &mut Tx, c: &UsageChange<'_>) -> Result<UsageOutcome> {
    let family = c.family.as_str();
    let operation = c.op.name();
    let amount = c.op.amount();

    // Claim the request id first: on PostgreSQL a concurrent claim of the
    // same id waits here until this transaction ends, then sees its row.
    if let Some(request_id) = c.request_id {
        let claimed = sqlx::query(
                "INSERT INTO quota_requests \
                 (tenant_id, operation, request_id, family, key, amount, limit_value, current_value, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7) ON CONFLICT DO NOTHING",
            )
            .bind(c.tenant_id)
            .bind(operation)
            .bind(request_id)
            .bind(family)
            .bind(c.key)
            .bind(amount)
            .bind(micros(c.now))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if claimed == 0 {
            let row = sqlx::query(
                "SELECT family, key, amount, limit_value, current_value FROM quota_requests \
                     WHERE tenant_id = $1 AND operation = $2 AND request_id = $3",
            )
            .bind(c.tenant_id)
            .bind(operation)
            .bind(request_id)
            .fetch_one(&mut **tx)
            .await?;
            let same = row.try_get::<String, _>("family")? == family
                && row.try_get::<String, _>("key")? == c.key
                && row.try_get::<i64, _>("amount")? == amount;
            if !same {
                return Err(StoreError::Conflict(
                    Reason::RequestIdReused,
                    format!("request_id {request_id:?} was already used for a different {operation}"),
                ));
            }
            return Ok(UsageOutcome::Replayed(UsageState {
                limit: Limit::from_raw(row.try_get("limit_value")?),
                current: row.try_get("current_value")?,
            }));
        }
    }

    let limit = effective_limit_in(tx, c).await?;
    sqlx::query(
        "INSERT INTO quota_usage (tenant_id, family, key, used, updated_at) VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT DO NOTHING",
    )
    .bind(c.tenant_id)
    .bind(family)
    .bind(c.key)
    .bind(micros(c.now))
    .execute(&mut **tx)
    .await?;

    // One conditional UPDATE is the whole check-and-add: PostgreSQL
    // re-evaluates the WHERE clause on the latest row version after a
    // concurrent update commits, and SQLite's write transactions are
    // serial, so usage cannot pass the limit under any interleaving.
    let sql = match c.op {
        UsageOp::Reserve { .. } => {
            "UPDATE quota_usage SET used = used + $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND family = $2 AND key = $3 AND ($6 < 0 OR used + $4 <= $6) \
                 AND used <= $7 - $4 RETURNING used"
        }
        UsageOp::Release { .. } => {
            "UPDATE quota_usage SET used = CASE WHEN used > $4 THEN used - $4 ELSE 0 END, updated_at = $5 \
                 WHERE tenant_id = $1 AND family = $2 AND key = $3 RETURNING used"
        }
        UsageOp::Reconcile { .. } => {
            "UPDATE quota_usage SET used = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND family = $2 AND key = $3 RETURNING used"
        }
    };
    let mut update = sqlx::query(sql)
        .bind(c.tenant_id)
        .bind(family)
        .bind(c.key)
        .bind(amount)
        .bind(micros(c.now));
    if let UsageOp::Reserve { .. } = c.op {
        // The family's cap holds for the stored total, whatever the limit.
        update = update.bind(limit.as_raw()).bind(c.family.max_usage());
    }
    let updated = update.fetch_optional(&mut **tx).await?;

    let Some(row) = updated else {
        let current: i64 =
            sqlx::query("SELECT used FROM quota_usage WHERE tenant_id = $1 AND family = $2 AND key = $3")
                .bind(c.tenant_id)
                .bind(family)
                .bind(c.key)
                .fetch_one(&mut **tx)
                .await?
                .try_get("used")?;
        tx.discard();
        return Ok(UsageOutcome::Refused(UsageState { limit, current }));
    };
    let current: i64 = row.try_get("used")?;

    if let Some(request_id) = c.request_id {
        sqlx::query(
            "UPDATE quota_requests SET limit_value = $4, current_value = $5 \
                 WHERE tenant_id = $1 AND operation = $2 AND request_id = $3",
        )
        .bind(c.tenant_id)
        .bind(operation)
        .bind(request_id)
        .bind(limit.as_raw())
        .bind(current)
        .execute(&mut **tx)
        .await?;
    }
    Ok(UsageOutcome::Applied(UsageState { limit, current }))
}

/// What the audit trail records of a quota object: its limits as the API
/// shows them (`{"maximum": 2.5}` vCPU, not the stored millionths; `-1`
/// unlimited).
fn quota_json(q: &QuotaObject) -> serde_json::Value {
    use tollgate_domain::quota::ResourceAmount;
    let limits = |map: &std::collections::BTreeMap<_, Limit>, resource: bool| {
        map.iter()
            .map(|(key, limit): (&tollgate_domain::quota::QuotaKey, &Limit)| {
                let maximum = match *limit {
                    Limit::Unlimited => serde_json::json!(-1),
                    Limit::Max(m) if resource => serde_json::json!(ResourceAmount::from_micros(m).to_f64()),
                    Limit::Max(m) => serde_json::json!(m),
                };
                (key.as_str().to_owned(), serde_json::json!({ "maximum": maximum }))
            })
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "name": q.meta.name.as_str(),
        "labels": q.meta.labels,
        "description": q.meta.description,
        "disable": q.meta.disable,
        "spec": {
            "object_limits": limits(&q.spec.object_limits, false),
            "resource_limits": limits(&q.spec.resource_limits, true),
            "api_limits": q.spec.api_limits,
        },
    })
}

/// Appends to the audit trail inside a transaction.
#[allow(clippy::too_many_arguments)]
async fn audit_in(
    tx: &mut Tx,
    tenant_id: Option<&str>,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(tenant_id)
    .bind(micros(at))
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn quota_not_found(namespace: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "quota {name:?} does not exist in namespace {namespace:?}"
    ))
}

async fn insert_namespace(tx: &mut Tx, tenant_id: &str, name: &Name, now: Timestamp) -> Result<Namespace> {
    let ns = Namespace {
        tenant_id: tenant_id.to_owned(),
        name: name.clone(),
        uid: uuid::Uuid::new_v4().to_string(),
        created_at: now,
    };
    let tenant = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    if tenant.is_none() {
        return Err(StoreError::NotFound(format!(
            "tenant {tenant_id:?} does not exist"
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO namespaces (tenant_id, name, uid, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(name.as_str())
    .bind(&ns.uid)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(
            Reason::NamespaceExists,
            format!("namespace {:?} already exists", name.as_str()),
        ));
    }
    Ok(ns)
}

/// The effective limit of the change's key, read inside its transaction.
async fn effective_limit_in(tx: &mut Tx, c: &UsageChange<'_>) -> Result<Limit> {
    let rows = sqlx::query("SELECT spec FROM quota_objects WHERE tenant_id = $1 AND disable = $2")
        .bind(c.tenant_id)
        .bind(false)
        .fetch_all(&mut **tx)
        .await?;
    let mut overrides = Vec::new();
    for row in &rows {
        let spec: QuotaSpec = crate::records::decode_quota_spec(row.try_get("spec")?)?;
        overrides.extend(spec.limit(c.family, c.key));
    }
    Ok(effective_limit(
        c.default_quota.limit(c.family, c.key),
        &overrides,
    ))
}
