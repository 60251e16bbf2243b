//! The kinds of failure every layer speaks, and the one table of reasons.
//!
//! The `api` crate maps each [`ErrorKind`] to exactly one HTTP status and gRPC
//! code; nothing else decides a status. Every error also carries a [`Reason`]:
//! a stable, machine-readable name that tells apart cases of one kind (a quota
//! refusal from a rate limit, one 409 from another). The API sends it as the
//! `reason` of a `google.rpc.ErrorInfo`; its UPPER_SNAKE name is its identity
//! and never changes once published.

use std::collections::BTreeMap;

/// What went wrong, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is malformed or violates a validation rule.
    InvalidArgument,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// No credential, or one that is unknown, expired or revoked.
    Unauthenticated,
    /// A valid credential without the right to do this.
    PermissionDenied,
    /// The named object does not exist (for this tenant).
    NotFound,
    /// An object with this name already exists.
    AlreadyExists,
    /// The request is valid but the current state forbids it.
    FailedPrecondition,
    /// A quota or rate limit refuses the request.
    ResourceExhausted,
    /// The HTTP method is not served on this path.
    Unimplemented,
    /// A bug or an unexpected failure; details are logged, not returned.
    Internal,
    /// A dependency (the database) is not reachable right now.
    Unavailable,
    /// The request took too long.
    DeadlineExceeded,
}

/// Declares [`Reason`] from one table: variant = "NAME" (kind), with its doc.
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal ($kind:ident),)*) => {
        /// A stable, machine-readable reason for an error: the one table of
        /// reasons.
        ///
        /// Each reason is a case of exactly one [`ErrorKind`] ([`Reason::kind`]),
        /// so it never contradicts the status. Every kind has a default reason
        /// ([`Reason::default_for`]); sites that a program must tell apart use a
        /// specific one. Every 409 and every 429 carries a specific reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in the order of the table.
            pub const ALL: &[Reason] = &[$(Self::$variant),*];

            /// The stable UPPER_SNAKE name: the reason's identity on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The kind of error this reason is a case of.
            pub const fn kind(self) -> ErrorKind {
                match self {
                    $(Self::$variant => ErrorKind::$kind,)*
                }
            }
        }
    };
}

reasons! {
    /// The request is malformed or breaks a validation rule; the message (and the `field` metadata
    /// where known) names the field.
    InvalidArgument = "INVALID_ARGUMENT" (InvalidArgument),
    /// A provider webhook whose signature header is missing, malformed, does not match the body signed
    /// with the endpoint's secret, or was signed outside the tolerance (a replay).
    WebhookSignatureInvalid = "WEBHOOK_SIGNATURE_INVALID" (InvalidArgument),
    /// A webhook endpoint's URL names a loopback, link-local or private address (or `localhost`),
    /// which the operator has not allowed (`--webhook-allow-private`); nothing was stored.
    WebhookUrlRefused = "WEBHOOK_URL_REFUSED" (InvalidArgument),
    /// The request body is larger than the server accepts.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE" (PayloadTooLarge),
    /// No credential, or one that is malformed, unknown, expired or revoked.
    Unauthenticated = "UNAUTHENTICATED" (Unauthenticated),
    /// The credential may not do this (its role, its namespace scope, another tenant's object).
    PermissionDenied = "PERMISSION_DENIED" (PermissionDenied),
    /// The add-on is not available on the tenant's plan; another plan would allow it.
    AddonNotAvailable = "ADDON_NOT_AVAILABLE" (PermissionDenied),
    /// The tenant is suspended for invoices left unpaid past the suspension delay: its quota
    /// reservations are refused until they are paid (metadata: `invoices`, `amount_cents`, `currency`).
    TenantSuspended = "TENANT_SUSPENDED" (PermissionDenied),
    /// An operator-read token asked the operator API for a change (operator-admin may).
    OperatorReadOnly = "OPERATOR_READ_ONLY" (PermissionDenied),
    /// The operator API is off: no operator token exists and the server has no bootstrap credential.
    OperatorApiDisabled = "OPERATOR_API_DISABLED" (PermissionDenied),
    /// The named object does not exist (for this tenant).
    NotFound = "NOT_FOUND" (NotFound),
    /// No route serves this path: a wrong URL, not a missing object.
    RouteNotFound = "ROUTE_NOT_FOUND" (NotFound),
    /// The provider's webhook endpoint is off: the server has no signing secret for it.
    WebhookNotConfigured = "WEBHOOK_NOT_CONFIGURED" (NotFound),
    /// Generic, never sent: an object with this name already exists. Each site names its object with a
    /// specific reason below.
    AlreadyExists = "ALREADY_EXISTS" (AlreadyExists),
    /// A tenant with this name already exists.
    TenantExists = "TENANT_EXISTS" (AlreadyExists),
    /// The tenant already has a namespace with this name.
    NamespaceExists = "NAMESPACE_EXISTS" (AlreadyExists),
    /// The namespace already has a quota object with this name.
    QuotaObjectExists = "QUOTA_OBJECT_EXISTS" (AlreadyExists),
    /// The tenant already has a payment method with this name.
    PaymentMethodExists = "PAYMENT_METHOD_EXISTS" (AlreadyExists),
    /// A coupon with this code already exists.
    CouponExists = "COUPON_EXISTS" (AlreadyExists),
    /// The tenant already has a usage alert with this name.
    AlertExists = "ALERT_EXISTS" (AlreadyExists),
    /// A live operator token has this name.
    OperatorTokenExists = "OPERATOR_TOKEN_EXISTS" (AlreadyExists),
    /// The coupon is already applied to the tenant from the same start.
    CouponAlreadyApplied = "COUPON_ALREADY_APPLIED" (AlreadyExists),
    /// Generic, never sent: the current state forbids the request. Each site names the state with a
    /// specific reason below.
    FailedPrecondition = "FAILED_PRECONDITION" (FailedPrecondition),
    /// The request id was already used for a different request (another key or amount) within the
    /// idempotency window.
    RequestIdReused = "REQUEST_ID_REUSED" (FailedPrecondition),
    /// The tenant's plan changed (a plan transition finished) while an add-on was being changed; a
    /// retry decides against the new plan.
    PlanChanged = "PLAN_CHANGED" (FailedPrecondition),
    /// The add-on is included in the tenant's plan and cannot be unsubscribed.
    AddonIncluded = "ADDON_INCLUDED" (FailedPrecondition),
    /// The tenant already has an open plan transition; another can start once it finishes or fails.
    TransitionAlreadyOpen = "TRANSITION_ALREADY_OPEN" (FailedPrecondition),
    /// The plan transition's state does not allow this (approving or rejecting one no longer waiting
    /// for approval, cancelling a closed one).
    TransitionWrongState = "TRANSITION_WRONG_STATE" (FailedPrecondition),
    /// The worker finishing or failing a plan transition no longer holds its lease (cancelled, or taken
    /// over by another worker).
    TransitionLeaseLost = "TRANSITION_LEASE_LOST" (FailedPrecondition),
    /// The payment method is the tenant's only one, so it cannot stop being the primary.
    OnlyPaymentMethod = "ONLY_PAYMENT_METHOD" (FailedPrecondition),
    /// The tenant's only payment method cannot be deleted on a paid plan.
    PaymentMethodRequired = "PAYMENT_METHOD_REQUIRED" (FailedPrecondition),
    /// A swap needs a primary payment method and the tenant has none.
    NoPrimaryPaymentMethod = "NO_PRIMARY_PAYMENT_METHOD" (FailedPrecondition),
    /// A swap needs a secondary payment method and the tenant has none.
    NoSecondaryPaymentMethod = "NO_SECONDARY_PAYMENT_METHOD" (FailedPrecondition),
    /// A swap names a payment method that is neither the primary nor the secondary.
    PaymentMethodNotPrimaryOrSecondary = "PAYMENT_METHOD_NOT_PRIMARY_OR_SECONDARY" (FailedPrecondition),
    /// A store caller tried to create a payment method through a role change instead of a creation (a
    /// caller bug; the API never does).
    UnsupportedPaymentChange = "UNSUPPORTED_PAYMENT_CHANGE" (FailedPrecondition),
    /// The invoice's status does not allow the requested change (refunding an unpaid invoice,
    /// cancelling a paid one).
    InvoiceWrongStatus = "INVOICE_WRONG_STATUS" (FailedPrecondition),
    /// The invoice is being charged right now; retry once the charge has finished.
    InvoiceBeingCharged = "INVOICE_BEING_CHARGED" (FailedPrecondition),
    /// The invoice has been refunded already.
    InvoiceAlreadyRefunded = "INVOICE_ALREADY_REFUNDED" (FailedPrecondition),
    /// A refund of the invoice is in progress, or was interrupted and resumes once its lease expires.
    RefundInProgress = "REFUND_IN_PROGRESS" (FailedPrecondition),
    /// The invoice has no successful charge with a provider reference to refund.
    NothingToRefund = "NOTHING_TO_REFUND" (FailedPrecondition),
    /// A refund's idempotency key is already used by another refund (a caller bug).
    RefundKeyReused = "REFUND_KEY_REUSED" (FailedPrecondition),
    /// The operator asked to reinstate a tenant that is not suspended.
    TenantNotSuspended = "TENANT_NOT_SUSPENDED" (FailedPrecondition),
    /// The refund asks for more than what remains refundable of the invoice's charge (what it took,
    /// less its refunds that succeeded or are pending); the message says how much remains.
    RefundExceedsRemaining = "REFUND_EXCEEDS_REMAINING" (FailedPrecondition),
    /// The payment provider refused the refund; its credit note is recorded FAILED and counts for
    /// nothing (nothing was refunded).
    RefundRefused = "REFUND_REFUSED" (FailedPrecondition),
    /// The tenant (or the operator) has as many webhook endpoints as it may (the message says how
    /// many); delete one first.
    WebhookEndpointLimit = "WEBHOOK_ENDPOINT_LIMIT" (FailedPrecondition),
    /// The tenant has as many usage alerts as it may (the message says how many); delete one first.
    AlertLimit = "ALERT_LIMIT" (FailedPrecondition),
    /// The reversal asks for more of a credit grant than it has left (the message says how much is
    /// left), or an invoice's credits were computed from a grant that changed since.
    CreditsExceedRemaining = "CREDITS_EXCEED_REMAINING" (FailedPrecondition),
    /// The tenant holds as many credit grants with something left as it may; reverse some first.
    CreditGrantLimit = "CREDIT_GRANT_LIMIT" (FailedPrecondition),
    /// The worker charging an invoice no longer holds its lease.
    InvoiceLeaseLost = "INVOICE_LEASE_LOST" (FailedPrecondition),
    /// A tenant's currency cannot change while it has unpaid (ISSUED or OVERDUE) invoices; the
    /// message names them. Pay or cancel them first.
    CurrencyLocked = "CURRENCY_LOCKED" (FailedPrecondition),
    /// The catalog version a tenant would move to does not price the tenant's currency; change
    /// the currency first (while nothing is unpaid) or publish its prices in that currency.
    CurrencyNotPriced = "CURRENCY_NOT_PRICED" (FailedPrecondition),
    /// Generic, never sent: a limit refuses the request. Each site names the limit with a specific
    /// reason below.
    ResourceExhausted = "RESOURCE_EXHAUSTED" (ResourceExhausted),
    /// A quota reservation would take a key past its limit (or past the most a key can count); nothing
    /// was reserved.
    QuotaExceeded = "QUOTA_EXCEEDED" (ResourceExhausted),
    /// The tenant's API rate limit for this operation is spent; retry after `Retry-After` seconds.
    RateLimited = "RATE_LIMITED" (ResourceExhausted),
    /// The path is served, but not with this HTTP method.
    MethodNotAllowed = "METHOD_NOT_ALLOWED" (Unimplemented),
    /// A bug or an unexpected failure; details are logged, not returned.
    Internal = "INTERNAL" (Internal),
    /// The database cannot take the request now; nothing was changed and a retry may succeed.
    Unavailable = "UNAVAILABLE" (Unavailable),
    /// The readiness check failed: the database cannot take writes now.
    NotReady = "NOT_READY" (Unavailable),
    /// The server has too many open connections; the request was not read.
    Overloaded = "OVERLOADED" (Unavailable),
    /// The payment provider cannot be reached; nothing was changed.
    PaymentProviderUnavailable = "PAYMENT_PROVIDER_UNAVAILABLE" (Unavailable),
    /// The request took longer than the server allows.
    DeadlineExceeded = "DEADLINE_EXCEEDED" (DeadlineExceeded),
}

impl Reason {
    /// The reason named `name`, exactly as [`Reason::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// The reason an error of `kind` carries unless its site names a specific one.
    pub const fn default_for(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => Self::InvalidArgument,
            ErrorKind::PayloadTooLarge => Self::PayloadTooLarge,
            ErrorKind::Unauthenticated => Self::Unauthenticated,
            ErrorKind::PermissionDenied => Self::PermissionDenied,
            ErrorKind::NotFound => Self::NotFound,
            ErrorKind::AlreadyExists => Self::AlreadyExists,
            ErrorKind::FailedPrecondition => Self::FailedPrecondition,
            ErrorKind::ResourceExhausted => Self::ResourceExhausted,
            ErrorKind::Unimplemented => Self::MethodNotAllowed,
            ErrorKind::Internal => Self::Internal,
            ErrorKind::Unavailable => Self::Unavailable,
            ErrorKind::DeadlineExceeded => Self::DeadlineExceeded,
        }
    }

    /// Whether this is its kind's default reason rather than a specific one.
    pub const fn is_default(self) -> bool {
        Self::default_for(self.kind()) as u8 == self as u8
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a message that names the field or object at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    /// Why, for programs: [`Reason::default_for`] the kind unless set.
    pub reason: Reason,
    pub message: String,
    /// Machine-readable facts about the failure (the quota key and its limit,
    /// the field at fault, …); often empty.
    pub metadata: BTreeMap<String, String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason: Reason::default_for(kind),
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// The same error with a specific reason, which must be a case of its kind.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        debug_assert_eq!(
            reason.kind(),
            self.kind,
            "reason {reason} is not a case of {:?}",
            self.kind
        );
        self.reason = reason;
        self
    }

    /// The same error with one more machine-readable fact.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn exhausted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const KINDS: [ErrorKind; 12] = [
        ErrorKind::InvalidArgument,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::FailedPrecondition,
        ErrorKind::ResourceExhausted,
        ErrorKind::Unimplemented,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
        ErrorKind::DeadlineExceeded,
    ];

    #[test]
    fn every_reason_has_a_unique_upper_snake_name_that_round_trips() {
        let mut seen = BTreeSet::new();
        for &reason in Reason::ALL {
            let name = reason.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                !name.starts_with('_')
                    && !name.ends_with('_')
                    && !name.contains("__")
                    && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name:?} is not UPPER_SNAKE"
            );
            assert_eq!(Reason::parse(name), Some(reason));
            assert_eq!(reason.to_string(), name);
        }
        assert_eq!(Reason::parse("quota_exceeded"), None);
        assert_eq!(Reason::parse(""), None);
    }

    #[test]
    fn every_kind_defaults_to_a_reason_of_its_own() {
        for kind in KINDS {
            let reason = Reason::default_for(kind);
            assert_eq!(reason.kind(), kind, "{reason}");
            assert!(reason.is_default());
            let error = Error::new(kind, "x");
            assert_eq!((error.reason, error.metadata.len()), (reason, 0));
        }
        let defaults = Reason::ALL.iter().filter(|r| r.is_default()).count();
        assert_eq!(defaults, KINDS.len(), "one default per kind");
    }

    #[test]
    fn builders_set_the_reason_and_metadata() {
        let e = Error::exhausted("over")
            .with_reason(Reason::QuotaExceeded)
            .with_metadata("limit", "4")
            .with_metadata("current", "3");
        assert_eq!(
            (e.kind, e.reason),
            (ErrorKind::ResourceExhausted, Reason::QuotaExceeded)
        );
        assert!(!e.reason.is_default());
        let metadata: Vec<(&str, &str)> = e.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(metadata, [("current", "3"), ("limit", "4")]);
        assert_eq!(e.to_string(), "over");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not a case of")]
    fn a_reason_of_another_kind_is_a_bug() {
        let _ = Error::precondition("x").with_reason(Reason::TenantExists);
    }
}
