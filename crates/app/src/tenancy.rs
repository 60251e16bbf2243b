//! Tenancy use cases: tenants, namespaces, API tokens and operator tokens.
//! The operator CLI and the operator API both call these; they only
//! translate their input and the answer.

use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use tollgate_domain::Error;
use tollgate_domain::access::{NamespaceScope, OperatorRole, Role};
use tollgate_domain::ids::TenantId;
use tollgate_domain::names::Name;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::{Namespace, Tenant, TenantType};
use tollgate_domain::token::{self, ApiToken, OperatorToken};
use tollgate_store::{NewOperatorToken, NewTenant, NewToken, Store};

use crate::AppError;
use crate::catalogs::Versions;

/// The earliest `since` of a new tenant: a tenant backdated further would
/// have thousands of billing periods to compute on every report.
pub const EARLIEST_SINCE: Timestamp = Timestamp::UNIX_EPOCH;

/// A tenant, by name.
pub async fn tenant(store: &dyn Store, name: &str) -> Result<Tenant, AppError> {
    store
        .tenant_by_name(name)
        .await?
        .ok_or_else(|| Error::not_found(format!("tenant {name:?} does not exist")).into())
}

/// What creating a tenant takes.
#[derive(Debug, Clone, Default)]
pub struct TenantRequest {
    pub name: String,
    /// An offered plan of the latest catalog; default: its default plan.
    pub plan: Option<String>,
    /// FREEMIUM or ENTERPRISE; default: the plan's tenant type.
    pub tenant_type: Option<String>,
    /// Backdates the tenant and its first subscription (to import history);
    /// not in the future, not before [`EARLIEST_SINCE`].
    pub since: Option<Timestamp>,
    /// The ISO 4217 currency it is priced and invoiced in, one the latest
    /// catalog prices; default: the catalog's first.
    pub currency: Option<String>,
}

/// The currency `requested` (default: the catalog's first), if `catalog`
/// (version `version`) prices it; the error names `field`.
fn priced_currency(
    field: &str,
    requested: Option<&str>,
    catalog: &tollgate_domain::catalog::Catalog,
    version: i64,
) -> Result<String, Error> {
    let Some(requested) = requested.filter(|c| !c.trim().is_empty()) else {
        return Ok(catalog.currency_of(None).to_owned());
    };
    let code = tollgate_domain::currency::parse_code(field, requested)?;
    if !catalog.prices_in(&code) {
        return Err(Error::invalid(format!(
            "{field}: catalog version {version} does not price {code}; it prices {}",
            catalog.currencies.join(", ")
        ))
        .with_metadata("field", field));
    }
    Ok(code)
}

/// Changes the currency a tenant is priced and invoiced in, from its
/// current period on (invoices already finalized keep theirs): one its
/// catalog version prices (and the versions of a pending catalog move, of an
/// open plan transition and of periods not finalized yet too),
/// and only while none of its invoices is unpaid (`CURRENCY_LOCKED`,
/// checked by the store under the tenant's lock). Audited `tenant.currency`.
pub async fn set_currency(
    store: &dyn Store,
    catalogs: &Versions,
    tenant: &Tenant,
    currency: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Tenant, AppError> {
    let catalog = catalogs.get(store, tenant.catalog_version).await?;
    let code = priced_currency("currency", Some(currency), &catalog, tenant.catalog_version)?;
    // Periods not yet finalized are invoiced in the new currency, so their
    // catalog versions must price it too (the last period of an earlier
    // subscription may still be in its grace).
    let book = crate::invoices::Book::open(store, catalogs, &tenant.id, now).await?;
    for tp in book.periods.iter().filter(|tp| !book.is_finalized(tp)) {
        let v = tp.subscription.catalog_version;
        if !catalogs.get(store, v).await?.prices_in(&code) {
            return Err(Error::invalid(format!(
                "currency: invoice {} (catalog version {v}) is not finalized yet, and that version does \
                 not price {code}; change the currency once it is",
                tp.name
            ))
            .with_metadata("field", "currency")
            .into());
        }
    }
    // An open plan transition starts a subscription at its version.
    let open = tollgate_store::TransitionFilter {
        tenant_id: Some(tenant.id.clone()),
        state: None,
    };
    for t in store
        .transitions(&open)
        .await?
        .iter()
        .filter(|t| t.state.is_open())
    {
        if !catalogs.get(store, t.catalog_version).await?.prices_in(&code) {
            return Err(Error::invalid(format!(
                "currency: the tenant's open plan transition {} is to catalog version {}, which does \
                 not price {code}; change the currency once it is done or cancelled",
                t.id, t.catalog_version
            ))
            .with_metadata("field", "currency")
            .into());
        }
    }
    for mv in store.catalog_moves(Some(&tenant.id)).await? {
        let next = catalogs.get(store, mv.catalog_version).await?;
        if !next.prices_in(&code) {
            return Err(Error::invalid(format!(
                "currency: the tenant moves to catalog version {} at its next period, which does not \
                 price {code} (it prices {}); cancel the move first",
                mv.catalog_version,
                next.currencies.join(", ")
            ))
            .with_metadata("field", "currency")
            .into());
        }
    }
    Ok(store.set_tenant_currency(&tenant.id, &code, actor, now).await?)
}

/// Creates a tenant with its `system` namespace and first subscription, on
/// the latest catalog.
pub async fn create_tenant(
    store: &dyn Store,
    catalogs: &Versions,
    req: &TenantRequest,
    actor: &str,
    now: Timestamp,
) -> Result<Tenant, AppError> {
    let name = Name::parse("name", &req.name)?;
    let (version, catalog) = catalogs.latest(store).await?;
    let plan = match req.plan.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => catalog.offered_plan("plan", p)?,
        None => catalog
            .plan(&catalog.default_plan)
            .ok_or_else(|| Error::internal("the catalog's default plan is missing"))?,
    };
    let currency = priced_currency("currency", req.currency.as_deref(), &catalog, version)?;
    let tenant_type = match req.tenant_type.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => TenantType::parse(t)?,
        None => plan.tenant_type,
    };
    if let Some(since) = req.since {
        if since > now {
            return Err(Error::invalid("since: is in the future").into());
        }
        if since < EARLIEST_SINCE {
            return Err(Error::invalid(format!("since: must not be before {EARLIEST_SINCE}")).into());
        }
    }
    let start = req.since.unwrap_or(now);
    let subscription = Subscription::new(
        uuid::Uuid::new_v4().to_string(),
        TenantId::new(String::new()),
        plan,
        version,
        start,
    );
    Ok(store
        .create_tenant(&NewTenant {
            name,
            tenant_type,
            currency,
            subscription,
            now: start,
            recorded_at: now,
            actor: actor.to_owned(),
        })
        .await?)
}

/// Creates a namespace in a tenant.
pub async fn create_namespace(
    store: &dyn Store,
    tenant: &Tenant,
    name: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Namespace, AppError> {
    let name = Name::parse("name", name)?;
    Ok(store.create_namespace(&tenant.id, &name, actor, now).await?)
}

/// What creating an API token takes.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// admin, billing, monitor or platform.
    pub role: String,
    /// Namespaces it is limited to; empty: all.
    pub namespaces: Vec<String>,
    /// Lifetime; `None`: no expiry.
    pub expires_in: Option<SignedDuration>,
    /// A label for people.
    pub name: String,
}

/// A token just created, with its secret (shown once, never stored).
#[derive(Debug, Clone)]
pub struct Issued<T> {
    pub token: T,
    pub secret: String,
}

fn new_secret() -> String {
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    token::format_secret(random)
}

/// Creates an API token of a tenant.
pub async fn create_token(
    store: &dyn Store,
    tenant: &Tenant,
    req: &TokenRequest,
    actor: &str,
    now: Timestamp,
) -> Result<Issued<ApiToken>, AppError> {
    token::check_name("name", &req.name)?;
    let role = Role::parse(&req.role)?;
    let scope = NamespaceScope::from_names("namespaces", &req.namespaces)?;
    let expires_at = match req.expires_in {
        None => None,
        Some(d) if d <= SignedDuration::ZERO => {
            return Err(Error::invalid("expires_in: must be positive").into());
        }
        Some(d) => Some(
            now.checked_add(d)
                .map_err(|_| Error::invalid("expires_in: is too long"))?,
        ),
    };
    let secret = new_secret();
    let token = store
        .create_token(&NewToken {
            actor: actor.to_owned(),
            tenant_id: tenant.id.clone(),
            name: req.name.clone(),
            role,
            scope,
            digest: token::digest(&secret),
            expires_at,
            now,
        })
        .await?;
    Ok(Issued { token, secret })
}

/// Revokes one of a tenant's API tokens (repeating it changes nothing).
pub async fn revoke_token(
    store: &dyn Store,
    tenant: &Tenant,
    id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<ApiToken, AppError> {
    Ok(store.revoke_token(&tenant.id, id, actor, now).await?)
}

/// Creates a named operator token.
pub async fn create_operator_token(
    store: &dyn Store,
    name: &str,
    role: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Issued<OperatorToken>, AppError> {
    token::check_operator_token_name(name)?;
    let role = OperatorRole::parse(role)?;
    let secret = new_secret();
    let token = store
        .create_operator_token(&NewOperatorToken {
            name: name.to_owned(),
            role,
            digest: token::digest(&secret),
            actor: actor.to_owned(),
            now,
        })
        .await?;
    Ok(Issued { token, secret })
}

/// Revokes the live operator token with this name.
pub async fn revoke_operator_token(
    store: &dyn Store,
    name: &str,
    actor: &str,
    now: Timestamp,
) -> Result<OperatorToken, AppError> {
    Ok(store.revoke_operator_token(name, actor, now).await?)
}
