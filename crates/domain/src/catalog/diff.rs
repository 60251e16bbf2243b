//! What changed between two catalogs, as an operator reads it before
//! publishing or moving tenants: plans, add-ons, meters and tax rates added,
//! removed or changed (each change named, money in the catalog's
//! currency), and the catalog-wide settings. A text diff of the sources
//! (the console shows both) covers what this summary leaves coarse.

use std::collections::BTreeMap;
use std::fmt::Debug;

use super::{Addon, Catalog, Meter, Plan, Price, PriceModel, TaxRate};
use crate::currency::{format_price, money};

/// Whether a thing is new, gone or different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// One thing that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// "catalog", "plan", "add-on", "meter" or "tax rate".
    pub what: &'static str,
    /// Its name (a plan's, a meter's label, a tax rate's "VAT DE"…).
    pub name: String,
    /// What changed in it, one line each ("fee: 49.00 USD → 59.00 USD").
    pub details: Vec<String>,
}

/// Every difference from `old` to `new`, catalog settings first, then
/// plans, add-ons, meters and tax rates, each by name.
pub fn diff(old: &Catalog, new: &Catalog) -> Vec<Change> {
    let mut out = Vec::new();
    let mut settings = Vec::new();
    field(
        &mut settings,
        "default plan",
        &old.default_plan,
        &new.default_plan,
    );
    field(
        &mut settings,
        "currencies",
        &old.currencies.join(", "),
        &new.currencies.join(", "),
    );
    if old.issuer != new.issuer {
        let name = |c: &Catalog| c.issuer.as_ref().map_or("(none)".to_owned(), |i| i.name.clone());
        settings.push(format!("issuer: {} → {}", name(old), name(new)));
    }
    if !settings.is_empty() {
        out.push(Change {
            kind: ChangeKind::Changed,
            what: "catalog",
            name: String::new(),
            details: settings,
        });
    }
    let currency = new.currency.as_str();
    keyed(
        &mut out,
        "plan",
        &old.plans,
        &new.plans,
        |p| p.name.clone(),
        |a, b| plan(a, b, currency),
    );
    keyed(
        &mut out,
        "add-on",
        &old.addons,
        &new.addons,
        |a| a.name.clone(),
        |a, b| addon(a, b, currency),
    );
    keyed(
        &mut out,
        "meter",
        &old.meters,
        &new.meters,
        |m| m.metric_label.clone(),
        meter,
    );
    keyed(&mut out, "tax rate", &old.taxes, &new.taxes, tax_key, tax);
    out
}

fn keyed<T: PartialEq>(
    out: &mut Vec<Change>,
    what: &'static str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    details: impl Fn(&T, &T) -> Vec<String>,
) {
    let old_by: BTreeMap<String, &T> = old.iter().map(|t| (key(t), t)).collect();
    let new_by: BTreeMap<String, &T> = new.iter().map(|t| (key(t), t)).collect();
    let mut names: Vec<&String> = old_by.keys().chain(new_by.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (kind, details) = match (old_by.get(name), new_by.get(name)) {
            (None, Some(_)) => (ChangeKind::Added, Vec::new()),
            (Some(_), None) => (ChangeKind::Removed, Vec::new()),
            (Some(a), Some(b)) if a != b => {
                let mut d = details(a, b);
                if d.is_empty() {
                    d.push("other settings".to_owned());
                }
                (ChangeKind::Changed, d)
            }
            _ => continue,
        };
        out.push(Change {
            kind,
            what,
            name: name.clone(),
            details,
        });
    }
}

fn field<T: PartialEq + ToString + ?Sized>(out: &mut Vec<String>, name: &str, old: &T, new: &T) {
    if old != new {
        out.push(format!("{name}: {} → {}", old.to_string(), new.to_string()));
    }
}

fn changed<T: PartialEq + Debug>(out: &mut Vec<String>, name: &str, old: &T, new: &T) {
    if old != new {
        out.push(format!("{name} changed"));
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

fn plan(a: &Plan, b: &Plan, currency: &str) -> Vec<String> {
    let mut d = Vec::new();
    field(&mut d, "title", &a.title, &b.title);
    field(
        &mut d,
        "fee",
        &money(a.flat_price_cents, currency),
        &money(b.flat_price_cents, currency),
    );
    field(
        &mut d,
        "minimum commitment",
        &money(a.minimum_cents, currency),
        &money(b.minimum_cents, currency),
    );
    field(
        &mut d,
        "renewal period",
        a.renewal_period.as_str(),
        b.renewal_period.as_str(),
    );
    field(
        &mut d,
        "trial",
        &format!("{} {}", a.trial_period, a.trial_period_unit.as_str()),
        &format!("{} {}", b.trial_period, b.trial_period_unit.as_str()),
    );
    field(&mut d, "offered", &a.offered, &b.offered);
    field(
        &mut d,
        "billing disabled",
        &a.billing_disabled,
        &b.billing_disabled,
    );
    field(
        &mut d,
        "included add-ons",
        &list(&a.included_addons),
        &list(&b.included_addons),
    );
    field(
        &mut d,
        "allowed add-ons",
        &list(&a.allowed_addons),
        &list(&b.allowed_addons),
    );
    changed(&mut d, "default quota", &a.default_quota, &b.default_quota);
    changed(&mut d, "transition flow", &a.transition, &b.transition);
    let mut meters: Vec<&String> = a.prices.keys().chain(b.prices.keys()).collect();
    meters.sort();
    meters.dedup();
    for m in meters {
        match (a.prices.get(m), b.prices.get(m)) {
            (None, Some(p)) => d.push(format!("price of {m} added: {}", price(p, currency))),
            (Some(_), None) => d.push(format!("price of {m} removed (now free)")),
            (Some(x), Some(y)) if x != y => {
                d.push(format!(
                    "price of {m}: {} → {}",
                    price(x, currency),
                    price(y, currency)
                ));
            }
            _ => {}
        }
    }
    let mut other: Vec<&String> = a.in_currencies.keys().chain(b.in_currencies.keys()).collect();
    other.sort();
    other.dedup();
    for c in other {
        if a.in_currencies.get(c) != b.in_currencies.get(c) {
            d.push(format!("prices in {c} changed"));
        }
    }
    changed(&mut d, "translations", &a.localized, &b.localized);
    d
}

/// A price in one line: "per_unit 0.001 USD, 1000 free".
fn price(p: &Price, currency: &str) -> String {
    let model = match &p.model {
        PriceModel::PerUnit { unit_price_cents } => {
            format!(
                "per_unit {} {currency}",
                format_price(*unit_price_cents, currency)
            )
        }
        PriceModel::Graduated(tiers) => format!("graduated, {} tiers", tiers.len()),
        PriceModel::Volume(tiers) => format!("volume, {} tiers", tiers.len()),
        PriceModel::Package { size, price_cents } => format!(
            "package {} {currency} per {size}",
            format_price(*price_cents, currency)
        ),
    };
    let mut s = model;
    if !p.free_allowance.is_zero() {
        s.push_str(&format!(", {} free", p.free_allowance.normalize()));
    }
    if p.flat_cents != 0 {
        s.push_str(&format!(", {} per period", money(p.flat_cents, currency)));
    }
    s
}

fn addon(a: &Addon, b: &Addon, currency: &str) -> Vec<String> {
    let mut d = Vec::new();
    field(&mut d, "name", &a.display_name, &b.display_name);
    field(&mut d, "tier", &a.tier, &b.tier);
    field(
        &mut d,
        "price",
        &money(a.flat_price_cents, currency),
        &money(b.flat_price_cents, currency),
    );
    changed(
        &mut d,
        "prices in other currencies",
        &a.in_currencies,
        &b.in_currencies,
    );
    d
}

fn meter(a: &Meter, b: &Meter) -> Vec<String> {
    let mut d = Vec::new();
    field(&mut d, "usage type", &a.usage_type, &b.usage_type);
    field(&mut d, "service", &a.service, &b.service);
    field(&mut d, "unit", &a.unit, &b.unit);
    field(&mut d, "billable unit", &a.unit_billable, &b.unit_billable);
    field(&mut d, "divisor", &a.divisor.normalize(), &b.divisor.normalize());
    field(
        &mut d,
        "aggregation",
        a.aggregation.as_str(),
        b.aggregation.as_str(),
    );
    field(
        &mut d,
        "property",
        a.property.as_deref().unwrap_or("(none)"),
        b.property.as_deref().unwrap_or("(none)"),
    );
    d
}

fn tax_key(t: &TaxRate) -> String {
    let mut k = format!("{} {}", t.name, t.country);
    if let Some(r) = &t.region {
        k.push('-');
        k.push_str(r);
    }
    if let Some(from) = t.from {
        k.push_str(&format!(" from {}", from.strftime("%Y-%m-%d")));
    }
    k
}

fn tax(a: &TaxRate, b: &TaxRate) -> Vec<String> {
    let mut d = Vec::new();
    field(
        &mut d,
        "rate",
        &format!("{}%", a.percent.normalize()),
        &format!("{}%", b.percent.normalize()),
    );
    let until = |t: &TaxRate| {
        t.until
            .map_or("(open)".to_owned(), |u| u.strftime("%Y-%m-%d").to_string())
    };
    field(&mut d, "until", &until(a), &until(b));
    d
}
