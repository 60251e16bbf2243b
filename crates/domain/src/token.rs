//! API token secrets: their format and the hash under which they are stored.
//!
//! A secret is `tg_` followed by 43 base64url characters (32 random bytes).
//! Only its SHA-256 is stored; a fast hash is right here because the secret has
//! 256 bits of entropy (password hashes exist for low-entropy secrets).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "tg_";

/// Formats 32 random bytes as a token secret.
pub fn format_secret(random: [u8; 32]) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random))
}

/// The digest a secret is stored and looked up under.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Longest token name (a label for people).
pub const MAX_NAME: usize = 256;

/// Checks a token's name: one line of at most [`MAX_NAME`] characters.
pub fn check_name(field: &str, name: &str) -> Result<(), crate::Error> {
    crate::text::single_line(field, name, MAX_NAME)
}

/// Whether `s` has the shape of a secret (a cheap check before any lookup).
pub fn is_well_formed(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_well_formed_and_digests_differ() {
        let a = format_secret([1; 32]);
        let b = format_secret([2; 32]);
        assert!(is_well_formed(&a) && is_well_formed(&b));
        assert_ne!(digest(&a), digest(&b));
        assert!(!is_well_formed("tg_short"));
        assert!(!is_well_formed(&a.replace("tg_", "xx_")));
    }
}

/// An API token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub tenant_id: crate::ids::TenantId,
    pub tenant_name: crate::names::Name,
    pub name: String,
    pub role: crate::access::Role,
    pub scope: crate::access::NamespaceScope,
    pub digest: [u8; 32],
    pub created_at: jiff::Timestamp,
    pub expires_at: Option<jiff::Timestamp>,
    pub revoked_at: Option<jiff::Timestamp>,
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    pub fn is_active(&self, now: jiff::Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A named operator token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    pub id: String,
    /// Unique among tokens not revoked; names the holder in the audit trail.
    pub name: String,
    pub role: crate::access::OperatorRole,
    pub digest: [u8; 32],
    pub created_at: jiff::Timestamp,
    pub created_by: String,
    pub revoked_at: Option<jiff::Timestamp>,
}

impl OperatorToken {
    /// How the audit trail names this token's holder.
    pub fn actor(&self) -> String {
        format!("operator-token/{}", self.name)
    }
}

/// Checks an operator token's name: a DNS-label-like name, so that it reads
/// well in the audit trail (`operator-token/<name>`) and on a command line.
pub fn check_operator_token_name(name: &str) -> Result<(), crate::Error> {
    crate::names::Name::parse("name", name).map(|_| ())
}
