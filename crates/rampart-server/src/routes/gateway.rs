//! The LLM boundary over HTTP: OpenAI Chat Completions and Anthropic Messages, as their
//! official SDKs call them (`base_url` pointed at Rampart, the agent's Rampart token as the API
//! key), and the tenant's versioned gateway configuration. See [`crate::gateway`] and
//! docs/gateway.md.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use rampart_store::{DocumentKind, DocumentVersionRecord};
use rampart_types::{AuditAction, Outcome, Problem, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::credentials::audit;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiQuery, Authed, NeedGatewayAdmin, NeedGatewayCall, NeedSentinelReveal, Read, Write,
};
use crate::gateway::config::stored_config;
use crate::gateway::{GatewayConfig, Provider, handle};
use crate::routes::sentinel::PolicyQuery;
use crate::state::AppState;

/// The part of a chat request the gateway relies on; every other field of the provider's API
/// is passed on as sent.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    #[schema(min_length = 1, max_length = 256)]
    pub model: String,
    /// The conversation. Every string in it is redacted before it leaves.
    #[schema(max_items = 1000)]
    pub messages: Vec<serde_json::Map<String, Value>>,
    /// Stream the answer as server-sent events.
    pub stream: Option<bool>,
}

/// OpenAI Chat Completions through the gateway: every message (system, user, assistant, tool
/// results, tool-call arguments) is redacted under the tenant's Sentinel policy (`prompt`,
/// `tool_output`), the mission's pinned instructions are enforced, and the call is forwarded
/// to the tenant's `openai` upstream with the API key from its secrets. The answer is redacted
/// under the `response` policy, with the caller's own reversible values restored where that
/// policy allows; streams are handled split-safe. One `llm.call` audit record per call.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway",
    request_body = ChatRequest,
    security(("bearer" = ["gateway:call"])),
    responses(
        (status = 200, description = "The upstream's answer, redacted (JSON, or `text/event-stream` when streamed)", body = Object),
        (status = 409, description = "No upstream configured, the mission is not active, its instructions drifted, or a call with the same `Idempotency-Key` was recorded while this one was checked", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The upstream could not be reached or answered with something that cannot be checked", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The Sentinel or the audit trail could not run: nothing was forwarded", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Authed<Read, NeedGatewayCall>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    handle(state, auth, Provider::OpenAi, headers, body).await
}

/// Anthropic Messages through the gateway, handled as `POST /v1/chat/completions` is (the
/// `system` text and every content block, tool results on the `tool_output` channel). The
/// Anthropic SDK's `x-api-key` header is accepted in place of `Authorization: Bearer`.
#[utoipa::path(post, path = "/v1/messages", tag = "gateway",
    request_body = ChatRequest,
    security(("bearer" = ["gateway:call"])),
    responses(
        (status = 200, description = "The upstream's answer, redacted (JSON, or `text/event-stream` when streamed)", body = Object),
        (status = 409, description = "No upstream configured, the mission is not active, its instructions drifted, or a call with the same `Idempotency-Key` was recorded while this one was checked", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The upstream could not be reached or answered with something that cannot be checked", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The Sentinel or the audit trail could not run: nothing was forwarded", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Authed<Read, NeedGatewayCall>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    handle(state, auth, Provider::Anthropic, headers, body).await
}

/// A call's original request, as its client sent it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevealedRequest {
    pub request_id: String,
    /// SHA-256 of the sealed request (hex), as in the call's `llm.call` audit record.
    pub sha256: String,
    #[schema(value_type = Object)]
    pub request: Value,
}

/// The original request of a gateway call, exactly as its client sent it (before redaction,
/// re-injection or replay), opened from its KEK seal and checked against the hash in the call's
/// audit record. Audited (`llm.reveal`).
#[utoipa::path(post, path = "/v1/gateway/requests/{id}/reveal", tag = "gateway",
    params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "The call's request id (its `x-request-id`)")),
    security(("bearer" = ["sentinel:reveal"])),
    responses(
        (status = 200, description = "The original request", body = RevealedRequest),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reveal_request(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelReveal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let tenant = auth.principal.tenant;
    let record = auth
        .tx
        .gateway_request(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("gateway call"))?;
    let request = crate::gateway::replay::open(&state, &mut auth.tx, &record).await?;
    let sha256 = rampart_types::lower_hex(&record.body_sha256);
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::LlmReveal,
        format!("llm_request:{id}"),
        Outcome::Success,
        json!({ "request_id": id, "sha256": sha256 }),
        state.clock.now(),
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(crate::edge::no_store(
        Json(RevealedRequest {
            request_id: record.request_id,
            sha256,
            request,
        })
        .into_response(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    /// 0: nothing stored yet (no upstream: every call is refused).
    pub version: i64,
    pub config: GatewayConfig,
    pub created_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutConfig {
    pub config: GatewayConfig,
    /// Refuse (409) unless this is the version in force (0: none stored yet).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::routes::secrets::de_opt_integer")]
    pub expected_version: Option<i64>,
}

/// The tenant's gateway configuration in force, or an earlier version.
#[utoipa::path(get, path = "/v1/gateway/config", tag = "gateway",
    params(PolicyQuery),
    security(("bearer" = ["gateway:admin"])),
    responses(
        (status = 200, description = "The configuration", body = ConfigView),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_config(
    mut auth: Authed<Read, NeedGatewayAdmin>,
    ApiQuery(q): ApiQuery<PolicyQuery>,
) -> Result<Json<ConfigView>, ApiError> {
    let c = stored_config(&mut auth.tx, auth.principal.tenant, q.version)
        .await?
        .ok_or_else(|| ApiError::not_found("configuration version"))?;
    Ok(Json(ConfigView {
        version: c.version,
        config: c.config,
        created_by: c.created_by,
        created_at: c.created_at,
    }))
}

/// Stores a new version of the tenant's gateway configuration, in force from the next call.
#[utoipa::path(put, path = "/v1/gateway/config", tag = "gateway",
    request_body = PutConfig,
    security(("bearer" = ["gateway:admin"])),
    responses(
        (status = 200, description = "The new version", body = ConfigView),
        (status = 409, description = "`expected_version` is not the version in force", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL or secret path is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_config(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedGatewayAdmin>,
    ApiJson(body): ApiJson<PutConfig>,
) -> Result<Json<ConfigView>, ApiError> {
    body.config.check()?;
    let tenant = auth.principal.tenant;
    let current = stored_config(&mut auth.tx, tenant, None)
        .await?
        .map_or(0, |c| c.version);
    if body.expected_version.is_some_and(|v| v != current) {
        return Err(ApiError::conflict(format!(
            "the configuration in force is version {current}"
        )));
    }
    let now = state.clock.now();
    let record = DocumentVersionRecord {
        tenant_id: tenant,
        version: current + 1,
        document: serde_json::to_value(&body.config).map_err(ApiError::internal)?,
        created_by: auth.principal.subject.clone(),
        created_at: now,
    };
    if !auth
        .tx
        .insert_document_version(DocumentKind::GatewayConfig, &record)
        .await?
    {
        return Err(ApiError::conflict(
            "another change to the configuration was stored first; read it and try again",
        ));
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::GatewayConfigChange,
        format!("gateway_config:{}", record.version),
        Outcome::Success,
        json!({ "version": record.version, "config": record.document }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(ConfigView {
        version: record.version,
        config: body.config,
        created_by: Some(record.created_by),
        created_at: Some(now),
    }))
}
