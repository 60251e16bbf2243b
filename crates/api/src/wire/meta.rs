//! Object metadata on the wire: `metadata`, `system_metadata`, references.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_domain::object::ObjectMeta;
use utoipa::ToSchema;

/// `metadata` as clients send it on create and replace
/// (`schemaObjectCreateMetaType` / `schemaObjectReplaceMetaType`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ObjectMetaInput {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub description: Option<String>,
    pub disable: Option<bool>,
}

/// `metadata` in responses (`schemaObjectGetMetaType`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObjectGetMeta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub description: String,
    pub disable: bool,
}

impl From<&ObjectMeta> for ObjectGetMeta {
    fn from(m: &ObjectMeta) -> Self {
        Self {
            name: m.name.to_string(),
            namespace: m.namespace.to_string(),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            description: m.description.clone(),
            disable: m.disable,
        }
    }
}

/// `schemaViewRefType`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViewRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// `schemaObjectRefType`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub tenant: String,
    pub uid: String,
}

/// `system_metadata` (`schemaSystemObjectGetMetaType`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemObjectGetMeta {
    pub uid: String,
    pub tenant: String,
    pub creation_timestamp: String,
    pub modification_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deletion_timestamp: Option<String>,
    pub creator_class: String,
    pub creator_id: String,
    pub finalizers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub initializers: Option<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub object_index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub owner_view: Option<ViewRef>,
}

impl SystemObjectGetMeta {
    pub fn new(m: &ObjectMeta, tenant: &str) -> Self {
        Self {
            uid: m.uid.clone(),
            tenant: tenant.to_owned(),
            creation_timestamp: m.created_at.to_string(),
            modification_timestamp: m.modified_at.to_string(),
            deletion_timestamp: None,
            creator_class: m.creator_class.clone(),
            creator_id: m.creator_id.clone(),
            finalizers: Vec::new(),
            initializers: None,
            labels: BTreeMap::new(),
            object_index: 0,
            owner_view: None,
        }
    }
}
