//! The payment providers of every command that moves money: `serve` (its
//! job loop and the API), `jobs run` and `invoice charge|refund`. One place,
//! so that each charge and refund goes to the provider that holds the method.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use tollgate_payments::{Providers, StripeConfig, StripeProvider, TestProvider};

/// Which provider registers new payment methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// The built-in test provider: `tok-…` tokens, no real money.
    Test,
    /// Stripe (PaymentIntents), with TOLLGATE_STRIPE_SECRET_KEY.
    Stripe,
}

/// Payment provider configuration (README, "Taking real payments"). Secrets
/// are best given in the environment: a command line is visible to every
/// user of the machine.
#[derive(Debug, Clone, Args)]
pub struct PaymentArgs {
    /// The payment provider new payment methods are registered with. Methods
    /// registered before keep going to the provider that holds them.
    #[arg(long, env = "TOLLGATE_PAYMENT_PROVIDER", value_enum, default_value = "test")]
    pub payment_provider: ProviderArg,
    /// Stripe's secret API key (`sk_test_…` or `sk_live_…`); needed with
    /// `--payment-provider stripe`.
    #[arg(long, env = "TOLLGATE_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Stripe's API address (a local Stripe-compatible server in tests).
    #[arg(
        long,
        env = "TOLLGATE_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// The signing secret of Stripe's webhook endpoint (`whsec_…`), which
    /// `POST /webhooks/stripe` checks; without it that endpoint answers 404.
    #[arg(long, env = "TOLLGATE_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// For tests against localstripe only: leave out the request parameters
    /// it refuses (Stripe itself needs them).
    #[arg(long, env = "TOLLGATE_STRIPE_LOCALSTRIPE", hide = true)]
    pub stripe_localstripe: bool,
}

impl PaymentArgs {
    /// The configured providers: the selected one registers new methods; the
    /// built-in test provider is always there for the methods it holds.
    pub fn providers(&self) -> Result<Providers> {
        match self.payment_provider {
            ProviderArg::Test => Ok(Providers::test()),
            ProviderArg::Stripe => {
                let Some(key) = self.stripe_secret_key.as_deref().filter(|k| !k.trim().is_empty()) else {
                    bail!(
                        "--payment-provider stripe needs Stripe's secret key: set TOLLGATE_STRIPE_SECRET_KEY \
                         (sk_test_… for test mode)"
                    );
                };
                let config = StripeConfig {
                    api_base: self.stripe_api_base.clone(),
                    webhook_secret: self.stripe_webhook_secret.clone(),
                    localstripe_compat: self.stripe_localstripe,
                    ..StripeConfig::new(key)
                };
                let stripe = StripeProvider::new(config).context("--payment-provider stripe")?;
                Ok(Providers::new(Arc::new(stripe)).with(Arc::new(TestProvider::default())))
            }
        }
    }

    /// Says in the log which provider takes payments.
    pub fn announce(&self, providers: &Providers) {
        match self.payment_provider {
            ProviderArg::Test => tracing::warn!(
                provider = "test",
                "payments go to the built-in test provider (tok-… tokens, no real money); \
                 --payment-provider stripe takes real payments"
            ),
            ProviderArg::Stripe => tracing::info!(
                provider = "stripe",
                api = %self.stripe_api_base,
                others = ?providers.names(),
                webhooks = self.stripe_webhook_secret.is_some(),
                "payments go to Stripe; payment methods registered with the test provider before keep going to it"
            ),
        }
    }
}
