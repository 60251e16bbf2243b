-- Prepaid credits. A grant is an amount an operator gave a tenant in one
-- currency; its ledger entries (grant, apply, expire, refund, reverse) are
-- append-only, signed, and `credit_grants.remaining_cents` is always their
-- sum: every entry is written in the same transaction as a conditional
-- update of the remaining amount (never below zero, the CHECK says so too).
CREATE TABLE credit_grants (
    id              TEXT   PRIMARY KEY,
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    currency        TEXT   NOT NULL,
    amount_cents    BIGINT NOT NULL,
    remaining_cents BIGINT NOT NULL CHECK (remaining_cents >= 0),
    -- Higher first; then the soonest expiry; then the oldest grant.
    priority        BIGINT NOT NULL,
    expires_at      BIGINT,
    reason          TEXT   NOT NULL,
    granted_by      TEXT   NOT NULL,
    granted_at      BIGINT NOT NULL
);
CREATE INDEX credit_grants_tenant ON credit_grants (tenant_id, granted_at);
CREATE INDEX credit_grants_expiring ON credit_grants (expires_at) WHERE remaining_cents > 0;

CREATE TABLE credit_ledger (
    seq          {{SEQUENCE_PRIMARY_KEY}},
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    grant_id     TEXT   NOT NULL REFERENCES credit_grants (id),
    kind         TEXT   NOT NULL,
    amount_cents BIGINT NOT NULL,
    -- The invoice an `apply` paid or a `refund` came back from.
    invoice      TEXT,
    note         TEXT,
    actor        TEXT   NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX credit_ledger_tenant ON credit_ledger (tenant_id, seq);
CREATE INDEX credit_ledger_invoice ON credit_ledger (tenant_id, invoice) WHERE invoice IS NOT NULL;
-- A grant pays an invoice once and is given back from it once, however
-- often finalization or a refund is retried, by however many replicas.
CREATE UNIQUE INDEX credit_ledger_once ON credit_ledger (grant_id, kind, invoice) WHERE invoice IS NOT NULL;

-- A tenant's low-balance threshold (in minor units of each currency it holds
-- credits in): `credits.low_balance` fires when an entry takes a balance
-- from at or above it to below it. No row: no threshold.
CREATE TABLE credit_settings (
    tenant_id                   TEXT   PRIMARY KEY REFERENCES tenants (id),
    low_balance_threshold_cents BIGINT NOT NULL,
    updated_by                  TEXT   NOT NULL,
    updated_at                  BIGINT NOT NULL
);
