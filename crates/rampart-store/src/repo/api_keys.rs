use rampart_identity::ApiKeyId;
use rampart_types::{AgentId, CapabilitySet, TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::{parse_col, parse_opt_col, tenant_id};
use crate::{ApiKeyRecord, Lookup, Scope, StoreError, Tx};

macro_rules! columns {
    () => {
        "id, tenant_id, name, secret_hash, capabilities, created_by, created_at, expires_at, \
         revoked_at, last_used_at, rotated_from, rotated_to, agent_id"
    };
}

fn from_row(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: parse_col(row, "id")?,
        tenant_id: tenant_id(row, "tenant_id")?,
        name: row.text("name")?,
        secret_hash: row.bytes("secret_hash")?,
        capabilities: CapabilitySet::parse_scope(&row.text("capabilities")?).map_err(|e| {
            StoreError::Corrupt {
                column: "capabilities".into(),
                reason: e.to_string(),
            }
        })?,
        created_by: row.text("created_by")?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        last_used_at: row.opt_ts("last_used_at")?,
        rotated_from: parse_opt_col(row, "rotated_from")?,
        rotated_to: parse_opt_col(row, "rotated_to")?,
        agent_id: row.opt_uuid("agent_id")?.map(AgentId::from_uuid),
    })
}

impl Tx {
    pub async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.guard_write(k.tenant_id)?;
        let caps = k.capabilities.to_scope_string();
        self.execute(
            &sql!(
                "INSERT INTO api_keys (id, tenant_id, name, secret_hash, capabilities, created_by, \
                 created_at, expires_at, revoked_at, last_used_at, rotated_from, rotated_to, \
                 agent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            &[
                Val::Text(k.id.as_str()),
                Val::Uuid(*k.tenant_id.as_uuid()),
                Val::Text(&k.name),
                Val::Bytes(&k.secret_hash),
                Val::Text(&caps),
                Val::Text(&k.created_by),
                Val::Ts(k.created_at),
                Val::Ts(k.expires_at),
                Val::OptTs(k.revoked_at),
                Val::OptTs(k.last_used_at),
                Val::OptText(k.rotated_from.as_ref().map(ApiKeyId::as_str)),
                Val::OptText(k.rotated_to.as_ref().map(ApiKeyId::as_str)),
                Val::OptUuid(k.agent_id.map(|a| *a.as_uuid())),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn get_api_key(
        &mut self,
        tenant: TenantId,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM api_keys WHERE tenant_id = $1 AND id = $2"
                )),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(id.as_str())],
            )
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The key with this public id, before its tenant is known. Only in a
    /// [`Lookup::ApiKey`] scope for the same id.
    pub async fn lookup_api_key(
        &mut self,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        if !matches!(self.scope(), Scope::Lookup(Lookup::ApiKey(l)) if l == id) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM api_keys WHERE id = $1"
                )),
                &[Val::Text(id.as_str())],
            )
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_api_keys(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                columns!(),
                " FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
            )),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Records a use of the key.
    pub async fn touch_api_key(
        &mut self,
        tenant: TenantId,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!("UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2"),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(id.as_str()),
                    Val::Ts(at),
                ],
            )
            .await?
            == 1)
    }

    /// Revokes the key; `false` if it does not exist or was already revoked.
    pub async fn revoke_api_key(
        &mut self,
        tenant: TenantId,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE api_keys SET revoked_at = $3 \
                     WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(id.as_str()),
                    Val::Ts(at),
                ],
            )
            .await?
            == 1)
    }

    /// Marks `old` as rotated to `new` and brings its expiry forward to `old_expires_at` (never
    /// later than it was). `false` when `old` is revoked or was already rotated: a key has at most
    /// one successor.
    pub async fn record_api_key_rotation(
        &mut self,
        tenant: TenantId,
        old: &ApiKeyId,
        new: &ApiKeyId,
        old_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE api_keys SET rotated_to = $3, \
                     expires_at = CASE WHEN expires_at > $4 THEN $4 ELSE expires_at END \
                     WHERE tenant_id = $1 AND id = $2 AND rotated_to IS NULL AND revoked_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(old.as_str()),
                    Val::Text(new.as_str()),
                    Val::Ts(old_expires_at),
                ],
            )
            .await?
            == 1)
    }
}
