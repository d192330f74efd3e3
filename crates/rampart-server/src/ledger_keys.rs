//! Per-tenant keys for sealing audit records in the ledger.
//!
//! Each tenant has generations of a random AES-256 key, stored sealed under a key derived from
//! the root key (associated data: tenant and generation). New records use the newest live
//! generation. Destroying a tenant's generations erases its records' contents; the log's proofs
//! are untouched because leaf hashes cover the sealed bytes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rampart_crypto::{AeadKey, Secret, random_array};
use rampart_store::{LedgerKeyRecord, Tx};
use rampart_types::{TenantId, Timestamp};

use crate::audit::AuditError;

/// How long a node trusts its cached view of a tenant's keys. Another node's destruction takes
/// effect here within this time; destruction on this node at once.
const CACHE_TTL: Duration = Duration::from_secs(60);

pub struct LedgerKeys {
    wrap: AeadKey,
    cache: Mutex<HashMap<TenantId, (Instant, Vec<AeadKey>)>>,
}

impl std::fmt::Debug for LedgerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerKeys([REDACTED])")
    }
}

fn aad(tenant: TenantId, generation: i64) -> Vec<u8> {
    format!("rampart/ledger-key/v1:{tenant}:{generation}").into_bytes()
}

fn err(e: impl std::fmt::Display) -> AuditError {
    AuditError(e.to_string())
}

impl LedgerKeys {
    #[must_use]
    pub fn new(wrap: AeadKey) -> Self {
        Self {
            wrap,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn unseal(&self, r: &LedgerKeyRecord) -> Result<Option<AeadKey>, AuditError> {
        let Some(sealed) = &r.sealed_key else {
            return Ok(None);
        };
        let bytes = self
            .wrap
            .open(&aad(r.tenant_id, r.generation), sealed)
            .map_err(err)?;
        let key: [u8; 32] = bytes
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| AuditError("a ledger key is not 32 bytes".into()))?;
        let key = Secret::new(key);
        AeadKey::new(key.expose()).map(Some).map_err(err)
    }

    /// The tenant's live keys, newest first, when the cache holds a fresh view of them.
    pub fn cached(&self, tenant: TenantId) -> Option<Vec<AeadKey>> {
        let cache = self.cache.lock().ok()?;
        let (at, keys) = cache.get(&tenant)?;
        (at.elapsed() < CACHE_TTL).then(|| keys.clone())
    }

    /// The tenant's live keys, newest first, from the cache or the store.
    pub async fn live(&self, tx: &mut Tx, tenant: TenantId) -> Result<Vec<AeadKey>, AuditError> {
        if let Some(keys) = self.cached(tenant) {
            return Ok(keys);
        }
        let records = tx.ledger_keys(tenant).await.map_err(err)?;
        let mut keys = Vec::new();
        for r in &records {
            if let Some(k) = self.unseal(r)? {
                keys.push(k);
            }
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tenant, (Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    /// The key new records of the tenant are sealed under, creating the tenant's first (or, after
    /// a destruction, next) generation when there is none.
    pub async fn active(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<AeadKey, AuditError> {
        if let Some(k) = self.live(tx, tenant).await?.into_iter().next() {
            return Ok(k);
        }
        let existing = tx.ledger_keys(tenant).await.map_err(err)?;
        let generation = existing.first().map_or(1, |r| r.generation + 1);
        let key: Secret<[u8; 32]> = Secret::new(random_array().map_err(err)?);
        let sealed = self
            .wrap
            .seal(&aad(tenant, generation), key.expose())
            .map_err(err)?;
        let inserted = tx
            .insert_ledger_key(&LedgerKeyRecord {
                tenant_id: tenant,
                generation,
                sealed_key: Some(sealed),
                created_at: now,
                destroyed_at: None,
            })
            .await
            .map_err(err)?;
        self.forget(tenant);
        if inserted {
            return AeadKey::new(key.expose()).map_err(err);
        }
        // Another writer created this generation first: use theirs.
        self.live(tx, tenant)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AuditError("no ledger key after creating one".into()))
    }

    /// Destroys every generation of the tenant's keys.
    pub async fn destroy(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<u64, AuditError> {
        let n = tx.destroy_ledger_keys(tenant, now).await.map_err(err)?;
        self.forget(tenant);
        Ok(n)
    }

    fn forget(&self, tenant: TenantId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&tenant);
        }
    }
}
