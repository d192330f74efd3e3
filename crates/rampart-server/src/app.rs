//! The router, its OpenAPI document, and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use rampart_store::{Scope, TenantKeyState};
use rampart_types::{AuditAction, AuditEvent, Outcome};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::edge;
use crate::keys::RELOAD_INTERVAL;
use crate::routes::{
    agents, apikeys, audit, auth, backends, gateway, health, keys, leases, ledger, missions,
    secrets, sentinel, tenants, tlog, webhooks,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rampart",
        description = "Rampart's control-plane API. Errors are RFC 9457 problem details \
                       (`application/problem+json`) with `code` and `request_id` members.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(rampart_types::Problem)),
    tags(
        (name = "auth", description = "Tokens, revocation, JWKS"),
        (name = "tenants", description = "Tenants (platform operator)"),
        (name = "apikeys", description = "API keys"),
        (name = "audit", description = "The audit trail and its tamper-evident ledger"),
        (name = "tlog", description = "The ledger as a C2SP tiled transparency log (read-only, public)"),
        (name = "keys", description = "Signing keys"),
        (name = "webhooks", description = "Signed outgoing webhooks (Standard Webhooks): endpoints, deliveries, replay"),
        (name = "secrets", description = "Versioned secrets, sealed under per-tenant key-encryption keys"),
        (name = "agents", description = "Agent profiles with their allowlists, and dynamic credential engines"),
        (name = "leases", description = "Just-in-time credentials for an agent and a mission"),
        (name = "sentinel", description = "The PII Sentinel: detection, redaction under the tenant's policy, reversible tokens"),
        (name = "missions", description = "Missions of agents, mission tokens, and cascading revocation of principals"),
        (name = "gateway", description = "The LLM boundary: OpenAI and Anthropic calls redacted, pinned to their mission and audited; the tenant's upstreams"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /v1/auth/token`. The scopes listed on an \
                         operation are the capabilities it needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the problem responses every operation can give, so each route's annotation lists only
/// what is particular to it: 500/503 everywhere; 400/413/415/422 where there is a body; 401/403
/// where a token is needed; 400 where there are parameters.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "Problem".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An RFC 9457 problem; `code` names the kind (docs/problems.md)")
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let mut codes = vec!["500", "503"];
                if op.request_body.is_some() {
                    codes.extend(["400", "413", "415", "422"]);
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    codes.extend(["401", "403"]);
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    codes.push("400");
                }
                for code in codes {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Problem")));
                }
            }
        }
    }
}

#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    let mut res = doc.as_str().to_owned().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::token))
        .routes(routes!(auth::revoke_token))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant))
        .routes(routes!(apikeys::create, apikeys::list))
        .routes(routes!(apikeys::rotate))
        .routes(routes!(apikeys::revoke))
        .routes(routes!(audit::list_events))
        .routes(routes!(ledger::checkpoint, ledger::publish_checkpoint))
        .routes(routes!(ledger::verifier_key))
        .routes(routes!(ledger::entry))
        .routes(routes!(ledger::inclusion_proof))
        .routes(routes!(ledger::consistency_proof))
        .routes(routes!(ledger::receipt))
        .routes(routes!(ledger::erase))
        .routes(routes!(ledger::zones))
        .routes(routes!(tlog::checkpoint))
        .routes(routes!(keys::rotate_signing_key))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::list_keys))
        .routes(routes!(secrets::rotate_key))
        .routes(routes!(secrets::break_glass))
        .routes(routes!(secrets::revoke_key))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(
            webhooks::get_endpoint,
            webhooks::change_endpoint,
            webhooks::delete_endpoint
        ))
        .routes(routes!(webhooks::rotate_key))
        .routes(routes!(webhooks::replay_endpoint))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::get_delivery))
        .routes(routes!(webhooks::replay_delivery))
        .routes(routes!(backends::list_backends))
        .routes(routes!(backends::put_backend, backends::delete_backend))
        .routes(routes!(agents::create_agent, agents::list_agents))
        .routes(routes!(agents::get_agent, agents::update_agent))
        .routes(routes!(agents::disable_agent))
        .routes(routes!(agents::list_engines))
        .routes(routes!(agents::put_engine, agents::delete_engine))
        .routes(routes!(leases::issue, leases::list))
        .routes(routes!(leases::revoke_bulk))
        .routes(routes!(leases::get_lease))
        .routes(routes!(leases::renew))
        .routes(routes!(leases::revoke))
        .routes(routes!(sentinel::scan))
        .routes(routes!(sentinel::redact))
        .routes(routes!(sentinel::reveal))
        .routes(routes!(sentinel::get_policy, sentinel::put_policy))
        .routes(routes!(sentinel::destroy_key))
        .routes(routes!(missions::open, missions::list))
        .routes(routes!(missions::get))
        .routes(routes!(missions::token))
        .routes(routes!(missions::end))
        .routes(routes!(missions::abort))
        .routes(routes!(missions::reveal_instructions))
        .routes(routes!(missions::revoke))
        .routes(routes!(gateway::chat_completions))
        .routes(routes!(gateway::messages))
        .routes(routes!(gateway::get_config, gateway::put_config))
        .routes(routes!(gateway::reveal_request))
        .split_for_parts();
    // Tile paths have several segments: the route takes a wildcard where the document (which
    // cannot express one) names a single parameter. Same handler, same path.
    // Secret paths too.
    use axum::routing::{get, post};
    let router = router
        .route("/tlog/tile/{*path}", get(tlog::tile))
        .route(
            "/v1/secrets/data/{*path}",
            get(secrets::get_secret)
                .put(secrets::put_secret)
                .delete(secrets::delete_latest),
        )
        .route("/v1/secrets/delete/{*path}", post(secrets::delete_versions))
        .route(
            "/v1/secrets/undelete/{*path}",
            post(secrets::undelete_versions),
        )
        .route(
            "/v1/secrets/destroy/{*path}",
            post(secrets::destroy_versions),
        )
        .route("/v1/secrets/metadata/{*path}", get(secrets::metadata));
    let wildcard_doc = OpenApiRouter::<AppState>::new()
        .routes(routes!(tlog::tile))
        .routes(routes!(
            secrets::get_secret,
            secrets::put_secret,
            secrets::delete_latest
        ))
        .routes(routes!(secrets::delete_versions))
        .routes(routes!(secrets::undelete_versions))
        .routes(routes!(secrets::destroy_versions))
        .routes(routes!(secrets::metadata))
        .split_for_parts()
        .1;
    doc.merge(wildcard_doc);
    ProblemResponses.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document of the API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// The whole application: routes, edge middleware, limits.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented_routes();
    let doc_json = OpenApiJson(Arc::new(doc.to_pretty_json().unwrap_or_default()));
    routes
        .merge(crate::routes::vault::router())
        .fallback(edge::not_found)
        .layer(Extension(doc_json))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CatchPanicLayer::custom(edge::panic_response))
        .layer(TimeoutLayer::with_status_code(
            edge::TIMEOUT_STATUS,
            state.config.request_timeout,
        ))
        .layer(middleware::from_fn(edge::edge))
        .layer(middleware::from_fn(crate::routes::vault::vault_edge))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests (each of which commits
/// before it answers) and closes the store.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let maintenance = tokio::spawn(maintenance(state.clone()));
    let sweeper = tokio::spawn(lease_sweeper(state.clone()));
    let deliveries = tokio::spawn(crate::webhooks::run_worker(
        state.clone(),
        state.webhook_wake.clone(),
    ));
    let group = match crate::state::node_id(&state.config, false) {
        Ok(id) => format!("node-{id}"),
        Err(_) => "node".to_owned(),
    };
    let listener_task = tokio::spawn(crate::bus::listen(state.clone(), group));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    maintenance.abort();
    sweeper.abort();
    deliveries.abort();
    listener_task.abort();
    // Every acknowledged audit record is already on disk; this publishes a last checkpoint.
    let ledger = state.ledger.clone();
    let _ = tokio::task::spawn_blocking(move || ledger.shutdown()).await;
    state.store.close().await;
    result
}

/// Rotates every tenant key-encryption key older than `secrets_key_rotation_period`, one
/// transaction (and audit record) per tenant. Returns how many were rotated.
pub async fn rotate_tenant_keys(state: &AppState) -> Result<usize, String> {
    let mut rotated = 0;
    for t in tenants(state, "system").await? {
        let scope = Scope::tenant(t.id, "system");
        let now = state.clock.now();
        let mut tx = state.store.begin(scope).await.map_err(|e| e.to_string())?;
        let keys = tx.tenant_keys(t.id).await.map_err(|e| e.to_string())?;
        let due = keys.iter().any(|k| {
            k.state == TenantKeyState::Active
                && now.duration_since(k.created_at) >= state.config.secrets_key_rotation_period
        });
        if !due {
            continue;
        }
        crate::routes::secrets::rotate_recorded(
            state,
            &mut tx,
            t.id,
            "system",
            None,
            Some("scheduled"),
            false,
        )
        .await
        .map_err(|e| e.detail)?;
        tx.commit().await.map_err(|e| e.to_string())?;
        rotated += 1;
    }
    Ok(rotated)
}

const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Every `lease_sweep_interval`: revoke expired leases and retry credential removals that are
/// due. Errors are logged; the next round retries.
async fn lease_sweeper(state: AppState) {
    let mut tick = tokio::time::interval(state.config.lease_sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match crate::leases::sweep(&state).await {
            Ok(s) if s.expired + s.cleaned + s.failed > 0 => tracing::info!(
                expired = s.expired,
                cleaned = s.cleaned,
                failed = s.failed,
                "lease sweep"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lease sweep failed"),
        }
    }
}

/// Background upkeep: re-read signing keys (rotations by other nodes), rotate on schedule; hourly,
/// purge expired revocation entries and rotate tenants' key-encryption keys that are due.
async fn maintenance(state: AppState) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = Instant::now();
    loop {
        tick.tick().await;
        let hourly = last_purge.elapsed() >= PURGE_INTERVAL;
        if hourly {
            last_purge = Instant::now();
        }
        maintain(&state, hourly).await;
    }
}

/// One round of upkeep, with the hourly tasks if `hourly`; errors are logged (the next round
/// retries).
pub async fn maintain(state: &AppState, hourly: bool) {
    if let Err(e) = scheduled_rotation(state).await {
        tracing::error!(error = %e, "scheduled signing key rotation failed");
    }
    if let Err(e) = state.keys.reload().await {
        tracing::warn!(error = %e, "signing key reload failed");
    }
    if hourly && let Err(e) = purge(state).await {
        tracing::warn!(error = %e, "purging expired token state failed");
    }
    if hourly && let Err(e) = rotate_tenant_keys(state).await {
        tracing::error!(error = %e, "scheduled tenant key rotation failed");
    }
}

fn system_scope(state: &AppState) -> Scope {
    Scope::platform(state.system_tenant, "system")
}

/// Every tenant, read as the platform acting as `subject`: what the background tasks walk.
pub(crate) async fn tenants(
    state: &AppState,
    subject: &str,
) -> Result<Vec<rampart_store::TenantRecord>, String> {
    let mut tx = state
        .store
        .begin_read(Scope::platform(state.system_tenant, subject))
        .await
        .map_err(|e| e.to_string())?;
    tx.list_tenants().await.map_err(|e| e.to_string())
}

async fn scheduled_rotation(state: &AppState) -> Result<(), String> {
    let now = state.clock.now();
    if let Some(current) = state.keys.current()
        && now.duration_since(current.signer_created_at) < state.config.signing_key_rotation_period
    {
        return Ok(());
    }
    let mut tx = state
        .store
        .begin(system_scope(state))
        .await
        .map_err(|e| e.to_string())?;
    let Some(rotation) = state
        .keys
        .rotate_in(&mut tx, true)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let event = AuditEvent {
        tenant_id: state.system_tenant,
        request_id: None,
        actor: "system".into(),
        action: AuditAction::SigningKeyRotate,
        resource: format!("signing_key:{}", rotation.new_kid),
        outcome: Outcome::Success,
        detail: json!({ "reason": "scheduled", "retired": rotation.retired_kids }),
        at: now,
    };
    state
        .audit
        .record(&mut tx, &event)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    tracing::info!(kid = %rotation.new_kid, "rotated the signing key on schedule");
    state.keys.reload().await.map_err(|e| e.to_string())
}

async fn purge(state: &AppState) -> Result<(), String> {
    let now = state.clock.now();
    for t in tenants(state, "system").await? {
        let mut tx = state
            .store
            .begin(Scope::tenant(t.id, "system"))
            .await
            .map_err(|e| e.to_string())?;
        tx.purge_expired(t.id, now)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
