//! `/v1/leases`: just-in-time credentials for (agent, mission). See [`crate::leases`] for how
//! revocation and the sweeper work.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_secrets::SecretPath;
use rampart_secrets::postgres;
use rampart_store::{Cleanup, LeaseFilter, LeaseKind, LeaseRecord, Revocation, Scope, TenantScope};
use rampart_types::{AgentId, AuditAction, LeaseId, Outcome, Problem, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::agents::{Resource, deny, gate_as, refusal};
use crate::credentials::audit;
use crate::disclosed::Disclosed;
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, Authed, Need, NeedLeasesAdmin, NeedLeasesIssue, OptionalJson, Read,
    Write, check_reason, lifetime_field,
};
use crate::leases::{REVOKE_BATCH, clean_up, engine_error, engine_url, revoke_event, visible_to};
use crate::routes::agents::{MAX_ENGINE_NAME, is_name};
use crate::state::AppState;

const MAX_MISSION: usize = 128;

const MAX_PURPOSE: usize = 512;

/// A lease request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueLease {
    /// The agent the lease is for; an agent's own token can only name itself.
    #[schema(value_type = String, format = Uuid)]
    pub agent: AgentId,
    /// What to lease: `kv/<secret path>` (a stored secret's newest value) or
    /// `postgres/<engine>` (a new database role) — the same form as a lease's `source`.
    #[schema(
        max_length = 515,
        pattern = r"^(?:kv/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*|postgres/[A-Za-z0-9._-]{1,64})$"
    )]
    pub source: String,
    /// The unit of work the lease serves: 1 to 128 ASCII letters, digits, `.`, `_`, `-`, `:`,
    /// `/`. Revoking a mission revokes every lease issued under it.
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub mission: String,
    /// Why the credential is needed, for the audit trail: up to 512 characters, not all
    /// whitespace.
    #[schema(min_length = 1, max_length = 512, pattern = r"\S")]
    pub purpose: String,
    /// Lifetime such as `15m`; default and ceiling per source (`lease_default_ttl` /
    /// `lease_max_ttl` for stored secrets, the engine's for dynamic ones). Longer asks are cut
    /// to the ceiling.
    #[schema(max_length = 32, pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$")]
    pub ttl: Option<String>,
}

impl std::fmt::Debug for IssueLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueLease")
            .field("agent", &self.agent)
            .field("mission", &self.mission)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A lease as anyone may see it: never the credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    #[schema(value_type = String, format = Uuid)]
    pub id: LeaseId,
    #[schema(value_type = String, format = Uuid)]
    pub agent: AgentId,
    pub mission: String,
    pub purpose: String,
    /// `kv/<path>` or `postgres/<engine>`.
    pub source: String,
    /// `active`, `expired` (not yet swept) or `revoked`.
    pub state: &'static str,
    pub issued_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub max_expires_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    /// The external credential: `none`, `live`, `pending` (to be removed; retried) or `done`.
    pub cleanup: &'static str,
    pub cleanup_attempts: i64,
    pub cleanup_error: Option<String>,
}

impl LeaseView {
    fn new(l: &LeaseRecord, now: Timestamp) -> Self {
        let state = if l.revoked_at.is_some() {
            "revoked"
        } else if now >= l.expires_at {
            "expired"
        } else {
            "active"
        };
        Self {
            id: l.id,
            agent: l.agent_id,
            mission: l.mission.clone(),
            purpose: l.purpose.clone(),
            source: l.source(),
            state,
            issued_by: l.issued_by.clone(),
            issued_at: l.issued_at,
            expires_at: l.expires_at,
            max_expires_at: l.max_expires_at,
            revoked_at: l.revoked_at,
            revoked_by: l.revoked_by.clone(),
            revoke_reason: l.revoke_reason.clone(),
            cleanup: l.cleanup.as_str(),
            cleanup_attempts: l.cleanup_attempts,
            cleanup_error: l.cleanup_error.clone(),
        }
    }
}

/// A stored secret handed out by a lease.
#[derive(Serialize, ToSchema)]
pub struct LeasedSecret {
    pub path: String,
    pub version: i64,
    pub value: Disclosed,
}

/// Database credentials handed out by a lease.
#[derive(Serialize, ToSchema)]
pub struct LeasedPostgres {
    pub username: String,
    pub password: Disclosed,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
}

/// A new lease and its credential — shown this once.
#[derive(Serialize, ToSchema)]
pub struct LeaseIssued {
    pub lease: LeaseView,
    pub secret: Option<LeasedSecret>,
    pub postgres: Option<LeasedPostgres>,
}

fn check_mission(m: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_MISSION).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "`mission` is 1 to 128 ASCII letters, digits, `.`, `_`, `:`, `/` or `-`",
        ))
    }
}

fn check_purpose(p: &str) -> Result<(), ApiError> {
    if p.chars().count() <= MAX_PURPOSE && !p.chars().all(crate::extract::is_schema_space) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "`purpose` is 1 to 512 characters, not all whitespace",
        ))
    }
}

fn ttl(asked: Option<&str>) -> Result<Option<Duration>, ApiError> {
    asked.map(|s| lifetime_field("ttl", s)).transpose()
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Refuses an agent asking for another agent's lease, and a mission token asking for a lease
/// of another mission (a lease of a mission is revoked when the mission ends).
fn check_lease_agent<N: Need>(
    auth: &Authed<Write, N>,
    named: AgentId,
    mission: &str,
) -> Result<(), ApiError> {
    match auth.principal.agent {
        Some(own) if own != named => {
            return Err(ApiError::forbidden(
                "an agent can only ask for leases for itself",
            ));
        }
        _ => {}
    }
    match auth.principal.mission {
        Some(m) if m.to_string() != mission => Err(ApiError::forbidden(format!(
            "a token of mission `{m}` can only ask for leases of that mission"
        ))),
        _ => Ok(()),
    }
}

/// Issue a lease: a stored secret's value or a fresh Postgres role, for one agent and mission,
/// for a limited time. The agent's allowlist must cover the secret or engine (refusals are
/// audited). The credential is in this response only.
#[utoipa::path(post, path = "/v1/leases", tag = "leases", request_body = IssueLease,
    security(("bearer" = ["leases:issue"])),
    responses(
        (status = 201, description = "Issued", body = LeaseIssued),
        (status = 403, description = "Not on the agent's allowlist, or the agent is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such agent, secret or engine", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The engine's database could not be reached", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedLeasesIssue>,
    ApiJson(mut body): ApiJson<IssueLease>,
) -> Result<Response, ApiError> {
    check_mission(&body.mission)?;
    check_purpose(&body.purpose)?;
    // A mission id in any form a UUID may take is stored in one form, so ending the mission
    // finds the lease.
    if let Ok(id) = body.mission.parse::<rampart_types::MissionId>() {
        body.mission = id.to_string();
    }
    let asked = ttl(body.ttl.as_deref())?;
    let agent = body.agent;
    check_lease_agent(&auth, agent, &body.mission)?;
    // A lease for a mission Rampart runs needs the mission to be running, and for that agent.
    if let Ok(id) = body.mission.parse::<rampart_types::MissionId>()
        && let Some(m) = auth.tx.mission(auth.principal.tenant, id).await?
    {
        if m.status != rampart_store::MissionStatus::Active || state.clock.now() >= m.deadline {
            return Err(ApiError::conflict(format!("mission `{id}` is not active")));
        }
        if m.agent_id != agent {
            return Err(ApiError::forbidden(format!(
                "mission `{id}` belongs to another agent"
            )));
        }
    }
    let issued = if let Some(path) = body.source.strip_prefix("kv/") {
        let path = path
            .parse::<SecretPath>()
            .map_err(|e| ApiError::validation(format!("`source`: {e}")))?;
        issue_kv(&state, auth, agent, &body, &path, asked).await?
    } else if let Some(engine) = body
        .source
        .strip_prefix("postgres/")
        .filter(|e| is_name(e, MAX_ENGINE_NAME))
    {
        issue_postgres(&state, auth, agent, &body, engine, asked).await?
    } else {
        return Err(ApiError::validation(
            "`source` is `kv/<secret path>` or `postgres/<engine name>`",
        ));
    };
    Ok(no_store(
        (StatusCode::CREATED, Json(issued)).into_response(),
    ))
}

/// Checks the agent exists (404 otherwise) and may touch `resource` (audited refusal), loading
/// it once.
async fn admit(
    state: &AppState,
    mut auth: Authed<Write, NeedLeasesIssue>,
    agent: AgentId,
    resource: Resource<'_>,
) -> Result<Authed<Write, NeedLeasesIssue>, ApiError> {
    let record = auth
        .tx
        .agent(auth.principal.tenant, agent)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    match refusal(&record, resource) {
        None => Ok(auth),
        Some(why) => Err(deny(state, auth, agent, AuditAction::LeaseIssue, resource, why).await),
    }
}

/// How long a new lease lives: `lifetime`, never more than `ceiling` (which renewals cannot
/// pass either).
struct Term {
    lifetime: Duration,
    ceiling: Duration,
}

fn new_lease(
    auth: &Authed<Write, NeedLeasesIssue>,
    agent: AgentId,
    body: &IssueLease,
    (kind, target): (LeaseKind, &str),
    now: Timestamp,
    term: Term,
) -> LeaseRecord {
    LeaseRecord {
        tenant_id: auth.principal.tenant,
        id: LeaseId::random(),
        agent_id: agent,
        mission: body.mission.clone(),
        purpose: body.purpose.clone(),
        kind,
        target: target.to_owned(),
        secret_version: None,
        issued_by: auth.principal.subject.clone(),
        request_id: Some(auth.ctx.request_id.to_string()),
        issued_at: now,
        expires_at: now.saturating_add(term.lifetime.min(term.ceiling)),
        max_expires_at: now.saturating_add(term.ceiling),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        cleanup: match kind {
            LeaseKind::Kv => Cleanup::None,
            LeaseKind::Postgres => Cleanup::Live,
        },
        cleanup_attempts: 0,
        cleanup_error: None,
        cleanup_next_at: None,
    }
}

fn issue_event(
    auth: &Authed<Write, NeedLeasesIssue>,
    lease: &LeaseRecord,
    extra: serde_json::Value,
) -> rampart_types::AuditEvent {
    let mut detail = json!({
        "agent": lease.agent_id,
        "mission": lease.mission,
        "purpose": lease.purpose,
        "source": lease.source(),
        "expires_at": lease.expires_at,
    });
    if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    auth.ctx.event(
        lease.tenant_id,
        &auth.principal.subject,
        AuditAction::LeaseIssue,
        format!("lease:{}", lease.id),
        Outcome::Success,
        detail,
        lease.issued_at,
    )
}

async fn issue_kv(
    state: &AppState,
    auth: Authed<Write, NeedLeasesIssue>,
    agent: AgentId,
    body: &IssueLease,
    path: &SecretPath,
    asked: Option<Duration>,
) -> Result<LeaseIssued, ApiError> {
    let mut auth = admit(state, auth, agent, Resource::Secret(path.as_str())).await?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let opened = state.secrets.get(&mut auth.tx, tenant, path, None).await?;
    let value = Disclosed::utf8(&opened.value)?;
    let mut lease = new_lease(
        &auth,
        agent,
        body,
        (LeaseKind::Kv, path.as_str()),
        now,
        Term {
            lifetime: asked.unwrap_or(state.config.lease_default_ttl),
            ceiling: state.config.lease_max_ttl,
        },
    );
    lease.secret_version = Some(opened.version.version);
    auth.tx.insert_lease(&lease).await?;
    let event = issue_event(&auth, &lease, json!({ "version": opened.version.version }));
    audit(state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(LeaseIssued {
        lease: LeaseView::new(&lease, now),
        secret: Some(LeasedSecret {
            path: path.to_string(),
            version: opened.version.version,
            value,
        }),
        postgres: None,
    })
}

async fn issue_postgres(
    state: &AppState,
    auth: Authed<Write, NeedLeasesIssue>,
    agent: AgentId,
    body: &IssueLease,
    engine_name: &str,
    asked: Option<Duration>,
) -> Result<LeaseIssued, ApiError> {
    let mut auth = admit(state, auth, agent, Resource::PostgresEngine(engine_name)).await?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let engine = auth
        .tx
        .postgres_engine(tenant, engine_name)
        .await?
        .ok_or_else(|| ApiError::not_found("engine"))?;
    let url = engine_url(state, &mut auth.tx, &engine).await?;
    let (host, port, database) = postgres::connection_target(&url).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "the engine's connection URL is not a valid Postgres URL",
        )
    })?;
    let lease = new_lease(
        &auth,
        agent,
        body,
        (LeaseKind::Postgres, engine_name),
        now,
        Term {
            lifetime: asked.unwrap_or(seconds(engine.default_ttl_seconds)),
            ceiling: seconds(engine.max_ttl_seconds),
        },
    );
    // INVARIANT: the lease row (cleanup `live`) commits before the role exists, so no role is
    // ever created that the sweeper does not know about.
    auth.tx.insert_lease(&lease).await?;
    let role = postgres::role_for(lease.id);
    let event = issue_event(&auth, &lease, json!({ "role": role }));
    audit(state, &mut auth.tx, event).await?;
    let scope = auth.principal.scope();
    let subject = auth.principal.subject.clone();
    let request_id = auth.ctx.request_id;
    auth.tx.commit().await?;
    match postgres::create_role(&url, &engine.template_role, lease.id, lease.expires_at).await {
        Ok(issued) => Ok(LeaseIssued {
            lease: LeaseView::new(&lease, now),
            secret: None,
            postgres: Some(LeasedPostgres {
                username: issued.username,
                password: Disclosed::new(issued.password),
                host,
                port,
                database,
            }),
        }),
        Err(e) => {
            // Revoke the lease; the sweeper drops whatever part of the role exists.
            let mut tx = state.store.begin(scope).await?;
            let why = format!("issuing failed: {e}");
            if let Some(revoked) = tx
                .revoke_lease(
                    tenant,
                    lease.id,
                    Revocation {
                        at: state.clock.now(),
                        by: &subject,
                        reason: &why,
                    },
                )
                .await?
            {
                let event = revoke_event(&revoked, &subject, Some(request_id), state.clock.now());
                audit(state, &mut tx, event).await?;
            }
            tx.commit().await?;
            Err(engine_error(&e))
        }
    }
}

async fn visible_lease<A: crate::extract::Access, N: Need>(
    auth: &mut Authed<A, N>,
    id: LeaseId,
) -> Result<LeaseRecord, ApiError> {
    auth.tx
        .lease(auth.principal.tenant, id)
        .await?
        .filter(|l| visible_to(l, auth.principal.agent))
        .ok_or_else(|| ApiError::not_found("lease"))
}

/// A lease's state — the check a tool makes before honouring a leased credential. An agent sees
/// only its own leases.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["leases:issue"])),
    responses(
        (status = 200, description = "The lease", body = LeaseView),
        (status = 404, description = "No such lease", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_lease(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedLeasesIssue>,
    ApiPath(id): ApiPath<LeaseId>,
) -> Result<Json<LeaseView>, ApiError> {
    let lease = visible_lease(&mut auth, id).await?;
    Ok(Json(LeaseView::new(&lease, state.clock.now())))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewLease {
    /// New lifetime from now, such as `15m` (default: the source's default), never past the
    /// lease's `max_expires_at`.
    #[schema(max_length = 32, pattern = r"^([1-9][0-9]{0,8}(ms|s|m|h|d)){1,3}$")]
    pub ttl: Option<String>,
}

/// Renew a live lease: its expiry moves to now + `ttl`, capped at `max_expires_at`. A Postgres
/// role's `VALID UNTIL` moves with it.
#[utoipa::path(post, path = "/v1/leases/{id}/renew", tag = "leases",
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<RenewLease>, description = "Optional"),
    security(("bearer" = ["leases:issue"])),
    responses(
        (status = 200, description = "Renewed", body = LeaseView),
        (status = 404, description = "No such lease", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease is revoked or expired", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn renew(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedLeasesIssue>,
    ApiPath(id): ApiPath<LeaseId>,
    OptionalJson(body): OptionalJson<RenewLease>,
) -> Result<Json<LeaseView>, ApiError> {
    let asked = ttl(body.ttl.as_deref())?;
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let mut lease = visible_lease(&mut auth, id).await?;
    if !lease.is_live(now) {
        return Err(ApiError::conflict("the lease is revoked or expired"));
    }
    // The allowlist is checked again: a renewal must not outlive a narrowed profile.
    let target = lease.target.clone();
    let resource = match lease.kind {
        LeaseKind::Kv => Resource::Secret(&target),
        LeaseKind::Postgres => Resource::PostgresEngine(&target),
    };
    let mut auth = gate_as(
        &state,
        auth,
        Some(lease.agent_id),
        AuditAction::LeaseRenew,
        resource,
    )
    .await?;
    let expires_at = match lease.kind {
        LeaseKind::Kv => now
            .saturating_add(asked.unwrap_or(state.config.lease_default_ttl))
            .min(lease.max_expires_at),
        LeaseKind::Postgres => {
            let engine = auth
                .tx
                .postgres_engine(tenant, &lease.target)
                .await?
                .ok_or_else(|| ApiError::conflict("the lease's engine is no longer configured"))?;
            let expires_at = now
                .saturating_add(asked.unwrap_or(seconds(engine.default_ttl_seconds)))
                .min(lease.max_expires_at);
            // Move the role's expiry first, with no transaction held across the call: if the
            // database accepts and the row update below fails, the role merely outlives its
            // lease until the sweeper drops it at the old expiry.
            let url = engine_url(&state, &mut auth.tx, &engine).await?;
            let scope = auth.principal.scope();
            auth.tx.rollback().await?;
            postgres::extend_role(&url, lease.id, expires_at)
                .await
                .map_err(|e| engine_error(&e))?;
            auth.tx = state.store.begin(scope).await?;
            expires_at
        }
    };
    if !auth.tx.renew_lease(tenant, id, expires_at).await? {
        return Err(ApiError::conflict("the lease was revoked meanwhile"));
    }
    lease.expires_at = expires_at;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::LeaseRenew,
        format!("lease:{id}"),
        Outcome::Success,
        json!({
            "agent": lease.agent_id,
            "mission": lease.mission,
            "source": lease.source(),
            "expires_at": expires_at,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(LeaseView::new(&lease, now)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeLease {
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: Option<String>,
}

/// Revoke a lease. From this response on it reads as revoked; a Postgres role is dropped (its
/// sessions ended) now, or — if the database cannot be reached — retried until it is.
#[utoipa::path(post, path = "/v1/leases/{id}/revoke", tag = "leases",
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<RevokeLease>, description = "Optional"),
    security(("bearer" = ["leases:issue"])),
    responses(
        (status = 200, description = "Revoked", body = LeaseView),
        (status = 404, description = "No such lease", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedLeasesIssue>,
    ApiPath(id): ApiPath<LeaseId>,
    OptionalJson(body): OptionalJson<RevokeLease>,
) -> Result<Json<LeaseView>, ApiError> {
    if let Some(r) = &body.reason {
        check_reason(r)?;
    }
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    visible_lease(&mut auth, id).await?;
    let by = auth.principal.subject.clone();
    let Some(mut lease) = auth
        .tx
        .revoke_lease(
            tenant,
            id,
            Revocation {
                at: now,
                by: &by,
                reason: body.reason.as_deref().unwrap_or("revoked"),
            },
        )
        .await?
    else {
        return Err(ApiError::conflict("the lease is already revoked"));
    };
    let event = revoke_event(&lease, &by, Some(auth.ctx.request_id), now);
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    if lease.cleanup == Cleanup::Pending {
        // Failures are recorded and retried by the sweeper; the revocation itself stands.
        match clean_up(&state, &lease).await {
            Ok(true) => lease.cleanup = Cleanup::Done,
            Ok(false) => {}
            Err(e) => tracing::error!(lease = %id, error = %e, "recording a lease cleanup failed"),
        }
        lease.cleanup_attempts += 1;
    }
    Ok(Json(LeaseView::new(&lease, now)))
}

/// Revokes every live lease `filter` matches, committing `auth.tx` with the first batch, and
/// removes their external credentials in the background (the sweeper retries failures).
pub(crate) async fn revoke_matching<N: Need>(
    state: &AppState,
    auth: Authed<Write, N>,
    tenant: TenantId,
    filter: &LeaseFilter,
    why: &str,
) -> Result<usize, ApiError> {
    let by = auth.principal.subject.clone();
    // The tenant the request acts in, which the platform operator may have moved to.
    let scope = if tenant == auth.principal.tenant {
        auth.principal.scope()
    } else {
        Scope::Tenant(TenantScope {
            tenant,
            subject: by.clone(),
            platform: false,
        })
    };
    let request_id = auth.ctx.request_id;
    let mut tx = auth.tx;
    let mut total = 0;
    let mut pending = Vec::new();
    loop {
        let now = state.clock.now();
        let batch = tx
            .revoke_leases(
                tenant,
                filter,
                Revocation {
                    at: now,
                    by: &by,
                    reason: why,
                },
                REVOKE_BATCH,
            )
            .await?;
        for lease in &batch {
            audit(
                state,
                &mut tx,
                revoke_event(lease, &by, Some(request_id), now),
            )
            .await?;
        }
        tx.commit().await?;
        total += batch.len();
        pending.extend(
            batch
                .iter()
                .filter(|l| l.cleanup == Cleanup::Pending)
                .cloned(),
        );
        if (batch.len() as i64) < REVOKE_BATCH {
            break;
        }
        tx = state.store.begin(scope.clone()).await?;
    }
    if !pending.is_empty() {
        let state = state.clone();
        tokio::spawn(async move {
            for lease in pending {
                if let Err(e) = clean_up(&state, &lease).await {
                    tracing::error!(lease = %lease.id, error = %e, "recording a lease cleanup failed");
                }
            }
        });
    }
    Ok(total)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeLeases {
    /// The start of the lease sources to revoke: `kv/db/`, `postgres/orders`, … — `""` is
    /// every source.
    #[schema(max_length = 600)]
    pub prefix: String,
    /// Only this agent's leases.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub agent: Option<AgentId>,
    /// Only this mission's leases.
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub mission: Option<String>,
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeasesRevoked {
    pub revoked: usize,
}

/// Revoke every live lease whose source starts with `prefix` (`""`: any), narrowed to an agent
/// and / or a mission when given.
#[utoipa::path(post, path = "/v1/leases/revoke", tag = "leases", request_body = RevokeLeases,
    security(("bearer" = ["leases:admin"])),
    responses((status = 200, description = "Revoked", body = LeasesRevoked)))]
pub async fn revoke_bulk(
    State(state): State<AppState>,
    auth: Authed<Write, NeedLeasesAdmin>,
    ApiJson(body): ApiJson<RevokeLeases>,
) -> Result<Json<LeasesRevoked>, ApiError> {
    check_reason(&body.reason)?;
    if let Some(m) = &body.mission {
        check_mission(m)?;
    }
    if body.prefix.chars().count() > 600 {
        return Err(ApiError::validation("`prefix` is at most 600 characters"));
    }
    let filter = LeaseFilter {
        agent: body.agent,
        mission: body.mission,
        source_prefix: Some(body.prefix).filter(|p| !p.is_empty()),
        ..LeaseFilter::default()
    };
    let tenant = auth.principal.tenant;
    let revoked = revoke_matching(&state, auth, tenant, &filter, &body.reason).await?;
    Ok(Json(LeasesRevoked { revoked }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    /// Only this agent's leases.
    #[param(value_type = Option<String>, format = Uuid)]
    pub agent: Option<AgentId>,
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub mission: Option<String>,
    /// Sources starting with this: `kv/db/`, `postgres/orders`, …
    #[param(max_length = 600)]
    pub prefix: Option<String>,
    /// Only leases not revoked yet.
    pub live: Option<bool>,
    /// Only revoked leases whose credential removal has failed and is being retried.
    pub cleanup_failing: Option<bool>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseList {
    pub leases: Vec<LeaseView>,
}

/// The tenant's leases, newest first — with `cleanup_failing=true`, the revoked ones whose
/// external credential could not be removed yet.
#[utoipa::path(get, path = "/v1/leases", tag = "leases", params(LeaseQuery),
    security(("bearer" = ["leases:admin"])),
    responses((status = 200, description = "Leases", body = LeaseList)))]
pub async fn list(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedLeasesAdmin>,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> Result<Json<LeaseList>, ApiError> {
    let limit = crate::extract::page_limit(q.limit)?;
    if let Some(m) = &q.mission {
        check_mission(m).map_err(|e| ApiError::new(ErrorKind::InvalidQuery, e.detail))?;
    }
    if q.prefix.as_ref().is_some_and(|p| p.chars().count() > 600) {
        return Err(ApiError::new(
            ErrorKind::InvalidQuery,
            "`prefix` is at most 600 bytes",
        ));
    }
    let filter = LeaseFilter {
        agent: q.agent,
        mission: q.mission,
        source_prefix: q.prefix,
        live_only: q.live.unwrap_or(false),
        cleanup_failing: q.cleanup_failing.unwrap_or(false),
    };
    let now = state.clock.now();
    let leases = auth
        .tx
        .leases(auth.principal.tenant, &filter, limit)
        .await?;
    Ok(Json(LeaseList {
        leases: leases.iter().map(|l| LeaseView::new(l, now)).collect(),
    }))
}
