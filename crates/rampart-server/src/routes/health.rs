use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (able to serve).
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers, signing keys are loaded, and enough audit ledger zones are
/// in service to acknowledge records.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready", body = rampart_types::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(|e| {
        ApiError::new(ErrorKind::Unavailable, "the database does not answer").with_cause(e)
    })?;
    if state.keys.current().is_none() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "signing keys are not loaded",
        ));
    }
    let zones = state.ledger.zone_status();
    let healthy = zones.iter().filter(|z| z.healthy).count();
    if healthy < state.ledger.quorum() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            format!("only {healthy} of the audit ledger's zones are in service"),
        ));
    }
    Ok(Json(Health { status: "ready" }))
}
