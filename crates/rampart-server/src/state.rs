//! Start-up and the state every handler shares.

use rampart_secrets::KekWrapper;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use rampart_crypto::{
    CryptoError, HmacKey, RootKey, RootKeyFileStatus, Secret, SecretString, SigningKey,
    random_array,
};
use rampart_identity::ApiKey;
use rampart_ledger::note::NoteSigner;
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_ledger::{Ledger, LedgerConfig, LedgerError};
use rampart_store::{Store, StoreError, StoreOptions};
use rampart_types::{Clock, SystemClock, TenantId};

use crate::audit::{AuditSink, LedgerAuditSink};
use crate::bootstrap;
use crate::config::{Config, ConfigError, RootKeyProvider};
use crate::keys::{KeyError, KeyManager};
use crate::ledger_keys::LedgerKeys;
use crate::secrets::SecretsService;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error("audit ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("data directory `{path}`: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// Injected dependencies (time, and another audit sink than the ledger, for tests).
pub struct StartOptions {
    pub clock: Arc<dyn Clock>,
    /// `None`: the tamper-evident ledger ([`LedgerAuditSink`]).
    pub audit: Option<Arc<dyn AuditSink>>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            audit: None,
        }
    }
}

/// Where the root key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeySource {
    /// `root_key` / `RAMPART_ROOT_KEY(_FILE)`.
    Configured,
    /// The local key file, and whether this start created it.
    File { path: String, created: bool },
    /// Unwrapped by AWS KMS from the file at `path`.
    #[cfg(feature = "aws")]
    AwsKms {
        path: String,
        key_id: String,
        how: crate::kms_root::Unwrapped,
    },
}

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub keys: KeyManager,
    /// Keys the stored hashes of API keys and refresh tokens.
    pub pepper: HmacKey,
    pub clock: Arc<dyn Clock>,
    pub audit: Arc<dyn AuditSink>,
    /// The platform operator's tenant.
    pub system_tenant: TenantId,
    /// The tamper-evident audit ledger.
    pub ledger: Arc<Ledger>,
    /// Per-tenant keys its records are sealed under.
    pub ledger_keys: Arc<LedgerKeys>,
    /// Tenants' key-encryption keys and secrets.
    pub secrets: SecretsService,
    /// Per-tenant Sentinel keys, vault and scrubber.
    pub sentinel: crate::sentinel::SentinelService,
    /// Wakes the webhook delivery worker.
    pub webhook_wake: Arc<tokio::sync::Notify>,
    /// The event bus (this node's producer identity and transport).
    pub bus: Arc<rampart_bus::Bus>,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("system_tenant", &self.system_tenant)
            .finish_non_exhaustive()
    }
}

/// A started server, before it listens.
pub struct Started {
    pub state: AppState,
    /// The operator API key, present only on the very first start. Show it once; it is not
    /// stored anywhere readable.
    pub operator_key: Option<ApiKey>,
    pub root_key_source: RootKeySource,
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(|source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })
}

// Key derivation labels. Changing one changes every value derived from it.
/// Derivation label of the pepper that keys stored credential hashes.
pub const PEPPER_LABEL: &str = "rampart/credential-pepper/v1";
const SIGNING_KEY_WRAP_LABEL: &str = "rampart/signing-key-wrap/v1";
const POSTGRES_APP_PASSWORD_LABEL: &str = "rampart/postgres-app-password/v1";
const LEDGER_KEY_WRAP_LABEL: &str = "rampart/ledger-key-wrap/v1";
const LEDGER_CHECKPOINT_KEY_LABEL: &str = "rampart/ledger-checkpoint-key/v1";

/// Loads or creates the root key.
pub fn root_key(config: &Config) -> Result<(RootKey, RootKeySource), StartError> {
    if config.root_key_provider == RootKeyProvider::AwsKms {
        return kms_root_key(config, true);
    }
    if let Some(k) = &config.root_key {
        return Ok((RootKey::parse(k.expose())?, RootKeySource::Configured));
    }
    create_private_dir(&config.data_dir)?;
    let path = config.root_key_file();
    let (key, status) = RootKey::load_or_create(&path)?;
    Ok((
        key,
        RootKeySource::File {
            path: path.display().to_string(),
            created: status == RootKeyFileStatus::Created,
        },
    ))
}

/// The root key, which must already exist (commands that only read never create one).
pub fn existing_root_key(config: &Config) -> Result<RootKey, StartError> {
    if config.root_key_provider == RootKeyProvider::AwsKms {
        return kms_root_key(config, false).map(|(k, _)| k);
    }
    match &config.root_key {
        Some(k) => Ok(RootKey::parse(k.expose())?),
        None => Ok(RootKey::load_file(&config.root_key_file())?),
    }
}

#[cfg(feature = "aws")]
fn kms_root_key(config: &Config, create: bool) -> Result<(RootKey, RootKeySource), StartError> {
    if create {
        create_private_dir(&config.data_dir)?;
    }
    let (key, how) = crate::kms_root::load(config, create)?;
    Ok((
        key,
        RootKeySource::AwsKms {
            path: config.wrapped_root_key_file().display().to_string(),
            key_id: config.kms_key_id.clone().unwrap_or_default(),
            how,
        },
    ))
}

/// The configuration refuses `aws-kms` in a build without the `aws` feature.
#[cfg(not(feature = "aws"))]
fn kms_root_key(_config: &Config, _create: bool) -> Result<(RootKey, RootKeySource), StartError> {
    Err(StartError::Setup(
        "root key: this build has no AWS KMS support; build with `--features aws`".into(),
    ))
}

/// This node's id: random, made on its first start and kept in its data directory (`node-id`).
/// Nodes sharing a database each write their own ledger; the id tells them apart. With `create`
/// false, a missing id is an error (commands that only read never make one).
pub fn node_id(config: &Config, create: bool) -> Result<String, StartError> {
    let path = config.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if is_node_id(s.trim()) => return Ok(s.trim().to_owned()),
        Ok(_) => {
            return Err(StartError::Setup(format!(
                "{} is not a node id (32 hex digits)",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
        Err(e) => {
            return Err(StartError::DataDir {
                path: path.display().to_string(),
                source: e,
            });
        }
    }
    create_private_dir(&config.data_dir)?;
    let id = rampart_types::lower_hex(&random_array::<16>()?);
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| StartError::DataDir { path, source }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, format!("{id}\n").as_bytes())?;
            f.sync_all()
        })
        .map_err(io_err(&path))?;
    std::fs::File::open(&config.data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&config.data_dir))?;
    Ok(id)
}

fn is_node_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ledger's origin (the log's name in its checkpoints): configured, or by default one of
/// this node's own.
pub fn ledger_origin(config: &Config, node_id: &str) -> String {
    match &config.ledger_origin {
        Some(o) => o.clone(),
        None => format!("rampart.local/audit/{}", &node_id[..16]),
    }
}

/// The signer of the ledger's checkpoints: an Ed25519 key derived from the root key, named by the
/// ledger's origin.
pub fn ledger_signer(
    config: &Config,
    root: &RootKey,
    node_id: &str,
) -> Result<NoteSigner, StartError> {
    let origin = ledger_origin(config, node_id);
    let seed = Secret::new(*root.derive(LEDGER_CHECKPOINT_KEY_LABEL)?.expose());
    NoteSigner::new(&origin, SigningKey::from_seed(&seed))
        .map_err(|e| StartError::Setup(format!("ledger origin `{origin}`: {e}")))
}

/// The ledger's configuration: its zones (opened, so their directories exist and are locked, and
/// each bucket was checked for Object Lock) and its signer. Blocks: call it, and open the ledger
/// with [`Ledger::open`], on a blocking thread.
pub fn ledger_config(config: &Config, signer: NoteSigner) -> Result<LedgerConfig, StartError> {
    let mut zones: Vec<Arc<dyn Zone>> = Vec::new();
    for dir in config.effective_ledger_zones() {
        create_private_dir(&dir)?;
        let zone = LocalZone::open(&dir).map_err(|e| StartError::DataDir {
            path: dir.display().to_string(),
            source: e,
        })?;
        zones.push(Arc::new(zone));
    }
    for url in &config.ledger_s3_zones {
        zones.push(open_s3_zone(config, url)?);
    }
    let n = zones.len();
    let mut lc = LedgerConfig::new(zones, signer);
    lc.quorum = config.ledger_quorum.unwrap_or(n);
    lc.checkpoint_interval = config.ledger_checkpoint_interval;
    lc.max_batch_wait = config.ledger_max_batch_wait;
    Ok(lc)
}

/// Opens the S3 zone at `url` with the configured credentials (blocking: it checks the bucket).
#[cfg(feature = "s3")]
pub fn open_s3_zone(config: &Config, url: &str) -> Result<Arc<dyn Zone>, StartError> {
    use rampart_ledger::s3::{Credentials, S3Client, S3Location, S3Zone};
    let location = S3Location::parse(url)
        .map_err(|e| StartError::Setup(format!("ledger zone `{url}`: {e}")))?;
    let (Some(id), Some(secret)) = (
        &config.ledger_s3_access_key_id,
        &config.ledger_s3_secret_access_key,
    ) else {
        return Err(StartError::Setup(
            "S3 ledger zones need `ledger_s3_access_key_id` and `ledger_s3_secret_access_key`"
                .into(),
        ));
    };
    let creds = Credentials::new(id.clone(), secret.clone());
    let zone = S3Zone::open(S3Client::new(location, creds))
        .map_err(|e| StartError::Setup(format!("ledger zone: {e}")))?;
    Ok(Arc::new(zone))
}

/// Without the `s3` feature there are no S3 zones (the configuration refuses them).
#[cfg(not(feature = "s3"))]
pub fn open_s3_zone(_config: &Config, url: &str) -> Result<Arc<dyn Zone>, StartError> {
    Err(StartError::Setup(format!(
        "ledger zone `{url}`: this build has no S3 support; build with `--features s3`"
    )))
}

/// Opens this node's ledger (recovering it after a crash) and the per-tenant keys its records are
/// sealed under: the audit sink every process that records decisions uses. First claims the
/// ledger's origin for this node in the store: two logs under one name would look like a forked
/// log to anyone checking them. Shut the ledger down when done.
pub async fn open_ledger(
    config: &Config,
    root: &RootKey,
    store: &Store,
) -> Result<LedgerAuditSink, StartError> {
    let node = node_id(config, true)?;
    bootstrap::claim_ledger_origin(store, &ledger_origin(config, &node), &node).await?;
    let signer = ledger_signer(config, root, &node)?;
    let config = config.clone();
    let ledger = tokio::task::spawn_blocking(move || -> Result<Ledger, StartError> {
        Ok(Ledger::open(ledger_config(&config, signer)?)?)
    })
    .await
    .map_err(|e| StartError::Setup(format!("opening the ledger: {e}")))??;
    Ok(LedgerAuditSink {
        ledger: Arc::new(ledger),
        keys: Arc::new(LedgerKeys::new(
            root.derive(LEDGER_KEY_WRAP_LABEL)?.into_aead()?,
        )),
    })
}

/// Opens the store for `config`, with the Postgres app password derived from the root key.
pub async fn open_store(config: &Config, root: &RootKey) -> Result<Store, StartError> {
    let url = config.effective_database_url();
    if config.is_embedded() {
        create_private_dir(&config.data_dir)?;
    }
    let password = rampart_types::lower_hex(root.derive(POSTGRES_APP_PASSWORD_LABEL)?.expose());
    Ok(Store::open(&StoreOptions {
        url,
        app_url: config.app_database_url.clone(),
        app_role: config.postgres_app_role.clone(),
        app_password: Some(SecretString::new(password)),
        max_connections: config.database_max_connections,
    })
    .await?)
}

/// Everything up to listening: data directory, root key, store, bootstrap, signing keys.
pub async fn start(config: Config, opts: StartOptions) -> Result<Started, StartError> {
    let (root, root_key_source) = root_key(&config)?;
    if let RootKeySource::File { path, .. } = &root_key_source {
        tracing::warn!(
            path = %path,
            "the root key is a local file: this is for single-node use only; every secret \
             Rampart keeps is protected by this one file, so back it up and keep it private, \
             and use a KMS-wrapped root key in production"
        );
    }
    #[cfg(feature = "aws")]
    if let RootKeySource::AwsKms { path, key_id, how } = &root_key_source {
        tracing::info!(path = %path, kms_key_id = %key_id, how = ?how, "root key unwrapped by AWS KMS");
        if config.root_key_file().exists() {
            tracing::warn!(
                path = %config.root_key_file().display(),
                "a plaintext root key file is still in the data directory although the root key \
                 is wrapped by KMS; delete it"
            );
        }
    }
    let store = open_store(&config, &root).await?;
    let pepper = root.derive(PEPPER_LABEL)?.into_hmac()?;
    let wrap = root.derive(SIGNING_KEY_WRAP_LABEL)?.into_aead()?;
    bootstrap::check_root_key(&store, &root).await?;
    // The ledger opens before anything is recorded, so even the first events land in it.
    let ledger_sink = open_ledger(&config, &root, &store).await?;
    let (ledger, ledger_keys) = (ledger_sink.ledger.clone(), ledger_sink.keys.clone());
    let recorded: Arc<dyn AuditSink> = match opts.audit {
        Some(a) => a,
        None => Arc::new(ledger_sink),
    };
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    let bus = Arc::new(crate::bus::open(&config, &root, opts.clock.clone()).await?);
    let audit: Arc<dyn AuditSink> = Arc::new(crate::webhooks::EventSink {
        inner: recorded,
        wake: webhook_wake.clone(),
        events: crate::bus::Publisher::spawn(bus.clone()),
    });
    let boot =
        bootstrap::ensure_system_tenant(&store, &pepper, &*opts.clock, &*audit, &config).await?;
    let keys = KeyManager::new(
        store.clone(),
        wrap,
        opts.clock.clone(),
        config.access_token_ttl,
        config.clock_skew,
        config.signing_key_rotation_period,
    );
    bootstrap::ensure_signing_key(&store, &keys, &*audit, boot.system_tenant).await?;
    keys.reload().await?;
    let secrets = SecretsService::new(KekWrapper::from_root(&root)?);
    let sentinel = crate::sentinel::SentinelService::new(&root)?;
    // The detectors compile once per process; do it now rather than in the first request.
    tokio::task::spawn_blocking(|| crate::sentinel::engines().map(drop));
    let state = AppState(Arc::new(Inner {
        config,
        store,
        keys,
        pepper,
        clock: opts.clock,
        audit,
        system_tenant: boot.system_tenant,
        ledger,
        ledger_keys,
        secrets,
        sentinel,
        webhook_wake,
        bus,
    }));
    Ok(Started {
        state,
        operator_key: boot.operator_key,
        root_key_source,
    })
}
