//! `rampart bench auth`: token verification and authenticated requests through the full stack.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use rampart_crypto::SigningKey;
use rampart_identity::jwt::{sign_access_token, verify_access_token};
use rampart_identity::{AccessClaims, KeySet, TokenSigner, VerificationKey, VerifyOptions};
use rampart_server::Config;
use rampart_testkit::PgTestDb;
use rampart_types::{Capability, Clock, FamilyId, SystemClock, TenantId, TokenId};
use serde_json::{Value, json};

use super::{BenchServer, Latencies, postgres_config, scratch_dir};

#[derive(Args, Debug)]
pub struct AuthArgs {
    /// Seconds per HTTP measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Also measure on Postgres: an admin URL; a throwaway database is created and dropped.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Revocations of other principals recorded in the caller's tenant before the authenticated
    /// load is measured a second time (the lineage check must not slow down as they pile up).
    #[arg(long, default_value_t = 10_000)]
    revocations: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Verifications per second on one core: the full access-token check versus the bare Ed25519
/// signature check it contains.
fn bench_verify() -> anyhow::Result<(f64, f64)> {
    let signer = TokenSigner::new(SigningKey::generate()?);
    let keys = KeySet::new(vec![VerificationKey::new(signer.verifying_key(), None)]);
    let now = SystemClock.now();
    let claims = AccessClaims {
        iss: "rampart".into(),
        sub: "apikey:benchbenchben".into(),
        tenant_id: TenantId::random(),
        caps: [Capability::AuditRead, Capability::ApikeysManage]
            .into_iter()
            .collect(),
        jti: TokenId::random(),
        iat: now.unix_seconds(),
        nbf: now.unix_seconds(),
        exp: now.unix_seconds() + 900,
        fam: FamilyId::random(),
        mission: None,
        act: None,
        epoch: 0,
    };
    let token = sign_access_token(&signer, &claims)?;
    let opts = VerifyOptions {
        issuer: "rampart",
        now,
        leeway: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(900),
    };
    let (input, sig) = token.rsplit_once('.').context("a compact JWS")?;
    let sig = URL_SAFE_NO_PAD.decode(sig)?;
    let vk = signer.verifying_key();
    let measure = |f: &dyn Fn() -> bool| {
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            for _ in 0..256 {
                assert_ok(f());
            }
            n += 256;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let full = measure(&|| verify_access_token(&token, &keys, &opts).is_ok());
    let raw = measure(&|| vk.verify(input.as_bytes(), &sig).is_ok());
    Ok((full, raw))
}

fn assert_ok(ok: bool) {
    if !ok {
        eprintln!("benchmark self-check failed: a valid token did not verify");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// `concurrency` clients hammering `url` for `seconds`.
pub(super) async fn load(url: &str, token: Option<&str>, seconds: u64, concurrency: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..concurrency {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap_or_default();
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(tok) = &token {
                    req = req.bearer_auth(tok);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat = Latencies::new(all);
    Load {
        rps: lat.count() as f64 / elapsed,
        p50_ms: lat.percentile_ms(0.50),
        p99_ms: lat.percentile_ms(0.99),
        errors,
    }
}

struct Target {
    name: &'static str,
    health: Load,
    authed: Load,
    /// The same authenticated load after the revocations were recorded.
    authed_after: Load,
}

/// Records `n` revocations of principals unrelated to the bench token in `tenant`, in batches.
async fn record_revocations(
    state: &rampart_server::AppState,
    tenant: TenantId,
    n: u64,
) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut done = 0;
    while done < n {
        let mut tx = state
            .store
            .begin(rampart_store::Scope::tenant(tenant, "bench"))
            .await?;
        for i in done..(done + 1000).min(n) {
            tx.revoke_principal(
                tenant,
                &format!("user:bench-{i}"),
                rampart_types::CascadeId::random(),
                "bench",
                "bench",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        done = (done + 1000).min(n);
    }
    Ok(())
}

/// Starts an in-process server on `config`, then measures `/healthz` (the stack without auth or
/// database) and an authenticated tenant read (verify + RLS transaction + liveness check + one
/// tenant row).
async fn measure_backend(
    name: &'static str,
    config: Config,
    args: &AuthArgs,
) -> anyhow::Result<Target> {
    let (seconds, concurrency) = (args.seconds, args.concurrency);
    let server = BenchServer::start(config).await?;
    let (base, http) = (&server.base, &server.http);
    let token = server.operator_token().await?;
    let tenant: Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&token)
        .json(&json!({ "name": "bench" }))
        .send()
        .await?
        .json()
        .await?;
    let tenant_id = tenant["id"].as_str().unwrap_or_default().to_owned();
    let warm = load(&format!("{base}/healthz"), None, 1, concurrency).await;
    let _ = warm;
    let health = load(&format!("{base}/healthz"), None, seconds, concurrency).await;
    let authed_url = format!("{base}/v1/tenants/{tenant_id}");
    let authed = load(&authed_url, Some(&token), seconds, concurrency).await;
    record_revocations(&server.state, server.state.system_tenant, args.revocations).await?;
    let authed_after = load(&authed_url, Some(&token), seconds, concurrency).await;
    server.stop().await;
    Ok(Target {
        name,
        health,
        authed,
        authed_after,
    })
}

pub async fn run(args: AuthArgs) -> anyhow::Result<ExitCode> {
    let (full, raw) = tokio::task::spawn_blocking(bench_verify).await??;
    let dir = scratch_dir(&std::env::temp_dir())?;
    let mut sqlite_cfg = Config::defaults_for(&dir.join("sqlite"))?;
    sqlite_cfg.log_level = "warn".into();
    let mut targets = vec![measure_backend("sqlite", sqlite_cfg, &args).await?];
    let mut pg_cleanup = None;
    if let Some(admin) = &args.postgres {
        let db = PgTestDb::try_create_on(admin)
            .await
            .context("creating a throwaway benchmark database")?;
        let cfg = postgres_config(&dir.join("postgres"), &db)?;
        targets.push(measure_backend("postgres", cfg, &args).await?);
        pg_cleanup = Some(db);
    }
    if let Some(db) = pg_cleanup {
        db.try_drop().await?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    let report = json!({
        "jwt_verify_per_s": full.round(),
        "ed25519_verify_per_s": raw.round(),
        "jwt_verify_vs_raw_ed25519": full / raw,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "revocations": args.revocations,
        "backends": targets.iter().map(|t| json!({
            "backend": t.name,
            "authed_rps": t.authed.rps.round(),
            "authed_p50_ms": t.authed.p50_ms,
            "authed_p99_ms": t.authed.p99_ms,
            "authed_errors": t.authed.errors,
            "healthz_rps": t.health.rps.round(),
            "healthz_p50_ms": t.health.p50_ms,
            "healthz_p99_ms": t.health.p99_ms,
            "authed_vs_healthz": t.authed.rps / t.health.rps,
            "authed_after_revocations_rps": t.authed_after.rps.round(),
            "authed_after_revocations_p50_ms": t.authed_after.p50_ms,
            "authed_after_revocations_p99_ms": t.authed_after.p99_ms,
            "authed_after_revocations_errors": t.authed_after.errors,
            "after_revocations_vs_before": t.authed_after.rps / t.authed.rps,
        })).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "JWT verification (one core): {full:.0}/s; bare Ed25519 verify {raw:.0}/s; ratio {:.2}",
            full / raw
        );
        println!(
            "HTTP over loopback, {} clients, {} s each (client and server share the machine):",
            args.concurrency, args.seconds
        );
        println!(
            "{:<10} {:>14} {:>9} {:>9} {:>14} {:>9} {:>9} {:>8}",
            "backend",
            "authed req/s",
            "p50 ms",
            "p99 ms",
            "healthz req/s",
            "p50 ms",
            "p99 ms",
            "ratio"
        );
        for t in &targets {
            println!(
                "{:<10} {:>14.0} {:>9.2} {:>9.2} {:>14.0} {:>9.2} {:>9.2} {:>8.2}",
                t.name,
                t.authed.rps,
                t.authed.p50_ms,
                t.authed.p99_ms,
                t.health.rps,
                t.health.p50_ms,
                t.health.p99_ms,
                t.authed.rps / t.health.rps
            );
        }
        for t in &targets {
            println!(
                "{:<10} after {} revocations: {:.0} authed req/s, p50 {:.2} ms, p99 {:.2} ms ({:.2}x before)",
                t.name,
                args.revocations,
                t.authed_after.rps,
                t.authed_after.p50_ms,
                t.authed_after.p99_ms,
                t.authed_after.rps / t.authed.rps
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
