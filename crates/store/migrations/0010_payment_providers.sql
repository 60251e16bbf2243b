-- Payment providers beside the built-in test provider (Stripe).
--
-- Each charge attempt records the provider that holds the charged method, so
-- that a refund goes to the provider that took the money whatever the
-- default provider is now. Attempts from before were all the test provider's.
ALTER TABLE invoice_charges ADD COLUMN provider TEXT NOT NULL DEFAULT 'test';
-- A provider's payment (a Stripe PaymentIntent) is made before any money
-- moves and its reference written here, then completed; a webhook names the
-- payment by that reference.
CREATE INDEX invoice_charges_by_reference ON invoice_charges (provider, reference) WHERE reference IS NOT NULL;

-- The provider's customer of each tenant (one Stripe Customer per tenant),
-- made on first use; payment methods are attached to it.
CREATE TABLE provider_customers (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    provider   TEXT   NOT NULL,
    customer   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

-- Provider webhook events already handled: an event delivered twice is
-- handled once.
CREATE TABLE provider_events (
    provider    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    type        TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Disputes (chargebacks) the provider reported against a charge that paid an
-- invoice: the invoice is marked (listed with it) until the dispute is
-- settled with the provider.
CREATE TABLE invoice_disputes (
    provider   TEXT   NOT NULL,
    dispute_id TEXT   NOT NULL,
    tenant_id  TEXT   NOT NULL,
    invoice    TEXT   NOT NULL,
    reference  TEXT   NOT NULL, -- the disputed payment's reference
    amount     BIGINT NOT NULL, -- minor units
    currency   TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, dispute_id),
    FOREIGN KEY (tenant_id, invoice) REFERENCES invoices (tenant_id, name)
);
CREATE INDEX invoice_disputes_by_invoice ON invoice_disputes (tenant_id, invoice);
