//! Secrets through the HTTP API on both backends: versions, check-and-set, delete / undelete /
//! destroy, listing, tenant isolation, key rotation (plain and break-glass) and revocation, the
//! audit trail, and what the database holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use rampart_store::{Scope, TenantScope};
use rampart_types::TenantId;
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "secrets:read",
    "secrets:write",
    "secrets:admin",
    "audit:read",
];

/// A tenant and a token holding `caps` in it.
async fn tenant_token(app: &TestApp, name: &str, caps: &[&str]) -> (String, String) {
    let tenant = app.create_tenant(name).await;
    let op = app.operator_token().await;
    let (_, key) = app.create_key(&op, Some(&tenant), caps).await;
    (tenant, app.tokens(&key).await.access)
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> common::Res {
    app.call(
        Method::PUT,
        &format!("/v1/secrets/data/{path}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn versions_and_cas(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, t) = tenant_token(&app, "acme", ALL).await;

    // First write with cas 0 (must not exist), then a plain write, then cas on the newest.
    let r = put(
        &app,
        &t,
        "db/orders/password",
        json!({ "value": "v1-canary", "cas": 0 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    assert!(
        !r.text.contains("v1-canary"),
        "a write never echoes the value"
    );
    let r = put(
        &app,
        &t,
        "db/orders/password",
        json!({ "value": "v2-canary" }),
    )
    .await;
    assert_eq!(r.body["version"], 2);
    let r = put(
        &app,
        &t,
        "db/orders/password",
        json!({ "value": "x", "cas": 0 }),
    )
    .await;
    r.assert_problem(409, "conflict");
    let r = put(
        &app,
        &t,
        "db/orders/password",
        json!({ "value": "x", "cas": 1 }),
    )
    .await;
    r.assert_problem(409, "conflict");
    let r = put(
        &app,
        &t,
        "db/orders/password",
        json!({ "value": "v3-canary", "cas": 2 }),
    )
    .await;
    assert_eq!(r.body["version"], 3, "{}", r.text);

    // Read newest and older versions; no caching.
    let r = app.get("/v1/secrets/data/db/orders/password", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], "v3-canary");
    assert_eq!(r.body["version"], 3);
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = app
        .get("/v1/secrets/data/db/orders/password?version=1", &t)
        .await;
    assert_eq!(r.body["value"], "v1-canary");
    let r = app
        .get("/v1/secrets/data/db/orders/password?version=9", &t)
        .await;
    r.assert_problem(404, "not-found");
    let r = app.get("/v1/secrets/data/db/nothing", &t).await;
    r.assert_problem(404, "not-found");

    // Bad paths and bodies are problems, never echoing the value.
    for bad in ["a//b", "a/../b", "a%20b", "a/"] {
        let r = put(&app, &t, bad, json!({ "value": "canary-bad-path" })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert!(!r.text.contains("canary-bad-path"));
    }
    let r = put(
        &app,
        &t,
        "ok",
        json!({ "value": "canary-unknown", "extra": 1 }),
    )
    .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert!(!r.text.contains("canary-unknown"));
    let big = "x".repeat(65_537);
    let r = put(&app, &t, "big", json!({ "value": big })).await;
    r.assert_problem(422, "validation-failed");

    // Delete the newest: reads of it are 404; undelete brings it back; destroy is for good.
    let r = app.delete("/v1/secrets/data/db/orders/password", &t).await;
    assert_eq!(r.body["changed"], 1, "{}", r.text);
    let r = app.get("/v1/secrets/data/db/orders/password", &t).await;
    r.assert_problem(404, "not-found");
    assert!(r.body["detail"].as_str().unwrap().contains("deleted"));
    let r = app
        .post(
            "/v1/secrets/undelete/db/orders/password",
            &t,
            json!({ "versions": [3] }),
        )
        .await;
    assert_eq!(r.body["changed"], 1);
    assert_eq!(
        app.get("/v1/secrets/data/db/orders/password", &t)
            .await
            .body["value"],
        "v3-canary"
    );
    let r = app
        .post(
            "/v1/secrets/destroy/db/orders/password",
            &t,
            json!({ "versions": [1, 3] }),
        )
        .await;
    assert_eq!(r.body["changed"], 2, "{}", r.text);
    let r = app
        .get("/v1/secrets/data/db/orders/password?version=1", &t)
        .await;
    r.assert_problem(404, "not-found");
    assert!(r.body["detail"].as_str().unwrap().contains("destroyed"));
    let r = app
        .post(
            "/v1/secrets/undelete/db/orders/password",
            &t,
            json!({ "versions": [1] }),
        )
        .await;
    assert_eq!(r.body["changed"], 0, "destroyed stays destroyed");
    assert_eq!(
        app.get("/v1/secrets/data/db/orders/password?version=2", &t)
            .await
            .body["value"],
        "v2-canary"
    );

    // Metadata: states, never values.
    let r = app.get("/v1/secrets/metadata/db/orders/password", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["current_version"], 3);
    let v = r.body["versions"].as_array().unwrap();
    assert_eq!(v.len(), 3);
    assert!(v[0]["destroyed_at"].is_string() && v[0]["key_version"].is_null());
    assert!(v[1]["destroyed_at"].is_null() && v[1]["key_version"] == 1);
    assert!(!r.text.contains("canary"));

    // The audit trail has every write, read (including refused ones) and change — no values.
    let audit = app.get("/v1/audit/events?limit=1000", &t).await;
    assert!(!audit.text.contains("canary"));
    let actions = app.audit_actions(&t, None).await;
    let count = |a: &str, o: &str| actions.iter().filter(|(x, y)| x == a && y == o).count();
    assert_eq!(count("secret.write", "success"), 3);
    assert!(count("secret.read", "success") >= 4);
    assert!(count("secret.read", "denied") >= 4);
    assert_eq!(count("secret.delete", "success"), 1);
    assert_eq!(count("secret.undelete", "success"), 2);
    assert_eq!(count("secret.destroy", "success"), 1);
    app.close().await;
}

async fn listing_and_capabilities(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, t) = tenant_token(&app, "acme", ALL).await;
    for p in ["app/a", "app/b", "app/c/d", "apple", "other/x"] {
        let r = put(&app, &t, p, json!({ "value": "v" })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = app
        .get("/v1/secrets/metadata?prefix=app/&limit=2", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let paths = |r: &common::Res| -> Vec<String> {
        r.body["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths(&r), ["app/a", "app/b"]);
    assert_eq!(r.body["next"], "app/b");
    let r = app
        .get("/v1/secrets/metadata?prefix=app/&limit=2&after=app/b", &t)
        .await;
    assert_eq!(paths(&r), ["app/c/d"]);
    assert!(r.body["next"].is_null());
    let r = app.get("/v1/secrets/metadata?prefix=app", &t).await;
    assert_eq!(paths(&r), ["app/a", "app/b", "app/c/d", "apple"]);
    let r = app.get("/v1/secrets/metadata?limit=0", &t).await;
    r.assert_problem(400, "invalid-query");

    // Capabilities: a reader cannot write or destroy; a writer cannot read values.
    let op = app.operator_token().await;
    let tenant = app.create_tenant("readers").await;
    let (_, rk) = app.create_key(&op, Some(&tenant), &["secrets:read"]).await;
    let (_, wk) = app.create_key(&op, Some(&tenant), &["secrets:write"]).await;
    let (reader, writer) = (app.tokens(&rk).await.access, app.tokens(&wk).await.access);
    put(&app, &writer, "k", json!({ "value": "v" })).await;
    let r = put(&app, &reader, "k", json!({ "value": "v" })).await;
    r.assert_problem(403, "forbidden");
    let r = app.get("/v1/secrets/data/k", &writer).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        app.get("/v1/secrets/data/k", &reader).await.body["value"],
        "v"
    );
    let r = app
        .post("/v1/secrets/destroy/k", &writer, json!({ "versions": [1] }))
        .await;
    r.assert_problem(403, "forbidden");
    let r = app
        .post("/v1/secrets/keys/rotate", &writer, json!({}))
        .await;
    r.assert_problem(403, "forbidden");

    // Another tenant sees nothing of acme's: same path, not found; its list is its own.
    assert_eq!(
        app.get("/v1/secrets/data/app/a", &reader).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        paths(&app.get("/v1/secrets/metadata", &reader).await),
        ["k"]
    );
    app.close().await;
}

async fn rotation_break_glass_and_revocation(b: Backend) {
    let app = TestApp::start(b).await;
    let (tenant, t) = tenant_token(&app, "acme", ALL).await;
    for i in 0..7 {
        put(
            &app,
            &t,
            &format!("s/{i}"),
            json!({ "value": format!("value-{i}") }),
        )
        .await;
    }
    let r = app.get("/v1/secrets/keys", &t).await;
    assert_eq!(r.body["versions"][0]["version"], 1, "{}", r.text);
    assert_eq!(r.body["versions"][0]["state"], "active");
    assert_eq!(r.body["versions"][0]["secret_versions"], 7);

    // A plain rotation: new writes under 2, old ones still readable under 1.
    let r = app.post("/v1/secrets/keys/rotate", &t, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["version"].clone(), r.body["retired"].clone()),
        (json!(2), json!(1))
    );
    put(&app, &t, "s/new", json!({ "value": "new" })).await;
    let meta = app.get("/v1/secrets/metadata/s/new", &t).await;
    assert_eq!(meta.body["versions"][0]["key_version"], 2);
    assert_eq!(
        app.get("/v1/secrets/data/s/3", &t).await.body["value"],
        "value-3"
    );

    // Break-glass needs a reason, then re-wraps everything under the new version 3.
    let r = app
        .post("/v1/secrets/keys/break-glass", &t, json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 422, "a reason is required: {}", r.text);
    let r = app
        .post("/v1/secrets/keys/break-glass", &t, json!({ "reason": "" }))
        .await;
    r.assert_problem(422, "validation-failed");
    let r = app
        .post(
            "/v1/secrets/keys/break-glass",
            &t,
            json!({ "reason": "laptop stolen" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 3);
    assert_eq!(r.body["rewrapped"], 8);
    let keys = app.get("/v1/secrets/keys", &t).await;
    let by_version = |v: i64| {
        keys.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["version"] == v)
            .unwrap()
            .clone()
    };
    assert_eq!(by_version(3)["secret_versions"], 8);
    assert_eq!(by_version(1)["secret_versions"], 0);
    for i in 0..7 {
        assert_eq!(
            app.get(&format!("/v1/secrets/data/s/{i}"), &t).await.body["value"],
            format!("value-{i}")
        );
    }

    // Revoke the active version 3: it rotates to 4, moves everything, destroys 3's material.
    let r = app
        .post(
            "/v1/secrets/keys/3/revoke",
            &t,
            json!({ "reason": "suspected leak" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rewrapped"], 8);
    assert_eq!(r.body["active"], 4);
    let r = app
        .post(
            "/v1/secrets/keys/3/revoke",
            &t,
            json!({ "reason": "again" }),
        )
        .await;
    r.assert_problem(409, "conflict");
    let r = app
        .post("/v1/secrets/keys/99/revoke", &t, json!({ "reason": "x" }))
        .await;
    r.assert_problem(404, "not-found");
    let r = app.post("/v1/secrets/keys/1/revoke", &t, json!({})).await;
    assert_eq!(r.status.as_u16(), 422, "a reason is required: {}", r.text);
    for i in 0..7 {
        assert_eq!(
            app.get(&format!("/v1/secrets/data/s/{i}"), &t).await.body["value"],
            format!("value-{i}")
        );
    }

    // In the database: version 3 holds no key material; a row moved back under it (or to
    // another path) does not open.
    let tid: TenantId = tenant.parse().unwrap();
    let scope = Scope::Tenant(TenantScope {
        tenant: tid,
        subject: "test".into(),
        platform: false,
    });
    let mut tx = app.state.store.begin(scope.clone()).await.unwrap();
    let keys = tx.tenant_keys(tid).await.unwrap();
    let v3 = keys.iter().find(|k| k.version == 3).unwrap();
    assert!(v3.sealed_key.is_none() && v3.revoked_at.is_some());
    let err = app
        .state
        .secrets
        .kek(&mut tx, tid, 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("revoked"), "{err}");
    let row = tx.secret_version(tid, "s/1", 1).await.unwrap().unwrap();
    let sealed = row.sealed.clone().unwrap();
    assert_eq!(sealed.key_version, 4);
    assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("value-1"));
    // Copy s/1's wrapped data key onto s/2's row: s/2 no longer opens (its AAD names s/2).
    tx.rewrap_secret_version(tid, "s/2", 1, 4, 4, &sealed.wrapped_dek)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = app.get("/v1/secrets/data/s/2", &t).await;
    r.assert_problem(500, "internal");
    assert!(!r.text.contains("value-"));

    // Every rotation, re-wrap and revocation is in the audit trail, with its reason.
    let audit = app.get("/v1/audit/events?limit=1000", &t).await;
    let events = audit.body["events"].as_array().unwrap();
    let of = |a: &str| events.iter().filter(|e| e["action"] == a).count();
    assert_eq!(of("tenant_key.rotate"), 3);
    assert!(of("tenant_key.rewrap") >= 2);
    assert_eq!(of("tenant_key.revoke"), 1);
    assert!(audit.text.contains("laptop stolen") && audit.text.contains("suspected leak"));
    app.close().await;
}

async fn scheduled_rotation(b: Backend) {
    let app = TestApp::start_with(b, |c| {
        c.secrets_key_rotation_period = Duration::from_secs(7 * 86_400);
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let op = app.operator_token().await;
    let (_, key) = app.create_key(&op, Some(&tenant), ALL).await;
    let t = app.tokens(&key).await.access;
    put(&app, &t, "a", json!({ "value": "old" })).await;
    let rotate = || rampart_server::app::rotate_tenant_keys(&app.state);
    app.advance(Duration::from_secs(6 * 86_400));
    assert_eq!(rotate().await, Ok(0));
    app.advance(Duration::from_secs(86_400));
    assert_eq!(rotate().await, Ok(1));
    assert_eq!(rotate().await, Ok(0), "the new version is fresh");
    let t = app.tokens(&key).await.access;
    put(&app, &t, "b", json!({ "value": "new" })).await;
    let meta = app.get("/v1/secrets/metadata/b", &t).await;
    assert_eq!(meta.body["versions"][0]["key_version"], 2, "{}", meta.text);
    assert_eq!(app.get("/v1/secrets/data/a", &t).await.body["value"], "old");
    let audit = app.get("/v1/audit/events?limit=1000", &t).await;
    let rotation = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "tenant_key.rotate")
        .unwrap()
        .clone();
    assert_eq!(rotation["actor"], "system");
    assert_eq!(rotation["detail"]["reason"], "scheduled");
    app.close().await;
}

on_both_backends!(
    scheduled_rotation,
    versions_and_cas,
    listing_and_capabilities,
    rotation_break_glass_and_revocation
);
