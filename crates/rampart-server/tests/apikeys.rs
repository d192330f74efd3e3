//! API keys and tenants through the HTTP API: lifecycle, capability limits, isolation.
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
use serde_json::json;

async fn key_lifecycle(b: Backend) {
    let app = TestApp::start(b).await;
    let (tenant, admin_key) = app.tenant_with_admin("acme").await;
    let admin = app.tokens(&admin_key).await.access;

    // Create: 201, the key once, no-store, expiry 90 days by default.
    let r = app
        .post(
            "/v1/apikeys",
            &admin,
            json!({ "name": "ci", "capabilities": ["audit:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let key = r.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("rmp_live_{id}_")));
    assert_eq!(r.body["prefix"], format!("rmp_live_{id}_"));
    assert_eq!(r.body["tenant_id"], tenant.as_str());
    assert_eq!(r.body["status"], "active");
    let created =
        rampart_types::Timestamp::parse_rfc3339(r.body["created_at"].as_str().unwrap()).unwrap();
    let expires =
        rampart_types::Timestamp::parse_rfc3339(r.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(created),
        Duration::from_secs(90 * 86_400)
    );

    // List: metadata only; the key and its hash never come back.
    let r = app.get("/v1/apikeys", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text.contains(&key[22..]),
        "the secret must not be listed"
    );
    assert!(!r.text.contains("secret_hash") && !r.text.contains("\"key\""));
    let listed = r.body["api_keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);

    // Use is recorded.
    let t = app.tokens(&key).await;
    let r = app.get("/v1/apikeys", &admin).await;
    let ci = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(ci["last_used_at"].is_string());

    // Rotate with a 1 h overlap: a successor (shown once), and the old key works for the
    // overlap only.
    let r = app
        .post(
            &format!("/v1/apikeys/{id}/rotate"),
            &admin,
            json!({ "overlap": "1h" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let next_id = r.body["id"].as_str().unwrap().to_owned();
    let next_key = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(r.body["rotated_from"], id.as_str());
    assert_eq!(r.body["capabilities"], json!(["audit:read"]));
    assert_eq!(r.body["name"], "ci");
    app.post(&format!("/v1/apikeys/{id}/rotate"), &admin, json!({}))
        .await
        .assert_problem(409, "conflict");
    app.advance(Duration::from_secs(59 * 60));
    assert_eq!(app.grant(&key).await.status, StatusCode::OK);
    // Tokens minted from the old key never outlive it.
    let late = app.grant(&key).await;
    assert!(late.body["expires_in"].as_u64().unwrap() <= 60);
    app.advance(Duration::from_secs(61));
    app.grant(&key).await.assert_problem(401, "invalid-client");
    assert_eq!(app.grant(&next_key).await.status, StatusCode::OK);
    // A rotation without a body uses the default overlap (24 h).
    let admin = app.tokens(&admin_key).await.access;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/apikeys/{next_id}/rotate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let third = r.body["key"].as_str().unwrap().to_owned();
    app.advance(Duration::from_secs(23 * 3600));
    assert_eq!(app.grant(&next_key).await.status, StatusCode::OK);
    app.advance(Duration::from_secs(3601));
    app.grant(&next_key)
        .await
        .assert_problem(401, "invalid-client");
    assert_eq!(app.grant(&third).await.status, StatusCode::OK);

    // Revoke: idempotent; unknown ids are 404; bad ids are 400.
    let admin = app.tokens(&admin_key).await.access;
    let r = app.get("/v1/apikeys", &admin).await;
    let third_id = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active" && k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete(&format!("/v1/apikeys/{third_id}"), &admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/v1/apikeys/{third_id}"), &admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.grant(&third)
        .await
        .assert_problem(401, "invalid-client");
    app.delete("/v1/apikeys/zzzzzzzzzzzz", &admin)
        .await
        .assert_problem(404, "not-found");
    app.delete("/v1/apikeys/NOT-AN-ID", &admin)
        .await
        .assert_problem(400, "invalid-path-parameter");
    app.post(&format!("/v1/apikeys/{third_id}/rotate"), &admin, json!({}))
        .await
        .assert_problem(409, "conflict");

    // Every step is in the audit trail.
    let actions = app.audit_actions(&admin, None).await;
    for a in [
        "apikey.create",
        "apikey.use",
        "apikey.rotate",
        "apikey.revoke",
        "token.issue",
    ] {
        assert!(
            actions.iter().any(|(x, _)| x == a),
            "missing {a} in {actions:?}"
        );
    }
    let _ = t;
    app.close().await;
}

async fn capabilities_never_widen(b: Backend) {
    let app = TestApp::start(b).await;
    let (tenant, admin_key) = app.tenant_with_admin("acme").await;
    let admin = app.tokens(&admin_key).await.access;
    // Only what the creator holds.
    let r = app
        .post(
            "/v1/apikeys",
            &admin,
            json!({ "name": "x", "capabilities": ["keys:manage"] }),
        )
        .await;
    r.assert_problem(403, "forbidden");
    assert!(r.body["detail"].as_str().unwrap().contains("`keys:manage`"));
    // A narrowed token cannot grant what its key holds but it does not.
    let narrow = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(
                json!({ "grant_type": "api_key", "api_key": admin_key, "scope": "apikeys:manage" }),
            ),
        )
        .await;
    let narrow = narrow.body["access_token"].as_str().unwrap();
    app.post(
        "/v1/apikeys",
        narrow,
        json!({ "name": "x", "capabilities": ["audit:read"] }),
    )
    .await
    .assert_problem(403, "forbidden");
    // Platform capabilities stay in the system tenant, even when the operator asks.
    let op = app.operator_token().await;
    app.post(
        "/v1/apikeys",
        &op,
        json!({ "name": "x", "capabilities": ["tenants:admin"], "tenant_id": tenant }),
    )
    .await
    .assert_problem(422, "validation-failed");
    // Bad bodies.
    for (body, status, code) in [
        (
            json!({ "name": "x", "capabilities": [] }),
            422,
            "validation-failed",
        ),
        (
            json!({ "name": "x", "capabilities": ["nope:nope"] }),
            422,
            "invalid-body",
        ),
        (
            json!({ "name": "", "capabilities": ["audit:read"] }),
            422,
            "validation-failed",
        ),
        (
            json!({ "capabilities": ["audit:read"] }),
            422,
            "invalid-body",
        ),
        (
            json!({ "name": "x", "capabilities": ["audit:read"], "expires_in": "forever" }),
            422,
            "validation-failed",
        ),
        (
            json!({ "name": "x", "capabilities": ["audit:read"], "expires_in": "0s" }),
            422,
            "validation-failed",
        ),
        (
            json!({ "name": " leading space", "capabilities": ["audit:read"] }),
            422,
            "validation-failed",
        ),
        (
            json!({ "name": "tab\there", "capabilities": ["audit:read"] }),
            422,
            "validation-failed",
        ),
        (
            json!({ "name": "x", "capabilities": ["audit:read"], "admin": true }),
            422,
            "unknown-field",
        ),
    ] {
        app.post("/v1/apikeys", &admin, body)
            .await
            .assert_problem(status, code);
    }
    // A lifetime beyond `api_key_max_ttl` is capped, never extended.
    let r = app
        .post(
            "/v1/apikeys",
            &admin,
            json!({ "name": "long", "capabilities": ["audit:read"], "expires_in": "400d" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created =
        rampart_types::Timestamp::parse_rfc3339(r.body["created_at"].as_str().unwrap()).unwrap();
    let expires =
        rampart_types::Timestamp::parse_rfc3339(r.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(created),
        Duration::from_secs(365 * 86_400)
    );
    app.close().await;
}

async fn tenants_are_isolated_through_the_api(b: Backend) {
    let app = TestApp::start(b).await;
    let (a, a_key) = app.tenant_with_admin("tenant-a").await;
    let (bt, b_key) = app.tenant_with_admin("tenant-b").await;
    let ta = app.tokens(&a_key).await.access;
    let tb = app.tokens(&b_key).await.access;
    let (b_key_id, _) = app.create_key(&tb, None, &["audit:read"]).await;

    // Another tenant's anything is 404, never 403.
    app.get(&format!("/v1/tenants/{bt}"), &ta)
        .await
        .assert_problem(404, "not-found");
    app.get(&format!("/v1/apikeys?tenant_id={bt}"), &ta)
        .await
        .assert_problem(404, "not-found");
    app.get(&format!("/v1/audit/events?tenant_id={bt}"), &ta)
        .await
        .assert_problem(404, "not-found");
    app.post(
        "/v1/apikeys",
        &ta,
        json!({ "name": "x", "capabilities": ["audit:read"], "tenant_id": bt }),
    )
    .await
    .assert_problem(404, "not-found");
    app.delete(&format!("/v1/apikeys/{b_key_id}"), &ta)
        .await
        .assert_problem(404, "not-found");
    app.post(&format!("/v1/apikeys/{b_key_id}/rotate"), &ta, json!({}))
        .await
        .assert_problem(404, "not-found");
    // A's listing holds only A's keys; B's key still works.
    let r = app.get("/v1/apikeys", &ta).await;
    assert!(
        r.body["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["tenant_id"] == a.as_str())
    );
    assert!(!r.text.contains(&b_key_id));
    assert_eq!(
        app.get(&format!("/v1/tenants/{bt}"), &tb).await.status,
        StatusCode::OK
    );
    // A's audit trail holds no B event.
    let r = app.get("/v1/audit/events?limit=1000", &ta).await;
    assert!(!r.text.contains(&b_key_id));
    // A random tenant id is 404 too.
    let random = rampart_types::TenantId::random();
    app.get(&format!("/v1/tenants/{random}"), &ta)
        .await
        .assert_problem(404, "not-found");
    app.close().await;
}

async fn the_platform_operator_manages_tenants(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    let r = app
        .post("/v1/tenants", &op, json!({ "name": "acme" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let acme = r.body["id"].as_str().unwrap().to_owned();
    app.post("/v1/tenants", &op, json!({ "name": "acme" }))
        .await
        .assert_problem(409, "conflict");
    for bad in ["", "-x", "has space", "a/b", &"x".repeat(65)] {
        app.post("/v1/tenants", &op, json!({ "name": bad }))
            .await
            .assert_problem(422, "validation-failed");
    }
    let r = app.get("/v1/tenants", &op).await;
    let mut names: Vec<_> = r.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["acme".to_owned(), "system".to_owned()]);
    // The operator acts in a tenant by naming it; the tenant's own audit trail records it.
    let (key_id, key) = app
        .create_key(&op, Some(&acme), &["apikeys:manage", "audit:read"])
        .await;
    let r = app.get(&format!("/v1/apikeys?tenant_id={acme}"), &op).await;
    assert_eq!(r.body["api_keys"].as_array().unwrap().len(), 1);
    let t = app.tokens(&key).await.access;
    let r = app.get("/v1/audit/events", &t).await;
    let first = &r.body["events"][0];
    assert_eq!(first["action"], "apikey.create");
    assert_eq!(first["resource"], format!("apikey:{key_id}"));
    assert!(first["actor"].as_str().unwrap().starts_with("apikey:"));
    // Tenant creation is in the system tenant's trail.
    let actions = app.audit_actions(&op, None).await;
    assert!(actions.iter().any(|(a, _)| a == "tenant.create"));
    // Unknown tenants are 404 for the operator too.
    let random = rampart_types::TenantId::random();
    app.post(
        "/v1/apikeys",
        &op,
        json!({ "name": "x", "capabilities": ["audit:read"], "tenant_id": random }),
    )
    .await
    .assert_problem(404, "not-found");
    // A tenant admin cannot create tenants.
    app.post("/v1/tenants", &t, json!({ "name": "evil" }))
        .await
        .assert_problem(403, "forbidden");
    app.close().await;
}

async fn audit_pages(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    for i in 0..5 {
        app.post("/v1/tenants", &op, json!({ "name": format!("t{i}") }))
            .await;
    }
    let r = app.get("/v1/audit/events?limit=2", &op).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    let next = r.body["next_after"].as_i64().unwrap();
    let r2 = app
        .get(&format!("/v1/audit/events?limit=2&after={next}"), &op)
        .await;
    assert!(r2.body["events"][0]["seq"].as_i64().unwrap() > next);
    app.get("/v1/audit/events?limit=0", &op)
        .await
        .assert_problem(400, "invalid-query");
    app.get("/v1/audit/events?limit=abc", &op)
        .await
        .assert_problem(400, "invalid-query");
    app.get("/v1/audit/events?bogus=1", &op)
        .await
        .assert_problem(400, "invalid-query");
    app.close().await;
}

on_both_backends!(
    key_lifecycle,
    capabilities_never_widen,
    tenants_are_isolated_through_the_api,
    the_platform_operator_manages_tenants,
    audit_pages,
);
