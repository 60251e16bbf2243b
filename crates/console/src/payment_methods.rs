//! The tenant's payment methods: list, add (a provider token and a billing
//! address), make primary or secondary, swap, delete, under the same rules
//! and with the same messages as the API. Controls show only to a token
//! that may manage billing, and every change is CSRF-checked.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tollgate_api::operations::Operation;
use tollgate_api::state::AppState;
use tollgate_domain::contact::{Contact, ContactType};
use tollgate_domain::payment::{PaymentRole, RoleChange};

use crate::pages::{Page, app_error, internal, see_other};
use crate::tenant::TenantSession;

const HERE: &str = "/console/payment-methods";

async fn render(
    state: &AppState,
    me: &TenantSession,
    page: &Page,
    error: Option<(StatusCode, String)>,
) -> Response {
    let methods = match state.store().payment_methods(&me.tenant.id).await {
        Ok(m) => m,
        Err(e) => return internal(page, e),
    };
    let manage = me.may(Operation::PaymentMethodCreate);
    let csrf = &me.session.csrf;
    let action = |name: &str, what: &str, label: &str, class: &str| -> Markup {
        html! {
            form.inline method="post" action={ (HERE) "/" (name) "/" (what) } {
                input type="hidden" name="csrf" value=(csrf);
                button class=(class) type="submit" aria-label={ (label) " " (name) } { (label) }
            }
        }
    };
    let body = html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        @if methods.is_empty() {
            p.muted { "No payment method yet." }
        } @else {
            div.table-wrap {
                table #methods {
                    thead { tr { th { "Method" } th { "Role" } th { "Billing address" } @if manage { th { "Change" } } } }
                    tbody {
                        @for m in &methods {
                            tr data-name=(m.name) {
                                td { (m.display) div.muted { (m.name) } }
                                td.role { (m.role.as_str()) }
                                td { (m.contact.address1) ", " (m.contact.city) ", " (m.contact.country) }
                                @if manage {
                                    td {
                                        @if m.role != PaymentRole::Primary { (action(&m.name, "primary", "Make primary", "secondary")) " " }
                                        @if m.role == PaymentRole::Normal { (action(&m.name, "secondary", "Make secondary", "secondary")) " " }
                                        @if m.role != PaymentRole::Normal && methods.iter().any(|o| o.role == PaymentRole::Secondary) {
                                            (action(&m.name, "swap", "Swap roles", "secondary")) " "
                                        }
                                        (action(&m.name, "delete", "Delete", "danger"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { "Add a payment method" }
            form method="post" action=(HERE) {
                input type="hidden" name="csrf" value=(csrf);
                label for="pm-token" { "Payment token (from the payment provider's form)" }
                input #pm-token type="text" name="token" required autocomplete="off";
                label for="pm-address" { "Billing address" }
                input #pm-address type="text" name="address1" required;
                label for="pm-city" { "City" }
                input #pm-city type="text" name="city" required;
                label for="pm-country" { "Country (ISO code, e.g. US)" }
                input #pm-country type="text" name="country" required maxlength="2";
                label for="pm-role" { "Role" }
                select #pm-role name="role" {
                    option value="" { "As the rules give it (the first is primary)" }
                    option value="PRIMARY" { "Primary" }
                    option value="SECONDARY" { "Secondary" }
                    option value="NORMAL" { "Normal" }
                }
                p { button type="submit" { "Add" } }
            }
        }
    };
    let mut r = page.render(body);
    if let Some((status, _)) = error {
        *r.status_mut() = status;
    }
    r
}

pub async fn list(State(state): State<AppState>, me: TenantSession) -> Response {
    let page = me.page("Payment methods", HERE);
    render(&state, &me, &page, None).await
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    token: String,
    #[serde(default)]
    address1: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    role: String,
}

pub async fn add(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let page = me.page("Payment methods", HERE);
    if let Some(e) = me.refuse(
        &headers,
        form.csrf.as_deref(),
        Operation::PaymentMethodCreate,
        "payment methods",
    ) {
        return render(&state, &me, &page, Some(e)).await;
    }
    let requested = match form.role.as_str() {
        "" => None,
        r => match PaymentRole::parse(r) {
            Some(role) => Some(role),
            None => {
                return render(
                    &state,
                    &me,
                    &page,
                    Some((StatusCode::BAD_REQUEST, format!("role: unknown role {r:?}"))),
                )
                .await;
            }
        },
    };
    let contact = Contact {
        contact_type: ContactType::Billing,
        address1: form.address1.trim().to_owned(),
        city: form.city.trim().to_owned(),
        country: form.country.trim().to_ascii_uppercase(),
        ..Contact::default()
    };
    let added = tollgate_app::payment_methods::add(
        state.store(),
        state.providers(),
        &me.tenant,
        tollgate_app::payment_methods::NewMethod {
            token: form.token.trim().to_owned(),
            contact,
            requested,
        },
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await;
    match added {
        Ok(a) => {
            if !a.charging.is_empty() {
                state.charge_soon();
            }
            state.dispatch_soon();
            see_other(HERE, None)
        }
        Err(e) => render(&state, &me, &page, Some(app_error(e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn change(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Path((name, what)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let page = me.page("Payment methods", HERE);
    let (op, change) = match what.as_str() {
        "primary" => (Operation::PaymentMethodPrimary, RoleChange::MakePrimary(name)),
        "secondary" => (Operation::PaymentMethodSecondary, RoleChange::MakeSecondary(name)),
        "swap" => (Operation::PaymentMethodSwap, RoleChange::Swap(name)),
        "delete" => {
            let plan = match state.tenant_plan(&me.tenant).await {
                Ok(p) => p,
                Err(e) => return internal(&page, format!("{e:?}")),
            };
            let addons = match state.store().addons(&me.tenant.id).await {
                Ok(a) => a,
                Err(e) => return internal(&page, e),
            };
            (
                Operation::PaymentMethodDelete,
                RoleChange::Delete {
                    name,
                    on_paid_plan: plan.plan().charges_fixed_with(&plan.catalog, &addons),
                },
            )
        }
        _ => return page.error(StatusCode::NOT_FOUND, "No such change."),
    };
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), op, "payment methods") {
        return render(&state, &me, &page, Some(e)).await;
    }
    match tollgate_app::payment_methods::change(
        state.store(),
        &me.tenant,
        change,
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await
    {
        Ok(charging) => {
            if !charging.is_empty() {
                state.charge_soon();
            }
            state.dispatch_soon();
            see_other(HERE, None)
        }
        Err(e) => render(&state, &me, &page, Some(app_error(e))).await,
    }
}
