//! The in-process test harness: a real store (SQLite in a temp dir, or a fresh Postgres
//! database), a fake clock, and the router driven with `oneshot`.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use rampart_crypto::SecretString;
use rampart_server::{AppState, AuditSink, Config, StartOptions};
use rampart_testkit::{FakeClock, PgTestDb};
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A fixed root key, so a restarted app finds its data.
pub const ROOT_KEY: &str = "K4fBLsZ2B2oXcQ0GkA7rV7jmvYw9T9mUQ4a4cJq3pHk=";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub clock: FakeClock,
    /// Present on the app's first start.
    pub operator_key: Option<String>,
    pub backend: Backend,
    pub dir: Arc<tempfile::TempDir>,
    pg: Option<Arc<PgTestDb>>,
    tweak: Arc<dyn Fn(&mut Config) + Send + Sync>,
    /// `None`: the real ledger.
    audit: Option<Arc<dyn AuditSink>>,
}

#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    pub bytes: Vec<u8>,
}

impl Res {
    /// Asserts a problem body of kind `code` and status `status`, with a request id equal to the
    /// `x-request-id` header.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["type"],
            format!("https://rampart.dev/problems/{code}")
        );
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert!(self.body["instance"].is_string());
        let header_id = self.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_eq!(self.body["request_id"], header_id);
    }
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> Self {
        Self::launch(
            backend,
            Arc::new(tempfile::tempdir().unwrap()),
            match backend {
                Backend::Postgres => Some(Arc::new(PgTestDb::create().await)),
                Backend::Sqlite => None,
            },
            FakeClock::new(),
            Arc::new(tweak),
            None,
        )
        .await
    }

    async fn launch(
        backend: Backend,
        dir: Arc<tempfile::TempDir>,
        pg: Option<Arc<PgTestDb>>,
        clock: FakeClock,
        tweak: Arc<dyn Fn(&mut Config) + Send + Sync>,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Self {
        let mut config = Config::defaults_for(dir.path()).unwrap();
        config.root_key = Some(SecretString::new(ROOT_KEY.into()));
        if let Some(db) = &pg {
            config.database_url = Some(SecretString::new(db.owner_url.clone()));
            config.postgres_app_role = db.app_role.clone();
            config.database_max_connections = 8;
        }
        tweak(&mut config);
        let started = rampart_server::start(
            config,
            StartOptions {
                clock: Arc::new(clock.clone()),
                audit: audit.clone(),
            },
        )
        .await
        .unwrap();
        let router = rampart_server::router(started.state.clone());
        Self {
            state: started.state,
            router,
            clock,
            operator_key: started.operator_key.map(|k| k.expose().to_owned()),
            backend,
            dir,
            pg,
            tweak,
            audit,
        }
    }

    /// A second node on the same database and clock, running alongside this one (with its own
    /// ledger: one writer per ledger directory).
    pub async fn second_node(&self) -> Self {
        let tweak = self.tweak.clone();
        let ledger_dir = self.dir.path().join("ledger-node-2");
        Self::launch(
            self.backend,
            self.dir.clone(),
            self.pg.clone(),
            self.clock.clone(),
            Arc::new(move |c: &mut Config| {
                tweak(c);
                c.ledger_zones = vec![ledger_dir.clone()];
                c.ledger_origin = Some("rampart.test/node-2".into());
            }),
            self.audit.clone(),
        )
        .await
    }

    /// Stops this instance's ledger and store (what `serve` does on shutdown).
    pub async fn stop(&self) {
        let ledger = self.state.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.shutdown())
            .await
            .unwrap();
        self.state.store.close().await;
    }

    /// Stops and starts again on the same data (a restart), with the same clock.
    pub async fn restart(self) -> Self {
        self.stop().await;
        let operator_key = self.operator_key.clone();
        let mut app = Self::launch(
            self.backend,
            self.dir.clone(),
            self.pg.clone(),
            self.clock.clone(),
            self.tweak.clone(),
            self.audit.clone(),
        )
        .await;
        assert!(
            app.operator_key.is_none(),
            "the operator key is printed once only"
        );
        app.operator_key = operator_key;
        app
    }

    /// The same app with another audit sink.
    pub async fn restart_with_audit(self, audit: Option<Arc<dyn AuditSink>>) -> Self {
        self.stop().await;
        let operator_key = self.operator_key.clone();
        let mut app = Self::launch(
            self.backend,
            self.dir.clone(),
            self.pg.clone(),
            self.clock.clone(),
            self.tweak.clone(),
            audit,
        )
        .await;
        app.operator_key = operator_key;
        app
    }

    pub async fn close(self) {
        self.stop().await;
        if let Some(pg) = self.pg
            && let Ok(db) = Arc::try_unwrap(pg)
        {
            db.drop_db().await;
        }
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
            bytes: bytes.to_vec(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Rotates the tenant's KEK and revokes version 1, which re-wraps everything sealed under
    /// it (`token` needs `secrets:admin`).
    pub async fn rotate_and_revoke_first_kek(&self, token: &str) {
        let r = self.post("/v1/secrets/keys/rotate", token, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = self
            .post(
                "/v1/secrets/keys/1/revoke",
                token,
                json!({ "reason": "rotation drill" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    pub async fn delete(&self, path: &str, token: &str) -> Res {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// `POST /v1/auth/token` with an API key.
    pub async fn grant(&self, key: &str) -> Res {
        self.call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({ "grant_type": "api_key", "api_key": key })),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Res {
        self.call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({ "grant_type": "refresh_token", "refresh_token": refresh_token })),
        )
        .await
    }

    pub async fn tokens(&self, key: &str) -> Tokens {
        let r = self.grant(key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        Tokens {
            access: r.body["access_token"].as_str().unwrap().to_owned(),
            refresh: r.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn operator_token(&self) -> String {
        let key = self.operator_key.clone().unwrap();
        self.tokens(&key).await.access
    }

    /// Creates a tenant as the operator; returns its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        let op = self.operator_token().await;
        let r = self.post("/v1/tenants", &op, json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an API key (as `token`) and returns (id, key).
    pub async fn create_key(
        &self,
        token: &str,
        tenant: Option<&str>,
        caps: &[&str],
    ) -> (String, String) {
        let mut body = json!({ "name": "test key", "capabilities": caps });
        if let Some(t) = tenant {
            body["tenant_id"] = json!(t);
        }
        let r = self.post("/v1/apikeys", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// A tenant with an admin key (`apikeys:manage audit:read`); returns (tenant id, key).
    pub async fn tenant_with_admin(&self, name: &str) -> (String, String) {
        let tenant = self.create_tenant(name).await;
        let op = self.operator_token().await;
        let (_, key) = self
            .create_key(&op, Some(&tenant), &["apikeys:manage", "audit:read"])
            .await;
        (tenant, key)
    }

    /// The audit actions of a tenant, oldest first (as an `audit:read` holder).
    pub async fn audit_actions(&self, token: &str, tenant: Option<&str>) -> Vec<(String, String)> {
        let path = match tenant {
            Some(t) => format!("/v1/audit/events?limit=1000&tenant_id={t}"),
            None => "/v1/audit/events?limit=1000".to_owned(),
        };
        let r = self.get(&path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// A credential with the same prefix and id as `real` (everything up to and including the `_`
/// after the id) but another secret, with a valid checksum: what an attacker who knows a key's
/// public id could present. Implements the documented format: CRC-32 of the body, 6 base62 digits.
pub fn forge_same_id(real: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let id_end = real.rfind('_').unwrap() + 1;
    let secret_len = real.len() - id_end - 6;
    let mut body = real[..id_end].to_owned();
    let seed: [u8; 16] = rampart_crypto::random_array().unwrap();
    for i in 0..secret_len {
        body.push(char::from(
            BASE62[usize::from(seed[i % 16].wrapping_add(i as u8)) % 62],
        ));
    }
    let mut n = crc32fast::hash(body.as_bytes());
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    body.push_str(std::str::from_utf8(&digits).unwrap());
    assert_ne!(body, real);
    body
}
