-- Web console sessions: the cookie carries a random secret; only its digest
-- is kept. A session names the credential it was signed in with (the digest
-- of an API token or an operator token, or `operator` for the bootstrap
-- credential), which every request checks again, so that revoking the token
-- ends the session. `csrf` is the token every form of the session carries.
CREATE TABLE console_sessions (
    id_digest  TEXT   PRIMARY KEY,
    kind       TEXT   NOT NULL,
    credential TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
