//! Missions and cascading revocation.
//!
//! A mission's pinned instructions are sealed under the tenant's KEK (bound to the mission id)
//! and their SHA-256 goes to the audit trail, so the trail can later prove which instructions
//! a call carried. Revoking a principal — the tenant, an agent, a mission, an API key or a user
//! — bumps the tenant's revocation epoch (every token of its lineage dies at once, see
//! [`rampart_identity::lineage`]) and, in the same transaction, revokes the credentials and
//! ends the missions descending from it, then revokes its leases. Every record of it carries
//! one cascade id.

use rampart_identity::ApiKeyId;
use rampart_identity::lineage::{TENANT_PRINCIPAL, mission_principal};
use rampart_secrets::small_key_version;
use rampart_store::{LeaseFilter, MissionRecord, MissionStatus, Tx};
use rampart_types::{AgentId, AuditAction, CascadeId, MissionId, Outcome, TenantId, Timestamp};
use serde_json::json;
use zeroize::Zeroizing;

use crate::agents::agent_subject;
use crate::credentials::audit;
use crate::error::ApiError;
use crate::extract::{Authed, Need, Write};
use crate::state::AppState;

/// A principal that can be revoked, with everything issued under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocable {
    Tenant,
    Agent(AgentId),
    Mission(MissionId),
    ApiKey(ApiKeyId),
    /// A user an agent acted for (the `act` claim), by name.
    User(String),
}

/// Longest user name in a principal.
const MAX_USER: usize = 128;

impl Revocable {
    /// Parses `tenant`, `agent:<id>`, `mission:<id>`, `apikey:<id>` or `user:<name>`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::validation(format!(
                "`principal` `{}` is not `tenant`, `agent:<id>`, `mission:<id>`, `apikey:<id>` \
                 or `user:<name>`",
                rampart_types::truncate_for_display(s)
            ))
        };
        if s == TENANT_PRINCIPAL {
            return Ok(Self::Tenant);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "agent" => rest.parse().map(Self::Agent).map_err(|_| bad()),
            "mission" => rest.parse().map(Self::Mission).map_err(|_| bad()),
            "apikey" => rest.parse().map(Self::ApiKey).map_err(|_| bad()),
            "user"
                if (1..=MAX_USER).contains(&rest.len())
                    && rest.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Ok(Self::User(rest.to_owned()))
            }
            _ => Err(bad()),
        }
    }

    /// The name tokens carry in their lineage.
    #[must_use]
    pub fn principal(&self) -> String {
        match self {
            Self::Tenant => TENANT_PRINCIPAL.to_owned(),
            Self::Agent(id) => agent_subject(*id),
            Self::Mission(id) => mission_principal(*id),
            Self::ApiKey(id) => id.subject(),
            Self::User(name) => format!("user:{name}"),
        }
    }
}

/// What one cascading revocation did.
#[derive(Debug, Clone)]
pub struct Cascade {
    pub id: CascadeId,
    pub epoch: u64,
    pub principal: String,
    pub api_keys_revoked: Vec<ApiKeyId>,
    pub missions_ended: Vec<MissionId>,
    pub leases_revoked: usize,
}

/// Revokes `target` in the tenant the request acts in and everything descending from it; the
/// missions it ends get `status` (a mission's own revocation ends it with `status` too).
/// Commits the request's transaction.
pub async fn cascade<N: Need>(
    state: &AppState,
    mut auth: Authed<Write, N>,
    tenant: TenantId,
    target: &Revocable,
    status: MissionStatus,
    reason: &str,
) -> Result<Cascade, ApiError> {
    let now = state.clock.now();
    let id = CascadeId::random();
    let principal = target.principal();
    let by = auth.principal.subject.clone();
    let epoch = auth
        .tx
        .revoke_principal(tenant, &principal, id, reason, &by, now)
        .await?;
    let api_keys_revoked = revoke_api_keys(&mut auth.tx, tenant, target, now, id).await?;
    let missions = match target {
        Revocable::Tenant => {
            auth.tx
                .missions(tenant, None, Some(MissionStatus::Active), i64::MAX)
                .await?
        }
        Revocable::Agent(agent) => {
            auth.tx
                .missions(tenant, Some(*agent), Some(MissionStatus::Active), i64::MAX)
                .await?
        }
        Revocable::Mission(m) => auth.tx.mission(tenant, *m).await?.into_iter().collect(),
        Revocable::ApiKey(_) | Revocable::User(_) => Vec::new(),
    };
    let mut missions_ended = Vec::new();
    for mut m in missions {
        m.status = status;
        m.ended_at = Some(now);
        m.ended_by = Some(by.clone());
        m.end_reason = Some(reason.to_owned());
        m.cascade_id = Some(id);
        if auth.tx.end_mission(&m).await? {
            let event = auth.ctx.event(
                tenant,
                &by,
                AuditAction::MissionEnd,
                mission_principal(m.id),
                Outcome::Success,
                json!({ "status": status.as_str(), "reason": reason, "cascade_id": id }),
                now,
            );
            audit(state, &mut auth.tx, event).await?;
            missions_ended.push(m.id);
        }
    }
    let event = auth.ctx.event(
        tenant,
        &by,
        AuditAction::PrincipalRevoke,
        principal.clone(),
        Outcome::Success,
        json!({
            "cascade_id": id,
            "epoch": epoch,
            "reason": reason,
            "api_keys_revoked": api_keys_revoked,
            "missions_ended": missions_ended,
        }),
        now,
    );
    audit(state, &mut auth.tx, event).await?;
    let filter = match target {
        Revocable::Tenant => Some(LeaseFilter::default()),
        Revocable::Agent(agent) => Some(LeaseFilter {
            agent: Some(*agent),
            ..LeaseFilter::default()
        }),
        Revocable::Mission(m) => Some(LeaseFilter {
            mission: Some(m.to_string()),
            ..LeaseFilter::default()
        }),
        Revocable::ApiKey(_) | Revocable::User(_) => None,
    };
    let why = format!("cascade {id}: {reason}");
    let leases_revoked = match filter {
        // Commits this transaction with the first batch of leases.
        Some(filter) => {
            crate::routes::leases::revoke_matching(state, auth, tenant, &filter, &why).await?
        }
        None => {
            auth.tx.commit().await?;
            0
        }
    };
    Ok(Cascade {
        id,
        epoch,
        principal,
        api_keys_revoked,
        missions_ended,
        leases_revoked,
    })
}

/// Revokes the API keys `target` covers (and their refresh families).
async fn revoke_api_keys(
    tx: &mut Tx,
    tenant: TenantId,
    target: &Revocable,
    now: Timestamp,
    cascade: CascadeId,
) -> Result<Vec<ApiKeyId>, ApiError> {
    let covered = |k: &rampart_store::ApiKeyRecord| match target {
        Revocable::Tenant => true,
        Revocable::Agent(agent) => k.agent_id == Some(*agent),
        Revocable::ApiKey(id) => k.id == *id,
        Revocable::Mission(_) | Revocable::User(_) => false,
    };
    let keys: Vec<ApiKeyId> = tx
        .list_api_keys(tenant)
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none() && covered(k))
        .map(|k| k.id)
        .collect();
    let reason = format!("cascade {cascade}");
    for key in &keys {
        tx.revoke_api_key(tenant, key, now).await?;
        tx.revoke_families_of_key(tenant, key, now, &reason).await?;
    }
    Ok(keys)
}

fn instructions_context(mission: MissionId) -> String {
    format!("mission-instructions/{mission}")
}

/// Seals a mission's pinned instructions under the tenant's active KEK, bound to the mission.
pub async fn seal_instructions(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    mission: MissionId,
    instructions: &str,
    now: Timestamp,
) -> Result<Vec<u8>, ApiError> {
    let kek = state.secrets.active_kek(tx, tenant, now).await?;
    kek.seal_small(&instructions_context(mission), instructions.as_bytes())
        .map_err(ApiError::internal)
}

/// Opens a mission's pinned instructions and checks them against their recorded hash.
pub async fn open_instructions(
    state: &AppState,
    tx: &mut Tx,
    m: &MissionRecord,
) -> Result<Zeroizing<String>, ApiError> {
    let version = small_key_version(&m.instructions_sealed)
        .ok_or_else(|| ApiError::internal("sealed mission instructions are truncated"))?;
    let kek = state
        .secrets
        .kek(tx, m.tenant_id, i64::from(version))
        .await?;
    let plain = kek
        .open_small(&instructions_context(m.id), &m.instructions_sealed)
        .map_err(ApiError::internal)?;
    if !rampart_crypto::ct_eq(
        &rampart_crypto::sha256(plain.expose()),
        &m.instructions_sha256,
    ) {
        return Err(ApiError::internal(
            "mission instructions do not match their recorded hash",
        ));
    }
    String::from_utf8(plain.expose().clone())
        .map(Zeroizing::new)
        .map_err(ApiError::internal)
}

/// Re-seals the instructions of every mission sealed under KEK version `from` under the active
/// version (part of re-wrapping a KEK before it is revoked); returns how many.
pub async fn reseal_instructions(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    from: i64,
    now: Timestamp,
) -> Result<usize, ApiError> {
    let sealed_under_from = tx
        .mission_instructions(tenant)
        .await?
        .into_iter()
        .filter(|(_, sealed)| small_key_version(sealed).map(i64::from) == Some(from))
        .collect::<Vec<_>>();
    if sealed_under_from.is_empty() {
        return Ok(0);
    }
    let old = state.secrets.kek(tx, tenant, from).await?;
    let to = state.secrets.active_kek(tx, tenant, now).await?;
    for (id, sealed) in &sealed_under_from {
        let context = instructions_context(*id);
        let plain = old
            .open_small(&context, sealed)
            .map_err(ApiError::internal)?;
        let resealed = to
            .seal_small(&context, plain.expose())
            .map_err(ApiError::internal)?;
        tx.reseal_mission_instructions(tenant, *id, &resealed)
            .await?;
    }
    Ok(sealed_under_from.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn principals_parse_back_to_themselves() {
        for p in [
            Revocable::Tenant,
            Revocable::Agent(AgentId::random()),
            Revocable::Mission(MissionId::random()),
            Revocable::ApiKey("abcdefghij12".parse().unwrap()),
            Revocable::User("alice@example.com".into()),
        ] {
            assert_eq!(Revocable::parse(&p.principal()).unwrap(), p);
        }
        for bad in [
            "", "tenant:", "agent:", "agent:x", "user:", "user:a b", "root", "apikey:",
        ] {
            assert!(Revocable::parse(bad).is_err(), "{bad}");
        }
        assert!(Revocable::parse(&format!("user:{}", "a".repeat(MAX_USER + 1))).is_err());
    }
}
