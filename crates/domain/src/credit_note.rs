//! Credit notes: what a refund gives back of a paid invoice, numbered per
//! tenant.
//!
//! Every refund, whole or partial, is one credit note named
//! `cn-YYYY-MM-NNNN` (the month it was made, NNNN the tenant's next number,
//! never repeated) and sent to the payment provider under its own
//! idempotency key, `refund/<charge key>/<credit note>`. What it lists is
//! decided here, from the invoice and the amount ([`lines`]): a credit note
//! for the whole invoice repeats the invoice's lines (and its discount), any
//! other one is a single line "Partial refund of invoice X". Its lines always
//! add up to its amount.

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::Error;
use crate::invoice::Invoice;

/// The most characters a refund's reason may have (it is printed on the
/// credit note).
pub const MAX_REASON: usize = 500;

/// One line of a credit note: what is credited, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteLine {
    pub description: String,
    /// Exact decimal.
    pub quantity: Decimal,
    /// "period", "million requests", "refund", …
    pub unit: String,
    /// Exact unit price in cents.
    pub unit_price_cents: Decimal,
    /// What the line credits, in cents.
    pub amount_cents: i64,
}

/// The name of a tenant's `number`-th credit note (1-based), made at
/// `created_at`, e.g. `cn-2027-02-0001`.
pub fn credit_note_name(created_at: Timestamp, number: u64) -> String {
    let d = created_at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    format!("cn-{:04}-{:02}-{number:04}", d.year(), d.month())
}

/// The idempotency key of a credit note's refund of the charge attempt
/// `charge_key`: one key per credit note, so a refund interrupted after the
/// provider call is resumed under the same key and refunds once, and the next
/// credit note of the same charge is a refund of its own.
pub fn refund_key(charge_key: &str, credit_note: &str) -> String {
    format!("refund/{charge_key}/{credit_note}")
}

/// The lines of a credit note of `amount_cents` for `invoice`. The whole
/// invoice (its total, which is what its charge took): the invoice's lines,
/// with one negative line for its discount if coupons reduced it. Any other
/// amount: one line, "Partial refund of invoice X". Either way the lines add
/// up to `amount_cents`.
pub fn lines(invoice: &Invoice, amount_cents: i64) -> Vec<CreditNoteLine> {
    let whole = amount_cents == invoice.totals.total && !invoice.lines.is_empty();
    let tax_line = |name: &str, percent: Decimal, cents: i64, what: &str| CreditNoteLine {
        description: format!("{name} {} %{what}", percent.normalize()),
        quantity: Decimal::ONE,
        unit: "tax".into(),
        unit_price_cents: Decimal::from(cents),
        amount_cents: cents,
    };
    if !whole {
        // Taxes are refunded in proportion: each tax's share of the
        // invoice's total, rounded half up; the rest is the net refund.
        let total = invoice.totals.total;
        let taxes: Vec<CreditNoteLine> = invoice
            .taxes
            .iter()
            .filter(|_| total > 0)
            .map(|t| {
                let share = crate::rating::round_cents(
                    Decimal::from(amount_cents) * Decimal::from(t.amount_cents) / Decimal::from(total),
                );
                tax_line(&t.name, t.percent, share, " refunded")
            })
            .collect();
        let net = amount_cents - taxes.iter().map(|l| l.amount_cents).sum::<i64>();
        let mut out = vec![CreditNoteLine {
            description: format!("Partial refund of invoice {}", invoice.name),
            quantity: Decimal::ONE,
            unit: "refund".into(),
            unit_price_cents: Decimal::from(net),
            amount_cents: net,
        }];
        out.extend(taxes);
        return out;
    }
    let mut out: Vec<CreditNoteLine> = invoice
        .lines
        .iter()
        .map(|l| match &l.pricing {
            // A tiered or package line has no one unit price: credited as
            // one line of its amount.
            Some(p) => CreditNoteLine {
                description: format!(
                    "{}: {} {}, {} price",
                    l.description,
                    l.quantity.normalize(),
                    l.unit,
                    p.model.as_str()
                ),
                quantity: Decimal::ONE,
                unit: "line".into(),
                unit_price_cents: Decimal::from(l.amount_cents),
                amount_cents: l.amount_cents,
            },
            None => CreditNoteLine {
                description: l.description.clone(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                unit_price_cents: l.unit_price_cents,
                amount_cents: l.amount_cents,
            },
        })
        .collect();
    let discount = invoice.totals.discount;
    if discount != 0 {
        let coupons = invoice
            .coupons
            .iter()
            .map(|c| format!("{} ({})", c.title, c.terms))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(CreditNoteLine {
            description: if coupons.is_empty() {
                "Discount".into()
            } else {
                format!("Discount: {coupons}")
            },
            quantity: Decimal::ONE,
            unit: "discount".into(),
            unit_price_cents: Decimal::from(-discount),
            amount_cents: -discount,
        });
    }
    out.extend(
        invoice
            .taxes
            .iter()
            .map(|t| tax_line(&t.name, t.percent, t.amount_cents, "")),
    );
    out
}

/// Checks that `lines` add up to `amount_cents` (the invariant every credit
/// note keeps).
pub fn check(lines: &[CreditNoteLine], amount_cents: i64) -> Result<(), String> {
    let sum = lines.iter().fold(0i64, |a, l| a.saturating_add(l.amount_cents));
    if sum == amount_cents {
        Ok(())
    } else {
        Err(format!("the lines add up to {sum}, the amount is {amount_cents}"))
    }
}

/// Reads an amount of money in major units of `currency` ("12.34", "5",
/// "0.5" in USD; "1500" in JPY) into minor units, exactly: digits with an
/// optional decimal point and at most the currency's decimals (ISO 4217),
/// more than zero. No floating point, no exponents, no signs. See
/// [`crate::currency::parse_major`].
pub fn parse_amount(field: &str, text: &str, currency: &str) -> Result<i64, Error> {
    crate::currency::parse_major(field, text, currency)
}

/// Checks a refund's reason: required (not blank), at most [`MAX_REASON`]
/// characters, free text (it may break lines); returns it trimmed.
pub fn check_reason(field: &str, reason: &str) -> Result<String, Error> {
    let trimmed = reason.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(format!(
            "{field}: is required (why the money is given back; it is printed on the credit note)"
        ))
        .with_metadata("field", field));
    }
    crate::text::free_text(field, trimmed, MAX_REASON)?;
    Ok(trimmed.to_owned())
}

/// An amount in minor units of `currency` as people read it, e.g. "12.34
/// USD", "1500 JPY".
pub fn money(cents: i64, currency: &str) -> String {
    crate::currency::money(cents, currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::invoice::{InvoiceStatus, build};
    use crate::rating::{self, Coupon, Discount};
    use crate::subscription::Period;
    use std::collections::BTreeMap;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn invoice(coupons: Vec<Coupon>) -> Invoice {
        let c = Catalog::builtin();
        let plan = c.plan("individual").unwrap();
        let period = Period {
            index: 0,
            start: t("2027-01-01T00:00:00Z"),
            end: t("2027-02-01T00:00:00Z"),
            actual_end: t("2027-02-01T00:00:00Z"),
            trial: false,
        };
        let quantities = BTreeMap::from([("lb_requests".to_string(), Decimal::from(7_300_000))]);
        let bill = rating::bill(&c, plan, &quantities, Some(&rating::Fixed::whole()), coupons);
        let inv = build(
            "inv-2027-01-0001".into(),
            InvoiceStatus::Paid,
            "sub",
            &c,
            plan,
            &period,
            &bill,
            &[],
        );
        inv.check().unwrap();
        inv
    }

    #[test]
    fn names_are_the_month_and_a_number_of_at_least_four_digits() {
        assert_eq!(credit_note_name(t("2027-02-03T10:00:00Z"), 1), "cn-2027-02-0001");
        assert_eq!(credit_note_name(t("2026-12-31T23:59:59Z"), 42), "cn-2026-12-0042");
        assert_eq!(
            credit_note_name(t("2027-01-01T00:00:00Z"), 12345),
            "cn-2027-01-12345"
        );
        assert!(crate::names::Name::parse("name", &credit_note_name(t("2027-01-01T00:00:00Z"), 7)).is_ok());
        assert_eq!(
            refund_key("t1/inv-2027-01-0001/1/pm-1", "cn-2027-02-0001"),
            "refund/t1/inv-2027-01-0001/1/pm-1/cn-2027-02-0001"
        );
    }

    #[test]
    fn a_whole_refund_repeats_the_invoice_lines_and_its_discount() {
        let inv = invoice(vec![Coupon {
            title: "Welcome".into(),
            discount: Discount::Percent(1000),
        }]);
        assert!(inv.totals.discount > 0);
        let l = lines(&inv, inv.totals.total);
        assert_eq!(l.len(), inv.lines.len() + 1);
        for (credit, billed) in l.iter().zip(&inv.lines) {
            assert_eq!(
                (&credit.description, credit.amount_cents),
                (&billed.description, billed.amount_cents)
            );
        }
        let last = l.last().unwrap();
        assert_eq!(last.description, "Discount: Welcome (10 %)");
        assert_eq!(last.amount_cents, -inv.totals.discount);
        check(&l, inv.totals.total).unwrap();

        let plain = invoice(vec![]);
        let l = lines(&plain, plain.totals.total);
        assert_eq!(l.len(), plain.lines.len());
        check(&l, plain.totals.total).unwrap();
    }

    #[test]
    fn any_other_amount_is_one_partial_line() {
        let inv = invoice(vec![]);
        let l = lines(&inv, 628);
        assert_eq!(
            l,
            [CreditNoteLine {
                description: "Partial refund of invoice inv-2027-01-0001".into(),
                quantity: Decimal::ONE,
                unit: "refund".into(),
                unit_price_cents: Decimal::from(628),
                amount_cents: 628,
            }]
        );
        check(&l, 628).unwrap();
        assert!(check(&l, 629).is_err());
    }

    #[test]
    fn amounts_are_read_exactly_in_major_units() {
        for (text, cents) in [
            ("12.34", 1234),
            ("12.3", 1230),
            ("12.340", 1234),
            ("5", 500),
            ("0.01", 1),
            (" 7.50 ", 750),
            ("999999999999999.99", 99_999_999_999_999_999),
        ] {
            assert_eq!(parse_amount("amount", text, "USD").unwrap(), cents, "{text}");
        }
        for (text, says) in [
            ("0", "more than zero"),
            ("0.00", "more than zero"),
            ("-1", "such as"),
            ("+1", "such as"),
            ("1.234", "more than two decimals"),
            ("0.001", "more than two decimals"),
            ("abc", "such as"),
            ("", "such as"),
            ("1e3", "such as"),
            ("1.", "such as"),
            (".5", "such as"),
            ("1,50", "such as"),
            ("NaN", "such as"),
            ("1000000000000000", "too large"),
        ] {
            let e = parse_amount("amount", text, "USD").unwrap_err();
            assert!(
                e.message.starts_with("amount: ") && e.message.contains(says),
                "{text}: {}",
                e.message
            );
            assert_eq!(e.metadata["field"], "amount");
        }
    }

    #[test]
    fn a_reason_is_required_bounded_and_trimmed() {
        assert_eq!(
            check_reason("reason", "  outage on the 3rd \n").unwrap(),
            "outage on the 3rd"
        );
        assert!(check_reason("reason", "line one\nline two").is_ok());
        for bad in ["", "   ", "\n"] {
            let e = check_reason("reason", bad).unwrap_err();
            assert!(e.message.contains("is required"), "{}", e.message);
        }
        assert!(check_reason("reason", &"x".repeat(MAX_REASON)).is_ok());
        assert!(check_reason("reason", &"x".repeat(MAX_REASON + 1)).is_err());
        assert!(check_reason("reason", "a\u{0}b").is_err());
    }
}
