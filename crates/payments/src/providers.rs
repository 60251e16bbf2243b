//! The configured payment providers, by name: new payment methods go to the
//! default one; charges and refunds go to the provider that holds the
//! method, whatever the default is now.

use std::sync::Arc;

use crate::{PaymentProvider, TestProvider};

/// Every payment provider this process can talk to.
#[derive(Clone)]
pub struct Providers {
    default: Arc<dyn PaymentProvider>,
    others: Vec<Arc<dyn PaymentProvider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("default", &self.default.name())
            .field("others", &self.others.iter().map(|p| p.name()).collect::<Vec<_>>())
            .finish()
    }
}

impl Providers {
    /// `default` registers new payment methods and is asked about its own.
    pub fn new(default: Arc<dyn PaymentProvider>) -> Self {
        Self {
            default,
            others: Vec::new(),
        }
    }

    /// Only the built-in test provider.
    pub fn test() -> Self {
        Self::new(Arc::new(TestProvider::default()))
    }

    /// Adds a provider that is asked about its own payment methods only
    /// (e.g. the test provider beside Stripe, for methods registered before
    /// the switch). A provider of the same name as one already here is ignored.
    pub fn with(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        if self.get(provider.name()).is_none() {
            self.others.push(provider);
        }
        self
    }

    /// The provider that registers new payment methods.
    pub fn default_provider(&self) -> &Arc<dyn PaymentProvider> {
        &self.default
    }

    /// The provider of that name, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PaymentProvider>> {
        std::iter::once(&self.default)
            .chain(self.others.iter())
            .find(|p| p.name() == name)
    }

    /// Names of every configured provider, the default first.
    pub fn names(&self) -> Vec<&'static str> {
        std::iter::once(&self.default)
            .chain(self.others.iter())
            .map(|p| p.name())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl PaymentProvider for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn register(
            &self,
            _: &str,
            _: Option<&str>,
            _: &tollgate_domain::contact::Contact,
        ) -> Result<crate::Registered, crate::ProviderError> {
            unreachable!()
        }
        async fn charge(&self, _: &crate::ChargeRequest<'_>) -> Result<crate::Charge, crate::ProviderError> {
            unreachable!()
        }
        async fn refund(&self, _: &crate::RefundRequest<'_>) -> Result<String, crate::ProviderError> {
            unreachable!()
        }
    }

    #[test]
    fn providers_route_by_name_and_the_default_registers() {
        let p = Providers::new(Arc::new(Named("stripe")))
            .with(Arc::new(TestProvider::default()))
            .with(Arc::new(Named("test")));
        assert_eq!(p.default_provider().name(), "stripe");
        assert_eq!(p.names(), ["stripe", "test"]);
        assert_eq!(p.get("test").map(|p| p.name()), Some("test"));
        assert!(p.get("adyen").is_none());
    }
}
