-- Refunds: every refund is written (PENDING) before the payment provider is
-- asked, under the invoice's lease (the lease charging uses, so a charge and a
-- refund exclude each other), and settled after. A crash in between leaves the
-- PENDING refund, which the next refund of the invoice resumes with the same
-- idempotency key once the lease has expired: the provider refunds once.
CREATE TABLE invoice_refunds (
    idempotency_key TEXT   PRIMARY KEY, -- 'refund/' || the refunded charge's key
    tenant_id       TEXT   NOT NULL,
    invoice         TEXT   NOT NULL,
    charge          TEXT   NOT NULL,    -- the refunded charge attempt's idempotency key
    reference       TEXT   NOT NULL,    -- the provider's reference of that charge
    amount          BIGINT NOT NULL,    -- cents
    currency        TEXT   NOT NULL,
    state           TEXT   NOT NULL,    -- PENDING, SUCCEEDED, FAILED
    reason          TEXT,               -- why the provider refused (FAILED)
    actor           TEXT   NOT NULL,
    started_at      BIGINT NOT NULL,
    settled_at      BIGINT,
    FOREIGN KEY (tenant_id, invoice) REFERENCES invoices (tenant_id, name)
);
CREATE INDEX invoice_refunds_by_invoice ON invoice_refunds (tenant_id, invoice);
