//! The `data` of webhook events: each object in the JSON shape this API
//! returns it (an invoice as in `ListInvoices`, a credit note as in
//! `ListCreditNotes`, payment methods as in `ListPaymentMethods`,
//! subscriptions as in `ListSubscriptions`, a tenant as in the operator's
//! `GET /api/operator/tenants/{id}`, a plan transition as `GetPlanTransition`
//! answers and what it was about). Rendered once, when the event is
//! dispatched, and frozen with it: every delivery sends the same bytes. The
//! request that made the change dispatches in the background right after
//! it (`AppState::dispatch_soon`), the job loop after each job, so the data
//! is the object as the change left it unless another change commits in
//! between (milliseconds).

use std::sync::Weak;

use serde_json::{Value, json};
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::webhook::EventType;
use tollgate_store::{StoreError, WebhookEvent};

use crate::state::{AppState, Inner};

/// Renders events' data from a state: the one it lives in (held weakly:
/// that state owns it), or one of its own (a CLI command's).
pub struct EventData(Holder);

enum Holder {
    Weak(Weak<Inner>),
    Own(AppState),
}

impl EventData {
    pub(crate) fn new(state: Weak<Inner>) -> Self {
        Self(Holder::Weak(state))
    }
}

/// Webhook delivery for a process without a server (a CLI command running
/// jobs): events' data rendered as the API would, over `store`.
pub fn standalone(
    store: std::sync::Arc<dyn tollgate_store::Store>,
    clock: std::sync::Arc<dyn tollgate_domain::clock::Clock>,
    settings: tollgate_app::webhooks::WebhookSettings,
) -> tollgate_app::webhooks::Webhooks {
    let options = crate::state::Options {
        webhooks: Some(settings.clone()),
        ..Default::default()
    };
    let state = AppState::with_options(store, clock, options);
    tollgate_app::webhooks::Webhooks::new(settings, std::sync::Arc::new(EventData(Holder::Own(state))))
}

#[async_trait::async_trait]
impl tollgate_app::webhooks::EventData for EventData {
    async fn data(&self, event: &WebhookEvent) -> Result<Value, StoreError> {
        match &self.0 {
            Holder::Own(state) => render(state, event).await,
            Holder::Weak(weak) => match weak.upgrade() {
                Some(inner) => render(&AppState::from_inner(inner), event).await,
                None => Err(StoreError::Unavailable("the server is shutting down".into())),
            },
        }
    }
}

fn value<T: serde::Serialize>(v: &T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn render(state: &AppState, event: &WebhookEvent) -> Result<Value, StoreError> {
    let tenant = &event.tenant_id;
    let store = state.store();
    let (kind, key) = event
        .subject
        .split_once('/')
        .unwrap_or((event.subject.as_str(), ""));
    let gone = || json!({ "object": kind, "name": key, "deleted": true });
    if EventType::parse(&event.event_type) == Some(EventType::SubscriptionPeriodStarted) {
        return value(&crate::subscriptions::subscriptions_of(state, tenant, true).await?);
    }
    match kind {
        "invoice" => match store.invoice(tenant, &InvoiceName::new(key)).await? {
            Some(i) => value(&crate::invoices::wire(&i.invoice)),
            None => Ok(gone()),
        },
        "credit_note" => {
            let note = store
                .credit_notes(tenant)
                .await?
                .into_iter()
                .find(|n| n.credit_note == key);
            note.map_or_else(|| Ok(gone()), |n| value(&crate::credit_notes::wire(n)))
        }
        "plan_transition" => match store.transition(key).await? {
            Some(t) if &t.tenant_id == tenant => Ok(json!({
                "id": t.id,
                "state": crate::wire::enums::transition_state(t.state),
                "from_plan": t.from_plan,
                "to_plan": t.to_plan,
                "catalog_version": t.catalog_version.to_string(),
                "created_at": t.created_at.to_string(),
                "updated_at": t.updated_at.to_string(),
                "reason": t.reason,
            })),
            _ => Ok(gone()),
        },
        "payment_method" => value(&crate::payment_methods::methods(
            &store.payment_methods(tenant).await?,
        )),
        "tenant" => match store.tenant(tenant).await? {
            Some(t) => value(&crate::operator::tenancy::tenant_item(t)),
            None => Ok(gone()),
        },
        _ => Ok(json!({ "object": kind, "name": key })),
    }
}
