//! Currencies: ISO 4217 codes and their minor units.
//!
//! Every amount of money in Tollgate is an integer number of the minor unit
//! of its currency (cents of USD and EUR, whole yen of JPY, fils of BHD):
//! the `_cents` fields of the API, the catalog and stored invoices keep
//! their names for compatibility and mean minor units. How many minor units
//! make a major one is the currency's exponent ([`exponent`]), from ISO
//! 4217's table; it decides how an amount is printed ([`format_minor`]) and
//! read from major units ([`parse_major`]). Exact fractional prices
//! (a unit price of 0.5 minor units) are decimals of minor units and print
//! with at least the exponent's decimals ([`format_price`]).

use rust_decimal::Decimal;

use crate::Error;

/// Currencies whose minor unit is the major unit (ISO 4217 exponent 0).
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF",
    "XOF", "XPF",
];

/// Currencies with a thousandth as minor unit (exponent 3).
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Currencies with four decimals (units of account, exponent 4).
const EXPONENT_4: &[&str] = &["CLF", "UYW"];

/// How many decimals the currency's minor unit has (ISO 4217): 0 for JPY,
/// 3 for BHD, 2 for USD, EUR and every code not in the table.
pub fn exponent(code: &str) -> u32 {
    if EXPONENT_0.contains(&code) {
        0
    } else if EXPONENT_3.contains(&code) {
        3
    } else if EXPONENT_4.contains(&code) {
        4
    } else {
        2
    }
}

/// Whether `code` is shaped like an ISO 4217 code: three letters A–Z.
pub fn is_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks a currency code given in a request; the error names `field`.
pub fn parse_code(field: &str, code: &str) -> Result<String, Error> {
    let c = code.trim();
    if is_code(c) {
        Ok(c.to_owned())
    } else {
        Err(Error::invalid(format!(
            "{field}: must be an ISO 4217 currency code such as \"USD\", got {code:?}"
        ))
        .with_metadata("field", field))
    }
}

/// Formats an amount in minor units of `currency` in major units, exactly:
/// `-1234` USD → `-12.34`, `1500` JPY → `1500`, `1234` BHD → `1.234`.
pub fn format_minor(amount: i64, currency: &str) -> String {
    let e = exponent(currency);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if e == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(e);
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = e as usize)
}

/// An amount as people read it: `"12.34 USD"`, `"1500 JPY"`.
pub fn money(amount: i64, currency: &str) -> String {
    format!("{} {currency}", format_minor(amount, currency))
}

/// Formats an exact price in minor units of `currency` in major units, with
/// as many decimals as it needs and at least the currency's: 0.5 (cents of
/// USD) → `0.005`, 60 → `0.60`; 0.5 (yen) → `0.5`, 60 → `60`.
pub fn format_price(minor: Decimal, currency: &str) -> String {
    let e = exponent(currency);
    let amount = (minor / Decimal::from(10u64.pow(e))).normalize();
    if amount.scale() < e {
        format!("{amount:.prec$}", prec = e as usize)
    } else {
        amount.to_string()
    }
}

/// Reads an amount in major units of `currency` ("12.34", "5", "0.5" for
/// USD; "1500" for JPY) into minor units, exactly: digits with an optional
/// decimal point and at most the currency's decimals (none for JPY), more
/// than zero. No floating point, no exponents, no signs. Errors name
/// `field`.
pub fn parse_major(field: &str, text: &str, currency: &str) -> Result<i64, Error> {
    let e = exponent(currency);
    let example = match e {
        0 => "\"1500\"",
        3 => "\"12.345\"",
        4 => "\"12.3456\"",
        _ => "\"12.34\"",
    };
    let bad =
        |why: String| Error::invalid(format!("{field}: {why}, got {text:?}")).with_metadata("field", field);
    let shape = || bad(format!("must be an amount in {currency} such as {example}"));
    let t = text.trim();
    let (whole, fraction) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(shape());
    }
    if whole.trim_start_matches('0').len() > 15 {
        return Err(bad("is too large".into()));
    }
    let value: Decimal = t.parse().map_err(|_| shape())?;
    let value = value.normalize();
    if value.scale() > e {
        return Err(bad(match e {
            0 => format!("has decimals, but {currency} has no minor unit: give a whole amount"),
            2 => "has more than two decimals".to_owned(),
            3 => "has more than three decimals".to_owned(),
            n => format!("has more than {n} decimals"),
        }));
    }
    if value <= Decimal::ZERO {
        return Err(bad("must be more than zero".into()));
    }
    let minor = value * Decimal::from(10u64.pow(e));
    i64::try_from(minor).map_err(|_| bad("is too large".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn exponents_follow_iso_4217() {
        for (code, e) in [
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("CLP", 0),
            ("VND", 0),
            ("BHD", 3),
            ("KWD", 3),
            ("OMR", 3),
            ("JOD", 3),
            ("TND", 3),
            ("CLF", 4),
            ("XYZ", 2),
        ] {
            assert_eq!(exponent(code), e, "{code}");
        }
    }

    #[test]
    fn minor_units_print_in_major_units_with_the_currency_decimals() {
        assert_eq!(format_minor(0, "USD"), "0.00");
        assert_eq!(format_minor(5, "USD"), "0.05");
        assert_eq!(format_minor(-1234, "USD"), "-12.34");
        assert_eq!(format_minor(250_000, "EUR"), "2500.00");
        assert_eq!(format_minor(1500, "JPY"), "1500");
        assert_eq!(format_minor(-617, "JPY"), "-617");
        assert_eq!(format_minor(0, "JPY"), "0");
        assert_eq!(format_minor(1234, "BHD"), "1.234");
        assert_eq!(format_minor(-5, "BHD"), "-0.005");
        assert_eq!(format_minor(i64::MIN, "JPY"), "-9223372036854775808");
        assert_eq!(format_minor(i64::MIN, "USD"), "-92233720368547758.08");
        assert_eq!(money(1500, "JPY"), "1500 JPY");
        assert_eq!(money(628, "USD"), "6.28 USD");
    }

    #[test]
    fn prices_keep_every_decimal_and_at_least_the_currency_ones() {
        assert_eq!(format_price(d("0.5"), "USD"), "0.005");
        assert_eq!(format_price(d("60"), "USD"), "0.60");
        assert_eq!(format_price(d("2500"), "USD"), "25.00");
        assert_eq!(format_price(d("0.5"), "JPY"), "0.5");
        assert_eq!(format_price(d("60"), "JPY"), "60");
        assert_eq!(format_price(d("0.25"), "JPY"), "0.25");
        assert_eq!(format_price(d("1500"), "BHD"), "1.500");
        assert_eq!(format_price(d("0.5"), "BHD"), "0.0005");
    }

    #[test]
    fn major_units_are_read_exactly_with_at_most_the_currency_decimals() {
        for (text, currency, minor) in [
            ("12.34", "USD", 1234),
            ("5", "USD", 500),
            ("0.5", "USD", 50),
            (" 0.05 ", "EUR", 5),
            ("1500", "JPY", 1500),
            ("1500.0", "JPY", 1500),
            ("1.234", "BHD", 1234),
            ("1.2", "BHD", 1200),
            ("7", "KWD", 7000),
        ] {
            assert_eq!(
                parse_major("amount", text, currency).unwrap(),
                minor,
                "{text} {currency}"
            );
        }
        for (text, currency, why) in [
            ("12.34", "JPY", "JPY has no minor unit"),
            ("0.5", "JPY", "JPY has no minor unit"),
            ("1.005", "USD", "has more than two decimals"),
            ("1.2345", "BHD", "has more than three decimals"),
            ("-5", "USD", "must be an amount in USD"),
            ("-5", "JPY", "such as \"1500\""),
            ("1e3", "JPY", "must be an amount in JPY"),
            ("0", "JPY", "must be more than zero"),
            ("", "USD", "must be an amount"),
            ("9999999999999999", "USD", "too large"),
        ] {
            let e = parse_major("amount", text, currency).unwrap_err();
            assert!(
                e.message.starts_with("amount: ") && e.message.contains(why),
                "{text} {currency}: {}",
                e.message
            );
        }
    }

    #[test]
    fn codes_are_three_capital_letters() {
        assert!(is_code("JPY") && !is_code("jpy") && !is_code("US") && !is_code("EURO"));
        assert_eq!(parse_code("currency", " EUR ").unwrap(), "EUR");
        let e = parse_code("currency", "euro").unwrap_err();
        assert!(e.message.starts_with("currency: "), "{}", e.message);
    }
}
