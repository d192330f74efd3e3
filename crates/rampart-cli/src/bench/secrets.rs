//! `rampart bench secrets`: secret reads through the whole stack (token check, tenant-scoped
//! transaction, KEK unwrap, data-key unwrap, value decrypt, audit record fsynced into the ledger,
//! commit) beside an authenticated read without them, on SQLite and Postgres; lease issue and
//! revoke rates on a stored secret and on the dynamic Postgres engine (a real role created and
//! dropped per lease); then a break-glass rotation that re-wraps every secret of a tenant, timed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rampart_secrets::SecretPath;
use rampart_server::Config;
use rampart_server::secrets::Cas;
use rampart_store::Scope;
use rampart_testkit::PgTestDb;
use serde_json::{Value, json};
use sqlx::Connection;

use super::auth::{Load, load};
use super::{BenchServer, Latencies, PostgresArgs, postgres_config, scratch_dir};

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
    kv_leases: LeaseLoad,
    pg_leases: Option<LeaseLoad>,
    seed_s: f64,
    rewrap_s: f64,
    rewrapped: u64,
}

/// Writes `n` secrets (1,000 per transaction) straight through the service.
async fn seed(state: &rampart_server::AppState, n: u64) -> anyhow::Result<f64> {
    let scope = Scope::tenant(state.system_tenant, "bench");
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

/// Issue and revoke rates of one kind of lease.
#[derive(Debug, Clone, Copy)]
struct LeaseLoad {
    issue: Load,
    revoke: Load,
}

/// `concurrency` clients each issuing a lease with `body` and revoking it, for `seconds`.
async fn lease_load(
    base: &str,
    token: &str,
    body: Value,
    seconds: u64,
    concurrency: usize,
) -> LeaseLoad {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = reqwest::Client::new();
        let (base, token, body, stop) = (
            base.to_owned(),
            token.to_owned(),
            body.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut issue, mut revoke, mut errors) = (Vec::new(), Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let issued = client
                    .post(format!("{base}/v1/leases"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let id = match issued {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["lease"]["id"].as_str().map(str::to_owned)),
                    _ => None,
                };
                let Some(id) = id else {
                    errors += 1;
                    continue;
                };
                issue.push(t.elapsed().as_micros() as u32);
                let t = Instant::now();
                match client
                    .post(format!("{base}/v1/leases/{id}/revoke"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => revoke.push(t.elapsed().as_micros() as u32),
                    _ => errors += 1,
                }
            }
            (issue, revoke, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut issue, mut revoke, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        if let Ok((i, r, e)) = t.await {
            issue.extend(i);
            revoke.extend(r);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let summary = |lat: Vec<u32>| {
        let lat = Latencies::new(lat);
        Load {
            rps: lat.count() as f64 / elapsed,
            p50_ms: lat.percentile_ms(0.50),
            p99_ms: lat.percentile_ms(0.99),
            errors,
        }
    };
    LeaseLoad {
        issue: summary(issue),
        revoke: summary(revoke),
    }
}

/// A database for the dynamic engine to manage, with a template role.
struct EngineTarget {
    db: PgTestDb,
    template: String,
}

impl EngineTarget {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let db = PgTestDb::try_create_on(admin_url)
            .await
            .context("creating the dynamic engine's database")?;
        let template = format!(
            "bench_tmpl_{}",
            rampart_types::TenantId::random().as_uuid().simple()
        );
        let mut conn = sqlx::PgConnection::connect(&db.owner_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {template} NOLOGIN"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(Self { db, template })
    }

    async fn drop(self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.db.owner_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {}", self.template)))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        self.db.try_drop().await?;
        Ok(())
    }
}

/// Sets up an agent allowed `bench/**` and the engine `bench` (when `target` is given).
async fn lease_fixture(
    server: &BenchServer,
    token: &str,
    target: Option<&EngineTarget>,
) -> anyhow::Result<String> {
    let (base, http) = (&server.base, &server.http);
    let agent: Value = http
        .post(format!("{base}/v1/agents"))
        .bearer_auth(token)
        .json(&json!({ "name": "bench", "secret_allowlist": ["bench/**"], "engine_allowlist": ["bench"] }))
        .send()
        .await?
        .json()
        .await?;
    let agent = agent["id"]
        .as_str()
        .with_context(|| format!("creating the agent: {agent}"))?
        .to_owned();
    if let Some(target) = target {
        let put = http
            .put(format!("{base}/v1/secrets/data/bench/engine-url"))
            .bearer_auth(token)
            .json(&json!({ "value": target.db.owner_url }))
            .send()
            .await?;
        anyhow::ensure!(put.status().is_success(), "storing the engine URL");
        let put = http
            .put(format!("{base}/v1/engines/postgres/bench"))
            .bearer_auth(token)
            .json(&json!({
                "connection_secret": "bench/engine-url",
                "template_role": target.template,
                "default_ttl": "1h",
                "max_ttl": "1h",
            }))
            .send()
            .await?;
        anyhow::ensure!(
            put.status().is_success(),
            "configuring the engine: {}",
            put.text().await?
        );
    }
    Ok(agent)
}

/// An access token of a new API key that belongs to `agent` and may read secrets.
async fn agent_token(server: &BenchServer, token: &str, agent: &str) -> anyhow::Result<String> {
    let created: Value = server
        .http
        .post(format!("{}/v1/apikeys", server.base))
        .bearer_auth(token)
        .json(&json!({ "name": "bench agent", "capabilities": ["secrets:read"], "agent": agent }))
        .send()
        .await?
        .json()
        .await?;
    let key = created["key"]
        .as_str()
        .with_context(|| format!("creating the agent's key: {created}"))?;
    let key = rampart_crypto::SecretString::new(key.to_owned());
    let tokens = crate::client::exchange_api_key(&server.http, &server.base, &key, None).await?;
    Ok(tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn measure_backend(
    backend: &'static str,
    config: Config,
    args: &SecretsArgs,
    target: Option<&EngineTarget>,
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
    // The secret is read as an agent, so every read also loads the agent's profile and checks
    // its allowlist; the baseline is read with the operator's token.
    let agent = lease_fixture(&server, &token, target).await?;
    let agent_token = agent_token(&server, &token, &agent).await?;
    let secret_url = format!("{base}/v1/secrets/data/bench/read");
    let plain_url = format!("{base}/v1/tenants/{tenant}");
    let _warm = load(&secret_url, Some(&agent_token), 1, args.concurrency).await;
    let plain_read = load(&plain_url, Some(&token), args.seconds, args.concurrency).await;
    let secret_read = load(
        &secret_url,
        Some(&agent_token),
        args.seconds,
        args.concurrency,
    )
    .await;

    let kv_body = json!({ "agent": agent, "source": "kv/bench/read", "mission": "bench", "purpose": "benchmark" });
    let kv_leases = lease_load(base, &token, kv_body, args.seconds, args.concurrency).await;
    let pg_leases = match target {
        Some(_) => {
            let body = json!({ "agent": agent, "source": "postgres/bench", "mission": "bench", "purpose": "benchmark" });
            Some(lease_load(base, &token, body, args.seconds, args.concurrency.min(8)).await)
        }
        None => None,
    };

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
    // The seeded secrets, the one read, and the engine's URL when there is an engine.
    let expected = args.rewrap_secrets + 1 + u64::from(target.is_some());
    anyhow::ensure!(
        rewrapped == expected,
        "the break-glass rotation re-wrapped {rewrapped}: {rotated}"
    );
    server.stop().await;
    Ok(Measured {
        backend,
        secret_read,
        plain_read,
        kv_leases,
        pg_leases,
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
    let target = if args.pg.no_postgres {
        None
    } else {
        Some(EngineTarget::create(&args.pg.postgres).await?)
    };
    let mut results = vec![measure_backend("sqlite", sqlite_cfg, &args, target.as_ref()).await?];
    if !args.pg.no_postgres {
        let db = PgTestDb::try_create_on(&args.pg.postgres)
            .await
            .context("creating a throwaway benchmark database")?;
        let mut cfg = postgres_config(&dir.join("postgres"), &db)?;
        cfg.log_level = "warn".into();
        cfg.request_timeout = std::time::Duration::from_secs(3600);
        results.push(measure_backend("postgres", cfg, &args, target.as_ref()).await?);
        db.try_drop().await?;
    }
    if let Some(t) = target {
        t.drop().await?;
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
                "kv_lease_issues_per_s": m.kv_leases.issue.rps.round(),
                "kv_lease_issue_p99_ms": m.kv_leases.issue.p99_ms,
                "kv_lease_revokes_per_s": m.kv_leases.revoke.rps.round(),
                "kv_lease_revoke_p99_ms": m.kv_leases.revoke.p99_ms,
                "kv_lease_errors": m.kv_leases.issue.errors,
                "kv_issue_vs_secret_read": m.kv_leases.issue.rps / m.secret_read.rps,
                "pg_lease_issues_per_s": m.pg_leases.map(|l| l.issue.rps.round()),
                "pg_lease_issue_p99_ms": m.pg_leases.map(|l| l.issue.p99_ms),
                "pg_lease_revokes_per_s": m.pg_leases.map(|l| l.revoke.rps.round()),
                "pg_lease_revoke_p99_ms": m.pg_leases.map(|l| l.revoke.p99_ms),
                "pg_lease_errors": m.pg_leases.map(|l| l.issue.errors),
                "secrets": m.rewrapped,
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
    println!(
        "\nLeases, each client issuing then revoking ({} clients for stored secrets, {} for Postgres roles):",
        args.concurrency,
        args.concurrency.min(8)
    );
    println!(
        "{:<9} {:<7} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>7}",
        "backend",
        "kind",
        "issues/s",
        "p50 ms",
        "p99 ms",
        "revokes/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    for m in &results {
        for (kind, l) in [("kv", Some(m.kv_leases)), ("postgres", m.pg_leases)] {
            let Some(l) = l else { continue };
            println!(
                "{:<9} {:<7} {:>10.0} {:>8.2} {:>8.2} {:>10.0} {:>8.2} {:>8.2} {:>7}",
                m.backend,
                kind,
                l.issue.rps,
                l.issue.p50_ms,
                l.issue.p99_ms,
                l.revoke.rps,
                l.revoke.p50_ms,
                l.revoke.p99_ms,
                l.issue.errors
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
