//! What the audit trail records a change as: a closed set of actions.
//!
//! The name of an action (`tenant.create`, `invoice.refund`, …) is stored in
//! every entry and shown by the CLI and the operator API, so it is part of
//! what Tollgate promises: a name is never changed or reused, and the trail
//! written before this set existed reads the same. Entries are read back as
//! text, so a trail holding names this build does not know still reads.

use std::fmt;

use crate::invoice::InvoiceStatus;
use crate::payment::RoleChange;

/// Declares [`AuditAction`] from one list, so that the variants, [`AuditAction::ALL`]
/// and the names cannot disagree.
macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// One kind of audited change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(Self::$variant,)*];

            /// The stored and shown name, `object.verb`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

actions! {
    TenantCreate => "tenant.create",
    /// Suspended for invoices OVERDUE past the suspension delay (dunning).
    TenantSuspended => "tenant.suspended",
    /// A suspension lifted: the last unpaid invoice paid or cancelled, or by the operator.
    TenantReinstated => "tenant.reinstated",
    NamespaceCreate => "namespace.create",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    OperatorTokenCreate => "operator_token.create",
    OperatorTokenRevoke => "operator_token.revoke",
    QuotaCreate => "quota.create",
    QuotaReplace => "quota.replace",
    QuotaDelete => "quota.delete",
    CatalogPublish => "catalog.publish",
    /// An operator scheduled a tenant's move to a newer catalog version.
    CatalogMoveSchedule => "catalog_move.schedule",
    CatalogMoveCancel => "catalog_move.cancel",
    /// The move took effect: a subscription at the new version started.
    CatalogMoveApply => "catalog_move.apply",
    /// An operator set how a tenant is taxed.
    TenantTax => "tenant.tax",
    /// An operator granted a tenant prepaid credits.
    CreditsGrant => "credits.grant",
    /// An operator took back what is left of a grant (or part of it).
    CreditsReverse => "credits.reverse",
    /// A tenant (or an operator) set its low-balance threshold.
    CreditsSettings => "credits.settings",
    /// An operator changed the currency a tenant is invoiced in.
    TenantCurrency => "tenant.currency",
    /// The subscription the bootstrap gives a tenant from before plans.
    SubscriptionCreate => "subscription.create",
    AddonSubscribe => "addon.subscribe",
    AddonUnsubscribe => "addon.unsubscribe",
    PaymentMethodCreate => "payment_method.create",
    PaymentMethodPrimary => "payment_method.primary",
    PaymentMethodSecondary => "payment_method.secondary",
    PaymentMethodSwapPrimary => "payment_method.swap_primary",
    PaymentMethodDelete => "payment_method.delete",
    PlanTransitionCreate => "plan_transition.create",
    PlanTransitionApprove => "plan_transition.approve",
    PlanTransitionReject => "plan_transition.reject",
    PlanTransitionCancel => "plan_transition.cancel",
    PlanTransitionFinish => "plan_transition.finish",
    PlanTransitionFail => "plan_transition.fail",
    UsageReplay => "usage.replay",
    CouponCreate => "coupon.create",
    CouponApply => "coupon.apply",
    InvoiceFinalize => "invoice.finalize",
    /// A charge attempt settled without moving the invoice, and succeeded…
    InvoiceCharged => "invoice.charged",
    /// …or did not.
    InvoiceChargeFailed => "invoice.charge_failed",
    /// The invoice moved to a status (after a charge, at the end of a charge
    /// round, by the operator): one action per status, see
    /// [`AuditAction::invoice_status`].
    InvoicePending => "invoice.pending",
    InvoiceIssued => "invoice.issued",
    InvoicePaid => "invoice.paid",
    InvoiceOverdue => "invoice.overdue",
    InvoiceRefunded => "invoice.refunded",
    InvoiceCancelled => "invoice.cancelled",
    /// A refund through the payment provider succeeded…
    InvoiceRefund => "invoice.refund",
    /// …or the provider refused it.
    InvoiceRefundFailed => "invoice.refund_failed",
    /// The operator asked for a charge now (an unpaid invoice, OVERDUE ones too).
    InvoiceChargeScheduled => "invoice.charge_scheduled",
    /// The payment provider reported a dispute (chargeback) of the charge
    /// that paid the invoice.
    InvoiceDisputed => "invoice.disputed",
    WebhookEndpointCreate => "webhook_endpoint.create",
    WebhookEndpointDelete => "webhook_endpoint.delete",
    WebhookEndpointRotateSecret => "webhook_endpoint.rotate_secret",
    WebhookEndpointEnable => "webhook_endpoint.enable",
    /// Disabled by Tollgate: every attempt failed for longer than the operator allows.
    WebhookEndpointDisabled => "webhook_endpoint.disabled",
    /// A delivery's event sent to its endpoint again, by hand.
    WebhookRedeliver => "webhook_delivery.redeliver",
    AlertCreate => "alert.create",
    AlertDelete => "alert.delete",
}

impl AuditAction {
    /// The action with this name, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    /// An invoice moving to `status`: `invoice.` and the status in lower case.
    pub fn invoice_status(status: InvoiceStatus) -> Self {
        match status {
            InvoiceStatus::Pending => Self::InvoicePending,
            InvoiceStatus::Issued => Self::InvoiceIssued,
            InvoiceStatus::Paid => Self::InvoicePaid,
            InvoiceStatus::Overdue => Self::InvoiceOverdue,
            InvoiceStatus::Refunded => Self::InvoiceRefunded,
            InvoiceStatus::Cancelled => Self::InvoiceCancelled,
        }
    }

    /// A payment-method change, by what it asks for.
    pub fn payment_method(change: &RoleChange) -> Self {
        match change {
            RoleChange::Create { .. } => Self::PaymentMethodCreate,
            RoleChange::MakePrimary(_) => Self::PaymentMethodPrimary,
            RoleChange::MakeSecondary(_) => Self::PaymentMethodSecondary,
            RoleChange::Swap(_) => Self::PaymentMethodSwapPrimary,
            RoleChange::Delete { .. } => Self::PaymentMethodDelete,
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// `^[a-z_]+\.[a-z_]+$`: one object, one verb, lower case.
    fn well_formed(name: &str) -> bool {
        let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        matches!(name.split_once('.'), Some((object, verb)) if part(object) && part(verb))
    }

    #[test]
    fn every_action_has_a_unique_well_formed_name() {
        let mut seen = HashSet::new();
        for &action in AuditAction::ALL {
            let name = action.as_str();
            assert!(well_formed(name), "{action:?}: {name:?}");
            assert!(seen.insert(name), "{action:?}: {name:?} is taken");
            assert_eq!(AuditAction::parse(name), Some(action));
            assert_eq!(action.to_string(), name);
        }
        assert_eq!(AuditAction::parse("invoice.unknown"), None);
        for bad in [
            "",
            "tenant",
            "tenant.",
            ".create",
            "Tenant.create",
            "tenant.create.x",
            "a-b.c",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }

    /// The names of invoice statuses are what they were when they were
    /// spelt `invoice.{status}` at each site.
    #[test]
    fn an_invoice_status_is_audited_under_its_own_name() {
        for status in [
            InvoiceStatus::Pending,
            InvoiceStatus::Issued,
            InvoiceStatus::Paid,
            InvoiceStatus::Overdue,
            InvoiceStatus::Refunded,
            InvoiceStatus::Cancelled,
        ] {
            assert_eq!(
                AuditAction::invoice_status(status).as_str(),
                format!("invoice.{}", status.as_str().to_ascii_lowercase())
            );
        }
    }

    /// Names are stored: none may change. These are the names the trail
    /// held when the set was closed.
    #[test]
    fn names_are_the_stored_ones() {
        let mut names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "addon.subscribe",
                "addon.unsubscribe",
                "alert.create",
                "alert.delete",
                "catalog.publish",
                "catalog_move.apply",
                "catalog_move.cancel",
                "catalog_move.schedule",
                "coupon.apply",
                "coupon.create",
                "credits.grant",
                "credits.reverse",
                "credits.settings",
                "invoice.cancelled",
                "invoice.charge_failed",
                "invoice.charge_scheduled",
                "invoice.charged",
                "invoice.disputed",
                "invoice.finalize",
                "invoice.issued",
                "invoice.overdue",
                "invoice.paid",
                "invoice.pending",
                "invoice.refund",
                "invoice.refund_failed",
                "invoice.refunded",
                "namespace.create",
                "operator_token.create",
                "operator_token.revoke",
                "payment_method.create",
                "payment_method.delete",
                "payment_method.primary",
                "payment_method.secondary",
                "payment_method.swap_primary",
                "plan_transition.approve",
                "plan_transition.cancel",
                "plan_transition.create",
                "plan_transition.fail",
                "plan_transition.finish",
                "plan_transition.reject",
                "quota.create",
                "quota.delete",
                "quota.replace",
                "subscription.create",
                "tenant.create",
                "tenant.currency",
                "tenant.reinstated",
                "tenant.suspended",
                "tenant.tax",
                "token.create",
                "token.revoke",
                "usage.replay",
                "webhook_delivery.redeliver",
                "webhook_endpoint.create",
                "webhook_endpoint.delete",
                "webhook_endpoint.disabled",
                "webhook_endpoint.enable",
                "webhook_endpoint.rotate_secret",
            ]
        );
    }
}
