//! `invoices.document`: a finalized invoice, kept unchanged for as long as
//! the business keeps its books.
//!
//! - Format 1 (before formats): the domain `Invoice` as serde wrote it, no
//!   `format` key, no issuer.
//! - Format 2: `"format": 2` and `issuer` (who issued it, as printed then).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tollgate_domain::catalog::Issuer;
use tollgate_domain::invoice::{AppliedDiscount, Invoice, InvoiceLine, InvoiceStatus, LineKind};
use tollgate_domain::rating::Totals;

use super::{decimal, format_of, newer, parse, write};
use crate::StoreError;

const COLUMN: &str = "invoices.document";
const CURRENT: u32 = 2;

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
    pub struct Invoice {
        pub name: String,
        pub status: Status,
        pub subscription_id: String,
        pub period_index: u32,
        pub period_start: Timestamp,
        pub period_end: Timestamp,
        pub plan: String,
        pub plan_title: String,
        pub currency: String,
        pub lines: Vec<Line>,
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
    pub struct Invoice {
        pub format: u32,
        #[serde(flatten)]
        pub body: v1::Invoice,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub issuer: Option<Issuer>,
    }
}

impl From<v1::Invoice> for v2::Invoice {
    fn from(body: v1::Invoice) -> Self {
        Self {
            format: 2,
            body,
            issuer: None,
        }
    }
}

/// Reads a stored invoice of any format.
pub fn decode_invoice(text: &str) -> Result<Invoice, StoreError> {
    let current: v2::Invoice = match format_of(COLUMN, text)? {
        1 => parse::<v1::Invoice>(COLUMN, text)?.into(),
        2 => parse(COLUMN, text)?,
        n => return Err(newer(COLUMN, n, CURRENT)),
    };
    to_domain(current)
}

/// Writes an invoice in the current format.
pub fn encode_invoice(invoice: &Invoice) -> Result<String, StoreError> {
    write(COLUMN, &from_domain(invoice))
}

fn to_domain(r: v2::Invoice) -> Result<Invoice, StoreError> {
    let b = r.body;
    let lines = b
        .lines
        .into_iter()
        .map(|l| {
            Ok(InvoiceLine {
                kind: match l.kind {
                    v1::Kind::Fee => LineKind::Fee,
                    v1::Kind::Usage => LineKind::Usage,
                    v1::Kind::Adjustment => LineKind::Adjustment,
                },
                description: l.description,
                metric_label: l.metric_label,
                quantity: decimal(COLUMN, &l.quantity)?,
                unit: l.unit,
                unit_price_cents: decimal(COLUMN, &l.unit_price_cents)?,
                free_quantity: decimal(COLUMN, &l.free_quantity)?,
                amount_cents: l.amount_cents,
                adjusts: l.adjusts,
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
        totals: Totals {
            subtotal: b.totals.subtotal,
            discount: b.totals.discount,
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

fn from_domain(i: &Invoice) -> v2::Invoice {
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
                .map(|l| v1::Line {
                    kind: match l.kind {
                        LineKind::Fee => v1::Kind::Fee,
                        LineKind::Usage => v1::Kind::Usage,
                        LineKind::Adjustment => v1::Kind::Adjustment,
                    },
                    description: l.description.clone(),
                    metric_label: l.metric_label.clone(),
                    quantity: l.quantity.to_string(),
                    unit: l.unit.clone(),
                    unit_price_cents: l.unit_price_cents.to_string(),
                    free_quantity: l.free_quantity.to_string(),
                    amount_cents: l.amount_cents,
                    adjusts: l.adjusts.clone(),
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
