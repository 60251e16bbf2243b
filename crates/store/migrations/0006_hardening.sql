-- Plan transitions that keep failing end FAILED after a bounded number of
-- attempts; the last error is kept for the reason.
ALTER TABLE plan_transitions ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plan_transitions ADD COLUMN last_error TEXT;

-- Readiness probes write here: ready means a write can commit.
CREATE TABLE heartbeat (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
