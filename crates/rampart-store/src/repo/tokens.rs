use rampart_identity::lineage::MAX_LINEAGE;
use rampart_identity::{ApiKeyId, RefreshTokenId};
use rampart_types::{CapabilitySet, FamilyId, TenantId, Timestamp, TokenId};

use crate::db::{AnyRow, Val, sql};
use crate::repo::{parse_col, tenant_id};
use crate::{FamilyRecord, Lookup, RefreshRecord, Scope, StoreError, TokenLiveness, Tx};

// INVARIANT: the liveness statement has one placeholder per principal a lineage can hold.
const _: () = assert!(MAX_LINEAGE == 6, "token_liveness binds six principals");

macro_rules! family_columns {
    () => {
        "id, tenant_id, subject, api_key_id, capabilities, created_at, expires_at, revoked_at, \
         revoked_reason"
    };
}

macro_rules! refresh_columns {
    () => {
        "id, tenant_id, family_id, secret_hash, created_at, expires_at, used_at, successor_id, \
         successor_sealed"
    };
}

fn family_from_row(row: &AnyRow) -> Result<FamilyRecord, StoreError> {
    Ok(FamilyRecord {
        id: FamilyId::from_uuid(row.uuid("id")?),
        tenant_id: tenant_id(row, "tenant_id")?,
        subject: row.text("subject")?,
        api_key_id: parse_col::<ApiKeyId>(row, "api_key_id")?,
        capabilities: CapabilitySet::parse_scope(&row.text("capabilities")?).map_err(|e| {
            StoreError::Corrupt {
                column: "capabilities".into(),
                reason: e.to_string(),
            }
        })?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        revoked_reason: row.opt_text("revoked_reason")?,
    })
}

fn refresh_id(s: String, column: &str) -> Result<RefreshTokenId, StoreError> {
    RefreshTokenId::parse(&s).ok_or_else(|| StoreError::Corrupt {
        column: column.to_owned(),
        reason: "not a refresh token id".into(),
    })
}

fn refresh_from_row(row: &AnyRow) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        id: refresh_id(row.text("id")?, "id")?,
        tenant_id: tenant_id(row, "tenant_id")?,
        family_id: FamilyId::from_uuid(row.uuid("family_id")?),
        secret_hash: row.bytes("secret_hash")?,
        created_at: row.ts("created_at")?,
        expires_at: row.ts("expires_at")?,
        used_at: row.opt_ts("used_at")?,
        successor_id: row
            .opt_text("successor_id")?
            .map(|s| refresh_id(s, "successor_id"))
            .transpose()?,
        successor_sealed: row.opt_bytes("successor_sealed")?,
    })
}

impl Tx {
    pub async fn insert_family(&mut self, f: &FamilyRecord) -> Result<(), StoreError> {
        self.guard_write(f.tenant_id)?;
        let caps = f.capabilities.to_scope_string();
        self.execute(
            &sql!(concat!(
                "INSERT INTO token_families (",
                family_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )),
            &[
                Val::Uuid(*f.id.as_uuid()),
                Val::Uuid(*f.tenant_id.as_uuid()),
                Val::Text(&f.subject),
                Val::Text(f.api_key_id.as_str()),
                Val::Text(&caps),
                Val::Ts(f.created_at),
                Val::Ts(f.expires_at),
                Val::OptTs(f.revoked_at),
                Val::OptText(f.revoked_reason.as_deref()),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn get_family(
        &mut self,
        tenant: TenantId,
        id: FamilyId,
    ) -> Result<Option<FamilyRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(concat!(
                    "SELECT ",
                    family_columns!(),
                    " FROM token_families WHERE tenant_id = $1 AND id = $2"
                )),
                &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(*id.as_uuid())],
            )
            .await?;
        row.as_ref().map(family_from_row).transpose()
    }

    /// Revokes one family; `false` if it was already revoked or does not exist.
    pub async fn revoke_family(
        &mut self,
        tenant: TenantId,
        id: FamilyId,
        at: Timestamp,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE token_families SET revoked_at = $3, revoked_reason = $4 \
                     WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Uuid(*id.as_uuid()),
                    Val::Ts(at),
                    Val::Text(reason),
                ],
            )
            .await?
            == 1)
    }

    /// Revokes every live family started from `key`; returns how many.
    pub async fn revoke_families_of_key(
        &mut self,
        tenant: TenantId,
        key: &ApiKeyId,
        at: Timestamp,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "UPDATE token_families SET revoked_at = $3, revoked_reason = $4 \
                 WHERE tenant_id = $1 AND api_key_id = $2 AND revoked_at IS NULL"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(key.as_str()),
                Val::Ts(at),
                Val::Text(reason),
            ],
        )
        .await
    }

    pub async fn insert_refresh(&mut self, r: &RefreshRecord) -> Result<(), StoreError> {
        self.guard_write(r.tenant_id)?;
        self.execute(
            &sql!(concat!(
                "INSERT INTO refresh_tokens (",
                refresh_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )),
            &[
                Val::Text(r.id.as_str()),
                Val::Uuid(*r.tenant_id.as_uuid()),
                Val::Uuid(*r.family_id.as_uuid()),
                Val::Bytes(&r.secret_hash),
                Val::Ts(r.created_at),
                Val::Ts(r.expires_at),
                Val::OptTs(r.used_at),
                Val::OptText(r.successor_id.as_ref().map(RefreshTokenId::as_str)),
                Val::OptBytes(r.successor_sealed.as_deref()),
            ],
        )
        .await
        .map(drop)
    }

    /// The refresh token with this public id, before its tenant is known. Only in a
    /// [`Lookup::RefreshToken`] scope for the same id.
    pub async fn lookup_refresh(
        &mut self,
        id: &RefreshTokenId,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        if !matches!(self.scope(), Scope::Lookup(Lookup::RefreshToken(l)) if l == id) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(concat!(
                    "SELECT ",
                    refresh_columns!(),
                    " FROM refresh_tokens WHERE id = $1"
                )),
                &[Val::Text(id.as_str())],
            )
            .await?;
        row.as_ref().map(refresh_from_row).transpose()
    }

    /// The refresh token, locked until the transaction ends, so that two concurrent refreshes of
    /// one token are decided one after the other.
    pub async fn get_refresh_for_update(
        &mut self,
        tenant: TenantId,
        id: &RefreshTokenId,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!(
                    pg: concat!(
                        "SELECT ",
                        refresh_columns!(),
                        " FROM refresh_tokens WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
                    ),
                    // The write transaction (BEGIN IMMEDIATE) already holds SQLite's only lock.
                    sqlite: concat!(
                        "SELECT ",
                        refresh_columns!(),
                        " FROM refresh_tokens WHERE tenant_id = $1 AND id = $2"
                    ),
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(id.as_str())],
            )
            .await?;
        row.as_ref().map(refresh_from_row).transpose()
    }

    /// Whether the refresh token has been used (`None`: no such token).
    pub async fn refresh_used(
        &mut self,
        tenant: TenantId,
        id: &RefreshTokenId,
    ) -> Result<Option<bool>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = self
            .fetch_optional(
                &sql!("SELECT used_at FROM refresh_tokens WHERE tenant_id = $1 AND id = $2"),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(id.as_str())],
            )
            .await?;
        row.map(|r| r.opt_ts("used_at").map(|u| u.is_some()))
            .transpose()
    }

    /// Marks a refresh token used and records its successor; `false` if it was already used (the
    /// compare-and-set that makes two concurrent refreshes unable to both rotate).
    pub async fn mark_refresh_used(
        &mut self,
        tenant: TenantId,
        id: &RefreshTokenId,
        at: Timestamp,
        successor: &RefreshTokenId,
        successor_sealed: &[u8],
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE refresh_tokens SET used_at = $3, successor_id = $4, successor_sealed = $5 \
                     WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(id.as_str()),
                    Val::Ts(at),
                    Val::Text(successor.as_str()),
                    Val::Bytes(successor_sealed),
                ],
            )
            .await?
            == 1)
    }

    /// Adds an access token id to the deny list until the token's own expiry.
    pub async fn revoke_token_id(
        &mut self,
        tenant: TenantId,
        jti: TokenId,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "INSERT INTO revoked_tokens (jti, tenant_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING"
            ),
            &[
                Val::Uuid(*jti.as_uuid()),
                Val::Uuid(*tenant.as_uuid()),
                Val::Ts(expires_at),
            ],
        )
        .await
        .map(drop)
    }

    /// Is the token's family live, is its id revoked, and was a principal of its lineage
    /// revoked after `epoch`, when it was minted? One round trip when the tenant has had no
    /// revocation since then (the usual case: tokens live minutes), two otherwise. A family that
    /// is not found (wrong tenant, unknown) counts as revoked. `lineage` holds at most
    /// [`MAX_LINEAGE`] principals; a longer one is refused as dead.
    pub async fn token_liveness(
        &mut self,
        tenant: TenantId,
        family: FamilyId,
        jti: TokenId,
        lineage: &[String],
        epoch: u64,
    ) -> Result<TokenLiveness, StoreError> {
        if !self.scope().allows(tenant) || lineage.len() > MAX_LINEAGE {
            return Ok(TokenLiveness::DEAD);
        }
        let row = self
            .fetch_optional(
                &sql!(
                    "SELECT CAST((SELECT CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END \
                                    FROM token_families WHERE tenant_id = $1 AND id = $2) \
                                AS BIGINT) AS family_live, \
                           CAST((SELECT COUNT(*) FROM revoked_tokens \
                                  WHERE tenant_id = $1 AND jti = $3) AS BIGINT) AS jti_revoked, \
                           CAST((SELECT revocation_epoch FROM tenants WHERE id = $1) AS BIGINT) \
                                AS tenant_epoch"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Uuid(*family.as_uuid()),
                    Val::Uuid(*jti.as_uuid()),
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(TokenLiveness::DEAD);
        };
        let family_live = match row.opt_int("family_live")? {
            Some(v) => v == 1,
            None => false,
        };
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        // An unknown tenant counts as revoked since forever.
        let revoked_since = row.opt_int("tenant_epoch")?.is_none_or(|t| t > epoch);
        let lineage_revoked = revoked_since && self.lineage_revoked(tenant, lineage, epoch).await?;
        Ok(TokenLiveness {
            family_live,
            jti_revoked: row.int("jti_revoked")? > 0,
            lineage_revoked,
        })
    }

    /// Whether a principal of `lineage` was revoked after `epoch`.
    async fn lineage_revoked(
        &mut self,
        tenant: TenantId,
        lineage: &[String],
        epoch: i64,
    ) -> Result<bool, StoreError> {
        // Unused slots repeat the first principal, so the statement is always the same one.
        let slot = |i: usize| {
            Val::Text(
                lineage
                    .get(i)
                    .or(lineage.first())
                    .map_or("", String::as_str),
            )
        };
        // Replanned each time: `principal_revocations` starts empty, and a plan cached while it
        // was (a sequential scan) would read every revocation once there are many — measured:
        // 7x fewer authenticated requests/s after 10,000 revocations, until autovacuum analyzed
        // the table.
        let row = self
            .fetch_optional_replanned(
                &sql!(
                    "SELECT COUNT(*) AS n FROM principal_revocations \
                     WHERE tenant_id = $1 AND epoch > $2 \
                       AND principal IN ($3, $4, $5, $6, $7, $8)"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Int(epoch),
                    slot(0),
                    slot(1),
                    slot(2),
                    slot(3),
                    slot(4),
                    slot(5),
                ],
            )
            .await?;
        Ok(row.map(|r| r.int("n")).transpose()?.unwrap_or(0) > 0)
    }

    /// Deletes deny-list entries of expired tokens and refresh tokens of expired families.
    pub async fn purge_expired(
        &mut self,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        let denied = self
            .execute(
                &sql!("DELETE FROM revoked_tokens WHERE tenant_id = $1 AND expires_at <= $2"),
                &[Val::Uuid(*tenant.as_uuid()), Val::Ts(now)],
            )
            .await?;
        let refresh = self
            .execute(
                &sql!(
                    "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND family_id IN \
                     (SELECT id FROM token_families WHERE tenant_id = $1 AND expires_at <= $2)"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Ts(now)],
            )
            .await?;
        Ok(denied + refresh)
    }
}
