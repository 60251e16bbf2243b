//! Contacts (billing and payment addresses).

use serde::{Deserialize, Serialize};

use crate::Error;

/// The contract's `contactContactType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactType {
    #[default]
    Mailing,
    Billing,
    Payment,
}

impl ContactType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mailing => "MAILING",
            Self::Billing => "BILLING",
            Self::Payment => "PAYMENT",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "" | "MAILING" | "0" => Ok(Self::Mailing),
            "BILLING" | "1" => Ok(Self::Billing),
            "PAYMENT" | "2" => Ok(Self::Payment),
            _ => Err(Error::invalid(format!(
                "{field}: unknown contact type {s:?}; use MAILING, BILLING or PAYMENT"
            ))),
        }
    }
}

/// An address (`contactGlobalSpecType`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contact {
    pub contact_type: ContactType,
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

/// Longest accepted value of any contact field.
pub const MAX_FIELD: usize = 256;

impl Contact {
    /// Checks lengths; with `complete`, also that it can receive mail
    /// (address1, city and country).
    pub fn validate(&self, field: &str, complete: bool) -> Result<(), Error> {
        let fields = [
            ("address1", &self.address1),
            ("address2", &self.address2),
            ("city", &self.city),
            ("state", &self.state),
            ("state_code", &self.state_code),
            ("county", &self.county),
            ("zip_code", &self.zip_code),
            ("country", &self.country),
            ("phone_number", &self.phone_number),
        ];
        for (name, value) in fields {
            crate::text::single_line(&format!("{field}.{name}"), value, MAX_FIELD)?;
            if complete && matches!(name, "address1" | "city" | "country") && value.trim().is_empty() {
                return Err(Error::invalid(format!("{field}.{name}: is required")));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
