//! The Sentinel inside the server: each tenant's policy (versioned rows), its Sentinel key
//! (sealed under the tenant KEK; token keys and the vault key derive from it), the vault of
//! reversible tokens, and the scrubber fed with fingerprints of the tenant's live secrets.
//!
//! Everything here works inside the caller's transaction; the caller audits and commits, so a
//! token is sealed only if the redaction that produced it is recorded. See docs/sentinel.md.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use rampart_crypto::{AeadKey, DerivedKey, RootKey, random_array};
use rampart_secrets::{SecretPath, small_key_version};
use rampart_sentinel::injection::InjectionScanner;
use rampart_sentinel::policy::{CompiledPolicy, Policy};
use rampart_sentinel::scrub::{Fingerprint, FingerprintKey, SecretScrubber};
use rampart_sentinel::transform::{Redaction, TokenVault, Tokenizer, redact};
use rampart_sentinel::{Channel, Class, Detector, Finding};
use rampart_store::{DocumentKind, SentinelKeyRecord, SentinelStamp, SentinelTokenRecord, Tx};
use rampart_types::{TenantId, Timestamp};
use zeroize::Zeroizing;

use crate::error::{ApiError, ErrorKind};
use crate::secrets::SecretsService;

const FINGERPRINT_LABEL: &str = "rampart/sentinel-fingerprint/v1";
/// Secret versions fingerprinted per query while catching up.
const FINGERPRINT_BATCH: i64 = 256;
/// Texts longer than this are scanned on the blocking pool, off the request threads.
const INLINE_SCAN_BYTES: usize = 16 * 1024;

/// The compiled detectors, shared by every tenant (they hold no tenant data).
pub struct Engines {
    pub detector: Detector,
    pub injection: InjectionScanner,
}

static ENGINES: OnceLock<Result<Engines, String>> = OnceLock::new();

/// The detectors, compiled on first use. If they cannot be built the request is refused.
pub fn engines() -> Result<&'static Engines, ApiError> {
    ENGINES
        .get_or_init(|| {
            Ok(Engines {
                detector: Detector::new().map_err(|e| e.to_string())?,
                injection: InjectionScanner::new().map_err(|e| e.to_string())?,
            })
        })
        .as_ref()
        .map_err(unavailable)
}

/// The Sentinel could not run: the request is refused, never passed through.
pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "the Sentinel could not run, so the request was refused",
    )
    .with_cause(cause)
}

/// Finds what `engines` find in `text`, plus live secrets, on the blocking pool when the text is
/// long.
pub async fn detect(
    text: Arc<str>,
    scrubber: Option<Arc<SecretScrubber>>,
) -> Result<Vec<Finding>, ApiError> {
    let engines = engines()?;
    let small = text.len() <= INLINE_SCAN_BYTES;
    let run = move || engines.detector.scan_with(&text, scrubber.as_deref());
    if small {
        return Ok(run());
    }
    tokio::task::spawn_blocking(run).await.map_err(unavailable)
}

/// What the server derives its per-tenant Sentinel keys from.
pub struct SentinelService {
    fingerprint_base: DerivedKey,
    /// Each tenant's redaction context with the stamp it was loaded under (see
    /// [`Redactor::load`]).
    redactors: Mutex<HashMap<TenantId, (SentinelStamp, Redactor)>>,
}

/// Tenants whose redaction context is kept loaded; past this, one is dropped per new one.
const CACHED_REDACTORS: usize = 4096;

impl std::fmt::Debug for SentinelService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentinelService([REDACTED])")
    }
}

/// One generation of a tenant's Sentinel key, opened.
pub struct TenantKey {
    pub tenant: TenantId,
    pub generation: i64,
    pub tokenizer: Tokenizer,
    vault: AeadKey,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The text a generation's key is sealed for under the tenant KEK.
fn key_context(generation: i64) -> String {
    format!("sentinel-key/{generation}")
}

impl TenantKey {
    fn from_material(tenant: TenantId, generation: i64, material: &[u8]) -> Result<Self, ApiError> {
        Ok(TenantKey {
            tenant,
            generation,
            tokenizer: Tokenizer::new(material).map_err(ApiError::internal)?,
            vault: DerivedKey::from_secret_material(material, "rampart sentinel vault v1")
                .and_then(DerivedKey::into_aead)
                .map_err(ApiError::internal)?,
        })
    }

    /// A reversible token's value is bound to its tenant, key generation and token.
    fn aad(&self, token: &str) -> Vec<u8> {
        format!("{}/{}/{token}", self.tenant, self.generation).into_bytes()
    }
}

/// A tenant's policy in force, checked and compiled.
pub struct TenantPolicy {
    /// 0: no policy stored yet, the built-in default applies.
    pub version: i64,
    pub policy: Policy,
    pub compiled: CompiledPolicy,
    pub created_by: Option<String>,
    pub created_at: Option<Timestamp>,
}

/// Version `version` (default: the one in force) of the tenant's policy. `None` if that
/// version does not exist.
pub async fn tenant_policy(
    tx: &mut Tx,
    tenant: TenantId,
    version: Option<i64>,
) -> Result<Option<TenantPolicy>, ApiError> {
    let Some(record) = tx
        .document_version(DocumentKind::SentinelPolicy, tenant, version)
        .await?
    else {
        if version.is_some_and(|v| v != 0) {
            return Ok(None);
        }
        let policy = Policy::default();
        let compiled = policy.compile().map_err(unavailable)?;
        return Ok(Some(TenantPolicy {
            version: 0,
            policy,
            compiled,
            created_by: None,
            created_at: None,
        }));
    };
    // A stored policy that no longer reads is a fault: refuse rather than fall back.
    let policy: Policy = serde_json::from_value(record.document).map_err(unavailable)?;
    let compiled = policy.compile().map_err(unavailable)?;
    Ok(Some(TenantPolicy {
        version: record.version,
        policy,
        compiled,
        created_by: Some(record.created_by),
        created_at: Some(record.created_at),
    }))
}

/// Reversible values met during one redaction, sealed into the vault when the caller is ready
/// to write them (in the transaction that audits the redaction).
#[derive(Default)]
pub struct PendingVault {
    entries: Vec<(Class, String, Zeroizing<String>)>,
    seen: HashSet<String>,
}

impl TokenVault for PendingVault {
    type Error = std::convert::Infallible;
    fn seal(&mut self, class: Class, token: &str, value: &str) -> Result<(), Self::Error> {
        if self.seen.insert(token.to_owned()) {
            self.entries
                .push((class, token.to_owned(), Zeroizing::new(value.to_owned())));
        }
        Ok(())
    }
}

impl PendingVault {
    /// The values met so far, by token and class.
    pub fn values(&self) -> std::collections::HashMap<String, (Class, Zeroizing<String>)> {
        self.entries
            .iter()
            .map(|(class, token, value)| (token.clone(), (*class, value.clone())))
            .collect()
    }

    /// Seals every value met under `key` into the tenant's vault; returns how many.
    pub async fn store(
        self,
        key: &TenantKey,
        tx: &mut Tx,
        now: Timestamp,
    ) -> Result<usize, ApiError> {
        for (class, token, value) in &self.entries {
            let sealed_value = key
                .vault
                .seal(&key.aad(token), value.as_bytes())
                .map_err(ApiError::internal)?;
            tx.insert_sentinel_token(&SentinelTokenRecord {
                tenant_id: key.tenant,
                token: token.clone(),
                generation: key.generation,
                class: class.as_str().to_owned(),
                sealed_value,
                created_at: now,
            })
            .await?;
        }
        Ok(self.entries.len())
    }
}

/// The tenant's live key generation among `keys` (at most one is, by a unique index).
fn live_generation(keys: &[SentinelKeyRecord]) -> Option<&SentinelKeyRecord> {
    keys.iter().find(|k| k.destroyed_at.is_none())
}

/// One revealed token.
pub struct Revealed {
    pub class: String,
    pub value: Zeroizing<String>,
}

impl SentinelService {
    pub fn new(root: &RootKey) -> Result<Self, rampart_crypto::CryptoError> {
        Ok(SentinelService {
            fingerprint_base: root.derive(FINGERPRINT_LABEL)?,
            redactors: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, tenant: TenantId, stamp: &SentinelStamp) -> Option<Redactor> {
        let cache = self.redactors.lock().ok()?;
        let (at, redactor) = cache.get(&tenant)?;
        (at == stamp).then(|| redactor.clone())
    }

    fn keep(&self, tenant: TenantId, stamp: SentinelStamp, redactor: &Redactor) {
        if let Ok(mut cache) = self.redactors.lock() {
            crate::cache::insert_bounded(
                &mut cache,
                CACHED_REDACTORS,
                tenant,
                (stamp, redactor.clone()),
            );
        }
    }

    fn fingerprint_key(&self, tenant: TenantId) -> Result<FingerprintKey, ApiError> {
        let mut material = Zeroizing::new(self.fingerprint_base.expose().to_vec());
        material.extend_from_slice(tenant.as_uuid().as_bytes());
        FingerprintKey::new(&material).map_err(ApiError::internal)
    }

    /// The tenant's live key generation, created (sealed under the tenant's active KEK) if it has
    /// none.
    pub async fn live_key(
        &self,
        secrets: &SecretsService,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<TenantKey, ApiError> {
        for _ in 0..2 {
            let keys = tx.sentinel_keys(tenant).await?;
            if let Some(live) = live_generation(&keys) {
                return self.open_key(secrets, tx, live).await;
            }
            let generation = keys.first().map_or(1, |k| k.generation + 1);
            let material = Zeroizing::new(random_array::<32>().map_err(ApiError::internal)?);
            let kek = secrets.active_kek(tx, tenant, now).await?;
            let sealed = kek
                .seal_small(&key_context(generation), &*material)
                .map_err(ApiError::internal)?;
            let inserted = tx
                .insert_sentinel_key(&SentinelKeyRecord {
                    tenant_id: tenant,
                    generation,
                    sealed_key: Some(sealed),
                    created_at: now,
                    destroyed_at: None,
                })
                .await?;
            if inserted {
                return TenantKey::from_material(tenant, generation, &*material);
            }
            // Another request created it first: read theirs.
        }
        Err(ApiError::internal(
            "no live Sentinel key after creating one",
        ))
    }

    async fn open_key(
        &self,
        secrets: &SecretsService,
        tx: &mut Tx,
        record: &SentinelKeyRecord,
    ) -> Result<TenantKey, ApiError> {
        let sealed = record
            .sealed_key
            .as_deref()
            .ok_or_else(|| ApiError::internal("opening a destroyed Sentinel key"))?;
        let version = small_key_version(sealed)
            .ok_or_else(|| ApiError::internal("a sealed Sentinel key is truncated"))?;
        let kek = secrets
            .kek(tx, record.tenant_id, i64::from(version))
            .await?;
        let material = kek
            .open_small(&key_context(record.generation), sealed)
            .map_err(ApiError::internal)?;
        TenantKey::from_material(record.tenant_id, record.generation, material.expose())
    }

    /// The value behind each reversible token, where the tenant has it under its live key
    /// generation (only one lives at a time; destroying one deletes its tokens). The key is
    /// opened once for all the tokens.
    pub async fn reveal(
        &self,
        secrets: &SecretsService,
        tx: &mut Tx,
        tenant: TenantId,
        tokens: &[&str],
    ) -> Result<Vec<Option<Revealed>>, ApiError> {
        let keys = tx.sentinel_keys(tenant).await?;
        let Some(live) = live_generation(&keys) else {
            return Ok(tokens.iter().map(|_| None).collect());
        };
        let key = self.open_key(secrets, tx, live).await?;
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let record = tx
                .sentinel_token(tenant, token)
                .await?
                .filter(|r| r.generation == key.generation);
            let Some(record) = record else {
                out.push(None);
                continue;
            };
            let value = key
                .vault
                .open(&key.aad(token), &record.sealed_value)
                .map_err(ApiError::internal)?;
            let value = String::from_utf8(value.expose().clone())
                .map_err(|_| ApiError::internal("a sealed token value is not text"))?;
            out.push(Some(Revealed {
                class: record.class,
                value: Zeroizing::new(value),
            }));
        }
        Ok(out)
    }

    /// Destroys the tenant's live key and every token sealed under it; the next redaction makes
    /// a new generation. Returns (generation, tokens deleted), or `None` if no key was live.
    pub async fn destroy_key(
        &self,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Option<(i64, u64)>, ApiError> {
        let keys = tx.sentinel_keys(tenant).await?;
        let Some(live) = live_generation(&keys) else {
            return Ok(None);
        };
        Ok(tx
            .destroy_sentinel_key(tenant, live.generation, now)
            .await?
            .map(|n| (live.generation, n)))
    }

    /// Moves the tenant's live key off KEK version `from` onto the active one (a KEK rotation
    /// re-wraps what is sealed under the old version before it is revoked).
    pub async fn reseal_key(
        &self,
        secrets: &SecretsService,
        tx: &mut Tx,
        tenant: TenantId,
        from: i64,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let keys = tx.sentinel_keys(tenant).await?;
        let Some(live) = live_generation(&keys) else {
            return Ok(false);
        };
        let sealed = live.sealed_key.as_deref().unwrap_or_default();
        if small_key_version(sealed).map(i64::from) != Some(from) {
            return Ok(false);
        }
        let old = secrets.kek(tx, tenant, from).await?;
        let context = key_context(live.generation);
        let material = old
            .open_small(&context, sealed)
            .map_err(ApiError::internal)?;
        let to = secrets.active_kek(tx, tenant, now).await?;
        let resealed = to
            .seal_small(&context, material.expose())
            .map_err(ApiError::internal)?;
        Ok(tx
            .reseal_sentinel_key(tenant, live.generation, &resealed)
            .await?)
    }

    /// A scrubber for the tenant's live secret values (every version not destroyed), first
    /// fingerprinting versions written since the last call. `None` if the tenant has none.
    pub async fn scrubber(
        &self,
        secrets: &SecretsService,
        tx: &mut Tx,
        tenant: TenantId,
    ) -> Result<Option<SecretScrubber>, ApiError> {
        let key = self.fingerprint_key(tenant)?;
        loop {
            let batch = tx
                .secret_versions_without_fingerprints(tenant, FINGERPRINT_BATCH)
                .await?;
            for v in &batch {
                let path: SecretPath = v.path.parse().map_err(ApiError::internal)?;
                let value = secrets.open_version(tx, &path, v).await?;
                let fps = key.fingerprints(value.expose());
                tx.insert_sentinel_fingerprints(
                    tenant,
                    &v.path,
                    v.version,
                    &Fingerprint::encode(&fps),
                )
                .await?;
            }
            if (batch.len() as i64) < FINGERPRINT_BATCH {
                break;
            }
        }
        let mut fps = Vec::new();
        for blob in tx.live_sentinel_fingerprints(tenant).await? {
            fps.extend(
                Fingerprint::decode(&blob)
                    .ok_or_else(|| unavailable("stored fingerprints are corrupt"))?,
            );
        }
        if fps.is_empty() {
            return Ok(None);
        }
        Ok(Some(SecretScrubber::new(key, fps)))
    }
}

/// Everything one tenant's redaction needs.
#[derive(Clone)]
pub struct Redactor {
    pub policy: Arc<TenantPolicy>,
    pub key: Arc<TenantKey>,
    pub scrubber: Option<Arc<SecretScrubber>>,
}

impl Redactor {
    /// The tenant's policy in force, its live key and its scrubber, first creating the key or
    /// fingerprinting new secret versions if needed (`tx` must then be a write transaction).
    ///
    /// A context is kept per tenant with the [`SentinelStamp`] it was loaded under, and reused
    /// while the stamp — one statement in `tx` — reads the same. The stamp is read before the
    /// context, so under read-committed a context is never older than its stamp.
    pub async fn load(
        state: &crate::state::AppState,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Self, ApiError> {
        let stamp = tx.sentinel_stamp(tenant).await?;
        Self::load_stamped(state, tx, tenant, now, stamp).await
    }

    /// [`Redactor::load`] for a read-only transaction: `None` when loading would write.
    pub async fn load_read_only(
        state: &crate::state::AppState,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Option<Self>, ApiError> {
        let stamp = tx.sentinel_stamp(tenant).await?;
        if stamp.needs_setup() {
            return Ok(None);
        }
        Self::load_stamped(state, tx, tenant, now, stamp)
            .await
            .map(Some)
    }

    async fn load_stamped(
        state: &crate::state::AppState,
        tx: &mut Tx,
        tenant: TenantId,
        now: Timestamp,
        stamp: SentinelStamp,
    ) -> Result<Self, ApiError> {
        // After a setup write the stamp is stale: such a load is not kept.
        let keep = !stamp.needs_setup();
        if keep && let Some(cached) = state.sentinel.cached(tenant, &stamp) {
            return Ok(cached);
        }
        let policy = tenant_policy(tx, tenant, None)
            .await?
            .ok_or_else(|| unavailable("no policy in force"))?;
        let key = state
            .sentinel
            .live_key(&state.secrets, tx, tenant, now)
            .await?;
        let scrubber = state
            .sentinel
            .scrubber(&state.secrets, tx, tenant)
            .await?
            .map(Arc::new);
        let redactor = Redactor {
            policy: Arc::new(policy),
            key: Arc::new(key),
            scrubber,
        };
        if keep {
            state.sentinel.keep(tenant, stamp, &redactor);
        }
        Ok(redactor)
    }

    /// Redacts `text` leaving on `channel`; reversible values go to `vault`.
    pub async fn redact(
        &self,
        text: &str,
        channel: Channel,
        vault: &mut PendingVault,
    ) -> Result<Redaction, ApiError> {
        let findings = detect(Arc::from(text), self.scrubber.clone()).await?;
        let Ok(r) = redact(
            text,
            &findings,
            &self.policy.compiled,
            channel,
            &self.key.tokenizer,
            vault,
        );
        Ok(r)
    }
}
