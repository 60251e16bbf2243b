//! Rating: from quantities to money. Quantities and unit prices are exact
//! decimals; amounts are integer cents; each line is rounded once, half up;
//! totals are sums of rounded lines; coupons never make a total negative.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::catalog::{Meter, Price};

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
    pub amount_cents: i64,
}

/// Rates `quantity` of a meter under a plan's price (no price: free).
pub fn rate(meter: &Meter, price: Option<&Price>, quantity: Decimal) -> RatedLine {
    let quantity_billable = billable_quantity(quantity, meter.divisor);
    let amount_cents = match price {
        None => 0,
        Some(p) => {
            let chargeable = (Decimal::from(quantity_billable) - p.free_allowance).max(Decimal::ZERO);
            chargeable
                .checked_mul(p.unit_price_cents)
                .map_or(i64::MAX, round_cents)
        }
    };
    RatedLine {
        metric_label: meter.metric_label.clone(),
        quantity,
        quantity_billable,
        amount_cents,
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

/// A bill's totals: the subtotal of its lines, the discount, the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
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
        total: subtotal - discount,
    }
}

/// A bill: rated usage lines, the plan's flat fee, coupons, totals. The one
/// computation behind `current_usage`, `monthly_usage` and invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub usage: Vec<RatedLine>,
    /// The flat fee line, if the plan has one for this period.
    pub fee_cents: Option<i64>,
    pub coupons: Vec<Coupon>,
    pub totals: Totals,
}

/// Bills metric quantities under `plan` (meters of `catalog`), with the
/// period's flat fee (already prorated; `None` for none) and coupons.
/// Metrics the catalog has no meter for are ignored.
pub fn bill(
    catalog: &crate::catalog::Catalog,
    plan: &crate::catalog::Plan,
    quantities: &std::collections::BTreeMap<String, Decimal>,
    fee_cents: Option<i64>,
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
    let totals = totals(usage.iter().map(|l| l.amount_cents).chain(fee_cents), &coupons);
    Bill {
        usage,
        fee_cents,
        coupons,
        totals,
    }
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
                total: 8765
            }
        );
        assert_eq!(
            totals([500], &[fixed(800)]),
            Totals {
                subtotal: 500,
                discount: 500,
                total: 0
            }
        );
        // 10 % of 999 = 99.9 → 100, then 50 fixed.
        assert_eq!(
            totals([999], &[fixed(50), pct(1000)]),
            Totals {
                subtotal: 999,
                discount: 150,
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
        let b = bill(&c, team, &quantities, Some(30000), vec![coupon]);
        assert_eq!(b.usage.len(), 2);
        // (1150 + 4 + 30000) = 31154; 10 % = 3115.4 → 3115; total 28039.
        assert_eq!(
            b.totals,
            Totals {
                subtotal: 31154,
                discount: 3115,
                total: 28039
            }
        );
    }

    proptest! {
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
