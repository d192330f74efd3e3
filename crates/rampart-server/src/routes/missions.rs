//! `/v1/missions`: units of agent work with pinned instructions and budgets, and the tokens
//! minted for them; `/v1/revocations`: revoking a principal and everything issued under it.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_identity::Actor;
use rampart_store::{MissionRecord, MissionStatus};
use rampart_types::{
    AgentId, AuditAction, CascadeId, MissionId, Outcome, Problem, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::credentials::{Mint, audit, mint_access, requested_scope};
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    AnyCapability, ApiJson, ApiPath, ApiQuery, Authed, NeedMissionsManage, NeedSentinelReveal,
    OptionalJson, Read, Write, check_reason, lifetime_field,
};
use crate::gateway::directives::Directive;
use crate::missions::{Cascade, Revocable, cascade, open_instructions, seal_instructions};
use crate::routes::secrets::de_opt_integer;
use crate::state::AppState;

/// Longest goal, in characters.
const MAX_GOAL: usize = 1024;
/// Longest pinned instructions, in characters.
pub const MAX_INSTRUCTIONS: usize = 64 * 1024;
/// A mission's duration when the request names none.
const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
/// The longest a mission may run.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The largest budget figure.
const MAX_BUDGET: i64 = 1_000_000_000_000_000;

/// A mission's budgets: the gateway refuses calls beyond them. JSON numbers with no fraction
/// (`5` or `5.0`).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Most LLM and tool calls.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "de_opt_integer")]
    pub calls: Option<i64>,
    /// Most model tokens, prompt and completion together.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "de_opt_integer")]
    pub tokens: Option<i64>,
    /// Most spend, in millionths of a US dollar.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "de_opt_integer")]
    pub spend_usd_micros: Option<i64>,
}

/// A mission to open.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenMission {
    /// The agent that carries it out; an agent's own token can only name itself.
    #[schema(value_type = String, format = Uuid)]
    pub agent: AgentId,
    /// What it is for, for people reading the trail: 1 to 1024 characters.
    #[schema(min_length = 1, max_length = 1024, pattern = r"\S")]
    pub goal: String,
    /// The system instructions every call of the mission must carry unchanged. Sealed; only
    /// their SHA-256 is shown and audited.
    #[schema(min_length = 1, max_length = 65536, pattern = r"\S")]
    pub instructions: String,
    #[serde(default)]
    pub budgets: Budgets,
    /// Gateway directives of this mission alone, checked on each of its calls after the
    /// tenant's (see `GatewayConfig.directives`).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub directives: Vec<Directive>,
    /// How long it may run, such as `2h` (default `1h`, at most `30d`). No token of the mission
    /// outlives it.
    #[schema(max_length = 32, pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$")]
    pub duration: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MissionView {
    #[schema(value_type = String, format = Uuid)]
    pub id: MissionId,
    #[schema(value_type = String, format = Uuid)]
    pub agent: AgentId,
    pub goal: String,
    /// SHA-256 of the pinned instructions, lowercase hex.
    pub instructions_sha256: String,
    #[schema(value_type = Object)]
    pub budgets: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub directives: serde_json::Value,
    /// `active`, `ended` or `aborted`.
    pub status: String,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// The revocation that ended it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub cascade_id: Option<CascadeId>,
}

impl From<MissionRecord> for MissionView {
    fn from(m: MissionRecord) -> Self {
        Self {
            id: m.id,
            agent: m.agent_id,
            goal: m.goal,
            instructions_sha256: rampart_types::lower_hex(&m.instructions_sha256),
            budgets: m.budgets,
            directives: m.directives,
            status: m.status.as_str().to_owned(),
            created_by: m.created_by,
            created_at: m.created_at,
            deadline: m.deadline,
            ended_at: m.ended_at,
            ended_by: m.ended_by,
            end_reason: m.end_reason,
            cascade_id: m.cascade_id,
        }
    }
}

fn mission_not_found() -> ApiError {
    ApiError::not_found("mission")
}

/// An agent's token reaches only its own missions; others reach the tenant's.
fn check_agent(auth_agent: Option<AgentId>, agent: AgentId) -> Result<(), ApiError> {
    match auth_agent {
        Some(own) if own != agent => Err(ApiError::forbidden(
            "an agent can only act on its own missions",
        )),
        _ => Ok(()),
    }
}

/// Loads a mission of the caller's tenant that the caller may see (404 otherwise, even for an
/// agent asking about another agent's: existence is not disclosed).
async fn load<A: crate::extract::Access, N: crate::extract::Need>(
    auth: &mut Authed<A, N>,
    id: MissionId,
) -> Result<MissionRecord, ApiError> {
    let m = auth
        .tx
        .mission(auth.principal.tenant, id)
        .await?
        .ok_or_else(mission_not_found)?;
    if auth.principal.agent.is_some_and(|a| a != m.agent_id) {
        return Err(mission_not_found());
    }
    Ok(m)
}

/// Open a mission for an agent: its goal, its pinned instructions (sealed under the tenant's
/// KEK; their SHA-256 goes to the audit trail), its budgets and how long it may run.
#[utoipa::path(post, path = "/v1/missions", tag = "missions", request_body = OpenMission,
    security(("bearer" = ["missions:manage"])),
    responses(
        (status = 201, description = "Opened", body = MissionView),
        (status = 403, description = "An agent opening a mission for another agent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agent is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn open(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedMissionsManage>,
    ApiJson(body): ApiJson<OpenMission>,
) -> Result<Response, ApiError> {
    if body.goal.chars().count() > MAX_GOAL
        || body.goal.chars().all(crate::extract::is_schema_space)
    {
        return Err(ApiError::validation(
            "`goal` is 1 to 1024 characters, not all whitespace",
        ));
    }
    if body.instructions.chars().count() > MAX_INSTRUCTIONS
        || body
            .instructions
            .chars()
            .all(crate::extract::is_schema_space)
    {
        return Err(ApiError::validation(
            "`instructions` is 1 to 65536 characters, not all whitespace",
        ));
    }
    for (field, v) in [
        ("calls", body.budgets.calls),
        ("tokens", body.budgets.tokens),
        ("spend_usd_micros", body.budgets.spend_usd_micros),
    ] {
        if v.is_some_and(|v| !(1..=MAX_BUDGET).contains(&v)) {
            return Err(ApiError::validation(format!(
                "`budgets.{field}` is 1 to {MAX_BUDGET}"
            )));
        }
    }
    crate::gateway::directives::check_all(&body.directives)?;
    let duration = match body.duration.as_deref() {
        Some(s) => lifetime_field("duration", s)?.min(MAX_DURATION),
        None => DEFAULT_DURATION,
    };
    check_agent(auth.principal.agent, body.agent)?;
    let tenant = auth.principal.tenant;
    let agent = auth
        .tx
        .agent(tenant, body.agent)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    if agent.disabled_at.is_some() {
        return Err(ApiError::conflict("the agent is disabled"));
    }
    let now = state.clock.now();
    let id = MissionId::random();
    let sealed =
        seal_instructions(&state, &mut auth.tx, tenant, id, &body.instructions, now).await?;
    let mission = MissionRecord {
        tenant_id: tenant,
        id,
        agent_id: agent.id,
        goal: body.goal,
        instructions_sealed: sealed,
        instructions_sha256: rampart_crypto::sha256(body.instructions.as_bytes()),
        budgets: serde_json::to_value(&body.budgets).map_err(ApiError::internal)?,
        directives: serde_json::to_value(&body.directives).map_err(ApiError::internal)?,
        status: MissionStatus::Active,
        created_by: auth.principal.subject.clone(),
        created_at: now,
        deadline: now.saturating_add(duration),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        cascade_id: None,
    };
    auth.tx.insert_mission(&mission).await?;
    let view = MissionView::from(mission);
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::MissionOpen,
        format!("mission:{id}"),
        Outcome::Success,
        json!({
            "agent": view.agent,
            "goal": view.goal,
            "instructions_sha256": view.instructions_sha256,
            "budgets": view.budgets,
            "directives": view.directives,
            "deadline": view.deadline,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MissionQuery {
    /// Only this agent's missions.
    #[param(value_type = Option<String>, format = Uuid)]
    pub agent: Option<AgentId>,
    /// `active`, `ended` or `aborted`.
    #[param(pattern = "^(active|ended|aborted)$")]
    pub status: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MissionList {
    pub missions: Vec<MissionView>,
}

/// The tenant's missions, newest first (an agent's token sees only its own).
#[utoipa::path(get, path = "/v1/missions", tag = "missions", params(MissionQuery),
    security(("bearer" = ["missions:manage"])),
    responses((status = 200, description = "Missions", body = MissionList)))]
pub async fn list(
    mut auth: Authed<Read, NeedMissionsManage>,
    ApiQuery(q): ApiQuery<MissionQuery>,
) -> Result<Json<MissionList>, ApiError> {
    let limit = crate::extract::page_limit(q.limit)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(MissionStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidQuery,
                "`status` is `active`, `ended` or `aborted`",
            )
        })?),
    };
    let agent = match (auth.principal.agent, q.agent) {
        (Some(own), Some(asked)) if own != asked => {
            return Ok(Json(MissionList {
                missions: Vec::new(),
            }));
        }
        (own, asked) => own.or(asked),
    };
    let missions = auth
        .tx
        .missions(auth.principal.tenant, agent, status, limit)
        .await?;
    Ok(Json(MissionList {
        missions: missions.into_iter().map(MissionView::from).collect(),
    }))
}

/// One mission.
#[utoipa::path(get, path = "/v1/missions/{id}", tag = "missions",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["missions:manage"])),
    responses(
        (status = 200, description = "The mission", body = MissionView),
        (status = 404, description = "No such mission", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    mut auth: Authed<Read, NeedMissionsManage>,
    ApiPath(id): ApiPath<MissionId>,
) -> Result<Json<MissionView>, ApiError> {
    Ok(Json(load(&mut auth, id).await?.into()))
}

/// A request for a mission token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionTokenRequest {
    /// Space-separated capabilities to narrow the token to (default: all the caller's token
    /// holds). A delegated token never holds more than its delegator's.
    #[schema(
        pattern = "^(tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin)( (tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin))*$"
    )]
    pub scope: Option<String>,
}

/// A mission token (no refresh token: ask again, while the mission is active).
#[derive(Debug, Serialize, ToSchema)]
pub struct MissionToken {
    /// An EdDSA-signed JWT (`typ: at+jwt`) whose `sub` is the agent, with `mission`, `act`
    /// (who delegated it, RFC 8693) and `epoch` claims.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires: the token lifetime, cut to the mission's deadline.
    pub expires_in: u64,
    /// Space-separated capabilities it carries.
    pub scope: String,
    #[schema(value_type = String, format = Uuid)]
    pub mission: MissionId,
}

/// Mint a token for a mission's agent. The caller is either the agent itself (its token
/// narrows to the mission) or holds `missions:manage` and delegates: the token names the
/// caller in its `act` claim and carries no capability the caller's token lacks. It belongs to
/// the caller's token family, so revoking the delegator revokes it.
#[utoipa::path(post, path = "/v1/missions/{id}/token", tag = "missions",
    params(("id" = String, Path, format = Uuid)),
    request_body = MissionTokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Minted", body = MissionToken),
        (status = 400, description = "A scope the caller's token does not hold, or a delegation chain deeper than three", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the mission's agent nor a holder of `missions:manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such mission", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The mission is not active, or its agent is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn token(
    State(state): State<AppState>,
    mut auth: Authed<Write, AnyCapability>,
    ApiPath(id): ApiPath<MissionId>,
    OptionalJson(body): OptionalJson<MissionTokenRequest>,
) -> Result<Response, ApiError> {
    let p = &auth.principal;
    let is_manager = p.caps.contains(rampart_types::Capability::MissionsManage);
    if p.agent.is_none() && !is_manager {
        return Err(ApiError::forbidden(
            "minting a mission token needs the `missions:manage` capability",
        ));
    }
    if p.mission.is_some_and(|m| m != id) {
        return Err(ApiError::forbidden(
            "a mission token can only mint tokens for its own mission",
        ));
    }
    let m = load(&mut auth, id).await?;
    let now = state.clock.now();
    if m.status != MissionStatus::Active || now >= m.deadline {
        return Err(ApiError::conflict(format!(
            "the mission is {}",
            if m.status == MissionStatus::Active {
                "past its deadline"
            } else {
                m.status.as_str()
            }
        )));
    }
    let tenant = auth.principal.tenant;
    let agent = auth
        .tx
        .agent(tenant, m.agent_id)
        .await?
        .ok_or_else(|| ApiError::internal("a mission's agent is missing"))?;
    if agent.disabled_at.is_some() {
        return Err(ApiError::conflict("the mission's agent is disabled"));
    }
    let caps = requested_scope(body.scope.as_deref(), auth.principal.caps)?;
    let subject = crate::agents::agent_subject(m.agent_id);
    let act = if auth.principal.subject == subject {
        auth.principal.act.clone()
    } else {
        Some(
            Actor::delegated_by(&auth.principal.subject, auth.principal.act.as_ref()).ok_or_else(
                || ApiError::validation("the delegation chain would be longer than three actors"),
            )?,
        )
    };
    let epoch = auth.tx.revocation_epoch(tenant).await?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::MissionToken,
        format!("mission:{id}"),
        Outcome::Success,
        json!({ "agent": m.agent_id, "scope": caps, "act": act, "epoch": epoch }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    let (access_token, expires_in) = mint_access(
        &state,
        Mint {
            tenant,
            subject: &subject,
            caps,
            family: auth.principal.family,
            // A delegate never outlives the mission nor the token that asked for it.
            not_after: m.deadline.min(auth.principal.expires_at),
            mission: Some(id),
            act,
            epoch,
        },
        now,
    )?;
    auth.tx.commit().await?;
    Ok(no_store(
        Json(MissionToken {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: caps.to_scope_string(),
            mission: id,
        })
        .into_response(),
    ))
}

/// Why a mission ends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndMission {
    /// For the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// What a cascading revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CascadeView {
    /// Shared by every audit record of this revocation.
    #[schema(value_type = String, format = Uuid)]
    pub cascade_id: CascadeId,
    /// The tenant's revocation epoch it took: tokens of the principal minted before it are dead.
    pub epoch: u64,
    pub principal: String,
    pub api_keys_revoked: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub missions_ended: Vec<MissionId>,
    pub leases_revoked: usize,
}

impl From<Cascade> for CascadeView {
    fn from(c: Cascade) -> Self {
        Self {
            cascade_id: c.id,
            epoch: c.epoch,
            principal: c.principal,
            api_keys_revoked: c.api_keys_revoked.iter().map(ToString::to_string).collect(),
            missions_ended: c.missions_ended,
            leases_revoked: c.leases_revoked,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MissionEnded {
    pub mission: MissionView,
    pub cascade: CascadeView,
}

async fn finish(
    state: AppState,
    mut auth: Authed<Write, NeedMissionsManage>,
    id: MissionId,
    body: EndMission,
    status: MissionStatus,
) -> Result<Json<MissionEnded>, ApiError> {
    check_reason(&body.reason)?;
    let m = load(&mut auth, id).await?;
    if m.status != MissionStatus::Active {
        return Err(ApiError::conflict(format!(
            "the mission is already {}",
            m.status.as_str()
        )));
    }
    let tenant = auth.principal.tenant;
    let scope = auth.principal.scope();
    let done = cascade(
        &state,
        auth,
        tenant,
        &Revocable::Mission(id),
        status,
        &body.reason,
    )
    .await?;
    let mut tx = state.store.begin_read(scope).await?;
    let m = tx
        .mission(tenant, id)
        .await?
        .ok_or_else(mission_not_found)?;
    Ok(Json(MissionEnded {
        mission: m.into(),
        cascade: done.into(),
    }))
}

/// End a mission that is done: every token minted for it stops working at once and its leases
/// are revoked, under one cascade id.
#[utoipa::path(post, path = "/v1/missions/{id}/end", tag = "missions",
    params(("id" = String, Path, format = Uuid)),
    request_body = EndMission,
    security(("bearer" = ["missions:manage"])),
    responses(
        (status = 200, description = "Ended", body = MissionEnded),
        (status = 404, description = "No such mission", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already ended or aborted", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(
    State(state): State<AppState>,
    auth: Authed<Write, NeedMissionsManage>,
    ApiPath(id): ApiPath<MissionId>,
    ApiJson(body): ApiJson<EndMission>,
) -> Result<Json<MissionEnded>, ApiError> {
    finish(state, auth, id, body, MissionStatus::Ended).await
}

/// Abort a mission that misbehaves: like ending it, recorded as aborted.
#[utoipa::path(post, path = "/v1/missions/{id}/abort", tag = "missions",
    params(("id" = String, Path, format = Uuid)),
    request_body = EndMission,
    security(("bearer" = ["missions:manage"])),
    responses(
        (status = 200, description = "Aborted", body = MissionEnded),
        (status = 404, description = "No such mission", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already ended or aborted", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn abort(
    State(state): State<AppState>,
    auth: Authed<Write, NeedMissionsManage>,
    ApiPath(id): ApiPath<MissionId>,
    ApiJson(body): ApiJson<EndMission>,
) -> Result<Json<MissionEnded>, ApiError> {
    finish(state, auth, id, body, MissionStatus::Aborted).await
}

#[derive(Serialize, ToSchema)]
pub struct MissionInstructions {
    pub instructions: String,
    /// SHA-256 of the instructions, lowercase hex; checked against the recorded hash.
    pub instructions_sha256: String,
}

/// Reveal a mission's pinned instructions exactly as they were opened (checked against the
/// hash in the audit trail). Every reveal is audited.
#[utoipa::path(post, path = "/v1/missions/{id}/instructions/reveal", tag = "missions",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["sentinel:reveal"])),
    responses(
        (status = 200, description = "The instructions", body = MissionInstructions),
        (status = 404, description = "No such mission", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reveal_instructions(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelReveal>,
    ApiPath(id): ApiPath<MissionId>,
) -> Result<Response, ApiError> {
    let m = load(&mut auth, id).await?;
    let instructions = open_instructions(&state, &mut auth.tx, &m).await?;
    let event = auth.ctx.event(
        m.tenant_id,
        &auth.principal.subject,
        AuditAction::MissionReveal,
        format!("mission:{id}"),
        Outcome::Success,
        json!({ "instructions_sha256": rampart_types::lower_hex(&m.instructions_sha256) }),
        state.clock.now(),
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(no_store(
        Json(MissionInstructions {
            instructions: instructions.as_str().to_owned(),
            instructions_sha256: rampart_types::lower_hex(&m.instructions_sha256),
        })
        .into_response(),
    ))
}

/// A principal to revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokePrincipal {
    /// `tenant`, `agent:<id>`, `mission:<id>`, `apikey:<id>` or `user:<name>`.
    #[schema(
        max_length = 200,
        pattern = r"^(tenant|agent:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mission:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|apikey:[0-9a-z]{12}|user:[!-~]{1,128})$"
    )]
    pub principal: String,
    /// For the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
    /// The tenant to act in (the platform operator only; default: the caller's own). Revoking
    /// `tenant` is the platform operator's alone.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub tenant: Option<TenantId>,
}

/// Revoke a principal and everything issued under it, at once: every token whose lineage names
/// it (its subject, mission or delegation chain) stops working; API keys it holds are revoked;
/// missions it runs are aborted; its leases are revoked. One cascade id ties the audit records
/// together.
#[utoipa::path(post, path = "/v1/revocations", tag = "missions", request_body = RevokePrincipal,
    security(("bearer" = ["missions:manage"])),
    responses(
        (status = 200, description = "Revoked", body = CascadeView),
        (status = 403, description = "Revoking a whole tenant without being the platform operator, or revoking the operator's own tenant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, agent or mission", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedMissionsManage>,
    ApiJson(body): ApiJson<RevokePrincipal>,
) -> Result<Json<CascadeView>, ApiError> {
    check_reason(&body.reason)?;
    let target = Revocable::parse(&body.principal)?;
    if target == Revocable::Tenant && !auth.principal.platform {
        return Err(ApiError::forbidden(
            "only the platform operator revokes a whole tenant",
        ));
    }
    let tenant = auth.act_in(body.tenant).await?;
    if target == Revocable::Tenant && tenant == state.system_tenant {
        return Err(ApiError::forbidden(
            "the platform operator's own tenant cannot be revoked",
        ));
    }
    match &target {
        Revocable::Agent(a) if auth.tx.agent(tenant, *a).await?.is_none() => {
            return Err(ApiError::not_found("agent"));
        }
        Revocable::Mission(m) if auth.tx.mission(tenant, *m).await?.is_none() => {
            return Err(ApiError::not_found("mission"));
        }
        _ => {}
    }
    let done = cascade(
        &state,
        auth,
        tenant,
        &target,
        MissionStatus::Aborted,
        &body.reason,
    )
    .await?;
    Ok(Json(done.into()))
}
