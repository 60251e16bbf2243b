//! Typed identifiers: newtypes over `String` for the ids and names that
//! cross the store boundary.
//!
//! Why: a tenant id, a plan name and an invoice name are all text, and with
//! bare `&str` parameters nothing stops a caller from passing one where
//! another is expected (`set_addon(plan, tenant_id, …)` compiles). With
//! these types a tenant id cannot be passed where a plan name is expected.
//! They carry no rules of their own (validation stays where it was); code
//! that only reads the text keeps working through `Deref<Target = str>`,
//! and the store binds `as_str()`.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Formats as the bare string does (`"t-1"`), not as a tuple struct,
        /// so that messages and logs that print an id with `{:?}` read as
        /// they did when it was a `String`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(value: &String) -> Self {
                Self(value.clone())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id! {
    /// A tenant's id (the `tenants.id` column): what every tenant-scoped
    /// store method takes, so that a plan or invoice name cannot be passed
    /// in its place.
    TenantId
}

string_id! {
    /// An invoice's name, unique within its tenant.
    InvoiceName
}

string_id! {
    /// A plan's name in a catalog.
    PlanName
}

string_id! {
    /// The idempotency key of a quota usage change (`request_id`), scoped per
    /// tenant and operation.
    RequestId
}

string_id! {
    /// A usage event's id, unique per tenant: what makes a resent event a
    /// duplicate.
    EventId
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_as_text() {
        let id = TenantId::new("t-1");
        assert_eq!(id.as_str(), "t-1");
        assert_eq!(id.to_string(), "t-1");
        assert_eq!(id.len(), 3);
        assert_eq!(id, "t-1");
        assert_eq!(TenantId::from("t-1"), id);
        assert_eq!(String::from(id.clone()), "t-1");
        assert_eq!(format!("{id:?}"), format!("{:?}", "t-1"));
    }

    #[test]
    fn looks_up_by_str() {
        let mut map = HashMap::new();
        map.insert(TenantId::new("t-1"), 1);
        assert_eq!(map.get("t-1"), Some(&1));
    }
}
