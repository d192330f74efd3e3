//! `/v1/agents`: agent profiles and their allowlists; `/v1/engines/postgres`: dynamic Postgres
//! engines. Both need `agents:manage`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_secrets::postgres::is_role_name;
use rampart_secrets::{Allowlist, SecretPath};
use rampart_store::{AgentRecord, PostgresEngineRecord, StoreError};
use rampart_types::{AgentId, AuditAction, Outcome, Problem, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::credentials::audit;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiPath, Authed, NeedAgentsManage, Read, Write, check_reason, duration_field,
};
use crate::state::AppState;

/// Longest engine name.
pub(crate) const MAX_ENGINE_NAME: usize = 64;

/// Whether `name` is 1 to `max` ASCII letters, digits, `.`, `_` or `-`: agent and engine names.
pub(crate) fn is_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), ApiError> {
    if is_name(name, max) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "`{what}` is 1 to {max} ASCII letters, digits, `.`, `_` or `-`"
        )))
    }
}

fn check_allowlist(field: &str, patterns: &[String]) -> Result<(), ApiError> {
    Allowlist::parse(patterns)
        .map(drop)
        .map_err(|(i, e)| ApiError::validation(format!("`{field}[{i}]`: {e}")))
}

/// The JSON Schema pattern of one allowlist item: exactly what
/// `rampart_secrets::PathPattern` accepts — a secret path (or engine name) whose segments may
/// hold single `*`s, with `**` only as the whole last segment (checked against the parser
/// exhaustively over short strings when it was written).
const ALLOW_PATTERN: &str = r"^(?:(?:\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*|[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\*[A-Za-z0-9._-]+)*\*?|\.[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\*[A-Za-z0-9._-]+)*\*?|\.\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+(?:\*[A-Za-z0-9._-]+)*\*?|\.\.\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*)/)*(?:(?:\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*|[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\*[A-Za-z0-9._-]+)*\*?|\.[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\*[A-Za-z0-9._-]+)*\*?|\.\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+(?:\*[A-Za-z0-9._-]+)*\*?|\.\.\*(?:[A-Za-z0-9._-]+\*)*[A-Za-z0-9._-]*)|\*\*)$";

/// One allowlist pattern, as documented.
pub struct AllowPattern;

impl utoipa::PartialSchema for AllowPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(rampart_secrets::MAX_PATTERN_LEN))
            .pattern(Some(ALLOW_PATTERN))
            .description(Some(
                "A secret path or engine name pattern: `*` inside a segment, `**` as the last segment",
            ))
            .into()
    }
}

impl ToSchema for AllowPattern {}

/// A new agent profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// Unique in the tenant: 1 to 128 ASCII letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub name: String,
    /// Secret path patterns the agent may touch (`*` inside a segment, `**` as the last
    /// segment); empty allows nothing.
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<AllowPattern>)]
    pub secret_allowlist: Vec<String>,
    /// Dynamic engine name patterns the agent may lease from; empty allows nothing.
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<AllowPattern>)]
    pub engine_allowlist: Vec<String>,
}

/// An agent's allowlists, replaced whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    #[schema(max_items = 64, value_type = Vec<AllowPattern>)]
    pub secret_allowlist: Vec<String>,
    #[schema(max_items = 64, value_type = Vec<AllowPattern>)]
    pub engine_allowlist: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableAgent {
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    #[schema(value_type = String, format = Uuid)]
    pub id: AgentId,
    pub name: String,
    pub secret_allowlist: Vec<String>,
    pub engine_allowlist: Vec<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<Timestamp>,
}

impl From<AgentRecord> for AgentView {
    fn from(a: AgentRecord) -> Self {
        Self {
            id: a.id,
            name: a.name,
            secret_allowlist: a.secret_allowlist,
            engine_allowlist: a.engine_allowlist,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
            disabled_at: a.disabled_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDisabled {
    #[serde(flatten)]
    pub agent: AgentView,
    /// Its leases revoked by the disabling.
    pub leases_revoked: usize,
    /// The revocation of the agent's tokens, API keys, missions and leases.
    #[schema(value_type = String, format = Uuid)]
    pub cascade_id: rampart_types::CascadeId,
}

fn agent_not_found() -> ApiError {
    ApiError::not_found("agent")
}

/// Stores a changed agent and audits it (with `extra` in the detail) in `auth.tx`.
async fn save_agent(
    state: &AppState,
    auth: &mut Authed<Write, NeedAgentsManage>,
    agent: &AgentRecord,
    extra: Option<(&str, &str)>,
) -> Result<(), ApiError> {
    auth.tx.update_agent(agent).await?;
    let mut detail = agent_event_detail(agent);
    if let Some((k, v)) = extra {
        detail[k] = json!(v);
    }
    let event = auth.ctx.event(
        agent.tenant_id,
        &auth.principal.subject,
        AuditAction::AgentChange,
        format!("agent:{}", agent.id),
        Outcome::Success,
        detail,
        agent.updated_at,
    );
    audit(state, &mut auth.tx, event).await
}

fn agent_event_detail(a: &AgentRecord) -> serde_json::Value {
    json!({
        "name": a.name,
        "secret_allowlist": a.secret_allowlist,
        "engine_allowlist": a.engine_allowlist,
        "disabled": a.disabled_at.is_some(),
    })
}

/// Create an agent profile. Its API keys (`POST /v1/apikeys` with `agent`) mint tokens that
/// speak for it.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = CreateAgent,
    security(("bearer" = ["agents:manage"])),
    responses(
        (status = 201, description = "Created", body = AgentView),
        (status = 409, description = "The tenant has an agent of that name", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_agent(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedAgentsManage>,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Result<Response, ApiError> {
    check_name("name", &body.name, 128)?;
    check_allowlist("secret_allowlist", &body.secret_allowlist)?;
    check_allowlist("engine_allowlist", &body.engine_allowlist)?;
    let now = state.clock.now();
    let tenant = auth.principal.tenant;
    let agent = AgentRecord {
        tenant_id: tenant,
        id: AgentId::random(),
        name: body.name,
        secret_allowlist: body.secret_allowlist,
        engine_allowlist: body.engine_allowlist,
        created_by: auth.principal.subject.clone(),
        created_at: now,
        updated_at: now,
        disabled_at: None,
    };
    match auth.tx.insert_agent(&agent).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "the tenant already has an agent named `{}`",
                agent.name
            )));
        }
        other => other?,
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::AgentChange,
        format!("agent:{}", agent.id),
        Outcome::Success,
        agent_event_detail(&agent),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok((StatusCode::CREATED, Json(AgentView::from(agent))).into_response())
}

/// The tenant's agents, by name.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    security(("bearer" = ["agents:manage"])),
    responses((status = 200, description = "Agents", body = AgentList)))]
pub async fn list_agents(
    mut auth: Authed<Read, NeedAgentsManage>,
) -> Result<Json<AgentList>, ApiError> {
    let agents = auth.tx.agents(auth.principal.tenant).await?;
    Ok(Json(AgentList {
        agents: agents.into_iter().map(AgentView::from).collect(),
    }))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["agents:manage"])),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_agent(
    mut auth: Authed<Read, NeedAgentsManage>,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = auth
        .tx
        .agent(auth.principal.tenant, id)
        .await?
        .ok_or_else(agent_not_found)?;
    Ok(Json(agent.into()))
}

/// Replace an agent's allowlists. Takes effect on the agent's next request.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, format = Uuid)),
    request_body = UpdateAgent,
    security(("bearer" = ["agents:manage"])),
    responses(
        (status = 200, description = "Updated", body = AgentView),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_agent(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedAgentsManage>,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(body): ApiJson<UpdateAgent>,
) -> Result<Json<AgentView>, ApiError> {
    check_allowlist("secret_allowlist", &body.secret_allowlist)?;
    check_allowlist("engine_allowlist", &body.engine_allowlist)?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let mut agent = auth
        .tx
        .agent(tenant, id)
        .await?
        .ok_or_else(agent_not_found)?;
    agent.secret_allowlist = body.secret_allowlist;
    agent.engine_allowlist = body.engine_allowlist;
    agent.updated_at = now;
    save_agent(&state, &mut auth, &agent, None).await?;
    auth.tx.commit().await?;
    Ok(Json(agent.into()))
}

/// Disable an agent: it is refused every secret and lease from now on; its tokens stop working,
/// its API keys and live leases are revoked and its active missions aborted, as one cascade.
#[utoipa::path(post, path = "/v1/agents/{id}/disable", tag = "agents",
    params(("id" = String, Path, format = Uuid)),
    request_body = DisableAgent,
    security(("bearer" = ["agents:manage"])),
    responses(
        (status = 200, description = "Disabled", body = AgentDisabled),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable_agent(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedAgentsManage>,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(body): ApiJson<DisableAgent>,
) -> Result<Json<AgentDisabled>, ApiError> {
    check_reason(&body.reason)?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let mut agent = auth
        .tx
        .agent(tenant, id)
        .await?
        .ok_or_else(agent_not_found)?;
    agent.disabled_at.get_or_insert(now);
    agent.updated_at = now;
    save_agent(&state, &mut auth, &agent, Some(("reason", &body.reason))).await?;
    // Its tokens, API keys, missions and leases go with it, as one cascade.
    let reason = format!("agent disabled: {}", body.reason);
    let done = crate::missions::cascade(
        &state,
        auth,
        tenant,
        &crate::missions::Revocable::Agent(id),
        rampart_store::MissionStatus::Aborted,
        &reason,
    )
    .await?;
    Ok(Json(AgentDisabled {
        agent: agent.into(),
        leases_revoked: done.leases_revoked,
        cascade_id: done.id,
    }))
}

/// A dynamic Postgres engine's configuration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEngine {
    /// The secret path whose newest version holds the admin connection URL
    /// (`postgres://user:password@host:port/database`): the URL stays sealed in the secrets
    /// store, and rotating it is writing a new version.
    #[schema(
        max_length = 512,
        pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$"
    )]
    pub connection_secret: String,
    /// The role each lease role becomes a member of (a plain SQL identifier).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    pub template_role: String,
    /// Lease lifetime when the request names none, such as `1h` (cut to `max_ttl`).
    #[schema(max_length = 32, pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$")]
    pub default_ttl: String,
    /// Longest a lease may live, renewals included (at most `365d`; longer is cut to it).
    #[schema(max_length = 32, pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$")]
    pub max_ttl: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EngineView {
    pub name: String,
    pub connection_secret: String,
    pub template_role: String,
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<PostgresEngineRecord> for EngineView {
    fn from(e: PostgresEngineRecord) -> Self {
        Self {
            name: e.name,
            connection_secret: e.connection_secret,
            template_role: e.template_role,
            default_ttl_seconds: e.default_ttl_seconds,
            max_ttl_seconds: e.max_ttl_seconds,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EngineList {
    pub engines: Vec<EngineView>,
}

/// Whole seconds of a lifetime, cut to 1 s – 365 d (as API key lifetimes are cut: a shorter
/// credential than asked for is always safe).
fn ttl_seconds(field: &str, s: &str) -> Result<i64, ApiError> {
    let d =
        duration_field(field, s)?.clamp(Duration::from_secs(1), Duration::from_secs(365 * 86_400));
    Ok(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Configure (or reconfigure) a dynamic Postgres engine. Agents lease from it with
/// `POST /v1/leases {"source": "postgres/<name>"}` when their `engine_allowlist` matches the
/// name. `default_ttl` is cut to `max_ttl`, both to 1 s – 365 d.
#[utoipa::path(put, path = "/v1/engines/postgres/{name}", tag = "agents",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = PutEngine,
    security(("bearer" = ["agents:manage"])),
    responses((status = 200, description = "Configured", body = EngineView)))]
pub async fn put_engine(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedAgentsManage>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutEngine>,
) -> Result<Json<EngineView>, ApiError> {
    check_name("name", &name, MAX_ENGINE_NAME)
        .map_err(|e| ApiError::new(ErrorKind::InvalidPathParameter, e.detail))?;
    body.connection_secret
        .parse::<SecretPath>()
        .map_err(|e| ApiError::validation(format!("`connection_secret`: {e}")))?;
    if !is_role_name(&body.template_role) {
        return Err(ApiError::validation(
            "`template_role` is a plain SQL identifier: a letter or `_`, then letters, digits or `_`, at most 63",
        ));
    }
    let max_ttl_seconds = ttl_seconds("max_ttl", &body.max_ttl)?;
    let default_ttl_seconds = ttl_seconds("default_ttl", &body.default_ttl)?.min(max_ttl_seconds);
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let created_at = auth
        .tx
        .postgres_engine(tenant, &name)
        .await?
        .map_or(now, |e| e.created_at);
    let engine = PostgresEngineRecord {
        tenant_id: tenant,
        name,
        connection_secret: body.connection_secret,
        template_role: body.template_role,
        default_ttl_seconds,
        max_ttl_seconds,
        created_at,
        updated_at: now,
    };
    auth.tx.upsert_postgres_engine(&engine).await?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::EngineChange,
        format!("engine:postgres/{}", engine.name),
        Outcome::Success,
        json!({
            "connection_secret": engine.connection_secret,
            "template_role": engine.template_role,
            "default_ttl_seconds": default_ttl_seconds,
            "max_ttl_seconds": max_ttl_seconds,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(engine.into()))
}

/// The tenant's dynamic Postgres engines.
#[utoipa::path(get, path = "/v1/engines/postgres", tag = "agents",
    security(("bearer" = ["agents:manage"])),
    responses((status = 200, description = "Engines", body = EngineList)))]
pub async fn list_engines(
    mut auth: Authed<Read, NeedAgentsManage>,
) -> Result<Json<EngineList>, ApiError> {
    let engines = auth.tx.postgres_engines(auth.principal.tenant).await?;
    Ok(Json(EngineList {
        engines: engines.into_iter().map(EngineView::from).collect(),
    }))
}

/// Remove an engine. Refused while any of its leases is live or still has a role to drop.
#[utoipa::path(delete, path = "/v1/engines/postgres/{name}", tag = "agents",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    security(("bearer" = ["agents:manage"])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such engine", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Leases of the engine are live or pending removal", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_engine(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedAgentsManage>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = auth.principal.tenant;
    let source = format!("postgres/{name}");
    if auth.tx.postgres_engine_in_use(tenant, &name).await? {
        return Err(ApiError::conflict(format!(
            "engine `{name}` has live leases or roles still to drop; revoke them first"
        )));
    }
    if !auth.tx.delete_postgres_engine(tenant, &name).await? {
        return Err(ApiError::not_found("engine"));
    }
    let now = state.clock.now();
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::EngineChange,
        format!("engine:{source}"),
        Outcome::Success,
        json!({ "deleted": true }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
