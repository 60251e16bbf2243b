//! The operator API (beyond the contract): everything the operator CLI does,
//! over HTTP under `/api/operator/…`, behind an operator credential
//! (`Authorization: Bearer <secret>`): a named operator token (`tollgate
//! operator-token create NAME --role operator-admin|operator-read`, stored
//! hashed) or the bootstrap credential `serve` reads from
//! `TOLLGATE_OPERATOR_TOKEN` (an operator-admin named `operator`).
//!
//! Handlers that change anything take [`OperatorAdmin`]; reads take
//! [`Operator`]. Each translates its input, calls the application layer
//! (`tollgate_app`), and translates the answer.

pub mod billing;
pub mod credits;
pub mod tenancy;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tollgate_domain::ErrorKind;
use tollgate_domain::access::OperatorRole;
use tollgate_domain::ids::TenantId;
use tollgate_domain::transition::PlanTransition;
use tollgate_store::{AuditEntry, TransitionFilter};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// How the audit trail names the holder of the bootstrap credential.
pub const ACTOR: &str = "operator";

/// A request carrying a valid operator credential, of either role.
#[derive(Debug, Clone)]
pub struct Operator {
    /// How the audit trail names the caller: `operator` (the bootstrap
    /// credential) or `operator-token/<name>`.
    pub actor: String,
    pub role: OperatorRole,
}

/// A request carrying an operator credential that may change things
/// (`operator-admin`); an `operator-read` token gets 403.
#[derive(Debug, Clone)]
pub struct OperatorAdmin(pub Operator);

impl OperatorAdmin {
    pub fn actor(&self) -> &str {
        &self.0.actor
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, message)
}

/// The answer to a request without a usable credential: 403 while no
/// operator credential exists at all (the API is off), else 401.
async fn refused(state: &AppState, message: &str) -> ApiError {
    let any_token = match state.store().operator_tokens().await {
        Ok(tokens) => tokens.iter().any(|t| t.revoked_at.is_none()),
        Err(e) => return e.into(),
    };
    if state.operator_digest().is_none() && !any_token {
        tollgate_domain::Error::new(
            ErrorKind::PermissionDenied,
            "the operator API is disabled: create an operator token (tollgate operator-token create) \
             or start serve with TOLLGATE_OPERATOR_TOKEN set",
        )
        .with_reason(tollgate_domain::Reason::OperatorApiDisabled)
        .into()
    } else {
        unauthenticated(message)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(secret) = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, secret)| secret.trim().to_owned())
        else {
            return Err(refused(state, "send 'Authorization: Bearer <operator token>'").await);
        };
        let given = tollgate_domain::token::digest(&secret);
        if let Some(expected) = state.operator_digest()
            && bool::from(given.ct_eq(expected))
        {
            return Ok(Operator {
                actor: ACTOR.to_owned(),
                role: OperatorRole::Admin,
            });
        }
        if tollgate_domain::token::is_well_formed(&secret)
            && let Some(token) = state.store().operator_token_by_digest(&given).await?
            && bool::from(token.digest.ct_eq(&given))
        {
            if token.revoked_at.is_some() {
                return Err(unauthenticated("operator token has been revoked"));
            }
            return Ok(Operator {
                actor: token.actor(),
                role: token.role,
            });
        }
        Err(refused(state, "invalid operator token").await)
    }
}

impl FromRequestParts<AppState> for OperatorAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let op = Operator::from_request_parts(parts, state).await?;
        if op.role.may_write() {
            Ok(Self(op))
        } else {
            Err(tollgate_domain::Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{} holds {}: this operation changes state and needs operator-admin",
                    op.actor, op.role
                ),
            )
            .with_reason(tollgate_domain::Reason::OperatorReadOnly)
            .into())
        }
    }
}

/// An optional time of a request (RFC 3339 or unix seconds, as everywhere);
/// the error names `field`.
pub(crate) fn optional_time(field: &str, v: Option<&str>) -> Result<Option<jiff::Timestamp>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            tollgate_domain::metering::parse_time(s)
                .map_err(|e| tollgate_domain::Error::invalid(format!("{field}: {e}")).into())
        })
        .transpose()
}

/// A transition as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionItem {
    pub id: String,
    pub tenant: String,
    pub from_plan: String,
    pub to_plan: String,
    pub state: String,
    pub requested_by: String,
    pub created: String,
    pub updated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deletion_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deletion_feedback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub domain: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionList {
    pub items: Vec<TransitionItem>,
}

/// Renders transitions, naming their tenants.
async fn items(state: &AppState, transitions: Vec<PlanTransition>) -> Result<Vec<TransitionItem>, ApiError> {
    let names = tollgate_store::tenant_names(
        state.store(),
        &transitions.iter().map(|t| &t.tenant_id).collect::<Vec<_>>(),
    )
    .await?;
    Ok(transitions
        .into_iter()
        .map(|t| {
            let tenant = names
                .get(t.tenant_id.as_str())
                .cloned()
                .unwrap_or_else(|| t.tenant_id.to_string());
            item(t, tenant)
        })
        .collect())
}

/// One transition, naming its tenant.
async fn one(state: &AppState, t: PlanTransition) -> Result<TransitionItem, ApiError> {
    Ok(items(state, vec![t]).await?.remove(0))
}

fn item(t: PlanTransition, tenant: String) -> TransitionItem {
    TransitionItem {
        id: t.id,
        tenant,
        from_plan: t.from_plan,
        to_plan: t.to_plan,
        state: crate::wire::enums::transition_state(t.state).to_owned(),
        requested_by: t.requested_by,
        created: t.created_at.to_string(),
        updated: t.updated_at.to_string(),
        reason: t.reason,
        deletion_reason: t
            .payload
            .deletion_reason
            .map(|r| crate::wire::enums::deletion_reason(r).to_owned()),
        deletion_feedback: t.payload.deletion_feedback,
        domain: t.payload.domain,
    }
}

pub(crate) async fn tenant_id(state: &AppState, name: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    match name.filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) => Ok(Some(
            state
                .store()
                .tenant_by_name(n)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("tenant {n:?} not found")))?
                .id,
        )),
    }
}

/// Plan transitions, newest first, optionally of one tenant or in one state.
#[utoipa::path(
    get,
    path = "/api/operator/transitions",
    operation_id = "tollgate.operator.ListTransitions",
    tag = "operator",
    params(
        ("tenant" = Option<String>, Query, description = "Tenant name"),
        ("state" = Option<String>, Query, description = "e.g. WAITING_FOR_APPROVAL"),
    ),
    responses(
        (status = 200, body = TransitionList),
        (status = 400, body = ErrorBody, description = "An unknown `state`."),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn list_transitions(
    State(state): State<AppState>,
    _: Operator,
    query: QueryParams,
) -> Result<Json<TransitionList>, ApiError> {
    let filter = TransitionFilter {
        tenant_id: tenant_id(&state, query.get("tenant")).await?,
        state: match query.get("state").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(crate::wire::enums::parse_transition_state(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "state: unknown state {s:?}; use CREATING, WAITING_FOR_APPROVAL, FINISHED or FAILED"
                ))
            })?),
        },
    };
    let items = items(&state, state.store().transitions(&filter).await?).await?;
    Ok(Json(TransitionList { items }))
}

/// Body of a rejection.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Decision {
    pub reason: Option<String>,
}

/// Approves a transition waiting for approval: it moves to CREATING and runs.
#[utoipa::path(
    post,
    path = "/api/operator/transitions/{id}/approve",
    operation_id = "tollgate.operator.ApproveTransition",
    tag = "operator",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = TransitionItem),
        (status = 404, body = ErrorBody, description = "No plan transition has this id."),
        (status = 409, body = ErrorBody, description = "The transition is not waiting for approval.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
) -> Result<Json<TransitionItem>, ApiError> {
    let t = tollgate_app::transitions::approve(state.store(), &id, op.actor(), state.now()).await?;
    state.dispatch_soon();
    Ok(Json(one(&state, t).await?))
}

/// Rejects a transition waiting for approval: it moves to FAILED with the reason.
#[utoipa::path(
    post,
    path = "/api/operator/transitions/{id}/reject",
    operation_id = "tollgate.operator.RejectTransition",
    tag = "operator",
    params(("id" = String, Path)),
    request_body = Decision,
    responses(
        (status = 200, body = TransitionItem),
        (status = 400, body = ErrorBody, description = "A `reason` over 1024 characters."),
        (status = 404, body = ErrorBody, description = "No plan transition has this id."),
        (status = 409, body = ErrorBody, description = "The transition is not waiting for approval.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Decision>,
) -> Result<Json<TransitionItem>, ApiError> {
    let t = tollgate_app::transitions::reject(
        state.store(),
        &id,
        body.reason.as_deref(),
        op.actor(),
        state.now(),
    )
    .await?;
    state.dispatch_soon();
    Ok(Json(one(&state, t).await?))
}

/// Cancels an open transition (CREATING or WAITING_FOR_APPROVAL), whoever
/// holds it: it moves to FAILED with the reason and nothing of it is applied
/// (a worker executing it at that moment cannot complete it).
#[utoipa::path(
    post,
    path = "/api/operator/transitions/{id}/cancel",
    operation_id = "tollgate.operator.CancelTransition",
    tag = "operator",
    params(("id" = String, Path)),
    request_body = Decision,
    responses(
        (status = 200, body = TransitionItem),
        (status = 400, body = ErrorBody, description = "A `reason` over 1024 characters."),
        (status = 404, body = ErrorBody, description = "No plan transition has this id."),
        (status = 409, body = ErrorBody, description = "The transition already finished or failed.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    op: OperatorAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Decision>,
) -> Result<Json<TransitionItem>, ApiError> {
    let t = tollgate_app::transitions::cancel(
        state.store(),
        &id,
        body.reason.as_deref(),
        op.actor(),
        state.now(),
    )
    .await?;
    state.dispatch_soon();
    Ok(Json(one(&state, t).await?))
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub at: String,
    /// Absent for changes of no tenant (e.g. catalog publishes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tenant: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub before: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditItem>,
}

/// Renders audit entries, naming tenants.
pub async fn audit_items(state: &AppState, entries: Vec<AuditEntry>) -> Result<Vec<AuditItem>, ApiError> {
    // Stored as JSON; anything else is shown as the text it is, never dropped.
    // Unset (null) values are left out, as everywhere on the wire.
    let parse = |s: Option<String>| {
        s.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
            .and_then(crate::wire::without_nulls)
    };
    let names = tollgate_store::tenant_names(
        state.store(),
        &entries
            .iter()
            .filter_map(|e| e.tenant_id.as_ref())
            .collect::<Vec<_>>(),
    )
    .await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let tenant = e.tenant_id.map(|id| {
            names
                .get(id.as_str())
                .cloned()
                .unwrap_or_else(|| id.into_string())
        });
        out.push(AuditItem {
            at: e.at.to_string(),
            tenant,
            actor: e.actor,
            action: e.action,
            target: e.target,
            before: parse(e.before),
            after: parse(e.after),
        });
    }
    Ok(out)
}

/// The audit trail, newest first.
#[utoipa::path(
    get,
    path = "/api/operator/audit",
    operation_id = "tollgate.operator.ListAudit",
    tag = "operator",
    params(
        ("tenant" = Option<String>, Query, description = "Tenant name; all when absent"),
        ("limit" = Option<u32>, Query, description = "At most this many entries (default 100, max 1000)"),
    ),
    responses(
        (status = 200, body = AuditList),
        (status = 400, body = ErrorBody, description = "`limit` is not from 1 to 1000."),
        (status = 404, body = ErrorBody, description = "No tenant has this name.")
    ),
    security(("OperatorToken" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    _: Operator,
    query: QueryParams,
) -> Result<Json<AuditList>, ApiError> {
    let tenant = tenant_id(&state, query.get("tenant")).await?;
    let limit = match query.get("limit") {
        None | Some("") => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::invalid(format!("limit: expected 1 to 1000, got {l:?}")))?,
    };
    let entries = state.store().audit(tenant.as_ref(), limit).await?;
    Ok(Json(AuditList {
        items: audit_items(&state, entries).await?,
    }))
}
