//! Stripe as a [`PaymentProvider`], and Stripe's webhook signatures
//! ([`webhook`]).
//!
//! # Customers and payment methods
//!
//! Stripe keeps customers: each tenant gets one ([`create_customer`],
//! `cus_…`, with the tenant id in its metadata), and payment methods are
//! attached to it. [`register`] takes what the tenant's browser got from
//! Stripe.js: a PaymentMethod id (`pm_…`, attached to the customer and stored
//! as is) or a card token (`tok_…`, usable once: added to the customer as a
//! card source, and the lasting `card_…` id is stored; Stripe accepts a
//! `card_…` wherever a PaymentMethod goes). No card number ever reaches
//! Tollgate.
//!
//! # Charges: prepare, record, then confirm
//!
//! A charge is a PaymentIntent (`pi_…`), made in two steps:
//!
//! 1. [`prepare`] creates the PaymentIntent for the amount, the customer and
//!    the payment method, **unconfirmed**: no money moves. The caller records
//!    its id with the charge attempt before going on.
//! 2. [`charge`] with that reference first *reads* the PaymentIntent and acts
//!    on its status: `requires_confirmation` is confirmed off-session (the
//!    only request that moves money); `succeeded`, `processing`, a decline or
//!    a cancellation is reported as it stands.
//!
//! So when the answer to the confirmation is lost (a timeout, a dropped
//! connection, a crash of the worker), asking again reads the PaymentIntent
//! and finds it `succeeded` (or declined): the outcome is learnt, never made
//! a second time. A PaymentIntent is confirmed at most once by Stripe
//! itself, so this holds even where `Idempotency-Key` is not honoured (test
//! servers) or has expired (Stripe keeps keys for 24 hours; a worker can be
//! down for longer). Idempotency keys are still sent on every request that
//! makes something (`<key>/prepare`, `<key>/confirm`, …): within the 24
//! hours they make a retried request return the first answer.
//!
//! [`charge`] without a reference (a caller that skipped [`prepare`])
//! creates and confirms in one request, idempotent by its key only: its
//! lost answer can be resolved within Stripe's 24 hours only.
//!
//! A payment that needs the customer's authentication (3-D Secure) cannot
//! happen off-session: it is declined with [`AUTHENTICATION_REQUIRED`] and
//! its PaymentIntent cancelled, so that nobody completes it later without
//! Tollgate knowing.
//!
//! # Refunds
//!
//! [`refund`] names the PaymentIntent (or a `ch_…` charge). Before refunding
//! it looks for a refund of that payment carrying the same key in its
//! metadata (a refund whose answer was lost, even after 24 hours: it is
//! reported, not repeated), then checks that the amount does not exceed what
//! remains of the payment.
//!
//! # What answers mean
//!
//! - 2xx: done.
//! - 402 or `type=card_error` on a charge: [`Charge::Declined`] with Stripe's
//!   message and decline code.
//! - Other 4xx (400, 402 elsewhere, 404, …): [`ProviderError::Refused`] with
//!   Stripe's message and code: asking again gives the same answer.
//! - 429: retried after `backoff_base × 2ⁿ`, up to `max_retries_on_429`
//!   times, then [`ProviderError::Unavailable`].
//! - 5xx, 401/403 (the configured key), 409 (a concurrent request with the
//!   same key), network errors, timeouts: [`ProviderError::Unavailable`]:
//!   whether Stripe acted is unknown; ask again later.
//!
//! The secret key is sent in the `Authorization` header only; it is never
//! printed by `Debug` and is removed from every error text.
//!
//! [`create_customer`]: PaymentProvider::create_customer
//! [`register`]: PaymentProvider::register
//! [`prepare`]: PaymentProvider::prepare
//! [`charge`]: PaymentProvider::charge
//! [`refund`]: PaymentProvider::refund

mod client;
pub mod form;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tollgate_domain::contact::Contact;

pub use self::client::STRIPE_VERSION;
use self::client::{ApiError, Client, Failure, Method};
use self::form::Form;
use self::webhook::{Event, WebhookError};
use crate::{
    AUTHENTICATION_REQUIRED, Charge, ChargeRequest, PaymentProvider, ProviderError, RefundRequest, Registered,
};

/// Where Stripe's API is.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How to reach Stripe. [`StripeConfig::new`] has the defaults.
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_live_…`, `sk_test_…` or a restricted `rk_…` key. Never printed.
    pub secret_key: String,
    /// Default [`DEFAULT_API_BASE`]; a Stripe-compatible test server in tests.
    pub api_base: String,
    /// The webhook endpoint's signing secret (`whsec_…`), for
    /// [`StripeProvider::verify_webhook`]. Never printed.
    pub webhook_secret: Option<String>,
    /// How long one request may take, connecting included (default 60 s).
    /// A request past it is [`ProviderError::Unavailable`].
    pub request_timeout: Duration,
    /// How many times a request answered 429 is sent again (default 3).
    pub max_retries_on_429: u32,
    /// The first wait after a 429, doubled after each further one (default
    /// 500 ms, at most 30 s).
    pub backoff_base: Duration,
    /// Leave `false` with Stripe. localstripe (the test server Tollgate's
    /// tests run against) answers 400 to parameters it does not know; `true`
    /// leaves those out: `description` on PaymentIntents and `off_session`
    /// when confirming one (it confirms as off-session anyway).
    pub localstripe_compat: bool,
}

impl StripeConfig {
    /// Stripe's API with `secret_key` and the default timeouts and retries.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            api_base: DEFAULT_API_BASE.to_owned(),
            webhook_secret: None,
            request_timeout: Duration::from_secs(60),
            max_retries_on_429: 3,
            backoff_base: Duration::from_millis(500),
            localstripe_compat: false,
        }
    }
}

/// Shows that a secret is there, and its kind, never the secret.
fn redacted(secret: &str) -> String {
    if secret.is_empty() {
        return "(empty)".to_owned();
    }
    ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"]
        .iter()
        .find(|p| secret.len() > p.len() && secret.starts_with(*p))
        .map_or_else(|| "[redacted]".to_owned(), |p| format!("{p}[redacted]"))
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &redacted(&self.secret_key))
            .field("api_base", &self.api_base)
            .field("webhook_secret", &self.webhook_secret.as_deref().map(redacted))
            .field("request_timeout", &self.request_timeout)
            .field("max_retries_on_429", &self.max_retries_on_429)
            .field("backoff_base", &self.backoff_base)
            .field("localstripe_compat", &self.localstripe_compat)
            .finish()
    }
}

/// Why a [`StripeConfig`] cannot be used. No message shows a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeConfigError {
    #[error("the stripe secret key is empty")]
    EmptySecretKey,
    #[error(
        "the stripe secret key is a publishable key (pk_…), which cannot charge: use the secret key (sk_…) or a restricted key (rk_…)"
    )]
    PublishableKey,
    #[error("the stripe secret key has spaces or characters that are not printable ASCII")]
    MalformedSecretKey,
    #[error("the stripe API base {0:?} is not an http(s) URL without query or fragment")]
    InvalidApiBase(String),
    #[error("the stripe HTTP client cannot be built: {0}")]
    Client(String),
}

/// Stripe, through its HTTP API.
pub struct StripeProvider {
    client: Client,
    webhook_secret: Option<String>,
    localstripe_compat: bool,
}

impl fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeProvider")
            .field("api_base", &self.client.base())
            .field("secret_key", &"[redacted]")
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl StripeProvider {
    /// Checks the configuration and builds the HTTP client (rustls with the
    /// embedded web PKI roots). Nothing is sent to Stripe.
    pub fn new(config: StripeConfig) -> Result<Self, StripeConfigError> {
        let key = config.secret_key;
        if key.is_empty() {
            return Err(StripeConfigError::EmptySecretKey);
        }
        if key.starts_with("pk_") {
            return Err(StripeConfigError::PublishableKey);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StripeConfigError::MalformedSecretKey);
        }
        let base = config.api_base.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base).map_err(|_| StripeConfigError::InvalidApiBase(base.clone()))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
            || url.host_str().is_none()
        {
            return Err(StripeConfigError::InvalidApiBase(base));
        }
        let client = Client::new(
            base,
            key,
            config.request_timeout,
            config.max_retries_on_429,
            config.backoff_base,
        )
        .map_err(StripeConfigError::Client)?;
        Ok(Self {
            client,
            webhook_secret: config.webhook_secret.filter(|s| !s.is_empty()),
            localstripe_compat: config.localstripe_compat,
        })
    }

    /// Checks a webhook request Stripe sent (its `Stripe-Signature` header,
    /// `""` when absent, and raw body) with the configured signing secret and
    /// [`webhook::DEFAULT_TOLERANCE`]; see [`webhook::verify`].
    pub fn verify_webhook(
        &self,
        header: &str,
        payload: &[u8],
        now: jiff::Timestamp,
    ) -> Result<Event, WebhookError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(WebhookError::NoSecretConfigured);
        };
        webhook::verify(header, payload, secret, now, webhook::DEFAULT_TOLERANCE)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: &Form,
        idempotency_key: Option<&str>,
    ) -> Result<T, Failure> {
        self.client.call(method, path, form, idempotency_key).await
    }

    /// The PaymentIntent as it stands.
    async fn payment_intent(&self, id: &str, expand_charge: bool) -> Result<PaymentIntent, ProviderError> {
        let mut form = Form::new();
        if expand_charge {
            form = form.list("expand", ["latest_charge"]);
        }
        self.call(Method::Get, &format!("/v1/payment_intents/{id}"), &form, None)
            .await
            .map_err(refused)
    }

    /// What a PaymentIntent's status says about the charge, once it is past
    /// confirmation (`confirm` tells whether `requires_confirmation` may still
    /// be confirmed).
    async fn outcome(
        &self,
        pi: PaymentIntent,
        req: &ChargeRequest<'_>,
        confirm: bool,
    ) -> Result<Charge, ProviderError> {
        match pi.status.as_str() {
            "succeeded" => Ok(Charge::Succeeded { reference: pi.id }),
            "processing" => Ok(Charge::Processing { reference: pi.id }),
            "requires_confirmation" if confirm => {
                // Never confirm another amount than the one asked. (Past
                // confirmation, the payment is reported as it stands: money
                // that moved is never hidden.)
                let currency = req.currency.to_ascii_lowercase();
                if pi.amount != req.amount_cents || !pi.currency.eq_ignore_ascii_case(&currency) {
                    return Err(ProviderError::Refused(format!(
                        "the payment {} is for {} {}, not the {} {} asked: it is not confirmed",
                        pi.id, pi.amount, pi.currency, req.amount_cents, currency
                    )));
                }
                self.confirm(pi, req).await
            }
            "requires_action" => {
                // The customer would have to authenticate, which an
                // off-session charge cannot ask for. Cancelled so that it is
                // not completed later behind Tollgate's back; if the cancel
                // fails, nobody has the client secret to complete it anyway.
                let cancelled = self
                    .call::<PaymentIntent>(
                        Method::Post,
                        &format!("/v1/payment_intents/{}/cancel", pi.id),
                        &Form::new(),
                        Some(&format!("{}/cancel", req.idempotency_key)),
                    )
                    .await;
                if let Err(e) = cancelled {
                    tracing::warn!(payment_intent = %pi.id, error = ?e, "cannot cancel a PaymentIntent that requires authentication");
                }
                Ok(Charge::Declined {
                    reason: AUTHENTICATION_REQUIRED.to_owned(),
                })
            }
            "requires_payment_method" => Ok(Charge::Declined {
                reason: match pi.last_payment_error {
                    Some(e) if e.is_authentication() => AUTHENTICATION_REQUIRED.to_owned(),
                    Some(e) => client::decline_reason(
                        e.message.as_deref(),
                        e.code.as_deref(),
                        e.decline_code.as_deref(),
                    ),
                    None => "the payment has no usable payment method".to_owned(),
                },
            }),
            "canceled" => Ok(Charge::Declined {
                reason: match pi.cancellation_reason {
                    Some(why) => format!("the payment was canceled ({why})"),
                    None => "the payment was canceled".to_owned(),
                },
            }),
            "requires_capture" => Err(ProviderError::Refused(format!(
                "the payment {} waits for a manual capture, which Tollgate never asks for",
                pi.id
            ))),
            "requires_confirmation" => Err(ProviderError::Unavailable(format!(
                "the payment {} still requires confirmation after it was confirmed; ask again later",
                pi.id
            ))),
            other => Err(ProviderError::Unavailable(format!(
                "the payment {} is in a state Tollgate does not know ({other:?}); ask again later",
                pi.id
            ))),
        }
    }

    /// Confirms a prepared PaymentIntent: the request that moves money.
    async fn confirm(&self, pi: PaymentIntent, req: &ChargeRequest<'_>) -> Result<Charge, ProviderError> {
        let mut form = Form::new();
        if !self.localstripe_compat {
            form = form.field("off_session", true);
        }
        let confirmed = self
            .call::<PaymentIntent>(
                Method::Post,
                &format!("/v1/payment_intents/{}/confirm", pi.id),
                &form,
                Some(&format!("{}/confirm", req.idempotency_key)),
            )
            .await;
        match confirmed {
            Ok(after) => Box::pin(self.outcome(after, req, false)).await,
            Err(Failure::Api(e)) if e.is_card_error() => Ok(declined(&e)),
            Err(Failure::Api(e)) => {
                // E.g. `payment_intent_unexpected_state`: someone else moved
                // it on. Its status now is the answer.
                let now = self.payment_intent(&pi.id, false).await?;
                if now.status == "requires_confirmation" {
                    Err(ProviderError::Refused(e.describe()))
                } else {
                    Box::pin(self.outcome(now, req, false)).await
                }
            }
            Err(Failure::Unavailable(e)) => Err(ProviderError::Unavailable(e)),
        }
    }

    /// The payment a refund names: its id and what remains of it.
    async fn refundable(&self, reference: &str) -> Result<ChargeObject, ProviderError> {
        if reference.starts_with("ch_") {
            let charge: ChargeObject = self
                .call(
                    Method::Get,
                    &format!("/v1/charges/{reference}"),
                    &Form::new(),
                    None,
                )
                .await
                .map_err(refused)?;
            if charge.status != "succeeded" {
                return Err(ProviderError::Refused(format!(
                    "the charge {reference} did not succeed ({}): there is nothing to refund",
                    charge.status
                )));
            }
            return Ok(charge);
        }
        let pi = self.payment_intent(reference, true).await?;
        if pi.status != "succeeded" {
            return Err(ProviderError::Refused(format!(
                "the payment {reference} is {}, not succeeded: there is nothing to refund",
                pi.status
            )));
        }
        match pi.latest_charge {
            Some(LatestCharge::Object(charge)) => Ok(*charge),
            Some(LatestCharge::Id(id)) => {
                if !valid_id("ch_", &id) {
                    return Err(unexpected("the payment's latest charge", &id));
                }
                self.call(Method::Get, &format!("/v1/charges/{id}"), &Form::new(), None)
                    .await
                    .map_err(refused)
            }
            None => Err(ProviderError::Refused(format!(
                "the payment {reference} has no charge to refund"
            ))),
        }
    }

    /// A refund of this payment made earlier with this key, if any.
    async fn earlier_refund(
        &self,
        by: &str,
        reference: &str,
        key: &str,
    ) -> Result<Option<Refund>, ProviderError> {
        let mut starting_after: Option<String> = None;
        // A payment has few refunds; the bound only guards against a server
        // that keeps saying has_more.
        for _ in 0..20 {
            let form = Form::new()
                .field(by, reference)
                .field("limit", 100)
                .opt("starting_after", starting_after.as_deref());
            let page: List<Refund> = self
                .call(Method::Get, "/v1/refunds", &form, None)
                .await
                .map_err(refused)?;
            if let Some(found) = page
                .data
                .iter()
                .find(|r| r.metadata.get("tollgate_refund").and_then(|v| v.as_str()) == Some(key))
            {
                return Ok(Some(found.clone()));
            }
            match page.data.last() {
                Some(last) if page.has_more => starting_after = Some(last.id.clone()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// A Stripe refusal as a [`ProviderError`].
fn refused(failure: Failure) -> ProviderError {
    match failure {
        Failure::Api(e) => ProviderError::Refused(e.describe()),
        Failure::Unavailable(e) => ProviderError::Unavailable(e),
    }
}

fn declined(e: &ApiError) -> Charge {
    Charge::Declined {
        reason: if e.has_code("authentication_required") {
            AUTHENTICATION_REQUIRED.to_owned()
        } else {
            e.decline_reason()
        },
    }
}

/// An answer that is not what Stripe gives: whether it acted is unknown.
fn unexpected(what: &str, got: &str) -> ProviderError {
    let got: String = got.chars().take(60).collect();
    ProviderError::Unavailable(format!("unexpected answer from Stripe: {what} is {got:?}"))
}

/// `prefix` followed by letters, digits and underscores: safe in a URL path.
fn valid_id(prefix: &str, id: &str) -> bool {
    id.len() > prefix.len()
        && id.len() <= 255
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn customer_of(customer: Option<&str>) -> Result<&str, ProviderError> {
    let Some(customer) = customer else {
        return Err(ProviderError::Refused(
            "stripe needs the tenant's customer (none was made for this tenant)".into(),
        ));
    };
    if !valid_id("cus_", customer) {
        return Err(ProviderError::Refused(format!(
            "{customer:?} is not a Stripe customer id (cus_…)"
        )));
    }
    Ok(customer)
}

/// What a stored token may be: a PaymentMethod, or a card (or source) added
/// to the customer from a token.
fn chargeable(token: &str) -> Result<(), ProviderError> {
    if ["pm_", "card_", "src_"].iter().any(|p| valid_id(p, token)) {
        Ok(())
    } else {
        Err(ProviderError::Refused(
            "the payment method's token is not a Stripe payment method (pm_…) or card (card_…)".into(),
        ))
    }
}

fn check_amount(amount_cents: i64, currency: &str) -> Result<String, ProviderError> {
    if amount_cents <= 0 {
        return Err(ProviderError::Refused(format!(
            "an amount must be positive (got {amount_cents})"
        )));
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ProviderError::Refused(format!(
            "{currency:?} is not an ISO 4217 currency code"
        )));
    }
    Ok(currency.to_ascii_lowercase())
}

/// "Visa ending 4242, expires 12/2030".
fn display(brand: &str, last4: &str, exp_month: u32, exp_year: u32) -> String {
    let brand = match brand.to_ascii_lowercase().as_str() {
        "visa" => "Visa".to_owned(),
        "mastercard" => "Mastercard".to_owned(),
        "amex" | "american express" => "American Express".to_owned(),
        "discover" => "Discover".to_owned(),
        "diners" | "diners club" => "Diners Club".to_owned(),
        "jcb" => "JCB".to_owned(),
        "unionpay" => "UnionPay".to_owned(),
        "cartes_bancaires" => "Cartes Bancaires".to_owned(),
        "" | "unknown" => "Card".to_owned(),
        other => {
            let mut chars = other.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => "Card".to_owned(),
            }
        }
    };
    format!("{brand} ending {last4}, expires {exp_month:02}/{exp_year}")
}

#[derive(Debug, Clone, Deserialize)]
struct Customer {
    id: String,
}

/// A card added to a customer from a token (`card_…`).
#[derive(Debug, Clone, Deserialize)]
struct CardSource {
    id: String,
    object: String,
    #[serde(default)]
    brand: String,
    #[serde(default)]
    last4: String,
    #[serde(default)]
    exp_month: u32,
    #[serde(default)]
    exp_year: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct PaymentMethodObject {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    card: Option<CardDetails>,
}

#[derive(Debug, Clone, Deserialize)]
struct CardDetails {
    #[serde(default)]
    brand: String,
    #[serde(default)]
    last4: String,
    #[serde(default)]
    exp_month: u32,
    #[serde(default)]
    exp_year: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    amount: i64,
    currency: String,
    last_payment_error: Option<LastPaymentError>,
    cancellation_reason: Option<String>,
    latest_charge: Option<LatestCharge>,
}

#[derive(Debug, Clone, Deserialize)]
struct LastPaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

impl LastPaymentError {
    fn is_authentication(&self) -> bool {
        [&self.code, &self.decline_code].iter().any(|c| {
            matches!(
                c.as_deref(),
                Some("authentication_required" | "payment_intent_authentication_failure")
            )
        })
    }
}

/// `latest_charge`: an id, or the charge itself when expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum LatestCharge {
    Id(String),
    Object(Box<ChargeObject>),
}

#[derive(Debug, Clone, Deserialize)]
struct ChargeObject {
    amount: i64,
    #[serde(default)]
    amount_refunded: i64,
    status: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Refund {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn keeps_customers(&self) -> bool {
        true
    }

    /// `POST /v1/customers` with the tenant's name, the contact's phone and
    /// address, and `metadata[tollgate_tenant]`; `Idempotency-Key:
    /// customer/<tenant id>`. (A [`Contact`] has no e-mail address to give.)
    async fn create_customer(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        contact: &Contact,
    ) -> Result<String, ProviderError> {
        if tenant_id.trim().is_empty() {
            return Err(ProviderError::Refused("a customer needs the tenant's id".into()));
        }
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut address: Vec<(&str, String)> = [
            ("line1", &contact.address1),
            ("line2", &contact.address2),
            ("city", &contact.city),
            ("postal_code", &contact.zip_code),
        ]
        .into_iter()
        .filter_map(|(k, v)| nonempty(v).map(|v| (k, v)))
        .collect();
        if let Some(state) = nonempty(&contact.state_code).or_else(|| nonempty(&contact.state)) {
            address.push(("state", state));
        }
        // Stripe wants ISO 3166-1 alpha-2 codes; a country written out is
        // left out rather than refused.
        if let Some(country) = nonempty(&contact.country)
            && country.len() == 2
            && country.bytes().all(|b| b.is_ascii_alphabetic())
        {
            address.push(("country", country.to_ascii_uppercase()));
        }
        let mut form = Form::new()
            .opt("name", nonempty(tenant_name))
            .opt("phone", nonempty(&contact.phone_number));
        if !address.is_empty() {
            form = form.hash("address", address);
        }
        let form = form.hash("metadata", [("tollgate_tenant", tenant_id)]);
        let customer: Customer = self
            .call(
                Method::Post,
                "/v1/customers",
                &form,
                Some(&format!("customer/{tenant_id}")),
            )
            .await
            .map_err(refused)?;
        if !valid_id("cus_", &customer.id) {
            return Err(unexpected("the new customer's id", &customer.id));
        }
        Ok(customer.id)
    }

    /// `GET /v1/payment_methods/{pm}` or `GET /v1/tokens/{tok}`: the token
    /// exists (a card's own checks run when it is attached, at registration).
    async fn check(&self, token: &str) -> Result<(), ProviderError> {
        let path = if valid_id("pm_", token) {
            format!("/v1/payment_methods/{token}")
        } else if valid_id("tok_", token) {
            format!("/v1/tokens/{token}")
        } else {
            return Err(ProviderError::Refused(
                "the token is neither a Stripe card token (tok_…) nor a PaymentMethod id (pm_…)".into(),
            ));
        };
        self.call::<serde_json::Value>(Method::Get, &path, &Form::new(), None)
            .await
            .map_err(refused)?;
        Ok(())
    }

    /// `pm_…`: attached to the customer; `tok_…`: added to the customer as a
    /// card (`card_…`, what is stored). Anything else is refused, without
    /// repeating it (it might be a card number pasted by mistake).
    async fn register(
        &self,
        token: &str,
        customer: Option<&str>,
        _contact: &Contact,
    ) -> Result<Registered, ProviderError> {
        let customer = customer_of(customer)?;
        if valid_id("pm_", token) {
            let pm: PaymentMethodObject = self
                .call(
                    Method::Post,
                    &format!("/v1/payment_methods/{token}/attach"),
                    &Form::new().field("customer", customer),
                    Some(&format!("register/{customer}/{token}")),
                )
                .await
                .map_err(refused)?;
            if !valid_id("pm_", &pm.id) {
                return Err(unexpected("the payment method's id", &pm.id));
            }
            let card = match (pm.kind.as_str(), pm.card) {
                ("card", Some(card)) => card,
                (kind, _) => {
                    // Only cards are charged here: take it off the customer again.
                    let _ = self
                        .call::<serde_json::Value>(
                            Method::Post,
                            &format!("/v1/payment_methods/{}/detach", pm.id),
                            &Form::new(),
                            None,
                        )
                        .await;
                    return Err(ProviderError::Refused(format!(
                        "the payment method {} is a {kind}, and Tollgate charges cards only",
                        pm.id
                    )));
                }
            };
            return Ok(Registered {
                display: display(&card.brand, &card.last4, card.exp_month, card.exp_year),
                token: pm.id,
            });
        }
        if valid_id("tok_", token) {
            let card: CardSource = self
                .call(
                    Method::Post,
                    &format!("/v1/customers/{customer}/sources"),
                    &Form::new().field("source", token),
                    Some(&format!("register/{customer}/{token}")),
                )
                .await
                .map_err(refused)?;
            if card.object != "card" || !valid_id("card_", &card.id) {
                return Err(ProviderError::Refused(format!(
                    "the token is for a {} ({}), and Tollgate charges cards only",
                    card.object, card.id
                )));
            }
            return Ok(Registered {
                display: display(&card.brand, &card.last4, card.exp_month, card.exp_year),
                token: card.id,
            });
        }
        Err(ProviderError::Refused(
            "the token is neither a Stripe card token (tok_…) nor a PaymentMethod id (pm_…)".into(),
        ))
    }

    /// `POST /v1/payment_intents`, unconfirmed: the PaymentIntent's id is the
    /// reference to record before [`charge`](PaymentProvider::charge). No
    /// money moves. `Idempotency-Key: <key>/prepare`.
    async fn prepare(&self, req: &ChargeRequest<'_>) -> Result<Option<String>, ProviderError> {
        let currency = check_amount(req.amount_cents, req.currency)?;
        let customer = customer_of(req.customer)?;
        chargeable(req.token)?;
        // Stripe takes `off_session` only with `confirm=true`: it is given
        // when confirming.
        let mut form = Form::new()
            .field("amount", req.amount_cents)
            .field("currency", currency)
            .field("customer", customer)
            .field("payment_method", req.token)
            .field("confirm", false)
            .list("payment_method_types", ["card"]);
        if !self.localstripe_compat && !req.description.is_empty() {
            form = form.field("description", req.description);
        }
        let form = form.hash("metadata", [("tollgate_attempt", req.idempotency_key)]);
        let pi: PaymentIntent = self
            .call(
                Method::Post,
                "/v1/payment_intents",
                &form,
                Some(&format!("{}/prepare", req.idempotency_key)),
            )
            .await
            .map_err(refused)?;
        if !valid_id("pi_", &pi.id) {
            return Err(unexpected("the new PaymentIntent's id", &pi.id));
        }
        Ok(Some(pi.id))
    }

    /// With a reference: reads the PaymentIntent, confirms it (off-session,
    /// `Idempotency-Key: <key>/confirm`) only while it
    /// `requires_confirmation`, and reports its outcome otherwise. Without:
    /// creates and confirms one (`Idempotency-Key: <key>`).
    async fn charge(&self, req: &ChargeRequest<'_>) -> Result<Charge, ProviderError> {
        let currency = check_amount(req.amount_cents, req.currency)?;
        if let Some(reference) = req.reference {
            if !valid_id("pi_", reference) {
                return Err(ProviderError::Refused(format!(
                    "{reference:?} is not a Stripe PaymentIntent id (pi_…)"
                )));
            }
            let pi = self.payment_intent(reference, false).await?;
            return self.outcome(pi, req, true).await;
        }
        let customer = customer_of(req.customer)?;
        chargeable(req.token)?;
        let mut form = Form::new()
            .field("amount", req.amount_cents)
            .field("currency", currency)
            .field("customer", customer)
            .field("payment_method", req.token)
            .field("confirm", true)
            .field("off_session", true)
            .list("payment_method_types", ["card"]);
        if !self.localstripe_compat && !req.description.is_empty() {
            form = form.field("description", req.description);
        }
        let form = form.hash("metadata", [("tollgate_attempt", req.idempotency_key)]);
        let made = self
            .call::<PaymentIntent>(
                Method::Post,
                "/v1/payment_intents",
                &form,
                Some(req.idempotency_key),
            )
            .await;
        match made {
            Ok(pi) => self.outcome(pi, req, false).await,
            Err(Failure::Api(e)) if e.is_card_error() => Ok(declined(&e)),
            Err(failure) => Err(refused(failure)),
        }
    }

    /// `POST /v1/refunds` for the PaymentIntent (or `ch_…` charge), after
    /// looking for an earlier refund with the same key and checking what
    /// remains. `Idempotency-Key: <key>`, `metadata[tollgate_refund]=<key>`.
    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        if req.amount_cents <= 0 {
            return Err(ProviderError::Refused(format!(
                "a refund must be positive (got {})",
                req.amount_cents
            )));
        }
        let by = if valid_id("pi_", req.reference) {
            "payment_intent"
        } else if valid_id("ch_", req.reference) {
            "charge"
        } else {
            return Err(ProviderError::Refused(format!(
                "{:?} is not a Stripe payment (pi_…) or charge (ch_…)",
                req.reference
            )));
        };
        let charge = self.refundable(req.reference).await?;
        if let Some(earlier) = self
            .earlier_refund(by, req.reference, req.idempotency_key)
            .await?
        {
            return match earlier.status.as_deref() {
                Some("failed" | "canceled") => Err(ProviderError::Refused(format!(
                    "the refund {} made with this key {}{}",
                    earlier.id,
                    earlier.status.as_deref().unwrap_or_default(),
                    earlier
                        .failure_reason
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ))),
                _ => Ok(earlier.id),
            };
        }
        let remaining = charge.amount - charge.amount_refunded;
        if req.amount_cents > remaining {
            return Err(ProviderError::Refused(format!(
                "a refund of {} exceeds the {remaining} that remains of {} ({} of {} refunded already)",
                req.amount_cents, req.reference, charge.amount_refunded, charge.amount
            )));
        }
        let form = Form::new()
            .field(by, req.reference)
            .field("amount", req.amount_cents)
            .hash("metadata", [("tollgate_refund", req.idempotency_key)]);
        let refund: Refund = self
            .call(Method::Post, "/v1/refunds", &form, Some(req.idempotency_key))
            .await
            .map_err(refused)?;
        if !valid_id("re_", &refund.id) && !valid_id("pyr_", &refund.id) {
            return Err(unexpected("the new refund's id", &refund.id));
        }
        Ok(refund.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secrets() {
        let mut config = StripeConfig::new("sk_test_51ABCsecretPART");
        config.webhook_secret = Some("whsec_topSECRETvalue".into());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("secretPART") && !shown.contains("SECRETvalue"),
            "{shown}"
        );
        assert!(shown.contains("sk_test_[redacted]"), "{shown}");
        assert!(shown.contains("whsec_[redacted]"), "{shown}");
        let provider = StripeProvider::new(config).unwrap();
        let shown = format!("{provider:?}");
        assert!(
            !shown.contains("secretPART") && !shown.contains("SECRETvalue"),
            "{shown}"
        );
        assert!(shown.contains("https://api.stripe.com"), "{shown}");
        assert_eq!(redacted("weird"), "[redacted]");
        assert_eq!(redacted("sk_test_"), "[redacted]");
        assert_eq!(redacted(""), "(empty)");
    }

    #[test]
    fn configurations_are_checked_without_showing_the_key() {
        let with = |key: &str, base: &str| {
            let mut c = StripeConfig::new(key);
            c.api_base = base.into();
            StripeProvider::new(c).map(|_| ())
        };
        assert_eq!(with("", DEFAULT_API_BASE), Err(StripeConfigError::EmptySecretKey));
        assert_eq!(
            with("pk_test_abc", DEFAULT_API_BASE),
            Err(StripeConfigError::PublishableKey)
        );
        let err = with("sk_test_has secretword", DEFAULT_API_BASE).unwrap_err();
        assert_eq!(err, StripeConfigError::MalformedSecretKey);
        assert!(!format!("{err} {err:?}").contains("secretword"));
        for base in ["", "api.stripe.com", "ftp://x", "http://x/?a=1", "http://x/#f"] {
            assert!(
                matches!(
                    with("sk_test_abc", base),
                    Err(StripeConfigError::InvalidApiBase(_))
                ),
                "{base}"
            );
        }
        assert!(with("sk_test_abc", "http://127.0.0.1:8420/").is_ok());
        assert!(with("rk_live_abc", DEFAULT_API_BASE).is_ok());
    }

    #[test]
    fn webhooks_are_checked_with_the_configured_secret() {
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let payload = br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1700000000,"data":{"object":{"id":"pi_1"}}}"#;
        let header = webhook::sign(payload, "whsec_abc", now);
        let mut config = StripeConfig::new("sk_test_abc");
        let without = StripeProvider::new(config.clone()).unwrap();
        assert_eq!(
            without.verify_webhook(&header, payload, now),
            Err(WebhookError::NoSecretConfigured)
        );
        config.webhook_secret = Some("whsec_abc".into());
        let with = StripeProvider::new(config).unwrap();
        let event = with.verify_webhook(&header, payload, now).unwrap();
        assert_eq!(event.data.object["id"], "pi_1");
        assert_eq!(
            with.verify_webhook("", payload, now),
            Err(WebhookError::MissingHeader)
        );
    }

    #[test]
    fn name_and_customers() {
        let p = StripeProvider::new(StripeConfig::new("sk_test_abc")).unwrap();
        assert_eq!(p.name(), "stripe");
        assert!(p.keeps_customers());
    }

    #[test]
    fn cards_are_shown_like_people_write_them() {
        assert_eq!(
            display("visa", "4242", 12, 2030),
            "Visa ending 4242, expires 12/2030"
        );
        assert_eq!(
            display("Visa", "4242", 3, 2031),
            "Visa ending 4242, expires 03/2031"
        );
        assert_eq!(
            display("amex", "0005", 1, 2029),
            "American Express ending 0005, expires 01/2029"
        );
        assert_eq!(
            display("MasterCard", "4444", 1, 2029),
            "Mastercard ending 4444, expires 01/2029"
        );
        assert_eq!(
            display("eftpos_au", "1", 1, 2029),
            "Eftpos_au ending 1, expires 01/2029"
        );
        assert_eq!(display("unknown", "1", 1, 2029), "Card ending 1, expires 01/2029");
    }

    #[test]
    fn ids_are_checked_before_they_go_into_a_path() {
        assert!(valid_id("pi_", "pi_3MtwBwLkdIwHu7ix28a3tqPa"));
        assert!(!valid_id("pi_", "pi_"));
        assert!(!valid_id("pi_", "pi_../../v1/charges"));
        assert!(!valid_id("pi_", "pi_1?expand[]=x"));
        assert!(!valid_id("cus_", "pi_123"));
        assert!(chargeable("card_123").is_ok());
        assert!(chargeable("pm_123").is_ok());
        assert!(chargeable("tok_123").is_err());
        assert!(matches!(
            customer_of(None),
            Err(ProviderError::Refused(r)) if r.contains("stripe needs the tenant's customer")
        ));
        assert!(check_amount(0, "usd").is_err());
        assert!(check_amount(1, "usdollar").is_err());
        assert_eq!(check_amount(1, "USD").unwrap(), "usd");
    }
}
