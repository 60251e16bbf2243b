-- Event properties and unique counts.
--
-- `usage_events.properties` holds what the reporter said about an event (a
-- JSON object of strings, NULL when none), stored with it so that replay
-- rebuilds everything from raw events.
--
-- `usage_distinct` holds, per tenant, unique-count meter, hour, namespace and
-- object, each distinct value of the meter's property seen then: a range's
-- unique count is COUNT(DISTINCT value) over its hours, exact for any range
-- and scope. Ingestion inserts into it with the events (ON CONFLICT DO
-- NOTHING); replay rebuilds it.
ALTER TABLE usage_events ADD COLUMN properties TEXT;
CREATE TABLE usage_distinct (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    metric_label TEXT   NOT NULL,
    hour         BIGINT NOT NULL,
    namespace    TEXT   NOT NULL,
    object_name  TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, metric_label, hour, namespace, object_name, value)
);
