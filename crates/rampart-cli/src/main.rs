//! `rampart`: the one binary. `serve` runs the server; the other commands are clients of a
//! running server's API (or, for `operator recover`, of the data directory on this host).

mod audit;
mod bench;
mod client;
mod secret;
mod sentinel;
mod serve;
mod token;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rampart", version, about = "Rampart: a security spine for AI agents", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite and local files unless configured otherwise).
    Serve(serve::ServeArgs),
    /// Create and list tenants (needs `tenants:admin`).
    Tenant {
        #[command(subcommand)]
        command: client::TenantCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Create, list, rotate and revoke API keys (needs `apikeys:manage`).
    Apikey {
        #[command(subcommand)]
        command: client::ApikeyCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Read and write the tenant's secrets (needs `secrets:read` / `secrets:write`); values go
    /// through standard input and output, never the command line.
    Secret {
        #[command(subcommand)]
        command: secret::SecretCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Access-token helpers: get one, decode one, verify one offline, rotate the signing key.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The tamper-evident audit ledger: verify it offline, print its verifier key.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Break-glass operations on this host's data directory.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The PII Sentinel offline: scan or redact JSON lines, or evaluate on a labelled corpus.
    Sentinel {
        #[command(subcommand)]
        command: sentinel::SentinelCommand,
    },
    /// Standard Webhooks signatures: sign a body, or verify a received one.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Benchmark harnesses (each figure beside its baseline, reported as a ratio).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Mint a new operator API key directly in the store (for when the first one is lost).
    /// Needs the root key and the database, so only works where the server's data lives. The
    /// new key is printed once and the event is audited.
    Recover(ConfigArgs),
}

/// Where the server's configuration is.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// Configuration file (default: `rampart.toml` in the working directory, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (default `./rampart-data`; also `RAMPART_DATA_DIR`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Tenant { command, conn } => client::tenant(command, conn).await,
            Command::Apikey { command, conn } => client::apikey(command, conn).await,
            Command::Secret { command, conn } => secret::run(command, conn).await,
            Command::Token { command } => token::run(command).await,
            Command::Audit { command } => audit::run(command).await,
            Command::Operator {
                command: OperatorCommand::Recover(args),
            } => serve::recover_operator(args).await,
            Command::Webhook { command } => webhook::run(command),
            Command::Sentinel { command } => sentinel::run(command),
            Command::Bench { command } => bench::run(command).await,
            Command::Version => {
                println!("rampart {}", env!("CARGO_PKG_VERSION"));
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
