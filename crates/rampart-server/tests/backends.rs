//! External secret backends behind the secrets API: AWS Secrets Manager (against `moto` in
//! server mode) and a Vault KV v2 mount (against Rampart's own Vault-compatible endpoint, served
//! on a real socket — another tenant of the same server plays the Vault server).
#![cfg(all(feature = "aws", feature = "vault"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use rampart_testkit::MotoServer;
use serde_json::{Value, json};

const CAPS: &[&str] = &[
    "secrets:read",
    "secrets:write",
    "secrets:admin",
    "audit:read",
];

async fn token(app: &TestApp, tenant: &str) -> String {
    let op = app.operator_token().await;
    let (_, key) = app.create_key(&op, Some(tenant), CAPS).await;
    app.tokens(&key).await.access
}

async fn put(app: &TestApp, t: &str, path: &str, body: Value) -> common::Res {
    app.call(
        Method::PUT,
        &format!("/v1/secrets/{path}"),
        Some(t),
        Some(body),
    )
    .await
}

async fn post(app: &TestApp, t: &str, path: &str, body: Value) -> common::Res {
    app.call(
        Method::POST,
        &format!("/v1/secrets/{path}"),
        Some(t),
        Some(body),
    )
    .await
}

async fn get(app: &TestApp, t: &str, path: &str) -> common::Res {
    app.get(&format!("/v1/secrets/{path}"), t).await
}

fn listed_paths(body: &Value) -> Vec<&str> {
    body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_behind_the_secrets_api() {
    let moto = MotoServer::start();
    let app = TestApp::start(Backend::Sqlite).await;
    let tenant = app.create_tenant("acme").await;
    let t = token(&app, &tenant).await;
    let creds = json!({ "access_key_id": "AKIDTEST", "secret_access_key": "aws-canary-secret" });
    let r = put(
        &app,
        &t,
        "data/ops/aws",
        json!({ "value": creds.to_string() }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The mount's settings are checked; the credentials must lie outside it.
    let settings = |credentials: &str| {
        json!({ "kind": "aws_secrets_manager", "region": "eu-west-1",
                "endpoint": moto.endpoint, "credentials": credentials })
    };
    let r = put(&app, &t, "backends/aws", settings("aws/creds")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = put(&app, &t, "backends/ops", settings("other/x")).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "local secrets under ops/: {}",
        r.text
    );
    let r = put(&app, &t, "backends/aws", settings("ops/aws")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["settings"]["kind"], "aws_secrets_manager");
    assert!(!r.text.contains("aws-canary-secret"));

    // Versions and check-and-set.
    let r = put(
        &app,
        &t,
        "data/aws/app/db",
        json!({ "value": "one", "cas": 0 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    let r = put(
        &app,
        &t,
        "data/aws/app/db",
        json!({ "value": "two", "cas": 1 }),
    )
    .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let r = put(
        &app,
        &t,
        "data/aws/app/db",
        json!({ "value": "x", "cas": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = get(&app, &t, "data/aws/app/db").await;
    assert_eq!(
        (r.body["value"].as_str(), r.body["version"].as_i64()),
        (Some("two"), Some(2))
    );
    let r = get(&app, &t, "data/aws/app/db?version=1").await;
    assert_eq!(r.body["value"], "one", "{}", r.text);
    put(&app, &t, "data/aws/app/api", json!({ "value": "k" })).await;
    let r = get(&app, &t, "metadata/aws/app/db").await;
    assert_eq!(r.body["current_version"], 2, "{}", r.text);
    assert_eq!(r.body["versions"].as_array().unwrap().len(), 2);
    let r = get(&app, &t, "metadata?prefix=aws/app/").await;
    let paths = listed_paths(&r.body);
    assert_eq!(paths, ["aws/app/api", "aws/app/db"], "{}", r.text);

    // Secrets Manager deletes whole secrets.
    let r = post(&app, &t, "delete/aws/app/db", json!({ "versions": [1] })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = post(&app, &t, "destroy/aws/app/db", json!({ "versions": [2] })).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "destroy before delete: {}",
        r.text
    );
    let r = app.delete("/v1/secrets/data/aws/app/db", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &t, "data/aws/app/db").await.status,
        StatusCode::NOT_FOUND
    );
    let r = post(&app, &t, "undelete/aws/app/db", json!({ "versions": [2] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(get(&app, &t, "data/aws/app/db").await.body["value"], "two");
    app.delete("/v1/secrets/data/aws/app/db", &t).await;
    let r = post(&app, &t, "destroy/aws/app/db", json!({ "versions": [2] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &t, "data/aws/app/db").await.status,
        StatusCode::NOT_FOUND
    );

    // Every operation is audited with the backend named, never a value or the credentials.
    let audit = app.get("/v1/audit/events?limit=500", &t).await;
    assert!(!audit.text.contains("aws-canary-secret") && !audit.text.contains("\"two\""));
    let events = audit.body["events"].as_array().unwrap();
    let external_writes = events
        .iter()
        .filter(|e| e["action"] == "secret.write" && e["detail"]["backend"]["mount"] == "aws")
        .count();
    assert_eq!(external_writes, 4, "{}", audit.text);

    // Without readable credentials the backend is unavailable, not bypassed.
    app.delete("/v1/secrets/data/ops/aws", &t).await;
    let r = get(&app, &t, "data/aws/app/api").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(!r.text.contains("aws-canary-secret"));

    let r = app.delete("/v1/secrets/backends/aws", &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&app, &t, "data/aws/app/api").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "unmounted: local again");
    app.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_kv2_mount_behind_the_secrets_api() {
    let app = TestApp::start(Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Tenant `upstream` is the Vault server; its access token is the Vault token.
    let upstream = app.create_tenant("upstream").await;
    let vault_token = token(&app, &upstream).await;
    let tenant = app.create_tenant("acme").await;
    let t = token(&app, &tenant).await;
    let r = put(
        &app,
        &t,
        "data/ops/vault-token",
        json!({ "value": vault_token }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put(
        &app,
        &t,
        "backends/corp",
        json!({ "kind": "vault_kv2", "address": address, "mount": "kv",
                "api_prefix": "/vault/v1", "credentials": "ops/vault-token" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = put(
        &app,
        &t,
        "data/corp/app/db",
        json!({ "value": "v-one", "cas": 0 }),
    )
    .await;
    assert_eq!(
        (r.status, r.body["version"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{}",
        r.text
    );
    let r = put(
        &app,
        &t,
        "data/corp/app/db",
        json!({ "value": "{\"user\":\"u\"}", "cas": 1 }),
    )
    .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let r = put(
        &app,
        &t,
        "data/corp/app/db",
        json!({ "value": "x", "cas": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = get(&app, &t, "data/corp/app/db").await;
    assert_eq!(r.body["value"], "{\"user\":\"u\"}", "{}", r.text);
    let r = get(&app, &t, "data/corp/app/db?version=1").await;
    assert_eq!(r.body["value"], "v-one", "{}", r.text);
    // It is really in the upstream tenant's store, at the Vault mount's path.
    let r = get(&app, &vault_token, "data/kv/app/db?version=1").await;
    assert_eq!(r.body["value"], "{\"value\":\"v-one\"}", "{}", r.text);

    put(&app, &t, "data/corp/app/api", json!({ "value": "k" })).await;
    put(&app, &t, "data/corp/other", json!({ "value": "o" })).await;
    let r = get(&app, &t, "metadata?prefix=corp/app/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let paths = listed_paths(&r.body);
    assert_eq!(paths, ["corp/app/api", "corp/app/db"], "{}", r.text);

    // Versions: delete, undelete, destroy, and the metadata that shows them.
    let r = post(&app, &t, "delete/corp/app/db", json!({ "versions": [2] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &t, "data/corp/app/db?version=2").await.status,
        StatusCode::NOT_FOUND
    );
    let r = get(&app, &t, "metadata/corp/app/db").await;
    assert_eq!(r.body["current_version"], 2, "{}", r.text);
    assert!(
        r.body["versions"][1]["deleted_at"].is_string(),
        "{}",
        r.text
    );
    post(&app, &t, "undelete/corp/app/db", json!({ "versions": [2] })).await;
    assert_eq!(
        get(&app, &t, "data/corp/app/db").await.status,
        StatusCode::OK
    );
    let r = post(&app, &t, "destroy/corp/app/db", json!({ "versions": [1] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &t, "data/corp/app/db?version=1").await.status,
        StatusCode::NOT_FOUND
    );
    let r = get(&app, &t, "metadata/corp/app/db").await;
    assert!(
        r.body["versions"][0]["destroyed_at"].is_string(),
        "{}",
        r.text
    );
    let r = app.delete("/v1/secrets/data/corp/app/db", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &t, "data/corp/app/db").await.status,
        StatusCode::NOT_FOUND
    );

    let audit = app.get("/v1/audit/events?limit=500", &t).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(!audit.text.contains("v-one") && !audit.text.contains(&vault_token));
    assert!(
        audit.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "secret.read" && e["detail"]["backend"]["kind"] == "vault_kv2"),
        "{}",
        audit.text
    );

    // A wrong token: the upstream refuses, the caller gets an error, nothing leaks.
    put(
        &app,
        &t,
        "data/ops/vault-token",
        json!({ "value": "not-a-token" }),
    )
    .await;
    let r = get(&app, &t, "data/corp/app/api").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    server.abort();
    app.close().await;
}
