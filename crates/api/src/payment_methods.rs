//! Payment methods: create from a provider token, roles, delete, and a list
//! (beyond the contract, which has no way to read them back). A new primary
//! or secondary charges the tenant's unpaid invoices again (dunning): the
//! answer does not wait for the payment provider, the charge runs beside it.

use axum::Json;
use axum::extract::State;
use tollgate_domain::payment::RoleChange;

use crate::auth::{Authorized, Caller, body_namespace, namespace, require_system};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::extract::Path;
use crate::operations::Operation;
use crate::state::AppState;
use crate::wire::billing::{
    CreatePaymentMethodRequest, CreatePaymentMethodResponse, PaymentMethodItem, PaymentMethodList,
    PaymentMethodRoleRequest,
};
use crate::wire::quota::Empty;

const WHAT: &str = "payment methods";

async fn authorize(
    state: &AppState,
    caller: Caller,
    op: Operation,
    ns: &str,
) -> Result<Authorized, ApiError> {
    let ns = namespace(ns)?;
    let auth = caller.authorize(state, op, &ns).await?;
    require_system(&ns, WHAT)?;
    Ok(auth)
}

/// Registers a provider token as a payment method; returns its generated name.
/// The first method becomes primary; a requested primary or secondary role
/// displaces the holder of that role. As a new primary or secondary it is
/// charged the tenant's unpaid (OVERDUE) invoices at once, in the background.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/billing/payment_methods",
    operation_id = "ves.io.schema.billing.payment_method.CustomAPI.Create",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system")),
    request_body = CreatePaymentMethodRequest,
    responses(
        (status = 200, body = CreatePaymentMethodResponse),
        (status = 400, body = ErrorBody,
            description = "Invalid input, or a token the payment provider refuses."),
        (status = 503, body = ErrorBody, description = "The payment provider is unavailable.")
    ),
    security(("APIToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<CreatePaymentMethodRequest>,
) -> Result<Json<CreatePaymentMethodResponse>, ApiError> {
    let auth = authorize(&state, caller, Operation::PaymentMethodCreate, &ns).await?;
    body_namespace(body.namespace.as_deref())?;
    let token = body.token.unwrap_or_default();
    let requested = match body.role.map(|r| r.text()) {
        None => None,
        Some(r) => crate::wire::enums::requested_payment_role("role", &r)?,
    };
    let contact = body.contact.unwrap_or_default().into_domain("contact")?;
    let added = tollgate_app::payment_methods::add(
        state.store(),
        state.providers(),
        &auth.tenant,
        tollgate_app::payment_methods::NewMethod {
            token,
            contact,
            requested,
        },
        &auth.actor(),
        state.now(),
    )
    .await?;
    if !added.charging.is_empty() {
        // Unpaid invoices are due again: charged now, not waited for.
        state.charge_soon();
    }
    state.dispatch_soon();
    Ok(Json(CreatePaymentMethodResponse { name: added.name }))
}

/// The body of a role call must agree with its path.
fn check_role_body(body: &PaymentMethodRoleRequest, path_name: &str) -> Result<(), ApiError> {
    body_namespace(body.namespace.as_deref())?;
    if let Some(given) = body.name.as_deref().filter(|n| !n.is_empty() && *n != path_name) {
        return Err(ApiError::invalid(format!(
            "name: {given:?} in the body does not match {path_name:?} in the path"
        )));
    }
    Ok(())
}

/// Applies a role change or deletion under the role rules.
async fn apply(state: &AppState, auth: &Authorized, change: RoleChange) -> Result<Json<Empty>, ApiError> {
    let charging = tollgate_app::payment_methods::change(
        state.store(),
        &auth.tenant,
        change,
        &auth.actor(),
        state.now(),
    )
    .await?;
    if !charging.is_empty() {
        // Unpaid invoices are due again: charged now, not waited for.
        state.charge_soon();
    }
    state.dispatch_soon();
    Ok(Json(Empty {}))
}

/// A role call: authorize, check the body, apply `make(name)`.
async fn role_call(
    state: AppState,
    caller: Caller,
    op: Operation,
    (ns, name): (String, String),
    body: PaymentMethodRoleRequest,
    make: fn(String) -> RoleChange,
) -> Result<Json<Empty>, ApiError> {
    let auth = authorize(&state, caller, op, &ns).await?;
    check_role_body(&body, &name)?;
    apply(&state, &auth, make(name)).await
}

/// Makes a payment method the primary; the old primary becomes normal.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/billing/payment_method/{name}/primary",
    operation_id = "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodPrimary",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path)),
    request_body = PaymentMethodRoleRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "A `name` or `namespace` in the body other than the path's."),
        (status = 404, body = ErrorBody, description = "The tenant has no payment method of this name.")
    ),
    security(("APIToken" = []))
)]
pub async fn primary(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody<PaymentMethodRoleRequest>,
) -> Result<Json<Empty>, ApiError> {
    role_call(
        state,
        caller,
        Operation::PaymentMethodPrimary,
        path,
        body,
        RoleChange::MakePrimary,
    )
    .await
}

/// Makes a payment method the secondary; the old secondary becomes normal. A
/// primary made secondary hands primary to the secondary (or the oldest other
/// method); the only method cannot.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/billing/payment_method/{name}/secondary",
    operation_id = "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodSecondary",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path)),
    request_body = PaymentMethodRoleRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "A `name` or `namespace` in the body other than the path's."),
        (status = 404, body = ErrorBody, description = "The tenant has no payment method of this name."),
        (status = 409, body = ErrorBody, description = "It is the primary and the only payment method.")
    ),
    security(("APIToken" = []))
)]
pub async fn secondary(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody<PaymentMethodRoleRequest>,
) -> Result<Json<Empty>, ApiError> {
    role_call(
        state,
        caller,
        Operation::PaymentMethodSecondary,
        path,
        body,
        RoleChange::MakeSecondary,
    )
    .await
}

/// Exchanges the roles of the primary and the secondary; `name` is either.
#[utoipa::path(
    post,
    path = "/api/web/namespaces/{namespace}/billing/payment_method/{name}/swap-primary",
    operation_id = "ves.io.schema.billing.payment_method.CustomAPI.SwapPaymentMethodRole",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path)),
    request_body = PaymentMethodRoleRequest,
    responses(
        (status = 200, body = Empty),
        (status = 400, body = ErrorBody,
            description = "A `name` or `namespace` in the body other than the path's."),
        (status = 404, body = ErrorBody, description = "The tenant has no payment method of this name."),
        (status = 409, body = ErrorBody,
            description = "There is no secondary, or the method is neither the primary nor the secondary.")
    ),
    security(("APIToken" = []))
)]
pub async fn swap(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String)>,
    JsonBody(body): JsonBody<PaymentMethodRoleRequest>,
) -> Result<Json<Empty>, ApiError> {
    role_call(
        state,
        caller,
        Operation::PaymentMethodSwap,
        path,
        body,
        RoleChange::Swap,
    )
    .await
}

/// Deletes a payment method. A deleted primary is succeeded by the secondary
/// (or the oldest other method); the only method of a tenant on a paid plan
/// cannot be deleted.
#[utoipa::path(
    delete,
    path = "/api/web/namespaces/{namespace}/billing/payment_methods/{name}",
    operation_id = "ves.io.schema.billing.payment_method.CustomAPI.Delete",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system"), ("name" = String, Path)),
    responses(
        (status = 200, body = Empty),
        (status = 404, body = ErrorBody, description = "The tenant has no payment method of this name."),
        (status = 409, body = ErrorBody,
            description = "It is the only payment method of a tenant on a paid plan.")
    ),
    security(("APIToken" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Empty>, ApiError> {
    let auth = authorize(&state, caller, Operation::PaymentMethodDelete, &ns).await?;
    let plan = state.tenant_plan(&auth.tenant).await?;
    let addons = state.store().addons(auth.tenant_id()).await?;
    let change = RoleChange::Delete {
        name,
        on_paid_plan: plan.plan().charges_fixed_with(&plan.catalog, &addons),
    };
    apply(&state, &auth, change).await
}

/// The tenant's payment methods, oldest first (beyond the contract). Only
/// what may be shown is returned, never tokens.
#[utoipa::path(
    get,
    path = "/api/web/namespaces/{namespace}/billing/payment_methods",
    operation_id = "tollgate.billing.ListPaymentMethods",
    tag = "payment methods",
    params(("namespace" = String, Path, description = "Must be system")),
    responses((status = 200, body = PaymentMethodList)),
    security(("APIToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ns): Path<String>,
) -> Result<Json<PaymentMethodList>, ApiError> {
    let auth = authorize(&state, caller, Operation::PaymentMethodList, &ns).await?;
    Ok(Json(methods(
        &state.store().payment_methods(auth.tenant_id()).await?,
    )))
}

/// A tenant's payment methods as the list answers them.
pub(crate) fn methods(methods: &[tollgate_domain::payment::PaymentMethod]) -> PaymentMethodList {
    let items = methods
        .iter()
        .map(|m| PaymentMethodItem {
            name: m.name.clone(),
            role: crate::wire::enums::payment_role(m.role).to_owned(),
            display: m.display.clone(),
            contact: (&m.contact).into(),
            created: m.created_at.to_string(),
        })
        .collect();
    PaymentMethodList { items }
}
