-- External secret backends mounted into a tenant's secret paths: a path whose first segment is a
-- mount's name is served by that backend (AWS Secrets Manager, a Vault KV v2 mount) instead of
-- the local store. `settings` holds no credential: credentials live sealed in a local secret.
CREATE TABLE secret_backends (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    kind        text NOT NULL CHECK (kind IN ('aws_secrets_manager', 'vault_kv2')),
    settings    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
ALTER TABLE secret_backends ENABLE ROW LEVEL SECURITY;
ALTER TABLE secret_backends FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secret_backends
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
