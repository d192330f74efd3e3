use axum::Json;
use axum::extract::State;
use rampart_types::{AuditAction, Outcome, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::credentials::audit;
use crate::error::ApiError;
use crate::extract::{Authed, NeedKeysManage, OptionalJson, Write};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningKey {
    /// Why, for the audit trail (e.g. `suspected compromise`).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyRotated {
    /// The `kid` that signs from now on.
    pub kid: String,
    /// The keys retired by this rotation.
    pub retired: Vec<String>,
    /// When the retired keys stop verifying: after the last token they signed has expired.
    #[schema(value_type = String, format = DateTime)]
    pub retired_verify_until: Timestamp,
}

/// Rotate the token signing key now. Tokens signed by the old key keep verifying until they
/// expire; new tokens are signed by the new key.
#[utoipa::path(post, path = "/v1/keys/signing/rotate", tag = "keys",
    request_body(content = Option<RotateSigningKey>, description = "Optional"),
    security(("bearer" = ["keys:manage"])),
    responses(
        (status = 200, description = "Rotated", body = SigningKeyRotated),
    ))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedKeysManage>,
    OptionalJson(body): OptionalJson<RotateSigningKey>,
) -> Result<Json<SigningKeyRotated>, ApiError> {
    let reason: String = body
        .reason
        .unwrap_or_else(|| "on demand".into())
        .chars()
        .take(500)
        .collect();
    let rotation = state
        .keys
        .rotate_in(&mut auth.tx, false)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("rotation produced no key"))?;
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        AuditAction::SigningKeyRotate,
        format!("signing_key:{}", rotation.new_kid),
        Outcome::Success,
        json!({ "reason": reason, "retired": rotation.retired_kids }),
        state.clock.now(),
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    state.keys.reload().await.map_err(ApiError::internal)?;
    Ok(Json(SigningKeyRotated {
        kid: rotation.new_kid,
        retired: rotation.retired_kids,
        retired_verify_until: rotation.retired_verify_until,
    }))
}
