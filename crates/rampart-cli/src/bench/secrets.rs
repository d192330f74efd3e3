//! `rampart bench secrets`: secret reads through the whole stack (token check, tenant-scoped
//! transaction, KEK unwrap, data-key unwrap, value decrypt, audit record fsynced into the ledger,
//! commit) beside an authenticated read without them, on SQLite and Postgres; then a break-glass
//! rotation that re-wraps every secret of a tenant, timed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rampart_secrets::SecretPath;
use rampart_server::Config;
use rampart_server::secrets::Cas;
use rampart_store::{Scope, TenantScope};
use rampart_testkit::PgTestDb;
use serde_json::{Value, json};

use super::auth::{Load, load};
use super::{BenchServer, PostgresArgs, postgres_config, scratch_dir};

#[derive(Args, Debug)]
pub struct SecretsArgs {
    /// Seconds per HTTP measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Secrets re-wrapped by the break-glass rotation.
    #[arg(long, default_value_t = 100_000)]
    rewrap_secrets: u64,
    #[command(flatten)]
    pg: PostgresArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

struct Measured {
    backend: &'static str,
    secret_read: Load,
    plain_read: Load,
    seed_s: f64,
    rewrap_s: f64,
    rewrapped: u64,
}

/// Writes `n` secrets (1,000 per transaction) straight through the service.
async fn seed(state: &rampart_server::AppState, n: u64) -> anyhow::Result<f64> {
    let scope = Scope::Tenant(TenantScope {
        tenant: state.system_tenant,
        subject: "bench".into(),
        platform: false,
    });
    let started = Instant::now();
    let mut written = 0;
    while written < n {
        let mut tx = state.store.begin(scope.clone()).await?;
        let batch = (n - written).min(1000);
        for i in written..written + batch {
            let path: SecretPath = format!("bench/{i:08}").parse()?;
            state
                .secrets
                .put(
                    &mut tx,
                    state.system_tenant,
                    &path,
                    format!("value-{i}").as_bytes(),
                    Cas::Any,
                    state.clock.now(),
                )
                .await?;
        }
        tx.commit().await?;
        written += batch;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn measure_backend(
    backend: &'static str,
    config: Config,
    args: &SecretsArgs,
) -> anyhow::Result<Measured> {
    let server = BenchServer::start(config).await?;
    let (base, http, state) = (&server.base, &server.http, &server.state);
    let token = server.operator_token().await?;
    let written: Value = http
        .put(format!("{base}/v1/secrets/data/bench/read"))
        .bearer_auth(&token)
        .json(&json!({ "value": "0123456789abcdef0123456789abcdef" }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(written["version"] == 1, "writing the secret: {written}");
    let tenant = state.system_tenant;
    let secret_url = format!("{base}/v1/secrets/data/bench/read");
    let plain_url = format!("{base}/v1/tenants/{tenant}");
    let _warm = load(&secret_url, Some(&token), 1, args.concurrency).await;
    let plain_read = load(&plain_url, Some(&token), args.seconds, args.concurrency).await;
    let secret_read = load(&secret_url, Some(&token), args.seconds, args.concurrency).await;

    let seed_s = seed(state, args.rewrap_secrets).await?;
    // A fresh token: seeding may outlast the first.
    let token = server.operator_token().await?;
    let t = Instant::now();
    let rotated: Value = http
        .post(format!("{base}/v1/secrets/keys/break-glass"))
        .bearer_auth(&token)
        .json(&json!({ "reason": "benchmark" }))
        .timeout(std::time::Duration::from_secs(3600))
        .send()
        .await?
        .json()
        .await?;
    let rewrap_s = t.elapsed().as_secs_f64();
    let rewrapped = rotated["rewrapped"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        rewrapped == args.rewrap_secrets + 1,
        "the break-glass rotation re-wrapped {rewrapped}: {rotated}"
    );
    server.stop().await;
    Ok(Measured {
        backend,
        secret_read,
        plain_read,
        seed_s,
        rewrap_s,
        rewrapped,
    })
}

pub async fn run(args: SecretsArgs) -> anyhow::Result<ExitCode> {
    let dir = scratch_dir(&std::env::temp_dir())?;
    let mut sqlite_cfg = Config::defaults_for(&dir.join("sqlite"))?;
    sqlite_cfg.log_level = "warn".into();
    sqlite_cfg.request_timeout = std::time::Duration::from_secs(3600);
    let mut results = vec![measure_backend("sqlite", sqlite_cfg, &args).await?];
    if !args.pg.no_postgres {
        let db = PgTestDb::try_create_on(&args.pg.postgres)
            .await
            .context("creating a throwaway benchmark database")?;
        let mut cfg = postgres_config(&dir.join("postgres"), &db)?;
        cfg.log_level = "warn".into();
        cfg.request_timeout = std::time::Duration::from_secs(3600);
        results.push(measure_backend("postgres", cfg, &args).await?);
        db.try_drop().await?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    if args.json {
        let out = json!({
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "backends": results.iter().map(|m| json!({
                "backend": m.backend,
                "secret_reads_per_s": m.secret_read.rps.round(),
                "secret_read_p50_ms": m.secret_read.p50_ms,
                "secret_read_p99_ms": m.secret_read.p99_ms,
                "secret_read_errors": m.secret_read.errors,
                "plain_reads_per_s": m.plain_read.rps.round(),
                "plain_read_p99_ms": m.plain_read.p99_ms,
                "secret_vs_plain": m.secret_read.rps / m.plain_read.rps,
                "secrets": args.rewrap_secrets + 1,
                "rewrapped": m.rewrapped,
                "seed_s": m.seed_s,
                "break_glass_rewrap_s": m.rewrap_s,
                "rewrapped_per_s": m.rewrapped as f64 / m.rewrap_s,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "HTTP over loopback, {} clients, {} s each (client and server share the machine):",
        args.concurrency, args.seconds
    );
    println!(
        "{:<9} {:>15} {:>8} {:>8} {:>14} {:>8} {:>7} {:>18}",
        "backend",
        "secret reads/s",
        "p50 ms",
        "p99 ms",
        "plain reads/s",
        "p99 ms",
        "ratio",
        "break-glass re-wrap"
    );
    for m in &results {
        println!(
            "{:<9} {:>15.0} {:>8.2} {:>8.2} {:>14.0} {:>8.2} {:>7.2} {:>9} in {:>6.1} s",
            m.backend,
            m.secret_read.rps,
            m.secret_read.p50_ms,
            m.secret_read.p99_ms,
            m.plain_read.rps,
            m.plain_read.p99_ms,
            m.secret_read.rps / m.plain_read.rps,
            m.rewrapped,
            m.rewrap_s
        );
    }
    Ok(ExitCode::SUCCESS)
}
