use rampart_identity::{ApiKeyId, RefreshTokenId};
use rampart_types::TenantId;
use serde_json::json;

/// Acting inside one tenant, on behalf of a verified subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    pub tenant: TenantId,
    /// Who acts (`sub` of the verified token).
    pub subject: String,
    /// The platform operator (a `tenants:admin` credential of the system tenant): may see every
    /// tenant's row in `tenants`, and nothing more.
    pub platform: bool,
}

/// A credential looked up by its public id before its tenant is known. Only that one row is
/// visible, and it holds only a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    ApiKey(ApiKeyId),
    RefreshToken(RefreshTokenId),
}

/// What a transaction may see. It becomes the `request.jwt.claims` of a Postgres transaction and
/// the guard of a SQLite one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant(TenantScope),
    Lookup(Lookup),
    /// Global tables only (signing keys, metadata); no tenant row is visible.
    Global,
}

impl Scope {
    /// Acting inside `tenant` as `subject` (not the platform operator).
    #[must_use]
    pub fn tenant(tenant: TenantId, subject: &str) -> Self {
        Self::Tenant(TenantScope {
            tenant,
            subject: subject.to_owned(),
            platform: false,
        })
    }

    /// The platform operator in the system tenant: sees every tenant's row in `tenants`.
    #[must_use]
    pub fn platform(system_tenant: TenantId, subject: &str) -> Self {
        Self::Tenant(TenantScope {
            tenant: system_tenant,
            subject: subject.to_owned(),
            platform: true,
        })
    }

    /// The claims JSON for Postgres.
    pub(crate) fn claims_json(&self) -> String {
        let v = match self {
            Scope::Tenant(t) => json!({
                "tenant_id": t.tenant.to_string(),
                "sub": t.subject,
                "platform": t.platform,
            }),
            Scope::Lookup(Lookup::ApiKey(id)) => json!({ "lookup": { "api_key": id.as_str() } }),
            Scope::Lookup(Lookup::RefreshToken(id)) => {
                json!({ "lookup": { "refresh_token": id.as_str() } })
            }
            Scope::Global => json!({}),
        };
        v.to_string()
    }

    /// Whether a tenant-owned row of `tenant` is in scope.
    pub(crate) fn allows(&self, tenant: TenantId) -> bool {
        matches!(self, Scope::Tenant(t) if t.tenant == tenant)
    }

    pub(crate) fn is_platform(&self) -> bool {
        matches!(self, Scope::Tenant(t) if t.platform)
    }
}
