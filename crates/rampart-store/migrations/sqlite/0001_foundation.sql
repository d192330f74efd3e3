-- Rampart foundation schema (SQLite, the embedded default).
--
-- SQLite has no row-level security: every query of a tenant-owned table filters on `tenant_id`,
-- and the store's transaction refuses any tenant other than the one it was opened for.
-- Ids are canonical UUID text; times are Unix milliseconds.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    public_key   BLOB NOT NULL,
    sealed_seed  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER,
    verify_until INTEGER
) STRICT;

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    tenant_id  TEXT GENERATED ALWAYS AS (id) VIRTUAL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    capabilities TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    rotated_from TEXT,
    rotated_to   TEXT
) STRICT;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE token_families (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    subject        TEXT NOT NULL,
    api_key_id     TEXT NOT NULL,
    capabilities   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX token_families_key ON token_families (tenant_id, api_key_id);

CREATE TABLE refresh_tokens (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    family_id        TEXT NOT NULL REFERENCES token_families (id),
    secret_hash      BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    successor_id     TEXT,
    successor_sealed BLOB
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    at         INTEGER NOT NULL,
    request_id TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);

-- The audit trail is append-only here too.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
