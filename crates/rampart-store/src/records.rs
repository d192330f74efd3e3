//! What the store holds, as plain data. Credentials appear only as keyed hashes.

use rampart_identity::{ApiKeyId, RefreshTokenId};
use rampart_types::{
    AgentId, AuditEvent, CapabilitySet, CascadeId, FamilyId, LeaseId, MissionId, TenantId,
    Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    /// HMAC-SHA-256 of the key under the server's pepper.
    pub secret_hash: Vec<u8>,
    pub capabilities: CapabilitySet,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub rotated_from: Option<ApiKeyId>,
    pub rotated_to: Option<ApiKeyId>,
    /// The agent the key belongs to: tokens minted from it speak for the agent.
    pub agent_id: Option<AgentId>,
}

impl ApiKeyRecord {
    /// Neither revoked nor expired at `now`.
    #[must_use]
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Every token descending from one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    pub id: FamilyId,
    pub tenant_id: TenantId,
    pub subject: String,
    pub api_key_id: ApiKeyId,
    pub capabilities: CapabilitySet,
    pub created_at: Timestamp,
    /// The family's absolute end: no refresh extends it.
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub id: RefreshTokenId,
    pub tenant_id: TenantId,
    pub family_id: FamilyId,
    pub secret_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub successor_id: Option<RefreshTokenId>,
    /// The successor, sealed under a key only the holder of this token can derive.
    pub successor_sealed: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub public_key: Vec<u8>,
    /// The Ed25519 seed, sealed under a key derived from the root key (associated data: the kid).
    pub sealed_seed: Vec<u8>,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub verify_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Position in the store's audit table (increasing, with gaps across tenants).
    pub seq: i64,
    /// Where the record is in the tamper-evident ledger, when one is in use.
    pub ledger: Option<LedgerPosition>,
    pub event: AuditEvent,
}

/// Where an audit record is in the tamper-evident ledger: which log (its checkpoint origin; each
/// node writes its own) and the index in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPosition {
    pub log: String,
    pub index: u64,
}

/// What a tenant's redaction context is made of, in counters that change whenever it does: a
/// context loaded under one stamp is still the tenant's as long as the stamp reads the same.
/// Every row it counts is append-only or changes one way (destroyed, revoked), never back.
/// The default is the stamp of a tenant with none of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SentinelStamp {
    /// The newest stored policy version (0: none, the built-in default applies).
    pub policy_version: i64,
    /// The live Sentinel key generation.
    pub key_generation: Option<i64>,
    /// Revoked versions of the tenant's KEK (a revoked KEK can no longer open the key).
    pub revoked_keks: i64,
    /// Fingerprinted secret versions, and destroyed ones (whose fingerprints no longer count).
    pub fingerprinted: i64,
    pub destroyed_versions: i64,
    /// Some live secret version is not fingerprinted yet.
    pub unfingerprinted: bool,
}

impl SentinelStamp {
    /// Loading the context would write: the tenant has no live Sentinel key yet, or secret
    /// versions wait to be fingerprinted.
    #[must_use]
    pub fn needs_setup(&self) -> bool {
        self.key_generation.is_none() || self.unfingerprinted
    }
}

/// One generation of a per-tenant key kept sealed: `sealed_key` is `None` once destroyed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyGenerationRecord {
    pub tenant_id: TenantId,
    pub generation: i64,
    pub sealed_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub destroyed_at: Option<Timestamp>,
}

impl std::fmt::Debug for KeyGenerationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGenerationRecord")
            .field("tenant_id", &self.tenant_id)
            .field("generation", &self.generation)
            .field("destroyed_at", &self.destroyed_at)
            .finish_non_exhaustive()
    }
}

/// A generation of a tenant's ledger key, sealed under a key derived from the root key.
pub type LedgerKeyRecord = KeyGenerationRecord;

/// A generation of a tenant's Sentinel key, sealed under the tenant's key-encryption key.
pub type SentinelKeyRecord = KeyGenerationRecord;

/// Whether an access token's family and id are still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLiveness {
    /// The family exists in the token's tenant and is not revoked.
    pub family_live: bool,
    /// The token's own id was revoked.
    pub jti_revoked: bool,
    /// A principal of the token's lineage was revoked after the token was minted.
    pub lineage_revoked: bool,
}

impl TokenLiveness {
    #[must_use]
    pub fn is_live(self) -> bool {
        self.family_live && !self.jti_revoked && !self.lineage_revoked
    }

    pub(crate) const DEAD: Self = Self {
        family_live: false,
        jti_revoked: false,
        lineage_revoked: false,
    };
}

/// Where a mission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissionStatus {
    Active,
    /// Finished by its owner.
    Ended,
    /// Stopped: by a caller or by a directive it violated.
    Aborted,
}

impl MissionStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Aborted => "aborted",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Ended, Self::Aborted]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A mission: one unit of an agent's work.
#[derive(Clone, PartialEq, Eq)]
pub struct MissionRecord {
    pub tenant_id: TenantId,
    pub id: MissionId,
    pub agent_id: AgentId,
    pub goal: String,
    /// The pinned system instructions, sealed under the tenant KEK.
    pub instructions_sealed: Vec<u8>,
    pub instructions_sha256: [u8; 32],
    pub budgets: serde_json::Value,
    /// The mission's own gateway directives (a JSON list), checked after the tenant's.
    pub directives: serde_json::Value,
    pub status: MissionStatus,
    pub created_by: String,
    pub created_at: Timestamp,
    /// The mission's duration budget: no token outlives it.
    pub deadline: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// The revocation that ended it.
    pub cascade_id: Option<CascadeId>,
}

impl std::fmt::Debug for MissionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MissionRecord")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("agent_id", &self.agent_id)
            .field("status", &self.status)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// One revoked principal: everything of its lineage minted before `epoch` is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRevocationRecord {
    pub tenant_id: TenantId,
    pub epoch: u64,
    pub principal: String,
    pub cascade_id: CascadeId,
    pub reason: String,
    pub revoked_by: String,
    pub revoked_at: Timestamp,
}

/// Where a tenant key-encryption key version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantKeyState {
    /// New secret versions are sealed under it; one per tenant.
    Active,
    /// Still opens what it wraps; wraps nothing new.
    Retired,
    /// Its material is destroyed and nothing it wrapped is left under it.
    Revoked,
}

impl TenantKeyState {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

impl std::str::FromStr for TenantKeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "retired" => Ok(Self::Retired),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

/// One version of a tenant's key-encryption key, sealed under the root key. `sealed_key` is
/// `None` once revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeyRecord {
    pub tenant_id: TenantId,
    pub version: i64,
    pub sealed_key: Option<Vec<u8>>,
    pub state: TenantKeyState,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A secret's name and newest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub tenant_id: TenantId,
    pub path: String,
    pub current_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One version of a secret. `sealed` is `None` once destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub tenant_id: TenantId,
    pub path: String,
    pub version: i64,
    /// Its data key wrapped by a tenant key version, and its value sealed under the data key.
    pub sealed: Option<rampart_secrets::SealedValue>,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub destroyed_at: Option<Timestamp>,
}

/// How a write checks the secret's current version first (check-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// No check.
    Any,
    /// The secret must not exist yet.
    Absent,
    /// The secret's newest version must be this one.
    Current(i64),
}

/// An agent profile: a workload of one tenant and what it may touch (deny by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub tenant_id: TenantId,
    pub id: AgentId,
    pub name: String,
    /// Secret path patterns.
    pub secret_allowlist: Vec<String>,
    /// Dynamic engine name patterns.
    pub engine_allowlist: Vec<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A dynamic Postgres engine: where to create lease roles and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresEngineRecord {
    pub tenant_id: TenantId,
    pub name: String,
    /// The secret path whose newest version holds the admin connection URL.
    pub connection_secret: String,
    /// The role every lease role becomes a member of.
    pub template_role: String,
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An external secret backend mounted at `name` (the first segment of the paths it serves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBackendRecord {
    pub tenant_id: TenantId,
    pub name: String,
    /// `aws_secrets_manager` or `vault_kv2`.
    pub kind: String,
    /// Where it is and which local secret holds its credentials; never a credential itself.
    pub settings: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a lease hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// A stored secret's value; the target is its path.
    Kv,
    /// A Postgres login role; the target is the engine's name.
    Postgres,
}

/// Where the external credential behind a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing external to remove (a stored secret's value).
    None,
    /// The credential exists.
    Live,
    /// The lease is revoked; the credential still has to be removed (retried until it is).
    Pending,
    /// The credential is removed.
    Done,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident = $text:literal),+) => {
        impl $ty {
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " `{}`"), other)),
                }
            }
        }
    };
}

text_enum!(LeaseKind, "lease kind", Kv = "kv", Postgres = "postgres");
text_enum!(
    Cleanup,
    "cleanup state",
    None = "none",
    Live = "live",
    Pending = "pending",
    Done = "done"
);

/// One lease: a just-in-time credential for (agent, mission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub tenant_id: TenantId,
    pub id: LeaseId,
    pub agent_id: AgentId,
    pub mission: String,
    pub purpose: String,
    pub kind: LeaseKind,
    pub target: String,
    /// The secret version handed out (`kv` leases).
    pub secret_version: Option<i64>,
    pub issued_by: String,
    pub request_id: Option<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Renewals never move `expires_at` past this.
    pub max_expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    pub cleanup: Cleanup,
    pub cleanup_attempts: i64,
    pub cleanup_error: Option<String>,
    pub cleanup_next_at: Option<Timestamp>,
}

impl LeaseRecord {
    /// `kind/target`: what prefix revocation matches (`postgres/orders`, `kv/db/password`).
    #[must_use]
    pub fn source(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.target)
    }

    /// Whether the lease may still be used at `now`.
    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Which leases a listing or a bulk revocation takes: every field set must match.
#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    pub agent: Option<AgentId>,
    pub mission: Option<String>,
    /// Matches the start of `kind/target`.
    pub source_prefix: Option<String>,
    /// Only leases not yet revoked.
    pub live_only: bool,
    /// Only leases whose external credential could not be removed yet (at least one failure).
    pub cleanup_failing: bool,
}

/// An endpoint outgoing webhooks are delivered to.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    pub tenant_id: TenantId,
    pub id: uuid::Uuid,
    pub url: String,
    pub description: String,
    /// Event-type patterns it receives (`secret.write`, `secret.*`); empty: every event.
    pub event_types: Vec<String>,
    /// `v1` (HMAC-SHA256, `whsec_`) or `v1a` (Ed25519, `whsk_`).
    pub scheme: String,
    /// The signing key, sealed under the tenant's key-encryption key.
    pub secret: Vec<u8>,
    /// The key it replaced, still signing until `previous_until`.
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<Timestamp>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for WebhookEndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointRecord")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("scheme", &self.scheme)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Out of attempts (or its endpoint was disabled): on the dead-letter list until replayed.
    Dead,
}

impl DeliveryState {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            other => Err(format!("unknown delivery state `{other}`")),
        }
    }
}

/// One message to one endpoint, and how its attempts went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDeliveryRecord {
    pub tenant_id: TenantId,
    pub id: uuid::Uuid,
    pub endpoint_id: uuid::Uuid,
    /// The `webhook-id`: the same for every endpoint and every attempt of one message.
    pub message_id: String,
    pub event_type: String,
    /// The body, byte for byte.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a mission (or subject) has used through the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayUsage {
    pub calls: i64,
    pub tokens: i64,
    /// Millionths of a US dollar, from the prices in the gateway configuration.
    pub spend_usd_micros: i64,
    /// The current one-minute window, in Unix minutes, and the calls counted in it.
    pub window_start: i64,
    pub window_calls: i64,
    /// The calls, and the one-minute windows with at least one call, since agent profiles
    /// began (migration 0010): what a profile learns from and its usual rate.
    pub profile_calls: i64,
    pub active_minutes: i64,
}

/// What a profile entry names: a model, or a tool offered to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    Model,
    Tool,
}

impl ProfileKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Model => "model",
            ProfileKind::Tool => "tool",
        }
    }
}

/// A gateway call's original request, sealed under the tenant KEK.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayRequestRecord {
    pub tenant_id: TenantId,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub sealed_body: Vec<u8>,
    pub body_sha256: Vec<u8>,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for GatewayRequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRequestRecord")
            .field("tenant_id", &self.tenant_id)
            .field("request_id", &self.request_id)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// One version of a tenant's versioned document (a Sentinel policy, a gateway configuration);
/// the newest is in force.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentVersionRecord {
    pub tenant_id: TenantId,
    pub version: i64,
    /// The document as the API took it.
    pub document: serde_json::Value,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// A reversible token and the value it stands for, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTokenRecord {
    pub tenant_id: TenantId,
    pub token: String,
    /// The key generation the value is sealed under.
    pub generation: i64,
    pub class: String,
    pub sealed_value: Vec<u8>,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for SentinelTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTokenRecord")
            .field("tenant_id", &self.tenant_id)
            .field("token", &self.token)
            .field("generation", &self.generation)
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}
