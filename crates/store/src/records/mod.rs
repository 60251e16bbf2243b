//! Stored documents: what Tollgate writes as JSON into TEXT columns, each in
//! a storage type of its own, separate from the domain type it carries.
//!
//! A domain type may be renamed, reshaped or split at will: only the
//! conversion here changes, never what is on disk. Each kind of document has
//! a format number of its own, written as `"format": n`; documents written
//! before formats existed carry no `format` and are format 1. Reading accepts
//! every format ever written and upgrades it step by step to the current
//! one; a document of a format newer than this build knows is refused as
//! corrupt rather than half-read. Golden copies of every format ever written
//! are committed under `tests/golden/` and read back by the conformance
//! suite: a change that breaks one of them breaks the build.
//!
//! | document | column | formats |
//! |---|---|---|
//! | finalized invoice | `invoices.document` | 1 (untagged), 2 (`format`, `issuer`) |
//! | plan transition payload | `plan_transitions.payload` | 1 (untagged), 2 (`format`) |
//! | quota spec | `quota_objects.spec` | 1 (untagged), 2 (`format`), 3 (`alert_thresholds`) |
//! | contact | `payment_methods.contact`, `tenants.contacts` | 1 (untagged), 2 (`format`) |
//! | credit note lines | `invoice_refunds.lines` | 1 (`format`) |
//!
//! Catalogs are stored as the operator's TOML source, which carries its own
//! `format = n` and is read by `domain::catalog::parse`; labels, annotations,
//! token scopes and a suspension's invoice names (`tenants.suspended_for`)
//! are plain JSON maps and lists of strings.

mod contact;
mod credit_note;
mod invoice;
mod quota;
mod transition;

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use contact::{decode_contact, decode_contacts, encode_contact, encode_contacts};
pub use credit_note::{decode_credit_note_lines, encode_credit_note_lines};
pub use invoice::{decode_invoice, encode_invoice};
pub use quota::{decode_quota_spec, encode_quota_spec};
pub use transition::{decode_transition_payload, encode_transition_payload};

use crate::StoreError;

/// A document's format: its `format` key, 1 when absent.
fn format_of(column: &str, text: &str) -> Result<u32, StoreError> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        format: Option<u32>,
    }
    // Every other key is skipped (serde's IgnoredAny), not kept.
    let peek: Peek = serde_json::from_str(text).map_err(|e| corrupt(column, e))?;
    Ok(peek.format.unwrap_or(1))
}

fn parse<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

fn write<T: serde::Serialize>(column: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt(column, e))
}

fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {e}"))
}

fn newer(column: &str, format: u32, known: u32) -> StoreError {
    StoreError::Corrupt(format!(
        "{column}: format {format} was written by a newer Tollgate (this one reads formats 1 to {known})"
    ))
}

fn decimal(column: &str, text: &str) -> Result<rust_decimal::Decimal, StoreError> {
    text.parse().map_err(|e| corrupt(column, e))
}
