//! Leases: issue, renew, revoke (one, or in bulk by filter), expire, and the retry queue of
//! external credentials still to be removed.

use rampart_types::{AgentId, LeaseId, TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::{parse_col, tenant_id};
use crate::{Cleanup, LeaseFilter, LeaseRecord, StoreError, Tx};

macro_rules! columns {
    () => {
        "tenant_id, id, agent_id, mission, purpose, kind, target, secret_version, issued_by, \
         request_id, issued_at, expires_at, max_expires_at, revoked_at, revoked_by, \
         revoke_reason, cleanup, cleanup_attempts, cleanup_error, cleanup_next_at"
    };
}

/// The filter's `WHERE` terms after `tenant_id = $1`, on parameters `$2` … `$6`.
macro_rules! filter_terms {
    () => {
        "($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR mission = $3) \
         AND ($4 IS NULL OR substr(kind || '/' || target, 1, length($4)) = $4) \
         AND ($5 = 0 OR revoked_at IS NULL) \
         AND ($6 = 0 OR (cleanup = 'pending' AND cleanup_attempts > 0))"
    };
}

/// The `SET` of every revocation, `$at`, `$by` and `$why` naming its parameters.
/// INVARIANT: revoking moves a `live` external credential to `pending` (due at once), so no
/// revocation path can forget a credential the sweeper must remove.
macro_rules! revoke_set {
    ($at:literal, $by:literal, $why:literal) => {
        concat!(
            "UPDATE leases SET revoked_at = ",
            $at,
            ", revoked_by = ",
            $by,
            ", revoke_reason = ",
            $why,
            ", cleanup = CASE WHEN cleanup = 'live' THEN 'pending' ELSE cleanup END",
            ", cleanup_next_at = CASE WHEN cleanup = 'live' THEN ",
            $at,
            " ELSE cleanup_next_at END "
        )
    };
}

fn from_row(row: &AnyRow) -> Result<LeaseRecord, StoreError> {
    Ok(LeaseRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        id: LeaseId::from_uuid(row.uuid("id")?),
        agent_id: AgentId::from_uuid(row.uuid("agent_id")?),
        mission: row.text("mission")?,
        purpose: row.text("purpose")?,
        kind: parse_col(row, "kind")?,
        target: row.text("target")?,
        secret_version: row.opt_int("secret_version")?,
        issued_by: row.text("issued_by")?,
        request_id: row.opt_text("request_id")?,
        issued_at: row.ts("issued_at")?,
        expires_at: row.ts("expires_at")?,
        max_expires_at: row.ts("max_expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        revoked_by: row.opt_text("revoked_by")?,
        revoke_reason: row.opt_text("revoke_reason")?,
        cleanup: parse_col(row, "cleanup")?,
        cleanup_attempts: row.int("cleanup_attempts")?,
        cleanup_error: row.opt_text("cleanup_error")?,
        cleanup_next_at: row.opt_ts("cleanup_next_at")?,
    })
}

fn filter_vals(tenant: TenantId, f: &LeaseFilter) -> [Val<'_>; 6] {
    [
        Val::Uuid(*tenant.as_uuid()),
        Val::OptUuid(f.agent.map(|a| *a.as_uuid())),
        Val::OptText(f.mission.as_deref()),
        Val::OptText(f.source_prefix.as_deref()),
        Val::Int(i64::from(f.live_only)),
        Val::Int(i64::from(f.cleanup_failing)),
    ]
}

/// How a revocation is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    pub at: Timestamp,
    pub by: &'a str,
    pub reason: &'a str,
}

impl Tx {
    pub async fn insert_lease(&mut self, l: &LeaseRecord) -> Result<(), StoreError> {
        self.guard_write(l.tenant_id)?;
        self.execute(
            &sql!(concat!(
                "INSERT INTO leases (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19, $20)"
            )),
            &[
                Val::Uuid(*l.tenant_id.as_uuid()),
                Val::Uuid(*l.id.as_uuid()),
                Val::Uuid(*l.agent_id.as_uuid()),
                Val::Text(&l.mission),
                Val::Text(&l.purpose),
                Val::Text(l.kind.as_str()),
                Val::Text(&l.target),
                Val::OptInt(l.secret_version),
                Val::Text(&l.issued_by),
                Val::OptText(l.request_id.as_deref()),
                Val::Ts(l.issued_at),
                Val::Ts(l.expires_at),
                Val::Ts(l.max_expires_at),
                Val::OptTs(l.revoked_at),
                Val::OptText(l.revoked_by.as_deref()),
                Val::OptText(l.revoke_reason.as_deref()),
                Val::Text(l.cleanup.as_str()),
                Val::Int(l.cleanup_attempts),
                Val::OptText(l.cleanup_error.as_deref()),
                Val::OptTs(l.cleanup_next_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn lease(
        &mut self,
        tenant: TenantId,
        id: LeaseId,
    ) -> Result<Option<LeaseRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                columns!(),
                " FROM leases WHERE tenant_id = $1 AND id = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(*id.as_uuid())],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Leases matching `filter`, newest first, at most `limit`.
    pub async fn leases(
        &mut self,
        tenant: TenantId,
        filter: &LeaseFilter,
        limit: i64,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        let mut vals = filter_vals(tenant, filter).to_vec();
        vals.push(Val::Int(limit));
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                columns!(),
                " FROM leases WHERE tenant_id = $1 AND ",
                filter_terms!(),
                " ORDER BY issued_at DESC, id LIMIT $7"
            )),
            &vals,
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Moves a live lease's expiry; `false` if it is revoked or gone.
    pub async fn renew_lease(
        &mut self,
        tenant: TenantId,
        id: LeaseId,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE leases SET expires_at = $3 \
                     WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Uuid(*id.as_uuid()),
                    Val::Ts(expires_at),
                ],
            )
            .await?
            == 1)
    }

    /// Revokes the live leases `filter` matches (at most `limit`), queueing the removal of their
    /// external credentials for `r.at`. Returns the revoked leases as they now are.
    pub async fn revoke_leases(
        &mut self,
        tenant: TenantId,
        filter: &LeaseFilter,
        r: Revocation<'_>,
        limit: i64,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        self.guard_write(tenant)?;
        let mut vals = filter_vals(tenant, filter).to_vec();
        vals.extend([
            Val::Ts(r.at),
            Val::Text(r.by),
            Val::Text(r.reason),
            Val::Int(limit),
        ]);
        // The subquery bounds one statement's work; the caller repeats until fewer come back.
        self.fetch_all(
            &sql!(concat!(
                revoke_set!("$7", "$8", "$9"),
                "WHERE tenant_id = $1 AND revoked_at IS NULL AND id IN (SELECT id FROM leases \
                 WHERE tenant_id = $1 AND revoked_at IS NULL AND ",
                filter_terms!(),
                " LIMIT $10) RETURNING ",
                columns!()
            )),
            &vals,
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Revokes one lease; `None` if it is gone or already revoked.
    pub async fn revoke_lease(
        &mut self,
        tenant: TenantId,
        id: LeaseId,
        r: Revocation<'_>,
    ) -> Result<Option<LeaseRecord>, StoreError> {
        self.guard_write(tenant)?;
        self.fetch_optional(
            &sql!(concat!(
                revoke_set!("$3", "$4", "$5"),
                "WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING ",
                columns!()
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Uuid(*id.as_uuid()),
                Val::Ts(r.at),
                Val::Text(r.by),
                Val::Text(r.reason),
            ],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Revokes up to `limit` leases whose expiry has passed at `r.at`.
    pub async fn expire_leases(
        &mut self,
        tenant: TenantId,
        r: Revocation<'_>,
        limit: i64,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        self.guard_write(tenant)?;
        self.fetch_all(
            &sql!(concat!(
                revoke_set!("$2", "$3", "$4"),
                "WHERE tenant_id = $1 AND revoked_at IS NULL AND id IN (SELECT id FROM leases \
                 WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at <= $2 LIMIT $5) \
                 RETURNING ",
                columns!()
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Ts(r.at),
                Val::Text(r.by),
                Val::Text(r.reason),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Revoked leases whose external credential is due for (another) removal attempt at `now`.
    pub async fn leases_due_for_cleanup(
        &mut self,
        tenant: TenantId,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                columns!(),
                " FROM leases WHERE tenant_id = $1 AND cleanup = 'pending' \
                 AND cleanup_next_at <= $2 ORDER BY cleanup_next_at LIMIT $3"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Ts(now), Val::Int(limit)],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Records a removal attempt: done, or failed with `error` and retried at `retry_at`.
    pub async fn record_cleanup(
        &mut self,
        tenant: TenantId,
        id: LeaseId,
        outcome: Result<(), (&str, Timestamp)>,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        let (state, error, next) = match outcome {
            Ok(()) => (Cleanup::Done, None, None),
            Err((error, retry_at)) => (Cleanup::Pending, Some(error), Some(retry_at)),
        };
        self.execute(
            &sql!(
                "UPDATE leases SET cleanup = $3, cleanup_error = $4, cleanup_next_at = $5, \
                 cleanup_attempts = cleanup_attempts + 1 \
                 WHERE tenant_id = $1 AND id = $2 AND cleanup = 'pending'"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Uuid(*id.as_uuid()),
                Val::Text(state.as_str()),
                Val::OptText(error),
                Val::OptTs(next),
            ],
        )
        .await
        .map(drop)
    }
}
