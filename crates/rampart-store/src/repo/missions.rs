//! Missions and the revocation epochs of principals.

use rampart_types::{AgentId, CascadeId, MissionId, TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{MissionRecord, MissionStatus, PrincipalRevocationRecord, StoreError, Tx};

macro_rules! mission_columns {
    () => {
        "tenant_id, id, agent_id, goal, instructions_sealed, instructions_sha256, budgets, \
         directives, status, created_by, created_at, deadline, ended_at, ended_by, end_reason, \
         cascade_id"
    };
}

fn corrupt(column: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        column: column.to_owned(),
        reason: reason.to_owned(),
    }
}

fn mission_from_row(row: &AnyRow) -> Result<MissionRecord, StoreError> {
    let status = row.text("status")?;
    Ok(MissionRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        id: MissionId::from_uuid(row.uuid("id")?),
        agent_id: AgentId::from_uuid(row.uuid("agent_id")?),
        goal: row.text("goal")?,
        instructions_sealed: row.bytes("instructions_sealed")?,
        instructions_sha256: row
            .bytes("instructions_sha256")?
            .try_into()
            .map_err(|_| corrupt("instructions_sha256", "not 32 bytes"))?,
        budgets: row.json("budgets")?,
        directives: row.json("directives")?,
        status: MissionStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_by: row.text("created_by")?,
        created_at: row.ts("created_at")?,
        deadline: row.ts("deadline")?,
        ended_at: row.opt_ts("ended_at")?,
        ended_by: row.opt_text("ended_by")?,
        end_reason: row.opt_text("end_reason")?,
        cascade_id: row.opt_uuid("cascade_id")?.map(CascadeId::from_uuid),
    })
}

fn revocation_from_row(row: &AnyRow) -> Result<PrincipalRevocationRecord, StoreError> {
    Ok(PrincipalRevocationRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        epoch: u64::try_from(row.int("epoch")?).map_err(|_| corrupt("epoch", "negative"))?,
        principal: row.text("principal")?,
        cascade_id: CascadeId::from_uuid(row.uuid("cascade_id")?),
        reason: row.text("reason")?,
        revoked_by: row.text("revoked_by")?,
        revoked_at: row.ts("revoked_at")?,
    })
}

fn epoch_of(row: Option<&AnyRow>) -> Result<u64, StoreError> {
    let epoch = row
        .ok_or_else(|| corrupt("epoch", "no row"))?
        .int("epoch")?;
    u64::try_from(epoch).map_err(|_| corrupt("epoch", "negative"))
}

impl Tx {
    /// Adds a mission.
    pub async fn insert_mission(&mut self, m: &MissionRecord) -> Result<(), StoreError> {
        self.guard_write(m.tenant_id)?;
        self.execute(
            &sql!(concat!(
                "INSERT INTO missions (",
                mission_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            )),
            &[
                Val::Uuid(*m.tenant_id.as_uuid()),
                Val::Uuid(*m.id.as_uuid()),
                Val::Uuid(*m.agent_id.as_uuid()),
                Val::Text(&m.goal),
                Val::Bytes(&m.instructions_sealed),
                Val::Bytes(&m.instructions_sha256),
                Val::Json(&m.budgets),
                Val::Json(&m.directives),
                Val::Text(m.status.as_str()),
                Val::Text(&m.created_by),
                Val::Ts(m.created_at),
                Val::Ts(m.deadline),
                Val::OptTs(m.ended_at),
                Val::OptText(m.ended_by.as_deref()),
                Val::OptText(m.end_reason.as_deref()),
                Val::OptUuid(m.cascade_id.map(|c| *c.as_uuid())),
            ],
        )
        .await
        .map(drop)
    }

    /// One mission of the tenant.
    pub async fn mission(
        &mut self,
        tenant: TenantId,
        id: MissionId,
    ) -> Result<Option<MissionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                mission_columns!(),
                " FROM missions WHERE tenant_id = $1 AND id = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(*id.as_uuid())],
        )
        .await?
        .as_ref()
        .map(mission_from_row)
        .transpose()
    }

    /// The tenant's missions, newest first, optionally of one agent or one status; at most
    /// `limit`.
    pub async fn missions(
        &mut self,
        tenant: TenantId,
        agent: Option<AgentId>,
        status: Option<MissionStatus>,
        limit: i64,
    ) -> Result<Vec<MissionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                mission_columns!(),
                " FROM missions WHERE tenant_id = $1 \
                  AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR status = $3) \
                  ORDER BY created_at DESC, id LIMIT $4"
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::OptUuid(agent.map(|a| *a.as_uuid())),
                Val::OptText(status.map(MissionStatus::as_str)),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(mission_from_row)
        .collect()
    }

    /// Ends an active mission: `false` when it is not active any more (a concurrent end).
    pub async fn end_mission(&mut self, m: &MissionRecord) -> Result<bool, StoreError> {
        self.guard_write(m.tenant_id)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE missions SET status = $3, ended_at = $4, ended_by = $5, \
                     end_reason = $6, cascade_id = $7 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'active'"
                ),
                &[
                    Val::Uuid(*m.tenant_id.as_uuid()),
                    Val::Uuid(*m.id.as_uuid()),
                    Val::Text(m.status.as_str()),
                    Val::OptTs(m.ended_at),
                    Val::OptText(m.ended_by.as_deref()),
                    Val::OptText(m.end_reason.as_deref()),
                    Val::OptUuid(m.cascade_id.map(|c| *c.as_uuid())),
                ],
            )
            .await?
            == 1)
    }

    /// Every mission's id and sealed instructions (for re-sealing under a new KEK version).
    pub async fn mission_instructions(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<(MissionId, Vec<u8>)>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!("SELECT id, instructions_sealed FROM missions WHERE tenant_id = $1"),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                MissionId::from_uuid(row.uuid("id")?),
                row.bytes("instructions_sealed")?,
            ))
        })
        .collect()
    }

    /// Replaces a mission's sealed instructions (the same plaintext under another KEK version).
    pub async fn reseal_mission_instructions(
        &mut self,
        tenant: TenantId,
        id: MissionId,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE missions SET instructions_sealed = $3 \
                     WHERE tenant_id = $1 AND id = $2"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Uuid(*id.as_uuid()),
                    Val::Bytes(sealed),
                ],
            )
            .await?
            == 1)
    }

    /// The tenant's revocation epoch: how many revocations it has had.
    pub async fn revocation_epoch(&mut self, tenant: TenantId) -> Result<u64, StoreError> {
        if !self.scope().allows(tenant) {
            return Err(StoreError::ScopeViolation);
        }
        let row = self
            .fetch_optional(
                &sql!("SELECT revocation_epoch AS epoch FROM tenants WHERE id = $1"),
                &[Val::Uuid(*tenant.as_uuid())],
            )
            .await?;
        epoch_of(row.as_ref())
    }

    /// Revokes `principal` at the tenant's next epoch, which it returns. The epoch is taken
    /// under the tenant row's lock: concurrent revocations of one tenant wait for each other.
    pub async fn revoke_principal(
        &mut self,
        tenant: TenantId,
        principal: &str,
        cascade: CascadeId,
        reason: &str,
        revoked_by: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        let row = self
            .fetch_optional(
                &sql!(
                    "UPDATE tenants SET revocation_epoch = revocation_epoch + 1 WHERE id = $1 \
                     RETURNING revocation_epoch AS epoch"
                ),
                &[Val::Uuid(*tenant.as_uuid())],
            )
            .await?;
        let epoch = epoch_of(row.as_ref())?;
        self.execute(
            &sql!(
                "INSERT INTO principal_revocations (tenant_id, epoch, principal, cascade_id, \
                 reason, revoked_by, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Int(i64::try_from(epoch).map_err(|_| corrupt("epoch", "too large"))?),
                Val::Text(principal),
                Val::Uuid(*cascade.as_uuid()),
                Val::Text(reason),
                Val::Text(revoked_by),
                Val::Ts(now),
            ],
        )
        .await?;
        Ok(epoch)
    }

    /// The revocations of `principal`, oldest first.
    pub async fn principal_revocations(
        &mut self,
        tenant: TenantId,
        principal: &str,
    ) -> Result<Vec<PrincipalRevocationRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT tenant_id, epoch, principal, cascade_id, reason, revoked_by, revoked_at \
                 FROM principal_revocations WHERE tenant_id = $1 AND principal = $2 \
                 ORDER BY epoch"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(principal)],
        )
        .await?
        .iter()
        .map(revocation_from_row)
        .collect()
    }
}
