//! `plan_transitions.payload`: what a plan-transition request carried.
//!
//! - Format 1 (before formats): the domain `TransitionPayload` as serde wrote
//!   it (`deletion_reason` as SWITCH_TO_FREE_PLAN etc., contacts as format-1
//!   contacts, absent options as `null`).
//! - Format 2: `"format": 2`, otherwise the same fields.

use serde::{Deserialize, Serialize};
use tollgate_domain::transition::{DeletionReason, TransitionPayload};

use super::contact::{ContactV1, contact_to_domain, from_domain as contact_from_domain};
use super::{format_of, newer, parse, write};
use crate::StoreError;

const COLUMN: &str = "plan_transitions.payload";
const CURRENT: u32 = 2;

mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Reason {
        Unknown,
        SwitchToFreePlan,
        NoLongerNeeded,
        NotJustifyCosts,
        DifficultToUse,
    }

    #[derive(Serialize, Deserialize, Default)]
    #[serde(default)]
    pub struct Payload {
        pub payment_provider_token: Option<String>,
        pub billing_address: Option<ContactV1>,
        pub payment_address: Option<ContactV1>,
        pub domain: Option<String>,
        pub subscribe_addons: Vec<String>,
        pub unsubscribe_addons: Vec<String>,
        pub deletion_reason: Option<Reason>,
        pub deletion_feedback: Option<String>,
        pub create_support_ticket: bool,
        pub support_ticket_info: Option<String>,
    }
}

mod v2 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Payload {
        pub format: u32,
        #[serde(flatten)]
        pub body: v1::Payload,
    }
}

/// Reads a stored transition payload of any format.
pub fn decode_transition_payload(text: &str) -> Result<TransitionPayload, StoreError> {
    let p = match format_of(COLUMN, text)? {
        1 => parse::<v1::Payload>(COLUMN, text)?,
        2 => parse::<v2::Payload>(COLUMN, text)?.body,
        n => return Err(newer(COLUMN, n, CURRENT)),
    };
    Ok(TransitionPayload {
        payment_provider_token: p.payment_provider_token,
        billing_address: p.billing_address.map(contact_to_domain),
        payment_address: p.payment_address.map(contact_to_domain),
        domain: p.domain,
        subscribe_addons: p.subscribe_addons,
        unsubscribe_addons: p.unsubscribe_addons,
        deletion_reason: p.deletion_reason.map(|r| match r {
            v1::Reason::Unknown => DeletionReason::Unknown,
            v1::Reason::SwitchToFreePlan => DeletionReason::SwitchToFreePlan,
            v1::Reason::NoLongerNeeded => DeletionReason::NoLongerNeeded,
            v1::Reason::NotJustifyCosts => DeletionReason::NotJustifyCosts,
            v1::Reason::DifficultToUse => DeletionReason::DifficultToUse,
        }),
        deletion_feedback: p.deletion_feedback,
        create_support_ticket: p.create_support_ticket,
        support_ticket_info: p.support_ticket_info,
    })
}

/// Writes a transition payload in the current format.
pub fn encode_transition_payload(p: &TransitionPayload) -> Result<String, StoreError> {
    let body = v1::Payload {
        payment_provider_token: p.payment_provider_token.clone(),
        billing_address: p.billing_address.as_ref().map(contact_from_domain),
        payment_address: p.payment_address.as_ref().map(contact_from_domain),
        domain: p.domain.clone(),
        subscribe_addons: p.subscribe_addons.clone(),
        unsubscribe_addons: p.unsubscribe_addons.clone(),
        deletion_reason: p.deletion_reason.map(|r| match r {
            DeletionReason::Unknown => v1::Reason::Unknown,
            DeletionReason::SwitchToFreePlan => v1::Reason::SwitchToFreePlan,
            DeletionReason::NoLongerNeeded => v1::Reason::NoLongerNeeded,
            DeletionReason::NotJustifyCosts => v1::Reason::NotJustifyCosts,
            DeletionReason::DifficultToUse => v1::Reason::DifficultToUse,
        }),
        deletion_feedback: p.deletion_feedback.clone(),
        create_support_ticket: p.create_support_ticket,
        support_ticket_info: p.support_ticket_info.clone(),
    };
    write(
        COLUMN,
        &v2::Payload {
            format: CURRENT,
            body,
        },
    )
}
