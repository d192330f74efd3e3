//! `rampart bench webhooks`: Standard Webhooks signatures and verifications per second on one
//! core; deliveries per second to a local receiver with persistence on (queued in the store, each
//! attempt claimed, signed, posted, recorded and audited into the ledger) beside bare HTTP posts
//! of the same bodies with the same client; and bus messages per second end to end — in process
//! and over NATS JetStream — with envelopes signed and verified, beside the same flow unsigned.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use rampart_bus::{Bus, MemoryTransport, TopicKeys, Transport};
use rampart_crypto::Secret;
use rampart_server::webhooks::{EndpointSpec, deliver_due, enqueue, http_agent, insert_endpoint};
use rampart_server::{AppState, Config, StartOptions};
use rampart_store::Scope;
use rampart_types::{AuditAction, AuditEvent, Clock, Outcome, SystemClock};
use rampart_webhooks::{
    Headers, SecretKey, Signer, SigningSecret, Verifier, VerifyKey, WebhookSecret,
};
use serde_json::json;

use super::scratch_dir;

#[derive(Args, Debug)]
pub struct WebhooksArgs {
    /// Seconds per signing measurement.
    #[arg(long, default_value_t = 2)]
    seconds: u64,
    /// Deliveries queued and delivered (and bare posts made) in the delivery measurement.
    #[arg(long, default_value_t = 5_000)]
    deliveries: usize,
    /// Bus messages per measurement.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// The NATS server of the bus measurement (`none` skips it; needs the `nats` feature).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

/// Operations per second of `f`, run for `secs` on this thread.
fn rate(secs: u64, mut f: impl FnMut()) -> f64 {
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn signing(secs: u64) -> anyhow::Result<()> {
    let body = vec![b'x'; 1024];
    let secret = WebhookSecret::generate()?;
    let ed = SecretKey::generate()?;
    let hmac_signer = Signer::new(vec![SigningSecret::Symmetric(secret.clone())]);
    let ed_signer = Signer::new(vec![SigningSecret::Ed25519(SecretKey::parse(
        ed.to_text().expose(),
    )?)]);
    let hmac_verifier = Verifier::new(vec![VerifyKey::Symmetric(secret)]);
    let ed_verifier = Verifier::new(vec![VerifyKey::Ed25519(ed.public_key())]);
    let now = SystemClock.now().unix_seconds();
    let ts = now.to_string();
    let hmac_sig = hmac_signer.sign("msg_bench", now, &body);
    let ed_sig = ed_signer.sign("msg_bench", now, &body);
    let headers = |sig| Headers {
        id: Some("msg_bench"),
        timestamp: Some(&ts),
        signature: Some(sig),
    };
    println!("signatures per second on one core (1 KiB body):");
    let s = rate(secs, || {
        drop(std::hint::black_box(hmac_signer.sign(
            "msg_bench",
            now,
            &body,
        )))
    });
    let v = rate(secs, || {
        let _ = std::hint::black_box(hmac_verifier.verify(headers(&hmac_sig), &body, now));
    });
    println!("  v1  (HMAC-SHA256)  sign {s:>10.0}/s   verify {v:>10.0}/s");
    let s = rate(secs, || {
        drop(std::hint::black_box(ed_signer.sign(
            "msg_bench",
            now,
            &body,
        )))
    });
    let v = rate(secs, || {
        let _ = std::hint::black_box(ed_verifier.verify(headers(&ed_sig), &body, now));
    });
    println!("  v1a (Ed25519)      sign {s:>10.0}/s   verify {v:>10.0}/s");
    Ok(())
}

/// A local receiver that verifies every message it is sent (when given a key) and counts them.
async fn receiver(key: Option<VerifyKey>) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let count = Arc::new(AtomicUsize::new(0));
    let verifier = key.map(|k| Arc::new(Verifier::new(vec![k])));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: Bytes| {
            let (c, verifier) = (c.clone(), verifier.clone());
            async move {
                if let Some(v) = verifier {
                    let get = |n: &str| h.get(n).and_then(|x| x.to_str().ok());
                    let headers = Headers {
                        id: get("webhook-id"),
                        timestamp: get("webhook-timestamp"),
                        signature: get("webhook-signature"),
                    };
                    if v.verify(headers, &body, SystemClock.now().unix_seconds())
                        .is_err()
                    {
                        return StatusCode::UNAUTHORIZED;
                    }
                }
                c.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

/// Queues `n` events for one endpoint at `url`, 1,000 per transaction.
async fn queue(state: &AppState, url: &str, n: usize) -> anyhow::Result<WebhookSecret> {
    let tenant = state.system_tenant;
    let scope = Scope::tenant(tenant, "bench");
    let now = state.clock.now();
    let secret = WebhookSecret::generate()?;
    let mut tx = state.store.begin(scope.clone()).await?;
    let spec = EndpointSpec {
        url: url.to_owned(),
        description: "bench".into(),
        event_types: vec![],
        scheme: "v1".into(),
    };
    insert_endpoint(state, &mut tx, tenant, spec, secret.to_text().expose(), now)
        .await
        .map_err(anyhow::Error::msg)?;
    tx.commit().await?;
    let mut queued = 0;
    while queued < n {
        let mut tx = state.store.begin(scope.clone()).await?;
        for i in queued..(queued + 1000).min(n) {
            let event = AuditEvent {
                tenant_id: tenant,
                request_id: None,
                actor: "bench".into(),
                action: AuditAction::SecretWrite,
                resource: format!("secret:bench/{i}"),
                outcome: Outcome::Success,
                detail: json!({ "version": 1 }),
                at: now,
            };
            enqueue(&mut tx, &event).await.map_err(anyhow::Error::msg)?;
        }
        tx.commit().await?;
        queued = (queued + 1000).min(n);
    }
    Ok(secret)
}

async fn deliveries(n: usize) -> anyhow::Result<()> {
    let dir = scratch_dir(&std::env::temp_dir())?;
    let mut cfg = Config::defaults_for(&dir)?;
    cfg.webhook_allow_private_targets = true;
    let concurrency = cfg.webhook_concurrency;
    let started = rampart_server::start(cfg, StartOptions::default())
        .await
        .context("starting the server")?;
    let state = started.state;
    let agent = http_agent(Duration::from_secs(15));

    // Baseline: the same bodies posted with the same client and concurrency, nothing else.
    let (plain_url, plain_count) = receiver(None).await?;
    let body = Arc::new(
        json!({"type": "secret.write", "timestamp": "2026-01-01T00:00:00Z", "data": {"resource": "secret:bench/1"}})
            .to_string(),
    );
    let t0 = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (agent, url, body, next) =
            (agent.clone(), plain_url.clone(), body.clone(), next.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let _ = agent
                    .post(&url)
                    .header("content-type", "application/json")
                    .send(body.as_str());
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let plain_s = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        plain_count.load(Ordering::Relaxed) == n,
        "bare posts were lost"
    );

    // Rampart: queued in the store, then claimed, signed, posted, recorded and audited.
    let (url, count) = receiver(None).await?;
    let t0 = Instant::now();
    let secret = queue(&state, &url, n).await?;
    let queue_s = t0.elapsed().as_secs_f64();
    drop(secret);
    let t0 = Instant::now();
    while count.load(Ordering::Relaxed) < n {
        let pass = deliver_due(&state, &agent)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            pass.retrying == 0 && pass.dead == 0,
            "deliveries failed: {pass:?}"
        );
    }
    let deliver_s = t0.elapsed().as_secs_f64();
    let ledger = state.ledger.clone();
    tokio::task::spawn_blocking(move || ledger.shutdown()).await?;
    state.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    let plain = n as f64 / plain_s;
    let delivered = n as f64 / deliver_s;
    println!(
        "deliveries to a local receiver ({n}, {concurrency} in flight, embedded SQLite + ledger):"
    );
    println!(
        "  queueing the events            {:>10.0}/s",
        n as f64 / queue_s
    );
    println!("  delivered (claim, sign, post, record + audit)  {delivered:>10.0}/s");
    println!("  bare HTTP posts, same client   {plain:>10.0}/s");
    println!(
        "  ratio delivered / bare         {:>10.3}",
        delivered / plain
    );
    Ok(())
}

/// Messages per second end to end through `transport`: `n` published by 8 tasks while one
/// consumer receives them, signed and verified (`signed`) or raw.
async fn bus_rate(
    transport: Arc<dyn Transport>,
    n: usize,
    signed: bool,
) -> anyhow::Result<(f64, String)> {
    let topic = format!("rampart.bench.{}", uuid::Uuid::new_v4().simple());
    let mut keys = TopicKeys::new();
    keys.keyring_mut(&topic)
        .rotate_to(1, &Secret::new([7; 32]))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = Arc::new(std::sync::RwLock::new(keys));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let bus = Arc::new(Bus::new(
        transport.clone(),
        keys,
        clock,
        "bench-producer".into(),
    ));
    let payload = Arc::new(vec![b'e'; 256]);
    let t0 = Instant::now();
    let consumer = {
        let (bus, transport, topic) = (bus.clone(), transport.clone(), topic.clone());
        if signed {
            let mut c = bus.subscribe(&topic, "bench").await?;
            tokio::spawn(async move {
                let mut got = 0;
                while got < n {
                    match c.next().await {
                        Some(Ok(m)) => {
                            m.ack().await?;
                            got += 1;
                        }
                        Some(Err(e)) => return Err(anyhow::anyhow!("{e}")),
                        None => break,
                    }
                }
                Ok::<usize, anyhow::Error>(got)
            })
        } else {
            let mut s = transport.subscribe(&topic, "bench").await?;
            tokio::spawn(async move {
                let mut got = 0;
                while got < n {
                    match s.next().await {
                        Some(Ok(d)) => {
                            if let Some(a) = d.ack {
                                a.ack().await?;
                            }
                            got += 1;
                        }
                        Some(Err(e)) => return Err(anyhow::anyhow!("{e}")),
                        None => break,
                    }
                }
                Ok::<usize, anyhow::Error>(got)
            })
        }
    };
    let mut producers = Vec::new();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (bus, transport, topic, payload, next) = (
            bus.clone(),
            transport.clone(),
            topic.clone(),
            payload.clone(),
            next.clone(),
        );
        producers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if signed {
                    bus.publish(&topic, &payload).await?;
                } else {
                    transport.publish(&topic, payload.to_vec()).await?;
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let got = consumer.await??;
    anyhow::ensure!(got == n, "{got} of {n} messages arrived");
    Ok((n as f64 / t0.elapsed().as_secs_f64(), topic))
}

async fn bus(n: usize, nats_url: &str) -> anyhow::Result<()> {
    println!("bus messages end to end ({n} × 256 B, 8 publishers, 1 consumer):");
    let report = |name: &str, signed: f64, raw: f64| {
        println!(
            "  {name:<8} signed + verified {signed:>9.0}/s   unsigned {raw:>9.0}/s   ratio {:.3}",
            signed / raw
        );
    };
    let memory: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    // Unsigned first, then signed, then unsigned again: the mean of the two baselines.
    let (raw1, _) = bus_rate(memory.clone(), n, false).await?;
    let (signed, _) = bus_rate(memory.clone(), n, true).await?;
    let (raw2, _) = bus_rate(memory, n, false).await?;
    report("memory", signed, f64::midpoint(raw1, raw2));
    if nats_url == "none" {
        return Ok(());
    }
    #[cfg(feature = "nats")]
    {
        let nats = Arc::new(
            rampart_bus::nats::NatsTransport::connect(nats_url)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let mut rates = Vec::new();
        for signed in [false, true, false] {
            let (r, topic) = bus_rate(nats.clone(), n, signed).await?;
            nats.delete_topic(&topic)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            rates.push(r);
        }
        report("NATS", rates[1], f64::midpoint(rates[0], rates[2]));
    }
    #[cfg(not(feature = "nats"))]
    println!("  NATS: this build has no NATS support; build with `--features nats`");
    Ok(())
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    signing(args.seconds)?;
    deliveries(args.deliveries).await?;
    bus(args.messages, &args.nats).await?;
    Ok(ExitCode::SUCCESS)
}
