-- Unique counts of billing periods no event can reach any more (they end
-- before the admission floor, the latest finalized period's start) are kept
-- per period instead of per hour: each distinct value once per (metric,
-- period, namespace, object). Period close moves a tenant's hourly rows of
-- such periods here (`usage_distinct` → `usage_distinct_periods`); a range
-- that overlaps such a period counts the whole period's values. Bounds are
-- bucket hours ([hour_start, hour_end)), as the period's invoice bills them.
CREATE TABLE usage_distinct_periods (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    metric_label TEXT   NOT NULL,
    hour_start   BIGINT NOT NULL,
    hour_end     BIGINT NOT NULL,
    namespace    TEXT   NOT NULL,
    object_name  TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, metric_label, hour_start, namespace, object_name, value)
);
