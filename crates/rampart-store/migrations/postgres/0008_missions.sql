-- Missions and cascading revocation. A mission is one unit of an agent's work: its pinned
-- system instructions (sealed under the tenant KEK; their SHA-256 goes to the audit trail),
-- its budgets and its lifecycle. Ending or aborting it revokes everything issued under it.
--
-- Revocation is by epoch: each tenant counts its revocations (`tenants.revocation_epoch`, bumped
-- under the tenant row's lock, so concurrent revocations queue instead of failing), and each row
-- of `principal_revocations` takes the next value and names the revoked principal (`tenant`, `agent:<id>`, `mission:<id>`, `apikey:<id>`,
-- `user:<name>`). A token records the epoch it was minted at and is dead when a principal of
-- its lineage has a row with a later epoch: one indexed lookup, never a walk of issued tokens.

CREATE TABLE missions (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    id                  uuid NOT NULL,
    agent_id            uuid NOT NULL,
    goal                text NOT NULL CHECK (length(goal) BETWEEN 1 AND 1024),
    -- The pinned instructions sealed under the tenant KEK, and their SHA-256.
    instructions_sealed bytea NOT NULL,
    instructions_sha256 bytea NOT NULL CHECK (length(instructions_sha256) = 32),
    budgets             jsonb NOT NULL,
    status              text NOT NULL CHECK (status IN ('active', 'ended', 'aborted')),
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL,
    deadline            timestamptz NOT NULL,
    ended_at            timestamptz,
    ended_by            text,
    end_reason          text,
    cascade_id          uuid,
    CHECK ((status = 'active') = (ended_at IS NULL)),
    CHECK ((ended_at IS NULL) = (cascade_id IS NULL)),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE INDEX missions_agent ON missions (tenant_id, agent_id, created_at);
ALTER TABLE missions ENABLE ROW LEVEL SECURITY;
ALTER TABLE missions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON missions
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

ALTER TABLE tenants ADD COLUMN revocation_epoch bigint NOT NULL DEFAULT 0;

-- Append-only: a revocation is never undone.
CREATE TABLE principal_revocations (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    epoch      bigint NOT NULL CHECK (epoch > 0),
    principal  text NOT NULL CHECK (length(principal) BETWEEN 1 AND 200),
    cascade_id uuid NOT NULL,
    reason     text NOT NULL,
    revoked_by text NOT NULL,
    revoked_at timestamptz NOT NULL,
    -- The only index, and the one the lineage check needs: no index on (tenant_id, epoch) for a
    -- planner without statistics to prefer and scan every revocation newer than a token. Epochs
    -- are unique per tenant by the counter's row lock.
    PRIMARY KEY (tenant_id, principal, epoch)
);
ALTER TABLE principal_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE principal_revocations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON principal_revocations
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
