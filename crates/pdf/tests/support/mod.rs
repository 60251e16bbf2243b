//! Sample invoices for the tests and the `render_png` example.
#![allow(dead_code)]

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_domain::catalog::Catalog;
use tollgate_domain::contact::{Contact, ContactType};
use tollgate_domain::invoice::{
    self, AppliedDiscount, Correction, Invoice, InvoiceLine, InvoiceStatus, LineKind,
};
use tollgate_domain::rating::{self, Coupon, Discount, Totals};
use tollgate_domain::subscription::Period;

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A realistic invoice built the way the billing code builds one: a
/// prorated "team" fee, usage of several meters (some within their free
/// allowance), two coupons and a late-usage adjustment.
pub fn sample_invoice(status: InvoiceStatus) -> Invoice {
    let c = Catalog::builtin();
    let team = c.plan("team").unwrap();
    let period = Period {
        index: 2,
        start: t("2026-12-01T00:00:00Z"),
        end: t("2027-01-01T00:00:00Z"),
        actual_end: t("2026-12-16T12:00:00Z"),
        trial: false,
    };
    let quantities = BTreeMap::from([
        ("lb_requests".to_string(), Decimal::from(73_400_000)),
        (
            "lb_data_transfer".to_string(),
            Decimal::from(1_840_000_000_000_i64),
        ),
        ("waap_requests".to_string(), Decimal::from(31_250_000)),
        (
            "cdn_data_transfer".to_string(),
            Decimal::from(620_000_000_000_i64),
        ),
        ("dns_queries".to_string(), Decimal::from(4_000_000)),
    ]);
    let fee = Some(rating::Share {
        used_secs: 86_400 * 31 / 2,
        length_secs: 86_400 * 31,
    });
    let coupons = vec![
        Coupon {
            title: "Welcome".into(),
            discount: Discount::Percent(1000),
        },
        Coupon {
            title: "Loyalty credit".into(),
            discount: Discount::Fixed(500),
        },
    ];
    let bill = rating::bill(
        &c,
        team,
        &quantities,
        fee.map(rating::Fixed::from).as_ref(),
        coupons,
    );
    let corrections = [Correction {
        invoice: "inv-2026-11-0002".into(),
        period_start: t("2026-11-01T00:00:00Z"),
        period_end: t("2026-12-01T00:00:00Z"),
        amount_cents: 120,
    }];
    let mut inv = invoice::build(
        "inv-2026-12-0003".into(),
        status,
        "sub-1",
        &c,
        team,
        &period,
        &bill,
        &corrections,
    );
    if status != InvoiceStatus::Pending {
        inv.issued_at = Some(t("2026-12-19T12:00:00Z"));
    }
    inv.check().unwrap();
    inv
}

pub fn sample_contact() -> Contact {
    Contact {
        contact_type: ContactType::Billing,
        address1: "Acme Corporation".into(),
        address2: "1200 Market Street, Suite 400".into(),
        city: "San Francisco".into(),
        state: String::new(),
        state_code: "CA".into(),
        county: String::new(),
        zip_code: "94103".into(),
        country: "United States".into(),
        phone_number: "+1 415 555 0100".into(),
    }
}

pub fn sample_payments() -> Vec<String> {
    vec![
        "2026-12-19 charge of 202.45 USD to test card ending 4242: declined (insufficient funds)"
            .into(),
        "2026-12-20 charge of 202.45 USD to test card ending 4242: declined (insufficient funds); next attempt on 2026-12-23".into(),
    ]
}

/// An invoice with `n` lines of varied length, constructed directly; its
/// totals add up.
pub fn long_invoice(n: usize) -> Invoice {
    let mut lines = Vec::new();
    for i in 1..=n {
        let (description, unit, price, qty, free) = match i % 4 {
            0 => (
                format!(
                    "Line {i}: adjustment for usage reported late, covering several meters \
                     and more than one period, with a description long enough to wrap onto \
                     a second and a third line of the table cell"
                ),
                "adjustment",
                Decimal::from(125),
                Decimal::ONE,
                Decimal::ZERO,
            ),
            1 => (
                format!("Line {i}: HTTP Load Balancer Requests"),
                "million requests",
                Decimal::from(50),
                Decimal::from(73 + i),
                Decimal::from(50),
            ),
            2 => (
                format!("Line {i}: Load Balancer Hours"),
                "hour",
                Decimal::new(25, 1),
                Decimal::from(7440 + i),
                Decimal::from(7440),
            ),
            _ => (
                format!("Line {i}: CDN Data Transfer"),
                "GB",
                Decimal::new(35, 1),
                Decimal::from(500 + 10 * i),
                Decimal::ZERO,
            ),
        };
        let chargeable = (qty - free).max(Decimal::ZERO);
        let amount_cents = rating::round_cents(chargeable * price);
        lines.push(InvoiceLine {
            kind: if i % 4 == 0 {
                LineKind::Adjustment
            } else {
                LineKind::Usage
            },
            description,
            metric_label: None,
            quantity: qty,
            unit: unit.into(),
            unit_price_cents: price,
            free_quantity: free,
            amount_cents,
            adjusts: None,
            pricing: None,
        });
    }
    let subtotal: i64 = lines.iter().map(|l| l.amount_cents).sum();
    let discount = subtotal / 10;
    let inv = Invoice {
        name: "inv-2027-01-0042".into(),
        status: InvoiceStatus::Paid,
        subscription_id: "sub-9".into(),
        period_index: 7,
        period_start: t("2027-01-01T00:00:00Z"),
        period_end: t("2027-02-01T00:00:00Z"),
        plan: "team".into(),
        plan_title: "Teams".into(),
        currency: "USD".into(),
        lines,
        coupons: vec![AppliedDiscount {
            title: "Partner programme".into(),
            terms: "10 %".into(),
        }],
        taxes: Vec::new(),
        tax_note: None,
        credits: Vec::new(),
        totals: Totals {
            subtotal,
            discount,
            credits: 0,
            tax: 0,
            total: subtotal - discount,
        },
        issued_at: Some(t("2027-02-04T00:00:00Z")),
        issuer: None,
    };
    inv.check().unwrap();
    inv
}

/// Values at the edges: an unbroken 400-character description, control
/// characters, a trillion units, huge positive and negative amounts, a long
/// unit and a long coupon title.
pub fn extreme_invoice() -> Invoice {
    let mut inv = long_invoice(3);
    inv.lines[0].description = "x".repeat(400);
    inv.lines[0].quantity = Decimal::from(1_000_000_000_000_i64);
    inv.lines[0].free_quantity = Decimal::from(999_999_999_999_i64);
    inv.lines[0].unit_price_cents = Decimal::new(123_456_789_012_345, 6);
    inv.lines[0].amount_cents = -(i64::MAX / 4);
    inv.lines[1].description = "tab\tnew\nline ".repeat(30);
    inv.lines[1].unit = "very long unit name that needs wrapping too".into();
    inv.lines[2].amount_cents = i64::MAX / 4;
    inv.totals.subtotal = inv.lines.iter().map(|l| l.amount_cents).sum();
    inv.totals.discount = 0;
    inv.totals.total = inv.totals.subtotal;
    inv.coupons = vec![AppliedDiscount {
        title: "A coupon with a remarkably long title that goes on and on ".repeat(3),
        terms: "99.99 %".into(),
    }];
    inv.check().unwrap();
    inv
}

/// A contact whose fields are all long.
pub fn extreme_contact() -> Contact {
    let long = "Field ".repeat(50);
    Contact {
        contact_type: ContactType::Billing,
        address1: long.clone(),
        address2: String::new(),
        city: long.clone(),
        state: long.clone(),
        state_code: String::new(),
        county: String::new(),
        zip_code: "1".repeat(40),
        country: "Ü".repeat(300),
        phone_number: long,
    }
}

/// An issuer with every detail set (the longest header).
pub fn sample_issuer() -> tollgate_domain::catalog::Issuer {
    tollgate_domain::catalog::Issuer {
        name: "Tollgate Billing GmbH".to_owned(),
        address: vec![
            "Friedrichstraße 123".to_owned(),
            "10117 Berlin".to_owned(),
            "Germany".to_owned(),
        ],
        tax_id: Some("DE123456789".to_owned()),
        email: Some("billing@tollgate.example".to_owned()),
    }
}
