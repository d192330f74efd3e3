-- PII Sentinel: each tenant's versioned redaction policy, its Sentinel key (tokens are keyed by
-- it; reversible tokens' values are sealed under a key derived from it), the token vault, and
-- the fingerprints of live secret values the scrubber removes from outputs.

-- Append-only: a policy change is a new version; the newest is in force.
CREATE TABLE sentinel_policies (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    version    bigint NOT NULL CHECK (version > 0),
    document   jsonb NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
ALTER TABLE sentinel_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel_policies
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE sentinel_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    generation   bigint NOT NULL CHECK (generation > 0),
    -- The key sealed under the tenant's key-encryption key; NULL once destroyed.
    sealed_key   bytea,
    created_at   timestamptz NOT NULL,
    destroyed_at timestamptz,
    CHECK ((destroyed_at IS NULL) = (sealed_key IS NOT NULL)),
    PRIMARY KEY (tenant_id, generation)
);
CREATE UNIQUE INDEX sentinel_keys_one_live ON sentinel_keys (tenant_id)
    WHERE destroyed_at IS NULL;
ALTER TABLE sentinel_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel_keys
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- Reversible tokens: the value each stands for, sealed under the key generation that made it.
CREATE TABLE sentinel_tokens (
    tenant_id    uuid NOT NULL,
    token        text NOT NULL CHECK (length(token) BETWEEN 1 AND 64),
    generation   bigint NOT NULL,
    class        text NOT NULL,
    sealed_value bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, token),
    FOREIGN KEY (tenant_id, generation) REFERENCES sentinel_keys (tenant_id, generation)
);
CREATE INDEX sentinel_tokens_generation ON sentinel_tokens (tenant_id, generation);
ALTER TABLE sentinel_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel_tokens
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- Keyed fingerprints of each secret version's value, in every form it can leak in. A version
-- counts while it is not destroyed.
CREATE TABLE sentinel_fingerprints (
    tenant_id    uuid NOT NULL,
    path         text NOT NULL,
    version      bigint NOT NULL,
    fingerprints bytea NOT NULL,
    PRIMARY KEY (tenant_id, path, version),
    FOREIGN KEY (tenant_id, path, version) REFERENCES secret_versions (tenant_id, path, version)
);
ALTER TABLE sentinel_fingerprints ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel_fingerprints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel_fingerprints
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
