//! Contacts: `payment_methods.contact` (one) and `tenants.contacts` (a list).
//!
//! - Format 1 (before formats): the domain `Contact` as serde wrote it (every
//!   field a string, `contact_type` MAILING/BILLING/PAYMENT); the list a bare
//!   JSON array of those.
//! - Format 2: the contact with `"format": 2`; the list
//!   `{"format": 2, "contacts": [...]}` (a bare array could not say its format).

use serde::{Deserialize, Serialize};
use tollgate_domain::contact::{Contact, ContactType};

use super::{format_of, newer, parse, write};
use crate::StoreError;

const CURRENT: u32 = 2;

mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize, Default)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Type {
        #[default]
        Mailing,
        Billing,
        Payment,
    }

    #[derive(Serialize, Deserialize, Default)]
    #[serde(default)]
    pub struct Contact {
        pub contact_type: Type,
        pub address1: String,
        pub address2: String,
        pub city: String,
        pub state: String,
        pub state_code: String,
        pub county: String,
        pub zip_code: String,
        pub country: String,
        pub phone_number: String,
    }
}

mod v2 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Contact {
        pub format: u32,
        #[serde(flatten)]
        pub body: v1::Contact,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Contacts {
        pub format: u32,
        pub contacts: Vec<v1::Contact>,
    }
}

/// Reads a stored contact of any format; `column` names it in errors.
pub fn decode_contact(column: &str, text: &str) -> Result<Contact, StoreError> {
    let body = match format_of(column, text)? {
        1 => parse::<v1::Contact>(column, text)?,
        2 => parse::<v2::Contact>(column, text)?.body,
        n => return Err(newer(column, n, CURRENT)),
    };
    Ok(to_domain(body))
}

/// Writes a contact in the current format.
pub fn encode_contact(column: &str, contact: &Contact) -> Result<String, StoreError> {
    write(
        column,
        &v2::Contact {
            format: CURRENT,
            body: from_domain(contact),
        },
    )
}

/// Reads a stored list of contacts of any format.
pub fn decode_contacts(column: &str, text: &str) -> Result<Vec<Contact>, StoreError> {
    let list = if text.trim_start().starts_with('[') {
        parse::<Vec<v1::Contact>>(column, text)?
    } else {
        match format_of(column, text)? {
            2 => parse::<v2::Contacts>(column, text)?.contacts,
            n => return Err(newer(column, n, CURRENT)),
        }
    };
    Ok(list.into_iter().map(to_domain).collect())
}

/// Writes a list of contacts in the current format.
pub fn encode_contacts(column: &str, contacts: &[Contact]) -> Result<String, StoreError> {
    write(
        column,
        &v2::Contacts {
            format: CURRENT,
            contacts: contacts.iter().map(from_domain).collect(),
        },
    )
}

fn to_domain(c: v1::Contact) -> Contact {
    Contact {
        contact_type: match c.contact_type {
            v1::Type::Mailing => ContactType::Mailing,
            v1::Type::Billing => ContactType::Billing,
            v1::Type::Payment => ContactType::Payment,
        },
        address1: c.address1,
        address2: c.address2,
        city: c.city,
        state: c.state,
        state_code: c.state_code,
        county: c.county,
        zip_code: c.zip_code,
        country: c.country,
        phone_number: c.phone_number,
    }
}

pub(super) fn from_domain(c: &Contact) -> v1::Contact {
    v1::Contact {
        contact_type: match c.contact_type {
            ContactType::Mailing => v1::Type::Mailing,
            ContactType::Billing => v1::Type::Billing,
            ContactType::Payment => v1::Type::Payment,
        },
        address1: c.address1.clone(),
        address2: c.address2.clone(),
        city: c.city.clone(),
        state: c.state.clone(),
        state_code: c.state_code.clone(),
        county: c.county.clone(),
        zip_code: c.zip_code.clone(),
        country: c.country.clone(),
        phone_number: c.phone_number.clone(),
    }
}

pub(super) use v1::Contact as ContactV1;

pub(super) fn contact_to_domain(c: ContactV1) -> Contact {
    to_domain(c)
}
