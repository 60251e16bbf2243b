-- Counts the changes to a tenant's quota objects: every write to
-- quota_objects adds one in the same transaction. Read with the tenant (and so
-- with every authenticated request), it keys the API's cache of effective
-- limits, which is then never stale and costs no query of its own.
ALTER TABLE tenants ADD COLUMN quota_version BIGINT NOT NULL DEFAULT 0;
