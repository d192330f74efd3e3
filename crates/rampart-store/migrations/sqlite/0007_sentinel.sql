-- PII Sentinel (see the Postgres migration).
CREATE TABLE sentinel_policies (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    document   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT;

CREATE TABLE sentinel_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    generation   INTEGER NOT NULL CHECK (generation > 0),
    sealed_key   BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    CHECK ((destroyed_at IS NULL) = (sealed_key IS NOT NULL)),
    PRIMARY KEY (tenant_id, generation)
) STRICT;
CREATE UNIQUE INDEX sentinel_keys_one_live ON sentinel_keys (tenant_id)
    WHERE destroyed_at IS NULL;

CREATE TABLE sentinel_tokens (
    tenant_id    TEXT NOT NULL,
    token        TEXT NOT NULL CHECK (length(token) BETWEEN 1 AND 64),
    generation   INTEGER NOT NULL,
    class        TEXT NOT NULL,
    sealed_value BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, token),
    FOREIGN KEY (tenant_id, generation) REFERENCES sentinel_keys (tenant_id, generation)
) STRICT;
CREATE INDEX sentinel_tokens_generation ON sentinel_tokens (tenant_id, generation);

CREATE TABLE sentinel_fingerprints (
    tenant_id    TEXT NOT NULL,
    path         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    fingerprints BLOB NOT NULL,
    PRIMARY KEY (tenant_id, path, version),
    FOREIGN KEY (tenant_id, path, version) REFERENCES secret_versions (tenant_id, path, version)
) STRICT;
