//! Tenancy: tenants, their namespaces, API tokens and operator tokens
//! ([`TenancyStore`](crate::TenancyStore)). A tenant is created with its
//! `system` namespace and first subscription in one transaction. Part of the
//! shared SQL implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::access::{NamespaceScope, OperatorRole, Role};
use tollgate_domain::audit::AuditAction;
use tollgate_domain::dunning::Suspension;
use tollgate_domain::ids::{InvoiceName, TenantId};
use tollgate_domain::names::Name;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::{Namespace, Tenant, TenantType};
use tollgate_domain::token::{ApiToken, OperatorToken};

use super::{
    Cols, DbRow, SqlStore, Tx, audit_in, hex, json, micros, name, opt_timestamp, timestamp, to_json, unhex,
};
use crate::{Actor, NewOperatorToken, NewTenant, NewToken, Result, StoreError};

/// The columns of a tenant, in the order [`tenant_from`] reads them.
macro_rules! tenant_columns {
    () => {
        "n.id AS tenant_id, n.name AS tenant_name, n.tenant_type AS tenant_type, \
         n.created_at AS tenant_created_at, n.plan AS tenant_plan, \
         n.catalog_version AS tenant_catalog_version, n.domain AS tenant_domain, \
         n.suspended_at AS tenant_suspended_at, n.suspended_by AS tenant_suspended_by, \
         n.suspended_for AS tenant_suspended_for, n.currency AS tenant_currency, \
         n.quota_version AS tenant_quota_version"
    };
}

fn tenant_from<R: Cols + ?Sized>(row: &R) -> Result<Tenant> {
    let tenant_type = row.text("tenant_type")?;
    let (Some(plan), Some(catalog_version)) = (
        row.opt_text("tenant_plan")?,
        row.opt_int("tenant_catalog_version")?,
    ) else {
        return Err(StoreError::Corrupt(
            "tenant without a plan; open the store to bootstrap it".into(),
        ));
    };
    Ok(Tenant {
        id: TenantId::new(row.text("tenant_id")?),
        name: name("tenants.name", &row.text("tenant_name")?)?,
        tenant_type: TenantType::parse(&tenant_type).map_err(|e| StoreError::Corrupt(e.message))?,
        created_at: timestamp("tenants.created_at", row.int("tenant_created_at")?)?,
        plan: plan.into(),
        catalog_version,
        domain: row.opt_text("tenant_domain")?,
        suspension: suspension_from(row)?,
        currency: row.opt_text("tenant_currency")?,
        quota_version: row.int("tenant_quota_version")?,
    })
}

/// A tenant read inside `tx`.
pub(super) async fn tenant_in(tx: &mut Tx, id: &TenantId) -> Result<Option<Tenant>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants n WHERE n.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(tenant_from).transpose()
}

/// A tenant's suspension from its row (`tenant_suspended_*` columns).
fn suspension_from<R: Cols + ?Sized>(row: &R) -> Result<Option<Suspension>> {
    let Some(since) = row.opt_int("tenant_suspended_at")? else {
        return Ok(None);
    };
    let invoices: Vec<String> = match row.opt_text("tenant_suspended_for")? {
        Some(text) => json("tenants.suspended_for", &text)?,
        None => Vec::new(),
    };
    Ok(Some(Suspension {
        since: timestamp("tenants.suspended_at", since)?,
        by: row.opt_text("tenant_suspended_by")?.unwrap_or_default(),
        invoices: invoices.into_iter().map(InvoiceName::new).collect(),
    }))
}

fn namespace_from(row: &DbRow) -> Result<Namespace> {
    Ok(Namespace {
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
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

fn token_from<R: Cols + ?Sized>(row: &R) -> Result<ApiToken> {
    let role = row.text("role")?;
    let namespaces: Vec<String> = json("api_tokens.namespaces", &row.text("namespaces")?)?;
    let scope = NamespaceScope::from_names("api_tokens.namespaces", &namespaces)
        .map_err(|e| StoreError::Corrupt(e.message))?;
    Ok(ApiToken {
        id: row.text("id")?,
        tenant_id: TenantId::new(row.text("tenant_id")?),
        tenant_name: name("tenants.name", &row.text("tenant_name")?)?,
        name: row.text("name")?,
        role: Role::parse(&role).map_err(|e| StoreError::Corrupt(e.message))?,
        scope,
        digest: unhex("api_tokens.digest", &row.text("digest")?)?,
        created_at: timestamp("api_tokens.created_at", row.int("created_at")?)?,
        expires_at: opt_timestamp("api_tokens.expires_at", row.opt_int("expires_at")?)?,
        revoked_at: opt_timestamp("api_tokens.revoked_at", row.opt_int("revoked_at")?)?,
    })
}

/// The columns of an operator token (a named credential of the operator API,
/// stored hashed like API tokens), in the order [`operator_token_from`] reads them.
macro_rules! operator_columns {
    () => {
        "id, name, role, digest, created_at, created_by, revoked_at"
    };
}

fn operator_token_from(row: &DbRow) -> Result<OperatorToken> {
    let role: String = row.try_get("role")?;
    Ok(OperatorToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: OperatorRole::parse(&role).map_err(|e| StoreError::Corrupt(e.message))?,
        digest: unhex("operator_tokens.digest", row.try_get("digest")?)?,
        created_at: timestamp("operator_tokens.created_at", row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
        revoked_at: opt_timestamp("operator_tokens.revoked_at", row.try_get("revoked_at")?)?,
    })
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

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants n WHERE n.id = $1"
        ))
        .bind(id.as_str())
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

    async fn set_tenant_currency(
        &self,
        tenant_id: &TenantId,
        currency: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Tenant> {
        let (tenant_id, currency, actor) = (tenant_id.clone(), currency.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(super::LOCK_TENANT)
                    .bind(tenant_id.as_str())
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
                let before = tenant_in(tx, &tenant_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
                let unpaid: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM invoices WHERE tenant_id = $1 AND status IN ('ISSUED', 'OVERDUE') \
                     ORDER BY name",
                )
                .bind(tenant_id.as_str())
                .fetch_all(&mut **tx)
                .await?;
                if !unpaid.is_empty() {
                    return Err(StoreError::Conflict(
                        Reason::CurrencyLocked,
                        format!(
                            "tenant {} has unpaid invoices in {} ({}): its currency changes only once \
                             they are paid or cancelled",
                            before.name,
                            before
                                .currency
                                .as_deref()
                                .unwrap_or("its catalog's first currency"),
                            unpaid.join(", ")
                        ),
                    ));
                }
                sqlx::query("UPDATE tenants SET currency = $1 WHERE id = $2")
                    .bind(&currency)
                    .bind(tenant_id.as_str())
                    .execute(&mut **tx)
                    .await?;
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &actor,
                    AuditAction::TenantCurrency,
                    &format!("tenant/{}", before.name),
                    Some(serde_json::json!({"currency": before.currency})),
                    Some(serde_json::json!({"currency": currency})),
                    now,
                )
                .await?;
                Ok(Tenant {
                    currency: Some(currency),
                    ..before
                })
            })
        })
        .await
    }

    async fn unpinned_currency_versions(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT catalog_version FROM tenants \
             WHERE currency IS NULL AND catalog_version IS NOT NULL ORDER BY catalog_version",
        )
        .fetch_all(&self.read)
        .await?)
    }

    async fn pin_tenant_currencies(&self, catalog_version: i64, currency: &str) -> Result<u64> {
        let currency = currency.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(sqlx::query(
                    "UPDATE tenants SET currency = $1 WHERE currency IS NULL AND catalog_version = $2",
                )
                .bind(&currency)
                .bind(catalog_version)
                .execute(&mut **tx)
                .await?
                .rows_affected())
            })
        })
        .await
    }

    async fn create_namespace(
        &self,
        tenant_id: &TenantId,
        name: &Name,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Namespace> {
        let (tenant_id, name, actor) = (tenant_id.clone(), name.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { create_namespace_in(tx, &tenant_id, &name, &actor, now).await })
        })
        .await
    }

    async fn namespaces(&self, tenant_id: &TenantId) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, uid, created_at FROM namespaces WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(namespace_from).collect()
    }

    async fn namespace_exists(&self, tenant_id: &TenantId, name: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM namespaces WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id.as_str())
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
        const SQL: &str = select_tokens!("WHERE t.digest = $1");
        let digest = hex(digest);
        if let Some(inline) = &self.inline {
            return inline.query_opt(SQL, &[&digest], |r| Ok((token_from(r)?, tenant_from(r)?)));
        }
        let row = sqlx::query(SQL).bind(digest).fetch_optional(&self.read).await?;
        row.as_ref()
            .map(|r| Ok((token_from(r)?, tenant_from(r)?)))
            .transpose()
    }

    async fn tokens(&self, tenant_id: &TenantId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(select_tokens!(
            "WHERE t.tenant_id = $1 ORDER BY t.created_at, t.id"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(
        &self,
        tenant_id: &TenantId,
        token_id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<ApiToken> {
        let (tenant_id, token_id, actor) = (tenant_id.clone(), token_id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move { revoke_token_in(tx, &tenant_id, &token_id, &actor, now).await })
        })
        .await
    }

    async fn create_operator_token(&self, new: &crate::NewOperatorToken) -> Result<OperatorToken> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { create_operator_token_in(tx, &new).await }))
            .await
    }

    async fn operator_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<OperatorToken>> {
        operator_token_by_digest(self, digest).await
    }

    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>> {
        operator_tokens(self).await
    }

    async fn revoke_operator_token(
        &self,
        name: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<OperatorToken> {
        let (name, actor) = (name.to_owned(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { revoke_operator_token_in(tx, &name, &actor, now).await }))
            .await
    }
}

async fn create_tenant_in(tx: &mut Tx, new: &NewTenant) -> Result<Tenant> {
    let sub = &new.subscription;
    let tenant = Tenant {
        id: TenantId::new(uuid::Uuid::new_v4().to_string()),
        name: new.name.clone(),
        tenant_type: new.tenant_type,
        created_at: new.now,
        plan: sub.plan.as_str().into(),
        catalog_version: sub.catalog_version,
        domain: None,
        suspension: None,
        currency: Some(new.currency.clone()),
        quota_version: 0,
    };
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, name, tenant_type, created_at, plan, catalog_version, currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.id.as_str())
    .bind(tenant.name.as_str())
    .bind(tenant.tenant_type.as_str())
    .bind(micros(new.now))
    .bind(tenant.plan.as_str())
    .bind(tenant.catalog_version)
    .bind(&new.currency)
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
    super::billing::insert_subscription(tx, &subscription).await?;
    // When its first period closes is the application's to work out.
    super::invoicing::lower_billing_due_in(tx, &tenant.id, Timestamp::UNIX_EPOCH).await?;
    audit_in(
        tx,
        Some(&tenant.id),
        &new.actor,
        AuditAction::TenantCreate,
        &format!("tenant/{}", tenant.name),
        None,
        Some(serde_json::json!({
            "plan": tenant.plan.as_str(),
            "tenant_type": tenant.tenant_type.as_str(),
            "currency": new.currency,
            "since": new.now.to_string(),
        })),
        new.recorded_at,
    )
    .await?;
    Ok(tenant)
}

async fn create_namespace_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    name: &Name,
    actor: &str,
    now: Timestamp,
) -> Result<Namespace> {
    let ns = insert_namespace(tx, tenant_id, name, now).await?;
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        AuditAction::NamespaceCreate,
        &format!("namespace/{}", ns.name),
        None,
        Some(serde_json::json!({"name": ns.name.as_str(), "uid": ns.uid})),
        now,
    )
    .await?;
    Ok(ns)
}

async fn insert_namespace(
    tx: &mut Tx,
    tenant_id: &TenantId,
    name: &Name,
    now: Timestamp,
) -> Result<Namespace> {
    let ns = Namespace {
        tenant_id: tenant_id.clone(),
        name: name.clone(),
        uid: uuid::Uuid::new_v4().to_string(),
        created_at: now,
    };
    let tenant = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
        .bind(tenant_id.as_str())
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
    .bind(tenant_id.as_str())
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
            .bind(new.tenant_id.as_str())
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
    .bind(new.tenant_id.as_str())
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
        AuditAction::TokenCreate,
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
    tenant_id: &TenantId,
    token_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<ApiToken> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id.as_str())
    .bind(token_id)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let row = sqlx::query(select_tokens!("WHERE t.tenant_id = $1 AND t.id = $2"))
        .bind(tenant_id.as_str())
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
            AuditAction::TokenRevoke,
            &format!("token/{token_id}"),
            None,
            Some(token_json(&token)),
            now,
        )
        .await?;
    }
    Ok(token)
}

/// What the audit trail records of an operator token: never its secret or digest.
fn operator_token_json(t: &OperatorToken) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "revoked_at": t.revoked_at.map(|e| e.to_string()),
    })
}

async fn create_operator_token_in(tx: &mut Tx, new: &NewOperatorToken) -> Result<OperatorToken> {
    let taken = sqlx::query("SELECT 1 FROM operator_tokens WHERE name = $1 AND revoked_at IS NULL")
        .bind(&new.name)
        .fetch_optional(&mut **tx)
        .await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(
            tollgate_domain::Reason::OperatorTokenExists,
            format!(
                "an operator token named {:?} exists; revoke it first or choose another name",
                new.name
            ),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO operator_tokens (id, name, role, digest, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(hex(&new.digest))
    .bind(micros(new.now))
    .bind(&new.actor)
    .execute(&mut **tx)
    .await?;
    let token = OperatorToken {
        id,
        name: new.name.clone(),
        role: new.role,
        digest: new.digest,
        created_at: new.now,
        created_by: new.actor.clone(),
        revoked_at: None,
    };
    audit_in(
        tx,
        None,
        &new.actor,
        AuditAction::OperatorTokenCreate,
        &format!("operator-token/{}", token.name),
        None,
        Some(operator_token_json(&token)),
        new.now,
    )
    .await?;
    Ok(token)
}

async fn operator_token_by_digest(store: &SqlStore, digest: &[u8; 32]) -> Result<Option<OperatorToken>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        operator_columns!(),
        " FROM operator_tokens WHERE digest = $1"
    ))
    .bind(hex(digest))
    .fetch_optional(&store.read)
    .await?;
    row.as_ref().map(operator_token_from).transpose()
}

async fn operator_tokens(store: &SqlStore) -> Result<Vec<OperatorToken>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        operator_columns!(),
        " FROM operator_tokens ORDER BY created_at, id"
    ))
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(operator_token_from).collect()
}

async fn revoke_operator_token_in(
    tx: &mut Tx,
    name: &str,
    actor: &str,
    now: Timestamp,
) -> Result<OperatorToken> {
    let row = sqlx::query(concat!(
        "UPDATE operator_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING ",
        operator_columns!()
    ))
    .bind(name)
    .bind(micros(now))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("no live operator token is named {name:?}")))?;
    let token = operator_token_from(&row)?;
    audit_in(
        tx,
        None,
        actor,
        AuditAction::OperatorTokenRevoke,
        &format!("operator-token/{}", token.name),
        None,
        Some(operator_token_json(&token)),
        now,
    )
    .await?;
    Ok(token)
}
