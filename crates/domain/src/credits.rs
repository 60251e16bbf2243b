//! Prepaid credits: amounts an operator grants a tenant, in one currency,
//! that pay its finalized invoices before anything is charged.
//!
//! Each grant has an append-only ledger of signed entries: `grant` (+),
//! `apply` (− what an invoice took), `expire` (− what was left at expiry),
//! `refund` (+ what an invoice gave back: cancelled or refunded in full) and
//! `reverse` (− what an operator took back). A grant's remaining amount is
//! always the sum of its entries and never negative; a tenant's balance in a
//! currency is the sum of its grants' remaining amounts in it.
//!
//! Which grants pay an invoice ([`allocate`]): those in the invoice's
//! currency that have not expired when it is finalized, highest priority
//! first, then the soonest expiry (a grant without one last), then the
//! oldest; each gives what it has left until the invoice's amount before tax
//! (after discounts) is covered. Tax is then computed on what remains.

use std::cmp::Ordering;
use std::fmt;

use jiff::Timestamp;

use crate::Error;

/// Longest reason of a grant or reversal.
pub const MAX_REASON: usize = 500;
/// Priorities a grant may have (higher is used first).
pub const PRIORITIES: std::ops::RangeInclusive<i64> = 0..=1000;
/// Grants a tenant may hold with something left (a bound on what an
/// invoice's finalization reads).
pub const MAX_OPEN_GRANTS: usize = 1000;

/// A ledger entry's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Grant,
    Apply,
    Expire,
    Refund,
    Reverse,
}

impl EntryKind {
    pub const ALL: [Self; 5] = [
        Self::Grant,
        Self::Apply,
        Self::Expire,
        Self::Refund,
        Self::Reverse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Apply => "apply",
            Self::Expire => "expire",
            Self::Refund => "refund",
            Self::Reverse => "reverse",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether entries of this kind add to the balance (the others take
    /// from it).
    pub fn adds(self) -> bool {
        matches!(self, Self::Grant | Self::Refund)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant as stored, with what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub currency: String,
    /// What was granted, in minor units.
    pub amount_cents: i64,
    /// What is left: the sum of the grant's ledger entries.
    pub remaining_cents: i64,
    pub priority: i64,
    pub expires_at: Option<Timestamp>,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: Timestamp,
}

impl Grant {
    /// Whether the grant may pay an invoice in `currency` finalized at `now`.
    pub fn usable(&self, currency: &str, now: Timestamp) -> bool {
        self.remaining_cents > 0 && self.currency == currency && self.expires_at.is_none_or(|e| now < e)
    }

    /// Whether the grant has expired at `now` with something left (the
    /// expiry job then writes it off).
    pub fn expired_with_balance(&self, now: Timestamp) -> bool {
        self.remaining_cents > 0 && self.expires_at.is_some_and(|e| e <= now)
    }
}

/// The order grants pay in: highest priority, then soonest expiry (none
/// last), then oldest, then id (a total order, so every replica agrees).
pub fn order(a: &Grant, b: &Grant) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (a.expires_at, b.expires_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.granted_at.cmp(&b.granted_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// What one grant pays of one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub grant_id: String,
    pub amount_cents: i64,
}

/// Which grants pay `amount_cents` of an invoice in `currency` finalized at
/// `now`, and how much each (see the module). The allocations add up to
/// `min(amount, what the usable grants hold)`; none is zero; each is at
/// most its grant's remaining amount.
pub fn allocate(grants: &[Grant], currency: &str, amount_cents: i64, now: Timestamp) -> Vec<Allocation> {
    let mut usable: Vec<&Grant> = grants.iter().filter(|g| g.usable(currency, now)).collect();
    usable.sort_by(|a, b| order(a, b));
    let mut left = amount_cents.max(0);
    let mut out = Vec::new();
    for g in usable {
        if left == 0 {
            break;
        }
        let take = g.remaining_cents.min(left);
        left -= take;
        out.push(Allocation {
            grant_id: g.id.clone(),
            amount_cents: take,
        });
    }
    out
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Insertion order (the ledger's own sequence).
    pub seq: i64,
    pub grant_id: String,
    pub currency: String,
    pub kind: EntryKind,
    /// Signed: positive for `grant` and `refund`, negative otherwise.
    pub amount_cents: i64,
    /// The invoice an `apply` paid or a `refund` came back from.
    pub invoice: Option<String>,
    /// Why (a grant's or reversal's reason, an expiry's date).
    pub note: Option<String>,
    pub actor: String,
    pub at: Timestamp,
}

/// A tenant's balance per currency: the sum of `entries` by currency, in
/// currency order (what [`Grant::remaining_cents`] add up to).
pub fn balances<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<(String, i64)> {
    let mut sums = std::collections::BTreeMap::<String, i64>::new();
    for e in entries {
        let s = sums.entry(e.currency.clone()).or_default();
        *s = s.saturating_add(e.amount_cents);
    }
    sums.into_iter().collect()
}

/// A grant an operator asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub currency: String,
    pub amount_cents: i64,
    pub priority: i64,
    pub expires_at: Option<Timestamp>,
    pub reason: String,
}

impl NewGrant {
    /// Checks a grant asked at `now`: a positive amount, an ISO 4217 code,
    /// a priority in [`PRIORITIES`], an expiry after `now`, a reason. Errors
    /// name the field.
    pub fn check(
        currency: &str,
        amount_cents: i64,
        priority: i64,
        expires_at: Option<Timestamp>,
        reason: &str,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let invalid = |field: &str, msg: String| Error::invalid(msg).with_metadata("field", field);
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "currency",
                format!("currency: must be an ISO 4217 code such as \"USD\", got {currency:?}"),
            ));
        }
        if amount_cents <= 0 {
            return Err(invalid("amount", "amount: must be more than zero".to_owned()));
        }
        if !PRIORITIES.contains(&priority) {
            return Err(invalid(
                "priority",
                format!(
                    "priority: must be from {} to {} (higher is used first), got {priority}",
                    PRIORITIES.start(),
                    PRIORITIES.end()
                ),
            ));
        }
        if let Some(e) = expires_at
            && e <= now
        {
            return Err(invalid(
                "expires_at",
                format!("expires_at: must be in the future, got {e}"),
            ));
        }
        Ok(Self {
            currency: currency.to_owned(),
            amount_cents,
            priority,
            expires_at,
            reason: check_reason("reason", reason)?,
        })
    }
}

/// A required reason (printed in the ledger), trimmed, at most
/// [`MAX_REASON`] characters of plain text.
pub fn check_reason(field: &str, reason: &str) -> Result<String, Error> {
    let trimmed = reason.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(format!(
            "{field}: is required (why the credits are given or taken back; the tenant sees it in its ledger)"
        ))
        .with_metadata("field", field));
    }
    crate::text::free_text(field, trimmed, MAX_REASON)?;
    Ok(trimmed.to_owned())
}

/// Whether an entry that took a balance from `before` to `after` crossed
/// the low-balance `threshold` downwards (the `credits.low_balance`
/// webhook fires then, once per crossing).
pub fn crosses_low(before: i64, after: i64, threshold: i64) -> bool {
    before >= threshold && after < threshold
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn grant(id: &str, remaining: i64, priority: i64, expires: Option<&str>) -> Grant {
        Grant {
            id: id.into(),
            currency: "USD".into(),
            amount_cents: remaining,
            remaining_cents: remaining,
            priority,
            expires_at: expires.map(t),
            reason: "r".into(),
            granted_by: "op".into(),
            granted_at: t("2027-01-01T00:00:00Z"),
        }
    }

    const NOW: &str = "2027-03-01T00:00:00Z";

    #[test]
    fn priority_first_then_soonest_expiry_then_never_expiring() {
        let grants = [
            grant("never", 1000, 5, None),
            grant("late", 1000, 5, Some("2027-12-01T00:00:00Z")),
            grant("soon", 300, 5, Some("2027-04-01T00:00:00Z")),
            grant("high", 200, 9, None),
            grant("low", 5000, 0, Some("2027-03-02T00:00:00Z")),
        ];
        let got = allocate(&grants, "USD", 1600, t(NOW));
        let pairs: Vec<(&str, i64)> = got
            .iter()
            .map(|a| (a.grant_id.as_str(), a.amount_cents))
            .collect();
        assert_eq!(
            pairs,
            [("high", 200), ("soon", 300), ("late", 1000), ("never", 100)]
        );
    }

    #[test]
    fn expired_other_currency_and_empty_grants_pay_nothing() {
        let mut eur = grant("eur", 1000, 9, None);
        eur.currency = "EUR".into();
        let grants = [
            grant("expired", 1000, 9, Some(NOW)), // expires exactly now: gone
            eur,
            grant("empty", 0, 9, None),
            grant("ok", 250, 0, Some("2027-03-01T00:00:01Z")),
        ];
        let got = allocate(&grants, "USD", 1000, t(NOW));
        assert_eq!(
            got,
            [Allocation {
                grant_id: "ok".into(),
                amount_cents: 250
            }]
        );
        assert!(allocate(&grants, "USD", 0, t(NOW)).is_empty());
        assert!(allocate(&grants, "JPY", 1000, t(NOW)).is_empty());
    }

    #[test]
    fn a_grant_is_checked_field_by_field() {
        let now = t(NOW);
        let ok = NewGrant::check("USD", 5000, 10, Some(t("2027-04-01T00:00:00Z")), " promo ", now).unwrap();
        assert_eq!(ok.reason, "promo");
        for (currency, amount, priority, expires, reason, field) in [
            ("usd", 1, 0, None, "x", "currency"),
            ("USD", 0, 0, None, "x", "amount"),
            ("USD", -5, 0, None, "x", "amount"),
            ("USD", 1, 1001, None, "x", "priority"),
            ("USD", 1, -1, None, "x", "priority"),
            ("USD", 1, 0, Some(NOW), "x", "expires_at"),
            ("USD", 1, 0, None, "  ", "reason"),
        ] {
            let e = NewGrant::check(currency, amount, priority, expires.map(t), reason, now).unwrap_err();
            assert_eq!(e.metadata.get("field").map(String::as_str), Some(field), "{e:?}");
        }
    }

    #[test]
    fn low_balance_fires_on_the_downward_crossing_only() {
        assert!(crosses_low(1000, 999, 1000));
        assert!(crosses_low(5000, 0, 1000));
        assert!(!crosses_low(999, 500, 1000), "already below");
        assert!(!crosses_low(5000, 1000, 1000), "at the threshold is not below it");
        assert!(!crosses_low(500, 5000, 1000), "going up");
    }

    fn arb_grant() -> impl Strategy<Value = Grant> {
        (
            0i64..5000,
            0i64..4,
            proptest::option::of(0i64..10),
            prop::sample::select(vec!["USD", "EUR"]),
            0i64..5,
        )
            .prop_map(
                |(remaining, priority, expires_days, currency, granted_day)| Grant {
                    id: String::new(),
                    currency: currency.into(),
                    amount_cents: remaining,
                    remaining_cents: remaining,
                    priority,
                    expires_at: expires_days
                        .map(|d| t("2027-02-26T00:00:00Z") + jiff::SignedDuration::from_hours(24 * d)),
                    reason: "r".into(),
                    granted_by: "op".into(),
                    granted_at: t("2027-01-01T00:00:00Z")
                        + jiff::SignedDuration::from_hours(24 * granted_day),
                },
            )
    }

    proptest! {
        /// Whatever the grants and their order: never more than asked, never
        /// more than a grant holds, never a grant of another currency or an
        /// expired one, and everything asked is paid when the usable grants
        /// hold enough; the input order does not matter.
        #[test]
        fn allocation_never_overdraws_or_crosses_currencies(
            grants in proptest::collection::vec(arb_grant(), 0..8),
            amount in 0i64..20_000,
            seed in any::<u64>(),
        ) {
            let grants: Vec<Grant> = grants
                .into_iter()
                .enumerate()
                .map(|(i, mut g)| { g.id = format!("g{i}"); g })
                .collect();
            let now = t(NOW);
            let got = allocate(&grants, "USD", amount, now);
            let total: i64 = got.iter().map(|a| a.amount_cents).sum();
            let usable: i64 = grants.iter().filter(|g| g.usable("USD", now)).map(|g| g.remaining_cents).sum();
            prop_assert_eq!(total, amount.min(usable));
            for a in &got {
                let g = grants.iter().find(|g| g.id == a.grant_id).unwrap();
                prop_assert!(a.amount_cents > 0 && a.amount_cents <= g.remaining_cents);
                prop_assert!(g.usable("USD", now));
            }
            let mut ids: Vec<&str> = got.iter().map(|a| a.grant_id.as_str()).collect();
            ids.dedup();
            prop_assert_eq!(ids.len(), got.len(), "a grant appears once");
            // Shuffled input, same answer.
            let mut shuffled = grants.clone();
            let n = shuffled.len();
            if n > 1 {
                for i in 0..n {
                    let j = (seed as usize).wrapping_mul(i + 7) % n;
                    shuffled.swap(i, j);
                }
            }
            prop_assert_eq!(allocate(&shuffled, "USD", amount, now), got);
        }
    }
}
