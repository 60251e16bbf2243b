//! The contract's names of domain enums. Only `api` knows the wire: the
//! domain names its values for itself (and the store for storage).

use tollgate_domain::Error;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_domain::payment::PaymentRole;
use tollgate_domain::transition::{DeletionReason, TransitionState};

/// `invoiceInvoiceStatus` (the contract spells OVERDUE without the prefix).
pub fn invoice_status(s: InvoiceStatus) -> &'static str {
    match s {
        InvoiceStatus::Pending => "STATUS_PENDING",
        InvoiceStatus::Issued => "STATUS_ISSUED",
        InvoiceStatus::Paid => "STATUS_PAID",
        InvoiceStatus::Overdue => "OVERDUE",
        InvoiceStatus::Refunded => "STATUS_REFUNDED",
        InvoiceStatus::Cancelled => "STATUS_CANCELLED",
    }
}

/// `payment_methodPaymentMethodRole`.
pub fn payment_role(r: PaymentRole) -> &'static str {
    match r {
        PaymentRole::Primary => "PAYMENT_METHOD_ROLE_PRIMARY",
        PaymentRole::Secondary => "PAYMENT_METHOD_ROLE_SECONDARY",
        PaymentRole::Normal => "PAYMENT_METHOD_ROLE_NORMAL",
    }
}

/// A role a request asks for: an enum name (with or without the
/// `PAYMENT_METHOD_ROLE_` prefix, any case) or number; UNKNOWN (0) asks for
/// none. The error names `field`.
pub fn requested_payment_role(field: &str, s: &str) -> Result<Option<PaymentRole>, Error> {
    match s {
        "0" => return Ok(None),
        "1" => return Ok(Some(PaymentRole::Primary)),
        "2" => return Ok(Some(PaymentRole::Secondary)),
        "3" => return Ok(Some(PaymentRole::Normal)),
        _ if s.eq_ignore_ascii_case("PAYMENT_METHOD_ROLE_UNKNOWN") => return Ok(None),
        _ => {}
    }
    let upper = s.to_ascii_uppercase();
    PaymentRole::parse(upper.strip_prefix("PAYMENT_METHOD_ROLE_").unwrap_or(&upper))
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{field}: unknown role {s:?}; use PAYMENT_METHOD_ROLE_PRIMARY, _SECONDARY or _NORMAL"
            ))
        })
}

/// `plan_transitionState`.
pub fn transition_state(s: TransitionState) -> &'static str {
    match s {
        TransitionState::Creating => "STATE_CREATING",
        TransitionState::WaitingForApproval => "STATE_WAITING_FOR_APPROVAL",
        TransitionState::Finished => "STATE_FINISHED",
        TransitionState::Failed => "STATE_FAILED",
    }
}

/// A transition state as a query names it: the contract's name or the bare
/// one (`WAITING_FOR_APPROVAL`), any case.
pub fn parse_transition_state(s: &str) -> Option<TransitionState> {
    let upper = s.to_ascii_uppercase();
    TransitionState::parse(upper.strip_prefix("STATE_").unwrap_or(&upper))
}

const DELETION_REASONS: [DeletionReason; 5] = [
    DeletionReason::Unknown,
    DeletionReason::SwitchToFreePlan,
    DeletionReason::NoLongerNeeded,
    DeletionReason::NotJustifyCosts,
    DeletionReason::DifficultToUse,
];

/// `tenantDeletionReason`.
pub fn deletion_reason(r: DeletionReason) -> &'static str {
    match r {
        DeletionReason::Unknown => "REASON_UNKNOWN",
        DeletionReason::SwitchToFreePlan => "REASON_SWITCH_TO_FREE_PLAN",
        DeletionReason::NoLongerNeeded => "REASON_NO_LONGER_NEEDED",
        DeletionReason::NotJustifyCosts => "REASON_NOT_JUSTIFY_COSTS",
        DeletionReason::DifficultToUse => "REASON_DIFFICULT_TO_USE",
    }
}

/// A deletion reason by its contract name (any case) or number; the error
/// names `field`.
pub fn parse_deletion_reason(field: &str, s: &str) -> Result<DeletionReason, Error> {
    if let Ok(n) = s.parse::<usize>() {
        return DELETION_REASONS
            .get(n)
            .copied()
            .ok_or_else(|| Error::invalid(format!("{field}: unknown deletion reason {s}")));
    }
    DELETION_REASONS
        .into_iter()
        .find(|r| deletion_reason(*r).eq_ignore_ascii_case(s))
        .ok_or_else(|| Error::invalid(format!("{field}: unknown deletion reason {s:?}")))
}

/// The locales of an `Accept-Language` value, most preferred first
/// (lowercase, `_` read as `-`, `q=0` dropped).
pub fn preferred_locales(header: &str) -> Vec<String> {
    let mut entries: Vec<(u32, usize, String)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim().to_ascii_lowercase().replace('_', "-");
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            // Thousandths, so that the sort is on integers.
            let q = (q.clamp(0.0, 1.0) * 1000.0).round() as u32;
            (q > 0).then_some((q, i, tag))
        })
        .collect();
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    entries.into_iter().map(|(_, _, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_round_trip() {
        for r in [PaymentRole::Primary, PaymentRole::Secondary, PaymentRole::Normal] {
            assert_eq!(requested_payment_role("role", payment_role(r)).unwrap(), Some(r));
            assert_eq!(requested_payment_role("role", r.as_str()).unwrap(), Some(r));
        }
        assert_eq!(requested_payment_role("role", "0").unwrap(), None);
        assert_eq!(
            requested_payment_role("role", "payment_method_role_unknown").unwrap(),
            None
        );
        assert_eq!(
            requested_payment_role("role", "2").unwrap(),
            Some(PaymentRole::Secondary)
        );
        assert!(
            requested_payment_role("role", "BOSS")
                .unwrap_err()
                .message
                .starts_with("role:")
        );
        for s in [
            TransitionState::Creating,
            TransitionState::WaitingForApproval,
            TransitionState::Finished,
            TransitionState::Failed,
        ] {
            assert_eq!(parse_transition_state(transition_state(s)), Some(s));
            assert_eq!(parse_transition_state(&s.as_str().to_lowercase()), Some(s));
        }
        for (n, r) in DELETION_REASONS.into_iter().enumerate() {
            assert_eq!(parse_deletion_reason("f", deletion_reason(r)).unwrap(), r);
            assert_eq!(parse_deletion_reason("f", &n.to_string()).unwrap(), r);
        }
        assert!(parse_deletion_reason("f", "5").is_err());
        assert_eq!(invoice_status(InvoiceStatus::Paid), "STATUS_PAID");
        assert_eq!(invoice_status(InvoiceStatus::Overdue), "OVERDUE");
    }

    #[test]
    fn accept_language_orders_by_quality_then_position() {
        assert_eq!(preferred_locales("de_DE;q=0.5, *, en-US"), ["en-us", "de-de"]);
        assert_eq!(preferred_locales("fr;q=0, de"), ["de"]);
        assert!(preferred_locales("").is_empty());
    }
}
