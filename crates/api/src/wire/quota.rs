//! The quota family's wire shapes (`quotaCreateRequest`, `quotaGetResponse`,
//! `quotaGetResponseType`, …) and their conversion to and from the domain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_domain::Error;
use tollgate_domain::quota::{
    self, EffectiveQuota, KeyFamily, Limit, QuotaKey, QuotaObject, QuotaSpec, ResourceAmount,
};
use tollgate_domain::rate_limit::{RateLimit, RateUnit};
use utoipa::ToSchema;

use super::meta::{ObjectGetMeta, ObjectMetaInput, ObjectRef, SystemObjectGetMeta, ViewRef};
use super::{DecimalLit, Number, ProtoInt};

/// `quotaLimitType` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LimitInput {
    #[schema(value_type = Option<i32>)]
    pub maximum: Option<ProtoInt>,
}

/// `quotaFloatLimitType` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FloatLimitInput {
    #[schema(value_type = Option<f64>)]
    pub maximum: Option<DecimalLit>,
}

/// `quotaRateLimitType` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RateLimitInput {
    #[schema(value_type = Option<i32>)]
    pub rate: Option<ProtoInt>,
    #[schema(value_type = Option<i32>)]
    pub burst: Option<ProtoInt>,
    pub unit: Option<String>,
}

/// The quota spec as sent (`schemaquotaCreateSpecType` / `ReplaceSpecType`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QuotaSpecInput {
    pub object_limits: Option<BTreeMap<String, LimitInput>>,
    pub resource_limits: Option<BTreeMap<String, FloatLimitInput>>,
    pub api_limits: Option<BTreeMap<String, RateLimitInput>>,
    /// Tollgate extension: usage thresholds in percent of a key's effective
    /// limit (1 to 100) whose crossing emits `quota.threshold_crossed` for the
    /// keys this object limits; absent: 80 and 100.
    pub alert_thresholds: Option<Vec<i64>>,
}

impl QuotaSpecInput {
    /// Validates every key and value; errors name the full field path.
    pub fn into_domain(self) -> Result<QuotaSpec, Error> {
        let mut spec = QuotaSpec::default();
        for (k, v) in self.object_limits.unwrap_or_default() {
            let field = format!("spec.object_limits.{k}");
            let key = QuotaKey::parse("spec.object_limits", &k)?;
            let raw = v.maximum.map_or(0, |m| m.0);
            spec.object_limits
                .insert(key, quota::object_limit(&format!("{field}.maximum"), raw)?);
        }
        for (k, v) in self.resource_limits.unwrap_or_default() {
            let field = format!("spec.resource_limits.{k}.maximum");
            let key = QuotaKey::parse("spec.resource_limits", &k)?;
            let amount = match v.maximum {
                Some(lit) => ResourceAmount::parse(&field, &lit.0)?,
                None => ResourceAmount::ZERO,
            };
            spec.resource_limits
                .insert(key, quota::resource_limit(&field, amount)?);
        }
        for (k, v) in self.api_limits.unwrap_or_default() {
            let field = format!("spec.api_limits.{k}");
            let key = QuotaKey::parse("spec.api_limits", &k)?;
            let unit = RateUnit::parse(&format!("{field}.unit"), v.unit.as_deref().unwrap_or(""))?;
            let limit = RateLimit::new(
                &field,
                v.rate.map_or(0, |r| r.0),
                v.burst.map_or(0, |b| b.0),
                unit,
            )?;
            spec.api_limits.insert(key, limit);
        }
        if let Some(raw) = self.alert_thresholds {
            spec.alert_thresholds = Some(quota::thresholds("spec.alert_thresholds", &raw)?);
        }
        Ok(spec)
    }
}

/// `quotaCreateRequest` (and `quotaReplaceRequest`, which has the same shape).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QuotaWriteRequest {
    pub metadata: Option<ObjectMetaInput>,
    pub spec: Option<QuotaSpecInput>,
}

/// `quotaLimitType`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct LimitType {
    /// `-1` means unlimited.
    pub maximum: i64,
}

/// `quotaFloatLimitType`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FloatLimitType {
    /// `-1` means unlimited.
    #[schema(value_type = f64)]
    pub maximum: Number,
}

/// `quotaRateLimitType`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateLimitType {
    pub rate: i32,
    pub burst: i32,
    pub unit: String,
}

fn float_limit(l: Limit) -> FloatLimitType {
    FloatLimitType {
        maximum: match l {
            Limit::Unlimited => Number::Int(-1),
            Limit::Max(m) => Number::Float(ResourceAmount::from_micros(m).to_f64()),
        },
    }
}

impl From<&RateLimit> for RateLimitType {
    fn from(l: &RateLimit) -> Self {
        Self {
            rate: l.rate,
            burst: l.burst,
            unit: l.unit.as_str().to_owned(),
        }
    }
}

/// The quota spec in responses (`schemaquotaGetSpecType`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaSpecOutput {
    pub object_limits: BTreeMap<String, LimitType>,
    pub resource_limits: BTreeMap<String, FloatLimitType>,
    pub api_limits: BTreeMap<String, RateLimitType>,
    /// Tollgate extension: the object's usage thresholds (percent), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub alert_thresholds: Option<Vec<u8>>,
}

impl From<&QuotaSpec> for QuotaSpecOutput {
    fn from(s: &QuotaSpec) -> Self {
        Self {
            object_limits: s
                .object_limits
                .iter()
                .map(|(k, l)| (k.to_string(), LimitType { maximum: l.as_raw() }))
                .collect(),
            resource_limits: s
                .resource_limits
                .iter()
                .map(|(k, l)| (k.to_string(), float_limit(*l)))
                .collect(),
            api_limits: s
                .api_limits
                .iter()
                .map(|(k, l)| (k.to_string(), l.into()))
                .collect(),
            alert_thresholds: s.alert_thresholds.clone(),
        }
    }
}

/// `quotaCreateRequest` / `quotaReplaceRequest` as returned in `create_form`
/// and `replace_form`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaForm {
    pub metadata: ObjectGetMeta,
    pub spec: QuotaSpecOutput,
}

/// `quotaCreateResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaCreateResponse {
    pub metadata: ObjectGetMeta,
    pub system_metadata: SystemObjectGetMeta,
    pub spec: QuotaSpecOutput,
}

impl QuotaCreateResponse {
    pub fn new(q: &QuotaObject, tenant: &str) -> Self {
        Self {
            metadata: (&q.meta).into(),
            system_metadata: SystemObjectGetMeta::new(&q.meta, tenant),
            spec: (&q.spec).into(),
        }
    }
}

/// `quotaStatusObject`. Tollgate publishes no status objects for quotas, so
/// lists of these are empty.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaStatusObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub metadata: Option<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub conditions: Vec<serde_json::Value>,
    pub object_refs: Vec<ObjectRef>,
}

/// `quotaGetResponse`: which fields are present depends on `response_format`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct QuotaGetResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub create_form: Option<QuotaForm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub replace_form: Option<QuotaForm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub metadata: Option<ObjectGetMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub system_metadata: Option<SystemObjectGetMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub spec: Option<QuotaSpecOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status: Option<Vec<QuotaStatusObject>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub referring_objects: Option<Vec<ObjectRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deleted_referred_objects: Option<Vec<ObjectRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disabled_referred_objects: Option<Vec<ObjectRef>>,
}

/// `quotaListResponseItem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaListItem {
    pub tenant: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub description: String,
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub owner_view: Option<ViewRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub metadata: Option<ObjectGetMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub system_metadata: Option<SystemObjectGetMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub get_spec: Option<QuotaSpecOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status_set: Option<Vec<QuotaStatusObject>>,
}

/// `schemaErrorType`, for partial list failures (never produced: a list
/// either succeeds whole or fails).
#[derive(Debug, Serialize, ToSchema)]
pub struct ListError {
    pub code: String,
    pub message: String,
}

/// `quotaListResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaListResponse {
    pub items: Vec<QuotaListItem>,
    pub errors: Vec<ListError>,
}

/// `quotaDeleteRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QuotaDeleteRequest {
    pub fail_if_referred: Option<bool>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// An empty JSON object: the success body of replace and delete.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Empty {}

/// `usageUsageType`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct UsageType {
    pub current: i64,
}

/// `usageFloatUsageType`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FloatUsageType {
    pub current: f64,
}

/// An entry of `objects`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectQuota {
    pub limit: LimitType,
    pub usage: UsageType,
    pub display_name: String,
    pub description: String,
}

/// An entry of `resources`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceQuota {
    pub limit: FloatLimitType,
    pub usage: FloatUsageType,
    pub display_name: String,
    pub description: String,
}

/// An entry of `apis`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiQuota {
    pub limit: RateLimitType,
    pub display_name: String,
    pub description: String,
}

/// An entry of the deprecated `quota_usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageData {
    pub limit: LimitType,
    pub usage: UsageType,
}

/// An entry of the deprecated `float_quota_usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FloatUsageData {
    pub limit: FloatLimitType,
    pub usage: FloatUsageType,
}

/// `quotaGetResponseType` and `quotaGetQuotaLimitsResponse` (same shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaUsageResponse {
    pub objects: BTreeMap<String, ObjectQuota>,
    pub resources: BTreeMap<String, ResourceQuota>,
    pub apis: BTreeMap<String, ApiQuota>,
    pub quota_usage: BTreeMap<String, UsageData>,
    pub float_quota_usage: BTreeMap<String, FloatUsageData>,
    pub api_limits: BTreeMap<String, RateLimitType>,
}

fn display(key: &str) -> (String, String) {
    if let Some((name, description)) = crate::operations::rate_limit_info(key) {
        return (name.to_owned(), description.to_owned());
    }
    let info = quota::key_info(key);
    let name = if info.display_name.is_empty() {
        key
    } else {
        info.display_name
    };
    (name.to_owned(), info.description.to_owned())
}

impl QuotaUsageResponse {
    /// Every key with a limit or usage, new and deprecated maps filled alike.
    pub fn new(effective: &EffectiveQuota, usage: &[(KeyFamily, String, i64)]) -> Self {
        let used = |family: KeyFamily, key: &str| {
            usage
                .iter()
                .find(|(f, k, _)| *f == family && k == key)
                .map_or(0, |(_, _, n)| *n)
        };
        let keys = |family: KeyFamily, limits: &BTreeMap<String, Limit>| {
            let mut keys: Vec<String> = limits.keys().cloned().collect();
            keys.extend(
                usage
                    .iter()
                    .filter(|(f, k, _)| *f == family && !limits.contains_key(k))
                    .map(|(_, k, _)| k.clone()),
            );
            keys.sort();
            keys
        };
        let mut out = Self {
            objects: BTreeMap::new(),
            resources: BTreeMap::new(),
            apis: BTreeMap::new(),
            quota_usage: BTreeMap::new(),
            float_quota_usage: BTreeMap::new(),
            api_limits: BTreeMap::new(),
        };
        for key in keys(KeyFamily::Object, &effective.objects) {
            let limit = LimitType {
                maximum: effective.limit(KeyFamily::Object, &key).as_raw(),
            };
            let usage = UsageType {
                current: used(KeyFamily::Object, &key),
            };
            let (display_name, description) = display(&key);
            out.quota_usage.insert(key.clone(), UsageData { limit, usage });
            out.objects.insert(
                key,
                ObjectQuota {
                    limit,
                    usage,
                    display_name,
                    description,
                },
            );
        }
        for key in keys(KeyFamily::Resource, &effective.resources) {
            let limit = float_limit(effective.limit(KeyFamily::Resource, &key));
            let usage = FloatUsageType {
                current: ResourceAmount::from_micros(used(KeyFamily::Resource, &key)).to_f64(),
            };
            let (display_name, description) = display(&key);
            out.float_quota_usage
                .insert(key.clone(), FloatUsageData { limit, usage });
            out.resources.insert(
                key,
                ResourceQuota {
                    limit,
                    usage,
                    display_name,
                    description,
                },
            );
        }
        for (key, limit) in &effective.apis {
            let (display_name, description) = display(key);
            out.api_limits.insert(key.clone(), limit.into());
            out.apis.insert(
                key.clone(),
                ApiQuota {
                    limit: limit.into(),
                    display_name,
                    description,
                },
            );
        }
        out
    }
}

/// Body of `POST …/quota/reserve` and `…/quota/release` (beyond the contract).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UsageChangeRequest {
    /// An object kind (`object_limits` key); exclusive with `resource`.
    pub kind: Option<String>,
    /// A resource (`resource_limits` key); exclusive with `kind`.
    pub resource: Option<String>,
    /// How much: a positive whole number for kinds, a decimal for resources.
    #[schema(value_type = Option<f64>)]
    pub amount: Option<DecimalLit>,
    /// Idempotency key: a repeat returns the first answer and changes nothing.
    pub request_id: Option<String>,
}

/// Body of `PUT …/quota/usage` (beyond the contract).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UsageReconcileRequest {
    pub kind: Option<String>,
    pub resource: Option<String>,
    /// The absolute usage to record.
    #[schema(value_type = Option<f64>)]
    pub current: Option<DecimalLit>,
}

/// Answer of reserve, release and reconcile (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageChangeResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub resource: Option<String>,
    /// The effective limit; `-1` means unlimited.
    #[schema(value_type = f64)]
    pub limit: Number,
    /// Usage after the change.
    #[schema(value_type = f64)]
    pub current: Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// True when this answers a repeated request id (nothing changed).
    pub replayed: bool,
}

/// A usage amount on the wire: whole for object kinds, decimal for resources.
pub fn usage_number(family: KeyFamily, value: i64) -> Number {
    match family {
        KeyFamily::Object => Number::Int(value),
        KeyFamily::Resource => Number::Float(ResourceAmount::from_micros(value).to_f64()),
    }
}

/// A limit on the wire: `-1` for unlimited.
pub fn limit_number(family: KeyFamily, limit: Limit) -> Number {
    match limit {
        Limit::Unlimited => Number::Int(-1),
        Limit::Max(m) => usage_number(family, m),
    }
}
