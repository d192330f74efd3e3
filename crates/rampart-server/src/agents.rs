//! Agents as callers: a token whose subject is `agent:<id>` speaks for that agent, and every
//! secret or engine it touches must be on the agent's allowlist — deny by default, whatever
//! capabilities the token carries. Refusals are audited.

use rampart_secrets::Allowlist;
use rampart_store::AgentRecord;
use rampart_types::{AgentId, AuditAction, Outcome};
use serde_json::json;

use crate::credentials::audit;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{Authed, Need, Write};
use crate::state::AppState;

const SUBJECT_PREFIX: &str = "agent:";

/// The token subject of an agent.
#[must_use]
pub fn agent_subject(id: AgentId) -> String {
    format!("{SUBJECT_PREFIX}{id}")
}

/// The agent a token subject names, if it names one.
#[must_use]
pub fn agent_of_subject(subject: &str) -> Option<AgentId> {
    subject.strip_prefix(SUBJECT_PREFIX)?.parse().ok()
}

/// What an agent wants to touch.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Secret(&'a str),
    PostgresEngine(&'a str),
}

impl Resource<'_> {
    /// How audit records name it.
    #[must_use]
    pub fn audit_name(self) -> String {
        match self {
            Self::Secret(p) => format!("secret:{p}"),
            Self::PostgresEngine(n) => format!("engine:postgres/{n}"),
        }
    }
}

/// An agent's allowlists, parsed once: what a request checks every path it touches against.
pub struct Acl {
    disabled: bool,
    /// `None` when the stored patterns no longer parse (they were validated when stored);
    /// such a list allows nothing.
    secrets: Option<Allowlist>,
    engines: Option<Allowlist>,
}

impl Acl {
    #[must_use]
    pub fn of(agent: &AgentRecord) -> Self {
        Self {
            disabled: agent.disabled_at.is_some(),
            secrets: Allowlist::parse(&agent.secret_allowlist).ok(),
            engines: Allowlist::parse(&agent.engine_allowlist).ok(),
        }
    }

    /// Why the agent may not touch `resource`, or `None` if it may.
    #[must_use]
    pub fn refusal(&self, resource: Resource<'_>) -> Option<&'static str> {
        if self.disabled {
            return Some("the agent is disabled");
        }
        let (list, name) = match resource {
            Resource::Secret(p) => (&self.secrets, p),
            Resource::PostgresEngine(n) => (&self.engines, n),
        };
        match list {
            Some(list) if list.allows(name) => None,
            Some(_) => Some("not on the agent's allowlist"),
            None => Some("the agent's allowlist is unreadable"),
        }
    }
}

/// Why `agent` may not touch `resource`, or `None` if it may (one check; [`Acl`] for many).
#[must_use]
pub fn refusal(agent: &AgentRecord, resource: Resource<'_>) -> Option<&'static str> {
    Acl::of(agent).refusal(resource)
}

/// The check of an agent listing: `None` when the caller is no agent, else its [`Acl`] (one
/// that allows nothing when the agent no longer exists).
pub async fn listing_acl<A: crate::extract::Access, N: Need>(
    auth: &mut Authed<A, N>,
) -> Result<Option<Acl>, ApiError> {
    let Some(id) = auth.principal.agent else {
        return Ok(None);
    };
    let agent = auth.tx.agent(auth.principal.tenant, id).await?;
    Ok(Some(agent.as_ref().map_or(
        Acl {
            disabled: true,
            secrets: None,
            engines: None,
        },
        Acl::of,
    )))
}

/// Whether a listing may show the secret at `path`.
#[must_use]
pub fn listed(acl: Option<&Acl>, path: &str) -> bool {
    acl.is_none_or(|a| a.refusal(Resource::Secret(path)).is_none())
}

/// Lets the request through if its caller is no agent or its agent may touch `resource`;
/// otherwise audits the refusal as `action`, commits that record and refuses with
/// `not-allowed`.
pub async fn gate<N: Need>(
    state: &AppState,
    auth: Authed<Write, N>,
    action: AuditAction,
    resource: Resource<'_>,
) -> Result<Authed<Write, N>, ApiError> {
    let agent = auth.principal.agent;
    gate_as(state, auth, agent, action, resource).await
}

/// [`gate`] for a request made on behalf of `agent` (a lease asked for by an orchestrator).
pub async fn gate_as<N: Need>(
    state: &AppState,
    mut auth: Authed<Write, N>,
    agent: Option<AgentId>,
    action: AuditAction,
    resource: Resource<'_>,
) -> Result<Authed<Write, N>, ApiError> {
    let Some(id) = agent else {
        return Ok(auth);
    };
    let agent = auth.tx.agent(auth.principal.tenant, id).await?;
    match agent.map_or(Some("the agent does not exist"), |a| refusal(&a, resource)) {
        None => Ok(auth),
        Some(why) => Err(deny(state, auth, id, action, resource, why).await),
    }
}

/// Audits `agent`'s refusal of `resource` as `action`, commits that record and returns the
/// `not-allowed` problem (or the error that kept the refusal from being recorded).
pub async fn deny<N: Need>(
    state: &AppState,
    mut auth: Authed<Write, N>,
    agent: AgentId,
    action: AuditAction,
    resource: Resource<'_>,
    why: &'static str,
) -> ApiError {
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        action,
        resource.audit_name(),
        Outcome::Denied,
        json!({ "agent": agent, "reason": why }),
        state.clock.now(),
    );
    if let Err(e) = audit(state, &mut auth.tx, event).await {
        return e;
    }
    match auth.tx.commit().await {
        Ok(()) => ApiError::new(ErrorKind::NotAllowed, why),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use rampart_types::{TenantId, Timestamp};

    use super::*;

    fn agent(secrets: &[&str], engines: &[&str]) -> AgentRecord {
        AgentRecord {
            tenant_id: TenantId::random(),
            id: AgentId::random(),
            name: "a".into(),
            secret_allowlist: secrets.iter().map(|s| (*s).to_owned()).collect(),
            engine_allowlist: engines.iter().map(|s| (*s).to_owned()).collect(),
            created_by: "t".into(),
            created_at: Timestamp::from_unix_millis(0),
            updated_at: Timestamp::from_unix_millis(0),
            disabled_at: None,
        }
    }

    #[test]
    fn subjects_round_trip_and_other_subjects_name_no_agent() {
        let id = AgentId::random();
        assert_eq!(agent_of_subject(&agent_subject(id)), Some(id));
        assert_eq!(agent_of_subject("apikey:abcdefghijkl"), None);
        assert_eq!(agent_of_subject("agent:not-a-uuid"), None);
        assert_eq!(agent_of_subject("system"), None);
    }

    #[test]
    fn deny_by_default_allow_what_matches_and_keep_secrets_and_engines_apart() {
        let a = agent(&["db/orders/*"], &["orders"]);
        assert_eq!(refusal(&a, Resource::Secret("db/orders/password")), None);
        assert!(refusal(&a, Resource::Secret("db/billing/password")).is_some());
        assert_eq!(refusal(&a, Resource::PostgresEngine("orders")), None);
        assert!(refusal(&a, Resource::PostgresEngine("billing")).is_some());
        // A secret named like an engine is not the engine.
        assert!(refusal(&a, Resource::Secret("orders")).is_some());
        let none = agent(&[], &[]);
        assert!(refusal(&none, Resource::Secret("x")).is_some());
        let mut off = agent(&["**"], &["*"]);
        off.disabled_at = Some(Timestamp::from_unix_millis(1));
        assert_eq!(
            refusal(&off, Resource::Secret("x")),
            Some("the agent is disabled")
        );
    }
}
