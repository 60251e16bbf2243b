//! The tenant's usage page: per meter, a chart of each day (or hour) of a
//! billing period or chosen range, stacked by namespace or object,
//! server-rendered as SVG (no script), with its data points as a table; the
//! rated lines as `current_usage` rates them; and the same data as CSV.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use tollgate_api::state::AppState;
use tollgate_domain::catalog::{Aggregation, Meter};
use tollgate_domain::metering::{ObjectKey, ObjectUsage, hour_totals};
use tollgate_store::BucketFilter;

use crate::pages::{internal, money};
use crate::tenant::TenantSession;

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    /// A meter's metric label; default: the first with usage.
    pub metric: Option<String>,
    /// RFC 3339; default: the current billing period.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `namespace` (default) or `object`.
    pub by: Option<String>,
    /// `day` or `hour` (ranges up to 7 days); default: hours for ranges up
    /// to 3 days.
    pub step: Option<String>,
}

/// The longest range charted by the hour (7 days: 168 bars).
const HOURLY_MOST: i64 = 24 * 7;

/// One point of the chart: a slot, a group, a quantity in billable units.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub slot: Timestamp,
    pub group: String,
    pub quantity: Decimal,
}

/// What the page shows, computed once for the page and the CSV.
struct Series {
    meters: Vec<Meter>,
    meter: Option<Meter>,
    /// The range charted, and rated beside the chart.
    range: tollgate_app::reports::ReportRange,
    /// The first and past-the-last bucket hours: the chart's axis.
    origin: Timestamp,
    end: Timestamp,
    step: SignedDuration,
    by_object: bool,
    /// The `step` asked for, kept in the page's links.
    step_asked: Option<&'static str>,
    points: Vec<Point>,
}

/// A time as the API takes it (RFC 3339 or unix seconds), or a date as the
/// page's date fields send it: its start in UTC, or, for the end of a range
/// (`end_of_day`), the next day's start, so that the day is included.
fn parse_time(field: &str, v: Option<&str>, end_of_day: bool) -> Result<Option<Timestamp>, String> {
    let Some(text) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if text.len() == 10
        && let Ok(date) = text.parse::<jiff::civil::Date>()
    {
        let day = if end_of_day {
            date.tomorrow().map_err(|e| format!("{field}: {e}"))?
        } else {
            date
        };
        return format!("{day}T00:00:00Z")
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|e| format!("{field}: {e}"));
    }
    tollgate_domain::metering::parse_time(text)
        .map(Some)
        .map_err(|e| format!("{field}: {e}"))
}

async fn series(
    state: &AppState,
    me: &TenantSession,
    q: &UsageQuery,
) -> Result<Result<Series, String>, String> {
    let store = state.store();
    let now = state.now();
    let (from, to) = match (
        parse_time("from", q.from.as_deref(), false),
        parse_time("to", q.to.as_deref(), true),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let subs = store
        .subscriptions(&me.tenant.id)
        .await
        .map_err(|e| e.to_string())?;
    let range = match tollgate_app::reports::ReportRange::resolve(&subs, from, to, now) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if range.to <= range.from || range.to.duration_since(range.from) > SignedDuration::from_hours(24 * 400) {
        return Ok(Err(
            "from/to: the range must be in order and at most 400 days".into()
        ));
    }
    let plan = state
        .tenant_plan(&me.tenant)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let meters = plan.catalog.meters.clone();
    let by_object = q.by.as_deref() == Some("object");
    let hours = range.to.duration_since(range.from).as_hours();
    let step = match q.step.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some("hour") if hours > HOURLY_MOST => {
            return Ok(Err(format!(
                "step: hours are charted for ranges of at most {} days; choose a shorter range or days",
                HOURLY_MOST / 24
            )));
        }
        Some("hour") => SignedDuration::from_hours(1),
        Some("day") => SignedDuration::from_hours(24),
        Some(other) => return Ok(Err(format!("step: expected \"day\" or \"hour\", got {other:?}"))),
        None if hours <= 72 => SignedDuration::from_hours(1),
        None => SignedDuration::from_hours(24),
    };
    let daily = step.as_hours() == 24;
    // The bucket hours the range covers (as the reports read them). Hour
    // slots start at the first; day slots are UTC days, read from the daily
    // summaries (and the edge hours), one row per object and day.
    let (hour_origin, hour_end) = range.hours();
    let (origin, end) = if daily {
        let last = hour_end
            .checked_sub(SignedDuration::from_hours(1))
            .unwrap_or(hour_origin);
        (
            tollgate_domain::metering::day_of(hour_origin),
            tollgate_domain::metering::day_of(last)
                .checked_add(SignedDuration::from_hours(24))
                .unwrap_or(hour_end),
        )
    } else {
        (hour_origin, hour_end)
    };
    let filter = BucketFilter {
        namespace: None,
        metric_label: None,
        object_name: None,
        from: hour_origin,
        to: hour_end,
    };
    // Each object's usage per slot, of one meter only: by default the first
    // of the plan's meters with usage in the range (or the first meter).
    let read = |metric: String| {
        let filter = filter.clone();
        async move {
            let filter = BucketFilter {
                metric_label: Some(&metric),
                ..filter
            };
            let mut per_object: BTreeMap<(Timestamp, ObjectKey), ObjectUsage> = BTreeMap::new();
            if daily {
                let days = store
                    .daily_usage(&me.tenant.id, &filter)
                    .await
                    .map_err(|e| e.to_string())?;
                for (day, object, usage) in days {
                    per_object.entry((day, object)).or_default().merge(&usage);
                }
            } else {
                let buckets = store
                    .buckets(&me.tenant.id, &filter)
                    .await
                    .map_err(|e| e.to_string())?;
                for ((object, hour), total) in hour_totals(buckets.iter().map(|(k, b)| (k, b))) {
                    per_object
                        .entry((hour, object))
                        .or_default()
                        .merge(&ObjectUsage::hour(hour, total));
                }
            }
            Ok::<_, String>(per_object)
        }
    };
    let (chosen, per_object) = match q.metric.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => match meters.iter().find(|x| x.metric_label == m) {
            Some(x) => (Some(x.clone()), read(x.metric_label.clone()).await?),
            None => return Ok(Err(format!("metric: the plan has no meter {m:?}"))),
        },
        None => {
            let mut found = (meters.first().cloned(), BTreeMap::new());
            for m in &meters {
                let usage = read(m.metric_label.clone()).await?;
                if !usage.is_empty() {
                    found = (Some(m.clone()), usage);
                    break;
                }
            }
            found
        }
    };
    let mut points = Vec::new();
    if let Some(meter) = &chosen {
        let mut grouped: BTreeMap<(Timestamp, String), Decimal> = BTreeMap::new();
        if meter.aggregation == Aggregation::UniqueCount {
            // Distinct values do not add up across hours or objects: the
            // chart shows each hour's distinct count for the whole tenant.
            let counts = store
                .distinct_counts(
                    &me.tenant.id,
                    &BucketFilter {
                        metric_label: Some(&meter.metric_label),
                        ..filter
                    },
                    tollgate_store::DistinctBy::Hour,
                )
                .await
                .map_err(|e| e.to_string())?;
            for (key, n) in counts {
                if let Some(hour) = key.hour {
                    *grouped.entry((hour, "all".into())).or_default() += Decimal::from(n);
                }
            }
        } else {
            for ((slot, object), usage) in per_object {
                let group = if by_object {
                    object.object_name.clone()
                } else {
                    object.namespace.clone()
                };
                *grouped.entry((slot, group)).or_default() += usage.quantity(meter.aggregation);
            }
        }
        let divisor = if meter.divisor.is_zero() {
            Decimal::ONE
        } else {
            meter.divisor
        };
        points = grouped
            .into_iter()
            .map(|((slot, group), q)| Point {
                slot,
                group,
                quantity: (q / divisor).normalize(),
            })
            .collect();
    }
    Ok(Ok(Series {
        meters,
        meter: chosen,
        range,
        origin,
        end,
        step: if chosen_is_unique(&points) {
            SignedDuration::from_hours(1)
        } else {
            step
        },
        by_object,
        step_asked: match q.step.as_deref().map(str::trim) {
            Some("hour") => Some("hour"),
            Some("day") => Some("day"),
            _ => None,
        },
        points,
    }))
}

fn chosen_is_unique(points: &[Point]) -> bool {
    !points.is_empty() && points.iter().all(|p| p.group == "all")
}

const PALETTE: [&str; 8] = [
    "#2f5bd3", "#1f8a4c", "#b8860b", "#c0392b", "#7b3fb5", "#0f8b8d", "#d35400", "#5b6475",
];

/// The stacked bars, as SVG with presentation attributes (no style).
fn chart(s: &Series) -> Markup {
    let slots = ((s.end.duration_since(s.origin).as_secs() + s.step.as_secs() - 1) / s.step.as_secs()).max(1);
    let groups: Vec<String> = {
        let mut g: Vec<String> = s.points.iter().map(|p| p.group.clone()).collect();
        g.sort();
        g.dedup();
        g
    };
    let mut stacks: BTreeMap<Timestamp, Decimal> = BTreeMap::new();
    for p in &s.points {
        *stacks.entry(p.slot).or_default() += p.quantity;
    }
    let top = stacks.values().copied().max().unwrap_or(Decimal::ZERO);
    let (w, h, pad) = (720.0_f64, 220.0_f64, 28.0_f64);
    let bar_w = (w - pad) / slots as f64;
    let scale = |q: Decimal| -> f64 {
        if top.is_zero() {
            0.0
        } else {
            use rust_decimal::prelude::ToPrimitive;
            (q / top).to_f64().unwrap_or(0.0) * (h - pad)
        }
    };
    let unit = s
        .meter
        .as_ref()
        .map_or(String::new(), |m| m.unit_billable.clone());
    let mut rects = Vec::new();
    let mut base: BTreeMap<Timestamp, f64> = BTreeMap::new();
    for p in &s.points {
        let i = p.slot.duration_since(s.origin).as_secs() / s.step.as_secs();
        let height = scale(p.quantity);
        let y0 = base.entry(p.slot).or_insert(0.0);
        let color = PALETTE[groups.iter().position(|g| *g == p.group).unwrap_or(0) % PALETTE.len()];
        rects.push((
            pad + i as f64 * bar_w,
            h - pad - *y0 - height,
            bar_w.max(1.0) * 0.9,
            height,
            color,
            p,
        ));
        *y0 += height;
    }
    html! {
        figure {
            svg role="img" viewBox={ "0 0 " (w) " " (h) } width="100%" preserveAspectRatio="none"
                aria-label={ "Usage per " (if s.step.as_secs() == 3600 { "hour" } else { "day" }) ", " (s.points.len()) " data points, peak " (top) " " (unit) } {
                line x1=(pad) y1=(h - pad) x2=(w) y2=(h - pad) stroke="#5b6475" stroke-width="1" {}
                text x="0" y="12" font-size="11" fill="#5b6475" { (top) }
                text x=(pad) y=(h - 8.0) font-size="11" fill="#5b6475" { (s.range.from.strftime("%Y-%m-%d")) }
                text x=(w - 70.0) y=(h - 8.0) font-size="11" fill="#5b6475" { (s.range.to.strftime("%Y-%m-%d")) }
                @for (x, y, bw, bh, color, p) in &rects {
                    rect.point x=(format!("{x:.2}")) y=(format!("{y:.2}")) width=(format!("{bw:.2}")) height=(format!("{bh:.2}")) fill=(color)
                        data-slot=(p.slot) data-group=(p.group) data-quantity=(p.quantity) {
                        title { (p.slot.strftime("%Y-%m-%d %H:%M")) " · " (p.group) ": " (p.quantity) " " (unit) }
                    }
                }
            }
            figcaption {
                @for (i, g) in groups.iter().enumerate() {
                    span.legend { svg width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(PALETTE[i % PALETTE.len()]) {} } " " (g) " " }
                }
            }
        }
    }
}

fn link(s: &Series, metric: &str, by_object: bool, csv: bool) -> String {
    let mut l = format!(
        "/console/usage{}?metric={}&from={}&to={}&by={}",
        if csv { ".csv" } else { "" },
        metric,
        s.range.from,
        s.range.to,
        if by_object { "object" } else { "namespace" }
    );
    if let Some(step) = s.step_asked {
        l.push_str("&step=");
        l.push_str(step);
    }
    l
}

/// The range form: dates (UTC, both days included), bars by day or hour,
/// and links to the current and the latest finalized periods.
fn range_form(s: &Series, metric: &str, periods: &[(Timestamp, Timestamp)]) -> Markup {
    let last_day = s
        .range
        .to
        .checked_sub(SignedDuration::from_micros(1))
        .unwrap_or(s.range.to);
    let period_link = |from: Timestamp, to: Timestamp| {
        format!(
            "/console/usage?metric={metric}&from={from}&to={to}&by={}",
            if s.by_object { "object" } else { "namespace" }
        )
    };
    html! {
        details #range {
            summary { "Choose the range" }
            form method="get" action="/console/usage" {
                input type="hidden" name="metric" value=(metric);
                input type="hidden" name="by" value=(if s.by_object { "object" } else { "namespace" });
                label for="from" { "From (UTC)" }
                input #from type="date" name="from" value=(s.range.from.strftime("%Y-%m-%d")) required;
                label for="to" { "To (UTC, included)" }
                input #to type="date" name="to" value=(last_day.strftime("%Y-%m-%d")) required;
                label for="step" { "Bars" }
                select #step name="step" {
                    option value="" selected[s.step_asked.is_none()] { "Automatic (hours up to 3 days)" }
                    option value="day" selected[s.step_asked == Some("day")] { "Days" }
                    option value="hour" selected[s.step_asked == Some("hour")] { "Hours (ranges up to 7 days)" }
                }
                p { button.secondary type="submit" { "Show" } }
            }
            @if !periods.is_empty() {
                p {
                    "Billing periods: " a href={ "/console/usage?metric=" (metric) } { "current" }
                    @for (from, to) in periods {
                        " · " a href=(period_link(*from, *to)) { (from.strftime("%Y-%m-%d")) " – " (to.strftime("%Y-%m-%d")) }
                    }
                }
            }
        }
    }
}

pub async fn page(State(state): State<AppState>, me: TenantSession, Query(q): Query<UsageQuery>) -> Response {
    let page = me.page("Usage", "/console/usage");
    let s = match series(&state, &me, &q).await {
        Ok(Ok(s)) => s,
        Ok(Err(msg)) => return page.error(StatusCode::BAD_REQUEST, &msg),
        Err(e) => return internal(&page, e),
    };
    // The rated lines of the range, as current_usage rates them.
    let versions = state.catalogs().versions();
    let rated =
        match tollgate_app::reports::range_bill(state.store(), &versions, &me.tenant, &s.range, None).await {
            Ok(r) => r,
            Err(e) => return internal(&page, e),
        };
    let currency = rated.catalog.currency.clone();
    let metric = s.meter.as_ref().map_or(String::new(), |m| m.metric_label.clone());
    // The latest finalized periods, to chart one in a click.
    let periods: Vec<(Timestamp, Timestamp)> = match state.store().invoices(&me.tenant.id).await {
        Ok(list) => list
            .iter()
            .take(6)
            .map(|i| (i.invoice.period_start, i.invoice.period_end))
            .collect(),
        Err(e) => return internal(&page, e),
    };
    page.render(html! {
        nav aria-label="Meters" {
            ul {
                @for m in &s.meters {
                    li {
                        @if m.metric_label == metric {
                            a href=(link(&s, &m.metric_label, s.by_object, false)) aria-current="page" { (m.usage_type) }
                        } @else {
                            a href=(link(&s, &m.metric_label, s.by_object, false)) { (m.usage_type) }
                        }
                    }
                }
            }
        }
        p {
            (s.range.from.strftime("%Y-%m-%d %H:%M")) " – " (s.range.to.strftime("%Y-%m-%d %H:%M")) " (UTC) · stacked by "
            @if s.by_object {
                "object (" a href=(link(&s, &metric, false, false)) { "by namespace" } ")"
            } @else {
                "namespace (" a href=(link(&s, &metric, true, false)) { "by object" } ")"
            }
            " · " a href=(link(&s, &metric, s.by_object, true)) download { "Download CSV" }
        }
        (range_form(&s, &metric, &periods))
        (chart(&s))
        details {
            summary { "Data points" }
            div.table-wrap {
                table #points {
                    thead { tr { th { "From" } th { "Group" } th.num { "Quantity" } } }
                    tbody {
                        @for p in &s.points {
                            tr { td { (p.slot) } td { (p.group) } td.num { (p.quantity) } }
                        }
                    }
                }
            }
        }
        h2 { "Rated usage" }
        div.table-wrap {
            table #rated {
                thead { tr { th { "Meter" } th.num { "Billable" } th.num { "Amount" } } }
                tbody {
                    @for l in &rated.bill.usage {
                        tr {
                            td { (rated.catalog.meter(&l.metric_label).map_or(l.metric_label.as_str(), |m| m.usage_type.as_str())) }
                            td.num { (l.quantity_billable) }
                            td.num { (money(l.amount_cents, &currency)) }
                        }
                    }
                    tr { th colspan="2" { "Total (with fixed charges, discounts and taxes)" } td.num #rated-total { strong { (money(rated.bill.totals.total, &currency)) } } }
                }
            }
        }
    })
}

pub async fn csv(State(state): State<AppState>, me: TenantSession, Query(q): Query<UsageQuery>) -> Response {
    let page = me.page("Usage", "/console/usage");
    let s = match series(&state, &me, &q).await {
        Ok(Ok(s)) => s,
        Ok(Err(msg)) => return page.error(StatusCode::BAD_REQUEST, &msg),
        Err(e) => return internal(&page, e),
    };
    let metric = s.meter.as_ref().map_or("", |m| m.metric_label.as_str());
    let mut out = String::from("from,metric,group,quantity\n");
    for p in &s.points {
        // Groups are DNS labels or object names: quoted, quotes doubled.
        out.push_str(&format!(
            "{},{},\"{}\",{}\n",
            p.slot,
            metric,
            p.group.replace('"', "\"\""),
            p.quantity
        ));
    }
    let mut r = out.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"usage-{metric}.csv\"")) {
        r.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    r
}
