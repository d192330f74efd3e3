//! `/v1/secrets/…`: the tenant's versioned key/value secrets and its key-encryption keys.
//!
//! Paths have several segments (`db/orders/password`): each route takes a wildcard where the
//! OpenAPI document names a single `path` parameter. Values are UTF-8 strings; they are sealed
//! before they reach the store, never logged, and audited by path and version only.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use rampart_crypto::Secret;
use rampart_secrets::SecretPath;
use rampart_store::Tx;
use rampart_store::{SecretRecord, SecretVersionRecord, TenantKeyState};
use rampart_types::{AuditAction, AuditEvent, Outcome, Problem, RequestId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::agents::{Resource, gate, listed, listing_acl};
use crate::backends;
use crate::credentials::audit;
use crate::disclosed::Disclosed;
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiQuery, Authed, NeedSecretsAdmin, NeedSecretsRead, NeedSecretsWrite, OptionalJson,
    Principal, Read, RequestContext, Write, check_reason,
};
use crate::secrets::{Cas, Opened, SecretsError};
use crate::state::AppState;

/// Longest value accepted, in characters.
pub const MAX_VALUE_CHARS: usize = 65_536;
/// Most versions named in one delete, undelete or destroy.
const MAX_VERSIONS_PER_CALL: usize = 100;

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::NotFound(_)
            | SecretsError::NoSuchVersion(..)
            | SecretsError::Deleted(..)
            | SecretsError::Destroyed(..)
            | SecretsError::NoSuchKey(_) => ApiError::new(ErrorKind::NotFound, e.to_string()),
            SecretsError::CasMismatch { .. }
            | SecretsError::KeyActive(_)
            | SecretsError::KeyRevoked(_) => ApiError::conflict(e.to_string()),
            SecretsError::Store(s) => s.into(),
            SecretsError::Envelope(_) | SecretsError::Internal(_) => ApiError::internal(e),
        }
    }
}

/// JSON Schema's `integer` includes `3.0`; serde's `i64` does not. Accepts an integral number in
/// the range of `i64` (`int64`), written either way.
fn integral(n: &serde_json::Number) -> Option<i64> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f > -TWO_63 && *f < TWO_63)
            .map(|f| f as i64)
    })
}

/// [`de_opt_integer`] for a field that must be present.
pub(crate) fn de_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    integral(&n).ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

pub(crate) fn de_opt_integer<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| integral(&n).ok_or_else(|| serde::de::Error::custom("expected an integer")))
        .transpose()
}

fn de_integers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Vec::<serde_json::Number>::deserialize(d)?
        .iter()
        .map(|n| integral(n).ok_or_else(|| serde::de::Error::custom("expected integers")))
        .collect()
}

pub(crate) fn secret_path(raw: &str) -> Result<SecretPath, ApiError> {
    raw.parse().map_err(|e: rampart_secrets::InvalidPath| {
        ApiError::new(ErrorKind::InvalidPathParameter, e.to_string())
    })
}

/// The `{path}` of a secret route, as documented: the handlers take it as a wildcard (it has
/// several segments) and check it with [`secret_path`]; the pattern says the same as
/// [`SecretPath`]'s rules (no `.` or `..` segment, no empty one).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "documentation of the path parameter only")]
pub struct SecretPathParam {
    /// The secret's path, e.g. `db/orders/password`.
    #[param(
        max_length = 512,
        pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$"
    )]
    path: String,
}

/// A new version of a secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value: a string of at most 65,536 characters.
    #[schema(max_length = 65536)]
    pub value: String,
    /// Check-and-set: write only if the secret's newest version is this one (`0`: only if it
    /// does not exist yet).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "de_opt_integer")]
    pub cas: Option<i64>,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecret")
            .field("value", &"[REDACTED]")
            .field("cas", &self.cas)
            .finish()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretWritten {
    pub path: String,
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct SecretValue {
    pub path: String,
    pub version: i64,
    pub value: Disclosed,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version number (default: the newest).
    #[param(minimum = 1)]
    pub version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub destroyed_at: Option<Timestamp>,
    /// The key-encryption key version its data key is wrapped by (none once destroyed).
    pub key_version: Option<i64>,
}

impl From<&SecretVersionRecord> for VersionView {
    fn from(v: &SecretVersionRecord) -> Self {
        Self {
            version: v.version,
            created_at: v.created_at,
            deleted_at: v.deleted_at,
            destroyed_at: v.destroyed_at,
            key_version: v.sealed.as_ref().map(|s| i64::from(s.key_version)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretMetadata {
    pub path: String,
    pub current_version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretSummary {
    pub path: String,
    pub current_version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&SecretRecord> for SecretSummary {
    fn from(s: &SecretRecord) -> Self {
        Self {
            path: s.path.clone(),
            current_version: s.current_version,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only paths starting with this string.
    #[param(max_length = 512)]
    pub prefix: Option<String>,
    /// The `next` of the previous page.
    #[param(max_length = 512)]
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionsBody {
    /// Version numbers, at most 100; numbers of no version are ignored.
    #[schema(min_items = 1, max_items = 100)]
    #[serde(deserialize_with = "de_integers")]
    pub versions: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsChanged {
    pub path: String,
    /// Versions whose state changed (the others already were in the asked state or do not
    /// exist).
    pub changed: u64,
}

/// Write a new version of a secret.
#[utoipa::path(put, path = "/v1/secrets/data/{path}", tag = "secrets",
    params(SecretPathParam),
    request_body = PutSecret,
    security(("bearer" = ["secrets:write"])),
    responses(
        (status = 200, description = "Written", body = SecretWritten),
        (status = 409, description = "Check-and-set failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_secret(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<Json<SecretWritten>, ApiError> {
    let path = secret_path(&raw)?;
    let PutSecret { value, cas } = body;
    let value = Secret::new(value);
    let (version, now) = write_audited(&state, auth, &path, &value, cas_from(cas)?).await?;
    Ok(Json(SecretWritten {
        path: path.to_string(),
        version,
        created_at: now,
    }))
}

/// A check-and-set as the API spells it: absent (no check), 0 (must not exist) or a version.
pub(crate) fn cas_from(cas: Option<i64>) -> Result<Cas, ApiError> {
    match cas {
        None => Ok(Cas::Any),
        Some(0) => Ok(Cas::Absent),
        Some(v) if v > 0 => Ok(Cas::Current(v)),
        Some(_) => Err(ApiError::validation("`cas` is a version number, 0 or more")),
    }
}

fn cas_detail(cas: Cas) -> serde_json::Value {
    match cas {
        Cas::Any => serde_json::Value::Null,
        Cas::Absent => json!(0),
        Cas::Current(v) => json!(v),
    }
}

/// Read a secret's value: the newest version, or the one asked for. Every read is audited.
#[utoipa::path(get, path = "/v1/secrets/data/{path}", tag = "secrets",
    params(SecretPathParam, VersionQuery),
    security(("bearer" = ["secrets:read"])),
    responses(
        (status = 200, description = "The value", body = SecretValue),
        (status = 404, description = "No such secret or version, or it is deleted or destroyed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_secret(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsRead>,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Response, ApiError> {
    let path = secret_path(&raw)?;
    if q.version.is_some_and(|v| v < 1) {
        return Err(ApiError::new(
            ErrorKind::InvalidQuery,
            "`version` is 1 or more",
        ));
    }
    let opened = read_audited(&state, auth, &path, q.version).await?;
    let value = Disclosed::utf8(&opened.value)?;
    Ok(no_store(
        Json(SecretValue {
            path: path.to_string(),
            version: opened.version.version,
            value,
            created_at: opened.version.created_at,
        })
        .into_response(),
    ))
}

/// Opens a version of a secret and audits the read (refused ones too), committing `auth.tx`.
pub(crate) async fn read_audited(
    state: &AppState,
    auth: Authed<Write, NeedSecretsRead>,
    path: &SecretPath,
    version: Option<i64>,
) -> Result<Opened, ApiError> {
    let mut auth = gate(
        state,
        auth,
        AuditAction::SecretRead,
        Resource::Secret(path.as_str()),
    )
    .await?;
    let tenant = auth.principal.tenant;
    if let Some(m) = backends::mounted(&mut auth.tx, tenant, path.as_str()).await? {
        return read_external(state, auth, path, version, m).await;
    }
    let now = state.clock.now();
    let opened = state.secrets.get(&mut auth.tx, tenant, path, version).await;
    let (outcome, detail) = match &opened {
        Ok(o) => (Outcome::Success, json!({ "version": o.version.version })),
        Err(e) => (
            Outcome::Denied,
            json!({ "version": version, "error": e.to_string() }),
        ),
    };
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SecretRead,
        format!("secret:{path}"),
        outcome,
        detail,
        now,
    );
    audit(state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(opened?)
}

/// Runs `op` on the backend mounted at `path` (the request's transaction ends before the
/// backend is called), then audits the outcome in a transaction of its own and passes the
/// result on.
async fn external<T: Send + 'static>(
    state: &AppState,
    auth: Authed<Write, impl crate::extract::Need>,
    action: AuditAction,
    path: &SecretPath,
    m: &backends::Mounted,
    op: impl FnOnce(&dyn backends::Backend) -> Result<T, backends::BackendError> + Send + 'static,
    detail: impl FnOnce(&T) -> serde_json::Value,
) -> Result<T, ApiError> {
    let Authed {
        principal, tx, ctx, ..
    } = auth;
    let scope = tx.scope().clone();
    let result = backends::call(state, tx, principal.tenant, m, op).await;
    let (outcome, mut detail) = match &result {
        Ok(v) => (Outcome::Success, detail(v)),
        Err(e) => (Outcome::Failed, json!({ "error": e.detail })),
    };
    detail["backend"] = m.audit_detail();
    let event = ctx.event(
        principal.tenant,
        &principal.subject,
        action,
        format!("secret:{path}"),
        outcome,
        detail,
        state.clock.now(),
    );
    let mut tx = state.store.begin(scope).await?;
    audit(state, &mut tx, event).await?;
    tx.commit().await?;
    result
}

async fn read_external(
    state: &AppState,
    auth: Authed<Write, NeedSecretsRead>,
    path: &SecretPath,
    version: Option<i64>,
    m: backends::Mounted,
) -> Result<Opened, ApiError> {
    let tenant = auth.principal.tenant;
    let name = m.name.clone();
    let read = external(
        state,
        auth,
        AuditAction::SecretRead,
        path,
        &m,
        move |b| b.read(&name, version),
        |v| json!({ "version": v.version }),
    )
    .await?;
    Ok(Opened {
        version: SecretVersionRecord {
            tenant_id: tenant,
            path: path.to_string(),
            version: read.version,
            sealed: None,
            created_at: read.created_at,
            deleted_at: None,
            destroyed_at: None,
        },
        value: Secret::new(read.value.expose().as_bytes().to_vec()),
    })
}

/// Writes a new version of a secret and audits it, committing `auth.tx`. Returns its number.
pub(crate) async fn write_audited(
    state: &AppState,
    auth: Authed<Write, NeedSecretsWrite>,
    path: &SecretPath,
    value: &Secret<String>,
    cas: Cas,
) -> Result<(i64, Timestamp), ApiError> {
    if value.expose().chars().count() > MAX_VALUE_CHARS {
        return Err(ApiError::validation(format!(
            "`value` is longer than {MAX_VALUE_CHARS} characters"
        )));
    }
    let mut auth = gate(
        state,
        auth,
        AuditAction::SecretWrite,
        Resource::Secret(path.as_str()),
    )
    .await?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    if let Some(m) = backends::mounted(&mut auth.tx, tenant, path.as_str()).await? {
        let (name, value) = (m.name.clone(), Secret::new(value.expose().clone()));
        let version = external(
            state,
            auth,
            AuditAction::SecretWrite,
            path,
            &m,
            move |b| b.write(&name, &value, cas),
            |v| json!({ "version": v, "cas": cas_detail(cas) }),
        )
        .await?;
        return Ok((version, now));
    }
    let version = state
        .secrets
        .put(
            &mut auth.tx,
            tenant,
            path,
            value.expose().as_bytes(),
            cas,
            now,
        )
        .await?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SecretWrite,
        format!("secret:{path}"),
        Outcome::Success,
        json!({ "version": version, "cas": cas_detail(cas) }),
        now,
    );
    audit(state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok((version, now))
}

/// What a delete, undelete or destroy does to the versions it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    Delete,
    Undelete,
    Destroy,
}

impl VersionChange {
    fn action(self) -> AuditAction {
        match self {
            Self::Delete => AuditAction::SecretDelete,
            Self::Undelete => AuditAction::SecretUndelete,
            Self::Destroy => AuditAction::SecretDestroy,
        }
    }
}

/// Applies `change` to `versions` of a secret (default: its newest), audits it and commits
/// `auth.tx`.
pub(crate) async fn change_versions(
    state: &AppState,
    auth: Authed<Write, impl crate::extract::Need>,
    raw: &str,
    versions: Option<Vec<i64>>,
    change: VersionChange,
) -> Result<Json<VersionsChanged>, ApiError> {
    let path = secret_path(raw)?;
    let mut auth = gate(
        state,
        auth,
        change.action(),
        Resource::Secret(path.as_str()),
    )
    .await?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    if versions
        .as_ref()
        .is_some_and(|v| v.is_empty() || v.len() > MAX_VERSIONS_PER_CALL)
    {
        return Err(ApiError::validation(format!(
            "`versions` names 1 to {MAX_VERSIONS_PER_CALL} versions"
        )));
    }
    if let Some(m) = backends::mounted(&mut auth.tx, tenant, path.as_str()).await? {
        let (name, asked) = (m.name.clone(), versions.clone());
        let changed = external(
            state,
            auth,
            change.action(),
            &path,
            &m,
            move |b| b.change(&name, asked.as_deref(), change),
            |n| json!({ "versions": versions, "changed": n }),
        )
        .await?;
        return Ok(Json(VersionsChanged {
            path: path.to_string(),
            changed,
        }));
    }
    let secret = auth
        .tx
        .secret(tenant, path.as_str())
        .await?
        .ok_or_else(|| ApiError::from(SecretsError::NotFound(path.to_string())))?;
    let versions = versions.unwrap_or_else(|| vec![secret.current_version]);
    if versions.is_empty() || versions.len() > MAX_VERSIONS_PER_CALL {
        return Err(ApiError::validation(format!(
            "`versions` names 1 to {MAX_VERSIONS_PER_CALL} versions"
        )));
    }
    let p = path.as_str();
    let changed = match change {
        VersionChange::Delete => {
            auth.tx
                .mark_secret_versions_deleted(tenant, p, &versions, Some(now))
                .await?
        }
        VersionChange::Undelete => {
            auth.tx
                .mark_secret_versions_deleted(tenant, p, &versions, None)
                .await?
        }
        VersionChange::Destroy => {
            auth.tx
                .destroy_secret_versions(tenant, p, &versions, now)
                .await?
        }
    };
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        change.action(),
        format!("secret:{path}"),
        Outcome::Success,
        json!({ "versions": versions, "changed": changed }),
        now,
    );
    audit(state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(VersionsChanged {
        path: path.to_string(),
        changed,
    }))
}

/// Soft-delete the newest version of a secret (undelete restores it).
#[utoipa::path(delete, path = "/v1/secrets/data/{path}", tag = "secrets",
    params(SecretPathParam),
    security(("bearer" = ["secrets:write"])),
    responses(
        (status = 200, description = "Deleted", body = VersionsChanged),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_latest(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path(raw): Path<String>,
) -> Result<Json<VersionsChanged>, ApiError> {
    change_versions(&state, auth, &raw, None, VersionChange::Delete).await
}

/// Soft-delete versions of a secret.
#[utoipa::path(post, path = "/v1/secrets/delete/{path}", tag = "secrets",
    params(SecretPathParam),
    request_body = VersionsBody,
    security(("bearer" = ["secrets:write"])),
    responses(
        (status = 200, description = "Deleted", body = VersionsChanged),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Json<VersionsChanged>, ApiError> {
    change_versions(
        &state,
        auth,
        &raw,
        Some(body.versions),
        VersionChange::Delete,
    )
    .await
}

/// Restore soft-deleted versions of a secret.
#[utoipa::path(post, path = "/v1/secrets/undelete/{path}", tag = "secrets",
    params(SecretPathParam),
    request_body = VersionsBody,
    security(("bearer" = ["secrets:write"])),
    responses(
        (status = 200, description = "Restored", body = VersionsChanged),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn undelete_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsWrite>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Json<VersionsChanged>, ApiError> {
    change_versions(
        &state,
        auth,
        &raw,
        Some(body.versions),
        VersionChange::Undelete,
    )
    .await
}

/// Destroy versions of a secret for good: their sealed data keys and values are overwritten.
#[utoipa::path(post, path = "/v1/secrets/destroy/{path}", tag = "secrets",
    params(SecretPathParam),
    request_body = VersionsBody,
    security(("bearer" = ["secrets:admin"])),
    responses(
        (status = 200, description = "Destroyed", body = VersionsChanged),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn destroy_versions(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsAdmin>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<VersionsBody>,
) -> Result<Json<VersionsChanged>, ApiError> {
    change_versions(
        &state,
        auth,
        &raw,
        Some(body.versions),
        VersionChange::Destroy,
    )
    .await
}

/// A secret's versions and their states (no values).
#[utoipa::path(get, path = "/v1/secrets/metadata/{path}", tag = "secrets",
    params(SecretPathParam),
    security(("bearer" = ["secrets:read"])),
    responses(
        (status = 200, description = "The metadata", body = SecretMetadata),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metadata(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsRead>,
    Path(raw): Path<String>,
) -> Result<Json<SecretMetadata>, ApiError> {
    let path = secret_path(&raw)?;
    // A write transaction only so that an agent's refusal can be audited.
    let mut auth = gate(
        &state,
        auth,
        AuditAction::SecretRead,
        Resource::Secret(path.as_str()),
    )
    .await?;
    let tenant = auth.principal.tenant;
    if let Some(m) = backends::mounted(&mut auth.tx, tenant, path.as_str()).await? {
        let name = m.name.clone();
        let meta = backends::call(&state, auth.tx, tenant, &m, move |b| b.metadata(&name)).await?;
        return Ok(Json(SecretMetadata {
            path: path.to_string(),
            current_version: meta.current_version,
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            versions: meta
                .versions
                .iter()
                .map(|v| VersionView {
                    version: v.version,
                    created_at: v.created_at,
                    deleted_at: v.deleted_at,
                    destroyed_at: v.destroyed.then_some(v.created_at),
                    key_version: None,
                })
                .collect(),
        }));
    }
    let secret = auth
        .tx
        .secret(tenant, path.as_str())
        .await?
        .ok_or_else(|| ApiError::from(SecretsError::NotFound(path.to_string())))?;
    let versions = auth.tx.secret_versions(tenant, path.as_str()).await?;
    Ok(Json(SecretMetadata {
        path: secret.path,
        current_version: secret.current_version,
        created_at: secret.created_at,
        updated_at: secret.updated_at,
        versions: versions.iter().map(VersionView::from).collect(),
    }))
}

/// List secrets by path prefix, in path order (no values).
#[utoipa::path(get, path = "/v1/secrets/metadata", tag = "secrets", params(ListQuery),
    security(("bearer" = ["secrets:read"])),
    responses((status = 200, description = "A page of secrets", body = SecretList)))]
pub async fn list(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedSecretsRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SecretList>, ApiError> {
    let limit = crate::extract::page_limit(q.limit)?;
    let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 512);
    if too_long(&q.prefix) || too_long(&q.after) {
        return Err(ApiError::new(
            ErrorKind::InvalidQuery,
            "`prefix` and `after` are at most 512 bytes",
        ));
    }
    let tenant = auth.principal.tenant;
    let prefix = q.prefix.as_deref().unwrap_or("");
    if let Some(m) = backends::mounted(&mut auth.tx, tenant, prefix).await? {
        return list_external(&state, auth, m, q.after.as_deref(), limit).await;
    }
    let mut page = auth
        .tx
        .list_secrets(
            tenant,
            q.prefix.as_deref().unwrap_or(""),
            q.after.as_deref(),
            limit + 1,
        )
        .await?;
    let more = page.len() as i64 > limit;
    page.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        page.last().map(|s| s.path.clone())
    } else {
        None
    };
    // An agent sees only what its allowlist covers (a page may come back short).
    let acl = listing_acl(&mut auth).await?;
    page.retain(|s| listed(acl.as_ref(), &s.path));
    Ok(Json(SecretList {
        next,
        secrets: page.iter().map(SecretSummary::from).collect(),
    }))
}

/// [`list`] under a mounted backend: the backend lists every match (at most 10,000), paged
/// here.
async fn list_external(
    state: &AppState,
    mut auth: Authed<Read, NeedSecretsRead>,
    m: backends::Mounted,
    after: Option<&str>,
    limit: i64,
) -> Result<Json<SecretList>, ApiError> {
    let acl = listing_acl(&mut auth).await?;
    let tenant = auth.principal.tenant;
    let name = m.name.clone();
    let all = backends::call(state, auth.tx, tenant, &m, move |b| b.list(&name)).await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut page: Vec<SecretSummary> = all
        .into_iter()
        .map(|s| SecretSummary {
            path: format!("{}/{}", m.mount, s.name),
            current_version: s.current_version,
            updated_at: s.updated_at,
        })
        .filter(|s| after.is_none_or(|a| s.path.as_str() > a))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|s| s.path.clone())
    } else {
        None
    };
    page.retain(|s| listed(acl.as_ref(), &s.path));
    Ok(Json(SecretList {
        next,
        secrets: page,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionView {
    pub version: i64,
    /// `active`, `retired` or `revoked`.
    pub state: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retired_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// Secret versions whose data key it wraps.
    pub secret_versions: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionList {
    pub versions: Vec<KeyVersionView>,
}

/// The tenant's key-encryption key versions, newest first.
#[utoipa::path(get, path = "/v1/secrets/keys", tag = "secrets",
    security(("bearer" = ["secrets:admin"])),
    responses((status = 200, description = "Key versions", body = KeyVersionList)))]
pub async fn list_keys(
    mut auth: Authed<Read, NeedSecretsAdmin>,
) -> Result<Json<KeyVersionList>, ApiError> {
    let tenant = auth.principal.tenant;
    let keys = auth.tx.tenant_keys(tenant).await?;
    let counts = auth.tx.secret_count_by_key(tenant).await?;
    Ok(Json(KeyVersionList {
        versions: keys
            .iter()
            .map(|k| KeyVersionView {
                version: k.version,
                state: k.state.as_str(),
                created_at: k.created_at,
                retired_at: k.retired_at,
                revoked_at: k.revoked_at,
                secret_versions: counts
                    .iter()
                    .find(|(v, _)| *v == k.version)
                    .map_or(0, |(_, n)| *n),
            })
            .collect(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRotated {
    /// The version that seals from now on.
    pub version: i64,
    /// The version it replaced.
    pub retired: Option<i64>,
    /// Secret versions re-wrapped under the new version (break-glass only; 0 otherwise).
    pub rewrapped: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevoked {
    pub version: i64,
    /// Secret versions moved off it first.
    pub rewrapped: u64,
    /// The version that now wraps them.
    pub active: i64,
}

/// Rotate the tenant's key-encryption key. New secret versions are sealed under the new key
/// version; existing ones stay readable under the old one.
#[utoipa::path(post, path = "/v1/secrets/keys/rotate", tag = "secrets",
    request_body(content = Option<RotateKey>, description = "Optional"),
    security(("bearer" = ["secrets:admin"])),
    responses((status = 200, description = "Rotated", body = KeyRotated)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsAdmin>,
    OptionalJson(body): OptionalJson<RotateKey>,
) -> Result<Json<KeyRotated>, ApiError> {
    if let Some(r) = &body.reason {
        check_reason(r)?;
    }
    rotate(&state, auth, body.reason.as_deref(), false).await
}

/// Break-glass rotation: rotate the tenant's key-encryption key, then re-wrap every secret
/// version under the new key version at once (500 per transaction, each audited).
#[utoipa::path(post, path = "/v1/secrets/keys/break-glass", tag = "secrets",
    request_body = BreakGlass,
    security(("bearer" = ["secrets:admin"])),
    responses((status = 200, description = "Rotated and re-wrapped", body = KeyRotated)))]
pub async fn break_glass(
    State(state): State<AppState>,
    auth: Authed<Write, NeedSecretsAdmin>,
    ApiJson(body): ApiJson<BreakGlass>,
) -> Result<Json<KeyRotated>, ApiError> {
    check_reason(&body.reason)?;
    rotate(&state, auth, Some(&body.reason), true).await
}

/// Rotates the tenant's key-encryption key inside `tx` and records it: the one way every
/// rotation happens (on demand, break-glass, before a revocation, on schedule). Returns
/// (retired, new).
pub(crate) async fn rotate_recorded(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    actor: &str,
    request_id: Option<RequestId>,
    why: Option<&str>,
    break_glass: bool,
) -> Result<(Option<i64>, i64), ApiError> {
    let now = state.clock.now();
    let (retired, version) = state.secrets.rotate(tx, tenant, now).await?;
    let event = AuditEvent {
        tenant_id: tenant,
        request_id,
        actor: actor.to_owned(),
        action: AuditAction::TenantKeyRotate,
        resource: format!("tenant_key:{version}"),
        outcome: Outcome::Success,
        detail: json!({ "retired": retired, "break_glass": break_glass, "reason": why }),
        at: now,
    };
    audit(state, tx, event).await?;
    Ok((retired, version))
}

async fn rotate(
    state: &AppState,
    mut auth: Authed<Write, NeedSecretsAdmin>,
    why: Option<&str>,
    break_glass: bool,
) -> Result<Json<KeyRotated>, ApiError> {
    let tenant = auth.principal.tenant;
    let (retired, version) = rotate_recorded(
        state,
        &mut auth.tx,
        tenant,
        &auth.principal.subject,
        Some(auth.ctx.request_id),
        why,
        break_glass,
    )
    .await?;
    auth.tx.commit().await?;
    let mut rewrapped = 0;
    if break_glass {
        let keys = {
            let mut tx = state.store.begin_read(auth.principal.scope()).await?;
            tx.tenant_keys(tenant).await?
        };
        for k in keys.iter().filter(|k| k.state == TenantKeyState::Retired) {
            rewrapped += rewrap_all(state, &auth.principal, &auth.ctx, k.version, why).await?;
        }
    }
    Ok(Json(KeyRotated {
        version,
        retired,
        rewrapped,
    }))
}

/// Moves every secret version off key version `from`, a batch per transaction, each audited;
/// the last batch also moves the webhook endpoint keys, the Sentinel key and the missions'
/// instructions sealed under it, and then the gateway's sealed call originals follow.
async fn rewrap_all(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    from: i64,
    why: Option<&str>,
) -> Result<u64, ApiError> {
    let tenant = principal.tenant;
    let mut total = 0;
    loop {
        let mut tx = state.store.begin(principal.scope()).await?;
        let now = state.clock.now();
        let batch = state
            .secrets
            .rewrap_batch(&mut tx, tenant, from, now)
            .await?;
        if batch.versions > 0 {
            let detail = json!({ "from": from, "versions": batch.versions, "reason": why });
            audit(
                state,
                &mut tx,
                rewrap_event(ctx, principal, from, detail, now),
            )
            .await?;
        }
        if batch.done {
            // Webhook endpoint keys sealed under `from` move with the secrets.
            crate::webhooks::reseal_endpoint_keys(state, &mut tx, tenant, from, now)
                .await
                .map_err(ApiError::internal)?;
            // So does the tenant's Sentinel key.
            state
                .sentinel
                .reseal_key(&state.secrets, &mut tx, tenant, from, now)
                .await?;
            // And missions' pinned instructions.
            crate::missions::reseal_instructions(state, &mut tx, tenant, from, now).await?;
        }
        tx.commit().await?;
        total += batch.versions;
        if batch.done {
            reseal_gateway_originals(state, principal, ctx, from).await?;
            return Ok(total);
        }
    }
}

/// Re-seals the gateway's sealed call originals that are under key version `from`, a batch per
/// transaction, each audited (there is one per call, so they do not fit in one transaction).
async fn reseal_gateway_originals(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
    from: i64,
) -> Result<(), ApiError> {
    let tenant = principal.tenant;
    let mut after = String::new();
    loop {
        let mut tx = state.store.begin(principal.scope()).await?;
        let now = state.clock.now();
        let (n, last) =
            crate::gateway::replay::reseal_batch(state, &mut tx, tenant, from, &after, now).await?;
        if n == 0 {
            return Ok(());
        }
        let detail = json!({ "from": from, "gateway_requests": n });
        audit(
            state,
            &mut tx,
            rewrap_event(ctx, principal, from, detail, now),
        )
        .await?;
        tx.commit().await?;
        after = last;
    }
}

/// The audit record of one batch moved off key version `from`.
fn rewrap_event(
    ctx: &RequestContext,
    principal: &Principal,
    from: i64,
    detail: serde_json::Value,
    now: Timestamp,
) -> AuditEvent {
    ctx.event(
        principal.tenant,
        &principal.subject,
        AuditAction::TenantKeyRewrap,
        format!("tenant_key:{from}"),
        Outcome::Success,
        detail,
        now,
    )
}

/// Revoke a key-encryption key version: every secret version it wraps is re-wrapped under the
/// active version (rotating first if it is the active one), then its material is destroyed and
/// nothing opens under it again.
#[utoipa::path(post, path = "/v1/secrets/keys/{version}/revoke", tag = "secrets",
    params(("version" = i64, Path, minimum = 1, description = "The key version")),
    request_body = RevokeKey,
    security(("bearer" = ["secrets:admin"])),
    responses(
        (status = 200, description = "Revoked", body = KeyRevoked),
        (status = 404, description = "No such key version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSecretsAdmin>,
    Path(version): Path<String>,
    ApiJson(body): ApiJson<RevokeKey>,
) -> Result<Json<KeyRevoked>, ApiError> {
    let version: i64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidPathParameter,
            "a key version is 1 or more",
        )
    })?;
    check_reason(&body.reason)?;
    let why = Some(body.reason.as_str());
    let tenant = auth.principal.tenant;
    let keys = auth.tx.tenant_keys(tenant).await?;
    let key = keys
        .iter()
        .find(|k| k.version == version)
        .ok_or(SecretsError::NoSuchKey(version))?;
    if key.state == TenantKeyState::Revoked {
        return Err(ApiError::conflict(format!(
            "key version {version} is already revoked"
        )));
    }
    if key.state == TenantKeyState::Active {
        rotate_recorded(
            &state,
            &mut auth.tx,
            tenant,
            &auth.principal.subject,
            Some(auth.ctx.request_id),
            why,
            false,
        )
        .await?;
    }
    // Commit the rotation (if any) before re-wrapping in batches of their own.
    auth.tx.commit().await?;
    let rewrapped = rewrap_all(&state, &auth.principal, &auth.ctx, version, why).await?;
    let mut tx = state.store.begin(auth.principal.scope()).await?;
    let now = state.clock.now();
    state.secrets.revoke(&mut tx, tenant, version, now).await?;
    let active = state
        .secrets
        .active_kek(&mut tx, tenant, now)
        .await?
        .version();
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::TenantKeyRevoke,
        format!("tenant_key:{version}"),
        Outcome::Success,
        json!({ "rewrapped": rewrapped, "active": active, "reason": why }),
        now,
    );
    audit(&state, &mut tx, event).await?;
    tx.commit().await?;
    Ok(Json(KeyRevoked {
        version,
        rewrapped,
        active: i64::from(active),
    }))
}
