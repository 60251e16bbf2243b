//! Authentication (`Authorization: APIToken <secret>`) and authorization of
//! each operation.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;
use tollgate_domain::access;
use tollgate_domain::ids::TenantId;
use tollgate_domain::names::Name;
use tollgate_domain::tenant::Tenant;
use tollgate_domain::token::{self, ApiToken};
use tollgate_domain::{Error, ErrorKind};

use crate::error::ApiError;
use crate::operations::Operation;
use crate::state::AppState;

/// The authenticated caller: a valid, unexpired, unrevoked token, and its tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: ApiToken,
    pub tenant: Tenant,
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            unauthenticated("missing Authorization header; send 'Authorization: APIToken <token>'")
        })?;
        let value = header
            .to_str()
            .map_err(|_| unauthenticated("malformed Authorization header"))?;
        let (scheme, secret) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| unauthenticated("malformed Authorization header; expected 'APIToken <token>'"))?;
        if !scheme.eq_ignore_ascii_case("APIToken") {
            return Err(unauthenticated(
                "unsupported authorization scheme; use 'APIToken <token>'",
            ));
        }
        let secret = secret.trim();
        if !token::is_well_formed(secret) {
            return Err(unauthenticated("invalid API token"));
        }
        let digest = token::digest(secret);
        let found = state.store().token_by_digest(&digest).await?;
        // The lookup is by digest; compare again in constant time so that no
        // code path branches on secret-dependent bytes.
        let (token, tenant) = found
            .filter(|(t, _)| bool::from(t.digest.ct_eq(&digest)))
            .ok_or_else(|| unauthenticated("invalid API token"))?;
        let now = state.now();
        if token.revoked_at.is_some() {
            return Err(unauthenticated("API token has been revoked"));
        }
        if !token.is_active(now) {
            return Err(unauthenticated("API token has expired"));
        }
        Ok(Caller { token, tenant })
    }
}

/// A caller cleared for one operation in one namespace.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub token: ApiToken,
    pub tenant: Tenant,
    pub namespace: Name,
}

impl Authorized {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant.id
    }

    pub fn tenant_name(&self) -> &str {
        self.tenant.name.as_str()
    }

    /// How the audit trail names this caller.
    pub fn actor(&self) -> String {
        format!("token/{}", self.token.id)
    }
}

/// Parses a namespace from the path.
pub fn namespace(raw: &str) -> Result<Name, ApiError> {
    Ok(Name::parse("namespace", raw)?)
}

/// Refuses namespaces other than `system` for things that live only there.
pub fn require_system(ns: &Name, what: &str) -> Result<(), ApiError> {
    if ns.is_system() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "namespace: {what} live in namespace \"system\", not {:?}",
            ns.as_str()
        ))
        .into())
    }
}

/// Checks a `namespace` field of a request body, which the contract fixes to
/// `system`.
pub fn body_namespace(given: Option<&str>) -> Result<(), ApiError> {
    match given {
        None | Some("") | Some("system") => Ok(()),
        Some(other) => Err(Error::invalid(format!("namespace: must be \"system\", got {other:?}")).into()),
    }
}

impl Caller {
    /// Checks the token's role and namespace scope, then that the namespace
    /// exists, and only then charges the tenant's API rate limit for `op`:
    /// a request the tenant's own tokens may not make (a monitor token
    /// posting quotas, a token scoped elsewhere) must not drain the bucket
    /// that the tenant's permitted callers share.
    pub async fn authorize(self, state: &AppState, op: Operation, ns: &Name) -> Result<Authorized, ApiError> {
        let Caller { token, tenant } = self;
        access::authorize(token.role, &token.scope, op.permission(), ns.as_str())?;
        if !ns.is_system() && !state.store().namespace_exists(&tenant.id, ns.as_str()).await? {
            return Err(Error::not_found(format!("namespace {:?} not found", ns.as_str())).into());
        }
        state.limiter().check(state, &tenant, op).await?;
        Ok(Authorized {
            token,
            tenant,
            namespace: ns.clone(),
        })
    }
}
