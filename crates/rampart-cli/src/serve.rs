use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rampart_server::{Config, Overrides, RootKeySource, StartOptions, bootstrap};
use rampart_store::{Scope, TenantScope};

use crate::ConfigArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (default `127.0.0.1:7420`; also `RAMPART_LISTEN`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn load_config(args: &ConfigArgs, listen: Option<String>) -> Result<Config, ExitCode> {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        listen,
    };
    Config::load(args.config.as_deref(), &overrides).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

/// Panics are logged without their payload's secrets: the message goes through the credential
/// scrubber, and the default hook (which prints raw payloads) is replaced.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            %location,
            message = %rampart_identity::redact_credentials(&payload),
            "panic"
        );
    }));
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config, args.listen) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    rampart_server::telemetry::init(config.log_format, &config.log_level, std::io::stderr);
    install_panic_hook();
    let listen = config.listen;
    // Bind first: a taken port is reported before anything is created on disk.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    #[cfg(feature = "aws")]
    let config_root_key_file = config.root_key_file();
    let started = rampart_server::start(config, StartOptions::default())
        .await
        .context("start-up failed")?;
    if let RootKeySource::File { path, created } = &started.root_key_source {
        let verb = if *created { "created" } else { "using" };
        eprintln!(
            "WARNING: {verb} the local root key file {path}. It is for single-node use only: \
             anyone who reads it can decrypt what Rampart protects. Back it up, keep it private, \
             and use a KMS-wrapped root key in production."
        );
    }
    #[cfg(feature = "aws")]
    if let RootKeySource::AwsKms { path, key_id, how } = &started.root_key_source {
        use rampart_server::kms_root::Unwrapped;
        match how {
            Unwrapped::Existing => {}
            Unwrapped::Created => eprintln!(
                "created a root key wrapped under KMS key {key_id} in {path}; without that KMS \
                 key the data cannot be read, so do not schedule its deletion."
            ),
            Unwrapped::Imported => eprintln!(
                "WARNING: wrapped the local root key file under KMS key {key_id} into {path}. \
                 Delete the plaintext file {} now (after checking your backups are encrypted).",
                config_root_key_file.display()
            ),
        }
    }
    if let Some(key) = &started.operator_key {
        // Straight to the terminal, never through the logger: the key is in no log line.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "\n================================================================================\n\
             Rampart is initialised. The operator API key (shown ONCE; store it now):\n\n    \
             {}\n\n\
             It holds every capability in the system tenant. Exchange it for an access token:\n  \
             curl -s http://{listen}/v1/auth/token -H 'content-type: application/json' \\\n    \
             -d '{{\"grant_type\":\"api_key\",\"api_key\":\"<the key>\"}}'\n\
             If it is lost, run `rampart operator recover` on this host.\n\
             ================================================================================\n",
            key.expose()
        );
        let _ = out.flush();
    }
    let bound = listener.local_addr().unwrap_or(listen);
    tracing::info!(listen = %bound, "rampart is listening");
    rampart_server::serve(started.state, listener, shutdown_signal())
        .await
        .context("server error")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

pub async fn recover_operator(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    rampart_server::telemetry::init(config.log_format, "warn", std::io::stderr);
    let (root, _) = rampart_server::state::root_key(&config)?;
    let store = rampart_server::state::open_store(&config, &root).await?;
    bootstrap::check_root_key(&store, &root).await?;
    let system = bootstrap::system_tenant(&store)
        .await?
        .context("this data directory was never initialised; run `rampart serve` first")?;
    let pepper = root
        .derive(rampart_server::state::PEPPER_LABEL)?
        .into_hmac()?;
    let now = rampart_types::Clock::now(&rampart_types::SystemClock);
    // Recorded in the ledger like every other decision: fails (before anything is issued) while
    // a running server holds the ledger. Opened before the transaction, which would otherwise
    // hold the embedded store's only writer connection that claiming the origin needs.
    let audit = rampart_server::state::open_ledger(&config, &root, &store)
        .await
        .context("the recovery must be recorded in the audit ledger; stop the server first")?;
    let mut tx = store
        .begin(Scope::Tenant(TenantScope {
            tenant: system,
            subject: "operator-recovery".into(),
            platform: true,
        }))
        .await?;
    let key = bootstrap::issue_operator_key(
        &mut tx,
        &pepper,
        &audit,
        system,
        now,
        &config,
        "operator-recovery",
    )
    .await?;
    tx.commit().await?;
    store.close().await;
    let ledger = audit.ledger.clone();
    tokio::task::spawn_blocking(move || ledger.shutdown()).await?;
    println!("{}", key.expose());
    eprintln!(
        "A new operator key was issued (printed above, once) and recorded in the audit trail. \
         Revoke the lost one with `rampart apikey revoke <id>`."
    );
    Ok(ExitCode::SUCCESS)
}
