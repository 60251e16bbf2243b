//! The tenant's console: sign-in with an API token, the overview, quotas
//! and invoices (each opened in the browser or downloaded as a PDF).

use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tollgate_api::operations::Operation;
use tollgate_api::state::AppState;
use tollgate_domain::access;
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::invoice::{InvoiceStatus, LineKind};
use tollgate_domain::quota::{KeyFamily, Limit, ResourceAmount};
use tollgate_domain::tenant::Tenant;
use tollgate_domain::token::{self, ApiToken};
use tollgate_store::{ConsoleKind, ConsoleSession};

use crate::pages::{Area, Page, internal, money, see_other};
use crate::session;

/// A signed-in tenant user: the session, and the token it was signed in
/// with, checked again now (revoked or expired: the session is over).
pub struct TenantSession {
    pub session: ConsoleSession,
    pub token: ApiToken,
    pub tenant: Tenant,
}

impl TenantSession {
    pub(crate) fn page(&self, title: &str, current: &'static str) -> Page {
        Page {
            title: title.to_owned(),
            area: Area::Tenant,
            current,
            signed_in: Some((
                format!("{} · {}", self.tenant.name, self.token.role),
                self.session.csrf.clone(),
            )),
        }
    }

    /// Whether the token may do `op` (in `system`, where billing lives).
    pub fn may(&self, op: Operation) -> bool {
        access::authorize(self.token.role, &self.token.scope, op.permission(), "system").is_ok()
    }

    /// Refuses a change without the session's CSRF token, from another
    /// origin, or by a token that may not do `op` ("may not change {what}").
    pub(crate) fn refuse(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
        op: Operation,
        what: &str,
    ) -> Option<(StatusCode, String)> {
        session::forged(headers, &self.session.csrf, csrf).or_else(|| {
            (!self.may(op)).then(|| {
                (
                    StatusCode::FORBIDDEN,
                    format!("A {} token may not change {what}.", self.token.role),
                )
            })
        })
    }
}

/// Not signed in (or no longer): to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        see_other("/console/sign-in", None)
    }
}

impl FromRequestParts<AppState> for TenantSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(secret) = session::read_cookie(&parts.headers) else {
            return Err(SignIn.into_response());
        };
        let now = state.now();
        let found = state
            .store()
            .console_session(&session::digest_hex(&secret), now)
            .await
            .map_err(|e| internal(&sign_in_page(), e))?;
        let Some(s) = found.filter(|s| s.kind == ConsoleKind::Tenant) else {
            return Err(SignIn.into_response());
        };
        let Some(digest) = session::unhex32(&s.credential) else {
            return Err(SignIn.into_response());
        };
        let found = state
            .store()
            .token_by_digest(&digest)
            .await
            .map_err(|e| internal(&sign_in_page(), e))?;
        match found.filter(|(t, _)| bool::from(t.digest.ct_eq(&digest))) {
            Some((token, tenant)) if token.revoked_at.is_none() && token.is_active(now) => Ok(Self {
                session: s,
                token,
                tenant,
            }),
            _ => Err(SignIn.into_response()),
        }
    }
}

fn sign_in_page() -> Page {
    Page {
        title: "Sign in".into(),
        area: Area::Tenant,
        current: "",
        signed_in: None,
    }
}

fn sign_in_markup(error: Option<&str>) -> maud::Markup {
    html! {
        div.signin {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required;
                p.muted { "Any of your tenant's API tokens: the console can do what the token can." }
                button type="submit" { "Sign in" }
            }
            p { a href="/console/operator/sign-in" { "Operator sign-in" } }
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

/// Checks the token as the API does and starts a session.
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
    let refused = |msg: &str| {
        let mut r = page.render(sign_in_markup(Some(msg)));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    if !token::is_well_formed(secret) {
        return refused("That is not an API token.");
    }
    let digest = token::digest(secret);
    let now = state.now();
    let found = match state.store().token_by_digest(&digest).await {
        Ok(f) => f,
        Err(e) => return internal(&page, e),
    };
    let Some((t, _)) = found.filter(|(t, _)| bool::from(t.digest.ct_eq(&digest))) else {
        return refused("This token is not valid.");
    };
    if t.revoked_at.is_some() || !t.is_active(now) {
        return refused("This token has been revoked or has expired.");
    }
    start(
        &state,
        &headers,
        ConsoleKind::Tenant,
        session::hex(&digest),
        "/console/",
    )
    .await
}

/// Stores a new session and sets its cookie.
pub(crate) async fn start(
    state: &AppState,
    headers: &HeaderMap,
    kind: ConsoleKind,
    credential: String,
    home: &str,
) -> Response {
    let secret = session::random_secret();
    let now = state.now();
    let s = ConsoleSession {
        id_digest: session::digest_hex(&secret),
        kind,
        credential,
        csrf: session::random_secret(),
        created_at: now,
        expires_at: now + session::LIFETIME,
    };
    if let Err(e) = state.store().create_console_session(&s).await {
        return internal(&sign_in_page(), e);
    }
    see_other(home, Some(session::set_cookie(&secret, session::is_tls(headers))))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// Ends the session (either console's): the row is deleted, the cookie cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(secret) = session::read_cookie(&headers) else {
        return see_other("/console/sign-in", None);
    };
    let digest = session::digest_hex(&secret);
    let found = match state.store().console_session(&digest, state.now()).await {
        Ok(f) => f,
        Err(e) => return internal(&sign_in_page(), e),
    };
    let Some(s) = found else {
        return see_other(
            "/console/sign-in",
            Some(session::clear_cookie(session::is_tls(&headers))),
        );
    };
    if let Some((status, msg)) = session::forged(&headers, &s.csrf, form.csrf.as_deref()) {
        return sign_in_page().error(status, &msg);
    }
    if let Err(e) = state.store().delete_console_session(&digest).await {
        return internal(&sign_in_page(), e);
    }
    let to = match s.kind {
        ConsoleKind::Tenant => "/console/sign-in",
        ConsoleKind::Operator => "/console/operator/sign-in",
    };
    see_other(to, Some(session::clear_cookie(session::is_tls(&headers))))
}

// ------------------------------------------------------------------ overview

/// Plan and period, spend so far and a projection to the period's end,
/// credits, unpaid invoices, quota keys near their limits.
pub async fn overview(State(state): State<AppState>, me: TenantSession) -> Response {
    let page = me.page("Overview", "/console/");
    match overview_body(&state, &me).await {
        Ok(body) => page.render(body),
        Err(e) => internal(&page, e),
    }
}

async fn overview_body(state: &AppState, me: &TenantSession) -> Result<maud::Markup, String> {
    let store = state.store();
    let now = state.now();
    let versions = state.catalogs().versions();
    let plan = state
        .tenant_plan(&me.tenant)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let subs = store
        .subscriptions(&me.tenant.id)
        .await
        .map_err(|e| e.to_string())?;
    let range =
        tollgate_app::reports::ReportRange::resolve(&subs, None, None, now).map_err(|e| e.to_string())?;
    let rated = tollgate_app::reports::range_bill(store, &versions, &me.tenant, &range, None)
        .await
        .map_err(|e| e.to_string())?;
    let currency = rated.catalog.currency.clone();
    let total = rated.bill.totals.total;
    let usage: i64 = rated.bill.usage.iter().map(|l| l.amount_cents).sum();
    // Linear: usage so far scaled to the whole period; fixed charges as they are.
    let elapsed = now.duration_since(range.from).as_secs().max(1);
    let length = range.to.duration_since(range.from).as_secs().max(1);
    // A pace read off less than a day says little: no projection before.
    let projected = if now >= range.to {
        Some(total)
    } else if elapsed < 24 * 3600 {
        None
    } else {
        Some(
            total - usage
                + i64::try_from(i128::from(usage) * i128::from(length) / i128::from(elapsed))
                    .unwrap_or(i64::MAX),
        )
    };
    let credits = tollgate_app::credits::summary(store, &versions, &me.tenant)
        .await
        .map_err(|e| e.to_string())?;
    let unpaid: Vec<_> = store
        .invoices(&me.tenant.id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|i| matches!(i.invoice.status, InvoiceStatus::Issued | InvoiceStatus::Overdue))
        .collect();
    let near = quota_rows(state, &me.tenant)
        .await?
        .into_iter()
        .filter(|r| r.percent() >= 80)
        .collect::<Vec<_>>();
    let period_start = tollgate_app::alerts::current_period_start(store, &me.tenant, now)
        .await
        .map_err(|e| e.to_string())?;
    let fired = store
        .alerts(&me.tenant.id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|a| tollgate_app::alerts::triggered_in(a, period_start))
        .count();
    let balance = credits
        .balances
        .iter()
        .find(|(c, _)| *c == credits.currency)
        .map_or(0, |(_, b)| *b);
    Ok(html! {
        div.cards {
            div.card { h2 { "Plan" } div.big { (plan.plan().title) } div.muted { "catalog v" (plan.version) } }
            div.card {
                h2 { "This period" }
                div { (range.from.strftime("%Y-%m-%d")) " – " (range.to.strftime("%Y-%m-%d")) " (UTC)" }
            }
            div.card #spend { h2 { "Spend so far" } div.big { (money(total, &currency)) } }
            div.card #projection {
                h2 { "Projected for the period" }
                @match projected {
                    Some(p) => { div.big { (money(p, &currency)) } div.muted { "usage so far, extended at the same pace" } }
                    None => { div.big { "—" } div.muted { "after the period's first day" } }
                }
            }
            div.card #credits { h2 { "Prepaid credits" } div.big { (money(balance, &credits.currency)) } }
            div.card #alerts { h2 { "Alerts fired this period" } div.big { (fired) } a href="/console/alerts" { "Alerts" } }
            div.card #unpaid {
                h2 { "Unpaid invoices" }
                div.big { (unpaid.len()) }
                @for i in &unpaid {
                    div { a href={ "/console/invoices/" (i.invoice.name) } { (i.invoice.name) } " " span class={ "badge " (i.invoice.status) } { (i.invoice.status) } }
                }
            }
        }
        h2 { "Quota keys near their limits" }
        @if near.is_empty() {
            p.muted { "None: every key is below 80 % of its limit." }
        } @else {
            (quota_table(&near))
        }
    })
}

// -------------------------------------------------------------------- quotas

struct QuotaRow {
    family: KeyFamily,
    key: String,
    used: i64,
    limit: Limit,
}

impl QuotaRow {
    fn percent(&self) -> i64 {
        match self.limit {
            Limit::Unlimited => 0,
            Limit::Max(0) => {
                if self.used > 0 {
                    100
                } else {
                    0
                }
            }
            Limit::Max(m) => i64::try_from(i128::from(self.used) * 100 / i128::from(m)).unwrap_or(i64::MAX),
        }
    }

    fn amount(&self, v: i64) -> String {
        match self.family {
            KeyFamily::Object => v.to_string(),
            KeyFamily::Resource => ResourceAmount::from_micros(v)
                .to_decimal()
                .normalize()
                .to_string(),
        }
    }
}

async fn quota_rows(state: &AppState, tenant: &Tenant) -> Result<Vec<QuotaRow>, String> {
    let effective = state
        .effective_quota(tenant)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let usage = state.store().usage(&tenant.id).await.map_err(|e| e.to_string())?;
    let used = |family: KeyFamily, key: &str| {
        usage
            .iter()
            .find(|u| u.family == family && u.key == key)
            .map_or(0, |u| u.used)
    };
    let mut rows = Vec::new();
    for (key, limit) in &effective.objects {
        rows.push(QuotaRow {
            family: KeyFamily::Object,
            key: key.clone(),
            used: used(KeyFamily::Object, key),
            limit: *limit,
        });
    }
    for (key, limit) in &effective.resources {
        rows.push(QuotaRow {
            family: KeyFamily::Resource,
            key: key.clone(),
            used: used(KeyFamily::Resource, key),
            limit: *limit,
        });
    }
    Ok(rows)
}

fn quota_table(rows: &[QuotaRow]) -> maud::Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "Key" } th.num { "Used" } th.num { "Limit" } th { "Use" } } }
                tbody {
                    @for r in rows {
                        @let pct = r.percent();
                        tr data-key=(r.key) {
                            td { (r.key) }
                            td.num { (r.amount(r.used)) }
                            td.num { @match r.limit { Limit::Unlimited => "unlimited", Limit::Max(m) => (r.amount(m)) } }
                            td {
                                // A native meter: the browser colours it at the
                                // thresholds (low 80 %, high 100 %), no inline style.
                                meter min="0" max="100" low="80" high="99.99" optimum="0" value=(pct.clamp(0, 100))
                                    aria-label={ (r.key) " used: " (pct) " %" } { (pct) " %" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every quota key with a bar of used vs effective limit, coloured at 80 %
/// and 100 %.
pub async fn quotas(State(state): State<AppState>, me: TenantSession) -> Response {
    let page = me.page("Quotas", "/console/quotas");
    match quota_rows(&state, &me.tenant).await {
        Ok(rows) => page.render(quota_table(&rows)),
        Err(e) => internal(&page, e),
    }
}

// ------------------------------------------------------------------ invoices

pub async fn invoices(State(state): State<AppState>, me: TenantSession) -> Response {
    let page = me.page("Invoices", "/console/invoices");
    let versions = state.catalogs().versions();
    let list =
        match tollgate_app::invoices::tenant_invoices(state.store(), &versions, &me.tenant.id, state.now())
            .await
        {
            Ok(l) => l,
            Err(e) => return internal(&page, e),
        };
    page.render(html! {
        @if list.is_empty() {
            p.muted { "No invoices yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Invoice" } th { "Period" } th { "Status" } th.num { "Total" } th { "PDF" } } }
                    tbody {
                        @for i in &list {
                            tr {
                                td { a href={ "/console/invoices/" (i.name) } { (i.name) } }
                                td { (i.period_start.strftime("%Y-%m-%d")) " – " (i.period_end.strftime("%Y-%m-%d")) }
                                td { span class={ "badge " (i.status) } { (i.status.label()) } }
                                td.num { (money(i.totals.total, &i.currency)) }
                                td { a href={ "/console/invoices/" (i.name) "/pdf" } download { "Download" } }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub async fn invoice(State(state): State<AppState>, me: TenantSession, Path(name): Path<String>) -> Response {
    let page = me.page(&format!("Invoice {name}"), "/console/invoices");
    let versions = state.catalogs().versions();
    let name = InvoiceName::new(name);
    let found = match tollgate_app::invoices::tenant_invoice(
        state.store(),
        &versions,
        &me.tenant.id,
        &name,
        state.now(),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return internal(&page, e),
    };
    let Some(i) = found else {
        return page.error(StatusCode::NOT_FOUND, "There is no such invoice.");
    };
    let (charges, notes) = match (
        state.store().invoice_charges(&me.tenant.id, &name).await,
        state.store().invoice_refunds(&me.tenant.id, &name).await,
    ) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(e), _) | (_, Err(e)) => return internal(&page, e),
    };
    let c = &i.currency;
    page.render(html! {
        p {
            span class={ "badge " (i.status) } { (i.status.label()) } " "
            (i.plan_title) ", " (i.period_start.strftime("%Y-%m-%d")) " – " (i.period_end.strftime("%Y-%m-%d")) " (UTC) · "
            a href={ "/console/invoices/" (i.name) "/pdf" } download { "Download PDF" }
        }
        div.table-wrap {
            table {
                thead { tr { th { "Description" } th.num { "Quantity" } th.num { "Amount" } } }
                tbody {
                    @for l in &i.lines {
                        tr {
                            td { (l.description) @if l.kind == LineKind::Adjustment { " " span.badge { "adjustment" } } }
                            td.num { (l.quantity.normalize()) " " (l.unit) }
                            td.num { (money(l.amount_cents, c)) }
                        }
                    }
                    tr { th colspan="2" { "Subtotal" } td.num { (money(i.totals.subtotal, c)) } }
                    @if i.totals.discount != 0 { tr { th colspan="2" { "Discount" } td.num { (money(-i.totals.discount, c)) } } }
                    @for cr in &i.credits { tr { th colspan="2" { "Prepaid credits: " (cr.description) } td.num { (money(-cr.amount_cents, c)) } } }
                    @for t in &i.taxes { tr { th colspan="2" { (t.name) " " (t.percent.normalize()) " %" } td.num { (money(t.amount_cents, c)) } } }
                    tr { th colspan="2" { "Total" } td.num #total { strong { (money(i.totals.total, c)) } } }
                }
            }
        }
        @if let Some(note) = &i.tax_note { p.muted { (note) } }
        h2 { "Payment attempts" }
        @if charges.is_empty() {
            p.muted { "None." }
        } @else {
            ul {
                @for ch in &charges {
                    li { (ch.started_at.strftime("%Y-%m-%d %H:%M")) " · " (money(ch.amount_cents, &ch.currency)) " · " (ch.outcome.as_str()) }
                }
            }
        }
        h2 { "Credit notes" }
        @if notes.is_empty() {
            p.muted { "None." }
        } @else {
            div.table-wrap {
                table #credit-notes {
                    thead { tr { th { "Credit note" } th { "State" } th.num { "Amount" } th { "Reason" } th { "PDF" } } }
                    tbody {
                        @for n in &notes {
                            tr {
                                td { (n.credit_note) }
                                td { (n.state.as_str()) }
                                td.num { (money(n.amount_cents, &n.currency)) }
                                td { (n.reason) }
                                td { a href={ "/console/credit-notes/" (n.credit_note) "/pdf" } download { "Download" } }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub async fn invoice_pdf(
    State(state): State<AppState>,
    me: TenantSession,
    Path(name): Path<String>,
) -> Response {
    let page = me.page("Invoice", "/console/invoices");
    if !me.may(Operation::DownloadInvoicePdf) {
        return page.error(StatusCode::FORBIDDEN, "Your token may not download invoices.");
    }
    let versions = state.catalogs().versions();
    let name = InvoiceName::new(name);
    match tollgate_app::invoices::render_pdf(state.store(), &versions, &me.tenant, &name, state.now()).await {
        Ok(Some(bytes)) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.pdf\"")) {
                h.insert(CONTENT_DISPOSITION, v);
            }
            r
        }
        Ok(None) => page.error(StatusCode::NOT_FOUND, "There is no such invoice."),
        Err(e) => internal(&page, e),
    }
}

/// A credit note of the tenant's as a PDF.
pub async fn credit_note_pdf(
    State(state): State<AppState>,
    me: TenantSession,
    Path(name): Path<String>,
) -> Response {
    let page = me.page("Credit note", "/console/invoices");
    if !me.may(Operation::DownloadCreditNotePdf) {
        return page.error(StatusCode::FORBIDDEN, "Your token may not download credit notes.");
    }
    let versions = state.catalogs().versions();
    match tollgate_app::credit_notes::render_pdf(state.store(), &versions, &me.tenant, &name).await {
        Ok(Some(bytes)) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.pdf\"")) {
                h.insert(CONTENT_DISPOSITION, v);
            }
            r
        }
        Ok(None) => page.error(StatusCode::NOT_FOUND, "There is no such credit note."),
        Err(e) => internal(&page, e),
    }
}
