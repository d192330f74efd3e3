-- Agents, dynamic credential engines and leases. An agent profile carries its allowlists (deny
-- by default); an API key may belong to an agent, and tokens minted from it speak for the
-- agent. A lease is one just-in-time credential for (agent, mission); the row outlives the
-- credential so the trail of who held what stays queryable.

CREATE TABLE agents (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    -- JSON arrays of path patterns / engine-name patterns.
    secret_allowlist TEXT NOT NULL,
    engine_allowlist TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
) STRICT;

-- SQLite adds a column's foreign key only as a one-column reference: agent ids are unique
-- across tenants (random UUIDs, and the UNIQUE below makes it a fact).
CREATE UNIQUE INDEX agents_id ON agents (id);
ALTER TABLE api_keys ADD COLUMN agent_id TEXT REFERENCES agents (id);

CREATE TABLE postgres_engines (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    -- The secret path holding the admin connection URL: the URL itself lives sealed there.
    connection_secret   TEXT NOT NULL,
    template_role       TEXT NOT NULL,
    default_ttl_seconds INTEGER NOT NULL CHECK (default_ttl_seconds > 0),
    max_ttl_seconds     INTEGER NOT NULL CHECK (max_ttl_seconds >= default_ttl_seconds),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE leases (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    id               TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    mission          TEXT NOT NULL CHECK (length(mission) BETWEEN 1 AND 128),
    purpose          TEXT NOT NULL CHECK (length(purpose) BETWEEN 1 AND 512),
    -- `kv`: a stored secret's value (target = its path); `postgres`: a role (target = engine).
    kind             TEXT NOT NULL CHECK (kind IN ('kv', 'postgres')),
    target           TEXT NOT NULL,
    secret_version   INTEGER,
    issued_by        TEXT NOT NULL,
    request_id       TEXT,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    max_expires_at   INTEGER NOT NULL,
    revoked_at       INTEGER,
    revoked_by       TEXT,
    revoke_reason    TEXT,
    -- The external credential: none (kv), live, pending removal, or removed.
    cleanup          TEXT NOT NULL CHECK (cleanup IN ('none', 'live', 'pending', 'done')),
    cleanup_attempts INTEGER NOT NULL DEFAULT 0,
    cleanup_error    TEXT,
    cleanup_next_at  INTEGER,
    CHECK (expires_at <= max_expires_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
    CHECK (cleanup <> 'pending' OR revoked_at IS NOT NULL),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
) STRICT;
CREATE INDEX leases_live ON leases (tenant_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX leases_mission ON leases (tenant_id, mission);
CREATE INDEX leases_cleanup ON leases (tenant_id, cleanup_next_at) WHERE cleanup = 'pending';
