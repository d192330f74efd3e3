-- Outgoing webhooks (Standard Webhooks). Endpoints hold their signing key sealed under the
-- tenant's key-encryption key; during a rotation the previous key keeps signing until
-- `previous_until`. Deliveries are the persisted queue: one row per message per endpoint,
-- written in the transaction of the change that produced the event.
CREATE TABLE webhook_endpoints (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description      text NOT NULL,
    event_types      jsonb NOT NULL,
    scheme           text NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    secret           bytea NOT NULL,
    previous_secret  bytea,
    previous_until   timestamptz,
    state            text NOT NULL CHECK (state IN ('enabled', 'disabled')),
    disabled_reason  text,
    failing_since    timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE webhook_deliveries (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    endpoint_id      uuid NOT NULL,
    message_id       text NOT NULL,
    event_type       text NOT NULL,
    -- The exact bytes signed and sent, so every attempt sends the same body.
    payload          text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         bigint NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    last_status      bigint,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (tenant_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, state);
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
