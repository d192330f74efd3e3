//! Client commands: they call a running server's API with an API key from the environment or a
//! file (never from the command line, where it would show in `ps` and shell history).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart_crypto::SecretString;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How to reach the server.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Server base URL.
    #[arg(
        long,
        env = "RAMPART_URL",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    pub url: String,
    /// File holding the API key (default: the `RAMPART_API_KEY` variable, or the file named by
    /// `RAMPART_API_KEY_FILE`).
    #[arg(long, value_name = "FILE", global = true)]
    pub api_key_file: Option<PathBuf>,
}

impl Connection {
    pub fn api_key(&self) -> anyhow::Result<SecretString> {
        let from_file = |p: &std::path::Path| -> anyhow::Result<SecretString> {
            let text = SecretString::new(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the API key file `{}`", p.display()))?,
            );
            Ok(SecretString::new(text.expose().trim().to_owned()))
        };
        if let Some(p) = &self.api_key_file {
            return from_file(p);
        }
        if let Ok(k) = std::env::var("RAMPART_API_KEY") {
            return Ok(SecretString::new(k.trim().to_owned()));
        }
        if let Ok(p) = std::env::var("RAMPART_API_KEY_FILE") {
            return from_file(std::path::Path::new(&p));
        }
        bail!("no API key: set RAMPART_API_KEY or RAMPART_API_KEY_FILE, or pass --api-key-file")
    }
}

/// An authenticated API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// Turns an error response into a one-line message from its problem body.
async fn problem_error(res: reqwest::Response) -> anyhow::Error {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let detail = body["detail"].as_str().unwrap_or("");
    let code = body["code"].as_str().unwrap_or("");
    let request_id = body["request_id"].as_str().unwrap_or("-");
    anyhow::anyhow!(
        "{} {code}: {detail} (request {request_id})",
        status.as_u16()
    )
}

/// `POST /v1/auth/token` with an API key; the whole token response.
pub async fn exchange_api_key(
    http: &reqwest::Client,
    base: &str,
    key: &SecretString,
    scope: Option<&str>,
) -> anyhow::Result<Value> {
    let mut body = json!({ "grant_type": "api_key", "api_key": key.expose() });
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    let res = http
        .post(format!("{base}/v1/auth/token"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    if !res.status().is_success() {
        return Err(problem_error(res).await);
    }
    Ok(res.json().await?)
}

impl Client {
    pub async fn connect(conn: &Connection) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let base = conn.url.trim_end_matches('/').to_owned();
        let key = conn.api_key()?;
        let tokens = exchange_api_key(&http, &base, &key, None).await?;
        let token = SecretString::new(
            tokens["access_token"]
                .as_str()
                .context("the token response has no access_token")?
                .to_owned(),
        );
        Ok(Self { http, base, token })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if res.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if !res.status().is_success() {
            return Err(problem_error(res).await);
        }
        Ok(res.json().await?)
    }
}

fn print(v: &Value) -> anyhow::Result<ExitCode> {
    if !v.is_null() {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn tenant_query(tenant: Option<&str>) -> String {
    tenant
        .map(|t| format!("?tenant_id={t}"))
        .unwrap_or_default()
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Unique name: letters, digits, `-`, `_`, `.`.
        name: String,
    },
    /// List all tenants.
    List,
}

pub async fn tenant(cmd: TenantCommand, conn: Connection) -> anyhow::Result<ExitCode> {
    let c = Client::connect(&conn).await?;
    match cmd {
        TenantCommand::Create { name } => print(
            &c.call(Method::POST, "/v1/tenants", Some(json!({ "name": name })))
                .await?,
        ),
        TenantCommand::List => print(&c.call(Method::GET, "/v1/tenants", None).await?),
    }
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once.
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// A capability to grant (repeat for several), e.g. `--cap audit:read`.
        #[arg(long = "cap", value_name = "CAPABILITY", required = true)]
        caps: Vec<String>,
        /// Lifetime, e.g. `30d` (default: the server's `api_key_default_ttl`).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Create it in another tenant (platform operator only).
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
    },
    /// Issue a successor (printed once); the old key keeps working for the overlap.
    Rotate {
        id: String,
        /// How long the old key keeps working, e.g. `1h` (default: the server's
        /// `api_key_rotation_overlap`).
        #[arg(long, value_name = "DURATION")]
        overlap: Option<String>,
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
    },
    /// Revoke a key and every token it was exchanged for.
    Revoke {
        id: String,
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
    },
}

pub async fn apikey(cmd: ApikeyCommand, conn: Connection) -> anyhow::Result<ExitCode> {
    let c = Client::connect(&conn).await?;
    match cmd {
        ApikeyCommand::Create {
            name,
            caps,
            expires_in,
            tenant,
        } => {
            let mut body = json!({ "name": name, "capabilities": caps });
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(t) = tenant {
                body["tenant_id"] = json!(t);
            }
            print(&c.call(Method::POST, "/v1/apikeys", Some(body)).await?)
        }
        ApikeyCommand::List { tenant } => print(
            &c.call(
                Method::GET,
                &format!("/v1/apikeys{}", tenant_query(tenant.as_deref())),
                None,
            )
            .await?,
        ),
        ApikeyCommand::Rotate {
            id,
            overlap,
            tenant,
        } => {
            let body = overlap.map(|o| json!({ "overlap": o }));
            let path = format!("/v1/apikeys/{id}/rotate{}", tenant_query(tenant.as_deref()));
            print(&c.call(Method::POST, &path, body).await?)
        }
        ApikeyCommand::Revoke { id, tenant } => {
            let path = format!("/v1/apikeys/{id}{}", tenant_query(tenant.as_deref()));
            c.call(Method::DELETE, &path, None).await?;
            eprintln!("revoked {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
