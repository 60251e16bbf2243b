//! Rules for the free-form strings requests and operator commands carry.
//!
//! No string Tollgate stores may hold NUL: PostgreSQL's TEXT cannot, and the
//! two engines must accept the same input. Values that are names, ids,
//! tokens or titles hold no control characters at all (they end up in
//! tables, logs and PDFs); free text (descriptions, reasons, feedback) may
//! break lines.

use crate::Error;

/// The first control character of `value` other than those `allowed`.
fn control(value: &str, allowed: &[char]) -> Option<(usize, char)> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
}

fn check(field: &str, value: &str, max_chars: usize, allowed: &[char]) -> Result<(), Error> {
    if let Some((at, c)) = control(value, allowed) {
        return Err(Error::invalid(format!(
            "{field}: must not contain control characters, found U+{:04X} at character {}",
            u32::from(c),
            at + 1
        ))
        .with_metadata("field", field));
    }
    if value.chars().count() > max_chars {
        return Err(
            Error::invalid(format!("{field}: at most {max_chars} characters")).with_metadata("field", field)
        );
    }
    Ok(())
}

/// Checks a one-line value (a name, id, token, key or title): no control
/// characters and at most `max_chars` characters.
pub fn single_line(field: &str, value: &str, max_chars: usize) -> Result<(), Error> {
    check(field, value, max_chars, &[])
}

/// Checks free text: line breaks and tabs are fine, other control characters
/// (NUL among them) are not; at most `max_chars` characters.
pub fn free_text(field: &str, value: &str, max_chars: usize) -> Result<(), Error> {
    check(field, value, max_chars, &['\n', '\r', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_named_with_their_position() {
        assert!(single_line("f", "tok-visa ✓", 16).is_ok());
        let e = single_line("token", "tok\u{0}x", 16).unwrap_err();
        assert_eq!(
            e.message,
            "token: must not contain control characters, found U+0000 at character 4"
        );
        assert_eq!(e.metadata["field"], "token");
        for bad in ["a\nb", "\t", "x\u{7f}", "x\u{85}", "\u{1b}[31m"] {
            assert!(single_line("f", bad, 16).is_err(), "{bad:?}");
        }
        assert!(free_text("f", "line one\r\nline two\tend", 64).is_ok());
        for bad in ["\u{0}", "a\u{7}", "\u{1b}[2J"] {
            assert!(free_text("f", bad, 64).is_err(), "{bad:?}");
        }
        assert_eq!(
            single_line("title", &"é".repeat(3), 2).unwrap_err().message,
            "title: at most 2 characters"
        );
    }

    proptest! {
        /// Whatever passes either rule holds no NUL.
        #[test]
        fn nothing_accepted_holds_nul(s in "\\PC*\\x00?\\PC*") {
            if single_line("f", &s, 1000).is_ok() || free_text("f", &s, 1000).is_ok() {
                prop_assert!(!s.contains('\0'));
            }
        }
    }
}
