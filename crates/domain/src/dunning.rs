//! Dunning: what happens to a tenant whose invoices stay unpaid.
//!
//! An invoice whose last scheduled charge round failed is OVERDUE; the time
//! it first became so is kept. Once an invoice has been OVERDUE for longer
//! than the suspension delay, its tenant is **suspended**: its quota
//! reservations are refused (403, `TENANT_SUSPENDED`, naming the unpaid
//! invoices) while everything else keeps working, so that the tenant can
//! read, report usage and pay. Paying (or the operator cancelling) the last
//! such invoice lifts the suspension at once; the operator can also lift it
//! by hand. This module holds the values and the refusal; the application
//! (`app::dunning`) decides when, the store keeps the bookkeeping.

use jiff::{SignedDuration, Timestamp};

use crate::currency::format_minor;
use crate::ids::InvoiceName;
use crate::{Error, ErrorKind, Reason};

/// How long an invoice may stay OVERDUE before its tenant is suspended,
/// unless the operator says otherwise (`--suspend-after`).
pub const DEFAULT_SUSPEND_AFTER: SignedDuration = SignedDuration::from_hours(14 * 24);

/// A tenant's suspension, as stored with the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// When it was suspended.
    pub since: Timestamp,
    /// Who suspended it (`tollgate/dunning` for the job).
    pub by: String,
    /// The invoices it was suspended for: unpaid, and OVERDUE for longer
    /// than the delay at that moment.
    pub invoices: Vec<InvoiceName>,
}

/// An unpaid invoice that once went OVERDUE, as a refusal names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpaid {
    pub name: InvoiceName,
    pub total_cents: i64,
    pub currency: String,
    /// When it first became OVERDUE.
    pub overdue_since: Timestamp,
}

/// Why a suspended tenant's quota reservation is refused: 403
/// (`TENANT_SUSPENDED`), naming the unpaid invoices and what they add up
/// to, as text and as metadata (`invoices`, comma-separated; `amount_cents`
/// and `currency` when they share one currency). `unpaid` empty (nothing
/// unpaid is left, yet the tenant is suspended: by hand, or a moment before
/// a payment's lift) names the suspension's own invoices.
pub fn refusal(tenant: &str, suspension: &Suspension, unpaid: &[Unpaid]) -> Error {
    let names: Vec<&str> = if unpaid.is_empty() {
        suspension.invoices.iter().map(InvoiceName::as_str).collect()
    } else {
        unpaid.iter().map(|u| u.name.as_str()).collect()
    };
    let listed = unpaid
        .iter()
        .map(|u| {
            format!(
                "{} ({} {}, overdue since {})",
                u.name,
                format_minor(u.total_cents, &u.currency),
                u.currency,
                u.overdue_since.strftime("%Y-%m-%d")
            )
        })
        .collect::<Vec<_>>();
    let one_currency = unpaid
        .first()
        .map(|u| u.currency.as_str())
        .filter(|c| unpaid.iter().all(|u| u.currency == *c));
    let total: i64 = unpaid
        .iter()
        .fold(0i64, |sum, u| sum.saturating_add(u.total_cents));
    let what = if listed.is_empty() {
        if names.is_empty() {
            "by the operator".to_owned()
        } else {
            format!("for unpaid invoices: {}", names.join(", "))
        }
    } else {
        let owed = match one_currency {
            Some(c) if listed.len() > 1 => format!("; {} {c} in all", format_minor(total, c)),
            _ => String::new(),
        };
        let noun = if listed.len() == 1 { "invoice" } else { "invoices" };
        format!("for unpaid {noun}: {}{owed}", listed.join(", "))
    };
    let mut error = Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "tenant {tenant} is suspended since {} {what}; quota reservations are refused until \
             they are paid (adding a payment method or making another one primary charges them \
             again)",
            suspension.since.strftime("%Y-%m-%d")
        ),
    )
    .with_reason(Reason::TenantSuspended)
    .with_metadata("invoices", names.join(","))
    .with_metadata("suspended_since", suspension.since.to_string());
    if let Some(currency) = one_currency {
        error = error
            .with_metadata("amount_cents", total.to_string())
            .with_metadata("currency", currency);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn suspension() -> Suspension {
        Suspension {
            since: t("2027-01-05T00:00:00Z"),
            by: "tollgate/dunning".into(),
            invoices: vec!["inv-2026-11-0001".into()],
        }
    }

    #[test]
    fn a_refusal_names_each_unpaid_invoice_and_the_sum() {
        let unpaid = [
            Unpaid {
                name: "inv-2026-11-0001".into(),
                total_cents: 2500,
                currency: "USD".into(),
                overdue_since: t("2026-12-09T00:00:00Z"),
            },
            Unpaid {
                name: "inv-2026-12-0002".into(),
                total_cents: 2620,
                currency: "USD".into(),
                overdue_since: t("2027-01-09T00:00:00Z"),
            },
        ];
        let e = refusal("acme", &suspension(), &unpaid);
        assert_eq!(
            (e.kind, e.reason),
            (ErrorKind::PermissionDenied, Reason::TenantSuspended)
        );
        assert_eq!(
            e.message,
            "tenant acme is suspended since 2027-01-05 for unpaid invoices: inv-2026-11-0001 (25.00 USD, \
             overdue since 2026-12-09), inv-2026-12-0002 (26.20 USD, overdue since 2027-01-09); 51.20 USD \
             in all; quota reservations are refused until they are paid (adding a payment method or making \
             another one primary charges them again)"
        );
        assert_eq!(e.metadata["invoices"], "inv-2026-11-0001,inv-2026-12-0002");
        assert_eq!(e.metadata["amount_cents"], "5120");
        assert_eq!(e.metadata["currency"], "USD");
        assert_eq!(e.metadata["suspended_since"], "2027-01-05T00:00:00Z");
    }

    #[test]
    fn one_invoice_is_named_without_a_sum() {
        let unpaid = [Unpaid {
            name: "inv-2026-11-0001".into(),
            total_cents: 2500,
            currency: "EUR".into(),
            overdue_since: t("2026-12-09T00:00:00Z"),
        }];
        let e = refusal("acme", &suspension(), &unpaid);
        assert!(
            e.message.contains(
                "for unpaid invoice: inv-2026-11-0001 (25.00 EUR, overdue since 2026-12-09); quota"
            ),
            "{}",
            e.message
        );
        assert_eq!(e.metadata["amount_cents"], "2500");
        assert_eq!(e.metadata["currency"], "EUR");
    }

    #[test]
    fn without_unpaid_invoices_the_suspension_names_its_own() {
        let e = refusal("acme", &suspension(), &[]);
        assert!(
            e.message
                .contains("suspended since 2027-01-05 for unpaid invoices: inv-2026-11-0001;"),
            "{}",
            e.message
        );
        assert_eq!(e.metadata["invoices"], "inv-2026-11-0001");
        assert!(!e.metadata.contains_key("amount_cents"));
    }
}
