//! Configuration: built-in defaults, then `rampart.toml` (or `--config`), then `RAMPART_*`
//! environment variables, then command-line flags. Every secret setting can also be read from a
//! file (`RAMPART_<KEY>_FILE`, or `<key>_file` in the TOML file). The result is validated once, at
//! start-up, with one message per bad field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_crypto::{RootKey, SecretString};
use rampart_types::{format_duration, parse_duration};

/// The name of the configuration file looked for in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "rampart.toml";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where the root key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeyProvider {
    /// `root_key` when set, else the local file `root.key` (created on first start).
    File,
    /// Wrapped under an AWS KMS key: `root.key.kms` holds only its ciphertext, and every start
    /// asks KMS to unwrap it. Needs a build with the `aws` feature.
    AwsKms,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the embedded database, the root key file and the ledger live.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `postgres://…` (owner credentials, used for migrations) or `sqlite://…`; default: SQLite in
    /// `data_dir`.
    pub database_url: Option<SecretString>,
    /// Postgres credentials requests are served with; default: the app role below.
    pub app_database_url: Option<SecretString>,
    /// The unprivileged Postgres role requests run as (created when missing).
    pub postgres_app_role: String,
    pub database_max_connections: u32,
    /// The root key (base64 of 32 bytes); default: the file `root.key` in `data_dir`.
    pub root_key: Option<SecretString>,
    pub root_key_provider: RootKeyProvider,
    /// The KMS key the root key is wrapped under (`aws-kms`): key id, ARN or `alias/…`.
    pub kms_key_id: Option<String>,
    pub kms_region: String,
    /// Default: AWS's regional endpoint.
    pub kms_endpoint: Option<String>,
    /// Default: the standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
    pub kms_access_key_id: Option<String>,
    pub kms_secret_access_key: Option<SecretString>,
    /// `iss` of every access token.
    pub issuer: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_family_max_age: Duration,
    /// How long a used refresh token may be presented again and get the same successor.
    pub refresh_reuse_grace: Duration,
    pub api_key_default_ttl: Duration,
    pub api_key_max_ttl: Duration,
    pub api_key_rotation_overlap: Duration,
    pub signing_key_rotation_period: Duration,
    /// Age at which a tenant's active key-encryption key is rotated on schedule.
    pub secrets_key_rotation_period: Duration,
    /// Lifetime of a lease on a stored secret when the request names none.
    pub lease_default_ttl: Duration,
    /// Longest a lease on a stored secret may live, renewals included.
    pub lease_max_ttl: Duration,
    /// How often expired leases are revoked and pending credential removals retried.
    pub lease_sweep_interval: Duration,
    /// Tolerated clock difference when checking token times.
    pub clock_skew: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,rampart_server=debug`.
    pub log_level: String,
    /// Directories the audit ledger is stored in, each ideally on its own volume; default
    /// `data_dir/ledger`.
    pub ledger_zones: Vec<PathBuf>,
    /// How many zones must have an audit record on disk before it is acknowledged (default: all).
    pub ledger_quorum: Option<usize>,
    pub ledger_checkpoint_interval: Duration,
    /// How long the ledger may hold an append to batch it with others.
    pub ledger_max_batch_wait: Duration,
    /// The ledger's origin (checkpoint signer name); default derived from the root key.
    pub ledger_origin: Option<String>,
    /// S3 zones with Object Lock (`s3://bucket/prefix?endpoint=…`), in addition to the
    /// directories; need a build with the `s3` feature.
    pub ledger_s3_zones: Vec<String>,
    pub ledger_s3_access_key_id: Option<String>,
    pub ledger_s3_secret_access_key: Option<SecretString>,
    /// Waits between a webhook delivery's attempts (jittered ±20 %).
    pub webhook_retry_schedule: rampart_webhooks::Schedule,
    /// An endpoint failing without a single success for this long is disabled.
    pub webhook_disable_after: Duration,
    /// How long an endpoint's previous secret keeps signing after a rotation.
    pub webhook_secret_overlap: Duration,
    /// Time limit of one delivery attempt.
    pub webhook_timeout: Duration,
    /// How often the delivery worker looks for due deliveries (it is also woken by new ones).
    pub webhook_poll_interval: Duration,
    /// Attempts in flight at once.
    pub webhook_concurrency: usize,
    /// Whether endpoints may be on loopback, private, link-local or other non-public addresses.
    pub webhook_allow_private_targets: bool,
    /// Where the event bus runs.
    pub bus: BusBackend,
    /// The NATS server of `bus = "nats"`.
    pub bus_nats_url: String,
    /// Whether bus payloads are encrypted under the topic key (they are always authenticated).
    pub bus_encrypt: bool,
}

/// Where the event bus runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusBackend {
    /// Inside this process (a single node).
    Memory,
    /// NATS JetStream (several nodes; needs a build with the `nats` feature).
    Nats,
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected `true` or `false`".into()),
    }
}

fn parse_schedule(s: &str) -> Result<rampart_webhooks::Schedule, String> {
    let delays = s
        .split(',')
        .map(str::trim)
        .map(|d| parse_duration(d).map_err(|e| format!("`{d}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if delays.len() > 20 || delays.iter().any(|d| *d > Duration::from_secs(7 * 86_400)) {
        return Err("expected at most 20 waits of at most 7d each".into());
    }
    rampart_webhooks::Schedule::new(delays, 0.2).map_err(|e| e.to_string())
}

/// Checks an AWS endpoint and region (`aws` builds only).
fn check_aws(endpoint: Option<&str>, region: &str) -> Result<(), String> {
    #[cfg(feature = "aws")]
    {
        rampart_aws::check_region(region)?;
        endpoint.map_or(Ok(()), |e| rampart_aws::parse_endpoint(e).map(|_| ()))
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (endpoint, region);
        Err("this build has no AWS support; build with `--features aws`".into())
    }
}

/// Whether `url` is an S3 zone this build can open.
fn check_s3_zone(url: &str) -> Result<(), String> {
    #[cfg(feature = "s3")]
    {
        rampart_ledger::s3::S3Location::parse(url).map(|_| ())
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = url;
        Err("this build has no S3 support; build with `--features s3`".into())
    }
}

impl Config {
    /// The database URL in effect.
    #[must_use]
    pub fn effective_database_url(&self) -> SecretString {
        self.database_url.clone().unwrap_or_else(|| {
            SecretString::new(format!(
                "sqlite://{}",
                self.data_dir.join("rampart.db").display()
            ))
        })
    }

    /// Whether the embedded SQLite store is in use.
    #[must_use]
    pub fn is_embedded(&self) -> bool {
        self.effective_database_url()
            .expose()
            .starts_with("sqlite:")
    }

    #[must_use]
    pub fn root_key_file(&self) -> PathBuf {
        self.data_dir.join("root.key")
    }

    /// Where the `aws-kms` provider keeps the wrapped root key.
    #[must_use]
    pub fn wrapped_root_key_file(&self) -> PathBuf {
        self.data_dir.join("root.key.kms")
    }

    /// The ledger zone directories in effect.
    #[must_use]
    pub fn effective_ledger_zones(&self) -> Vec<PathBuf> {
        if self.ledger_zones.is_empty() {
            vec![self.data_dir.join("ledger")]
        } else {
            self.ledger_zones.clone()
        }
    }

    /// The built-in defaults with `data_dir` set, ignoring files and the environment.
    pub fn defaults_for(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_from(
            Some(Path::new("/dev/null")),
            &|_| None,
            &Overrides {
                data_dir: Some(data_dir.to_owned()),
                listen: None,
            },
        )
    }

    /// Loads the configuration. `file` is `--config` when given; otherwise `rampart.toml` in the
    /// working directory is read if it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, &|k| std::env::var(k).ok(), overrides)
    }

    /// [`Config::load`] with an injected environment.
    pub fn load_from(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut l = Layers::new(file, env)?;
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| l.plain("data_dir").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./rampart-data"));
        let listen = match &overrides.listen {
            Some(s) => l.parse_with("listen", s.clone(), "--listen", parse_socket_addr),
            None => l.field("listen", "127.0.0.1:7420", parse_socket_addr),
        };
        let database_url = l.secret("database_url").and_then(|u| {
            let ok = ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| u.expose().starts_with(p));
            if ok {
                Some(u)
            } else {
                l.error(
                    "database_url",
                    "expected a `sqlite://` or `postgres://` url",
                );
                None
            }
        });
        let app_database_url = l.secret("app_database_url");
        let postgres_app_role = l.field("postgres_app_role", "rampart_app", |s| {
            let ok = !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !s.as_bytes()[0].is_ascii_digit();
            ok.then(|| s.to_owned()).ok_or_else(|| {
                "expected a lowercase Postgres identifier such as `rampart_app`".into()
            })
        });
        let database_max_connections = l.field("database_max_connections", "16", |s| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| "expected a number from 1 to 1000".into())
        });
        let root_key = l
            .secret("root_key")
            .and_then(|k| match RootKey::parse(k.expose()) {
                Ok(_) => Some(k),
                Err(_) => {
                    l.error("root_key", "expected the base64 of 32 bytes");
                    None
                }
            });
        let root_key_provider = l.field("root_key_provider", "file", |s| match s {
            "file" => Ok(RootKeyProvider::File),
            "aws-kms" => Ok(RootKeyProvider::AwsKms),
            _ => Err("expected `file` or `aws-kms`".into()),
        });
        let kms_key_id = l.field("kms_key_id", "", |s| {
            if s.len() > 2048 {
                return Err(
                    "expected a KMS key id, ARN or alias of at most 2048 characters".into(),
                );
            }
            Ok((!s.is_empty()).then(|| s.to_owned()))
        });
        let kms_region = l.plain("kms_region").unwrap_or_else(|| "us-east-1".into());
        let kms_endpoint = l.plain("kms_endpoint");
        let kms_access_key_id = l.plain("kms_access_key_id");
        let kms_secret_access_key = l.secret("kms_secret_access_key");
        if root_key_provider == Some(RootKeyProvider::AwsKms) {
            if let Err(e) = check_aws(kms_endpoint.as_deref(), &kms_region) {
                l.error("root_key_provider", &format!("`aws-kms`: {e}"));
            }
            if kms_key_id.as_ref().is_some_and(Option::is_none) {
                l.error("root_key_provider", "`aws-kms` needs `kms_key_id`");
            }
            if root_key.is_some() {
                l.error(
                    "root_key",
                    "is not used with `root_key_provider = \"aws-kms\"`; unset one of them",
                );
            }
            if kms_access_key_id.is_some() != kms_secret_access_key.is_some() {
                l.error(
                    "kms_access_key_id",
                    "set both `kms_access_key_id` and `kms_secret_access_key`, or neither",
                );
            }
        }
        let issuer = l.field("issuer", "rampart", |s| {
            (!s.trim().is_empty() && s.len() <= 256)
                .then(|| s.to_owned())
                .ok_or_else(|| "expected a non-empty name of at most 256 characters".into())
        });
        let access_token_ttl = l.duration("access_token_ttl", "15m", "1m", "24h");
        let refresh_token_ttl = l.duration("refresh_token_ttl", "7d", "1m", "365d");
        let refresh_family_max_age = l.duration("refresh_family_max_age", "30d", "1m", "3650d");
        let refresh_reuse_grace = l.duration("refresh_reuse_grace", "5s", "0s", "60s");
        let api_key_default_ttl = l.duration("api_key_default_ttl", "90d", "1h", "3650d");
        let api_key_max_ttl = l.duration("api_key_max_ttl", "365d", "1h", "3650d");
        let api_key_rotation_overlap = l.duration("api_key_rotation_overlap", "24h", "0s", "30d");
        let signing_key_rotation_period =
            l.duration("signing_key_rotation_period", "30d", "1h", "365d");
        let secrets_key_rotation_period =
            l.duration("secrets_key_rotation_period", "90d", "1h", "3650d");
        let lease_default_ttl = l.duration("lease_default_ttl", "1h", "1s", "30d");
        let lease_max_ttl = l.duration("lease_max_ttl", "24h", "1s", "365d");
        let lease_sweep_interval = l.duration("lease_sweep_interval", "10s", "1s", "1h");
        let clock_skew = l.duration("clock_skew", "30s", "0s", "5m");
        let max_body_bytes = l.field("max_body_bytes", "1048576", |s| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1024..=64 * 1024 * 1024).contains(n))
                .ok_or_else(|| "expected a byte count from 1024 to 67108864".into())
        });
        let request_timeout = l.duration("request_timeout", "30s", "1s", "10m");
        let log_format = l.field("log_format", "json", |s| match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err("expected `json` or `text`".into()),
        });
        let ledger_zones = l.field("ledger_zones", "", |s| {
            Ok::<_, String>(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect::<Vec<_>>(),
            )
        });
        let ledger_s3_zones = l.field("ledger_s3_zones", "", |s| {
            let urls: Vec<String> = s
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            for url in &urls {
                check_s3_zone(url)?;
            }
            Ok::<_, String>(urls)
        });
        let ledger_s3_access_key_id = l.plain("ledger_s3_access_key_id");
        let ledger_s3_secret_access_key = l.secret("ledger_s3_secret_access_key");
        if ledger_s3_zones.as_ref().is_some_and(|z| !z.is_empty())
            && (ledger_s3_access_key_id.is_none() || ledger_s3_secret_access_key.is_none())
        {
            l.error(
                "ledger_s3_zones",
                "need `ledger_s3_access_key_id` and `ledger_s3_secret_access_key`",
            );
        }
        let ledger_quorum = l.field("ledger_quorum", "0", |s| {
            s.parse::<usize>()
                .map(|n| (n > 0).then_some(n))
                .map_err(|_| "expected a number of zones".into())
        });
        let ledger_checkpoint_interval =
            l.duration("ledger_checkpoint_interval", "5m", "1s", "24h");
        let ledger_max_batch_wait = l.duration("ledger_max_batch_wait", "0ms", "0ms", "100ms");
        let ledger_origin = l.field("ledger_origin", "", |s| {
            if s.is_empty() {
                return Ok(None);
            }
            let ok = !s.chars().any(|c| c == '+' || c.is_whitespace());
            ok.then(|| Some(s.to_owned())).ok_or_else(|| {
                "expected a name without spaces or `+`, such as `example.com/audit`".into()
            })
        });
        let webhook_retry_schedule = l.field(
            "webhook_retry_schedule",
            "5s,5m,30m,2h,5h,10h,10h",
            parse_schedule,
        );
        let webhook_disable_after = l.duration("webhook_disable_after", "5d", "1m", "60d");
        let webhook_secret_overlap = l.duration("webhook_secret_overlap", "24h", "0s", "30d");
        let webhook_timeout = l.duration("webhook_timeout", "15s", "100ms", "2m");
        let webhook_poll_interval = l.duration("webhook_poll_interval", "1s", "10ms", "1m");
        let webhook_concurrency = l.field("webhook_concurrency", "16", |s| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| "expected a number from 1 to 256".into())
        });
        let webhook_allow_private_targets =
            l.field("webhook_allow_private_targets", "false", parse_bool);
        let bus = l.field("bus", "memory", |s| match s {
            "memory" => Ok(BusBackend::Memory),
            "nats" if cfg!(feature = "nats") => Ok(BusBackend::Nats),
            "nats" => Err("this build has no NATS support; build with `--features nats`".into()),
            _ => Err("expected `memory` or `nats`".into()),
        });
        let bus_nats_url = l.field("bus_nats_url", "nats://127.0.0.1:4222", |s| {
            (s.starts_with("nats://") || s.starts_with("tls://"))
                .then(|| s.to_owned())
                .ok_or_else(|| "expected a `nats://host:port` or `tls://host:port` url".into())
        });
        let bus_encrypt = l.field("bus_encrypt", "false", parse_bool);
        let log_level = l.field("log_level", "info", |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_owned())
                .map_err(|_| {
                    "expected a tracing filter such as `info` or `warn,rampart=debug`".into()
                })
        });

        // Relations between fields.
        if let (Some(a), Some(r)) = (access_token_ttl, refresh_token_ttl)
            && r < a
        {
            l.error(
                "refresh_token_ttl",
                "must not be shorter than `access_token_ttl`",
            );
        }
        if let (Some(r), Some(f)) = (refresh_token_ttl, refresh_family_max_age)
            && f < r
        {
            l.error(
                "refresh_family_max_age",
                "must not be shorter than `refresh_token_ttl`",
            );
        }
        if let (Some(d), Some(m)) = (lease_default_ttl, lease_max_ttl)
            && d > m
        {
            l.error(
                "lease_default_ttl",
                "must not be longer than `lease_max_ttl`",
            );
        }
        if let (Some(d), Some(m)) = (api_key_default_ttl, api_key_max_ttl)
            && d > m
        {
            l.error(
                "api_key_default_ttl",
                "must not be longer than `api_key_max_ttl`",
            );
        }
        if let (Some(zones), Some(s3), Some(Some(q))) =
            (&ledger_zones, &ledger_s3_zones, ledger_quorum)
        {
            let n = zones.len().max(1) + s3.len();
            if q > n {
                l.error(
                    "ledger_quorum",
                    &format!("is {q}, but there are only {n} ledger zones"),
                );
            }
        }
        if let (Some(a), Some(p)) = (access_token_ttl, signing_key_rotation_period)
            && p <= a
        {
            l.error(
                "signing_key_rotation_period",
                "must be longer than `access_token_ttl`",
            );
        }
        l.finish()?;
        // finish() succeeded, so every field parsed and each `?` below passes.
        let config = (|| {
            Some(Config {
                data_dir,
                listen: listen?,
                database_url,
                app_database_url,
                postgres_app_role: postgres_app_role?,
                database_max_connections: database_max_connections?,
                root_key,
                root_key_provider: root_key_provider?,
                kms_key_id: kms_key_id?,
                kms_region,
                kms_endpoint,
                kms_access_key_id,
                kms_secret_access_key,
                issuer: issuer?,
                access_token_ttl: access_token_ttl?,
                refresh_token_ttl: refresh_token_ttl?,
                refresh_family_max_age: refresh_family_max_age?,
                refresh_reuse_grace: refresh_reuse_grace?,
                api_key_default_ttl: api_key_default_ttl?,
                api_key_max_ttl: api_key_max_ttl?,
                api_key_rotation_overlap: api_key_rotation_overlap?,
                signing_key_rotation_period: signing_key_rotation_period?,
                secrets_key_rotation_period: secrets_key_rotation_period?,
                lease_default_ttl: lease_default_ttl?,
                lease_max_ttl: lease_max_ttl?,
                lease_sweep_interval: lease_sweep_interval?,
                clock_skew: clock_skew?,
                max_body_bytes: max_body_bytes?,
                request_timeout: request_timeout?,
                log_format: log_format?,
                log_level: log_level?,
                ledger_zones: ledger_zones?,
                ledger_quorum: ledger_quorum?,
                ledger_checkpoint_interval: ledger_checkpoint_interval?,
                ledger_max_batch_wait: ledger_max_batch_wait?,
                ledger_origin: ledger_origin?,
                ledger_s3_zones: ledger_s3_zones?,
                ledger_s3_access_key_id,
                ledger_s3_secret_access_key,
                webhook_retry_schedule: webhook_retry_schedule?,
                webhook_disable_after: webhook_disable_after?,
                webhook_secret_overlap: webhook_secret_overlap?,
                webhook_timeout: webhook_timeout?,
                webhook_poll_interval: webhook_poll_interval?,
                webhook_concurrency: webhook_concurrency?,
                webhook_allow_private_targets: webhook_allow_private_targets?,
                bus: bus?,
                bus_nats_url: bus_nats_url?,
                bus_encrypt: bus_encrypt?,
            })
        })();
        config
            .ok_or_else(|| ConfigError(vec!["a setting failed to parse without a message".into()]))
    }
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "expected an address such as `127.0.0.1:7420`".into())
}

/// Values given on the command line, which win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// Every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for line in &self.0 {
            writeln!(f, "  - {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

const SECRET_KEYS: &[&str] = &[
    "database_url",
    "app_database_url",
    "root_key",
    "kms_secret_access_key",
    "ledger_s3_secret_access_key",
];
const PLAIN_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "postgres_app_role",
    "database_max_connections",
    "issuer",
    "access_token_ttl",
    "refresh_token_ttl",
    "refresh_family_max_age",
    "refresh_reuse_grace",
    "api_key_default_ttl",
    "api_key_max_ttl",
    "api_key_rotation_overlap",
    "signing_key_rotation_period",
    "secrets_key_rotation_period",
    "lease_default_ttl",
    "lease_max_ttl",
    "lease_sweep_interval",
    "clock_skew",
    "max_body_bytes",
    "request_timeout",
    "log_format",
    "log_level",
    "ledger_zones",
    "ledger_quorum",
    "ledger_checkpoint_interval",
    "ledger_max_batch_wait",
    "ledger_origin",
    "ledger_s3_zones",
    "ledger_s3_access_key_id",
    "root_key_provider",
    "kms_key_id",
    "kms_region",
    "kms_endpoint",
    "kms_access_key_id",
    "webhook_retry_schedule",
    "webhook_disable_after",
    "webhook_secret_overlap",
    "webhook_timeout",
    "webhook_poll_interval",
    "webhook_concurrency",
    "webhook_allow_private_targets",
    "bus",
    "bus_nats_url",
    "bus_encrypt",
];

struct Layers<'a> {
    file: BTreeMap<String, toml::Value>,
    file_name: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<String>,
}

impl<'a> Layers<'a> {
    fn new(
        path: Option<&Path>,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (text, file_name) = match path {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => (Some(t), p.display().to_string()),
                Err(e) => {
                    return Err(ConfigError(vec![format!(
                        "cannot read the configuration file `{}`: {e}",
                        p.display()
                    )]));
                }
            },
            None => (
                std::fs::read_to_string(DEFAULT_CONFIG_FILE).ok(),
                DEFAULT_CONFIG_FILE.to_owned(),
            ),
        };
        let mut errors = Vec::new();
        let mut file = BTreeMap::new();
        if let Some(text) = text {
            match text.parse::<toml::Table>() {
                Ok(table) => {
                    for (k, v) in table {
                        let known = PLAIN_KEYS.contains(&k.as_str())
                            || SECRET_KEYS.contains(&k.as_str())
                            || SECRET_KEYS
                                .iter()
                                .any(|s| k.strip_suffix("_file") == Some(s));
                        if known {
                            file.insert(k, v);
                        } else {
                            errors.push(format!("{file_name}: unknown setting `{k}`"));
                        }
                    }
                }
                Err(e) => {
                    return Err(ConfigError(vec![format!(
                        "{file_name} is not valid TOML: {}",
                        e.message()
                    )]));
                }
            }
        }
        Ok(Self {
            file,
            file_name,
            env,
            errors,
        })
    }

    fn error(&mut self, key: &str, msg: &str) {
        self.errors.push(format!("`{key}`: {msg}"));
    }

    /// A plain value and where it came from; the environment wins over the file.
    fn raw(&mut self, key: &str) -> Option<(String, String)> {
        let var = format!("RAMPART_{}", key.to_ascii_uppercase());
        if let Some(v) = (self.env)(&var) {
            return Some((v, var));
        }
        match self.file.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some((s.clone(), self.file_name.clone())),
            Some(toml::Value::Integer(i)) => Some((i.to_string(), self.file_name.clone())),
            Some(toml::Value::Array(items)) if items.iter().all(toml::Value::is_str) => Some((
                items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                self.file_name.clone(),
            )),
            Some(_) => {
                let what = format!("in {}: expected a string or a number", self.file_name);
                self.error(key, &what);
                None
            }
        }
    }

    fn plain(&mut self, key: &str) -> Option<String> {
        self.raw(key).map(|(v, _)| v)
    }

    fn parse_with<T>(
        &mut self,
        key: &str,
        value: String,
        source: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value.trim()) {
            Ok(v) => Some(v),
            Err(msg) => {
                // Plain settings are not secret, so the bad value can be quoted.
                let shown = rampart_types::truncate_for_display(&value);
                self.errors
                    .push(format!("`{key}` (from {source}): {msg}, got `{shown}`"));
                None
            }
        }
    }

    fn field<T>(
        &mut self,
        key: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (value, source) = self
            .raw(key)
            .unwrap_or_else(|| (default.to_owned(), "the default".to_owned()));
        self.parse_with(key, value, &source, parse)
    }

    fn duration(&mut self, key: &str, default: &str, min: &str, max: &str) -> Option<Duration> {
        let (lo, hi) = match (parse_duration(min), parse_duration(max)) {
            (Ok(lo), Ok(hi)) => (lo, hi),
            _ => return None,
        };
        self.field(key, default, move |s| {
            let d = parse_duration(s)
                .map_err(|_| "expected a duration such as `15m`, `24h` or `90d`".to_owned())?;
            if d < lo || d > hi {
                return Err(format!(
                    "must be between {} and {}",
                    format_duration(lo),
                    format_duration(hi)
                ));
            }
            Ok(d)
        })
    }

    /// A secret from `RAMPART_<KEY>`, `RAMPART_<KEY>_FILE`, `<key>` or `<key>_file` in the file.
    /// Error messages never include the value.
    fn secret(&mut self, key: &str) -> Option<SecretString> {
        let var = format!("RAMPART_{}", key.to_ascii_uppercase());
        let file_var = format!("{var}_FILE");
        let direct = (self.env)(&var);
        let from_file = (self.env)(&file_var);
        if direct.is_some() && from_file.is_some() {
            self.error(key, &format!("set either {var} or {file_var}, not both"));
            return None;
        }
        if let Some(v) = direct {
            return Some(SecretString::new(v));
        }
        if let Some(path) = from_file {
            return self.read_secret_file(key, &path, &file_var);
        }
        let file_key = format!("{key}_file");
        match (
            self.file.get(key).cloned(),
            self.file.get(&file_key).cloned(),
        ) {
            (Some(_), Some(_)) => {
                self.error(
                    key,
                    &format!(
                        "set either `{key}` or `{file_key}` in {}, not both",
                        self.file_name
                    ),
                );
                None
            }
            (Some(toml::Value::String(s)), None) => Some(SecretString::new(s)),
            (None, Some(toml::Value::String(p))) => {
                let source = format!("`{file_key}` in {}", self.file_name);
                self.read_secret_file(key, &p, &source)
            }
            (None, None) => None,
            _ => {
                self.error(key, "expected a string");
                None
            }
        }
    }

    fn read_secret_file(&mut self, key: &str, path: &str, source: &str) -> Option<SecretString> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = SecretString::new(text);
                Some(SecretString::new(
                    text.expose().trim_end_matches(['\n', '\r']).to_owned(),
                ))
            }
            Err(e) => {
                self.error(key, &format!("cannot read `{path}` (from {source}): {e}"));
                None
            }
        }
    }

    fn finish(&mut self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(std::mem::take(&mut self.errors)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], toml: Option<&str>) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.toml");
        let file = toml.map(|t| {
            std::fs::write(&path, t).unwrap();
            path.as_path()
        });
        Config::load_from(file, &|k| vars.get(k).cloned(), &Overrides::default())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(&[], None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7420");
        assert_eq!(c.data_dir, PathBuf::from("./rampart-data"));
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert!(c.refresh_reuse_grace <= Duration::from_secs(10));
        assert_eq!(c.api_key_default_ttl, Duration::from_secs(90 * 86_400));
        assert_eq!(c.api_key_rotation_overlap, Duration::from_secs(86_400));
        assert!(c.is_embedded());
        assert_eq!(
            c.effective_database_url().expose(),
            "sqlite://./rampart-data/rampart.db"
        );
    }

    #[test]
    fn env_wins_over_file_and_flags_win_over_env() {
        let c = load(
            &[
                ("RAMPART_LISTEN", "127.0.0.1:9000"),
                ("RAMPART_ISSUER", "from-env"),
            ],
            Some(
                "listen = \"127.0.0.1:8000\"\nissuer = \"from-file\"\naccess_token_ttl = \"5m\"\n",
            ),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.issuer, "from-env");
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        let c = Config::load_from(
            None,
            &|k| (k == "RAMPART_LISTEN").then(|| "127.0.0.1:9000".to_owned()),
            &Overrides {
                listen: Some("127.0.0.1:9100".into()),
                data_dir: Some("/tmp/x".into()),
            },
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn every_bad_field_gets_its_own_message() {
        let err = load(
            &[
                ("RAMPART_LISTEN", "not-an-address"),
                ("RAMPART_ACCESS_TOKEN_TTL", "forever"),
                ("RAMPART_REFRESH_REUSE_GRACE", "5m"),
                ("RAMPART_LOG_FORMAT", "xml"),
            ],
            Some("typo_setting = 1\nmax_body_bytes = 3\n"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 6, "{text}");
        for needle in [
            "unknown setting `typo_setting`",
            "`listen` (from RAMPART_LISTEN)",
            "`access_token_ttl` (from RAMPART_ACCESS_TOKEN_TTL): expected a duration",
            "`refresh_reuse_grace` (from RAMPART_REFRESH_REUSE_GRACE): must be between 0ms and 1m",
            "`log_format`",
            "`max_body_bytes` (from ",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn ledger_settings() {
        let c = load(&[], None).unwrap();
        assert_eq!(
            c.effective_ledger_zones(),
            vec![PathBuf::from("./rampart-data/ledger")]
        );
        assert_eq!(c.ledger_quorum, None);
        assert_eq!(c.ledger_checkpoint_interval, Duration::from_secs(300));
        let c = load(
            &[
                ("RAMPART_LEDGER_QUORUM", "2"),
                ("RAMPART_LEDGER_CHECKPOINT_INTERVAL", "1s"),
            ],
            Some("ledger_zones = [\"/a\", \"/b\", \"/c\"]\n"),
        )
        .unwrap();
        assert_eq!(c.effective_ledger_zones().len(), 3);
        assert_eq!(c.ledger_quorum, Some(2));
        let err = load(
            &[
                ("RAMPART_LEDGER_ZONES", "/a,/b"),
                ("RAMPART_LEDGER_QUORUM", "3"),
                ("RAMPART_LEDGER_CHECKPOINT_INTERVAL", "500ms"),
            ],
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("only 2 ledger zones") && text.contains("`ledger_checkpoint_interval`"),
            "{text}"
        );
    }

    #[test]
    fn relations_between_fields_are_checked() {
        let err = load(&[("RAMPART_API_KEY_DEFAULT_TTL", "400d")], None).unwrap_err();
        assert!(
            err.to_string()
                .contains("must not be longer than `api_key_max_ttl`")
        );
    }

    /// Every setting the configuration reference documents is accepted in `rampart.toml` (a value
    /// may still be refused, but never the setting's name).
    #[test]
    fn every_documented_setting_is_known_to_the_file() {
        let doc = include_str!("../../../docs/configuration.md");
        let keys: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        assert!(keys.len() > 30 && keys.contains(&"kms_key_id"), "{keys:?}");
        for key in keys {
            let e = load(&[], Some(&format!("{key} = \"x\"\n")))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!e.contains("unknown setting"), "{key}: {e}");
        }
    }

    #[test]
    fn s3_ledger_zones_are_checked_and_their_secret_never_shows() {
        let zone = "s3://audit-bucket/node-1?endpoint=http://127.0.0.1:9000";
        let missing = load(&[("RAMPART_LEDGER_S3_ZONES", zone)], None).unwrap_err();
        #[cfg(feature = "s3")]
        assert!(
            missing.to_string().contains("ledger_s3_secret_access_key"),
            "{missing}"
        );
        #[cfg(not(feature = "s3"))]
        assert!(missing.to_string().contains("--features s3"), "{missing}");
        let with = [
            ("RAMPART_LEDGER_S3_ZONES", zone),
            ("RAMPART_LEDGER_S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("RAMPART_LEDGER_S3_SECRET_ACCESS_KEY", "s3-canary-secret-77"),
            ("RAMPART_LEDGER_QUORUM", "2"),
        ];
        #[cfg(feature = "s3")]
        {
            let c = load(&with, None).unwrap();
            assert_eq!(c.ledger_s3_zones, vec![zone.to_owned()]);
            assert!(!format!("{c:?}").contains("s3-canary-secret"));
            let bad = load(
                &[with[0], with[1], with[2], ("RAMPART_LEDGER_QUORUM", "3")],
                None,
            )
            .unwrap_err();
            assert!(bad.to_string().contains("only 2 ledger zones"), "{bad}");
            let bad = load(
                &[("RAMPART_LEDGER_S3_ZONES", "s3://x?endpoint=ftp://h")],
                None,
            )
            .unwrap_err();
            assert!(bad.to_string().contains("ledger_s3_zones"), "{bad}");
        }
        #[cfg(not(feature = "s3"))]
        assert!(load(&with, None).is_err());
    }

    #[test]
    fn secrets_come_from_env_files_or_toml_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("db-url");
        let canary = "postgres://rampart:canary-password-8d1f@db.internal/rampart";
        std::fs::write(&secret_file, format!("{canary}\n")).unwrap();
        let c = load(
            &[("RAMPART_DATABASE_URL_FILE", secret_file.to_str().unwrap())],
            None,
        )
        .unwrap();
        assert_eq!(c.database_url.as_ref().unwrap().expose(), canary);
        let debug = format!("{c:?}");
        assert!(!debug.contains("canary-password"), "{debug}");
        assert!(debug.contains("[REDACTED]"));

        let c = load(
            &[],
            Some(&format!(
                "database_url_file = \"{}\"\n",
                secret_file.display()
            )),
        )
        .unwrap();
        assert_eq!(c.database_url.as_ref().unwrap().expose(), canary);

        let err = load(
            &[
                ("RAMPART_DATABASE_URL", "postgres://x"),
                ("RAMPART_DATABASE_URL_FILE", "/nope"),
            ],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"));

        // A bad secret is reported without echoing it.
        let err = load(&[("RAMPART_ROOT_KEY", "canary-not-base64")], None).unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
        let err = load(&[("RAMPART_DATABASE_URL", "mysql://canary")], None).unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
    }

    #[test]
    fn a_missing_config_file_given_explicitly_is_an_error() {
        let err = Config::load_from(
            Some(Path::new("/definitely/not/here.toml")),
            &|_| None,
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read the configuration file")
        );
    }
}
