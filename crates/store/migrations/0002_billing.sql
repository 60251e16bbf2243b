-- Catalogs, subscriptions, add-ons, payment methods, plan transitions, audit.
-- Invariants that must hold under concurrency are unique indexes, so that the
-- database itself refuses a second current subscription, a second open
-- transition, or a second primary/secondary payment method.

CREATE TABLE catalogs (
    version      BIGINT PRIMARY KEY,
    source       TEXT   NOT NULL, -- the TOML as published, comments included
    source_name  TEXT   NOT NULL,
    published_at BIGINT NOT NULL,
    published_by TEXT   NOT NULL
);

-- The tenant's current plan and catalog version, kept equal to its current
-- subscription in the same transactions; read with every token lookup.
ALTER TABLE tenants ADD COLUMN plan TEXT;
ALTER TABLE tenants ADD COLUMN catalog_version BIGINT;
ALTER TABLE tenants ADD COLUMN domain TEXT;
ALTER TABLE tenants ADD COLUMN contacts TEXT; -- JSON list of contacts

CREATE TABLE subscriptions (
    id              TEXT   PRIMARY KEY,
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    plan            TEXT   NOT NULL,
    catalog_version BIGINT NOT NULL,
    start_at        BIGINT NOT NULL,
    trial_end       BIGINT,
    end_at          BIGINT
);
CREATE UNIQUE INDEX one_current_subscription ON subscriptions (tenant_id) WHERE end_at IS NULL;
CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id, start_at);

CREATE TABLE tenant_addons (
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    addon         TEXT   NOT NULL,
    subscribed_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, addon)
);

CREATE TABLE payment_methods (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    provider   TEXT   NOT NULL,
    token      TEXT   NOT NULL,
    display    TEXT   NOT NULL,
    contact    TEXT   NOT NULL, -- JSON
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE UNIQUE INDEX one_primary_payment_method ON payment_methods (tenant_id) WHERE role = 'PRIMARY';
CREATE UNIQUE INDEX one_secondary_payment_method ON payment_methods (tenant_id) WHERE role = 'SECONDARY';

CREATE TABLE plan_transitions (
    id              TEXT   PRIMARY KEY,
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    from_plan       TEXT   NOT NULL,
    to_plan         TEXT   NOT NULL,
    catalog_version BIGINT NOT NULL,
    state           TEXT   NOT NULL,
    payload         TEXT   NOT NULL, -- JSON of domain::transition::TransitionPayload
    requested_by    TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    reason          TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT
);
CREATE UNIQUE INDEX one_open_transition ON plan_transitions (tenant_id)
    WHERE state IN ('CREATING', 'WAITING_FOR_APPROVAL');
CREATE INDEX transitions_by_state ON plan_transitions (state, created_at);

CREATE TABLE audit_log (
    seq       {{SEQUENCE_PRIMARY_KEY}}, -- insertion order
    id        TEXT   NOT NULL UNIQUE,
    tenant_id TEXT, -- NULL for operator actions on no tenant (catalog publish)
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    target    TEXT   NOT NULL,
    before    TEXT, -- JSON
    after     TEXT  -- JSON
);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, seq);
