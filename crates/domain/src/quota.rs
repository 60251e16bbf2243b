//! Quota semantics: limit values, exact resource amounts, quota specs and the
//! rule that decides a tenant's effective limit for a key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::rate_limit::RateLimit;

/// Longest quota key (object kind, resource name or RPC name) the contract allows.
pub const MAX_KEY_LEN: usize = 512;

/// A key of `object_limits`, `resource_limits` or `api_limits`: matches
/// `^[a-zA-Z][a-zA-Z0-9-._]*[a-zA-Z0-9]$`, at most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaKey(String);

impl QuotaKey {
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        let b = value.as_bytes();
        let ok = b.len() >= 2
            && b.len() <= MAX_KEY_LEN
            && b[0].is_ascii_alphabetic()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(format!(
                "{field}: key {value:?} must match ^[a-zA-Z][a-zA-Z0-9-._]*[a-zA-Z0-9]$ and be at most {MAX_KEY_LEN} characters"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which family a usage key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFamily {
    /// Object counts (`object_limits`), whole numbers.
    Object,
    /// Resource amounts (`resource_limits`), exact decimals.
    Resource,
}

impl KeyFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Resource => "resource",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "object" => Some(Self::Object),
            "resource" => Some(Self::Resource),
            _ => None,
        }
    }

    /// The most usage a key of this family can hold, in base units (a
    /// count, or millionths of a resource unit): the cap of one change holds
    /// for the stored total too, so no sum can approach i64 overflow, whatever
    /// the limit (unlimited included).
    pub const fn max_usage(self) -> i64 {
        match self {
            Self::Object => i32::MAX as i64,
            Self::Resource => 1_000_000_000 * RESOURCE_UNIT,
        }
    }
}

/// Decimal places a resource amount keeps.
pub const RESOURCE_SCALE: u32 = 6;
const RESOURCE_UNIT: i64 = 1_000_000;

/// An exact, non-negative-or-not resource quantity with six decimal places,
/// stored as an integer count of millionths so that the database can add and
/// compare it atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceAmount(i64);

impl ResourceAmount {
    pub const ZERO: Self = Self(0);

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn from_units(units: i64) -> Option<Self> {
        units.checked_mul(RESOURCE_UNIT).map(Self)
    }

    /// Parses a decimal literal as JSON writes it (`2.5`, `-1`, `1e3`); the
    /// error names `field`. More than six decimal places is an error rather
    /// than a silent rounding.
    pub fn parse(field: &str, literal: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(format!(
                "{field}: {literal:?} is not a number with at most {RESOURCE_SCALE} decimal places in range"
            ))
        };
        let d = if literal.contains(['e', 'E']) {
            Decimal::from_scientific(literal).map_err(|_| bad())?
        } else {
            Decimal::from_str(literal).map_err(|_| bad())?
        }
        .normalize();
        if d.scale() > RESOURCE_SCALE {
            return Err(bad());
        }
        let scaled = d.checked_mul(Decimal::from(RESOURCE_UNIT)).ok_or_else(bad)?;
        i64::try_from(scaled.trunc()).map(Self).map_err(|_| bad())
    }

    /// The amount as a decimal (exact).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, RESOURCE_SCALE).normalize()
    }

    /// The amount as a JSON double for the wire (resources are `double` in the
    /// contract; they are never money).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / RESOURCE_UNIT as f64
    }
}

impl fmt::Display for ResourceAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// A maximum for one key, in base units (objects: count; resources: millionths).
/// Stored and sent as a plain integer, `-1` meaning unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i64", from = "i64")]
pub enum Limit {
    /// `-1` on the wire.
    Unlimited,
    Max(i64),
}

impl Limit {
    /// The wire value: `-1` for unlimited.
    pub fn as_raw(self) -> i64 {
        match self {
            Self::Unlimited => -1,
            Self::Max(m) => m,
        }
    }

    /// Reads a stored or wire value where any negative number means unlimited.
    pub fn from_raw(raw: i64) -> Self {
        if raw < 0 { Self::Unlimited } else { Self::Max(raw) }
    }

    /// Whether `current + amount` stays within this limit.
    pub fn admits(self, current: i64, amount: i64) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Max(m) => current.checked_add(amount).is_some_and(|n| n <= m),
        }
    }

    pub(crate) fn restrictiveness(self) -> i64 {
        match self {
            Self::Unlimited => i64::MAX,
            Self::Max(m) => m,
        }
    }
}

impl From<Limit> for i64 {
    fn from(l: Limit) -> i64 {
        l.as_raw()
    }
}

impl From<i64> for Limit {
    fn from(raw: i64) -> Limit {
        Limit::from_raw(raw)
    }
}

/// The effective limit of a key: when any quota object sets the key, the most
/// restrictive of those values wins and the default is ignored (even if it is
/// stricter); otherwise the default quota's value; otherwise the key is
/// unlimited.
pub fn effective_limit(default: Option<Limit>, overrides: &[Limit]) -> Limit {
    overrides
        .iter()
        .copied()
        .min_by_key(|l| l.restrictiveness())
        .or(default)
        .unwrap_or(Limit::Unlimited)
}

/// The same rule for API rate limits: the override with the lowest sustained
/// rate wins.
pub fn effective_rate_limit(default: Option<RateLimit>, overrides: &[RateLimit]) -> Option<RateLimit> {
    overrides
        .iter()
        .copied()
        .min_by_key(|l| l.restrictiveness())
        .or(default)
}

/// The limits one quota object (or a plan's default quota) sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaSpec {
    #[serde(default)]
    pub object_limits: BTreeMap<QuotaKey, Limit>,
    /// Resource maxima in millionths (see [`ResourceAmount`]).
    #[serde(default)]
    pub resource_limits: BTreeMap<QuotaKey, Limit>,
    #[serde(default)]
    pub api_limits: BTreeMap<QuotaKey, RateLimit>,
    /// Usage thresholds in percent of a key's effective limit (1 to 100,
    /// ascending, each once) whose crossing, by a reservation or a
    /// reconciliation, emits `quota.threshold_crossed` for the keys this
    /// object limits; `None`: [`DEFAULT_THRESHOLDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_thresholds: Option<Vec<u8>>,
}

/// The thresholds of a key no quota object sets any for: 80 % and 100 %.
pub const DEFAULT_THRESHOLDS: [u8; 2] = [80, 100];

/// Checks thresholds as a client gives them: whole percents from 1 to 100,
/// each once; returned ascending. The error names `field[i]`.
pub fn thresholds(field: &str, raw: &[i64]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, &t) in raw.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Ok(t @ 1..=100) = u8::try_from(t) else {
            return Err(
                Error::invalid(format!("{f}: {t} is not a whole percent from 1 to 100"))
                    .with_metadata("field", f),
            );
        };
        if out.contains(&t) {
            return Err(Error::invalid(format!("{f}: {t} is listed twice")).with_metadata("field", f));
        }
        out.push(t);
    }
    out.sort_unstable();
    Ok(out)
}

/// The thresholds (percent of `limit`) that a change of a key's usage from
/// `before` to `after` crossed upwards: below before, at or above after. A
/// key whose usage falls back below a threshold crosses it again on the way
/// up; an unlimited or zero limit has no thresholds.
pub fn thresholds_crossed(before: i64, after: i64, limit: Limit, thresholds: &[u8]) -> Vec<u8> {
    let max = match limit {
        Limit::Max(m) if m > 0 => i128::from(m),
        _ => return Vec::new(),
    };
    let (before, after) = (i128::from(before) * 100, i128::from(after) * 100);
    thresholds
        .iter()
        .copied()
        .filter(|&t| {
            let level = i128::from(t) * max;
            before < level && after >= level
        })
        .collect()
}

impl QuotaSpec {
    /// The limit this spec sets for `key`, if any.
    pub fn limit(&self, family: KeyFamily, key: &str) -> Option<Limit> {
        let map = match family {
            KeyFamily::Object => &self.object_limits,
            KeyFamily::Resource => &self.resource_limits,
        };
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, l)| *l)
    }

    pub fn api_limit(&self, rpc: &str) -> Option<RateLimit> {
        self.api_limits
            .iter()
            .find(|(k, _)| k.as_str() == rpc)
            .map(|(_, l)| *l)
    }
}

/// Largest object maximum: the contract's `maximum` is an int32.
pub const MAX_OBJECT_LIMIT: i64 = i32::MAX as i64;

/// Validates an object limit from the wire (`-1` or 0..=i32::MAX).
pub fn object_limit(field: &str, raw: i64) -> Result<Limit, Error> {
    match raw {
        -1 => Ok(Limit::Unlimited),
        0..=MAX_OBJECT_LIMIT => Ok(Limit::Max(raw)),
        _ => Err(Error::invalid(format!(
            "{field}: must be -1 (unlimited) or between 0 and {MAX_OBJECT_LIMIT}, got {raw}"
        ))),
    }
}

/// Validates a resource limit from the wire (`-1` or a non-negative amount).
pub fn resource_limit(field: &str, amount: ResourceAmount) -> Result<Limit, Error> {
    if amount == ResourceAmount::from_micros(-RESOURCE_UNIT) {
        Ok(Limit::Unlimited)
    } else if amount.micros() >= 0 {
        Ok(Limit::Max(amount.micros()))
    } else {
        Err(Error::invalid(format!(
            "{field}: must be -1 (unlimited) or not negative, got {amount}"
        )))
    }
}

/// How an object kind or resource is shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub display_name: &'static str,
    pub description: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resource_amounts_parse_exactly() {
        let p = |s| ResourceAmount::parse("amount", s).map(ResourceAmount::micros);
        assert_eq!(p("2.5"), Ok(2_500_000));
        assert_eq!(p("0.1"), Ok(100_000));
        assert_eq!(p("-1"), Ok(-1_000_000));
        assert_eq!(p("1e3"), Ok(1_000_000_000));
        assert_eq!(p("2.5E-1"), Ok(250_000));
        assert_eq!(p("0.000001"), Ok(1));
        assert_eq!(p("3.000000"), Ok(3_000_000));
        assert!(p("0.0000001").is_err());
        assert!(p("1e400").is_err());
        assert!(p("abc").is_err());
        assert!(p("99999999999999").is_err());
    }

    #[test]
    fn resource_amounts_print_as_decimals() {
        assert_eq!(ResourceAmount::from_micros(2_500_000).to_string(), "2.5");
        assert_eq!(ResourceAmount::from_micros(1).to_string(), "0.000001");
        assert_eq!(ResourceAmount::from_micros(3_000_000).to_f64(), 3.0);
    }

    #[test]
    fn quota_keys_follow_the_contract_pattern() {
        for ok in ["virtual_host", "ves.io.schema.quota.API.Create", "a1", "Ab-c.d_e"] {
            assert!(QuotaKey::parse("k", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "1a", "a-", "a b", "a/b", &"a".repeat(513)] {
            assert!(QuotaKey::parse("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_the_default_and_the_smallest_wins() {
        use Limit::*;
        assert_eq!(effective_limit(None, &[]), Unlimited);
        assert_eq!(effective_limit(Some(Max(10)), &[]), Max(10));
        // A quota object may loosen the plan default.
        assert_eq!(effective_limit(Some(Max(10)), &[Max(50)]), Max(50));
        assert_eq!(effective_limit(Some(Max(10)), &[Unlimited]), Unlimited);
        // Among quota objects, the most restrictive wins; unlimited is the loosest.
        assert_eq!(
            effective_limit(Some(Max(10)), &[Max(50), Unlimited, Max(20)]),
            Max(20)
        );
        assert_eq!(effective_limit(None, &[Unlimited, Unlimited]), Unlimited);
        assert_eq!(effective_limit(None, &[Max(0)]), Max(0));
    }

    #[test]
    fn limit_admission() {
        assert!(Limit::Unlimited.admits(i64::MAX - 1, 1));
        assert!(Limit::Max(10).admits(9, 1));
        assert!(!Limit::Max(10).admits(10, 1));
        assert!(!Limit::Max(10).admits(i64::MAX, 1));
        assert!(Limit::Max(0).admits(0, 0));
    }

    #[test]
    fn object_limits_are_validated() {
        assert_eq!(object_limit("m", -1), Ok(Limit::Unlimited));
        assert_eq!(object_limit("m", 0), Ok(Limit::Max(0)));
        assert!(object_limit("m", -2).is_err());
        assert!(object_limit("m", MAX_OBJECT_LIMIT + 1).is_err());
    }

    fn object(spec: QuotaSpec, disable: bool) -> QuotaObject {
        let ts = jiff::Timestamp::UNIX_EPOCH;
        QuotaObject {
            meta: crate::object::ObjectMeta {
                namespace: crate::names::Name::system(),
                name: crate::names::Name::parse("n", "q").unwrap(),
                uid: String::new(),
                labels: Default::default(),
                annotations: Default::default(),
                description: String::new(),
                disable,
                creator_class: String::new(),
                creator_id: String::new(),
                created_at: ts,
                modified_at: ts,
            },
            spec,
        }
    }

    #[test]
    fn effective_quota_overlays_enabled_objects_on_the_default() {
        let k = |s: &str| QuotaKey::parse("k", s).unwrap();
        let catalog = crate::catalog::Catalog::builtin();
        let default = catalog.plan("individual").unwrap().default_quota.clone();
        let mut a = QuotaSpec::default();
        a.object_limits.insert(k("virtual_host"), Limit::Max(3));
        a.object_limits.insert(k("custom_kind"), Limit::Max(7));
        a.resource_limits.insert(k("vcpu"), Limit::Unlimited);
        a.api_limits.insert(
            k("ves.io.schema.quota.API.Get"),
            RateLimit::new("a", 5, 0, crate::rate_limit::RateUnit::Second).unwrap(),
        );
        let mut b = QuotaSpec::default();
        b.object_limits.insert(k("virtual_host"), Limit::Max(2));
        let mut disabled = QuotaSpec::default();
        disabled.object_limits.insert(k("virtual_host"), Limit::Max(0));

        let objects = [object(a, false), object(b, false), object(disabled, true)];
        let eff = EffectiveQuota::compute(&default, &objects);
        assert_eq!(eff.limit(KeyFamily::Object, "virtual_host"), Limit::Max(2));
        assert_eq!(eff.limit(KeyFamily::Object, "custom_kind"), Limit::Max(7));
        assert_eq!(eff.limit(KeyFamily::Object, "origin_pool"), Limit::Max(25));
        assert_eq!(eff.limit(KeyFamily::Object, "never_configured"), Limit::Unlimited);
        assert_eq!(eff.limit(KeyFamily::Resource, "vcpu"), Limit::Unlimited);
        assert_eq!(
            eff.limit(KeyFamily::Resource, "memory_gib"),
            Limit::Max(64_000_000)
        );
        assert_eq!(eff.apis["ves.io.schema.quota.API.Get"].rate, 5);
        assert_eq!(eff.apis["ves.io.schema.quota.API.Create"].rate, 10);
    }

    #[test]
    fn api_limits_stored_before_validation_are_ignored_and_listed() {
        let k = |s: &str| QuotaKey::parse("k", s).unwrap();
        let catalog = crate::catalog::Catalog::builtin();
        let default = catalog.plan("individual").unwrap().default_quota.clone();
        let create = "ves.io.schema.quota.API.Create";
        let stored_zero = RateLimit {
            rate: 0,
            burst: 0,
            unit: crate::rate_limit::RateUnit::Second,
        };
        let mut locked = QuotaSpec::default();
        locked.api_limits.insert(k(create), stored_zero);
        locked.api_limits.insert(
            k("tollgate.x.Get"),
            RateLimit::new("a", 2, 0, crate::rate_limit::RateUnit::Minute).unwrap(),
        );
        let eff = EffectiveQuota::compute(&default, &[object(locked, false)]);
        // The plan's default applies, as if the object did not set the key.
        assert_eq!(eff.apis[create], default.api_limit(create).unwrap());
        assert_eq!(eff.apis["tollgate.x.Get"].rate, 2);
        assert_eq!(
            eff.ignored_api_limits,
            [IgnoredLimit {
                source: "q".into(),
                key: create.into(),
                reason: format!(
                    "spec.api_limits.{create}.rate: must be -1 (unlimited) or between 1 and 2147483647, got 0; a rate of 0 would refuse every call"
                ),
            }]
        );
        // In a default quota too: the key is then unlimited.
        let mut bad_default = QuotaSpec::default();
        bad_default.api_limits.insert(k(create), stored_zero);
        let eff = EffectiveQuota::compute(&bad_default, &[]);
        assert!(eff.apis.is_empty());
        assert_eq!(eff.ignored_api_limits[0].source, "default quota");
    }

    proptest! {
        #[test]
        fn effective_limit_never_exceeds_any_override(
            default in proptest::option::of(-1i64..1000),
            raws in proptest::collection::vec(-1i64..1000, 0..6),
        ) {
            let overrides: Vec<Limit> = raws.iter().map(|r| Limit::from_raw(*r)).collect();
            let eff = effective_limit(default.map(Limit::from_raw), &overrides);
            for o in &overrides {
                prop_assert!(eff.restrictiveness() <= o.restrictiveness());
            }
            if overrides.is_empty() {
                prop_assert_eq!(eff, default.map(Limit::from_raw).unwrap_or(Limit::Unlimited));
            } else {
                prop_assert!(overrides.contains(&eff));
            }
        }

        #[test]
        fn resource_amounts_roundtrip_through_text(micros in -1_000_000_000_000i64..1_000_000_000_000) {
            let a = ResourceAmount::from_micros(micros);
            prop_assert_eq!(ResourceAmount::parse("x", &a.to_string()), Ok(a));
        }
    }
}

/// A quota object: the contract's `quota` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaObject {
    pub meta: crate::object::ObjectMeta,
    pub spec: QuotaSpec,
}

/// The limits in force for a tenant: its default quota overlaid by its
/// enabled quota objects, key by key (see [`effective_limit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectiveQuota {
    pub objects: BTreeMap<String, Limit>,
    pub resources: BTreeMap<String, Limit>,
    pub apis: BTreeMap<String, RateLimit>,
    /// API limits that are not in force because they break the rules of
    /// [`RateLimit::new`] (stored before those rules existed): for the
    /// operator to see in the logs, and to delete or replace.
    pub ignored_api_limits: Vec<IgnoredLimit>,
}

/// An API limit [`EffectiveQuota::compute`] left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredLimit {
    /// The quota object's name, or `default quota` for the plan's.
    pub source: String,
    pub key: String,
    pub reason: String,
}

impl EffectiveQuota {
    /// Overlays `objects` (quota objects; disabled ones are ignored) on `default`.
    /// API limits that break the rules of [`RateLimit::new`] are left out
    /// (listed in `ignored_api_limits`), as if not set: a limit stored
    /// before those rules must not lock a tenant out.
    pub fn compute<'a>(default: &QuotaSpec, objects: impl IntoIterator<Item = &'a QuotaObject>) -> Self {
        let mut out = Self::default();
        let default = usable("default quota", default, &mut out.ignored_api_limits);
        let default = default.as_ref();
        let specs: Vec<Cow<'_, QuotaSpec>> = objects
            .into_iter()
            .filter(|o| !o.meta.disable)
            .map(|o| usable(o.meta.name.as_str(), &o.spec, &mut out.ignored_api_limits))
            .collect();
        let specs: Vec<&QuotaSpec> = specs.iter().map(AsRef::as_ref).collect();
        let families = [
            (KeyFamily::Object, &mut out.objects),
            (KeyFamily::Resource, &mut out.resources),
        ];
        for (family, target) in families {
            let keys = std::iter::once(default)
                .chain(specs.iter().copied())
                .flat_map(|s| match family {
                    KeyFamily::Object => s.object_limits.keys(),
                    KeyFamily::Resource => s.resource_limits.keys(),
                });
            for key in keys {
                if target.contains_key(key.as_str()) {
                    continue;
                }
                let overrides: Vec<Limit> = specs
                    .iter()
                    .filter_map(|s| s.limit(family, key.as_str()))
                    .collect();
                target.insert(
                    key.to_string(),
                    effective_limit(default.limit(family, key.as_str()), &overrides),
                );
            }
        }
        for key in std::iter::once(default)
            .chain(specs.iter().copied())
            .flat_map(|s| s.api_limits.keys())
        {
            if out.apis.contains_key(key.as_str()) {
                continue;
            }
            let overrides: Vec<RateLimit> = specs.iter().filter_map(|s| s.api_limit(key.as_str())).collect();
            if let Some(l) = effective_rate_limit(default.api_limit(key.as_str()), &overrides) {
                out.apis.insert(key.to_string(), l);
            }
        }
        out
    }

    /// The effective limit of one key; unconfigured keys are unlimited.
    pub fn limit(&self, family: KeyFamily, key: &str) -> Limit {
        let map = match family {
            KeyFamily::Object => &self.objects,
            KeyFamily::Resource => &self.resources,
        };
        map.get(key).copied().unwrap_or(Limit::Unlimited)
    }
}

/// `spec` without the API limits that break the rules of [`RateLimit::new`],
/// which are added to `ignored` (borrowed as is when all are valid).
fn usable<'s>(source: &str, spec: &'s QuotaSpec, ignored: &mut Vec<IgnoredLimit>) -> Cow<'s, QuotaSpec> {
    if spec.api_limits.values().all(RateLimit::is_valid) {
        return Cow::Borrowed(spec);
    }
    let mut spec = spec.clone();
    spec.api_limits.retain(
        |key, limit| match limit.check(&format!("spec.api_limits.{key}")) {
            Ok(()) => true,
            Err(e) => {
                ignored.push(IgnoredLimit {
                    source: source.to_owned(),
                    key: key.to_string(),
                    reason: e.message,
                });
                false
            }
        },
    );
    Cow::Owned(spec)
}

/// Display name and description of well-known object kinds and resources;
/// unknown keys are shown by their key. (RPC names of `api_limits` are
/// described by the API, which knows its operations.)
pub fn key_info(key: &str) -> KeyInfo {
    let (display_name, description) = match key {
        "namespace" => ("Namespaces", "Namespaces in the tenant"),
        "virtual_host" => ("Virtual Hosts", "Virtual hosts across all namespaces"),
        "http_loadbalancer" => ("HTTP Load Balancers", "HTTP load balancers across all namespaces"),
        "tcp_loadbalancer" => ("TCP Load Balancers", "TCP load balancers across all namespaces"),
        "origin_pool" => ("Origin Pools", "Origin pools across all namespaces"),
        "healthcheck" => ("Health Checks", "Health checks across all namespaces"),
        "app_firewall" => ("App Firewalls", "Web application firewall policies"),
        "service_policy" => ("Service Policies", "Service policies across all namespaces"),
        "certificate" => ("Certificates", "TLS certificates"),
        "api_credential" => ("API Credentials", "API credentials and tokens"),
        "site" => ("Sites", "Customer edge sites"),
        "vcpu" => ("vCPUs", "Virtual CPUs allocated to workloads"),
        "memory_gib" => ("Memory (GiB)", "Memory allocated to workloads, in GiB"),
        "storage_gib" => ("Storage (GiB)", "Persistent storage allocated, in GiB"),
        _ => ("", ""),
    };
    KeyInfo {
        display_name,
        description,
    }
}

/// Longest `request_id` of a usage change, in bytes.
pub const MAX_REQUEST_ID: usize = 256;

/// The key a usage change names: an object `kind` or a `resource`, exactly
/// one of them (an empty one counts as absent).
pub fn usage_key(kind: Option<&str>, resource: Option<&str>) -> Result<(KeyFamily, QuotaKey), Error> {
    match (kind.filter(|k| !k.is_empty()), resource.filter(|r| !r.is_empty())) {
        (Some(k), None) => Ok((KeyFamily::Object, QuotaKey::parse("kind", k)?)),
        (None, Some(r)) => Ok((KeyFamily::Resource, QuotaKey::parse("resource", r)?)),
        (Some(_), Some(_)) => Err(Error::invalid(
            "kind, resource: give exactly one of them, not both",
        )),
        (None, None) => Err(Error::invalid("kind, resource: one of them is required")),
    }
}

/// What the amount of a usage change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountKind {
    /// How much to reserve or release: more than zero.
    Change,
    /// The usage as counted (reconcile): zero or more.
    Absolute,
}

/// The amount of a usage change in base units (a count, or millionths of a
/// resource unit) from its JSON literal; the error names `field`. Object
/// counts are whole; no amount passes the family's cap
/// ([`KeyFamily::max_usage`]), so sums stay far from overflow.
pub fn usage_amount(
    field: &str,
    family: KeyFamily,
    literal: Option<&str>,
    kind: AmountKind,
) -> Result<i64, Error> {
    let literal = literal.ok_or_else(|| Error::invalid(format!("{field}: is required")))?;
    let amount = ResourceAmount::parse(field, literal)?;
    let micros = amount.micros();
    let (too_small, bound) = match kind {
        AmountKind::Change => (micros <= 0, "more than zero"),
        AmountKind::Absolute => (micros < 0, "zero or more"),
    };
    if too_small {
        return Err(Error::invalid(format!("{field}: must be {bound}, got {amount}")));
    }
    match family {
        KeyFamily::Object => {
            if micros % RESOURCE_UNIT != 0 {
                return Err(Error::invalid(format!(
                    "{field}: object counts are whole numbers, got {amount}"
                )));
            }
            let count = micros / RESOURCE_UNIT;
            let cap = family.max_usage();
            if count > cap {
                return Err(Error::invalid(format!("{field}: at most {cap}")));
            }
            Ok(count)
        }
        KeyFamily::Resource => {
            let cap = family.max_usage();
            if micros > cap {
                return Err(Error::invalid(format!(
                    "{field}: at most {}",
                    cap / RESOURCE_UNIT
                )));
            }
            Ok(micros)
        }
    }
}

/// A usage change's `request_id`: required, so that a retried request is
/// not counted twice, and at most [`MAX_REQUEST_ID`] bytes of printable text.
pub fn request_id(raw: Option<String>) -> Result<crate::ids::RequestId, Error> {
    let id = raw.unwrap_or_default();
    if id.is_empty() {
        return Err(Error::invalid(
            "request_id: is required, so that a retried request is not counted twice",
        ));
    }
    if id.len() > MAX_REQUEST_ID || id.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "request_id: must be at most {MAX_REQUEST_ID} bytes of printable text"
        )));
    }
    Ok(crate::ids::RequestId::new(id))
}

impl KeyFamily {
    /// What a key of this family is, in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Object => "object kind",
            Self::Resource => "resource",
        }
    }

    /// An amount in base units as people write it (a count, or resource units).
    pub fn show(self, base_units: i64) -> String {
        match self {
            Self::Object => base_units.to_string(),
            Self::Resource => ResourceAmount::from_micros(base_units).to_string(),
        }
    }
}

/// Why a reservation of `requested` on `key` was refused, given the key's
/// `limit` and `current` usage: the family's cap, which holds whatever the
/// limit (unlimited too), or the limit (ResourceExhausted).
pub fn refusal(family: KeyFamily, key: &str, limit: Limit, current: i64, requested: i64) -> Error {
    let capped = current.saturating_add(requested) > family.max_usage();
    let message = if capped {
        format!(
            "{} {key:?} cannot count more than {}: current usage {}, requested {}",
            family.describe(),
            family.show(family.max_usage()),
            family.show(current),
            family.show(requested)
        )
    } else {
        format!(
            "quota exceeded for {} {key:?}: limit {}, current usage {}, requested {}",
            family.describe(),
            family.show(limit.as_raw()),
            family.show(current),
            family.show(requested)
        )
    };
    // The facts a client needs without parsing the message, named as in a
    // usage answer (`kind` or `resource`, `limit`, `current`).
    let key_field = match family {
        KeyFamily::Object => "kind",
        KeyFamily::Resource => "resource",
    };
    let limit = match limit {
        Limit::Unlimited => "-1".to_owned(),
        Limit::Max(m) => family.show(m),
    };
    let mut error = Error::new(crate::ErrorKind::ResourceExhausted, message)
        .with_reason(crate::Reason::QuotaExceeded)
        .with_metadata(key_field, key)
        .with_metadata("limit", limit)
        .with_metadata("current", family.show(current))
        .with_metadata("requested", family.show(requested));
    if capped {
        error = error.with_metadata("max_usage", family.show(family.max_usage()));
    }
    error
}

#[cfg(test)]
mod change_rules {
    use super::*;

    #[test]
    fn a_change_names_exactly_one_key() {
        assert_eq!(usage_key(Some("namespace"), None).unwrap().0, KeyFamily::Object);
        assert_eq!(usage_key(Some(""), Some("vcpu")).unwrap().0, KeyFamily::Resource);
        assert!(
            usage_key(Some("a"), Some("b"))
                .unwrap_err()
                .message
                .contains("not both")
        );
        assert!(
            usage_key(None, Some(""))
                .unwrap_err()
                .message
                .contains("required")
        );
    }

    #[test]
    fn amounts_are_positive_whole_for_objects_and_capped() {
        let amount = |family, lit: &str, kind| usage_amount("amount", family, Some(lit), kind);
        assert_eq!(amount(KeyFamily::Object, "3", AmountKind::Change), Ok(3));
        assert_eq!(
            amount(KeyFamily::Resource, "2.5", AmountKind::Change),
            Ok(2_500_000)
        );
        assert_eq!(amount(KeyFamily::Object, "0", AmountKind::Absolute), Ok(0));
        let err = |family, lit: &str, kind| {
            usage_amount("amount", family, Some(lit), kind)
                .unwrap_err()
                .message
        };
        assert_eq!(
            err(KeyFamily::Object, "0", AmountKind::Change),
            "amount: must be more than zero, got 0"
        );
        assert_eq!(
            err(KeyFamily::Object, "-1", AmountKind::Absolute),
            "amount: must be zero or more, got -1"
        );
        assert_eq!(
            err(KeyFamily::Object, "1.5", AmountKind::Change),
            "amount: object counts are whole numbers, got 1.5"
        );
        assert_eq!(
            err(KeyFamily::Object, "2147483648", AmountKind::Change),
            "amount: at most 2147483647"
        );
        assert_eq!(
            amount(KeyFamily::Object, "2147483647", AmountKind::Change),
            Ok(2_147_483_647)
        );
        assert_eq!(
            err(KeyFamily::Resource, "1000000000.000001", AmountKind::Change),
            "amount: at most 1000000000"
        );
        assert_eq!(
            usage_amount("current", KeyFamily::Object, None, AmountKind::Absolute)
                .unwrap_err()
                .message,
            "current: is required"
        );
    }

    #[test]
    fn request_ids_are_required_short_and_printable() {
        assert_eq!(request_id(Some("r-1".into())).unwrap().as_str(), "r-1");
        assert!(request_id(None).unwrap_err().message.contains("is required"));
        assert!(request_id(Some(String::new())).is_err());
        assert!(request_id(Some("a\nb".into())).is_err());
        assert!(request_id(Some("x".repeat(MAX_REQUEST_ID))).is_ok());
        assert!(request_id(Some("x".repeat(MAX_REQUEST_ID + 1))).is_err());
    }

    #[test]
    fn a_refusal_names_the_cap_or_the_limit() {
        let e = refusal(KeyFamily::Object, "site", Limit::from_raw(5), 5, 1);
        assert_eq!(e.kind, crate::ErrorKind::ResourceExhausted);
        assert_eq!(
            e.message,
            "quota exceeded for object kind \"site\": limit 5, current usage 5, requested 1"
        );
        let cap = KeyFamily::Resource.max_usage();
        let e = refusal(KeyFamily::Resource, "vcpu", Limit::from_raw(-1), cap, 500_000);
        assert_eq!(
            e.message,
            "resource \"vcpu\" cannot count more than 1000000000: current usage 1000000000, requested 0.5"
        );
    }
}

#[cfg(test)]
mod threshold_tests {
    use super::*;

    #[test]
    fn a_threshold_is_crossed_on_the_way_up_only() {
        let l = Limit::Max(10);
        let t = DEFAULT_THRESHOLDS;
        assert_eq!(thresholds_crossed(7, 8, l, &t), vec![80]);
        assert_eq!(thresholds_crossed(8, 9, l, &t), Vec::<u8>::new(), "above already");
        assert_eq!(thresholds_crossed(9, 10, l, &t), vec![100]);
        assert_eq!(thresholds_crossed(0, 10, l, &t), vec![80, 100], "both at once");
        assert_eq!(
            thresholds_crossed(10, 5, l, &t),
            Vec::<u8>::new(),
            "down is no crossing"
        );
        assert_eq!(
            thresholds_crossed(5, 8, l, &t),
            vec![80],
            "again after falling below"
        );
        assert_eq!(thresholds_crossed(0, 5, Limit::Unlimited, &t), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(0, 0, Limit::Max(0), &t), Vec::<u8>::new());
        // Exact: 80 % of 3 is 2.4, crossed by going from 2 to 3.
        assert_eq!(thresholds_crossed(2, 3, Limit::Max(3), &[80]), vec![80]);
        assert_eq!(
            thresholds_crossed(i64::MAX - 1, i64::MAX, Limit::Max(i64::MAX), &[100]),
            vec![100]
        );
    }

    #[test]
    fn thresholds_are_percents_once_each() {
        assert_eq!(thresholds("t", &[100, 50]).unwrap(), vec![50, 100]);
        assert!(thresholds("t", &[0]).unwrap_err().message.starts_with("t[0]: "));
        assert!(
            thresholds("t", &[50, 101])
                .unwrap_err()
                .message
                .starts_with("t[1]: ")
        );
        assert!(thresholds("t", &[50, 50]).unwrap_err().message.contains("twice"));
        assert_eq!(thresholds("t", &[]).unwrap(), Vec::<u8>::new());
    }
}
