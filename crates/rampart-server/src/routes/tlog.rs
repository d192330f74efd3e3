//! The ledger as a C2SP tiled transparency log, read-only, under `/tlog/`: generic tlog clients
//! fetch `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]` and verify it
//! themselves. Entries are sealed per tenant, so all this reveals about anyone is sizes.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rampart_ledger::tile::TileId;
use rampart_types::Problem;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// The latest checkpoint, as a signed note.
#[utoipa::path(get, path = "/tlog/checkpoint", tag = "tlog",
    responses(
        (status = 200, description = "The signed checkpoint", body = String, content_type = "text/plain; charset=utf-8"),
    ))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let cp = state.ledger.latest_checkpoint().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "no checkpoint has been published yet",
        )
    })?;
    let mut res = cp.note.clone().into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// A tile or entry bundle. Full ones are immutable; partial ones exist for the sizes of
/// published checkpoints.
#[utoipa::path(get, path = "/tlog/tile/{path}", tag = "tlog",
    params(("path" = String, Path, description = "The tile path after `tile/`, e.g. `0/x001/234`, `1/000.p/17`, `entries/000`")),
    responses(
        (status = 200, description = "The tile", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "No such tile", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = TileId::parse(&format!("tile/{path}")) else {
        return Err(ApiError::not_found("tile"));
    };
    let ledger = state.ledger.clone();
    let bytes = tokio::task::spawn_blocking(move || ledger.tile(&id))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::new(ErrorKind::Unavailable, "the audit ledger is unavailable").with_cause(e)
        })?
        .ok_or_else(|| ApiError::not_found("tile"))?;
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}
