//! Kubernetes-style label selectors for `label_filter`:
//! `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`; commas
//! between requirements mean AND.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Parses a selector; errors name `field` and the offending text.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        let err = |why: &str| Error::invalid(format!("{field}: {why} in {text:?}"));
        let mut reqs = Vec::new();
        for part in split_top_level(text).map_err(&err)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(err("empty requirement"));
            }
            reqs.push(parse_requirement(part).map_err(|w| err(&w))?);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Exists(k) => labels.contains_key(k),
            Self::NotExists(k) => !labels.contains_key(k),
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(k) => write!(f, "{k}"),
            Self::NotExists(k) => write!(f, "!{k}"),
            Self::Equals(k, v) => write!(f, "{k}={v}"),
            Self::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Self::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Self::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn split_top_level(text: &str) -> Result<Vec<&str>, &'static str> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses"),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("unbalanced ')'"),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed '('");
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(label_key(key.trim())?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            label_key(k.trim())?,
            label_value(v.trim())?,
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(label_key(k.trim())?, label_value(v.trim())?));
    }
    if let Some(open) = part.find('(') {
        let head = part[..open].trim();
        let close = part
            .rfind(')')
            .filter(|c| part[c + 1..].trim().is_empty())
            .ok_or_else(|| format!("expected ')' at the end of {part:?}"))?;
        let values = part[open + 1..close]
            .split(',')
            .map(|v| label_value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("expected 'key in (…)' or 'key notin (…)', got {part:?}"));
        };
        let key = label_key(key)?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("unknown operator {other:?}")),
        };
    }
    Ok(Requirement::Exists(label_key(part)?))
}

/// Checks the labels of an object: keys and values as in Kubernetes, so that
/// every label can be selected by `label_filter`.
pub fn validate_labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), Error> {
    for (k, v) in labels {
        label_key(k).map_err(|why| Error::invalid(format!("{field}: {why}")))?;
        label_value(v).map_err(|why| Error::invalid(format!("{field}.{k}: {why}")))?;
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of up to
/// 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
fn label_key(key: &str) -> Result<String, String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_label_like) {
                return Err(format!("invalid label key prefix in {key:?}"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !is_name_like(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

fn label_value(v: &str) -> Result<String, String> {
    if v.is_empty() || (v.len() <= 63 && is_name_like(v)) {
        Ok(v.to_owned())
    } else {
        Err(format!("invalid label value {v:?}"))
    }
}

fn is_name_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_like(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse("label_filter", s).unwrap()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("env", "prod"), ("tier", "web")]);
        assert!(sel("").matches(&l));
        assert!(sel("env=prod").matches(&l));
        assert!(sel("env==prod").matches(&l));
        assert!(!sel("env=dev").matches(&l));
        assert!(sel("env!=dev").matches(&l));
        assert!(sel("missing!=x").matches(&l));
        assert!(sel("env in (dev, prod)").matches(&l));
        assert!(!sel("env in (dev)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
        assert!(sel("missing notin (dev)").matches(&l));
        assert!(!sel("missing in (dev)").matches(&l));
        assert!(sel("env").matches(&l));
        assert!(!sel("!env").matches(&l));
        assert!(sel("!missing").matches(&l));
        assert!(sel("env=prod, tier in (web,api), !missing").matches(&l));
        assert!(!sel("env=prod,tier=db").matches(&l));
        assert!(sel("example.com/team=a").matches(&labels(&[("example.com/team", "a")])));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "env in (a",
            "env in a)",
            "env foo (a)",
            "=x",
            "a,,b",
            "env=@",
            "-a",
            "env in ((a))",
        ] {
            let e = Selector::parse("label_filter", bad).unwrap_err();
            assert!(e.message.starts_with("label_filter: "), "{bad}: {}", e.message);
        }
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-c]"
    }
    fn value() -> impl Strategy<Value = String> {
        "[x-z]"
    }
    fn requirement() -> impl Strategy<Value = Requirement> {
        prop_oneof![
            key().prop_map(Requirement::Exists),
            key().prop_map(Requirement::NotExists),
            (key(), value()).prop_map(|(k, v)| Requirement::Equals(k, v)),
            (key(), value()).prop_map(|(k, v)| Requirement::NotEquals(k, v)),
            (key(), proptest::collection::vec(value(), 1..3)).prop_map(|(k, v)| Requirement::In(k, v)),
            (key(), proptest::collection::vec(value(), 1..3)).prop_map(|(k, v)| Requirement::NotIn(k, v)),
        ]
    }

    proptest! {
        #[test]
        fn printing_and_parsing_roundtrip(reqs in proptest::collection::vec(requirement(), 0..5)) {
            let s = Selector(reqs);
            prop_assert_eq!(Selector::parse("f", &s.to_string()).unwrap(), s);
        }

        #[test]
        fn negations_are_complements(r in requirement(), l in proptest::collection::btree_map(key(), value(), 0..3)) {
            let negated = match r.clone() {
                Requirement::Exists(k) => Requirement::NotExists(k),
                Requirement::NotExists(k) => Requirement::Exists(k),
                Requirement::Equals(k, v) => Requirement::NotEquals(k, v),
                Requirement::NotEquals(k, v) => Requirement::Equals(k, v),
                Requirement::In(k, v) => Requirement::NotIn(k, v),
                Requirement::NotIn(k, v) => Requirement::In(k, v),
            };
            prop_assert_ne!(r.matches(&l), negated.matches(&l));
        }
    }
}
