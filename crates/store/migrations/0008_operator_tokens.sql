-- Named operator tokens (the operator API), stored hashed like API tokens.
CREATE TABLE operator_tokens (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL, -- operator-admin or operator-read
    digest     TEXT   NOT NULL UNIQUE, -- hex SHA-256 of the secret
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    revoked_at BIGINT
);
-- A name identifies one live token (the audit trail names holders by it);
-- a revoked token's name may be used again.
CREATE UNIQUE INDEX operator_tokens_live_name ON operator_tokens (name) WHERE revoked_at IS NULL;
