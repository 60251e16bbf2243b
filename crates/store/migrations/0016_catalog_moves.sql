-- A tenant's move to a newer catalog version of the plan it is on, scheduled
-- by an operator: at `effective_at` (the start of the period after the one
-- it was scheduled in) the subscription `subscription_id` closes and one to
-- the same plan at `catalog_version` starts. One pending move per tenant; a
-- plan transition in between (another subscription) drops it.
CREATE TABLE catalog_moves (
    tenant_id        TEXT   PRIMARY KEY REFERENCES tenants (id),
    subscription_id  TEXT   NOT NULL,
    from_version     BIGINT NOT NULL,
    catalog_version  BIGINT NOT NULL,
    effective_at     BIGINT NOT NULL,
    created_by       TEXT   NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX catalog_moves_due ON catalog_moves (effective_at);
