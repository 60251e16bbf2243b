//! Reading a catalog from TOML. Every error names the file, the line and the
//! field at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::{
    ADDON_SERVICES, Addon, Aggregation, Catalog, Issuer, LocalizedText, Meter, ModelKind, PeriodUnit, Plan,
    PlanType, Price, PriceModel, RequiredField, Tier, TransitionFlow, TransitionMethod,
};
use crate::names::Name;
use crate::quota::{self, QuotaKey, QuotaSpec, ResourceAmount};
use crate::rate_limit::{RateLimit, RateUnit};
use crate::tenant::TenantType;

/// The newest catalog file format this version of Tollgate reads. Format 1
/// (per-unit prices only) is still read; format 2 adds price models
/// (graduated, volume, package), meters' flat amounts and minimum
/// commitments.
pub const FORMAT: i64 = 2;

/// A catalog that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.message)
        }
    }
}

impl std::error::Error for CatalogError {}

impl From<CatalogError> for crate::Error {
    fn from(e: CatalogError) -> Self {
        crate::Error::invalid(e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    format: Spanned<i64>,
    #[serde(default)]
    currency: Option<Spanned<String>>,
    #[serde(default)]
    currencies: Option<Spanned<Vec<String>>>,
    default_plan: Spanned<String>,
    #[serde(default)]
    addons: Vec<Spanned<RawAddon>>,
    #[serde(default)]
    meters: Vec<Spanned<RawMeter>>,
    #[serde(default)]
    plans: Vec<Spanned<RawPlan>>,
    #[serde(default)]
    issuer: Option<Spanned<RawIssuer>>,
    #[serde(default)]
    taxes: Vec<Spanned<RawTax>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTax {
    name: String,
    country: String,
    #[serde(default)]
    region: Option<String>,
    rate: Number,
    #[serde(default)]
    from: Option<toml::value::Datetime>,
    #[serde(default)]
    until: Option<toml::value::Datetime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    name: String,
    #[serde(default)]
    address: Vec<String>,
    #[serde(default)]
    tax_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddon {
    name: Spanned<String>,
    display_name: Spanned<String>,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    flat_price_cents: Option<Spanned<i64>>,
    #[serde(default)]
    currencies: BTreeMap<String, Spanned<RawAddonPrice>>,
}

/// An add-on's price in one of the catalog's other currencies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddonPrice {
    flat_price_cents: i64,
}

/// A plan's money in one of the catalog's other currencies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlanPrices {
    flat_price_cents: i64,
    #[serde(default)]
    minimum_commitment_cents: Option<i64>,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<RawPrice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeter {
    metric_label: Spanned<String>,
    usage_type: Spanned<String>,
    service: String,
    unit: Spanned<String>,
    unit_billable: Spanned<String>,
    divisor: Spanned<Number>,
    aggregation: Spanned<String>,
    #[serde(default)]
    property: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: Spanned<String>,
    title: Spanned<String>,
    #[serde(default)]
    subtitle: String,
    #[serde(default)]
    description: String,
    usage_plan_type: Spanned<String>,
    tenant_type: Spanned<String>,
    flat_price_cents: Spanned<i64>,
    #[serde(default)]
    minimum_commitment_cents: Option<Spanned<i64>>,
    #[serde(default = "month")]
    renewal_period: Spanned<String>,
    #[serde(default = "zero")]
    trial_period: Spanned<i64>,
    #[serde(default = "day")]
    trial_period_unit: Spanned<String>,
    #[serde(default)]
    billing_disabled: bool,
    offered: bool,
    #[serde(default = "none")]
    included_addons: Spanned<Vec<String>>,
    #[serde(default = "none")]
    allowed_addons: Spanned<Vec<String>>,
    #[serde(default)]
    default_quota: RawQuota,
    transition: Spanned<RawTransition>,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<RawPrice>>,
    #[serde(default)]
    localized: BTreeMap<String, Spanned<RawLocalized>>,
    #[serde(default)]
    currencies: BTreeMap<String, Spanned<RawPlanPrices>>,
}

fn month() -> Spanned<String> {
    Spanned::new(0..0, "MONTH".to_owned())
}

fn day() -> Spanned<String> {
    Spanned::new(0..0, "DAY".to_owned())
}

fn zero() -> Spanned<i64> {
    Spanned::new(0..0, 0)
}

fn none() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    #[serde(default)]
    object_limits: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    resource_limits: BTreeMap<String, Spanned<Number>>,
    #[serde(default)]
    api_limits: BTreeMap<String, Spanned<RawRateLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    rate: i64,
    #[serde(default)]
    burst: i64,
    #[serde(default)]
    unit: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    method: String,
    #[serde(default)]
    required_fields: Vec<String>,
    #[serde(default)]
    requires_manual_approval: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    unit_price_cents: Option<Number>,
    #[serde(default)]
    free_allowance: Option<Number>,
    #[serde(default)]
    flat_amount_cents: Option<i64>,
    #[serde(default)]
    tiers: Option<Vec<RawTier>>,
    #[serde(default)]
    package_size: Option<Number>,
    #[serde(default)]
    package_price_cents: Option<Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    #[serde(default)]
    up_to: Option<Number>,
    unit_price_cents: Number,
    #[serde(default)]
    flat_amount_cents: Option<Number>,
}

/// Most tiers in one price.
pub const MAX_TIERS: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalized {
    title: String,
    #[serde(default)]
    subtitle: String,
    #[serde(default)]
    description: String,
}

/// An exact number: an integer, or a decimal written as a string ("2.5").
/// TOML floats are refused because they are binary approximations.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
    Float(f64),
}

impl Number {
    fn decimal(&self) -> Result<Decimal, String> {
        match self {
            Number::Int(i) => Ok(Decimal::from(*i)),
            Number::Text(s) => {
                Decimal::from_str(s.trim()).map_err(|_| format!("{s:?} is not a decimal number"))
            }
            Number::Float(f) => Err(format!(
                "write decimals as strings (\"{f}\"), so that they stay exact"
            )),
        }
    }

    fn literal(&self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Text(s) => s.trim().to_owned(),
            Number::Float(f) => f.to_string(),
        }
    }
}

/// Collects errors with positions.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Apply rules newer than some published versions (see [`parse_for_publish`]).
    strict: bool,
    /// The file's format.
    format: i64,
}

impl Ctx<'_> {
    /// Refuses a setting that format 1 does not have.
    fn needs_format_2(&self, span: std::ops::Range<usize>, field: &str) -> Result<(), CatalogError> {
        if self.format < 2 {
            return Err(self.err(
                span,
                field,
                "needs format = 2 (format 1 has per-unit prices only)",
            ));
        }
        Ok(())
    }

    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> CatalogError {
        CatalogError {
            file: self.file.to_owned(),
            line: self.line(span.start),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses and validates a catalog; `file` names it in errors. Reads
/// published versions, so it admits what earlier Tollgates published: an
/// API limit with rate 0 (refused since) loads and is ignored where limits
/// are enforced. New catalogs go through [`parse_for_publish`].
pub fn parse(file: &str, text: &str) -> Result<Catalog, CatalogError> {
    parse_with(file, text, false)
}

/// [`parse`] with every current rule, for a catalog about to be published
/// (and `catalog validate`).
pub fn parse_for_publish(file: &str, text: &str) -> Result<Catalog, CatalogError> {
    parse_with(file, text, true)
}

fn parse_with(file: &str, text: &str, strict: bool) -> Result<Catalog, CatalogError> {
    let cx = Ctx {
        file,
        text,
        strict,
        format: FORMAT,
    };
    let raw: RawCatalog = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, "", e.message().trim().to_owned())
    })?;
    let format = *raw.format.get_ref();
    if !(1..=FORMAT).contains(&format) {
        return Err(cx.err(
            raw.format.span(),
            "format",
            format!("this Tollgate reads formats 1 to {FORMAT}"),
        ));
    }
    let cx = Ctx { format, ..cx };
    let currencies = currencies(&cx, &raw)?;
    let currency = currencies[0].clone();

    let mut addons = Vec::new();
    for (i, a) in raw.addons.iter().enumerate() {
        let a = a.get_ref();
        let field = |f: &str| format!("addons[{i}].{f}");
        let name = a.name.get_ref();
        if !ADDON_SERVICES.contains(&name.as_str()) {
            return Err(cx.err(
                a.name.span(),
                field("name"),
                format!(
                    "unknown add-on service {name:?}; the contract defines {}",
                    ADDON_SERVICES.join(", ")
                ),
            ));
        }
        if addons.iter().any(|x: &Addon| &x.name == name) {
            return Err(cx.err(a.name.span(), field("name"), format!("{name:?} is listed twice")));
        }
        if a.display_name.get_ref().trim().is_empty() {
            return Err(cx.err(a.display_name.span(), field("display_name"), "must not be empty"));
        }
        let flat_price_cents = match &a.flat_price_cents {
            None => 0,
            Some(p) => {
                cx.needs_format_2(p.span(), &field("flat_price_cents"))?;
                if !(0..=i64::from(i32::MAX)).contains(p.get_ref()) {
                    return Err(cx.err(
                        p.span(),
                        field("flat_price_cents"),
                        "must be between 0 and 2147483647",
                    ));
                }
                *p.get_ref()
            }
        };
        let mut in_currencies = BTreeMap::new();
        for (code, price) in &a.currencies {
            let f = field(&format!("currencies.{code}"));
            cx.needs_format_2(price.span(), &f)?;
            other_currency(&cx, &currencies, code, price.span(), &f)?;
            let cents = price.get_ref().flat_price_cents;
            if !(0..=i64::from(i32::MAX)).contains(&cents) {
                return Err(cx.err(
                    price.span(),
                    format!("{f}.flat_price_cents"),
                    "must be between 0 and 2147483647",
                ));
            }
            in_currencies.insert(code.clone(), cents);
        }
        if flat_price_cents > 0
            && let Some(missing) = currencies[1..].iter().find(|c| !in_currencies.contains_key(*c))
        {
            let span = a.flat_price_cents.as_ref().map_or(a.name.span(), Spanned::span);
            return Err(cx.err(
                span,
                field(&format!("currencies.{missing}")),
                format!(
                    "the add-on has a price, and the catalog prices in {missing} too: \
                     give [addons.currencies.{missing}] flat_price_cents"
                ),
            ));
        }
        addons.push(Addon {
            name: name.clone(),
            display_name: a.display_name.get_ref().clone(),
            tier: a.tier.clone(),
            flat_price_cents,
            in_currencies,
        });
    }

    let mut meters = Vec::new();
    for (i, m) in raw.meters.iter().enumerate() {
        let m = m.get_ref();
        let field = |f: &str| format!("meters[{i}].{f}");
        let label = m.metric_label.get_ref();
        QuotaKey::parse("metric_label", label)
            .map_err(|e| cx.err(m.metric_label.span(), field("metric_label"), e.message))?;
        if meters.iter().any(|x: &Meter| &x.metric_label == label) {
            return Err(cx.err(
                m.metric_label.span(),
                field("metric_label"),
                format!("{label:?} is listed twice"),
            ));
        }
        for (name, value) in [
            ("usage_type", &m.usage_type),
            ("unit", &m.unit),
            ("unit_billable", &m.unit_billable),
        ] {
            if value.get_ref().trim().is_empty() {
                return Err(cx.err(value.span(), field(name), "must not be empty"));
            }
        }
        let divisor = m
            .divisor
            .get_ref()
            .decimal()
            .map_err(|e| cx.err(m.divisor.span(), field("divisor"), e))?;
        if divisor <= Decimal::ZERO {
            return Err(cx.err(m.divisor.span(), field("divisor"), "must be more than zero"));
        }
        let aggregation = Aggregation::parse(m.aggregation.get_ref()).ok_or_else(|| {
            cx.err(
                m.aggregation.span(),
                field("aggregation"),
                "must be sum, max, latest, count or unique_count",
            )
        })?;
        if matches!(aggregation, Aggregation::Count | Aggregation::UniqueCount) {
            cx.needs_format_2(m.aggregation.span(), &field("aggregation"))?;
        }
        let property = match (&m.property, aggregation) {
            (None, Aggregation::UniqueCount) => {
                return Err(cx.err(
                    m.aggregation.span(),
                    field("property"),
                    "a unique_count meter names the event property it counts",
                ));
            }
            (Some(p), Aggregation::UniqueCount) => {
                crate::metering::properties(&[(p.get_ref().clone(), Some(String::new()))])
                    .map_err(|e| cx.err(p.span(), field("property"), e))?;
                Some(p.get_ref().clone())
            }
            (Some(p), _) => {
                return Err(cx.err(
                    p.span(),
                    field("property"),
                    "only a unique_count meter has a property",
                ));
            }
            (None, _) => None,
        };
        meters.push(Meter {
            metric_label: label.clone(),
            usage_type: m.usage_type.get_ref().clone(),
            service: m.service.clone(),
            unit: m.unit.get_ref().clone(),
            unit_billable: m.unit_billable.get_ref().clone(),
            divisor,
            aggregation,
            property,
        });
    }

    let mut plans: Vec<Plan> = Vec::new();
    for (i, p) in raw.plans.iter().enumerate() {
        let plan = plan(&cx, i, p.get_ref(), &addons, &meters, &currencies)?;
        if plans.iter().any(|x| x.name == plan.name) {
            let span = p.get_ref().name.span();
            return Err(cx.err(
                span,
                format!("plans[{i}].name"),
                format!("{:?} is listed twice", plan.name),
            ));
        }
        plans.push(plan);
    }
    if plans.is_empty() {
        return Err(cx.err(0..0, "plans", "a catalog needs at least one plan"));
    }
    let default_plan = raw.default_plan.get_ref().clone();
    match plans.iter().find(|p| p.name == default_plan) {
        Some(p) if p.offered => {}
        Some(_) => {
            return Err(cx.err(
                raw.default_plan.span(),
                "default_plan",
                "the default plan must be offered",
            ));
        }
        None => {
            return Err(cx.err(
                raw.default_plan.span(),
                "default_plan",
                format!("no plan is named {default_plan:?}"),
            ));
        }
    }
    let issuer = raw.issuer.as_ref().map(|i| issuer(&cx, i)).transpose()?;
    let mut taxes: Vec<super::TaxRate> = Vec::new();
    for (i, t) in raw.taxes.iter().enumerate() {
        cx.needs_format_2(t.span(), &format!("taxes[{i}]"))?;
        let tax = tax(&cx, i, t)?;
        let overlaps = taxes.iter().any(|o| {
            o.name == tax.name
                && o.country == tax.country
                && o.region == tax.region
                && o.from.is_none_or(|f| tax.until.is_none_or(|u| f < u))
                && tax.from.is_none_or(|f| o.until.is_none_or(|u| f < u))
        });
        if overlaps {
            return Err(cx.err(
                t.span(),
                format!("taxes[{i}]"),
                format!(
                    "{} of {} overlaps another rate of the same name and place",
                    tax.name, tax.country
                ),
            ));
        }
        taxes.push(tax);
    }
    Ok(Catalog {
        currency,
        currencies,
        default_plan,
        plans,
        addons,
        meters,
        issuer,
        taxes,
    })
}

fn tax(cx: &Ctx<'_>, i: usize, raw: &Spanned<RawTax>) -> Result<super::TaxRate, CatalogError> {
    let t = raw.get_ref();
    let err = |f: &str, m: String| cx.err(raw.span(), format!("taxes[{i}].{f}"), m);
    let name = t.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(err("name", "1 to 64 printable characters".into()));
    }
    let country = t.country.trim();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(err("country", "an ISO 3166-1 alpha-2 code such as \"DE\"".into()));
    }
    let region = match &t.region {
        None => None,
        Some(r) if r.trim().is_empty() || r.chars().count() > 64 || r.chars().any(char::is_control) => {
            return Err(err("region", "1 to 64 printable characters".into()));
        }
        Some(r) => Some(r.trim().to_owned()),
    };
    let percent = t.rate.decimal().map_err(|e| err("rate", e))?;
    if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
        return Err(err("rate", "a percentage between 0 and 100".into()));
    }
    let date = |f: &str,
                d: &Option<toml::value::Datetime>|
     -> Result<Option<jiff::Timestamp>, CatalogError> {
        let Some(d) = d else { return Ok(None) };
        match (d.date, d.time) {
            (Some(date), None) => jiff::civil::Date::new(date.year as i16, date.month as i8, date.day as i8)
                .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.at(0, 0, 0, 0)))
                .map(Some)
                .map_err(|e| err(f, e.to_string())),
            _ => Err(err(f, "a date such as 2027-01-01 (UTC)".into())),
        }
    };
    let from = date("from", &t.from)?;
    let until = date("until", &t.until)?;
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        return Err(err("until", "must be after from".into()));
    }
    Ok(super::TaxRate {
        name: name.to_owned(),
        country: country.to_owned(),
        region,
        percent: percent.normalize(),
        from,
        until,
    })
}

fn issuer(cx: &Ctx<'_>, raw: &Spanned<RawIssuer>) -> Result<Issuer, CatalogError> {
    let i = raw.get_ref();
    let max = Issuer::MAX_FIELD;
    let check = |field: &str, value: &str| {
        crate::text::single_line(field, value, max).map_err(|e| cx.err(raw.span(), field, e.message))
    };
    if i.name.trim().is_empty() {
        return Err(cx.err(raw.span(), "issuer.name", "must not be empty"));
    }
    check("issuer.name", &i.name)?;
    if i.address.len() > Issuer::MAX_ADDRESS_LINES {
        return Err(cx.err(
            raw.span(),
            "issuer.address",
            format!("at most {} lines", Issuer::MAX_ADDRESS_LINES),
        ));
    }
    for (n, line) in i.address.iter().enumerate() {
        check(&format!("issuer.address[{n}]"), line)?;
    }
    if let Some(t) = &i.tax_id {
        check("issuer.tax_id", t)?;
    }
    if let Some(e) = &i.email {
        check("issuer.email", e)?;
        if !e.contains('@') {
            return Err(cx.err(raw.span(), "issuer.email", "must be an email address"));
        }
    }
    Ok(Issuer {
        name: i.name.trim().to_owned(),
        address: i.address.clone(),
        tax_id: i.tax_id.clone().filter(|t| !t.trim().is_empty()),
        email: i.email.clone().filter(|e| !e.trim().is_empty()),
    })
}

fn plan(
    cx: &Ctx<'_>,
    i: usize,
    p: &RawPlan,
    addons: &[Addon],
    meters: &[Meter],
    currencies: &[String],
) -> Result<Plan, CatalogError> {
    let field = |f: &str| format!("plans[{i}].{f}");
    let name = p.name.get_ref();
    Name::parse("name", name).map_err(|e| cx.err(p.name.span(), field("name"), e.message))?;
    if p.title.get_ref().trim().is_empty() {
        return Err(cx.err(p.title.span(), field("title"), "must not be empty"));
    }
    let enum_value = |value: &Spanned<String>, f: &str, expected: &str| {
        cx.err(
            value.span(),
            field(f),
            format!("{:?} is not one of {expected}", value.get_ref()),
        )
    };
    let usage_plan_type = PlanType::parse(p.usage_plan_type.get_ref()).ok_or_else(|| {
        enum_value(
            &p.usage_plan_type,
            "usage_plan_type",
            "FREE, INDIVIDUAL, TEAM, ORGANIZATION",
        )
    })?;
    let tenant_type = TenantType::parse(p.tenant_type.get_ref())
        .ok()
        .ok_or_else(|| enum_value(&p.tenant_type, "tenant_type", "FREEMIUM, ENTERPRISE"))?;
    let renewal_period = PeriodUnit::parse(p.renewal_period.get_ref())
        .ok_or_else(|| enum_value(&p.renewal_period, "renewal_period", "DAY, WEEK, MONTH, YEAR"))?;
    if renewal_period != PeriodUnit::Month {
        return Err(cx.err(
            p.renewal_period.span(),
            field("renewal_period"),
            "only MONTH billing periods are supported",
        ));
    }
    let trial_period_unit = PeriodUnit::parse(p.trial_period_unit.get_ref()).ok_or_else(|| {
        enum_value(
            &p.trial_period_unit,
            "trial_period_unit",
            "DAY, WEEK, MONTH, YEAR",
        )
    })?;
    let trial_period = u32::try_from(*p.trial_period.get_ref())
        .ok()
        .filter(|t| *t <= 366)
        .ok_or_else(|| {
            cx.err(
                p.trial_period.span(),
                field("trial_period"),
                "must be between 0 and 366",
            )
        })?;
    let flat_price_cents = *p.flat_price_cents.get_ref();
    if !(0..=i64::from(i32::MAX)).contains(&flat_price_cents) {
        return Err(cx.err(
            p.flat_price_cents.span(),
            field("flat_price_cents"),
            "must be between 0 and 2147483647",
        ));
    }

    let known_addons = |list: &Spanned<Vec<String>>, f: &str| -> Result<Vec<String>, CatalogError> {
        let mut seen = BTreeSet::new();
        for a in list.get_ref() {
            if !addons.iter().any(|x| &x.name == a) {
                return Err(cx.err(
                    list.span(),
                    field(f),
                    format!("unknown add-on {a:?}; list it under [[addons]]"),
                ));
            }
            if !seen.insert(a) {
                return Err(cx.err(list.span(), field(f), format!("{a:?} is listed twice")));
            }
        }
        Ok(list.get_ref().clone())
    };
    let included_addons = known_addons(&p.included_addons, "included_addons")?;
    let allowed_addons = known_addons(&p.allowed_addons, "allowed_addons")?;
    if let Some(both) = included_addons.iter().find(|a| allowed_addons.contains(a)) {
        return Err(cx.err(
            p.allowed_addons.span(),
            field("allowed_addons"),
            format!("{both:?} is already included; list it in one of included_addons or allowed_addons"),
        ));
    }

    let default_quota = default_quota(cx, &field("default_quota"), &p.default_quota)?;

    let t = p.transition.get_ref();
    let method = TransitionMethod::parse(&t.method).ok_or_else(|| {
        cx.err(
            p.transition.span(),
            field("transition.method"),
            format!("{:?} is not one of SUPPORT, WIZARD, RECREATE", t.method),
        )
    })?;
    let mut required_fields = Vec::new();
    for f in &t.required_fields {
        let r = RequiredField::parse(f).ok_or_else(|| {
            cx.err(
                p.transition.span(),
                field("transition.required_fields"),
                format!("{f:?} is not one of PAYMENT_TOKEN, DOMAIN, CONTACTS"),
            )
        })?;
        if required_fields.contains(&r) {
            return Err(cx.err(
                p.transition.span(),
                field("transition.required_fields"),
                format!("{f:?} is listed twice"),
            ));
        }
        required_fields.push(r);
    }

    let mut prices = BTreeMap::new();
    for (label, price) in &p.prices {
        let f = field(&format!("prices.{label}"));
        if !meters.iter().any(|m| &m.metric_label == label) {
            return Err(cx.err(price.span(), f, format!("no meter has metric_label {label:?}")));
        }
        prices.insert(label.clone(), self::price(cx, &f, price)?);
    }
    let minimum_cents = match &p.minimum_commitment_cents {
        None => 0,
        Some(m) => {
            cx.needs_format_2(m.span(), &field("minimum_commitment_cents"))?;
            let v = *m.get_ref();
            if !(0..=i64::from(i32::MAX)).contains(&v) {
                return Err(cx.err(
                    m.span(),
                    field("minimum_commitment_cents"),
                    "must be between 0 and 2147483647",
                ));
            }
            v
        }
    };

    let mut in_currencies = BTreeMap::new();
    for (code, raw) in &p.currencies {
        let f = field(&format!("currencies.{code}"));
        cx.needs_format_2(raw.span(), &f)?;
        other_currency(cx, currencies, code, raw.span(), &f)?;
        let r = raw.get_ref();
        let whole = |v: i64, name: &str| {
            if (0..=i64::from(i32::MAX)).contains(&v) {
                Ok(v)
            } else {
                Err(cx.err(
                    raw.span(),
                    format!("{f}.{name}"),
                    "must be between 0 and 2147483647",
                ))
            }
        };
        let flat = whole(r.flat_price_cents, "flat_price_cents")?;
        let minimum = match r.minimum_commitment_cents {
            Some(m) => whole(m, "minimum_commitment_cents")?,
            None if minimum_cents > 0 => {
                return Err(cx.err(
                    raw.span(),
                    format!("{f}.minimum_commitment_cents"),
                    "is required: the plan has a minimum commitment",
                ));
            }
            None => 0,
        };
        let mut own = BTreeMap::new();
        for (label, price) in &r.prices {
            let pf = format!("{f}.prices.{label}");
            if !prices.contains_key(label) {
                return Err(cx.err(
                    price.span(),
                    pf,
                    format!("the plan has no price for {label:?} to restate in {code}"),
                ));
            }
            own.insert(label.clone(), self::price(cx, &pf, price)?);
        }
        if let Some(missing) = prices.keys().find(|l| !own.contains_key(*l)) {
            return Err(cx.err(
                raw.span(),
                format!("{f}.prices.{missing}"),
                format!("the plan prices {missing:?}: give its price in {code} too"),
            ));
        }
        in_currencies.insert(
            code.clone(),
            super::PlanPrices {
                flat_price_cents: flat,
                minimum_cents: minimum,
                prices: own,
            },
        );
    }
    let charges = flat_price_cents > 0 || minimum_cents > 0 || !prices.is_empty();
    if charges && let Some(missing) = currencies[1..].iter().find(|c| !in_currencies.contains_key(*c)) {
        return Err(cx.err(
            p.name.span(),
            field(&format!("currencies.{missing}")),
            format!(
                "the catalog prices in {missing} too: give the plan's flat_price_cents (and its \
                 minimum and prices) in [plans.currencies.{missing}]; only a plan that charges \
                 nothing may leave a currency out"
            ),
        ));
    }

    let mut localized = BTreeMap::new();
    for (locale, text) in &p.localized {
        let l = locale.to_ascii_lowercase();
        let valid = l
            .split('-')
            .all(|part| (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid {
            return Err(cx.err(
                text.span(),
                field(&format!("localized.{locale}")),
                "locale must look like \"de-de\" or \"fr\"",
            ));
        }
        let t = text.get_ref();
        localized.insert(
            l,
            LocalizedText {
                title: t.title.clone(),
                subtitle: t.subtitle.clone(),
                description: t.description.clone(),
            },
        );
    }

    Ok(Plan {
        name: name.clone(),
        title: p.title.get_ref().clone(),
        subtitle: p.subtitle.clone(),
        description: p.description.clone(),
        usage_plan_type,
        tenant_type,
        flat_price_cents,
        minimum_cents,
        renewal_period,
        trial_period,
        trial_period_unit,
        billing_disabled: p.billing_disabled,
        offered: p.offered,
        included_addons,
        allowed_addons,
        default_quota,
        transition: TransitionFlow {
            method,
            required_fields,
            requires_manual_approval: t.requires_manual_approval,
        },
        prices,
        localized,
        in_currencies,
    })
}

/// The catalog's currencies: `currency = "USD"` (one) or `currencies =
/// ["USD", "EUR"]` (format 2), not both; ISO 4217 codes, each once.
fn currencies(cx: &Ctx<'_>, raw: &RawCatalog) -> Result<Vec<String>, CatalogError> {
    let code = |c: &str, span: std::ops::Range<usize>, field: &str| {
        if crate::currency::is_code(c) {
            Ok(c.to_owned())
        } else {
            Err(cx.err(
                span,
                field,
                format!("{c:?} is not an ISO 4217 code such as \"USD\""),
            ))
        }
    };
    match (&raw.currency, &raw.currencies) {
        (Some(c), None) => Ok(vec![code(c.get_ref(), c.span(), "currency")?]),
        (None, Some(list)) => {
            cx.needs_format_2(list.span(), "currencies")?;
            if list.get_ref().is_empty() {
                return Err(cx.err(list.span(), "currencies", "needs at least one currency"));
            }
            let mut out: Vec<String> = Vec::new();
            for (i, c) in list.get_ref().iter().enumerate() {
                let c = code(c, list.span(), &format!("currencies[{i}]"))?;
                if out.contains(&c) {
                    return Err(cx.err(list.span(), format!("currencies[{i}]"), format!("{c:?} is listed twice")));
                }
                out.push(c);
            }
            Ok(out)
        }
        (Some(c), Some(_)) => Err(cx.err(
            c.span(),
            "currency",
            "give either currency (one) or currencies (a list), not both",
        )),
        (None, None) => Err(cx.err(
            0..0,
            "currency",
            "is required: the ISO 4217 code prices are in, such as \"USD\" (or currencies = [\"USD\", \"EUR\"])",
        )),
    }
}

/// Checks that a per-currency table names one of the catalog's currencies
/// other than the first (whose prices are the plan's or add-on's own).
fn other_currency(
    cx: &Ctx<'_>,
    currencies: &[String],
    code: &str,
    span: std::ops::Range<usize>,
    field: &str,
) -> Result<(), CatalogError> {
    if currencies.first().is_some_and(|c| c == code) {
        return Err(cx.err(
            span,
            field,
            format!("{code} is the catalog's first currency: its prices are the plan's own fields"),
        ));
    }
    if !currencies.iter().any(|c| c == code) {
        return Err(cx.err(
            span,
            field,
            format!(
                "{code:?} is not one of the catalog's currencies ({})",
                currencies.join(", ")
            ),
        ));
    }
    Ok(())
}

fn default_quota(cx: &Ctx<'_>, field: &str, q: &RawQuota) -> Result<QuotaSpec, CatalogError> {
    let mut spec = QuotaSpec::default();
    for (k, v) in &q.object_limits {
        let f = format!("{field}.object_limits.{k}");
        let key = QuotaKey::parse(&f, k).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        let limit =
            quota::object_limit(&f, *v.get_ref()).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        spec.object_limits.insert(key, limit);
    }
    for (k, v) in &q.resource_limits {
        let f = format!("{field}.resource_limits.{k}");
        let key = QuotaKey::parse(&f, k).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        if let Number::Float(_) = v.get_ref() {
            let msg = v.get_ref().decimal().err().unwrap_or_default();
            return Err(cx.err(v.span(), f, msg));
        }
        let amount = ResourceAmount::parse(&f, &v.get_ref().literal())
            .map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        let limit = quota::resource_limit(&f, amount).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        spec.resource_limits.insert(key, limit);
    }
    for (k, v) in &q.api_limits {
        let f = format!("{field}.api_limits.{k}");
        let key = QuotaKey::parse(&f, k).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        let r = v.get_ref();
        let unit = RateUnit::parse(&f, &r.unit).map_err(|e| cx.err(v.span(), f.clone(), e.message))?;
        let limit = match RateLimit::new(&f, r.rate, r.burst, unit) {
            Ok(limit) => limit,
            // Published before rate 0 was refused: loads, and is ignored
            // where limits are enforced (`EffectiveQuota::compute`).
            Err(_) if !cx.strict && r.rate == 0 && RateLimit::new(&f, 1, r.burst, unit).is_ok() => {
                RateLimit {
                    rate: 0,
                    burst: i32::try_from(r.burst).unwrap_or(0),
                    unit,
                }
            }
            Err(e) => return Err(cx.err(v.span(), f, e.message)),
        };
        spec.api_limits.insert(key, limit);
    }
    Ok(spec)
}

/// A meter's price: the model (per unit unless named), its numbers, the free
/// allowance and the flat amount.
fn price(cx: &Ctx<'_>, f: &str, price: &Spanned<RawPrice>) -> Result<Price, CatalogError> {
    let span = price.span();
    let raw = price.get_ref();
    let err = |field: &str, message: String| cx.err(span.clone(), format!("{f}{field}"), message);
    let number = |field: &str, n: &Number| -> Result<Decimal, CatalogError> {
        let v = n.decimal().map_err(|e| err(field, e))?;
        if v < Decimal::ZERO {
            return Err(err(field, "must not be negative".into()));
        }
        Ok(v)
    };
    let whole = |field: &str, n: &Number| -> Result<Decimal, CatalogError> {
        let v = number(field, n)?;
        if v.is_zero() || !v.fract().is_zero() {
            return Err(err(field, "must be a whole number of units, more than 0".into()));
        }
        Ok(v)
    };
    if raw.model.is_some()
        || raw.flat_amount_cents.is_some()
        || raw.tiers.is_some()
        || raw.package_size.is_some()
        || raw.package_price_cents.is_some()
    {
        cx.needs_format_2(span.clone(), f)?;
    }
    let kind = match &raw.model {
        None => ModelKind::PerUnit,
        Some(m) => ModelKind::parse(m).ok_or_else(|| {
            err(
                ".model",
                format!("{m:?} is not one of per_unit, graduated, volume, package"),
            )
        })?,
    };
    let refuse = |present: bool, field: &str| -> Result<(), CatalogError> {
        if present {
            return Err(err(field, format!("does not apply to a {} price", kind.as_str())));
        }
        Ok(())
    };
    let model = match kind {
        ModelKind::PerUnit => {
            refuse(raw.tiers.is_some(), ".tiers")?;
            refuse(raw.package_size.is_some(), ".package_size")?;
            refuse(raw.package_price_cents.is_some(), ".package_price_cents")?;
            let n = raw
                .unit_price_cents
                .as_ref()
                .ok_or_else(|| err(".unit_price_cents", "is required".into()))?;
            PriceModel::PerUnit {
                unit_price_cents: number(".unit_price_cents", n)?,
            }
        }
        ModelKind::Graduated | ModelKind::Volume => {
            refuse(raw.unit_price_cents.is_some(), ".unit_price_cents")?;
            refuse(raw.package_size.is_some(), ".package_size")?;
            refuse(raw.package_price_cents.is_some(), ".package_price_cents")?;
            let raw_tiers = raw.tiers.as_deref().unwrap_or_default();
            if raw_tiers.is_empty() || raw_tiers.len() > MAX_TIERS {
                return Err(err(".tiers", format!("needs 1 to {MAX_TIERS} tiers")));
            }
            let mut tiers: Vec<Tier> = Vec::new();
            for (n, t) in raw_tiers.iter().enumerate() {
                let tf = |x: &str| format!(".tiers[{n}].{x}");
                let last = n + 1 == raw_tiers.len();
                let up_to = match (&t.up_to, last) {
                    (Some(_), true) => {
                        return Err(err(
                            &tf("up_to"),
                            "the last tier has no up_to: it takes every unit above the one before".into(),
                        ));
                    }
                    (None, false) => {
                        return Err(err(&tf("up_to"), "is required on every tier but the last".into()));
                    }
                    (None, true) => None,
                    (Some(u), false) => {
                        let u = whole(&tf("up_to"), u)?;
                        if let Some(prev) = tiers.last().and_then(|t| t.up_to)
                            && u <= prev
                        {
                            return Err(err(
                                &tf("up_to"),
                                format!("must be more than the tier before's ({prev})"),
                            ));
                        }
                        Some(u)
                    }
                };
                tiers.push(Tier {
                    up_to,
                    unit_price_cents: number(&tf("unit_price_cents"), &t.unit_price_cents)?,
                    flat_cents: match &t.flat_amount_cents {
                        Some(n) => number(&tf("flat_amount_cents"), n)?,
                        None => Decimal::ZERO,
                    },
                });
            }
            if kind == ModelKind::Graduated {
                PriceModel::Graduated(tiers)
            } else {
                PriceModel::Volume(tiers)
            }
        }
        ModelKind::Package => {
            refuse(raw.unit_price_cents.is_some(), ".unit_price_cents")?;
            refuse(raw.tiers.is_some(), ".tiers")?;
            let size = raw
                .package_size
                .as_ref()
                .ok_or_else(|| err(".package_size", "is required".into()))?;
            let price_cents = raw
                .package_price_cents
                .as_ref()
                .ok_or_else(|| err(".package_price_cents", "is required".into()))?;
            PriceModel::Package {
                size: whole(".package_size", size)?,
                price_cents: number(".package_price_cents", price_cents)?,
            }
        }
    };
    let free_allowance = match &raw.free_allowance {
        Some(n) => number(".free_allowance", n)?,
        None => Decimal::ZERO,
    };
    let flat_cents = raw.flat_amount_cents.unwrap_or(0);
    if !(0..=i64::from(i32::MAX)).contains(&flat_cents) {
        return Err(err(
            ".flat_amount_cents",
            "must be between 0 and 2147483647".into(),
        ));
    }
    Ok(Price {
        model,
        free_allowance,
        flat_cents,
    })
}
