//! Webhooks out ([`WebhookStore`](crate::WebhookStore)): the outbox every
//! aggregate writes events into (`emit_in`, inside its own transaction),
//! endpoints, dispatch and leased deliveries. Part of the shared SQL
//! implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::Reason;
use tollgate_domain::audit::AuditAction;
use tollgate_domain::ids::TenantId;
use tollgate_domain::webhook::EventType;

use super::{DbRow, SqlStore, Tx, audit_in, json, micros, opt_timestamp, timestamp, to_json};
use crate::{
    Actor, AttemptRecorded, DeliveryAttempt, DeliveryJob, DeliveryStatus, EndpointScope, NewWebhookEndpoint,
    Result, StoreError, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookQueue,
};

macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, events, description, secret, previous_secret, previous_until, created_by, \
         created_at, failing_since, disabled_at, disabled_reason"
    };
}

macro_rules! event_columns {
    () => {
        "seq, id, tenant_id, type, subject, data, created_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "d.id, d.endpoint_id, v.id AS event_id, v.type AS event_type, d.status, d.attempts, d.next_attempt_at, \
         d.last_attempt_at, d.last_status, d.last_error, d.created_at, d.finished_at"
    };
}

#[async_trait::async_trait]
impl crate::WebhookStore for SqlStore {
    async fn create_webhook_endpoint(
        &self,
        e: &NewWebhookEndpoint,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint> {
        let (e, actor) = (e.clone(), actor.to_owned());
        self.write(move |tx| Box::pin(async move { create_in(tx, &e, &actor, now).await }))
            .await
    }

    async fn webhook_endpoints(
        &self,
        scope: &EndpointScope,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<WebhookEndpoint>> {
        let tenant = scope.tenant().or(tenant);
        let rows = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY created_at, id"
        ))
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(endpoint_from).collect()
    }

    async fn webhook_endpoint(&self, scope: &EndpointScope, id: &str) -> Result<Option<WebhookEndpoint>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        ))
        .bind(id)
        .bind(scope.tenant().map(TenantId::as_str))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(endpoint_from).transpose()
    }

    async fn delete_webhook_endpoint(
        &self,
        scope: &EndpointScope,
        id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (scope, id, actor) = (scope.clone(), id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let e = endpoint_in(tx, &scope, &id).await?;
                sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                audit_in(
                    tx,
                    e.tenant_id.as_ref(),
                    &actor,
                    AuditAction::WebhookEndpointDelete,
                    &format!("webhook_endpoint/{id}"),
                    Some(endpoint_json(&e)),
                    None,
                    now,
                )
                .await
            })
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        scope: &EndpointScope,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint> {
        let (scope, id, secret, actor) = (scope.clone(), id.to_owned(), secret.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let before = endpoint_in(tx, &scope, &id).await?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $1, secret = $2 \
                     WHERE id = $3",
                )
                .bind(micros(previous_until))
                .bind(&secret)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
                let after = endpoint_in(tx, &scope, &id).await?;
                audit_in(
                    tx,
                    after.tenant_id.as_ref(),
                    &actor,
                    AuditAction::WebhookEndpointRotateSecret,
                    &format!("webhook_endpoint/{id}"),
                    Some(endpoint_json(&before)),
                    Some(serde_json::json!({"previous_secret_until": previous_until.to_string()})),
                    now,
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn enable_webhook_endpoint(
        &self,
        scope: &EndpointScope,
        id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookEndpoint> {
        let (scope, id, actor) = (scope.clone(), id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let before = endpoint_in(tx, &scope, &id).await?;
                if before.disabled.is_none() {
                    return Ok(before);
                }
                sqlx::query(
                    "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL \
                     WHERE id = $1",
                )
                .bind(&id)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE endpoint_id = $2 AND status = 'PENDING'",
                )
                .bind(micros(now))
                .bind(&id)
                .execute(&mut **tx)
                .await?;
                let after = endpoint_in(tx, &scope, &id).await?;
                audit_in(
                    tx,
                    after.tenant_id.as_ref(),
                    &actor,
                    AuditAction::WebhookEndpointEnable,
                    &format!("webhook_endpoint/{id}"),
                    Some(endpoint_json(&before)),
                    Some(endpoint_json(&after)),
                    now,
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        scope: &EndpointScope,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        if self.webhook_endpoint(scope, endpoint_id).await?.is_none() {
            return Err(not_found(endpoint_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries d JOIN webhook_events v ON v.seq = d.event_seq \
             WHERE d.endpoint_id = $1 ORDER BY d.seq DESC LIMIT $2"
        ))
        .bind(endpoint_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    async fn redeliver_webhook(
        &self,
        scope: &EndpointScope,
        endpoint_id: &str,
        delivery_id: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<WebhookDelivery> {
        let (scope, endpoint_id, delivery_id, actor) = (
            scope.clone(),
            endpoint_id.to_owned(),
            delivery_id.to_owned(),
            actor.to_owned(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                let endpoint = endpoint_in(tx, &scope, &endpoint_id).await?;
                let event_seq: Option<i64> = sqlx::query_scalar(
                    "SELECT event_seq FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2",
                )
                .bind(&delivery_id)
                .bind(&endpoint_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(event_seq) = event_seq else {
                    return Err(StoreError::NotFound(format!(
                        "webhook endpoint {endpoint_id:?} has no delivery {delivery_id:?}"
                    )));
                };
                let id = new_delivery_in(tx, &endpoint_id, event_seq, now).await?;
                audit_in(
                    tx,
                    endpoint.tenant_id.as_ref(),
                    &actor,
                    AuditAction::WebhookRedeliver,
                    &format!("webhook_endpoint/{endpoint_id}"),
                    None,
                    Some(serde_json::json!({"delivery": delivery_id, "redelivery": id})),
                    now,
                )
                .await?;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM webhook_deliveries d JOIN webhook_events v ON v.seq = d.event_seq WHERE d.id = $1"
                ))
                .bind(&id)
                .fetch_one(&mut **tx)
                .await?;
                delivery_from(&row)
            })
        })
        .await
    }

    async fn undispatched_webhook_events(&self, limit: u32) -> Result<Vec<WebhookEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM webhook_events WHERE dispatched_at IS NULL ORDER BY seq LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(event_from).collect()
    }

    async fn dispatch_webhook_event(&self, seq: i64, data: &str, now: Timestamp) -> Result<Option<usize>> {
        let data = data.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE webhook_events SET data = COALESCE(data, $1), dispatched_at = $2 \
                     WHERE seq = $3 AND dispatched_at IS NULL RETURNING tenant_id, type",
                )
                .bind(&data)
                .bind(micros(now))
                .bind(seq)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let tenant: String = row.try_get("tenant_id")?;
                let event_type: String = row.try_get("type")?;
                let endpoints = sqlx::query(concat!(
                    "SELECT ",
                    endpoint_columns!(),
                    " FROM webhook_endpoints WHERE (tenant_id IS NULL OR tenant_id = $1) \
                     AND disabled_at IS NULL ORDER BY created_at, id"
                ))
                .bind(&tenant)
                .fetch_all(&mut **tx)
                .await?;
                let mut made = 0;
                for e in endpoints.iter().map(endpoint_from) {
                    let e = e?;
                    if e.wants(&event_type) {
                        new_delivery_in(tx, &e.id, seq, now).await?;
                        made += 1;
                    }
                }
                Ok(Some(made))
            })
        })
        .await
    }

    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>> {
        let owner = owner.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                // The oldest PENDING delivery of each enabled endpoint, if due
                // and free: an endpoint's later deliveries wait for it.
                let heads: Vec<String> = sqlx::query_scalar(
                    "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.status = 'PENDING' AND e.disabled_at IS NULL AND d.next_attempt_at <= $1 \
                     AND (d.lease_until IS NULL OR d.lease_until <= $1) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
                         AND p.status = 'PENDING' AND p.seq < d.seq) \
                     ORDER BY d.seq LIMIT $2",
                )
                .bind(micros(now))
                .bind(i64::from(limit))
                .fetch_all(&mut **tx)
                .await?;
                let mut jobs = Vec::with_capacity(heads.len());
                for id in heads {
                    // Leased only if still free (another replica may have
                    // taken it since the read, on PostgreSQL).
                    let row = sqlx::query(
                        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
                         WHERE id = $3 AND status = 'PENDING' AND (lease_until IS NULL OR lease_until <= $4) \
                         RETURNING endpoint_id, event_seq, attempts",
                    )
                    .bind(&owner)
                    .bind(micros(lease_until))
                    .bind(&id)
                    .bind(micros(now))
                    .fetch_optional(&mut **tx)
                    .await?;
                    let Some(row) = row else { continue };
                    let endpoint_id: String = row.try_get("endpoint_id")?;
                    let event_seq: i64 = row.try_get("event_seq")?;
                    let attempts: i64 = row.try_get("attempts")?;
                    let endpoint = sqlx::query(concat!(
                        "SELECT ",
                        endpoint_columns!(),
                        " FROM webhook_endpoints WHERE id = $1"
                    ))
                    .bind(&endpoint_id)
                    .fetch_one(&mut **tx)
                    .await?;
                    let event = sqlx::query(concat!(
                        "SELECT ",
                        event_columns!(),
                        " FROM webhook_events WHERE seq = $1"
                    ))
                    .bind(event_seq)
                    .fetch_one(&mut **tx)
                    .await?;
                    jobs.push(DeliveryJob {
                        delivery_id: id,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        endpoint: endpoint_from(&endpoint)?,
                        event: event_from(&event)?,
                    });
                }
                Ok(jobs)
            })
        })
        .await
    }

    async fn record_webhook_attempt(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &DeliveryAttempt,
        now: Timestamp,
    ) -> Result<AttemptRecorded> {
        let (id, owner, a) = (delivery_id.to_owned(), owner.to_owned(), attempt.clone());
        self.write(move |tx| Box::pin(async move { record_attempt_in(tx, &id, &owner, &a, now).await }))
            .await
    }

    async fn webhook_queue(&self) -> Result<WebhookQueue> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM webhook_deliveries WHERE status = 'PENDING'",
        )
        .fetch_one(&self.read)
        .await?;
        let pending: i64 = row.try_get("pending")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        let undispatched: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE dispatched_at IS NULL")
                .fetch_one(&self.read)
                .await?;
        Ok(WebhookQueue {
            pending: u64::try_from(pending).unwrap_or(0),
            undispatched: u64::try_from(undispatched).unwrap_or(0),
            oldest: opt_timestamp("webhook_deliveries.created_at", oldest)?,
        })
    }

    async fn prune_webhook_events(&self, before: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                let seqs: Vec<i64> = sqlx::query_scalar(
                    "SELECT v.seq FROM webhook_events v WHERE v.dispatched_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = v.seq \
                         AND (d.status = 'PENDING' OR d.finished_at >= $1)) \
                     ORDER BY v.dispatched_at LIMIT $2",
                )
                .bind(micros(before))
                .bind(i64::from(limit))
                .fetch_all(&mut **tx)
                .await?;
                for seq in &seqs {
                    sqlx::query("DELETE FROM webhook_deliveries WHERE event_seq = $1")
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query("DELETE FROM webhook_events WHERE seq = $1")
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(seqs.len() as u64)
            })
        })
        .await
    }

    async fn webhook_events(&self, tenant_id: &TenantId, limit: u32) -> Result<Vec<WebhookEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM webhook_events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2"
        ))
        .bind(tenant_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(event_from).collect()
    }
}

/// Writes an event into the outbox, inside the transaction of the change it
/// tells of. `data` when the change knows it; else it is read when the event
/// is dispatched.
pub(super) async fn emit_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    event_type: EventType,
    subject: &str,
    data: Option<serde_json::Value>,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_events (id, tenant_id, type, subject, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(format!("msg_{}", uuid::Uuid::new_v4().simple()))
    .bind(tenant_id.as_str())
    .bind(event_type.as_str())
    .bind(subject)
    .bind(data.map(|d| d.to_string()))
    .bind(micros(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn create_in(
    tx: &mut Tx,
    e: &NewWebhookEndpoint,
    actor: &str,
    now: Timestamp,
) -> Result<WebhookEndpoint> {
    let tenant = e.tenant_id.as_ref().map(TenantId::as_str);
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE (tenant_id = $1 OR ($1 IS NULL AND tenant_id IS NULL))",
    )
    .bind(tenant)
    .fetch_one(&mut **tx)
    .await?;
    if count >= i64::from(e.limit) {
        return Err(StoreError::Conflict(
            Reason::WebhookEndpointLimit,
            format!(
                "{} has {count} webhook endpoints, the most it may have ({}); delete one first",
                tenant.map_or_else(|| "the operator".to_owned(), |t| format!("tenant {t:?}")),
                e.limit
            ),
        ));
    }
    let id = format!("ep_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, events, description, secret, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(&e.url)
    .bind(to_json(&e.events)?)
    .bind(&e.description)
    .bind(&e.secret)
    .bind(actor)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?;
    let created = endpoint_in(tx, &EndpointScope::Operator, &id).await?;
    audit_in(
        tx,
        e.tenant_id.as_ref(),
        actor,
        AuditAction::WebhookEndpointCreate,
        &format!("webhook_endpoint/{id}"),
        None,
        Some(endpoint_json(&created)),
        now,
    )
    .await?;
    Ok(created)
}

async fn record_attempt_in(
    tx: &mut Tx,
    id: &str,
    owner: &str,
    a: &DeliveryAttempt,
    now: Timestamp,
) -> Result<AttemptRecorded> {
    let status = match (a.delivered, a.retry_at) {
        (true, _) => DeliveryStatus::Delivered,
        (false, Some(_)) => DeliveryStatus::Pending,
        (false, None) => DeliveryStatus::Failed,
    };
    let row = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
         lease_owner = NULL, lease_until = NULL, last_attempt_at = $3, last_status = $4, last_error = $5, \
         finished_at = $6 WHERE id = $7 AND lease_owner = $8 AND status = 'PENDING' RETURNING endpoint_id",
    )
    .bind(status.as_str())
    .bind(micros(a.retry_at.unwrap_or(now)))
    .bind(micros(now))
    .bind(a.status.map(i64::from))
    .bind(a.error.as_deref())
    .bind((status != DeliveryStatus::Pending).then_some(micros(now)))
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::Conflict(
            Reason::FailedPrecondition,
            format!("webhook delivery {id:?} is no longer held by {owner:?}"),
        ));
    };
    let endpoint_id: String = row.try_get("endpoint_id")?;
    if a.delivered {
        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
            .bind(&endpoint_id)
            .execute(&mut **tx)
            .await?;
        return Ok(AttemptRecorded {
            status,
            disabled_endpoint: false,
        });
    }
    sqlx::query("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE id = $2")
        .bind(micros(now))
        .bind(&endpoint_id)
        .execute(&mut **tx)
        .await?;
    let reason = format!(
        "every attempt failed since {}; the last: {}",
        a.disable_if_failing_since,
        a.error.as_deref().unwrap_or("no answer")
    );
    let disabled = sqlx::query(
        "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 \
         WHERE id = $3 AND disabled_at IS NULL AND failing_since <= $4",
    )
    .bind(micros(now))
    .bind(&reason)
    .bind(&endpoint_id)
    .bind(micros(a.disable_if_failing_since))
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if disabled {
        let e = endpoint_in(tx, &EndpointScope::Operator, &endpoint_id).await?;
        audit_in(
            tx,
            e.tenant_id.as_ref(),
            super::SYSTEM,
            AuditAction::WebhookEndpointDisabled,
            &format!("webhook_endpoint/{endpoint_id}"),
            None,
            Some(endpoint_json(&e)),
            now,
        )
        .await?;
    }
    Ok(AttemptRecorded {
        status,
        disabled_endpoint: disabled,
    })
}

async fn new_delivery_in(tx: &mut Tx, endpoint_id: &str, event_seq: i64, now: Timestamp) -> Result<String> {
    let id = format!("dlv_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, 'PENDING', $4, $4)",
    )
    .bind(&id)
    .bind(endpoint_id)
    .bind(event_seq)
    .bind(micros(now))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

async fn endpoint_in(tx: &mut Tx, scope: &EndpointScope, id: &str) -> Result<WebhookEndpoint> {
    let row = sqlx::query(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(scope.tenant().map(TenantId::as_str))
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref()
        .map(endpoint_from)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("no webhook endpoint {id:?}"))
}

/// What the audit trail keeps of an endpoint: never its secrets.
fn endpoint_json(e: &WebhookEndpoint) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "disabled_at": e.disabled.as_ref().map(|(at, _)| at.to_string()),
        "disabled_reason": e.disabled.as_ref().map(|(_, why)| why.clone()),
    })
}

fn endpoint_from(r: &DbRow) -> Result<WebhookEndpoint> {
    let previous: Option<String> = r.try_get("previous_secret")?;
    let previous_until = opt_timestamp("webhook_endpoints.previous_until", r.try_get("previous_until")?)?;
    let disabled_at = opt_timestamp("webhook_endpoints.disabled_at", r.try_get("disabled_at")?)?;
    let disabled_reason: Option<String> = r.try_get("disabled_reason")?;
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        tenant_id: r.try_get::<Option<String>, _>("tenant_id")?.map(TenantId::new),
        url: r.try_get("url")?,
        events: json("webhook_endpoints.events", &r.try_get::<String, _>("events")?)?,
        description: r.try_get("description")?,
        secret: r.try_get("secret")?,
        previous_secret: previous.zip(previous_until),
        created_by: r.try_get("created_by")?,
        created_at: timestamp("webhook_endpoints.created_at", r.try_get("created_at")?)?,
        failing_since: opt_timestamp("webhook_endpoints.failing_since", r.try_get("failing_since")?)?,
        disabled: disabled_at.map(|at| (at, disabled_reason.unwrap_or_default())),
    })
}

fn event_from(r: &DbRow) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        tenant_id: TenantId::new(r.try_get::<String, _>("tenant_id")?),
        event_type: r.try_get("type")?,
        subject: r.try_get("subject")?,
        data: r.try_get("data")?,
        created_at: timestamp("webhook_events.created_at", r.try_get("created_at")?)?,
    })
}

fn delivery_from(r: &DbRow) -> Result<WebhookDelivery> {
    let status: String = r.try_get("status")?;
    let attempts: i64 = r.try_get("attempts")?;
    let last_status: Option<i64> = r.try_get("last_status")?;
    Ok(WebhookDelivery {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("webhook_deliveries.status: {status:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: timestamp(
            "webhook_deliveries.next_attempt_at",
            r.try_get("next_attempt_at")?,
        )?,
        last_attempt_at: opt_timestamp(
            "webhook_deliveries.last_attempt_at",
            r.try_get("last_attempt_at")?,
        )?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get("last_error")?,
        created_at: timestamp("webhook_deliveries.created_at", r.try_get("created_at")?)?,
        finished_at: opt_timestamp("webhook_deliveries.finished_at", r.try_get("finished_at")?)?,
    })
}
