-- When each add-on was subscribed, so that a period's invoice charges a
-- priced add-on for the part of the period it was subscribed. One row per
-- span; `end_at` is NULL while it lasts. `tenant_addons` stays what the
-- tenant has now. Spans of add-ons subscribed before this migration start
-- when they were subscribed.
CREATE TABLE addon_history (
    tenant_id TEXT   NOT NULL REFERENCES tenants (id),
    addon     TEXT   NOT NULL,
    start_at  BIGINT NOT NULL,
    end_at    BIGINT,
    PRIMARY KEY (tenant_id, addon, start_at)
);
CREATE UNIQUE INDEX addon_history_open ON addon_history (tenant_id, addon) WHERE end_at IS NULL;
INSERT INTO addon_history (tenant_id, addon, start_at)
    SELECT tenant_id, addon, subscribed_at FROM tenant_addons;
