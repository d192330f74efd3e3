//! What the store holds, as plain data. Credentials appear only as keyed hashes.

use rampart_identity::{ApiKeyId, RefreshTokenId};
use rampart_types::{AuditEvent, CapabilitySet, FamilyId, TenantId, Timestamp};

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

/// One generation of a tenant's ledger key, sealed under a key derived from the root key.
/// `sealed_key` is `None` once destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerKeyRecord {
    pub tenant_id: TenantId,
    pub generation: i64,
    pub sealed_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub destroyed_at: Option<Timestamp>,
}

/// Whether an access token's family and id are still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLiveness {
    /// The family exists in the token's tenant and is not revoked.
    pub family_live: bool,
    /// The token's own id was revoked.
    pub jti_revoked: bool,
}

impl TokenLiveness {
    #[must_use]
    pub fn is_live(self) -> bool {
        self.family_live && !self.jti_revoked
    }
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
