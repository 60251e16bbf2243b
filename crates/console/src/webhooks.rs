//! The tenant's webhook endpoints: list, create (its signing secret shown
//! once), rotate the secret, delete; each endpoint's deliveries, delivered
//! again on demand. The API's rules and limits; changes need a token that
//! may manage billing, and are CSRF-checked.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate_api::operations::Operation;
use tollgate_api::state::AppState;
use tollgate_store::{EndpointScope, WebhookEndpoint};

use crate::pages::{Page, app_error, internal, see_other};
use crate::tenant::TenantSession;

const HERE: &str = "/console/webhooks";

#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    /// The endpoint whose deliveries to show.
    pub endpoint: Option<String>,
}

async fn render(
    state: &AppState,
    me: &TenantSession,
    page: &Page,
    shown: Option<&str>,
    secret: Option<&WebhookEndpoint>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let scope = EndpointScope::Tenant(me.tenant.id.clone());
    let endpoints = match state.store().webhook_endpoints(&scope, None).await {
        Ok(e) => e,
        Err(e) => return internal(page, e),
    };
    let deliveries = match shown {
        Some(id) => match state.store().webhook_deliveries(&scope, id, 50).await {
            Ok(d) => Some((id.to_owned(), d)),
            Err(tollgate_store::StoreError::NotFound(_)) => {
                return page.error(StatusCode::NOT_FOUND, "There is no such endpoint.");
            }
            Err(e) => return internal(page, e),
        },
        None => None,
    };
    let manage = me.may(Operation::WebhookCreate);
    let csrf = &me.session.csrf;
    let body = html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        @if let Some(ep) = secret {
            div.card #secret role="status" {
                h2 { "Signing secret of " (ep.url) }
                p { code { (ep.secret) } }
                p.muted { "Shown this once: keep it where your receiver can read it. Rotate it to get a new one." }
            }
        }
        @if endpoints.is_empty() {
            p.muted { "No webhook endpoint yet." }
        } @else {
            div.table-wrap {
                table #endpoints {
                    thead { tr { th { "URL" } th { "Events" } th { "State" } th { "Deliveries" } @if manage { th { "Change" } } } }
                    tbody {
                        @for ep in &endpoints {
                            tr data-endpoint=(ep.id) {
                                td { (ep.url) @if !ep.description.is_empty() { div.muted { (ep.description) } } }
                                td { @if ep.events.is_empty() { "every event" } @else { (ep.events.join(", ")) } }
                                td {
                                    @if let Some((at, why)) = &ep.disabled { span.badge.OVERDUE { "disabled" } " " (at.strftime("%Y-%m-%d")) ": " (why) }
                                    @else if let Some(since) = ep.failing_since { span.badge.ISSUED { "failing" } " since " (since.strftime("%Y-%m-%d %H:%M")) }
                                    @else { "ok" }
                                }
                                td { a href={ (HERE) "?endpoint=" (ep.id) } { "Deliveries" } }
                                @if manage {
                                    td {
                                        form.inline method="post" action={ (HERE) "/" (ep.id) "/rotate" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.secondary type="submit" { "Rotate secret" }
                                        }
                                        " "
                                        form.inline method="post" action={ (HERE) "/" (ep.id) "/delete" } {
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
        @if let Some((id, list)) = &deliveries {
            h2 { "Deliveries of " (id) }
            @if list.is_empty() {
                p.muted { "None yet." }
            } @else {
                div.table-wrap {
                    table #deliveries {
                        thead { tr { th { "Event" } th { "Status" } th.num { "Attempts" } th { "Last answer" } th { "Created" } @if manage { th { "Again" } } } }
                        tbody {
                            @for d in list {
                                tr {
                                    td { (d.event_type) div.muted { (d.event_id) } }
                                    td { (d.status.as_str()) }
                                    td.num { (d.attempts) }
                                    td { @if let Some(s) = d.last_status { (s) } " " (d.last_error.as_deref().unwrap_or("")) }
                                    td { (d.created_at.strftime("%Y-%m-%d %H:%M")) }
                                    @if manage {
                                        td {
                                            form.inline method="post" action={ (HERE) "/" (id) "/deliveries/" (d.id) "/redeliver" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button.secondary type="submit" { "Redeliver" }
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
        @if manage {
            h2 { "Add an endpoint" }
            form method="post" action=(HERE) {
                input type="hidden" name="csrf" value=(csrf);
                label for="wh-url" { "URL (https, or http on a private network when allowed)" }
                input #wh-url type="text" name="url" required;
                label for="wh-events" { "Events (comma-separated; empty: every event)" }
                input #wh-events type="text" name="events";
                label for="wh-description" { "Description" }
                input #wh-description type="text" name="description" maxlength="256";
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

pub async fn list(State(state): State<AppState>, me: TenantSession, Query(q): Query<Shown>) -> Response {
    let page = me.page("Webhooks", HERE);
    render(
        &state,
        &me,
        &page,
        q.endpoint.as_deref().filter(|e| !e.is_empty()),
        None,
        None,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

pub async fn create(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let page = me.page("Webhooks", HERE);
    if let Some(e) = me.refuse(
        &headers,
        form.csrf.as_deref(),
        Operation::WebhookCreate,
        "webhook endpoints",
    ) {
        return render(&state, &me, &page, None, None, Some(e)).await;
    }
    let input = tollgate_app::webhooks::EndpointInput {
        url: form.url.trim().to_owned(),
        events: form
            .events
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        description: form.description,
    };
    match tollgate_app::webhooks::create_endpoint(
        state.store(),
        state.webhooks(),
        Some(me.tenant.id.clone()),
        input,
        &format!("token/{}", me.token.id),
        state.now(),
    )
    .await
    {
        // Rendered, not redirected: the secret is shown this once.
        Ok(ep) => render(&state, &me, &page, None, Some(&ep), None).await,
        Err(e) => render(&state, &me, &page, None, None, Some(app_error(e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn change(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let page = me.page("Webhooks", HERE);
    let op = match what.as_str() {
        "rotate" => Operation::WebhookRotateSecret,
        "delete" => Operation::WebhookDelete,
        _ => return page.error(StatusCode::NOT_FOUND, "No such change."),
    };
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), op, "webhook endpoints") {
        return render(&state, &me, &page, None, None, Some(e)).await;
    }
    let scope = EndpointScope::Tenant(me.tenant.id.clone());
    let actor = format!("token/{}", me.token.id);
    let now = state.now();
    if what == "rotate" {
        return match tollgate_app::webhooks::rotate_secret(state.store(), &scope, &id, &actor, now).await {
            Ok(ep) => render(&state, &me, &page, None, Some(&ep), None).await,
            Err(e) => render(&state, &me, &page, None, None, Some(app_error(e))).await,
        };
    }
    match state
        .store()
        .delete_webhook_endpoint(&scope, &id, &actor, now)
        .await
    {
        Ok(()) => see_other(HERE, None),
        Err(e) => render(&state, &me, &page, None, None, Some(app_error(e.into()))).await,
    }
}

pub async fn redeliver(
    State(state): State<AppState>,
    me: TenantSession,
    headers: HeaderMap,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let page = me.page("Webhooks", HERE);
    if let Some(e) = me.refuse(
        &headers,
        form.csrf.as_deref(),
        Operation::WebhookRedeliver,
        "webhook endpoints",
    ) {
        return render(&state, &me, &page, Some(&id), None, Some(e)).await;
    }
    let scope = EndpointScope::Tenant(me.tenant.id.clone());
    match state
        .store()
        .redeliver_webhook(
            &scope,
            &id,
            &delivery,
            &format!("token/{}", me.token.id),
            state.now(),
        )
        .await
    {
        Ok(_) => {
            state.dispatch_soon();
            see_other(&format!("{HERE}?endpoint={id}"), None)
        }
        Err(e) => render(&state, &me, &page, Some(&id), None, Some(app_error(e.into()))).await,
    }
}
