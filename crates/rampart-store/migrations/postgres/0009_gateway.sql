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
