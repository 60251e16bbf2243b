//! Payment providers. Tollgate stores a provider's token and what may be
//! shown of it, never card numbers; every charge carries an idempotency key so
//! that a retry after a crash never charges twice.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::{PaymentMethod, PaymentRole};

pub mod providers;
pub mod stripe;
pub use providers::Providers;
pub use stripe::{StripeConfig, StripeConfigError, StripeProvider};

/// Why a provider did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refuses the request for good (invalid token, expired
    /// card, unknown charge): asking again gives the same answer.
    #[error("refused by the payment provider: {0}")]
    Refused(String),
    /// The provider could not be reached, failed (5xx), or kept asking us to
    /// slow down: whether it acted is unknown. Ask again later with the same
    /// idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A token the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// What is stored and charged later: the provider's lasting id for the
    /// payment method (a Stripe `pm_…` for a one-time `tok_…`), or the token
    /// itself when it lasts.
    pub token: String,
    /// What may be shown to people, e.g. "Visa ending 4242, expires 12/2030".
    pub display: String,
}

/// One charge of an invoice attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeRequest<'a> {
    /// The payment method's stored token ([`Registered::token`]).
    pub token: &'a str,
    /// The provider's customer of the tenant, if the provider keeps customers.
    pub customer: Option<&'a str>,
    /// In the currency's minor units.
    pub amount_cents: i64,
    /// ISO 4217, e.g. `USD`.
    pub currency: &'a str,
    /// The attempt's key: the same key never charges twice.
    pub idempotency_key: &'a str,
    /// The provider's reference of this attempt's payment, when
    /// [`PaymentProvider::prepare`] made one (recorded with the attempt
    /// before any money moves); `charge` then completes that payment instead
    /// of making another.
    pub reference: Option<&'a str>,
    /// What the customer's statement and the provider's dashboard show.
    pub description: &'a str,
}

/// What a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Paid; `reference` is what a refund names.
    Succeeded { reference: String },
    /// Not paid, for good (card declined, authentication required, …).
    Declined { reason: String },
    /// Accepted but not finished (e.g. a bank debit): ask again later, or
    /// wait for the provider's webhook.
    Processing { reference: String },
}

/// A refund of (part of) a successful charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRequest<'a> {
    /// The charge's reference ([`Charge::Succeeded`]).
    pub reference: &'a str,
    /// In minor units; at most what remains of the charge.
    pub amount_cents: i64,
    /// The same key never refunds twice.
    pub idempotency_key: &'a str,
}

/// What a provider's webhook says happened, in Tollgate's terms. The
/// webhook only hurries what Tollgate would learn anyway: a payment's
/// outcome is always read back from the provider under the invoice's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// A payment (by reference) finished or failed: settle its attempt.
    PaymentSettled { reference: String },
    /// A payment was refunded, in part or in full (possibly outside Tollgate).
    Refunded {
        reference: String,
        /// Everything refunded of the payment so far, in minor units.
        amount_refunded: i64,
        /// The provider's id of the latest refund, if the event names it.
        latest_refund: Option<String>,
    },
    /// The customer disputed a payment (a chargeback).
    Disputed {
        reference: String,
        dispute_id: String,
        amount_cents: i64,
        currency: String,
        reason: String,
    },
    /// Nothing Tollgate acts on.
    Ignored,
}

/// A new payment method for a token `provider` accepted: a generated name
/// (`pm-` and 12 hex digits), the provider's name, the token to store and
/// its display text.
pub fn new_method(
    provider: &dyn PaymentProvider,
    registered: Registered,
    contact: Contact,
    role: PaymentRole,
    now: Timestamp,
) -> PaymentMethod {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    PaymentMethod {
        name: format!("pm-{}", &suffix[..12]),
        role,
        provider: provider.name().to_owned(),
        token: registered.token,
        display: registered.display,
        contact,
        created_at: now,
    }
}

/// A payment provider (Stripe, the built-in test provider, …) behind one
/// interface. Every call that moves money carries an idempotency key.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Stored with each payment method and charge, so that its charges and
    /// refunds go to the provider that holds it.
    fn name(&self) -> &'static str;

    /// Whether payment methods are registered under a provider customer
    /// (one per tenant, made by [`create_customer`](Self::create_customer)).
    fn keeps_customers(&self) -> bool {
        false
    }

    /// Makes the provider's customer of a tenant and returns its id. The
    /// tenant id is the idempotency key: asked twice, the provider answers
    /// with the same customer.
    async fn create_customer(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        contact: &Contact,
    ) -> Result<String, ProviderError> {
        let _ = (tenant_id, tenant_name, contact);
        Err(ProviderError::Refused(format!(
            "the {} payment provider keeps no customers",
            self.name()
        )))
    }

    /// Checks, without keeping anything, that `token` is one the provider
    /// issued and could register (a plan transition's token is checked when
    /// it is requested and registered when the transition runs). The
    /// default accepts every token.
    async fn check(&self, token: &str) -> Result<(), ProviderError> {
        let _ = token;
        Ok(())
    }

    /// Checks a token obtained by the customer from the provider and makes
    /// it lasting (attached to `customer` when the provider keeps customers).
    async fn register(
        &self,
        token: &str,
        customer: Option<&str>,
        contact: &Contact,
    ) -> Result<Registered, ProviderError>;

    /// Sets up the payment of a charge without moving any money and returns
    /// its reference, which the caller records with the attempt before
    /// [`charge`](Self::charge); `None` when the provider needs no such step.
    /// Two calls may make two payments; only one is ever completed.
    async fn prepare(&self, charge: &ChargeRequest<'_>) -> Result<Option<String>, ProviderError> {
        let _ = charge;
        Ok(None)
    }

    /// Charges (completes the prepared payment when `charge.reference` names
    /// one). The same idempotency key, or the same reference, always gives
    /// the same outcome and charges at most once.
    async fn charge(&self, charge: &ChargeRequest<'_>) -> Result<Charge, ProviderError>;

    /// Refunds part or all of a successful charge; returns the provider's
    /// reference of the refund. The same idempotency key refunds at most once.
    async fn refund(&self, refund: &RefundRequest<'_>) -> Result<String, ProviderError>;
}

/// The built-in provider for development and tests: tokens starting `tok-`
/// are accepted, `tok-invalid…` refused at registration, and `tok-declined…`
/// declines every charge, `tok-3ds…` needs authentication (declined off-session),
/// `tok-unattachable…` passes [`PaymentProvider::check`] but is refused when registered.
/// It remembers charges by idempotency key.
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

/// Why a charge that needs the customer present cannot be made off-session.
pub const AUTHENTICATION_REQUIRED: &str =
    "the payment requires the customer's authentication (3-D Secure), which an off-session charge cannot get";

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn check(&self, token: &str) -> Result<(), ProviderError> {
        check(token)
    }

    async fn register(
        &self,
        token: &str,
        _customer: Option<&str>,
        _contact: &Contact,
    ) -> Result<Registered, ProviderError> {
        check(token)?;
        if token.starts_with("tok-unattachable") {
            // Like a card Stripe declines when it is attached: the token
            // exists (`check` accepts it), registering it fails.
            return Err(ProviderError::Refused(
                "the card was declined when it was attached".into(),
            ));
        }
        let last4: String = token
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Ok(Registered {
            token: token.to_owned(),
            display: format!("test card ending {last4}"),
        })
    }

    async fn charge(&self, req: &ChargeRequest<'_>) -> Result<Charge, ProviderError> {
        let token = req.token;
        check(token)?;
        let mut charges = self.charges.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, outcome)) = charges.get(req.idempotency_key) {
            return Ok(outcome.clone());
        }
        let outcome = if token.starts_with("tok-declined") {
            Charge::Declined {
                reason: "the card was declined".into(),
            }
        } else if token.starts_with("tok-3ds") {
            Charge::Declined {
                reason: AUTHENTICATION_REQUIRED.into(),
            }
        } else {
            let digest = Sha256::digest(format!(
                "{}/{}/{}",
                req.idempotency_key, req.amount_cents, req.currency
            ));
            let reference: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Charge::Succeeded {
                reference: format!("ch_{reference}"),
            }
        };
        charges.insert(
            req.idempotency_key.to_owned(),
            (token.to_owned(), req.amount_cents, outcome.clone()),
        );
        Ok(outcome)
    }

    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        // A charge made by another process is unknown here; the test
        // provider accepts any reference it could have issued.
        if !req.reference.starts_with("ch_") {
            return Err(ProviderError::Refused(format!("no charge {:?}", req.reference)));
        }
        if req.amount_cents <= 0 {
            return Err(ProviderError::Refused("a refund must be positive".into()));
        }
        let mut refunds = self.refunds.lock().unwrap_or_else(|e| e.into_inner());
        refunds
            .entry(req.idempotency_key.to_owned())
            .or_insert_with(|| (req.reference.to_owned(), req.amount_cents));
        let digest = Sha256::digest(req.idempotency_key);
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(format!("re_{id}"))
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
            p.register("tok-visa-4242", None, &c).await.unwrap().display,
            "test card ending 4242"
        );
        assert!(matches!(
            p.register("tok-invalid-1", None, &c).await,
            Err(ProviderError::Refused(_))
        ));
        assert!(matches!(
            p.register("4242424242424242", None, &c).await,
            Err(ProviderError::Refused(_))
        ));
        assert!(p.register("tok-declined-1", None, &c).await.is_ok());
        assert!(p.check("tok-unattachable-1").await.is_ok());
        assert!(p.check("tok-invalid-1").await.is_err());
        assert!(matches!(
            p.register("tok-unattachable-1", None, &c).await,
            Err(ProviderError::Refused(_))
        ));
        let charge = |token, amount_cents, idempotency_key| ChargeRequest {
            token,
            customer: None,
            amount_cents,
            currency: "USD",
            idempotency_key,
            reference: None,
            description: "test",
        };
        assert!(matches!(
            p.charge(&charge("tok-declined-1", 100, "k1")).await,
            Ok(Charge::Declined { .. })
        ));
        assert_eq!(
            p.charge(&charge("tok-3ds-1", 100, "k3")).await.unwrap(),
            Charge::Declined {
                reason: AUTHENTICATION_REQUIRED.into()
            }
        );
        assert_eq!(p.prepare(&charge("tok-ok", 500, "k2")).await.unwrap(), None);
        let first = p.charge(&charge("tok-ok", 500, "k2")).await.unwrap();
        let again = p.charge(&charge("tok-ok", 500, "k2")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(p.successful_charges(), [("tok-ok".to_string(), 500)]);
        let Charge::Succeeded { reference } = first else {
            panic!("{first:?}")
        };
        let refund = |amount_cents, idempotency_key| RefundRequest {
            reference: &reference,
            amount_cents,
            idempotency_key,
        };
        let r1 = p.refund(&refund(200, "r1")).await.unwrap();
        assert_eq!(p.refund(&refund(200, "r1")).await.unwrap(), r1);
        assert_eq!(p.refunds(), [(reference.clone(), 200)]);
        let bad = RefundRequest {
            reference: "nope",
            amount_cents: 1,
            idempotency_key: "r2",
        };
        assert!(p.refund(&bad).await.is_err());
    }
}
