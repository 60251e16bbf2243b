-- Raw usage events are deleted once no event that old can be admitted any
-- more (the retention job). A tenant's raw events before this time (micros)
-- may be gone: ingestion refuses events before it, and a replay rebuilds only
-- the hours from it on, keeping the rollups of the hours before. NULL: none
-- deleted.
ALTER TABLE tenants ADD COLUMN events_purged_before BIGINT;
