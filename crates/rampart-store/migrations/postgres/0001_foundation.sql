-- Rampart foundation schema (Postgres).
--
-- Tenant isolation is enforced by the database: every tenant-owned table has ROW LEVEL SECURITY
-- enabled *and forced* (so even the owner is subject to it), with a policy that compares the row's
-- tenant with the `tenant_id` of the JSON in the transaction-local setting `request.jwt.claims`,
-- which the server sets from the verified token at the start of every request. A missing, empty,
-- malformed or foreign claim yields NULL, which matches no row.

-- The claims of the current request, or NULL when absent or malformed (never an error, so a bad
-- claim reveals nothing).
CREATE FUNCTION rampart_claims() RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN nullif(current_setting('request.jwt.claims', true), '')::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- current_setting('request.jwt.claims', true)::jsonb ->> 'tenant_id', as a uuid (NULL if invalid).
CREATE FUNCTION rampart_current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (rampart_claims() ->> 'tenant_id')::uuid;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- True only when the server marked the request as the platform operator's (a `tenants:admin`
-- credential of the system tenant).
CREATE FUNCTION rampart_is_platform() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(rampart_claims() -> 'platform' = 'true'::jsonb, false)
$$;

-- The public id of the credential being looked up before its tenant is known (API key at the
-- token endpoint, refresh token on refresh). It exposes exactly one row, holding only a hash.
CREATE FUNCTION rampart_lookup(kind text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT rampart_claims() -> 'lookup' ->> kind
$$;

-- Global (not tenant-owned) tables.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    public_key   bytea NOT NULL,
    sealed_seed  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    verify_until timestamptz
);

-- Tenant-owned tables.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    -- So that every tenant-owned table carries `tenant_id`.
    tenant_id  uuid GENERATED ALWAYS AS (id) STORED
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT rampart_current_tenant()) OR (SELECT rampart_is_platform()))
    WITH CHECK (id = (SELECT rampart_current_tenant()) OR (SELECT rampart_is_platform()));

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    secret_hash   bytea NOT NULL,
    capabilities  text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    rotated_from  text,
    rotated_to    text
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
CREATE POLICY credential_lookup ON api_keys FOR SELECT
    USING (id = (SELECT rampart_lookup('api_key')));

CREATE TABLE token_families (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    subject        text NOT NULL,
    api_key_id     text NOT NULL,
    capabilities   text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX token_families_key ON token_families (tenant_id, api_key_id);
ALTER TABLE token_families ENABLE ROW LEVEL SECURITY;
ALTER TABLE token_families FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON token_families
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE refresh_tokens (
    id               text PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    family_id        uuid NOT NULL REFERENCES token_families (id),
    secret_hash      bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    successor_id     text,
    successor_sealed bytea
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
CREATE POLICY credential_lookup ON refresh_tokens FOR SELECT
    USING (id = (SELECT rampart_lookup('refresh_token')));

CREATE TABLE revoked_tokens (
    jti        uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    expires_at timestamptz NOT NULL
);
ALTER TABLE revoked_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE revoked_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON revoked_tokens
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- Append-only: the app role gets SELECT and INSERT only (see the grants in the store crate).
CREATE TABLE audit_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    at         timestamptz NOT NULL,
    request_id text,
    actor      text NOT NULL,
    action     text NOT NULL,
    resource   text NOT NULL,
    outcome    text NOT NULL,
    detail     jsonb NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
