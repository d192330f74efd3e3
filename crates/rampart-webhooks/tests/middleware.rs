#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The axum middleware in front of a handler, through `Router::oneshot`.

#![cfg(feature = "axum")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use rampart_testkit::FakeClock;
use rampart_types::Clock;
use rampart_webhooks::middleware::{Receiver, verify_webhooks};
use rampart_webhooks::{
    MemoryReplayGuard, Signer, SigningSecret, Verified, Verifier, VerifyKey, WebhookSecret,
};
use tower::ServiceExt;

struct Fixture {
    app: Router,
    clock: FakeClock,
    signer: Signer,
    calls: Arc<AtomicUsize>,
}

fn fixture(fail_first: bool) -> Fixture {
    let secret = WebhookSecret::generate().unwrap();
    let clock = FakeClock::new();
    let receiver = Arc::new(Receiver::new(
        Verifier::new(vec![VerifyKey::Symmetric(secret.clone())]),
        Arc::new(MemoryReplayGuard::new(1000)),
        Arc::new(clock.clone()),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new()
        .route(
            "/hooks",
            post(
                move |axum::Extension(v): axum::Extension<Verified>, body: String| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if fail_first && n == 0 {
                            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
                        }
                        (StatusCode::OK, format!("{} {body}", v.id()))
                    }
                },
            ),
        )
        .layer(axum::middleware::from_fn_with_state(
            receiver,
            verify_webhooks,
        ));
    Fixture {
        app,
        clock,
        signer: Signer::new(vec![SigningSecret::Symmetric(secret)]),
        calls,
    }
}

fn request(f: &Fixture, id: &str, ts: i64, body: &str, sig: Option<String>) -> Request<Body> {
    let sig = sig.unwrap_or_else(|| f.signer.sign(id, ts, body.as_bytes()));
    Request::post("/hooks")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn send(f: &Fixture, req: Request<Body>) -> (StatusCode, serde_json::Value, String) {
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    if ct == "application/problem+json" {
        (status, serde_json::from_str(&text).unwrap(), text)
    } else {
        (status, serde_json::Value::Null, text)
    }
}

#[tokio::test]
async fn valid_messages_pass_once_and_every_failed_check_is_named() {
    let f = fixture(false);
    let now = f.clock.now().unix_seconds();
    let (status, _, text) = send(&f, request(&f, "msg_1", now, "{\"a\":1}", None)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "msg_1 {\"a\":1}"));

    let cases = [
        (
            request(&f, "msg_1", now, "{\"a\":1}", None),
            "webhook_replayed",
        ),
        (
            request(&f, "msg_2", now - 301, "{}", None),
            "webhook_timestamp_too_old",
        ),
        (
            request(&f, "msg_3", now + 301, "{}", None),
            "webhook_timestamp_too_new",
        ),
        (
            request(
                &f,
                "msg_4",
                now,
                "{}",
                Some(f.signer.sign("msg_4", now, b"{ }")),
            ),
            "webhook_signature_mismatch",
        ),
        (
            Request::post("/hooks").body(Body::from("{}")).unwrap(),
            "webhook_header_missing",
        ),
    ];
    for (req, code) in cases {
        let (status, problem, _) = send(&f, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}");
        assert_eq!(problem["code"], code);
        assert_eq!(problem["status"], 401);
        assert!(problem["detail"].as_str().unwrap().len() > 10);
    }
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        1,
        "no rejected message reached the handler"
    );

    // Five minutes after the message's timestamp its id may be forgotten, since the timestamp
    // check refuses it from then on.
    f.clock.advance(std::time::Duration::from_secs(301));
    let (_, problem, _) = send(&f, request(&f, "msg_1", now, "{\"a\":1}", None)).await;
    assert_eq!(problem["code"], "webhook_timestamp_too_old");
}

#[tokio::test]
async fn a_failed_handler_lets_the_senders_retry_through() {
    let f = fixture(true);
    let now = f.clock.now().unix_seconds();
    let (status, _, _) = send(&f, request(&f, "msg_r", now, "{}", None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The retry: same id, a later timestamp, a new signature.
    let (status, _, _) = send(&f, request(&f, "msg_r", now + 5, "{}", None)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, problem, _) = send(&f, request(&f, "msg_r", now + 5, "{}", None)).await;
    assert_eq!(problem["code"], "webhook_replayed");
}
