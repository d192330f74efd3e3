-- The tamper-evident ledger: where each audit record landed in it, and the per-tenant keys its
-- records are sealed under.

-- A record's position: the log (its checkpoint origin: each node writes its own) and the index.
ALTER TABLE audit_events ADD COLUMN ledger_log TEXT;
ALTER TABLE audit_events ADD COLUMN ledger_index INTEGER
    CHECK (ledger_index IS NULL OR ledger_index >= 0);
CREATE INDEX audit_events_ledger ON audit_events (tenant_id, ledger_log, ledger_index);

CREATE TABLE ledger_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    generation   INTEGER NOT NULL,
    sealed_key   BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id, generation)
) STRICT;
