-- Secrets: per-tenant key-encryption keys (KEKs) in versions, and versioned secrets whose data
-- keys they wrap. Values are AES-256-GCM ciphertexts; nothing here opens without the root key.

CREATE TABLE tenant_keys (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    version    bigint NOT NULL CHECK (version > 0),
    -- The KEK sealed under the root key; NULL once revoked (the material is gone).
    sealed_key bytea,
    state      text NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    created_at timestamptz NOT NULL,
    retired_at timestamptz,
    revoked_at timestamptz,
    CHECK ((state = 'revoked') = (sealed_key IS NULL)),
    PRIMARY KEY (tenant_id, version)
);
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id) WHERE state = 'active';
ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_keys
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE secrets (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    path            text NOT NULL CHECK (length(path) BETWEEN 1 AND 512),
    current_version bigint NOT NULL CHECK (current_version > 0),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secrets
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE secret_versions (
    tenant_id    uuid NOT NULL,
    path         text NOT NULL,
    version      bigint NOT NULL CHECK (version > 0),
    -- All three NULL once destroyed.
    key_version  bigint,
    wrapped_dek  bytea,
    ciphertext   bytea,
    created_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    destroyed_at timestamptz,
    CHECK ((destroyed_at IS NULL) = (ciphertext IS NOT NULL)
           AND (ciphertext IS NULL) = (wrapped_dek IS NULL)
           AND (ciphertext IS NULL) = (key_version IS NULL)),
    PRIMARY KEY (tenant_id, path, version),
    FOREIGN KEY (tenant_id, path) REFERENCES secrets (tenant_id, path),
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version)
);
CREATE INDEX secret_versions_key ON secret_versions (tenant_id, key_version)
    WHERE key_version IS NOT NULL;
ALTER TABLE secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secret_versions
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
