//! Webhooks out: the events Tollgate tells a platform about, how a delivery
//! is signed (the Standard Webhooks specification), which URLs may receive
//! them and how failed deliveries are retried.
//!
//! An event's type is part of what Tollgate promises, as an audit action's
//! name is: a type is never renamed or reused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use sha2::Sha256;

use crate::Error;
use crate::audit::AuditAction;

/// Declares [`EventType`] from one list, so that the variants, [`EventType::ALL`]
/// and the names cannot disagree.
macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
        }

        impl EventType {
            /// Every type.
            pub const ALL: &'static [EventType] = &[$(Self::$variant,)*];

            /// The name sent as the payload's `type`, `object.what_happened`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    /// A billing period closed: its invoice is final (ISSUED, or PAID when
    /// nothing is due). Data: the invoice.
    InvoiceFinalized => "invoice.finalized",
    /// The invoice was paid (by a charge, a provider's late answer, or the
    /// operator). Data: the invoice.
    InvoicePaid => "invoice.paid",
    /// A charge attempt of the invoice was declined or could not be made.
    /// Data: the invoice.
    InvoicePaymentFailed => "invoice.payment_failed",
    /// Every attempt of a charge round failed: the invoice is OVERDUE.
    /// Data: the invoice.
    InvoiceOverdue => "invoice.overdue",
    /// The invoice was refunded in full. Data: the invoice.
    InvoiceRefunded => "invoice.refunded",
    /// A refund, whole or partial, succeeded and its credit note is issued.
    /// Data: the credit note.
    CreditNoteCreated => "credit_note.created",
    /// A plan transition waits for the operator's approval. Data: the transition.
    PlanTransitionWaitingForApproval => "plan_transition.waiting_for_approval",
    /// A plan transition finished: the tenant is on its new plan. Data: the transition.
    PlanTransitionFinished => "plan_transition.finished",
    /// A plan transition failed (refused by the operator, or by the payment
    /// provider). Data: the transition.
    PlanTransitionFailed => "plan_transition.failed",
    /// A payment method was added, deleted or changed roles. Data: the
    /// tenant's payment methods after the change.
    PaymentMethodChanged => "payment_method.changed",
    /// A billing period started (sent when the one before it is closed).
    /// Data: the tenant's subscriptions.
    SubscriptionPeriodStarted => "subscription.period_started",
    /// The tenant was suspended for invoices left unpaid. Data: the tenant.
    TenantSuspended => "tenant.suspended",
    /// The tenant's suspension was lifted. Data: the tenant.
    TenantReinstated => "tenant.reinstated",
    /// A quota key's usage crossed one of its quota object's thresholds.
    /// Data: the key, the threshold, usage and limit.
    QuotaThresholdCrossed => "quota.threshold_crossed",
    /// A tenant's usage alert was triggered. Data: the alert and what it measured.
    UsageAlertTriggered => "usage.alert_triggered",
    /// An entry of the tenant's credits ledger (an invoice paid, an expiry,
    /// a reversal) took its balance in a currency below its low-balance
    /// threshold. Data: `currency`, `balance_cents`, `threshold_cents`.
    CreditsLowBalance => "credits.low_balance",
}

impl EventType {
    /// The type named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// The events an audited change is, in the same transaction. The events
    /// that no audit action tells apart (a transition created waiting for
    /// approval, a failed charge attempt, a credit note, a refund in full)
    /// are emitted where they happen.
    pub fn for_audit(action: AuditAction) -> &'static [EventType] {
        match action {
            AuditAction::InvoiceFinalize => &[Self::InvoiceFinalized, Self::SubscriptionPeriodStarted],
            AuditAction::InvoicePaid => &[Self::InvoicePaid],
            AuditAction::InvoiceOverdue => &[Self::InvoiceOverdue],
            AuditAction::PlanTransitionFinish => &[Self::PlanTransitionFinished],
            AuditAction::PlanTransitionFail
            | AuditAction::PlanTransitionReject
            | AuditAction::PlanTransitionCancel => &[Self::PlanTransitionFailed],
            AuditAction::PaymentMethodCreate
            | AuditAction::PaymentMethodPrimary
            | AuditAction::PaymentMethodSecondary
            | AuditAction::PaymentMethodSwapPrimary
            | AuditAction::PaymentMethodDelete => &[Self::PaymentMethodChanged],
            AuditAction::TenantSuspended => &[Self::TenantSuspended],
            AuditAction::TenantReinstated => &[Self::TenantReinstated],
            _ => &[],
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix of a signing secret, as the Standard Webhooks specification spells it.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret from 32 random bytes: `whsec_` and their base64.
pub fn secret_from(bytes: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key a secret signs with: the bytes after `whsec_`, base64-decoded.
fn key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// One signature: `v1,` and the base64 of HMAC-SHA256 over `id.timestamp.body`
/// keyed with the secret's bytes. `None` for a malformed secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret (the current
/// one, and the previous one during a rotation), separated by spaces.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a `v1` signature of the message made with
/// `secret` (what a receiver checks; constant time per signature).
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(key) = key(secret) else { return false };
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            let Ok(sig) = STANDARD.decode(sig) else {
                return false;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        })
}

/// How long the previous secret still signs after a rotation, so that a
/// receiver can move to the new one without losing an event.
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// The waits between attempts of one delivery: after the first attempt
/// fails, 5 s; then 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. A delivery whose
/// last attempt fails is FAILED (8 attempts over about 27 hours).
pub const RETRY_SCHEDULE: [SignedDuration; 7] = [
    SignedDuration::from_secs(5),
    SignedDuration::from_mins(5),
    SignedDuration::from_mins(30),
    SignedDuration::from_hours(2),
    SignedDuration::from_hours(5),
    SignedDuration::from_hours(10),
    SignedDuration::from_hours(10),
];

/// How long to wait after the `attempts`-th failed attempt, or `None` when
/// the delivery has had all its attempts.
pub fn retry_after(attempts: u32) -> Option<SignedDuration> {
    let i = usize::try_from(attempts).ok()?.checked_sub(1)?;
    RETRY_SCHEDULE.get(i).copied()
}

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 256;

/// An endpoint's URL, checked: `http` or `https`, a host, no credentials,
/// no fragment, at most [`MAX_URL_LEN`] bytes; an IP literal must be
/// public unless `allow_private`. A host name is checked again each time it
/// is resolved, when delivering.
pub fn endpoint_url(field: &str, raw: &str, allow_private: bool) -> Result<url::Url, Error> {
    let bad = |why: &str| Error::invalid(format!("{field}: {why}")).with_metadata("field", field);
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad("is required"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(bad(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (sign-in is by the webhook signature)",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    let ip = match url.host() {
        None => return Err(bad("has no host")),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (d == "localhost" || d.ends_with(".localhost")) {
                return Err(private(field, "localhost"));
            }
            None
        }
    };
    if let Some(ip) = ip
        && !allow_private
        && !is_public(ip)
    {
        return Err(private(field, &ip.to_string()));
    }
    Ok(url)
}

fn private(field: &str, what: &str) -> Error {
    Error::invalid(format!(
        "{field}: {what} is a loopback, link-local or private address; webhooks go to public \
         addresses unless the operator allows private ones (--webhook-allow-private)"
    ))
    .with_reason(crate::Reason::WebhookUrlRefused)
    .with_metadata("field", field)
}

/// Whether a delivery may go to `ip` without `--webhook-allow-private`: not
/// loopback, private (RFC 1918, unique local), link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation or reserved, and not an
/// IPv4 address of those written as IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = ip.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
            if nat64 {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || ip == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)
                || (s[0..6] == [0; 6])) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// The event types an endpoint asks for, checked: known names, no
/// duplicates; empty means every type.
pub fn event_filter(field: &str, names: &[String]) -> Result<Vec<EventType>, Error> {
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let t = EventType::parse(name.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "{f}: {name:?} is not an event type; one of {}",
                EventType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_metadata("field", f.clone())
        })?;
        if out.contains(&t) {
            return Err(Error::invalid(format!("{f}: {name:?} is listed twice")).with_metadata("field", f));
        }
        out.push(t);
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_type_has_a_unique_name_that_parses_back() {
        let mut seen = HashSet::new();
        for &t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "{t:?}");
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(t.as_str().contains('.'), "{t:?}");
        }
        assert_eq!(EventType::parse("invoice.unknown"), None);
    }

    /// The example of the Standard Webhooks specification (and of its
    /// reference libraries), signed and verified.
    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, ts, body, &sig));
        assert!(verify(secret, id, ts, body, &format!("v1,bm90IGl0 {sig}")));
        assert!(!verify(secret, id, ts + 1, body, &sig));
        assert!(!verify(secret, id, ts, b"{}", &sig));
        assert!(!verify("whsec_b3RoZXI=", id, ts, body, &sig));
        assert_eq!(sign("not-a-secret", id, ts, body), None);
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let old = secret_from(&[1; 32]);
        let new = secret_from(&[2; 32]);
        let header = signature_header([new.as_str(), old.as_str()], "msg_1", 5, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "msg_1", 5, b"x", &header));
        assert!(verify(&new, "msg_1", 5, b"x", &header));
        assert!(secret_from(&[0; 32]).starts_with("whsec_"));
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        assert_eq!(retry_after(0), None);
        assert_eq!(retry_after(1), Some(SignedDuration::from_secs(5)));
        assert_eq!(retry_after(7), Some(SignedDuration::from_hours(10)));
        assert_eq!(retry_after(8), None);
        let total: i64 = RETRY_SCHEDULE.iter().map(|d| d.as_secs()).sum();
        assert_eq!(total, 5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000);
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://localhost:8080/",
            "http://api.localhost/",
        ] {
            let e = endpoint_url("url", url, false).unwrap_err();
            assert_eq!(e.reason, crate::Reason::WebhookUrlRefused, "{url}");
            assert!(endpoint_url("url", url, true).is_ok(), "{url}");
        }
        for url in [
            "https://hooks.example.com/tollgate",
            "http://93.184.216.34/",
            "https://[2606:4700::1]/x",
        ] {
            assert!(endpoint_url("url", url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn malformed_urls_name_the_field() {
        for (url, why) in [
            ("", "required"),
            ("ftp://example.com/", "http or https"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/#x", "fragment"),
            ("not a url", "not a URL"),
        ] {
            let e = endpoint_url("url", url, true).unwrap_err();
            assert!(
                e.message.starts_with("url: ") && e.message.contains(why),
                "{url}: {}",
                e.message
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(endpoint_url("url", &long, true).is_err());
    }

    #[test]
    fn filters_name_known_types_once() {
        assert_eq!(event_filter("events", &[]).unwrap(), vec![]);
        assert_eq!(
            event_filter("events", &["invoice.paid".into(), "invoice.finalized".into()]).unwrap(),
            vec![EventType::InvoiceFinalized, EventType::InvoicePaid]
        );
        let e = event_filter("events", &["invoice.paid".into(), "nope".into()]).unwrap_err();
        assert!(e.message.starts_with("events[1]: "), "{}", e.message);
        let e = event_filter("events", &["invoice.paid".into(), "invoice.paid".into()]).unwrap_err();
        assert!(e.message.contains("twice"), "{}", e.message);
    }
}
