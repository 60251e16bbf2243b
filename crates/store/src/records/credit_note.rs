//! `invoice_refunds.lines`: the lines a credit note credits, kept unchanged
//! with it.
//!
//! - Format 1: `{"format": 1, "lines": [{description, quantity, unit,
//!   unit_price_cents, amount_cents}]}`, decimals as text. Refunds made
//!   before credit notes have no document (NULL): they were refunds of the
//!   whole invoice and read as its lines (`domain::credit_note::lines`).

use serde::{Deserialize, Serialize};
use tollgate_domain::credit_note::CreditNoteLine;

use super::{decimal, format_of, newer, parse, write};
use crate::StoreError;

const COLUMN: &str = "invoice_refunds.lines";
const CURRENT: u32 = 1;

mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Line {
        pub description: String,
        /// Exact decimal as text.
        pub quantity: String,
        pub unit: String,
        /// Exact decimal as text.
        pub unit_price_cents: String,
        pub amount_cents: i64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Lines {
        pub format: u32,
        pub lines: Vec<Line>,
    }
}

/// Reads a credit note's lines of any format.
pub fn decode_credit_note_lines(text: &str) -> Result<Vec<CreditNoteLine>, StoreError> {
    let current: v1::Lines = match format_of(COLUMN, text)? {
        1 => parse(COLUMN, text)?,
        n => return Err(newer(COLUMN, n, CURRENT)),
    };
    current
        .lines
        .into_iter()
        .map(|l| {
            Ok(CreditNoteLine {
                description: l.description,
                quantity: decimal(COLUMN, &l.quantity)?,
                unit: l.unit,
                unit_price_cents: decimal(COLUMN, &l.unit_price_cents)?,
                amount_cents: l.amount_cents,
            })
        })
        .collect()
}

/// Writes a credit note's lines in the current format.
pub fn encode_credit_note_lines(lines: &[CreditNoteLine]) -> Result<String, StoreError> {
    write(
        COLUMN,
        &v1::Lines {
            format: CURRENT,
            lines: lines
                .iter()
                .map(|l| v1::Line {
                    description: l.description.clone(),
                    quantity: l.quantity.to_string(),
                    unit: l.unit.clone(),
                    unit_price_cents: l.unit_price_cents.to_string(),
                    amount_cents: l.amount_cents,
                })
                .collect(),
        },
    )
}
