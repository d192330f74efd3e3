//! The token signing keys: generated, sealed at rest under a key derived from the root key,
//! rotated on a schedule and on demand, and shared by every node through the store.
//!
//! A retired key keeps verifying for `access_token_ttl + clock_skew + 2 × RELOAD_INTERVAL` after
//! its retirement: long enough for the last token any node signed with it (a node learns of a
//! rotation within one reload interval) to expire. So a rotation never fails a request.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rampart_crypto::{AeadKey, CryptoError, Secret, SigningKey, VerifyingKey};
use rampart_identity::jwt::CheckedSignatures;
use rampart_identity::{KeySet, TokenSigner, VerificationKey};
use rampart_store::{SigningKeyRecord, Store, StoreError, Tx};
use rampart_types::{Clock, Timestamp};

/// How often every node re-reads the key table.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// A verification miss (unknown `kid`) triggers a re-read at most this often.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key material: {0}")]
    Crypto(#[from] CryptoError),
    #[error("signing key `{0}` does not match its stored id")]
    Mismatch(String),
    #[error("no active signing key")]
    NoActiveKey,
}

/// The keys in effect at one moment.
#[derive(Debug)]
pub struct KeyState {
    pub signer: Arc<TokenSigner>,
    pub signer_created_at: Timestamp,
    pub keys: KeySet,
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub new_kid: String,
    pub retired_kids: Vec<String>,
    pub retired_verify_until: Timestamp,
}

pub struct KeyManager {
    store: Store,
    wrap: AeadKey,
    clock: Arc<dyn Clock>,
    retire_grace: Duration,
    rotation_period: Duration,
    state: RwLock<Option<Arc<KeyState>>>,
    last_reload: tokio::sync::Mutex<Instant>,
    /// Access tokens whose signature this node has checked.
    checked: CheckedSignatures,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("rotation_period", &self.rotation_period)
            .finish_non_exhaustive()
    }
}

fn seed_aad(kid: &str) -> Vec<u8> {
    format!("rampart/signing-key/v1:{kid}").into_bytes()
}

impl KeyManager {
    pub fn new(
        store: Store,
        wrap: AeadKey,
        clock: Arc<dyn Clock>,
        access_token_ttl: Duration,
        clock_skew: Duration,
        rotation_period: Duration,
    ) -> Self {
        Self {
            store,
            wrap,
            clock,
            retire_grace: access_token_ttl + clock_skew + 2 * RELOAD_INTERVAL,
            rotation_period,
            state: RwLock::new(None),
            last_reload: tokio::sync::Mutex::new(Instant::now()),
            checked: CheckedSignatures::default(),
        }
    }

    /// Access tokens whose signature this node has checked (see [`CheckedSignatures`]).
    #[must_use]
    pub fn checked(&self) -> &CheckedSignatures {
        &self.checked
    }

    /// The keys in effect. `None` only before the first successful load.
    #[must_use]
    pub fn current(&self) -> Option<Arc<KeyState>> {
        self.state.read().ok().and_then(|s| s.clone())
    }

    /// Re-reads the key table.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let mut last = self.last_reload.lock().await;
        let mut tx = self.store.begin_read(rampart_store::Scope::Global).await?;
        let records = tx.list_signing_keys().await?;
        drop(tx);
        let state = self.build(&records)?;
        if let Ok(mut s) = self.state.write() {
            *s = Some(Arc::new(state));
        }
        *last = Instant::now();
        Ok(())
    }

    /// Re-reads the key table if the last read is older than `MISS_RELOAD_INTERVAL`; returns
    /// whether it did. Called when a token names a `kid` this node does not know yet.
    pub async fn reload_after_miss(&self) -> bool {
        {
            let last = self.last_reload.lock().await;
            if last.elapsed() < MISS_RELOAD_INTERVAL {
                return false;
            }
        }
        match self.reload().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "signing key reload failed");
                false
            }
        }
    }

    fn build(&self, records: &[SigningKeyRecord]) -> Result<KeyState, KeyError> {
        let now = self.clock.now();
        let mut keys = Vec::new();
        for r in records {
            if r.verify_until.is_some_and(|u| u <= now) {
                continue;
            }
            let vk = VerificationKey::new(VerifyingKey::from_bytes(&r.public_key)?, r.verify_until);
            if vk.kid != r.kid {
                return Err(KeyError::Mismatch(r.kid.clone()));
            }
            keys.push(vk);
        }
        let active = records
            .iter()
            .filter(|r| r.retired_at.is_none())
            .max_by_key(|r| r.created_at)
            .ok_or(KeyError::NoActiveKey)?;
        let seed = self
            .wrap
            .open(&seed_aad(&active.kid), &active.sealed_seed)?;
        let seed: [u8; 32] = seed
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("a sealed signing seed has 32 bytes"))?;
        let signer = TokenSigner::new(SigningKey::from_seed(&Secret::new(seed)));
        if signer.kid() != active.kid {
            return Err(KeyError::Mismatch(active.kid.clone()));
        }
        Ok(KeyState {
            signer: Arc::new(signer),
            signer_created_at: active.created_at,
            keys: KeySet::new(keys),
        })
    }

    /// Generates a new signing key and retires the current one, inside `tx` (which must be
    /// committed by the caller, with its audit record, before [`KeyManager::reload`]).
    /// With `only_if_due`, does nothing unless the active key is older than the rotation period
    /// (re-checked under the rotation lock, so concurrent nodes rotate once).
    pub async fn rotate_in(
        &self,
        tx: &mut Tx,
        only_if_due: bool,
    ) -> Result<Option<Rotation>, KeyError> {
        tx.lock_signing_keys().await?;
        let now = self.clock.now();
        let records = tx.list_signing_keys().await?;
        let active: Vec<&SigningKeyRecord> =
            records.iter().filter(|r| r.retired_at.is_none()).collect();
        if only_if_due
            && let Some(newest) = active.iter().map(|r| r.created_at).max()
            && now.duration_since(newest) < self.rotation_period
        {
            return Ok(None);
        }
        let key = SigningKey::generate()?;
        let signer = TokenSigner::new(key);
        let kid = signer.kid().to_owned();
        let sealed = self.wrap.seal(&seed_aad(&kid), signer.seed().expose())?;
        tx.insert_signing_key(&SigningKeyRecord {
            kid: kid.clone(),
            public_key: signer.verifying_key().as_bytes().to_vec(),
            sealed_seed: sealed,
            created_at: now,
            retired_at: None,
            verify_until: None,
        })
        .await?;
        let verify_until = now.saturating_add(self.retire_grace);
        let mut retired = Vec::new();
        for r in active {
            if tx.retire_signing_key(&r.kid, now, verify_until).await? {
                retired.push(r.kid.clone());
            }
        }
        Ok(Some(Rotation {
            new_kid: kid,
            retired_kids: retired,
            retired_verify_until: verify_until,
        }))
    }

    /// Whether the table holds an active key (for start-up).
    pub async fn has_active_key(&self) -> Result<bool, KeyError> {
        let mut tx = self.store.begin_read(rampart_store::Scope::Global).await?;
        Ok(tx
            .list_signing_keys()
            .await?
            .iter()
            .any(|r| r.retired_at.is_none()))
    }

    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
