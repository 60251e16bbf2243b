//! `quota_objects.spec`: the limits a quota object sets.
//!
//! - Format 1 (before formats): the domain `QuotaSpec` as serde wrote it:
//!   `object_limits` and `resource_limits` map keys to integers (objects;
//!   resource millionths; -1 unlimited), `api_limits` map keys to
//!   `{rate, burst, unit}` with unit SECOND/MINUTE/HOUR/DAY.
//! - Format 2: `"format": 2`, otherwise the same fields.
//! - Format 3: `"format": 3` and `alert_thresholds` (percents); written only
//!   for a spec that sets thresholds, so every other spec stays format 2 and
//!   reads the same in builds from before thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_domain::quota::{Limit, QuotaKey, QuotaSpec};
use tollgate_domain::rate_limit::{RateLimit, RateUnit};

use super::{corrupt, newer, parse, write};
use crate::StoreError;

const COLUMN: &str = "quota_objects.spec";
const CURRENT: u32 = 3;

mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Unit {
        Second,
        Minute,
        Hour,
        Day,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Rate {
        pub rate: i32,
        pub burst: i32,
        pub unit: Unit,
    }

    /// Formats 1, 2 and 3 share this shape; 1 has no `format` key, only 3
    /// has `alert_thresholds`.
    #[derive(Serialize, Deserialize, Default)]
    #[serde(default)]
    pub struct Spec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub format: Option<u32>,
        pub object_limits: BTreeMap<String, i64>,
        pub resource_limits: BTreeMap<String, i64>,
        pub api_limits: BTreeMap<String, Rate>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub alert_thresholds: Option<Vec<u8>>,
    }
}

/// Reads a stored quota spec of any format.
pub fn decode_quota_spec(text: &str) -> Result<QuotaSpec, StoreError> {
    // One pass: the two formats differ only by the `format` key (specs are
    // read on every reservation that computes limits).
    let s: v1::Spec = parse(COLUMN, text)?;
    match s.format.unwrap_or(1) {
        1..=3 => {}
        n => return Err(newer(COLUMN, n, CURRENT)),
    }
    let key = |k: &str| QuotaKey::parse(COLUMN, k).map_err(|e| corrupt(COLUMN, e));
    let limits = |m: BTreeMap<String, i64>| -> Result<BTreeMap<QuotaKey, Limit>, StoreError> {
        m.into_iter()
            .map(|(k, v)| Ok((key(&k)?, Limit::from_raw(v))))
            .collect()
    };
    Ok(QuotaSpec {
        object_limits: limits(s.object_limits)?,
        resource_limits: limits(s.resource_limits)?,
        api_limits: s
            .api_limits
            .into_iter()
            .map(|(k, r)| {
                Ok((
                    key(&k)?,
                    // Not `RateLimit::new`: a limit stored before its rules
                    // (rate 0) must still read back, to be reported and ignored.
                    RateLimit {
                        rate: r.rate,
                        burst: r.burst,
                        unit: match r.unit {
                            v1::Unit::Second => RateUnit::Second,
                            v1::Unit::Minute => RateUnit::Minute,
                            v1::Unit::Hour => RateUnit::Hour,
                            v1::Unit::Day => RateUnit::Day,
                        },
                    },
                ))
            })
            .collect::<Result<_, StoreError>>()?,
        alert_thresholds: s.alert_thresholds,
    })
}

/// Writes a quota spec in the current format.
pub fn encode_quota_spec(spec: &QuotaSpec) -> Result<String, StoreError> {
    let limits = |m: &BTreeMap<QuotaKey, Limit>| {
        m.iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_raw()))
            .collect()
    };
    // Format 2 unless thresholds need format 3 (see the module doc).
    let format = if spec.alert_thresholds.is_some() {
        CURRENT
    } else {
        2
    };
    let spec = v1::Spec {
        format: Some(format),
        alert_thresholds: spec.alert_thresholds.clone(),
        object_limits: limits(&spec.object_limits),
        resource_limits: limits(&spec.resource_limits),
        api_limits: spec
            .api_limits
            .iter()
            .map(|(k, r)| {
                let unit = match r.unit {
                    RateUnit::Second => v1::Unit::Second,
                    RateUnit::Minute => v1::Unit::Minute,
                    RateUnit::Hour => v1::Unit::Hour,
                    RateUnit::Day => v1::Unit::Day,
                };
                (
                    k.as_str().to_owned(),
                    v1::Rate {
                        rate: r.rate,
                        burst: r.burst,
                        unit,
                    },
                )
            })
            .collect(),
    };
    write(COLUMN, &spec)
}
