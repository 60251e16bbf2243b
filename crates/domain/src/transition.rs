//! Plan transitions: the state machine and what a request must carry.
//!
//! ```text
//! CREATING ──────────────▶ FINISHED
//!    │                        ▲
//!    └──────▶ FAILED          │ (worker)
//! WAITING_FOR_APPROVAL ─(approve)─▶ CREATING
//!    └─(reject)─▶ FAILED
//! ```

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::catalog::{Catalog, Plan, RequiredField};
use crate::contact::Contact;

/// The contract's `plan_transitionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransitionState {
    Creating,
    WaitingForApproval,
    Finished,
    Failed,
}

impl TransitionState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::WaitingForApproval => "WAITING_FOR_APPROVAL",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }

    /// A state by its stored name (`CREATING`, …).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Creating,
            Self::WaitingForApproval,
            Self::Finished,
            Self::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// How people read the state ("waiting for approval").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Creating => "being executed",
            Self::WaitingForApproval => "waiting for approval",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    /// Open transitions block new ones (one open transition per tenant).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Creating | Self::WaitingForApproval)
    }

    /// Whether the machine allows `self → next`.
    pub fn can_become(self, next: TransitionState) -> bool {
        use TransitionState::*;
        matches!(
            (self, next),
            (Creating, Finished)
                | (Creating, Failed)
                | (WaitingForApproval, Creating)
                | (WaitingForApproval, Failed)
        )
    }

    /// Where a new request starts.
    pub fn initial(requires_manual_approval: bool) -> Self {
        if requires_manual_approval {
            Self::WaitingForApproval
        } else {
            Self::Creating
        }
    }
}

/// The contract's `tenantDeletionReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeletionReason {
    Unknown,
    SwitchToFreePlan,
    NoLongerNeeded,
    NotJustifyCosts,
    DifficultToUse,
}

impl DeletionReason {
    /// The stored name (`NOT_JUSTIFY_COSTS`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::SwitchToFreePlan => "SWITCH_TO_FREE_PLAN",
            Self::NoLongerNeeded => "NO_LONGER_NEEDED",
            Self::NotJustifyCosts => "NOT_JUSTIFY_COSTS",
            Self::DifficultToUse => "DIFFICULT_TO_USE",
        }
    }
}

/// What a transition request carries (`plan_transitionTransitionPayload`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionPayload {
    pub payment_provider_token: Option<String>,
    pub billing_address: Option<Contact>,
    pub payment_address: Option<Contact>,
    pub domain: Option<String>,
    pub subscribe_addons: Vec<String>,
    pub unsubscribe_addons: Vec<String>,
    pub deletion_reason: Option<DeletionReason>,
    pub deletion_feedback: Option<String>,
    pub create_support_ticket: bool,
    pub support_ticket_info: Option<String>,
}

/// A stored plan transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTransition {
    pub id: String,
    pub tenant_id: crate::ids::TenantId,
    pub from_plan: String,
    pub to_plan: String,
    pub catalog_version: i64,
    pub state: TransitionState,
    pub payload: TransitionPayload,
    pub requested_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Why it failed or was rejected.
    pub reason: Option<String>,
}

fn has(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// Whether `s` is a DNS hostname with at least two labels.
pub fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// Longest deletion feedback or support ticket text.
pub const MAX_FEEDBACK: usize = 4096;

/// Why an operator rejected a transition: what they said, or a default;
/// free text of at most 1024 characters.
pub fn rejection_reason(given: Option<&str>) -> Result<String, Error> {
    let reason = given
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("rejected by the operator");
    crate::text::free_text("reason", reason, 1024)?;
    Ok(reason.to_owned())
}

/// Validates a request to move from `current` to `target`: the target must
/// be offered and different, the payload must carry every field the target's
/// flow requires, and add-on changes must fit the target plan. Every missing
/// field is named in one message.
pub fn validate_request<'a>(
    catalog: &'a Catalog,
    current: &str,
    target: &str,
    payload: &TransitionPayload,
) -> Result<&'a Plan, Error> {
    let plan: &Plan = catalog.offered_plan("new_plan", target)?;
    if plan.name == current {
        return Err(Error::invalid(format!(
            "new_plan: the tenant is already on plan {target:?}"
        )));
    }
    let mut missing = Vec::new();
    for required in &plan.transition.required_fields {
        match required {
            RequiredField::PaymentToken if !has(&payload.payment_provider_token) => {
                missing.push("payload.payment_provider_token")
            }
            RequiredField::Domain if !has(&payload.domain) => missing.push("payload.domain"),
            RequiredField::Contacts if payload.billing_address.as_ref().is_none_or(Contact::is_empty) => {
                missing.push("payload.billing_address")
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "{}: required to move to plan {target:?}",
            missing.join(", ")
        )));
    }
    if let Some(token) = payload
        .payment_provider_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        crate::payment::check_token("payload.payment_provider_token", token)?;
    }
    if let Some(domain) = payload.domain.as_deref().filter(|d| !d.is_empty())
        && !is_hostname(domain)
    {
        return Err(Error::invalid(format!(
            "payload.domain: {domain:?} is not a hostname"
        )));
    }
    for (field, contact, complete) in [
        (
            "payload.billing_address",
            &payload.billing_address,
            plan.transition.required_fields.contains(&RequiredField::Contacts),
        ),
        ("payload.payment_address", &payload.payment_address, false),
    ] {
        if let Some(c) = contact {
            c.validate(field, complete)?;
        }
    }
    for a in &payload.subscribe_addons {
        if !plan.allowed_addons.contains(a) && !plan.included_addons.contains(a) {
            return Err(Error::invalid(format!(
                "payload.subscribe_addon_services: {a:?} is not available on plan {target:?}"
            )));
        }
    }
    for a in &payload.unsubscribe_addons {
        if plan.included_addons.contains(a) {
            return Err(Error::invalid(format!(
                "payload.unsubscribe_addon_services: {a:?} is included in plan {target:?} and cannot be removed"
            )));
        }
        if catalog.addon(a).is_none() {
            return Err(Error::invalid(format!(
                "payload.unsubscribe_addon_services: unknown add-on {a:?}"
            )));
        }
    }
    if let Some(both) = payload
        .subscribe_addons
        .iter()
        .find(|a| payload.unsubscribe_addons.contains(a))
    {
        return Err(Error::invalid(format!(
            "payload: {both:?} is both subscribed and unsubscribed"
        )));
    }
    for (field, text) in [
        ("payload.deletion_feedback", &payload.deletion_feedback),
        ("payload.support_ticket_info", &payload.support_ticket_info),
    ] {
        if let Some(text) = text {
            crate::text::free_text(field, text, MAX_FEEDBACK)?;
        }
    }
    Ok(plan)
}

/// How a transition changes a tenant's subscribed add-ons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonChange {
    /// What the new plan allows (included add-ons are part of the plan and not listed).
    pub allowed: Vec<String>,
    pub subscribe: Vec<String>,
    pub unsubscribe: Vec<String>,
}

impl AddonChange {
    pub fn new(plan: &Plan, payload: &TransitionPayload) -> Self {
        Self {
            allowed: plan.allowed_addons.clone(),
            subscribe: payload.subscribe_addons.clone(),
            unsubscribe: payload.unsubscribe_addons.clone(),
        }
    }

    /// The add-ons a tenant has afterwards: those it had that the new plan
    /// still allows, plus the requested ones, minus the removed ones.
    pub fn apply(&self, had: &[String]) -> Vec<String> {
        let mut out: Vec<String> = had
            .iter()
            .chain(self.subscribe.iter())
            .filter(|a| self.allowed.contains(a) && !self.unsubscribe.contains(a))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransitionState::*;

    #[test]
    fn rejection_reasons_default_and_are_bounded() {
        assert_eq!(rejection_reason(None).unwrap(), "rejected by the operator");
        assert_eq!(rejection_reason(Some("  ")).unwrap(), "rejected by the operator");
        assert_eq!(rejection_reason(Some(" no domain ")).unwrap(), "no domain");
        assert!(rejection_reason(Some(&"x".repeat(1025))).is_err());
    }

    #[test]
    fn the_state_machine() {
        let all = [Creating, WaitingForApproval, Finished, Failed];
        let allowed = [
            (Creating, Finished),
            (Creating, Failed),
            (WaitingForApproval, Creating),
            (WaitingForApproval, Failed),
        ];
        for a in all {
            for b in all {
                assert_eq!(a.can_become(b), allowed.contains(&(a, b)), "{a:?} → {b:?}");
            }
        }
        assert!(Creating.is_open() && WaitingForApproval.is_open());
        assert!(!Finished.is_open() && !Failed.is_open());
        assert_eq!(TransitionState::initial(true), WaitingForApproval);
        assert_eq!(TransitionState::parse("FINISHED"), Some(Finished));
    }

    fn address() -> Contact {
        Contact {
            address1: "1 Main St".into(),
            city: "Seattle".into(),
            country: "US".into(),
            ..Contact::default()
        }
    }

    #[test]
    fn each_flow_names_the_fields_it_misses() {
        let c = Catalog::builtin();
        let empty = TransitionPayload::default();
        let e = validate_request(&c, "free", "team", &empty).unwrap_err();
        assert_eq!(
            e.message,
            "payload.payment_provider_token: required to move to plan \"team\""
        );
        let e = validate_request(&c, "free", "organization", &empty).unwrap_err();
        assert_eq!(
            e.message,
            "payload.domain, payload.billing_address: required to move to plan \"organization\""
        );
        let with_token = TransitionPayload {
            payment_provider_token: Some("tok-1".into()),
            ..empty.clone()
        };
        assert!(validate_request(&c, "free", "team", &with_token).is_ok());
        let org = TransitionPayload {
            domain: Some("acme.com".into()),
            billing_address: Some(address()),
            ..empty.clone()
        };
        assert!(validate_request(&c, "free", "organization", &org).is_ok());
        let bad_domain = TransitionPayload {
            domain: Some("not a host".into()),
            ..org.clone()
        };
        assert!(
            validate_request(&c, "free", "organization", &bad_domain)
                .unwrap_err()
                .message
                .starts_with("payload.domain")
        );
        let incomplete = TransitionPayload {
            billing_address: Some(Contact {
                city: String::new(),
                ..address()
            }),
            ..org
        };
        assert_eq!(
            validate_request(&c, "free", "organization", &incomplete)
                .unwrap_err()
                .message,
            "payload.billing_address.city: is required"
        );
        // Downgrades to free need nothing.
        assert!(validate_request(&c, "team", "free", &empty).is_ok());
    }

    #[test]
    fn targets_must_be_offered_and_different_and_addons_must_fit() {
        let c = Catalog::builtin();
        let p = TransitionPayload {
            payment_provider_token: Some("tok".into()),
            ..Default::default()
        };
        assert!(
            validate_request(&c, "team", "team", &p)
                .unwrap_err()
                .message
                .contains("already on plan")
        );
        assert!(
            validate_request(&c, "free", "gold", &p)
                .unwrap_err()
                .message
                .starts_with("new_plan: unknown plan")
        );
        let wants = |sub: &[&str], unsub: &[&str]| TransitionPayload {
            subscribe_addons: sub.iter().map(|s| s.to_string()).collect(),
            unsubscribe_addons: unsub.iter().map(|s| s.to_string()).collect(),
            ..p.clone()
        };
        assert!(validate_request(&c, "free", "team", &wants(&["f5xc_waap_advanced"], &[])).is_ok());
        assert!(validate_request(&c, "free", "team", &wants(&["f5xc_big_ip_irule_standard"], &[])).is_err());
        assert!(
            validate_request(&c, "free", "team", &wants(&[], &["f5xc_waap_standard"]))
                .unwrap_err()
                .message
                .contains("included")
        );
        assert!(
            validate_request(
                &c,
                "free",
                "team",
                &wants(&["f5xc_waap_advanced"], &["f5xc_waap_advanced"])
            )
            .is_err()
        );
    }

    #[test]
    fn addons_after_a_move_keep_what_the_new_plan_allows() {
        let c = Catalog::builtin();
        let team = c.plan("team").unwrap();
        let had = vec![
            "f5xc_web_app_scanning_standard".to_string(),
            "f5xc_waap_standard".to_string(),
        ];
        let payload = TransitionPayload {
            subscribe_addons: vec!["f5xc_appstack_standard".into()],
            unsubscribe_addons: vec!["f5xc_web_app_scanning_standard".into()],
            ..Default::default()
        };
        // waap_standard is included in team, so it is no longer a separate add-on.
        assert_eq!(
            AddonChange::new(team, &payload).apply(&had),
            ["f5xc_appstack_standard"]
        );
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("acme.com") && is_hostname("a-1.b.example.org"));
        assert!(
            !is_hostname("acme")
                && !is_hostname("-a.com")
                && !is_hostname("a..com")
                && !is_hostname("a b.com")
        );
    }
}
