//! The F5 object model's metadata, shared by every configuration object.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::names::Name;

/// Object metadata: what the user set (`metadata`) and what the system
/// recorded (`system_metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub namespace: Name,
    pub name: Name,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub description: String,
    pub disable: bool,
    pub creator_class: String,
    pub creator_id: String,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// Longest annotation key and value, and description, per the contract's
/// validation rules.
pub const MAX_ANNOTATION_KEY: usize = 64;
pub const MAX_ANNOTATION_VALUE: usize = 1024;
pub const MAX_DESCRIPTION_BYTES: usize = 1200;

/// Validates what a user may set on any object's metadata.
pub fn validate_user_meta(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    description: &str,
) -> Result<(), crate::Error> {
    use crate::Error;
    crate::labels::validate_labels("metadata.labels", labels)?;
    for (k, v) in annotations {
        // Lengths are checked below, with their own messages.
        crate::text::single_line("metadata.annotations", k, usize::MAX)?;
        crate::text::free_text(&format!("metadata.annotations.{k}"), v, usize::MAX)?;
        if k.is_empty() || k.chars().count() > MAX_ANNOTATION_KEY {
            return Err(Error::invalid(format!(
                "metadata.annotations: key {k:?} must be 1 to {MAX_ANNOTATION_KEY} characters"
            )));
        }
        if v.is_empty() || v.chars().count() > MAX_ANNOTATION_VALUE {
            return Err(Error::invalid(format!(
                "metadata.annotations.{k}: value must be 1 to {MAX_ANNOTATION_VALUE} characters"
            )));
        }
    }
    crate::text::free_text("metadata.description", description, usize::MAX)?;
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(Error::invalid(format!(
            "metadata.description: must be at most {MAX_DESCRIPTION_BYTES} bytes, got {}",
            description.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_rules() {
        let none = BTreeMap::new();
        let map = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(validate_user_meta(&map("env", "prod"), &map("note", "x"), "ok").is_ok());
        assert!(validate_user_meta(&map("bad key", "x"), &none, "").is_err());
        assert!(validate_user_meta(&map("env", "bad value!"), &none, "").is_err());
        assert!(validate_user_meta(&none, &map("", "x"), "").is_err());
        assert!(validate_user_meta(&none, &map(&"k".repeat(65), "x"), "").is_err());
        assert!(validate_user_meta(&none, &map("k", ""), "").is_err());
        assert!(validate_user_meta(&none, &map("k", &"v".repeat(1025)), "").is_err());
        assert!(validate_user_meta(&none, &none, &"d".repeat(1201)).is_err());
        assert!(validate_user_meta(&none, &none, &"d".repeat(1200)).is_ok());
        // Labels are Kubernetes names: no control characters either.
        assert!(validate_user_meta(&map("env\u{0}", "x"), &none, "").is_err());
        assert!(validate_user_meta(&map("env", "prod\u{0}"), &none, "").is_err());
        // No NUL or other control characters, except line breaks in free text.
        assert!(validate_user_meta(&none, &map("note", "two\nlines"), "a\r\nb\tc").is_ok());
        for (annotations, description, field) in [
            (map("k\u{0}", "x"), "", "metadata.annotations: "),
            (map("k\n", "x"), "", "metadata.annotations: "),
            (map("k", "x\u{0}"), "", "metadata.annotations.k: "),
            (none.clone(), "production\u{0}", "metadata.description: "),
            (none.clone(), "\u{1b}[2J", "metadata.description: "),
        ] {
            let e = validate_user_meta(&none, &annotations, description).unwrap_err();
            assert!(e.message.starts_with(field), "{}", e.message);
            assert!(e.message.contains("control characters"), "{}", e.message);
        }
    }
}
