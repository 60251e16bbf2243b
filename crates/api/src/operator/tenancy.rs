//! Operator API: tenants, namespaces, API tokens and operator tokens.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_app::tenancy::{self, TenantRequest, TokenRequest};
use tollgate_domain::Error;
use tollgate_domain::access::NamespaceScope;
use tollgate_domain::tenant::{Namespace, Tenant};
use tollgate_domain::token::{ApiToken, OperatorToken};
use utoipa::ToSchema;

use super::{Operator, OperatorAdmin};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::state::AppState;

impl From<tollgate_app::AppError> for ApiError {
    fn from(e: tollgate_app::AppError) -> Self {
        match e {
            tollgate_app::AppError::Rule(e) => e.into(),
            tollgate_app::AppError::Store(e) => e.into(),
        }
    }
}

/// A tenant as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantItem {
    pub name: String,
    pub id: String,
    /// FREEMIUM or ENTERPRISE.
    #[serde(rename = "type")]
    pub tenant_type: String,
    pub plan: String,
    /// The catalog version of its current subscription.
    pub catalog_version: i64,
    /// The ISO 4217 currency it is priced and invoiced in (absent only for
    /// a tenant from before currencies not pinned yet: its catalog's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub currency: Option<String>,
    /// When it started (backdated with `since`).
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub domain: Option<String>,
    /// Present while the tenant is suspended for unpaid invoices: its quota
    /// reservations are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub suspended: Option<SuspensionItem>,
}

/// A tenant's suspension for unpaid invoices (dunning).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionItem {
    /// When it was suspended.
    pub since: String,
    /// Who suspended it (`tollgate/dunning`: the suspension job).
    pub by: String,
    /// The invoices OVERDUE past the suspension delay it was suspended for.
    pub invoices: Vec<String>,
}

pub(crate) fn tenant_item(t: Tenant) -> TenantItem {
    TenantItem {
        name: t.name.to_string(),
        id: t.id.into_string(),
        tenant_type: t.tenant_type.to_string(),
        plan: t.plan.into_string(),
        catalog_version: t.catalog_version,
        currency: t.currency,
        created: t.created_at.to_string(),
        domain: t.domain,
        suspended: t.suspension.map(|s| SuspensionItem {
            since: s.since.to_string(),
            by: s.by,
            invoices: s.invoices.into_iter().map(|i| i.into_string()).collect(),
        }),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<TenantItem>,
}

/// One tenant with its namespaces and add-ons.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantItem,
    pub namespaces: Vec<NamespaceItem>,
    /// Subscribed add-on services.
    pub addons: Vec<String>,
}

/// Body of a tenant creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateTenant {
    #[serde(default)]
    pub name: String,
    /// An offered plan of the latest catalog; default: its default plan.
    pub plan: Option<String>,
    /// FREEMIUM or ENTERPRISE; default: the plan's tenant type.
    #[serde(rename = "type")]
    pub tenant_type: Option<String>,
    /// Backdates the tenant and its first subscription, to import usage
    /// history (RFC 3339 or unix seconds; not in the future, not before 1970).
    pub since: Option<String>,
    /// The ISO 4217 currency it is priced and invoiced in: one the latest
    /// catalog prices; default: the catalog's first.
    pub currency: Option<String>,
}

/// Body of a change of a tenant's currency.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SetTenantCurrency {
    /// An ISO 4217 code the tenant's catalog version prices.
    #[serde(default)]
    pub currency: String,
}

/// Creates a tenant, its `system` namespace and its first subscription.
#[utoipa::path(
    post,
    path = "/api/operator/tenants",
    operation_id = "tollgate.operator.CreateTenant",
    tag = "operator",
    request_body = CreateTenant,
    responses(
        (status = 200, body = TenantItem),
        (status = 400, body = ErrorBody, description = "An invalid name, an unknown or unoffered plan, an unknown type, a `since` in the future or before 1970, or a `currency` the latest catalog does not price."),
        (status = 409, body = ErrorBody, description = "A tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<Json<TenantItem>, ApiError> {
    let since = super::optional_time("since", body.since.as_deref())?;
    let req = TenantRequest {
        name: body.name,
        plan: body.plan,
        tenant_type: body.tenant_type,
        since,
        currency: body.currency,
    };
    let versions = state.catalogs().versions();
    let t = tenancy::create_tenant(state.store(), &versions, &req, op.actor(), state.now()).await?;
    Ok(Json(tenant_item(t)))
}

/// Every tenant, by name.
#[utoipa::path(
    get,
    path = "/api/operator/tenants",
    operation_id = "tollgate.operator.ListTenants",
    tag = "operator",
    responses((status = 200, body = TenantList)),
    security(("OperatorToken" = []))
)]
pub async fn list_tenants(State(state): State<AppState>, _: Operator) -> Result<Json<TenantList>, ApiError> {
    let items = state
        .store()
        .tenants()
        .await?
        .into_iter()
        .map(tenant_item)
        .collect();
    Ok(Json(TenantList { items }))
}

/// One tenant, with its namespaces and add-ons.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}",
    operation_id = "tollgate.operator.GetTenant",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, body = TenantDetail),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn get_tenant(
    State(state): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    let t = tenancy::tenant(state.store(), &name).await?;
    let namespaces = state.store().namespaces(&t.id).await?;
    let addons = state.store().addons(&t.id).await?;
    Ok(Json(TenantDetail {
        tenant: tenant_item(t),
        namespaces: namespaces.into_iter().map(namespace_item).collect(),
        addons,
    }))
}

/// Changes the currency a tenant is priced and invoiced in, from its
/// current period on (finalized invoices keep theirs). Only while none of
/// its invoices is unpaid (ISSUED or OVERDUE); audited (`tenant.currency`).
#[utoipa::path(
    put,
    path = "/api/operator/tenants/{tenant}/currency",
    operation_id = "tollgate.operator.SetTenantCurrency",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = SetTenantCurrency,
    responses(
        (status = 200, body = TenantItem),
        (status = 400, body = ErrorBody, description = "Not an ISO 4217 code, or one the tenant's catalog version (or the version of a pending catalog move, or of a period not yet finalized) does not price."),
        (status = 404, body = ErrorBody, description = "No tenant has this name."),
        (status = 409, body = ErrorBody, description = "The tenant has unpaid invoices (`CURRENCY_LOCKED`, naming them): pay or cancel them first.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn set_tenant_currency(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SetTenantCurrency>,
) -> Result<Json<TenantItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &name).await?;
    let versions = state.catalogs().versions();
    let after = tenancy::set_currency(
        state.store(),
        &versions,
        &t,
        &body.currency,
        op.actor(),
        state.now(),
    )
    .await?;
    Ok(Json(tenant_item(after)))
}

/// Lifts a tenant's suspension by hand: its quota reservations work again.
/// The invoices OVERDUE now no longer suspend it (they stay unpaid and are
/// charged again when it changes payment methods); the next invoice to go
/// OVERDUE does, once past the suspension delay.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/reinstate",
    operation_id = "tollgate.operator.ReinstateTenant",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, body = TenantItem),
        (status = 404, body = ErrorBody, description = "No tenant has this name."),
        (status = 409, body = ErrorBody, description = "The tenant is not suspended (`TENANT_NOT_SUSPENDED`).")
    ),
    security(("OperatorToken" = []))
)]
pub async fn reinstate_tenant(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(name): Path<String>,
) -> Result<Json<TenantItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &name).await?;
    let after = tollgate_app::dunning::reinstate(state.store(), &t, op.actor(), state.now()).await?;
    state.dispatch_soon();
    Ok(Json(tenant_item(after)))
}

/// A namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceItem {
    pub name: String,
    pub uid: String,
    pub created: String,
}

fn namespace_item(ns: Namespace) -> NamespaceItem {
    NamespaceItem {
        name: ns.name.to_string(),
        uid: ns.uid,
        created: ns.created_at.to_string(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    pub items: Vec<NamespaceItem>,
}

/// Body of a namespace creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateNamespace {
    #[serde(default)]
    pub name: String,
}

/// Creates a namespace in a tenant.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/namespaces",
    operation_id = "tollgate.operator.CreateNamespace",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = CreateNamespace,
    responses(
        (status = 200, body = NamespaceItem),
        (status = 400, body = ErrorBody, description = "The name is not a DNS label."),
        (status = 404, body = ErrorBody, description = "No tenant has this name."),
        (status = 409, body = ErrorBody, description = "The tenant has a namespace of this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn create_namespace(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<CreateNamespace>,
) -> Result<Json<NamespaceItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let ns = tenancy::create_namespace(state.store(), &t, &body.name, op.actor(), state.now()).await?;
    Ok(Json(namespace_item(ns)))
}

/// A tenant's namespaces.
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/namespaces",
    operation_id = "tollgate.operator.ListNamespaces",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, body = NamespaceList),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn list_namespaces(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<NamespaceList>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let items = state
        .store()
        .namespaces(&t.id)
        .await?
        .into_iter()
        .map(namespace_item)
        .collect();
    Ok(Json(NamespaceList { items }))
}

/// An API token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenItem {
    pub id: String,
    pub name: String,
    /// admin, billing, monitor or platform.
    pub role: String,
    /// The namespaces it may act in; `["*"]` for all.
    pub namespaces: Vec<String>,
    /// active, expired or revoked.
    pub status: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked: Option<String>,
}

fn token_item(t: ApiToken, now: jiff::Timestamp) -> TokenItem {
    TokenItem {
        status: if t.revoked_at.is_some() {
            "revoked"
        } else if t.is_active(now) {
            "active"
        } else {
            "expired"
        }
        .to_owned(),
        id: t.id,
        name: t.name,
        role: t.role.to_string(),
        namespaces: match t.scope {
            NamespaceScope::All => vec!["*".to_owned()],
            NamespaceScope::Only(list) => list.into_iter().map(|n| n.to_string()).collect(),
        },
        created: t.created_at.to_string(),
        expires: t.expires_at.map(|e| e.to_string()),
        revoked: t.revoked_at.map(|e| e.to_string()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenItem>,
}

/// A token just created: its secret is shown this once and never stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// `Authorization: APIToken <secret>`.
    pub secret: String,
    pub token: TokenItem,
}

/// Body of an API token creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateToken {
    /// admin, billing, monitor (read-only) or platform (quota usage and metering only).
    #[serde(default)]
    pub role: String,
    /// Limits the token to these namespaces; empty: all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Lifetime as a protobuf Duration (`"86400s"`) or seconds; absent: no expiry.
    #[schema(value_type = Option<String>, example = "2592000s")]
    pub expires_in: Option<serde_json::Value>,
    /// A label shown in lists.
    #[serde(default)]
    pub name: String,
}

/// A lifetime: `"<seconds>s"` (protobuf's JSON Duration) or a number of seconds.
fn lifetime(v: &serde_json::Value) -> Result<jiff::SignedDuration, Error> {
    let bad = || {
        Error::invalid(format!(
            "expires_in: expected a duration such as \"86400s\", got {v}"
        ))
    };
    let secs = match v {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        serde_json::Value::String(s) => s
            .strip_suffix('s')
            .unwrap_or(s)
            .parse::<i64>()
            .map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(jiff::SignedDuration::from_secs(secs))
}

/// Creates an API token of a tenant; the answer holds its secret, once.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/tokens",
    operation_id = "tollgate.operator.CreateToken",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = CreateToken,
    responses(
        (status = 200, body = CreatedToken),
        (status = 400, body = ErrorBody, description = "An unknown role, an invalid namespace or name, or a lifetime that is not positive."),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or a namespace does not exist.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<Json<CreatedToken>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let req = TokenRequest {
        role: body.role,
        namespaces: body.namespaces,
        expires_in: body.expires_in.as_ref().map(lifetime).transpose()?,
        name: body.name,
    };
    let now = state.now();
    let issued = tenancy::create_token(state.store(), &t, &req, op.actor(), now).await?;
    Ok(Json(CreatedToken {
        secret: issued.secret,
        token: token_item(issued.token, now),
    }))
}

/// A tenant's API tokens, oldest first (never their secrets).
#[utoipa::path(
    get,
    path = "/api/operator/tenants/{tenant}/tokens",
    operation_id = "tollgate.operator.ListTokens",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, body = TokenList),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    _: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<TokenList>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let now = state.now();
    let items = state
        .store()
        .tokens(&t.id)
        .await?
        .into_iter()
        .map(|tok| token_item(tok, now))
        .collect();
    Ok(Json(TokenList { items }))
}

/// Revokes one of a tenant's API tokens; it stops working at once.
/// Revoking a revoked token changes nothing.
#[utoipa::path(
    post,
    path = "/api/operator/tenants/{tenant}/tokens/{id}/revoke",
    operation_id = "tollgate.operator.RevokeToken",
    tag = "operator",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path)),
    responses(
        (status = 200, body = TokenItem),
        (status = 404, body = ErrorBody, description = "No tenant has this name, or it has no token with this id.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<TokenItem>, ApiError> {
    let t = tenancy::tenant(state.store(), &tenant).await?;
    let now = state.now();
    let tok = tenancy::revoke_token(state.store(), &t, &id, op.actor(), now).await?;
    Ok(Json(token_item(tok, now)))
}

/// An operator token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorTokenItem {
    pub name: String,
    /// operator-admin or operator-read.
    pub role: String,
    /// active or revoked.
    pub status: String,
    pub created: String,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revoked: Option<String>,
}

fn operator_token_item(t: OperatorToken) -> OperatorTokenItem {
    OperatorTokenItem {
        status: if t.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        }
        .to_owned(),
        name: t.name,
        role: t.role.to_string(),
        created: t.created_at.to_string(),
        created_by: t.created_by,
        revoked: t.revoked_at.map(|e| e.to_string()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorTokenList {
    pub items: Vec<OperatorTokenItem>,
}

/// An operator token just created: its secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOperatorToken {
    /// `Authorization: Bearer <secret>`.
    pub secret: String,
    pub token: OperatorTokenItem,
}

/// Body of an operator token creation.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateOperatorToken {
    /// A DNS label; names the holder in the audit trail.
    #[serde(default)]
    pub name: String,
    /// operator-admin or operator-read.
    #[serde(default)]
    pub role: String,
}

/// Creates a named operator token; the answer holds its secret, once.
#[utoipa::path(
    post,
    path = "/api/operator/operator-tokens",
    operation_id = "tollgate.operator.CreateOperatorToken",
    tag = "operator",
    request_body = CreateOperatorToken,
    responses(
        (status = 200, body = CreatedOperatorToken),
        (status = 400, body = ErrorBody, description = "The name is not a DNS label, or the role is unknown."),
        (status = 409, body = ErrorBody, description = "A live operator token has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn create_operator_token(
    State(state): State<AppState>,
    op: OperatorAdmin,
    JsonBody(body): JsonBody<CreateOperatorToken>,
) -> Result<Json<CreatedOperatorToken>, ApiError> {
    let issued =
        tenancy::create_operator_token(state.store(), &body.name, &body.role, op.actor(), state.now())
            .await?;
    Ok(Json(CreatedOperatorToken {
        secret: issued.secret,
        token: operator_token_item(issued.token),
    }))
}

/// Every operator token, oldest first (never their secrets).
#[utoipa::path(
    get,
    path = "/api/operator/operator-tokens",
    operation_id = "tollgate.operator.ListOperatorTokens",
    tag = "operator",
    responses((status = 200, body = OperatorTokenList)),
    security(("OperatorToken" = []))
)]
pub async fn list_operator_tokens(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<OperatorTokenList>, ApiError> {
    let items = state
        .store()
        .operator_tokens()
        .await?
        .into_iter()
        .map(operator_token_item)
        .collect();
    Ok(Json(OperatorTokenList { items }))
}

/// Revokes the live operator token with this name; it stops working at once.
#[utoipa::path(
    post,
    path = "/api/operator/operator-tokens/{name}/revoke",
    operation_id = "tollgate.operator.RevokeOperatorToken",
    tag = "operator",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = OperatorTokenItem),
        (status = 404, body = ErrorBody, description = "No live operator token has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn revoke_operator_token(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(name): Path<String>,
) -> Result<Json<OperatorTokenItem>, ApiError> {
    let t = tenancy::revoke_operator_token(state.store(), &name, op.actor(), state.now()).await?;
    Ok(Json(operator_token_item(t)))
}
