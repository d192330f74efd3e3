use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_identity::{ApiKey, ApiKeyId};
use rampart_store::ApiKeyRecord;
use rampart_types::{AgentId, AuditAction, CapabilitySet, Outcome, Problem, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use crate::credentials::{NewApiKey, audit, create_api_key};
use crate::edge::no_store;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, Authed, NeedApikeysManage, OptionalJson, Read, Write,
    duration_field, is_schema_space, lifetime_field,
};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label for people: up to 128 characters, no control characters, not starting with a
    /// space.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
    )]
    pub name: String,
    /// What the key may do; never more than the caller holds.
    #[schema(value_type = Vec<rampart_types::Capability>, min_items = 1, example = json!(["audit:read"]))]
    pub capabilities: CapabilitySet,
    /// Lifetime such as `30d` (default `api_key_default_ttl`; longer requests are capped at
    /// `api_key_max_ttl`).
    #[schema(
        max_length = 32,
        pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$",
        example = "30d"
    )]
    pub expires_in: Option<String>,
    /// Another tenant (platform operator only); default: the caller's.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
    /// An agent of the tenant: tokens minted from the key speak for it, and its allowlists
    /// apply. A key created by an agent always belongs to that agent.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub agent: Option<AgentId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    pub name: String,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    #[schema(value_type = Vec<String>)]
    pub capabilities: CapabilitySet,
    /// The start of the key, to recognise it: `rmp_live_<id>_…`.
    pub prefix: String,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    pub rotated_from: Option<String>,
    pub rotated_to: Option<String>,
    /// The agent the key belongs to.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub agent: Option<AgentId>,
}

impl ApiKeyView {
    fn new(k: &ApiKeyRecord, now: Timestamp) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if now >= k.expires_at {
            "expired"
        } else {
            "active"
        };
        Self {
            id: k.id.to_string(),
            tenant_id: k.tenant_id,
            name: k.name.clone(),
            status,
            capabilities: k.capabilities,
            prefix: format!("rmp_live_{}_", k.id),
            created_by: k.created_by.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            rotated_from: k.rotated_from.as_ref().map(ToString::to_string),
            rotated_to: k.rotated_to.as_ref().map(ToString::to_string),
            agent: k.agent_id,
        }
    }
}

/// A new key. `key` is shown this once and cannot be retrieved again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

/// `201 Created` with the new key — the only time it is shown — and no caching.
fn created(key: &ApiKey, record: &ApiKeyRecord, now: Timestamp) -> Response {
    let body = ApiKeyCreated {
        key: key.expose().to_owned(),
        api_key: ApiKeyView::new(record, now),
    };
    no_store((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// Another tenant (platform operator only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
}

/// The path of one API key.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "documentation of the path parameter only")]
pub struct ApiKeyPath {
    /// The key's public id (the 12 characters after `rmp_live_`).
    #[param(pattern = "^[0-9a-z]{12}$")]
    id: String,
}

/// The rule the `name` schema states: 1–128 characters, none of them C0 controls or DEL, the
/// first not white space.
fn validate_name(name: &str) -> Result<(), ApiError> {
    let is_c0 = |c: char| c <= '\u{1f}' || c == '\u{7f}';
    let ok = name.chars().count() <= 128
        && name.chars().next().is_some_and(|c| !is_schema_space(c))
        && !name.chars().any(is_c0);
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "`name` must be 1 to 128 characters without control characters, not starting with a space",
        ))
    }
}

/// The lifetime of a new key: `expires_in`, capped at `api_key_max_ttl` (a shorter life than
/// asked for is always safe), or the default.
fn lifetime(state: &AppState, expires_in: Option<&str>) -> Result<Duration, ApiError> {
    let Some(s) = expires_in else {
        return Ok(state.config.api_key_default_ttl);
    };
    Ok(lifetime_field("expires_in", s)?.min(state.config.api_key_max_ttl))
}

/// The caller may hand out only what it holds; platform capabilities stay in the system tenant.
fn check_grantable(
    state: &AppState,
    holder: CapabilitySet,
    wanted: CapabilitySet,
    tenant: TenantId,
) -> Result<(), ApiError> {
    if wanted.is_empty() {
        return Err(ApiError::validation(
            "`capabilities` must name at least one capability",
        ));
    }
    let extra = wanted.difference(holder);
    if !extra.is_empty() {
        return Err(ApiError::forbidden(format!(
            "you cannot grant capabilities you do not hold: `{}`",
            extra.to_scope_string()
        )));
    }
    if tenant != state.system_tenant && wanted.has_platform_only() {
        return Err(ApiError::validation(
            "`tenants:admin` and `keys:manage` can only be held in the system tenant",
        ));
    }
    Ok(())
}

/// The agent a new key belongs to: the caller's own if it is an agent (an agent cannot mint a
/// key that escapes its allowlists), else the one asked for, which must be an enabled agent of
/// the tenant.
async fn key_agent(
    auth: &mut Authed<Write, NeedApikeysManage>,
    tenant: TenantId,
    asked: Option<AgentId>,
) -> Result<Option<AgentId>, ApiError> {
    if let Some(own) = auth.principal.agent {
        if asked.is_some_and(|a| a != own) {
            return Err(ApiError::forbidden(
                "an agent can only create keys for itself",
            ));
        }
        return Ok(Some(own));
    }
    let Some(id) = asked else {
        return Ok(None);
    };
    match auth.tx.agent(tenant, id).await? {
        Some(a) if a.disabled_at.is_none() => Ok(Some(id)),
        Some(_) => Err(ApiError::conflict(format!("agent `{id}` is disabled"))),
        None => Err(ApiError::not_found(&format!("agent `{id}`"))),
    }
}

/// Create an API key. The response is the only time the key is shown.
#[utoipa::path(post, path = "/v1/apikeys", tag = "apikeys", request_body = CreateApiKey,
    security(("bearer" = ["apikeys:manage"])),
    responses(
        (status = 201, description = "Created; `key` is shown once", body = ApiKeyCreated),
        (status = 403, description = "Missing `apikeys:manage`, or asking for capabilities you do not hold", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or not yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedApikeysManage>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    validate_name(&body.name)?;
    let ttl = lifetime(&state, body.expires_in.as_deref())?;
    let tenant = auth.act_in(body.tenant_id).await?;
    check_grantable(&state, auth.principal.caps, body.capabilities, tenant)?;
    let agent = key_agent(&mut auth, tenant, body.agent).await?;
    let now = state.clock.now();
    let (key, record) = create_api_key(
        &mut auth.tx,
        &state.pepper,
        NewApiKey {
            tenant,
            name: body.name,
            capabilities: body.capabilities,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            created_by: auth.principal.subject.clone(),
            rotated_from: None,
            agent,
        },
    )
    .await?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::ApiKeyCreate,
        format!("apikey:{}", record.id),
        Outcome::Success,
        json!({
            "name": record.name,
            "capabilities": record.capabilities,
            "expires_at": record.expires_at,
            "agent": record.agent_id,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(created(&key, &record, now))
}

/// List the tenant's API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/apikeys", tag = "apikeys", params(TenantQuery),
    security(("bearer" = ["apikeys:manage"])),
    responses(
        (status = 200, description = "The tenant's keys", body = ApiKeyList),
        (status = 404, description = "No such tenant, or not yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedApikeysManage>,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let tenant = auth.act_in(q.tenant_id).await?;
    let now = state.clock.now();
    let keys = auth.tx.list_api_keys(tenant).await?;
    Ok(Json(ApiKeyList {
        api_keys: keys.iter().map(|k| ApiKeyView::new(k, now)).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the old key keeps working, such as `1h` (default `api_key_rotation_overlap`;
    /// never later than it would have expired anyway; `0s` ends it now).
    #[schema(
        max_length = 32,
        pattern = r"^([0-9]{1,9}(ms|s|m|h|d)){1,3}$",
        example = "1h"
    )]
    pub overlap: Option<String>,
    /// Lifetime of the new key (default `api_key_default_ttl`, capped at `api_key_max_ttl`).
    #[schema(
        max_length = 32,
        pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$",
        example = "90d"
    )]
    pub expires_in: Option<String>,
}

/// Rotate an API key: a successor with the same name and capabilities is issued (shown once),
/// and the old key keeps working for the overlap only.
#[utoipa::path(post, path = "/v1/apikeys/{id}/rotate", tag = "apikeys",
    params(ApiKeyPath, TenantQuery),
    request_body(content = Option<RotateApiKey>, description = "Optional"),
    security(("bearer" = ["apikeys:manage"])),
    responses(
        (status = 201, description = "The successor; `key` is shown once", body = ApiKeyCreated),
        (status = 400, description = "Not an API key id", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing `apikeys:manage`, or the key holds capabilities you do not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Revoked, expired or already rotated", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedApikeysManage>,
    ApiPath(id): ApiPath<ApiKeyId>,
    ApiQuery(q): ApiQuery<TenantQuery>,
    OptionalJson(body): OptionalJson<RotateApiKey>,
) -> Result<Response, ApiError> {
    let overlap = match body.overlap.as_deref() {
        None => state.config.api_key_rotation_overlap,
        Some(s) => duration_field("overlap", s)?,
    };
    let ttl = lifetime(&state, body.expires_in.as_deref())?;
    let tenant = auth.act_in(q.tenant_id).await?;
    let now = state.clock.now();
    let old = auth
        .tx
        .get_api_key(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("api key"))?;
    if old.revoked_at.is_some() {
        return Err(ApiError::conflict("the API key is revoked"));
    }
    if now >= old.expires_at {
        return Err(ApiError::conflict("the API key has expired"));
    }
    if let Some(next) = &old.rotated_to {
        return Err(ApiError::conflict(format!(
            "the API key was already rotated to `{next}`"
        )));
    }
    check_grantable(&state, auth.principal.caps, old.capabilities, tenant)?;
    let (key, record) = create_api_key(
        &mut auth.tx,
        &state.pepper,
        NewApiKey {
            tenant,
            name: old.name.clone(),
            capabilities: old.capabilities,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            created_by: auth.principal.subject.clone(),
            rotated_from: Some(old.id.clone()),
            agent: old.agent_id,
        },
    )
    .await?;
    let old_until = now.saturating_add(overlap);
    if !auth
        .tx
        .record_api_key_rotation(tenant, &old.id, &record.id, old_until)
        .await?
    {
        return Err(ApiError::conflict("the API key was rotated concurrently"));
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::ApiKeyRotate,
        format!("apikey:{}", old.id),
        Outcome::Success,
        json!({
            "successor": record.id,
            "old_key_expires_at": old_until.min(old.expires_at),
            "successor_expires_at": record.expires_at,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(created(&key, &record, now))
}

/// Revoke an API key, and with it every token it was exchanged for.
#[utoipa::path(delete, path = "/v1/apikeys/{id}", tag = "apikeys",
    params(ApiKeyPath, TenantQuery),
    security(("bearer" = ["apikeys:manage"])),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 400, description = "Not an API key id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedApikeysManage>,
    ApiPath(id): ApiPath<ApiKeyId>,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.act_in(q.tenant_id).await?;
    let now = state.clock.now();
    if auth.tx.get_api_key(tenant, &id).await?.is_none() {
        return Err(ApiError::not_found("api key"));
    }
    if auth.tx.revoke_api_key(tenant, &id, now).await? {
        let families = auth
            .tx
            .revoke_families_of_key(tenant, &id, now, "api key revoked")
            .await?;
        let event = auth.ctx.event(
            tenant,
            &auth.principal.subject,
            AuditAction::ApiKeyRevoke,
            format!("apikey:{id}"),
            Outcome::Success,
            json!({ "token_families_revoked": families }),
            now,
        );
        audit(&state, &mut auth.tx, event).await?;
    }
    auth.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
