//! The payment provider of every command that moves money: `serve` (its job
//! loop), `jobs run` (charges) and `invoice refund`. One place, so that a
//! refund goes to the provider that took the charge.

use std::sync::Arc;

use tollgate_payments::{PaymentProvider, TestProvider};

/// The configured payment provider: the built-in test provider, the only one
/// so far.
pub fn payment_provider() -> Arc<dyn PaymentProvider> {
    Arc::new(TestProvider::default())
}
