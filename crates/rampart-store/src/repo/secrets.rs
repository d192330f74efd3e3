//! Tenant key-encryption keys and versioned secrets. Every statement names the tenant; values
//! are stored only sealed.

use rampart_secrets::SealedValue;
use rampart_types::{TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::{parse_col, tenant_id};
use crate::{Cas, SecretRecord, SecretVersionRecord, StoreError, TenantKeyRecord, Tx};

fn key_from_row(row: &AnyRow) -> Result<TenantKeyRecord, StoreError> {
    Ok(TenantKeyRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        version: row.int("version")?,
        sealed_key: row.opt_bytes("sealed_key")?,
        state: parse_col(row, "state")?,
        created_at: row.ts("created_at")?,
        retired_at: row.opt_ts("retired_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
    })
}

fn secret_from_row(row: &AnyRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        path: row.text("path")?,
        current_version: row.int("current_version")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

pub(super) fn version_from_row(row: &AnyRow) -> Result<SecretVersionRecord, StoreError> {
    let sealed = match (
        row.opt_int("key_version")?,
        row.opt_bytes("wrapped_dek")?,
        row.opt_bytes("ciphertext")?,
    ) {
        (Some(key_version), Some(wrapped_dek), Some(ciphertext)) => Some(SealedValue {
            key_version: u32::try_from(key_version).map_err(|_| StoreError::Corrupt {
                column: "secret_versions.key_version".into(),
                reason: format!("{key_version} is not a key version"),
            })?,
            wrapped_dek,
            ciphertext,
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt {
                column: "secret_versions".into(),
                reason: "a version is partly destroyed".into(),
            });
        }
    };
    Ok(SecretVersionRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        path: row.text("path")?,
        version: row.int("version")?,
        sealed,
        created_at: row.ts("created_at")?,
        deleted_at: row.opt_ts("deleted_at")?,
        destroyed_at: row.opt_ts("destroyed_at")?,
    })
}

macro_rules! key_columns {
    () => {
        "tenant_id, version, sealed_key, state, created_at, retired_at, revoked_at"
    };
}

macro_rules! version_columns {
    () => {
        "tenant_id, path, version, key_version, wrapped_dek, ciphertext, created_at, deleted_at, \
         destroyed_at"
    };
}

impl Tx {
    /// Every version of the tenant's key-encryption key, newest first.
    pub async fn tenant_keys(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<TenantKeyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tenant_keys WHERE tenant_id = $1 ORDER BY version DESC"
            )),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    /// Adds a key version; `false` if another writer added that version (or an active one)
    /// first.
    pub async fn insert_tenant_key(&mut self, k: &TenantKeyRecord) -> Result<bool, StoreError> {
        self.guard_write(k.tenant_id)?;
        Ok(self
            .execute(
                &sql!(
                    "INSERT INTO tenant_keys (tenant_id, version, sealed_key, state, created_at, \
                     retired_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    Val::Uuid(*k.tenant_id.as_uuid()),
                    Val::Int(k.version),
                    Val::OptBytes(k.sealed_key.as_deref()),
                    Val::Text(k.state.as_str()),
                    Val::Ts(k.created_at),
                    Val::OptTs(k.retired_at),
                    Val::OptTs(k.revoked_at),
                ],
            )
            .await?
            == 1)
    }

    /// Retires the tenant's active key version; `false` if there was none.
    pub async fn retire_tenant_key(
        &mut self,
        tenant: TenantId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE tenant_keys SET state = 'retired', retired_at = $2 \
                     WHERE tenant_id = $1 AND state = 'active'"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Ts(at)],
            )
            .await?
            == 1)
    }

    /// Revokes a retired key version: destroys its material. Refused (`false`) while any secret
    /// version is still wrapped by it, or when it is not retired.
    pub async fn revoke_tenant_key(
        &mut self,
        tenant: TenantId,
        version: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE tenant_keys SET state = 'revoked', sealed_key = NULL, revoked_at = $3 \
                     WHERE tenant_id = $1 AND version = $2 AND state = 'retired' \
                     AND NOT EXISTS (SELECT 1 FROM secret_versions v \
                                     WHERE v.tenant_id = $1 AND v.key_version = $2)"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Int(version), Val::Ts(at)],
            )
            .await?
            == 1)
    }

    /// Allocates the next version of the secret at `path` if `cas` holds: the version number
    /// (which the value's seal binds) or `None` when the check failed.
    pub async fn next_secret_version(
        &mut self,
        tenant: TenantId,
        path: &str,
        cas: Cas,
        at: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        self.guard_write(tenant)?;
        let vals = [Val::Uuid(*tenant.as_uuid()), Val::Text(path), Val::Ts(at)];
        let row = match cas {
            Cas::Absent => {
                self.fetch_optional(
                    &sql!(
                        "INSERT INTO secrets (tenant_id, path, current_version, created_at, \
                         updated_at) VALUES ($1, $2, 1, $3, $3) \
                         ON CONFLICT (tenant_id, path) DO NOTHING RETURNING current_version"
                    ),
                    &vals,
                )
                .await?
            }
            Cas::Any => {
                self.fetch_optional(
                    &sql!(
                        "INSERT INTO secrets (tenant_id, path, current_version, created_at, \
                         updated_at) VALUES ($1, $2, 1, $3, $3) \
                         ON CONFLICT (tenant_id, path) DO UPDATE \
                         SET current_version = secrets.current_version + 1, updated_at = $3 \
                         RETURNING current_version"
                    ),
                    &vals,
                )
                .await?
            }
            Cas::Current(expected) => {
                self.fetch_optional(
                    &sql!(
                        "UPDATE secrets SET current_version = current_version + 1, \
                         updated_at = $3 \
                         WHERE tenant_id = $1 AND path = $2 AND current_version = $4 \
                         RETURNING current_version"
                    ),
                    &[vals[0], vals[1], vals[2], Val::Int(expected)],
                )
                .await?
            }
        };
        row.map(|r| r.int("current_version")).transpose()
    }

    /// Stores version `version` of the secret at `path` (allocated by
    /// [`Tx::next_secret_version`]).
    pub async fn insert_secret_version(
        &mut self,
        tenant: TenantId,
        path: &str,
        version: i64,
        sealed: &SealedValue,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "INSERT INTO secret_versions (tenant_id, path, version, key_version, wrapped_dek, \
                 ciphertext, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(path),
                Val::Int(version),
                Val::Int(i64::from(sealed.key_version)),
                Val::Bytes(&sealed.wrapped_dek),
                Val::Bytes(&sealed.ciphertext),
                Val::Ts(at),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn secret(
        &mut self,
        tenant: TenantId,
        path: &str,
    ) -> Result<Option<SecretRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(
                "SELECT tenant_id, path, current_version, created_at, updated_at FROM secrets \
                 WHERE tenant_id = $1 AND path = $2"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(path)],
        )
        .await?
        .as_ref()
        .map(secret_from_row)
        .transpose()
    }

    /// Secrets whose path starts with `prefix`, in path order, after `after` (a page's last
    /// path), at most `limit`.
    pub async fn list_secrets(
        &mut self,
        tenant: TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT tenant_id, path, current_version, created_at, updated_at FROM secrets \
                 WHERE tenant_id = $1 AND substr(path, 1, length($2)) = $2 \
                 AND ($3 IS NULL OR path > $3) ORDER BY path LIMIT $4"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(prefix),
                Val::OptText(after),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(secret_from_row)
        .collect()
    }

    /// The newest version of the secret at `path`, and whether the KEK version wrapping it is
    /// revoked, in one statement.
    pub async fn current_secret_version(
        &mut self,
        tenant: TenantId,
        path: &str,
    ) -> Result<Option<(SecretVersionRecord, bool)>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(
                    "SELECT v.tenant_id, v.path, v.version, v.key_version, v.wrapped_dek, \
                     v.ciphertext, v.created_at, v.deleted_at, v.destroyed_at, \
                     CAST(CASE WHEN k.state = 'revoked' THEN 1 ELSE 0 END AS BIGINT) AS kek_revoked \
                     FROM secrets s JOIN secret_versions v ON v.tenant_id = s.tenant_id \
                     AND v.path = s.path AND v.version = s.current_version \
                     LEFT JOIN tenant_keys k ON k.tenant_id = v.tenant_id \
                     AND k.version = v.key_version \
                     WHERE s.tenant_id = $1 AND s.path = $2"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(path)],
            )
            .await?;
        row.map(|r| Ok((version_from_row(&r)?, r.int("kek_revoked")? != 0)))
            .transpose()
    }

    pub async fn secret_version(
        &mut self,
        tenant: TenantId,
        path: &str,
        version: i64,
    ) -> Result<Option<SecretVersionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                version_columns!(),
                " FROM secret_versions WHERE tenant_id = $1 AND path = $2 AND version = $3"
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(path),
                Val::Int(version),
            ],
        )
        .await?
        .as_ref()
        .map(version_from_row)
        .transpose()
    }

    /// Every version of the secret at `path`, oldest first.
    pub async fn secret_versions(
        &mut self,
        tenant: TenantId,
        path: &str,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                version_columns!(),
                " FROM secret_versions WHERE tenant_id = $1 AND path = $2 ORDER BY version"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(path)],
        )
        .await?
        .iter()
        .map(version_from_row)
        .collect()
    }

    /// Soft-deletes (`deleted = true`) or restores versions; destroyed ones stay destroyed.
    /// Returns how many changed.
    pub async fn mark_secret_versions_deleted(
        &mut self,
        tenant: TenantId,
        path: &str,
        versions: &[i64],
        deleted_at: Option<Timestamp>,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        let mut n = 0;
        for &v in versions {
            n += self
                .execute(
                    &sql!(
                        "UPDATE secret_versions SET deleted_at = $4 \
                         WHERE tenant_id = $1 AND path = $2 AND version = $3 \
                         AND destroyed_at IS NULL AND (deleted_at IS NULL) <> ($4 IS NULL)"
                    ),
                    &[
                        Val::Uuid(*tenant.as_uuid()),
                        Val::Text(path),
                        Val::Int(v),
                        Val::OptTs(deleted_at),
                    ],
                )
                .await?;
        }
        Ok(n)
    }

    /// Destroys versions: their sealed data key and value are overwritten with NULL, for good.
    /// Returns how many were destroyed now.
    pub async fn destroy_secret_versions(
        &mut self,
        tenant: TenantId,
        path: &str,
        versions: &[i64],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        let mut n = 0;
        for &v in versions {
            n += self
                .execute(
                    &sql!(
                        "UPDATE secret_versions SET key_version = NULL, wrapped_dek = NULL, \
                         ciphertext = NULL, destroyed_at = $4 \
                         WHERE tenant_id = $1 AND path = $2 AND version = $3 \
                         AND destroyed_at IS NULL"
                    ),
                    &[
                        Val::Uuid(*tenant.as_uuid()),
                        Val::Text(path),
                        Val::Int(v),
                        Val::Ts(at),
                    ],
                )
                .await?;
        }
        Ok(n)
    }

    /// Up to `limit` secret versions whose data key is wrapped by key version `key_version`.
    pub async fn secret_versions_under_key(
        &mut self,
        tenant: TenantId,
        key_version: i64,
        limit: i64,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                version_columns!(),
                " FROM secret_versions WHERE tenant_id = $1 AND key_version = $2 LIMIT $3"
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Int(key_version),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(version_from_row)
        .collect()
    }

    /// Replaces a version's wrapped data key with `wrapped_dek`, wrapped by key version
    /// `to_key_version`, if it is still wrapped by `from_key_version`. Returns whether it was.
    pub async fn rewrap_secret_version(
        &mut self,
        tenant: TenantId,
        path: &str,
        version: i64,
        from_key_version: i64,
        to_key_version: i64,
        wrapped_dek: &[u8],
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE secret_versions SET key_version = $5, wrapped_dek = $6 \
                     WHERE tenant_id = $1 AND path = $2 AND version = $3 AND key_version = $4"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(path),
                    Val::Int(version),
                    Val::Int(from_key_version),
                    Val::Int(to_key_version),
                    Val::Bytes(wrapped_dek),
                ],
            )
            .await?
            == 1)
    }

    /// How many live (not destroyed) secret versions each key version wraps.
    pub async fn secret_count_by_key(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT key_version, COUNT(*) AS n FROM secret_versions \
                 WHERE tenant_id = $1 AND key_version IS NOT NULL GROUP BY key_version"
            ),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(|r| Ok((r.int("key_version")?, r.int("n")?)))
        .collect()
    }
}
