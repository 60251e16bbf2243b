//! Plans and add-ons: the offered plans side by side (in the language the
//! browser prefers), a plan transition started with the fields the target
//! plan asks for, the tenant's transitions and where each stands; add-ons
//! subscribed and unsubscribed. Same rules and messages as the API.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate_api::operations::Operation;
use tollgate_api::state::AppState;
use tollgate_domain::catalog::RequiredField;
use tollgate_domain::contact::{Contact, ContactType};
use tollgate_domain::transition::TransitionPayload;
use tollgate_store::TransitionFilter;

use crate::pages::{Page, app_error, internal, money, see_other};
use crate::tenant::TenantSession;

const HERE: &str = "/console/plans";

async fn render(
    state: &AppState,
    me: &TenantSession,
    headers: &HeaderMap,
    page: &Page,
    error: Option<(StatusCode, String)>,
) -> Response {
    let store = state.store();
    let versions = state.catalogs().versions();
    let (_, catalog) = match versions.latest(store).await {
        Ok(c) => c,
        Err(e) => return internal(page, e),
    };
    let current = match state.tenant_plan(&me.tenant).await {
        Ok(p) => p,
        Err(e) => return internal(page, format!("{e:?}")),
    };
    let currency = current
        .catalog
        .currency_of(me.tenant.currency.as_deref())
        .to_owned();
    let priced = catalog
        .in_currency(&currency)
        .unwrap_or_else(|| (*catalog).clone());
    let preferred = headers
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(tollgate_api::wire::enums::preferred_locales)
        .unwrap_or_default();
    let transitions = match store
        .transitions(&TransitionFilter {
            tenant_id: Some(me.tenant.id.clone()),
            state: None,
        })
        .await
    {
        Ok(t) => t,
        Err(e) => return internal(page, e),
    };
    let subscribed = match store.addons(&me.tenant.id).await {
        Ok(a) => a,
        Err(e) => return internal(page, e),
    };
    let manage = me.may(Operation::PlanTransitionInitiate);
    let csrf = &me.session.csrf;
    let plan_now = current.plan();
    let body = html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        div.cards {
            @for p in priced.plans.iter().filter(|p| p.offered) {
                @let (_, texts) = p.texts_for(&preferred);
                div.card data-plan=(p.name) {
                    h2 { (texts.title) }
                    div.big { (money(p.flat_price_cents, &priced.currency)) }
                    div.muted { "per " (p.renewal_period.as_str().to_ascii_lowercase()) }
                    p { (texts.subtitle) }
                    @if p.name == me.tenant.plan.as_str() {
                        span.badge.PAID { "Your plan" }
                    } @else if manage {
                        form method="post" action={ (HERE) "/transition" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="plan" value=(p.name);
                            @if p.transition.required_fields.contains(&RequiredField::PaymentToken) {
                                label for={ "token-" (p.name) } { "Payment token" }
                                input type="text" id={ "token-" (p.name) } name="payment_token" required autocomplete="off";
                            }
                            @if p.transition.required_fields.contains(&RequiredField::Domain) {
                                label for={ "domain-" (p.name) } { "Your domain" }
                                input type="text" id={ "domain-" (p.name) } name="domain" required;
                            }
                            @if p.transition.required_fields.contains(&RequiredField::Contacts) {
                                label for={ "address-" (p.name) } { "Billing address" }
                                input type="text" id={ "address-" (p.name) } name="address1" required;
                                label for={ "city-" (p.name) } { "City" }
                                input type="text" id={ "city-" (p.name) } name="city" required;
                                label for={ "country-" (p.name) } { "Country (ISO code)" }
                                input type="text" id={ "country-" (p.name) } name="country" required maxlength="2";
                            }
                            p {
                                button type="submit" { "Switch to " (texts.title) }
                                @if p.transition.requires_manual_approval { " " span.muted { "(needs the operator's approval)" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Plan transitions" }
        @if transitions.is_empty() {
            p.muted { "None yet." }
        } @else {
            div.table-wrap {
                table #transitions {
                    thead { tr { th { "From" } th { "To" } th { "State" } th { "Requested" } th { "Reason" } } }
                    tbody {
                        @for t in &transitions {
                            tr data-transition=(t.id) {
                                td { (t.from_plan) } td { (t.to_plan) }
                                td.state { (tollgate_api::wire::enums::transition_state(t.state)) }
                                td { (t.created_at.strftime("%Y-%m-%d %H:%M")) }
                                td { (t.reason.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add-ons" }
        @let addons: Vec<&String> = plan_now.included_addons.iter().chain(plan_now.allowed_addons.iter()).collect();
        @if addons.is_empty() {
            p.muted { "Your plan has no add-ons." }
        } @else {
            div.table-wrap {
                table #addons {
                    thead { tr { th { "Add-on" } th { "Status" } @if manage { th { "Change" } } } }
                    tbody {
                        @for a in addons {
                            @let included = plan_now.included_addons.contains(a);
                            @let on = included || subscribed.contains(a);
                            tr data-addon=(a) {
                                td { (current.catalog.addon(a).map_or(a.as_str(), |x| x.display_name.as_str())) }
                                td.status { @if included { "included" } @else if on { "subscribed" } @else { "not subscribed" } }
                                @if manage {
                                    td {
                                        @if !included {
                                            form.inline method="post" action={ "/console/addons/" (a) "/" (if on { "unsubscribe" } else { "subscribe" }) } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button.secondary type="submit" { (if on { "Unsubscribe" } else { "Subscribe" }) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut r = page.render(body);
    if let Some((status, _)) = error {
        *r.status_mut() = status;
    }
    r
}

pub async fn page(State(state): State<AppState>, me: TenantSession, headers: HeaderMap) -> Response {
    let page = me.page("Plans and add-ons", HERE);
    render(&state, &me, &headers, &page, None).await
}

#[derive(Debug, Deserialize)]
pub struct TransitionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    payment_token: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    address1: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

pub async fn transition(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Form(form): Form<TransitionForm>,
) -> Response {
    let page = me.page("Plans and add-ons", HERE);
    if let Some(e) = me.refuse(
        &headers,
        form.csrf.as_deref(),
        Operation::PlanTransitionInitiate,
        "the plan or add-ons",
    ) {
        return render(&state, &me, &headers, &page, Some(e)).await;
    }
    let trimmed = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let billing_address = form.address1.as_ref().map(|_| Contact {
        contact_type: ContactType::Billing,
        address1: trimmed(&form.address1).unwrap_or_default(),
        city: trimmed(&form.city).unwrap_or_default(),
        country: trimmed(&form.country).unwrap_or_default().to_ascii_uppercase(),
        ..Contact::default()
    });
    let payload = TransitionPayload {
        payment_provider_token: trimmed(&form.payment_token),
        domain: trimmed(&form.domain),
        billing_address,
        ..TransitionPayload::default()
    };
    let versions = state.catalogs().versions();
    let asked = tollgate_app::plans::request_transition(
        state.store(),
        &versions,
        state.providers(),
        &me.tenant,
        form.plan.trim(),
        payload,
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await;
    match asked {
        Ok(_) => {
            state.dispatch_soon();
            see_other(HERE, None)
        }
        Err(e) => render(&state, &me, &headers, &page, Some(app_error(e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn addon(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Path((addon, what)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let page = me.page("Plans and add-ons", HERE);
    let (op, subscribe) = match what.as_str() {
        "subscribe" => (Operation::AddonSubscribe, true),
        "unsubscribe" => (Operation::AddonUnsubscribe, false),
        _ => return page.error(StatusCode::NOT_FOUND, "No such change."),
    };
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), op, "the plan or add-ons") {
        return render(&state, &me, &headers, &page, Some(e)).await;
    }
    let plan = match state.tenant_plan(&me.tenant).await {
        Ok(p) => p,
        Err(e) => return internal(&page, format!("{e:?}")),
    };
    match tollgate_app::plans::change_addon(
        state.store(),
        &me.tenant,
        plan.plan(),
        &addon,
        subscribe,
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await
    {
        Ok(()) => {
            state.dispatch_soon();
            see_other(HERE, None)
        }
        Err(e) => render(&state, &me, &headers, &page, Some(app_error(e))).await,
    }
}
