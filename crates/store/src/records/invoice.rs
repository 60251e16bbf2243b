//! `invoices.document`: a finalized invoice, kept unchanged for as long as
//! the business keeps its books.
//!
//! - Format 1 (before formats): the domain `Invoice` as serde wrote it, no
//!   `format` key, no issuer.
//! - Format 2: `"format": 2` and `issuer` (who issued it, as printed then).
//! - Format 3: format 2 whose lines may also be `addon`, `meter_fee` or
//!   `minimum` and may carry `pricing` (the steps of a tiered or package
//!   price). Written only for an invoice that has such a line; every other
//!   invoice stays format 2, byte for byte.
//! - Format 4: format 3 plus `taxes` (one row per rate), `tax_note` and
//!   `tax` (the total includes it). Written only for an invoice with taxes
//!   or a tax note.
//! - Format 5: format 4 plus `credits` (the prepaid credits that paid part
//!   of it; the total is net of them) and `applied_credits` (one row per
//!   grant). Written only for an invoice credits paid.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tollgate_domain::catalog::{Issuer, ModelKind};
use tollgate_domain::invoice::{
    AppliedCredit, AppliedDiscount, Invoice, InvoiceLine, InvoiceStatus, LineKind, Pricing,
};
use tollgate_domain::rating::{Step, StepKind, TaxLine, Totals};

use super::{decimal, format_of, newer, parse, write};
use crate::StoreError;

const COLUMN: &str = "invoices.document";
const CURRENT: u32 = 5;

/// Format 1, as main wrote it before formats existed.
mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub enum Status {
        Pending,
        Issued,
        Paid,
        Overdue,
        Refunded,
        Cancelled,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        Fee,
        Usage,
        Adjustment,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Line {
        pub kind: Kind,
        pub description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_label: Option<String>,
        /// Exact decimal as text.
        pub quantity: String,
        pub unit: String,
        pub unit_price_cents: String,
        #[serde(default = "zero")]
        pub free_quantity: String,
        pub amount_cents: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adjusts: Option<String>,
    }

    fn zero() -> String {
        "0".into()
    }

    #[derive(Serialize, Deserialize)]
    pub struct Discount {
        pub title: String,
        pub terms: String,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Totals {
        pub subtotal: i64,
        pub discount: i64,
        pub total: i64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Invoice<L = Line> {
        pub name: String,
        pub status: Status,
        pub subscription_id: String,
        pub period_index: u32,
        pub period_start: Timestamp,
        pub period_end: Timestamp,
        pub plan: String,
        pub plan_title: String,
        pub currency: String,
        pub lines: Vec<L>,
        pub coupons: Vec<Discount>,
        pub totals: Totals,
        pub issued_at: Option<Timestamp>,
    }
}

/// Format 2: format 1 plus the issuer.
mod v2 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Issuer {
        pub name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub address: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tax_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Invoice<L = v1::Line> {
        pub format: u32,
        #[serde(flatten)]
        pub body: v1::Invoice<L>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub issuer: Option<Issuer>,
    }
}

/// Format 3: lines of every kind, with the pricing of tiered lines.
mod v3 {
    use super::*;

    #[derive(Serialize, Deserialize, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        Fee,
        Usage,
        Adjustment,
        MeterFee,
        Minimum,
        Addon,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Line {
        pub kind: Kind,
        pub description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_label: Option<String>,
        pub quantity: String,
        pub unit: String,
        pub unit_price_cents: String,
        pub free_quantity: String,
        pub amount_cents: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adjusts: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pricing: Option<Pricing>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Pricing {
        /// `graduated`, `volume` or `package`.
        pub model: String,
        pub steps: Vec<Step>,
    }

    /// A tier (`from`, `to`) or packages (`package_size`); numbers are
    /// exact decimals as text.
    #[derive(Serialize, Deserialize)]
    pub struct Step {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub package_size: Option<String>,
        pub quantity: String,
        pub unit_price_cents: String,
        pub flat_cents: String,
        pub amount_cents: String,
    }

    impl From<v1::Line> for Line {
        fn from(l: v1::Line) -> Self {
            Self {
                kind: match l.kind {
                    v1::Kind::Fee => Kind::Fee,
                    v1::Kind::Usage => Kind::Usage,
                    v1::Kind::Adjustment => Kind::Adjustment,
                },
                description: l.description,
                metric_label: l.metric_label,
                quantity: l.quantity,
                unit: l.unit,
                unit_price_cents: l.unit_price_cents,
                free_quantity: l.free_quantity,
                amount_cents: l.amount_cents,
                adjusts: l.adjusts,
                pricing: None,
            }
        }
    }

    impl Line {
        /// The same line in format 1's shape, when it has one.
        pub fn v1(&self) -> Option<v1::Line> {
            if self.pricing.is_some() {
                return None;
            }
            Some(v1::Line {
                kind: match self.kind {
                    Kind::Fee => v1::Kind::Fee,
                    Kind::Usage => v1::Kind::Usage,
                    Kind::Adjustment => v1::Kind::Adjustment,
                    Kind::MeterFee | Kind::Minimum | Kind::Addon => return None,
                },
                description: self.description.clone(),
                metric_label: self.metric_label.clone(),
                quantity: self.quantity.clone(),
                unit: self.unit.clone(),
                unit_price_cents: self.unit_price_cents.clone(),
                free_quantity: self.free_quantity.clone(),
                amount_cents: self.amount_cents,
                adjusts: self.adjusts.clone(),
            })
        }
    }
}

/// Format 4: format 3 plus taxes.
mod v4 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Tax {
        pub name: String,
        /// Exact decimal.
        pub percent: String,
        pub taxable_cents: i64,
        pub amount_cents: i64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Invoice {
        #[serde(flatten)]
        pub base: v2::Invoice<v3::Line>,
        pub tax: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub taxes: Vec<Tax>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tax_note: Option<String>,
    }
}

/// Format 5: format 4 plus prepaid credits.
mod v5 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Credit {
        pub grant: String,
        pub description: String,
        pub amount_cents: i64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Invoice {
        #[serde(flatten)]
        pub base: v4::Invoice,
        pub credits: i64,
        pub applied_credits: Vec<Credit>,
    }
}

fn upgrade<A, B: From<A>>(r: v2::Invoice<A>) -> v2::Invoice<B> {
    let format = r.format;
    with_lines(r, format, |lines| lines.into_iter().map(B::from).collect())
}

/// The same invoice in `format`, its lines replaced by `lines(old lines)`.
fn with_lines<A, B>(r: v2::Invoice<A>, format: u32, lines: impl FnOnce(Vec<A>) -> Vec<B>) -> v2::Invoice<B> {
    let b = r.body;
    v2::Invoice {
        format,
        body: v1::Invoice {
            name: b.name,
            status: b.status,
            subscription_id: b.subscription_id,
            period_index: b.period_index,
            period_start: b.period_start,
            period_end: b.period_end,
            plan: b.plan,
            plan_title: b.plan_title,
            currency: b.currency,
            lines: lines(b.lines),
            coupons: b.coupons,
            totals: b.totals,
            issued_at: b.issued_at,
        },
        issuer: r.issuer,
    }
}

/// Reads a stored invoice of any format.
pub fn decode_invoice(text: &str) -> Result<Invoice, StoreError> {
    let current: v5::Invoice = match format_of(COLUMN, text)? {
        1 => uncredited(untaxed(upgrade(v2::Invoice {
            format: 2,
            body: parse::<v1::Invoice>(COLUMN, text)?,
            issuer: None,
        }))),
        2 => uncredited(untaxed(upgrade(parse::<v2::Invoice>(COLUMN, text)?))),
        3 => uncredited(untaxed(parse(COLUMN, text)?)),
        4 => uncredited(parse(COLUMN, text)?),
        5 => parse(COLUMN, text)?,
        n => return Err(newer(COLUMN, n, CURRENT)),
    };
    let (credits, applied) = (current.credits, current.applied_credits);
    let current = current.base;
    let mut invoice = to_domain(current.base)?;
    invoice.totals.credits = credits;
    invoice.credits = applied
        .into_iter()
        .map(|c| AppliedCredit {
            grant: c.grant,
            description: c.description,
            amount_cents: c.amount_cents,
        })
        .collect();
    invoice.totals.tax = current.tax;
    invoice.taxes = current
        .taxes
        .into_iter()
        .map(|t| {
            Ok(TaxLine {
                name: t.name,
                percent: decimal(COLUMN, &t.percent)?,
                taxable_cents: t.taxable_cents,
                amount_cents: t.amount_cents,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    invoice.tax_note = current.tax_note;
    Ok(invoice)
}

fn uncredited(base: v4::Invoice) -> v5::Invoice {
    v5::Invoice {
        base,
        credits: 0,
        applied_credits: Vec::new(),
    }
}

fn untaxed(base: v2::Invoice<v3::Line>) -> v4::Invoice {
    v4::Invoice {
        base,
        tax: 0,
        taxes: Vec::new(),
        tax_note: None,
    }
}

/// Writes an invoice: format 2 when every line has format 2's shape (so
/// Tollgates that read only format 2 still read it), else format 3.
pub fn encode_invoice(invoice: &Invoice) -> Result<String, StoreError> {
    let mut r = from_domain(invoice);
    let credited = !invoice.credits.is_empty() || invoice.totals.credits != 0;
    if credited || !invoice.taxes.is_empty() || invoice.tax_note.is_some() || invoice.totals.tax != 0 {
        r.format = if credited { 5 } else { 4 };
        let taxed = v4::Invoice {
            base: r,
            tax: invoice.totals.tax,
            taxes: invoice
                .taxes
                .iter()
                .map(|t| v4::Tax {
                    name: t.name.clone(),
                    percent: t.percent.to_string(),
                    taxable_cents: t.taxable_cents,
                    amount_cents: t.amount_cents,
                })
                .collect(),
            tax_note: invoice.tax_note.clone(),
        };
        if !credited {
            return write(COLUMN, &taxed);
        }
        return write(
            COLUMN,
            &v5::Invoice {
                base: taxed,
                credits: invoice.totals.credits,
                applied_credits: invoice
                    .credits
                    .iter()
                    .map(|c| v5::Credit {
                        grant: c.grant.clone(),
                        description: c.description.clone(),
                        amount_cents: c.amount_cents,
                    })
                    .collect(),
            },
        );
    }
    r.format = 3;
    let v2_lines: Option<Vec<v1::Line>> = r.body.lines.iter().map(v3::Line::v1).collect();
    match v2_lines {
        Some(lines) => write(COLUMN, &with_lines(r, 2, |_| lines)),
        None => write(COLUMN, &r),
    }
}

fn to_domain(r: v2::Invoice<v3::Line>) -> Result<Invoice, StoreError> {
    let b = r.body;
    let lines = b
        .lines
        .into_iter()
        .map(|l| {
            Ok(InvoiceLine {
                kind: match l.kind {
                    v3::Kind::Fee => LineKind::Fee,
                    v3::Kind::Usage => LineKind::Usage,
                    v3::Kind::Adjustment => LineKind::Adjustment,
                    v3::Kind::MeterFee => LineKind::MeterFee,
                    v3::Kind::Minimum => LineKind::Minimum,
                    v3::Kind::Addon => LineKind::Addon,
                },
                description: l.description,
                metric_label: l.metric_label,
                quantity: decimal(COLUMN, &l.quantity)?,
                unit: l.unit,
                unit_price_cents: decimal(COLUMN, &l.unit_price_cents)?,
                free_quantity: decimal(COLUMN, &l.free_quantity)?,
                amount_cents: l.amount_cents,
                adjusts: l.adjusts,
                pricing: l.pricing.map(pricing_to_domain).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Invoice {
        name: b.name.into(),
        status: match b.status {
            v1::Status::Pending => InvoiceStatus::Pending,
            v1::Status::Issued => InvoiceStatus::Issued,
            v1::Status::Paid => InvoiceStatus::Paid,
            v1::Status::Overdue => InvoiceStatus::Overdue,
            v1::Status::Refunded => InvoiceStatus::Refunded,
            v1::Status::Cancelled => InvoiceStatus::Cancelled,
        },
        subscription_id: b.subscription_id,
        period_index: b.period_index,
        period_start: b.period_start,
        period_end: b.period_end,
        plan: b.plan,
        plan_title: b.plan_title,
        currency: b.currency,
        lines,
        coupons: b
            .coupons
            .into_iter()
            .map(|c| AppliedDiscount {
                title: c.title,
                terms: c.terms,
            })
            .collect(),
        taxes: Vec::new(),
        tax_note: None,
        credits: Vec::new(),
        totals: Totals {
            subtotal: b.totals.subtotal,
            discount: b.totals.discount,
            credits: 0,
            tax: 0,
            total: b.totals.total,
        },
        issued_at: b.issued_at,
        issuer: r.issuer.map(|i| Issuer {
            name: i.name,
            address: i.address,
            tax_id: i.tax_id,
            email: i.email,
        }),
    })
}

fn from_domain(i: &Invoice) -> v2::Invoice<v3::Line> {
    v2::Invoice {
        format: CURRENT,
        body: v1::Invoice {
            name: i.name.to_string(),
            status: match i.status {
                InvoiceStatus::Pending => v1::Status::Pending,
                InvoiceStatus::Issued => v1::Status::Issued,
                InvoiceStatus::Paid => v1::Status::Paid,
                InvoiceStatus::Overdue => v1::Status::Overdue,
                InvoiceStatus::Refunded => v1::Status::Refunded,
                InvoiceStatus::Cancelled => v1::Status::Cancelled,
            },
            subscription_id: i.subscription_id.clone(),
            period_index: i.period_index,
            period_start: i.period_start,
            period_end: i.period_end,
            plan: i.plan.clone(),
            plan_title: i.plan_title.clone(),
            currency: i.currency.clone(),
            lines: i
                .lines
                .iter()
                .map(|l| v3::Line {
                    kind: match l.kind {
                        LineKind::Fee => v3::Kind::Fee,
                        LineKind::Usage => v3::Kind::Usage,
                        LineKind::Adjustment => v3::Kind::Adjustment,
                        LineKind::MeterFee => v3::Kind::MeterFee,
                        LineKind::Minimum => v3::Kind::Minimum,
                        LineKind::Addon => v3::Kind::Addon,
                    },
                    description: l.description.clone(),
                    metric_label: l.metric_label.clone(),
                    quantity: l.quantity.to_string(),
                    unit: l.unit.clone(),
                    unit_price_cents: l.unit_price_cents.to_string(),
                    free_quantity: l.free_quantity.to_string(),
                    amount_cents: l.amount_cents,
                    adjusts: l.adjusts.clone(),
                    pricing: l.pricing.as_ref().map(pricing_from_domain),
                })
                .collect(),
            coupons: i
                .coupons
                .iter()
                .map(|c| v1::Discount {
                    title: c.title.clone(),
                    terms: c.terms.clone(),
                })
                .collect(),
            totals: v1::Totals {
                subtotal: i.totals.subtotal,
                discount: i.totals.discount,
                total: i.totals.total,
            },
            issued_at: i.issued_at,
        },
        issuer: i.issuer.as_ref().map(|s| v2::Issuer {
            name: s.name.clone(),
            address: s.address.clone(),
            tax_id: s.tax_id.clone(),
            email: s.email.clone(),
        }),
    }
}

fn pricing_to_domain(p: v3::Pricing) -> Result<Pricing, StoreError> {
    let model = ModelKind::parse(&p.model)
        .filter(|m| *m != ModelKind::PerUnit)
        .ok_or_else(|| super::corrupt(COLUMN, format!("unknown price model {:?}", p.model)))?;
    let steps = p
        .steps
        .into_iter()
        .map(|s| {
            let kind = match (s.from, s.package_size) {
                (Some(from), None) => StepKind::Tier {
                    from: decimal(COLUMN, &from)?,
                    to: s.to.as_deref().map(|t| decimal(COLUMN, t)).transpose()?,
                },
                (None, Some(size)) => StepKind::Package {
                    size: decimal(COLUMN, &size)?,
                },
                _ => return Err(super::corrupt(COLUMN, "a step is either a tier or packages")),
            };
            Ok(Step {
                kind,
                quantity: decimal(COLUMN, &s.quantity)?,
                unit_price_cents: decimal(COLUMN, &s.unit_price_cents)?,
                flat_cents: decimal(COLUMN, &s.flat_cents)?,
                amount_cents: decimal(COLUMN, &s.amount_cents)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Pricing { model, steps })
}

fn pricing_from_domain(p: &Pricing) -> v3::Pricing {
    v3::Pricing {
        model: p.model.as_str().to_owned(),
        steps: p
            .steps
            .iter()
            .map(|s| {
                let (from, to, package_size) = match &s.kind {
                    StepKind::Tier { from, to } => (Some(from.to_string()), to.map(|t| t.to_string()), None),
                    StepKind::Package { size } => (None, None, Some(size.to_string())),
                };
                v3::Step {
                    from,
                    to,
                    package_size,
                    quantity: s.quantity.to_string(),
                    unit_price_cents: s.unit_price_cents.to_string(),
                    flat_cents: s.flat_cents.to_string(),
                    amount_cents: s.amount_cents.to_string(),
                }
            })
            .collect(),
    }
}
