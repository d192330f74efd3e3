-- The agent gateway: each tenant's gateway configuration (upstream LLM providers, where their
-- API keys live, what a drifting system prompt gets), append-only versions like Sentinel policies.
CREATE TABLE gateway_configs (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    version    bigint NOT NULL CHECK (version > 0),
    document   jsonb NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
ALTER TABLE gateway_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_configs
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- What each mission (or, outside missions, each subject) has used through the gateway: the
-- counters the budget and rate-limit directives check before forwarding a call.
CREATE TABLE gateway_usage (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    -- `mission:<id>`, or the token subject of calls outside a mission.
    principal    text NOT NULL,
    calls        bigint NOT NULL CHECK (calls >= 0),
    tokens       bigint NOT NULL CHECK (tokens >= 0),
    -- The current one-minute window (Unix minutes) and the calls in it.
    window_start bigint NOT NULL,
    window_calls bigint NOT NULL CHECK (window_calls >= 0),
    PRIMARY KEY (tenant_id, principal)
);
ALTER TABLE gateway_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_usage
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- The original request of each gateway call, sealed under the tenant KEK: what a retry with the
-- same idempotency key replays, and what a holder of sentinel:reveal can read back exactly.
CREATE TABLE gateway_requests (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    request_id      text NOT NULL,
    -- `<mission or subject>/<Idempotency-Key>`, when the call carried one.
    idempotency_key text,
    sealed_body     bytea NOT NULL,
    body_sha256     bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
CREATE UNIQUE INDEX gateway_requests_idempotency ON gateway_requests (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE gateway_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_requests
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
