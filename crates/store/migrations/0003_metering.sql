-- Metering: raw usage events (kept for audit and replay), hourly rollups,
-- coupons, and server secrets.

-- One row per event id and tenant: a re-sent event is not stored twice.
CREATE TABLE usage_events (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    event_id     TEXT   NOT NULL,
    namespace    TEXT   NOT NULL,
    metric_label TEXT   NOT NULL,
    object_name  TEXT   NOT NULL,
    deployment   TEXT   NOT NULL,
    container    TEXT   NOT NULL,
    quantity     TEXT   NOT NULL, -- exact decimal, in the meter's unit
    at           BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX usage_events_by_time ON usage_events (tenant_id, at, event_id);

-- Events combined per hour with the meter's aggregation. Reports read these.
CREATE TABLE usage_hourly (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    hour         BIGINT NOT NULL,
    namespace    TEXT   NOT NULL,
    metric_label TEXT   NOT NULL,
    object_name  TEXT   NOT NULL,
    deployment   TEXT   NOT NULL,
    container    TEXT   NOT NULL,
    quantity     TEXT   NOT NULL, -- exact decimal
    latest_at    BIGINT,          -- (latest_at, latest_event) orders "latest" meters
    latest_event TEXT,
    events       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour, namespace, metric_label, object_name, deployment, container)
);

CREATE TABLE coupons (
    code          TEXT   PRIMARY KEY,
    title         TEXT   NOT NULL,
    discount_type TEXT   NOT NULL, -- FIXED (cents) or PERCENT (0.01 % units)
    amount        BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- A coupon applies to the billing periods that overlap [valid_from, valid_until).
CREATE TABLE tenant_coupons (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    code        TEXT   NOT NULL REFERENCES coupons (code),
    valid_from  BIGINT NOT NULL,
    valid_until BIGINT,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code, valid_from)
);

-- Keys shared by replicas (e.g. the one that signs hourly_breakdown_query).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
