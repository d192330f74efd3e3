-- Secrets: per-tenant key-encryption keys (KEKs) in versions, and versioned secrets whose data
-- keys they wrap. Values are AES-256-GCM ciphertexts; nothing here opens without the root key.

CREATE TABLE tenant_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    sealed_key BLOB,
    state      TEXT NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    revoked_at INTEGER,
    CHECK ((state = 'revoked') = (sealed_key IS NULL)),
    PRIMARY KEY (tenant_id, version)
) STRICT;
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id) WHERE state = 'active';

CREATE TABLE secrets (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    path            TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 512),
    current_version INTEGER NOT NULL CHECK (current_version > 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, path)
) STRICT;

CREATE TABLE secret_versions (
    tenant_id    TEXT NOT NULL,
    path         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    key_version  INTEGER,
    wrapped_dek  BLOB,
    ciphertext   BLOB,
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    destroyed_at INTEGER,
    CHECK ((destroyed_at IS NULL) = (ciphertext IS NOT NULL)
           AND (ciphertext IS NULL) = (wrapped_dek IS NULL)
           AND (ciphertext IS NULL) = (key_version IS NULL)),
    PRIMARY KEY (tenant_id, path, version),
    FOREIGN KEY (tenant_id, path) REFERENCES secrets (tenant_id, path),
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version)
) STRICT;
CREATE INDEX secret_versions_key ON secret_versions (tenant_id, key_version)
    WHERE key_version IS NOT NULL;
