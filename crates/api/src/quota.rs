//! The quota family: the seven contract operations and the reserve, release
//! and reconcile extensions that enforce quotas for platform services. The
//! rules of a usage change (its key, amount caps, `request_id`, why a
//! reservation is refused) are `domain::quota`'s; this translates.

use axum::Json;
use axum::extract::State;
use tollgate_domain::names::Name;
use tollgate_domain::object::{ObjectMeta, validate_user_meta};
use tollgate_domain::quota::{self, AmountKind, KeyFamily, QuotaObject};
use tollgate_store::UsageOp;

use crate::auth::{Authorized, Caller, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::meta::{ObjectGetMeta, ObjectMetaInput, SystemObjectGetMeta};
use crate::wire::quota::*;

/// Creator class recorded on objects created through the API.
const CREATOR_CLASS: &str = "api_token";

fn not_found(ns: &Name, name: &str) -> ApiError {
    ApiError::not_found(format!("quota {name:?} not found in namespace {:?}", ns.as_str()))
}

/// Validates `metadata` of a create or replace against the path.
fn object_meta(
    input: Option<ObjectMetaInput>,
    ns: &Name,
    path_name: Option<&str>,
    auth: &Authorized,
    now: jiff::Timestamp,
) -> Result<ObjectMeta, ApiError> {
    let m = input.unwrap_or_default();
    let given = m.name.as_deref().filter(|n| !n.is_empty());
    let name = match (path_name, given) {
        (Some(p), Some(g)) if p != g => {
            return Err(ApiError::invalid(format!(
                "metadata.name: {g:?} does not match the name in the path {p:?}"
            )));
        }
        (Some(p), _) => Name::parse("name", p)?,
        (None, g) => Name::parse("metadata.name", g.unwrap_or(""))?,
    };
    if let Some(given_ns) = m.namespace.as_deref().filter(|n| !n.is_empty())
        && given_ns != ns.as_str()
    {
        return Err(ApiError::invalid(format!(
            "metadata.namespace: {given_ns:?} does not match the namespace in the path {:?}",
            ns.as_str()
        )));
    }
    let labels = m.labels.unwrap_or_default();
    let annotations = m.annotations.unwrap_or_default();
    let description = m.description.unwrap_or_default();
    validate_user_meta(&labels, &annotations, &description)?;
    Ok(ObjectMeta {
        namespace: ns.clone(),
        name,
        uid: uuid::Uuid::new_v4().to_string(),
        labels,
        annotations,
        description,
        disable: m.disable.unwrap_or(false),
        creator_class: CREATOR_CLASS.to_owned(),
        creator_id: auth.token.id.clone(),
        created_at: now,
        modified_at: now,
    })
}

/// Create a quota object.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{metadata.namespace}/quotas",
    operation_id = "ves.io.schema.quota.API.Create",
    tag = "quota",
    params(("metadata.namespace" = String, Path, description = "Namespace; must be system")),
    request_body = QuotaWriteRequest,
    responses(
        (status = 200, body = QuotaCreateResponse),
        (status = 400, body = ErrorBody,
            description = "Invalid metadata or spec (names, labels, annotations, limits); the message names \
                           the field."),
        (status = 409, body = ErrorBody, description = "A quota object of this name already exists.")
    ),
    security(("APIToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<QuotaWriteRequest>,
) -> Result<Json<QuotaCreateResponse>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaCreate, &ns).await?;
    require_system(&ns, "quota objects")?;
    let now = state.now();
    let meta = object_meta(body.metadata, &ns, None, &auth, now)?;
    let spec = body.spec.unwrap_or_default().into_domain()?;
    let quota = QuotaObject { meta, spec };
    tollgate_app::quotas::create(state.store(), &auth.tenant, &quota, &auth.actor()).await?;
    state.limiter().invalidate(auth.tenant_id());
    Ok(Json(QuotaCreateResponse::new(&quota, auth.tenant_name())))
}

/// Replace a quota object's metadata and spec.
#[utoipa::path(
    put,
    path = "/api/web/namespaces/{metadata.namespace}/quotas/{metadata.name}",
    operation_id = "ves.io.schema.quota.API.Replace",
    tag = "quota",
    params(
        ("metadata.namespace" = String, Path, description = "Namespace; must be system"),
        ("metadata.name" = String, Path, description = "Name of the quota object"),
    ),
    request_body = QuotaWriteRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "Invalid metadata or spec, or a `metadata.name` other than the path's; the message \
                           names the field."),
        (status = 404, body = ErrorBody, description = "The quota object does not exist.")
    ),
    security(("APIToken" = []))
)]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<QuotaWriteRequest>,
) -> Result<Json<Empty>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaReplace, &ns).await?;
    require_system(&ns, "quota objects")?;
    let now = state.now();
    let meta = object_meta(body.metadata, &ns, Some(&name), &auth, now)?;
    let spec = body.spec.unwrap_or_default().into_domain()?;
    tollgate_app::quotas::replace(
        state.store(),
        &auth.tenant,
        &QuotaObject { meta, spec },
        &auth.actor(),
    )
    .await
    .map_err(|e| match e {
        tollgate_app::AppError::Store(tollgate_store::StoreError::NotFound(_)) => not_found(&ns, &name),
        other => other.into(),
    })?;
    state.limiter().invalidate(auth.tenant_id());
    Ok(Json(Empty {}))
}

/// The seven `response_format` values of a generic GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Default,
    ForCreate,
    ForReplace,
    Status,
    Read,
    ReferringObjects,
    BrokenReferences,
}

impl ResponseFormat {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Self::Default);
        };
        let upper = raw.to_ascii_uppercase();
        let short = upper.strip_prefix("GET_RSP_FORMAT_").unwrap_or(&upper);
        Ok(match short {
            "DEFAULT" | "0" => Self::Default,
            "FOR_CREATE" | "1" => Self::ForCreate,
            "FOR_REPLACE" | "2" => Self::ForReplace,
            "STATUS" | "3" => Self::Status,
            "READ" | "4" => Self::Read,
            "REFERRING_OBJECTS" | "5" => Self::ReferringObjects,
            "BROKEN_REFERENCES" | "6" => Self::BrokenReferences,
            _ => {
                return Err(ApiError::invalid(format!(
                    "response_format: unknown value {raw:?}; use GET_RSP_FORMAT_DEFAULT, _FOR_CREATE, \
                     _FOR_REPLACE, _STATUS, _READ, _REFERRING_OBJECTS, _BROKEN_REFERENCES or 0 to 6"
                )));
            }
        })
    }
}

/// Read a quota object.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/quotas/{name}",
    operation_id = "ves.io.schema.quota.API.Get",
    tag = "quota",
    params(
        ("namespace" = String, Path, description = "Namespace; must be system"),
        ("name" = String, Path, description = "Name of the quota object"),
        ("response_format" = Option<String>, Query,
            description = "GET_RSP_FORMAT_DEFAULT (0), _FOR_CREATE (1), _FOR_REPLACE (2), _STATUS (3), \
                           _READ (4), _REFERRING_OBJECTS (5), _BROKEN_REFERENCES (6)"),
    ),
    responses(
        (status = 200, body = QuotaGetResponse),
        (status = 400, body = ErrorBody, description = "An invalid name or an unknown `response_format`."),
        (status = 404, body = ErrorBody, description = "The quota object does not exist.")
    ),
    security(("APIToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Json<QuotaGetResponse>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaGet, &ns).await?;
    require_system(&ns, "quota objects")?;
    let format = ResponseFormat::parse(query.get("response_format"))?;
    let name = Name::parse("name", &name)?;
    let quota = state
        .store()
        .quota(auth.tenant_id(), ns.as_str(), name.as_str())
        .await?
        .ok_or_else(|| not_found(&ns, name.as_str()))?;
    let form = |name: String| QuotaForm {
        metadata: ObjectGetMeta {
            name,
            ..ObjectGetMeta::from(&quota.meta)
        },
        spec: (&quota.spec).into(),
    };
    let mut out = QuotaGetResponse::default();
    match format {
        ResponseFormat::Default | ResponseFormat::Read => {
            out.metadata = Some((&quota.meta).into());
            out.system_metadata = Some(SystemObjectGetMeta::new(&quota.meta, auth.tenant_name()));
            out.spec = Some((&quota.spec).into());
            if format == ResponseFormat::Default {
                out.status = Some(Vec::new());
            }
        }
        ResponseFormat::ForCreate => out.create_form = Some(form(String::new())),
        ResponseFormat::ForReplace => out.replace_form = Some(form(quota.meta.name.to_string())),
        ResponseFormat::Status => out.status = Some(Vec::new()),
        // Quota objects refer to nothing and nothing refers to them.
        ResponseFormat::ReferringObjects => out.referring_objects = Some(Vec::new()),
        ResponseFormat::BrokenReferences => {
            out.deleted_referred_objects = Some(Vec::new());
            out.disabled_referred_objects = Some(Vec::new());
        }
    }
    Ok(Json(out))
}

/// List quota objects.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/quotas",
    operation_id = "ves.io.schema.quota.API.List",
    tag = "quota",
    params(
        ("namespace" = String, Path, description = "Namespace; must be system"),
        ("label_filter" = Option<String>, Query, description = "Label selector, e.g. env=prod,tier in (a,b)"),
        ("report_fields" = Option<Vec<String>>, Query, description = "Non-empty: add metadata, system_metadata, get_spec"),
        ("report_status_fields" = Option<Vec<String>>, Query, description = "Non-empty: add status_set"),
    ),
    responses(
        (status = 200, body = QuotaListResponse),
        (status = 400, body = ErrorBody, description = "An invalid `label_filter`.")
    ),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    query: QueryParams,
) -> Result<Json<QuotaListResponse>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaList, &ns).await?;
    require_system(&ns, "quota objects")?;
    let selector =
        tollgate_domain::labels::Selector::parse("label_filter", query.get("label_filter").unwrap_or(""))?;
    let with_fields = !query.all("report_fields").is_empty();
    let with_status = !query.all("report_status_fields").is_empty();
    let quotas = state.store().quotas(auth.tenant_id(), ns.as_str()).await?;
    let items = quotas
        .iter()
        .filter(|q| selector.matches(&q.meta.labels))
        .map(|q| QuotaListItem {
            tenant: auth.tenant_name().to_owned(),
            namespace: q.meta.namespace.to_string(),
            name: q.meta.name.to_string(),
            uid: q.meta.uid.clone(),
            labels: q.meta.labels.clone(),
            annotations: q.meta.annotations.clone(),
            description: q.meta.description.clone(),
            disabled: q.meta.disable,
            owner_view: None,
            metadata: with_fields.then(|| (&q.meta).into()),
            system_metadata: with_fields.then(|| SystemObjectGetMeta::new(&q.meta, auth.tenant_name())),
            get_spec: with_fields.then(|| (&q.spec).into()),
            status_set: with_status.then(Vec::new),
        })
        .collect();
    Ok(Json(QuotaListResponse {
        items,
        errors: Vec::new(),
    }))
}

/// Delete a quota object. Options come from a JSON body, the query string, or
/// nowhere.
#[utoipa::path(
    delete,
    path = "/api/web/namespaces/{namespace}/quotas/{name}",
    operation_id = "ves.io.schema.quota.API.Delete",
    tag = "quota",
    params(
        ("namespace" = String, Path, description = "Namespace; must be system"),
        ("name" = String, Path, description = "Name of the quota object"),
    ),
    request_body = QuotaDeleteRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "A `name` or `namespace` in the body other than the path's, or an invalid \
                           `fail_if_referred`."),
        (status = 404, body = ErrorBody, description = "The quota object does not exist.")
    ),
    security(("APIToken" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    query: QueryParams,
    JsonBody(options): JsonBody<QuotaDeleteRequest>,
) -> Result<Json<Empty>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaDelete, &ns).await?;
    require_system(&ns, "quota objects")?;
    for (field, given, expected) in [
        ("name", options.name.as_deref(), name.as_str()),
        ("namespace", options.namespace.as_deref(), ns.as_str()),
    ] {
        if let Some(g) = given.filter(|g| !g.is_empty() && *g != expected) {
            return Err(ApiError::invalid(format!(
                "{field}: {g:?} in the body does not match {expected:?} in the path"
            )));
        }
    }
    // `fail_if_referred` (body or query) is accepted; nothing refers to quota
    // objects, so it never blocks a delete.
    query.bool("fail_if_referred")?;
    let name = Name::parse("name", &name)?;
    tollgate_app::quotas::delete(
        state.store(),
        &auth.tenant,
        &ns,
        &name,
        &auth.actor(),
        state.now(),
    )
    .await
    .map_err(|e| match e {
        tollgate_app::AppError::Store(tollgate_store::StoreError::NotFound(_)) => {
            not_found(&ns, name.as_str())
        }
        other => other.into(),
    })?;
    state.limiter().invalidate(auth.tenant_id());
    Ok(Json(Empty {}))
}

async fn usage_report(state: &AppState, auth: &Authorized) -> Result<JsonBytes, ApiError> {
    let effective = state.effective_quota(&auth.tenant).await?;
    let usage: Vec<(KeyFamily, String, i64)> = state
        .store()
        .usage(auth.tenant_id())
        .await?
        .into_iter()
        .map(|u| (u.family, u.key, u.used))
        .collect();
    // Most requests see the limits and usage the last one saw: its body.
    let body = state.usage_answer(auth.tenant_id(), &effective, usage, |effective, usage| {
        serde_json::to_vec(&QuotaUsageResponse::new(effective, usage))
            .map_err(|e| ApiError::new(tollgate_domain::ErrorKind::Internal, e.to_string()))
    })?;
    Ok(JsonBytes(body))
}

/// A JSON body rendered before (see [`AppState::usage_answer`]).
pub struct JsonBytes(axum::body::Bytes);

impl axum::response::IntoResponse for JsonBytes {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// The tenant's quota limits (with current usage).
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/quota/limits",
    operation_id = "ves.io.schema.quota.CustomAPI.CustomGetQuotaLimits",
    tag = "quota",
    params(("namespace" = String, Path, description = "Namespace")),
    responses((status = 200, body = QuotaUsageResponse)),
    security(("APIToken" = []))
)]
pub async fn limits(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<JsonBytes, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaLimits, &ns).await?;
    usage_report(&state, &auth).await
}

/// The tenant's quota usage against its limits.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/quota/usage",
    operation_id = "ves.io.schema.quota.CustomAPI.GetQuotaUsage",
    tag = "quota",
    params(("namespace" = String, Path, description = "Namespace")),
    responses((status = 200, body = QuotaUsageResponse)),
    security(("APIToken" = []))
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<JsonBytes, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaUsage, &ns).await?;
    usage_report(&state, &auth).await
}

async fn change_usage(
    state: &AppState,
    auth: &Authorized,
    family: KeyFamily,
    key: String,
    op: UsageOp,
    request_id: Option<tollgate_domain::ids::RequestId>,
) -> Result<Json<UsageChangeResponse>, ApiError> {
    let plan = state.tenant_plan(&auth.tenant).await?;
    let changed = tollgate_app::quotas::change_usage(
        state.store(),
        &auth.tenant,
        &plan.plan().default_quota,
        family,
        &key,
        op,
        request_id.as_ref(),
        state.now(),
    )
    .await?;
    let (usage, replayed) = (changed.state, changed.replayed);
    let (kind, resource) = match family {
        KeyFamily::Object => (Some(key), None),
        KeyFamily::Resource => (None, Some(key)),
    };
    Ok(Json(UsageChangeResponse {
        kind,
        resource,
        limit: limit_number(family, usage.limit),
        current: usage_number(family, usage.current),
        request_id: request_id.map(tollgate_domain::ids::RequestId::into_string),
        replayed,
    }))
}

/// Reserve quota before creating something (beyond the contract): an atomic
/// check-and-add against the effective limit, idempotent by `request_id`.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/quota/reserve",
    operation_id = "tollgate.quota.Reserve",
    tag = "quota enforcement",
    params(("namespace" = String, Path, description = "Namespace the object is created in")),
    request_body = UsageChangeRequest,
    responses(
        (status = 200, body = UsageChangeResponse),
        (status = 400, body = ErrorBody,
            description = "Not exactly one of `kind` and `resource`, an amount that is not positive, or no \
                           `request_id`."),
        (status = 403, body = ErrorBody,
            description = "The tenant is suspended for invoices left unpaid (`TENANT_SUSPENDED`; the message and \
                           metadata name them and the amount); a repeated `request_id` still gets its first \
                           answer."),
        (status = 409, body = ErrorBody,
            description = "The `request_id` was used before for a different request."),
        (status = 429, body = ErrorBody,
            description = "Quota exceeded: the reservation would pass the effective limit (no `Retry-After`: \
                           it needs a release).")
    ),
    security(("APIToken" = []))
)]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<UsageChangeRequest>,
) -> Result<Json<UsageChangeResponse>, ApiError> {
    let reserve = |amount| UsageOp::Reserve { amount };
    relative_change(state, caller, &ns, body, Operation::QuotaReserve, reserve).await
}

/// Release quota after deleting something (beyond the contract); usage never
/// goes below zero. Idempotent by `request_id`.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/quota/release",
    operation_id = "tollgate.quota.Release",
    tag = "quota enforcement",
    params(("namespace" = String, Path, description = "Namespace the object was deleted from")),
    request_body = UsageChangeRequest,
    responses(
        (status = 200, body = UsageChangeResponse),
        (status = 400, body = ErrorBody,
            description = "Not exactly one of `kind` and `resource`, an amount that is not positive, or no \
                           `request_id`."),
        (status = 409, body = ErrorBody,
            description = "The `request_id` was used before for a different request.")
    ),
    security(("APIToken" = []))
)]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<UsageChangeRequest>,
) -> Result<Json<UsageChangeResponse>, ApiError> {
    let release = |amount| UsageOp::Release { amount };
    relative_change(state, caller, &ns, body, Operation::QuotaRelease, release).await
}

/// Reserve and release: a positive amount, idempotent by `request_id`.
async fn relative_change(
    state: AppState,
    caller: Caller,
    ns: &str,
    body: UsageChangeRequest,
    op: Operation,
    change: impl FnOnce(i64) -> UsageOp,
) -> Result<Json<UsageChangeResponse>, ApiError> {
    let ns = namespace(ns)?;
    let auth = caller.authorize(&state, op, &ns).await?;
    let (family, key) = quota::usage_key(body.kind.as_deref(), body.resource.as_deref())?;
    let amount = quota::usage_amount(
        "amount",
        family,
        body.amount.as_ref().map(|a| a.0.as_str()),
        AmountKind::Change,
    )?;
    let id = quota::request_id(body.request_id)?;
    change_usage(&state, &auth, family, key.to_string(), change(amount), Some(id)).await
}

/// Record the absolute usage of a key (beyond the contract), e.g. after a
/// platform service counted what really exists. May exceed the limit.
#[utoipa::path(
    put,
    path = "/api/web/namespaces/{namespace}/quota/usage",
    operation_id = "tollgate.quota.Reconcile",
    tag = "quota enforcement",
    params(("namespace" = String, Path, description = "Namespace")),
    request_body = UsageReconcileRequest,
    responses(
        (status = 200, body = UsageChangeResponse),
        (status = 400, body = ErrorBody,
            description = "Not exactly one of `kind` and `resource`, or a negative `current`.")
    ),
    security(("APIToken" = []))
)]
pub async fn reconcile(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<UsageReconcileRequest>,
) -> Result<Json<UsageChangeResponse>, ApiError> {
    let ns = namespace(&ns)?;
    let auth = caller.authorize(&state, Operation::QuotaReconcile, &ns).await?;
    let (family, key) = quota::usage_key(body.kind.as_deref(), body.resource.as_deref())?;
    let current = quota::usage_amount(
        "current",
        family,
        body.current.as_ref().map(|c| c.0.as_str()),
        AmountKind::Absolute,
    )?;
    change_usage(
        &state,
        &auth,
        family,
        key.to_string(),
        UsageOp::Reconcile { current },
        None,
    )
    .await
}
