//! Outgoing webhooks end to end: endpoints through the API, events queued with the change that
//! made them, deliveries signed (checked with `rampart-webhooks`' verifier and the reference
//! Python package) to a real local HTTP receiver, retries on the schedule, the dead-letter list
//! and replay, disabling after continuous failure, key rotation with overlap, a restart, and
//! the audit record of every attempt.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use common::{Backend, TestApp};
use rampart_server::webhooks::{Pass, deliver_due, http_agent};
use rampart_testkit::test_python;
use rampart_types::Clock;
use rampart_webhooks::{Headers, Verifier, VerifyKey};
use serde_json::{Value, json};

const CAPS: &[&str] = &[
    "secrets:read",
    "secrets:write",
    "secrets:admin",
    "webhooks:manage",
    "audit:read",
];

/// What the receiver got: headers and body of each request.
type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A local HTTP receiver answering with a status the test controls.
struct Receiver {
    url: String,
    seen: Seen,
    status: Arc<AtomicU16>,
}

async fn receiver() -> Receiver {
    let seen: Seen = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let (s, st) = (seen.clone(), status.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (s, st) = (s.clone(), st.clone());
            async move {
                s.lock().unwrap().push((headers, body));
                let status = StatusCode::from_u16(st.load(Ordering::SeqCst)).unwrap();
                // Failures answer with a long body, of which only the start is kept.
                let text = if status.is_success() {
                    String::new()
                } else {
                    format!("receiver down {}", "x".repeat(10_000))
                };
                (status, text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        seen,
        status,
    }
}

/// An app that delivers to loopback and disables an endpoint after `disable_after` of failures.
async fn app_disabling_after(backend: Backend, disable_after: Duration) -> TestApp {
    TestApp::start_with(backend, move |c| {
        c.webhook_allow_private_targets = true;
        c.webhook_disable_after = disable_after;
    })
    .await
}

async fn app(backend: Backend) -> TestApp {
    app_disabling_after(backend, Duration::from_secs(3600)).await
}

/// A tenant and its API key (access tokens last 15 minutes of the fake clock: tests that move
/// it further get a new one from the key).
async fn tenant_key(app: &TestApp, name: &str) -> String {
    let op = app.operator_token().await;
    let tenant = app.create_tenant(name).await;
    app.create_key(&op, Some(&tenant), CAPS).await.1
}

async fn token(app: &TestApp, name: &str) -> String {
    let key = tenant_key(app, name).await;
    app.tokens(&key).await.access
}

async fn endpoint(app: &TestApp, t: &str, url: &str, types: Value) -> (String, String) {
    let r = app
        .post(
            "/v1/webhooks/endpoints",
            t,
            json!({ "url": url, "event_types": types, "description": "ops" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    )
}

async fn write_secret(app: &TestApp, t: &str, path: &str) {
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/secrets/data/{path}"),
            Some(t),
            Some(json!({ "value": "s3cr3t-value-never-in-a-webhook" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn pass(app: &TestApp) -> Pass {
    deliver_due(&app.state, &http_agent(Duration::from_secs(5)))
        .await
        .unwrap()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).unwrap().to_str().unwrap()
}

fn verify(keys: &[&str], h: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
    let v = Verifier::new(keys.iter().map(|k| VerifyKey::parse(k).unwrap()).collect());
    v.verify(
        Headers {
            id: Some(header(h, "webhook-id")),
            timestamp: Some(header(h, "webhook-timestamp")),
            signature: Some(header(h, "webhook-signature")),
        },
        body,
        now,
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

async fn deliveries(app: &TestApp, t: &str, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/webhooks/deliveries{query}"), t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

async fn signed_deliveries_reach_the_receiver(backend: Backend) {
    let app = app(backend).await;
    let t = token(&app, "acme").await;
    let rx = receiver().await;
    let (id, key) = endpoint(
        &app,
        &t,
        &format!("{}?token=rcv-canary", rx.url),
        json!(["secret.*"]),
    )
    .await;
    assert!(key.starts_with("whsec_"));
    // The endpoint never shows its key again.
    let r = app.get(&format!("/v1/webhooks/endpoints/{id}"), &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains(&key[6..]));

    write_secret(&app, &t, "db/password").await;
    // Not subscribed: reading is `secret.read`, which matches `secret.*`; a key rotation does not.
    let p = pass(&app).await;
    assert_eq!((p.delivered, p.retrying, p.dead), (1, 0, 0));
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (h, body) = &seen[0];
    let now = app.clock.now().unix_seconds();
    verify(&[&key], h, body, now).unwrap();
    assert_eq!(header(h, "content-type"), "application/json");
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "secret.write");
    assert_eq!(event["data"]["resource"], "secret:db/password");
    assert!(!String::from_utf8_lossy(body).contains("s3cr3t-value"));

    // The reference implementation computes the same signature over the delivered bytes (its
    // `verify` reads the real clock, which the fake clock is hours away from, so its signing
    // half is what is compared).
    let script = "import sys, datetime, standardwebhooks\n\
        ts = datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc)\n\
        sig = standardwebhooks.Webhook(sys.argv[1]).sign(sys.argv[2], ts, sys.stdin.read())\n\
        print('ok' if sig in sys.argv[4].split(' ') else 'mismatch')";
    let out = std::process::Command::new(test_python())
        .args([
            "-c",
            script,
            &key,
            header(h, "webhook-id"),
            header(h, "webhook-timestamp"),
            header(h, "webhook-signature"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing more is due; the delivery is recorded as delivered, and the attempt audited.
    assert_eq!(pass(&app).await, Pass::default());
    let list = deliveries(&app, &t, &format!("?endpoint={id}")).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "delivered");
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["last_status"], 200);
    let actions = app.audit_actions(&t, None).await;
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "webhook.attempt" && o == "success"),
        "{actions:?}"
    );
    // The receiver's token in the URL is not in the audit trail.
    let trail = app.get("/v1/audit/events?limit=1000", &t).await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.text);
    assert!(trail.text.contains("webhook_endpoint.change"));
    assert!(!trail.text.contains("rcv-canary"), "{}", trail.text);
    assert!(!trail.text.contains(&key[6..]));
    app.close().await;
}

async fn failures_retry_then_die_and_replay_delivers(backend: Backend) {
    // Longer than the whole schedule (about 27.5 hours), so the delivery runs out of attempts
    // before its endpoint is disabled.
    let app = app_disabling_after(backend, Duration::from_secs(3 * 86_400)).await;
    let key = tenant_key(&app, "acme").await;
    let t = app.tokens(&key).await.access;
    let rx = receiver().await;
    rx.status.store(503, Ordering::SeqCst);
    let (id, _) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    write_secret(&app, &t, "a").await;
    let schedule = app.state.config.webhook_retry_schedule.clone();
    assert_eq!(pass(&app).await.retrying, 1);
    let d = &deliveries(&app, &t, "").await[0];
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64()),
        (Some("pending"), Some(1))
    );
    assert_eq!(d["last_status"], 503);
    let err = d["last_error"].as_str().unwrap();
    assert!(err.starts_with("HTTP 503: receiver down xxx"), "{err}");
    assert!(err.len() < 300, "only the start of the answer is kept");
    // Not due before its (jittered) wait is over.
    app.advance(Duration::from_secs(3));
    assert_eq!(pass(&app).await, Pass::default());
    for wait in schedule.delays() {
        app.advance(wait.mul_f64(1.25));
        pass(&app).await;
    }
    let t = app.tokens(&key).await.access;
    let d = &deliveries(&app, &t, "?state=dead").await[0];
    assert_eq!(d["attempts"].as_u64(), Some(schedule.attempts() as u64));
    let attempts_seen = rx.seen.lock().unwrap().len();
    assert_eq!(attempts_seen, schedule.attempts());
    // Every attempt of one message carries the same webhook-id.
    let ids: std::collections::HashSet<_> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| header(h, "webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1);

    // The receiver is fixed; replaying the dead delivery delivers it.
    rx.status.store(204, Ordering::SeqCst);
    let did = d["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/webhooks/deliveries/{did}/replay"),
            &t,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "pending");
    assert_eq!(pass(&app).await.delivered, 1);
    // Replaying something not dead is a conflict.
    app.post(
        &format!("/v1/webhooks/deliveries/{did}/replay"),
        &t,
        json!({}),
    )
    .await
    .assert_problem(409, "conflict");
    // Bulk replay of an endpoint with nothing dead replays nothing.
    let r = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/replay"),
            &t,
            json!({}),
        )
        .await;
    assert_eq!(r.body["replayed"], 0, "{}", r.text);
    let actions = app.audit_actions(&t, None).await;
    let failed = actions
        .iter()
        .filter(|(a, o)| a == "webhook.attempt" && o == "failed")
        .count();
    assert_eq!(failed, schedule.attempts());
    assert!(actions.iter().any(|(a, _)| a == "webhook.replay"));
    app.close().await;
}

async fn an_endpoint_failing_too_long_is_disabled_and_bulk_replay_recovers(backend: Backend) {
    let app = app(backend).await;
    let key = tenant_key(&app, "acme").await;
    let t = app.tokens(&key).await.access;
    let rx = receiver().await;
    rx.status.store(500, Ordering::SeqCst);
    let (id, _) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    write_secret(&app, &t, "one").await;
    write_secret(&app, &t, "two").await;
    assert_eq!(pass(&app).await.retrying, 2);
    // An hour of failures (webhook_disable_after) later, the next failure disables it.
    app.advance(Duration::from_secs(3601));
    pass(&app).await;
    let t = app.tokens(&key).await.access;
    let r = app.get(&format!("/v1/webhooks/endpoints/{id}"), &t).await;
    assert_eq!(r.body["enabled"], false, "{}", r.text);
    assert!(
        r.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("no successful delivery")
    );
    // Its deliveries are on the dead-letter list, and new events are not queued for it.
    let dead = deliveries(&app, &t, "?state=dead").await;
    assert_eq!(dead.len(), 2);
    write_secret(&app, &t, "three").await;
    assert_eq!(deliveries(&app, &t, "?state=pending").await.len(), 0);
    app.post(
        &format!("/v1/webhooks/endpoints/{id}/replay"),
        &t,
        json!({}),
    )
    .await
    .assert_problem(409, "conflict");
    // Fixed and re-enabled: a bulk replay delivers both.
    rx.status.store(200, Ordering::SeqCst);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/endpoints/{id}"),
            Some(&t),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(r.body["enabled"], true, "{}", r.text);
    let r = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/replay"),
            &t,
            json!({}),
        )
        .await;
    assert_eq!(r.body["replayed"], 2, "{}", r.text);
    assert_eq!(pass(&app).await.delivered, 2);
    let actions = app.audit_actions(&t, None).await;
    assert!(actions.iter().any(|(a, _)| a == "webhook_endpoint.change"));
    app.close().await;
}

async fn rotation_signs_with_both_keys_during_the_overlap(backend: Backend) {
    let app = app(backend).await;
    let api_key = tenant_key(&app, "acme").await;
    let t = app.tokens(&api_key).await.access;
    let rx = receiver().await;
    let (id, old) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    let r = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/rotate-key"),
            &t,
            json!({ "overlap": "1h" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.body["previous_key_until"].is_string());
    write_secret(&app, &t, "x").await;
    pass(&app).await;
    let now = app.clock.now().unix_seconds();
    {
        let seen = rx.seen.lock().unwrap();
        let (h, body) = seen.last().unwrap();
        assert_eq!(header(h, "webhook-signature").split(' ').count(), 2);
        verify(&[&old], h, body, now).unwrap();
        verify(&[&new], h, body, now).unwrap();
    }
    // After the overlap, only the new key signs.
    app.advance(Duration::from_secs(3601));
    let t = app.tokens(&api_key).await.access;
    write_secret(&app, &t, "y").await;
    pass(&app).await;
    let now = app.clock.now().unix_seconds();
    let (h, body) = rx.seen.lock().unwrap().last().cloned().unwrap();
    verify(&[&new], &h, &body, now).unwrap();
    assert!(verify(&[&old], &h, &body, now).is_err());
    app.close().await;
}

async fn queued_deliveries_survive_a_restart(backend: Backend) {
    let app = app(backend).await;
    let t = token(&app, "acme").await;
    let rx = receiver().await;
    let (_, key) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    write_secret(&app, &t, "before-crash").await;
    // No pass ran: the delivery exists only in the store.
    let app = app.restart().await;
    assert_eq!(pass(&app).await.delivered, 1);
    let seen = rx.seen.lock().unwrap().clone();
    let now = app.clock.now().unix_seconds();
    verify(&[&key], &seen[0].0, &seen[0].1, now).unwrap();
    app.close().await;
}

async fn revoking_the_kek_moves_endpoint_keys_and_delivery_goes_on(backend: Backend) {
    let app = app(backend).await;
    let t = token(&app, "acme").await;
    let rx = receiver().await;
    let (id, old) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    let r = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/rotate-key"),
            &t,
            json!({}),
        )
        .await;
    let new = r.body["key"].as_str().unwrap().to_owned();
    // Both endpoint keys are sealed under KEK version 1; revoking it destroys that version.
    let r = app
        .post(
            "/v1/secrets/keys/1/revoke",
            &t,
            json!({ "reason": "drill" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    write_secret(&app, &t, "after-revoke").await;
    assert_eq!(pass(&app).await.delivered, 1);
    let (h, body) = rx.seen.lock().unwrap().last().cloned().unwrap();
    let now = app.clock.now().unix_seconds();
    verify(&[&new], &h, &body, now).unwrap();
    verify(&[&old], &h, &body, now).unwrap();
    app.close().await;
}

on_both_backends!(
    revoking_the_kek_moves_endpoint_keys_and_delivery_goes_on,
    signed_deliveries_reach_the_receiver,
    failures_retry_then_die_and_replay_delivers,
    an_endpoint_failing_too_long_is_disabled_and_bulk_replay_recovers,
    rotation_signs_with_both_keys_during_the_overlap,
    queued_deliveries_survive_a_restart,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_endpoints_show_only_their_public_key() {
    let app = app(Backend::Sqlite).await;
    let t = token(&app, "acme").await;
    let rx = receiver().await;
    let r = app
        .post(
            "/v1/webhooks/endpoints",
            &t,
            json!({ "url": rx.url, "scheme": "v1a", "event_types": ["secret.write"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let public = r.body["key"].as_str().unwrap().to_owned();
    assert!(public.starts_with("whpk_"));
    write_secret(&app, &t, "x").await;
    assert_eq!(pass(&app).await.delivered, 1);
    let seen = rx.seen.lock().unwrap().clone();
    let (h, body) = &seen[0];
    assert!(header(h, "webhook-signature").starts_with("v1a,"));
    verify(&[&public], h, body, app.clock.now().unix_seconds()).unwrap();
    app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_allowed_and_bad_input_is_a_problem() {
    let app = TestApp::start(Backend::Sqlite).await;
    let t = token(&app, "acme").await;
    let rx = receiver().await;
    let (_, _) = endpoint(&app, &t, &rx.url, json!(["secret.write"])).await;
    write_secret(&app, &t, "x").await;
    assert_eq!(pass(&app).await.retrying, 1);
    assert!(
        rx.seen.lock().unwrap().is_empty(),
        "nothing was sent to loopback"
    );
    let d = &deliveries(&app, &t, "").await[0];
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("non-public address"),
        "{d}"
    );
    for (body, what) in [
        (json!({ "url": "ftp://x/" }), "scheme"),
        (json!({ "url": "https://u:p@x.example/" }), "credentials"),
        (
            json!({ "url": "https://x.example/", "event_types": ["Secret Write"] }),
            "type",
        ),
        (
            json!({ "url": "https://x.example/", "scheme": "v2" }),
            "scheme",
        ),
        (
            json!({ "url": "https://x.example/", "extra": 1 }),
            "unknown field",
        ),
    ] {
        let r = app.post("/v1/webhooks/endpoints", &t, body).await;
        assert_eq!(r.status.as_u16(), 422, "{what}: {}", r.text);
    }
    // The document's URL pattern is the one the handler enforces.
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    assert_eq!(
        doc["components"]["schemas"]["NewEndpoint"]["properties"]["url"]["pattern"],
        rampart_server::webhooks::URL_PATTERN
    );
    // Another tenant's endpoint is not found, not forbidden.
    let (id, _) = endpoint(&app, &t, "https://hooks.example.com/x", json!([])).await;
    let other = token(&app, "globex").await;
    app.get(&format!("/v1/webhooks/endpoints/{id}"), &other)
        .await
        .assert_problem(404, "not-found");
    app.close().await;
}

/// With `bus = "nats"`, the server announces each audit event on `rampart.events` over the real
/// NATS server, and a consumer holding the topic key (here: the server's own bus) verifies it.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_announced_on_the_nats_bus() {
    let app = TestApp::start_with(Backend::Sqlite, |c| {
        c.bus = rampart_server::config::BusBackend::Nats;
        if let Ok(url) = std::env::var("RAMPART_TEST_NATS_URL") {
            c.bus_nats_url = url;
        }
    })
    .await;
    let group = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = app
        .state
        .bus
        .subscribe(rampart_server::bus::EVENTS_TOPIC, &group)
        .await
        .unwrap();
    let t = token(&app, "acme").await;
    write_secret(&app, &t, "announced").await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = consumer.next().await.unwrap().unwrap();
            let v: Value = serde_json::from_slice(&m.opened.payload).unwrap();
            m.ack().await.unwrap();
            if v["type"] == "secret.write" {
                return v;
            }
        }
    })
    .await
    .expect("the secret.write announcement within 10 s");
    assert_eq!(seen["resource"], "secret:announced");
    assert!(
        seen.get("detail").is_none(),
        "announcements carry no detail"
    );
    assert_eq!(app.state.bus.stats().dropped_total(), 0);
    app.close().await;
}
