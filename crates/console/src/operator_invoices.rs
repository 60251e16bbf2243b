//! The operator's invoices across tenants, filtered by status: charge an
//! unpaid one now, cancel it, refund a paid one in full or in part (each
//! refund a credit note, through the provider that took the charge).
//! Operator-admin only for the actions; every form CSRF-checked.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate_api::state::AppState;
use tollgate_app::refunds::RefundAsk;
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::invoice::InvoiceStatus;

use crate::operator::OperatorSession;
use crate::pages::{internal, money, see_other};

const HERE: &str = "/console/operator/invoices";

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub status: Option<String>,
    /// The page (from 1).
    pub page: Option<String>,
}

/// Invoices per page of the list.
const PAGE: u32 = 50;

async fn render(
    state: &AppState,
    me: &OperatorSession,
    status: Option<InvoiceStatus>,
    number: usize,
    error: Option<(StatusCode, String)>,
) -> Response {
    let page = me.page("Invoices", HERE);
    let store = state.store();
    let offset = (number as u64 - 1).saturating_mul(u64::from(PAGE));
    // One more than a page: whether there is a next one.
    let (tenants, mut found) = match (
        store.tenants().await,
        store.invoice_page(status, PAGE + 1, offset).await,
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => return internal(&page, e),
    };
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let names: std::collections::HashMap<_, _> =
        tenants.iter().map(|t| (&t.id, t.name.to_string())).collect();
    let rows: Vec<(String, _)> = found
        .into_iter()
        .map(|i| {
            (
                names
                    .get(&i.tenant_id)
                    .cloned()
                    .unwrap_or_else(|| i.tenant_id.to_string()),
                i,
            )
        })
        .collect();
    let query = status
        .map(|s| format!("status={}", s.as_str()))
        .unwrap_or_default();
    let admin = me.role.may_write();
    let csrf = &me.session.csrf;
    let body = html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        form method="get" action=(HERE) {
            label for="status" { "Status" }
            select #status name="status" {
                option value="" { "Any" }
                @for s in [InvoiceStatus::Issued, InvoiceStatus::Overdue, InvoiceStatus::Paid, InvoiceStatus::Refunded, InvoiceStatus::Cancelled] {
                    @if status == Some(s) { option value=(s.as_str()) selected { (s.label()) } } @else { option value=(s.as_str()) { (s.label()) } }
                }
            }
            " " button.secondary type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p.muted { "No finalized invoice." }
        } @else {
            div.table-wrap {
                table #invoices {
                    thead { tr { th { "Tenant" } th { "Invoice" } th { "Period" } th { "Status" } th.num { "Total" } @if admin { th { "Action" } } } }
                    tbody {
                        @for (tenant, i) in &rows {
                            @let inv = &i.invoice;
                            @let base = format!("{HERE}/{tenant}/{}", inv.name);
                            tr data-invoice={ (tenant) "/" (inv.name) } {
                                td { (tenant) }
                                td { (inv.name) }
                                td { (inv.period_start.strftime("%Y-%m-%d")) " – " (inv.period_end.strftime("%Y-%m-%d")) }
                                td { span class={ "badge " (inv.status) } { (inv.status.label()) } }
                                td.num { (money(inv.totals.total, &inv.currency)) }
                                @if admin {
                                    td {
                                        @if InvoiceStatus::CANCELLABLE.contains(&inv.status) {
                                            form.inline method="post" action={ (base) "/charge" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button.secondary type="submit" { "Charge now" }
                                            }
                                            " "
                                            form.inline method="post" action={ (base) "/cancel" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button.danger type="submit" { "Cancel" }
                                            }
                                        }
                                        @if InvoiceStatus::REFUNDABLE.contains(&inv.status) {
                                            form.inline method="post" action={ (base) "/refund" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                label for={ "amount-" (tenant) "-" (inv.name) } { "Amount (empty: all that remains)" }
                                                input type="text" id={ "amount-" (tenant) "-" (inv.name) } name="amount" inputmode="decimal";
                                                label for={ "reason-" (tenant) "-" (inv.name) } { "Reason" }
                                                input type="text" id={ "reason-" (tenant) "-" (inv.name) } name="reason" required;
                                                button.danger type="submit" { "Refund" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (crate::operator::pager(HERE, &query, number, more))
        }
    };
    let mut r = page.render(body);
    if let Some((s, _)) = error {
        *r.status_mut() = s;
    }
    r
}

fn status_of(f: &Filter) -> Result<Option<InvoiceStatus>, String> {
    match f.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => InvoiceStatus::parse(&s.to_ascii_uppercase())
            .map(Some)
            .ok_or_else(|| format!("status: unknown invoice status {s:?}")),
    }
}

pub async fn list(State(state): State<AppState>, me: OperatorSession, Query(f): Query<Filter>) -> Response {
    let number = crate::operator::page_number(f.page.as_deref());
    match status_of(&f) {
        Ok(s) => render(&state, &me, s, number, None).await,
        Err(msg) => render(&state, &me, None, 1, Some((StatusCode::BAD_REQUEST, msg))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn act(
    State(state): State<AppState>,
    me: OperatorSession,
    headers: HeaderMap,
    Path((tenant, name, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), "this") {
        return render(&state, &me, None, 1, Some(e)).await;
    }
    let t = match state.store().tenant_by_name(&tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return render(
                &state,
                &me,
                None,
                1,
                Some((StatusCode::NOT_FOUND, format!("tenant {tenant:?} does not exist"))),
            )
            .await;
        }
        Err(e) => return internal(&me.page("Invoices", HERE), e),
    };
    let name = InvoiceName::new(name);
    let now = state.now();
    let done: Result<(), (StatusCode, String)> = match action.as_str() {
        "cancel" => tollgate_app::invoices::cancel(state.store(), &t.id, &name, &me.actor, now)
            .await
            .map(|_| ())
            .map_err(|e| crate::pages::app_error(e.into())),
        "charge" => tollgate_app::invoices::charge_now(&state.job_context(), &t.id, &name, &me.actor, now)
            .await
            .map(|_| ())
            .map_err(|e| crate::pages::app_error(e.into())),
        "refund" => match state.store().invoice(&t.id, &name).await {
            Ok(Some(stored)) => {
                let amount = form.amount.as_deref().map(str::trim).filter(|a| !a.is_empty());
                match RefundAsk::parse(
                    amount,
                    form.reason.as_deref().unwrap_or(""),
                    &stored.invoice.currency,
                ) {
                    Ok(ask) => tollgate_app::refunds::refund_invoice(
                        &state.job_context(),
                        &t.id,
                        &name,
                        &ask,
                        &me.actor,
                        now,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| (tollgate_api::error::status_and_code(e.kind).0, e.message)),
                    Err(e) => Err((tollgate_api::error::status_and_code(e.kind).0, e.message)),
                }
            }
            Ok(None) => Err((
                StatusCode::NOT_FOUND,
                format!("there is no finalized invoice {name:?}"),
            )),
            Err(e) => Err(crate::pages::app_error(e.into())),
        },
        _ => Err((StatusCode::NOT_FOUND, "No such action.".into())),
    };
    match done {
        Ok(()) => {
            state.dispatch_soon();
            see_other(HERE, None)
        }
        Err(e) => render(&state, &me, None, 1, Some(e)).await,
    }
}
