//! The audit record every security decision produces.
//!
//! Records name who did what to which resource, and the outcome, but never carry a secret: no
//! key, token, password or secret value ever goes into `detail`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{RequestId, TenantId, Timestamp};

macro_rules! actions {
    ($($(#[$meta:meta])* $variant:ident = $name:literal;)+) => {
        /// What happened. The wire names are stable: auditors filter on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$meta])* $variant,)+
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)+];

            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)+ }
            }

            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(AuditAction::$variant),)+ _ => None }
            }
        }
    };
}

actions! {
    /// A tenant was created.
    TenantCreate = "tenant.create";
    /// An API key was created (including the operator key at first start).
    ApiKeyCreate = "apikey.create";
    /// An API key was presented at the token endpoint.
    ApiKeyUse = "apikey.use";
    /// An API key was rotated: a successor was issued and the old key's expiry shortened.
    ApiKeyRotate = "apikey.rotate";
    /// An API key was revoked, with every token family it started.
    ApiKeyRevoke = "apikey.revoke";
    /// An access token (and a refresh token of a new family) was issued.
    TokenIssue = "token.issue";
    /// A refresh token was exchanged for its successor.
    TokenRefresh = "token.refresh";
    /// A refresh token was presented again inside the grace window and got the same successor.
    TokenRefreshGrace = "token.refresh_grace";
    /// A used refresh token was presented again: the family was revoked.
    TokenReuseDetected = "token.reuse_detected";
    /// A token was revoked through the revocation endpoint.
    TokenRevoke = "token.revoke";
    /// The token signing key was rotated.
    SigningKeyRotate = "signing_key.rotate";
    /// A tenant's ledger keys were destroyed: its audit records' contents are erased.
    LedgerKeysDestroy = "ledger_keys.destroy";
    /// A secret value was read (or the read was refused).
    SecretRead = "secret.read";
    /// A new version of a secret was written.
    SecretWrite = "secret.write";
    /// Secret versions were soft-deleted.
    SecretDelete = "secret.delete";
    /// Soft-deleted secret versions were restored.
    SecretUndelete = "secret.undelete";
    /// Secret versions were destroyed for good.
    SecretDestroy = "secret.destroy";
    /// A tenant's key-encryption key was rotated (on demand, on schedule or break-glass).
    TenantKeyRotate = "tenant_key.rotate";
    /// Secret versions' data keys were re-wrapped from one key version to another.
    TenantKeyRewrap = "tenant_key.rewrap";
    /// A key-encryption key version was revoked: its material is destroyed.
    TenantKeyRevoke = "tenant_key.revoke";
    /// An agent profile was created, changed or disabled.
    AgentChange = "agent.change";
    /// A dynamic credential engine was configured or removed.
    EngineChange = "engine.change";
    /// An external secret backend was mounted, changed or removed.
    SecretBackendChange = "secret_backend.change";
    /// A lease was issued (or the request refused).
    LeaseIssue = "lease.issue";
    /// A lease was renewed.
    LeaseRenew = "lease.renew";
    /// A lease was revoked (by a caller, in bulk, or by the sweeper when it expired).
    LeaseRevoke = "lease.revoke";
    /// The external credential behind a revoked lease was removed, or removing it failed.
    LeaseCleanup = "lease.cleanup";
    /// A webhook endpoint was created, changed, had its secret rotated, or was deleted or
    /// disabled (by a caller, or by the delivery worker after failing for too long).
    WebhookEndpointChange = "webhook_endpoint.change";
    /// Dead webhook deliveries were put back in the queue.
    WebhookReplay = "webhook.replay";
    /// One delivery attempt of a webhook message, and its outcome.
    WebhookAttempt = "webhook.attempt";
    /// Text was redacted under the tenant's Sentinel policy: the classes and modes applied,
    /// never the values.
    SentinelRedact = "sentinel.redact";
    /// Values behind reversible Sentinel tokens were revealed (the tokens, never the values).
    SentinelReveal = "sentinel.reveal";
    /// A new version of the tenant's Sentinel policy was stored.
    SentinelPolicyChange = "sentinel_policy.change";
    /// The tenant's Sentinel key was destroyed: its reversible tokens cannot be revealed again.
    SentinelKeyDestroy = "sentinel_key.destroy";
    /// A mission was opened: its agent, budgets and the hash of its pinned instructions.
    MissionOpen = "mission.open";
    /// A mission ended (done) or was aborted; everything issued under it was revoked.
    MissionEnd = "mission.end";
    /// A mission's pinned instructions were revealed to a holder of `sentinel:reveal`.
    MissionReveal = "mission.reveal";
    /// A token was minted for a mission's agent (its scope and delegation chain).
    MissionToken = "mission.token";
    /// A principal (tenant, agent, mission, API key or user) was revoked with every token and
    /// lease descending from it, under one cascade id.
    PrincipalRevoke = "principal.revoke";
    /// A new version of the tenant's gateway configuration was stored.
    GatewayConfigChange = "gateway_config.change";
    /// One LLM call through the gateway: agent, mission, upstream, model, the classes redacted
    /// each way (never the values), token counts and the decision.
    LlmCall = "llm.call";
    /// A gateway call's sealed original request was revealed to a holder of `sentinel:reveal`.
    LlmReveal = "llm.reveal";
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown audit action"))
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// The action was refused (bad credential, missing capability, revoked, expired …).
    Denied,
    /// The action was attempted and did not succeed (an external system failed); it may be
    /// retried.
    Failed,
}

impl Outcome {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The tenant the action touched.
    pub tenant_id: TenantId,
    /// The request it happened in, when it came through the API.
    pub request_id: Option<RequestId>,
    /// Who acted: `apikey:<id>`, `operator`, `system`.
    pub actor: String,
    pub action: AuditAction,
    /// What was acted on, e.g. `apikey:<id>`, `tenant:<uuid>`, `token_family:<uuid>`.
    pub resource: String,
    pub outcome: Outcome,
    /// Extra facts (reason strings, capability lists, ids). Never a secret.
    pub detail: serde_json::Value,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.as_str()), "duplicate {a}");
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
    }
}
