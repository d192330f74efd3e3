//! Missions and cascading revocation through the API: mission tokens (agent subject, mission,
//! delegation chain, epoch) that only narrow their delegator; ending a mission, revoking an
//! agent or a whole tenant stops every descendant token at once and revokes keys, missions and
//! leases under one cascade id; pinned instructions sealed, hash-audited and revealed exactly,
//! across a KEK revocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::{Backend, TestApp};
use serde_json::{Value, json};

const ADMIN: &[&str] = &[
    "missions:manage",
    "agents:manage",
    "apikeys:manage",
    "secrets:read",
    "secrets:write",
    "secrets:admin",
    "leases:issue",
    "leases:admin",
    "audit:read",
];

const INSTRUCTIONS: &str = "You are the billing agent. Never refund more than 50 EUR.\n\
                            Answer in English — and only about invoices.";

struct Setup {
    app: TestApp,
    tenant: String,
    admin: String,
    admin_key_id: String,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::start(b).await;
    let tenant = app.create_tenant("acme").await;
    let op = app.operator_token().await;
    let (admin_key_id, key) = app.create_key(&op, Some(&tenant), ADMIN).await;
    let admin = app.tokens(&key).await.access;
    Setup {
        app,
        tenant,
        admin,
        admin_key_id,
    }
}

/// The claims of a JWT, unverified (the server verified them).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn sha256_hex(s: &str) -> String {
    rampart_types::lower_hex(&rampart_crypto::sha256(s.as_bytes()))
}

impl Setup {
    async fn agent(&self, name: &str) -> String {
        let r = self
            .app
            .post(
                "/v1/agents",
                &self.admin,
                json!({ "name": name, "secret_allowlist": ["billing/*"], "engine_allowlist": [] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// An API key of `agent` and an access token from it.
    async fn agent_token(&self, agent: &str, caps: &[&str]) -> (String, String) {
        let r = self
            .app
            .post(
                "/v1/apikeys",
                &self.admin,
                json!({ "name": "agent key", "capabilities": caps, "agent": agent }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let key = r.body["key"].as_str().unwrap().to_owned();
        let token = self.app.tokens(&key).await.access;
        (key, token)
    }

    async fn open(&self, token: &str, agent: &str) -> Value {
        let r = self
            .app
            .post(
                "/v1/missions",
                token,
                json!({
                    "agent": agent,
                    "goal": "settle March invoices",
                    "instructions": INSTRUCTIONS,
                    "budgets": { "calls": 100, "tokens": 50000.0 },
                    "duration": "2h",
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    async fn mission_token(&self, token: &str, mission: &str, scope: Option<&str>) -> common::Res {
        let body = scope.map_or_else(|| json!({}), |s| json!({ "scope": s }));
        self.app
            .post(&format!("/v1/missions/{mission}/token"), token, body)
            .await
    }

    async fn minted(&self, token: &str, mission: &str, scope: Option<&str>) -> String {
        let r = self.mission_token(token, mission, scope).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        r.body["access_token"].as_str().unwrap().to_owned()
    }

    async fn put_secret(&self, path: &str, value: &str) {
        let r = self
            .app
            .call(
                Method::PUT,
                &format!("/v1/secrets/data/{path}"),
                Some(&self.admin),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    async fn lease(&self, token: &str, agent: &str, mission: &str) -> common::Res {
        self.app
            .post(
                "/v1/leases",
                token,
                json!({ "agent": agent, "source": "kv/billing/stripe", "mission": mission, "purpose": "refund" }),
            )
            .await
    }

    /// The tenant's audit records of `action`.
    async fn audited(&self, action: &str) -> Vec<Value> {
        let r = self
            .app
            .get("/v1/audit/events?limit=1000", &self.admin)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }
}

/// Whether the token is still accepted, on a route any token may call (its own tenant).
async fn still_accepted(app: &TestApp, token: &str) -> bool {
    let tenant = claims(token)["tenant_id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/v1/tenants/{tenant}"), token).await;
    if r.status == StatusCode::UNAUTHORIZED {
        r.assert_problem(401, "token-revoked");
        false
    } else {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        true
    }
}

async fn a_mission_token_names_its_agent_mission_and_delegator_and_only_narrows(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let m = s.open(&s.admin, &agent).await;
    let id = m["id"].as_str().unwrap();
    assert_eq!(m["status"], "active");
    assert_eq!(m["instructions_sha256"], sha256_hex(INSTRUCTIONS));
    assert_eq!(
        m["budgets"],
        json!({ "calls": 100, "tokens": 50000, "spend_usd_micros": null })
    );
    assert!(!m.to_string().contains("Never refund"), "{m}");

    // Delegated by the admin's key: the agent is the subject, the admin the actor.
    let t = s
        .minted(&s.admin, id, Some("leases:issue secrets:read"))
        .await;
    let c = claims(&t);
    assert_eq!(c["sub"], format!("agent:{agent}"));
    assert_eq!(c["mission"], id);
    assert_eq!(c["tenant_id"], s.tenant.as_str());
    assert_eq!(
        c["act"],
        json!({ "sub": format!("apikey:{}", s.admin_key_id) })
    );
    assert!(c["epoch"].is_u64());
    // sentinel:use was asked for but the admin does not hold it: refused, never widened.
    let r = s
        .mission_token(&s.admin, id, Some("leases:issue sentinel:use"))
        .await;
    r.assert_problem(400, "invalid-scope");
    let t = s.minted(&s.admin, id, Some("leases:issue")).await;
    assert_eq!(claims(&t)["caps"], json!(["leases:issue"]));
    let t_default = s.minted(&s.admin, id, None).await;
    assert_eq!(
        claims(&t_default)["caps"].as_array().unwrap().len(),
        ADMIN.len()
    );

    // The mission token leases for its own mission only.
    s.put_secret("billing/stripe", "sk_live_refunds").await;
    let r = s.lease(&t, &agent, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s.lease(&t, &agent, "another-mission")
        .await
        .assert_problem(403, "forbidden");

    // The agent narrows its own token to the mission, without missions:manage and without an
    // actor; it cannot reach another agent's mission, nor can a mission token another mission.
    let (_, own) = s.agent_token(&agent, &["leases:issue"]).await;
    let t2 = s.minted(&own, id, None).await;
    assert_eq!(claims(&t2)["mission"], id);
    assert!(claims(&t2).get("act").is_none());
    let other_agent = s.agent("support").await;
    let other = s.open(&s.admin, &other_agent).await;
    let other_id = other["id"].as_str().unwrap();
    s.mission_token(&own, other_id, None)
        .await
        .assert_problem(404, "not-found");
    s.mission_token(&t2, other_id, None)
        .await
        .assert_problem(403, "forbidden");
    // A token with neither the agent's identity nor missions:manage mints nothing.
    let op = s.app.operator_token().await;
    let (_, reader) = s
        .app
        .create_key(&op, Some(&s.tenant), &["audit:read"])
        .await;
    let reader = s.app.tokens(&reader).await.access;
    s.mission_token(&reader, id, None)
        .await
        .assert_problem(403, "forbidden");

    let opened = s.audited("mission.open").await;
    assert_eq!(opened.len(), 2);
    assert_eq!(
        opened[0]["detail"]["instructions_sha256"],
        sha256_hex(INSTRUCTIONS)
    );
    assert!(
        !serde_json::to_string(&opened)
            .unwrap()
            .contains("Never refund")
    );
    assert!(s.audited("mission.token").await.len() >= 4);
    s.app.close().await;
}

async fn ending_a_mission_stops_its_tokens_and_leases_under_one_cascade(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let id = s.open(&s.admin, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.put_secret("billing/stripe", "sk_live_refunds").await;
    let t = s
        .minted(&s.admin, &id, Some("leases:issue secrets:read"))
        .await;
    let lease = s.lease(&t, &agent, &id).await;
    assert_eq!(lease.status, StatusCode::CREATED, "{}", lease.text);
    let lease_id = lease.body["lease"]["id"].as_str().unwrap().to_owned();
    // The same mission id in capitals names the same mission.
    let shouted = id.to_uppercase();
    let other_form = s.lease(&s.admin, &agent, &shouted).await;
    assert_eq!(
        other_form.status,
        StatusCode::CREATED,
        "{}",
        other_form.text
    );
    assert_eq!(other_form.body["lease"]["mission"], id.as_str());
    assert!(still_accepted(&s.app, &t).await);

    let r = s
        .app
        .post(
            &format!("/v1/missions/{id}/end"),
            &s.admin,
            json!({ "reason": "invoices settled" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cascade = r.body["cascade"]["cascade_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["mission"]["status"], "ended");
    assert_eq!(r.body["mission"]["cascade_id"], cascade.as_str());
    assert_eq!(r.body["cascade"]["leases_revoked"], 2);
    assert_eq!(r.body["cascade"]["principal"], format!("mission:{id}"));

    // At once: the mission's token is refused everywhere, the admin's own token is not.
    assert!(!still_accepted(&s.app, &t).await);
    assert!(still_accepted(&s.app, &s.admin).await);
    let l = s.app.get(&format!("/v1/leases/{lease_id}"), &s.admin).await;
    assert!(l.body["revoked_at"].is_string(), "{}", l.text);

    // Nothing more is issued under it.
    s.mission_token(&s.admin, &id, None)
        .await
        .assert_problem(409, "conflict");
    s.lease(&s.admin, &agent, &id)
        .await
        .assert_problem(409, "conflict");
    s.app
        .post(
            &format!("/v1/missions/{id}/abort"),
            &s.admin,
            json!({ "reason": "again" }),
        )
        .await
        .assert_problem(409, "conflict");

    // One cascade id on every record of it.
    for action in ["mission.end", "principal.revoke"] {
        let records = s.audited(action).await;
        assert_eq!(records.len(), 1, "{action}");
        assert_eq!(
            records[0]["detail"]["cascade_id"],
            cascade.as_str(),
            "{action}"
        );
    }
    let revoked = s.audited("lease.revoke").await;
    assert_eq!(revoked.len(), 2);
    for r in &revoked {
        assert!(r.to_string().contains(&cascade), "{r}");
    }
    let listed = s.app.get("/v1/missions?status=ended", &s.admin).await;
    assert_eq!(listed.body["missions"].as_array().unwrap().len(), 1);
    s.app.close().await;
}

async fn revoking_an_agent_stops_every_token_of_its_lineage_and_later_ones_work(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let (key, own) = s.agent_token(&agent, &["leases:issue"]).await;
    let id = s.open(&s.admin, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delegated = s.minted(&s.admin, &id, Some("leases:issue")).await;
    let narrowed = s.minted(&own, &id, None).await;
    let bystander = s.agent("support").await;
    let (_, bystander_token) = s.agent_token(&bystander, &["leases:issue"]).await;

    let r = s
        .app
        .post(
            "/v1/revocations",
            &s.admin,
            json!({ "principal": format!("agent:{agent}"), "reason": "compromised host" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["missions_ended"], json!([id]));
    assert_eq!(r.body["api_keys_revoked"].as_array().unwrap().len(), 1);
    for t in [&own, &delegated, &narrowed] {
        assert!(!still_accepted(&s.app, t).await);
    }
    assert!(still_accepted(&s.app, &bystander_token).await);
    assert!(still_accepted(&s.app, &s.admin).await);
    // Its key mints nothing more; the mission was aborted.
    assert_eq!(s.app.grant(&key).await.status, StatusCode::UNAUTHORIZED);
    let m = s.app.get(&format!("/v1/missions/{id}"), &s.admin).await;
    assert_eq!(m.body["status"], "aborted");
    assert_eq!(m.body["cascade_id"], r.body["cascade_id"]);

    // A token minted after the revocation, from a new key, is live: the epoch moved on.
    let (_, fresh) = s.agent_token(&agent, &["leases:issue"]).await;
    assert!(claims(&fresh)["epoch"].as_u64().unwrap() >= r.body["epoch"].as_u64().unwrap());
    assert!(still_accepted(&s.app, &fresh).await);

    // Revoking the delegator stops what it delegated, through the `act` chain.
    let second = s.open(&s.admin, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delegated = s.minted(&s.admin, &second, Some("leases:issue")).await;
    let by_agent = s.minted(&fresh, &second, None).await;
    let r = s
        .app
        .post(
            "/v1/revocations",
            &s.admin,
            json!({ "principal": format!("user:alice@example.com"), "reason": "left the company" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        still_accepted(&s.app, &delegated).await,
        "alice is not in its lineage"
    );
    let r = s
        .app
        .post(
            "/v1/revocations",
            &s.admin,
            json!({ "principal": format!("apikey:{}", s.admin_key_id), "reason": "rotated out" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!still_accepted(&s.app, &delegated).await);
    assert!(!still_accepted(&s.app, &s.admin).await);
    assert!(
        still_accepted(&s.app, &by_agent).await,
        "not delegated by that key"
    );
    s.app.close().await;
}

async fn disabling_an_agent_stops_its_tokens_on_every_route(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let (_, own) = s.agent_token(&agent, &["leases:issue"]).await;
    assert!(still_accepted(&s.app, &own).await);
    let r = s
        .app
        .post(
            &format!("/v1/agents/{agent}/disable"),
            &s.admin,
            json!({ "reason": "retired" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["cascade_id"].is_string());
    assert!(!still_accepted(&s.app, &own).await);
    s.app
        .post(
            "/v1/missions",
            &s.admin,
            json!({ "agent": agent, "goal": "g", "instructions": "i" }),
        )
        .await
        .assert_problem(409, "conflict");
    s.app.close().await;
}

async fn only_the_platform_operator_revokes_a_whole_tenant(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let (_, own) = s.agent_token(&agent, &["leases:issue"]).await;
    let id = s.open(&s.admin, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = s.app.operator_token().await;
    let other = s.app.create_tenant("globex").await;
    let (_, other_key) = s.app.create_key(&op, Some(&other), ADMIN).await;
    let other_admin = s.app.tokens(&other_key).await.access;

    s.app
        .post(
            "/v1/revocations",
            &s.admin,
            json!({ "principal": "tenant", "reason": "x" }),
        )
        .await
        .assert_problem(403, "forbidden");
    // Nor does the operator revoke its own tenant (it would lock itself out).
    s.app
        .post(
            "/v1/revocations",
            &op,
            json!({ "principal": "tenant", "reason": "x" }),
        )
        .await
        .assert_problem(403, "forbidden");
    let r = s
        .app
        .post(
            "/v1/revocations",
            &op,
            json!({ "principal": "tenant", "reason": "contract ended", "tenant": s.tenant }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["missions_ended"], json!([id]));
    assert_eq!(r.body["api_keys_revoked"].as_array().unwrap().len(), 2);
    for t in [&s.admin, &own] {
        assert!(!still_accepted(&s.app, t).await);
    }
    assert!(still_accepted(&s.app, &other_admin).await);
    assert!(still_accepted(&s.app, &op).await);
    // The trail of the revoked tenant holds the cascade, readable by the operator.
    let trail = s
        .app
        .get(
            &format!("/v1/audit/events?limit=1000&tenant_id={}", s.tenant),
            &op,
        )
        .await;
    assert!(trail.text.contains("principal.revoke"), "{}", trail.text);
    s.app.close().await;
}

async fn pinned_instructions_are_revealed_exactly_with_the_capability_across_a_kek_revocation(
    b: Backend,
) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    let id = s.open(&s.admin, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/missions/{id}/instructions/reveal");
    s.app
        .post(&path, &s.admin, json!({}))
        .await
        .assert_problem(403, "forbidden");
    let op = s.app.operator_token().await;
    let (_, revealer) = s
        .app
        .create_key(&op, Some(&s.tenant), &["sentinel:reveal"])
        .await;
    let revealer = s.app.tokens(&revealer).await.access;
    let r = s.app.post(&path, &revealer, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["instructions"], INSTRUCTIONS);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");

    s.app.rotate_and_revoke_first_kek(&s.admin).await;
    let r = s.app.post(&path, &revealer, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["instructions"], INSTRUCTIONS);
    assert_eq!(s.audited("mission.reveal").await.len(), 2);
    s.app.close().await;
}

async fn bad_requests_get_clear_problems(b: Backend) {
    let s = setup(b).await;
    let agent = s.agent("billing").await;
    for (body, what) in [
        (
            json!({ "agent": agent, "goal": " ", "instructions": "i" }),
            "goal",
        ),
        (
            json!({ "agent": agent, "goal": "g", "instructions": "\n" }),
            "instructions",
        ),
        (
            json!({ "agent": agent, "goal": "g", "instructions": "i", "budgets": { "calls": 0 } }),
            "budgets.calls",
        ),
        (
            json!({ "agent": agent, "goal": "g", "instructions": "i", "duration": "0s" }),
            "duration",
        ),
        (
            json!({ "agent": agent, "goal": "g", "instructions": "é".repeat(65537) }),
            "instructions",
        ),
    ] {
        let r = s.app.post("/v1/missions", &s.admin, body).await;
        r.assert_problem(422, "validation-failed");
        assert!(
            r.body["detail"].as_str().unwrap().contains(what),
            "{}",
            r.text
        );
    }
    // The limit counts characters, as the schema does: 65,536 two-byte ones are fine.
    let r = s
        .app
        .post(
            "/v1/missions",
            &s.admin,
            json!({ "agent": agent, "goal": "g", "instructions": "é".repeat(65536) }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s.app
        .post(
            "/v1/missions",
            &s.admin,
            json!({ "agent": rampart_types::AgentId::random(), "goal": "g", "instructions": "i" }),
        )
        .await
        .assert_problem(404, "not-found");
    for principal in ["agent:nope", "root", "mission:", "user:", "apikey:UPPER"] {
        s.app
            .post(
                "/v1/revocations",
                &s.admin,
                json!({ "principal": principal, "reason": "x" }),
            )
            .await
            .assert_problem(422, "validation-failed");
    }
    s.app
        .post(
            "/v1/revocations",
            &s.admin,
            json!({ "principal": format!("mission:{}", rampart_types::MissionId::random()), "reason": "x" }),
        )
        .await
        .assert_problem(404, "not-found");
    s.app
        .get("/v1/missions?status=paused", &s.admin)
        .await
        .assert_problem(400, "invalid-query");
    s.app.close().await;
}

on_both_backends!(
    a_mission_token_names_its_agent_mission_and_delegator_and_only_narrows,
    ending_a_mission_stops_its_tokens_and_leases_under_one_cascade,
    revoking_an_agent_stops_every_token_of_its_lineage_and_later_ones_work,
    disabling_an_agent_stops_its_tokens_on_every_route,
    only_the_platform_operator_revokes_a_whole_tenant,
    pinned_instructions_are_revealed_exactly_with_the_capability_across_a_kek_revocation,
    bad_requests_get_clear_problems,
);
