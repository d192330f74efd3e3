//! The edge: problem details for every failure, request ids, the OpenAPI document, health,
//! failing closed, and logs that never hold a secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp};
use rampart_server::audit::AuditFuture;
use rampart_server::{AuditError, AuditSink};
use rampart_store::Tx;
use rampart_types::AuditEvent;
use serde_json::{Value, json};

fn raw(
    method: Method,
    path: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
}

async fn malformed_requests_get_typed_problems(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "{\"name\":",
            ),
            400,
            "malformed-json",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "not json",
            ),
            400,
            "malformed-json",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "[\"filled positionally\"]",
            ),
            422,
            "invalid-body",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "",
            ),
            400,
            "malformed-json",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "{\"name\":\"a\",\"x\":1}",
            ),
            422,
            "unknown-field",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "{\"name\":42}",
            ),
            422,
            "invalid-body",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                "[]",
            ),
            422,
            "invalid-body",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("text/plain"),
                "{\"name\":\"a\"}",
            ),
            415,
            "unsupported-media-type",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                None,
                "{\"name\":\"a\"}",
            ),
            415,
            "unsupported-media-type",
        ),
        (
            raw(
                Method::POST,
                "/v1/auth/token",
                None,
                Some("text/plain"),
                "grant_type=api_key",
            ),
            415,
            "unsupported-media-type",
        ),
        (
            raw(
                Method::POST,
                "/v1/tenants",
                Some(&op),
                Some("application/json"),
                vec![b' '; 2 * 1024 * 1024],
            ),
            413,
            "payload-too-large",
        ),
        (
            raw(
                Method::GET,
                "/v1/tenants/123",
                Some(&op),
                None,
                Body::empty(),
            ),
            400,
            "invalid-path-parameter",
        ),
        (
            raw(
                Method::GET,
                "/v1/tenants/%FF%FE",
                Some(&op),
                None,
                Body::empty(),
            ),
            400,
            "invalid-path-parameter",
        ),
        (
            raw(
                Method::GET,
                "/v1/apikeys?tenant_id=nope",
                Some(&op),
                None,
                Body::empty(),
            ),
            400,
            "invalid-query",
        ),
        (
            raw(Method::PUT, "/v1/tenants", Some(&op), None, Body::empty()),
            405,
            "method-not-allowed",
        ),
        (
            raw(Method::GET, "/v2/nothing", None, None, Body::empty()),
            404,
            "not-found",
        ),
    ];
    for (req, status, code) in cases {
        let desc = format!("{} {}", req.method(), req.uri());
        let r = app.send(req).await;
        assert_eq!(r.status.as_u16(), status, "{desc}: {}", r.text);
        r.assert_problem(status, code);
    }
    // The JSON content type with a charset, and a +json type, are accepted.
    let r = app
        .send(raw(
            Method::POST,
            "/v1/tenants",
            Some(&op),
            Some("application/json; charset=utf-8"),
            "{\"name\":\"cs\"}",
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // 405 keeps its Allow header.
    let r = app
        .send(raw(
            Method::PATCH,
            "/v1/apikeys",
            Some(&op),
            None,
            Body::empty(),
        ))
        .await;
    assert!(r.headers.contains_key("allow"));
    app.close().await;
}

async fn error_bodies_never_echo_submitted_values(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    let canary = "canary-9f3e1c-secret";
    let key = app.operator_key.clone().unwrap();
    for body in [
        json!({ "name": ["x"], "note": canary }),
        json!({ "name": { "v": canary } }),
        json!({ "capabilities": canary, "name": "x" }),
        json!({ "name": "x", "capabilities": [key.clone()] }),
        json!({ "name": 1, "expires_in": key.clone() }),
    ] {
        for path in ["/v1/tenants", "/v1/apikeys"] {
            let r = app.post(path, &op, body.clone()).await;
            assert!(r.status.is_client_error());
            assert!(!r.text.contains(canary), "{}", r.text);
            assert!(!r.text.contains(&key[22..]), "{}", r.text);
        }
    }
    // A key pasted into the path is not echoed either.
    let r = app.get(&format!("/v1/tenants/{key}"), &op).await;
    assert!(!r.text.contains(&key[22..]), "{}", r.text);
    app.close().await;
}

async fn request_ids_follow_traceparent_into_problems_and_audit(b: Backend) {
    let app = TestApp::start(b).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let key = app.operator_key.clone().unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/token")
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(Body::from(
            json!({ "grant_type": "api_key", "api_key": key }).to_string(),
        ))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-request-id"], trace);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let events = app.get("/v1/audit/events?limit=1000", &token).await;
    let issued: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request_id"] == trace)
        .collect();
    assert_eq!(
        issued.len(),
        2,
        "apikey.use and token.issue carry the request id"
    );
    // Problems carry it too; a malformed traceparent gets a fresh id.
    let req = Request::builder()
        .uri("/v1/tenants")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    r.assert_problem(401, "unauthenticated");
    assert_eq!(r.body["request_id"], trace);
    let req = Request::builder()
        .uri("/healthz")
        .header("traceparent", "garbage")
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_ne!(id, trace);
    app.close().await;
}

/// The API surface the foundation promises, by method and path.
const PROMISED: &[(&str, &str)] = &[
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{tenant_id}"),
    ("post", "/v1/apikeys"),
    ("get", "/v1/apikeys"),
    ("post", "/v1/apikeys/{id}/rotate"),
    ("delete", "/v1/apikeys/{id}"),
    ("post", "/v1/auth/token"),
    ("post", "/v1/auth/revoke"),
    ("get", "/v1/audit/events"),
    ("get", "/v1/audit/checkpoint"),
    ("post", "/v1/audit/checkpoint"),
    ("get", "/v1/audit/verifier-key"),
    ("get", "/v1/audit/entries/{index}"),
    ("get", "/v1/audit/proofs/inclusion"),
    ("get", "/v1/audit/proofs/consistency"),
    ("get", "/v1/audit/receipts/{index}"),
    ("post", "/v1/audit/erase"),
    ("get", "/v1/audit/zones"),
    ("get", "/tlog/checkpoint"),
    ("get", "/tlog/tile/{path}"),
    ("post", "/v1/keys/signing/rotate"),
    ("put", "/v1/secrets/data/{path}"),
    ("get", "/v1/secrets/data/{path}"),
    ("delete", "/v1/secrets/data/{path}"),
    ("post", "/v1/secrets/delete/{path}"),
    ("post", "/v1/secrets/undelete/{path}"),
    ("post", "/v1/secrets/destroy/{path}"),
    ("get", "/v1/secrets/metadata/{path}"),
    ("get", "/v1/secrets/metadata"),
    ("get", "/v1/secrets/keys"),
    ("post", "/v1/secrets/keys/rotate"),
    ("post", "/v1/secrets/keys/break-glass"),
    ("post", "/v1/secrets/keys/{version}/revoke"),
    ("post", "/v1/agents"),
    ("get", "/v1/agents"),
    ("get", "/v1/agents/{id}"),
    ("put", "/v1/agents/{id}"),
    ("post", "/v1/agents/{id}/disable"),
    ("get", "/v1/engines/postgres"),
    ("put", "/v1/engines/postgres/{name}"),
    ("delete", "/v1/engines/postgres/{name}"),
    ("get", "/v1/secrets/backends"),
    ("put", "/v1/secrets/backends/{name}"),
    ("delete", "/v1/secrets/backends/{name}"),
    ("post", "/v1/leases"),
    ("get", "/v1/leases"),
    ("post", "/v1/leases/revoke"),
    ("get", "/v1/leases/{id}"),
    ("post", "/v1/leases/{id}/renew"),
    ("post", "/v1/leases/{id}/revoke"),
    ("post", "/v1/webhooks/endpoints"),
    ("get", "/v1/webhooks/endpoints"),
    ("get", "/v1/webhooks/endpoints/{id}"),
    ("patch", "/v1/webhooks/endpoints/{id}"),
    ("delete", "/v1/webhooks/endpoints/{id}"),
    ("post", "/v1/webhooks/endpoints/{id}/rotate-key"),
    ("post", "/v1/webhooks/endpoints/{id}/replay"),
    ("get", "/v1/webhooks/deliveries"),
    ("get", "/v1/webhooks/deliveries/{id}"),
    ("post", "/v1/webhooks/deliveries/{id}/replay"),
    ("post", "/v1/sentinel/scan"),
    ("post", "/v1/sentinel/redact"),
    ("post", "/v1/sentinel/reveal"),
    ("get", "/v1/sentinel/policy"),
    ("put", "/v1/sentinel/policy"),
    ("post", "/v1/sentinel/key/destroy"),
    ("post", "/v1/missions"),
    ("get", "/v1/missions"),
    ("get", "/v1/missions/{id}"),
    ("post", "/v1/missions/{id}/token"),
    ("post", "/v1/missions/{id}/end"),
    ("post", "/v1/missions/{id}/abort"),
    ("post", "/v1/missions/{id}/instructions/reveal"),
    ("post", "/v1/revocations"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/messages"),
    ("get", "/v1/gateway/config"),
    ("put", "/v1/gateway/config"),
    ("post", "/v1/gateway/requests/{id}/reveal"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

async fn openapi_documents_every_route(b: Backend) {
    let app = TestApp::start(b).await;
    let r = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut promised: Vec<(String, String)> = PROMISED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    promised.sort();
    assert_eq!(
        documented, promised,
        "documented routes differ from the promised surface"
    );
    // Every documented operation is served (not the router's 404 or 405).
    for (method, path) in &documented {
        let concrete = path
            .replace(
                "{tenant_id}",
                &rampart_types::TenantId::random().to_string(),
            )
            .replace("{id}", "zzzzzzzzzzzz")
            .replace("{index}", "0")
            .replace("{path}", "0/000");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.call(m, &concrete, None, None).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !r.text.contains("no route for"),
            "{method} {path} is documented but not routed"
        );
    }
    // Errors are documented as problem details.
    let token_op = &doc["paths"]["/v1/auth/token"]["post"]["responses"];
    assert!(token_op["401"]["content"]["application/problem+json"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.close().await;
}

async fn health_and_readiness(b: Backend) {
    let app = TestApp::start(b).await;
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.body, json!({ "status": "ok" }));
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.body, json!({ "status": "ready" }));
    // With the database gone, not ready: 503 problem.
    app.state.store.close().await;
    let r = app.call(Method::GET, "/readyz", None, None).await;
    r.assert_problem(503, "unavailable");
    app.close().await;
}

/// An audit sink that is down.
struct DownAudit;
impl AuditSink for DownAudit {
    fn record<'a>(&'a self, _: &'a mut Tx, _: &'a AuditEvent) -> AuditFuture<'a> {
        Box::pin(async { Err(AuditError("disk full".into())) })
    }
}

async fn requests_fail_closed_when_the_audit_trail_is_down(b: Backend) {
    let app = TestApp::start(b).await;
    let key = app.operator_key.clone().unwrap();
    let op = app.tokens(&key).await;
    let app = app.restart_with_audit(Some(Arc::new(DownAudit))).await;
    // No token is issued, no tenant created, no key revoked: each is refused with a 503.
    let r = app.grant(&key).await;
    r.assert_problem(503, "unavailable");
    assert!(
        !r.text.contains("disk full"),
        "the cause is logged, not shown"
    );
    app.post("/v1/tenants", &op.access, json!({ "name": "ghost" }))
        .await
        .assert_problem(503, "unavailable");
    app.refresh(&op.refresh)
        .await
        .assert_problem(503, "unavailable");
    // Back with a working trail, nothing of the refused requests happened.
    let app = app.restart_with_audit(None).await;
    let r = app.get("/v1/tenants", &op.access).await;
    assert!(!r.text.contains("ghost"));
    let r = app.refresh(&op.refresh).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the refused refresh did not consume the token: {}",
        r.text
    );
    app.close().await;
}

on_both_backends!(
    malformed_requests_get_typed_problems,
    error_bodies_never_echo_submitted_values,
    request_ids_follow_traceparent_into_problems_and_audit,
    openapi_documents_every_route,
    health_and_readiness,
    requests_fail_closed_when_the_audit_trail_is_down,
);

/// Logs never contain an API key, a token, the root key or a canary secret, through a full flow
/// with failures. (Current-thread runtime: the log capture is per thread.)
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_a_log_line() {
    let capture = rampart_testkit::LogCapture::default();
    let _guard = rampart_server::telemetry::scoped("debug", capture.clone());
    let app = TestApp::start(Backend::Sqlite).await;
    let canary = "canary-log-secret-51a7";
    let op_key = app.operator_key.clone().unwrap();
    let op = app.tokens(&op_key).await;
    let (tenant, admin_key) = app.tenant_with_admin("acme").await;
    let admin = app.tokens(&admin_key).await;
    let (id, k) = app.create_key(&admin.access, None, &["audit:read"]).await;
    let kt = app.tokens(&k).await;
    let r = app.refresh(&kt.refresh).await;
    let rotated = r.body["refresh_token"].as_str().unwrap().to_owned();
    app.refresh(&kt.refresh).await;
    app.post(
        &format!("/v1/apikeys/{id}/rotate"),
        &admin.access,
        json!({}),
    )
    .await;
    let forged = common::forge_same_id(&admin_key);
    app.grant(&forged).await;
    app.refresh(&common::forge_same_id(&rotated)).await;
    app.get(&format!("/v1/tenants/{op_key}"), &op.access).await;
    app.get(&format!("/v1/tenants/{tenant}"), canary).await;
    app.post(
        "/v1/tenants",
        &op.access,
        json!({ "name": canary, "password": canary }),
    )
    .await;
    app.call(
        Method::POST,
        "/v1/auth/revoke",
        None,
        Some(json!({ "token": admin.refresh })),
    )
    .await;
    app.call(
        Method::POST,
        "/v1/auth/revoke",
        None,
        Some(json!({ "token": op_key })),
    )
    .await;
    let req = Request::builder()
        .uri("/v1/tenants")
        .header("authorization", format!("Basic {canary}"))
        .body(Body::empty())
        .unwrap();
    app.send(req).await;
    app.close().await;

    let logs = capture.contents();
    assert!(logs.contains("request completed"), "the capture works");
    for secret in [
        op_key.as_str(),
        &op_key[22..],
        &admin_key[22..],
        &k[22..],
        &forged[22..],
        op.access.as_str(),
        op.refresh.as_str(),
        &admin.refresh[24..],
        &kt.refresh[24..],
        &rotated[24..],
        common::ROOT_KEY,
        canary,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    // Every request's lines carry its id.
    for line in logs.lines().filter(|l| l.contains("request completed")) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["span"]["request_id"].as_str().unwrap().len(),
            32,
            "{line}"
        );
    }
}
