//! Payment methods: registering one with the payment provider, and role
//! changes and deletions under the role rules (`domain::payment`). A change
//! that gives charging a new primary or secondary charges the tenant's
//! unpaid invoices again ([`crate::dunning::charge_again`]).

use jiff::Timestamp;
use tollgate_domain::contact::Contact;
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::payment::{PaymentMethod, PaymentRole, RoleChange, Slot, charge_order_changed};
use tollgate_domain::tenant::Tenant;
use tollgate_domain::{Error, ErrorKind, Reason};
use tollgate_payments::{PaymentProvider, ProviderError, Providers, Registered};
use tollgate_store::{PaymentChange, Store, StoreError};

use crate::AppError;

/// What registering a payment method takes.
#[derive(Debug, Clone)]
pub struct NewMethod {
    /// The payment provider's token.
    pub token: String,
    pub contact: Contact,
    /// The role asked for; `None`: NORMAL (or PRIMARY for the first).
    pub requested: Option<PaymentRole>,
}

/// What adding a payment method did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The new method's name.
    pub name: String,
    /// The unpaid invoices made due now because the new method is primary
    /// or secondary; the charge job takes them (the caller may run it at
    /// once, without waiting for it).
    pub charging: Vec<InvoiceName>,
}

/// Registers a payment provider token as a new payment method of the
/// tenant, in the `requested` role (the first method is always primary).
/// A token the provider refuses is a 400 naming `token`; an unreachable
/// provider a 503. Nothing is stored unless the provider accepted it.
/// A new primary or secondary charges the tenant's unpaid invoices again.
pub async fn add(
    store: &dyn Store,
    providers: &Providers,
    tenant: &Tenant,
    new: NewMethod,
    actor: &str,
    now: Timestamp,
) -> Result<Added, AppError> {
    let NewMethod {
        token,
        contact,
        requested,
    } = new;
    tollgate_domain::payment::check_token("token", &token)?;
    let provider = providers.default_provider().as_ref();
    let registered = match register(store, provider, tenant, &token, &contact, now).await {
        Ok(r) => r,
        Err(RegisterError::Provider(e)) => return Err(provider_error("token", e).into()),
        Err(RegisterError::Store(e)) => return Err(e.into()),
    };
    let method = tollgate_payments::new_method(provider, registered, contact, PaymentRole::Normal, now);
    let name = method.name.clone();
    let change = PaymentChange::Create {
        method: Box::new(method),
        requested,
    };
    let charging = apply(store, tenant, &change, actor, now).await?;
    Ok(Added { name, charging })
}

fn slots(methods: &[PaymentMethod]) -> Vec<Slot> {
    methods
        .iter()
        .map(|m| Slot {
            name: m.name.clone(),
            role: m.role,
        })
        .collect()
}

/// Applies a change; if it gives charging a new primary or secondary,
/// charges the unpaid invoices again (never failing the change for it).
/// Returns the invoices made due.
async fn apply(
    store: &dyn Store,
    tenant: &Tenant,
    change: &PaymentChange,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<InvoiceName>, AppError> {
    let before = store.payment_methods(&tenant.id).await?;
    let after = store
        .change_payment_methods(&tenant.id, change, actor, now)
        .await?;
    if !charge_order_changed(&slots(&before), &slots(&after)) {
        return Ok(Vec::new());
    }
    Ok(crate::dunning::charge_again(store, &tenant.id, actor, now).await)
}

/// A provider's answer about the token in `field` as the API says it: a
/// refusal is a 400 naming the field with the provider's reason; an
/// unreachable provider a 503.
pub fn provider_error(field: &str, e: ProviderError) -> Error {
    match e {
        ProviderError::Refused(why) => {
            Error::invalid(format!("{field}: refused by the payment provider: {why}"))
                .with_metadata("field", field)
        }
        ProviderError::Unavailable(why) => {
            tracing::warn!(error = %why, "payment provider unavailable");
            Error::new(
                ErrorKind::Unavailable,
                "the payment provider is unavailable; retry later",
            )
            .with_reason(Reason::PaymentProviderUnavailable)
        }
    }
}

/// Registers `token` with `provider` for the tenant: under the tenant's
/// customer when the provider keeps customers (made on first use, its id
/// stored; the tenant id is the provider's idempotency key, so two
/// registrations at once make one customer).
pub async fn register(
    store: &dyn Store,
    provider: &dyn PaymentProvider,
    tenant: &Tenant,
    token: &str,
    contact: &Contact,
    now: Timestamp,
) -> Result<Registered, RegisterError> {
    let customer = if provider.keeps_customers() {
        Some(
            match store.provider_customer(&tenant.id, provider.name()).await? {
                Some(c) => c,
                None => {
                    let made = provider
                        .create_customer(tenant.id.as_str(), tenant.name.as_str(), contact)
                        .await?;
                    store
                        .add_provider_customer(&tenant.id, provider.name(), &made, now)
                        .await?
                }
            },
        )
    } else {
        None
    };
    Ok(provider.register(token, customer.as_deref(), contact).await?)
}

/// Why [`register`] did not register a token: the provider's answer, or the
/// database's (where the tenant's provider customer is kept).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Changes roles or deletes a method under the role rules, atomically. A
/// new primary or secondary charges the tenant's unpaid invoices again;
/// returns those made due (for the charge job, which the caller may run at
/// once).
pub async fn change(
    store: &dyn Store,
    tenant: &Tenant,
    change: RoleChange,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<InvoiceName>, AppError> {
    apply(store, tenant, &PaymentChange::Role(change), actor, now).await
}
