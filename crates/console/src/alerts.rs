//! The tenant's usage alerts: list (with whether each fired this billing
//! period, when and at what value), create (on spend, in minor units, or on
//! a meter's billable quantity; optionally one namespace), delete. The
//! API's rules and limits; changes need a token that may manage billing.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate_api::operations::Operation;
use tollgate_api::state::AppState;
use tollgate_app::alerts::{AlertInput, current_period_start, triggered_in};

use crate::pages::{Page, app_error, internal, see_other};
use crate::tenant::TenantSession;

const HERE: &str = "/console/alerts";

async fn render(
    state: &AppState,
    me: &TenantSession,
    page: &Page,
    error: Option<(StatusCode, String)>,
) -> Response {
    let store = state.store();
    let (alerts, period) = match (
        store.alerts(&me.tenant.id).await,
        current_period_start(store, &me.tenant, state.now()).await,
    ) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return internal(page, e),
    };
    let manage = me.may(Operation::AlertCreate);
    let csrf = &me.session.csrf;
    let body = html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        @if alerts.is_empty() {
            p.muted { "No usage alert yet." }
        } @else {
            div.table-wrap {
                table #alerts {
                    thead { tr { th { "Alert" } th { "On" } th.num { "Threshold" } th { "This period" } @if manage { th { "Change" } } } }
                    tbody {
                        @for a in &alerts {
                            tr data-alert=(a.name) {
                                td { (a.name) }
                                td { (a.metric) @if let Some(ns) = &a.namespace { " in " (ns) } }
                                td.num { (a.threshold) @if a.metric == tollgate_app::alerts::SPEND { " (minor units)" } }
                                td.fired {
                                    @match (&a.triggered, triggered_in(a, period)) {
                                        (Some(t), true) => { span.badge.OVERDUE { "fired" } " " (t.at.strftime("%Y-%m-%d %H:%M")) " at " (t.value) }
                                        _ => { "not fired" }
                                    }
                                }
                                @if manage {
                                    td {
                                        form.inline method="post" action={ (HERE) "/" (a.name) "/delete" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.danger type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { "Add an alert" }
            form method="post" action=(HERE) {
                input type="hidden" name="csrf" value=(csrf);
                label for="al-name" { "Name" }
                input #al-name type="text" name="name" required;
                label for="al-metric" { "On (spend, or a meter's metric label)" }
                input #al-metric type="text" name="metric" required value="spend";
                label for="al-threshold" { "Threshold (spend: minor units, e.g. cents; a meter: billable units)" }
                input #al-threshold type="text" name="threshold" required inputmode="decimal";
                label for="al-namespace" { "Namespace (empty: the whole tenant)" }
                input #al-namespace type="text" name="namespace";
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
    let page = me.page("Alerts", HERE);
    render(&state, &me, &page, None).await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    metric: String,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    namespace: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let page = me.page("Alerts", HERE);
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), Operation::AlertCreate, "alerts") {
        return render(&state, &me, &page, Some(e)).await;
    }
    let versions = state.catalogs().versions();
    let input = AlertInput {
        name: form.name,
        metric: form.metric,
        threshold: form.threshold,
        namespace: form.namespace,
    };
    match tollgate_app::alerts::create_alert(
        state.store(),
        &versions,
        &me.tenant,
        input,
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await
    {
        Ok(_) => see_other(HERE, None),
        Err(e) => render(&state, &me, &page, Some(app_error(e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let page = me.page("Alerts", HERE);
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), Operation::AlertDelete, "alerts") {
        return render(&state, &me, &page, Some(e)).await;
    }
    match state
        .store()
        .delete_alert(
            &me.tenant.id,
            &name,
            &format!("token/{}", me.token.id),
            state.now(),
        )
        .await
    {
        Ok(()) => see_other(HERE, None),
        Err(e) => render(&state, &me, &page, Some(app_error(e.into()))).await,
    }
}
