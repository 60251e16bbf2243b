-- Timestamps are unix microseconds (BIGINT) on both backends so that one set
-- of queries serves SQLite and PostgreSQL.

CREATE TABLE tenants (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    tenant_type TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE namespaces (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    name       TEXT   NOT NULL,
    uid        TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE api_tokens (
    id         TEXT   PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    namespaces TEXT   NOT NULL, -- JSON array of names; empty means every namespace
    digest     TEXT   NOT NULL UNIQUE, -- hex SHA-256 of the secret
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id);

CREATE TABLE quota_objects (
    tenant_id     TEXT    NOT NULL,
    namespace     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    uid           TEXT    NOT NULL UNIQUE,
    labels        TEXT    NOT NULL, -- JSON object
    annotations   TEXT    NOT NULL, -- JSON object
    description   TEXT    NOT NULL,
    disable       BOOLEAN NOT NULL,
    spec          TEXT    NOT NULL, -- JSON of domain::quota::QuotaSpec
    creator_class TEXT    NOT NULL,
    creator_id    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    modified_at   BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, namespace, name),
    FOREIGN KEY (tenant_id, namespace) REFERENCES namespaces (tenant_id, name)
);

-- Current usage per tenant and key; `used` is a count (objects) or millionths
-- (resources). Reservations change it with one conditional UPDATE.
CREATE TABLE quota_usage (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    family     TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    used       BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, family, key)
);

-- Idempotency records of successful reserve/release calls: a repeated
-- request id returns the stored answer.
CREATE TABLE quota_requests (
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    operation     TEXT   NOT NULL,
    request_id    TEXT   NOT NULL,
    family        TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    amount        BIGINT NOT NULL,
    limit_value   BIGINT NOT NULL,
    current_value BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, operation, request_id)
);
CREATE INDEX quota_requests_by_age ON quota_requests (created_at);
