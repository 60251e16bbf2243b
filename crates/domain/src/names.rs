//! Names of tenants, namespaces and objects: DNS-1035 labels, as in the F5
//! object model.

use std::fmt;

use crate::Error;

/// Longest label DNS allows.
pub const MAX_NAME_LEN: usize = 63;

/// A validated DNS-1035 label: lowercase letters, digits and `-`, starting with
/// a letter and ending with a letter or digit, 1 to 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Parses `value`; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        if value.is_empty() {
            return Err(Error::invalid(format!("{field}: is required")).with_metadata("field", field));
        }
        if is_dns1035_label(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(format!(
                "{field}: {value:?} is not a valid name: use 1 to {MAX_NAME_LEN} lowercase letters, \
                 digits and '-', starting with a letter and ending with a letter or digit"
            ))
            .with_metadata("field", field))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace every tenant has.
    pub fn system() -> Self {
        Self("system".to_owned())
    }

    pub fn is_system(&self) -> bool {
        self.0 == "system"
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn is_dns1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= MAX_NAME_LEN
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "system", "my-app-1", "a1", &"a".repeat(63)] {
            assert!(Name::parse("name", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else_and_names_the_field() {
        for bad in ["", "A", "1a", "-a", "a-", "a_b", "a.b", "é", &"a".repeat(64)] {
            let err = Name::parse("metadata.name", bad).unwrap_err();
            assert!(err.message.starts_with("metadata.name: "), "{}", err.message);
            assert_eq!(err.metadata["field"], "metadata.name");
        }
    }
}
