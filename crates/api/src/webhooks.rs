//! Payment provider webhooks: `POST /webhooks/stripe`.
//!
//! The body is checked against the `Stripe-Signature` header (HMAC-SHA256 of
//! `t.body` with the endpoint's signing secret, `t` within five minutes of
//! now) before anything is read from it; a request that fails is a 400 and
//! changes nothing. A verified event is handled by the application
//! ([`tollgate_app::provider_events`]): once per event id, settling payments
//! by asking the provider, never by trusting the event's body.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use tollgate_domain::Reason;
use tollgate_payments::stripe::webhook;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What Tollgate did with a provider event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// Always true: the event was verified and will not be sent again for nothing.
    pub received: bool,
    /// The event's id.
    pub id: String,
    /// `settled`, `held_by_worker` (a charge worker settles it), `already_settled`,
    /// `disputed`, `refunded`, `duplicate` (handled before), `unknown_payment`, `ignored`.
    pub outcome: String,
    /// The invoice the event was about, when Tollgate knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub invoice: Option<String>,
    /// The credit note that records a refund made at the provider, outside Tollgate.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub credit_note: Option<String>,
}

/// Receives Stripe's webhook events (configure the endpoint in Stripe's
/// dashboard with the events `payment_intent.succeeded`,
/// `payment_intent.payment_failed`, `payment_intent.canceled`,
/// `charge.refunded` and `charge.dispute.created`; give its signing secret to Tollgate as
/// `TOLLGATE_STRIPE_WEBHOOK_SECRET`). Idempotent by event id.
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    operation_id = "tollgate.webhooks.Stripe",
    tag = "payment provider webhooks",
    request_body(content = String, content_type = "application/json",
        description = "A Stripe event, exactly as Stripe sent it (the signature covers these bytes)."),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>`")),
    responses(
        (status = 200, body = WebhookAnswer, description = "Verified and handled (or handled before)."),
        (status = 400, body = ErrorBody, description = "Missing, malformed or wrong signature, a timestamp outside the tolerance, or a body that is not a Stripe event; nothing changed."),
        (status = 404, body = ErrorBody, description = "No webhook signing secret is configured."),
        (status = 409, body = ErrorBody, description = "A refund made at the provider cannot be recorded yet (a charge or a refund of Tollgate's holds the invoice); Stripe sends the event again."),
        (status = 503, body = ErrorBody, description = "The database could not take the event; Stripe sends it again.")
    )
)]
pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let Some(secret) = state.stripe_webhook_secret() else {
        return Err(ApiError::not_found(
            "Stripe webhooks are not configured on this server (TOLLGATE_STRIPE_WEBHOOK_SECRET)",
        )
        .with_reason(Reason::WebhookNotConfigured));
    };
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = state.clock().now();
    let event = webhook::verify(signature, &body, secret, now, webhook::DEFAULT_TOLERANCE).map_err(|e| {
        tracing::warn!(error = %e, "stripe webhook refused");
        ApiError::invalid(format!("Stripe-Signature: {e}")).with_reason(Reason::WebhookSignatureInvalid)
    })?;
    let ctx = state.job_context();
    let handled = tollgate_app::provider_events::handle(
        &ctx,
        "stripe",
        &event.id,
        &event.type_,
        event.provider_event(),
    )
    .await?;
    state.dispatch_soon();
    Ok(Json(WebhookAnswer {
        received: true,
        id: event.id,
        outcome: handled.as_str().to_owned(),
        invoice: handled.invoice().map(ToString::to_string),
        credit_note: handled.credit_note().map(str::to_owned),
    }))
}
