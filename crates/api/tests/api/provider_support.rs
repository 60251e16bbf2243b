//! A payment provider for tests that need something to happen around a
//! provider call: the built-in test provider, with hooks.

use std::sync::Arc;

use tollgate_domain::contact::Contact;
use tollgate_payments::{
    Charge, ChargeRequest, PaymentProvider, ProviderError, RefundRequest, Registered, TestProvider,
};
use tollgate_store::BoxFuture;

type Hook<T> = Box<dyn Fn() -> BoxFuture<'static, T> + Send + Sync>;

/// Forwards to a [`TestProvider`]; `before_register` runs first and may
/// answer for the provider (an error), `after_charge` runs once the provider
/// answered a charge.
pub struct Hooked {
    pub inner: Arc<TestProvider>,
    pub before_register: Option<Hook<Result<(), ProviderError>>>,
    pub after_charge: Option<Hook<()>>,
}

impl Hooked {
    pub fn new(inner: Arc<TestProvider>) -> Self {
        Self {
            inner,
            before_register: None,
            after_charge: None,
        }
    }

    /// Every registration fails as if the provider could not be reached.
    pub fn unreachable(inner: Arc<TestProvider>) -> Self {
        Self {
            before_register: Some(Box::new(|| {
                Box::pin(async { Err(ProviderError::Unavailable("connection refused".into())) })
            })),
            ..Self::new(inner)
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Hooked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn register(
        &self,
        token: &str,
        customer: Option<&str>,
        contact: &Contact,
    ) -> Result<Registered, ProviderError> {
        if let Some(hook) = &self.before_register {
            hook().await?;
        }
        self.inner.register(token, customer, contact).await
    }

    async fn charge(&self, req: &ChargeRequest<'_>) -> Result<Charge, ProviderError> {
        let answer = self.inner.charge(req).await;
        if let Some(hook) = &self.after_charge {
            hook().await;
        }
        answer
    }

    async fn refund(&self, req: &RefundRequest<'_>) -> Result<String, ProviderError> {
        self.inner.refund(req).await
    }
}
