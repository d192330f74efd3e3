use rampart_types::{TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{KeyGenerationRecord, LedgerKeyRecord, StoreError, Tx};

/// A key generation row of `ledger_keys` or `sentinel_keys`.
pub(super) fn key_generation_from_row(row: &AnyRow) -> Result<KeyGenerationRecord, StoreError> {
    Ok(KeyGenerationRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        generation: row.int("generation")?,
        sealed_key: row.opt_bytes("sealed_key")?,
        created_at: row.ts("created_at")?,
        destroyed_at: row.opt_ts("destroyed_at")?,
    })
}

impl Tx {
    /// Every generation of the tenant's ledger key, newest first.
    pub async fn ledger_keys(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<LedgerKeyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT tenant_id, generation, sealed_key, created_at, destroyed_at \
                 FROM ledger_keys WHERE tenant_id = $1 ORDER BY generation DESC"
            ),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(key_generation_from_row)
        .collect()
    }

    /// Adds a key generation; `false` if another writer added that generation first.
    pub async fn insert_ledger_key(&mut self, k: &LedgerKeyRecord) -> Result<bool, StoreError> {
        self.guard_write(k.tenant_id)?;
        Ok(self
            .execute(
                &sql!(
                    "INSERT INTO ledger_keys (tenant_id, generation, sealed_key, created_at, \
                     destroyed_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, generation) DO NOTHING"
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

    /// Destroys every generation of the tenant's ledger key: the sealed key material is
    /// overwritten with NULL. Returns how many generations were live.
    pub async fn destroy_ledger_keys(
        &mut self,
        tenant: TenantId,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "UPDATE ledger_keys SET sealed_key = NULL, destroyed_at = $2 \
                 WHERE tenant_id = $1 AND sealed_key IS NOT NULL"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Ts(at)],
        )
        .await
    }
}
