-- Invoicing: finalized invoices and every charge attempt. Invoices of open
-- periods (PENDING) are computed from usage and never stored.

-- A finalized invoice. `document` (JSON) holds its lines, coupons and totals
-- and never changes; status, charging bookkeeping and the lease do.
CREATE TABLE invoices (
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    name            TEXT   NOT NULL,
    subscription_id TEXT   NOT NULL REFERENCES subscriptions (id),
    period_index    BIGINT NOT NULL,
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    status          TEXT   NOT NULL, -- ISSUED, PAID, OVERDUE, REFUNDED, CANCELLED
    total           BIGINT NOT NULL, -- cents, equal to document's totals.total
    currency        TEXT   NOT NULL,
    document        TEXT   NOT NULL,
    issued_at       BIGINT NOT NULL,
    attempts        BIGINT NOT NULL, -- charge rounds completed
    next_charge_at  BIGINT,          -- NULL: nothing (more) to charge
    lease_owner     TEXT,
    lease_until     BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name),
    -- One invoice per billing period, however many replicas close it.
    UNIQUE (tenant_id, subscription_id, period_index)
);
CREATE INDEX invoices_due ON invoices (next_charge_at) WHERE next_charge_at IS NOT NULL;

-- Every charge attempt, written before the provider is called (PENDING) and
-- settled after, so a crash in between is resumed with the same idempotency
-- key and never charges twice.
CREATE TABLE invoice_charges (
    idempotency_key TEXT   PRIMARY KEY,
    tenant_id       TEXT   NOT NULL,
    invoice         TEXT   NOT NULL,
    attempt         BIGINT NOT NULL,
    payment_method  TEXT   NOT NULL, -- name, or '' when the tenant had none
    role            TEXT   NOT NULL,
    token           TEXT   NOT NULL,
    display         TEXT   NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT   NOT NULL,
    outcome         TEXT   NOT NULL, -- PENDING, SUCCEEDED, DECLINED, FAILED, REFUNDED
    reason          TEXT,
    reference       TEXT,
    started_at      BIGINT NOT NULL,
    settled_at      BIGINT,
    FOREIGN KEY (tenant_id, invoice) REFERENCES invoices (tenant_id, name)
);
CREATE INDEX invoice_charges_by_invoice ON invoice_charges (tenant_id, invoice, started_at);
