//! The operator's console: sign-in with an operator credential (the
//! bootstrap one or an operator token), tenants, and plan transitions
//! waiting for approval, approved or rejected with a reason in one click
//! (operator-admin only; an operator-read session sees no button and is
//! refused).

use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tollgate_api::state::AppState;
use tollgate_domain::access::OperatorRole;
use tollgate_domain::transition::TransitionState;
use tollgate_store::{ConsoleKind, ConsoleSession, TransitionFilter};

use crate::pages::{Area, Page, internal, money, see_other};
use crate::session;

/// The bootstrap credential's name in a session.
const BOOTSTRAP: &str = "operator";

pub struct OperatorSession {
    pub session: ConsoleSession,
    pub actor: String,
    pub role: OperatorRole,
}

impl OperatorSession {
    /// Refuses a change without the session's CSRF token, from another
    /// origin, or by an operator-read credential ("{what} needs operator-admin").
    pub(crate) fn refuse(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
        what: &str,
    ) -> Option<(StatusCode, String)> {
        session::forged(headers, &self.session.csrf, csrf).or_else(|| {
            (!self.role.may_write()).then(|| {
                (
                    StatusCode::FORBIDDEN,
                    format!("{} holds {}: {what} needs operator-admin.", self.actor, self.role),
                )
            })
        })
    }

    pub(crate) fn page(&self, title: &str, current: &'static str) -> Page {
        Page {
            title: title.to_owned(),
            area: Area::Operator,
            current,
            signed_in: Some((
                format!("{} · {}", self.actor, self.role),
                self.session.csrf.clone(),
            )),
        }
    }
}

fn sign_in_page() -> Page {
    Page {
        title: "Operator sign-in".into(),
        area: Area::Operator,
        current: "",
        signed_in: None,
    }
}

/// The credential a session names, as it stands now.
async fn credential(state: &AppState, credential: &str) -> Result<Option<(String, OperatorRole)>, Response> {
    if credential == BOOTSTRAP {
        return Ok(state
            .operator_digest()
            .map(|_| (BOOTSTRAP.to_owned(), OperatorRole::Admin)));
    }
    let Some(digest) = session::unhex32(credential) else {
        return Ok(None);
    };
    let found = state
        .store()
        .operator_token_by_digest(&digest)
        .await
        .map_err(|e| internal(&sign_in_page(), e))?;
    Ok(found
        .filter(|t| bool::from(t.digest.ct_eq(&digest)) && t.revoked_at.is_none())
        .map(|t| (t.actor(), t.role)))
}

impl FromRequestParts<AppState> for OperatorSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || see_other("/console/operator/sign-in", None);
        let Some(secret) = session::read_cookie(&parts.headers) else {
            return Err(to_sign_in());
        };
        let found = state
            .store()
            .console_session(&session::digest_hex(&secret), state.now())
            .await
            .map_err(|e| internal(&sign_in_page(), e))?;
        let Some(s) = found.filter(|s| s.kind == ConsoleKind::Operator) else {
            return Err(to_sign_in());
        };
        match credential(state, &s.credential).await? {
            Some((actor, role)) => Ok(Self {
                session: s,
                actor,
                role,
            }),
            None => Err(to_sign_in()),
        }
    }
}

fn sign_in_markup(error: Option<&str>) -> maud::Markup {
    html! {
        div.signin {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/operator/sign-in" {
                label for="token" { "Operator token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
            p { a href="/console/sign-in" { "Tenant sign-in" } }
        }
    }
}

pub async fn sign_in_form() -> Response {
    sign_in_page().render(sign_in_markup(None))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let page = sign_in_page();
    if !session::same_origin(&headers) {
        return page.error(StatusCode::FORBIDDEN, "This form was sent from another site.");
    }
    let secret = form.token.trim();
    let digest = tollgate_domain::token::digest(secret);
    let cred = if state
        .operator_digest()
        .is_some_and(|expected| bool::from(digest.ct_eq(expected)))
    {
        Some(BOOTSTRAP.to_owned())
    } else if tollgate_domain::token::is_well_formed(secret) {
        match state.store().operator_token_by_digest(&digest).await {
            Ok(Some(t)) if bool::from(t.digest.ct_eq(&digest)) && t.revoked_at.is_none() => {
                Some(session::hex(&digest))
            }
            Ok(_) => None,
            Err(e) => return internal(&page, e),
        }
    } else {
        None
    };
    match cred {
        Some(c) => {
            crate::tenant::start(&state, &headers, ConsoleKind::Operator, c, "/console/operator/").await
        }
        None => {
            let mut r = page.render(sign_in_markup(Some("This operator token is not valid.")));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    /// Part of a tenant's name.
    pub q: Option<String>,
    /// The page (from 1).
    pub page: Option<String>,
}

/// Tenants per page of the list.
pub const PAGE: usize = 25;

/// The page a list is on (from 1; anything else is the first).
pub fn page_number(raw: Option<&str>) -> usize {
    raw.and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// Links to the previous and next page of a list at `path` (`query`
/// already encoded, without `page`).
pub fn pager(path: &str, query: &str, page: usize, more: bool) -> maud::Markup {
    let link = |p: usize| {
        let mut q = query.to_owned();
        if !q.is_empty() {
            q.push('&');
        }
        format!("{path}?{q}page={p}")
    };
    html! {
        @if page > 1 || more {
            nav aria-label="Pages" {
                ul.pager {
                    @if page > 1 { li { a href=(link(page - 1)) rel="prev" { "← Previous" } } }
                    li.muted { "Page " (page) }
                    @if more { li { a href=(link(page + 1)) rel="next" { "Next →" } } }
                }
            }
        }
    }
}

/// What a tenant's current period has cost so far (as `current_usage`
/// rates it), in its currency; `None` when it cannot be rated.
async fn period_spend(state: &AppState, t: &tollgate_domain::tenant::Tenant) -> Option<(i64, String)> {
    let store = state.store();
    let subs = store.subscriptions(&t.id).await.ok()?;
    let range = tollgate_app::reports::ReportRange::resolve(&subs, None, None, state.now()).ok()?;
    let versions = state.catalogs().versions();
    let rated = tollgate_app::reports::range_bill(store, &versions, t, &range, None)
        .await
        .ok()?;
    Some((rated.bill.totals.total, rated.catalog.currency.clone()))
}

/// Tenants (those whose name contains `q`), a page at a time, each with
/// its plan, its current period's spend, what it owes and whether it is
/// suspended; each opens its page.
pub async fn tenants(
    State(state): State<AppState>,
    me: OperatorSession,
    Query(search): Query<Search>,
) -> Response {
    let page = me.page("Tenants", "/console/operator/");
    let (list, unpaid) = match (state.store().tenants().await, state.store().unpaid_totals().await) {
        (Ok(l), Ok(u)) => (l, u),
        (Err(e), _) | (_, Err(e)) => return internal(&page, e),
    };
    let q = search
        .q
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_ascii_lowercase();
    let number = page_number(search.page.as_deref());
    let matching: Vec<_> = list
        .iter()
        .filter(|t| q.is_empty() || t.name.as_str().contains(q.as_str()))
        .collect();
    let shown: Vec<_> = matching
        .iter()
        .skip((number - 1).saturating_mul(PAGE))
        .take(PAGE)
        .copied()
        .collect();
    let more = matching.len() > number.saturating_mul(PAGE);
    let mut owed_by: std::collections::HashMap<_, Vec<(String, i64)>> = std::collections::HashMap::new();
    for (id, currency, amount) in unpaid {
        owed_by.entry(id).or_default().push((currency, amount));
    }
    let mut rows = Vec::with_capacity(shown.len());
    for t in shown {
        let owed: Vec<String> = owed_by
            .get(&t.id)
            .map(|all| {
                all.iter()
                    .map(|(currency, amount)| money(*amount, currency))
                    .collect()
            })
            .unwrap_or_default();
        rows.push((t, period_spend(&state, t).await, owed));
    }
    let query = if q.is_empty() {
        String::new()
    } else {
        serde_urlencoded::to_string([("q", q.as_str())]).unwrap_or_default()
    };
    page.render(html! {
        form method="get" action="/console/operator/" role="search" {
            label for="q" { "Find a tenant" }
            input #q type="text" name="q" value=(q);
            " " button.secondary type="submit" { "Search" }
        }
        @if me.role.may_write() {
            details {
                summary { "Create a tenant" }
                form method="post" action="/console/operator/tenants" {
                    input type="hidden" name="csrf" value=(me.session.csrf);
                    label for="new-name" { "Name (a DNS label)" }
                    input #new-name type="text" name="name" required;
                    label for="new-plan" { "Plan (empty: the catalog's default)" }
                    input #new-plan type="text" name="plan";
                    label for="new-currency" { "Currency (empty: the catalog's first)" }
                    input #new-currency type="text" name="currency" maxlength="3";
                    p { button type="submit" { "Create" } }
                }
            }
        }
        @if rows.is_empty() {
            p.muted { "No tenant matches." }
        } @else {
            p.muted { (matching.len()) " tenants" }
            div.table-wrap {
                table #tenants {
                    thead { tr { th { "Tenant" } th { "Type" } th { "Plan" } th.num { "Period spend" } th.num { "Unpaid" } th { "Status" } th { "Created" } } }
                    tbody {
                        @for (t, spend, owed) in &rows {
                            tr data-tenant=(t.name) {
                                td { a href={ "/console/operator/tenants/" (t.name) } { (t.name) } }
                                td { (t.tenant_type) }
                                td { (t.plan) " (v" (t.catalog_version) ")" }
                                td.num.spend { @match spend { Some((amount, currency)) => (money(*amount, currency)), None => span.muted { "–" } } }
                                td.num.unpaid { @if owed.is_empty() { span.muted { "–" } } @else { (owed.join(", ")) } }
                                td { @if t.suspension.is_some() { span.badge.OVERDUE { "suspended" } } @else { "active" } }
                                td { (t.created_at.strftime("%Y-%m-%d")) }
                            }
                        }
                    }
                }
            }
            (pager("/console/operator/", &query, number, more))
        }
    })
}

/// One tenant: its subscriptions, invoices, transitions, credits and the
/// latest of its audit trail.
pub async fn tenant(
    State(state): State<AppState>,
    me: OperatorSession,
    Path(name): Path<String>,
) -> Response {
    tenant_page(&state, &me, &name, None, None).await
}

async fn tenant_page(
    state: &AppState,
    me: &OperatorSession,
    name: &str,
    new_token: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let page = me.page(&format!("Tenant {name}"), "/console/operator/");
    let store = state.store();
    let t = match store.tenant_by_name(name).await {
        Ok(Some(t)) => t,
        Ok(None) => return page.error(StatusCode::NOT_FOUND, "There is no such tenant."),
        Err(e) => return internal(&page, e),
    };
    let versions = state.catalogs().versions();
    let filter = TransitionFilter {
        tenant_id: Some(t.id.clone()),
        state: None,
    };
    let (subs, invoices, transitions, audit) = match (
        store.subscriptions(&t.id).await,
        store.invoices(&t.id).await,
        store.transitions(&filter).await,
        store.audit(Some(&t.id), 20).await,
    ) {
        (Ok(s), Ok(i), Ok(tr), Ok(a)) => (s, i, tr, a),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return internal(&page, e),
    };
    let credits = match tollgate_app::credits::summary(store, &versions, &t).await {
        Ok(c) => c,
        Err(e) => return internal(&page, e),
    };
    let mut r = page.render(html! {
        @if let Some((_, msg)) = &error { p.error role="alert" { (msg) } }
        p {
            (t.tenant_type) " · plan " (t.plan) " (catalog v" (t.catalog_version) ") · created " (t.created_at.strftime("%Y-%m-%d"))
            @if let Some(c) = &t.currency { " · " (c) }
            @if t.suspension.is_some() { " · " span.badge.OVERDUE { "suspended" } }
        }
        h2 { "Subscriptions" }
        div.table-wrap {
            table #subscriptions {
                thead { tr { th { "Plan" } th { "Catalog" } th { "Start" } th { "End" } } }
                tbody {
                    @for s in subs.iter().rev() {
                        tr {
                            td { (s.plan) } td { "v" (s.catalog_version) }
                            td { (s.start.strftime("%Y-%m-%d %H:%M")) }
                            td { @match s.end { Some(e) => (e.strftime("%Y-%m-%d %H:%M")), None => "current" } }
                        }
                    }
                }
            }
        }
        h2 { "Invoices" }
        @if invoices.is_empty() {
            p.muted { "None finalized yet." }
        } @else {
            div.table-wrap {
                table #tenant-invoices {
                    thead { tr { th { "Invoice" } th { "Period" } th { "Status" } th.num { "Total" } } }
                    tbody {
                        @for i in &invoices {
                            tr {
                                td { (i.invoice.name) }
                                td { (i.invoice.period_start.strftime("%Y-%m-%d")) " – " (i.invoice.period_end.strftime("%Y-%m-%d")) }
                                td { span class={ "badge " (i.invoice.status) } { (i.invoice.status.label()) } }
                                td.num { (crate::pages::money(i.invoice.totals.total, &i.invoice.currency)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Plan transitions" }
        @if transitions.is_empty() {
            p.muted { "None." }
        } @else {
            ul {
                @for tr in &transitions {
                    li { (tr.from_plan) " → " (tr.to_plan) " · " (tollgate_api::wire::enums::transition_state(tr.state)) " · " (tr.created_at.strftime("%Y-%m-%d %H:%M")) }
                }
            }
        }
        h2 { "Prepaid credits" }
        p #tenant-credits {
            @for (currency, balance) in &credits.balances { (crate::pages::money(*balance, currency)) " " }
            "(" (credits.grants.len()) " grants)"
        }
        @if let Some(secret) = &new_token {
            div.card #new-token role="status" {
                h2 { "New API token" }
                p { code { (secret) } }
                p.muted { "Shown this once: hand it to the tenant. Revoke it with `tollgate token revoke`." }
            }
        }
        @if me.role.may_write() {
            h2 { "Create an API token" }
            form method="post" action={ "/console/operator/tenants/" (t.name) "/tokens" } {
                input type="hidden" name="csrf" value=(me.session.csrf);
                label for="token-role" { "Role" }
                select #token-role name="role" {
                    @for r in ["admin", "billing", "monitor", "platform"] { option value=(r) { (r) } }
                }
                label for="token-name" { "Label" }
                input #token-name type="text" name="name" required;
                p { button type="submit" { "Create" } }
            }
        }
        h2 { "Audit trail (latest 20)" }
        div.table-wrap {
            table #audit {
                thead { tr { th { "At" } th { "Actor" } th { "Action" } th { "Target" } } }
                tbody {
                    @for a in &audit {
                        tr { td { (a.at.strftime("%Y-%m-%d %H:%M:%S")) } td { (a.actor) } td { (a.action) } td { (a.target) } }
                    }
                }
            }
        }
    });
    if let Some((status, _)) = error {
        *r.status_mut() = status;
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct NewTenantForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    currency: Option<String>,
}

/// Creates a tenant (with its `system` namespace), as `tollgate tenant create` does.
pub async fn create_tenant(
    State(state): State<AppState>,
    me: OperatorSession,
    headers: HeaderMap,
    Form(form): Form<NewTenantForm>,
) -> Response {
    let page = me.page("Tenants", "/console/operator/");
    if let Some((status, msg)) = me.refuse(&headers, form.csrf.as_deref(), "this") {
        return page.error(status, &msg);
    }
    let blank = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = tollgate_app::tenancy::TenantRequest {
        name: form.name.trim().to_owned(),
        plan: blank(form.plan),
        tenant_type: None,
        since: None,
        currency: blank(form.currency),
    };
    let versions = state.catalogs().versions();
    match tollgate_app::tenancy::create_tenant(state.store(), &versions, &req, &me.actor, state.now()).await {
        Ok(t) => see_other(&format!("/console/operator/tenants/{}", t.name), None),
        Err(e) => {
            let (status, msg) = crate::pages::app_error(e);
            page.error(status, &msg)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    role: String,
    #[serde(default)]
    name: String,
}

/// Creates an API token of the tenant; its secret is shown once.
pub async fn create_token(
    State(state): State<AppState>,
    me: OperatorSession,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<NewTokenForm>,
) -> Response {
    if let Some(e) = me.refuse(&headers, form.csrf.as_deref(), "this") {
        return tenant_page(&state, &me, &name, None, Some(e)).await;
    }
    let t = match state.store().tenant_by_name(&name).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return me
                .page("Tenant", "/console/operator/")
                .error(StatusCode::NOT_FOUND, "There is no such tenant.");
        }
        Err(e) => return internal(&me.page("Tenant", "/console/operator/"), e),
    };
    let req = tollgate_app::tenancy::TokenRequest {
        role: form.role,
        namespaces: Vec::new(),
        expires_in: None,
        name: form.name.trim().to_owned(),
    };
    match tollgate_app::tenancy::create_token(state.store(), &t, &req, &me.actor, state.now()).await {
        // Rendered, not redirected: the secret is shown this once.
        Ok(issued) => tenant_page(&state, &me, &name, Some(issued.secret), None).await,
        Err(e) => tenant_page(&state, &me, &name, None, Some(crate::pages::app_error(e))).await,
    }
}

/// Transitions waiting for the operator's approval.
pub async fn approvals(State(state): State<AppState>, me: OperatorSession) -> Response {
    let page = me.page("Approvals", "/console/operator/approvals");
    let filter = TransitionFilter {
        tenant_id: None,
        state: Some(TransitionState::WaitingForApproval),
    };
    let waiting = match state.store().transitions(&filter).await {
        Ok(w) => w,
        Err(e) => return internal(&page, e),
    };
    let names = match tollgate_store::tenant_names(
        state.store(),
        &waiting.iter().map(|t| &t.tenant_id).collect::<Vec<_>>(),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => return internal(&page, e),
    };
    let admin = me.role.may_write();
    page.render(html! {
        @if waiting.is_empty() {
            p.muted { "Nothing waits for approval." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Tenant" } th { "From" } th { "To" } th { "Requested" } @if admin { th { "Decision" } } } }
                    tbody {
                        @for t in &waiting {
                            tr data-transition=(t.id) {
                                td { (names.get(t.tenant_id.as_str()).cloned().unwrap_or_else(|| t.tenant_id.to_string())) }
                                td { (t.from_plan) }
                                td { (t.to_plan) }
                                td { (t.created_at.strftime("%Y-%m-%d %H:%M")) " by " (t.requested_by) }
                                @if admin {
                                    td {
                                        form.inline method="post" action={ "/console/operator/approvals/" (t.id) "/approve" } {
                                            input type="hidden" name="csrf" value=(me.session.csrf);
                                            button type="submit" { "Approve" }
                                        }
                                        " "
                                        form.inline method="post" action={ "/console/operator/approvals/" (t.id) "/reject" } {
                                            input type="hidden" name="csrf" value=(me.session.csrf);
                                            label for={ "reason-" (t.id) } { "Reason" }
                                            input type="text" id={ "reason-" (t.id) } name="reason" maxlength="1024";
                                            button.danger type="submit" { "Reject" }
                                        }
                                        " "
                                        form.inline method="post" action={ "/console/operator/approvals/" (t.id) "/cancel" } {
                                            input type="hidden" name="csrf" value=(me.session.csrf);
                                            label for={ "cancel-reason-" (t.id) } { "Reason" }
                                            input type="text" id={ "cancel-reason-" (t.id) } name="reason" maxlength="1024";
                                            button.secondary type="submit" { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Approves, rejects or cancels a waiting transition, the last two with a
/// reason (operator-admin, CSRF-checked).
pub async fn decide(
    State(state): State<AppState>,
    me: OperatorSession,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let page = me.page("Approvals", "/console/operator/approvals");
    if let Some((status, msg)) = me.refuse(&headers, form.csrf.as_deref(), "deciding a transition") {
        return page.error(status, &msg);
    }
    let now = state.now();
    let reason = form.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let done = match decision.as_str() {
        "approve" => tollgate_app::transitions::approve(state.store(), &id, &me.actor, now).await,
        "reject" => tollgate_app::transitions::reject(state.store(), &id, reason, &me.actor, now).await,
        "cancel" => tollgate_app::transitions::cancel(state.store(), &id, reason, &me.actor, now).await,
        _ => return page.error(StatusCode::NOT_FOUND, "No such decision."),
    };
    match done {
        Ok(_) => {
            state.dispatch_soon();
            see_other("/console/operator/approvals", None)
        }
        Err(tollgate_app::AppError::Rule(e)) => page.error(StatusCode::BAD_REQUEST, &e.message),
        Err(tollgate_app::AppError::Store(tollgate_store::StoreError::NotFound(m))) => {
            page.error(StatusCode::NOT_FOUND, &m)
        }
        Err(tollgate_app::AppError::Store(tollgate_store::StoreError::Conflict(_, m))) => {
            page.error(StatusCode::CONFLICT, &m)
        }
        Err(e) => internal(&page, e),
    }
}

/// The service's health as `/metrics` measures it: the oldest billing
/// period due for closing and the oldest due charge (how far the jobs lag),
/// the webhook queue, the database's readiness, this server's job runs and
/// latest failures (jobs and webhook attempts), and its connection pools.
pub async fn health(State(state): State<AppState>, me: OperatorSession) -> Response {
    let page = me.page("Health", "/console/operator/health");
    let store = state.store();
    let now = state.now();
    let ctx = state.job_context();
    let before = now
        .checked_sub(ctx.invoicing.grace)
        .unwrap_or(jiff::Timestamp::MIN);
    let age = |since: Option<jiff::Timestamp>, at: jiff::Timestamp| {
        since.map_or(0, |s| at.duration_since(s).as_secs().max(0))
    };
    let (period, charge, queue) = match (
        store.oldest_due_period(before).await,
        store.oldest_due_charge(now).await,
        store.webhook_queue().await,
    ) {
        (Ok(p), Ok(c), Ok(q)) => (p, c, q),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return internal(&page, e),
    };
    let ready = store.ready(now).await;
    let (failures, jobs) = tollgate_app::telemetry::recent();
    page.render(html! {
        div.cards {
            div.card #ready { h2 { "Database" } div.big { @if ready.is_ok() { "ready" } @else { "not ready" } } div.muted { (store.backend()) } }
            div.card #period-lag { h2 { "Oldest period due for closing" } div.big { (age(period, before)) " s" } div.muted { "tollgate_job_oldest_due_period_seconds" } }
            div.card #charge-lag { h2 { "Oldest due charge" } div.big { (age(charge, now)) " s" } div.muted { "tollgate_job_oldest_due_charge_seconds" } }
            div.card #webhooks {
                h2 { "Webhook queue" }
                div.big { (queue.pending) }
                div.muted { "deliveries waiting; " (queue.undispatched) " events not dispatched; oldest " (age(queue.oldest, now)) " s" }
            }
        }
        @if let Err(e) = &ready { p.error role="alert" { (e) } }
        h2 { "Jobs in this server" }
        p.muted { "Runs and failures since this server started (tollgate_job_runs_total, tollgate_job_failures_total)." }
        @if jobs.is_empty() {
            p.muted { "No job has run yet." }
        } @else {
            div.table-wrap {
                table #jobs {
                    thead { tr { th { "Job" } th.num { "Runs" } th.num { "Failures" } } }
                    tbody {
                        @for (job, c) in &jobs {
                            tr { td { (job) } td.num { (c.runs) } td.num { (c.failures) } }
                        }
                    }
                }
            }
        }
        h2 { "Recent failures" }
        @if failures.is_empty() {
            p.muted #failures { "None since this server started." }
        } @else {
            div.table-wrap {
                table #failures {
                    thead { tr { th { "At" } th { "What" } th { "Error" } } }
                    tbody {
                        @for f in &failures {
                            tr { td { (f.at.strftime("%Y-%m-%d %H:%M:%S")) } td { (f.what) } td { (f.error) } }
                        }
                    }
                }
            }
        }
        h2 { "Connection pools" }
        div.table-wrap {
            table {
                thead { tr { th { "Pool" } th.num { "In use" } th.num { "Idle" } th.num { "Most" } } }
                tbody {
                    @for p in store.pools() {
                        tr { td { (p.pool) } td.num { (p.in_use) } td.num { (p.idle) } td.num { (p.max) } }
                    }
                }
            }
        }
    })
}
