//! Plan transitions: requested here, executed by the transition job.

use axum::Json;
use axum::extract::State;
use tollgate_domain::transition::{self, PlanTransition, TransitionState};

use crate::auth::{Caller, body_namespace, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::extract::{JsonBody, QueryParams};
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::billing::{GetPlanTransitionRsp, InitiatePlanTransitionReq, InitiatePlanTransitionRsp};

/// Requests a move to another plan. The target must be offered and the
/// payload must carry what the target's transition flow requires; the
/// transition then runs in the background (or waits for an operator's
/// approval). One open transition per tenant.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/billing/plan_transition",
    operation_id = "ves.io.schema.billing.plan_transition.CustomAPI.InitiatePlanTransition",
    tag = "plan transitions",
    params(("namespace" = String, Path, description = "Must be system")),
    request_body = InitiatePlanTransitionReq,
    responses(
        (status = 200, body = InitiatePlanTransitionRsp),
        (status = 400, body = ErrorBody,
            description = "An unknown, unoffered or current plan, payload fields the target plan's flow \
                           requires (each named), or add-on changes that do not fit it."),
        (status = 409, body = ErrorBody,
            description = "The tenant already has a plan transition in progress.")
    ),
    security(("APIToken" = []))
)]
pub async fn initiate(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<InitiatePlanTransitionReq>,
) -> Result<Json<InitiatePlanTransitionRsp>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller
        .authorize(&state, Operation::PlanTransitionInitiate, &ns)
        .await?;
    require_system(&ns, "plan transitions")?;
    body_namespace(body.namespace.as_deref())?;
    let new_plan = body
        .new_plan
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("new_plan: is required"))?;
    let payload = body.payload.unwrap_or_default().into_domain()?;
    let now = state.now();
    let (version, catalog) = state.catalogs().latest(state.store()).await?;
    let target = transition::validate_request(&catalog, &auth.tenant.plan, &new_plan, &payload)?;
    let requires_manual_approval = target.transition.requires_manual_approval;
    let t = PlanTransition {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: auth.tenant_id().to_owned(),
        from_plan: auth.tenant.plan.clone(),
        to_plan: new_plan,
        catalog_version: version,
        state: TransitionState::initial(requires_manual_approval),
        payload,
        requested_by: auth.actor(),
        created_at: now,
        updated_at: now,
        reason: None,
    };
    state.store().create_transition(&t, &auth.actor()).await?;
    Ok(Json(InitiatePlanTransitionRsp {
        id: t.id,
        requires_manual_approval,
    }))
}

/// The state of one transition, by its id, without a token (ids are random
/// UUIDs; nothing else about the transition is revealed).
#[utoipa::path(
    get,
    path = "/no_auth/namespaces/system/billing/plan_transition",
    operation_id = "ves.io.schema.billing.plan_transition.CustomAPI.GetPlanTransition",
    tag = "plan transitions",
    params(("id" = String, Query, description = "The id InitiatePlanTransition returned")),
    responses(
        (status = 200, body = GetPlanTransitionRsp),
        (status = 400, body = ErrorBody, description = "No `id`."),
        (status = 404, body = ErrorBody, description = "No plan transition has this id.")
    )
)]
pub async fn get(
    State(state): State<AppState>,
    query: QueryParams,
) -> Result<Json<GetPlanTransitionRsp>, ApiError> {
    let id = query.get("id").unwrap_or("").trim();
    if id.is_empty() {
        return Err(ApiError::invalid("id: is required"));
    }
    let not_found = || ApiError::not_found(format!("plan transition {id:?} not found"));
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?.to_string();
    let t = state.store().transition(&id).await?.ok_or_else(not_found)?;
    Ok(Json(GetPlanTransitionRsp {
        state: crate::wire::enums::transition_state(t.state).to_owned(),
    }))
}
