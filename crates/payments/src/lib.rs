//! Payment providers. Tollgate stores a provider's token and what may be
//! shown of it, never card numbers; every charge carries an idempotency key so
//! that a retry after a crash never charges twice.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::{PaymentMethod, PaymentRole};

/// Why a provider did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refuses the token for good (invalid, expired, unknown).
    #[error("refused by the payment provider: {0}")]
    Refused(String),
    /// The provider could not be reached or failed; try again later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A token the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// What may be shown to people, e.g. "test card ending 4242".
    pub display: String,
}

/// What a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Succeeded { reference: String },
    Declined { reason: String },
}

/// A new payment method for a token `provider` accepted: a generated name
/// (`pm-` and 12 hex digits), the provider's name and its display text.
pub fn new_method(
    provider: &dyn PaymentProvider,
    registered: Registered,
    token: String,
    contact: Contact,
    role: PaymentRole,
    now: Timestamp,
) -> PaymentMethod {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    PaymentMethod {
        name: format!("pm-{}", &suffix[..12]),
        role,
        provider: provider.name().to_owned(),
        token,
        display: registered.display,
        contact,
        created_at: now,
    }
}

/// A payment provider (Stripe, Adyen, …) behind one interface.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Stored with each payment method, so that its charges go to the same provider.
    fn name(&self) -> &'static str;

    /// Checks a token obtained by the customer from the provider.
    async fn register(&self, token: &str, contact: &Contact) -> Result<Registered, ProviderError>;

    /// Charges `amount_cents`; the same `idempotency_key` always gives the
    /// same outcome and charges at most once.
    async fn charge(
        &self,
        token: &str,
        amount_cents: i64,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Charge, ProviderError>;

    /// Refunds a successful charge (by its reference) in full; the same
    /// `idempotency_key` refunds at most once.
    async fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError>;
}

/// The built-in provider for development and tests: tokens starting `tok-`
/// are accepted, `tok-invalid…` refused at registration, and `tok-declined…`
/// declines every charge. It remembers charges by idempotency key.
#[derive(Debug, Default)]
pub struct TestProvider {
    charges: Mutex<HashMap<String, (String, i64, Charge)>>,
    refunds: Mutex<HashMap<String, (String, i64)>>,
}

impl TestProvider {
    /// Refunds made so far: (charge reference, amount) per idempotency key.
    pub fn refunds(&self) -> Vec<(String, i64)> {
        let refunds = self.refunds.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, i64)> = refunds.values().cloned().collect();
        out.sort();
        out
    }

    /// Charges made so far that succeeded: (token, amount) per idempotency key.
    pub fn successful_charges(&self) -> Vec<(String, i64)> {
        let charges = self.charges.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, i64)> = charges
            .values()
            .filter(|(_, _, c)| matches!(c, Charge::Succeeded { .. }))
            .map(|(t, a, _)| (t.clone(), *a))
            .collect();
        out.sort();
        out
    }
}

fn check(token: &str) -> Result<(), ProviderError> {
    if !token.starts_with("tok-") {
        return Err(ProviderError::Refused(format!(
            "{token:?} is not a test token (they start with \"tok-\")"
        )));
    }
    if token.starts_with("tok-invalid") {
        return Err(ProviderError::Refused("the card number is invalid".into()));
    }
    Ok(())
}

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn register(&self, token: &str, _contact: &Contact) -> Result<Registered, ProviderError> {
        check(token)?;
        let last4: String = token
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Ok(Registered {
            display: format!("test card ending {last4}"),
        })
    }

    async fn charge(
        &self,
        token: &str,
        amount_cents: i64,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Charge, ProviderError> {
        check(token)?;
        let mut charges = self.charges.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, outcome)) = charges.get(idempotency_key) {
            return Ok(outcome.clone());
        }
        let outcome = if token.starts_with("tok-declined") {
            Charge::Declined {
                reason: "the card was declined".into(),
            }
        } else {
            let digest = Sha256::digest(format!("{idempotency_key}/{amount_cents}/{currency}"));
            let reference: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Charge::Succeeded {
                reference: format!("ch_{reference}"),
            }
        };
        charges.insert(
            idempotency_key.to_owned(),
            (token.to_owned(), amount_cents, outcome.clone()),
        );
        Ok(outcome)
    }

    async fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<(), ProviderError> {
        // A charge made by another process is unknown here; the test
        // provider accepts any reference it could have issued.
        if !reference.starts_with("ch_") {
            return Err(ProviderError::Refused(format!("no charge {reference:?}")));
        }
        let mut refunds = self.refunds.lock().unwrap_or_else(|e| e.into_inner());
        refunds
            .entry(idempotency_key.to_owned())
            .or_insert_with(|| (reference.to_owned(), amount_cents));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_test_provider_follows_its_token_conventions() {
        let p = TestProvider::default();
        let c = Contact::default();
        assert_eq!(
            p.register("tok-visa-4242", &c).await.unwrap().display,
            "test card ending 4242"
        );
        assert!(matches!(
            p.register("tok-invalid-1", &c).await,
            Err(ProviderError::Refused(_))
        ));
        assert!(matches!(
            p.register("4242424242424242", &c).await,
            Err(ProviderError::Refused(_))
        ));
        assert!(p.register("tok-declined-1", &c).await.is_ok());
        assert!(matches!(
            p.charge("tok-declined-1", 100, "USD", "k1").await,
            Ok(Charge::Declined { .. })
        ));
        let first = p.charge("tok-ok", 500, "USD", "k2").await.unwrap();
        let again = p.charge("tok-ok", 500, "USD", "k2").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(p.successful_charges(), [("tok-ok".to_string(), 500)]);
        let Charge::Succeeded { reference } = first else {
            panic!("{first:?}")
        };
        p.refund(&reference, 500, "r1").await.unwrap();
        p.refund(&reference, 500, "r1").await.unwrap();
        assert_eq!(p.refunds(), [(reference, 500)]);
        assert!(p.refund("nope", 1, "r2").await.is_err());
    }
}
