//! The operator's catalog: every published version (the newest is the one
//! offered), one version's plans and source, what changed between two
//! versions (by name and line by line), and an uploaded file validated
//! (with what it would change against the published version) or published
//! as the next version (operator-admin only; the form CSRF-checked).

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tollgate_api::state::AppState;
use tollgate_app::catalogs::{DiffLine, VersionDiff};
use tollgate_domain::catalog::{self, Catalog};
use tollgate_store::StoredCatalog;

use crate::operator::OperatorSession;
use crate::pages::{internal, money, see_other};
use crate::session;

const HERE: &str = "/console/operator/catalog";
/// The largest catalog file the form takes.
const MOST_BYTES: usize = 1 << 20;

/// What the upload form left to show again: its outcome or its error.
enum Upload {
    None,
    Valid {
        name: String,
        catalog: Box<Catalog>,
        diff: Option<VersionDiff>,
    },
    Refused(StatusCode, String),
}

async fn render(state: &AppState, me: &OperatorSession, upload: Upload) -> Response {
    let page = me.page("Catalog", HERE);
    let list = match state.store().catalogs().await {
        Ok(l) => l,
        Err(e) => return internal(&page, e),
    };
    let latest = list.last().map(|c| c.version);
    let admin = me.role.may_write();
    let body = html! {
        @match &upload {
            Upload::Refused(_, msg) => { p.error role="alert" { (msg) } }
            Upload::Valid { name, catalog, diff } => {
                div.card #validated role="status" {
                    h2 { (name) " is valid" }
                    (summary(catalog))
                    @if let Some(d) = diff {
                        h3 { "Against the published version " (d.from) }
                        (changes(d))
                    }
                }
            }
            Upload::None => {}
        }
        h2 { "Versions" }
        div.table-wrap {
            table #versions {
                thead { tr { th { "Version" } th { "File" } th { "Published" } th { "By" } th { "" } } }
                tbody {
                    @for c in list.iter().rev() {
                        tr data-version=(c.version) {
                            td { a href={ (HERE) "/versions/" (c.version) } { "v" (c.version) } }
                            td { (c.source_name) }
                            td { (c.published_at.strftime("%Y-%m-%d %H:%M")) }
                            td { (c.published_by) }
                            td { @if Some(c.version) == latest { span.badge.PAID { "published" } } }
                        }
                    }
                }
            }
        }
        @if list.len() > 1 {
            h2 { "Compare two versions" }
            form method="get" action={ (HERE) "/diff" } {
                label for="from" { "From" }
                (version_select("from", &list, list.len().checked_sub(2).map(|i| list[i].version)))
                label for="to" { "To" }
                (version_select("to", &list, latest))
                p { button.secondary type="submit" { "Compare" } }
            }
        }
        h2 { "Validate or publish a catalog file" }
        form method="post" action={ (HERE) "/upload" } enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(me.session.csrf);
            label for="file" { "Catalog file (TOML)" }
            input #file type="file" name="file" accept=".toml,text/plain" required;
            p {
                button.secondary type="submit" name="action" value="validate" { "Validate" }
                @if admin {
                    " " button type="submit" name="action" value="publish" { "Publish as the next version" }
                }
            }
            @if !admin { p.muted { "Publishing needs operator-admin." } }
        }
    };
    let mut r = page.render(body);
    if let Upload::Refused(status, _) = upload {
        *r.status_mut() = status;
    }
    r
}

fn version_select(name: &str, list: &[StoredCatalog], selected: Option<i64>) -> Markup {
    html! {
        select id=(name) name=(name) {
            @for c in list.iter().rev() {
                @if Some(c.version) == selected {
                    option value=(c.version) selected { "v" (c.version) " · " (c.source_name) }
                } @else {
                    option value=(c.version) { "v" (c.version) " · " (c.source_name) }
                }
            }
        }
    }
}

/// A catalog's plans and what else it holds, in short.
fn summary(c: &Catalog) -> Markup {
    html! {
        p {
            (c.plans.len()) " plans · " (c.addons.len()) " add-ons · " (c.meters.len()) " meters · "
            (c.taxes.len()) " tax rates · default plan " code { (c.default_plan) } " · "
            (c.currencies.join(", "))
        }
        div.table-wrap {
            table.plans {
                thead { tr { th { "Plan" } th { "Title" } th.num { "Fee" } th { "Period" } th { "Priced meters" } th { "Offered" } } }
                tbody {
                    @for p in &c.plans {
                        tr {
                            td { code { (p.name) } }
                            td { (p.title) }
                            td.num { (money(p.flat_price_cents, &c.currency)) }
                            td { (p.renewal_period.as_str().to_ascii_lowercase()) }
                            td { (p.prices.len()) }
                            td { @if p.offered { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
    }
}

/// The changes by name, then the line diff.
fn changes(d: &VersionDiff) -> Markup {
    html! {
        @if d.changes.is_empty() && d.lines.is_empty() {
            p.muted { "No difference." }
        } @else if d.changes.is_empty() {
            p.muted { "No plan, add-on, meter or tax rate differs; only the text does." }
        } @else {
            ul.changes {
                @for c in &d.changes {
                    li class=(c.kind.as_str()) {
                        strong { (c.what) " " @if !c.name.is_empty() { code { (c.name) } } " " (c.kind.as_str()) }
                        @if !c.details.is_empty() {
                            ul { @for line in &c.details { li { (line) } } }
                        }
                    }
                }
            }
        }
        @if !d.lines.is_empty() {
            div.table-wrap {
                table.diff aria-label="Line by line" {
                    thead { tr { th.num { "Old" } th.num { "New" } th { "" } } }
                    tbody {
                        @for line in &d.lines {
                            @match line {
                                Some(l) => (diff_row(l)),
                                None => tr.gap { td colspan="3" { "⋯" } },
                            }
                        }
                    }
                }
            }
        }
    }
}

fn diff_row(l: &DiffLine) -> Markup {
    let class = match l.tag {
        '+' => "add",
        '-' => "del",
        _ => "same",
    };
    html! {
        tr class=(class) {
            td.num { @if let Some(n) = l.old_line { (n) } }
            td.num { @if let Some(n) = l.new_line { (n) } }
            td { code { (l.tag) " " (l.text) } }
        }
    }
}

/// Every published version, the comparison form and the upload form.
pub async fn page(State(state): State<AppState>, me: OperatorSession) -> Response {
    render(&state, &me, Upload::None).await
}

/// One version: its plans and its source as published.
pub async fn version(
    State(state): State<AppState>,
    me: OperatorSession,
    Path(version): Path<String>,
) -> Response {
    let page = me.page(&format!("Catalog v{version}"), HERE);
    let Ok(v) = version.parse::<i64>() else {
        return page.error(StatusCode::NOT_FOUND, "There is no such catalog version.");
    };
    let stored = match state.store().catalog(Some(v)).await {
        Ok(Some(c)) => c,
        Ok(None) => return page.error(StatusCode::NOT_FOUND, "There is no such catalog version."),
        Err(e) => return internal(&page, e),
    };
    let parsed = match state.catalogs().versions().get(state.store(), v).await {
        Ok(c) => c,
        Err(e) => return internal(&page, e),
    };
    page.render(html! {
        p.muted {
            (stored.source_name) " · published " (stored.published_at.strftime("%Y-%m-%d %H:%M"))
            " by " (stored.published_by)
        }
        (summary(&parsed))
        h2 { "Source" }
        pre.source #source { code { (stored.source) } }
        p { a href={ (HERE) "/versions/" (v) "/source" } download={ "catalog-v" (v) ".toml" } { "Download" } }
    })
}

/// One version's source as a file.
pub async fn source(
    State(state): State<AppState>,
    me: OperatorSession,
    Path(version): Path<String>,
) -> Response {
    use axum::response::IntoResponse;
    let page = me.page("Catalog", HERE);
    let found = match version.parse::<i64>() {
        Ok(v) => state.store().catalog(Some(v)).await,
        Err(_) => Ok(None),
    };
    match found {
        Ok(Some(c)) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "application/toml; charset=utf-8".to_owned(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"catalog-v{}.toml\"", c.version),
                ),
                (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            c.source,
        )
            .into_response(),
        Ok(None) => page.error(StatusCode::NOT_FOUND, "There is no such catalog version."),
        Err(e) => internal(&page, e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Compare {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What changed from one version to another.
pub async fn diff(State(state): State<AppState>, me: OperatorSession, Query(q): Query<Compare>) -> Response {
    let page = me.page("Compare catalog versions", HERE);
    let number = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
    let (Some(from), Some(to)) = (number(&q.from), number(&q.to)) else {
        return page.error(
            StatusCode::BAD_REQUEST,
            "Choose two versions to compare (from and to, each a version number).",
        );
    };
    let versions = state.catalogs().versions();
    match tollgate_app::catalogs::diff_versions(state.store(), &versions, from, to).await {
        Ok(d) => page.render(html! {
            p { "From " a href={ (HERE) "/versions/" (from) } { "v" (from) } " to " a href={ (HERE) "/versions/" (to) } { "v" (to) } "." }
            div #diff { (changes(&d)) }
            p { a href=(HERE) { "Back to the catalog" } }
        }),
        Err(e) => {
            let (status, msg) = crate::pages::app_error(e);
            page.error(status, &msg)
        }
    }
}

/// Validates an uploaded catalog file, or publishes it as the next version.
pub async fn upload(
    State(state): State<AppState>,
    me: OperatorSession,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let (mut csrf, mut action, mut file) = (None, None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let msg = format!("The upload could not be read: {e}.");
                return render(&state, &me, Upload::Refused(StatusCode::BAD_REQUEST, msg)).await;
            }
        };
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.ok(),
            "action" => action = field.text().await.ok(),
            "file" => {
                let name = field
                    .file_name()
                    .map(str::to_owned)
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| "catalog.toml".to_owned());
                match field.bytes().await {
                    Ok(b) if b.len() <= MOST_BYTES => file = Some((name, b)),
                    Ok(_) => {
                        let msg = format!("The file is larger than {} KiB.", MOST_BYTES / 1024);
                        return render(&state, &me, Upload::Refused(StatusCode::PAYLOAD_TOO_LARGE, msg))
                            .await;
                    }
                    Err(e) => {
                        let msg = format!("The upload could not be read: {e}.");
                        return render(&state, &me, Upload::Refused(StatusCode::BAD_REQUEST, msg)).await;
                    }
                }
            }
            _ => {}
        }
    }
    // Anyone signed in may validate; publishing needs operator-admin.
    let publish = action.as_deref() == Some("publish");
    let refused = if publish {
        me.refuse(&headers, csrf.as_deref(), "publishing")
    } else {
        session::forged(&headers, &me.session.csrf, csrf.as_deref())
    };
    if let Some((status, msg)) = refused {
        return render(&state, &me, Upload::Refused(status, msg)).await;
    }
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        let msg = "Choose a catalog file to upload.".to_owned();
        return render(&state, &me, Upload::Refused(StatusCode::BAD_REQUEST, msg)).await;
    };
    let Ok(text) = String::from_utf8(bytes.to_vec()) else {
        let msg = format!("{name} is not UTF-8 text.");
        return render(&state, &me, Upload::Refused(StatusCode::BAD_REQUEST, msg)).await;
    };
    if publish {
        return match tollgate_app::catalogs::publish(state.store(), &name, &text, &me.actor, state.now())
            .await
        {
            Ok(v) => see_other(&format!("{HERE}/versions/{v}"), None),
            Err(e) => {
                let (status, msg) = crate::pages::app_error(e);
                render(&state, &me, Upload::Refused(status, msg)).await
            }
        };
    }
    let parsed = match catalog::parse_for_publish(&name, &text) {
        Ok(c) => c,
        Err(e) => {
            let e = tollgate_domain::Error::from(e);
            return render(&state, &me, Upload::Refused(StatusCode::BAD_REQUEST, e.message)).await;
        }
    };
    // What publishing it would change, against the published version.
    let versions = state.catalogs().versions();
    let diff = match state.store().catalog(None).await {
        Ok(Some(latest)) => match versions.get(state.store(), latest.version).await {
            Ok(current) => Some(VersionDiff {
                from: latest.version,
                to: latest.version + 1,
                changes: catalog::diff(&current, &parsed),
                lines: tollgate_app::catalogs::text_diff(&latest.source, &text),
            }),
            Err(e) => return internal(&me.page("Catalog", HERE), e),
        },
        Ok(None) => None,
        Err(e) => return internal(&me.page("Catalog", HERE), e),
    };
    render(
        &state,
        &me,
        Upload::Valid {
            name,
            catalog: Box::new(parsed),
            diff,
        },
    )
    .await
}
