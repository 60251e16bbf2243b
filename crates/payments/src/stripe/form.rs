//! Stripe's request bodies: `application/x-www-form-urlencoded`, with nested
//! parameters written in brackets.
//!
//! Stripe's API reference writes its curl examples this way:
//!
//! - a hash: `metadata[order_id]=6735`, `card[number]=4242424242424242`;
//! - a list of plain values: `expand[]=customer`, `payment_method_types[]=card`;
//! - a list of hashes, by index: `items[0][price]=price_123`.
//!
//! Keys keep their brackets as they are (Stripe's own libraries do the same:
//! the server reads `%5B` and `[` alike, and the literal ones are readable in
//! logs); everything else that is not unreserved (`A-Z a-z 0-9 - . _ ~`) is
//! percent-encoded as UTF-8, a space as `%20`.

/// A parameter's value: text, a list, or a hash of named values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<Value>),
    Hash(Vec<(String, Value)>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Text(n.to_string())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Text(if b { "true" } else { "false" }.to_owned())
    }
}

/// The parameters of one request, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    params: Vec<(String, Value)>,
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.push((key.to_owned(), value.into()));
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn opt(self, key: &str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(value) => self.field(key, value),
            None => self,
        }
    }

    /// Adds `key[]=v` for each plain value.
    pub fn list<V: Into<Value>>(self, key: &str, values: impl IntoIterator<Item = V>) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        self.field(key, Value::List(values))
    }

    /// Adds `key[name]=v` for each pair (e.g. `metadata`).
    pub fn hash<K: Into<String>, V: Into<Value>>(
        self,
        key: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let pairs = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.field(key, Value::Hash(pairs))
    }

    /// Whether no parameter was added.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The flattened `(key, value)` pairs, unencoded.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, value) in &self.params {
            flatten(key.clone(), value, &mut out);
        }
        out
    }

    /// The body (or query string), e.g. `amount=2000&currency=usd`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (key, value) in self.pairs() {
            if !out.is_empty() {
                out.push('&');
            }
            encode_into(&key, true, &mut out);
            out.push('=');
            encode_into(&value, false, &mut out);
        }
        out
    }
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Text(s) => out.push((key, s.clone())),
        Value::Hash(pairs) => {
            for (name, v) in pairs {
                flatten(format!("{key}[{name}]"), v, out);
            }
        }
        Value::List(items) => {
            // Plain values repeat `key[]`; hashes and lists need their index
            // to stay apart (`items[0][price]`, `items[1][price]`).
            let nested = items.iter().any(|v| !matches!(v, Value::Text(_)));
            for (i, v) in items.iter().enumerate() {
                let k = if nested {
                    format!("{key}[{i}]")
                } else {
                    format!("{key}[]")
                };
                flatten(k, v, out);
            }
        }
    }
}

fn encode_into(s: &str, keep_brackets: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_brackets && matches!(b, b'[' | b']'));
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The curl examples of Stripe's API reference, as `-d` pairs joined by `&`.

    #[test]
    fn create_a_payment_intent() {
        // curl https://api.stripe.com/v1/payment_intents -d amount=2000 -d currency=usd \
        //   -d "payment_method_types[]"=card
        let form = Form::new()
            .field("amount", 2000)
            .field("currency", "usd")
            .list("payment_method_types", ["card"]);
        assert_eq!(
            form.encode(),
            "amount=2000&currency=usd&payment_method_types[]=card"
        );

        // The newer example: -d "automatic_payment_methods[enabled]=true"
        let form = Form::new()
            .field("amount", 2000)
            .field("currency", "usd")
            .hash("automatic_payment_methods", [("enabled", true)]);
        assert_eq!(
            form.encode(),
            "amount=2000&currency=usd&automatic_payment_methods[enabled]=true"
        );
    }

    #[test]
    fn metadata_is_a_hash() {
        // curl https://api.stripe.com/v1/customers -d "metadata[order_id]"=6735
        let form = Form::new().hash("metadata", [("order_id", "6735")]);
        assert_eq!(form.encode(), "metadata[order_id]=6735");
        let form = Form::new()
            .field("name", "Jenny Rosen")
            .field("email", "jennyrosen@example.com")
            .hash("metadata", [("tollgate_tenant", "t-1"), ("plan", "pro")]);
        assert_eq!(
            form.encode(),
            "name=Jenny%20Rosen&email=jennyrosen%40example.com\
             &metadata[tollgate_tenant]=t-1&metadata[plan]=pro"
        );
    }

    #[test]
    fn create_a_card_token() {
        // curl https://api.stripe.com/v1/tokens -d "card[number]"=4242424242424242 \
        //   -d "card[exp_month]"=5 -d "card[exp_year]"=2026 -d "card[cvc]"=314
        let form = Form::new().hash(
            "card",
            [
                ("number", "4242424242424242"),
                ("exp_month", "5"),
                ("exp_year", "2026"),
                ("cvc", "314"),
            ],
        );
        assert_eq!(
            form.encode(),
            "card[number]=4242424242424242&card[exp_month]=5&card[exp_year]=2026&card[cvc]=314"
        );
    }

    #[test]
    fn expand_repeats_its_brackets() {
        // curl https://api.stripe.com/v1/payment_intents/pi_123 -G \
        //   -d "expand[]"=customer -d "expand[]"="latest_charge.balance_transaction"
        let form = Form::new().list("expand", ["customer", "latest_charge.balance_transaction"]);
        assert_eq!(
            form.encode(),
            "expand[]=customer&expand[]=latest_charge.balance_transaction"
        );
        assert_eq!(
            form.pairs(),
            [
                ("expand[]".to_string(), "customer".to_string()),
                (
                    "expand[]".to_string(),
                    "latest_charge.balance_transaction".to_string()
                ),
            ]
        );
    }

    #[test]
    fn lists_of_hashes_are_indexed() {
        // curl https://api.stripe.com/v1/subscriptions -d customer=cus_123 \
        //   -d "items[0][price]"=price_123
        let form = Form::new().field("customer", "cus_123").field(
            "items",
            Value::List(vec![
                Value::Hash(vec![("price".into(), "price_123".into())]),
                Value::Hash(vec![
                    ("price".into(), "price_456".into()),
                    ("quantity".into(), 2.into()),
                ]),
            ]),
        );
        assert_eq!(
            form.encode(),
            "customer=cus_123&items[0][price]=price_123&items[1][price]=price_456&items[1][quantity]=2"
        );
        // Deeper nesting: payment_method_data[card][number].
        let form = Form::new().hash(
            "payment_method_data",
            [
                ("type", Value::from("card")),
                (
                    "card",
                    Value::Hash(vec![("number".into(), "4242424242424242".into())]),
                ),
            ],
        );
        assert_eq!(
            form.encode(),
            "payment_method_data[type]=card&payment_method_data[card][number]=4242424242424242"
        );
    }

    #[test]
    fn values_and_keys_are_percent_encoded() {
        let form = Form::new()
            .field("description", "Invoice #12 & co: 50% off/ü+€ ok")
            .hash("metadata", [("a=b&c", "x y")])
            .field("empty", "");
        assert_eq!(
            form.encode(),
            "description=Invoice%20%2312%20%26%20co%3A%2050%25%20off%2F%C3%BC%2B%E2%82%AC%20ok\
             &metadata[a%3Db%26c]=x%20y&empty="
        );
        // Unreserved characters stay as they are; brackets only in keys.
        let form = Form::new().field("a-b.c_d~e", "A-z.0_9~[]");
        assert_eq!(form.encode(), "a-b.c_d~e=A-z.0_9~%5B%5D");
    }

    #[test]
    fn optional_fields_and_empty_forms() {
        let none: Option<&str> = None;
        let form = Form::new().opt("email", none).opt("name", Some("Acme"));
        assert_eq!(form.encode(), "name=Acme");
        assert!(Form::new().is_empty());
        assert_eq!(Form::new().encode(), "");
    }
}
