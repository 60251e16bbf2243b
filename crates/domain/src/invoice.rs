//! Invoices: one per billing period of a subscription. While the period is
//! open (and during the grace after it) the invoice is PENDING and follows
//! usage; then it is finalized (ISSUED) and never changes again, and charged.
//! Usage that reaches an already finalized period is billed as an adjustment
//! line on the next invoice.

use std::fmt;

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::catalog::{Catalog, Issuer, ModelKind, Plan, Price};
use crate::rating::{Bill, Coupon, Discount, Step, TaxLine, Totals};
use crate::subscription::Period;

/// The contract's `invoiceInvoiceStatus` (without `STATUS_UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// The period is open or in its grace: the amount still moves.
    Pending,
    /// Finalized, not (yet) paid.
    Issued,
    Paid,
    /// Every charge attempt failed.
    Overdue,
    Refunded,
    Cancelled,
}

impl InvoiceStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Issued => "ISSUED",
            Self::Paid => "PAID",
            Self::Overdue => "OVERDUE",
            Self::Refunded => "REFUNDED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Issued,
            Self::Paid,
            Self::Overdue,
            Self::Refunded,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// What people read (PDF, CLI).
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Pending (period open)",
            Self::Issued => "Issued, awaiting payment",
            Self::Paid => "Paid",
            Self::Overdue => "Overdue",
            Self::Refunded => "Refunded",
            Self::Cancelled => "Cancelled",
        }
    }

    /// The states from which the operator may refund an invoice.
    pub const REFUNDABLE: &[Self] = &[Self::Paid];
    /// The states from which the operator may cancel an invoice (not once paid).
    pub const CANCELLABLE: &[Self] = &[Self::Issued, Self::Overdue];
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a line bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// The plan's flat fee (prorated when the period was cut short).
    Fee,
    /// Rated usage of one meter.
    Usage,
    /// Usage that reached an earlier, already finalized invoice's period.
    Adjustment,
    /// A meter's flat amount for the period (prorated like the fee).
    MeterFee,
    /// The true-up to the plan's minimum commitment.
    Minimum,
    /// An add-on's price for the period (prorated by the time subscribed).
    Addon,
}

impl LineKind {
    /// The name the API and stored invoices use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fee => "fee",
            Self::Usage => "usage",
            Self::Adjustment => "adjustment",
            Self::MeterFee => "meter_fee",
            Self::Minimum => "minimum",
            Self::Addon => "addon",
        }
    }
}

/// How a usage line under a tiered or package price came to its amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub model: ModelKind,
    pub steps: Vec<Step>,
}

/// One line of an invoice. `amount_cents` is what the line adds to the
/// subtotal; the other fields explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub kind: LineKind,
    pub description: String,
    /// The meter of a usage line.
    pub metric_label: Option<String>,
    /// Billable quantity (usage), 1 (fee), or none (adjustment).
    pub quantity: Decimal,
    /// Billable unit ("1M requests", "GB", "month").
    pub unit: String,
    /// Exact unit price in cents; 0 on a usage line priced by tiers or
    /// packages (`pricing` says how).
    pub unit_price_cents: Decimal,
    /// Free billable units deducted before pricing (usage lines).
    pub free_quantity: Decimal,
    pub amount_cents: i64,
    /// The invoice an adjustment corrects.
    pub adjusts: Option<String>,
    /// The steps of a tiered or package price (`None` for a per-unit one).
    pub pricing: Option<Pricing>,
}

/// An invoice, pending or finalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub name: crate::ids::InvoiceName,
    pub status: InvoiceStatus,
    pub subscription_id: String,
    pub period_index: u32,
    pub period_start: Timestamp,
    /// The actual end (earlier than nominal when a plan change cut it short).
    pub period_end: Timestamp,
    pub plan: String,
    pub plan_title: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub coupons: Vec<AppliedDiscount>,
    /// Taxes on the total after discounts, one per rate.
    pub taxes: Vec<TaxLine>,
    /// Why no tax is charged (exempt, reverse charge), printed on it.
    pub tax_note: Option<String>,
    /// The prepaid credits that paid part of it, applied when it was
    /// finalized (none while pending).
    pub credits: Vec<AppliedCredit>,
    pub totals: Totals,
    /// When it was finalized.
    pub issued_at: Option<Timestamp>,
    /// Who issued it, fixed when it was finalized; `None` while pending and
    /// for invoices finalized before issuers were recorded (both show the
    /// latest catalog's).
    pub issuer: Option<Issuer>,
}

impl Invoice {
    /// Whether the invoice may still change (the contract's `active`).
    pub fn active(&self) -> bool {
        self.status == InvoiceStatus::Pending
    }

    /// Applies prepaid credits (at finalization): they pay part of the
    /// subtotal after discounts, and taxes are computed again on what
    /// remains ([`crate::rating::with_credits`]). `credits` add up to at
    /// most that amount (what [`crate::credits::allocate`] gives).
    pub fn apply_credits(&mut self, credits: Vec<AppliedCredit>) {
        let sum = credits.iter().fold(0i64, |a, c| a.saturating_add(c.amount_cents));
        let before = Totals {
            credits: 0,
            ..self.totals
        };
        (self.totals, self.taxes) = crate::rating::with_credits(before, &self.taxes, sum);
        self.credits = credits;
    }

    /// The invariant every invoice keeps: the total is the lines' sum minus
    /// the discount and the credits plus the taxes, and never negative.
    pub fn check(&self) -> Result<(), String> {
        let subtotal = self
            .lines
            .iter()
            .fold(0i64, |a, l| a.saturating_add(l.amount_cents));
        let t = self.totals;
        if subtotal != t.subtotal {
            return Err(format!(
                "{}: lines add up to {subtotal}, subtotal says {}",
                self.name, t.subtotal
            ));
        }
        let tax = self
            .taxes
            .iter()
            .fold(0i64, |a, l| a.saturating_add(l.amount_cents));
        if tax != t.tax || tax < 0 {
            return Err(format!(
                "{}: taxes add up to {tax}, tax says {}",
                self.name, t.tax
            ));
        }
        let credits = self
            .credits
            .iter()
            .fold(0i64, |a, c| a.saturating_add(c.amount_cents));
        if credits != t.credits
            || t.credits < 0
            || t.credits > t.after_discount().max(0)
            || self.credits.iter().any(|c| c.amount_cents <= 0)
        {
            return Err(format!(
                "{}: credits add up to {credits}, credits say {} (at most {} after discounts)",
                self.name,
                t.credits,
                t.after_discount()
            ));
        }
        if t.total != t.subtotal - t.discount - t.credits + t.tax || t.total < 0 || t.discount < 0 {
            return Err(format!(
                "{}: total {} is not subtotal {} minus discount {} minus credits {} plus tax {}",
                self.name, t.total, t.subtotal, t.discount, t.credits, t.tax
            ));
        }
        Ok(())
    }
}

/// Prepaid credits as they paid one invoice: the grant, what it said, how
/// much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCredit {
    pub grant: String,
    /// The grant's reason, as printed on the invoice.
    pub description: String,
    pub amount_cents: i64,
}

/// A coupon as it discounted one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDiscount {
    pub title: String,
    /// "10 %" or "5.00 USD".
    pub terms: String,
}

/// The stable name of a tenant's `ordinal`-th invoice (1-based, counted over
/// all its billing periods in time order), e.g. `inv-2026-11-0001`.
pub fn invoice_name(period_start: Timestamp, ordinal: u32) -> String {
    let d = period_start.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    format!("inv-{:04}-{:02}-{ordinal:04}", d.year(), d.month())
}

/// A meter's price for people, in `currency` per `unit` (the meter's
/// billable unit): "0.60 USD per million requests", "graduated: 0.50 USD per
/// GB for units 1 to 100, 0.40 USD per GB above 100", "1.00 USD per 10 GB (a
/// part counts whole)", with "; plus 10.00 USD per period" for a flat amount.
pub fn describe_price(price: &Price, currency: &str, unit: &str) -> String {
    use crate::catalog::PriceModel;
    let tiers = |tiers: &[crate::catalog::Tier]| {
        let mut below = Decimal::ZERO;
        tiers
            .iter()
            .map(|t| {
                let range = match t.up_to {
                    Some(u) => format!("for units {} to {}", below + Decimal::ONE, u.normalize()),
                    None if below.is_zero() => "for every unit".to_owned(),
                    None => format!("above {}", below.normalize()),
                };
                below = t.up_to.unwrap_or(below);
                let flat = if t.flat_cents.is_zero() {
                    String::new()
                } else {
                    format!(
                        " + {} {currency}",
                        crate::currency::format_price(t.flat_cents, currency)
                    )
                };
                format!(
                    "{} {currency} per {unit}{flat} {range}",
                    crate::currency::format_price(t.unit_price_cents, currency)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = match &price.model {
        PriceModel::PerUnit { unit_price_cents } => {
            format!(
                "{} {currency} per {unit}",
                crate::currency::format_price(*unit_price_cents, currency)
            )
        }
        PriceModel::Graduated(t) => format!("graduated: {}", tiers(t)),
        PriceModel::Volume(t) => format!("volume (every unit at the tier the total reaches): {}", tiers(t)),
        PriceModel::Package { size, price_cents } => format!(
            "{} {currency} per {} {unit} (a part counts whole)",
            crate::currency::format_price(*price_cents, currency),
            size.normalize()
        ),
    };
    if price.flat_cents > 0 {
        text.push_str(&format!(
            "; plus {} {currency} per period",
            crate::currency::format_minor(price.flat_cents, currency)
        ));
    }
    text
}

/// One step of a tiered or package line for people: "Units 1 to 100: 100 ×
/// 0.50 USD = 50.00 USD", "Packages of 10: 2 × 1.00 USD = 2.00 USD".
pub fn describe_step(step: &Step, currency: &str) -> String {
    let flat = if step.flat_cents.is_zero() {
        String::new()
    } else {
        format!(
            " + {} {currency}",
            crate::currency::format_price(step.flat_cents, currency)
        )
    };
    let times = format!(
        "{} × {} {currency}{flat} = {} {currency}",
        step.quantity.normalize(),
        crate::currency::format_price(step.unit_price_cents, currency),
        crate::currency::format_price(step.amount_cents, currency)
    );
    match &step.kind {
        crate::rating::StepKind::Tier { from, to: Some(to) } => {
            format!("Units {} to {}: {times}", from.normalize(), to.normalize())
        }
        crate::rating::StepKind::Tier { from, to: None } => {
            format!("Units {} and above: {times}", from.normalize())
        }
        crate::rating::StepKind::Package { size } => {
            format!("Packages of {}: {times}", size.normalize())
        }
    }
}

fn terms(discount: Discount, currency: &str) -> String {
    match discount {
        Discount::Percent(bp) => {
            let pct = (Decimal::new(bp, 2)).normalize();
            format!("{pct} %")
        }
        Discount::Fixed(cents) => crate::currency::money(cents, currency),
    }
}

/// A correction for usage that reached a finalized invoice's period after it
/// was finalized: what that period's bill says now, minus what was billed
/// for it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The finalized invoice.
    pub invoice: String,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub amount_cents: i64,
}

/// Builds an invoice from a period's bill and the corrections of earlier
/// invoices. Lines: the flat fee (if any), one per meter with usage or a
/// price, then adjustments; coupons discount the whole subtotal.
#[allow(clippy::too_many_arguments)]
pub fn build(
    name: String,
    status: InvoiceStatus,
    subscription_id: &str,
    catalog: &Catalog,
    plan: &Plan,
    period: &Period,
    bill: &Bill,
    corrections: &[Correction],
) -> Invoice {
    let mut lines = Vec::new();
    if let Some(fee) = bill.fee_cents {
        let description = if period.is_prorated() {
            let used = period.actual_end.duration_since(period.start).as_secs();
            let length = period.end.duration_since(period.start).as_secs();
            format!(
                "{} plan, prorated: {} of {} days",
                plan.title,
                format_days(used),
                format_days(length)
            )
        } else {
            format!("{} plan", plan.title)
        };
        lines.push(InvoiceLine {
            kind: LineKind::Fee,
            description,
            metric_label: None,
            quantity: Decimal::ONE,
            unit: "period".into(),
            unit_price_cents: Decimal::from(plan.flat_price_cents),
            free_quantity: Decimal::ZERO,
            amount_cents: fee,
            adjusts: None,
            pricing: None,
        });
    }
    for fee in &bill.addon_fees {
        let name = catalog
            .addon(&fee.addon)
            .map_or(fee.addon.as_str(), |a| a.display_name.as_str());
        let description = if fee.used_secs >= fee.length_secs {
            format!("{name} add-on")
        } else {
            format!(
                "{name} add-on, prorated: {} of {} days",
                format_days(fee.used_secs),
                format_days(fee.length_secs)
            )
        };
        lines.push(per_period(
            LineKind::Addon,
            description,
            None,
            fee.full_cents,
            fee.amount_cents,
        ));
    }
    for fee in &bill.meter_fees {
        let Some(meter) = catalog.meter(&fee.metric_label) else {
            continue;
        };
        let description = if fee.amount_cents == fee.full_cents {
            format!("{}: flat amount", meter.usage_type)
        } else {
            format!("{}: flat amount, prorated", meter.usage_type)
        };
        lines.push(per_period(
            LineKind::MeterFee,
            description,
            Some(fee.metric_label.clone()),
            fee.full_cents,
            fee.amount_cents,
        ));
    }
    for line in &bill.usage {
        let Some(meter) = catalog.meter(&line.metric_label) else {
            continue;
        };
        let price = plan.prices.get(&line.metric_label);
        if line.quantity.is_zero() && line.amount_cents == 0 {
            continue;
        }
        let billable = Decimal::from(line.quantity_billable);
        let pricing = price.filter(|p| p.unit_price_cents().is_none()).map(|p| Pricing {
            model: p.model.kind(),
            steps: line.steps.clone(),
        });
        lines.push(InvoiceLine {
            kind: LineKind::Usage,
            description: meter.usage_type.clone(),
            metric_label: Some(line.metric_label.clone()),
            quantity: billable,
            unit: meter.unit_billable.clone(),
            unit_price_cents: price.and_then(Price::unit_price_cents).unwrap_or_default(),
            free_quantity: price.map_or(Decimal::ZERO, |p| p.free_allowance.min(billable)),
            amount_cents: line.amount_cents,
            adjusts: None,
            pricing,
        });
    }
    if let Some(t) = bill.true_up {
        let description = format!(
            "Minimum commitment of {} {}: metered charges came to {}",
            crate::currency::format_minor(t.minimum_cents, &catalog.currency),
            catalog.currency,
            crate::currency::format_minor(t.usage_cents, &catalog.currency)
        );
        lines.push(per_period(
            LineKind::Minimum,
            description,
            None,
            t.amount_cents,
            t.amount_cents,
        ));
    }
    for c in corrections.iter().filter(|c| c.amount_cents != 0) {
        lines.push(InvoiceLine {
            kind: LineKind::Adjustment,
            description: format!(
                "Adjustment: usage reported late for {} ({} to {})",
                c.invoice,
                c.period_start.strftime("%Y-%m-%d"),
                c.period_end.strftime("%Y-%m-%d")
            ),
            metric_label: None,
            quantity: Decimal::ONE,
            unit: "adjustment".into(),
            unit_price_cents: Decimal::from(c.amount_cents),
            free_quantity: Decimal::ZERO,
            amount_cents: c.amount_cents,
            adjusts: Some(c.invoice.clone()),
            pricing: None,
        });
    }
    let untaxed = crate::rating::totals(lines.iter().map(|l| l.amount_cents), &bill.coupons);
    let taxes = bill.tax.lines(untaxed.subtotal - untaxed.discount);
    let totals = crate::rating::with_tax(untaxed, &taxes);
    Invoice {
        name: name.into(),
        status,
        subscription_id: subscription_id.to_owned(),
        period_index: period.index,
        period_start: period.start,
        period_end: period.actual_end,
        plan: plan.name.clone(),
        plan_title: plan.title.clone(),
        currency: catalog.currency.clone(),
        lines,
        coupons: bill
            .coupons
            .iter()
            .map(|c: &Coupon| AppliedDiscount {
                title: c.title.clone(),
                terms: terms(c.discount, &catalog.currency),
            })
            .collect(),
        taxes,
        tax_note: bill.tax.note(),
        credits: Vec::new(),
        totals,
        issued_at: None,
        issuer: None,
    }
}

/// A line charged once per period: `full_cents` for a whole one,
/// `amount_cents` for this one.
fn per_period(
    kind: LineKind,
    description: String,
    metric_label: Option<String>,
    full_cents: i64,
    amount_cents: i64,
) -> InvoiceLine {
    InvoiceLine {
        kind,
        description,
        metric_label,
        quantity: Decimal::ONE,
        unit: "period".into(),
        unit_price_cents: Decimal::from(full_cents),
        free_quantity: Decimal::ZERO,
        amount_cents,
        adjusts: None,
        pricing: None,
    }
}

fn format_days(secs: i64) -> String {
    let days = Decimal::from(secs) / Decimal::from(86_400);
    days.round_dp(1).normalize().to_string()
}

/// When to try charging again after failed attempt number `attempt`
/// (1-based), given the delays after each failure; `None` after the last.
pub fn next_attempt(
    issued_at: Timestamp,
    attempt: u32,
    retry_delays: &[jiff::SignedDuration],
) -> Option<Timestamp> {
    let delay = retry_delays.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    // A delay past the end of time is never due.
    Some(issued_at.saturating_add(*delay).unwrap_or(Timestamp::MAX))
}

/// The status an invoice being charged moves to once an attempt is settled:
/// PAID after a successful one (its charging ends); otherwise none yet, the
/// round goes on with the next payment method.
pub fn status_after_attempt(succeeded: bool) -> Option<InvoiceStatus> {
    succeeded.then_some(InvoiceStatus::Paid)
}

/// The status of an invoice after a charge round in which no attempt
/// succeeded: ISSUED while another round is scheduled (`next`, from
/// [`next_attempt`]), else OVERDUE: no more automatic charges.
pub fn status_after_round(next: Option<Timestamp>) -> InvoiceStatus {
    match next {
        Some(_) => InvoiceStatus::Issued,
        None => InvoiceStatus::Overdue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_stable_and_sort_by_month_then_ordinal() {
        assert_eq!(invoice_name(t("2026-11-20T10:30:00Z"), 1), "inv-2026-11-0001");
        assert_eq!(invoice_name(t("2027-02-01T00:00:00Z"), 14), "inv-2027-02-0014");
        assert!(crate::names::Name::parse("name", &invoice_name(t("2026-01-01T00:00:00Z"), 3)).is_ok());
    }

    #[test]
    fn statuses_round_trip_and_map_to_the_contract() {
        for s in [
            InvoiceStatus::Pending,
            InvoiceStatus::Issued,
            InvoiceStatus::Paid,
            InvoiceStatus::Overdue,
            InvoiceStatus::Refunded,
            InvoiceStatus::Cancelled,
        ] {
            assert_eq!(InvoiceStatus::parse(s.as_str()), Some(s));
        }
        assert!(
            InvoiceStatus::REFUNDABLE.contains(&InvoiceStatus::Paid)
                && !InvoiceStatus::CANCELLABLE.contains(&InvoiceStatus::Paid)
        );
        assert!(InvoiceStatus::CANCELLABLE.contains(&InvoiceStatus::Overdue));
    }

    #[test]
    fn an_invoice_has_fee_usage_and_adjustment_lines_that_add_up() {
        let c = Catalog::builtin();
        let team = c.plan("team").unwrap();
        let period = Period {
            index: 2,
            start: t("2026-12-01T00:00:00Z"),
            end: t("2027-01-01T00:00:00Z"),
            actual_end: t("2026-12-16T12:00:00Z"),
            trial: false,
        };
        let quantities = std::collections::BTreeMap::from([
            ("lb_requests".to_string(), Decimal::from(73_400_000)),
            ("cdn_data_transfer".to_string(), Decimal::ZERO),
        ]);
        let share = Some(rating::Share {
            used_secs: 86_400 * 31 / 2,
            length_secs: 86_400 * 31,
        });
        let coupons = vec![Coupon {
            title: "Welcome".into(),
            discount: Discount::Percent(1000),
        }];
        let bill = rating::bill(
            &c,
            team,
            &quantities,
            share.map(rating::Fixed::from).as_ref(),
            coupons,
        );
        let corrections = [Correction {
            invoice: "inv-2026-11-0002".into(),
            period_start: t("2026-11-01T00:00:00Z"),
            period_end: t("2026-12-01T00:00:00Z"),
            amount_cents: 120,
        }];
        let inv = build(
            "inv-2026-12-0003".into(),
            InvoiceStatus::Issued,
            "sub-1",
            &c,
            team,
            &period,
            &bill,
            &corrections,
        );
        inv.check().unwrap();
        let kinds: Vec<LineKind> = inv.lines.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, [LineKind::Fee, LineKind::Usage, LineKind::Adjustment]);
        assert!(
            inv.lines[0].description.contains("prorated: 15.5 of 31 days"),
            "{}",
            inv.lines[0].description
        );
        assert_eq!(inv.lines[1].quantity, Decimal::from(73));
        assert_eq!(inv.lines[2].adjusts.as_deref(), Some("inv-2026-11-0002"));
        assert_eq!(inv.coupons[0].terms, "10 %");
        assert_eq!(
            inv.totals.subtotal,
            inv.lines.iter().map(|l| l.amount_cents).sum::<i64>()
        );
    }

    /// Golden case, worked by hand: the pro plan of the multi-currency test
    /// catalog in yen (JPY has no minor unit: every amount is whole yen) over
    /// a 31-day period, 1239 requests, the WAAP add-on for 10 days, 10 % off.
    /// - requests: 1239 billable, 5 free, 1234 chargeable; units 1–1000 at
    ///   0.5 = 500, units 1001–1234: 234 × 0.25 + 100 = 158.5; 658.5 → 659.
    /// - add-on: 4500 × 10 / 31 = 1451.61… → 1452.
    /// - minimum 15000, usage 659: a true-up of 14341.
    /// - subtotal 3800 + 1452 + 659 + 14341 = 20252; 10 % = 2025.2 → 2025;
    ///   total 18227.
    #[test]
    fn golden_a_yen_invoice_is_whole_yen_rounded_once_per_line() {
        let multi = crate::catalog::parse("multi.toml", crate::catalog::tests::MULTI).unwrap();
        let yen = multi.in_currency("JPY").unwrap();
        let pro = yen.plan("pro").unwrap();
        let period = Period {
            index: 0,
            start: t("2027-01-01T00:00:00Z"),
            end: t("2027-02-01T00:00:00Z"),
            actual_end: t("2027-02-01T00:00:00Z"),
            trial: false,
        };
        let quantities = std::collections::BTreeMap::from([("requests".to_string(), Decimal::from(1239))]);
        let fixed = rating::Fixed {
            share: rating::Share {
                used_secs: 31 * 86_400,
                length_secs: 31 * 86_400,
            },
            addons: vec![("f5xc_waap_standard".into(), 10 * 86_400)],
        };
        let coupons = vec![Coupon {
            title: "Welcome".into(),
            discount: Discount::Percent(1000),
        }];
        let bill = rating::bill(&yen, pro, &quantities, Some(&fixed), coupons);
        let inv = build(
            "inv-2027-01-0001".into(),
            InvoiceStatus::Issued,
            "sub-1",
            &yen,
            pro,
            &period,
            &bill,
            &[],
        );
        inv.check().unwrap();
        assert_eq!(inv.currency, "JPY");
        let lines: Vec<(&str, i64)> = inv
            .lines
            .iter()
            .map(|l| (l.description.as_str(), l.amount_cents))
            .collect();
        assert_eq!(
            lines,
            [
                ("Pro plan", 3800),
                ("WAAP add-on, prorated: 10 of 31 days", 1452),
                ("Requests", 659),
                (
                    "Minimum commitment of 15000 JPY: metered charges came to 659",
                    14341
                ),
            ]
        );
        let steps: Vec<String> = inv.lines[2]
            .pricing
            .iter()
            .flat_map(|p| &p.steps)
            .map(|s| describe_step(s, &inv.currency))
            .collect();
        assert_eq!(
            steps,
            [
                "Units 1 to 1000: 1000 × 0.5 JPY = 500 JPY",
                "Units 1001 and above: 234 × 0.25 JPY + 100 JPY = 158.5 JPY"
            ]
        );
        assert_eq!(
            (inv.totals.subtotal, inv.totals.discount, inv.totals.total),
            (20252, 2025, 18227)
        );
        assert_eq!(
            describe_price(&pro.prices["requests"], &yen.currency, "request"),
            "graduated: 0.5 JPY per request for units 1 to 1000, 0.25 JPY per request + 100 JPY above 1000"
        );
        // The same usage in the catalog's first currency, for contrast:
        // 1234 × 60 ¢ = 740.40 USD, the minimum passed.
        let usd = multi.plan("pro").unwrap();
        let bill = rating::bill(
            &multi,
            usd,
            &quantities,
            Some(&rating::Fixed::whole()),
            Vec::new(),
        );
        assert_eq!(bill.totals.total, 2500 + 74_040);
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let d = |h| jiff::SignedDuration::from_hours(h);
        let schedule = [d(24), d(72)];
        let at = t("2026-12-01T00:00:00Z");
        assert_eq!(next_attempt(at, 1, &schedule), Some(t("2026-12-02T00:00:00Z")));
        assert_eq!(next_attempt(at, 2, &schedule), Some(t("2026-12-04T00:00:00Z")));
        assert_eq!(next_attempt(at, 3, &schedule), None);
        assert_eq!(next_attempt(at, 0, &schedule), None);
        // A delay past the end of time is never due (not a panic).
        let forever = [jiff::SignedDuration::MAX];
        assert_eq!(next_attempt(at, 1, &forever), Some(Timestamp::MAX));
    }

    #[test]
    fn a_success_pays_and_a_round_without_one_waits_for_the_next_or_is_overdue() {
        assert_eq!(status_after_attempt(true), Some(InvoiceStatus::Paid));
        assert_eq!(status_after_attempt(false), None);
        let schedule = [jiff::SignedDuration::from_hours(24)];
        let at = t("2026-12-01T00:00:00Z");
        assert_eq!(
            status_after_round(next_attempt(at, 1, &schedule)),
            InvoiceStatus::Issued
        );
        assert_eq!(
            status_after_round(next_attempt(at, 2, &schedule)),
            InvoiceStatus::Overdue
        );
    }
}
