//! The catalog: plans, add-on services, meters and prices, as the operator
//! publishes them. Parsed from TOML (`parse.rs`), validated as a whole, then
//! immutable; each published catalog gets a version and tenants stay on the
//! version of their subscription until they transition.

mod diff;
mod parse;

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;

use crate::Error;
use crate::quota::QuotaSpec;
use crate::tenant::TenantType;

pub use diff::{Change, ChangeKind, diff};
pub use parse::{CatalogError, parse, parse_for_publish};

/// The built-in catalog, published as version 1 when a database is first used.
pub const BUILTIN_TOML: &str = include_str!("default.toml");

/// The 13 add-on services of the contract, in its order.
pub const ADDON_SERVICES: [&str; 13] = [
    "f5xc_appstack_standard",
    "f5xc_big_ip_irule_standard",
    "f5xc_bigip_utilities_standard",
    "f5xc_content_delivery_network_advanced",
    "f5xc_content_delivery_network_standard",
    "f5xc_delegated_access_standard",
    "f5xc_securemesh_advanced",
    "f5xc_securemesh_standard",
    "f5xc_site_management_standard",
    "f5xc_synthetic_monitoring_standard",
    "f5xc_waap_advanced",
    "f5xc_waap_standard",
    "f5xc_web_app_scanning_standard",
];

/// Locale every text falls back to.
pub const DEFAULT_LOCALE: &str = "en-us";

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The name as the contract's enum spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses the contract's name, case-insensitively.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `schemaPlanType`.
    PlanType { Free = "FREE", Individual = "INDIVIDUAL", Team = "TEAM", Organization = "ORGANIZATION" }
);
wire_enum!(
    /// `planPeriodUnitType` without the prefix.
    PeriodUnit { Day = "DAY", Week = "WEEK", Month = "MONTH", Year = "YEAR" }
);
wire_enum!(
    /// `planPlanTransitionMethod` without the prefix.
    TransitionMethod { Support = "SUPPORT", Wizard = "WIZARD", Recreate = "RECREATE" }
);
wire_enum!(
    /// `planPlanTransitionRequiredField` without the prefix.
    RequiredField { PaymentToken = "PAYMENT_TOKEN", Domain = "DOMAIN", Contacts = "CONTACTS" }
);
wire_enum!(
    /// How a meter combines events. `count` counts events (their
    /// quantities are ignored); `unique_count` counts the distinct values
    /// of the meter's `property` over a range (catalog format 2).
    Aggregation { Sum = "sum", Max = "max", Latest = "latest", Count = "count", UniqueCount = "unique_count" }
);

/// A metric without a meter (say, usage stored under a catalog version that
/// later dropped it) sums: the one place that rule is written.
impl Default for Aggregation {
    fn default() -> Self {
        Self::Sum
    }
}

/// Each meter's aggregation by metric label, as ingestion and replay fold
/// events into buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregations(BTreeMap<String, Aggregation>, BTreeMap<String, String>);

impl Aggregations {
    /// How `metric_label` aggregates; a metric without a meter sums
    /// ([`Aggregation::default`]).
    pub fn of(&self, metric_label: &str) -> Aggregation {
        self.0.get(metric_label).copied().unwrap_or_default()
    }

    /// Whether any meter is a unique count (ingestion then records
    /// distinct values).
    pub fn has_unique(&self) -> bool {
        !self.1.is_empty()
    }

    /// The property a unique-count meter counts the distinct values of.
    pub fn unique_property(&self, metric_label: &str) -> Option<&str> {
        self.1.get(metric_label).map(String::as_str)
    }

    /// The same, with `metric_label` a unique count of `property`.
    pub fn with_unique(mut self, metric_label: &str, property: &str) -> Self {
        self.0.insert(metric_label.to_owned(), Aggregation::UniqueCount);
        self.1.insert(metric_label.to_owned(), property.to_owned());
        self
    }
}

impl FromIterator<(String, Aggregation)> for Aggregations {
    fn from_iter<I: IntoIterator<Item = (String, Aggregation)>>(iter: I) -> Self {
        Self(iter.into_iter().collect(), BTreeMap::new())
    }
}

impl<const N: usize> From<[(String, Aggregation); N]> for Aggregations {
    fn from(pairs: [(String, Aggregation); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// A validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// ISO 4217 code of every price of this catalog (or of this view of it,
    /// [`Catalog::in_currency`]); amounts are in its minor units.
    pub currency: String,
    /// Every currency the catalog prices its plans in, the first the one of
    /// the plans' own fields (and of tenants that name none); format 1 and a
    /// catalog with `currency = "…"` have one.
    pub currencies: Vec<String>,
    /// The plan a tenant starts on when none is named.
    pub default_plan: String,
    pub plans: Vec<Plan>,
    pub addons: Vec<Addon>,
    pub meters: Vec<Meter>,
    /// Who issues the invoices (the `[issuer]` table); `None` in catalogs
    /// published without one, which invoice as [`Issuer::unnamed`].
    pub issuer: Option<Issuer>,
    /// Tax rates by country and optionally region (format 2).
    pub taxes: Vec<TaxRate>,
}

/// A tax rate of a country (or one region of it), in force from `from`
/// until `until` (either open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRate {
    /// As printed on invoices, e.g. "VAT" or "GST".
    pub name: String,
    /// ISO 3166-1 alpha-2, uppercase.
    pub country: String,
    /// A region of the country (a billing address's state code or name);
    /// `None`: the whole country.
    pub region: Option<String>,
    /// Percent, exact (19, 7.5).
    pub percent: Decimal,
    pub from: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
}

impl Catalog {
    /// The rates that apply at `at` to a billing address in `country` and
    /// `region` (the country's own rates, and the region's), in catalog order.
    pub fn tax_rates(&self, country: &str, region: &str, at: jiff::Timestamp) -> Vec<&TaxRate> {
        self.taxes
            .iter()
            .filter(|t| t.country.eq_ignore_ascii_case(country.trim()))
            .filter(|t| {
                t.region
                    .as_deref()
                    .is_none_or(|r| r.eq_ignore_ascii_case(region.trim()))
            })
            .filter(|t| t.from.is_none_or(|f| f <= at) && t.until.is_none_or(|u| at < u))
            .collect()
    }
}

/// The company that issues invoices, as printed on them. Finalized invoices
/// keep the issuer of their finalization; pending ones show the latest
/// catalog's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub name: String,
    /// Postal address, one line each.
    pub address: Vec<String>,
    /// VAT or other tax registration number.
    pub tax_id: Option<String>,
    pub email: Option<String>,
}

impl Issuer {
    /// Longest name, address line, tax id or email.
    pub const MAX_FIELD: usize = 200;
    /// Most address lines.
    pub const MAX_ADDRESS_LINES: usize = 6;

    /// The issuer of a catalog that names none.
    pub fn unnamed() -> Self {
        Self {
            name: "Tollgate".to_owned(),
            address: Vec::new(),
            tax_id: None,
            email: None,
        }
    }
}

/// What a customer can choose.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub title: String,
    pub subtitle: String,
    /// Markdown.
    pub description: String,
    pub usage_plan_type: PlanType,
    pub tenant_type: TenantType,
    /// Charged once per billing period, in cents.
    pub flat_price_cents: i64,
    /// The least a billing period's usage charges may come to, in cents; a
    /// true-up line makes up the difference (0: none). Prorated like the fee.
    pub minimum_cents: i64,
    pub renewal_period: PeriodUnit,
    pub trial_period: u32,
    pub trial_period_unit: PeriodUnit,
    /// No automatic billing (no invoices are charged).
    pub billing_disabled: bool,
    /// Offered to customers (the contract's `current`).
    pub offered: bool,
    pub included_addons: Vec<String>,
    pub allowed_addons: Vec<String>,
    pub default_quota: QuotaSpec,
    /// How a tenant moves *to* this plan.
    pub transition: TransitionFlow,
    /// Price per meter (by metric label); meters without a price are free.
    pub prices: BTreeMap<String, Price>,
    /// Title, subtitle and description per locale (lowercase, e.g. `de-de`).
    pub localized: BTreeMap<String, LocalizedText>,
    /// The plan's money in each of the catalog's other currencies
    /// (`[plans.currencies.EUR]`); a plan that charges nothing (no fee,
    /// minimum or price) may leave them out, and is free in every currency.
    pub in_currencies: BTreeMap<String, PlanPrices>,
}

/// A plan's money in one currency: its fee, minimum commitment and meter
/// prices, in that currency's minor units.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanPrices {
    pub flat_price_cents: i64,
    pub minimum_cents: i64,
    pub prices: BTreeMap<String, Price>,
}

/// The transition flow of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionFlow {
    pub method: TransitionMethod,
    pub required_fields: Vec<RequiredField>,
    pub requires_manual_approval: bool,
}

/// A meter's price under one plan: how its chargeable units (billable units
/// past the free allowance) cost, and an optional flat amount per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub model: PriceModel,
    /// Billable units per billing period that are free; deducted before
    /// any tier or package is counted.
    pub free_allowance: Decimal,
    /// Charged once per billing period for the meter, used or not, in
    /// cents; prorated like the plan's fee (0: none).
    pub flat_cents: i64,
}

/// How chargeable units are priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceModel {
    /// Every unit at one price (cents per unit, exact; may be fractional).
    PerUnit { unit_price_cents: Decimal },
    /// Each unit at the price of the tier it falls in.
    Graduated(Vec<Tier>),
    /// Every unit at the price of the tier the total falls in.
    Volume(Vec<Tier>),
    /// `price_cents` per block of `size` units; a partial block costs a
    /// whole one.
    Package { size: Decimal, price_cents: Decimal },
}

/// One tier of a graduated or volume price. Tiers are in order; each covers
/// the units after the previous tier's `up_to` to its own (inclusive), the
/// last has no `up_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub up_to: Option<Decimal>,
    /// Cents per unit in the tier (exact).
    pub unit_price_cents: Decimal,
    /// Cents charged once when the tier is reached (exact; 0: none).
    pub flat_cents: Decimal,
}

/// The name of a price model, as the catalog and the API spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    PerUnit,
    Graduated,
    Volume,
    Package,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [Self::PerUnit, Self::Graduated, Self::Volume, Self::Package];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerUnit => "per_unit",
            Self::Graduated => "graduated",
            Self::Volume => "volume",
            Self::Package => "package",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl PriceModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::PerUnit { .. } => ModelKind::PerUnit,
            Self::Graduated(_) => ModelKind::Graduated,
            Self::Volume(_) => ModelKind::Volume,
            Self::Package { .. } => ModelKind::Package,
        }
    }
}

impl Price {
    /// The price of one unit where the model has one price for every unit
    /// (per unit), else `None`.
    pub fn unit_price_cents(&self) -> Option<Decimal> {
        match &self.model {
            PriceModel::PerUnit { unit_price_cents } => Some(*unit_price_cents),
            _ => None,
        }
    }

    /// The price of the first chargeable unit (the per-unit price, the
    /// first tier's, or a package's price per unit), for listings.
    pub fn first_unit_cents(&self) -> Decimal {
        match &self.model {
            PriceModel::PerUnit { unit_price_cents } => *unit_price_cents,
            PriceModel::Graduated(t) | PriceModel::Volume(t) => {
                t.first().map_or(Decimal::ZERO, |t| t.unit_price_cents)
            }
            PriceModel::Package { size, price_cents } => price_cents.checked_div(*size).unwrap_or_default(),
        }
    }
}

/// Texts of a plan in one locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalizedText {
    pub title: String,
    pub subtitle: String,
    pub description: String,
}

/// An add-on service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addon {
    pub name: String,
    pub display_name: String,
    pub tier: String,
    /// Charged per billing period to a tenant subscribed to it (not when
    /// its plan includes it), in cents, prorated by the part of the period
    /// it was subscribed (0: free).
    pub flat_price_cents: i64,
    /// Its price in each of the catalog's other currencies; a free add-on
    /// may leave them out.
    pub in_currencies: BTreeMap<String, i64>,
}

/// Something the platform measures and bills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// Stable id, as usage events name it.
    pub metric_label: String,
    /// Display name of the usage type.
    pub usage_type: String,
    pub service: String,
    /// Unit events are reported in.
    pub unit: String,
    /// Unit prices are quoted in.
    pub unit_billable: String,
    /// Quantity in `unit` ÷ divisor = quantity in `unit_billable`.
    pub divisor: Decimal,
    pub aggregation: Aggregation,
    /// The event property a unique-count meter counts distinct values of.
    pub property: Option<String>,
}

impl Plan {
    /// Whether a tenant on this plan (of `catalog`) subscribed to `addons`
    /// pays something per period whatever its usage: the plan's fixed
    /// charges, or a priced add-on the plan does not include. Such a tenant
    /// must keep a way to pay.
    pub fn charges_fixed_with(&self, catalog: &Catalog, addons: &[String]) -> bool {
        self.charges_fixed()
            || (!self.billing_disabled
                && addons.iter().any(|a| {
                    !self.included_addons.contains(a)
                        && catalog.addon(a).is_some_and(|x| x.flat_price_cents > 0)
                }))
    }

    /// Whether the plan charges something per period whatever the usage (a
    /// fee, a meter's flat amount or a minimum commitment), so a tenant on it
    /// must keep a way to pay.
    pub fn charges_fixed(&self) -> bool {
        !self.billing_disabled
            && (self.flat_price_cents > 0
                || self.minimum_cents > 0
                || self.prices.values().any(|p| p.flat_cents > 0))
    }
}

impl Catalog {
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    pub fn addon(&self, name: &str) -> Option<&Addon> {
        self.addons.iter().find(|a| a.name == name)
    }

    pub fn meter(&self, metric_label: &str) -> Option<&Meter> {
        self.meters.iter().find(|m| m.metric_label == metric_label)
    }

    /// How a metric's usage aggregates (metrics without a meter sum).
    pub fn aggregation(&self, metric_label: &str) -> Aggregation {
        self.meter(metric_label)
            .map(|m| m.aggregation)
            .unwrap_or_default()
    }

    /// Each meter's aggregation (and a unique count's property), as usage
    /// ingestion needs it.
    pub fn aggregations(&self) -> Aggregations {
        let mut out: Aggregations = self
            .meters
            .iter()
            .map(|m| (m.metric_label.clone(), m.aggregation))
            .collect();
        for m in &self.meters {
            if let Some(p) = &m.property {
                out = out.with_unique(&m.metric_label, p);
            }
        }
        out
    }

    /// The plan named `name`, which must be offered; the error names the field.
    pub fn offered_plan(&self, field: &str, name: &str) -> Result<&Plan, Error> {
        match self.plan(name) {
            Some(p) if p.offered => Ok(p),
            Some(_) => Err(Error::invalid(format!(
                "{field}: plan {name:?} is no longer offered"
            ))),
            None => Err(Error::invalid(format!(
                "{field}: unknown plan {name:?}; offered plans: {}",
                self.plans
                    .iter()
                    .filter(|p| p.offered)
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Whether the catalog prices its plans in `currency`.
    pub fn prices_in(&self, currency: &str) -> bool {
        self.currencies.iter().any(|c| c == currency)
    }

    /// The catalog as it prices `currency`: its plans and add-ons carry
    /// that currency's fees, minimums and prices and its `currency` is that
    /// code, so that rating, invoices, taxes and PDFs need nothing else.
    /// `None` if the catalog does not price `currency`.
    pub fn in_currency(&self, currency: &str) -> Option<Catalog> {
        if !self.prices_in(currency) {
            return None;
        }
        let mut view = self.clone();
        view.currency = currency.to_owned();
        if self.currencies.first().is_some_and(|c| c == currency) {
            return Some(view);
        }
        for plan in &mut view.plans {
            // Absent: a plan that charges nothing in any currency.
            let own = plan.in_currencies.get(currency).cloned().unwrap_or(PlanPrices {
                flat_price_cents: 0,
                minimum_cents: 0,
                prices: BTreeMap::new(),
            });
            plan.flat_price_cents = own.flat_price_cents;
            plan.minimum_cents = own.minimum_cents;
            plan.prices = own.prices;
        }
        for addon in &mut view.addons {
            addon.flat_price_cents = addon.in_currencies.get(currency).copied().unwrap_or(0);
        }
        Some(view)
    }

    /// The currency of a tenant that names `tenant_currency` (or none: a
    /// tenant from before currencies, which is in the first).
    pub fn currency_of<'a>(&'a self, tenant_currency: Option<&'a str>) -> &'a str {
        tenant_currency.unwrap_or_else(|| {
            self.currencies
                .first()
                .map_or(self.currency.as_str(), String::as_str)
        })
    }

    /// The built-in catalog.
    pub fn builtin() -> Self {
        parse("builtin catalog", BUILTIN_TOML)
            .unwrap_or_else(|e| panic!("the built-in catalog is invalid: {e}"))
    }
}

impl Catalog {
    /// The locale to answer in for locales the caller prefers (most
    /// preferred first, lowercase): the first that some offered plan is
    /// translated to ("de" matches "de-de"), else en-us.
    pub fn locale_for(&self, preferred: &[String]) -> String {
        Self::locale_for_plans(self.plans.iter().filter(|p| p.offered), preferred)
    }
}

impl Plan {
    /// Title, subtitle and description in `locale`, falling back to the
    /// plan's own (en-us) texts.
    pub fn texts_in(&self, locale: &str) -> LocalizedText {
        self.localized
            .get(locale)
            .cloned()
            .unwrap_or_else(|| LocalizedText {
                title: self.title.clone(),
                subtitle: self.subtitle.clone(),
                description: self.description.clone(),
            })
    }

    /// Texts in the best locale of this plan for the locales the caller
    /// prefers, and that locale.
    pub fn texts_for(&self, preferred: &[String]) -> (String, LocalizedText) {
        let locale = Catalog::locale_for_plans(std::iter::once(self), preferred);
        (locale.clone(), self.texts_in(&locale))
    }
}

impl Catalog {
    fn locale_for_plans<'a>(
        plans: impl IntoIterator<Item = &'a Plan> + Clone,
        preferred: &[String],
    ) -> String {
        for wanted in preferred {
            // A tag with a region also stands for its language: en-gb → en, de-at → de.
            let language = wanted.split('-').next().unwrap_or(wanted).to_owned();
            for candidate in [wanted.as_str(), language.as_str()] {
                if candidate == DEFAULT_LOCALE || candidate == "en" {
                    return DEFAULT_LOCALE.to_owned();
                }
                let found = plans.clone().into_iter().find_map(|p| {
                    p.localized
                        .keys()
                        .find(|l| {
                            *l == candidate
                                || (!candidate.contains('-') && l.split('-').next() == Some(candidate))
                        })
                        .cloned()
                });
                if let Some(locale) = found {
                    return locale;
                }
            }
        }
        DEFAULT_LOCALE.to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests;
