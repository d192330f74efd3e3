//! Mounting external secret backends (AWS Secrets Manager, a Vault KV v2 mount) into a tenant's
//! secret paths. See [`crate::backends`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_secrets::SecretPath;
use rampart_store::SecretBackendRecord;
use rampart_types::{AuditAction, Outcome, Problem, Timestamp};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::backends::BackendSettings;
use crate::credentials::audit;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{ApiJson, Authed, NeedSecretsAdmin, Read, Write};
use crate::state::AppState;

const MOUNT_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$";

fn check_mount(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::InvalidPathParameter,
            format!("a mount name matches {MOUNT_PATTERN}"),
        ))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackendView {
    /// The mount: paths `<name>/…` are served by the backend.
    pub name: String,
    pub settings: BackendSettings,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl TryFrom<SecretBackendRecord> for BackendView {
    type Error = ApiError;
    fn try_from(r: SecretBackendRecord) -> Result<Self, ApiError> {
        Ok(Self {
            settings: serde_json::from_value(r.settings).map_err(ApiError::internal)?,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackendList {
    pub backends: Vec<BackendView>,
}

/// Mount (or re-mount) an external backend at `name`: secret paths `<name>/…` are then read,
/// written, deleted and listed in the backend through the usual `/v1/secrets` routes, with the
/// same allowlists and audit records. The backend's credentials are read from the local secret
/// `credentials` at each call; it must lie outside the mount. Refused while local secrets exist
/// under `<name>/` (the mount would hide them).
#[utoipa::path(put, path = "/v1/secrets/backends/{name}", tag = "secrets",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")),
    request_body = BackendSettings,
    security(("bearer" = ["secrets:admin"])),
    responses(
        (status = 200, description = "Mounted", body = BackendView),
        (status = 409, description = "Local secrets exist under the mount, or the credentials lie inside it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_backend(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSecretsAdmin>,
    Path(name): Path<String>,
    ApiJson(settings): ApiJson<BackendSettings>,
) -> Result<Json<BackendView>, ApiError> {
    check_mount(&name)?;
    settings.check().map_err(ApiError::validation)?;
    let credentials: SecretPath = settings
        .credentials()
        .parse()
        .map_err(|e| ApiError::validation(format!("`credentials`: {e}")))?;
    let prefix = format!("{name}/");
    if credentials.as_str().starts_with(&prefix) {
        return Err(ApiError::conflict(format!(
            "the credentials secret `{credentials}` lies inside the mount `{name}`"
        )));
    }
    let tenant = auth.principal.tenant;
    if !auth
        .tx
        .list_secrets(tenant, &prefix, None, 1)
        .await?
        .is_empty()
    {
        return Err(ApiError::conflict(format!(
            "local secrets exist under `{prefix}`: the mount would hide them"
        )));
    }
    let now = state.clock.now();
    let created_at = auth
        .tx
        .secret_backend(tenant, &name)
        .await?
        .map_or(now, |b| b.created_at);
    let record = SecretBackendRecord {
        tenant_id: tenant,
        name,
        kind: settings.kind().to_owned(),
        settings: serde_json::to_value(&settings).map_err(ApiError::internal)?,
        created_at,
        updated_at: now,
    };
    auth.tx.upsert_secret_backend(&record).await?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SecretBackendChange,
        format!("secret_backend:{}", record.name),
        Outcome::Success,
        record.settings.clone(),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(record.try_into()?))
}

/// The tenant's mounted backends.
#[utoipa::path(get, path = "/v1/secrets/backends", tag = "secrets",
    security(("bearer" = ["secrets:admin"])),
    responses((status = 200, description = "Backends", body = BackendList)))]
pub async fn list_backends(
    mut auth: Authed<Read, NeedSecretsAdmin>,
) -> Result<Json<BackendList>, ApiError> {
    let records = auth.tx.secret_backends(auth.principal.tenant).await?;
    Ok(Json(BackendList {
        backends: records
            .into_iter()
            .map(BackendView::try_from)
            .collect::<Result<_, _>>()?,
    }))
}

/// Unmount a backend (nothing in the backend is touched).
#[utoipa::path(delete, path = "/v1/secrets/backends/{name}", tag = "secrets",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")),
    security(("bearer" = ["secrets:admin"])),
    responses(
        (status = 204, description = "Unmounted"),
        (status = 404, description = "No such backend", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_backend(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSecretsAdmin>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = auth.principal.tenant;
    if !auth.tx.delete_secret_backend(tenant, &name).await? {
        return Err(ApiError::not_found("backend"));
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SecretBackendChange,
        format!("secret_backend:{name}"),
        Outcome::Success,
        json!({ "deleted": true }),
        state.clock.now(),
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
