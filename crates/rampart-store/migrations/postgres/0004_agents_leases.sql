-- Agents, dynamic credential engines and leases. An agent profile carries its allowlists (deny
-- by default); an API key may belong to an agent, and tokens minted from it speak for the
-- agent. A lease is one just-in-time credential for (agent, mission); the row outlives the
-- credential so the trail of who held what stays queryable.

CREATE TABLE agents (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    -- JSON arrays of path patterns / engine-name patterns.
    secret_allowlist jsonb NOT NULL,
    engine_allowlist jsonb NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    disabled_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

ALTER TABLE api_keys ADD COLUMN agent_id uuid;
ALTER TABLE api_keys ADD FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id);

CREATE TABLE postgres_engines (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    -- The secret path holding the admin connection URL: the URL itself lives sealed there.
    connection_secret   text NOT NULL,
    template_role       text NOT NULL,
    default_ttl_seconds bigint NOT NULL CHECK (default_ttl_seconds > 0),
    max_ttl_seconds     bigint NOT NULL CHECK (max_ttl_seconds >= default_ttl_seconds),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
ALTER TABLE postgres_engines ENABLE ROW LEVEL SECURITY;
ALTER TABLE postgres_engines FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON postgres_engines
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

CREATE TABLE leases (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    agent_id         uuid NOT NULL,
    mission          text NOT NULL CHECK (length(mission) BETWEEN 1 AND 128),
    purpose          text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 512),
    -- `kv`: a stored secret's value (target = its path); `postgres`: a role (target = engine).
    kind             text NOT NULL CHECK (kind IN ('kv', 'postgres')),
    target           text NOT NULL,
    secret_version   bigint,
    issued_by        text NOT NULL,
    request_id       text,
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    max_expires_at   timestamptz NOT NULL,
    revoked_at       timestamptz,
    revoked_by       text,
    revoke_reason    text,
    -- The external credential: none (kv), live, pending removal, or removed.
    cleanup          text NOT NULL CHECK (cleanup IN ('none', 'live', 'pending', 'done')),
    cleanup_attempts bigint NOT NULL DEFAULT 0,
    cleanup_error    text,
    cleanup_next_at  timestamptz,
    CHECK (expires_at <= max_expires_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
    CHECK (cleanup <> 'pending' OR revoked_at IS NOT NULL),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE INDEX leases_live ON leases (tenant_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX leases_mission ON leases (tenant_id, mission);
CREATE INDEX leases_cleanup ON leases (tenant_id, cleanup_next_at) WHERE cleanup = 'pending';
ALTER TABLE leases ENABLE ROW LEVEL SECURITY;
ALTER TABLE leases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON leases
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
