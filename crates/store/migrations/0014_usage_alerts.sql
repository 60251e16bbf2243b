-- Usage alerts: a tenant's threshold on its current billing period's spend
-- (`metric` = 'spend', `threshold` in cents) or on one meter's billable
-- quantity (`metric` = the meter's metric label), optionally one
-- namespace's. An alert fires (`usage.alert_triggered`) once per period:
-- `triggered_period` is the start of the period it last fired in.
--
-- Ingestion counts each batch into `ingested` of the tenant's alerts (one
-- indexed UPDATE, nothing when it has none); the job evaluates alerts whose
-- `ingested` is past `evaluated`, then sets `evaluated` to what it read, so
-- a batch stored during an evaluation is evaluated again.
CREATE TABLE usage_alerts (
    id                TEXT   PRIMARY KEY,
    tenant_id         TEXT   NOT NULL REFERENCES tenants (id),
    name              TEXT   NOT NULL,
    metric            TEXT   NOT NULL,
    namespace         TEXT,
    threshold         TEXT   NOT NULL,
    created_by        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    ingested          BIGINT NOT NULL DEFAULT 1,
    evaluated         BIGINT NOT NULL DEFAULT 0,
    triggered_period  BIGINT,
    triggered_at      BIGINT,
    triggered_value   TEXT,
    UNIQUE (tenant_id, name)
);
CREATE INDEX usage_alerts_pending ON usage_alerts (tenant_id) WHERE ingested > evaluated;
