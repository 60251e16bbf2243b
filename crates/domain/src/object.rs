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
