//! The contract's JSON shapes. Only this module (and the handlers that fill
//! it) knows how the wire looks: proto3 JSON with enum names, int64 as
//! strings, RFC 3339 timestamps; an unset field is omitted, never `null`
//! (the contract types no field as nullable). Request shapes
//! ignore fields they do not know, at any depth, as grpc-gateway does, so
//! that clients built from a newer contract keep working.

pub mod billing;
pub mod credit_notes;
pub mod enums;
pub mod invoices;
pub mod meta;
pub mod quota;
pub mod usage;

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// An integer as proto3 JSON accepts it: a JSON number or a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoInt(pub i64);

impl<'de> Deserialize<'de> for ProtoInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProtoInt;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ProtoInt, E> {
                Ok(ProtoInt(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ProtoInt, E> {
                i64::try_from(v)
                    .map(ProtoInt)
                    .map_err(|_| E::custom(format!("{v} is out of range")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ProtoInt, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(ProtoInt(v as i64))
                } else {
                    Err(E::custom(format!("expected an integer, got {v}")))
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProtoInt, E> {
                v.trim()
                    .parse()
                    .map(ProtoInt)
                    .map_err(|_| E::custom(format!("expected an integer, got {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A decimal number exactly as the client wrote it (a JSON number, or a
/// string holding one), never passed through a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalLit(pub String);

impl<'de> Deserialize<'de> for DecimalLit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(de::Error::custom)?;
            return Ok(DecimalLit(inner.trim().to_owned()));
        }
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Ok(DecimalLit(text.to_owned()));
        }
        Err(de::Error::custom(format!("expected a number, got {text}")))
    }
}

/// A JSON document from storage as a response carries it: `null` (unset)
/// values are left out at every depth, as proto3 JSON omits unset fields
/// (`null` items of a list too); `None` when the whole document is `null`.
pub fn without_nulls(value: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| without_nulls(v).map(|v| (k, v)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(without_nulls).collect(),
        )),
        other => Some(other),
    }
}

/// A JSON number that is written exactly: an integer, or a decimal printed
/// from a float for resource amounts (never money).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_ints_accept_numbers_and_strings() {
        let p = |s: &str| serde_json::from_str::<ProtoInt>(s).map(|p| p.0);
        assert_eq!(p("5").unwrap(), 5);
        assert_eq!(p("-1").unwrap(), -1);
        assert_eq!(p("\"42\"").unwrap(), 42);
        assert_eq!(p("3.0").unwrap(), 3);
        assert!(p("3.5").is_err());
        assert!(p("\"x\"").is_err());
        assert!(p("true").is_err());
        assert!(p("18446744073709551615").is_err());
    }

    #[test]
    fn stored_documents_lose_their_nulls_at_every_depth() {
        let doc = serde_json::json!({
            "plan": "team",
            "domain": null,
            "nested": {"reason": null, "kept": [1, null, {"x": null, "y": false}]},
        });
        assert_eq!(
            without_nulls(doc),
            Some(serde_json::json!({"plan": "team", "nested": {"kept": [1, {"y": false}]}}))
        );
        assert_eq!(without_nulls(serde_json::Value::Null), None);
    }

    #[test]
    fn decimal_literals_keep_their_text() {
        let p = |s: &str| serde_json::from_str::<DecimalLit>(s).map(|d| d.0);
        assert_eq!(p("2.50").unwrap(), "2.50");
        assert_eq!(p("\"0.1\"").unwrap(), "0.1");
        assert_eq!(p("-1").unwrap(), "-1");
        assert!(p("{}").is_err());
        assert!(p("null").is_err());
        assert!(p("true").is_err());
    }
}
