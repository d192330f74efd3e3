-- The tamper-evident ledger: where each audit record landed in it, and the per-tenant keys its
-- records are sealed under. Destroying a tenant's keys (sealed_key set to NULL) erases its records'
-- contents while every proof of the log still verifies.

-- A record's position: the log (its checkpoint origin: each node writes its own) and the index.
ALTER TABLE audit_events ADD COLUMN ledger_log text;
ALTER TABLE audit_events ADD COLUMN ledger_index bigint;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_ledger_position
    CHECK ((ledger_log IS NULL) = (ledger_index IS NULL) AND (ledger_index IS NULL OR ledger_index >= 0));
CREATE INDEX audit_events_ledger ON audit_events (tenant_id, ledger_log, ledger_index);

CREATE TABLE ledger_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    generation   bigint NOT NULL,
    sealed_key   bytea,
    created_at   timestamptz NOT NULL,
    destroyed_at timestamptz,
    PRIMARY KEY (tenant_id, generation)
);
ALTER TABLE ledger_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger_keys
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));
