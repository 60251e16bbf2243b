-- Webhooks out: events Tollgate tells platforms about, the endpoints that
-- receive them and each delivery of an event to an endpoint.

-- The outbox: every event is written in the transaction of the change it
-- tells of, so none is lost and none tells of a change that rolled back.
-- `id` is the `webhook-id` of every delivery of it. `subject` names what it
-- is about (`invoice/<name>`, `plan_transition/<id>`, `tenant/<id>`, …);
-- `data` is the payload's data (JSON), written with the event when the
-- change itself knows it (a threshold, an alert) or else once, when the
-- event is dispatched to the endpoints (`dispatched_at`).
CREATE TABLE webhook_events (
    seq           {{SEQUENCE_PRIMARY_KEY}},
    id            TEXT   NOT NULL UNIQUE,
    tenant_id     TEXT   NOT NULL,
    type          TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    data          TEXT,
    created_at    BIGINT NOT NULL,
    dispatched_at BIGINT
);
CREATE INDEX webhook_events_undispatched ON webhook_events (seq) WHERE dispatched_at IS NULL;
-- Pruning reads only the events dispatched before its cutoff.
CREATE INDEX webhook_events_dispatched ON webhook_events (dispatched_at) WHERE dispatched_at IS NOT NULL;

-- Where events go. `tenant_id` NULL: the operator's, for every tenant's
-- events. `events`: a JSON list of event types, [] for all. The secret signs
-- (Standard Webhooks); after a rotation the previous one signs too until
-- `previous_until`. `failing_since`: the first failed attempt since the last
-- success; an endpoint failing for too long is disabled (`disabled_at`).
CREATE TABLE webhook_endpoints (
    id              TEXT   PRIMARY KEY,
    tenant_id       TEXT   REFERENCES tenants (id),
    url             TEXT   NOT NULL,
    events          TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    secret          TEXT   NOT NULL,
    previous_secret TEXT,
    previous_until  BIGINT,
    created_by      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    failing_since   BIGINT,
    disabled_at     BIGINT,
    disabled_reason TEXT
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id);

-- One event to one endpoint: PENDING until an attempt is answered 2xx
-- (DELIVERED) or its attempts are spent (FAILED). An endpoint's deliveries
-- are attempted in `seq` order, one at a time, each under a lease so that
-- replicas never make the same attempt twice. A redelivery is a new row.
CREATE TABLE webhook_deliveries (
    seq             {{SEQUENCE_PRIMARY_KEY}},
    id              TEXT    NOT NULL UNIQUE,
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq       BIGINT  NOT NULL REFERENCES webhook_events (seq),
    status          TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, seq) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq);
-- Pruning old events finds their deliveries.
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_seq);
