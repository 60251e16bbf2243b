-- When each tenant next has a billing period to close: the end of its
-- earliest period without a finalized invoice (unix microseconds), or 0 when
-- that is not known and must be worked out again. Period close reads only
-- the tenants whose date (plus the grace) has passed, instead of every
-- tenant's subscriptions and invoices. The application sets the date after
-- closing a tenant's periods; a new tenant starts at 0, and a plan transition
-- lowers it to the moment it closed the subscription. A table of its own,
-- not a column of `tenants`: that row is read by every authenticated request
-- and locked by billing writes and ingestion, and period close rewrites this
-- one every period.
CREATE TABLE billing_due (
    tenant_id TEXT   PRIMARY KEY REFERENCES tenants (id),
    due_at    BIGINT NOT NULL,
    version   BIGINT NOT NULL DEFAULT 0 -- moves with every change (compare-and-set)
);
CREATE INDEX billing_due_at ON billing_due (due_at, tenant_id);
-- Every existing tenant is worked out once by the first period close.
INSERT INTO billing_due (tenant_id, due_at, version) SELECT id, 0, 0 FROM tenants;
