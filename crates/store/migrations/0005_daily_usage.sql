-- Daily summaries of hourly usage, so that reports over months read one row
-- per object and day instead of 24. An hour total adds up an object's
-- deployments and containers in that hour; per day this keeps their sum,
-- the peak, and the latest hour with its total. Maintained by ingestion in
-- the same transaction as the hourly buckets; rebuilt by replay.
CREATE TABLE usage_daily (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    day          BIGINT NOT NULL, -- 00:00 UTC, unix microseconds
    namespace    TEXT   NOT NULL,
    metric_label TEXT   NOT NULL,
    object_name  TEXT   NOT NULL,
    total        TEXT   NOT NULL, -- exact decimals
    peak         TEXT   NOT NULL,
    last_hour    BIGINT NOT NULL,
    last_total   TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, day, namespace, metric_label, object_name)
);

-- One-off work the server does after migrating, in Rust (exact decimals).
CREATE TABLE maintenance (
    task TEXT PRIMARY KEY
);
-- Databases with usage from before this migration get their summaries built.
INSERT INTO maintenance (task) SELECT 'build-daily-usage' WHERE EXISTS (SELECT 1 FROM usage_hourly);
