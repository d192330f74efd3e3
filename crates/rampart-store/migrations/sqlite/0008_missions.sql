-- Missions and cascading revocation (see the Postgres migration).
CREATE TABLE missions (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    id                  TEXT NOT NULL,
    agent_id            TEXT NOT NULL,
    goal                TEXT NOT NULL CHECK (length(goal) BETWEEN 1 AND 1024),
    instructions_sealed BLOB NOT NULL,
    instructions_sha256 BLOB NOT NULL CHECK (length(instructions_sha256) = 32),
    budgets             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'ended', 'aborted')),
    created_by          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    deadline            INTEGER NOT NULL,
    ended_at            INTEGER,
    ended_by            TEXT,
    end_reason          TEXT,
    cascade_id          TEXT,
    CHECK ((status = 'active') = (ended_at IS NULL)),
    CHECK ((ended_at IS NULL) = (cascade_id IS NULL)),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
) STRICT;
CREATE INDEX missions_agent ON missions (tenant_id, agent_id, created_at);

ALTER TABLE tenants ADD COLUMN revocation_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE principal_revocations (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    epoch      INTEGER NOT NULL CHECK (epoch > 0),
    principal  TEXT NOT NULL CHECK (length(principal) BETWEEN 1 AND 200),
    cascade_id TEXT NOT NULL,
    reason     TEXT NOT NULL,
    revoked_by TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, principal, epoch)
) STRICT;
