//! Rating: from quantities to money. Quantities and unit prices are exact
//! decimals; amounts are integer cents; each line is rounded once, half up;
//! totals are sums of rounded lines; coupons never make a total negative.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::catalog::{Meter, Price, PriceModel};

/// The quantity in billable units as the contract defines it: converted with
/// the meter's divisor, then 0 < x < 1 counts as 1 and anything else is
/// rounded down.
pub fn billable_quantity(quantity: Decimal, divisor: Decimal) -> i64 {
    if divisor <= Decimal::ZERO || quantity <= Decimal::ZERO {
        return 0;
    }
    let Some(converted) = quantity.checked_div(divisor) else {
        return i64::MAX;
    };
    if converted < Decimal::ONE {
        1
    } else {
        i64::try_from(converted.floor()).unwrap_or(i64::MAX)
    }
}

/// Rounds a decimal amount of cents to whole cents, half up.
pub fn round_cents(cents: Decimal) -> i64 {
    let rounded = cents.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).unwrap_or(if cents.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// One rated usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedLine {
    pub metric_label: String,
    /// In the meter's unit.
    pub quantity: Decimal,
    pub quantity_billable: i64,
    /// Billable units past the free allowance: what the price applies to.
    pub chargeable: Decimal,
    pub amount_cents: i64,
    /// How a tiered or package price came to the amount: one step per tier
    /// used, or the packages; empty for a per-unit price (or none).
    pub steps: Vec<Step>,
}

/// One step of a tiered or package price. `amount_cents` is exact;
/// the line rounds the sum of its steps once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    /// Chargeable units priced at this step (packages, for a package price).
    pub quantity: Decimal,
    /// Cents per unit (per package) of the step.
    pub unit_price_cents: Decimal,
    /// The tier's flat amount, in cents (0 when none).
    pub flat_cents: Decimal,
    /// quantity × unit price + flat amount, in exact cents.
    pub amount_cents: Decimal,
}

/// What a step prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Chargeable units `from` to `to` (1-based, inclusive; no `to`: and
    /// above), of a graduated or volume price.
    Tier { from: Decimal, to: Option<Decimal> },
    /// Blocks of `size` units.
    Package { size: Decimal },
}

/// The exact amount of `chargeable` units under `model` and its steps.
/// `None` when the amount overflows.
pub fn price_units(model: &PriceModel, chargeable: Decimal) -> Option<(Decimal, Vec<Step>)> {
    let chargeable = chargeable.max(Decimal::ZERO);
    match model {
        PriceModel::PerUnit { unit_price_cents } => {
            Some((chargeable.checked_mul(*unit_price_cents)?, Vec::new()))
        }
        PriceModel::Graduated(tiers) => {
            let mut steps = Vec::new();
            let mut total = Decimal::ZERO;
            let mut below = Decimal::ZERO;
            for t in tiers {
                if chargeable <= below {
                    break;
                }
                let top = t.up_to.map_or(chargeable, |u| u.min(chargeable));
                let quantity = top - below;
                let amount = quantity
                    .checked_mul(t.unit_price_cents)?
                    .checked_add(t.flat_cents)?;
                total = total.checked_add(amount)?;
                steps.push(Step {
                    kind: StepKind::Tier {
                        from: below + Decimal::ONE,
                        to: t.up_to,
                    },
                    quantity,
                    unit_price_cents: t.unit_price_cents,
                    flat_cents: t.flat_cents,
                    amount_cents: amount,
                });
                below = match t.up_to {
                    Some(u) => u,
                    None => break,
                };
            }
            Some((total, steps))
        }
        PriceModel::Volume(tiers) => {
            if chargeable.is_zero() {
                return Some((Decimal::ZERO, Vec::new()));
            }
            let mut below = Decimal::ZERO;
            for t in tiers {
                if t.up_to.is_none_or(|u| chargeable <= u) {
                    let amount = chargeable
                        .checked_mul(t.unit_price_cents)?
                        .checked_add(t.flat_cents)?;
                    let step = Step {
                        kind: StepKind::Tier {
                            from: below + Decimal::ONE,
                            to: t.up_to,
                        },
                        quantity: chargeable,
                        unit_price_cents: t.unit_price_cents,
                        flat_cents: t.flat_cents,
                        amount_cents: amount,
                    };
                    return Some((amount, vec![step]));
                }
                below = t.up_to.unwrap_or(below);
            }
            // A validated catalog's last tier has no end.
            Some((Decimal::ZERO, Vec::new()))
        }
        PriceModel::Package { size, price_cents } => {
            if chargeable.is_zero() {
                return Some((Decimal::ZERO, Vec::new()));
            }
            let packages = chargeable.checked_div(*size)?.ceil();
            let amount = packages.checked_mul(*price_cents)?;
            let step = Step {
                kind: StepKind::Package { size: *size },
                quantity: packages,
                unit_price_cents: *price_cents,
                flat_cents: Decimal::ZERO,
                amount_cents: amount,
            };
            Some((amount, vec![step]))
        }
    }
}

/// Rates `quantity` of a meter under a plan's price (no price: free): the
/// free allowance is deducted from the billable quantity, the price model
/// prices the rest exactly, and the line is rounded once, half up. (A
/// meter's flat amount is a line of its own: [`Bill::meter_fees`].)
pub fn rate(meter: &Meter, price: Option<&Price>, quantity: Decimal) -> RatedLine {
    let quantity_billable = billable_quantity(quantity, meter.divisor);
    let (chargeable, amount_cents, steps) = match price {
        None => (Decimal::ZERO, 0, Vec::new()),
        Some(p) => {
            let chargeable = (Decimal::from(quantity_billable) - p.free_allowance).max(Decimal::ZERO);
            match price_units(&p.model, chargeable) {
                Some((exact, steps)) => (chargeable, round_cents(exact), steps),
                None => (chargeable, i64::MAX, Vec::new()),
            }
        }
    };
    RatedLine {
        metric_label: meter.metric_label.clone(),
        quantity,
        quantity_billable,
        chargeable,
        amount_cents,
        steps,
    }
}

/// A plan's flat fee for a period, prorated by the share of the period the
/// subscription covered (`used` of `length` seconds), rounded half up.
pub fn flat_fee(flat_price_cents: i64, used_secs: i64, length_secs: i64) -> i64 {
    if length_secs <= 0 || used_secs >= length_secs {
        return flat_price_cents;
    }
    let share = Decimal::from(used_secs.max(0)) / Decimal::from(length_secs);
    round_cents(Decimal::from(flat_price_cents) * share)
}

/// The share of a billing period a bill covers, for the amounts charged
/// per period whatever the usage (the plan's fee, meters' flat amounts,
/// the minimum commitment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub used_secs: i64,
    pub length_secs: i64,
}

impl Share {
    /// A whole period.
    pub const WHOLE: Share = Share {
        used_secs: 1,
        length_secs: 1,
    };

    /// `cents` for this share of the period, rounded half up.
    pub fn of(self, cents: i64) -> i64 {
        flat_fee(cents, self.used_secs, self.length_secs)
    }
}

/// What a bill charges per period whatever the usage, for the part of the
/// period it covers: the plan's fee, meters' flat amounts and the minimum
/// commitment by `share`, each add-on by the seconds it was subscribed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub share: Share,
    /// Add-ons subscribed in the period and for how many of the period's
    /// `share.length_secs` seconds.
    pub addons: Vec<(String, i64)>,
}

impl Fixed {
    /// A whole period, no add-ons.
    pub fn whole() -> Self {
        Share::WHOLE.into()
    }
}

impl From<Share> for Fixed {
    fn from(share: Share) -> Self {
        Self {
            share,
            addons: Vec::new(),
        }
    }
}

/// An add-on's price for the part of a period it was subscribed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonFee {
    pub addon: String,
    /// The price of a whole period.
    pub full_cents: i64,
    pub used_secs: i64,
    pub length_secs: i64,
    /// Prorated, rounded half up.
    pub amount_cents: i64,
}

/// A meter's flat amount for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterFee {
    pub metric_label: String,
    /// The amount for a whole period.
    pub full_cents: i64,
    /// Prorated.
    pub amount_cents: i64,
}

/// The line that brings a period's usage charges up to the plan's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrueUp {
    /// The minimum for this period (prorated).
    pub minimum_cents: i64,
    /// What the usage lines and meters' flat amounts came to.
    pub usage_cents: i64,
    /// `minimum_cents - usage_cents`, more than 0.
    pub amount_cents: i64,
}

/// How a coupon discounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// A fixed amount, in cents.
    Fixed(i64),
    /// A percentage in 0.01 % units (1235 = 12.35 %).
    Percent(i64),
}

/// Longest coupon title.
pub const MAX_COUPON_TITLE: usize = 256;

/// Checks a coupon's title (shown on invoices): one line of 1 to
/// [`MAX_COUPON_TITLE`] characters; returns it trimmed.
pub fn coupon_title(field: &str, title: &str) -> Result<String, crate::Error> {
    let title = title.trim();
    if title.is_empty() {
        return Err(crate::Error::invalid(format!("{field}: is required")));
    }
    crate::text::single_line(field, title, MAX_COUPON_TITLE)?;
    Ok(title.to_owned())
}

/// A coupon as applied to a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub title: String,
    pub discount: Discount,
}

/// A bill's totals: the subtotal of its lines, the discount, the prepaid
/// credits that paid part of it, the tax, the total (subtotal − discount −
/// credits + tax). Discounts come first, then credits, then tax (on what
/// the credits left).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub subtotal: i64,
    pub discount: i64,
    #[serde(default)]
    pub credits: i64,
    #[serde(default)]
    pub tax: i64,
    pub total: i64,
}

impl Totals {
    /// What credits may pay and tax is computed on before credits: the
    /// subtotal after discounts.
    pub fn after_discount(&self) -> i64 {
        self.subtotal.saturating_sub(self.discount)
    }
}

/// How a tenant is taxed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TaxTreatment {
    /// The rates of its billing address.
    #[default]
    Standard,
    /// No tax.
    Exempt,
    /// No tax charged: the customer (a business with this tax id) accounts
    /// for it; the invoice says so.
    ReverseCharge { tax_id: String },
}

impl TaxTreatment {
    /// `standard`, `exempt` or `reverse_charge`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Exempt => "exempt",
            Self::ReverseCharge { .. } => "reverse_charge",
        }
    }

    /// A treatment by name; `reverse_charge` needs the customer's tax id
    /// (1 to 64 printable characters), the others take none.
    pub fn parse(treatment: &str, tax_id: Option<&str>) -> Result<Self, crate::Error> {
        let tax_id = tax_id.map(str::trim).filter(|t| !t.is_empty());
        match (treatment.trim(), tax_id) {
            ("standard", None) => Ok(Self::Standard),
            ("exempt", None) => Ok(Self::Exempt),
            ("reverse_charge", Some(id)) => {
                crate::text::single_line("tax_id", id, 64)?;
                Ok(Self::ReverseCharge {
                    tax_id: id.to_owned(),
                })
            }
            ("reverse_charge", None) => Err(crate::Error::invalid(
                "tax_id: is required for a reverse charge (the customer's tax id)",
            )),
            ("standard" | "exempt", Some(_)) => Err(crate::Error::invalid(
                "tax_id: only a reverse charge has a tax id",
            )),
            (other, _) => Err(crate::Error::invalid(format!(
                "treatment: {other:?} is not one of standard, exempt, reverse_charge"
            ))),
        }
    }

    /// The customer's tax id, for a reverse charge.
    pub fn tax_id(&self) -> Option<&str> {
        match self {
            Self::ReverseCharge { tax_id } => Some(tax_id),
            _ => None,
        }
    }
}

/// What taxes a bill: the rates of the billing address at the time, and
/// the tenant's treatment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxContext {
    /// (name, percent) of each rate, in catalog order.
    pub rates: Vec<(String, Decimal)>,
    pub treatment: TaxTreatment,
}

/// One tax of a bill: `percent` of the taxable amount, rounded half up once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxLine {
    pub name: String,
    pub percent: Decimal,
    pub taxable_cents: i64,
    pub amount_cents: i64,
}

impl TaxContext {
    /// The taxes of a taxable amount (the total after discounts): one line
    /// per rate, each rounded half up; none when exempt or reverse-charged.
    /// Prices are tax-exclusive.
    pub fn lines(&self, taxable_cents: i64) -> Vec<TaxLine> {
        if self.treatment != TaxTreatment::Standard {
            return Vec::new();
        }
        let taxable = taxable_cents.max(0);
        self.rates
            .iter()
            .map(|(name, percent)| TaxLine {
                name: name.clone(),
                percent: *percent,
                taxable_cents: taxable,
                amount_cents: tax_of(taxable, *percent),
            })
            .collect()
    }

    /// What the invoice says about tax when it charges none.
    pub fn note(&self) -> Option<String> {
        match &self.treatment {
            TaxTreatment::Standard => None,
            TaxTreatment::Exempt => Some("Exempt from tax.".to_owned()),
            TaxTreatment::ReverseCharge { tax_id } => Some(format!(
                "Reverse charge: the customer (tax id {tax_id}) accounts for the tax."
            )),
        }
    }
}

/// `percent` of `taxable_cents`, rounded half up once.
fn tax_of(taxable_cents: i64, percent: Decimal) -> i64 {
    Decimal::from(taxable_cents)
        .checked_mul(percent)
        .map_or(i64::MAX, |v| round_cents(v / Decimal::ONE_HUNDRED))
}

impl TaxLine {
    /// The same rate on another taxable amount (after credits).
    pub fn on(&self, taxable_cents: i64) -> Self {
        let taxable = taxable_cents.max(0);
        Self {
            name: self.name.clone(),
            percent: self.percent,
            taxable_cents: taxable,
            amount_cents: tax_of(taxable, self.percent),
        }
    }
}

/// `totals` and `taxes` after `credits` paid part of the subtotal after
/// discounts: the credits are at most that amount (never negative), each
/// tax is computed again on what remains, and the total follows.
pub fn with_credits(totals: Totals, taxes: &[TaxLine], credits: i64) -> (Totals, Vec<TaxLine>) {
    let credits = credits.clamp(0, totals.after_discount().max(0));
    let taxable = totals.after_discount() - credits;
    let taxes: Vec<TaxLine> = taxes.iter().map(|t| t.on(taxable)).collect();
    (with_tax(Totals { credits, ..totals }, &taxes), taxes)
}

/// `totals` with `taxes` added: the total is subtotal − discount − credits
/// + tax.
pub fn with_tax(totals: Totals, taxes: &[TaxLine]) -> Totals {
    let tax = taxes
        .iter()
        .map(|t| t.amount_cents)
        .fold(0i64, i64::saturating_add);
    Totals {
        tax,
        total: (totals.subtotal - totals.discount - totals.credits).saturating_add(tax),
        ..totals
    }
}

/// Applies coupons to a subtotal: percentages first (each on the subtotal,
/// rounded half up), then fixed amounts; the discount never exceeds the
/// subtotal, so the total is never negative.
pub fn totals(line_amounts: impl IntoIterator<Item = i64>, coupons: &[Coupon]) -> Totals {
    // Amounts saturate rather than wrap: a total of i64::MAX cents is
    // absurd, but it is not a negative bill.
    let subtotal: i64 = line_amounts.into_iter().fold(0, i64::saturating_add);
    let mut discount: i64 = 0;
    for c in coupons {
        if let Discount::Percent(bp) = c.discount {
            let share = Decimal::from(subtotal) * Decimal::from(bp.clamp(0, 10_000)) / Decimal::from(10_000);
            discount = discount.saturating_add(round_cents(share));
        }
    }
    for c in coupons {
        if let Discount::Fixed(cents) = c.discount {
            discount = discount.saturating_add(cents.max(0));
        }
    }
    let discount = discount.clamp(0, subtotal.max(0));
    Totals {
        subtotal,
        discount,
        credits: 0,
        tax: 0,
        total: subtotal - discount,
    }
}

/// A bill: rated usage lines, the plan's flat fee, meters' flat amounts,
/// the true-up to a minimum commitment, coupons, totals. The one
/// computation behind `current_usage`, `monthly_usage` and invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub usage: Vec<RatedLine>,
    /// The flat fee line, if the plan has one for this period.
    pub fee_cents: Option<i64>,
    /// Each priced add-on the tenant subscribed to in the period (not those
    /// its plan includes), in name order.
    pub addon_fees: Vec<AddonFee>,
    /// Each priced meter's flat amount for the period, in metric order.
    pub meter_fees: Vec<MeterFee>,
    pub true_up: Option<TrueUp>,
    pub coupons: Vec<Coupon>,
    /// What taxes the bill ([`Bill::taxed`]); none by default.
    pub tax: TaxContext,
    /// One line per rate, on the total after discounts.
    pub taxes: Vec<TaxLine>,
    pub totals: Totals,
}

impl Bill {
    /// The bill taxed under `tax`: one line per rate on the total after
    /// discounts, added to the total.
    pub fn taxed(mut self, tax: TaxContext) -> Self {
        let before = Totals {
            credits: 0,
            tax: 0,
            total: self.totals.subtotal - self.totals.discount,
            ..self.totals
        };
        self.taxes = tax.lines(before.total);
        self.totals = with_tax(before, &self.taxes);
        self.tax = tax;
        self
    }

    /// The bill after `credits` paid part of it (a finalized invoice's
    /// credits, so that its period's bill says what the invoice says).
    pub fn credited(mut self, credits: i64) -> Self {
        if credits != 0 {
            (self.totals, self.taxes) = with_credits(self.totals, &self.taxes, credits);
        }
        self
    }

    /// Every line's amount, in invoice order: fee, add-ons, meters' flat
    /// amounts, usage, true-up.
    pub fn line_amounts(&self) -> impl Iterator<Item = i64> + '_ {
        self.fee_cents
            .into_iter()
            .chain(self.addon_fees.iter().map(|f| f.amount_cents))
            .chain(self.meter_fees.iter().map(|f| f.amount_cents))
            .chain(self.usage.iter().map(|l| l.amount_cents))
            .chain(self.true_up.map(|t| t.amount_cents))
    }
}

/// Bills metric quantities under `plan` (meters of `catalog`) with coupons.
/// `fixed` is what of a billing period's fixed charges the bill covers (its
/// fee, add-ons, meters' flat amounts and the minimum commitment; `None` on
/// trial, for ranges that are not a period, and for one namespace's usage);
/// a plan with billing disabled has none. Metrics the catalog has no meter
/// for are ignored. The minimum commitment counts usage lines and meters'
/// flat amounts, not the fee or add-ons.
pub fn bill(
    catalog: &crate::catalog::Catalog,
    plan: &crate::catalog::Plan,
    quantities: &std::collections::BTreeMap<String, Decimal>,
    fixed: Option<&Fixed>,
    coupons: Vec<Coupon>,
) -> Bill {
    let usage: Vec<RatedLine> = quantities
        .iter()
        .filter_map(|(metric, q)| {
            catalog
                .meter(metric)
                .map(|m| rate(m, plan.prices.get(metric), *q))
        })
        .collect();
    let fixed = fixed.filter(|_| !plan.billing_disabled);
    let mut addon_fees: Vec<AddonFee> = fixed
        .iter()
        .flat_map(|f| f.addons.iter().map(move |a| (f.share, a)))
        .filter_map(|(share, (name, used_secs))| {
            let addon = catalog.addon(name)?;
            if addon.flat_price_cents <= 0 || plan.included_addons.contains(name) {
                return None;
            }
            Some(AddonFee {
                addon: name.clone(),
                full_cents: addon.flat_price_cents,
                used_secs: *used_secs,
                length_secs: share.length_secs,
                amount_cents: flat_fee(addon.flat_price_cents, *used_secs, share.length_secs),
            })
        })
        .filter(|f| f.used_secs > 0)
        .collect();
    addon_fees.sort_by(|a, b| a.addon.cmp(&b.addon));
    let fixed = fixed.map(|f| f.share);
    let fee_cents = fixed
        .filter(|_| plan.flat_price_cents > 0)
        .map(|share| share.of(plan.flat_price_cents));
    let meter_fees: Vec<MeterFee> = match fixed {
        None => Vec::new(),
        Some(share) => plan
            .prices
            .iter()
            .filter(|(metric, p)| p.flat_cents > 0 && catalog.meter(metric).is_some())
            .map(|(metric, p)| MeterFee {
                metric_label: metric.clone(),
                full_cents: p.flat_cents,
                amount_cents: share.of(p.flat_cents),
            })
            .collect(),
    };
    let true_up = fixed.filter(|_| plan.minimum_cents > 0).and_then(|share| {
        let minimum_cents = share.of(plan.minimum_cents);
        let usage_cents = usage
            .iter()
            .map(|l| l.amount_cents)
            .chain(meter_fees.iter().map(|f| f.amount_cents))
            .fold(0i64, i64::saturating_add);
        (usage_cents < minimum_cents).then_some(TrueUp {
            minimum_cents,
            usage_cents,
            amount_cents: minimum_cents - usage_cents,
        })
    });
    let mut bill = Bill {
        usage,
        fee_cents,
        addon_fees,
        meter_fees,
        true_up,
        coupons,
        tax: TaxContext::default(),
        taxes: Vec::new(),
        totals: Totals::default(),
    };
    bill.totals = totals(bill.line_amounts(), &bill.coupons);
    bill
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Aggregation, Catalog};
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn billable_quantities_follow_the_contract() {
        let m = d("1000000");
        assert_eq!(billable_quantity(Decimal::ZERO, m), 0);
        assert_eq!(billable_quantity(d("1"), m), 1, "0 < x < 1 counts as 1");
        assert_eq!(billable_quantity(d("999999"), m), 1);
        assert_eq!(billable_quantity(d("1000000"), m), 1);
        assert_eq!(billable_quantity(d("1999999.99"), m), 1, "rounded down");
        assert_eq!(billable_quantity(d("2000000"), m), 2);
        // Seconds to hours, bytes to GB.
        assert_eq!(billable_quantity(d("7199"), d("3600")), 1);
        assert_eq!(billable_quantity(d("1500000000"), d("1000000000")), 1);
    }

    #[test]
    fn rounding_is_half_up_once_per_line() {
        assert_eq!(round_cents(d("0.5")), 1);
        assert_eq!(round_cents(d("0.49999")), 0);
        assert_eq!(round_cents(d("2.5")), 3);
        assert_eq!(round_cents(d("-0.5")), -1);
    }

    /// Worked by hand on the built-in team plan.
    #[test]
    fn golden_lines() {
        let c = Catalog::builtin();
        let team = c.plan("team").unwrap();
        let line = |metric: &str, q: &str| rate(c.meter(metric).unwrap(), team.prices.get(metric), d(q));
        // 73.4 million requests → 73 billable; 50 free; 23 × 50 ¢ = 1150 ¢.
        assert_eq!(line("lb_requests", "73400000").amount_cents, 1150);
        // 1234.5 GB → 1234; 1000 free; 234 × 6 ¢ = 1404 ¢.
        assert_eq!(line("lb_data_transfer", "1234500000000").amount_cents, 1404);
        // 7500 hours + 1 second in seconds → 7500 billable h; 7440 free; 60 × 2.5 ¢ = 150 ¢.
        assert_eq!(line("lb_hours", "27000001").amount_cents, 150);
        // 501 GB of CDN → 1 chargeable GB × 3.5 ¢ = 3.5 → 4 ¢ (half up).
        assert_eq!(line("cdn_data_transfer", "501000000000").amount_cents, 4);
        // Under the allowance: nothing to pay, but still billable quantity.
        let small = line("dns_queries", "5");
        assert_eq!((small.quantity_billable, small.amount_cents), (1, 0));
        // A meter the plan does not price is free.
        let free = rate(c.meter("lb_requests").unwrap(), None, d("999000000"));
        assert_eq!((free.quantity_billable, free.amount_cents), (999, 0));
    }

    #[test]
    fn flat_fees_prorate() {
        assert_eq!(flat_fee(30000, 86_400 * 30, 86_400 * 30), 30000);
        // 10 of 31 days: 30000 × 10/31 = 9677.419… → 9677 ¢.
        assert_eq!(flat_fee(30000, 86_400 * 10, 86_400 * 31), 9677);
        // 15.5 of 31 days: exactly half.
        assert_eq!(flat_fee(2501, 86_400 * 31 / 2, 86_400 * 31), 1251);
        assert_eq!(flat_fee(30000, 0, 86_400), 0);
    }

    #[test]
    fn coupons_discount_but_never_below_zero() {
        let pct = |bp| Coupon {
            title: "p".into(),
            discount: Discount::Percent(bp),
        };
        let fixed = |c| Coupon {
            title: "f".into(),
            discount: Discount::Fixed(c),
        };
        // 12.35 % of 10000 = 1235.
        assert_eq!(
            totals([6000, 4000], &[pct(1235)]),
            Totals {
                subtotal: 10000,
                discount: 1235,
                credits: 0,
                tax: 0,
                total: 8765
            }
        );
        assert_eq!(
            totals([500], &[fixed(800)]),
            Totals {
                subtotal: 500,
                discount: 500,
                credits: 0,
                tax: 0,
                total: 0
            }
        );
        // 10 % of 999 = 99.9 → 100, then 50 fixed.
        assert_eq!(
            totals([999], &[fixed(50), pct(1000)]),
            Totals {
                subtotal: 999,
                discount: 150,
                credits: 0,
                tax: 0,
                total: 849
            }
        );
        assert_eq!(totals([], &[pct(5000)]).total, 0);
    }

    #[test]
    fn absurd_amounts_saturate_instead_of_overflowing() {
        let c = Catalog::builtin();
        let team = c.plan("team").unwrap();
        let meter = c.meter("lb_requests").unwrap();
        let line = rate(meter, team.prices.get("lb_requests"), Decimal::MAX);
        assert_eq!(line.amount_cents, i64::MAX);
        assert_eq!(billable_quantity(Decimal::MAX, d("0.0000001")), i64::MAX);
        let t = totals([i64::MAX, i64::MAX, 5], &[]);
        assert_eq!((t.subtotal, t.total), (i64::MAX, i64::MAX));
        let pct = Coupon {
            title: "p".into(),
            discount: Discount::Percent(10_000),
        };
        assert_eq!(totals([i64::MAX], &[pct.clone(), pct]).total, 0);
    }

    #[test]
    fn a_bill_is_its_lines_plus_fee_minus_coupons() {
        let c = Catalog::builtin();
        let team = c.plan("team").unwrap();
        let quantities = std::collections::BTreeMap::from([
            ("lb_requests".to_string(), d("73400000")),           // 1150 ¢
            ("cdn_data_transfer".to_string(), d("501000000000")), // 4 ¢
            ("no_such_meter".to_string(), d("5")),
        ]);
        let coupon = Coupon {
            title: "10 %".into(),
            discount: Discount::Percent(1000),
        };
        let b = bill(&c, team, &quantities, Some(&Fixed::whole()), vec![coupon]);
        assert_eq!(b.usage.len(), 2);
        // (1150 + 4 + 30000) = 31154; 10 % = 3115.4 → 3115; total 28039.
        assert_eq!(
            b.totals,
            Totals {
                subtotal: 31154,
                discount: 3115,
                credits: 0,
                tax: 0,
                total: 28039
            }
        );
    }

    fn priced() -> Catalog {
        crate::catalog::parse("priced.toml", crate::catalog::tests::PRICED).unwrap()
    }

    /// The amount of `billable` requests under `plan` of [`priced`].
    fn amount(plan: &str, billable: i64) -> i64 {
        let c = priced();
        let p = c.plan(plan).unwrap();
        rate(
            c.meter("requests").unwrap(),
            p.prices.get("requests"),
            Decimal::from(billable),
        )
        .amount_cents
    }

    /// Worked by hand: 10 free, then units 1–100 at 50 ¢, 101–1000 at 40 ¢
    /// (+200 ¢ once reached), above at 30 ¢.
    #[test]
    fn graduated_tiers_at_their_edges() {
        assert_eq!(amount("graduated", 0), 0);
        assert_eq!(amount("graduated", 10), 0, "all free");
        assert_eq!(amount("graduated", 11), 50, "the first chargeable unit");
        assert_eq!(
            amount("graduated", 110),
            5000,
            "exactly on the first boundary: 100 × 50"
        );
        assert_eq!(amount("graduated", 111), 5240, "one past: 5000 + 40 + 200");
        assert_eq!(amount("graduated", 1010), 41200, "5000 + 900 × 40 + 200");
        assert_eq!(amount("graduated", 1011), 41230, "41200 + 30");
        let c = priced();
        let line = rate(
            c.meter("requests").unwrap(),
            c.plan("graduated").unwrap().prices.get("requests"),
            Decimal::from(1011),
        );
        assert_eq!(line.chargeable, Decimal::from(1001));
        let steps: Vec<(StepKind, Decimal, Decimal)> = line
            .steps
            .iter()
            .map(|s| (s.kind.clone(), s.quantity, s.amount_cents))
            .collect();
        let tier = |from: i64, to: Option<i64>| StepKind::Tier {
            from: Decimal::from(from),
            to: to.map(Decimal::from),
        };
        assert_eq!(
            steps,
            [
                (tier(1, Some(100)), d("100"), d("5000")),
                (tier(101, Some(1000)), d("900"), d("36200")),
                (tier(1001, None), d("1"), d("30")),
            ]
        );
    }

    /// Worked by hand: every unit at the tier the total falls in.
    #[test]
    fn volume_tiers_at_their_edges() {
        assert_eq!(amount("volume", 0), 0);
        assert_eq!(amount("volume", 1), 50);
        assert_eq!(
            amount("volume", 100),
            5000,
            "on the boundary: still the first tier"
        );
        assert_eq!(amount("volume", 101), 4240, "one past: 101 × 40 + 200");
        assert_eq!(amount("volume", 1000), 40200);
        assert_eq!(amount("volume", 1001), 30030, "1001 × 30, no flat amount");
        let c = priced();
        let line = rate(
            c.meter("requests").unwrap(),
            c.plan("volume").unwrap().prices.get("requests"),
            Decimal::from(101),
        );
        assert_eq!(line.steps.len(), 1);
        assert_eq!(
            line.steps[0].kind,
            StepKind::Tier {
                from: d("101"),
                to: Some(d("1000"))
            }
        );
    }

    /// Worked by hand: 1 ¢ per block of 10, a part counts whole.
    #[test]
    fn packages_round_up() {
        assert_eq!(amount("package", 0), 0);
        assert_eq!(amount("package", 1), 100);
        assert_eq!(amount("package", 10), 100);
        assert_eq!(amount("package", 11), 200);
        assert_eq!(amount("package", 20), 200);
        assert_eq!(amount("package", 21), 300);
    }

    #[test]
    fn fractional_tier_prices_round_once_per_line() {
        let model = PriceModel::Graduated(vec![
            crate::catalog::Tier {
                up_to: Some(d("1")),
                unit_price_cents: d("0.25"),
                flat_cents: Decimal::ZERO,
            },
            crate::catalog::Tier {
                up_to: None,
                unit_price_cents: d("0.25"),
                flat_cents: Decimal::ZERO,
            },
        ]);
        // 0.25 + 0.25 = 0.5 → 1 ¢ (rounding each step would give 0).
        let (exact, steps) = price_units(&model, d("2")).unwrap();
        assert_eq!((exact, round_cents(exact), steps.len()), (d("0.50"), 1, 2));
    }

    /// Worked by hand on the graduated plan: minimum 100.00, flat amount
    /// 10.00 per period.
    #[test]
    fn a_minimum_commitment_trues_up_and_counts_flat_amounts() {
        let c = priced();
        let plan = c.plan("graduated").unwrap();
        let q = |n: i64| std::collections::BTreeMap::from([("requests".to_string(), Decimal::from(n))]);
        // Usage 52.40 + flat 10.00 = 62.40; true-up 37.60 to 100.00.
        let b = bill(&c, plan, &q(111), Some(&Fixed::whole()), Vec::new());
        assert_eq!(b.meter_fees[0].amount_cents, 1000);
        assert_eq!(
            b.true_up,
            Some(TrueUp {
                minimum_cents: 10000,
                usage_cents: 6240,
                amount_cents: 3760
            })
        );
        assert_eq!(b.totals.total, 10000);
        // Above the minimum: no true-up.
        let b = bill(&c, plan, &q(1011), Some(&Fixed::whole()), Vec::new());
        assert_eq!((b.true_up, b.totals.total), (None, 41230 + 1000));
        // Half a period: minimum 50.00 and flat 5.00, both prorated.
        let half = Share {
            used_secs: 15,
            length_secs: 30,
        };
        let b = bill(&c, plan, &q(0), Some(&half.into()), Vec::new());
        assert_eq!(b.meter_fees[0].amount_cents, 500);
        assert_eq!(
            b.true_up.map(|t| (t.minimum_cents, t.amount_cents)),
            Some((5000, 4500))
        );
        assert_eq!(b.totals.total, 5000);
        // On trial (or a range that is no period): no fixed charges at all.
        let b = bill(&c, plan, &q(111), None, Vec::new());
        assert_eq!((b.meter_fees.len(), b.true_up, b.totals.total), (0, None, 5240));
        // Coupons discount the trued-up subtotal.
        let pct = Coupon {
            title: "half".into(),
            discount: Discount::Percent(5000),
        };
        let b = bill(&c, plan, &q(111), Some(&Fixed::whole()), vec![pct]);
        assert_eq!((b.totals.subtotal, b.totals.total), (10000, 5000));
    }

    proptest! {
        /// Graduated: the amount is the sum of its steps, the steps cover
        /// exactly the chargeable units, and more units never cost less.
        #[test]
        fn graduated_steps_add_up(a in 0i64..5_000, b in 0i64..5_000) {
            let c = priced();
            let meter = c.meter("requests").unwrap();
            let price = c.plan("graduated").unwrap().prices.get("requests");
            let (lo, hi) = (a.min(b), a.max(b));
            let line = rate(meter, price, Decimal::from(hi));
            let units: Decimal = line.steps.iter().map(|s| s.quantity).sum();
            prop_assert_eq!(units, line.chargeable);
            let exact: Decimal = line.steps.iter().map(|s| s.amount_cents).sum();
            prop_assert_eq!(round_cents(exact), line.amount_cents);
            prop_assert!(rate(meter, price, Decimal::from(lo)).amount_cents <= line.amount_cents);
        }

        /// Package: enough packages for every unit, and one fewer would not do.
        #[test]
        fn packages_cover_every_unit(n in 1i64..100_000) {
            let c = priced();
            let line = rate(c.meter("requests").unwrap(), c.plan("package").unwrap().prices.get("requests"), Decimal::from(n));
            let packages = line.steps[0].quantity;
            prop_assert!(packages * d("10") >= Decimal::from(n));
            prop_assert!((packages - Decimal::ONE) * d("10") < Decimal::from(n));
        }

        /// Whatever the usage, a bill with a minimum is never below it, and
        /// its total is its lines.
        #[test]
        fn a_bill_is_never_below_its_minimum(n in 0i64..2_000, used in 1i64..=30) {
            let c = priced();
            let plan = c.plan("graduated").unwrap();
            let share = Share { used_secs: used, length_secs: 30 };
            let q = std::collections::BTreeMap::from([("requests".to_string(), Decimal::from(n))]);
            let b = bill(&c, plan, &q, Some(&share.into()), Vec::new());
            prop_assert!(b.totals.subtotal >= share.of(plan.minimum_cents));
            prop_assert_eq!(b.totals.subtotal, b.line_amounts().sum::<i64>());
        }
    }

    /// Worked by hand: WAAP costs 31.00 per period; 10 of 31 days is 10.00.
    /// It does not count towards the minimum commitment, and a plan that
    /// includes it charges nothing for it.
    #[test]
    fn addons_are_charged_for_the_time_subscribed() {
        let c = priced();
        let days = |n: i64| n * 86_400;
        let fixed = Fixed {
            share: Share {
                used_secs: days(31),
                length_secs: days(31),
            },
            addons: vec![("f5xc_waap_standard".to_string(), days(10))],
        };
        let none = std::collections::BTreeMap::new();
        let b = bill(&c, c.plan("graduated").unwrap(), &none, Some(&fixed), Vec::new());
        assert_eq!(
            b.addon_fees,
            [AddonFee {
                addon: "f5xc_waap_standard".into(),
                full_cents: 3100,
                used_secs: days(10),
                length_secs: days(31),
                amount_cents: 1000
            }]
        );
        // Flat amount 10.00 + true-up 90.00 to the minimum + add-on 10.00.
        assert_eq!(b.true_up.map(|t| t.amount_cents), Some(9000));
        assert_eq!(b.totals.subtotal, 11000);
        let included = bill(&c, c.plan("per-unit").unwrap(), &none, Some(&fixed), Vec::new());
        assert!(included.addon_fees.is_empty());
        // On trial (no fixed charges), nothing.
        assert!(
            bill(&c, c.plan("graduated").unwrap(), &none, None, Vec::new())
                .addon_fees
                .is_empty()
        );
    }

    /// Worked by hand: 19 % of 99.99 = 18.9981 → 19.00; 1.25 % of 25.00 =
    /// 0.3125 → 0.31; each rate rounded once; none when exempt or
    /// reverse-charged, which say why.
    #[test]
    fn taxes_round_once_per_rate_on_the_total_after_discounts() {
        let ctx = |rates: &[(&str, &str)], treatment| TaxContext {
            rates: rates.iter().map(|(n, p)| ((*n).to_owned(), d(p))).collect(),
            treatment,
        };
        let de = ctx(&[("VAT", "19")], TaxTreatment::Standard);
        assert_eq!(de.lines(9999)[0].amount_cents, 1900);
        let ca = ctx(&[("State", "6"), ("County", "1.25")], TaxTreatment::Standard);
        let amounts: Vec<i64> = ca.lines(2500).iter().map(|l| l.amount_cents).collect();
        assert_eq!(amounts, [150, 31]);
        assert!(ctx(&[("VAT", "19")], TaxTreatment::Exempt).lines(2500).is_empty());
        let rc = ctx(
            &[("VAT", "19")],
            TaxTreatment::ReverseCharge { tax_id: "DE1".into() },
        );
        assert!(rc.lines(2500).is_empty());
        assert!(rc.note().unwrap().contains("DE1"));
        // After a 10 % coupon: 19 % of 90.00 = 17.10; total 107.10.
        let c = Catalog::builtin();
        let plan = c.plan("individual").unwrap();
        let coupon = Coupon {
            title: "10 %".into(),
            discount: Discount::Percent(1000),
        };
        let mut p = plan.clone();
        p.flat_price_cents = 10000;
        let b = bill(&c, &p, &Default::default(), Some(&Fixed::whole()), vec![coupon]).taxed(de);
        assert_eq!(
            b.totals,
            Totals {
                subtotal: 10000,
                discount: 1000,
                credits: 0,
                tax: 1710,
                total: 10710
            }
        );
    }

    proptest! {
        /// Tax depends on the taxable total and the rates, never on how the
        /// lines are ordered or split.
        #[test]
        fn tax_never_changes_with_line_order(lines in proptest::collection::vec(0i64..1_000_000, 1..12), pct in 0u32..3000) {
            let ctx = TaxContext { rates: vec![("T".into(), Decimal::new(pct.into(), 2))], treatment: TaxTreatment::Standard };
            let forward = totals(lines.iter().copied(), &[]);
            let mut reversed_lines = lines.clone();
            reversed_lines.reverse();
            let backward = totals(reversed_lines.iter().copied(), &[]);
            let a = with_tax(forward, &ctx.lines(forward.total));
            let b = with_tax(backward, &ctx.lines(backward.total));
            prop_assert_eq!(a, b);
            prop_assert_eq!(a.total, a.subtotal - a.discount + a.tax);
        }

        #[test]
        fn totals_are_sums_of_lines_and_never_negative(
            lines in proptest::collection::vec(0i64..10_000_000, 0..20),
            pcts in proptest::collection::vec(0i64..20_000, 0..3),
            fixeds in proptest::collection::vec(-100i64..5_000_000, 0..3),
        ) {
            let coupons: Vec<Coupon> = pcts.iter().map(|p| Coupon { title: String::new(), discount: Discount::Percent(*p) })
                .chain(fixeds.iter().map(|f| Coupon { title: String::new(), discount: Discount::Fixed(*f) }))
                .collect();
            let t = totals(lines.iter().copied(), &coupons);
            prop_assert_eq!(t.subtotal, lines.iter().sum::<i64>());
            prop_assert!(t.total >= 0 && t.discount >= 0);
            prop_assert_eq!(t.total, t.subtotal - t.discount);
        }

        #[test]
        fn amounts_grow_with_quantity(a in 0u64..10_000_000_000, b in 0u64..10_000_000_000) {
            let c = Catalog::builtin();
            let meter = c.meter("lb_requests").unwrap();
            assert_eq!(meter.aggregation, Aggregation::Sum);
            let price = c.plan("individual").unwrap().prices.get("lb_requests");
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(rate(meter, price, Decimal::from(lo)).amount_cents <= rate(meter, price, Decimal::from(hi)).amount_cents);
        }
    }
}
