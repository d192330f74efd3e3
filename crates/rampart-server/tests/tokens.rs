//! Access tokens, refresh tokens, revocation and signing keys, through the HTTP API.
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
use rampart_identity::jwt::decode_unverified;
use serde_json::json;

async fn api_key_grant_and_capabilities(b: Backend) {
    let app = TestApp::start(b).await;
    let (tenant, admin_key) = app.tenant_with_admin("acme").await;
    let r = app.grant(&admin_key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.body["scope"], "apikeys:manage audit:read");
    assert_eq!(r.headers["cache-control"], "no-store");
    let access = r.body["access_token"].as_str().unwrap();
    let (header, claims) = decode_unverified(access).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["tenant_id"], tenant.as_str());
    assert_eq!(claims["iss"], "rampart");
    for c in ["sub", "jti", "iat", "exp", "caps", "fam"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
    // A route needing a capability the token lacks: 403, naming the capability.
    let r = app.get("/v1/tenants", access).await;
    r.assert_problem(403, "forbidden");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("`tenants:admin`")
    );
    // The tenant's own row is readable with any capability.
    let r = app.get(&format!("/v1/tenants/{tenant}"), access).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Scope narrowing, and no widening.
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({ "grant_type": "api_key", "api_key": admin_key, "scope": "audit:read" })),
        )
        .await;
    assert_eq!(r.body["scope"], "audit:read");
    let narrow = r.body["access_token"].as_str().unwrap();
    app.get("/v1/apikeys", narrow)
        .await
        .assert_problem(403, "forbidden");
    for scope in ["tenants:admin", "root:everything", ""] {
        let r = app
            .call(
                Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({ "grant_type": "api_key", "api_key": admin_key, "scope": scope })),
            )
            .await;
        r.assert_problem(400, "invalid-scope");
        assert_eq!(r.body["error"], "invalid_scope");
    }
    app.close().await;
}

async fn bad_credentials_are_refused_and_audited(b: Backend) {
    let app = TestApp::start(b).await;
    let (tenant, admin_key) = app.tenant_with_admin("acme").await;
    // A well-formed key with a real id and a wrong secret reaches the stored hash and fails there.
    let forged = common::forge_same_id(&admin_key);
    assert!(rampart_identity::ApiKey::parse(&forged).is_some());
    app.grant(&forged)
        .await
        .assert_problem(401, "invalid-client");
    app.grant("rmp_live_nope")
        .await
        .assert_problem(401, "invalid-client");
    app.grant("").await.assert_problem(401, "invalid-client");
    let unknown = rampart_identity::ApiKey::generate().unwrap();
    let r = app.grant(unknown.expose()).await;
    r.assert_problem(401, "invalid-client");
    assert_eq!(r.body["error"], "invalid_client");
    // The missing grant type, an unknown one, a missing key.
    app.call(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({ "api_key": admin_key })),
    )
    .await
    .assert_problem(422, "validation-failed");
    app.call(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({ "grant_type": "password", "api_key": admin_key })),
    )
    .await
    .assert_problem(400, "unsupported-grant-type");
    app.call(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({ "grant_type": "api_key" })),
    )
    .await
    .assert_problem(422, "validation-failed");
    // The forged attempt is audited as denied in the key's tenant; the random id is not (there
    // is no tenant to file it under).
    let token = app.tokens(&admin_key).await.access;
    let actions = app.audit_actions(&token, None).await;
    let uses: Vec<_> = actions.iter().filter(|(a, _)| a == "apikey.use").collect();
    assert!(uses.iter().any(|(_, o)| o == "success"));
    assert_eq!(
        uses.iter().filter(|(_, o)| o == "denied").count(),
        1,
        "{actions:?}"
    );
    // Revoked and expired keys are refused and audited too.
    let (revoked_id, revoked) = app.create_key(&token, None, &["audit:read"]).await;
    app.delete(&format!("/v1/apikeys/{revoked_id}"), &token)
        .await;
    let r = app.grant(&revoked).await;
    r.assert_problem(401, "invalid-client");
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"));
    let r = app
        .post(
            "/v1/apikeys",
            &token,
            json!({ "name": "short", "capabilities": ["audit:read"], "expires_in": "1h" }),
        )
        .await;
    let short = r.body["key"].as_str().unwrap().to_owned();
    app.advance(Duration::from_secs(3601));
    let r = app.grant(&short).await;
    r.assert_problem(401, "invalid-client");
    assert!(r.body["detail"].as_str().unwrap().contains("expired"));
    let fresh = app.tokens(&admin_key).await.access;
    let denied = app
        .audit_actions(&fresh, Some(&tenant))
        .await
        .into_iter()
        .filter(|(a, o)| a == "apikey.use" && o == "denied")
        .count();
    assert_eq!(denied, 3);
    app.close().await;
}

async fn bearer_edge_cases(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    app.call(Method::GET, "/v1/tenants", None, None)
        .await
        .assert_problem(401, "unauthenticated");
    let r = app.get("/v1/tenants", "not-a-jwt").await;
    r.assert_problem(401, "invalid-token");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    // An API key where a token belongs gets a pointer to the token endpoint.
    let r = app
        .get("/v1/tenants", app.operator_key.as_deref().unwrap())
        .await;
    r.assert_problem(401, "invalid-token");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("/v1/auth/token")
    );
    // Basic auth is not a bearer token.
    let req = axum::http::Request::builder()
        .uri("/v1/tenants")
        .header("authorization", format!("Basic {op}"))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(req).await.assert_problem(401, "invalid-token");
    // A tampered token.
    let mut parts: Vec<String> = op.split('.').map(str::to_owned).collect();
    parts[1].insert(5, 'A');
    app.get("/v1/tenants", &parts.join("."))
        .await
        .assert_problem(401, "invalid-token");
    // Lower-case scheme is fine.
    let req = axum::http::Request::builder()
        .uri("/v1/tenants")
        .header("authorization", format!("bearer {op}"))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    app.close().await;
}

async fn access_tokens_expire(b: Backend) {
    let app = TestApp::start(b).await;
    let op = app.operator_token().await;
    assert_eq!(app.get("/v1/tenants", &op).await.status, StatusCode::OK);
    // 15 minutes plus the 30 s leeway.
    app.advance(Duration::from_secs(15 * 60 + 29));
    assert_eq!(app.get("/v1/tenants", &op).await.status, StatusCode::OK);
    app.advance(Duration::from_secs(2));
    let r = app.get("/v1/tenants", &op).await;
    r.assert_problem(401, "token-expired");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    app.close().await;
}

async fn refresh_rotates_and_reuse_revokes_the_family(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let first = app.tokens(&key).await;
    // Rotation: a new refresh token each time; the family's tokens keep working.
    let r = app.refresh(&first.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second_refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    let second_access = r.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh);
    assert_eq!(
        app.get("/v1/apikeys", &second_access).await.status,
        StatusCode::OK
    );
    // A duplicate inside the 5 s grace window gets the same successor, not a revocation.
    app.advance(Duration::from_secs(2));
    let r = app.refresh(&first.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["refresh_token"], second_refresh.as_str());
    // After the grace window, presenting the used token again is reuse: the family dies,
    // including access tokens already issued from it.
    app.advance(Duration::from_secs(4));
    let r = app.refresh(&first.refresh).await;
    r.assert_problem(400, "invalid-grant");
    assert_eq!(r.body["error"], "invalid_grant");
    assert!(r.body["detail"].as_str().unwrap().contains("already used"));
    app.get("/v1/apikeys", &second_access)
        .await
        .assert_problem(401, "token-revoked");
    app.get("/v1/apikeys", &first.access)
        .await
        .assert_problem(401, "token-revoked");
    app.refresh(&second_refresh)
        .await
        .assert_problem(400, "invalid-grant");
    // A new grant starts a new, healthy family; the reuse was audited.
    let fresh = app.tokens(&key).await;
    let actions = app.audit_actions(&fresh.access, None).await;
    assert!(
        actions.contains(&("token.reuse_detected".into(), "denied".into())),
        "{actions:?}"
    );
    assert!(actions.contains(&("token.refresh_grace".into(), "success".into())));
    app.close().await;
}

async fn reuse_after_the_successor_was_used_revokes_even_inside_grace(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let first = app.tokens(&key).await;
    let r = app.refresh(&first.refresh).await;
    let second = r.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app.refresh(&second).await;
    assert_eq!(r.status, StatusCode::OK);
    let third_access = r.body["access_token"].as_str().unwrap().to_owned();
    // The legitimate client has moved on; an old copy is a thief.
    app.refresh(&first.refresh)
        .await
        .assert_problem(400, "invalid-grant");
    app.get("/v1/apikeys", &third_access)
        .await
        .assert_problem(401, "token-revoked");
    app.close().await;
}

async fn concurrent_refreshes_yield_one_successor(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let t = app.tokens(&key).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        let rt = t.refresh.clone();
        tasks.push(tokio::spawn(async move { app.refresh(&rt).await }));
    }
    let mut successors = std::collections::HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        successors.insert(r.body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(successors.len(), 1, "all duplicates get the one successor");
    let app = std::sync::Arc::try_unwrap(app).ok().unwrap();
    app.close().await;
}

async fn concurrent_refreshes_without_grace_cannot_both_succeed(b: Backend) {
    let app = TestApp::start_with(b, |c| c.refresh_reuse_grace = Duration::ZERO).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let t = app.tokens(&key).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let app = app.clone();
        let rt = t.refresh.clone();
        tasks.push(tokio::spawn(async move { app.refresh(&rt).await }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap().status == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one refresh wins");
    let app = std::sync::Arc::try_unwrap(app).ok().unwrap();
    app.close().await;
}

async fn refresh_state_survives_a_restart(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let first = app.tokens(&key).await;
    let r = app.refresh(&first.refresh).await;
    let second = r.body["refresh_token"].as_str().unwrap().to_owned();
    let app = app.restart().await;
    // Tokens from before the restart still verify (the signing key was persisted) ...
    assert_eq!(
        app.get("/v1/apikeys", &first.access).await.status,
        StatusCode::OK
    );
    // ... the rotated token still rotates, and reuse is still detected.
    app.advance(Duration::from_secs(10));
    let r = app.refresh(&second).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.refresh(&first.refresh)
        .await
        .assert_problem(400, "invalid-grant");
    app.close().await;
}

async fn refresh_token_edges(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    let t = app.tokens(&key).await;
    // Forms work (OAuth clients send them).
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(format!(
            "grant_type=refresh_token&refresh_token={}",
            t.refresh
        )))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A guessed refresh token with a real id but the wrong secret changes nothing.
    let fresh = app.tokens(&key).await;
    let fake = common::forge_same_id(&fresh.refresh);
    assert!(rampart_identity::RefreshToken::parse(&fake).is_some());
    app.refresh(&fake)
        .await
        .assert_problem(400, "invalid-grant");
    app.call(
        Method::POST,
        "/v1/auth/revoke",
        None,
        Some(json!({ "token": fake })),
    )
    .await;
    assert_eq!(app.refresh(&fresh.refresh).await.status, StatusCode::OK);
    // Refresh tokens expire (7 days by default).
    let old = app.tokens(&key).await;
    app.advance(Duration::from_secs(7 * 86_400 + 1));
    app.refresh(&old.refresh)
        .await
        .assert_problem(400, "invalid-grant");
    // Revoking the API key ends its families too.
    let app2 = TestApp::start(b).await;
    let (_, key2) = app2.tenant_with_admin("beta").await;
    let admin = app2.tokens(&key2).await;
    let op = app2.operator_token().await;
    let (victim_id, victim_key) = app2.create_key(&admin.access, None, &["audit:read"]).await;
    let victim = app2.tokens(&victim_key).await;
    assert_eq!(
        app2.delete(&format!("/v1/apikeys/{victim_id}"), &admin.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app2.get("/v1/audit/events", &victim.access)
        .await
        .assert_problem(401, "token-revoked");
    app2.refresh(&victim.refresh)
        .await
        .assert_problem(400, "invalid-grant");
    app2.grant(&victim_key)
        .await
        .assert_problem(401, "invalid-client");
    let _ = op;
    app2.close().await;
    app.close().await;
}

async fn revocation_endpoint(b: Backend) {
    let app = TestApp::start(b).await;
    let (_, key) = app.tenant_with_admin("acme").await;
    // Revoking a refresh token ends its family.
    let t = app.tokens(&key).await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/revoke",
            None,
            Some(json!({ "token": t.refresh })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.get("/v1/apikeys", &t.access)
        .await
        .assert_problem(401, "token-revoked");
    app.refresh(&t.refresh)
        .await
        .assert_problem(400, "invalid-grant");
    // Revoking an access token kills that token only.
    let t2 = app.tokens(&key).await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/revoke",
            None,
            Some(json!({ "token": t2.access, "token_type_hint": "access_token" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.get("/v1/apikeys", &t2.access)
        .await
        .assert_problem(401, "token-revoked");
    let r = app.refresh(&t2.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "the family lives on: {}", r.text);
    // Unknown tokens are not an error (RFC 7009 §2.2); API keys are the wrong door.
    for junk in [
        "junk",
        "rmp_rt_0000000000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx000000",
    ] {
        let r = app
            .call(
                Method::POST,
                "/v1/auth/revoke",
                None,
                Some(json!({ "token": junk })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    app.call(
        Method::POST,
        "/v1/auth/revoke",
        None,
        Some(json!({ "token": key })),
    )
    .await
    .assert_problem(400, "unsupported-token-type");
    app.close().await;
}

async fn signing_key_rotation_never_fails_a_request(b: Backend) {
    let app = TestApp::start(b).await;
    let op_key = app.operator_key.clone().unwrap();
    let before = app.tokens(&op_key).await;
    let old_kid = decode_unverified(&before.access).unwrap().0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
    // Keys are named by their RFC 7638 thumbprint.
    assert_eq!(jwks.body["keys"][0]["kid"], old_kid.as_str());
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    assert_eq!(jwks.body["keys"][0]["crv"], "Ed25519");

    let r = app
        .post(
            "/v1/keys/signing/rotate",
            &before.access,
            json!({ "reason": "drill" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_kid = r.body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    // The old token still works; new tokens use the new key; JWKS shows both.
    assert_eq!(
        app.get("/v1/tenants", &before.access).await.status,
        StatusCode::OK
    );
    let after = app.tokens(&op_key).await;
    assert_eq!(
        decode_unverified(&after.access).unwrap().0["kid"],
        new_kid.as_str()
    );
    let jwks = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2);
    // Right up to its expiry the old token verifies ...
    app.advance(Duration::from_secs(15 * 60 + 20));
    assert_eq!(
        app.get("/v1/tenants", &before.access).await.status,
        StatusCode::OK
    );
    // ... and once every token it signed is dead, the old key leaves the JWKS.
    app.advance(Duration::from_secs(120));
    app.state.keys.reload().await.unwrap();
    let jwks = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    let kids: Vec<_> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kids.contains(&old_kid), "{kids:?}");
    // Only `keys:manage` may rotate, and rotation is audited.
    let (_, tenant_key) = app.tenant_with_admin("acme").await;
    let t = app.tokens(&tenant_key).await;
    app.post("/v1/keys/signing/rotate", &t.access, json!({}))
        .await
        .assert_problem(403, "forbidden");
    let op = app.operator_token().await;
    let actions = app.audit_actions(&op, None).await;
    assert!(
        actions
            .iter()
            .filter(|(a, _)| a == "signing_key.rotate")
            .count()
            >= 2
    );
    app.close().await;
}

async fn another_node_rotating_is_picked_up(b: Backend) {
    // Two nodes on one database, as behind a load balancer.
    let a = TestApp::start(b).await;
    let b_node = a.second_node().await;
    let op_key = a.operator_key.clone().unwrap();
    let op = a.tokens(&op_key).await.access;
    assert_eq!(b_node.get("/v1/tenants", &op).await.status, StatusCode::OK);
    // Node A rotates; node B has not re-read the key table yet.
    let r = a.post("/v1/keys/signing/rotate", &op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let newest = a.tokens(&op_key).await.access;
    // A token signed with the new key names a kid B does not know: B re-reads the keys (at most
    // once a second) and accepts it, instead of failing the request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        b_node.get("/v1/tenants", &newest).await.status,
        StatusCode::OK
    );
    // B keeps signing with its old key until it reloads; A accepts those tokens too.
    let from_b = b_node.tokens(&op_key).await.access;
    assert_eq!(a.get("/v1/tenants", &from_b).await.status, StatusCode::OK);
    b_node.stop().await;
    a.close().await;
}

async fn signing_keys_rotate_on_schedule(b: Backend) {
    let app = TestApp::start(b).await;
    let op_key = app.operator_key.clone().unwrap();
    let before = app.tokens(&op_key).await.access;
    let kid = |t: &str| {
        decode_unverified(t).unwrap().0["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Not due yet: nothing changes.
    app.advance(Duration::from_secs(29 * 86_400));
    rampart_server::app::maintain(&app.state, true).await;
    let same = app.tokens(&op_key).await.access;
    assert_eq!(kid(&same), kid(&before));
    // Past the 30-day period: the next round rotates, once, and records why.
    app.advance(Duration::from_secs(2 * 86_400));
    let just_before = app.tokens(&op_key).await.access;
    rampart_server::app::maintain(&app.state, true).await;
    rampart_server::app::maintain(&app.state, true).await;
    let after = app.tokens(&op_key).await.access;
    assert_ne!(kid(&after), kid(&before));
    // A token signed just before the rotation keeps working.
    assert_eq!(
        app.get("/v1/tenants", &just_before).await.status,
        StatusCode::OK
    );
    let r = app.get("/v1/audit/events?limit=1000", &after).await;
    let scheduled: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signing_key.rotate" && e["detail"]["reason"] == "scheduled")
        .collect();
    assert_eq!(scheduled.len(), 1, "{}", r.text);
    assert_eq!(scheduled[0]["actor"], "system");
    app.close().await;
}

on_both_backends!(
    signing_keys_rotate_on_schedule,
    api_key_grant_and_capabilities,
    bad_credentials_are_refused_and_audited,
    bearer_edge_cases,
    access_tokens_expire,
    refresh_rotates_and_reuse_revokes_the_family,
    reuse_after_the_successor_was_used_revokes_even_inside_grace,
    concurrent_refreshes_yield_one_successor,
    concurrent_refreshes_without_grace_cannot_both_succeed,
    refresh_state_survives_a_restart,
    refresh_token_edges,
    revocation_endpoint,
    signing_key_rotation_never_fails_a_request,
    another_node_rotating_is_picked_up,
);
