//! Delegation and cascading revocation, sans I/O.
//!
//! A token descends from principals: its tenant, its subject, the mission it was minted for and
//! every actor in its delegation chain (RFC 8693 §4.1 `act`). Revoking any of them revokes the
//! token. Rather than walking a tree of issued tokens, each tenant keeps a revocation *epoch*: a
//! counter bumped by every revocation, stored beside the revoked principal. A token records the
//! epoch it was minted at; it is dead when any principal of its [`Lineage`] was revoked at a
//! later epoch. One indexed lookup decides it, however many tokens were issued.

use rampart_types::MissionId;
use serde::{Deserialize, Serialize};

/// The longest delegation chain a token may carry: an agent, acting for a service, acting for
/// a user, acting for a service is already more than any real deployment needs.
pub const MAX_ACT_DEPTH: usize = 3;

/// The most principals a [`Lineage`] holds: tenant, subject, mission and the actors.
pub const MAX_LINEAGE: usize = 3 + MAX_ACT_DEPTH;

/// The principal that stands for the whole tenant in a lineage.
pub const TENANT_PRINCIPAL: &str = "tenant";

/// An actor of RFC 8693 §4.1: who the token's subject acts for, and who that one acted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The chain a delegate of `delegator` carries: the delegator first, then whoever it acted
    /// for. `None` when that chain would be longer than [`MAX_ACT_DEPTH`].
    #[must_use]
    pub fn delegated_by(delegator: &str, delegator_act: Option<&Actor>) -> Option<Self> {
        let actor = Self {
            sub: delegator.to_owned(),
            act: delegator_act.map(|a| Box::new(a.clone())),
        };
        (actor.depth() <= MAX_ACT_DEPTH).then_some(actor)
    }

    /// How many actors the chain holds.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.chain().count()
    }

    /// The actors, nearest first.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |a| a.act.as_deref())
    }
}

/// Every principal whose revocation revokes a token: at most [`MAX_LINEAGE`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    principals: Vec<String>,
}

impl Lineage {
    /// The lineage of a token of `subject`, minted for `mission` and delegated along `act`.
    #[must_use]
    pub fn of(subject: &str, mission: Option<MissionId>, act: Option<&Actor>) -> Self {
        let mut principals = vec![TENANT_PRINCIPAL.to_owned(), subject.to_owned()];
        principals.extend(mission.map(mission_principal));
        principals.extend(
            act.into_iter()
                .flat_map(Actor::chain)
                .map(|a| a.sub.clone()),
        );
        principals.dedup();
        Self { principals }
    }

    #[must_use]
    pub fn principals(&self) -> &[String] {
        &self.principals
    }
}

/// The principal name of a mission.
#[must_use]
pub fn mission_principal(id: MissionId) -> String {
    format!("mission:{id}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_delegation_chain_is_nearest_first_and_bounded() {
        let user = Actor::delegated_by("user:alice", None).unwrap();
        let service = Actor::delegated_by("apikey:orchestrator", Some(&user)).unwrap();
        let names: Vec<&str> = service.chain().map(|a| a.sub.as_str()).collect();
        assert_eq!(names, ["apikey:orchestrator", "user:alice"]);
        let third = Actor::delegated_by("agent:planner", Some(&service)).unwrap();
        assert_eq!(third.depth(), MAX_ACT_DEPTH);
        assert!(Actor::delegated_by("agent:worker", Some(&third)).is_none());
    }

    #[test]
    fn the_act_claim_has_rfc8693_shape() {
        let user = Actor::delegated_by("user:alice", None).unwrap();
        let service = Actor::delegated_by("apikey:svc", Some(&user)).unwrap();
        assert_eq!(
            serde_json::to_value(&service).unwrap(),
            serde_json::json!({"sub": "apikey:svc", "act": {"sub": "user:alice"}})
        );
    }

    #[test]
    fn a_lineage_names_tenant_subject_mission_and_every_actor() {
        let mission = MissionId::random();
        let user = Actor::delegated_by("user:alice", None).unwrap();
        let service = Actor::delegated_by("apikey:svc", Some(&user)).unwrap();
        let lineage = Lineage::of("agent:a", Some(mission), Some(&service));
        assert_eq!(
            lineage.principals(),
            [
                "tenant".to_owned(),
                "agent:a".to_owned(),
                format!("mission:{mission}"),
                "apikey:svc".to_owned(),
                "user:alice".to_owned(),
            ]
        );
        assert_eq!(Lineage::of("apikey:k", None, None).principals().len(), 2);
    }
}
