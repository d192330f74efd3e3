//! A HashiCorp Vault KV v2 subset under `/vault/v1/{mount}/…`, so existing Vault clients work
//! against Rampart unchanged: read (`GET …/data/{path}[?version=N]`), write (`POST`/`PUT
//! …/data/{path}` with `{"data": {…}, "options": {"cas": N}}`), soft-delete of the newest version
//! (`DELETE …/data/{path}`), soft-delete, undelete and destroy of given versions (`POST
//! …/delete|undelete|destroy/{path}` with `{"versions": […]}`), a secret's metadata (`GET
//! …/metadata/{path}`) and listing (`LIST …/metadata/{path}`, or `GET` with `?list=true`).
//!
//! Its contract is Vault's wire format, not Rampart's OpenAPI document: the token comes in
//! `X-Vault-Token` (a Rampart access token), errors are `{"errors": […]}`. The secret at
//! `{mount}/{path}` is the Rampart secret of that path, its value the JSON of Vault's `data`
//! object (a value written through Rampart's own API that is not a JSON object reads back as
//! `{"value": "…"}`). Every read and write is checked, sealed and audited exactly as through
//! `/v1/secrets`.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use rampart_crypto::Secret;
use rampart_types::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agents::{listed, listing_acl};
use crate::disclosed::Disclosed;
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiQuery, Authed, NeedSecretsAdmin, NeedSecretsRead, NeedSecretsWrite, Read, Write,
};
use crate::routes::secrets::{
    VersionChange, cas_from, change_versions, read_audited, secret_path, write_audited,
};
use crate::state::AppState;

/// Largest body a Vault error or list response is rebuilt from.
const MAX_REWRITTEN_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/vault/v1/{mount}/data/{*path}",
            get(read).post(write).put(write).delete(delete_latest),
        )
        .route(
            "/vault/v1/{mount}/metadata/{*path}",
            get(read_metadata).fallback(list),
        )
        .route("/vault/v1/{mount}/delete/{*path}", post(delete_versions))
        .route(
            "/vault/v1/{mount}/undelete/{*path}",
            post(undelete_versions),
        )
        .route("/vault/v1/{mount}/destroy/{*path}", post(destroy_versions))
        .route("/vault/v1/{mount}/metadata", any(list_root))
        .route("/vault/v1/{mount}/metadata/", any(list_root))
}

/// The path prefix [`vault_edge`] acts on.
pub const PREFIX: &str = "/vault/";

/// Vault's conventions at the edge (outside Rampart's own edge, which renders problems): `X-Vault-Token` is the bearer token; problems go out as
/// `{"errors": [detail]}` with the same status, except a failed check-and-set, which Vault
/// reports as 400 where Rampart says 409.
pub async fn vault_edge(mut req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(PREFIX) {
        return next.run(req).await;
    }
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(token) = req.headers().get("x-vault-token").cloned()
        && let Ok(t) = token.to_str()
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let detail = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "request failed".into()),
        Err(_) => "request failed".into(),
    };
    if parts.status == StatusCode::CONFLICT {
        parts.status = StatusCode::BAD_REQUEST;
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json!({ "errors": [detail] }).to_string()))
}

fn path_of(mount: &str, path: &str) -> Result<rampart_secrets::SecretPath, ApiError> {
    secret_path(&format!("{mount}/{}", path.trim_end_matches('/')))
}

/// Vault's response envelope.
fn envelope(data: Value) -> Value {
    json!({
        "request_id": "",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    })
}

fn version_metadata(created: Timestamp, version: i64) -> Value {
    json!({
        "created_time": created.to_rfc3339(),
        "custom_metadata": null,
        "deletion_time": "",
        "destroyed": false,
        "version": version,
    })
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    version: Option<i64>,
}

async fn read(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsRead>,
    Path((mount, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let p = path_of(&mount, &path)?;
    // Vault reads version 0 as the newest.
    let version = q.version.filter(|v| *v != 0);
    let opened = read_audited(&state, auth, &p, version).await?;
    let value = Disclosed::utf8(&opened.value)?;
    let text = value.expose();
    let data = match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "value": text }),
    };
    let body = envelope(json!({
        "data": data,
        "metadata": version_metadata(opened.version.created_at, opened.version.version),
    }));
    Ok(no_store(axum::Json(body).into_response()))
}

#[derive(Deserialize)]
struct WriteBody {
    data: serde_json::Map<String, Value>,
    #[serde(default)]
    options: WriteOptions,
}

#[derive(Debug, Default, Deserialize)]
struct WriteOptions {
    cas: Option<i64>,
}

impl std::fmt::Debug for WriteBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBody")
            .field("data", &"[REDACTED]")
            .field("options", &self.options)
            .finish()
    }
}

async fn write(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path((mount, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<WriteBody>,
) -> Result<Response, ApiError> {
    let p = path_of(&mount, &path)?;
    let value = Secret::new(Value::Object(body.data).to_string());
    let (version, at) =
        write_audited(&state, auth, &p, &value, cas_from(body.options.cas)?).await?;
    Ok(axum::Json(envelope(version_metadata(at, version))).into_response())
}

async fn delete_latest(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path((mount, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let p = path_of(&mount, &path)?;
    let _changed = change_versions(&state, auth, p.as_str(), None, VersionChange::Delete).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct VersionsBody {
    versions: Vec<i64>,
}

async fn change(
    state: AppState,
    auth: Authed<Write, impl crate::extract::Need>,
    mount: &str,
    path: &str,
    versions: Vec<i64>,
    change: VersionChange,
) -> Result<Response, ApiError> {
    let p = path_of(mount, path)?;
    let _changed = change_versions(&state, auth, p.as_str(), Some(versions), change).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path((mount, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Response, ApiError> {
    change(
        state,
        auth,
        &mount,
        &path,
        body.versions,
        VersionChange::Delete,
    )
    .await
}

async fn undelete_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path((mount, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Response, ApiError> {
    change(
        state,
        auth,
        &mount,
        &path,
        body.versions,
        VersionChange::Undelete,
    )
    .await
}

async fn destroy_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsAdmin>,
    Path((mount, path)): Path<(String, String)>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Response, ApiError> {
    change(
        state,
        auth,
        &mount,
        &path,
        body.versions,
        VersionChange::Destroy,
    )
    .await
}

/// A secret's metadata in Vault's shape (or, with `?list=true`, a listing).
async fn read_metadata(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsRead>,
    Path((mount, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    if q.list.as_deref() == Some("true") {
        return list_under(&Method::GET, auth, &mount, &path, &q).await;
    }
    let p = path_of(&mount, &path)?;
    let axum::Json(m) =
        crate::routes::secrets::metadata(State(state), auth, Path(p.to_string())).await?;
    let time = |t: Option<Timestamp>| t.map_or(String::new(), Timestamp::to_rfc3339);
    let versions: serde_json::Map<String, Value> = m
        .versions
        .iter()
        .map(|v| {
            (
                v.version.to_string(),
                json!({
                    "created_time": v.created_at.to_rfc3339(),
                    "deletion_time": time(v.deleted_at),
                    "destroyed": v.destroyed_at.is_some(),
                }),
            )
        })
        .collect();
    let oldest = m.versions.first().map_or(0, |v| v.version);
    Ok(axum::Json(envelope(json!({
        "cas_required": false,
        "created_time": m.created_at.to_rfc3339(),
        "current_version": m.current_version,
        "custom_metadata": null,
        "delete_version_after": "0s",
        "max_versions": 0,
        "oldest_version": oldest,
        "updated_time": m.updated_at.to_rfc3339(),
        "versions": versions,
    })))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    list: Option<String>,
}

async fn list(
    method: Method,
    auth: Authed<Read, NeedSecretsRead>,
    Path((mount, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list_under(&method, auth, &mount, &path, &q).await
}

async fn list_root(
    method: Method,
    auth: Authed<Read, NeedSecretsRead>,
    Path(mount): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list_under(&method, auth, &mount, "", &q).await
}

/// The keys one level under a folder: names, and sub-folders with a trailing `/`.
async fn list_under<A: crate::extract::Access>(
    method: &Method,
    mut auth: Authed<A, NeedSecretsRead>,
    mount: &str,
    path: &str,
    q: &ListQuery,
) -> Result<Response, ApiError> {
    let listing =
        method.as_str() == "LIST" || (method == Method::GET && q.list.as_deref() == Some("true"));
    if !listing {
        return Err(ApiError::new(
            ErrorKind::MethodNotAllowed,
            "this endpoint supports LIST (or GET with `?list=true`)",
        ));
    }
    let folder = path.trim_matches('/');
    let prefix = if folder.is_empty() {
        format!("{mount}/")
    } else {
        format!("{}/", path_of(mount, folder)?)
    };
    let tenant = auth.principal.tenant;
    // An agent sees only what its allowlist covers.
    let acl = listing_acl(&mut auth).await?;
    let mut keys = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = auth
            .tx
            .list_secrets(tenant, &prefix, after.as_deref(), 1000)
            .await?;
        let visible = page.iter().filter(|s| listed(acl.as_ref(), &s.path));
        for s in visible {
            let rest = &s.path[prefix.len()..];
            keys.insert(match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest.to_owned(),
            });
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.path.clone()),
            _ => break,
        }
    }
    if keys.is_empty() {
        return Err(ApiError::not_found("folder"));
    }
    Ok(axum::Json(envelope(json!({ "keys": keys }))).into_response())
}
