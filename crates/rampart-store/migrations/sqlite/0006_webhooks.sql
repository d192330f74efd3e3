-- Outgoing webhooks (see the Postgres migration).
CREATE TABLE webhook_endpoints (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    url              TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description      TEXT NOT NULL,
    event_types      TEXT NOT NULL,
    scheme           TEXT NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    secret           BLOB NOT NULL,
    previous_secret  BLOB,
    previous_until   INTEGER,
    state            TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
    disabled_reason  TEXT,
    failing_since    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE webhook_deliveries (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (tenant_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, state);
