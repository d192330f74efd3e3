//! Agents, allowlists and leases through the HTTP API on both backends: deny-by-default
//! allowlists on every secret route, leases on stored secrets (issue, renew, revoke, expiry,
//! bulk revocation by mission / agent / prefix), and the dynamic Postgres engine against the
//! real Postgres server — roles created, renewed, dropped with their sessions, and removals
//! that fail retried and listed until they succeed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::str::FromStr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use rampart_testkit::PgTestDb;
use rampart_types::Timestamp;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

const ADMIN: &[&str] = &[
    "apikeys:manage",
    "agents:manage",
    "secrets:read",
    "secrets:write",
    "leases:issue",
    "leases:admin",
    "audit:read",
];

struct Setup {
    app: TestApp,
    admin: String,
}

async fn setup(b: Backend) -> Setup {
    let app = TestApp::start(b).await;
    admin_for(app).await
}

/// [`setup`] with the fake clock at the real time first, so a role's `VALID UNTIL` means to
/// the database server what it means to Rampart.
async fn setup_at_real_time(b: Backend) -> Setup {
    let app = TestApp::start(b).await;
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let fake = Duration::from_millis(u64::try_from(app.state.clock.now().unix_millis()).unwrap());
    if real > fake {
        app.advance(real - fake);
    }
    admin_for(app).await
}

async fn admin_for(app: TestApp) -> Setup {
    let tenant = app.create_tenant("acme").await;
    let op = app.operator_token().await;
    let (_, key) = app.create_key(&op, Some(&tenant), ADMIN).await;
    let admin = app.tokens(&key).await.access;
    Setup { app, admin }
}

impl Setup {
    async fn agent(&self, name: &str, secrets: &[&str], engines: &[&str]) -> String {
        let r = self
            .app
            .post(
                "/v1/agents",
                &self.admin,
                json!({ "name": name, "secret_allowlist": secrets, "engine_allowlist": engines }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// An access token speaking for `agent`, holding `caps`.
    async fn agent_token(&self, agent: &str, caps: &[&str]) -> String {
        let r = self
            .app
            .post(
                "/v1/apikeys",
                &self.admin,
                json!({ "name": "agent key", "capabilities": caps, "agent": agent }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["agent"], agent);
        self.app
            .tokens(r.body["key"].as_str().unwrap())
            .await
            .access
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

    /// `POST /v1/leases` for `agent` (unless the body names one).
    async fn lease(&self, token: &str, agent: &str, mut body: Value) -> common::Res {
        if body.get("agent").is_none() {
            body["agent"] = json!(agent);
        }
        self.app.post("/v1/leases", token, body).await
    }

    async fn lease_state(&self, id: &str) -> Value {
        let r = self.app.get(&format!("/v1/leases/{id}"), &self.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
    }

    /// (action, outcome, resource) of the tenant's audit records, oldest first.
    async fn audit(&self) -> Vec<(String, String, String)> {
        let r = self
            .app
            .get("/v1/audit/events?limit=1000", &self.admin)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                    e["resource"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

async fn allowlists_gate_every_secret_route(b: Backend) {
    let s = setup(b).await;
    s.put_secret("db/orders/password", "orders-canary").await;
    s.put_secret("db/billing/password", "billing-canary").await;
    let agent = s.agent("orders-bot", &["db/orders/*"], &[]).await;
    let t = s
        .agent_token(&agent, &["secrets:read", "secrets:write"])
        .await;

    let r = s.app.get("/v1/secrets/data/db/orders/password", &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], "orders-canary");
    // Outside the allowlist: refused although the token holds secrets:read, and audited.
    let r = s.app.get("/v1/secrets/data/db/billing/password", &t).await;
    r.assert_problem(403, "not-allowed");
    assert!(!r.text.contains("billing-canary"));
    let r = s
        .app
        .get("/v1/secrets/metadata/db/billing/password", &t)
        .await;
    r.assert_problem(403, "not-allowed");
    let r = s
        .app
        .call(
            Method::PUT,
            "/v1/secrets/data/db/billing/password",
            Some(&t),
            Some(json!({ "value": "overwritten" })),
        )
        .await;
    r.assert_problem(403, "not-allowed");
    let r = s
        .app
        .post(
            "/v1/secrets/delete/db/billing/password",
            &t,
            json!({ "versions": [1] }),
        )
        .await;
    r.assert_problem(403, "not-allowed");
    // Listing shows only what the allowlist covers; so does the Vault endpoint.
    let r = s.app.get("/v1/secrets/metadata?prefix=db/", &t).await;
    let paths: Vec<&str> = r.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| s["path"].as_str().unwrap()))
        .collect();
    assert_eq!(paths, ["db/orders/password"], "{}", r.text);
    let audit = s.audit().await;
    let denied: Vec<_> = audit
        .iter()
        .filter(|(_, o, _)| o == "denied")
        .map(|(a, _, r)| (a.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        denied,
        [
            ("secret.read", "secret:db/billing/password"),
            ("secret.read", "secret:db/billing/password"),
            ("secret.write", "secret:db/billing/password"),
            ("secret.delete", "secret:db/billing/password"),
        ]
    );

    // The admin (no agent) is not gated.
    let r = s
        .app
        .get("/v1/secrets/data/db/billing/password", &s.admin)
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Narrowing the profile takes effect on the next request; so does disabling.
    let r = s
        .app
        .call(
            Method::PUT,
            &format!("/v1/agents/{agent}"),
            Some(&s.admin),
            Some(json!({ "secret_allowlist": [], "engine_allowlist": [] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s.app.get("/v1/secrets/data/db/orders/password", &t).await;
    r.assert_problem(403, "not-allowed");
    let r = s
        .app
        .post(
            &format!("/v1/agents/{agent}/disable"),
            &s.admin,
            json!({ "reason": "test" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["disabled_at"].is_string());
    // Its tokens stop at once (the disabling is a cascading revocation of the agent); a lease
    // asked for on its behalf is refused as disabled, and audited.
    let r = s.app.get("/v1/secrets/data/db/orders/password", &t).await;
    r.assert_problem(401, "token-revoked");
    let r = s
        .lease(
            &s.admin,
            &agent,
            json!({ "source": "kv/db/orders/password", "mission": "m", "purpose": "x" }),
        )
        .await;
    r.assert_problem(403, "not-allowed");
    assert_eq!(r.body["detail"], "the agent is disabled");

    // Bad profiles are refused with the pattern's position.
    let r = s
        .app
        .post(
            "/v1/agents",
            &s.admin,
            json!({ "name": "bad", "secret_allowlist": ["ok/*", "db/**/x"] }),
        )
        .await;
    r.assert_problem(422, "validation-failed");
    assert!(r.text.contains("secret_allowlist[1]"), "{}", r.text);
    let r = s
        .app
        .post("/v1/agents", &s.admin, json!({ "name": "orders-bot" }))
        .await;
    r.assert_problem(409, "conflict");
    // A key for an agent of another tenant (or none) is not found.
    let r = s
        .app
        .post(
            "/v1/apikeys",
            &s.admin,
            json!({ "name": "k", "capabilities": ["secrets:read"], "agent": rampart_types::AgentId::random() }),
        )
        .await;
    r.assert_problem(404, "not-found");
    s.app.close().await;
}

async fn kv_leases_issue_renew_revoke_and_expire(b: Backend) {
    let s = setup(b).await;
    s.put_secret("db/orders/password", "orders-canary").await;
    s.put_secret("db/billing/password", "billing-canary").await;
    let agent = s.agent("orders-bot", &["db/orders/**"], &[]).await;
    let other = s.agent("other-bot", &["**"], &[]).await;
    let t = s.agent_token(&agent, &["leases:issue"]).await;
    let t_other = s.agent_token(&other, &["leases:issue"]).await;

    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "kv/db/orders/password", "mission": "m-1", "purpose": "nightly export", "ttl": "10m" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.headers.get("cache-control").unwrap(),
        "no-store",
        "a credential is never cached"
    );
    assert_eq!(r.body["secret"]["value"], "orders-canary");
    assert_eq!(r.body["secret"]["version"], 1);
    let lease = r.body["lease"].clone();
    let id = lease["id"].as_str().unwrap().to_owned();
    assert_eq!(lease["agent"], agent);
    assert_eq!(lease["source"], "kv/db/orders/password");
    assert_eq!(lease["state"], "active");
    assert_eq!(lease["cleanup"], "none");
    let issued = Timestamp::parse_rfc3339(lease["issued_at"].as_str().unwrap()).unwrap();
    let expires = |v: &Value| Timestamp::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires(&lease).duration_since(issued),
        Duration::from_secs(600)
    );

    // Outside the allowlist: refused and audited, nothing issued.
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "kv/db/billing/password", "mission": "m-1", "purpose": "x" }),
        )
        .await;
    r.assert_problem(403, "not-allowed");
    assert!(!r.text.contains("billing-canary"));
    // An agent leases only for itself; others must name the agent.
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "agent": other, "source": "kv/db/orders/password", "mission": "m", "purpose": "x" }),
        )
        .await;
    r.assert_problem(403, "forbidden");
    // Anyone else names the agent: it must exist.
    let r = s
        .app
        .post(
            "/v1/leases",
            &s.admin,
            json!({ "source": "kv/db/orders/password", "mission": "m", "purpose": "x" }),
        )
        .await;
    r.assert_problem(422, "invalid-body");
    let r = s
        .lease(
            &s.admin,
            &rampart_types::AgentId::random().to_string(),
            json!({ "source": "kv/db/orders/password", "mission": "m", "purpose": "x" }),
        )
        .await;
    r.assert_problem(404, "not-found");
    for bad in [
        json!({ "source": "vault/db/orders/password", "mission": "m", "purpose": "x" }),
        json!({ "source": "postgres/a/b", "mission": "m", "purpose": "x" }),
        json!({ "source": "kv/db/orders/password", "mission": "has space", "purpose": "x" }),
        json!({ "source": "kv/db/orders/password", "mission": "m", "purpose": "   " }),
        json!({ "source": "kv/db/orders/password", "mission": "m", "purpose": "x", "ttl": "0s" }),
        json!({ "source": "kv/../x", "mission": "m", "purpose": "x" }),
    ] {
        s.lease(&t, &agent, bad)
            .await
            .assert_problem(422, "validation-failed");
    }

    // Renewal moves the expiry, never past the ceiling (`lease_max_ttl`, 24h by default).
    s.app.advance(Duration::from_secs(60));
    let r = s
        .app
        .post(
            &format!("/v1/leases/{id}/renew"),
            &t,
            json!({ "ttl": "1h" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        expires(&r.body).duration_since(issued),
        Duration::from_secs(3660)
    );
    let r = s
        .app
        .post(
            &format!("/v1/leases/{id}/renew"),
            &t,
            json!({ "ttl": "48h" }),
        )
        .await;
    assert_eq!(
        expires(&r.body),
        expires(&lease).saturating_add(Duration::from_secs(86_400 - 600))
    );
    // Another agent cannot see or touch it.
    s.app
        .get(&format!("/v1/leases/{id}"), &t_other)
        .await
        .assert_problem(404, "not-found");
    s.app
        .post(&format!("/v1/leases/{id}/revoke"), &t_other, json!({}))
        .await
        .assert_problem(404, "not-found");
    // Revocation is immediate.
    let r = s
        .app
        .post(
            &format!("/v1/leases/{id}/revoke"),
            &t,
            json!({ "reason": "done early" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "revoked");
    assert_eq!(s.lease_state(&id).await["revoke_reason"], "done early");
    s.app
        .post(&format!("/v1/leases/{id}/renew"), &t, json!({}))
        .await
        .assert_problem(409, "conflict");
    s.app
        .post(&format!("/v1/leases/{id}/revoke"), &t, json!({}))
        .await
        .assert_problem(409, "conflict");

    // Expiry: the sweeper revokes what has run out, and only that.
    let short = s
        .lease(
            &t,
            &agent,
            json!({ "source": "kv/db/orders/password", "mission": "m-2", "purpose": "x", "ttl": "1m" }),
        )
        .await
        .body["lease"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = s
        .lease(
            &t,
            &agent,
            json!({ "source": "kv/db/orders/password", "mission": "m-2", "purpose": "x", "ttl": "1h" }),
        )
        .await
        .body["lease"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.app.advance(Duration::from_secs(61));
    assert_eq!(s.lease_state(&short).await["state"], "expired");
    let swept = rampart_server::leases::sweep(&s.app.state).await.unwrap();
    assert_eq!(swept.expired, 1);
    let st = s.lease_state(&short).await;
    assert_eq!(
        (st["state"].as_str(), st["revoke_reason"].as_str()),
        (Some("revoked"), Some("expired"))
    );
    assert_eq!(s.lease_state(&long).await["state"], "active");

    // Bulk: by mission, then by agent, then by prefix; the rest stay.
    for mission in ["bulk-a", "bulk-a", "bulk-a", "bulk-b"] {
        let r = s
            .lease(
                &t,
                &agent,
                json!({ "source": "kv/db/orders/password", "mission": mission, "purpose": "x" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = s
        .lease(
            &t_other,
            &other,
            json!({ "source": "kv/db/billing/password", "mission": "bulk-a", "purpose": "x" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // leases:admin is needed for bulk revocation and listing.
    s.app
        .post(
            "/v1/leases/revoke",
            &t,
            json!({ "prefix": "", "mission": "bulk-a", "reason": "x" }),
        )
        .await
        .assert_problem(403, "forbidden");
    s.app
        .post(
            "/v1/leases/revoke",
            &s.admin,
            json!({ "reason": "no prefix" }),
        )
        .await
        .assert_problem(422, "invalid-body");
    let r = s
        .app
        .post(
            "/v1/leases/revoke",
            &s.admin,
            json!({ "prefix": "", "mission": "bulk-a", "agent": agent, "reason": "mission aborted" }),
        )
        .await;
    assert_eq!(r.body["revoked"], 3, "{}", r.text);
    let r = s
        .app
        .get("/v1/leases?live=true&mission=bulk-a", &s.admin)
        .await;
    let live = r.body["leases"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{}", r.text);
    assert_eq!(live[0]["agent"], other);
    let r = s
        .app
        .post(
            "/v1/leases/revoke",
            &s.admin,
            json!({ "prefix": "kv/db/billing/", "reason": "rotated" }),
        )
        .await;
    assert_eq!(r.body["revoked"], 1, "{}", r.text);
    let r = s
        .app
        .post(
            "/v1/leases/revoke",
            &s.admin,
            json!({ "prefix": "", "agent": agent, "reason": "agent retired" }),
        )
        .await;
    // `long` and the bulk-b lease.
    assert_eq!(r.body["revoked"], 2, "{}", r.text);
    let r = s.app.get("/v1/leases?live=true", &s.admin).await;
    assert_eq!(r.body["leases"].as_array().unwrap().len(), 0, "{}", r.text);

    let audit = s.audit().await;
    let count = |action: &str, outcome: &str| {
        audit
            .iter()
            .filter(|(a, o, _)| a == action && o == outcome)
            .count()
    };
    assert_eq!(count("lease.issue", "success"), 8);
    assert_eq!(count("lease.issue", "denied"), 1);
    assert_eq!(count("lease.renew", "success"), 2);
    assert_eq!(count("lease.revoke", "success"), 8);
    s.app.close().await;
}

/// A database the dynamic engine manages, with a table and a template role that may read it.
struct Target {
    db: PgTestDb,
    template: String,
}

impl Target {
    async fn create() -> Self {
        let db = PgTestDb::create().await;
        let template = format!("tmpl_{}", &uuid_suffix());
        let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {template} NOLOGIN; \
             CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2); \
             GRANT SELECT ON orders TO {template};"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        Self { db, template }
    }

    async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.db.owner_url).await.unwrap()
    }

    async fn login(&self, user: &str, password: &str) -> Result<PgConnection, sqlx::Error> {
        let opts = PgConnectOptions::from_str(&self.db.owner_url)
            .unwrap()
            .username(user)
            .password(password)
            .disable_statement_logging();
        PgConnection::connect_with(&opts).await
    }

    async fn role_exists(&self, role: &str) -> bool {
        let mut c = self.admin().await;
        sqlx::query("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .is_some()
    }

    async fn drop(self) {
        let mut c = self.admin().await;
        // Roles are cluster-wide: remove the template and any lease role the test left.
        let leftovers: Vec<String> = sqlx::query_scalar(
            "SELECT r.rolname::text FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid \
             JOIN pg_roles t ON t.oid = m.roleid WHERE t.rolname = $1",
        )
        .bind(&self.template)
        .fetch_all(&mut c)
        .await
        .unwrap();
        for role in leftovers {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
            )))
            .execute(&mut c)
            .await
            .ok();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP OWNED BY {0}; DROP ROLE {0}",
            self.template
        )))
        .execute(&mut c)
        .await
        .ok();
        c.close().await.ok();
        self.db.drop_db().await;
    }
}

fn uuid_suffix() -> String {
    rampart_types::LeaseId::random()
        .as_uuid()
        .simple()
        .to_string()[..12]
        .to_owned()
}

async fn configure_engine(s: &Setup, target: &Target, url: &str) {
    s.put_secret("engines/orders/admin-url", url).await;
    let r = s
        .app
        .call(
            Method::PUT,
            "/v1/engines/postgres/orders",
            Some(&s.admin),
            Some(json!({
                "connection_secret": "engines/orders/admin-url",
                "template_role": target.template,
                "default_ttl": "15m",
                "max_ttl": "1h",
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn postgres_engine_creates_renews_and_drops_roles(b: Backend) {
    let s = setup_at_real_time(b).await;
    let target = Target::create().await;
    configure_engine(&s, &target, &target.db.owner_url).await;
    let agent = s.agent("orders-bot", &[], &["orders"]).await;
    let t = s.agent_token(&agent, &["leases:issue"]).await;

    // Not on the engine allowlist: refused. The allowlists of secrets and engines are separate.
    let nobody = s.agent("nobody", &["**"], &[]).await;
    let t_nobody = s.agent_token(&nobody, &["leases:issue"]).await;
    s.lease(
        &t_nobody,
        &nobody,
        json!({ "source": "postgres/orders", "mission": "m", "purpose": "x" }),
    )
    .await
    .assert_problem(403, "not-allowed");
    s.lease(
        &t,
        &agent,
        json!({ "source": "postgres/billing", "mission": "m", "purpose": "x" }),
    )
    .await
    .assert_problem(403, "not-allowed");

    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "postgres/orders", "mission": "report-7", "purpose": "read orders" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let creds = r.body["postgres"].clone();
    let lease = r.body["lease"].clone();
    let id = lease["id"].as_str().unwrap().to_owned();
    let user = creds["username"].as_str().unwrap().to_owned();
    let password = creds["password"].as_str().unwrap().to_owned();
    assert_eq!(lease["cleanup"], "live");
    assert_eq!(creds["host"], "127.0.0.1");
    assert_eq!(creds["port"], 5432);
    assert_eq!(password.len(), 32);
    assert!(
        !r.text.contains(&target.db.owner_url),
        "the admin URL never leaves"
    );

    // The role: a SCRAM verifier (the password never reached the server), VALID UNTIL the
    // lease's expiry, and the template's privileges.
    let mut admin = target.admin().await;
    let row = sqlx::query(
        "SELECT rolpassword, extract(epoch FROM rolvaliduntil)::float8 AS until, rolcanlogin \
         FROM pg_authid WHERE rolname = $1",
    )
    .bind(&user)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        row.get::<String, _>("rolpassword")
            .starts_with("SCRAM-SHA-256$4096:")
    );
    assert!(row.get::<bool, _>("rolcanlogin"));
    let expires = Timestamp::parse_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap();
    let until = row.get::<f64, _>("until");
    assert!(
        (until - expires.unix_millis() as f64 / 1000.0).abs() < 0.001,
        "{until}"
    );
    let mut session = target.login(&user, &password).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut session)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // Renewal moves VALID UNTIL.
    let r = s
        .app
        .post(
            &format!("/v1/leases/{id}/renew"),
            &t,
            json!({ "ttl": "30m" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let renewed = Timestamp::parse_rfc3339(r.body["expires_at"].as_str().unwrap()).unwrap();
    let until: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = $1",
    )
    .bind(&user)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!((until - renewed.unix_millis() as f64 / 1000.0).abs() < 0.001);

    // Revocation drops the role and ends its open session.
    let r = s
        .app
        .post(&format!("/v1/leases/{id}/revoke"), &t, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["cleanup"], "done", "{}", r.text);
    assert!(!target.role_exists(&user).await);
    assert!(
        sqlx::query("SELECT 1").execute(&mut session).await.is_err(),
        "the role's session was terminated"
    );
    assert!(target.login(&user, &password).await.is_err());

    // Expiry through the sweeper drops the role too.
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "postgres/orders", "mission": "report-8", "purpose": "x", "ttl": "1m" }),
        )
        .await;
    let user2 = r.body["postgres"]["username"].as_str().unwrap().to_owned();
    assert!(target.role_exists(&user2).await);
    s.app.advance(Duration::from_secs(61));
    let swept = rampart_server::leases::sweep(&s.app.state).await.unwrap();
    assert_eq!((swept.expired, swept.cleaned, swept.failed), (1, 1, 0));
    assert!(!target.role_exists(&user2).await);

    // An engine with leases to account for cannot be removed; once clean it can.
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "postgres/orders", "mission": "report-9", "purpose": "x" }),
        )
        .await;
    let id3 = r.body["lease"]["id"].as_str().unwrap().to_owned();
    s.app
        .delete("/v1/engines/postgres/orders", &s.admin)
        .await
        .assert_problem(409, "conflict");
    s.app
        .post(&format!("/v1/leases/{id3}/revoke"), &t, json!({}))
        .await;
    let r = s.app.delete("/v1/engines/postgres/orders", &s.admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|(a, o, _)| a == "lease.cleanup" && o == "success")
    );
    assert!(audit.iter().any(|(a, _, _)| a == "engine.change"));
    admin.close().await.ok();
    s.app.close().await;
    target.drop().await;
}

async fn failed_removals_are_retried_listed_and_never_forgotten(b: Backend) {
    let s = setup_at_real_time(b).await;
    let target = Target::create().await;
    configure_engine(&s, &target, &target.db.owner_url).await;
    let agent = s.agent("orders-bot", &[], &["orders"]).await;
    let t = s.agent_token(&agent, &["leases:issue"]).await;
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "postgres/orders", "mission": "m", "purpose": "x" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["lease"]["id"].as_str().unwrap().to_owned();
    let user = r.body["postgres"]["username"].as_str().unwrap().to_owned();

    // The database becomes unreachable (the admin URL now points at a closed port).
    s.put_secret(
        "engines/orders/admin-url",
        "postgres://postgres@127.0.0.1:1/postgres",
    )
    .await;
    let r = s
        .app
        .post(&format!("/v1/leases/{id}/revoke"), &t, json!({}))
        .await;
    // The revocation stands at once; the role's removal is pending.
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "revoked");
    assert_eq!(r.body["cleanup"], "pending");
    assert!(target.role_exists(&user).await);
    let st = s.lease_state(&id).await;
    assert_eq!(st["cleanup_attempts"], 1);
    assert!(
        st["cleanup_error"].as_str().unwrap().contains("engine"),
        "{st}"
    );
    let r = s.app.get("/v1/leases?cleanup_failing=true", &s.admin).await;
    let failing: Vec<&str> = r.body["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(failing, [id.as_str()]);
    // Not due again before its backoff (2 s after the first failure).
    let swept = rampart_server::leases::sweep(&s.app.state).await.unwrap();
    assert_eq!((swept.cleaned, swept.failed), (0, 0));
    s.app.advance(Duration::from_secs(3));
    let swept = rampart_server::leases::sweep(&s.app.state).await.unwrap();
    assert_eq!((swept.cleaned, swept.failed), (0, 1));
    assert_eq!(s.lease_state(&id).await["cleanup_attempts"], 2);

    // An issue that fails leaves a revoked lease with its removal queued, not a stray role.
    let r = s
        .lease(
            &t,
            &agent,
            json!({ "source": "postgres/orders", "mission": "m", "purpose": "x" }),
        )
        .await;
    r.assert_problem(503, "unavailable");
    let r = s.app.get("/v1/leases?mission=m", &s.admin).await;
    let failed_issue = r.body["leases"][0].clone();
    assert_eq!(failed_issue["state"], "revoked", "{}", r.text);
    assert!(
        failed_issue["revoke_reason"]
            .as_str()
            .unwrap()
            .starts_with("issuing failed")
    );

    // The database is back: the next due sweep removes the role and the queue empties.
    s.put_secret("engines/orders/admin-url", &target.db.owner_url)
        .await;
    s.app.advance(Duration::from_secs(10));
    let swept = rampart_server::leases::sweep(&s.app.state).await.unwrap();
    assert_eq!((swept.cleaned, swept.failed), (2, 0), "{swept:?}");
    assert!(!target.role_exists(&user).await);
    assert_eq!(s.lease_state(&id).await["cleanup"], "done");
    let r = s.app.get("/v1/leases?cleanup_failing=true", &s.admin).await;
    assert_eq!(r.body["leases"].as_array().unwrap().len(), 0);
    let audit = s.audit().await;
    let cleanups: Vec<&str> = audit
        .iter()
        .filter(|(a, _, r)| a == "lease.cleanup" && r == &format!("lease:{id}"))
        .map(|(_, o, _)| o.as_str())
        .collect();
    assert_eq!(cleanups, ["failed", "failed", "success"]);
    s.app.close().await;
    target.drop().await;
}

on_both_backends!(
    allowlists_gate_every_secret_route,
    kv_leases_issue_renew_revoke_and_expire,
    postgres_engine_creates_renews_and_drops_roles,
    failed_removals_are_retried_listed_and_never_forgotten,
);
