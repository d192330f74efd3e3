//! External secret backends behind the secrets API. A tenant mounts a backend under a name; a
//! secret path whose first segment is that name (`aws/app/db`) is then served by the backend
//! (`app/db` there) instead of the local store, through the same routes, with the same ACL
//! checks and the same audit records (`detail.backend` names it).
//!
//! The clients are blocking (they run on a blocking thread) and never hold a database
//! transaction open while they wait on the network. A backend's credentials are not part of its
//! settings: they live sealed in a local secret (`credentials`), read for each call.

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "vault")]
mod vault;

use rampart_crypto::Secret;
use rampart_store::Cas;
use rampart_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::routes::secrets::VersionChange;

/// A mounted backend's settings, as stored and as the API takes them. Unknown fields are ignored:
/// the OpenAPI generator cannot mark the variants of a tagged enum closed, and the document and
/// the server must agree.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendSettings {
    /// AWS Secrets Manager. The credentials secret holds
    /// `{"access_key_id": …, "secret_access_key": …, "session_token": …?}`.
    AwsSecretsManager {
        #[schema(pattern = "^[a-z0-9-]{1,32}$")]
        region: String,
        /// Default: AWS's regional endpoint.
        #[schema(max_length = 256, pattern = r"^https?://[A-Za-z0-9.:-]+/?$")]
        endpoint: Option<String>,
        /// The local secret path holding the credentials.
        #[schema(
            max_length = 512,
            pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
        )]
        credentials: String,
    },
    /// A HashiCorp Vault KV v2 mount. The credentials secret holds the Vault token.
    VaultKv2 {
        /// `http(s)://host[:port]` of the Vault server.
        #[schema(max_length = 256, pattern = r"^https?://[A-Za-z0-9.:-]+/?$")]
        address: String,
        /// The KV v2 mount there, e.g. `secret`.
        #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
        mount: String,
        /// Vault's path prefix in front of the mount: `/v1` for Vault itself, `/vault/v1` for
        /// another Rampart. Default `/v1`.
        #[schema(max_length = 64, pattern = r"^(/[A-Za-z0-9_-]+)+$")]
        api_prefix: Option<String>,
        /// The local secret path holding the token.
        #[schema(
            max_length = 512,
            pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
        )]
        credentials: String,
    },
}

impl BackendSettings {
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AwsSecretsManager { .. } => "aws_secrets_manager",
            Self::VaultKv2 { .. } => "vault_kv2",
        }
    }

    #[must_use]
    pub fn credentials(&self) -> &str {
        match self {
            Self::AwsSecretsManager { credentials, .. } | Self::VaultKv2 { credentials, .. } => {
                credentials
            }
        }
    }

    /// Checks what the schema cannot say; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        let endpoint_ok = |e: &str| {
            let rest = e
                .split_once("://")
                .map_or("", |(_, r)| r.trim_end_matches('/'));
            !rest.is_empty() && !rest.contains('/')
        };
        match self {
            Self::AwsSecretsManager {
                region, endpoint, ..
            } => {
                let region_ok = (1..=32).contains(&region.len())
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !region_ok {
                    return Err("`region` is an AWS region name such as `eu-west-1`".into());
                }
                if endpoint.as_deref().is_some_and(|e| !endpoint_ok(e)) {
                    return Err("`endpoint` is http(s)://host[:port]".into());
                }
            }
            Self::VaultKv2 { address, .. } => {
                if !endpoint_ok(address) {
                    return Err("`address` is http(s)://host[:port]".into());
                }
            }
        }
        Ok(())
    }
}

/// A value read from a backend.
pub struct ExternalValue {
    pub value: Secret<String>,
    pub version: i64,
    pub created_at: Timestamp,
}

/// One version's state.
#[derive(Debug, Clone)]
pub struct ExternalVersion {
    pub version: i64,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub destroyed: bool,
}

#[derive(Debug, Clone)]
pub struct ExternalMetadata {
    pub current_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub versions: Vec<ExternalVersion>,
}

#[derive(Debug, Clone)]
pub struct ExternalSummary {
    /// The name in the backend (without the mount).
    pub name: String,
    pub current_version: i64,
    pub updated_at: Timestamp,
}

/// Why a backend call failed. Messages name the backend's error, never a value or credential.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotFound(String),
    /// A check-and-set or state conflict.
    #[error("{0}")]
    Conflict(String),
    /// The backend cannot do this.
    #[error("{0}")]
    Unsupported(String),
    /// The backend failed or could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// A mounted backend, connected with its credentials.
pub trait Backend: Send + Sync {
    fn read(&self, name: &str, version: Option<i64>) -> Result<ExternalValue, BackendError>;
    /// Writes a new version and returns its number.
    fn write(&self, name: &str, value: &Secret<String>, cas: Cas) -> Result<i64, BackendError>;
    /// Applies `change` to `versions` (`None`: the newest); returns how many changed.
    fn change(
        &self,
        name: &str,
        versions: Option<&[i64]>,
        change: VersionChange,
    ) -> Result<u64, BackendError>;
    fn metadata(&self, name: &str) -> Result<ExternalMetadata, BackendError>;
    /// Names starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<ExternalSummary>, BackendError>;
}

/// Connects to a backend with the credentials read from its credentials secret.
pub fn connect(
    settings: &BackendSettings,
    credentials: Secret<String>,
) -> Result<Box<dyn Backend>, BackendError> {
    match settings {
        #[cfg(feature = "aws")]
        BackendSettings::AwsSecretsManager {
            region, endpoint, ..
        } => Ok(Box::new(aws::SecretsManagerBackend::connect(
            region,
            endpoint.as_deref(),
            &credentials,
        )?)),
        #[cfg(feature = "vault")]
        BackendSettings::VaultKv2 {
            address,
            mount,
            api_prefix,
            ..
        } => Ok(Box::new(vault::VaultBackend::connect(
            address,
            mount,
            api_prefix.as_deref().unwrap_or("/v1"),
            credentials,
        )?)),
        #[allow(unreachable_patterns, reason = "reachable in builds without a feature")]
        other => {
            let _ = credentials;
            Err(BackendError::Unavailable(format!(
                "this build has no `{}` backend; build with `--features {}`",
                other.kind(),
                if other.kind() == "vault_kv2" {
                    "vault"
                } else {
                    "aws"
                }
            )))
        }
    }
}

impl From<BackendError> for crate::error::ApiError {
    fn from(e: BackendError) -> Self {
        use crate::error::{ApiError, ErrorKind};
        match e {
            BackendError::NotFound(m) => ApiError::new(ErrorKind::NotFound, m),
            BackendError::Conflict(m) => ApiError::conflict(m),
            BackendError::Unsupported(m) => ApiError::validation(m),
            BackendError::Unavailable(m) => ApiError::new(ErrorKind::Unavailable, m),
        }
    }
}

/// A secret path served by a mounted backend.
pub struct Mounted {
    /// The mount's name (the path's first segment).
    pub mount: String,
    /// The name in the backend (the rest of the path).
    pub name: String,
    pub settings: BackendSettings,
}

impl Mounted {
    /// `backend` of an audit record's detail.
    #[must_use]
    pub fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({ "mount": self.mount, "kind": self.settings.kind(), "name": self.name })
    }
}

/// The backend serving `path`, if its first segment names one of the tenant's mounts.
pub async fn mounted(
    tx: &mut rampart_store::Tx,
    tenant: rampart_types::TenantId,
    path: &str,
) -> Result<Option<Mounted>, crate::error::ApiError> {
    let Some((mount, name)) = path.split_once('/') else {
        return Ok(None);
    };
    let Some(record) = tx.secret_backend(tenant, mount).await? else {
        return Ok(None);
    };
    let settings: BackendSettings = serde_json::from_value(record.settings).map_err(|e| {
        crate::error::ApiError::internal(format!("backend `{mount}` settings: {e}"))
    })?;
    Ok(Some(Mounted {
        mount: mount.to_owned(),
        name: name.to_owned(),
        settings,
    }))
}

/// Reads the mount's credentials (sealed in a local secret) and ends `tx`, so no transaction
/// waits on the network; then runs `op` against the backend on a blocking thread.
pub async fn call<T: Send + 'static>(
    state: &crate::state::AppState,
    mut tx: rampart_store::Tx,
    tenant: rampart_types::TenantId,
    m: &Mounted,
    op: impl FnOnce(&dyn Backend) -> Result<T, BackendError> + Send + 'static,
) -> Result<T, crate::error::ApiError> {
    let cred_path: rampart_secrets::SecretPath = m
        .settings
        .credentials()
        .parse()
        .map_err(|e| crate::error::ApiError::internal(format!("credentials path: {e}")))?;
    let opened = state
        .secrets
        .get(&mut tx, tenant, &cred_path, None)
        .await
        .map_err(|e| {
            BackendError::Unavailable(format!(
                "backend `{}`: its credentials secret `{cred_path}` cannot be read: {e}",
                m.mount
            ))
        })?;
    tx.commit().await?;
    let creds = crate::disclosed::stored_text(&opened.value).ok_or_else(|| {
        BackendError::Unavailable(format!(
            "backend `{}`: its credentials secret is not UTF-8",
            m.mount
        ))
    })?;
    let settings = m.settings.clone();
    tokio::task::spawn_blocking(move || op(&*connect(&settings, creds)?))
        .await
        .map_err(crate::error::ApiError::internal)?
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_checked_against_the_documented_pattern() {
        let aws = |region: &str| BackendSettings::AwsSecretsManager {
            region: region.into(),
            endpoint: None,
            credentials: "ops/aws".into(),
        };
        assert!(aws("eu-west-1").check().is_ok());
        for bad in ["", "EU-WEST-1", "«\u{1e}N", "eu_west_1", &"a".repeat(33)] {
            assert!(aws(bad).check().is_err(), "{bad:?}");
        }
    }
}
