//! `rampart bench gateway`: a chat completion through Rampart (authentication, mission-free
//! agent token, Sentinel redaction of every message and of the answer, upstream key from the
//! secrets service, one audit record in the ledger) beside the same call straight to the same
//! local upstream, in one run: the latency added at a fixed offered load, and the most
//! requests per second each path takes. With `--litellm`, the same call through a LiteLLM proxy
//! (started here, in front of the same upstream) is measured too, as the baseline.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use clap::Args;
use rampart_server::Config;
use serde_json::{Value, json};

use super::{BenchServer, Latencies, PostgresArgs, postgres_config, scratch_dir};

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Clients for the maximum-throughput measurement.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The fixed offered load (requests per second) for the added-latency measurement.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// A LiteLLM proxy executable (`pip install 'litellm[proxy]'`, see scripts/bench-litellm):
    /// the same call through it, in front of the same upstream, as the baseline.
    #[arg(long)]
    pub litellm: Option<std::path::PathBuf>,
    /// LiteLLM worker processes (default: one per core, as Rampart uses every core).
    #[arg(long)]
    pub litellm_workers: Option<usize>,
    #[command(flatten)]
    pub pg: PostgresArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The key both Rampart and LiteLLM send to the upstream (which does not check it).
const UPSTREAM_KEY: &str = "sk-bench-upstream-key";

/// The upstream: a fixed OpenAI-shaped answer, so both paths do the same work behind.
async fn upstream(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    axum::Json(json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant",
            "content": "Noted: the refund for invoice 2024-117 goes to the card on file; I will email the customer a confirmation." } }],
        "usage": { "prompt_tokens": 120, "completion_tokens": 24, "total_tokens": 144 },
    }))
}

/// A prompt-sized request (about 1 KB of text) with personal data in it.
fn request() -> Value {
    json!({
        "model": "bench-model",
        "messages": [
            { "role": "system", "content": "You are the billing assistant of Example Corp. Answer briefly and never promise refunds above 50 EUR without a manager." },
            { "role": "user", "content": "Hello, this is Maria Gonzalez. My card 4111 1111 1111 1111 was charged twice for invoice 2024-117 on 3 March; please refund one charge. You can reach me at maria.gonzalez@example.org or +1 415 555 0132. My account IBAN is DE89 3704 0044 0532 0130 00 if a transfer is easier. I have been a customer since 2019 and would appreciate a quick answer, since the double charge pushed my account into overdraft and the bank is charging fees every day until it is resolved. Thank you!" },
        ],
    })
}

struct Path {
    url: String,
    token: Option<String>,
}

impl Path {
    async fn call(&self, client: &reqwest::Client, body: &Value) -> bool {
        let mut req = client.post(&self.url).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        }
    }
}

struct Measured {
    /// Calls answered.
    calls: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `concurrency` clients as fast as they can.
async fn closed_loop(path: &Arc<Path>, seconds: u64, concurrency: usize) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let body = Arc::new(request());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (path, stop, body) = (path.clone(), stop.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if path.call(&client, &body).await {
                    lat.push(t.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    collect(tasks, start).await
}

/// Requests sent at a fixed rate, whatever the answers do (an open loop).
async fn open_loop(path: &Arc<Path>, seconds: u64, rate: u64) -> Measured {
    let body = Arc::new(request());
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        tick.tick().await;
        let (path, body, client) = (path.clone(), body.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            if path.call(&client, &body).await {
                (vec![t.elapsed().as_micros() as u32], 0)
            } else {
                (Vec::new(), 1)
            }
        }));
    }
    collect(tasks, start).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>, start: Instant) -> Measured {
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat = Latencies::new(all);
    Measured {
        calls: lat.count(),
        rps: lat.count() as f64 / elapsed,
        p50_ms: lat.percentile_ms(0.50),
        p99_ms: lat.percentile_ms(0.99),
        errors,
    }
}

async fn checked(res: reqwest::Response) -> anyhow::Result<Value> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "setup step failed: {status} {body}");
    Ok(body)
}

/// One backend's figures.
struct Backend {
    name: &'static str,
    direct_fixed: Measured,
    gateway_fixed: Measured,
    direct_max: Measured,
    gateway_max: Measured,
    /// The embedded store: calls at full speed per physical commit (one fsync each).
    calls_per_commit: Option<f64>,
}

/// Starts a server on `config`, configures a tenant whose `openai` upstream is `upstream_base`,
/// and measures both paths.
async fn measure(
    name: &'static str,
    config: Config,
    upstream_base: &str,
    args: &GatewayArgs,
) -> anyhow::Result<Backend> {
    let server = BenchServer::start(config).await?;
    let (base, http) = (&server.base, &server.http);
    let op = server.operator_token().await?;
    let tenant = checked(
        http.post(format!("{base}/v1/tenants"))
            .bearer_auth(&op)
            .json(&json!({ "name": "bench" }))
            .send()
            .await?,
    )
    .await?;
    let key = checked(
        http.post(format!("{base}/v1/apikeys"))
            .bearer_auth(&op)
            .json(&json!({ "name": "bench", "tenant_id": tenant["id"],
                           "capabilities": ["gateway:admin", "gateway:call", "secrets:write"] }))
            .send()
            .await?,
    )
    .await?;
    let key = rampart_crypto::SecretString::new(key["key"].as_str().unwrap_or_default().into());
    let tokens = crate::client::exchange_api_key(http, base, &key, None).await?;
    let token = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    checked(
        http.put(format!("{base}/v1/secrets/data/llm/openai"))
            .bearer_auth(&token)
            .json(&json!({ "value": UPSTREAM_KEY }))
            .send()
            .await?,
    )
    .await?;
    checked(
        http.put(format!("{base}/v1/gateway/config"))
            .bearer_auth(&token)
            .json(&json!({ "config": { "openai": {
                "base_url": upstream_base, "api_key_secret": "llm/openai" } } }))
            .send()
            .await?,
    )
    .await?;

    let direct = Arc::new(Path {
        url: format!("{upstream_base}/chat/completions"),
        token: None,
    });
    let gateway = Arc::new(Path {
        url: format!("{base}/v1/chat/completions"),
        token: Some(token),
    });
    // Warm both paths (connections, the Sentinel's compiled detectors, the tenant key).
    closed_loop(&direct, 1, 4).await;
    closed_loop(&gateway, 1, 4).await;
    let direct_fixed = open_loop(&direct, args.seconds, args.rate).await;
    let gateway_fixed = open_loop(&gateway, args.seconds, args.rate).await;
    let direct_max = closed_loop(&direct, args.seconds, args.concurrency).await;
    let commits_before = server.state.store.group_commits();
    let gateway_max = closed_loop(&gateway, args.seconds, args.concurrency).await;
    let calls_per_commit =
        commits_before
            .zip(server.state.store.group_commits())
            .map(|(before, after)| {
                gateway_max.calls as f64 / after.saturating_sub(before).max(1) as f64
            });
    server.stop().await;
    Ok(Backend {
        name,
        direct_fixed,
        gateway_fixed,
        direct_max,
        gateway_max,
        calls_per_commit,
    })
}

/// A LiteLLM proxy in front of `upstream_base`, on a port of its own; killed on drop.
struct LiteLlm {
    child: std::process::Child,
    base: String,
}

impl LiteLlm {
    async fn start(
        exe: &std::path::Path,
        workers: usize,
        upstream_base: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(dir)?;
        let config = dir.join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: bench-model\n    litellm_params:\n      \
                 model: openai/bench-model\n      api_base: {upstream_base}\n      \
                 api_key: {UPSTREAM_KEY}\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("litellm.log"))?;
        let mut command = std::process::Command::new(exe);
        #[cfg(unix)]
        {
            // A group of its own, so that its worker processes end with it.
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let child = command
            .args(["--config"])
            .arg(&config)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--num_workers",
                &workers.to_string(),
            ])
            // Offline: the bundled model price map, no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("LITELLM_LOG", "ERROR")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", exe.display()))?;
        let proxy = LiteLlm {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let alive = http
                .get(format!("{}/health/liveliness", proxy.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if alive {
                return Ok(proxy);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "LiteLLM did not come up in 180 s; see {}",
                dir.join("litellm.log").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for LiteLlm {
    /// Kills the proxy's whole process group: its workers are processes of their own.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percentiles (p50, p99, in ms) of fsyncing a 256-byte append in `dir`: the disk's floor
/// under every acknowledged write, for reading the latency figures.
fn fsync_probe(dir: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        file.write_all(&[0_u8; 256])?;
        let started = std::time::Instant::now();
        file.sync_data()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    times.sort_by(f64::total_cmp);
    Ok((times[100], times[198]))
}

/// The LiteLLM baseline: fixed load, then full speed.
async fn measure_litellm(
    exe: &std::path::Path,
    upstream_base: &str,
    dir: &std::path::Path,
    args: &GatewayArgs,
) -> anyhow::Result<(Measured, Measured, usize)> {
    let workers = args.litellm_workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let proxy = LiteLlm::start(exe, workers, upstream_base, dir).await?;
    let path = Arc::new(Path {
        url: format!("{}/v1/chat/completions", proxy.base),
        token: Some("sk-bench-client".into()),
    });
    closed_loop(&path, 1, 4).await;
    let fixed = open_loop(&path, args.seconds, args.rate).await;
    let max = closed_loop(&path, args.seconds, args.concurrency).await;
    anyhow::ensure!(
        max.rps > 0.0,
        "no call through LiteLLM succeeded; see {}",
        dir.join("litellm.log").display()
    );
    Ok((fixed, max, workers))
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/v1/chat/completions", post(upstream)),
        )
        .await
    });
    let dir = scratch_dir(&std::env::temp_dir())?;
    let fsync = fsync_probe(&dir)?;
    let mut cfg = Config::defaults_for(&dir.join("sqlite"))?;
    cfg.log_level = "warn".into();
    let mut backends = vec![measure("sqlite", cfg, &upstream_base, &args).await?];
    if !args.pg.no_postgres {
        let db = rampart_testkit::PgTestDb::try_create_on(&args.pg.postgres).await?;
        let mut cfg = postgres_config(&dir.join("postgres"), &db)?;
        cfg.log_level = "warn".into();
        let measured = measure("postgres", cfg, &upstream_base, &args).await;
        db.try_drop().await?;
        backends.push(measured?);
    }
    let litellm = match &args.litellm {
        Some(exe) => Some(measure_litellm(exe, &upstream_base, &dir.join("litellm"), &args).await?),
        None => None,
    };
    let _ = std::fs::remove_dir_all(&dir);

    let report = json!({
        "rate": args.rate,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "fsync": { "p50_ms": fsync.0, "p99_ms": fsync.1 },
        "backends": backends.iter().map(|b| json!({
            "backend": b.name,
            "direct_fixed": { "p50_ms": b.direct_fixed.p50_ms, "p99_ms": b.direct_fixed.p99_ms, "errors": b.direct_fixed.errors },
            "gateway_fixed": { "p50_ms": b.gateway_fixed.p50_ms, "p99_ms": b.gateway_fixed.p99_ms, "errors": b.gateway_fixed.errors },
            "added_p50_ms": b.gateway_fixed.p50_ms - b.direct_fixed.p50_ms,
            "added_p99_ms": b.gateway_fixed.p99_ms - b.direct_fixed.p99_ms,
            "direct_max_rps": b.direct_max.rps.round(),
            "gateway_max_rps": b.gateway_max.rps.round(),
            "gateway_max_errors": b.gateway_max.errors,
            "calls_per_commit": b.calls_per_commit,
            "gateway_vs_direct": b.gateway_max.rps / b.direct_max.rps,
            "gateway_vs_litellm": litellm.as_ref().map(|(_, max, _)| b.gateway_max.rps / max.rps),
        })).collect::<Vec<_>>(),
        "litellm": litellm.as_ref().map(|(fixed, max, workers)| json!({
            "workers": workers,
            "fixed": { "p50_ms": fixed.p50_ms, "p99_ms": fixed.p99_ms, "errors": fixed.errors },
            "max_rps": max.rps.round(),
            "max_errors": max.errors,
        })),
    });
    if args.json {
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "fixed load {} req/s for {} s, then {} clients at full speed (server, upstream and clients share the machine):",
        args.rate, args.seconds, args.concurrency
    );
    println!(
        "disk: fsync of a 256-byte append p50 {:.2} ms, p99 {:.2} ms (each call waits for two: \
         its audit record's and its commit's, each shared with the calls beside it)",
        fsync.0, fsync.1
    );
    for b in &backends {
        println!(
            "{:<9} direct  p50 {:.2} ms  p99 {:.2} ms ({} errors)",
            b.name, b.direct_fixed.p50_ms, b.direct_fixed.p99_ms, b.direct_fixed.errors
        );
        println!(
            "{:<9} gateway p50 {:.2} ms  p99 {:.2} ms ({} errors); added p50 {:.2} ms, p99 {:.2} ms",
            b.name,
            b.gateway_fixed.p50_ms,
            b.gateway_fixed.p99_ms,
            b.gateway_fixed.errors,
            b.gateway_fixed.p50_ms - b.direct_fixed.p50_ms,
            b.gateway_fixed.p99_ms - b.direct_fixed.p99_ms
        );
        println!(
            "{:<9} maximum: direct {:.0} req/s, gateway {:.0} req/s ({} errors), ratio {:.3}",
            b.name,
            b.direct_max.rps,
            b.gateway_max.rps,
            b.gateway_max.errors,
            b.gateway_max.rps / b.direct_max.rps
        );
        if let Some(n) = b.calls_per_commit {
            println!(
                "{:<9} at full speed {n:.1} calls shared each commit",
                b.name
            );
        }
    }
    if let Some((fixed, max, workers)) = &litellm {
        println!(
            "litellm   proxy   p50 {:.2} ms  p99 {:.2} ms ({} errors); maximum {:.0} req/s ({} errors), {workers} workers",
            fixed.p50_ms, fixed.p99_ms, fixed.errors, max.rps, max.errors
        );
        for b in &backends {
            println!(
                "{:<9} gateway throughput / LiteLLM throughput: {:.1}",
                b.name,
                b.gateway_max.rps / max.rps
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
