-- The agent gateway (see the Postgres migration).
CREATE TABLE gateway_configs (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    document   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT;

CREATE TABLE gateway_usage (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    principal    TEXT NOT NULL,
    calls        INTEGER NOT NULL CHECK (calls >= 0),
    tokens       INTEGER NOT NULL CHECK (tokens >= 0),
    window_start INTEGER NOT NULL,
    window_calls INTEGER NOT NULL CHECK (window_calls >= 0),
    PRIMARY KEY (tenant_id, principal)
) STRICT;

CREATE TABLE gateway_requests (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    request_id      TEXT NOT NULL,
    idempotency_key TEXT,
    sealed_body     BLOB NOT NULL,
    body_sha256     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
) STRICT;
CREATE UNIQUE INDEX gateway_requests_idempotency ON gateway_requests (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
