-- How a tenant is taxed, when not by the rates of its billing address:
-- `exempt`, or `reverse_charge` (a business with `tax_id` that accounts for
-- the tax itself). No row: the rates of its billing address (`standard`).
CREATE TABLE tenant_tax (
    tenant_id  TEXT   PRIMARY KEY REFERENCES tenants (id),
    treatment  TEXT   NOT NULL,
    tax_id     TEXT,
    updated_by TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
