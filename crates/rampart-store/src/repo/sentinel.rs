//! The Sentinel's per-tenant rows (its policy versions are in [`super::documents`]): key generations, the reversible-token vault
//! and the fingerprints of live secret values.

use rampart_types::{TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{
    SecretVersionRecord, SentinelKeyRecord, SentinelStamp, SentinelTokenRecord, StoreError, Tx,
};

fn token_from_row(row: &AnyRow) -> Result<SentinelTokenRecord, StoreError> {
    Ok(SentinelTokenRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        token: row.text("token")?,
        generation: row.int("generation")?,
        class: row.text("class")?,
        sealed_value: row.bytes("sealed_value")?,
        created_at: row.ts("created_at")?,
    })
}

impl Tx {
    /// The tenant's [`SentinelStamp`], in one statement.
    pub async fn sentinel_stamp(&mut self, tenant: TenantId) -> Result<SentinelStamp, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(SentinelStamp::default());
        }
        let row = self
            .fetch_optional(
                &sql!(
                    "SELECT \
                     CAST((SELECT coalesce(max(version), 0) FROM sentinel_policies \
                           WHERE tenant_id = $1) AS BIGINT) AS policy_version, \
                     CAST((SELECT max(generation) FROM sentinel_keys \
                           WHERE tenant_id = $1 AND destroyed_at IS NULL) AS BIGINT) \
                       AS key_generation, \
                     CAST((SELECT count(*) FROM tenant_keys \
                           WHERE tenant_id = $1 AND state = 'revoked') AS BIGINT) AS revoked_keks, \
                     CAST((SELECT count(*) FROM sentinel_fingerprints WHERE tenant_id = $1) \
                       AS BIGINT) AS fingerprinted, \
                     CAST((SELECT count(*) FROM secret_versions \
                           WHERE tenant_id = $1 AND destroyed_at IS NOT NULL) AS BIGINT) \
                       AS destroyed_versions, \
                     CAST(CASE WHEN EXISTS (SELECT 1 FROM secret_versions v \
                           WHERE v.tenant_id = $1 AND v.destroyed_at IS NULL AND NOT EXISTS \
                             (SELECT 1 FROM sentinel_fingerprints f WHERE f.tenant_id = v.tenant_id \
                              AND f.path = v.path AND f.version = v.version)) \
                       THEN 1 ELSE 0 END AS BIGINT) AS unfingerprinted"
                ),
                &[Val::Uuid(*tenant.as_uuid())],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                column: "sentinel_stamp".into(),
                reason: "no row".into(),
            })?;
        Ok(SentinelStamp {
            policy_version: row.int("policy_version")?,
            key_generation: row.opt_int("key_generation")?,
            revoked_keks: row.int("revoked_keks")?,
            fingerprinted: row.int("fingerprinted")?,
            destroyed_versions: row.int("destroyed_versions")?,
            unfingerprinted: row.int("unfingerprinted")? != 0,
        })
    }

    /// Every generation of the tenant's Sentinel key, newest first.
    pub async fn sentinel_keys(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<SentinelKeyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT tenant_id, generation, sealed_key, created_at, destroyed_at \
                 FROM sentinel_keys WHERE tenant_id = $1 ORDER BY generation DESC"
            ),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(super::ledger_keys::key_generation_from_row)
        .collect()
    }

    /// Adds a key generation; `false` if it exists or another generation is live (a concurrent
    /// writer created one first).
    pub async fn insert_sentinel_key(&mut self, k: &SentinelKeyRecord) -> Result<bool, StoreError> {
        self.guard_write(k.tenant_id)?;
        Ok(self
            .execute(
                &sql!(
                    "INSERT INTO sentinel_keys (tenant_id, generation, sealed_key, created_at, \
                     destroyed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
                ),
                &[
                    Val::Uuid(*k.tenant_id.as_uuid()),
                    Val::Int(k.generation),
                    Val::OptBytes(k.sealed_key.as_deref()),
                    Val::Ts(k.created_at),
                    Val::OptTs(k.destroyed_at),
                ],
            )
            .await?
            == 1)
    }

    /// Replaces a live generation's sealed key (after sealing it under a newer tenant KEK).
    pub async fn reseal_sentinel_key(
        &mut self,
        tenant: TenantId,
        generation: i64,
        sealed_key: &[u8],
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE sentinel_keys SET sealed_key = $3 \
                     WHERE tenant_id = $1 AND generation = $2 AND destroyed_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Int(generation),
                    Val::Bytes(sealed_key),
                ],
            )
            .await?
            == 1)
    }

    /// Destroys a key generation and deletes the tokens sealed under it. Returns how many
    /// tokens were deleted, or `None` if the generation was not live.
    pub async fn destroy_sentinel_key(
        &mut self,
        tenant: TenantId,
        generation: i64,
        at: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        self.guard_write(tenant)?;
        let vals = [Val::Uuid(*tenant.as_uuid()), Val::Int(generation)];
        let destroyed = self
            .execute(
                &sql!(
                    "UPDATE sentinel_keys SET sealed_key = NULL, destroyed_at = $3 \
                     WHERE tenant_id = $1 AND generation = $2 AND destroyed_at IS NULL"
                ),
                &[vals[0], vals[1], Val::Ts(at)],
            )
            .await?;
        if destroyed == 0 {
            return Ok(None);
        }
        let tokens = self
            .execute(
                &sql!("DELETE FROM sentinel_tokens WHERE tenant_id = $1 AND generation = $2"),
                &vals,
            )
            .await?;
        Ok(Some(tokens))
    }

    /// Adds a token unless it is already there (the same value was sealed before).
    pub async fn insert_sentinel_token(
        &mut self,
        t: &SentinelTokenRecord,
    ) -> Result<(), StoreError> {
        self.guard_write(t.tenant_id)?;
        self.execute(
            &sql!(
                "INSERT INTO sentinel_tokens (tenant_id, token, generation, class, sealed_value, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            ),
            &[
                Val::Uuid(*t.tenant_id.as_uuid()),
                Val::Text(&t.token),
                Val::Int(t.generation),
                Val::Text(&t.class),
                Val::Bytes(&t.sealed_value),
                Val::Ts(t.created_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn sentinel_token(
        &mut self,
        tenant: TenantId,
        token: &str,
    ) -> Result<Option<SentinelTokenRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(
                "SELECT tenant_id, token, generation, class, sealed_value, created_at \
                 FROM sentinel_tokens WHERE tenant_id = $1 AND token = $2"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(token)],
        )
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    /// Up to `limit` secret versions, not destroyed, that have no fingerprints yet.
    pub async fn secret_versions_without_fingerprints(
        &mut self,
        tenant: TenantId,
        limit: i64,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        let rows = self
            .fetch_all(
                &sql!(
                    "SELECT v.tenant_id, v.path, v.version, v.key_version, v.wrapped_dek, \
                     v.ciphertext, v.created_at, v.deleted_at, v.destroyed_at \
                     FROM secret_versions v LEFT JOIN sentinel_fingerprints f \
                     ON f.tenant_id = v.tenant_id AND f.path = v.path AND f.version = v.version \
                     WHERE v.tenant_id = $1 AND v.destroyed_at IS NULL AND f.path IS NULL \
                     ORDER BY v.path, v.version LIMIT $2"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Int(limit)],
            )
            .await?;
        rows.iter().map(super::secrets::version_from_row).collect()
    }

    pub async fn insert_sentinel_fingerprints(
        &mut self,
        tenant: TenantId,
        path: &str,
        version: i64,
        fingerprints: &[u8],
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "INSERT INTO sentinel_fingerprints (tenant_id, path, version, fingerprints) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(path),
                Val::Int(version),
                Val::Bytes(fingerprints),
            ],
        )
        .await
        .map(drop)
    }

    /// The fingerprints of every secret version of the tenant not destroyed.
    pub async fn live_sentinel_fingerprints(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT f.fingerprints FROM sentinel_fingerprints f JOIN secret_versions v \
                 ON v.tenant_id = f.tenant_id AND v.path = f.path AND v.version = f.version \
                 WHERE f.tenant_id = $1 AND v.destroyed_at IS NULL"
            ),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(|r| r.bytes("fingerprints"))
        .collect()
    }
}
