//! Leases: just-in-time credentials bound to (agent, mission), with a lifetime.
//!
//! Revocation is immediate for verification — the row is marked in the revoking transaction, so
//! `GET /v1/leases/{id}` says `revoked` from its commit on — and eventual for the external
//! credential: removing a Postgres role is attempted at once and, when it fails, retried by the
//! sweeper with backoff, listed (`cleanup_failing`), logged at error level and audited on every
//! failure until it succeeds. Nothing is forgotten: the lease row is written *before* the role
//! is created, so even a crash between the two leaves a row the sweeper finds at expiry.

use std::str::FromStr;
use std::time::Duration;

use rampart_crypto::SecretString;
use rampart_secrets::SecretPath;
use rampart_secrets::postgres::{self, EngineError};
use rampart_store::{Cleanup, LeaseKind, LeaseRecord, PostgresEngineRecord, Revocation, Scope, Tx};
use rampart_types::{AuditAction, AuditEvent, Outcome, TenantId, Timestamp};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// Leases revoked per transaction by a bulk revocation or the sweeper.
pub const REVOKE_BATCH: i64 = 500;
/// External removals attempted per tenant per sweep.
const CLEANUP_BATCH: i64 = 100;
/// Longest wait between two removal attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The actor of what the sweeper does.
pub const SWEEPER: &str = "system:lease-sweeper";

/// The admin connection URL of an engine: the newest version of its connection secret.
pub async fn engine_url(
    state: &AppState,
    tx: &mut Tx,
    engine: &PostgresEngineRecord,
) -> Result<SecretString, ApiError> {
    let path = SecretPath::from_str(&engine.connection_secret)
        .map_err(|e| ApiError::internal(format!("engine connection secret path: {e}")))?;
    let opened = state
        .secrets
        .get(tx, engine.tenant_id, &path, None)
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "the connection secret of engine `{}` cannot be read: {e}",
                    engine.name
                ),
            )
        })?;
    let url = std::str::from_utf8(opened.value.expose())
        .map_err(|_| ApiError::internal("an engine connection URL is not UTF-8"))?;
    Ok(SecretString::new(url.to_owned()))
}

pub fn engine_error(e: &EngineError) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("the dynamic engine failed: {e}"),
    )
}

/// The audit record of a revocation.
pub fn revoke_event(
    lease: &LeaseRecord,
    actor: &str,
    request_id: Option<rampart_types::RequestId>,
    at: Timestamp,
) -> AuditEvent {
    AuditEvent {
        tenant_id: lease.tenant_id,
        request_id,
        actor: actor.to_owned(),
        action: AuditAction::LeaseRevoke,
        resource: format!("lease:{}", lease.id),
        outcome: Outcome::Success,
        detail: json!({
            "agent": lease.agent_id,
            "mission": lease.mission,
            "source": lease.source(),
            "reason": lease.revoke_reason,
        }),
        at,
    }
}

fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 12)).unwrap_or(12);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// Removes the external credential of one revoked lease and records the attempt (with an
/// audit record either way). Returns whether it is gone.
pub async fn clean_up(state: &AppState, lease: &LeaseRecord) -> Result<bool, String> {
    if lease.cleanup != Cleanup::Pending {
        return Ok(true);
    }
    let tenant = lease.tenant_id;
    let scope = Scope::tenant(tenant, SWEEPER);
    // Read what the removal needs, then talk to the database with no transaction open here.
    let target = {
        let mut tx = state
            .store
            .begin_read(scope.clone())
            .await
            .map_err(|e| e.to_string())?;
        let target = match lease.kind {
            LeaseKind::Kv => None,
            LeaseKind::Postgres => match tx
                .postgres_engine(tenant, &lease.target)
                .await
                .map_err(|e| e.to_string())?
            {
                None => Some(Err(format!(
                    "engine `{}` is no longer configured",
                    lease.target
                ))),
                Some(engine) => Some(
                    engine_url(state, &mut tx, &engine)
                        .await
                        .map(|url| (url, engine.template_role))
                        .map_err(|e| e.detail),
                ),
            },
        };
        tx.rollback().await.map_err(|e| e.to_string())?;
        target
    };
    let result = match target {
        None => Ok(()),
        Some(Err(e)) => Err(e),
        Some(Ok((url, template))) => postgres::drop_role(&url, &template, lease.id)
            .await
            .map_err(|e| e.to_string()),
    };
    let now = state.clock.now();
    let attempts = lease.cleanup_attempts + 1;
    let mut tx = state.store.begin(scope).await.map_err(|e| e.to_string())?;
    let (outcome, detail) = match &result {
        Ok(()) => {
            tx.record_cleanup(tenant, lease.id, Ok(()))
                .await
                .map_err(|e| e.to_string())?;
            (Outcome::Success, json!({ "attempts": attempts }))
        }
        Err(error) => {
            let retry_at = now.saturating_add(backoff(attempts));
            tx.record_cleanup(tenant, lease.id, Err((error, retry_at)))
                .await
                .map_err(|e| e.to_string())?;
            // The alert: every failure is an error line and an audit record.
            tracing::error!(
                tenant = %tenant,
                lease = %lease.id,
                attempts,
                error = %error,
                retry_at = %retry_at,
                "removing a revoked lease's credential failed; it will be retried"
            );
            (
                Outcome::Failed,
                json!({ "attempts": attempts, "error": error, "retry_at": retry_at }),
            )
        }
    };
    let event = AuditEvent {
        tenant_id: tenant,
        request_id: None,
        actor: SWEEPER.into(),
        action: AuditAction::LeaseCleanup,
        resource: format!("lease:{}", lease.id),
        outcome,
        detail,
        at: now,
    };
    state
        .audit
        .record(&mut tx, &event)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(result.is_ok())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub expired: usize,
    pub cleaned: usize,
    pub failed: usize,
}

/// Revokes every expired lease of `tenant` and retries the credential removals that are due.
pub async fn sweep_tenant(state: &AppState, tenant: TenantId) -> Result<Swept, String> {
    let mut swept = Swept::default();
    loop {
        let now = state.clock.now();
        let mut tx = state
            .store
            .begin(Scope::tenant(tenant, SWEEPER))
            .await
            .map_err(|e| e.to_string())?;
        let expired = tx
            .expire_leases(
                tenant,
                Revocation {
                    at: now,
                    by: SWEEPER,
                    reason: "expired",
                },
                REVOKE_BATCH,
            )
            .await
            .map_err(|e| e.to_string())?;
        for lease in &expired {
            let event = revoke_event(lease, SWEEPER, None, now);
            state
                .audit
                .record(&mut tx, &event)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        swept.expired += expired.len();
        if (expired.len() as i64) < REVOKE_BATCH {
            break;
        }
    }
    let due = {
        let mut tx = state
            .store
            .begin_read(Scope::tenant(tenant, SWEEPER))
            .await
            .map_err(|e| e.to_string())?;
        tx.leases_due_for_cleanup(tenant, state.clock.now(), CLEANUP_BATCH)
            .await
            .map_err(|e| e.to_string())?
    };
    for lease in &due {
        if clean_up(state, lease).await? {
            swept.cleaned += 1;
        } else {
            swept.failed += 1;
        }
    }
    Ok(swept)
}

/// One sweep over every tenant.
pub async fn sweep(state: &AppState) -> Result<Swept, String> {
    let mut total = Swept::default();
    for t in crate::app::tenants(state, SWEEPER).await? {
        let s = sweep_tenant(state, t.id).await?;
        total.expired += s.expired;
        total.cleaned += s.cleaned;
        total.failed += s.failed;
    }
    Ok(total)
}

/// Whether a lease of `id` may be seen and acted on by a caller who speaks for `agent`
/// (`None`: not an agent, so any of the tenant's leases).
#[must_use]
pub fn visible_to(lease: &LeaseRecord, agent: Option<rampart_types::AgentId>) -> bool {
    agent.is_none_or(|a| a == lease.agent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(12), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
