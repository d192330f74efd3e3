//! The secrets service: each tenant's key-encryption keys (versions, rotation, break-glass
//! re-wrap, revocation) and its versioned key/value secrets, on top of `rampart-secrets`'
//! envelope and `rampart-store`'s rows. Every method works inside the caller's transaction; the
//! caller audits and commits. KEKs are unwrapped per use, never cached, so a revocation takes
//! effect on every node at its commit. The one value kept opened between requests is the newest
//! version of a secret read through [`SecretsService::current`], which checks on every call, in
//! the caller's transaction, that the version is still the newest, not deleted or destroyed, and
//! that its KEK is not revoked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_crypto::Secret;
use rampart_secrets::{EnvelopeError, Kek, KekWrapper, SecretPath};
use rampart_store::{SecretVersionRecord, StoreError, TenantKeyRecord, TenantKeyState, Tx};
use rampart_types::{TenantId, Timestamp};

pub use rampart_store::Cas;

/// Secret versions re-wrapped per transaction by a rotation or revocation.
pub const REWRAP_BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no secret at `{0}`")]
    NotFound(String),
    #[error("version {1} of `{0}` does not exist")]
    NoSuchVersion(String, i64),
    #[error("version {1} of `{0}` is deleted (it can be undeleted)")]
    Deleted(String, i64),
    #[error("version {1} of `{0}` is destroyed")]
    Destroyed(String, i64),
    #[error("check-and-set failed: `{path}` is not at the expected version")]
    CasMismatch { path: String },
    #[error("key version {0} is revoked: nothing opens under it")]
    KeyRevoked(i64),
    #[error("key version {0} does not exist")]
    NoSuchKey(i64),
    #[error("key version {0} is the active one; rotate first")]
    KeyActive(i64),
    #[error("a stored secret does not open: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A secret value read back, with what is known about its version.
pub struct Opened {
    pub version: SecretVersionRecord,
    pub value: Secret<Vec<u8>>,
}

/// The outcome of moving secret versions off a key version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub versions: u64,
    /// `false` while versions are left under the old key (the caller runs another batch).
    pub done: bool,
}

pub struct SecretsService {
    wrapper: KekWrapper,
    /// Values opened by [`SecretsService::current`], by tenant and path.
    opened: Mutex<HashMap<(TenantId, String), OpenedVersion>>,
}

/// A value kept opened, with the version (number and creation time) it is the value of.
struct OpenedVersion {
    version: i64,
    created_at: Timestamp,
    value: Arc<Secret<Vec<u8>>>,
}

/// Secrets whose newest value [`SecretsService::current`] keeps opened; past this, one is
/// dropped per new one.
const KEPT_OPENED: usize = 4096;

impl std::fmt::Debug for SecretsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsService([REDACTED])")
    }
}

fn key_version(v: i64) -> Result<u32, SecretsError> {
    u32::try_from(v).map_err(|_| SecretsError::Internal(format!("key version {v} out of range")))
}

fn secret_version(v: i64) -> Result<u32, SecretsError> {
    u32::try_from(v).map_err(|_| SecretsError::Internal(format!("secret version {v} out of range")))
}

/// KEK version `version` of the tenant, as stored.
async fn key_record(
    tx: &mut Tx,
    tenant: TenantId,
    version: i64,
) -> Result<TenantKeyRecord, SecretsError> {
    tx.tenant_keys(tenant)
        .await?
        .into_iter()
        .find(|k| k.version == version)
        .ok_or(SecretsError::NoSuchKey(version))
}

/// Refuses a version that is destroyed or (soft-)deleted.
fn readable(record: &SecretVersionRecord) -> Result<(), SecretsError> {
    if record.destroyed_at.is_some() {
        return Err(SecretsError::Destroyed(record.path.clone(), record.version));
    }
    if record.deleted_at.is_some() {
        return Err(SecretsError::Deleted(record.path.clone(), record.version));
    }
    Ok(())
}

impl SecretsService {
    #[must_use]
    pub fn new(wrapper: KekWrapper) -> Self {
        Self {
            wrapper,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The newest version of the secret at `path`, opened, for a service that reads it on every
    /// request (the gateway's upstream key). One statement finds the version and checks that it
    /// is neither deleted nor destroyed and that its KEK is not revoked; a value this node
    /// opened before for that same version is then reused (a version's value never changes).
    pub async fn current(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        path: &SecretPath,
    ) -> Result<Arc<Secret<Vec<u8>>>, SecretsError> {
        let p = path.as_str();
        let (record, kek_revoked) = tx
            .current_secret_version(tenant, p)
            .await?
            .ok_or_else(|| SecretsError::NotFound(p.to_owned()))?;
        readable(&record)?;
        if kek_revoked {
            let key = record
                .sealed
                .as_ref()
                .map_or(0, |s| i64::from(s.key_version));
            return Err(SecretsError::KeyRevoked(key));
        }
        let key = (tenant, p.to_owned());
        if let Ok(opened) = self.opened.lock()
            && let Some(kept) = opened.get(&key)
            && (kept.version, kept.created_at) == (record.version, record.created_at)
        {
            return Ok(kept.value.clone());
        }
        let value = Arc::new(self.open_version(tx, path, &record).await?);
        if let Ok(mut opened) = self.opened.lock() {
            let kept = OpenedVersion {
                version: record.version,
                created_at: record.created_at,
                value: value.clone(),
            };
            crate::cache::insert_bounded(&mut opened, KEPT_OPENED, key, kept);
        }
        Ok(value)
    }

    fn open_kek(&self, r: &TenantKeyRecord) -> Result<Kek, SecretsError> {
        let sealed = r
            .sealed_key
            .as_deref()
            .ok_or(SecretsError::KeyRevoked(r.version))?;
        Ok(self
            .wrapper
            .open(r.tenant_id, key_version(r.version)?, sealed)?)
    }

    /// The KEK version new secret versions are sealed under, creating the tenant's first when
    /// it has none.
    pub async fn active_kek(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Kek, SecretsError> {
        for _ in 0..2 {
            let keys = tx.tenant_keys(tenant).await?;
            if let Some(active) = keys.iter().find(|k| k.state == TenantKeyState::Active) {
                return self.open_kek(active);
            }
            let next = keys.first().map_or(1, |k| k.version + 1);
            if let Some(kek) = self.insert_kek(tx, tenant, next, now).await? {
                return Ok(kek);
            }
            // Another writer created it first: read theirs.
        }
        Err(SecretsError::Internal(
            "no active tenant key after creating one".into(),
        ))
    }

    async fn insert_kek(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        version: i64,
        now: Timestamp,
    ) -> Result<Option<Kek>, SecretsError> {
        let (kek, sealed) = self
            .wrapper
            .generate(tenant, key_version(version)?)
            .map_err(|e| SecretsError::Internal(e.to_string()))?;
        let inserted = tx
            .insert_tenant_key(&TenantKeyRecord {
                tenant_id: tenant,
                version,
                sealed_key: Some(sealed),
                state: TenantKeyState::Active,
                created_at: now,
                retired_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(inserted.then_some(kek))
    }

    /// KEK version `version` of the tenant, refused once revoked.
    pub async fn kek(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        version: i64,
    ) -> Result<Kek, SecretsError> {
        let record = key_record(tx, tenant, version).await?;
        if record.state == TenantKeyState::Revoked {
            return Err(SecretsError::KeyRevoked(version));
        }
        self.open_kek(&record)
    }

    /// Writes a new version of the secret at `path` if `cas` holds; returns its number.
    pub async fn put(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        path: &SecretPath,
        value: &[u8],
        cas: Cas,
        now: Timestamp,
    ) -> Result<i64, SecretsError> {
        let version = tx
            .next_secret_version(tenant, path.as_str(), cas, now)
            .await?
            .ok_or_else(|| SecretsError::CasMismatch {
                path: path.to_string(),
            })?;
        let kek = self.active_kek(tx, tenant, now).await?;
        let sealed = kek
            .seal(path, secret_version(version)?, value)
            .map_err(|e| SecretsError::Internal(e.to_string()))?;
        tx.insert_secret_version(tenant, path.as_str(), version, &sealed, now)
            .await?;
        Ok(version)
    }

    /// Version `version` (default: the newest) of the secret at `path`, opened.
    pub async fn get(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        path: &SecretPath,
        version: Option<i64>,
    ) -> Result<Opened, SecretsError> {
        let p = path.as_str();
        let version = match version {
            Some(v) => v,
            None => {
                tx.secret(tenant, p)
                    .await?
                    .ok_or_else(|| SecretsError::NotFound(p.to_owned()))?
                    .current_version
            }
        };
        let record = tx
            .secret_version(tenant, p, version)
            .await?
            .ok_or_else(|| SecretsError::NoSuchVersion(p.to_owned(), version))?;
        readable(&record)?;
        let value = self.open_version(tx, path, &record).await?;
        Ok(Opened {
            version: record,
            value,
        })
    }

    /// The value of a stored version, whether or not it is soft-deleted (refused once
    /// destroyed). `path` is the record's path, parsed.
    pub async fn open_version(
        &self,
        tx: &mut Tx,
        path: &SecretPath,
        record: &SecretVersionRecord,
    ) -> Result<Secret<Vec<u8>>, SecretsError> {
        let sealed = record
            .sealed
            .as_ref()
            .ok_or_else(|| SecretsError::Destroyed(record.path.clone(), record.version))?;
        let kek = self
            .kek(tx, record.tenant_id, i64::from(sealed.key_version))
            .await?;
        Ok(kek.open(path, secret_version(record.version)?, sealed)?)
    }

    /// Retires the active KEK version and makes a new one active. Returns (retired, new).
    pub async fn rotate(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<(Option<i64>, i64), SecretsError> {
        let keys = tx.tenant_keys(tenant).await?;
        let retired = keys
            .iter()
            .find(|k| k.state == TenantKeyState::Active)
            .map(|k| k.version);
        tx.retire_tenant_key(tenant, now).await?;
        let next = keys.first().map_or(1, |k| k.version + 1);
        self.insert_kek(tx, tenant, next, now)
            .await?
            .ok_or_else(|| SecretsError::Internal("a concurrent rotation won".into()))?;
        Ok((retired, next))
    }

    /// Moves up to [`REWRAP_BATCH`] secret versions from KEK version `from` to the active one.
    pub async fn rewrap_batch(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        from: i64,
        now: Timestamp,
    ) -> Result<Rewrapped, SecretsError> {
        let to = self.active_kek(tx, tenant, now).await?;
        if i64::from(to.version()) == from {
            return Err(SecretsError::KeyActive(from));
        }
        let old = self.kek(tx, tenant, from).await?;
        let batch = tx
            .secret_versions_under_key(tenant, from, REWRAP_BATCH)
            .await?;
        let mut moved = 0;
        for v in &batch {
            let Some(sealed) = &v.sealed else { continue };
            let path: SecretPath = v
                .path
                .parse()
                .map_err(|e| SecretsError::Internal(format!("a stored path is invalid: {e}")))?;
            let wrapped_dek = old.rewrap(&to, &path, secret_version(v.version)?, sealed)?;
            let to_version = i64::from(to.version());
            if tx
                .rewrap_secret_version(tenant, &v.path, v.version, from, to_version, &wrapped_dek)
                .await?
            {
                moved += 1;
            }
        }
        Ok(Rewrapped {
            versions: moved,
            done: (batch.len() as i64) < REWRAP_BATCH,
        })
    }

    /// Revokes retired KEK version `version`, which must wrap nothing any more. Returns whether
    /// it was revoked now (false: already revoked).
    pub async fn revoke(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        version: i64,
        now: Timestamp,
    ) -> Result<bool, SecretsError> {
        match key_record(tx, tenant, version).await?.state {
            TenantKeyState::Revoked => Ok(false),
            TenantKeyState::Active => Err(SecretsError::KeyActive(version)),
            TenantKeyState::Retired => {
                if tx.revoke_tenant_key(tenant, version, now).await? {
                    Ok(true)
                } else {
                    Err(SecretsError::Internal(format!(
                        "key version {version} still wraps secret versions"
                    )))
                }
            }
        }
    }
}
