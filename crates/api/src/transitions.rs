//! Plan transitions: requested here, executed by the transition job.

use axum::Json;
use axum::extract::State;
use tollgate_domain::transition::TransitionState;

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
    let new_plan = body.new_plan.unwrap_or_default();
    let payload = body.payload.unwrap_or_default().into_domain()?;
    let versions = state.catalogs().versions();
    let t = tollgate_app::plans::request_transition(
        state.store(),
        &versions,
        state.providers(),
        &auth.tenant,
        &new_plan,
        payload,
        &auth.actor(),
        state.now(),
    )
    .await?;
    let requires_manual_approval = t.state == TransitionState::WaitingForApproval;
    state.dispatch_soon();
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
